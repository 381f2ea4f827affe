/*
 * ldc.c - one asynchronous LDAP connection, driven from the event loop.
 *
 * Nothing here blocks the loop (except a TLS handshake, see ldc_tls()):
 *
 *  - the socket is connected by us, non-blocking, after an asynchronous
 *    name lookup (evdns), and then handed to libldap with ldap_init_fd();
 *  - every operation is started with an _ext call and recorded by msgid;
 *  - when the descriptor is readable, ldap_result() is polled with a zero
 *    timeout until it has nothing more (or a budget of messages is spent:
 *    then the loop's other events go first), and each message is routed
 *    to its operation by msgid (FIELD-NOTES: libldap resumes partial
 *    messages);
 *  - a request libldap could not write in full (LDAP_BUSY) is finished
 *    when the socket becomes writable;
 *  - every operation has a deadline timer; a late one is abandoned, and
 *    if the server has sent nothing at all since that operation went
 *    out, it is taken for dead (frozen, or the network path lost) and
 *    the connection is dropped, so that the rest fail at once and the
 *    state says down instead of every later request waiting out its
 *    deadline.
 *
 * Operations started while the connection is not up are queued and sent
 * once it is, unless their deadline passes first.  When the connection is
 * lost, the handle is thrown away (a libldap handle whose server went away
 * stays dead, FIELD-NOTES) and a new one is made after a backoff.
 *
 * Lifetimes: an ldc_op is owned by its ldc from creation until its done
 * callback has returned; callers keep the pointer only to cancel.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/util.h>
#include <openldap.h>

#include "otasdird.h"

#define LDC_HASH	1024	/* msgid buckets */
/*
 * The largest LDAP message accepted from a server.  libldap allocates
 * whatever length a message announces before reading it, so without a
 * cap one hostile or broken server could make us allocate 4 GiB per
 * message.  The largest we expect is a sync info message naming every
 * entry UUID of a very large OU (16 bytes each).
 */
#define LDC_MAX_INCOMING	(64U * 1024 * 1024)
/* Bytes one read(2) may take from the server (see ldc_sockbuf). */
#define LDC_READAHEAD		(64 * 1024)

enum op_kind {
	OP_SEARCH,
	OP_ADD,
	OP_MODIFY,
	OP_DELETE,
	OP_PASSWD,
	OP_BIND,
};

struct ldc_op {
	TAILQ_ENTRY(ldc_op)	 entry;		/* queue, or a hash bucket */
	struct ldc		*ldc;
	enum op_kind		 kind;
	int			 msgid;		/* -1 until sent */
	bool			 sent;		/* reached libldap */
	bool			 got_msgs;	/* entries delivered */
	uint64_t		 rx_at_send;	/* ldc's nrx when sent */
	struct ldc_call		 call;		/* ctrls are ours */
	struct event		*timer;

	char			*dn;		/* base for searches */
	char			*filter;
	char			**attrs;
	int			 scope;
	int			 sizelimit;
	LDAPMod			**mods;
	struct berval		 secret;	/* passwd / bind; wiped */
};

TAILQ_HEAD(ldc_ops, ldc_op);

struct ldc {
	char			*name;
	struct ldc_opts		 opts;
	enum ldc_state		 state;
	unsigned		 gen;		/* bumped on each teardown */

	LDAP			*ld;
	int			 fd;
	struct event		*ev_read;
	struct event		*ev_write;	/* connect, or flush */
	struct event		*ev_timer;	/* retry / connect timeout */
	struct evdns_getaddrinfo_request *dnsreq;

	size_t			 uri_idx;	/* current server */
	unsigned		 fails;		/* failures in a row */
	unsigned		 backoff_ms;
	int			 bind_msgid;

	struct ldc_ops		 queue;		/* not yet sent */
	struct ldc_ops		 sent[LDC_HASH];
	unsigned		 nqueued, nsent;
	uint64_t		 nrx;		/* messages received, ever */
	unsigned		 epoch;		/* times it came up */
};

static struct evdns_base *ldc_dns;

static void	ldc_connect(struct ldc *);
static void	ldc_fail(struct ldc *, const char *);
static void	ldc_pump(struct ldc *);
static void	ldc_read(evutil_socket_t, short, void *);

static const char *const state_names[] = {
	[LDC_DOWN] = "down",
	[LDC_CONNECTING] = "connecting",
	[LDC_BINDING] = "binding",
	[LDC_UP] = "up",
	[LDC_CLOSED] = "closed",
};

const char *
ldc_state_name(enum ldc_state s)
{
	return state_names[s];
}

/* The one place the state changes. */
static void
ldc_set_state(struct ldc *l, enum ldc_state s)
{
	if (l->state == s)
		return;
	log_debug("ldap %s: %s -> %s", l->name, state_names[l->state],
	    state_names[s]);
	l->state = s;
	if (s == LDC_UP)
		l->epoch++;
	if (l->opts.on_state != NULL)
		l->opts.on_state(s, l->opts.state_arg);
}

enum ldc_state
ldc_state(const struct ldc *l)
{
	return l->state;
}

const char *
ldc_uri(const struct ldc *l)
{
	if (l->state != LDC_UP && l->state != LDC_BINDING)
		return NULL;
	return D.cfg->ldap_uris.v[l->uri_idx % D.cfg->ldap_uris.n];
}

unsigned
ldc_pending(const struct ldc *l)
{
	return l->nqueued + l->nsent;
}

unsigned
ldc_epoch(const struct ldc *l)
{
	return l->epoch;
}

/* ------------------------------------------------------------------ */
/* operations: creation, delivery, freeing */

static void
ldc_op_free(struct ldc_op *op)
{
	if (op->timer != NULL)
		event_free(op->timer);
	ldap_controls_free(op->call.ctrls);
	free(op->dn);
	free(op->filter);
	if (op->attrs != NULL) {
		for (char **a = op->attrs; *a != NULL; a++)
			free(*a);
		free(op->attrs);
	}
	free(op->mods);			/* one block (ldc_mods_dup) */
	if (op->secret.bv_val != NULL) {
		explicit_bzero(op->secret.bv_val, op->secret.bv_len);
		free(op->secret.bv_val);
	}
	free(op);
}

/* Take op out of the queue or the msgid table. */
static void
ldc_op_unlink(struct ldc_op *op)
{
	struct ldc	*l = op->ldc;

	if (op->msgid >= 0) {
		TAILQ_REMOVE(&l->sent[op->msgid % LDC_HASH], op, entry);
		l->nsent--;
	} else {
		TAILQ_REMOVE(&l->queue, op, entry);
		l->nqueued--;
	}
}

/* Run op's done callback with res, then free op.  op must be unlinked. */
static void
ldc_op_deliver(struct ldc_op *op, struct ldc_res *res)
{
	res->sent = op->sent;
	if (op->call.done != NULL)
		op->call.done(res, op->call.arg);
	ldc_op_free(op);
}

/* Deliver a local error (timeout, connection down) to op. */
static void
ldc_op_fail(struct ldc_op *op, int rc, const char *diag)
{
	struct ldc_res	 res;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.diag = diag;
	ldc_op_deliver(op, &res);
}

/*
 * op's deadline passed: abandon it and tell its owner.  If op was sent
 * and not one message has come back on the connection since, the server
 * has gone silent: drop the connection too (after op's callback, so that
 * whatever the callback starts fails at once rather than waiting out a
 * deadline of its own in the queue).
 */
static void
ldc_op_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct ldc_op	*op = arg;
	struct ldc	*l = op->ldc;
	unsigned	 gen = l->gen;
	bool		 silent = op->msgid >= 0 && l->nrx == op->rx_at_send;

	if (op->msgid >= 0 && l->ld != NULL)
		(void)ldap_abandon_ext(l->ld, op->msgid, NULL, NULL);
	if (op->kind == OP_BIND && op->msgid >= 0) {
		/* A bind that never answered leaves the connection in an
		 * unknown state: start over. */
		ldc_op_unlink(op);
		ldc_op_fail(op, LDC_ERR_TIMEOUT, "the directory did not answer "
		    "in time");
		ldc_fail(l, "bind timed out");
		return;
	}
	ldc_op_unlink(op);
	ldc_op_fail(op, LDC_ERR_TIMEOUT, "the directory did not answer in "
	    "time");
	if (silent && gen == l->gen && l->state == LDC_UP)
		ldc_fail(l, "the server stopped answering");
}

/* A new op of kind with the common fields set; queued by the caller. */
static struct ldc_op *
ldc_op_new(struct ldc *l, enum op_kind kind, const struct ldc_call *call)
{
	struct ldc_op	*op;
	uint64_t	 deadline, now = now_ms();

	if (l->state == LDC_CLOSED)
		return NULL;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	op->ldc = l;
	op->kind = kind;
	op->msgid = -1;
	op->call = *call;
	op->call.ctrls = NULL;
	if (call->ctrls != NULL &&
	    (op->call.ctrls = ldap_controls_dup(call->ctrls)) == NULL)
		goto fail;
	deadline = call->deadline_ms != 0 ? call->deadline_ms :
	    now + D.cfg->op_timeout_ms;
	if (deadline != UINT64_MAX) {
		struct timeval	 tv;
		uint64_t	 left = deadline > now ? deadline - now : 0;

		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		if ((op->timer = evtimer_new(D.base, ldc_op_timeout, op)) ==
		    NULL || evtimer_add(op->timer, &tv) != 0)
			goto fail;
	}
	return op;
fail:
	ldc_op_free(op);
	return NULL;
}

/* Queue op and try to send what is queued. */
static struct ldc_op *
ldc_op_start(struct ldc_op *op)
{
	struct ldc	*l = op->ldc;

	TAILQ_INSERT_TAIL(&l->queue, op, entry);
	l->nqueued++;
	if (l->state == LDC_UP)
		ldc_pump(l);
	return op;
}

void
ldc_cancel(struct ldc_op *op)
{
	struct ldc	*l;

	if (op == NULL)
		return;
	l = op->ldc;
	if (op->msgid >= 0 && l->ld != NULL)
		(void)ldap_abandon_ext(l->ld, op->msgid, NULL, NULL);
	ldc_op_unlink(op);
	ldc_op_free(op);
}

/* ------------------------------------------------------------------ */
/* copying what callers pass */

static char **
ldc_strv_dup(const char *const *v)
{
	char	**out;
	size_t	  n = 0;

	if (v == NULL)
		return NULL;
	while (v[n] != NULL)
		n++;
	if ((out = calloc(n + 1, sizeof(*out))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((out[i] = strdup(v[i])) == NULL) {
			while (i > 0)
				free(out[--i]);
			free(out);
			return NULL;
		}
	return out;
}

/*
 * Deep copy of string-valued mods in one allocation (freed with free()):
 * the pointer arrays first, then the strings.  An add of an account has
 * a dozen values; one block instead of some forty small ones is most of
 * what a write costs the daemon in malloc.
 */
static LDAPMod **
ldc_mods_dup(LDAPMod **mods)
{
	LDAPMod		**out, *m;
	char		**vp, *sp;
	size_t		  n = 0, nvals = 0, strs = 0, size;

	for (; mods[n] != NULL; n++) {
		strs += strlen(mods[n]->mod_type) + 1;
		for (char **v = mods[n]->mod_values; v != NULL && *v != NULL;
		    v++) {
			nvals++;
			strs += strlen(*v) + 1;
		}
		if (mods[n]->mod_values != NULL)
			nvals++;		/* the NULL ending them */
	}
	size = (n + 1) * sizeof(*out) + n * sizeof(*m) +
	    nvals * sizeof(*vp) + strs;
	if ((out = malloc(size)) == NULL)
		return NULL;
	m = (LDAPMod *)(void *)(out + n + 1);
	vp = (char **)(void *)(m + n);
	sp = (char *)(vp + nvals);
	for (size_t i = 0; i < n; i++, m++) {
		size_t	 len = strlen(mods[i]->mod_type) + 1;

		out[i] = m;
		m->mod_op = mods[i]->mod_op;
		m->mod_type = memcpy(sp, mods[i]->mod_type, len);
		sp += len;
		m->mod_values = NULL;
		if (mods[i]->mod_values == NULL)
			continue;
		m->mod_values = vp;
		for (char **v = mods[i]->mod_values; *v != NULL; v++) {
			len = strlen(*v) + 1;
			*vp++ = memcpy(sp, *v, len);
			sp += len;
		}
		*vp++ = NULL;
	}
	out[n] = NULL;
	return out;
}

static int
ldc_secret_dup(struct berval *bv, const char *s, size_t len)
{
	if ((bv->bv_val = malloc(len + 1)) == NULL)
		return -1;
	memcpy(bv->bv_val, s, len);
	bv->bv_val[len] = '\0';
	bv->bv_len = len;
	return 0;
}

struct ldc_op *
ldc_search(struct ldc *l, const struct ldc_call *call, const char *base,
    int scope, const char *filter, const char *const *attrs, int sizelimit)
{
	struct ldc_op	*op;

	if ((op = ldc_op_new(l, OP_SEARCH, call)) == NULL)
		return NULL;
	op->scope = scope;
	op->sizelimit = sizelimit;
	if ((op->dn = strdup(base)) == NULL ||
	    (op->filter = strdup(filter != NULL ? filter :
	    "(objectClass=*)")) == NULL ||
	    (attrs != NULL && (op->attrs = ldc_strv_dup(attrs)) == NULL)) {
		ldc_op_free(op);
		return NULL;
	}
	return ldc_op_start(op);
}

static struct ldc_op *
ldc_write_op(struct ldc *l, enum op_kind kind, const struct ldc_call *call,
    const char *dn, LDAPMod **mods)
{
	struct ldc_op	*op;

	if ((op = ldc_op_new(l, kind, call)) == NULL)
		return NULL;
	if ((op->dn = strdup(dn)) == NULL ||
	    (mods != NULL && (op->mods = ldc_mods_dup(mods)) == NULL)) {
		ldc_op_free(op);
		return NULL;
	}
	return ldc_op_start(op);
}

struct ldc_op *
ldc_add(struct ldc *l, const struct ldc_call *call, const char *dn,
    LDAPMod **mods)
{
	return ldc_write_op(l, OP_ADD, call, dn, mods);
}

struct ldc_op *
ldc_modify(struct ldc *l, const struct ldc_call *call, const char *dn,
    LDAPMod **mods)
{
	return ldc_write_op(l, OP_MODIFY, call, dn, mods);
}

struct ldc_op *
ldc_delete(struct ldc *l, const struct ldc_call *call, const char *dn)
{
	return ldc_write_op(l, OP_DELETE, call, dn, NULL);
}

struct ldc_op *
ldc_passwd(struct ldc *l, const struct ldc_call *call, const char *dn,
    const char *pw, size_t pw_len)
{
	struct ldc_op	*op;

	if ((op = ldc_op_new(l, OP_PASSWD, call)) == NULL)
		return NULL;
	if ((op->dn = strdup(dn)) == NULL ||
	    ldc_secret_dup(&op->secret, pw, pw_len) != 0) {
		ldc_op_free(op);
		return NULL;
	}
	return ldc_op_start(op);
}

/*
 * A simple bind as dn.  An empty password would be an unauthenticated
 * bind, which LDAP answers with success: refused here (NULL), whatever the
 * caller checked.
 */
struct ldc_op *
ldc_bind(struct ldc *l, const struct ldc_call *call, const char *dn,
    const char *pw, size_t pw_len)
{
	struct ldc_op	*op;

	if (pw_len == 0 || dn == NULL || dn[0] == '\0')
		return NULL;
	if ((op = ldc_op_new(l, OP_BIND, call)) == NULL)
		return NULL;
	if ((op->dn = strdup(dn)) == NULL ||
	    ldc_secret_dup(&op->secret, pw, pw_len) != 0) {
		ldc_op_free(op);
		return NULL;
	}
	return ldc_op_start(op);
}

/* ------------------------------------------------------------------ */
/* sending */

/* Hand op to libldap.  Returns LDAP_SUCCESS, LDAP_BUSY (try again when
 * writable) or another code (the connection is broken). */
static int
ldc_send(struct ldc *l, struct ldc_op *op)
{
	LDAPControl	**sctrls = op->call.ctrls;
	int		  rc, msgid = -1;

	switch (op->kind) {
	case OP_SEARCH:
		rc = ldap_search_ext(l->ld, op->dn, op->scope, op->filter,
		    op->attrs, 0, sctrls, NULL, NULL, op->sizelimit, &msgid);
		break;
	case OP_ADD:
		rc = ldap_add_ext(l->ld, op->dn, op->mods, sctrls, NULL,
		    &msgid);
		break;
	case OP_MODIFY:
		rc = ldap_modify_ext(l->ld, op->dn, op->mods, sctrls, NULL,
		    &msgid);
		break;
	case OP_DELETE:
		rc = ldap_delete_ext(l->ld, op->dn, sctrls, NULL, &msgid);
		break;
	case OP_PASSWD: {
		struct berval	 user;

		user.bv_val = op->dn;
		user.bv_len = strlen(op->dn);
		rc = ldap_passwd(l->ld, &user, NULL, &op->secret, sctrls,
		    NULL, &msgid);
		break;
	}
	case OP_BIND:
		rc = ldap_sasl_bind(l->ld, op->dn, LDAP_SASL_SIMPLE,
		    &op->secret, sctrls, NULL, &msgid);
		break;
	default:
		rc = LDAP_OTHER;
	}
	if (rc == LDAP_SUCCESS && msgid >= 0) {
		op->msgid = msgid;
		op->sent = true;
		op->rx_at_send = l->nrx;
		/* libldap may hold part of it unsent (LDAP_BUSY inside):
		 * it finishes the write when we poll it while writable. */
		int	 err = LDAP_SUCCESS;

		(void)ldap_get_option(l->ld, LDAP_OPT_RESULT_CODE, &err);
		if (err == LDAP_BUSY)
			event_add(l->ev_write, NULL);
		return LDAP_SUCCESS;
	}
	return rc;
}

/* Send queued ops in order while the connection takes them. */
static void
ldc_pump(struct ldc *l)
{
	struct ldc_op	*op;
	unsigned	 gen = l->gen;

	while (l->state == LDC_UP && (op = TAILQ_FIRST(&l->queue)) != NULL) {
		int	 rc;

		/* Ops on a bind pool connection run one at a time: a bind
		 * must not overlap anything (RFC 4511 4.2.1). */
		if (l->opts.serial && l->nsent > 0)
			break;
		rc = ldc_send(l, op);
		if (rc == LDAP_BUSY) {
			event_add(l->ev_write, NULL);
			break;
		}
		if (rc != LDAP_SUCCESS) {
			if (rc == LDAP_SERVER_DOWN || rc == LDAP_BUSY ||
			    rc == LDAP_CONNECT_ERROR || rc == LDAP_OTHER) {
				ldc_fail(l, ldap_err2string(rc));
				return;
			}
			/* A request libldap refuses to encode (e.g. a bad
			 * filter): that op fails, the others go on. */
			TAILQ_REMOVE(&l->queue, op, entry);
			l->nqueued--;
			ldc_op_fail(op, rc, ldap_err2string(rc));
			if (gen != l->gen)
				return;
			continue;
		}
		TAILQ_REMOVE(&l->queue, op, entry);
		l->nqueued--;
		TAILQ_INSERT_TAIL(&l->sent[op->msgid % LDC_HASH], op, entry);
		l->nsent++;
	}
}

/* The socket is writable: let libldap finish a partial write, then send
 * what waits. */
static void
ldc_writable(evutil_socket_t fd, short ev, void *arg)
{
	struct ldc	*l = arg;

	if (l->state != LDC_UP && l->state != LDC_BINDING)
		return;
	/* ldap_result flushes a request left in the WRITING state. */
	ldc_read(fd, EV_READ, l);
	if (l->state == LDC_UP)
		ldc_pump(l);
}

/* ------------------------------------------------------------------ */
/* receiving */

static struct ldc_op *
ldc_find(struct ldc *l, int msgid)
{
	struct ldc_op	*op;

	if (msgid < 0)
		return NULL;
	TAILQ_FOREACH(op, &l->sent[msgid % LDC_HASH], entry)
		if (op->msgid == msgid)
			return op;
	return NULL;
}

/* The service bind finished. */
static void
ldc_bound(struct ldc *l, LDAPMessage *msg)
{
	int	 rc = LDAP_OTHER;
	char	*diag = NULL;

	l->bind_msgid = -1;
	if (ldap_parse_result(l->ld, msg, &rc, NULL, &diag, NULL, NULL, 0) !=
	    LDAP_SUCCESS)
		rc = LDAP_OTHER;
	if (rc != LDAP_SUCCESS) {
		log_warnx("ldap %s: bind as %s at %s failed: %s%s%s",
		    l->name, D.cfg->bind_dn,
		    D.cfg->ldap_uris.v[l->uri_idx], ldap_err2string(rc),
		    diag != NULL && diag[0] != '\0' ? ": " : "",
		    diag != NULL ? diag : "");
		ldap_memfree(diag);
		ldc_fail(l, "bind failed");
		return;
	}
	ldap_memfree(diag);
	log_info("ldap %s: connected to %s as %s", l->name,
	    D.cfg->ldap_uris.v[l->uri_idx], D.cfg->bind_dn);
	l->fails = 0;
	l->backoff_ms = 0;
	ldc_set_state(l, LDC_UP);
	ldc_pump(l);
}

/*
 * A final result for op: parse, deliver, free.  A result that cannot be
 * decoded comes from a server that is broken or no LDAP server at all:
 * nothing else it says can be trusted, so the connection is dropped, and
 * op fails with the others that were sent (LDC_ERR_DOWN: outcome unknown).
 */
static void
ldc_result(struct ldc *l, struct ldc_op *op, LDAPMessage *msg)
{
	struct ldc_res	 res;
	char		*matched = NULL, *diag = NULL;

	memset(&res, 0, sizeof(res));
	res.ld = l->ld;
	res.msg = msg;
	if (ldap_parse_result(l->ld, msg, &res.rc, &matched, &diag, NULL,
	    &res.ctrls, 0) != LDAP_SUCCESS) {
		ldap_memfree(matched);
		ldap_memfree(diag);
		ldap_controls_free(res.ctrls);
		ldc_fail(l, "the server sent an answer that cannot be decoded");
		return;
	}
	if (ldap_msgtype(msg) == LDAP_RES_EXTENDED)
		(void)ldap_parse_extended_result(l->ld, msg, &res.ext_oid,
		    &res.ext_data, 0);
	res.matched = matched;
	res.diag = diag;
	ldc_op_unlink(op);
	ldc_op_deliver(op, &res);
	ldap_memfree(matched);
	ldap_memfree(diag);
	ldap_controls_free(res.ctrls);
	ldap_memfree(res.ext_oid);
	ber_bvfree(res.ext_data);
}

/* Route one message by msgid; consumes msg. */
static void
ldc_route(struct ldc *l, LDAPMessage *msg)
{
	int		 msgid = ldap_msgid(msg), type = ldap_msgtype(msg);
	struct ldc_op	*op;

	if (msgid == l->bind_msgid && type == LDAP_RES_BIND) {
		ldc_bound(l, msg);
		ldap_msgfree(msg);
		return;
	}
	if ((op = ldc_find(l, msgid)) == NULL) {
		/* A late answer to something cancelled or timed out. */
		ldap_msgfree(msg);
		return;
	}
	switch (type) {
	case LDAP_RES_SEARCH_ENTRY:
	case LDAP_RES_SEARCH_REFERENCE:
	case LDAP_RES_INTERMEDIATE:
		op->got_msgs = true;
		if (op->call.on_msg != NULL)
			op->call.on_msg(l->ld, msg, op->call.arg);
		break;
	default:
		ldc_result(l, op, msg);
		break;
	}
	ldap_msgfree(msg);
}

/*
 * The descriptor is readable: take the complete messages, at most
 * LDC_READ_BUDGET of them before the loop runs its other events (a long
 * search -- a seat count of 100,000 entries -- would otherwise hold it
 * for most of a second).  What is left, buffered in libldap or not, is
 * taken when this event comes round again.
 */
#define LDC_READ_BUDGET	256

static void
ldc_read(evutil_socket_t fd, short ev, void *arg)
{
	struct ldc	*l = arg;
	unsigned	 gen = l->gen;
	unsigned	 budget = LDC_READ_BUDGET;

	while (l->ld != NULL && gen == l->gen) {
		struct timeval	 zero = { 0, 0 };
		LDAPMessage	*msg = NULL;
		int		 rc;

		if (budget-- == 0) {
			event_active(l->ev_read, EV_READ, 0);
			break;
		}
		rc = ldap_result(l->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero,
		    &msg);
		if (rc == 0)
			break;
		if (rc > 0)
			l->nrx++;
		if (rc < 0) {
			int	 err = LDAP_SERVER_DOWN;

			(void)ldap_get_option(l->ld, LDAP_OPT_RESULT_CODE,
			    &err);
			ldc_fail(l, ldap_err2string(err));
			return;
		}
		ldc_route(l, msg);
	}
	if (gen == l->gen && l->state == LDC_UP && l->nqueued > 0)
		ldc_pump(l);
}

/* ------------------------------------------------------------------ */
/* connecting */

/*
 * Tear down the handle and enter state next (LDC_DOWN or LDC_CLOSED);
 * fail what was sent; keep what was queued.  The state changes before any
 * owner hears of the loss: what their callbacks start is then queued (or,
 * once closed, refused) instead of being handed to a handle that is gone.
 */
static void
ldc_teardown(struct ldc *l, enum ldc_state next)
{
	struct ldc_ops	 dead;
	struct ldc_op	*op;

	l->gen++;
	if (l->dnsreq != NULL) {
		evdns_getaddrinfo_cancel(l->dnsreq);
		l->dnsreq = NULL;
	}
	event_del(l->ev_read);
	event_del(l->ev_write);
	event_del(l->ev_timer);
	if (l->ld != NULL) {
		/* ldap_unbind_ext closes the descriptor we gave it. */
		(void)ldap_unbind_ext(l->ld, NULL, NULL);
		l->ld = NULL;
		l->fd = -1;
	} else if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	l->bind_msgid = -1;

	/* Sent ops: a read that delivered nothing yet may go again; the
	 * rest fail (a write's outcome is unknown).  Collected first, so
	 * that callbacks see consistent queues. */
	TAILQ_INIT(&dead);
	for (size_t i = 0; i < LDC_HASH; i++) {
		while ((op = TAILQ_FIRST(&l->sent[i])) != NULL) {
			TAILQ_REMOVE(&l->sent[i], op, entry);
			l->nsent--;
			op->msgid = -1;
			if (op->call.retry && !op->got_msgs &&
			    next != LDC_CLOSED) {
				op->sent = false;
				TAILQ_INSERT_HEAD(&l->queue, op, entry);
				l->nqueued++;
			} else
				TAILQ_INSERT_TAIL(&dead, op, entry);
		}
	}
	ldc_set_state(l, next);
	while ((op = TAILQ_FIRST(&dead)) != NULL) {
		TAILQ_REMOVE(&dead, op, entry);
		ldc_op_fail(op, LDC_ERR_DOWN, next == LDC_CLOSED ?
		    "the daemon is shutting down" :
		    "the directory connection was lost");
	}
}

/* Schedule the next connection attempt. */
static void
ldc_schedule(struct ldc *l)
{
	struct timeval	 tv = { 0, 0 };
	size_t		 n = D.cfg->ldap_uris.n;
	unsigned	 delay = 0;

	l->fails++;
	l->uri_idx = (l->uri_idx + 1) % n;
	/* Every server once without waiting, then back off. */
	if (l->fails >= n) {
		if (l->backoff_ms == 0)
			l->backoff_ms = D.cfg->reconnect_min_ms;
		else if (l->backoff_ms < D.cfg->reconnect_max_ms / 2)
			l->backoff_ms *= 2;
		else
			l->backoff_ms = D.cfg->reconnect_max_ms;
		/* Jitter: 50-100% of the backoff, so that many daemons
		 * do not reconnect in step. */
		delay = l->backoff_ms / 2 +
		    (unsigned)(arc4random_uniform(l->backoff_ms / 2 + 1));
	}
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	evtimer_add(l->ev_timer, &tv);
	if (delay > 0)
		log_debug("ldap %s: next attempt in %u ms", l->name, delay);
}

/* The connection broke (or never came up): drop it, retry later. */
static void
ldc_fail(struct ldc *l, const char *why)
{
	if (l->state == LDC_CLOSED)
		return;
	if (l->state == LDC_UP)
		log_warnx("ldap %s: connection to %s lost: %s", l->name,
		    D.cfg->ldap_uris.v[l->uri_idx], why);
	else
		log_info("ldap %s: cannot use %s: %s", l->name,
		    D.cfg->ldap_uris.v[l->uri_idx], why);
	ldc_teardown(l, LDC_DOWN);
	ldc_schedule(l);
}

void
ldc_reset(struct ldc *l, const char *why)
{
	ldc_fail(l, why);
}

static void
ldc_retry(evutil_socket_t fd, short ev, void *arg)
{
	struct ldc	*l = arg;

	if (l->state == LDC_CONNECTING) {
		ldc_fail(l, "connect timed out");
		return;
	}
	if (l->state == LDC_BINDING) {
		ldc_fail(l, "bind timed out");
		return;
	}
	if (l->state == LDC_DOWN)
		ldc_connect(l);
}

/*
 * TLS on the connected socket.  libldap's handshake polls the socket
 * itself, bounded by LDAP_OPT_NETWORK_TIMEOUT (connect_timeout_ms): this
 * is the one place that can hold the loop, for at most that long, and only
 * with ldaps:// or starttls.  Returns an LDAP result code.
 */
static int
ldc_tls(struct ldc *l, bool ldaps)
{
	int	 rc;

	if (ldaps)
		return ldap_install_tls(l->ld);
	rc = ldap_start_tls_s(l->ld, NULL, NULL);
	return rc;
}

static int
ldc_set_tls_opts(LDAP *ld)
{
	int	 req = D.cfg->tls_verify ? LDAP_OPT_X_TLS_DEMAND :
	    LDAP_OPT_X_TLS_NEVER, zero = 0;

	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req) != 0)
		return -1;
	if (D.cfg->tls_ca_file != NULL &&
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
	    D.cfg->tls_ca_file) != 0)
		return -1;
	return ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
}

/*
 * The buffers of ld's connection (ldap_init_fd uses the handle's own
 * Sockbuf):
 *  - messages over LDC_MAX_INCOMING are refused;
 *  - a read-ahead layer goes under libldap's decoder.  Without it, every
 *    reply costs a poll(2) (ldap_result checks the socket even with a
 *    zero timeout) and two read(2)s (ber_get_next reads the tag and
 *    length, then the rest); with it, one read takes every reply that
 *    has arrived, and ldap_result sees the buffered ones without
 *    polling.  Its level puts it below TLS, added later or not at all,
 *    so nothing it buffers is lost to the TLS layer.
 * 0, or -1 (out of memory).
 */
static int
ldc_sockbuf(LDAP *ld)
{
	Sockbuf		*sb = NULL;
	ber_len_t	 max = LDC_MAX_INCOMING;
	int		 ahead = LDC_READAHEAD;

	if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS ||
	    sb == NULL ||
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max) != 1)
		return -1;
	return ber_sockbuf_add_io(sb, &ber_sockbuf_io_readahead,
	    LBER_SBIOD_LEVEL_PROVIDER, &ahead) == 0 ? 0 : -1;
}

/* The socket is connected: make the libldap handle, then bind. */
static void
ldc_connected(struct ldc *l)
{
	const char	*uri = D.cfg->ldap_uris.v[l->uri_idx];
	bool		 ipc = strncasecmp(uri, "ldapi:", 6) == 0;
	bool		 ldaps = strncasecmp(uri, "ldaps:", 6) == 0;
	int		 v3 = LDAP_VERSION3, rc, fd = l->fd;
	struct timeval	 net;
	struct berval	 cred;

	event_del(l->ev_timer);
	event_del(l->ev_write);
	rc = ldap_init_fd(fd, ipc ? LDAP_PROTO_IPC : LDAP_PROTO_TCP, uri,
	    &l->ld);
	if (rc != LDAP_SUCCESS) {
		ldc_fail(l, ldap_err2string(rc));
		return;
	}
	if (ldc_sockbuf(l->ld) != 0) {
		ldc_fail(l, "cannot set up the connection's buffers");
		return;
	}
	net.tv_sec = D.cfg->connect_timeout_ms / 1000;
	net.tv_usec = (suseconds_t)(D.cfg->connect_timeout_ms % 1000) * 1000;
	if (ldap_set_option(l->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != 0 ||
	    ldap_set_option(l->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != 0 ||
	    ldap_set_option(l->ld, LDAP_OPT_NETWORK_TIMEOUT, &net) != 0 ||
	    ldap_set_option(l->ld, LDAP_OPT_TIMEOUT, &net) != 0) {
		ldc_fail(l, "cannot set LDAP options");
		return;
	}
	if (ldaps || (D.cfg->starttls && !ipc)) {
		if (ldc_set_tls_opts(l->ld) != 0) {
			ldc_fail(l, "cannot set TLS options");
			return;
		}
		if ((rc = ldc_tls(l, ldaps)) != LDAP_SUCCESS) {
			ldc_fail(l, ldaps ? "TLS handshake failed" :
			    "StartTLS failed");
			return;
		}
	}
	event_assign(l->ev_read, D.base, fd, EV_READ | EV_PERSIST, ldc_read,
	    l);
	event_assign(l->ev_write, D.base, fd, EV_WRITE, ldc_writable, l);
	event_add(l->ev_read, NULL);

	if (!l->opts.bind) {
		log_debug("ldap %s: connected to %s", l->name, uri);
		l->fails = 0;
		l->backoff_ms = 0;
		ldc_set_state(l, LDC_UP);
		ldc_pump(l);
		return;
	}
	cred.bv_val = D.cfg->bind_password;
	cred.bv_len = D.cfg->bind_password_len;
	rc = ldap_sasl_bind(l->ld, D.cfg->bind_dn, LDAP_SASL_SIMPLE, &cred,
	    NULL, NULL, &l->bind_msgid);
	if (rc != LDAP_SUCCESS) {
		ldc_fail(l, ldap_err2string(rc));
		return;
	}
	ldc_set_state(l, LDC_BINDING);
	/* The bind shares the connect timeout. */
	struct timeval	 tv = net;

	event_assign(l->ev_timer, D.base, -1, 0, ldc_retry, l);
	evtimer_add(l->ev_timer, &tv);
}

/* Non-blocking connect finished (or failed, or timed out). */
static void
ldc_connect_done(evutil_socket_t fd, short ev, void *arg)
{
	struct ldc	*l = arg;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (ev & EV_TIMEOUT) {
		ldc_fail(l, "connect timed out");
		return;
	}
	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		ldc_fail(l, strerror(err));
		return;
	}
	ldc_connected(l);
}

/* Start a non-blocking connect to sa. */
static void
ldc_connect_addr(struct ldc *l, const struct sockaddr *sa, socklen_t salen)
{
	struct timeval	 tv;
	int		 one = 1;

	l->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		ldc_fail(l, strerror(errno));
		return;
	}
	if (sa->sa_family != AF_UNIX)
		(void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (connect(l->fd, sa, salen) == 0) {
		ldc_connected(l);
		return;
	}
	if (errno != EINPROGRESS && errno != EAGAIN) {
		ldc_fail(l, strerror(errno));
		return;
	}
	tv.tv_sec = D.cfg->connect_timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(D.cfg->connect_timeout_ms % 1000) * 1000;
	event_assign(l->ev_write, D.base, l->fd, EV_WRITE, ldc_connect_done,
	    l);
	event_add(l->ev_write, &tv);
}

static void
ldc_resolved(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct ldc	*l = arg;

	l->dnsreq = NULL;
	if (result == EVUTIL_EAI_CANCEL)
		return;
	if (result != 0 || ai == NULL) {
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		ldc_fail(l, evutil_gai_strerror(result));
		return;
	}
	ldc_connect_addr(l, ai->ai_addr, (socklen_t)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
}

/* Begin connecting to the current URI. */
static void
ldc_connect(struct ldc *l)
{
	const char	*uri = D.cfg->ldap_uris.v[l->uri_idx];
	LDAPURLDesc	*lud = NULL;
	char		 port[16];

	ldc_set_state(l, LDC_CONNECTING);
	event_assign(l->ev_timer, D.base, -1, 0, ldc_retry, l);
	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS) {
		ldc_fail(l, "bad URI");
		return;
	}
	if (strcasecmp(lud->lud_scheme, "ldapi") == 0) {
		struct sockaddr_un	 sun;
		const char		*path = lud->lud_host != NULL &&
		    lud->lud_host[0] != '\0' ? lud->lud_host :
		    "/var/run/slapd/ldapi";

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof(sun.sun_path)) {
			ldap_free_urldesc(lud);
			ldc_fail(l, "ldapi path too long");
			return;
		}
		strcpy(sun.sun_path, path);
		ldap_free_urldesc(lud);
		ldc_connect_addr(l, (struct sockaddr *)&sun, sizeof(sun));
		return;
	} else {
		struct evutil_addrinfo	 hints;
		struct timeval		 tv;
		const char		*host = lud->lud_host != NULL &&
		    lud->lud_host[0] != '\0' ? lud->lud_host : "localhost";
		int			 p = lud->lud_port;

		if (p == 0)
			p = strcasecmp(lud->lud_scheme, "ldaps") == 0 ? 636 :
			    389;
		snprintf(port, sizeof(port), "%d", p);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
		if (ldc_dns == NULL) {
			ldc_dns = evdns_base_new(D.base,
			    EVDNS_BASE_INITIALIZE_NAMESERVERS |
			    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
			if (ldc_dns == NULL)
				ldc_dns = evdns_base_new(D.base, 0);
		}
		/* The whole connect, lookup included, has one deadline. */
		tv.tv_sec = D.cfg->connect_timeout_ms / 1000;
		tv.tv_usec = (suseconds_t)(D.cfg->connect_timeout_ms % 1000) *
		    1000;
		evtimer_add(l->ev_timer, &tv);
		l->dnsreq = evdns_getaddrinfo(ldc_dns, host, port, &hints,
		    ldc_resolved, l);
		/* NULL: answered already (numeric host) or failed, the
		 * callback has run either way. */
		ldap_free_urldesc(lud);
	}
}

/* ------------------------------------------------------------------ */

struct ldc *
ldc_new(const struct ldc_opts *opts)
{
	struct ldc	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->opts = *opts;
	if ((l->name = strdup(opts->name)) == NULL)
		goto fail;
	l->fd = -1;
	l->bind_msgid = -1;
	l->state = LDC_DOWN;
	TAILQ_INIT(&l->queue);
	for (size_t i = 0; i < LDC_HASH; i++)
		TAILQ_INIT(&l->sent[i]);
	l->ev_read = event_new(D.base, -1, 0, ldc_read, l);
	l->ev_write = event_new(D.base, -1, 0, ldc_writable, l);
	l->ev_timer = evtimer_new(D.base, ldc_retry, l);
	if (l->ev_read == NULL || l->ev_write == NULL || l->ev_timer == NULL)
		goto fail;
	/* First attempt from the loop, so that callers finish setting up. */
	{
		struct timeval	 zero = { 0, 0 };

		evtimer_add(l->ev_timer, &zero);
	}
	return l;
fail:
	ldc_free(l);
	return NULL;
}

/* Close for good: every op fails with LDC_ERR_DOWN. */
void
ldc_free(struct ldc *l)
{
	struct ldc_op	*op;

	if (l == NULL)
		return;
	if (l->ev_read != NULL && l->ev_write != NULL && l->ev_timer != NULL)
		ldc_teardown(l, LDC_CLOSED);
	l->state = LDC_CLOSED;
	while ((op = TAILQ_FIRST(&l->queue)) != NULL) {
		TAILQ_REMOVE(&l->queue, op, entry);
		l->nqueued--;
		ldc_op_fail(op, LDC_ERR_DOWN, "the daemon is shutting down");
	}
	if (l->ev_read != NULL)
		event_free(l->ev_read);
	if (l->ev_write != NULL)
		event_free(l->ev_write);
	if (l->ev_timer != NULL)
		event_free(l->ev_timer);
	free(l->name);
	free(l);
}

/* ------------------------------------------------------------------ */
/* LDAPMod building */

/* Append a mod; value NULL means no values (e.g. delete the attribute). */
int
ldapmods_add(struct ldapmods *m, int op, const char *type, const char *value)
{
	LDAPMod	*mod;

	if (m->n + 2 > m->cap) {
		size_t	  ncap = m->cap ? m->cap * 2 : 8;
		LDAPMod	**nv = realloc(m->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		m->v = nv;
		m->cap = ncap;
	}
	if ((mod = calloc(1, sizeof(*mod))) == NULL)
		return -1;
	mod->mod_op = op;
	if ((mod->mod_type = strdup(type)) == NULL)
		goto fail;
	if (value != NULL) {
		if ((mod->mod_values = calloc(2, sizeof(char *))) == NULL ||
		    (mod->mod_values[0] = strdup(value)) == NULL)
			goto fail;
	}
	m->v[m->n++] = mod;
	m->v[m->n] = NULL;
	return 0;
fail:
	if (mod->mod_values != NULL)
		free(mod->mod_values[0]);
	free(mod->mod_values);
	free(mod->mod_type);
	free(mod);
	return -1;
}

void
ldapmods_free(struct ldapmods *m)
{
	for (size_t i = 0; i < m->n; i++) {
		LDAPMod	*mod = m->v[i];

		if (mod->mod_values != NULL) {
			for (char **v = mod->mod_values; *v != NULL; v++)
				free(*v);
			free(mod->mod_values);
		}
		free(mod->mod_type);
		free(mod);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}
