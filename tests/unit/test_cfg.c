/*
 * test_cfg.c - unit tests of cfg.c: defaults, the example config, and the
 * exact "file:line: message" of every kind of bad file.
 *
 * Fixtures are written to a private mkdtemp directory, so the tests do not
 * depend on the working directory; conf/otasdird.yaml is found through
 * OTASDIR_SRCDIR if defined, otherwise relative to this file's path.
 */
#include <sys/stat.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "otasdird.h"

struct daemon	 D;	/* unit tests link every daemon file but main's */

static char	 tmpdir[64];

/* A config with the contract's keys; license.seats is on line 7 and the
 * ldap: key on line 1. */
#define BASE_LDAP \
	"ldap:\n" \
	"  uris: [ \"ldap://127.0.0.1:389\" ]\n" \
	"  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n" \
	"  bind_password_file: /etc/otasdir/bind.secret\n" \
	"  people_dn: \"ou=people,dc=example,dc=com\"\n"

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/otasdir-test-cfg-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Write data (len bytes) to tmpdir/name with mode; returns the path
 * (malloc'd). */
static char *
write_bytes(const char *name, const char *data, size_t len, mode_t mode)
{
	char	*path;
	FILE	*f;

	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	(void)unlink(path);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *
write_file(const char *name, const char *text)
{
	return write_bytes(name, text, strlen(text), 0644);
}

/* Load text as a config; the cfg on success, NULL (and errs) on failure. */
static struct cfg *
load_text(const char *text, int flags, struct cfg_errors *errs, char **pathp)
{
	struct cfg	*c = NULL;
	char		*path = write_file("t.yaml", text);

	if (cfg_load(path, flags, &c, errs) != 0)
		c = NULL;
	if (pathp != NULL)
		*pathp = path;
	else
		free(path);
	return c;
}

/* Load text and return the cfg, failing the test with the errors if it
 * does not load. */
static struct cfg *
load_ok(const char *text, int flags)
{
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c = load_text(text, flags, &errs, NULL);

	for (size_t i = 0; i < errs.n; i++)
		print_error("unexpected: %s\n", errs.v[i]);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	return c;
}

/* Assert that the errors for path are exactly want (each without the
 * leading path; NULL-terminated). */
static void
check_errors(const char *path, const struct cfg_errors *errs,
    const char *const *want)
{
	size_t	 n = 0;
	bool	 same;
	char	*full;

	while (want[n] != NULL)
		n++;
	same = errs->n == n;
	for (size_t i = 0; same && i < n; i++) {
		assert_true(asprintf(&full, "%s%s", path, want[i]) > 0);
		same = strcmp(errs->v[i], full) == 0;
		free(full);
	}
	if (!same) {
		for (size_t i = 0; i < n; i++)
			print_error("want: %s%s\n", path, want[i]);
		for (size_t i = 0; i < errs->n; i++)
			print_error("got:  %s\n", errs->v[i]);
	}
	assert_true(same);
}

/* Load text (with flags) and assert it fails with exactly want. */
static void
expect_errors(const char *text, int flags, const char *const *want)
{
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c;
	char		*path;

	c = load_text(text, flags, &errs, &path);
	assert_null(c);
	check_errors(path, &errs, want);
	cfg_errors_free(&errs);
	assert_int_equal(errs.n, 0);
	free(path);
}

#define EXPECT(text, ...) \
	expect_errors((text), 0, (const char *const[]){ __VA_ARGS__, NULL })

/* BASE_LDAP plus "license:\n  seats: <v>\n". */
static void
expect_seats(const char *v, const char *want)
{
	char	*text;

	assert_true(asprintf(&text, BASE_LDAP "license:\n  seats: %s\n",
	    v) > 0);
	EXPECT(text, want);
	free(text);
}

/* ------------------------------------------------------------------ */

static void
test_contract_keys_and_defaults(void **state)
{
	struct cfg	*c;
	char		*path;
	struct cfg_errors errs = { NULL, 0 };

	/* The contract's example, with an existing admin group. */
	c = load_text(
	    "socket:\n"
	    "  path: /run/otasdird/otasdird.sock\n"
	    "ldap:\n"
	    "  uris: [ \"ldap://127.0.0.1:389\" ]   # tried in order\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  bind_password_file: /etc/otasdir/bind.secret\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n"
	    "license:\n"
	    "  seats: 25\n"
	    "admins:\n"
	    "  uids: [ 0 ]\n"
	    "  groups: [ root ]\n"
	    "audit:\n"
	    "  path: /var/log/otasdir/audit.jsonl\n", 0, &errs, &path);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);

	assert_string_equal(c->file, path);
	assert_string_equal(c->socket_path, "/run/otasdird/otasdird.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_null(c->socket_group);
	assert_int_equal(c->socket_gid, (gid_t)-1);
	assert_int_equal(c->max_request_bytes, 65536);
	assert_int_equal(c->max_connections, 1024);
	assert_int_equal(c->max_inflight_conn, 64);
	assert_int_equal(c->max_inflight, 4096);
	assert_int_equal(c->idle_timeout_s, 300);
	assert_int_equal(c->max_reply_backlog, 1024 * 1024);

	assert_int_equal(c->ldap_uris.n, 1);
	assert_string_equal(c->ldap_uris.v[0], "ldap://127.0.0.1:389");
	assert_string_equal(c->bind_dn, "cn=otasdird,dc=example,dc=com");
	assert_string_equal(c->bind_password_file, "/etc/otasdir/bind.secret");
	assert_null(c->bind_password);		/* no CFG_LOAD_SECRET */
	assert_int_equal(c->bind_password_len, 0);
	assert_string_equal(c->people_dn, "ou=people,dc=example,dc=com");
	assert_string_equal(c->counter_dn,
	    "cn=otasdir-seats,dc=example,dc=com");
	assert_int_equal(c->op_timeout_ms, 10000);
	assert_int_equal(c->connect_timeout_ms, 3000);
	assert_int_equal(c->reconnect_min_ms, 250);
	assert_int_equal(c->reconnect_max_ms, 30000);
	assert_int_equal(c->bind_connections, 4);
	assert_int_equal(c->reconcile_interval_s, 60);
	assert_null(c->tls_ca_file);
	assert_false(c->starttls);
	assert_true(c->tls_verify);

	assert_int_equal(c->seats, 25);
	assert_int_equal(c->n_admin_uids, 1);
	assert_int_equal(c->admin_uids[0], 0);
	assert_int_equal(c->admin_groups.n, 1);
	assert_string_equal(c->admin_groups.v[0], "root");
	assert_int_equal(c->n_admin_gids, 1);
	assert_int_equal(c->admin_gids[0], 0);

	assert_int_equal(c->login_max_failures, 5);
	assert_int_equal(c->login_base_delay_s, 1);
	assert_int_equal(c->login_max_delay_s, 300);
	assert_string_equal(c->audit_path, "/var/log/otasdir/audit.jsonl");
	assert_int_equal(c->log_level, LOGL_INFO);
	assert_int_equal(c->shutdown_grace_ms, 10000);
	cfg_free(c);
	free(path);
}

static void
test_required_only(void **state)
{
	struct cfg	*c = load_ok(BASE_LDAP, 0);

	assert_int_equal(c->seats, 25);
	assert_int_equal(c->n_admin_uids, 1);
	assert_int_equal(c->admin_uids[0], 0);
	assert_int_equal(c->admin_groups.n, 0);
	assert_int_equal(c->n_admin_gids, 0);
	assert_null(c->audit_path);
	assert_string_equal(c->socket_path, OTASDIR_DEFAULT_SOCKET);
	cfg_free(c);
}

/* Where conf/otasdird.yaml is: OTASDIR_SRCDIR, or this file's ../.. */
static char *
example_path(void)
{
	char	*p;
#ifdef OTASDIR_SRCDIR
	assert_true(asprintf(&p, "%s/conf/otasdird.yaml", OTASDIR_SRCDIR) > 0);
#else
	const char	*me = __FILE__, *tail = "tests/unit/test_cfg.c";
	size_t		 n = strlen(me), t = strlen(tail);

	assert_true(n >= t && strcmp(me + n - t, tail) == 0);
	assert_true(asprintf(&p, "%.*sconf/otasdird.yaml", (int)(n - t),
	    me) > 0);
#endif
	return p;
}

static void
test_example_config(void **state)
{
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c = NULL;
	char		*path = example_path();
	int		 rc = cfg_load(path, 0, &c, &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_error("unexpected: %s\n", errs.v[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(errs.n, 0);
	/* The example documents the defaults: spot-check them. */
	assert_int_equal(c->socket_mode, 0660);
	assert_int_equal(c->seats, 25);
	assert_string_equal(c->counter_dn,
	    "cn=otasdir-seats,dc=example,dc=com");
	assert_int_equal(c->max_reply_backlog, 1024 * 1024);
	assert_true(c->tls_verify);
	assert_int_equal(c->log_level, LOGL_INFO);
	cfg_free(c);
	free(path);
}

static void
test_every_key(void **state)
{
	struct cfg	*c;

	c = load_ok(
	    "socket:\n"
	    "  path: /tmp/x.sock\n"
	    "  mode: 0640\n"
	    "  group: root\n"
	    "  max_request_bytes: 1024\n"
	    "  max_connections: 65536\n"
	    "  max_inflight_per_connection: 1\n"
	    "  max_inflight: 1000000\n"
	    "  idle_timeout_s: 0\n"
	    "  max_reply_backlog: 65536\n"
	    "ldap:\n"
	    "  uris:\n"
	    "    - ldapi://%2Frun%2Fslapd%2Fldapi\n"
	    "    - LDAPS://ldap.example.com\n"
	    "  bind_dn: cn=svc,dc=example,dc=com\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: \"ou=people,o=Ex\\\\, Inc.,c=US\"\n"
	    "  counter_dn: cn=seats,o=otasdir\n"
	    "  timeout_ms: 100\n"
	    "  connect_timeout_ms: 600000\n"
	    "  reconnect_min_ms: 1000\n"
	    "  reconnect_max_ms: 1000\n"
	    "  bind_connections: 64\n"
	    "  reconcile_interval_s: 86400\n"
	    "  tls: { ca_file: /etc/ssl/ca.pem, starttls: yes, verify: off }\n"
	    "license: { seats: 10000000 }\n"
	    "admins:\n"
	    "  uids: [ 0, 1000, 4294967294 ]\n"
	    "  groups: [ root, root ]\n"
	    "auth: { max_failures: 1, base_delay_s: 0, max_delay_s: 0 }\n"
	    "audit: { path: ~ }\n"
	    "log: { level: debug }\n"
	    "shutdown: { grace_ms: 0 }\n", 0);
	assert_string_equal(c->socket_path, "/tmp/x.sock");
	assert_int_equal(c->socket_mode, 0640);
	assert_string_equal(c->socket_group, "root");
	assert_int_equal(c->socket_gid, 0);
	assert_int_equal(c->max_request_bytes, 1024);
	assert_int_equal(c->max_connections, 65536);
	assert_int_equal(c->max_inflight_conn, 1);
	assert_int_equal(c->max_inflight, 1000000);
	assert_int_equal(c->idle_timeout_s, 0);
	assert_int_equal(c->max_reply_backlog, 65536);
	assert_int_equal(c->ldap_uris.n, 2);
	assert_string_equal(c->ldap_uris.v[0],
	    "ldapi://%2Frun%2Fslapd%2Fldapi");
	assert_string_equal(c->ldap_uris.v[1], "LDAPS://ldap.example.com");
	assert_string_equal(c->people_dn, "ou=people,o=Ex\\, Inc.,c=US");
	assert_string_equal(c->counter_dn, "cn=seats,o=otasdir");
	assert_int_equal(c->op_timeout_ms, 100);
	assert_int_equal(c->connect_timeout_ms, 600000);
	assert_int_equal(c->reconnect_min_ms, 1000);
	assert_int_equal(c->reconnect_max_ms, 1000);
	assert_int_equal(c->bind_connections, 64);
	assert_int_equal(c->reconcile_interval_s, 86400);
	assert_string_equal(c->tls_ca_file, "/etc/ssl/ca.pem");
	assert_true(c->starttls);
	assert_false(c->tls_verify);
	assert_int_equal(c->seats, 10000000);
	assert_int_equal(c->n_admin_uids, 3);
	assert_int_equal(c->admin_uids[2], 4294967294U);
	assert_int_equal(c->admin_groups.n, 2);
	assert_int_equal(c->n_admin_gids, 2);
	assert_int_equal(c->login_max_failures, 1);
	assert_int_equal(c->login_base_delay_s, 0);
	assert_int_equal(c->login_max_delay_s, 0);
	assert_null(c->audit_path);
	assert_int_equal(c->log_level, LOGL_DEBUG);
	assert_int_equal(c->shutdown_grace_ms, 0);
	cfg_free(c);
}

static void
test_mode_forms(void **state)
{
	static const struct {
		const char	*v;
		mode_t		 mode;
	} ok[] = {
		{ "0660", 0660 }, { "\"0660\"", 0660 }, { "660", 0660 },
		{ "0o600", 0600 }, { "'0600'", 0600 }, { "0", 0 },
		{ "0775", 0775 },
	};
	char	*text;

	for (size_t i = 0; i < nitems(ok); i++) {
		struct cfg	*c;

		assert_true(asprintf(&text, BASE_LDAP "socket:\n  mode: %s\n",
		    ok[i].v) > 0);
		c = load_ok(text, 0);
		assert_int_equal(c->socket_mode, ok[i].mode);
		cfg_free(c);
		free(text);
	}
	EXPECT(BASE_LDAP "socket:\n  mode: 01770\n",
	    ":7: 'socket.mode' must be an octal mode like 0660 (at most 0777)");
	EXPECT(BASE_LDAP "socket:\n  mode: 0680\n",
	    ":7: 'socket.mode' must be an octal mode like 0660 (at most 0777)");
	EXPECT(BASE_LDAP "socket:\n  mode: rw-rw----\n",
	    ":7: 'socket.mode' must be an octal mode like 0660 (at most 0777)");
	EXPECT(BASE_LDAP "socket:\n  mode: [ 0660 ]\n",
	    ":7: 'socket.mode' must be an octal mode like 0660 (at most 0777)");
}

/* ------------------------------------------------------------------ */
/* Bad files */

static void
test_seats(void **state)
{
	static const char range[] =
	    ":7: 'license.seats' must be between 1 and 10000000";
	static const char type[] =
	    ":7: expected an integer for 'license.seats'";
	struct cfg	*c;

	expect_seats("-5", range);
	expect_seats("0", range);
	expect_seats("10000001", range);
	expect_seats("99999999999999999999", range);
	expect_seats("-99999999999999999999", range);
	expect_seats("2.5", type);
	expect_seats("\"ten\"", type);
	expect_seats("ten", type);
	expect_seats("\"25\"", type);
	expect_seats("true", type);
	expect_seats("1e3", type);
	expect_seats("0x10", type);
	expect_seats("010", type);
	expect_seats("~", type);
	expect_seats("[ 25 ]", type);
	expect_seats("{ n: 25 }", type);

	c = load_ok(BASE_LDAP "license:\n  seats: 1\n", 0);
	assert_int_equal(c->seats, 1);
	cfg_free(c);
	c = load_ok(BASE_LDAP "license:\n  seats: +300\n", 0);
	assert_int_equal(c->seats, 300);
	cfg_free(c);
}

static void
test_unknown_key(void **state)
{
	EXPECT("ldap:\n"
	    "  uris: [ \"ldap://127.0.0.1:389\" ]\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  foo: 1\n"
	    "  bind_password_file: /etc/otasdir/bind.secret\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n"
	    "lisence:\n"
	    "  seats: 10\n"
	    "ldap.tls: {}\n",
	    ":4: unknown key 'ldap.foo'",
	    ":7: unknown key 'lisence'",
	    ":9: unknown key 'ldap.tls'");
	EXPECT(BASE_LDAP "  tls:\n    verfiy: false\n",
	    ":7: unknown key 'ldap.tls.verfiy'");
	/* A key is shown tamed: control characters as '?', cut when long. */
	EXPECT(BASE_LDAP "\"a\\tb\\u0085c\": 1\n"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxx: 1\n",
	    ":6: unknown key 'a?b?c'",
	    ":7: unknown key 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxx...'");
	EXPECT(BASE_LDAP "[ a ]: 1\n", ":6: keys must be strings");
}

static void
test_duplicate_key(void **state)
{
	EXPECT(BASE_LDAP
	    "license:\n"
	    "  seats: 10\n"
	    "  seats: 20\n"
	    "ldap:\n"
	    "  uris: []\n",
	    ":8: duplicate key 'license.seats' (first at line 7)",
	    ":9: duplicate key 'ldap' (first at line 1)");
	/* Duplicates of unknown keys, and in flow style, too. */
	EXPECT(BASE_LDAP "license: { seats: 1, seats: 2 }\n",
	    ":6: duplicate key 'license.seats' (first at line 6)");
}

static void
test_wrong_types(void **state)
{
	EXPECT("ldap: [ a ]\n", ":1: expected a mapping for 'ldap'");
	EXPECT("- a\n- b\n", ":1: expected a mapping at the top level");
	EXPECT("just a string\n", ":1: expected a mapping at the top level");
	EXPECT(BASE_LDAP
	    "socket:\n"
	    "  path: [ /x ]\n"
	    "  max_connections: many\n"
	    "  idle_timeout_s: -1\n"
	    "  group: \"\"\n"
	    "ldap:\n",
	    ":7: expected a string for 'socket.path'",
	    ":8: expected an integer for 'socket.max_connections'",
	    ":9: 'socket.idle_timeout_s' must be between 0 and 86400",
	    ":10: 'socket.group' must not be empty",
	    ":11: duplicate key 'ldap' (first at line 1)");
	EXPECT("ldap:\n"
	    "  uris: ldap://127.0.0.1\n"
	    "  bind_dn: { a: b }\n"
	    "  bind_password_file: ~\n"
	    "  people_dn: \"ou=a\\0b,dc=x\"\n"
	    "  tls: { verify: 1, starttls: \"true\" }\n"
	    "log: { level: loud }\n"
	    "admins: { uids: [ root ], groups: [ [ x ] ] }\n",
	    ":2: expected a list for 'ldap.uris'",
	    ":3: expected a string for 'ldap.bind_dn'",
	    ":4: expected a string for 'ldap.bind_password_file'",
	    ":5: 'ldap.people_dn' must not contain NUL characters",
	    ":6: expected true or false for 'ldap.tls.verify'",
	    ":6: expected true or false for 'ldap.tls.starttls'",
	    ":7: 'log.level' must be one of err, warning, notice, info, debug",
	    ":8: expected an integer in 'admins.uids'",
	    ":8: expected a string for 'admins.groups'");
}

static void
test_missing_required(void **state)
{
	EXPECT("socket:\n"
	    "  path: /x.sock\n"
	    "ldap:\n"
	    "  uris: [ \"ldap://127.0.0.1:389\" ]\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n",
	    ":3: missing required key 'ldap.bind_dn'",
	    ":3: missing required key 'ldap.bind_password_file'");
	EXPECT("license:\n  seats: 3\n",
	    ":1: missing required key 'ldap.uris'",
	    ":1: missing required key 'ldap.bind_dn'",
	    ":1: missing required key 'ldap.bind_password_file'",
	    ":1: missing required key 'ldap.people_dn'");
	EXPECT("license:\n  seats: 3\nldap:\n",
	    ":3: missing required key 'ldap.uris'",
	    ":3: missing required key 'ldap.bind_dn'",
	    ":3: missing required key 'ldap.bind_password_file'",
	    ":3: missing required key 'ldap.people_dn'");
	/* An empty file, or comments only: every required key. */
	EXPECT("",
	    ":1: missing required key 'ldap.uris'",
	    ":1: missing required key 'ldap.bind_dn'",
	    ":1: missing required key 'ldap.bind_password_file'",
	    ":1: missing required key 'ldap.people_dn'");
	EXPECT("# nothing\n\n",
	    ":1: missing required key 'ldap.uris'",
	    ":1: missing required key 'ldap.bind_dn'",
	    ":1: missing required key 'ldap.bind_password_file'",
	    ":1: missing required key 'ldap.people_dn'");
}

static void
test_several_problems_in_file_order(void **state)
{
	/* The missing key belongs to line 1 (ldap:), the cross-key check to
	 * its line: sorted into file order whatever the order of checks. */
	EXPECT("ldap:\n"
	    "  uris: [ \"http://x\", 5, \"ldap://[\" ]\n"
	    "  bind_dn: not a dn\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n"
	    "  reconnect_min_ms: 5000\n"
	    "  reconnect_max_ms: 1000\n"
	    "license:\n"
	    "  seats: 0\n"
	    "  extra: 1\n"
	    "admins:\n"
	    "  uids: [ 0, -1, 4294967295 ]\n"
	    "  groups: [ root, no-such-group-otasdir ]\n"
	    "auth:\n"
	    "  base_delay_s: 60\n"
	    "  max_delay_s: 30\n"
	    "socket:\n"
	    "  group: no-such-group-otasdir\n",
	    ":1: missing required key 'ldap.bind_password_file'",
	    ":2: 'ldap.uris' entry \"http://x\" must start with ldap://, "
	    "ldaps:// or ldapi://",
	    ":2: 'ldap.uris' entry \"5\" must start with ldap://, ldaps:// or "
	    "ldapi://",
	    ":2: 'ldap.uris' entry \"ldap://[\" is not a valid LDAP URI",
	    ":3: 'ldap.bind_dn' is not a valid DN",
	    ":6: 'ldap.reconnect_max_ms' must be at least "
	    "'ldap.reconnect_min_ms' (5000)",
	    ":8: 'license.seats' must be between 1 and 10000000",
	    ":9: unknown key 'license.extra'",
	    ":11: 'admins.uids' entries must be between 0 and 4294967294",
	    ":11: 'admins.uids' entries must be between 0 and 4294967294",
	    ":12: unknown group 'no-such-group-otasdir' in 'admins.groups'",
	    ":15: 'auth.max_delay_s' must be at least 'auth.base_delay_s' "
	    "(60)",
	    ":17: unknown group 'no-such-group-otasdir' in 'socket.group'");
}

static void
test_uris(void **state)
{
	EXPECT("ldap:\n"
	    "  uris: []\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  bind_password_file: /etc/otasdir/bind.secret\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n",
	    ":2: 'ldap.uris' must list at least one URI");
	EXPECT("ldap:\n"
	    "  uris:\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  bind_password_file: /etc/otasdir/bind.secret\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n",
	    ":2: 'ldap.uris' must list at least one URI");
}

static void
test_uids(void **state)
{
	struct cfg	*c;

	EXPECT(BASE_LDAP "admins:\n  uids: [ -1 ]\n",
	    ":7: 'admins.uids' entries must be between 0 and 4294967294");
	EXPECT(BASE_LDAP "admins:\n  uids: [ 4294967295 ]\n",
	    ":7: 'admins.uids' entries must be between 0 and 4294967294");
	EXPECT(BASE_LDAP "admins:\n  uids:\n    - 1\n"
	    "    - 99999999999999999999\n",
	    ":9: 'admins.uids' entries must be between 0 and 4294967294");
	EXPECT(BASE_LDAP "admins:\n  uids: 0\n",
	    ":7: expected a list for 'admins.uids'");
	/* Each group is an NSS lookup: the lists are capped. */
	{
		char	*text, *o;

		assert_non_null(text = malloc(2048));
		o = text + sprintf(text, BASE_LDAP "admins:\n  groups: [ root");
		for (int i = 0; i < 64; i++)
			o += sprintf(o, ", root");
		sprintf(o, " ]\n");
		EXPECT(text, ":7: 'admins.groups' may list at most 64 entries");
		free(text);
	}
	/* An empty list: no uid is an admin (groups or accounts may be). */
	c = load_ok(BASE_LDAP "admins:\n  uids: []\n", 0);
	assert_int_equal(c->n_admin_uids, 0);
	cfg_free(c);
}

static void
test_counter_dn(void **state)
{
	struct cfg	*c;

	c = load_ok("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: \"ou=People, o=Ex\\\\2C Inc. ,c=US\"\n", 0);
	assert_string_equal(c->counter_dn,
	    "cn=otasdir-seats,o=Ex\\2C Inc.,c=US");
	cfg_free(c);

	c = load_ok("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: ou=people+cn=x,dc=example,dc=com\n", 0);
	assert_string_equal(c->counter_dn,
	    "cn=otasdir-seats,dc=example,dc=com");
	cfg_free(c);

	/* One RDN: there is no parent to put the counter in. */
	EXPECT("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: o=people\n",
	    ":5: 'ldap.people_dn' has no parent entry; set 'ldap.counter_dn'");
	c = load_ok("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: o=people\n"
	    "  counter_dn: cn=seats,o=otasdir\n", 0);
	assert_string_equal(c->counter_dn, "cn=seats,o=otasdir");
	cfg_free(c);

	/* Inside people_dn it would take a seat itself. */
	EXPECT("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: ou=people,dc=example,dc=com\n"
	    "  counter_dn: cn=seats,OU=People,dc=Example,dc=com\n",
	    ":6: 'ldap.counter_dn' must be outside 'ldap.people_dn'");
	EXPECT("ldap:\n"
	    "  uris: [ ldap://h ]\n"
	    "  bind_dn: cn=a,o=x\n"
	    "  bind_password_file: /x\n"
	    "  people_dn: \"\"\n",
	    ":5: 'ldap.people_dn' must not be empty");
}

static void
test_depth(void **state)
{
	char	 text[256];
	int	 n;
	struct cfg_errors errs = { NULL, 0 };

	/* The top mapping is level 1: 15 '[' make 16 levels, allowed (only
	 * the unknown key is reported); 16 make 17. */
	n = snprintf(text, sizeof(text), BASE_LDAP "x: %.*s%.*s\n", 15,
	    "[[[[[[[[[[[[[[[[[[[[", 15, "]]]]]]]]]]]]]]]]]]]]");
	assert_true(n > 0);
	assert_null(load_text(text, 0, &errs, NULL));
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.v[0], ":6: unknown key 'x'"));
	cfg_errors_free(&errs);

	snprintf(text, sizeof(text), "x: %.*s%.*s\n", 16,
	    "[[[[[[[[[[[[[[[[[[[[", 16, "]]]]]]]]]]]]]]]]]]]]");
	EXPECT(text, ":1: nesting deeper than 16 levels");
	EXPECT(BASE_LDAP
	    "a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n       h:\n"
	    "        i:\n         j:\n          k:\n           l:\n"
	    "            m:\n             n:\n              o:\n"
	    "               p:\n                q: 1\n",
	    ":22: nesting deeper than 16 levels");
}

static void
test_deep_nesting_is_fast(void **state)
{
	size_t		 n = 100000;
	char		*text = malloc(n + 2);
	struct timespec	 t0, t1;
	double		 dt;

	assert_non_null(text);
	memset(text, '[', n);
	text[n] = '\n';
	text[n + 1] = '\0';
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	EXPECT(text, ":1: nesting deeper than 16 levels");
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	dt = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(dt < 1.0);
	free(text);
}

static void
test_too_many_events(void **state)
{
	size_t		 n = 10001, len = 0;
	char		*text = malloc(n * 2 + 16);

	assert_non_null(text);
	len += (size_t)sprintf(text, "x: [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "1,");
	sprintf(text + len, "]\n");
	EXPECT(text, ":1: more than 10000 YAML nodes");
	free(text);
}

static void
test_file_size(void **state)
{
	size_t		 size = 2 * 1024 * 1024;
	char		*big = malloc(size), *path;
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c = NULL;

	assert_non_null(big);
	memset(big, '#', size);
	big[size - 1] = '\n';
	path = write_bytes("big.yaml", big, size, 0644);
	assert_int_equal(cfg_load(path, 0, &c, &errs), -1);
	check_errors(path, &errs, (const char *const[]){
	    ": too large (2097152 bytes; at most 1048576)", NULL });
	cfg_errors_free(&errs);
	free(path);

	/* Exactly 1 MiB of comments is allowed (and misses the keys). */
	path = write_bytes("max.yaml", big, 1024 * 1024, 0644);
	assert_int_equal(cfg_load(path, 0, &c, &errs), -1);
	assert_int_equal(errs.n, 4);
	cfg_errors_free(&errs);
	free(path);
	free(big);
}

static void
test_anchors_aliases_tags(void **state)
{
	EXPECT(BASE_LDAP
	    "license:\n"
	    "  seats: &n 25\n"
	    "auth:\n"
	    "  max_failures: *n\n",
	    ":7: anchors and aliases are not allowed",
	    ":9: anchors and aliases are not allowed");
	EXPECT(BASE_LDAP "base: &b { seats: 1 }\nlicense: *b\n",
	    ":6: anchors and aliases are not allowed",
	    ":6: unknown key 'base'",
	    ":7: anchors and aliases are not allowed");
	EXPECT(BASE_LDAP "license:\n  seats: !!int 25\n",
	    ":7: tags are not allowed");
	EXPECT(BASE_LDAP "license: !!map\n  seats: 25\n",
	    ":6: tags are not allowed");
}

static void
test_syntax_errors(void **state)
{
	EXPECT(BASE_LDAP "license:\n  seats: 1\n bad: [\n",
	    ":8: invalid YAML: did not find expected key (while parsing a "
	    "block mapping at line 1)");
	EXPECT("a: b: c\n",
	    ":1: invalid YAML: mapping values are not allowed in this context");
	EXPECT("a: 1\n---\nb: 2\n", ":2: only one YAML document is allowed");
	EXPECT("a: \"\xff\"\n", ":1: invalid YAML: invalid leading UTF-8 "
	    "octet");
	EXPECT("a: 1\nb: \x01\n", ":2: invalid YAML: control characters are "
	    "not allowed");
}

static void
test_cannot_open(void **state)
{
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c = NULL;
	char		*path;

	assert_true(asprintf(&path, "%s/no-such.yaml", tmpdir) > 0);
	assert_int_equal(cfg_load(path, 0, &c, &errs), -1);
	assert_null(c);
	check_errors(path, &errs, (const char *const[]){
	    ": cannot open: No such file or directory", NULL });
	cfg_errors_free(&errs);
	free(path);

	assert_int_equal(cfg_load(tmpdir, 0, &c, &errs), -1);
	check_errors(tmpdir, &errs, (const char *const[]){
	    ": not a regular file", NULL });
	cfg_errors_free(&errs);
}

/* A config naming tmpdir/<secret> as the password file (line 4). */
static char *
secret_config(const char *secret)
{
	char	*text;

	assert_true(asprintf(&text,
	    "ldap:\n"
	    "  uris: [ \"ldap://127.0.0.1:389\" ]\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  bind_password_file: %s/%s\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n",
	    tmpdir, secret) > 0);
	return text;
}

static void
test_secret(void **state)
{
	struct cfg	*c;
	char		*text, *p, *want;

	/* 0600: read, one trailing newline stripped. */
	p = write_bytes("pw", "s3cret pw\n\n", 11, 0600);
	text = secret_config("pw");
	c = load_ok(text, CFG_LOAD_SECRET);
	assert_int_equal(c->bind_password_len, 10);
	assert_memory_equal(c->bind_password, "s3cret pw\n", 11);
	cfg_free(c);

	/* Without the flag the file is not even looked at. */
	assert_int_equal(chmod(p, 0644), 0);
	c = load_ok(text, 0);
	assert_null(c->bind_password);
	cfg_free(c);

	/* 0644 refused; the message names the file and the fix. */
	assert_true(asprintf(&want, ":4: bind_password_file %s is readable "
	    "by others (mode 0644); chmod 600 it", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	assert_int_equal(chmod(p, 0640), 0);
	assert_true(asprintf(&want, ":4: bind_password_file %s is readable "
	    "by its group (mode 0640); chmod 600 it", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	assert_int_equal(chmod(p, 0620), 0);
	assert_true(asprintf(&want, ":4: bind_password_file %s is writable "
	    "by its group (mode 0620); chmod 600 it", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);
	free(p);

	/* 0400, CRLF, no newline at all. */
	p = write_bytes("pw2", "abc\r\n", 5, 0400);
	text = secret_config("pw2");
	c = load_ok(text, CFG_LOAD_SECRET);
	assert_int_equal(c->bind_password_len, 3);
	assert_string_equal(c->bind_password, "abc");
	cfg_free(c);
	free(text);
	free(p);

	/* Empty (a lone newline), missing, not a regular file. */
	p = write_bytes("pw3", "\n", 1, 0600);
	text = secret_config("pw3");
	assert_true(asprintf(&want, ":4: bind_password_file %s is empty",
	    p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);
	free(p);

	text = secret_config("pw-missing");
	assert_true(asprintf(&want, ":4: bind_password_file %s/pw-missing: "
	    "cannot open: No such file or directory", tmpdir) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);

	text = secret_config(".");
	assert_true(asprintf(&want, ":4: bind_password_file %s/. is not a "
	    "regular file", tmpdir) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);

	/* Too large, and a NUL inside. */
	{
		char	 big[5000];

		memset(big, 'x', sizeof(big));
		p = write_bytes("pw4", big, sizeof(big), 0600);
	}
	text = secret_config("pw4");
	assert_true(asprintf(&want, ":4: bind_password_file %s is too large "
	    "(at most 4096 bytes)", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);
	free(p);
	p = write_bytes("pw5", "ab\0cd", 5, 0600);
	text = secret_config("pw5");
	assert_true(asprintf(&want, ":4: bind_password_file %s contains a "
	    "NUL byte", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);
	free(p);
}

/* BASE_LDAP with bind_password_file set to value (line 4). */
static char *
creds_config(const char *value)
{
	char	*text;

	assert_true(asprintf(&text,
	    "ldap:\n"
	    "  uris: [ \"ldap://127.0.0.1:389\" ]\n"
	    "  bind_dn: \"cn=otasdird,dc=example,dc=com\"\n"
	    "  bind_password_file: \"%s\"\n"
	    "  people_dn: \"ou=people,dc=example,dc=com\"\n", value) > 0);
	return text;
}

/*
 * systemd's LoadCredential=: a leading ${CREDENTIALS_DIRECTORY}/ or %d/ in
 * ldap.bind_password_file is replaced by $CREDENTIALS_DIRECTORY, and the
 * secret file there passes the same checks as any other.
 */
static void
test_credentials_directory(void **state)
{
	struct cfg	*c;
	char		*text, *p, *want, *dir;

	assert_true(asprintf(&dir, "%s/creds", tmpdir) > 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_true(asprintf(&p, "%s/bind.secret", dir) > 0);
	{
		FILE	*f = fopen(p, "w");

		assert_non_null(f);
		assert_int_equal(fputs("cred pw\n", f) >= 0, 1);
		assert_int_equal(fclose(f), 0);
	}
	/* What systemd makes of a credential: 0400. */
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);

	text = creds_config("${CREDENTIALS_DIRECTORY}/bind.secret");
	c = load_ok(text, CFG_LOAD_SECRET);
	assert_string_equal(c->bind_password_file, p);
	assert_string_equal(c->bind_password, "cred pw");
	cfg_free(c);
	/* Expanded without the secret flag too (reload compares it). */
	c = load_ok(text, 0);
	assert_string_equal(c->bind_password_file, p);
	assert_null(c->bind_password);
	cfg_free(c);
	free(text);

	/* %d/, and a trailing slash in the variable. */
	text = creds_config("%d/bind.secret");
	c = load_ok(text, CFG_LOAD_SECRET);
	assert_string_equal(c->bind_password_file, p);
	cfg_free(c);
	{
		char	*slash;

		assert_true(asprintf(&slash, "%s/", dir) > 0);
		assert_int_equal(setenv("CREDENTIALS_DIRECTORY", slash, 1), 0);
		c = load_ok(text, CFG_LOAD_SECRET);
		assert_string_equal(c->bind_password_file, p);
		cfg_free(c);
		free(slash);
		assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
	}
	free(text);

	/* The mode check still applies to the expanded path. */
	assert_int_equal(chmod(p, 0440), 0);
	text = creds_config("${CREDENTIALS_DIRECTORY}/bind.secret");
	assert_true(asprintf(&want, ":4: bind_password_file %s is readable "
	    "by its group (mode 0440); chmod 600 it", p) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	assert_int_equal(chmod(p, 0400), 0);

	/* A credential that was not loaded. */
	free(text);
	text = creds_config("${CREDENTIALS_DIRECTORY}/other.secret");
	assert_true(asprintf(&want, ":4: bind_password_file %s/other.secret: "
	    "cannot open: No such file or directory", dir) > 0);
	expect_errors(text, CFG_LOAD_SECRET, (const char *const[]){ want,
	    NULL });
	free(want);
	free(text);

	/* Only at the start, only that variable, and only with a file. */
	text = creds_config("/etc/${CREDENTIALS_DIRECTORY}/x");
	c = load_ok(text, 0);
	assert_string_equal(c->bind_password_file,
	    "/etc/${CREDENTIALS_DIRECTORY}/x");
	cfg_free(c);
	free(text);
	text = creds_config("${CREDENTIAL_DIRECTORY}/bind.secret");
	EXPECT(text, ":4: 'ldap.bind_password_file': only "
	    "${CREDENTIALS_DIRECTORY} is expanded");
	free(text);
	text = creds_config("%d/");
	EXPECT(text, ":4: 'ldap.bind_password_file' names the credentials "
	    "directory but no file in it");
	free(text);

	/* Not started by systemd: the variable is missing, or relative. */
	text = creds_config("${CREDENTIALS_DIRECTORY}/bind.secret");
	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	EXPECT(text, ":4: 'ldap.bind_password_file' names the credentials "
	    "directory, but CREDENTIALS_DIRECTORY is not set "
	    "(LoadCredential= in the systemd unit sets it)");
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "creds", 1), 0);
	EXPECT(text, ":4: 'ldap.bind_password_file' names the credentials "
	    "directory, but CREDENTIALS_DIRECTORY is not an absolute path "
	    "(LoadCredential= in the systemd unit sets it)");
	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	free(text);

	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(dir), 0);
	free(p);
	free(dir);
}

static void
test_errors_limit(void **state)
{
	struct cfg_errors errs = { NULL, 0 };
	char		*text = malloc(200 * 16), *o = text;

	assert_non_null(text);
	for (int i = 0; i < 150; i++)
		o += sprintf(o, "k%d: 1\n", i);
	assert_null(load_text(text, 0, &errs, NULL));
	/* 100 problems, then a line counting the rest (150 unknown keys + 4
	 * missing). */
	assert_int_equal(errs.n, 101);
	assert_non_null(strstr(errs.v[100], ": 54 more problems not shown"));
	cfg_errors_free(&errs);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contract_keys_and_defaults),
		cmocka_unit_test(test_required_only),
		cmocka_unit_test(test_example_config),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_mode_forms),
		cmocka_unit_test(test_seats),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_several_problems_in_file_order),
		cmocka_unit_test(test_uris),
		cmocka_unit_test(test_uids),
		cmocka_unit_test(test_counter_dn),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_deep_nesting_is_fast),
		cmocka_unit_test(test_too_many_events),
		cmocka_unit_test(test_file_size),
		cmocka_unit_test(test_anchors_aliases_tags),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_cannot_open),
		cmocka_unit_test(test_secret),
		cmocka_unit_test(test_credentials_directory),
		cmocka_unit_test(test_errors_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
