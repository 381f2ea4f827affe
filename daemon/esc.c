/*
 * esc.c - escaping for DNs (RFC 4514) and search filters (RFC 4515).
 *
 * Nothing a client sends reaches a DN or a filter without passing through
 * here.  Both escapers work on bytes and leave UTF-8 (bytes >= 0x80)
 * alone; callers validate text before it gets this far.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

static const char esc_hex[] = "0123456789abcdef";

/* Room for len bytes escaped as "\xx" each, plus the NUL; 0 on overflow. */
static size_t
esc_size(size_t len)
{
	if (len > (SIZE_MAX - 1) / 3)
		return 0;
	return len * 3 + 1;
}

/*
 * RFC 4514 section 2.4: escape '"' '+' ',' ';' '<' '>' '\' (and '=',
 * which is allowed and keeps the value unambiguous to lax parsers) with a
 * backslash; a leading ' ' or '#' and a trailing ' ' likewise; NUL and the
 * other control characters as hex pairs.  Returns a malloc'd string or
 * NULL if out of memory.
 */
char *
esc_dn_value(const char *s, size_t len)
{
	char	*out, *o;
	size_t	 size;

	if ((size = esc_size(len)) == 0 || (out = malloc(size)) == NULL)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			*o++ = '\\';
			*o++ = esc_hex[c >> 4];
			*o++ = esc_hex[c & 0xf];
			continue;
		}
		switch (c) {
		case '"': case '+': case ',': case ';': case '<': case '>':
		case '\\': case '=':
			*o++ = '\\';
			break;
		case '#':
			if (i == 0)
				*o++ = '\\';
			break;
		case ' ':
			if (i == 0 || i == len - 1)
				*o++ = '\\';
			break;
		default:
			break;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/*
 * RFC 4515 section 3: escape '*' '(' ')' '\' and NUL as \2a \28 \29 \5c
 * \00.  Returns a malloc'd string or NULL if out of memory.
 */
char *
esc_filter_value(const char *s, size_t len)
{
	char	*out, *o;
	size_t	 size;

	if ((size = esc_size(len)) == 0 || (out = malloc(size)) == NULL)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
			*o++ = '\\';
			*o++ = esc_hex[c >> 4];
			*o++ = esc_hex[c & 0xf];
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/*
 * The DN of an account: "uid=<escaped username>,<people_dn>" under the
 * current configuration.  Returns a malloc'd string or NULL if out of
 * memory.
 */
char *
user_dn(const char *username)
{
	char	*v, *dn;

	if ((v = esc_dn_value(username, strlen(username))) == NULL)
		return NULL;
	if (asprintf(&dn, "uid=%s,%s", v, D.cfg->people_dn) < 0)
		dn = NULL;
	free(v);
	return dn;
}
