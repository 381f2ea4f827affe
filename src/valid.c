/*
 * valid.c - validation of what clients send, and the UTF-8 helpers it
 * needs.  Shared by otasdird and otasctl; pure code, no libraries.
 *
 * Every valid_*() returns NULL for an acceptable value or a short static
 * message (lower case, no trailing period) saying what is wrong, meant to
 * follow the field's name ("username must be ...").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "valid.h"

#define SEARCH_MAX	256

/*
 * Decode one UTF-8 sequence at s[0..len) strictly (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF).  Returns its length (1-4)
 * with *cp set, or 0 if the bytes there are not valid UTF-8.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char	 c = s[0], lo = 0x80, hi = 0xbf;
	size_t		 n;
	uint32_t	 v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;	/* continuation, C0, C1 or F5..FF */
	if (len < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	v = (v << 6) | (s[1] & 0x3f);
	for (size_t i = 2; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	*cp = v;
	return n;
}

bool
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t	 cp;
	size_t		 n;

	for (size_t i = 0; i < len; i += n)
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0)
			return false;
	return true;
}

/*
 * Characters refused in names and search texts: C0, DEL and C1 controls,
 * the line and paragraph separators (they break lines in logs and
 * tables), and the bidi embedding, override and isolate controls (they
 * reorder what a table shows; names in right-to-left scripts need none).
 */
static bool
uc_is_control(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) ||
	    c == 0x2028 || c == 0x2029 ||
	    (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* Unicode white space (White_Space=yes, controls aside). */
static bool
uc_is_space(uint32_t c)
{
	return c == 0x20 || (c >= 0x09 && c <= 0x0d) || c == 0x85 ||
	    c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
	    c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
	    c == 0x3000;
}

/*
 * Check s as UTF-8 text of min..max bytes without controls; with
 * no_space, without any white space either.  Returns NULL or a message;
 * *first and *last get the first and last code points (for the callers'
 * own rules).
 */
static const char *
valid_text(const char *s, size_t len, bool no_space, uint32_t *first,
    uint32_t *last)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t	 cp = 0;
	size_t		 n;

	*first = *last = 0;
	for (size_t i = 0; i < len; i += n) {
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0)
			return "must be valid UTF-8";
		if (i == 0)
			*first = cp;
		*last = cp;
	}
	/* Second pass: an encoding problem is reported before a character
	 * problem, whatever their order. */
	for (size_t i = 0; i < len; i += n) {
		n = utf8_decode(p + i, len - i, &cp);
		if (no_space && uc_is_space(cp))
			return "must not contain spaces";
		if (uc_is_control(cp))
			return "must not contain control characters";
	}
	return NULL;
}

static bool
valid_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

const char *
valid_username(const char *s, size_t len)
{
	static const char msg[] = "must be 1-64 characters of A-Z a-z 0-9 . _ "
	    "-, starting with a letter or digit";

	if (s == NULL || len == 0 || len > USERNAME_MAX || !valid_alnum(s[0]))
		return msg;
	for (size_t i = 1; i < len; i++)
		if (!valid_alnum(s[i]) && s[i] != '.' && s[i] != '_' &&
		    s[i] != '-')
			return msg;
	return NULL;
}

const char *
valid_email(const char *s, size_t len)
{
	const char	*at;
	const char	*msg;
	uint32_t	 first, last;

	if (s == NULL || len == 0)
		return "must not be empty";
	if (len > EMAIL_MAX)
		return "must be at most 254 bytes";
	if ((msg = valid_text(s, len, true, &first, &last)) != NULL)
		return msg;
	if ((at = memchr(s, '@', len)) == NULL ||
	    memchr(at + 1, '@', len - (size_t)(at - s) - 1) != NULL)
		return "must contain exactly one @";
	if (at == s || at == s + len - 1)
		return "must have text before and after the @";
	return NULL;
}

const char *
valid_full_name(const char *s, size_t len)
{
	const char	*msg;
	uint32_t	 first, last;

	if (s == NULL || len == 0)
		return "must not be empty";
	if (len > FULLNAME_MAX)
		return "must be at most 256 bytes";
	if ((msg = valid_text(s, len, false, &first, &last)) != NULL)
		return msg;
	/* This also refuses a name of white space only. */
	if (uc_is_space(first) || uc_is_space(last))
		return "must not start or end with a space";
	return NULL;
}

const char *
valid_password(const char *s, size_t len)
{
	if (s == NULL || len < PASSWORD_MIN || len > PASSWORD_MAX)
		return "must be 8-256 bytes";
	if (memchr(s, '\0', len) != NULL)
		return "must not contain NUL";
	return NULL;
}

/* Is s[0..len) exactly the string w? */
static bool
valid_is(const char *s, size_t len, const char *w)
{
	return s != NULL && len == strlen(w) && memcmp(s, w, len) == 0;
}

const char *
valid_status(const char *s, size_t len)
{
	if (valid_is(s, len, STATUS_ACTIVE) ||
	    valid_is(s, len, STATUS_INACTIVE))
		return NULL;
	return "must be active or inactive";
}

const char *
valid_role(const char *s, size_t len)
{
	if (valid_is(s, len, ROLE_NAME_SUPERADMIN) ||
	    valid_is(s, len, ROLE_NAME_USER))
		return NULL;
	return "must be superadmin or user";
}

const char *
valid_search(const char *s, size_t len)
{
	uint32_t	 first, last;

	if (s == NULL || len == 0 || len > SEARCH_MAX)
		return "must be 1-256 bytes";
	return valid_text(s, len, false, &first, &last);
}

/* ------------------------------------------------------------------ */
/* Terminal width */

struct uc_range {
	uint32_t	 lo, hi;
};

/* Zero width: combining marks (Mn, Me), zero-width format characters,
 * Hangul medial vowels and final consonants, variation selectors. */
static const struct uc_range uc_zero[] = {
	{ 0x0300, 0x036f }, { 0x0483, 0x0489 }, { 0x0591, 0x05bd },
	{ 0x05bf, 0x05bf }, { 0x05c1, 0x05c2 }, { 0x05c4, 0x05c5 },
	{ 0x05c7, 0x05c7 }, { 0x0610, 0x061a }, { 0x061c, 0x061c },
	{ 0x064b, 0x065f }, { 0x0670, 0x0670 }, { 0x06d6, 0x06dc },
	{ 0x06df, 0x06e4 }, { 0x06e7, 0x06e8 }, { 0x06ea, 0x06ed },
	{ 0x0711, 0x0711 }, { 0x0730, 0x074a }, { 0x07a6, 0x07b0 },
	{ 0x07eb, 0x07f3 }, { 0x0816, 0x082d }, { 0x0859, 0x085b },
	{ 0x0898, 0x089f }, { 0x08ca, 0x0902 }, { 0x093a, 0x093a },
	{ 0x093c, 0x093c }, { 0x0941, 0x0948 }, { 0x094d, 0x094d },
	{ 0x0951, 0x0957 }, { 0x0962, 0x0963 }, { 0x0981, 0x0981 },
	{ 0x09bc, 0x09bc }, { 0x09c1, 0x09c4 }, { 0x09cd, 0x09cd },
	{ 0x09e2, 0x09e3 }, { 0x0a01, 0x0a02 }, { 0x0a3c, 0x0a3c },
	{ 0x0a41, 0x0a51 }, { 0x0a70, 0x0a71 }, { 0x0a75, 0x0a75 },
	{ 0x0a81, 0x0a82 }, { 0x0abc, 0x0abc }, { 0x0ac1, 0x0ac8 },
	{ 0x0acd, 0x0acd }, { 0x0ae2, 0x0ae3 }, { 0x0b01, 0x0b01 },
	{ 0x0b3c, 0x0b3c }, { 0x0b3f, 0x0b3f }, { 0x0b41, 0x0b44 },
	{ 0x0b4d, 0x0b4d }, { 0x0b55, 0x0b56 }, { 0x0b62, 0x0b63 },
	{ 0x0b82, 0x0b82 }, { 0x0bc0, 0x0bc0 }, { 0x0bcd, 0x0bcd },
	{ 0x0c00, 0x0c00 }, { 0x0c04, 0x0c04 }, { 0x0c3c, 0x0c3c },
	{ 0x0c3e, 0x0c40 }, { 0x0c46, 0x0c56 }, { 0x0c62, 0x0c63 },
	{ 0x0c81, 0x0c81 }, { 0x0cbc, 0x0cbc }, { 0x0ccc, 0x0ccd },
	{ 0x0ce2, 0x0ce3 }, { 0x0d00, 0x0d01 }, { 0x0d3b, 0x0d3c },
	{ 0x0d41, 0x0d44 }, { 0x0d4d, 0x0d4d }, { 0x0d62, 0x0d63 },
	{ 0x0dca, 0x0dca }, { 0x0dd2, 0x0dd6 }, { 0x0e31, 0x0e31 },
	{ 0x0e34, 0x0e3a }, { 0x0e47, 0x0e4e }, { 0x0eb1, 0x0eb1 },
	{ 0x0eb4, 0x0ebc }, { 0x0ec8, 0x0ece }, { 0x0f18, 0x0f19 },
	{ 0x0f35, 0x0f35 }, { 0x0f37, 0x0f37 }, { 0x0f39, 0x0f39 },
	{ 0x0f71, 0x0f7e }, { 0x0f80, 0x0f84 }, { 0x0f86, 0x0f87 },
	{ 0x0f8d, 0x0fbc }, { 0x0fc6, 0x0fc6 }, { 0x102d, 0x1030 },
	{ 0x1032, 0x1037 }, { 0x1039, 0x103a }, { 0x103d, 0x103e },
	{ 0x1058, 0x1059 }, { 0x105e, 0x1060 }, { 0x1071, 0x1074 },
	{ 0x1082, 0x1082 }, { 0x1085, 0x1086 }, { 0x108d, 0x108d },
	{ 0x109d, 0x109d }, { 0x1160, 0x11ff }, { 0x135d, 0x135f },
	{ 0x1712, 0x1714 }, { 0x1732, 0x1733 }, { 0x1752, 0x1753 },
	{ 0x1772, 0x1773 }, { 0x17b4, 0x17b5 }, { 0x17b7, 0x17bd },
	{ 0x17c6, 0x17c6 }, { 0x17c9, 0x17d3 }, { 0x17dd, 0x17dd },
	{ 0x180b, 0x180f }, { 0x1885, 0x1886 }, { 0x18a9, 0x18a9 },
	{ 0x1920, 0x1922 }, { 0x1927, 0x1928 }, { 0x1932, 0x1932 },
	{ 0x1939, 0x193b }, { 0x1a17, 0x1a18 }, { 0x1a1b, 0x1a1b },
	{ 0x1a56, 0x1a56 }, { 0x1a58, 0x1a60 }, { 0x1a62, 0x1a62 },
	{ 0x1a65, 0x1a6c }, { 0x1a73, 0x1a7f }, { 0x1ab0, 0x1aff },
	{ 0x1b00, 0x1b03 }, { 0x1b34, 0x1b34 }, { 0x1b36, 0x1b3a },
	{ 0x1b3c, 0x1b3c }, { 0x1b42, 0x1b42 }, { 0x1b6b, 0x1b73 },
	{ 0x1b80, 0x1b81 }, { 0x1ba2, 0x1ba5 }, { 0x1ba8, 0x1ba9 },
	{ 0x1bab, 0x1bad }, { 0x1be6, 0x1be6 }, { 0x1be8, 0x1be9 },
	{ 0x1bed, 0x1bed }, { 0x1bef, 0x1bf1 }, { 0x1c2c, 0x1c33 },
	{ 0x1c36, 0x1c37 }, { 0x1cd0, 0x1cd2 }, { 0x1cd4, 0x1ce0 },
	{ 0x1ce2, 0x1ce8 }, { 0x1ced, 0x1ced }, { 0x1cf4, 0x1cf4 },
	{ 0x1cf8, 0x1cf9 }, { 0x1dc0, 0x1dff }, { 0x200b, 0x200f },
	{ 0x202a, 0x202e }, { 0x2060, 0x2064 }, { 0x2066, 0x206f },
	{ 0x20d0, 0x20f0 }, { 0x2cef, 0x2cf1 }, { 0x2d7f, 0x2d7f },
	{ 0x2de0, 0x2dff }, { 0x302a, 0x302d }, { 0x3099, 0x309a },
	{ 0xa66f, 0xa672 }, { 0xa674, 0xa67d }, { 0xa69e, 0xa69f },
	{ 0xa6f0, 0xa6f1 }, { 0xa802, 0xa802 }, { 0xa806, 0xa806 },
	{ 0xa80b, 0xa80b }, { 0xa825, 0xa826 }, { 0xa8c4, 0xa8c5 },
	{ 0xa8e0, 0xa8f1 }, { 0xa8ff, 0xa8ff }, { 0xa926, 0xa92d },
	{ 0xa947, 0xa951 }, { 0xa980, 0xa982 }, { 0xa9b3, 0xa9b3 },
	{ 0xa9b6, 0xa9b9 }, { 0xa9bc, 0xa9bd }, { 0xa9e5, 0xa9e5 },
	{ 0xaa29, 0xaa2e }, { 0xaa31, 0xaa32 }, { 0xaa35, 0xaa36 },
	{ 0xaa43, 0xaa43 }, { 0xaa4c, 0xaa4c }, { 0xaa7c, 0xaa7c },
	{ 0xaab0, 0xaab0 }, { 0xaab2, 0xaab4 }, { 0xaab7, 0xaab8 },
	{ 0xaabe, 0xaabf }, { 0xaac1, 0xaac1 }, { 0xaaec, 0xaaed },
	{ 0xaaf6, 0xaaf6 }, { 0xabe5, 0xabe5 }, { 0xabe8, 0xabe8 },
	{ 0xabed, 0xabed }, { 0xd7b0, 0xd7ff }, { 0xfb1e, 0xfb1e },
	{ 0xfe00, 0xfe0f }, { 0xfe20, 0xfe2f }, { 0xfeff, 0xfeff },
	{ 0x101fd, 0x101fd }, { 0x10376, 0x1037a }, { 0x10a01, 0x10a0f },
	{ 0x10a38, 0x10a3f }, { 0x11001, 0x11001 }, { 0x11038, 0x11046 },
	{ 0x1107f, 0x11081 }, { 0x110b3, 0x110b6 }, { 0x110b9, 0x110ba },
	{ 0x11100, 0x11102 }, { 0x11127, 0x1112b }, { 0x1112d, 0x11134 },
	{ 0x1d167, 0x1d169 }, { 0x1d17b, 0x1d182 }, { 0x1d185, 0x1d18b },
	{ 0x1d1aa, 0x1d1ad }, { 0x1e000, 0x1e02a }, { 0x1e8d0, 0x1e8d6 },
	{ 0x1e944, 0x1e94a }, { 0x1f3fb, 0x1f3ff }, { 0xe0000, 0xe0fff },
};

/* Two columns: East Asian Wide and Fullwidth, and emoji presented as
 * pictures by default. */
static const struct uc_range uc_wide[] = {
	{ 0x1100, 0x115f }, { 0x231a, 0x231b }, { 0x2329, 0x232a },
	{ 0x23e9, 0x23ec }, { 0x23f0, 0x23f0 }, { 0x23f3, 0x23f3 },
	{ 0x25fd, 0x25fe }, { 0x2614, 0x2615 }, { 0x2648, 0x2653 },
	{ 0x267f, 0x267f }, { 0x2693, 0x2693 }, { 0x26a1, 0x26a1 },
	{ 0x26aa, 0x26ab }, { 0x26bd, 0x26be }, { 0x26c4, 0x26c5 },
	{ 0x26ce, 0x26ce }, { 0x26d4, 0x26d4 }, { 0x26ea, 0x26ea },
	{ 0x26f2, 0x26f3 }, { 0x26f5, 0x26f5 }, { 0x26fa, 0x26fa },
	{ 0x26fd, 0x26fd }, { 0x2705, 0x2705 }, { 0x270a, 0x270b },
	{ 0x2728, 0x2728 }, { 0x274c, 0x274c }, { 0x274e, 0x274e },
	{ 0x2753, 0x2755 }, { 0x2757, 0x2757 }, { 0x2795, 0x2797 },
	{ 0x27b0, 0x27b0 }, { 0x27bf, 0x27bf }, { 0x2b1b, 0x2b1c },
	{ 0x2b50, 0x2b50 }, { 0x2b55, 0x2b55 }, { 0x2e80, 0x303e },
	{ 0x3041, 0x33ff }, { 0x3400, 0x4dbf }, { 0x4e00, 0x9fff },
	{ 0xa000, 0xa4cf }, { 0xa960, 0xa97f }, { 0xac00, 0xd7a3 },
	{ 0xf900, 0xfaff }, { 0xfe10, 0xfe19 }, { 0xfe30, 0xfe6f },
	{ 0xff00, 0xff60 }, { 0xffe0, 0xffe6 }, { 0x16fe0, 0x16fe4 },
	{ 0x17000, 0x18cff }, { 0x1b000, 0x1b2ff }, { 0x1f004, 0x1f004 },
	{ 0x1f0cf, 0x1f0cf }, { 0x1f18e, 0x1f18e }, { 0x1f191, 0x1f19a },
	{ 0x1f200, 0x1f202 }, { 0x1f210, 0x1f23b }, { 0x1f240, 0x1f248 },
	{ 0x1f250, 0x1f251 }, { 0x1f260, 0x1f265 }, { 0x1f300, 0x1f320 },
	{ 0x1f32d, 0x1f335 }, { 0x1f337, 0x1f37c }, { 0x1f37e, 0x1f393 },
	{ 0x1f3a0, 0x1f3ca }, { 0x1f3cf, 0x1f3d3 }, { 0x1f3e0, 0x1f3f0 },
	{ 0x1f3f4, 0x1f3f4 }, { 0x1f3f8, 0x1f3fa }, { 0x1f400, 0x1f43e },
	{ 0x1f440, 0x1f440 }, { 0x1f442, 0x1f4fc }, { 0x1f4ff, 0x1f53d },
	{ 0x1f54b, 0x1f54e }, { 0x1f550, 0x1f567 }, { 0x1f57a, 0x1f57a },
	{ 0x1f595, 0x1f596 }, { 0x1f5a4, 0x1f5a4 }, { 0x1f5fb, 0x1f64f },
	{ 0x1f680, 0x1f6c5 }, { 0x1f6cc, 0x1f6cc }, { 0x1f6d0, 0x1f6d2 },
	{ 0x1f6d5, 0x1f6d7 }, { 0x1f6dc, 0x1f6df }, { 0x1f6eb, 0x1f6ec },
	{ 0x1f6f4, 0x1f6fc }, { 0x1f7e0, 0x1f7eb }, { 0x1f7f0, 0x1f7f0 },
	{ 0x1f90c, 0x1f93a }, { 0x1f93c, 0x1f945 }, { 0x1f947, 0x1f9ff },
	{ 0x1fa70, 0x1faff }, { 0x20000, 0x2fffd }, { 0x30000, 0x3fffd },
};

/* Is c in the sorted range table t? */
static bool
uc_in(uint32_t c, const struct uc_range *t, size_t n)
{
	size_t	 lo = 0, hi = n;

	if (n == 0 || c < t[0].lo || c > t[n - 1].hi)
		return false;
	while (lo < hi) {
		size_t	 mid = lo + (hi - lo) / 2;

		if (c > t[mid].hi)
			lo = mid + 1;
		else if (c < t[mid].lo)
			hi = mid;
		else
			return true;
	}
	return false;
}

size_t
utf8_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 len = strlen(s), w = 0, n;
	uint32_t	 cp;

	for (size_t i = 0; i < len; i += n) {
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0) {
			n = 1;		/* an invalid byte: one column */
			w++;
		} else if (uc_in(cp, uc_zero, sizeof(uc_zero) /
		    sizeof(uc_zero[0])))
			continue;
		else if (uc_in(cp, uc_wide, sizeof(uc_wide) /
		    sizeof(uc_wide[0])))
			w += 2;
		else
			w++;
	}
	return w;
}

/*
 * The surname: the last white-space-separated word of full_name (trailing
 * white space ignored), or the whole name when it has one word.  Returns a
 * malloc'd string (empty for an empty name), NULL if out of memory.
 */
char *
name_surname(const char *full_name)
{
	const unsigned char *p = (const unsigned char *)full_name;
	size_t		 len = strlen(full_name), n;
	size_t		 word = 0, end = 0;	/* last word: [word, end) */
	bool		 in_word = false;
	uint32_t	 cp;

	for (size_t i = 0; i < len; i += n) {
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0) {
			n = 1;
			cp = 0xfffd;	/* not a space */
		}
		if (uc_is_space(cp)) {
			in_word = false;
			continue;
		}
		if (!in_word) {
			in_word = true;
			word = i;
		}
		end = i + n;
	}
	return strndup(full_name + word, end - word);
}
