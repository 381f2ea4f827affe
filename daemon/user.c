/*
 * user.c - the user.* methods: reading accounts from the view, and
 * creating, changing and deleting them in the directory.
 *
 * Reads (user.get, user.list) are answered at once from the in-memory
 * view (view.c) and never wait.  Writes go to the directory on the
 * service connection (ldc.c) and never block the loop: each handler keeps
 * its state in a small record, starts an asynchronous operation and goes
 * on in the operation's done callback.  Once the directory has said yes,
 * the view is updated at once (view_put / view_drop) so the next request
 * sees the change.
 *
 * Seats (seat.c): a create first reserves a seat and a delete first
 * announces a release; either hold is settled exactly once with the
 * number of entries really added or deleted, on every path.  Where the
 * outcome of a write is unknown (no answer in time, connection lost after
 * sending), a create counts as done and a delete as not done: the count
 * errs towards "used", and reconciliation heals it.
 *
 * Super admins: nobody may delete or demote themselves, or delete,
 * deactivate or demote the last active super admin.  The check and the
 * write must be one step, or two admins demoting the last two super
 * admins at the same moment would both pass it.  So every request that
 * could lower the number of active super admins (a delete, a
 * deactivation or a demotion of an account that is a super admin) runs
 * its check-and-write through one FIFO, one at a time; the next starts
 * only after the previous one's write has been answered and applied to
 * the view.  Between several otasdird processes this relies on their
 * views, which follow the directory within milliseconds (syncrepl):
 * two daemons racing inside that window could still both pass.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otasdird.h"

/* Rows of one user.import, and how many are created at once. */
#define USER_IMPORT_MAX		10000
#define USER_IMPORT_INFLIGHT	16
/* Invalid rows listed in an import's error (data.invalid_rows counts
 * them all). */
#define USER_IMPORT_ERRORS	100

/* The outcome of a step, as the client will be told. */
struct user_err {
	int		 code;		/* 0: success */
	const char	*reason;	/* data.reason; NULL for -32602/-32603 */
	const char	*field;		/* data.field for -32602 */
	char		 msg[512];
};

/* Where a directory write ended. */
enum user_outcome {
	UO_OK,			/* done */
	UO_FAILED,		/* refused or not sent: nothing changed */
	UO_UNKNOWN,		/* no answer: it may or may not have happened */
};

/* One account to create, from validated params (borrowed strings). */
struct user_row {
	const char	*username;
	const char	*full_name;
	const char	*email;
	const char	*password;	/* NULL: none */
	enum acct_status status;
	enum role	 role;
};

/*
 * One account being created: add, then (if a password was given) the
 * Password Modify operation, then, if that failed, a delete that undoes
 * the add.  done() runs exactly once, maybe before user_new_start()
 * returns.
 */
struct user_new {
	struct account	 acct;		/* what is added; strings owned */
	char		*password;	/* NULL: none; wiped when freed */
	size_t		 pwlen;
	char		*dn;
	uint64_t	 deadline_ms;	/* per step; 0: the configured one */
	uint64_t	 seq;		/* of the request, for logs */
	struct user_err	 err;		/* err.code 0: created */
	struct user_err	 pwerr;		/* why the password step failed */
	bool		 maybe;		/* an entry may be left behind */
	struct seat_hold *seat;		/* the reservation it is made on */
	void		(*done)(struct user_new *);
	void		*arg;
};

struct user_create {
	struct req	*r;
	struct user_new	 un;
	struct seat_hold *hold;
};

struct user_import {
	struct req	*r;
	struct user_new	*rows;
	size_t		 n;
	size_t		 next;		/* next row to start */
	size_t		 inflight;
	size_t		 finished;
	size_t		 ok;		/* rows created */
	size_t		 maybe;		/* rows that may have been created */
	struct seat_hold *hold;
	bool		 pumping;
};

enum user_change_kind {
	CH_UPDATE,
	CH_DELETE,
};

/* A user.update or user.delete in progress. */
struct user_change {
	TAILQ_ENTRY(user_change) entry;	/* the privileged FIFO */
	struct req	*r;
	enum user_change_kind kind;
	bool		 in_priv;	/* holds the privileged step */
	char		 username[USERNAME_MAX + 1];	/* as stored */
	char		*dn;
	/* update: the new values; NULL / ST_NONE / ROLE_NONE: unchanged */
	char		*full_name;
	char		*email;
	enum acct_status status;
	enum role	 role;
	struct account	 before;	/* the account when the request came;
					 * strings owned */
	struct seat_hold *hold;		/* delete */
};

TAILQ_HEAD(user_changes, user_change);

static struct user_changes user_privq = TAILQ_HEAD_INITIALIZER(user_privq);
static bool		 user_priv_busy;	/* a change holds the step */
static bool		 user_priv_pumping;

static void	user_change_free(struct user_change *);
static void	user_update_begin(struct user_change *);
static void	user_delete_begin(struct user_change *);

/* ------------------------------------------------------------------ */
/* outcomes, logs, audit, replies */

static void	user_err_set(struct user_err *, int code, const char *reason,
		    const char *field, const char *fmt, ...) PRINTF(5, 6);

static void
user_err_set(struct user_err *e, int code, const char *reason,
    const char *field, const char *fmt, ...)
{
	va_list	 ap;

	e->code = code;
	e->reason = reason;
	e->field = field;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static void
user_err_oom(struct user_err *e)
{
	user_err_set(e, RPC_INTERNAL_ERROR, NULL, NULL,
	    "internal error: out of memory");
}

/* The audit outcome of an error: its reason, or a name for the JSON-RPC
 * errors that have none. */
static const char *
user_outcome_name(const struct user_err *e)
{
	if (e->code == 0)
		return "ok";
	if (e->reason != NULL)
		return e->reason;
	return e->code == RPC_INVALID_PARAMS ? "invalid_params" :
	    "internal_error";
}

/* One info line per change or refusal: "user.create alice by uid 0 pid
 * 42 (admin): ok".  target must be a valid username or NULL. */
static void
user_log(const struct req *r, const char *target, const char *outcome,
    const char *detail)
{
	char	 actor[128];

	req_actor(r, actor, sizeof(actor));
	log_info("%s %s by %s: %s%s%s", r->method->name,
	    target != NULL ? target : "-", actor, outcome,
	    detail != NULL ? " " : "", detail != NULL ? detail : "");
}

/*
 * Wipe the passwords in r's params (the request's copy of what the client
 * sent: "password", and that of every row of "users") so that no freed
 * memory keeps one.  Every write method calls this before it replies.
 */
static void
user_wipe(struct req *r)
{
	const cJSON	*users, *row;
	cJSON		*pw;

	pw = cJSON_GetObjectItemCaseSensitive(r->params, "password");
	if (cJSON_IsString(pw) && pw->valuestring != NULL)
		explicit_bzero(pw->valuestring, strlen(pw->valuestring));
	users = cJSON_GetObjectItemCaseSensitive(r->params, "users");
	cJSON_ArrayForEach(row, users) {
		pw = cJSON_GetObjectItemCaseSensitive(row, "password");
		if (cJSON_IsString(pw) && pw->valuestring != NULL)
			explicit_bzero(pw->valuestring,
			    strlen(pw->valuestring));
	}
}

/* req_fail_internal for the write methods. */
static void
user_internal(struct req *r, const char *msg)
{
	user_wipe(r);
	req_fail_internal(r, msg);
}

/*
 * End r with error e: log it, audit it (extra is taken over, may be
 * NULL) and reply (data is taken over, may be NULL).  target must be a
 * validated username or NULL: it reaches the log.
 */
static void
user_fail(struct req *r, const char *target, const struct user_err *e,
    cJSON *data, cJSON *extra)
{
	const char	*outcome = user_outcome_name(e);

	user_wipe(r);
	if (e->code == RPC_INVALID_PARAMS && e->field != NULL) {
		if (data == NULL)
			data = cJSON_CreateObject();
		if (data != NULL)
			cJSON_AddStringToObject(data, "field", e->field);
		if (extra == NULL)
			extra = cJSON_CreateObject();
		if (extra != NULL)
			cJSON_AddStringToObject(extra, "field", e->field);
	}
	user_log(r, target, outcome, NULL);
	audit_log(r, target, outcome, extra);
	req_reply_error(r, e->code, e->reason, e->msg, data);
}

/* A -32602 for field; like req_fail_param, but logged and audited (for
 * the methods that change something). */
static void
user_fail_param(struct req *r, const char *field, const char *msg)
{
	struct user_err	 e;

	user_err_set(&e, RPC_INVALID_PARAMS, NULL, field,
	    "invalid params: %s %s", field, msg);
	user_fail(r, NULL, &e, NULL, NULL);
}

/* End r with a result (taken over): log, audit (extra taken), reply. */
static void
user_done(struct req *r, const char *target, cJSON *result, cJSON *extra,
    const char *detail)
{
	user_wipe(r);
	if (result == NULL) {
		cJSON_Delete(extra);
		req_fail_internal(r, "out of memory");
		return;
	}
	user_log(r, target, "ok", detail);
	audit_log(r, target, "ok", extra);
	req_reply_result(r, result);
}

/*
 * Say what a directory operation came to.  what names it for messages
 * ("creating alice").  Returns UO_OK, or fills e and returns UO_FAILED
 * (nothing changed) or UO_UNKNOWN (it may have happened).
 */
static enum user_outcome
user_ldap_err(uint64_t seq, const struct ldc_res *res, const char *what,
    struct user_err *e)
{
	const char	*diag = res->diag != NULL ? res->diag : "";

	if (res->rc == LDAP_SUCCESS)
		return UO_OK;
	if ((res->rc == LDC_ERR_DOWN || res->rc == LDC_ERR_TIMEOUT) &&
	    !res->sent) {
		user_err_set(e, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    NULL, "the directory is unavailable; nothing was changed "
		    "(%s was not sent)", what);
		return UO_FAILED;
	}
	if (res->rc == LDC_ERR_DOWN || res->rc == LDC_ERR_TIMEOUT) {
		user_err_set(e, RPC_TIMEOUT, REASON_TIMEOUT, NULL,
		    "%s while %s: the outcome is unknown; check with user.get "
		    "(or user.list) before trying again",
		    res->rc == LDC_ERR_TIMEOUT ? "the directory did not answer "
		    "in time" : "the directory connection was lost", what);
		return UO_UNKNOWN;
	}
	switch (res->rc) {
	case LDAP_NO_SUCH_OBJECT:
		user_err_set(e, RPC_NOT_FOUND, REASON_NOT_FOUND, NULL,
		    "no such account (while %s)", what);
		break;
	case LDAP_ALREADY_EXISTS:
		user_err_set(e, RPC_ALREADY_EXISTS, REASON_ALREADY_EXISTS, NULL,
		    "the username is taken (while %s)", what);
		break;
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
		user_err_set(e, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    NULL, "the directory is busy or unavailable (%s); nothing "
		    "was changed", ldap_err2string(res->rc));
		break;
	case LDAP_INSUFFICIENT_ACCESS:
		log_warnx("req %llu: %s: insufficient access: the directory's "
		    "access rules do not let %s do this; install "
		    "schema/otasdir-access.conf (or .ldif) for people_dn%s%s",
		    (unsigned long long)seq, what, D.cfg->bind_dn,
		    diag[0] != '\0' ? ": " : "", diag);
		user_err_set(e, RPC_INTERNAL_ERROR, NULL, NULL,
		    "internal error: the directory refused access while %s "
		    "(see the otasdird log); nothing was changed", what);
		break;
	default:
		log_warnx("req %llu: %s: %s (%d)%s%s", (unsigned long long)seq,
		    what, ldap_err2string(res->rc), res->rc,
		    diag[0] != '\0' ? ": " : "", diag);
		user_err_set(e, RPC_INTERNAL_ERROR, NULL, NULL,
		    "internal error: the directory refused %s: %s; nothing "
		    "was changed", what, ldap_err2string(res->rc));
		break;
	}
	return UO_FAILED;
}

/* The outcome of a Password Modify: like user_ldap_err, except that a
 * password the directory's policy refuses is the client's to fix. */
static enum user_outcome
user_passwd_err(uint64_t seq, const struct ldc_res *res, const char *what,
    struct user_err *e)
{
	if (res->rc == LDAP_CONSTRAINT_VIOLATION ||
	    res->rc == LDAP_UNWILLING_TO_PERFORM) {
		user_err_set(e, RPC_INVALID_PARAMS, NULL, "password",
		    "invalid params: password was refused by the directory's "
		    "password policy: %s", res->diag != NULL &&
		    res->diag[0] != '\0' ? res->diag :
		    ldap_err2string(res->rc));
		return UO_FAILED;
	}
	return user_ldap_err(seq, res, what, e);
}

static void
user_err_unavailable(struct user_err *e)
{
	user_err_set(e, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE, NULL,
	    "the directory is unavailable; nothing was changed");
}

/* The service connection, if it can take a write now.  Writes fail at
 * once while it is down instead of waiting in its queue for their
 * deadline. */
static struct ldc *
user_ldc(void)
{
	return dir_up() ? dir_service() : NULL;
}

/* Is the view loaded?  If not, fill e. */
static bool
user_view_ok(struct user_err *e)
{
	if (view_ready())
		return true;
	user_err_set(e, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE, NULL,
	    "the accounts have not been loaded from the directory yet; "
	    "try again shortly");
	return false;
}

static void
user_not_found(struct user_err *e, const char *username)
{
	user_err_set(e, RPC_NOT_FOUND, REASON_NOT_FOUND, NULL,
	    "no account %s", username);
}

/* A copy of an account's strings; 0 or -1 (out of memory). */
static int
user_acct_copy(struct account *dst, const struct account *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->status = src->status;
	dst->role = src->role;
	if ((dst->username = strdup(src->username)) == NULL ||
	    (dst->full_name = strdup(src->full_name)) == NULL ||
	    (dst->email = strdup(src->email)) == NULL)
		return -1;
	return 0;
}

static void
user_acct_clear(struct account *a)
{
	free(a->username);
	free(a->full_name);
	free(a->email);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------ */
/* validation */

static enum acct_status
user_status_of(const char *s)
{
	return strcmp(s, STATUS_INACTIVE) == 0 ? ST_INACTIVE : ST_ACTIVE;
}

static enum role
user_role_of(const char *s)
{
	return strcmp(s, ROLE_NAME_SUPERADMIN) == 0 ? ROLE_SUPERADMIN :
	    ROLE_USER;
}

/*
 * The contract's email rule, plus ASCII only: the directory's mail
 * attribute (RFC 4524, IA5 syntax) holds nothing else, and a value slapd
 * would refuse is better refused here, with data.field.
 */
static const char *
user_valid_email(const char *s, size_t len)
{
	const char	*msg;

	if ((msg = valid_email(s, len)) != NULL)
		return msg;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return "must be ASCII (the directory's mail attribute "
			    "holds nothing else)";
	return NULL;
}

/* Check an optional string member of o with check(); NULL (and *out
 * NULL) when absent or null.  Returns NULL or a message. */
static const char *
user_opt_str(const cJSON *o, const char *name, const char **out,
    const char *(*check)(const char *, size_t))
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v))
		return NULL;
	if (!cJSON_IsString(v))
		return "must be a string";
	*out = v->valuestring;
	return check(v->valuestring, strlen(v->valuestring));
}

/*
 * Check the params of one account to create (user.create's params or a
 * row of user.import) into row (borrowing o's strings).  With strict,
 * o may be anything and may hold no other members (method.c has already
 * checked user.create's).  Returns 0, or -1 with *field and *msg.
 */
static int
user_row_check(const cJSON *o, bool strict, struct user_row *row,
    const char **field, const char **msg)
{
	static const struct {
		const char	*name;
		bool		 required;
		const char	*(*check)(const char *, size_t);
	} fields[] = {
		{ "username", true, valid_username },
		{ "full_name", true, valid_full_name },
		{ "email", true, user_valid_email },
		{ "password", false, valid_password },
		{ "status", false, valid_status },
		{ "role", false, valid_role },
	};
	const char	*v[nitems(fields)];

	memset(row, 0, sizeof(*row));
	if (strict) {
		if (!cJSON_IsObject(o)) {
			*field = "users";
			*msg = "must hold objects (one account each)";
			return -1;
		}
		for (const cJSON *m = o->child; m != NULL; m = m->next) {
			size_t	 i;

			for (i = 0; i < nitems(fields); i++)
				if (strcmp(m->string, fields[i].name) == 0)
					break;
			if (i == nitems(fields)) {
				*field = m->string;
				*msg = "is not a field of an account";
				return -1;
			}
		}
	}
	for (size_t i = 0; i < nitems(fields); i++) {
		*field = fields[i].name;
		if ((*msg = user_opt_str(o, fields[i].name, &v[i],
		    fields[i].check)) != NULL)
			return -1;
		if (v[i] == NULL && fields[i].required) {
			*msg = "is required";
			return -1;
		}
	}
	row->username = v[0];
	row->full_name = v[1];
	row->email = v[2];
	row->password = v[3];
	row->status = v[4] != NULL ? user_status_of(v[4]) : ST_ACTIVE;
	row->role = v[5] != NULL ? user_role_of(v[5]) : ROLE_USER;
	return 0;
}

/* Check the username param of r; NULL or a message. */
static const char *
user_param_username(const struct req *r, const char **u)
{
	*u = req_str(r, "username");
	return valid_username(*u, *u != NULL ? strlen(*u) : 0);
}

/* ------------------------------------------------------------------ */
/* user.get */

/* user.get: the account from the view, or not_found. */
void
user_get(struct req *r)
{
	const struct account	*a;
	struct user_err		 e;
	const char		*u, *msg;
	cJSON			*o;

	if ((msg = user_param_username(r, &u)) != NULL) {
		req_fail_param(r, "username", msg);
		return;
	}
	if (!user_view_ok(&e)) {
		req_reply_error(r, e.code, e.reason, e.msg, NULL);
		return;
	}
	if ((a = view_get(u)) == NULL) {
		user_not_found(&e, u);
		req_reply_error(r, e.code, e.reason, e.msg, NULL);
		return;
	}
	if ((o = account_json(a)) == NULL) {
		req_fail_internal(r, "out of memory");
		return;
	}
	req_reply_result(r, o);
}

/* ------------------------------------------------------------------ */
/* user.list: paging with an authenticated cursor */

static unsigned char
user_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/*
 * Does hay contain needle (nlen bytes, nlen > 0)?  ASCII letters compare
 * case-insensitively; every other byte (all of UTF-8 beyond ASCII) must
 * match exactly.
 */
static bool
user_contains(const char *hay, const char *needle, size_t nlen)
{
	const unsigned char	*h = (const unsigned char *)hay;
	const unsigned char	*nd = (const unsigned char *)needle;

	for (; *h != '\0'; h++) {
		size_t	 i;

		for (i = 0; i < nlen && h[i] != '\0' &&
		    user_lower(h[i]) == user_lower(nd[i]); i++)
			;
		if (i == nlen)
			return true;
	}
	return false;
}

/*
 * A page is written as JSON text directly, not as a cJSON tree: a page of
 * 1,000 accounts as 6,000 cJSON nodes took ~1.5 ms of the loop to build,
 * print and free, written out it takes ~0.1 ms (tests/bench: ping latency
 * while another client pages through 100,000 accounts).
 */
struct user_jbuf {
	char		*s;
	size_t		 len, cap;
	bool		 oom;
};

static void
user_jbuf_add(struct user_jbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t	 ncap = b->cap ? b->cap : 4096;
		char	*ns;

		while (b->len + n + 1 > ncap)
			ncap *= 2;
		if ((ns = realloc(b->s, ncap)) == NULL) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* s as a JSON string literal: quotes, backslashes and control characters
 * escaped, UTF-8 (already valid in the directory) as it is. */
static void
user_jbuf_str(struct user_jbuf *b, const char *s)
{
	const char	*run = s;

	user_jbuf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char	 c = (unsigned char)*s;
		char		 esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		user_jbuf_add(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			user_jbuf_add(b, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			user_jbuf_add(b, esc, 6);
		}
		run = s + 1;
	}
	user_jbuf_add(b, run, (size_t)(s - run));
	user_jbuf_add(b, "\"", 1);
}

/* The same object account_json() makes, as text. */
static void
user_jbuf_account(struct user_jbuf *b, const struct account *a)
{
	user_jbuf_add(b, "{\"username\":", 12);
	user_jbuf_str(b, a->username);
	user_jbuf_add(b, ",\"full_name\":", 13);
	user_jbuf_str(b, a->full_name);
	user_jbuf_add(b, ",\"email\":", 9);
	user_jbuf_str(b, a->email);
	user_jbuf_add(b, ",\"status\":", 10);
	user_jbuf_str(b, acct_status_name(a->status));
	user_jbuf_add(b, ",\"role\":", 8);
	user_jbuf_str(b, role_name(a->role));
	user_jbuf_add(b, "}", 1);
}

struct user_list_walk {
	enum acct_status status;	/* ST_NONE: any */
	const char	*search;	/* NULL: any */
	size_t		 search_len;
	long long	 limit;
	long long	 n;
	struct user_jbuf users;		/* the JSON array, being written */
	bool		 more;		/* a match beyond the page exists */
	char		 last[USERNAME_MAX + 1];
};

/* view_walk callback: add a to the page if it matches; stop one match
 * past the page, which says that a next page exists. */
static bool
user_list_visit(const struct account *a, void *arg)
{
	struct user_list_walk	*w = arg;

	if (w->status != ST_NONE && a->status != w->status)
		return true;
	if (w->search != NULL &&
	    !user_contains(a->username, w->search, w->search_len) &&
	    !user_contains(a->full_name, w->search, w->search_len) &&
	    !user_contains(a->email, w->search, w->search_len))
		return true;
	if (w->n == w->limit) {
		w->more = true;
		return false;
	}
	if (w->n > 0)
		user_jbuf_add(&w->users, ",", 1);
	user_jbuf_account(&w->users, a);
	snprintf(w->last, sizeof(w->last), "%s", a->username);
	w->n++;
	return !w->users.oom;
}

/*
 * user.list: one page of the accounts matching status and search, in
 * the view's order, after the cursor's position; next_cursor is null
 * when nothing matching follows.  Served from memory.
 */
void
user_list(struct req *r)
{
	struct user_list_walk	 w;
	struct user_err		 e;
	const char		*status, *cursor, *msg;
	char			 after[USERNAME_MAX + 1];
	char			 next[CURSOR_B64_MAX + 1];
	uint64_t		 filter;
	cJSON			*res = NULL;

	memset(&w, 0, sizeof(w));
	w.status = ST_NONE;
	if ((status = req_str(r, "status")) != NULL) {
		if ((msg = valid_status(status, strlen(status))) != NULL) {
			req_fail_param(r, "status", msg);
			return;
		}
		w.status = user_status_of(status);
	}
	/* An empty search is no search. */
	if ((w.search = req_str(r, "search")) != NULL &&
	    (w.search_len = strlen(w.search)) == 0)
		w.search = NULL;
	if (w.search != NULL &&
	    (msg = valid_search(w.search, w.search_len)) != NULL) {
		req_fail_param(r, "search", msg);
		return;
	}
	w.limit = req_int(r, "limit", LIST_LIMIT_DEFAULT);
	if (w.limit < 1 || w.limit > LIST_LIMIT_MAX) {
		req_fail_param(r, "limit", "must be 1-1000");
		return;
	}
	filter = cursor_filter(w.status, w.search);
	if ((cursor = req_str(r, "cursor")) != NULL &&
	    (msg = cursor_read(cursor, filter, after)) != NULL) {
		req_fail_param(r, "cursor", msg);
		return;
	}
	if (!user_view_ok(&e)) {
		req_reply_error(r, e.code, e.reason, e.msg, NULL);
		return;
	}
	user_jbuf_add(&w.users, "[", 1);
	view_walk(cursor != NULL ? after : NULL, user_list_visit, &w);
	user_jbuf_add(&w.users, "]", 1);
	if (w.users.oom || (res = cJSON_CreateObject()) == NULL)
		goto oom;
	if (cJSON_AddRawToObject(res, "users", w.users.s) == NULL)
		goto oom;
	free(w.users.s);
	w.users.s = NULL;
	if (w.more) {
		cursor_make(w.last, filter, next);
		cJSON_AddStringToObject(res, "next_cursor", next);
	} else
		cJSON_AddNullToObject(res, "next_cursor");
	req_reply_result(r, res);
	return;
oom:
	free(w.users.s);
	cJSON_Delete(res);
	req_fail_internal(r, "out of memory");
}

/* ------------------------------------------------------------------ */
/* creating one account: add, password, undo */

static void	user_new_added(struct ldc_res *, void *);
static void	user_new_pwset(struct ldc_res *, void *);
static void	user_new_undone(struct ldc_res *, void *);

/* Fill un from a validated row; 0 or -1 (out of memory). */
static int
user_new_fill(struct user_new *un, const struct user_row *row)
{
	memset(un, 0, sizeof(*un));
	un->acct.status = row->status;
	un->acct.role = row->role;
	if ((un->acct.username = strdup(row->username)) == NULL ||
	    (un->acct.full_name = strdup(row->full_name)) == NULL ||
	    (un->acct.email = strdup(row->email)) == NULL)
		return -1;
	if (row->password != NULL) {
		un->pwlen = strlen(row->password);
		if ((un->password = strdup(row->password)) == NULL)
			return -1;
	}
	return 0;
}

static void
user_new_clear(struct user_new *un)
{
	user_acct_clear(&un->acct);
	if (un->password != NULL) {
		explicit_bzero(un->password, un->pwlen);
		free(un->password);
	}
	free(un->dn);
	memset(un, 0, sizeof(*un));
}

/* Append an attribute with several values to m; 0 or -1. */
static int
user_mods_values(struct ldapmods *m, int op, const char *type,
    const char *const *values)
{
	LDAPMod	 *mod;
	char	**v;
	size_t	  n = 0;

	while (values[n] != NULL)
		n++;
	if (ldapmods_add(m, op, type, values[0]) != 0)
		return -1;
	mod = m->v[m->n - 1];
	if ((v = realloc(mod->mod_values, (n + 1) * sizeof(*v))) == NULL)
		return -1;
	mod->mod_values = v;
	for (size_t i = 1; i < n; i++) {
		v[i] = NULL;
		if ((v[i] = strdup(values[i])) == NULL)
			return -1;
	}
	v[n] = NULL;
	return 0;
}

/* The mods of a new account's entry; 0 or -1. */
static int
user_new_mods(const struct user_new *un, struct ldapmods *m)
{
	static const char *const classes[] = {
		"top", "person", "organizationalPerson", "inetOrgPerson",
		"otasAccount", NULL,
	};
	const struct account	*a = &un->acct;
	char			*sn;
	int			 rc = -1;

	if ((sn = name_surname(a->full_name)) == NULL)
		return -1;
	if (user_mods_values(m, LDAP_MOD_ADD, "objectClass", classes) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "uid", a->username) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "cn", a->full_name) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "displayName", a->full_name) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "sn", sn) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "mail", a->email) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "otasAccountStatus",
	    acct_status_name(a->status)) != 0 ||
	    ldapmods_add(m, LDAP_MOD_ADD, "otasRole", role_name(a->role)) != 0)
		goto out;
	rc = 0;
out:
	free(sn);
	return rc;
}

/*
 * Create the account in un: add the entry, set its password if one was
 * given, remove the entry again if that fails.  Calls un->done exactly
 * once, maybe before returning; un->err.code is 0 if the account now
 * exists as asked, un->maybe is set if an entry may be left otherwise.
 */
static void
user_new_start(struct user_new *un)
{
	struct ldapmods	 m = { NULL, 0, 0 };
	struct ldc	*l;
	struct ldc_call	 call = {
		.deadline_ms = un->deadline_ms,
		.done = user_new_added,
		.arg = un,
	};

	if ((l = user_ldc()) == NULL) {
		user_err_unavailable(&un->err);
		un->done(un);
		return;
	}
	if ((un->dn = user_dn(un->acct.username)) == NULL ||
	    user_new_mods(un, &m) != 0 ||
	    ldc_add(l, &call, un->dn, m.v) == NULL) {
		ldapmods_free(&m);
		user_err_oom(&un->err);
		un->done(un);
		return;
	}
	ldapmods_free(&m);
}

/* The entry is there and as asked. */
static void
user_new_created(struct user_new *un)
{
	un->err.code = 0;
	view_put(&un->acct);
	un->done(un);
}

/* The password step failed (un->pwerr says why): delete the entry. */
static void
user_new_undo(struct user_new *un)
{
	struct ldc	*l = dir_service();
	struct ldc_call	 call = {
		/* A fresh deadline: an undo cut short would leave the
		 * account without its password, so a create with a password
		 * may take up to twice ldap.timeout_ms when it has to undo. */
		.deadline_ms = 0,
		.done = user_new_undone,
		.arg = un,
	};
	struct ldc_res	 res;

	log_warnx("req %llu: setting the password of new account %s failed "
	    "(%s): removing the account again", (unsigned long long)un->seq,
	    un->acct.username, un->pwerr.msg);
	/* Before the delete: until it is answered the entry counts as
	 * maybe there, which over-counts and never under-counts. */
	seat_note_entry(un->seat, -1);
	if (l == NULL || ldc_delete(l, &call, un->dn) == NULL) {
		memset(&res, 0, sizeof(res));
		res.rc = LDC_ERR_DOWN;
		user_new_undone(&res, un);
	}
}

/* The add was answered: set the password next, or finish. */
static void
user_new_added(struct ldc_res *res, void *arg)
{
	struct user_new	*un = arg;
	struct ldc	*l;
	struct ldc_call	 call = {
		.deadline_ms = un->deadline_ms,
		.done = user_new_pwset,
		.arg = un,
	};
	char		 what[128];

	snprintf(what, sizeof(what), "creating %s", un->acct.username);
	switch (user_ldap_err(un->seq, res, what, &un->err)) {
	case UO_OK:
		break;
	case UO_UNKNOWN:
		un->maybe = true;
		un->done(un);
		return;
	case UO_FAILED:
		if (res->rc == LDAP_NO_SUCH_OBJECT) {
			/* On an add: the parent is missing. */
			log_warnx("req %llu: people_dn %s does not exist in "
			    "the directory", (unsigned long long)un->seq,
			    D.cfg->people_dn);
			user_err_set(&un->err, RPC_INTERNAL_ERROR, NULL, NULL,
			    "internal error: people_dn does not exist in the "
			    "directory (see the otasdird log); nothing was "
			    "changed");
		} else if (res->rc == LDAP_ALREADY_EXISTS)
			user_err_set(&un->err, RPC_ALREADY_EXISTS,
			    REASON_ALREADY_EXISTS, NULL, "username %s is "
			    "taken (usernames compare case-insensitively)",
			    un->acct.username);
		un->done(un);
		return;
	}
	seat_note_entry(un->seat, 1);
	if (un->password == NULL) {
		user_new_created(un);
		return;
	}
	/* dir_service(), not user_ldc(): the add went through, so the
	 * password goes into the same queue whatever the state now. */
	if ((l = dir_service()) == NULL ||
	    ldc_passwd(l, &call, un->dn, un->password, un->pwlen) == NULL) {
		user_err_set(&un->pwerr, RPC_INTERNAL_ERROR, NULL, NULL,
		    "internal error: the password operation could not be "
		    "started");
		user_new_undo(un);
	}
}

/* Password Modify was answered: done, or undo the add. */
static void
user_new_pwset(struct ldc_res *res, void *arg)
{
	struct user_new	*un = arg;
	char		 what[128];

	snprintf(what, sizeof(what), "setting the password of %s",
	    un->acct.username);
	if (user_passwd_err(un->seq, res, what, &un->pwerr) == UO_OK) {
		user_new_created(un);
		return;
	}
	user_new_undo(un);
}

/* The undo finished: say what is left. */
static void
user_new_undone(struct ldc_res *res, void *arg)
{
	struct user_new	*un = arg;
	struct user_err	 ue;
	const char	*u = un->acct.username;
	char		 what[128], *trim;
	bool		 unknown;

	snprintf(what, sizeof(what), "removing %s again", u);
	/* Only a delete that succeeded says the account is gone: after a
	 * failover, noSuchObject may come from a provider that replication
	 * has not yet brought the add to. */
	if (res->rc == LDAP_SUCCESS) {
		/* All or nothing: nothing.  The client gets the password
		 * step's error, with the outcome, which is now known. */
		un->err = un->pwerr;
		/* The password step's own "nothing was changed" is not the
		 * whole story: say what became of the account. */
		trim = strstr(un->pwerr.msg, "; nothing was changed");
		if (trim != NULL)
			*trim = '\0';
		if (un->pwerr.code == RPC_TIMEOUT)
			snprintf(un->err.msg, sizeof(un->err.msg), "the "
			    "directory did not answer in time while setting the "
			    "password of %s, so the account was removed again: "
			    "nothing was created", u);
		else
			snprintf(un->err.msg, sizeof(un->err.msg), "%.400s; %s "
			    "was removed again: nothing was created",
			    un->pwerr.msg, u);
		un->done(un);
		return;
	}
	unknown = user_ldap_err(un->seq, res, what, &ue) == UO_UNKNOWN ||
	    res->rc == LDAP_NO_SUCH_OBJECT;
	un->maybe = true;
	log_warnx("req %llu: account %s was added but its password could not "
	    "be set (%s) and removing it failed: %s",
	    (unsigned long long)un->seq, u, un->pwerr.msg, ue.msg);
	if (unknown)
		user_err_set(&un->err, RPC_TIMEOUT, REASON_TIMEOUT, NULL,
		    "%s was added, but its password could not be set and the "
		    "directory did not answer the removal in time: whether %s "
		    "exists (without a password) is unknown; check with "
		    "user.get, then set a password with user.set_password or "
		    "delete it", u, u);
	else
		user_err_set(&un->err, ue.code == RPC_DIR_UNAVAILABLE ||
		    un->pwerr.code == RPC_TIMEOUT ||
		    un->pwerr.code == RPC_DIR_UNAVAILABLE ? RPC_TIMEOUT :
		    RPC_INTERNAL_ERROR, ue.code == RPC_DIR_UNAVAILABLE ||
		    un->pwerr.code == RPC_TIMEOUT ||
		    un->pwerr.code == RPC_DIR_UNAVAILABLE ? REASON_TIMEOUT : NULL,
		    NULL, "%s was added, but its password could not be set "
		    "(%.150s) and removing it again failed (%.150s): the outcome "
		    "is that %s exists without a password; set one with "
		    "user.set_password or delete it", u, un->pwerr.msg, ue.msg,
		    u);
	un->done(un);
}

/* ------------------------------------------------------------------ */
/* user.create */

static void
user_create_free(struct user_create *uc)
{
	user_new_clear(&uc->un);
	free(uc);
}

/* The reply and audit data of a seat refusal (need: seats asked for). */
static void
user_seat_full(struct req *r, const char *target, unsigned need)
{
	struct user_err	 e;
	cJSON		*data = seat_limit_data(), *extra;
	const cJSON	*s = cJSON_GetObjectItemCaseSensitive(data, "seats");
	const cJSON	*u = cJSON_GetObjectItemCaseSensitive(data, "used");
	double		 seats = cJSON_IsNumber(s) ? s->valuedouble : -1;
	double		 used = cJSON_IsNumber(u) ? u->valuedouble : -1;

	if (need == 1)
		user_err_set(&e, RPC_SEAT_LIMIT, REASON_SEAT_LIMIT, NULL,
		    "no free seat: %.0f of %.0f seats are taken (inactive "
		    "accounts take seats too; deleting one frees one)", used,
		    seats);
	else {
		user_err_set(&e, RPC_SEAT_LIMIT, REASON_SEAT_LIMIT, NULL,
		    "not enough free seats: this needs %u, %.0f of %.0f are "
		    "taken; nothing was created", need, used, seats);
		if (data != NULL)
			cJSON_AddNumberToObject(data, "needed", need);
	}
	extra = data != NULL ? cJSON_Duplicate(data, 1) : NULL;
	user_fail(r, target, &e, data, extra);
}

/* A hold was refused for a reason other than a full licence: fill e. */
static void
user_seat_err(enum seat_status st, struct user_err *e, const char *nothing)
{
	switch (st) {
	case SEAT_UNAVAILABLE:
		user_err_set(e, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    NULL, "the directory is unavailable; %s", nothing);
		break;
	case SEAT_TIMEOUT:
		user_err_set(e, RPC_TIMEOUT, REASON_TIMEOUT, NULL,
		    "the directory did not answer in time while counting "
		    "seats; %s", nothing);
		break;
	default:
		user_err_set(e, RPC_INTERNAL_ERROR, NULL, NULL,
		    "internal error: the seat counter failed (see the otasdird "
		    "log); %s", nothing);
		break;
	}
}

/* The create finished: settle the seat (an entry that may exist counts)
 * and reply. */
static void
user_create_done(struct user_new *un)
{
	struct user_create	*uc = un->arg;
	struct req		*r = uc->r;

	seat_settle(uc->hold, un->err.code == 0 || un->maybe ? 1 : 0);
	uc->hold = NULL;
	if (un->err.code == 0) {
		cJSON	*extra = cJSON_CreateObject();

		if (extra != NULL) {
			cJSON_AddStringToObject(extra, "status",
			    acct_status_name(un->acct.status));
			cJSON_AddStringToObject(extra, "role",
			    role_name(un->acct.role));
			cJSON_AddBoolToObject(extra, "password",
			    un->password != NULL);
		}
		user_done(r, un->acct.username, account_json(&un->acct), extra,
		    NULL);
	} else
		user_fail(r, un->acct.username, &un->err, NULL, NULL);
	user_create_free(uc);
}

/* A reservation of need seats for target (NULL: a batch) was not
 * granted: reply why. */
static void
user_seat_refused(struct req *r, const char *target, unsigned need,
    enum seat_status st)
{
	struct user_err	 e;

	if (st == SEAT_FULL) {
		user_seat_full(r, target, need);
		return;
	}
	user_seat_err(st, &e, "nothing was created");
	user_fail(r, target, &e, NULL, NULL);
}

/* The seat reservation was answered: create, or refuse. */
static void
user_create_seated(enum seat_status st, struct seat_hold *hold, void *arg)
{
	struct user_create	*uc = arg;

	if (st == SEAT_OK) {
		uc->hold = hold;
		uc->un.seat = hold;
		user_new_start(&uc->un);
		return;
	}
	user_seat_refused(uc->r, uc->un.acct.username, 1, st);
	user_create_free(uc);
}

/*
 * user.create: validate, refuse a taken name (any case), reserve a seat,
 * then create (user_new_start); the seat is settled with what was added.
 */
void
user_create(struct req *r)
{
	const struct account	*a;
	struct user_create	*uc;
	struct user_row		 row;
	struct user_err		 e;
	const char		*field, *msg;

	if (user_row_check(r->params, false, &row, &field, &msg) != 0) {
		user_fail_param(r, field, msg);
		return;
	}
	if (!user_view_ok(&e)) {
		user_fail(r, row.username, &e, NULL, NULL);
		return;
	}
	if ((a = view_get(row.username)) != NULL) {
		user_err_set(&e, RPC_ALREADY_EXISTS, REASON_ALREADY_EXISTS,
		    NULL, "username %s is taken%s%s (usernames compare "
		    "case-insensitively)", row.username,
		    strcmp(a->username, row.username) != 0 ? " by " : "",
		    strcmp(a->username, row.username) != 0 ? a->username : "");
		user_fail(r, row.username, &e, NULL, NULL);
		return;
	}
	if ((uc = calloc(1, sizeof(*uc))) == NULL ||
	    user_new_fill(&uc->un, &row) != 0) {
		if (uc != NULL)
			user_create_free(uc);
		user_internal(r, "out of memory");
		return;
	}
	uc->r = r;
	uc->un.deadline_ms = r->deadline_ms;
	uc->un.seq = r->seq;
	uc->un.done = user_create_done;
	uc->un.arg = uc;
	seat_reserve(1, r->deadline_ms, user_create_seated, uc);
}

/* ------------------------------------------------------------------ */
/* the privileged FIFO */

/* Start queued privileged changes while none holds the step.  A change
 * may finish (and leave) before its begin function returns. */
static void
user_priv_pump(void)
{
	struct user_change	*ch;

	if (user_priv_pumping)
		return;
	user_priv_pumping = true;
	while (!user_priv_busy && (ch = TAILQ_FIRST(&user_privq)) != NULL) {
		TAILQ_REMOVE(&user_privq, ch, entry);
		user_priv_busy = true;
		ch->in_priv = true;
		if (ch->kind == CH_UPDATE)
			user_update_begin(ch);
		else
			user_delete_begin(ch);
	}
	user_priv_pumping = false;
}

static void
user_priv_enter(struct user_change *ch)
{
	TAILQ_INSERT_TAIL(&user_privq, ch, entry);
	user_priv_pump();
}

/* ------------------------------------------------------------------ */
/* user.update and user.delete */

/* A change of account a for r, with a snapshot of a; NULL if out of
 * memory. */
static struct user_change *
user_change_new(struct req *r, enum user_change_kind kind,
    const struct account *a)
{
	struct user_change	*ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	ch->r = r;
	ch->kind = kind;
	snprintf(ch->username, sizeof(ch->username), "%s", a->username);
	if (user_acct_copy(&ch->before, a) != 0 ||
	    (ch->dn = user_dn(a->username)) == NULL) {
		user_change_free(ch);
		return NULL;
	}
	return ch;
}

/* Free ch; if it held the privileged step, the next change may start. */
static void
user_change_free(struct user_change *ch)
{
	bool	 held = ch->in_priv;

	free(ch->dn);
	free(ch->full_name);
	free(ch->email);
	user_acct_clear(&ch->before);
	free(ch);
	if (held) {
		user_priv_busy = false;
		user_priv_pump();
	}
}

/* End a change with error e. */
static void
user_change_fail(struct user_change *ch, const struct user_err *e)
{
	user_fail(ch->r, ch->username, e, NULL, NULL);
	user_change_free(ch);
}

/* Did a change wait in the FIFO until its time was up? */
static bool
user_change_late(struct user_change *ch)
{
	struct user_err	 e;

	if (now_ms() < ch->r->deadline_ms)
		return false;
	user_err_set(&e, RPC_TIMEOUT, REASON_TIMEOUT, NULL,
	    "timed out waiting for another change of a super admin to "
	    "finish; nothing was changed");
	user_change_fail(ch, &e);
	return true;
}

/*
 * Would taking target's super admin rights away (delete, deactivate or
 * demote) leave no active super admin?  Fills e if so.  Only meaningful
 * inside the privileged step.
 */
static bool
user_last_superadmin(const struct account *target, struct user_err *e,
    const char *doing)
{
	if (target->role != ROLE_SUPERADMIN || target->status != ST_ACTIVE)
		return false;
	if (view_active_superadmins(target->username) > 0)
		return false;
	user_err_set(e, RPC_LAST_SUPERADMIN, REASON_LAST_SUPERADMIN, NULL,
	    "%s is the last active super admin: %s would leave nobody to "
	    "manage accounts; make another account an active super admin "
	    "first", target->username, doing);
	return true;
}

/* The modify was answered: update the view and reply. */
static void
user_update_done(struct ldc_res *res, void *arg)
{
	struct user_change	*ch = arg;
	const struct account	*cur;
	struct account		 a, base;
	struct user_err		 e;
	char			 what[128], detail[96];
	cJSON			*extra;

	snprintf(what, sizeof(what), "changing %s", ch->username);
	if (user_ldap_err(ch->r->seq, res, what, &e) != UO_OK) {
		if (res->rc == LDAP_NO_SUCH_OBJECT) {
			user_not_found(&e, ch->username);
			view_drop(ch->username);
		}
		user_change_fail(ch, &e);
		return;
	}
	/* The current entry (others may have changed other attributes
	 * meanwhile), with this change applied.  A copy: view_put() may
	 * free the strings of the entry it replaces. */
	cur = view_get(ch->username);
	if (user_acct_copy(&base, cur != NULL ? cur : &ch->before) != 0) {
		user_acct_clear(&base);
		user_internal(ch->r, "out of memory");
		user_change_free(ch);
		return;
	}
	a = base;
	if (ch->full_name != NULL)
		a.full_name = ch->full_name;
	if (ch->email != NULL)
		a.email = ch->email;
	if (ch->status != ST_NONE)
		a.status = ch->status;
	if (ch->role != ROLE_NONE)
		a.role = ch->role;
	/* view_put copies; a's strings belong to the view or to ch. */
	view_put(&a);
	if ((extra = cJSON_CreateObject()) != NULL) {
		cJSON	*f = cJSON_AddArrayToObject(extra, "changed");

		if (ch->full_name != NULL)
			cJSON_AddItemToArray(f, cJSON_CreateString("full_name"));
		if (ch->email != NULL)
			cJSON_AddItemToArray(f, cJSON_CreateString("email"));
		if (ch->status != ST_NONE) {
			cJSON_AddItemToArray(f, cJSON_CreateString("status"));
			cJSON_AddStringToObject(extra, "status",
			    acct_status_name(ch->status));
		}
		if (ch->role != ROLE_NONE) {
			cJSON_AddItemToArray(f, cJSON_CreateString("role"));
			cJSON_AddStringToObject(extra, "role",
			    role_name(ch->role));
		}
	}
	snprintf(detail, sizeof(detail), "(changed%s%s%s%s%s%s)",
	    ch->full_name != NULL ? " full_name" : "",
	    ch->email != NULL ? " email" : "",
	    ch->status != ST_NONE ? " status=" : "",
	    ch->status != ST_NONE ? acct_status_name(ch->status) : "",
	    ch->role != ROLE_NONE ? " role=" : "",
	    ch->role != ROLE_NONE ? role_name(ch->role) : "");
	user_done(ch->r, ch->username, account_json(&a), extra, detail);
	user_acct_clear(&base);
	user_change_free(ch);
}

/* The check-and-write of an update (inside the privileged step when it
 * takes super admin rights away). */
static void
user_update_begin(struct user_change *ch)
{
	const struct account	*a;
	struct ldapmods		 m = { NULL, 0, 0 };
	struct user_err		 e;
	struct ldc		*l;
	struct ldc_call		 call = {
		.deadline_ms = ch->r->deadline_ms,
		.done = user_update_done,
		.arg = ch,
	};
	char			*sn = NULL;
	int			 rc = 0;

	if (user_change_late(ch))
		return;
	if ((a = view_get(ch->username)) == NULL) {
		user_not_found(&e, ch->username);
		goto fail;
	}
	if ((ch->status == ST_INACTIVE &&
	    user_last_superadmin(a, &e, "deactivating it")) ||
	    (ch->role == ROLE_USER &&
	    user_last_superadmin(a, &e, "removing its super admin role")))
		goto fail;
	if ((l = user_ldc()) == NULL) {
		user_err_unavailable(&e);
		goto fail;
	}
	if (ch->full_name != NULL) {
		if ((sn = name_surname(ch->full_name)) == NULL)
			goto oom;
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "cn", ch->full_name);
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "displayName",
		    ch->full_name);
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "sn", sn);
	}
	if (ch->email != NULL)
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "mail", ch->email);
	if (ch->status != ST_NONE)
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "otasAccountStatus",
		    acct_status_name(ch->status));
	if (ch->role != ROLE_NONE)
		rc |= ldapmods_add(&m, LDAP_MOD_REPLACE, "otasRole",
		    role_name(ch->role));
	if (rc != 0 || ldc_modify(l, &call, ch->dn, m.v) == NULL)
		goto oom;
	ldapmods_free(&m);
	free(sn);
	return;
oom:
	user_err_oom(&e);
fail:
	ldapmods_free(&m);
	free(sn);
	user_change_fail(ch, &e);
}

/*
 * user.update: validate, find the account, refuse self-demotion; then
 * one modify of the given attributes (through the privileged FIFO when
 * it deactivates or demotes a super admin).  Nothing given: the account
 * as it is.
 */
void
user_update(struct req *r)
{
	const struct account	*a;
	struct user_change	*ch;
	struct user_err		 e;
	const char		*u, *msg, *name, *email, *status, *role;
	bool			 self, demote, deactivate;

	if ((msg = user_param_username(r, &u)) != NULL) {
		user_fail_param(r, "username", msg);
		return;
	}
	if ((msg = user_opt_str(r->params, "full_name", &name,
	    valid_full_name)) != NULL) {
		user_fail_param(r, "full_name", msg);
		return;
	}
	if ((msg = user_opt_str(r->params, "email", &email,
	    user_valid_email)) != NULL) {
		user_fail_param(r, "email", msg);
		return;
	}
	if ((msg = user_opt_str(r->params, "status", &status,
	    valid_status)) != NULL) {
		user_fail_param(r, "status", msg);
		return;
	}
	if ((msg = user_opt_str(r->params, "role", &role, valid_role)) !=
	    NULL) {
		user_fail_param(r, "role", msg);
		return;
	}
	if (!user_view_ok(&e)) {
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if ((a = view_get(u)) == NULL) {
		user_not_found(&e, u);
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	/* Nothing to change: the account as it is. */
	if (name == NULL && email == NULL && status == NULL && role == NULL) {
		cJSON	*o = account_json(a);

		if (o == NULL)
			user_internal(r, "out of memory");
		else
			req_reply_result(r, o);
		return;
	}
	self = r->who.kind == IDENT_ACCOUNT &&
	    strcasecmp(r->who.username, a->username) == 0;
	demote = role != NULL && user_role_of(role) == ROLE_USER &&
	    a->role == ROLE_SUPERADMIN;
	deactivate = status != NULL &&
	    user_status_of(status) == ST_INACTIVE && a->status == ST_ACTIVE;
	if (self && demote) {
		user_err_set(&e, RPC_LAST_SUPERADMIN, REASON_LAST_SUPERADMIN,
		    NULL, "you cannot remove your own super admin role; "
		    "another super admin must do it");
		user_fail(r, a->username, &e, NULL, NULL);
		return;
	}
	if ((ch = user_change_new(r, CH_UPDATE, a)) == NULL)
		goto oom;
	ch->status = status != NULL ? user_status_of(status) : ST_NONE;
	ch->role = role != NULL ? user_role_of(role) : ROLE_NONE;
	if ((name != NULL && (ch->full_name = strdup(name)) == NULL) ||
	    (email != NULL && (ch->email = strdup(email)) == NULL)) {
		user_change_free(ch);
		goto oom;
	}
	if (a->role == ROLE_SUPERADMIN && (demote || deactivate))
		user_priv_enter(ch);
	else
		user_update_begin(ch);
	return;
oom:
	user_internal(r, "out of memory");
}

/* The delete was answered: settle the release (1 only if it is known to
 * be gone), update the view and reply. */
static void
user_delete_done(struct ldc_res *res, void *arg)
{
	struct user_change	*ch = arg;
	struct user_err		 e;
	char			 what[128];
	cJSON			*o;

	snprintf(what, sizeof(what), "deleting %s", ch->username);
	switch (user_ldap_err(ch->r->seq, res, what, &e)) {
	case UO_OK:
		seat_settle(ch->hold, 1);
		view_drop(ch->username);
		if ((o = cJSON_CreateObject()) != NULL) {
			cJSON_AddStringToObject(o, "username", ch->username);
			cJSON_AddTrueToObject(o, "deleted");
		}
		user_done(ch->r, ch->username, o, NULL, NULL);
		break;
	case UO_UNKNOWN:
		/* Counted as not deleted: errs towards "used". */
		seat_settle(ch->hold, 0);
		user_fail(ch->r, ch->username, &e, NULL, NULL);
		break;
	case UO_FAILED:
		seat_settle(ch->hold, 0);
		if (res->rc == LDAP_NO_SUCH_OBJECT) {
			user_not_found(&e, ch->username);
			view_drop(ch->username);
		}
		user_fail(ch->r, ch->username, &e, NULL, NULL);
		break;
	}
	ch->hold = NULL;
	user_change_free(ch);
}

/* The seat release was recorded: delete the entry, or refuse. */
static void
user_delete_released(enum seat_status st, struct seat_hold *hold, void *arg)
{
	struct user_change	*ch = arg;
	struct user_err		 e;
	struct ldc		*l = dir_service();
	struct ldc_call		 call = {
		.deadline_ms = ch->r->deadline_ms,
		.done = user_delete_done,
		.arg = ch,
	};

	if (st != SEAT_OK) {
		user_seat_err(st, &e, "nothing was deleted");
		user_change_fail(ch, &e);
		return;
	}
	ch->hold = hold;
	if (l == NULL || ldc_delete(l, &call, ch->dn) == NULL) {
		seat_settle(hold, 0);
		ch->hold = NULL;
		if (l == NULL)
			user_err_unavailable(&e);
		else
			user_err_oom(&e);
		user_change_fail(ch, &e);
	}
}

/* The check-and-write of a delete (inside the privileged step when the
 * account is a super admin). */
static void
user_delete_begin(struct user_change *ch)
{
	const struct account	*a;
	struct user_err		 e;

	if (user_change_late(ch))
		return;
	if ((a = view_get(ch->username)) == NULL) {
		user_not_found(&e, ch->username);
		user_change_fail(ch, &e);
		return;
	}
	if (user_last_superadmin(a, &e, "deleting it")) {
		user_change_fail(ch, &e);
		return;
	}
	if (user_ldc() == NULL) {
		user_err_unavailable(&e);
		user_change_fail(ch, &e);
		return;
	}
	seat_release(1, ch->r->deadline_ms, user_delete_released, ch);
}

/*
 * user.delete checks, in order: the username (-32602), the confirmation
 * (-32005: before looking anything up, so a request without one never
 * depends on the directory), that the account exists (-32002), that it is
 * not the caller's own (-32008), and, in the privileged step, that it is
 * not the last active super admin (-32008).
 */
void
user_delete(struct req *r)
{
	const struct account	*a;
	struct user_change	*ch;
	struct user_err		 e;
	const char		*u, *msg, *confirm;

	if ((msg = user_param_username(r, &u)) != NULL) {
		user_fail_param(r, "username", msg);
		return;
	}
	confirm = req_str(r, "confirm");
	if (confirm == NULL || strcmp(confirm, u) != 0) {
		user_err_set(&e, RPC_CONFIRMATION, REASON_CONFIRMATION, NULL,
		    "confirmation required: deleting %s cannot be undone; "
		    "repeat the username in \"confirm\"", u);
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if (!user_view_ok(&e)) {
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if ((a = view_get(u)) == NULL) {
		user_not_found(&e, u);
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if (r->who.kind == IDENT_ACCOUNT &&
	    strcasecmp(r->who.username, a->username) == 0) {
		user_err_set(&e, RPC_LAST_SUPERADMIN, REASON_LAST_SUPERADMIN,
		    NULL, "you cannot delete your own account; another super "
		    "admin must do it");
		user_fail(r, a->username, &e, NULL, NULL);
		return;
	}
	if ((ch = user_change_new(r, CH_DELETE, a)) == NULL) {
		user_internal(r, "out of memory");
		return;
	}
	if (a->role == ROLE_SUPERADMIN)
		user_priv_enter(ch);
	else
		user_delete_begin(ch);
}

/* ------------------------------------------------------------------ */
/* user.set_password */

struct user_pw {
	struct req	*r;
	char		 username[USERNAME_MAX + 1];
};

/* Password Modify was answered: reply. */
static void
user_set_password_done(struct ldc_res *res, void *arg)
{
	struct user_pw	*pw = arg;
	struct user_err	 e;
	char		 what[128];
	cJSON		*o;

	snprintf(what, sizeof(what), "setting the password of %s",
	    pw->username);
	if (user_passwd_err(pw->r->seq, res, what, &e) == UO_OK) {
		if ((o = cJSON_CreateObject()) != NULL)
			cJSON_AddStringToObject(o, "username", pw->username);
		user_done(pw->r, pw->username, o, NULL, NULL);
	} else {
		if (res->rc == LDAP_NO_SUCH_OBJECT) {
			user_not_found(&e, pw->username);
			view_drop(pw->username);
		}
		user_fail(pw->r, pw->username, &e, NULL, NULL);
	}
	free(pw);
}

/* user.set_password: validate, find the account, Password Modify. */
void
user_set_password(struct req *r)
{
	const struct account	*a;
	struct user_pw		*pw;
	struct user_err		 e;
	struct ldc		*l;
	const char		*u, *p, *msg;
	char			*dn;
	struct ldc_call		 call = {
		.deadline_ms = r->deadline_ms,
		.done = user_set_password_done,
	};

	if ((msg = user_param_username(r, &u)) != NULL) {
		user_fail_param(r, "username", msg);
		return;
	}
	p = req_str(r, "password");
	if ((msg = valid_password(p, p != NULL ? strlen(p) : 0)) != NULL) {
		user_fail_param(r, "password", msg);
		return;
	}
	if (!user_view_ok(&e)) {
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if ((a = view_get(u)) == NULL) {
		user_not_found(&e, u);
		user_fail(r, u, &e, NULL, NULL);
		return;
	}
	if ((l = user_ldc()) == NULL) {
		user_err_unavailable(&e);
		user_fail(r, a->username, &e, NULL, NULL);
		return;
	}
	if ((pw = calloc(1, sizeof(*pw))) == NULL ||
	    (dn = user_dn(a->username)) == NULL) {
		free(pw);
		user_internal(r, "out of memory");
		return;
	}
	pw->r = r;
	snprintf(pw->username, sizeof(pw->username), "%s", a->username);
	call.arg = pw;
	if (ldc_passwd(l, &call, dn, p, strlen(p)) == NULL) {
		free(dn);
		free(pw);
		user_internal(r, "out of memory");
		return;
	}
	free(dn);
}

/* ------------------------------------------------------------------ */
/* user.import */

/* Why a row of an import is invalid. */
struct user_row_err {
	const char	*field;		/* NULL: the row is fine */
	char		 msg[160];
};

static void
user_import_free(struct user_import *im)
{
	for (size_t i = 0; i < im->n; i++)
		user_new_clear(&im->rows[i]);
	free(im->rows);
	free(im);
}

/* Every row has finished: settle the seats and reply in input order. */
static void
user_import_finish(struct user_import *im)
{
	struct req	*r = im->r;
	cJSON		*res, *results, *extra;
	char		 detail[64];

	seat_settle(im->hold, (unsigned)(im->ok + im->maybe));
	im->hold = NULL;
	if ((res = cJSON_CreateObject()) == NULL ||
	    cJSON_AddNumberToObject(res, "created", (double)im->ok) == NULL ||
	    (results = cJSON_AddArrayToObject(res, "results")) == NULL)
		goto oom;
	for (size_t i = 0; i < im->n; i++) {
		struct user_new	*un = &im->rows[i];
		cJSON		*o, *err;

		if ((o = cJSON_CreateObject()) == NULL)
			goto oom;
		cJSON_AddItemToArray(results, o);
		cJSON_AddStringToObject(o, "username", un->acct.username);
		cJSON_AddBoolToObject(o, "ok", un->err.code == 0);
		if (un->err.code == 0)
			continue;
		if ((err = cJSON_AddObjectToObject(o, "error")) == NULL)
			goto oom;
		cJSON_AddNumberToObject(err, "code", un->err.code);
		cJSON_AddStringToObject(err, "message", un->err.msg);
		if (un->err.reason != NULL)
			cJSON_AddStringToObject(err, "reason", un->err.reason);
		if (un->err.field != NULL)
			cJSON_AddStringToObject(err, "field", un->err.field);
	}
	if ((extra = cJSON_CreateObject()) != NULL) {
		cJSON_AddNumberToObject(extra, "rows", (double)im->n);
		cJSON_AddNumberToObject(extra, "created", (double)im->ok);
	}
	snprintf(detail, sizeof(detail), "(%zu of %zu rows created)", im->ok,
	    im->n);
	user_done(r, NULL, res, extra, detail);
	user_import_free(im);
	return;
oom:
	cJSON_Delete(res);
	user_internal(r, "out of memory");
	user_import_free(im);
}

static void	user_import_row_done(struct user_new *);

/* Keep USER_IMPORT_INFLIGHT rows going; finish after the last.  A row
 * may finish before user_new_start() returns. */
static void
user_import_pump(struct user_import *im)
{
	if (im->pumping)
		return;
	im->pumping = true;
	while (im->inflight < USER_IMPORT_INFLIGHT && im->next < im->n) {
		struct user_new	*un = &im->rows[im->next++];

		im->inflight++;
		user_new_start(un);
	}
	im->pumping = false;
	if (im->finished == im->n)
		user_import_finish(im);
}

/* One row of an import finished: count, log, audit, start the next. */
static void
user_import_row_done(struct user_new *un)
{
	struct user_import	*im = un->arg;

	im->inflight--;
	im->finished++;
	if (un->err.code == 0)
		im->ok++;
	else if (un->maybe)
		im->maybe++;
	user_log(im->r, un->acct.username, user_outcome_name(&un->err),
	    NULL);
	audit_log(im->r, un->acct.username, user_outcome_name(&un->err),
	    NULL);
	user_import_pump(im);
}

/* The seats of a whole import were answered: create, or refuse all. */
static void
user_import_seated(enum seat_status st, struct seat_hold *hold, void *arg)
{
	struct user_import	*im = arg;

	if (st == SEAT_OK) {
		im->hold = hold;
		for (size_t i = 0; i < im->n; i++)
			im->rows[i].seat = hold;
		user_import_pump(im);
		return;
	}
	user_seat_refused(im->r, NULL, (unsigned)im->n, st);
	user_import_free(im);
}

static int
user_row_cmp(const void *a, const void *b)
{
	const struct user_row	*x = *(const struct user_row *const *)a;
	const struct user_row	*y = *(const struct user_row *const *)b;
	int			 c = strcasecmp(x->username, y->username);

	/* Ties by position, so the first of duplicates comes first. */
	return c != 0 ? c : (x < y ? -1 : x > y);
}

/*
 * Check every row: its own fields, that its username is not taken, and
 * that no two rows name the same account.  Fills errs[i] for each bad
 * row; returns how many there are, or -1 if out of memory.
 */
static long
user_import_check(const cJSON *users, struct user_row *rows, size_t n,
    struct user_row_err *errs)
{
	struct user_row	**by_name;
	const cJSON	 *o;
	const char	 *field, *msg;
	long		  nbad = 0;
	size_t		  i = 0, nvalid = 0;

	if ((by_name = calloc(n + 1, sizeof(*by_name))) == NULL)
		return -1;
	cJSON_ArrayForEach(o, users) {
		if (user_row_check(o, true, &rows[i], &field, &msg) != 0) {
			errs[i].field = field;
			snprintf(errs[i].msg, sizeof(errs[i].msg), "%s %s",
			    field, msg);
		} else if (view_get(rows[i].username) != NULL) {
			errs[i].field = "username";
			snprintf(errs[i].msg, sizeof(errs[i].msg), "username "
			    "%s is taken (already_exists)", rows[i].username);
		} else
			by_name[nvalid++] = &rows[i];
		i++;
	}
	qsort(by_name, nvalid, sizeof(*by_name), user_row_cmp);
	/* Equal names are adjacent now, the first in input order leading
	 * its group: every other one in the group is an error. */
	for (size_t k = 0, j; k < nvalid; k = j) {
		size_t	 first = (size_t)(by_name[k] - rows);

		for (j = k + 1; j < nvalid && strcasecmp(by_name[j]->username,
		    by_name[k]->username) == 0; j++) {
			i = (size_t)(by_name[j] - rows);
			errs[i].field = "username";
			snprintf(errs[i].msg, sizeof(errs[i].msg), "username "
			    "%s appears more than once in this import (first "
			    "at index %zu)", by_name[j]->username, first);
		}
	}
	free(by_name);
	for (i = 0; i < n; i++)
		if (errs[i].field != NULL)
			nbad++;
	return nbad;
}

/* Reply -32602 for an import with bad rows: data.rows lists the first
 * USER_IMPORT_ERRORS, data.invalid_rows counts them all. */
static void
user_import_invalid(struct req *r, const cJSON *users,
    const struct user_row_err *errs, size_t n, long nbad)
{
	struct user_err	 e;
	cJSON		*data, *list;
	const cJSON	*o = users->child;
	long		 listed = 0;

	if ((data = cJSON_CreateObject()) == NULL ||
	    (list = cJSON_AddArrayToObject(data, "rows")) == NULL) {
		cJSON_Delete(data);
		user_internal(r, "out of memory");
		return;
	}
	for (size_t i = 0; i < n && listed < USER_IMPORT_ERRORS;
	    i++, o = o->next) {
		const cJSON	*u;
		cJSON		*row;

		if (errs[i].field == NULL)
			continue;
		if ((row = cJSON_CreateObject()) == NULL)
			break;
		cJSON_AddItemToArray(list, row);
		cJSON_AddNumberToObject(row, "index", (double)i);
		u = cJSON_GetObjectItemCaseSensitive(o, "username");
		if (cJSON_IsString(u))
			cJSON_AddStringToObject(row, "username", u->valuestring);
		else
			cJSON_AddNullToObject(row, "username");
		cJSON_AddStringToObject(row, "field", errs[i].field);
		cJSON_AddStringToObject(row, "message", errs[i].msg);
		listed++;
	}
	cJSON_AddNumberToObject(data, "invalid_rows", (double)nbad);
	user_err_set(&e, RPC_INVALID_PARAMS, NULL, "users", "invalid params: "
	    "users: %ld of %zu rows are invalid (see data.rows); nothing was "
	    "imported", nbad, n);
	user_fail(r, NULL, &e, data, NULL);
}

/* A dry run: everything was checked; say whether the seats suffice. */
static void
user_import_dry(struct req *r, const struct user_row *rows, size_t n)
{
	cJSON		*data = seat_limit_data(), *res, *results, *o;
	const cJSON	*s = cJSON_GetObjectItemCaseSensitive(data, "seats");
	const cJSON	*u = cJSON_GetObjectItemCaseSensitive(data, "used");

	if (n > 0 && cJSON_IsNumber(s) && cJSON_IsNumber(u) &&
	    u->valuedouble + (double)n > s->valuedouble) {
		cJSON_Delete(data);
		user_seat_full(r, NULL, (unsigned)n);
		return;
	}
	cJSON_Delete(data);
	if ((res = cJSON_CreateObject()) == NULL ||
	    cJSON_AddNumberToObject(res, "created", 0) == NULL ||
	    cJSON_AddTrueToObject(res, "dry_run") == NULL ||
	    (results = cJSON_AddArrayToObject(res, "results")) == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		if ((o = cJSON_CreateObject()) == NULL)
			goto oom;
		cJSON_AddItemToArray(results, o);
		cJSON_AddStringToObject(o, "username", rows[i].username);
		cJSON_AddTrueToObject(o, "ok");
	}
	user_wipe(r);
	req_reply_result(r, res);
	return;
oom:
	cJSON_Delete(res);
	user_internal(r, "out of memory");
}

/*
 * user.import: all rows are checked before anything is written; any bad
 * row refuses the whole import (-32602, data.rows).  Then the seats for
 * every row are reserved at once (seat_limit_reached refuses the whole
 * import), and the rows are created USER_IMPORT_INFLIGHT at a time, each
 * like user.create.  A row the directory refuses at that point fails on
 * its own (results[i].error): LDAP offers no usable transaction here
 * (FIELD-NOTES), so the import is all or nothing up to the writes.
 */
void
user_import(struct req *r)
{
	const cJSON		*users = req_param(r, "users");
	struct user_row		*rows = NULL;
	struct user_row_err	*errs = NULL;
	struct user_import	*im = NULL;
	struct user_err		 e;
	size_t			 n = (size_t)cJSON_GetArraySize(users);
	long			 nbad;

	if (n > USER_IMPORT_MAX) {
		user_fail_param(r, "users", "must have at most 10000 rows");
		return;
	}
	if (!user_view_ok(&e)) {
		user_fail(r, NULL, &e, NULL, NULL);
		return;
	}
	if ((rows = calloc(n + 1, sizeof(*rows))) == NULL ||
	    (errs = calloc(n + 1, sizeof(*errs))) == NULL ||
	    (nbad = user_import_check(users, rows, n, errs)) < 0)
		goto oom;
	if (nbad > 0) {
		user_import_invalid(r, users, errs, n, nbad);
		goto out;
	}
	if (req_bool(r, "dry_run", false)) {
		user_import_dry(r, rows, n);
		goto out;
	}
	if (n == 0) {
		cJSON	*res = cJSON_CreateObject();

		if (res != NULL) {
			cJSON_AddNumberToObject(res, "created", 0);
			cJSON_AddArrayToObject(res, "results");
		}
		user_done(r, NULL, res, NULL, "(0 rows)");
		goto out;
	}
	if ((im = calloc(1, sizeof(*im))) == NULL ||
	    (im->rows = calloc(n, sizeof(*im->rows))) == NULL)
		goto oom;
	im->r = r;
	im->n = n;
	for (size_t i = 0; i < n; i++) {
		struct user_new	*un = &im->rows[i];

		if (user_new_fill(un, &rows[i]) != 0)
			goto oom;
		un->deadline_ms = 0;	/* each row its own deadline */
		un->seq = r->seq;
		un->done = user_import_row_done;
		un->arg = im;
	}
	free(rows);
	free(errs);
	seat_reserve((unsigned)n, r->deadline_ms, user_import_seated, im);
	return;
oom:
	if (im != NULL) {
		if (im->rows == NULL)
			im->n = 0;
		user_import_free(im);
	}
	user_internal(r, "out of memory");
out:
	free(rows);
	free(errs);
}
