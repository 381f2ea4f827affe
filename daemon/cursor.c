/*
 * cursor.c - user.list's paging cursors: authenticated, bound to their
 * filters, and known as stale after a restart.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

/*
 * A cursor is base64url (no padding) of
 *
 *   version (1) | boot id (8) | filter hash (8) | n (1) | username (n)
 *   | mac (8)
 *
 * where username is the last one on the page it came with, the boot id
 * is a random number drawn when this process first made a cursor, the
 * filter hash is a keyed hash of (status, search), and mac is
 * SipHash-2-4 under a random 128-bit key of this process over everything
 * before it.  So a cursor cannot be forged or changed, is only good for
 * the filters it was made with, and one from before a restart is known
 * as stale.  The next page is the accounts whose username sorts after
 * the one in the cursor (case-insensitive ASCII, the view's order):
 * accounts added or deleted between pages neither shift nor repeat the
 * others.
 */
#define CURSOR_VERSION	1
#define CURSOR_HEAD	18		/* version, boot id, filter, n */
_Static_assert(CURSOR_MAX == CURSOR_HEAD + USERNAME_MAX + 8,
    "CURSOR_MAX in otasdird.h");

static uint8_t	 cursor_key[16];
static uint8_t	 cursor_boot[8];
static bool	 cursor_key_set;

/* Draw the key and the boot id once.  getrandom() cannot block once the
 * kernel's pool is initialised, which is long before a daemon serves
 * requests; should it fail anyway, arc4random (libc) takes over. */
static void
cursor_key_init(void)
{
	uint8_t	 buf[sizeof(cursor_key) + sizeof(cursor_boot)];
	size_t	 got = 0;

	if (cursor_key_set)
		return;
	while (got < sizeof(buf)) {
		ssize_t	 n = getrandom(buf + got, sizeof(buf) - got,
		    GRND_NONBLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			arc4random_buf(buf, sizeof(buf));
			break;
		}
		got += (size_t)n;
	}
	memcpy(cursor_key, buf, sizeof(cursor_key));
	memcpy(cursor_boot, buf + sizeof(cursor_key), sizeof(cursor_boot));
	explicit_bzero(buf, sizeof(buf));
	cursor_key_set = true;
}

static uint64_t
le64(const uint8_t *p)
{
	uint64_t	 v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void
sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = rotl(v[1], 13); v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3]; v[3] = rotl(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = rotl(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = rotl(v[1], 17); v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of in under key. */
static uint64_t
siphash24(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t	 k0 = le64(key), k1 = le64(key + 8);
	uint64_t	 v[4] = {
		0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1,
		0x6c7967656e657261ULL ^ k0, 0x7465646279746573ULL ^ k1,
	};
	uint64_t	 m, b = (uint64_t)len << 56;
	size_t		 i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		m = le64(in + i);
		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	for (size_t j = 0; j < len % 8; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v[3] ^= b;
	sipround(v);
	sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The keyed hash of a listing's filters. */
uint64_t
cursor_filter(enum acct_status status, const char *search)
{
	uint8_t	 buf[2 + 257];
	size_t	 n = 0, slen = search != NULL ? strlen(search) : 0;

	cursor_key_init();
	buf[n++] = 'F';			/* domain: filters */
	buf[n++] = (uint8_t)status;
	if (slen > sizeof(buf) - n)
		slen = sizeof(buf) - n;	/* cannot happen: valid_search */
	if (slen > 0)
		memcpy(buf + n, search, slen);
	return siphash24(cursor_key, buf, n + slen);
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding of in[0..len) into out (room for
 * (len * 4 + 2) / 3 + 1 bytes). */
void
cursor_b64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t	 i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];

		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (len - i == 1) {
		out[o++] = b64url[in[i] >> 2];
		out[o++] = b64url[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		out[o++] = b64url[v >> 10];
		out[o++] = b64url[(v >> 4) & 63];
		out[o++] = b64url[(v & 15) << 2];
	}
	out[o] = '\0';
}

/* Decode base64url without padding into out (cap bytes).  Returns the
 * length, or -1 if s is not that or does not fit. */
int
cursor_b64_decode(const char *s, uint8_t *out, size_t cap)
{
	uint32_t	 acc = 0;
	int		 bits = 0;
	size_t		 n = 0;

	for (; *s != '\0'; s++) {
		const char	*p = memchr(b64url, *s, 64);

		if (p == NULL)
			return -1;
		acc = (acc << 6) | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	/* Leftover bits must be zero and fewer than a byte: one encoding
	 * per value. */
	if (bits >= 6 || acc != 0)
		return -1;
	return (int)n;
}

/* The cursor for a page that ended with username; out has room for
 * CURSOR_B64_MAX + 1 bytes. */
void
cursor_make(const char *username, uint64_t filter, char *out)
{
	uint8_t	 rec[CURSOR_MAX];
	size_t	 ulen = strlen(username), n = 0;

	cursor_key_init();
	rec[n++] = CURSOR_VERSION;
	memcpy(rec + n, cursor_boot, sizeof(cursor_boot));
	n += sizeof(cursor_boot);
	put_le64(rec + n, filter);
	n += 8;
	rec[n++] = (uint8_t)ulen;
	memcpy(rec + n, username, ulen);
	n += ulen;
	put_le64(rec + n, siphash24(cursor_key, rec, n));
	n += 8;
	cursor_b64_encode(rec, n, out);
}

/*
 * Read a cursor made by cursor_make for these filters into after
 * (USERNAME_MAX + 1 bytes).  Returns NULL or what is wrong with it.
 */
const char *
cursor_read(const char *s, uint64_t filter, char *after)
{
	uint8_t		 rec[CURSOR_MAX];
	uint8_t		 mac[8], diff = 0;
	int		 n;
	size_t		 ulen;

	cursor_key_init();
	if (strlen(s) > CURSOR_B64_MAX ||
	    (n = cursor_b64_decode(s, rec, sizeof(rec))) < CURSOR_HEAD + 1 + 8)
		return "is not a cursor of this service; start the listing "
		    "over without a cursor";
	if (rec[0] != CURSOR_VERSION ||
	    memcmp(rec + 1, cursor_boot, sizeof(cursor_boot)) != 0)
		return "is stale (otasdird has restarted since it was issued); "
		    "start the listing over without a cursor";
	ulen = rec[CURSOR_HEAD - 1];
	if ((size_t)n != CURSOR_HEAD + ulen + 8)
		return "is not valid (altered or not issued by otasdird); "
		    "start the listing over without a cursor";
	put_le64(mac, siphash24(cursor_key, rec, CURSOR_HEAD + ulen));
	for (size_t i = 0; i < 8; i++)
		diff |= mac[i] ^ rec[CURSOR_HEAD + ulen + i];
	if (diff != 0)
		return "is not valid (altered or not issued by otasdird); "
		    "start the listing over without a cursor";
	if (le64(rec + 9) != filter)
		return "belongs to a listing with other status or search "
		    "filters; pass the same filters or start over without a "
		    "cursor";
	/* Ours, so valid; checked all the same before it is used. */
	if (valid_username((const char *)rec + CURSOR_HEAD, ulen) != NULL)
		return "is not valid; start the listing over without a cursor";
	memcpy(after, rec + CURSOR_HEAD, ulen);
	after[ulen] = '\0';
	return NULL;
}
