/*
 * otasdird.h - shared types and cross-file prototypes of otasdird.
 *
 * A request flows one way:
 *
 *   ctl.c (accept) -> conn.c (frame) -> rpc.c (parse) -> method.c (check
 *   identity and params, dispatch table) -> handler (server.c, user.c,
 *   auth.c, seat.c) -> ldc.c / view.c (directory) -> req_reply_*() -> conn.c
 *
 * Static helpers stay in their file; everything another file calls is
 * declared here, grouped by file.
 */
#ifndef OTASDIRD_H
#define OTASDIRD_H

#include <sys/types.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <ldap.h>

#include "proto.h"

/* Free *evp if set and forget it. */
static inline void
event_freep(struct event **evp)
{
	if (*evp != NULL)
		event_free(*evp);
	*evp = NULL;
}
#include "valid.h"

#define WUR		__attribute__((warn_unused_result))
#define PRINTF(a, b)	__attribute__((format(printf, a, b)))
#define NORETURN	__attribute__((noreturn))

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* log.c */

/* Levels are syslog priorities; lines on stderr carry the sd-daemon
 * prefix "<N>" so journald keeps them. */
enum log_level {
	LOGL_ERR	= 3,
	LOGL_WARNING	= 4,
	LOGL_NOTICE	= 5,
	LOGL_INFO	= 6,
	LOGL_DEBUG	= 7,
};

void	log_init(enum log_level, bool prefix);
void	log_setlevel(enum log_level);
enum log_level log_getlevel(void);
bool	log_enabled(enum log_level);
int	log_parse_level(const char *, enum log_level *) WUR;
const char *log_level_name(enum log_level);
void	log_warn(const char *, ...) PRINTF(1, 2);	/* adds strerror(errno) */
void	log_warnx(const char *, ...) PRINTF(1, 2);
void	log_notice(const char *, ...) PRINTF(1, 2);
void	log_info(const char *, ...) PRINTF(1, 2);
void	log_debug(const char *, ...) PRINTF(1, 2);
void	fatal(const char *, ...) PRINTF(1, 2) NORETURN;
void	fatalx(const char *, ...) PRINTF(1, 2) NORETURN;

/* ------------------------------------------------------------------ */
/* cfg.c */

struct cfg_strs {
	char		**v;
	size_t		  n;
};

/*
 * The whole configuration.  Every field has a default (cfg_defaults) so a
 * file with only the contract's keys runs.  Durations are in milliseconds
 * unless the name says otherwise.
 */
struct cfg {
	char		*file;		/* the path it was loaded from */

	/* socket: */
	char		*socket_path;
	mode_t		 socket_mode;		/* default 0660 */
	char		*socket_group;		/* NULL: the daemon's group */
	gid_t		 socket_gid;		/* resolved at load; -1 if none */
	size_t		 max_request_bytes;	/* default 65536 */
	unsigned	 max_connections;	/* default 1024 */
	unsigned	 max_inflight_conn;	/* per connection, default 64 */
	unsigned	 max_inflight;		/* in total, default 4096 */
	unsigned	 idle_timeout_s;	/* default 300; 0 = never */
	size_t		 max_reply_backlog;	/* bytes queued to a client
						 * before it stops being read,
						 * default 1 MiB */

	/* ldap: */
	struct cfg_strs	 ldap_uris;		/* tried in order */
	char		*bind_dn;
	char		*bind_password_file;
	char		*bind_password;		/* read once at start; see
						 * cfg_load() flags */
	size_t		 bind_password_len;
	char		*people_dn;
	char		*counter_dn;		/* default cn=otasdir-seats,
						 * <parent of people_dn> */
	unsigned	 op_timeout_ms;		/* deadline of a request's
						 * directory work, default
						 * 10000 */
	unsigned	 connect_timeout_ms;	/* default 3000 */
	unsigned	 reconnect_min_ms;	/* default 250 */
	unsigned	 reconnect_max_ms;	/* default 30000 */
	unsigned	 bind_connections;	/* for auth.*, default 4 */
	unsigned	 reconcile_interval_s;	/* seat recount, default 60 */
	char		*tls_ca_file;		/* NULL: system default */
	bool		 starttls;		/* StartTLS on ldap:// */
	bool		 tls_verify;		/* default true */

	/* license: */
	long		 seats;			/* 1 .. 10,000,000 */

	/* admins: */
	uid_t		*admin_uids;
	size_t		 n_admin_uids;
	struct cfg_strs	 admin_groups;
	gid_t		*admin_gids;		/* resolved at load */
	size_t		 n_admin_gids;

	/* auth: */
	unsigned	 login_max_failures;	/* before throttling, default 5 */
	unsigned	 login_base_delay_s;	/* first delay, default 1 */
	unsigned	 login_max_delay_s;	/* cap, default 300 */

	/* audit: */
	char		*audit_path;		/* NULL: syslog */

	/* log: */
	enum log_level	 log_level;		/* default info */

	/* shutdown: */
	unsigned	 shutdown_grace_ms;	/* default 10000 */
};

/* One problem found in a config file: "file:line: message". */
struct cfg_errors {
	char		**v;
	size_t		  n;
};

#define CFG_LOAD_SECRET		0x01	/* read bind_password_file too */

/*
 * Load and check path.  On success returns 0 and sets *out (free with
 * cfg_free).  On failure returns -1, *out untouched, and errs holds every
 * problem found (free with cfg_errors_free).  Never exits, never logs.
 */
int	cfg_load(const char *path, int flags, struct cfg **out,
	    struct cfg_errors *errs) WUR;
void	cfg_free(struct cfg *);
void	cfg_errors_free(struct cfg_errors *);

/* ------------------------------------------------------------------ */
/* otasdird.c */

/* Process-wide state.  Only main and the signal handlers replace cfg. */
struct daemon {
	struct event_base	*base;
	struct cfg		*cfg;
	const char		*cfg_path;
	time_t			 started;
	struct timespec		 started_mono;
	bool			 stopping;	/* SIGTERM seen */
};
extern struct daemon	 D;

/* clock.c: monotonic clock in milliseconds. */
uint64_t	now_ms(void);

/* ------------------------------------------------------------------ */
/* ctl.c: the listening socket */

int	ctl_listen(void) WUR;		/* bind/activate; 0 or -1 */
void	ctl_start(void);		/* begin accepting */
void	ctl_stop(void);			/* stop accepting (shutdown) */
void	ctl_close(void);		/* close and unlink */
void	ctl_conn_closed(void);		/* a slot is free again */

/* ------------------------------------------------------------------ */
/* conn.c: one client connection */

enum conn_state {
	CONN_OPEN,		/* reading requests */
	CONN_BLOCKED,		/* reply backlog too large: not reading */
	CONN_DRAINING,		/* closing once replies are flushed */
};

enum role {
	ROLE_NONE = 0,		/* a peer that is not an admin */
	ROLE_USER,
	ROLE_SUPERADMIN,
};

/* Who a connection acts as. */
struct ident {
	enum { IDENT_PEER, IDENT_ACCOUNT } kind;
	enum role	 role;
	char		 username[USERNAME_MAX + 1];	/* IDENT_ACCOUNT */
};

struct peer {
	pid_t		 pid;
	uid_t		 uid;
	gid_t		 gid;
};

struct conn;

/* Take an accepted socket; returns 0 or -1 (fd closed either way on
 * failure). */
int	conn_new(int fd) WUR;
/* Find a live connection by id; NULL if it has gone. */
struct conn *conn_find(uint64_t id);
uint64_t conn_id(const struct conn *);
const struct peer *conn_peer(const struct conn *);
const struct ident *conn_ident(const struct conn *);
void	conn_set_ident(struct conn *, const struct ident *);
/* Queue one line (a JSON text without the newline) to the client. */
void	conn_send(struct conn *, const char *, size_t);
/* Request accounting: in flight per connection and in total. */
void	conn_req_started(struct conn *);
/* After conn_req_started: is this connection, or the daemon, over its
 * in-flight cap? */
bool	conn_over_cap(const struct conn *);
void	conn_req_done(uint64_t conn_id);
unsigned conn_count(void);
unsigned conn_inflight_total(void);
/* Re-evaluate every connection's peer identity (admins changed). */
void	conn_reident_all(void);
/* Shutdown: stop reading everything, close idle connections. */
void	conn_shutdown(void);
void	conn_close_all(void);

/* ------------------------------------------------------------------ */
/* rpc.c: JSON-RPC 2.0 codec (pure: no I/O, no globals) */

/*
 * Parse one line.  Returns the parsed JSON (an object, or an array for a
 * batch) or NULL with *code and *msg set (RPC_PARSE_ERROR or
 * RPC_INVALID_REQUEST).  Rejects invalid UTF-8, nesting deeper than
 * RPC_MAX_DEPTH, "\u0000", trailing garbage and duplicate keys.
 */
#define RPC_MAX_DEPTH	32
cJSON	*rpc_parse(const char *line, size_t len, int *code, const char **msg);

/*
 * Check one request object.  Returns 0 and fills the out-params (borrowed
 * from req) or -1 with *msg for an invalid request.  *id is NULL for a
 * notification.  The id of an invalid request is still returned when it
 * could be read, so the error can echo it.
 */
int	rpc_request(const cJSON *req, const char **method,
	    const cJSON **params, const cJSON **id, const char **msg) WUR;

/* Build a reply object; takes ownership of result / data. */
cJSON	*rpc_result(const cJSON *id, cJSON *result);
cJSON	*rpc_error(const cJSON *id, int code, const char *message,
	    cJSON *data);
/* Serialize to one line without newline; malloc'd. */
char	*rpc_print(const cJSON *);

/* ------------------------------------------------------------------ */
/* method.c: the dispatch table and the request lifetime */

enum ptype {
	P_STRING,
	P_INT,
	P_BOOL,
	P_ARRAY,
	P_OBJECT,
};

struct param {
	const char	*name;
	enum ptype	 type;
	bool		 required;
};

/* Who may call a method. */
#define WHO_ANYONE	0x01	/* any peer, logged in or not */
#define WHO_ACCOUNT	0x02	/* any logged-in account (auth.whoami) */
#define WHO_SUPERADMIN	0x04	/* an admin peer or a superadmin account */
#define WHO_SELF	0x08	/* an account naming itself in "username" */

struct req;
typedef void	handler_fn(struct req *);

struct method {
	const char		*name;
	handler_fn		*handler;
	unsigned		 who;
	bool			 local;		/* answered at once from memory:
						 * exempt from in-flight caps */
	const struct param	*params;	/* NULL-name terminated */
};

/*
 * One request being served.
 *
 * Ownership rule: the handler owns its request and ends it by calling
 * exactly one of req_reply_result() / req_reply_error() (or one of the
 * req_fail_*() shorthands), which writes the reply (unless the client has
 * gone or the request was a notification) and frees the request.  A
 * handler that waits on the directory keeps the struct req pointer in its
 * own state: requests outlive their connection, never the other way round.
 * To reach the client, reply code looks the connection up by conn_id.
 */
struct req {
	uint64_t		 conn_id;
	uint64_t		 seq;		/* daemon-wide, for logs */
	const struct method	*method;
	cJSON			*id;		/* copy; NULL: notification */
	cJSON			*params;	/* copy; an object, maybe empty */
	struct ident		 who;		/* identity at dispatch */
	struct peer		 peer;
	struct batch		*batch;		/* NULL unless in a batch */
	uint64_t		 start_ms;
	uint64_t		 deadline_ms;	/* for directory work */
};

void	method_dispatch(struct conn *, const char *line, size_t len);
const struct method *method_table(size_t *n);
/* Check params (an object) against m's params (pure); 0, or -1 with
 * *field and msg saying what is wrong. */
int	params_check(const struct method *m, const cJSON *params,
	    const char **field, char *msg, size_t msglen) WUR;
void	req_reply_result(struct req *, cJSON *result);
void	req_reply_error(struct req *, int code, const char *reason,
	    const char *message, cJSON *data);
void	req_fail_param(struct req *, const char *field, const char *message);
void	req_fail_internal(struct req *, const char *message);
/* Param accessors: the types were checked before the handler ran. */
const char *req_str(const struct req *, const char *name);
bool	req_has(const struct req *, const char *name);
long long req_int(const struct req *, const char *name, long long dflt);
bool	req_bool(const struct req *, const char *name, bool dflt);
const cJSON *req_param(const struct req *, const char *name);
/* Human description of the caller, for logs and audit ("uid 1000 pid 42"
 * or "account alice"). */
void	req_actor(const struct req *, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* server.c: server.* and auth.whoami */

void	server_ping(struct req *);
void	server_status(struct req *);
void	auth_whoami(struct req *);

/* ------------------------------------------------------------------ */
/* ident.c: who a peer is */

/* Fill peer from SO_PEERCRED and *groups (malloc'd, *ngroups long) from
 * SO_PEERGROUPS; 0 or -1. */
int	ident_peer(int fd, struct peer *, gid_t **groups, size_t *ngroups)
	    WUR;
/* Decide a peer's identity from cfg admins (uid, primary and
 * supplementary groups). */
void	ident_from_peer(const struct peer *, const gid_t *groups,
	    size_t ngroups, struct ident *);

/* ------------------------------------------------------------------ */
/* ldc.c: one asynchronous LDAP connection */

enum ldc_state {
	LDC_DOWN,		/* waiting to retry */
	LDC_CONNECTING,		/* TCP/Unix connect in progress */
	LDC_BINDING,		/* service bind in flight */
	LDC_UP,
	LDC_CLOSED,		/* shut down for good */
};

/* The outcome of one LDAP operation. */
struct ldc_res {
	int		 rc;		/* LDAP result code, or one of: */
#define LDC_ERR_DOWN	 (-1001)	/* connection lost / never sent */
#define LDC_ERR_TIMEOUT	 (-1002)	/* deadline passed */
	bool		 sent;		/* the request reached the wire */
	const char	*diag;		/* diagnostic message or NULL */
	const char	*matched;
	LDAPMessage	*msg;		/* the final result message, or NULL;
					 * freed after the callback */
	LDAPControl	**ctrls;	/* its controls, or NULL */
	LDAP		*ld;		/* for parsing; valid in the callback */
	/* extended operations */
	char		*ext_oid;
	struct berval	*ext_data;
};

/* Called once per op with its outcome. */
typedef void	ldc_done_fn(struct ldc_res *, void *arg);
/* Called per search entry / intermediate message (msg is freed after). */
typedef void	ldc_msg_fn(LDAP *, LDAPMessage *, void *arg);
/* Called on every state change of the connection. */
typedef void	ldc_state_fn(enum ldc_state, void *arg);

struct ldc;
struct ldc_op;

struct ldc_opts {
	const char	*name;		/* for logs: "service", "sync", ... */
	bool		 bind;		/* bind as the service on connect */
	bool		 serial;	/* one op at a time (bind pool) */
	ldc_state_fn	*on_state;
	void		*state_arg;
};

struct ldc *ldc_new(const struct ldc_opts *);
void	ldc_free(struct ldc *);
enum ldc_state ldc_state(const struct ldc *);
const char *ldc_uri(const struct ldc *);	/* current server or NULL */
const char *ldc_state_name(enum ldc_state);
unsigned ldc_pending(const struct ldc *);	/* ops queued + in flight */
/* How many times the connection has come up: what was learnt on one
 * session (a lease of seats, say) may not hold on the next, which can be
 * another server. */
unsigned ldc_epoch(const struct ldc *);
/* Drop the connection now and reconnect (e.g. after a protocol error). */
void	ldc_reset(struct ldc *, const char *why);

/*
 * Operations.  Each copies what it needs, queues the op if the connection
 * is not up yet, and calls done exactly once: with the result, with
 * LDC_ERR_TIMEOUT at deadline_ms (0: the configured op timeout from now),
 * or with LDC_ERR_DOWN if the connection is lost.  A read marked
 * retry=true is sent again after a reconnect instead of failing.
 * Returns the op (valid until done runs) or NULL if out of memory (done is
 * not called then).
 */
struct ldc_call {
	uint64_t	 deadline_ms;
	bool		 retry;
	LDAPControl	**ctrls;	/* server controls, copied */
	ldc_msg_fn	*on_msg;	/* search entries and intermediates */
	ldc_done_fn	*done;
	void		*arg;
};

struct ldc_op *ldc_search(struct ldc *, const struct ldc_call *,
	    const char *base, int scope, const char *filter,
	    const char *const *attrs, int sizelimit) WUR;
struct ldc_op *ldc_add(struct ldc *, const struct ldc_call *,
	    const char *dn, LDAPMod **mods) WUR;
struct ldc_op *ldc_modify(struct ldc *, const struct ldc_call *,
	    const char *dn, LDAPMod **mods) WUR;
struct ldc_op *ldc_delete(struct ldc *, const struct ldc_call *,
	    const char *dn) WUR;
struct ldc_op *ldc_passwd(struct ldc *, const struct ldc_call *,
	    const char *dn, const char *newpw, size_t newpw_len) WUR;
/* A simple bind as dn (auth pool connections; nothing else may be in
 * flight on the connection). */
struct ldc_op *ldc_bind(struct ldc *, const struct ldc_call *,
	    const char *dn, const char *pw, size_t pw_len) WUR;
/* Forget an op: its done callback will not run; abandon if sent. */
void	ldc_cancel(struct ldc_op *);

/* LDAPMod helpers for building add/modify requests (owned by caller,
 * freed with ldapmods_free). */
struct ldapmods {
	LDAPMod		**v;
	size_t		  n, cap;
};
int	ldapmods_add(struct ldapmods *, int op, const char *type,
	    const char *value) WUR;	/* value NULL: no values */
void	ldapmods_free(struct ldapmods *);

/* ------------------------------------------------------------------ */
/* dir.c: the service connection(s) and what runs on them */

void	dir_init(void);
void	dir_shutdown(void);
struct ldc *dir_service(void);
/* Where to run a long read that must see what the service connection's
 * server has: a connection of its own to that same server when there is
 * one up (so that writes' answers do not queue behind the read's
 * entries), else the service connection. */
struct ldc *dir_reader(void);
bool	dir_up(void);		/* the service connection is bound */
const char *dir_state_name(void);

/* Read every entry directly under people_dn, whatever the service DN's
 * size limit (see dir.c). */
struct dir_scan;
typedef void	dir_scan_entry_fn(LDAP *, LDAPMessage *, void *arg);
/* A slice ended: complete=false means its entries come again. */
typedef void	dir_scan_slice_fn(bool complete, void *arg);
typedef void	dir_scan_done_fn(int rc, const char *diag, unsigned searches,
		    void *arg);
struct dir_scan *dir_scan(struct ldc *, const char *const *attrs,
	    dir_scan_entry_fn *, dir_scan_slice_fn *, dir_scan_done_fn *,
	    void *arg) WUR;
void	dir_scan_cancel(struct dir_scan *);

/* ------------------------------------------------------------------ */
/* ordset.c: pointers in the order of a string key, in chunks */

/*
 * An ordered set whose insert and remove cost the same at any size (one
 * chunk of ORDSET_CHUNK pointers moves, not the whole array).  key gives
 * an item's key; equal keys are allowed and keep their insertion order.
 * Zero-initialise with .key set; ordset_clear frees the chunks (not the
 * items).  A position stays valid until the next insert or remove.
 */
#define ORDSET_CHUNK	512
struct ordset_chunk;
struct ordset {
	struct ordset_chunk	**c;
	size_t			  nc, capc;
	size_t			  n;		/* items */
	const char		*(*key)(const void *);
};
struct ordset_pos {
	size_t		 c, i;		/* chunk, index in it */
};
int	ordset_insert(struct ordset *, void *) WUR;	/* -1: no memory */
/* Remove or replace (by one with the same key) the item v itself; false
 * if it is not in the set. */
bool	ordset_remove(struct ordset *, const void *v);
bool	ordset_replace(struct ordset *, const void *old, void *v);
/* The first position whose key is >= key, or > key if after. */
struct ordset_pos ordset_bound(const struct ordset *, const char *key,
	    bool after);
/* The item at *pos, moving *pos on; NULL at the end. */
void	*ordset_next(const struct ordset *, struct ordset_pos *pos);
void	ordset_clear(struct ordset *);

/* ------------------------------------------------------------------ */
/* view.c: a live, in-memory copy of the entries under people_dn */

/*
 * The view follows the people OU through an RFC 4533 refreshAndPersist
 * search on a connection of its own (or, where syncprov is missing or the
 * service DN's size limit cuts the refresh short, a paged re-read every
 * ldap.reconcile_interval_s).  Every entry directly under people_dn is in
 * it, account or not, because every one takes a seat.  Reads (user.get,
 * user.list, license.get, the checks of auth.*) are served from it; writes
 * go to the directory and, once it has said yes, update the view at once
 * with view_put() / view_drop() so the next request sees them.
 */
enum acct_status {
	ST_NONE = 0,		/* not an otasAccount (a seat, not a user) */
	ST_ACTIVE,
	ST_INACTIVE,
};

struct account {
	char		*username;	/* uid as stored */
	char		*full_name;	/* displayName, else cn */
	char		*email;		/* mail, or "" */
	enum acct_status status;
	enum role	 role;		/* ROLE_USER unless superadmin */
};

bool	view_ready(void);		/* loaded at least once */
bool	view_live(void);		/* following changes (syncprov) */
/* Following, and not reloading, the changes of the server at uri. */
bool	view_current(const char *uri);
/* The account with this username (case-insensitive), or NULL.  The
 * pointer is valid until control returns to the event loop. */
const struct account *view_get(const char *username);
/* Entries under people_dn (every one is a seat). */
size_t	view_seats_used(void);
void	view_counts(size_t *active, size_t *inactive, size_t *superadmins);
/* Active super admins other than the one named (NULL: all). */
size_t	view_active_superadmins(const char *except);
/*
 * Visit accounts (not other entries) in username order (case-insensitive
 * ASCII), starting after `after` (NULL: from the first).  fn returns false
 * to stop.
 */
void	view_walk(const char *after,
	    bool (*fn)(const struct account *, void *), void *arg);
/* Record what the directory has just confirmed. */
void	view_put(const struct account *);
void	view_drop(const char *username);
/* An account as the protocol shows it: {username, full_name, email,
 * status, role}. */
cJSON	*account_json(const struct account *);
const char *acct_status_name(enum acct_status);
const char *role_name(enum role);
void	view_init(void);
void	view_shutdown(void);

/* ------------------------------------------------------------------ */
/* seat.c: the licence's seats, arbitrated by the directory */

/*
 * Seats are counted in a counter entry (ldap.counter_dn, otasSeatsUsed)
 * that every otasdird changes only with an assertion-guarded increment,
 * so the directory itself serialises competing daemons (FIELD-NOTES).
 * docs/seats.md has the protocol and its failure analysis.
 *
 * A hold is one pending change, recorded in the counter entry until it is
 * settled: a reservation of n seats for creates, or a release of n seats
 * for deletes.  Every hold must be settled exactly once with
 * seat_settle(): for a reservation, `done` is how many of the n entries
 * were really added; for a release, how many were really deleted.
 */
struct seat_hold;

enum seat_status {
	SEAT_OK,		/* hold granted */
	SEAT_FULL,		/* refused: no free seat */
	SEAT_UNAVAILABLE,	/* directory down: nothing changed */
	SEAT_TIMEOUT,		/* no answer in time: outcome unknown, any
				 * over-count heals by reconciliation */
	SEAT_ERROR,		/* anything else (logged) */
};

/* hold is NULL unless status is SEAT_OK. */
typedef void	seat_done_fn(enum seat_status, struct seat_hold *hold,
		    void *arg);

/* Reserve n seats for creates. */
void	seat_reserve(unsigned n, uint64_t deadline_ms, seat_done_fn *,
	    void *arg);
/* Announce that n seats are about to be freed by deletes. */
void	seat_release(unsigned n, uint64_t deadline_ms, seat_done_fn *,
	    void *arg);
/* Settle a hold (fire and forget; failures heal by reconciliation). */
void	seat_settle(struct seat_hold *, unsigned done);
/* delta of a reservation's seats became entries (+1 when an add
 * succeeded; -1 just before such an entry is deleted again).  Only makes
 * reconciliation more exact; NULL is ignored. */
void	seat_note_entry(struct seat_hold *, int delta);
/* Give back seats held in advance (shutdown). */
void	seat_flush(void);
bool	seat_busy(void);	/* a lease or a settle is under way */
/* The numbers for a seat_limit_reached reply: data.seats, data.used. */
cJSON	*seat_limit_data(void);
long	seat_used(void);		/* best current count, -1 unknown */
void	seat_init(void);
void	seat_shutdown(void);
void	license_get(struct req *);	/* the license.get method */

/* ------------------------------------------------------------------ */
/* user.c: user.* methods */

void	user_list(struct req *);
void	user_get(struct req *);
void	user_create(struct req *);
void	user_update(struct req *);
void	user_delete(struct req *);
void	user_set_password(struct req *);
void	user_import(struct req *);

/* ------------------------------------------------------------------ */
/* cursor.c: user.list's paging cursors */

#define CURSOR_MAX	(18 + USERNAME_MAX + 8)	/* bytes, decoded */
#define CURSOR_B64_MAX	((CURSOR_MAX * 4 + 2) / 3)	/* as sent */

/* The keyed hash of a listing's filters, which a cursor is bound to. */
uint64_t cursor_filter(enum acct_status, const char *search);
/* The cursor for a page that ended with username (out: CURSOR_B64_MAX + 1
 * bytes). */
void	cursor_make(const char *username, uint64_t filter, char *out);
/* Read cursor s made under filter into after (USERNAME_MAX + 1 bytes);
 * NULL, or what is wrong with it, for the client. */
const char *cursor_read(const char *s, uint64_t filter, char *after);
/* base64url without padding; exported for the fuzz target. */
void	cursor_b64_encode(const uint8_t *, size_t, char *out);
int	cursor_b64_decode(const char *, uint8_t *out, size_t cap);

/* ------------------------------------------------------------------ */
/* auth.c: auth.login, auth.verify, the bind pool, throttling */

void	auth_login(struct req *);
void	auth_verify(struct req *);
void	auth_init(void);
void	auth_shutdown(void);
/*
 * Refresh a logged-in connection's identity from the view before a
 * request is checked: a deleted or deactivated account loses its rights,
 * a role change applies at once.
 */
void	auth_refresh_ident(struct ident *);

/* ------------------------------------------------------------------ */
/* audit.c: one JSON line per change or refusal */

/*
 * Record what a request did: method, target (username or NULL), outcome
 * ("ok" or an error reason), and extra fields (taken over; may be NULL).
 * Never given a password.
 */
void	audit_log(const struct req *, const char *target,
	    const char *outcome, cJSON *extra);
int	audit_open(void) WUR;		/* (re)open audit.path */
void	audit_close(void);

/* ------------------------------------------------------------------ */
/* esc.c: escaping for DNs and filters (pure) */

/* RFC 4514 escaping of an attribute value for use in a DN; malloc'd. */
char	*esc_dn_value(const char *s, size_t len);
/* RFC 4515 escaping of an assertion value for a filter; malloc'd. */
char	*esc_filter_value(const char *s, size_t len);
/* "uid=<escaped username>,<people_dn>"; malloc'd. */
char	*user_dn(const char *username);

/* ------------------------------------------------------------------ */
/* sd.c: systemd integration (socket activation, sd_notify) */

/* Number of fds passed by socket activation (0 if none); they start at
 * fd 3.  Clears LISTEN_* from the environment. */
int	sd_listen_fds(void);
/* Send a state string ("READY=1", "STOPPING=1", "RELOADING=1", ...) to
 * $NOTIFY_SOCKET, if set.  Returns 0 if sent or not requested. */
int	sd_notify(const char *state);

#endif /* OTASDIRD_H */
