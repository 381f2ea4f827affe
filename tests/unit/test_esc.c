/*
 * test_esc.c - unit tests of esc.c: the exact escaping of every special
 * character, and a round trip through libldap's own DN parser proving
 * that an escaped value parses back to exactly the original bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "otasdird.h"

struct daemon	 D;	/* unit tests link every daemon file but main's */

struct ecase {
	const char	*in;
	size_t		 len;	/* SIZE_MAX: strlen(in) */
	const char	*want;
};

#define E(in, want)		{ (in), SIZE_MAX, (want) }
#define EN(in, n, want)		{ (in), (n), (want) }

static size_t
ecase_len(const struct ecase *c)
{
	return c->len == SIZE_MAX ? strlen(c->in) : c->len;
}

static const struct ecase dn_cases[] = {
	E("alice", "alice"),
	E("", ""),
	E("a,b", "a\\,b"),
	E("a+b", "a\\+b"),
	E("a\"b", "a\\\"b"),
	E("a\\b", "a\\\\b"),
	E("a<b>", "a\\<b\\>"),
	E("a;b", "a\\;b"),
	E("a=b", "a\\=b"),
	E("#a", "\\#a"),
	E("a#", "a#"),
	E("##", "\\##"),
	E(" a", "\\ a"),
	E("a ", "a\\ "),
	E("a b", "a b"),
	E(" ", "\\ "),
	E("  ", "\\ \\ "),
	E("   ", "\\  \\ "),
	E(" # ", "\\ #\\ "),
	E("x,ou=people", "x\\,ou\\=people"),
	E("a*)(uid=*", "a*)(uid\\=*"),
	E("a\nb", "a\\0ab"),
	E("a\x7f", "a\\7f"),
	E("a\x01", "a\\01"),
	EN("a\0b", 3, "a\\00b"),
	E("Zo\xc3\xab", "Zo\xc3\xab"),
	E("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"),
	E(",+\"\\<>;=", "\\,\\+\\\"\\\\\\<\\>\\;\\="),
};

static const struct ecase filter_cases[] = {
	E("alice", "alice"),
	E("", ""),
	E("*", "\\2a"),
	E("(", "\\28"),
	E(")", "\\29"),
	E("\\", "\\5c"),
	EN("\0", 1, "\\00"),
	E("a*)(uid=*", "a\\2a\\29\\28uid=\\2a"),
	E("*)(|(objectClass=*", "\\2a\\29\\28|\\28objectClass=\\2a"),
	E("x,ou=people", "x,ou=people"),
	E("Zo\xc3\xab", "Zo\xc3\xab"),
	EN("a\0*", 3, "a\\00\\2a"),
	E("\\2a", "\\5c2a"),
	E("a b\n", "a b\n"),
};

static void
test_dn_value(void **state)
{
	for (size_t i = 0; i < nitems(dn_cases); i++) {
		const struct ecase *c = &dn_cases[i];
		char	*got = esc_dn_value(c->in, ecase_len(c));

		assert_non_null(got);
		if (strcmp(got, c->want) != 0)
			fail_msg("esc_dn_value case %zu: want [%s], got [%s]",
			    i, c->want, got);
		free(got);
	}
}

static void
test_filter_value(void **state)
{
	for (size_t i = 0; i < nitems(filter_cases); i++) {
		const struct ecase *c = &filter_cases[i];
		char	*got = esc_filter_value(c->in, ecase_len(c));

		assert_non_null(got);
		if (strcmp(got, c->want) != 0)
			fail_msg("esc_filter_value case %zu: want [%s], got "
			    "[%s]", i, c->want, got);
		free(got);
	}
}

/*
 * Parse "uid=<escaped>,ou=people,dc=example,dc=com" with ldap_str2dn and
 * check that the first RDN is exactly one AVA, uid, whose value is the
 * original bytes, and that the rest of the DN is untouched.
 */
static void
roundtrip(const char *v, size_t len)
{
	char	*esc, *dn;
	LDAPDN	 d = NULL;
	LDAPAVA	*ava;
	int	 rc;

	assert_non_null(esc = esc_dn_value(v, len));
	assert_true(asprintf(&dn, "uid=%s,ou=people,dc=example,dc=com",
	    esc) > 0);
	rc = ldap_str2dn(dn, &d, LDAP_DN_FORMAT_LDAPV3);
	if (rc != LDAP_SUCCESS)
		fail_msg("ldap_str2dn(%s): %s", dn, ldap_err2string(rc));
	assert_non_null(d);
	assert_non_null(d[0]);
	assert_non_null(ava = d[0][0]);
	assert_null(d[0][1]);		/* one AVA: no '+' got through */
	assert_int_equal(ava->la_attr.bv_len, 3);
	assert_memory_equal(ava->la_attr.bv_val, "uid", 3);
	if (ava->la_value.bv_len != len ||
	    (len > 0 && memcmp(ava->la_value.bv_val, v, len) != 0))
		fail_msg("round trip of [%s] gave [%.*s]", esc,
		    (int)ava->la_value.bv_len, ava->la_value.bv_val);
	/* Three more RDNs, nothing injected. */
	assert_non_null(d[1]);
	assert_non_null(d[2]);
	assert_non_null(d[3]);
	assert_null(d[4]);
	assert_memory_equal(d[1][0]->la_value.bv_val, "people", 6);
	ldap_dnfree(d);
	free(dn);
	free(esc);
}

static void
test_dn_roundtrip(void **state)
{
	static const char *const more[] = {
		"a,ou=admins,dc=evil", "x+cn=root", "\"quoted\"", "#23",
		"  two leading", "two trailing  ", " \\ ", "=", "==", "<>;",
		"uid=x", "a\tb", "\xc3\xa9mile \xe6\x97\xa5", "#", "##a ",
	};
	char	 all[256];

	for (size_t i = 0; i < nitems(dn_cases); i++)
		if (dn_cases[i].len == SIZE_MAX && *dn_cases[i].in != '\0')
			roundtrip(dn_cases[i].in, strlen(dn_cases[i].in));
	for (size_t i = 0; i < nitems(more); i++)
		roundtrip(more[i], strlen(more[i]));
	/* Every printable ASCII character, in one value and one by one. */
	for (int c = 0x20; c < 0x7f; c++) {
		char	 one[2] = { (char)c, '\0' };

		all[c - 0x20] = (char)c;
		roundtrip(one, 1);
	}
	roundtrip(all, 0x7f - 0x20);
	/* Control characters, hex-escaped (NUL aside: libldap refuses a
	 * NUL in a value, which is what we want anyway). */
	for (int c = 1; c < 0x20; c++) {
		char	 v[3] = { 'a', (char)c, 'b' };

		roundtrip(v, 3);
	}
}

static void
test_user_dn(void **state)
{
	struct cfg	 cfg;
	char		*dn;

	memset(&cfg, 0, sizeof(cfg));
	cfg.people_dn = (char *)(uintptr_t)"ou=people,dc=example,dc=com";
	D.cfg = &cfg;
	assert_non_null(dn = user_dn("alice"));
	assert_string_equal(dn, "uid=alice,ou=people,dc=example,dc=com");
	free(dn);
	assert_non_null(dn = user_dn("x,ou=admins"));
	assert_string_equal(dn,
	    "uid=x\\,ou\\=admins,ou=people,dc=example,dc=com");
	free(dn);
	assert_non_null(dn = user_dn(" a+b "));
	assert_string_equal(dn, "uid=\\ a\\+b\\ ,ou=people,dc=example,dc=com");
	free(dn);
	D.cfg = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dn_value),
		cmocka_unit_test(test_filter_value),
		cmocka_unit_test(test_dn_roundtrip),
		cmocka_unit_test(test_user_dn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
