/*
 * fuzz_cursor.c - libFuzzer target for user.list's cursor decoder.
 *
 * It calls daemon/cursor.c's entry points (linked from the daemon's
 * objects) as user.list does.
 *
 * The first input byte picks a mode:
 *   0: the rest, as a string, is a cursor from a client: cursor_read
 *      must reject it (a forged cursor cannot carry a valid MAC) or, on
 *      the vanishingly rare accept, yield a valid username;
 *   1: the rest is a username and a filter: if the username is valid, the
 *      cursor made for it reads back to exactly it under the same filter
 *      and is refused under another;
 *   2: a valid cursor is made, then edited as the rest of the input says
 *      (pairs of position, byte): any change must be refused;
 *   3: base64url: decode(encode(x)) == x, and decode accepts only the
 *      canonical spelling.
 *
 * Built by `make fuzz` with -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

struct daemon	 D;	/* what otasdird.c would define */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *
fuzz_str(const uint8_t *data, size_t size)
{
	char	*s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static void
mode_forged(const uint8_t *data, size_t size)
{
	char	 after[USERNAME_MAX + 1];
	char	*s = fuzz_str(data, size);

	if (cursor_read(s, 0, after) == NULL &&
	    valid_username(after, strlen(after)) != NULL)
		abort();
	free(s);
}

static void
mode_roundtrip(const uint8_t *data, size_t size)
{
	char		 cur[CURSOR_B64_MAX + 1], after[USERNAME_MAX + 1];
	uint64_t	 filter = 0;
	char		*u;

	if (size < 8)
		return;
	for (int i = 0; i < 8; i++)
		filter = filter << 8 | data[i];
	u = fuzz_str(data + 8, size - 8);
	if (valid_username(u, strlen(u)) == NULL) {
		cursor_make(u, filter, cur);
		if (strlen(cur) > CURSOR_B64_MAX)
			abort();
		if (cursor_read(cur, filter, after) != NULL ||
		    strcmp(after, u) != 0)
			abort();
		if (cursor_read(cur, filter ^ 1, after) == NULL)
			abort();
	}
	free(u);
}

static void
mode_edited(const uint8_t *data, size_t size)
{
	char	 cur[CURSOR_B64_MAX + 1], orig[CURSOR_B64_MAX + 1];
	char	 after[USERNAME_MAX + 1];
	size_t	 len;

	cursor_make("alice.example-01", 42, cur);
	memcpy(orig, cur, sizeof(cur));
	len = strlen(cur);
	for (size_t i = 0; i + 1 < size; i += 2) {
		size_t	 pos = data[i] % (len + 1);

		if (data[i + 1] == 0) {
			cur[pos] = '\0';	/* truncate */
			len = pos;
		} else if (pos < len)
			cur[pos] = (char)data[i + 1];
	}
	if (strcmp(cur, orig) != 0 && cursor_read(cur, 42, after) == NULL)
		abort();
}

static void
mode_b64(const uint8_t *data, size_t size)
{
	uint8_t	 back[CURSOR_MAX];
	char	 enc[(CURSOR_MAX * 4 + 2) / 3 + 1];
	char	*s;
	int	 n;

	if (size > CURSOR_MAX)
		size = CURSOR_MAX;
	cursor_b64_encode(data, size, enc);
	n = cursor_b64_decode(enc, back, sizeof(back));
	if (n < 0 || (size_t)n != size || memcmp(back, data, size) != 0)
		abort();
	/* Any string that decodes must re-encode to itself. */
	s = fuzz_str(data, size);
	n = cursor_b64_decode(s, back, sizeof(back));
	if (n >= 0) {
		cursor_b64_encode(back, (size_t)n, enc);
		if (strcmp(enc, s) != 0)
			abort();
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0:
		mode_forged(data + 1, size - 1);
		break;
	case 1:
		mode_roundtrip(data + 1, size - 1);
		break;
	case 2:
		mode_edited(data + 1, size - 1);
		break;
	case 3:
		mode_b64(data + 1, size - 1);
		break;
	}
	return 0;
}
