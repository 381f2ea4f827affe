/*
 * fuzz_valid.c - libFuzzer target for valid.c and esc.c: every check and
 * escaper runs on the input, and the properties the rest of the daemon
 * relies on are asserted:
 *
 *   - an accepted username, email or name is valid UTF-8 without NUL;
 *   - an accepted username needs no DN or filter escaping at all;
 *   - esc_dn_value output parses back (ldap_str2dn) to exactly the input,
 *     as one AVA of one RDN, for any NUL-free valid UTF-8;
 *   - esc_filter_value output has no bare * ( ) or NUL, and each
 *     backslash starts a hex pair;
 *   - utf8_width is at most two columns per byte.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       -Isrc -Idaemon -I/usr/include/cjson tests/fuzz/fuzz_valid.c \
 *       src/valid.c daemon/esc.c -lldap -llber -o fuzz_valid
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

struct daemon	 D;	/* user_dn reads D.cfg->people_dn */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* esc_dn_value(s) must parse back to exactly s. */
static void
check_dn_roundtrip(const char *s, size_t len)
{
	char	*esc, *dn;
	LDAPDN	 d = NULL;

	if ((esc = esc_dn_value(s, len)) == NULL)
		abort();
	if (asprintf(&dn, "uid=%s,ou=people,dc=example,dc=com", esc) < 0)
		abort();
	if (ldap_str2dn(dn, &d, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    d == NULL || d[0] == NULL || d[0][1] != NULL ||
	    d[0][0]->la_value.bv_len != len ||
	    memcmp(d[0][0]->la_value.bv_val, s, len) != 0 ||
	    d[1] == NULL || d[2] == NULL || d[3] == NULL || d[4] != NULL)
		abort();
	ldap_dnfree(d);
	free(dn);
	free(esc);
}

static void
check_filter(const char *s, size_t len)
{
	char	*f = esc_filter_value(s, len);

	if (f == NULL)
		abort();
	for (size_t i = 0; f[i] != '\0'; i++) {
		if (f[i] == '*' || f[i] == '(' || f[i] == ')')
			abort();
		if (f[i] == '\\') {
			if (!is_hex(f[i + 1]) || !is_hex(f[i + 2]))
				abort();
			i += 2;
		}
	}
	free(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg cfg;
	const char	*s = (const char *)data;
	char		*z, *t;
	bool		 utf8 = utf8_valid(s, size);
	bool		 nul = memchr(s, '\0', size) != NULL;

	cfg.people_dn = (char *)(uintptr_t)"ou=people,dc=example,dc=com";
	D.cfg = &cfg;

	if (valid_username(s, size) == NULL) {
		if (size == 0 || size > USERNAME_MAX || !utf8 || nul)
			abort();
		if ((t = esc_dn_value(s, size)) == NULL ||
		    strlen(t) != size || memcmp(t, s, size) != 0)
			abort();
		free(t);
		if ((t = esc_filter_value(s, size)) == NULL ||
		    strlen(t) != size)
			abort();
		free(t);
	}
	if (valid_email(s, size) == NULL && (!utf8 || nul || size > EMAIL_MAX))
		abort();
	if (valid_full_name(s, size) == NULL &&
	    (!utf8 || nul || size == 0 || size > FULLNAME_MAX))
		abort();
	if (valid_search(s, size) == NULL && (!utf8 || nul))
		abort();
	if (valid_password(s, size) == NULL &&
	    (nul || size < PASSWORD_MIN || size > PASSWORD_MAX))
		abort();
	(void)valid_status(s, size);
	(void)valid_role(s, size);

	check_filter(s, size);
	if (utf8 && !nul)
		check_dn_roundtrip(s, size);
	else
		free(esc_dn_value(s, size));

	/* The NUL-terminated helpers see the input up to its first NUL. */
	if ((z = malloc(size + 1)) == NULL)
		abort();
	memcpy(z, s, size);
	z[size] = '\0';
	if (utf8_width(z) > 2 * strlen(z))
		abort();
	if ((t = name_surname(z)) == NULL || strlen(t) > strlen(z) ||
	    (strlen(t) > 0 && strstr(z, t) == NULL))
		abort();
	free(t);
	if (valid_username(z, strlen(z)) == NULL) {
		if ((t = user_dn(z)) == NULL)
			abort();
		free(t);
	}
	free(z);
	return 0;
}
