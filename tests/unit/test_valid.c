/*
 * test_valid.c - unit tests of valid.c: every check against a table of
 * good and hostile values, with the exact message a client would see.
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

typedef const char *check_fn(const char *, size_t);

struct vcase {
	const char	*s;
	size_t		 len;	/* SIZE_MAX: strlen(s) */
	const char	*want;	/* NULL: accepted */
};

#define OK(s)		{ (s), SIZE_MAX, NULL }
#define BAD(s, m)	{ (s), SIZE_MAX, (m) }
#define BADN(s, n, m)	{ (s), (n), (m) }	/* with NULs inside */

/* Run fn over every case; report every mismatch, then fail. */
static void
run_cases(const char *name, check_fn *fn, const struct vcase *v, size_t n)
{
	int	 failed = 0;

	for (size_t i = 0; i < n; i++) {
		size_t		 len = v[i].len == SIZE_MAX ? strlen(v[i].s) :
				    v[i].len;
		const char	*got = fn(v[i].s, len);

		if ((got == NULL) != (v[i].want == NULL) ||
		    (got != NULL && strcmp(got, v[i].want) != 0)) {
			print_error("%s case %zu (%.*s): want %s, got %s\n",
			    name, i, (int)(len > 40 ? 40 : len), v[i].s,
			    v[i].want ? v[i].want : "ok", got ? got : "ok");
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

#define RUN(fn, cases) run_cases(#fn, fn, cases, nitems(cases))

/* A string of n copies of c (static buffer, one at a time). */
static const char *
rep(char c, size_t n)
{
	static char	 buf[1024];

	assert_true(n < sizeof(buf));
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static const char umsg[] = "must be 1-64 characters of A-Z a-z 0-9 . _ -, "
    "starting with a letter or digit";

static void
test_username(void **state)
{
	static char	 u64[65], u65[66];
	const struct vcase cases[] = {
		OK("a"), OK("alice"), OK("Alice.Smith_2-x"), OK("0day"),
		OK("a."), OK("a-"), OK(u64),
		BAD("", umsg), BAD(u65, umsg),
		BAD("a*)(uid=*", umsg), BAD("x,ou=people", umsg),
		BAD(" alice", umsg), BAD("alice ", umsg), BAD("al ice", umsg),
		BAD("ali\nce", umsg), BAD(".alice", umsg), BAD("_alice", umsg),
		BAD("-alice", umsg), BAD("zo\xc3\xab", umsg),
		BAD("\xc3\xa9mile", umsg), BAD("a\\b", umsg), BAD("a+b", umsg),
		BAD("a@b", umsg), BAD("a=b", umsg), BAD("#a", umsg),
		BADN("ab\0cd", 5, umsg),
	};

	memcpy(u64, rep('u', 64), 65);
	memcpy(u65, rep('u', 65), 66);
	RUN(valid_username, cases);
	assert_non_null(valid_username(NULL, 0));
}

static void
test_email(void **state)
{
	static char	 e254[255], e255[256];
	const struct vcase cases[] = {
		OK("a@b"), OK("alice@example.com"), OK("a.b+tag@x.y"),
		OK("j\xc3\xbcrgen@m\xc3\xbcller.de"), OK(e254),
		BAD("", "must not be empty"),
		BAD("alice.example.com", "must contain exactly one @"),
		BAD("a@b@c", "must contain exactly one @"),
		BAD("@example.com", "must have text before and after the @"),
		BAD("alice@", "must have text before and after the @"),
		BAD("@", "must have text before and after the @"),
		BAD("al ice@example.com", "must not contain spaces"),
		BAD(" alice@example.com", "must not contain spaces"),
		BAD("alice@example.com\n", "must not contain spaces"),
		BAD("alice@exa\tmple.com", "must not contain spaces"),
		BAD("alice@\xc2\xa0x", "must not contain spaces"),
		BAD("alice@ex\x01.com", "must not contain control characters"),
		BAD("alice@ex\x7f.com", "must not contain control characters"),
		BADN("alice@ex\0.com", 13,
		    "must not contain control characters"),
		BAD("alice@ex\xff.com", "must be valid UTF-8"),
		BAD("alice@ex\xc0\x80.com", "must be valid UTF-8"),
		BAD(e255, "must be at most 254 bytes"),
	};

	memset(e254, 'a', 254);
	memcpy(e254 + 240, "@example.com", 12);
	e254[254] = '\0';
	memset(e255, 'a', 255);
	memcpy(e255 + 240, "@example.com", 12);
	e255[255] = '\0';
	assert_int_equal(strlen(e254), 254);
	RUN(valid_email, cases);
}

static void
test_full_name(void **state)
{
	static char	 n256[257], n257[258], cjk[257];
	const struct vcase cases[] = {
		OK("A"), OK("Ada Lovelace"), OK("Zo\xc3\xab \xc3\x9cnal"),
		OK("\xe5\xb1\xb1\xe7\x94\xb0 \xe5\xa4\xaa\xe9\x83\x8e"),
		OK("O'Brien-Smith, Jr."), OK("e\xcc\x81"), OK(n256), OK(cjk),
		OK("\xf0\x9f\x98\x80 emoji"), OK("a  b"),
		BAD("", "must not be empty"),
		BAD(n257, "must be at most 256 bytes"),
		BAD(" ", "must not start or end with a space"),
		BAD("   ", "must not start or end with a space"),
		BAD(" Ada", "must not start or end with a space"),
		BAD("Ada ", "must not start or end with a space"),
		BAD("\xe3\x80\x80" "Ada", "must not start or end with a space"),
		BAD("Ada\xc2\xa0", "must not start or end with a space"),
		BAD("A\x01" "da", "must not contain control characters"),
		BAD("Ada\x7f", "must not contain control characters"),
		BAD("Ada\tL", "must not contain control characters"),
		BAD("Ada\nL", "must not contain control characters"),
		BAD("Ada\xc2\x85L", "must not contain control characters"),
		BAD("Ada\xc2\x9bL", "must not contain control characters"),
		BAD("Ada\xe2\x80\xa8L", "must not contain control characters"),
		BAD("Ada\xe2\x80\xaeL", "must not contain control characters"),
		BAD("Ada\xe2\x81\xa6L", "must not contain control characters"),
		BADN("Ada\0L", 5, "must not contain control characters"),
		BAD("Ada\xc0\x80", "must be valid UTF-8"),
		BAD("Ada\xc1\xbf", "must be valid UTF-8"),
		BAD("Ada\xe0\x80\xaf", "must be valid UTF-8"),
		BAD("Ada\xf0\x80\x80\xaf", "must be valid UTF-8"),
		BAD("Ada\xed\xa0\x80", "must be valid UTF-8"),
		BAD("Ada\xed\xbf\xbf", "must be valid UTF-8"),
		BAD("Ada\xf4\x90\x80\x80", "must be valid UTF-8"),
		BAD("Ada\xf5\x80\x80\x80", "must be valid UTF-8"),
		BAD("Ada\xf8\x88\x80\x80\x80", "must be valid UTF-8"),
		BAD("Ada\xff", "must be valid UTF-8"),
		BAD("Ada\x80", "must be valid UTF-8"),
		BAD("Ada\xc3", "must be valid UTF-8"),
		BAD("Ada\xe6\x97", "must be valid UTF-8"),
		BAD("Ada\xf0\x9f\x98", "must be valid UTF-8"),
		BAD("\xe6\x97" "Ada", "must be valid UTF-8"),
		/* An encoding problem wins over a control character. */
		BAD("\x01\xff", "must be valid UTF-8"),
	};

	memcpy(n256, rep('n', 256), 257);
	memcpy(n257, rep('n', 257), 258);
	/* 85 three-byte characters and one byte: 256 bytes. */
	for (int i = 0; i < 85; i++)
		memcpy(cjk + i * 3, "\xe6\x97\xa5", 3);
	cjk[255] = 'x';
	cjk[256] = '\0';
	RUN(valid_full_name, cases);
}

static void
test_password(void **state)
{
	static char	 p256[257], p257[258];
	const struct vcase cases[] = {
		OK("12345678"), OK("correct horse battery staple"), OK(p256),
		OK(" leading and trailing "), OK("\xff\xfe binary \x01 ok"),
		BAD("", "must be 8-256 bytes"),
		BAD("1234567", "must be 8-256 bytes"),
		BAD(p257, "must be 8-256 bytes"),
		BADN("1234\0" "5678", 9, "must not contain NUL"),
	};

	memcpy(p256, rep('p', 256), 257);
	memcpy(p257, rep('p', 257), 258);
	RUN(valid_password, cases);
}

static void
test_status_role(void **state)
{
	const struct vcase status[] = {
		OK("active"), OK("inactive"),
		BAD("", "must be active or inactive"),
		BAD("Active", "must be active or inactive"),
		BAD("activ", "must be active or inactive"),
		BAD("active ", "must be active or inactive"),
		BADN("active\0", 7, "must be active or inactive"),
	};
	const struct vcase role[] = {
		OK("superadmin"), OK("user"),
		BAD("admin", "must be superadmin or user"),
		BAD("users", "must be superadmin or user"),
		BAD("", "must be superadmin or user"),
	};

	RUN(valid_status, status);
	RUN(valid_role, role);
}

static void
test_search(void **state)
{
	static char	 s256[257], s257[258];
	const struct vcase cases[] = {
		OK("a"), OK("ali*"), OK("(uid=*)"), OK(" spaced "), OK(s256),
		OK("\xe6\x97\xa5"),
		BAD("", "must be 1-256 bytes"),
		BAD(s257, "must be 1-256 bytes"),
		BAD("a\nb", "must not contain control characters"),
		BADN("a\0b", 3, "must not contain control characters"),
		BAD("a\xed\xa0\x80", "must be valid UTF-8"),
	};

	memcpy(s256, rep('s', 256), 257);
	memcpy(s257, rep('s', 257), 258);
	RUN(valid_search, cases);
}

static void
test_utf8_valid(void **state)
{
	static const struct {
		const char	*s;
		bool		 ok;
	} cases[] = {
		{ "", true }, { "plain", true }, { "\xc2\x80", true },
		{ "\xdf\xbf", true }, { "\xe0\xa0\x80", true },
		{ "\xed\x9f\xbf", true }, { "\xee\x80\x80", true },
		{ "\xef\xbf\xbf", true }, { "\xf0\x90\x80\x80", true },
		{ "\xf4\x8f\xbf\xbf", true },
		{ "\x80", false }, { "\xbf", false }, { "\xc0\x80", false },
		{ "\xc1\xbf", false }, { "\xc2", false }, { "\xc2\x41", false },
		{ "\xe0\x9f\xbf", false }, { "\xe0\xa0", false },
		{ "\xed\xa0\x80", false }, { "\xed\xbf\xbf", false },
		{ "\xf0\x8f\xbf\xbf", false }, { "\xf4\x90\x80\x80", false },
		{ "\xf5\x80\x80\x80", false }, { "\xf0\x90\x80", false },
		{ "\xfe", false }, { "\xff", false },
		{ "\xe2\x82\xac\xe2\x82", false },
	};

	for (size_t i = 0; i < nitems(cases); i++)
		if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("utf8_valid case %zu", i);
	/* NUL is a valid code point (the valid_* checks refuse it). */
	assert_true(utf8_valid("a\0b", 3));
	/* A truncated length cuts a sequence. */
	assert_false(utf8_valid("\xe2\x82\xac", 2));
}

static void
test_utf8_width(void **state)
{
	static const struct {
		const char	*s;
		size_t		 w;
	} cases[] = {
		{ "", 0 }, { "abc", 3 }, { "Zo\xc3\xab", 3 },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 6 },	/* 日本語 */
		{ "e\xcc\x81", 1 },				/* e + U+0301 */
		{ "\xf0\x9f\x98\x80", 2 },			/* U+1F600 */
		{ "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", 2 },	/* thumbs up,
								 * skin tone */
		{ "\xe2\x9c\x85", 2 },				/* U+2705 */
		{ "\xef\xbc\xa1", 2 },			/* fullwidth A */
		{ "\xed\x95\x9c\xea\xb5\xad", 4 },		/* 한국 */
		{ "a\xe2\x80\x8b" "b", 2 },			/* ZWSP */
		{ "\xe2\x9d\xa4\xef\xb8\x8f", 1 },	/* U+2764 VS16 */
		{ "a\xff" "b", 3 },				/* bad byte */
		{ "\xe6\x97", 2 },				/* truncated */
	};

	for (size_t i = 0; i < nitems(cases); i++)
		if (utf8_width(cases[i].s) != cases[i].w)
			fail_msg("utf8_width case %zu: want %zu, got %zu", i,
			    cases[i].w, utf8_width(cases[i].s));
}

static void
test_name_surname(void **state)
{
	static const struct {
		const char	*name, *sn;
	} cases[] = {
		{ "Ada Lovelace", "Lovelace" }, { "Cher", "Cher" },
		{ "Jean  Paul   Sartre  ", "Sartre" },
		{ "  Plato", "Plato" },
		{ "Zo\xc3\xab \xc3\x9cnal", "\xc3\x9cnal" },
		{ "\xe5\xb1\xb1\xe7\x94\xb0\xe3\x80\x80"
		    "\xe5\xa4\xaa\xe9\x83\x8e",
		    "\xe5\xa4\xaa\xe9\x83\x8e" },		/* U+3000 */
		{ "Ana\xc2\xa0" "Lima", "Lima" },		/* NBSP */
		{ "O'Brien-Smith", "O'Brien-Smith" },
		{ "", "" }, { "   ", "" },
	};

	for (size_t i = 0; i < nitems(cases); i++) {
		char	*sn = name_surname(cases[i].name);

		assert_non_null(sn);
		if (strcmp(sn, cases[i].sn) != 0)
			fail_msg("name_surname case %zu: want '%s', got '%s'",
			    i, cases[i].sn, sn);
		free(sn);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_username),
		cmocka_unit_test(test_email),
		cmocka_unit_test(test_full_name),
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_status_role),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_utf8_width),
		cmocka_unit_test(test_name_surname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
