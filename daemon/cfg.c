/*
 * cfg.c - load and check otasdird.yaml.
 *
 * The file is read whole (at most CFG_MAX_FILE bytes, checked with fstat
 * before any parsing), turned into a small tree of nodes with the libyaml
 * event API, and the tree is walked against a static table of known keys.
 * libyaml has no nesting limit, spends quadratic time on deep nesting and
 * accepts duplicate keys (FIELD-NOTES), so depth, event count and
 * duplicates are checked here, while the events are pulled.
 *
 * Every problem is collected as "file:line: message" (libyaml marks are
 * 0-based; lines here are 1-based) and sorted into file order; nothing
 * here exits, logs or prints.  NSS lookups (group names) happen here, at
 * load time, because they may block and must not happen per connection.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "otasdird.h"

#define CFG_MAX_FILE	(1024 * 1024)	/* bytes of YAML */
#define CFG_MAX_DEPTH	16		/* open mappings and sequences */
#define CFG_MAX_EVENTS	10000		/* libyaml events per file */
#define CFG_MAX_ERRORS	100		/* problems shown; more are counted */
#define CFG_SECRET_MAX	4096		/* bytes of bind password */
#define CFG_MAX_URIS	32		/* entries of ldap.uris */
#define CFG_MAX_UIDS	1024		/* entries of admins.uids */
#define CFG_MAX_GROUPS	64		/* entries of admins.groups */
#define CFG_SHOW_MAX	64		/* bytes of a value quoted in a
					 * message */

#define MiB		(1024 * 1024)

/* ------------------------------------------------------------------ */
/* The node tree built from libyaml events. */

enum node_kind {
	N_SCALAR,
	N_SEQ,
	N_MAP,
	N_ALIAS,	/* refused; kept so the walk can skip it quietly */
};

/*
 * One node.  Children are linked through first/next (indices into
 * cfg_ctx.nodes, -1 for none); a mapping's children alternate key, value.
 */
struct node {
	enum node_kind	 kind;
	bool		 plain;		/* unquoted scalar */
	size_t		 line;		/* 1-based */
	char		*val;		/* scalar text, NUL-terminated */
	size_t		 len;
	int		 first, last, next;
};

/* One problem; sorted by (line, seq) before it is handed out. */
struct cfg_err {
	size_t		 line;		/* 0: the file as a whole */
	size_t		 seq;
	char		*msg;
};

/* Lines of keys that checks after the walk refer to. */
enum cfg_kid {
	KID_NONE = 0,
	KID_PEOPLE_DN,
	KID_COUNTER_DN,
	KID_PWFILE,
	KID_RECONNECT_MIN,
	KID_RECONNECT_MAX,
	KID_AUTH_BASE,
	KID_AUTH_MAX,
	KID_COUNT,
};

struct cfg_ctx {
	const char	*file;
	struct cfg	*cfg;
	struct node	*nodes;
	size_t		 n_nodes, cap_nodes;
	int		 root;		/* -1: no document */
	bool		 fatal;		/* the tree is incomplete: no walk */
	bool		 oom;
	struct cfg_err	*errs;
	size_t		 n_errs, cap_errs, dropped;
	size_t		 kline[KID_COUNT];	/* 0: key absent */
};

/* ------------------------------------------------------------------ */
/* The schema: every key, its type, where it goes, its limits. */

enum key_type {
	K_MAP,		/* a nested section: sub */
	K_STR,		/* char * */
	K_DN,		/* char *, checked with ldap_str2dn */
	K_UINT,		/* unsigned, min..max */
	K_SIZE,		/* size_t, min..max */
	K_LONG,		/* long, min..max */
	K_BOOL,		/* bool */
	K_MODE,		/* mode_t, octal */
	K_GROUP,	/* char * name + gid_t resolved (socket.group) */
	K_GROUPS,	/* admin groups + gids */
	K_UIDS,		/* admin uids */
	K_URIS,		/* struct cfg_strs of LDAP URIs */
	K_LEVEL,	/* enum log_level */
};

#define F_REQUIRED	0x01	/* missing is an error */
#define F_NULLABLE	0x02	/* null means "unset" (the default is NULL) */
#define F_SUNPATH	0x04	/* must fit sockaddr_un.sun_path */
#define F_CREDS		0x08	/* credentials directory expanded
				 * (cfg_expand_creds) */

struct cfg_key {
	const char		*name;
	enum key_type		 type;
	size_t			 off;		/* into struct cfg */
	long long		 min, max;
	unsigned		 flags;
	enum cfg_kid		 kid;
	const struct cfg_key	*sub;		/* K_MAP; NULL-name ends */
};

#define OFF(f)		offsetof(struct cfg, f)
#define END_KEYS	{ NULL, K_MAP, 0, 0, 0, 0, KID_NONE, NULL }

static const struct cfg_key cfg_socket_keys[] = {
	{ "path", K_STR, OFF(socket_path), 0, 0, F_SUNPATH, KID_NONE, NULL },
	{ "mode", K_MODE, OFF(socket_mode), 0, 0, 0, KID_NONE, NULL },
	{ "group", K_GROUP, OFF(socket_group), 0, 0, F_NULLABLE, KID_NONE,
	    NULL },
	{ "max_request_bytes", K_SIZE, OFF(max_request_bytes), 1024,
	    16 * MiB, 0, KID_NONE, NULL },
	{ "max_connections", K_UINT, OFF(max_connections), 1, 65536, 0,
	    KID_NONE, NULL },
	{ "max_inflight_per_connection", K_UINT, OFF(max_inflight_conn), 1,
	    10000, 0, KID_NONE, NULL },
	{ "max_inflight", K_UINT, OFF(max_inflight), 1, 1000000, 0, KID_NONE,
	    NULL },
	{ "idle_timeout_s", K_UINT, OFF(idle_timeout_s), 0, 86400, 0,
	    KID_NONE, NULL },
	{ "max_reply_backlog", K_SIZE, OFF(max_reply_backlog), 64 * 1024,
	    1024LL * MiB, 0, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_tls_keys[] = {
	{ "ca_file", K_STR, OFF(tls_ca_file), 0, 0, F_NULLABLE, KID_NONE,
	    NULL },
	{ "starttls", K_BOOL, OFF(starttls), 0, 0, 0, KID_NONE, NULL },
	{ "verify", K_BOOL, OFF(tls_verify), 0, 0, 0, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_ldap_keys[] = {
	{ "uris", K_URIS, OFF(ldap_uris), 0, 0, F_REQUIRED, KID_NONE, NULL },
	{ "bind_dn", K_DN, OFF(bind_dn), 0, 0, F_REQUIRED, KID_NONE, NULL },
	{ "bind_password_file", K_STR, OFF(bind_password_file), 0, 0,
	    F_REQUIRED | F_CREDS, KID_PWFILE, NULL },
	{ "people_dn", K_DN, OFF(people_dn), 0, 0, F_REQUIRED,
	    KID_PEOPLE_DN, NULL },
	{ "counter_dn", K_DN, OFF(counter_dn), 0, 0, F_NULLABLE,
	    KID_COUNTER_DN, NULL },
	{ "timeout_ms", K_UINT, OFF(op_timeout_ms), 100, 600000, 0, KID_NONE,
	    NULL },
	{ "connect_timeout_ms", K_UINT, OFF(connect_timeout_ms), 100, 600000,
	    0, KID_NONE, NULL },
	{ "reconnect_min_ms", K_UINT, OFF(reconnect_min_ms), 10, 600000, 0,
	    KID_RECONNECT_MIN, NULL },
	{ "reconnect_max_ms", K_UINT, OFF(reconnect_max_ms), 10, 3600000, 0,
	    KID_RECONNECT_MAX, NULL },
	{ "bind_connections", K_UINT, OFF(bind_connections), 1, 64, 0,
	    KID_NONE, NULL },
	{ "reconcile_interval_s", K_UINT, OFF(reconcile_interval_s), 1, 86400,
	    0, KID_NONE, NULL },
	{ "tls", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_tls_keys },
	END_KEYS,
};

static const struct cfg_key cfg_license_keys[] = {
	{ "seats", K_LONG, OFF(seats), 1, 10000000, 0, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_admins_keys[] = {
	{ "uids", K_UIDS, 0, 0, 4294967294LL, 0, KID_NONE, NULL },
	{ "groups", K_GROUPS, 0, 0, 0, 0, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_auth_keys[] = {
	{ "max_failures", K_UINT, OFF(login_max_failures), 1, 1000000, 0,
	    KID_NONE, NULL },
	{ "base_delay_s", K_UINT, OFF(login_base_delay_s), 0, 3600, 0,
	    KID_AUTH_BASE, NULL },
	{ "max_delay_s", K_UINT, OFF(login_max_delay_s), 0, 86400, 0,
	    KID_AUTH_MAX, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_audit_keys[] = {
	{ "path", K_STR, OFF(audit_path), 0, 0, F_NULLABLE, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_log_keys[] = {
	{ "level", K_LEVEL, OFF(log_level), 0, 0, 0, KID_NONE, NULL },
	END_KEYS,
};

static const struct cfg_key cfg_shutdown_keys[] = {
	{ "grace_ms", K_UINT, OFF(shutdown_grace_ms), 0, 600000, 0, KID_NONE,
	    NULL },
	END_KEYS,
};

static const struct cfg_key cfg_top_keys[] = {
	{ "socket", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_socket_keys },
	{ "ldap", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_ldap_keys },
	{ "license", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_license_keys },
	{ "admins", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_admins_keys },
	{ "auth", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_auth_keys },
	{ "audit", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_audit_keys },
	{ "log", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_log_keys },
	{ "shutdown", K_MAP, 0, 0, 0, 0, KID_NONE, cfg_shutdown_keys },
	END_KEYS,
};

/* cfg_walk_map marks the keys seen in a bool array of this size. */
#define CFG_MAX_KEYS	16
_Static_assert(nitems(cfg_socket_keys) <= CFG_MAX_KEYS, "cfg_socket_keys");
_Static_assert(nitems(cfg_ldap_keys) <= CFG_MAX_KEYS, "cfg_ldap_keys");
_Static_assert(nitems(cfg_top_keys) <= CFG_MAX_KEYS, "cfg_top_keys");

/* ------------------------------------------------------------------ */
/* Problems */

/*
 * Record one problem at line (0: about the whole file).  Out of memory is
 * remembered and reported once at the end.  The number of problems is
 * bounded by the event limit; cfg_err_flush shows the first
 * CFG_MAX_ERRORS in file order.
 */
static void PRINTF(3, 4)
cfg_err(struct cfg_ctx *x, size_t line, const char *fmt, ...)
{
	struct cfg_err	*v;
	va_list		 ap;
	char		*msg;
	int		 r;

	if (x->n_errs == x->cap_errs) {
		size_t	 cap = x->cap_errs ? x->cap_errs * 2 : 8;

		if ((v = reallocarray(x->errs, cap, sizeof(*v))) == NULL) {
			x->oom = true;
			return;
		}
		x->errs = v;
		x->cap_errs = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		x->oom = true;
		return;
	}
	x->errs[x->n_errs].line = line;
	x->errs[x->n_errs].seq = x->n_errs;
	x->errs[x->n_errs].msg = msg;
	x->n_errs++;
}

static int
cfg_err_cmp(const void *a, const void *b)
{
	const struct cfg_err *e = a, *f = b;

	if (e->line != f->line)
		return e->line < f->line ? -1 : 1;
	return e->seq < f->seq ? -1 : e->seq > f->seq;
}

/* Append one finished line to errs; false if out of memory. */
static bool
cfg_errs_push(struct cfg_errors *errs, char *line)
{
	char	**v;

	if ((v = reallocarray(errs->v, errs->n + 1, sizeof(*v))) == NULL)
		return false;
	errs->v = v;
	errs->v[errs->n++] = line;
	return true;
}

/*
 * Hand the collected problems to the caller as "file:line: message" in
 * file order (problems about the whole file first), the first
 * CFG_MAX_ERRORS of them and a line counting the rest.  Frees x->errs.
 */
static void
cfg_err_flush(struct cfg_ctx *x, struct cfg_errors *errs)
{
	char	*line;
	int	 r;

	qsort(x->errs, x->n_errs, sizeof(*x->errs), cfg_err_cmp);
	for (size_t i = 0; i < x->n_errs; i++) {
		const struct cfg_err *e = &x->errs[i];

		if (i >= CFG_MAX_ERRORS) {
			free(e->msg);
			x->dropped++;
			continue;
		}
		if (e->line == 0)
			r = asprintf(&line, "%s: %s", x->file, e->msg);
		else
			r = asprintf(&line, "%s:%zu: %s", x->file, e->line,
			    e->msg);
		free(e->msg);
		if (r < 0 || !cfg_errs_push(errs, line)) {
			if (r >= 0)
				free(line);
			x->oom = true;
		}
	}
	free(x->errs);
	x->errs = NULL;
	x->n_errs = x->cap_errs = 0;
	if (x->dropped > 0 && asprintf(&line, "%s: %zu more problems not "
	    "shown", x->file, x->dropped) >= 0 && !cfg_errs_push(errs, line))
		free(line);
	if ((x->oom || errs->n == 0) &&
	    asprintf(&line, "%s: out of memory", x->file) >= 0 &&
	    !cfg_errs_push(errs, line))
		free(line);
}

/*
 * Copy a value from the file into buf for a message: at most CFG_SHOW_MAX
 * bytes, control characters (C0, DEL and C1) shown as '?', cut on a UTF-8
 * boundary with "..." when long.  Returns buf.
 */
static const char *
cfg_show(char *buf, size_t size, const char *s, size_t len)
{
	size_t	 o = 0, i = 0;

	while (i < len && o + 4 < size && o < CFG_SHOW_MAX) {
		unsigned char	 c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			buf[o++] = '?';
			i++;
		} else if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			buf[o++] = '?';		/* C1 control */
			i += 2;
		} else
			buf[o++] = s[i++];
	}
	if (i < len) {
		/* Do not end in the middle of a UTF-8 sequence. */
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
			o--;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */
/* Building the tree */

/* Append a node under parent (-1: it is the root); its index or -1. */
static int
cfg_node_new(struct cfg_ctx *x, int parent, enum node_kind kind,
    size_t line)
{
	struct node	*n;
	int		 idx;

	if (x->n_nodes == x->cap_nodes) {
		size_t	 cap = x->cap_nodes ? x->cap_nodes * 2 : 64;

		if ((n = reallocarray(x->nodes, cap, sizeof(*n))) == NULL) {
			x->oom = true;
			return -1;
		}
		x->nodes = n;
		x->cap_nodes = cap;
	}
	idx = (int)x->n_nodes++;
	n = &x->nodes[idx];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->line = line;
	n->first = n->last = n->next = -1;
	if (parent < 0)
		x->root = idx;
	else {
		struct node	*p = &x->nodes[parent];

		if (p->last < 0)
			p->first = idx;
		else
			x->nodes[p->last].next = idx;
		p->last = idx;
	}
	return idx;
}

/* Refuse the anchor and tag an event may carry (not fatal). */
static void
cfg_check_props(struct cfg_ctx *x, size_t line, const yaml_char_t *anchor,
    const yaml_char_t *tag)
{
	if (anchor != NULL)
		cfg_err(x, line, "anchors and aliases are not allowed");
	if (tag != NULL)
		cfg_err(x, line, "tags are not allowed");
}

/* Record what libyaml found wrong; the tree stops there. */
static void
cfg_yaml_error(struct cfg_ctx *x, const yaml_parser_t *p, const char *buf,
    size_t len)
{
	size_t	 line = p->problem_mark.line + 1;

	x->fatal = true;
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		x->oom = true;
		return;
	case YAML_READER_ERROR:
		/* Reader errors carry an offset, not a mark. */
		line = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++)
			if (buf[i] == '\n')
				line++;
		cfg_err(x, line, "invalid YAML: %s",
		    p->problem ? p->problem : "unreadable input");
		return;
	default:
		break;
	}
	if (p->context != NULL)
		cfg_err(x, line, "invalid YAML: %s (%s at line %zu)",
		    p->problem ? p->problem : "syntax error", p->context,
		    p->context_mark.line + 1);
	else
		cfg_err(x, line, "invalid YAML: %s",
		    p->problem ? p->problem : "syntax error");
}

/*
 * Pull libyaml events from buf and build the node tree in x.  Stops at
 * once (x->fatal) on a syntax error, on nesting deeper than CFG_MAX_DEPTH,
 * on more than CFG_MAX_EVENTS events and on a second document: counting
 * while pulling is what keeps 100k nested '[' from costing a minute.
 * Anchors, aliases and tags are refused but do not stop the parse.
 */
static void
cfg_parse(struct cfg_ctx *x, const char *buf, size_t len)
{
	yaml_parser_t	 p;
	yaml_event_t	 ev;
	int		 stack[CFG_MAX_DEPTH];
	size_t		 depth = 0, nevents = 0, ndocs = 0, line;
	int		 idx;
	bool		 done = false;

	if (!yaml_parser_initialize(&p)) {
		x->oom = x->fatal = true;
		return;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (!done && !x->fatal) {
		if (!yaml_parser_parse(&p, &ev)) {
			cfg_yaml_error(x, &p, buf, len);
			break;
		}
		line = ev.start_mark.line + 1;
		if (++nevents > CFG_MAX_EVENTS) {
			cfg_err(x, line, "more than %d YAML nodes",
			    CFG_MAX_EVENTS);
			x->fatal = true;
			yaml_event_delete(&ev);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (ndocs++ > 0) {
				cfg_err(x, line, "only one YAML document is "
				    "allowed");
				x->fatal = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			cfg_err(x, line, "anchors and aliases are not allowed");
			if (cfg_node_new(x, depth ? stack[depth - 1] : -1,
			    N_ALIAS, line) < 0)
				x->fatal = true;
			break;
		case YAML_SCALAR_EVENT:
			cfg_check_props(x, line, ev.data.scalar.anchor,
			    ev.data.scalar.tag);
			idx = cfg_node_new(x, depth ? stack[depth - 1] : -1,
			    N_SCALAR, line);
			if (idx < 0) {
				x->fatal = true;
				break;
			}
			x->nodes[idx].len = ev.data.scalar.length;
			x->nodes[idx].plain =
			    ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			/* Not strndup: "\0" in a quoted scalar is a NUL that
			 * must be seen (and refused) later, not cut at. */
			if ((x->nodes[idx].val =
			    malloc(ev.data.scalar.length + 1)) == NULL) {
				x->oom = x->fatal = true;
				break;
			}
			memcpy(x->nodes[idx].val, ev.data.scalar.value,
			    ev.data.scalar.length);
			x->nodes[idx].val[ev.data.scalar.length] = '\0';
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == CFG_MAX_DEPTH) {
				cfg_err(x, line, "nesting deeper than %d "
				    "levels", CFG_MAX_DEPTH);
				x->fatal = true;
				break;
			}
			if (ev.type == YAML_SEQUENCE_START_EVENT)
				cfg_check_props(x, line,
				    ev.data.sequence_start.anchor,
				    ev.data.sequence_start.tag);
			else
				cfg_check_props(x, line,
				    ev.data.mapping_start.anchor,
				    ev.data.mapping_start.tag);
			idx = cfg_node_new(x, depth ? stack[depth - 1] : -1,
			    ev.type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ,
			    line);
			if (idx < 0) {
				x->fatal = true;
				break;
			}
			stack[depth++] = idx;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
}

/* ------------------------------------------------------------------ */
/* Scalars */

/* A YAML null: an empty plain scalar, ~ or null. */
static bool
cfg_is_null(const struct node *n)
{
	if (n->kind != N_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->val, "~") == 0 ||
	    strcmp(n->val, "null") == 0 || strcmp(n->val, "Null") == 0 ||
	    strcmp(n->val, "NULL") == 0;
}

/*
 * Parse a plain decimal integer: an optional sign and digits, no leading
 * zeros (YAML 1.1 would read 010 as octal; refusing it avoids guessing).
 * Returns 0 with *out, 1 if it is an integer too large for long long, -1
 * if it is not an integer at all.
 */
static int
cfg_parse_int(const struct node *n, long long *out)
{
	const char	*s = n->val;
	size_t		 i = 0;
	bool		 neg = false;
	unsigned long long v = 0;
	bool		 big = false;

	if (n->kind != N_SCALAR || !n->plain || n->len == 0)
		return -1;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i++;
	}
	if (i == n->len)
		return -1;
	if (s[i] == '0' && i + 1 < n->len)
		return -1;
	for (; i < n->len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (ULLONG_MAX - 9) / 10)
			big = true;
		else
			v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (big || v > (unsigned long long)LLONG_MAX)
		return 1;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

/*
 * An integer within key->min..key->max, or a problem recorded at the node
 * and false.  path names the key in messages.
 */
static bool
cfg_get_int(struct cfg_ctx *x, const struct node *v, const char *path,
    long long min, long long max, long long *out)
{
	int	 r = cfg_parse_int(v, out);

	if (r < 0) {
		cfg_err(x, v->line, "expected an integer for '%s'", path);
		return false;
	}
	if (r > 0 || *out < min || *out > max) {
		cfg_err(x, v->line, "'%s' must be between %lld and %lld",
		    path, min, max);
		return false;
	}
	return true;
}

/*
 * A non-empty string without NUL: any scalar that is not null (a plain 25
 * is the string "25").  Returns the node's text or NULL with a problem
 * recorded.
 */
static const char *
cfg_get_str(struct cfg_ctx *x, const struct node *v, const char *path)
{
	if (v->kind != N_SCALAR || cfg_is_null(v)) {
		cfg_err(x, v->line, "expected a string for '%s'", path);
		return NULL;
	}
	if (v->len == 0) {
		cfg_err(x, v->line, "'%s' must not be empty", path);
		return NULL;
	}
	if (memchr(v->val, '\0', v->len) != NULL) {
		cfg_err(x, v->line, "'%s' must not contain NUL characters",
		    path);
		return NULL;
	}
	return v->val;
}

/* true/false (and yes/no, on/off), unquoted. */
static bool
cfg_get_bool(struct cfg_ctx *x, const struct node *v, const char *path,
    bool *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };

	if (v->kind == N_SCALAR && v->plain) {
		for (size_t i = 0; i < nitems(yes); i++) {
			if (strcasecmp(v->val, yes[i]) == 0) {
				*out = true;
				return true;
			}
			if (strcasecmp(v->val, no[i]) == 0) {
				*out = false;
				return true;
			}
		}
	}
	cfg_err(x, v->line, "expected true or false for '%s'", path);
	return false;
}

/*
 * A file mode, always read as octal whether written 0660, 660, "0660" or
 * 0o660 (like systemd's SocketMode=): at most 0777.  0666 is allowed on
 * purpose: what a peer may do is decided by its credentials
 * (SO_PEERCRED), and a peer that is not an admin may only ping, ask for
 * the status and log in -- which is what local web backends need.
 */
static bool
cfg_get_mode(struct cfg_ctx *x, const struct node *v, const char *path,
    mode_t *out)
{
	const char	*s = v->val;
	size_t		 len = v->len;
	unsigned	 m = 0;

	if (v->kind != N_SCALAR)
		goto bad;
	if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 5)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			goto bad;
		m = m * 8 + (unsigned)(s[i] - '0');
	}
	if (m > 0777)
		goto bad;
	*out = (mode_t)m;
	return true;
bad:
	cfg_err(x, v->line, "'%s' must be an octal mode like 0660 (at most "
	    "0777)", path);
	return false;
}

/*
 * Look a group name up (NSS may block: load time only).  Returns 1 with
 * *gid, 0 if there is no such group, -1 on a lookup error (errno set).
 */
static int
cfg_group_gid(const char *name, gid_t *gid)
{
	struct group	 gr, *res = NULL;
	char		*buf = NULL, *nb;
	size_t		 size = 1024;
	int		 rc;

	for (;;) {
		if ((nb = realloc(buf, size)) == NULL) {
			free(buf);
			errno = ENOMEM;
			return -1;
		}
		buf = nb;
		rc = getgrnam_r(name, &gr, buf, size, &res);
		if (rc != ERANGE || size >= 1024 * 1024)
			break;
		size *= 2;
	}
	if (rc == 0 && res != NULL)
		*gid = res->gr_gid;
	free(buf);
	if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF ||
	    rc == EPERM)
		return res != NULL ? 1 : 0;
	errno = rc;
	return -1;
}

/* Resolve a group named in the file, recording a problem if it fails. */
static bool
cfg_resolve_group(struct cfg_ctx *x, const struct node *v, const char *path,
    const char *name, gid_t *gid)
{
	char	 show[CFG_SHOW_MAX + 8];

	switch (cfg_group_gid(name, gid)) {
	case 1:
		return true;
	case 0:
		cfg_err(x, v->line, "unknown group '%s' in '%s'",
		    cfg_show(show, sizeof(show), v->val, v->len), path);
		return false;
	default:
		cfg_err(x, v->line, "cannot look up group '%s' in '%s': %s",
		    cfg_show(show, sizeof(show), v->val, v->len), path,
		    strerror(errno));
		return false;
	}
}

/* Parse dn with libldap; the DN (free with ldap_dnfree) or NULL. */
static LDAPDN
cfg_dn_parse(const char *dn)
{
	LDAPDN	 d = NULL;

	if (ldap_str2dn(dn, &d, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
		if (d != NULL)
			ldap_dnfree(d);
		return NULL;
	}
	return d;
}

/* ------------------------------------------------------------------ */
/* Lists */

/* Replace *dst with a copy of s; false if out of memory. */
static bool
cfg_set_str(struct cfg_ctx *x, char **dst, const char *s)
{
	char	*c = NULL;

	if (s != NULL && (c = strdup(s)) == NULL) {
		x->oom = true;
		return false;
	}
	free(*dst);
	*dst = c;
	return true;
}

static void
cfg_strs_free(struct cfg_strs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Number of items in a sequence node. */
static size_t
cfg_seq_len(const struct cfg_ctx *x, const struct node *v)
{
	size_t	 n = 0;

	for (int i = v->first; i >= 0; i = x->nodes[i].next)
		n++;
	return n;
}

/*
 * A sequence of at most max items (null is an empty one); false with a
 * problem otherwise.  The cap matters for groups: each one is an NSS
 * lookup, which may be slow.
 */
static bool
cfg_is_seq(struct cfg_ctx *x, const struct node *v, const char *path,
    size_t max)
{
	if (v->kind != N_SEQ && !cfg_is_null(v)) {
		cfg_err(x, v->line, "expected a list for '%s'", path);
		return false;
	}
	if (v->kind == N_SEQ && cfg_seq_len(x, v) > max) {
		cfg_err(x, v->line, "'%s' may list at most %zu entries", path,
		    max);
		return false;
	}
	return true;
}

/* ldap.uris: a non-empty list of ldap://, ldaps:// or ldapi:// URLs. */
static void
cfg_set_uris(struct cfg_ctx *x, const struct node *v, const char *path)
{
	static const char *const schemes[] = { "ldap://", "ldaps://",
	    "ldapi://" };
	struct cfg_strs	 l = { NULL, 0 };
	char		 show[CFG_SHOW_MAX + 8];
	bool		 ok = true;

	if (!cfg_is_seq(x, v, path, CFG_MAX_URIS))
		return;
	if (v->kind != N_SEQ || v->first < 0) {
		cfg_err(x, v->line, "'%s' must list at least one URI", path);
		return;
	}
	if ((l.v = calloc(cfg_seq_len(x, v), sizeof(*l.v))) == NULL) {
		x->oom = true;
		return;
	}
	for (int i = v->first; i >= 0; i = x->nodes[i].next) {
		const struct node *e = &x->nodes[i];
		const char	*s;
		LDAPURLDesc	*lud = NULL;
		bool		 known = false;

		if (e->kind == N_ALIAS) {
			ok = false;
			continue;
		}
		if ((s = cfg_get_str(x, e, path)) == NULL) {
			ok = false;
			continue;
		}
		for (size_t k = 0; k < nitems(schemes); k++)
			if (strncasecmp(s, schemes[k], strlen(schemes[k])) == 0)
				known = true;
		if (!known) {
			cfg_err(x, e->line, "'%s' entry \"%s\" must start with "
			    "ldap://, ldaps:// or ldapi://", path,
			    cfg_show(show, sizeof(show), e->val, e->len));
			ok = false;
			continue;
		}
		if (ldap_url_parse(s, &lud) != LDAP_URL_SUCCESS) {
			cfg_err(x, e->line, "'%s' entry \"%s\" is not a valid "
			    "LDAP URI", path,
			    cfg_show(show, sizeof(show), e->val, e->len));
			ok = false;
			continue;
		}
		ldap_free_urldesc(lud);
		if ((l.v[l.n] = strdup(s)) == NULL) {
			x->oom = true;
			ok = false;
			break;
		}
		l.n++;
	}
	if (!ok) {
		cfg_strs_free(&l);
		return;
	}
	cfg_strs_free(&x->cfg->ldap_uris);
	x->cfg->ldap_uris = l;
}

/* admins.uids: integers 0 .. 4294967294 ((uid_t)-1 means "no uid"). */
static void
cfg_set_uids(struct cfg_ctx *x, const struct node *v, const char *path,
    const struct cfg_key *k)
{
	uid_t		*uids = NULL;
	size_t		 n = 0;
	bool		 ok = true;

	if (!cfg_is_seq(x, v, path, CFG_MAX_UIDS))
		return;
	if (v->kind == N_SEQ && v->first >= 0 &&
	    (uids = calloc(cfg_seq_len(x, v), sizeof(*uids))) == NULL) {
		x->oom = true;
		return;
	}
	for (int i = v->kind == N_SEQ ? v->first : -1; i >= 0;
	    i = x->nodes[i].next) {
		const struct node *e = &x->nodes[i];
		long long	 u;
		int		 r;

		if (e->kind == N_ALIAS) {
			ok = false;
			continue;
		}
		if ((r = cfg_parse_int(e, &u)) < 0) {
			cfg_err(x, e->line, "expected an integer in '%s'",
			    path);
			ok = false;
		} else if (r > 0 || u < k->min || u > k->max) {
			cfg_err(x, e->line, "'%s' entries must be between "
			    "%lld and %lld", path, k->min, k->max);
			ok = false;
		} else
			uids[n++] = (uid_t)u;
	}
	if (!ok) {
		free(uids);
		return;
	}
	free(x->cfg->admin_uids);
	x->cfg->admin_uids = uids;
	x->cfg->n_admin_uids = n;
}

/* admins.groups: group names, each resolved to a gid now. */
static void
cfg_set_groups(struct cfg_ctx *x, const struct node *v, const char *path)
{
	struct cfg_strs	 l = { NULL, 0 };
	gid_t		*gids = NULL;
	size_t		 n;
	bool		 ok = true;

	if (!cfg_is_seq(x, v, path, CFG_MAX_GROUPS))
		return;
	n = v->kind == N_SEQ ? cfg_seq_len(x, v) : 0;
	if (n > 0 && ((l.v = calloc(n, sizeof(*l.v))) == NULL ||
	    (gids = calloc(n, sizeof(*gids))) == NULL)) {
		x->oom = true;
		goto fail;
	}
	for (int i = v->kind == N_SEQ ? v->first : -1; i >= 0;
	    i = x->nodes[i].next) {
		const struct node *e = &x->nodes[i];
		const char	*s;

		if (e->kind == N_ALIAS) {
			ok = false;
			continue;
		}
		if ((s = cfg_get_str(x, e, path)) == NULL ||
		    !cfg_resolve_group(x, e, path, s, &gids[l.n])) {
			ok = false;
			continue;
		}
		if ((l.v[l.n] = strdup(s)) == NULL) {
			x->oom = true;
			goto fail;
		}
		l.n++;
	}
	if (!ok)
		goto fail;
	cfg_strs_free(&x->cfg->admin_groups);
	free(x->cfg->admin_gids);
	x->cfg->admin_groups = l;
	x->cfg->admin_gids = gids;
	x->cfg->n_admin_gids = l.n;
	return;
fail:
	cfg_strs_free(&l);
	free(gids);
}

/* ------------------------------------------------------------------ */
/* The walk */

static void	cfg_walk_map(struct cfg_ctx *, const struct node *, size_t,
		    const struct cfg_key *, const char *);

/* Report the required keys of table (and its sections) as missing. */
static void
cfg_missing(struct cfg_ctx *x, size_t line, const struct cfg_key *table,
    const char *prefix, const bool *seen)
{
	char	 path[128];

	for (size_t i = 0; table[i].name != NULL; i++) {
		const struct cfg_key *k = &table[i];

		if (seen != NULL && seen[i])
			continue;
		snprintf(path, sizeof(path), "%s%s%s", prefix,
		    *prefix ? "." : "", k->name);
		if (k->type == K_MAP)
			cfg_missing(x, line, k->sub, path, NULL);
		else if (k->flags & F_REQUIRED)
			cfg_err(x, line, "missing required key '%s'", path);
	}
}

/*
 * systemd's LoadCredential= copies a secret into a directory of the
 * service's own and names it in $CREDENTIALS_DIRECTORY; the directory's
 * path is only known at run time.  So a value of a F_CREDS key that starts
 * with "${CREDENTIALS_DIRECTORY}/" or "%d/" (systemd's specifier for it)
 * has that prefix replaced by the variable's value, which must be an
 * absolute path.  Nothing else in the value is expanded; a value starting
 * with any other "${" is refused, as a misspelt variable would otherwise
 * become a path that does not exist.  Returns the path to store
 * (malloc'd) or NULL with a problem recorded.
 */
static char *
cfg_expand_creds(struct cfg_ctx *x, const struct node *v, const char *path,
    const char *s)
{
	static const char *const prefixes[] = { "${CREDENTIALS_DIRECTORY}/",
	    "%d/" };
	const char	*dir, *rest = NULL;
	char		*out;

	for (size_t i = 0; i < nitems(prefixes); i++)
		if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
			rest = s + strlen(prefixes[i]);
	if (rest == NULL) {
		if (strncmp(s, "${", 2) == 0) {
			cfg_err(x, v->line, "'%s': only "
			    "${CREDENTIALS_DIRECTORY} is expanded", path);
			return NULL;
		}
		if ((out = strdup(s)) == NULL)
			x->oom = true;
		return out;
	}
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (dir == NULL || dir[0] != '/') {
		cfg_err(x, v->line, "'%s' names the credentials directory, but "
		    "CREDENTIALS_DIRECTORY is %s (LoadCredential= in the "
		    "systemd unit sets it)", path, dir == NULL ? "not set" :
		    "not an absolute path");
		return NULL;
	}
	if (*rest == '\0') {
		cfg_err(x, v->line, "'%s' names the credentials directory but "
		    "no file in it", path);
		return NULL;
	}
	if (asprintf(&out, "%s%s%s", dir,
	    dir[strlen(dir) - 1] == '/' ? "" : "/", rest) < 0) {
		x->oom = true;
		return NULL;
	}
	if (strlen(out) >= PATH_MAX) {
		cfg_err(x, v->line, "'%s' is too long once expanded", path);
		free(out);
		return NULL;
	}
	return out;
}

/* Set one known key k from its value node v. */
static void
cfg_set(struct cfg_ctx *x, const struct cfg_key *k, const struct node *key,
    const struct node *v, const char *path)
{
	struct cfg	*c = x->cfg;
	void		*dst = (char *)c + k->off;
	const char	*s;
	long long	 n;
	LDAPDN		 dn;
	gid_t		 gid;

	if (k->kid != KID_NONE)
		x->kline[k->kid] = key->line;
	if (v->kind == N_ALIAS)
		return;		/* already refused */
	if ((k->flags & F_NULLABLE) && k->type != K_MAP && cfg_is_null(v)) {
		free(*(char **)dst);
		*(char **)dst = NULL;
		if (k->type == K_GROUP)
			c->socket_gid = (gid_t)-1;
		return;
	}
	switch (k->type) {
	case K_MAP:
		if (cfg_is_null(v)) {
			cfg_missing(x, key->line, k->sub, path, NULL);
			return;
		}
		if (v->kind != N_MAP) {
			cfg_err(x, v->line, "expected a mapping for '%s'",
			    path);
			return;
		}
		cfg_walk_map(x, v, key->line, k->sub, path);
		return;
	case K_STR:
		if ((s = cfg_get_str(x, v, path)) == NULL)
			return;
		if ((k->flags & F_SUNPATH) &&
		    v->len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			cfg_err(x, v->line, "'%s' is too long for a Unix "
			    "socket (at most %zu bytes)", path,
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return;
		}
		if (k->flags & F_CREDS) {
			char	*e;

			if ((e = cfg_expand_creds(x, v, path, s)) != NULL) {
				free(*(char **)dst);
				*(char **)dst = e;
			}
			return;
		}
		(void)cfg_set_str(x, dst, s);
		return;
	case K_DN:
		if ((s = cfg_get_str(x, v, path)) == NULL)
			return;
		if ((dn = cfg_dn_parse(s)) == NULL) {
			cfg_err(x, v->line, "'%s' is not a valid DN", path);
			return;
		}
		ldap_dnfree(dn);
		(void)cfg_set_str(x, dst, s);
		return;
	case K_UINT:
		if (cfg_get_int(x, v, path, k->min, k->max, &n))
			*(unsigned *)dst = (unsigned)n;
		return;
	case K_SIZE:
		if (cfg_get_int(x, v, path, k->min, k->max, &n))
			*(size_t *)dst = (size_t)n;
		return;
	case K_LONG:
		if (cfg_get_int(x, v, path, k->min, k->max, &n))
			*(long *)dst = (long)n;
		return;
	case K_BOOL:
		(void)cfg_get_bool(x, v, path, dst);
		return;
	case K_MODE:
		(void)cfg_get_mode(x, v, path, dst);
		return;
	case K_GROUP:
		if ((s = cfg_get_str(x, v, path)) == NULL ||
		    !cfg_resolve_group(x, v, path, s, &gid))
			return;
		if (cfg_set_str(x, dst, s))
			c->socket_gid = gid;
		return;
	case K_GROUPS:
		cfg_set_groups(x, v, path);
		return;
	case K_UIDS:
		cfg_set_uids(x, v, path, k);
		return;
	case K_URIS:
		cfg_set_uris(x, v, path);
		return;
	case K_LEVEL:
		if (v->kind != N_SCALAR || cfg_is_null(v) ||
		    strlen(v->val) != v->len ||
		    log_parse_level(v->val, dst) != 0)
			cfg_err(x, v->line, "'%s' must be one of err, warning, "
			    "notice, info, debug", path);
		return;
	}
}

/*
 * Walk mapping m against table: unknown and duplicate keys are problems,
 * known keys are set, required keys not seen are reported at line (the
 * line of the key naming this mapping, or 1 for the top level).
 */
static void
cfg_walk_map(struct cfg_ctx *x, const struct node *m, size_t line,
    const struct cfg_key *table, const char *prefix)
{
	bool	 seen[CFG_MAX_KEYS] = { false };
	char	 path[128], show[CFG_SHOW_MAX + 8];

	for (int ki = m->first, next; ki >= 0; ki = next) {
		const struct node *key = &x->nodes[ki], *v;
		const struct cfg_key *k = NULL;
		bool		 dup = false;
		size_t		 i;

		if (key->next < 0)
			break;		/* cannot happen: keys have values */
		v = &x->nodes[key->next];
		next = v->next;
		if (key->kind == N_ALIAS)
			continue;
		if (key->kind != N_SCALAR) {
			cfg_err(x, key->line, "keys must be strings%s%s",
			    *prefix ? " in " : "", prefix);
			continue;
		}
		snprintf(path, sizeof(path), "%s%s%s", prefix,
		    *prefix ? "." : "",
		    cfg_show(show, sizeof(show), key->val, key->len));
		/* The keys before this one.  Mappings are small here, and
		 * the event limit bounds the worst case. */
		for (int pi = m->first; pi != ki;
		    pi = x->nodes[x->nodes[pi].next].next) {
			const struct node *pk = &x->nodes[pi];

			if (pk->kind == N_SCALAR && pk->len == key->len &&
			    memcmp(pk->val, key->val, key->len) == 0) {
				cfg_err(x, key->line, "duplicate key '%s' "
				    "(first at line %zu)", path, pk->line);
				dup = true;
				break;
			}
		}
		if (dup)
			continue;
		for (i = 0; table[i].name != NULL; i++) {
			if (strlen(table[i].name) == key->len &&
			    memcmp(table[i].name, key->val, key->len) == 0) {
				k = &table[i];
				break;
			}
		}
		if (k == NULL) {
			cfg_err(x, key->line, "unknown key '%s'", path);
			continue;
		}
		seen[i] = true;
		cfg_set(x, k, key, v, path);
	}
	cfg_missing(x, line, table, prefix, seen);
}

/* ------------------------------------------------------------------ */
/* The secret */

/* Size of the mapping that holds the bind password. */
static size_t
cfg_secret_size(void)
{
	long	 pg = sysconf(_SC_PAGESIZE);
	size_t	 page = pg > 0 ? (size_t)pg : 4096;

	return (CFG_SECRET_MAX + 1 + page) / page * page;
}

/*
 * Memory for a secret: its own pages, kept out of core dumps
 * (MADV_DONTDUMP) and, best effort, out of swap (mlock).  NULL if out of
 * memory.  Free with cfg_secret_free, which wipes it.
 */
static char *
cfg_secret_alloc(void)
{
	size_t	 size = cfg_secret_size();
	void	*p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, size, MADV_DONTDUMP);
	(void)mlock(p, size);		/* RLIMIT_MEMLOCK may say no */
	return p;
}

static void
cfg_secret_free(char *p)
{
	size_t	 size = cfg_secret_size();

	if (p == NULL)
		return;
	explicit_bzero(p, size);
	(void)munlock(p, size);
	(void)munmap(p, size);
}

/* What is wrong with a secret file's permissions, or NULL. */
static const char *
cfg_secret_perm(mode_t mode)
{
	if (mode & S_IROTH)
		return "readable by others";
	if (mode & S_IRGRP)
		return "readable by its group";
	if (mode & S_IWOTH)
		return "writable by others";
	if (mode & S_IWGRP)
		return "writable by its group";
	if (mode & 077)
		return "accessible by group or others";
	return NULL;
}

/*
 * Read ldap.bind_password_file into secret memory: a regular file that
 * neither group nor others may access, not empty, at most CFG_SECRET_MAX
 * bytes, no NUL; one trailing newline ("\n" or "\r\n") is stripped.
 * Problems are recorded at line (where the key is).
 */
static void
cfg_read_secret(struct cfg_ctx *x, size_t line)
{
	struct cfg	*c = x->cfg;
	const char	*path = c->bind_password_file;
	struct stat	 st;
	const char	*why;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 r;
	int		 fd;

	/* O_NONBLOCK: a FIFO must not hang the load. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cfg_err(x, line, "bind_password_file %s: cannot open: %s",
		    path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0) {
		cfg_err(x, line, "bind_password_file %s: cannot stat: %s",
		    path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_err(x, line, "bind_password_file %s is not a regular file",
		    path);
		goto done;
	}
	if ((why = cfg_secret_perm(st.st_mode)) != NULL) {
		cfg_err(x, line, "bind_password_file %s is %s (mode %04o); "
		    "chmod 600 it", path, why, (unsigned)(st.st_mode & 07777));
		goto done;
	}
	if ((buf = cfg_secret_alloc()) == NULL) {
		x->oom = true;
		goto done;
	}
	/* Straight into the secret pages: no stdio buffer keeps a copy. */
	while (len <= CFG_SECRET_MAX) {
		r = read(fd, buf + len, CFG_SECRET_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cfg_err(x, line, "bind_password_file %s: cannot read: "
			    "%s", path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > CFG_SECRET_MAX) {
		cfg_err(x, line, "bind_password_file %s is too large (at most "
		    "%d bytes)", path, CFG_SECRET_MAX);
		goto done;
	}
	if (len > 0 && buf[len - 1] == '\n') {
		buf[--len] = '\0';
		if (len > 0 && buf[len - 1] == '\r')
			buf[--len] = '\0';
	}
	if (len == 0) {
		cfg_err(x, line, "bind_password_file %s is empty", path);
		goto done;
	}
	if (memchr(buf, '\0', len) != NULL) {
		cfg_err(x, line, "bind_password_file %s contains a NUL byte",
		    path);
		goto done;
	}
	buf[len] = '\0';
	cfg_secret_free(c->bind_password);
	c->bind_password = buf;
	c->bind_password_len = len;
	buf = NULL;
done:
	cfg_secret_free(buf);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Checks across keys */

/* Are two AVAs' attribute types and values equal, ignoring case? */
static bool
cfg_ava_eq(const LDAPAVA *a, const LDAPAVA *b)
{
	return a->la_attr.bv_len == b->la_attr.bv_len &&
	    a->la_value.bv_len == b->la_value.bv_len &&
	    strncasecmp(a->la_attr.bv_val, b->la_attr.bv_val,
	    a->la_attr.bv_len) == 0 &&
	    strncasecmp(a->la_value.bv_val, b->la_value.bv_val,
	    a->la_value.bv_len) == 0;
}

/*
 * Is dn equal to or below base?  Values compare without case: a
 * conservative stand-in for the real matching rules, fine for refusing a
 * counter inside people_dn.
 */
static bool
cfg_dn_within(LDAPDN dn, LDAPDN base)
{
	size_t	 nd = 0, nb = 0;

	while (dn[nd] != NULL)
		nd++;
	while (base[nb] != NULL)
		nb++;
	if (nb > nd)
		return false;
	for (size_t i = 0; i < nb; i++) {
		LDAPRDN	 r = dn[nd - nb + i], s = base[i];
		size_t	 j;

		for (j = 0; r[j] != NULL && s[j] != NULL; j++)
			if (!cfg_ava_eq(r[j], s[j]))
				return false;
		if (r[j] != NULL || s[j] != NULL)
			return false;
	}
	return true;
}

/*
 * counter_dn: derive "cn=otasdir-seats,<parent of people_dn>" unless set,
 * and refuse one inside people_dn (only accounts live there: every entry
 * under people_dn takes a seat).
 */
static void
cfg_check_counter(struct cfg_ctx *x)
{
	struct cfg	*c = x->cfg;
	LDAPDN		 people = NULL, counter = NULL;
	char		*parent = NULL;

	if (c->people_dn == NULL || (people = cfg_dn_parse(c->people_dn)) ==
	    NULL || people[0] == NULL)
		goto done;
	if (c->counter_dn == NULL) {
		if (people[1] == NULL) {
			cfg_err(x, x->kline[KID_PEOPLE_DN], "'ldap.people_dn' "
			    "has no parent entry; set 'ldap.counter_dn'");
			goto done;
		}
		if (ldap_dn2str(people + 1, &parent, LDAP_DN_FORMAT_LDAPV3) !=
		    LDAP_SUCCESS || parent == NULL) {
			x->oom = true;
			goto done;
		}
		if (asprintf(&c->counter_dn, "cn=otasdir-seats,%s", parent) <
		    0) {
			c->counter_dn = NULL;
			x->oom = true;
		}
		goto done;
	}
	if ((counter = cfg_dn_parse(c->counter_dn)) != NULL &&
	    counter[0] != NULL && cfg_dn_within(counter, people))
		cfg_err(x, x->kline[KID_COUNTER_DN], "'ldap.counter_dn' must "
		    "be outside 'ldap.people_dn'");
done:
	if (parent != NULL)
		ldap_memfree(parent);
	if (counter != NULL)
		ldap_dnfree(counter);
	if (people != NULL)
		ldap_dnfree(people);
}

/* Pairs that must be ordered: a maximum not below its minimum. */
static void
cfg_check_ranges(struct cfg_ctx *x)
{
	const struct cfg *c = x->cfg;
	size_t		 line;

	if (c->reconnect_max_ms < c->reconnect_min_ms) {
		line = x->kline[KID_RECONNECT_MAX] ?
		    x->kline[KID_RECONNECT_MAX] : x->kline[KID_RECONNECT_MIN];
		cfg_err(x, line, "'ldap.reconnect_max_ms' must be at least "
		    "'ldap.reconnect_min_ms' (%u)", c->reconnect_min_ms);
	}
	if (c->login_max_delay_s < c->login_base_delay_s) {
		line = x->kline[KID_AUTH_MAX] ? x->kline[KID_AUTH_MAX] :
		    x->kline[KID_AUTH_BASE];
		cfg_err(x, line, "'auth.max_delay_s' must be at least "
		    "'auth.base_delay_s' (%u)", c->login_base_delay_s);
	}
}

/* ------------------------------------------------------------------ */
/* Reading the file */

/*
 * Read the whole config file into a malloc'd, NUL-terminated buffer,
 * refusing anything but a regular file of at most CFG_MAX_FILE bytes
 * (checked with fstat before reading, and again while reading in case it
 * grows).  Returns the buffer or NULL with a problem recorded.
 */
static char *
cfg_read_file(struct cfg_ctx *x, size_t *lenp)
{
	struct stat	 st;
	char		*buf = NULL, *nb;
	size_t		 len = 0, cap;
	ssize_t		 r;
	int		 fd;

	fd = open(x->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cfg_err(x, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		cfg_err(x, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_err(x, 0, "not a regular file");
		goto fail;
	}
	if (st.st_size > CFG_MAX_FILE)
		goto big;
	/* Room for the size fstat gave, one byte to notice growth, and the
	 * NUL; grown (up to the limit) if the file grows meanwhile. */
	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap + 1)) == NULL) {
		x->oom = true;
		goto fail;
	}
	while (len <= CFG_MAX_FILE) {
		if (len == cap) {
			cap = cap * 2 > CFG_MAX_FILE + 1 ? CFG_MAX_FILE + 1 :
			    cap * 2;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				x->oom = true;
				goto fail;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cfg_err(x, 0, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > CFG_MAX_FILE)
		goto big;
	buf[len] = '\0';
	close(fd);
	*lenp = len;
	return buf;
big:
	cfg_err(x, 0, "too large (%lld bytes; at most %d)",
	    (long long)st.st_size > CFG_MAX_FILE ? (long long)st.st_size :
	    (long long)len, CFG_MAX_FILE);
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The API */

/* A struct cfg with every default set; NULL if out of memory. */
static struct cfg *
cfg_defaults(const char *path)
{
	struct cfg	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->socket_mode = 0660;
	c->socket_gid = (gid_t)-1;
	c->max_request_bytes = 65536;
	c->max_connections = 1024;
	c->max_inflight_conn = 64;
	c->max_inflight = 4096;
	c->idle_timeout_s = 300;
	c->max_reply_backlog = 1 * MiB;
	c->op_timeout_ms = 10000;
	c->connect_timeout_ms = 3000;
	c->reconnect_min_ms = 250;
	c->reconnect_max_ms = 30000;
	c->bind_connections = 4;
	c->reconcile_interval_s = 60;
	c->tls_verify = true;
	c->seats = 25;
	c->login_max_failures = 5;
	c->login_base_delay_s = 1;
	c->login_max_delay_s = 300;
	c->log_level = LOGL_INFO;
	c->shutdown_grace_ms = 10000;
	if ((c->file = strdup(path)) == NULL ||
	    (c->socket_path = strdup(OTASDIR_DEFAULT_SOCKET)) == NULL ||
	    (c->admin_uids = calloc(1, sizeof(*c->admin_uids))) == NULL) {
		cfg_free(c);
		return NULL;
	}
	c->admin_uids[0] = 0;
	c->n_admin_uids = 1;
	return c;
}

/*
 * Load and check path (see otasdird.h).  Problems are appended to errs in
 * file order; errs must be empty (zeroed) or hold earlier problems.
 */
int
cfg_load(const char *path, int flags, struct cfg **out,
    struct cfg_errors *errs)
{
	struct cfg_ctx	 x;
	char		*buf = NULL;
	size_t		 len = 0;
	int		 rc = -1;

	memset(&x, 0, sizeof(x));
	x.file = path;
	x.root = -1;
	if ((x.cfg = cfg_defaults(path)) == NULL) {
		x.oom = true;
		goto done;
	}
	if ((buf = cfg_read_file(&x, &len)) == NULL)
		goto done;
	cfg_parse(&x, buf, len);
	if (x.fatal)
		goto done;

	if (x.root < 0 || cfg_is_null(&x.nodes[x.root]))
		cfg_missing(&x, 1, cfg_top_keys, "", NULL);
	else if (x.nodes[x.root].kind != N_MAP)
		cfg_err(&x, x.nodes[x.root].line, "expected a mapping at the "
		    "top level");
	else
		cfg_walk_map(&x, &x.nodes[x.root], 1, cfg_top_keys, "");

	cfg_check_counter(&x);
	cfg_check_ranges(&x);
	if ((flags & CFG_LOAD_SECRET) && x.cfg->bind_password_file != NULL)
		cfg_read_secret(&x, x.kline[KID_PWFILE]);

	if (x.n_errs == 0 && !x.oom) {
		*out = x.cfg;
		x.cfg = NULL;
		rc = 0;
	}
done:
	if (rc != 0)
		cfg_err_flush(&x, errs);
	for (size_t i = 0; i < x.n_nodes; i++)
		free(x.nodes[i].val);
	free(x.nodes);
	free(buf);
	cfg_free(x.cfg);
	return rc;
}

/* Free a cfg and everything it holds; the bind password is wiped. */
void
cfg_free(struct cfg *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->socket_path);
	free(c->socket_group);
	cfg_strs_free(&c->ldap_uris);
	free(c->bind_dn);
	free(c->bind_password_file);
	cfg_secret_free(c->bind_password);
	free(c->people_dn);
	free(c->counter_dn);
	free(c->tls_ca_file);
	free(c->admin_uids);
	cfg_strs_free(&c->admin_groups);
	free(c->admin_gids);
	free(c->audit_path);
	free(c);
}

void
cfg_errors_free(struct cfg_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}
