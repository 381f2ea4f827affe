/*
 * auth.c - auth.login and auth.verify: password checks, the inactive-account
 * check, throttling of failed logins, and keeping logged-in identities in
 * step with the directory.
 *
 * A password is checked by the directory itself: a simple bind as the
 * account's DN on one of ldap.bind_connections connections reserved for
 * that (RFC 4511 4.2.1: nothing else may be outstanding during a bind, so
 * binds never share the service connection).  The shipped access rules
 * make slapd refuse the bind of an inactive account with the same 49 as a
 * wrong password; to tell the two apart, the service connection reads the
 * entry's status and, for an inactive entry only (the one case the rules
 * let the service read a hash), its userPassword, and the password is
 * checked against that hash here.  Hash checks run on one worker thread:
 * an {ARGON2} check at slapd's default cost takes ~12 ms of CPU here, far
 * too long for the event loop (docs/auth.md).
 *
 * Failed logins are counted per account (lowercased username) and per
 * peer (uid) in two bounded tables; past auth.max_failures, attempts are
 * refused at once with rate_limited for a delay that doubles with each
 * further failure.  Attempts in flight count against the allowance, so
 * pipelining or many connections cannot run more guesses than it.
 *
 * Lifetimes: one struct auth_try per request, owned by whichever callback
 * runs next (bind, search, hash worker) and freed by auth_end(), which is
 * also the one place that replies.  The password lives only in the try
 * (wiped on free); the copy in the request's params is wiped at once.
 */
#include <sys/eventfd.h>
#include <sys/queue.h>

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <argon2.h>
#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/nettle-meta.h>

#include "otasdird.h"

#define AUTH_THR_MAX		10000	/* entries per throttle table */
#define AUTH_THR_BUCKETS	16384
#define AUTH_THR_FORGET_MS	(15 * 60 * 1000)	/* quiet time before
							 * a count is dropped */
#define AUTH_HASH_QUEUE_MAX	256	/* hash checks waiting */
#define AUTH_HASH_VALUES_MAX	8	/* userPassword values looked at */
#define AUTH_HASH_LEN_MAX	1024	/* longest hash looked at */

#define MSG_INVALID	"invalid username or password"
#define MSG_INACTIVE	"the account is inactive"

/* ------------------------------------------------------------------ */
/* throttling */

/*
 * One account's or one peer's failures.  An entry exists while attempts
 * are in flight or failures are remembered; it is forgotten
 * AUTH_THR_FORGET_MS after its last failure once its delay has passed,
 * on a success, or (least recently used first) when the table is full.
 */
struct thr_entry {
	TAILQ_ENTRY(thr_entry)	 lru;
	struct thr_entry	*hnext;
	unsigned		 failures;
	unsigned		 pending;	/* attempts in flight */
	uint64_t		 last_ms;	/* last failure or attempt */
	uint64_t		 until_ms;	/* refused until then */
	char			 key[USERNAME_MAX + 1];
};

struct thr_table {
	const char		*what;		/* "account" / "peer" */
	struct thr_entry	*buckets[AUTH_THR_BUCKETS];
	TAILQ_HEAD(, thr_entry)	 lru;		/* least recently used first */
	size_t			 n;
	uint32_t		 seed;
};

enum thr_outcome {
	THR_OK,			/* the login succeeded: forget the failures */
	THR_FAILED,		/* the login failed: count it */
	THR_NEUTRAL,		/* no verdict (directory down, time out) */
};

static struct thr_table	 thr_accounts = { .what = "account" };
static struct thr_table	 thr_peers = { .what = "uid" };

/* Seeded FNV-1a, so that nobody can pick keys that share a bucket. */
static uint32_t
thr_hash(const struct thr_table *t, const char *key)
{
	uint32_t	 h = 2166136261u ^ t->seed;

	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	return h % AUTH_THR_BUCKETS;
}

static struct thr_entry *
thr_find(struct thr_table *t, const char *key)
{
	struct thr_entry	*e;

	for (e = t->buckets[thr_hash(t, key)]; e != NULL; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
thr_remove(struct thr_table *t, struct thr_entry *e)
{
	struct thr_entry	**pp;

	for (pp = &t->buckets[thr_hash(t, e->key)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	TAILQ_REMOVE(&t->lru, e, lru);
	t->n--;
	free(e);
}

/* The delay, in ms, that follows the failures-th failure: none before
 * auth.max_failures, then base_delay_s doubling up to max_delay_s. */
static uint64_t
thr_delay_ms(unsigned failures)
{
	const struct cfg	*c = D.cfg;
	uint64_t		 d;

	if (failures < c->login_max_failures || c->login_base_delay_s == 0)
		return 0;
	d = c->login_base_delay_s;
	for (unsigned i = c->login_max_failures; i < failures &&
	    d < c->login_max_delay_s; i++)
		d *= 2;
	if (d > c->login_max_delay_s)
		d = c->login_max_delay_s;
	return d * 1000;
}

/* Is e to be forgotten: idle, its delay over, quiet long enough? */
static bool
thr_stale(const struct thr_entry *e, uint64_t now)
{
	return e->pending == 0 && now >= e->until_ms &&
	    now - e->last_ms >= AUTH_THR_FORGET_MS;
}

/* Drop stale entries from the least recently used end. */
static void
thr_expire(struct thr_table *t, uint64_t now)
{
	struct thr_entry	*e;

	while ((e = TAILQ_FIRST(&t->lru)) != NULL && thr_stale(e, now))
		thr_remove(t, e);
}

/*
 * May an attempt for key start now?  Returns 0, or the ms to wait: the
 * key is inside its delay, or its remaining allowance is taken by
 * attempts still in flight.
 */
static uint64_t
thr_wait(struct thr_table *t, const char *key, uint64_t now)
{
	struct thr_entry	*e;
	uint64_t		 d;

	thr_expire(t, now);
	if ((e = thr_find(t, key)) == NULL)
		return 0;
	if (thr_stale(e, now)) {
		thr_remove(t, e);
		return 0;
	}
	if (now < e->until_ms)
		return e->until_ms - now;
	if (e->pending > 0 &&
	    (d = thr_delay_ms(e->failures + e->pending)) > 0)
		return d;
	return 0;
}

/* Record an attempt in flight for key.  Returns 0, or -1 when the table
 * is full of attempts in flight (or out of memory). */
static int
thr_begin(struct thr_table *t, const char *key, uint64_t now)
{
	struct thr_entry	*e;
	uint32_t		 h;

	if ((e = thr_find(t, key)) != NULL) {
		TAILQ_REMOVE(&t->lru, e, lru);
		goto done;
	}
	if (t->n >= AUTH_THR_MAX) {
		/* Full: forget the least recently used idle entry. */
		TAILQ_FOREACH(e, &t->lru, lru)
			if (e->pending == 0)
				break;
		if (e == NULL)
			return -1;
		thr_remove(t, e);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	snprintf(e->key, sizeof(e->key), "%s", key);
	h = thr_hash(t, key);
	e->hnext = t->buckets[h];
	t->buckets[h] = e;
	t->n++;
done:
	e->pending++;
	e->last_ms = now;
	TAILQ_INSERT_TAIL(&t->lru, e, lru);
	return 0;
}

/* An attempt for key has its outcome. */
static void
thr_end(struct thr_table *t, const char *key, enum thr_outcome o)
{
	struct thr_entry	*e;
	uint64_t		 now = now_ms(), d;

	if ((e = thr_find(t, key)) == NULL)
		return;
	if (e->pending > 0)
		e->pending--;
	switch (o) {
	case THR_OK:
		e->failures = 0;
		e->until_ms = 0;
		break;
	case THR_FAILED:
		e->failures++;
		e->last_ms = now;
		if ((d = thr_delay_ms(e->failures)) > 0) {
			e->until_ms = now + d;
			log_info("auth: %s %s: %u failed logins, refusing "
			    "logins for %llu s", t->what, e->key, e->failures,
			    (unsigned long long)(d / 1000));
		}
		TAILQ_REMOVE(&t->lru, e, lru);
		TAILQ_INSERT_TAIL(&t->lru, e, lru);
		break;
	case THR_NEUTRAL:
		break;
	}
	if (e->pending == 0 && e->failures == 0)
		thr_remove(t, e);
}

static void
thr_clear(struct thr_table *t)
{
	struct thr_entry	*e;

	while ((e = TAILQ_FIRST(&t->lru)) != NULL)
		thr_remove(t, e);
}

/* ------------------------------------------------------------------ */
/* checking a password against a stored hash (pure; any thread) */

/* Salted or not, slapd stores these as base64(digest || salt). */
static const struct auth_scheme {
	const char			*name;
	const struct nettle_hash	*hash;
	bool				 salted;
} auth_schemes[] = {
	{ "{SHA}", &nettle_sha1, false },
	{ "{SSHA}", &nettle_sha1, true },
	{ "{SHA256}", &nettle_sha256, false },	/* contrib pw-sha2 */
	{ "{SSHA256}", &nettle_sha256, true },
	{ "{SHA384}", &nettle_sha384, false },
	{ "{SSHA384}", &nettle_sha384, true },
	{ "{SHA512}", &nettle_sha512, false },
	{ "{SSHA512}", &nettle_sha512, true },
	{ "{MD5}", &nettle_md5, false },
	{ "{SMD5}", &nettle_md5, true },
};

/* {SSHA} and friends: digest(pw || salt) == the stored digest. */
static bool
auth_check_digest(const struct auth_scheme *s, const char *b64, size_t len,
    const char *pw, size_t pwlen)
{
	struct base64_decode_ctx	 b;
	const struct nettle_hash	*h = s->hash;
	uint8_t				*raw = NULL, digest[64];
	void				*ctx = NULL;
	size_t				 rawlen = BASE64_DECODE_LENGTH(len);
	bool				 ok = false;

	if (h->digest_size > sizeof(digest) ||
	    (raw = malloc(rawlen + 1)) == NULL ||
	    (ctx = malloc(h->context_size)) == NULL)
		goto done;
	base64_decode_init(&b);
	if (!base64_decode_update(&b, &rawlen, raw, len, b64) ||
	    !base64_decode_final(&b))
		goto done;
	if (s->salted ? rawlen <= h->digest_size : rawlen != h->digest_size)
		goto done;
	h->init(ctx);
	h->update(ctx, pwlen, (const uint8_t *)pw);
	h->update(ctx, rawlen - h->digest_size, raw + h->digest_size);
	h->digest(ctx, h->digest_size, digest);
	ok = memeql_sec(digest, raw, h->digest_size) != 0;
	explicit_bzero(digest, sizeof(digest));
done:
	if (ctx != NULL) {
		explicit_bzero(ctx, h->context_size);
		free(ctx);
	}
	free(raw);
	return ok;
}

/* {ARGON2}: the rest is the encoded $argon2{i,d,id}$... string. */
static bool
auth_check_argon2(const char *enc, const char *pw, size_t pwlen)
{
	argon2_type	 type;

	if (strncmp(enc, "$argon2id$", 10) == 0)
		type = Argon2_id;
	else if (strncmp(enc, "$argon2i$", 9) == 0)
		type = Argon2_i;
	else if (strncmp(enc, "$argon2d$", 9) == 0)
		type = Argon2_d;
	else
		return false;
	return argon2_verify(enc, pw, pwlen, type) == ARGON2_OK;
}

/* {CRYPT}: whatever crypt(3) of this system knows ($6$, $y$, ...). */
static bool
auth_check_crypt(const char *setting, const char *pw)
{
	struct crypt_data	*cd;
	const char		*out;
	size_t			 n = strlen(setting);
	bool			 ok = false;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return false;
	out = crypt_r(pw, setting, cd);
	/* libxcrypt fails with a string starting with '*', never equal to
	 * a valid setting. */
	if (out != NULL && out[0] != '*' && strlen(out) == n)
		ok = memeql_sec(out, setting, n) != 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/*
 * Does pw match one stored userPassword value (NUL-terminated, cut at the
 * first NUL of the stored value)?  Understands {SHA}, {SSHA}, the
 * SHA-2 and MD5 schemes, {ARGON2} and {CRYPT}; a value without a {scheme}
 * is cleartext, which slapd compares as is.  Unknown schemes never match.
 * Pure and thread-safe.
 */
static bool
auth_hash_check(const char *stored, const char *pw, size_t pwlen)
{
	size_t	 len = strlen(stored), n;

	if (stored[0] != '{')
		return len == pwlen && memeql_sec(stored, pw, len) != 0;
	for (size_t i = 0; i < nitems(auth_schemes); i++) {
		n = strlen(auth_schemes[i].name);
		if (strncasecmp(stored, auth_schemes[i].name, n) == 0)
			return auth_check_digest(&auth_schemes[i], stored + n,
			    len - n, pw, pwlen);
	}
	if (strncasecmp(stored, "{ARGON2}", 8) == 0)
		return auth_check_argon2(stored + 8, pw, pwlen);
	if (strncasecmp(stored, "{CRYPT}", 7) == 0)
		return auth_check_crypt(stored + 7, pw);
	return false;
}

/* ------------------------------------------------------------------ */
/* one login attempt */

struct auth_try {
	TAILQ_ENTRY(auth_try)	 entry;		/* hash worker queues */
	struct req		*r;
	bool			 login;		/* auth.login, not verify */
	bool			 named;		/* username is valid */
	bool			 in_peer;	/* counted in thr_peers */
	bool			 in_acct;	/* counted in thr_accounts */
	char			 peer_key[16];
	char			 name[USERNAME_MAX + 1];
	char			 key[USERNAME_MAX + 1];	/* lowercased */
	char			*dn;
	char			*pw;		/* wiped on free */
	size_t			 pwlen;

	/* What the service connection read of the entry. */
	bool			 found;
	bool			 is_account;	/* objectClass otasAccount */
	struct account		 acct;		/* strings are ours */
	char			*hashes[AUTH_HASH_VALUES_MAX];
	size_t			 nhashes;
	bool			 verified;	/* set by the hash worker */
};

TAILQ_HEAD(auth_tries, auth_try);

static struct ldc	**auth_pool;
static unsigned		  auth_npool;

static void	auth_hashed(struct auth_try *);

static void
auth_try_free(struct auth_try *t)
{
	if (t->pw != NULL) {
		explicit_bzero(t->pw, t->pwlen);
		free(t->pw);
	}
	for (size_t i = 0; i < t->nhashes; i++) {
		explicit_bzero(t->hashes[i], strlen(t->hashes[i]));
		free(t->hashes[i]);
	}
	free(t->acct.username);
	free(t->acct.full_name);
	free(t->acct.email);
	free(t->dn);
	free(t);
}

/*
 * The end of every attempt: settle the throttle counts, audit, log, reply
 * (an error when code is non-zero, else the account a), free t.
 */
static void
auth_end(struct auth_try *t, int code, const char *reason,
    const char *message, const struct account *a)
{
	struct req		*r = t->r;
	enum thr_outcome	 o = THR_NEUTRAL;
	const char		*outcome = code == 0 ? "ok" :
	    reason != NULL ? reason : "internal_error";
	char			 actor[128];
	cJSON			*res;

	if (code == 0)
		o = THR_OK;
	else if (code == RPC_INVALID_CREDENTIALS ||
	    code == RPC_ACCOUNT_INACTIVE)
		o = THR_FAILED;
	if (t->in_peer)
		thr_end(&thr_peers, t->peer_key, o);
	if (t->in_acct)
		thr_end(&thr_accounts, t->key, o);

	req_actor(r, actor, sizeof(actor));
	log_info("%s %s by %s: %s", r->method->name,
	    t->named ? t->name : "(invalid username)", actor, outcome);
	audit_log(r, t->named ? (a != NULL ? a->username : t->name) : NULL,
	    outcome, NULL);

	if (code != 0) {
		auth_try_free(t);
		req_reply_error(r, code, reason, message, NULL);
		return;
	}
	res = account_json(a);
	auth_try_free(t);
	if (res == NULL)
		req_fail_internal(r, "out of memory");
	else
		req_reply_result(r, res);
}

static void
auth_fail(struct auth_try *t, int code)
{
	if (code == RPC_ACCOUNT_INACTIVE)
		auth_end(t, code, REASON_ACCOUNT_INACTIVE, MSG_INACTIVE, NULL);
	else
		auth_end(t, RPC_INVALID_CREDENTIALS,
		    REASON_INVALID_CREDENTIALS, MSG_INVALID, NULL);
}

/* A directory error (ldc or LDAP code) that gives no verdict. */
static void
auth_dir_error(struct auth_try *t, int rc, const char *diag)
{
	switch (rc) {
	case LDC_ERR_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_TIMEOUT:
		auth_end(t, RPC_TIMEOUT, REASON_TIMEOUT, "the directory did "
		    "not answer in time; nothing was changed", NULL);
		return;
	case LDC_ERR_DOWN:
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
	case LDAP_UNAVAILABLE:
	case LDAP_BUSY:
		auth_end(t, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    "the directory is unavailable; nothing was changed", NULL);
		return;
	}
	log_warnx("req %llu %s: unexpected LDAP result %d (%s)%s%s",
	    (unsigned long long)t->r->seq, t->r->method->name, rc,
	    ldap_err2string(rc), diag != NULL ? ": " : "",
	    diag != NULL ? diag : "");
	auth_end(t, RPC_INTERNAL_ERROR, NULL, "internal error", NULL);
}

/* The connection now acts as account a (auth.login only). */
static void
auth_switch(struct auth_try *t, const struct account *a)
{
	struct conn	*c;
	struct ident	 id;

	if (!t->login || (c = conn_find(t->r->conn_id)) == NULL)
		return;
	memset(&id, 0, sizeof(id));
	id.kind = IDENT_ACCOUNT;
	id.role = a->role;
	snprintf(id.username, sizeof(id.username), "%s", a->username);
	conn_set_ident(c, &id);
}

/* The password is right: decide by the account's status. */
static void
auth_decide(struct auth_try *t, const struct account *a)
{
	switch (a->status) {
	case ST_ACTIVE:
		auth_switch(t, a);
		auth_end(t, 0, NULL, NULL, a);
		return;
	case ST_INACTIVE:
		/* slapd let an inactive account bind: the site lacks the
		 * shipped access rules, or the view has not seen a very
		 * recent activation yet.  Refuse either way. */
		auth_fail(t, RPC_ACCOUNT_INACTIVE);
		return;
	case ST_NONE:
		/* An entry under people_dn that is no platform account. */
		auth_fail(t, RPC_INVALID_CREDENTIALS);
		return;
	}
}

/* ------------------------------------------------------------------ */
/* the hash worker */

/*
 * One thread checks hashes (argon2 is CPU-bound and too slow for the
 * event loop).  The loop queues a try on hash_todo; the worker sets
 * t->verified, moves it to hash_done and wakes the loop through an
 * eventfd.  The worker touches nothing of a try but hashes, pw and
 * verified, and the loop touches a queued try not at all.
 */
static pthread_mutex_t	 hash_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 hash_cv = PTHREAD_COND_INITIALIZER;
static struct auth_tries hash_todo = TAILQ_HEAD_INITIALIZER(hash_todo);
static struct auth_tries hash_done = TAILQ_HEAD_INITIALIZER(hash_done);
static unsigned		 hash_nqueued;		/* todo + being checked */
static bool		 hash_stop;
static bool		 hash_running;
static pthread_t	 hash_thread;
static int		 hash_efd = -1;
static struct event	*hash_ev;

static void *
auth_hash_main(void *arg)
{
	struct auth_try	*t;
	uint64_t	 one = 1;
	ssize_t		 wr;

	pthread_mutex_lock(&hash_mtx);
	for (;;) {
		while (!hash_stop && TAILQ_EMPTY(&hash_todo))
			pthread_cond_wait(&hash_cv, &hash_mtx);
		if (hash_stop)
			break;
		t = TAILQ_FIRST(&hash_todo);
		TAILQ_REMOVE(&hash_todo, t, entry);
		pthread_mutex_unlock(&hash_mtx);

		t->verified = false;
		for (size_t i = 0; i < t->nhashes && !t->verified; i++)
			t->verified = auth_hash_check(t->hashes[i], t->pw,
			    t->pwlen);

		pthread_mutex_lock(&hash_mtx);
		TAILQ_INSERT_TAIL(&hash_done, t, entry);
		/* An eventfd write fails only on overflow, and then the
		 * loop has a wake-up pending anyway. */
		wr = write(hash_efd, &one, sizeof(one));
		(void)wr;
	}
	pthread_mutex_unlock(&hash_mtx);
	return NULL;
}

/* The loop side: finish every checked try. */
static void
auth_hash_ready(evutil_socket_t fd, short ev, void *arg)
{
	struct auth_tries	 done = TAILQ_HEAD_INITIALIZER(done);
	struct auth_try		*t;
	uint64_t		 n;

	if (read(hash_efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("auth: hash worker eventfd");
	pthread_mutex_lock(&hash_mtx);
	while ((t = TAILQ_FIRST(&hash_done)) != NULL) {
		TAILQ_REMOVE(&hash_done, t, entry);
		TAILQ_INSERT_TAIL(&done, t, entry);
		hash_nqueued--;
	}
	pthread_mutex_unlock(&hash_mtx);
	while ((t = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, t, entry);
		auth_hashed(t);
	}
}

/* Queue t's hashes for checking; 0, or -1 (stopped or too many queued:
 * t untouched). */
static int
auth_hash_submit(struct auth_try *t)
{
	int	 rc = -1;

	pthread_mutex_lock(&hash_mtx);
	if (hash_running && !hash_stop && hash_nqueued < AUTH_HASH_QUEUE_MAX) {
		TAILQ_INSERT_TAIL(&hash_todo, t, entry);
		hash_nqueued++;
		pthread_cond_signal(&hash_cv);
		rc = 0;
	}
	pthread_mutex_unlock(&hash_mtx);
	return rc;
}

static void
auth_hash_start(void)
{
	sigset_t	 all, old;
	int		 rc;

	if ((hash_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		fatal("auth: eventfd");
	if ((hash_ev = event_new(D.base, hash_efd, EV_READ | EV_PERSIST,
	    auth_hash_ready, NULL)) == NULL || event_add(hash_ev, NULL) != 0)
		fatalx("auth: cannot watch the hash worker");
	/* Signals are the loop's business: the worker blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&hash_thread, NULL, auth_hash_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		fatal("auth: cannot start the hash worker");
	}
	hash_running = true;
}

/* Stop the worker; finish what it checked, fail what it did not. */
static void
auth_hash_stop(void)
{
	struct auth_try	*t;

	if (hash_running) {
		pthread_mutex_lock(&hash_mtx);
		hash_stop = true;
		pthread_cond_broadcast(&hash_cv);
		pthread_mutex_unlock(&hash_mtx);
		pthread_join(hash_thread, NULL);
		hash_running = false;
		auth_hash_ready(hash_efd, EV_READ, NULL);
		while ((t = TAILQ_FIRST(&hash_todo)) != NULL) {
			TAILQ_REMOVE(&hash_todo, t, entry);
			hash_nqueued--;
			auth_end(t, RPC_DIR_UNAVAILABLE,
			    REASON_DIR_UNAVAILABLE, "the daemon is shutting "
			    "down", NULL);
		}
	}
	if (hash_ev != NULL) {
		event_free(hash_ev);
		hash_ev = NULL;
	}
	if (hash_efd >= 0) {
		close(hash_efd);
		hash_efd = -1;
	}
}

/* ------------------------------------------------------------------ */
/* reading the entry with the service connection */

static const char *const attrs_status[] = {
	"objectClass", "otasAccountStatus", "userPassword", NULL
};
static const char *const attrs_account[] = {
	"objectClass", "uid", "cn", "displayName", "mail",
	"otasAccountStatus", "otasRole", NULL
};

/* The first value of attr as a malloc'd string, or NULL. */
static char *
auth_first_value(LDAP *ld, LDAPMessage *msg, const char *attr)
{
	struct berval	**v;
	char		 *s = NULL;

	if ((v = ldap_get_values_len(ld, msg, attr)) == NULL)
		return NULL;
	if (v[0] != NULL)
		s = strndup(v[0]->bv_val, v[0]->bv_len);
	ldap_value_free_len(v);
	return s;
}

/* The search entry: note the status, role and names, and copy the
 * userPassword values if they were asked for (and readable). */
static void
auth_entry(LDAP *ld, LDAPMessage *msg, void *arg)
{
	struct auth_try	 *t = arg;
	struct berval	**v;
	char		 *s;

	if (ldap_msgtype(msg) != LDAP_RES_SEARCH_ENTRY || t->found)
		return;
	t->found = true;
	if ((v = ldap_get_values_len(ld, msg, "objectClass")) != NULL) {
		for (size_t i = 0; v[i] != NULL; i++)
			if (v[i]->bv_len == 11 &&
			    strncasecmp(v[i]->bv_val, "otasAccount", 11) == 0)
				t->is_account = true;
		ldap_value_free_len(v);
	}
	t->acct.status = ST_NONE;
	if (t->is_account &&
	    (s = auth_first_value(ld, msg, "otasAccountStatus")) != NULL) {
		t->acct.status = strcasecmp(s, STATUS_INACTIVE) == 0 ?
		    ST_INACTIVE : ST_ACTIVE;
		free(s);
	}
	t->acct.role = ROLE_USER;
	if ((s = auth_first_value(ld, msg, "otasRole")) != NULL) {
		if (strcasecmp(s, ROLE_NAME_SUPERADMIN) == 0)
			t->acct.role = ROLE_SUPERADMIN;
		free(s);
	}
	/* uid may have several values: the username is the one the DN was
	 * made of. */
	if ((v = ldap_get_values_len(ld, msg, "uid")) != NULL) {
		for (size_t i = 0; v[i] != NULL && t->acct.username == NULL;
		    i++)
			if (v[i]->bv_len == strlen(t->name) &&
			    strncasecmp(v[i]->bv_val, t->name,
			    v[i]->bv_len) == 0)
				t->acct.username = strndup(v[i]->bv_val,
				    v[i]->bv_len);
		ldap_value_free_len(v);
	}
	if ((t->acct.full_name = auth_first_value(ld, msg, "displayName")) ==
	    NULL)
		t->acct.full_name = auth_first_value(ld, msg, "cn");
	t->acct.email = auth_first_value(ld, msg, "mail");

	if ((v = ldap_get_values_len(ld, msg, "userPassword")) == NULL)
		return;
	for (size_t i = 0; v[i] != NULL && t->nhashes < AUTH_HASH_VALUES_MAX;
	    i++) {
		/* A stored hash is text, and slapd reads it as a C string.
		 * Its argon2 module (2.5.13) stores the whole output buffer:
		 * the string, its NUL, and a byte or so of whatever followed
		 * (measured: "...\0\0", "...\0\xa0", "...\0P").  So the
		 * value ends at its first NUL. */
		size_t	 len = strnlen(v[i]->bv_val, v[i]->bv_len);

		if (len == 0 || len > AUTH_HASH_LEN_MAX)
			continue;
		if ((s = strndup(v[i]->bv_val, len)) != NULL)
			t->hashes[t->nhashes++] = s;
	}
	for (size_t i = 0; v[i] != NULL; i++)
		explicit_bzero(v[i]->bv_val, v[i]->bv_len);
	ldap_value_free_len(v);
}

/* Start a base search of t's entry on the service connection; 0 or -1
 * (done will not run). */
static int
auth_read_entry(struct auth_try *t, const char *const *attrs,
    ldc_done_fn *done)
{
	struct ldc_call	 call;

	if (!dir_up() || dir_service() == NULL)
		return -1;
	memset(&call, 0, sizeof(call));
	call.deadline_ms = t->r->deadline_ms;
	call.retry = true;
	call.on_msg = auth_entry;
	call.done = done;
	call.arg = t;
	return ldc_search(dir_service(), &call, t->dn, LDAP_SCOPE_BASE,
	    "(objectClass=*)", attrs, 1) != NULL ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* the steps of a login */

/* The hash check of an inactive entry is done. */
static void
auth_hashed(struct auth_try *t)
{
	auth_fail(t, t->verified ? RPC_ACCOUNT_INACTIVE :
	    RPC_INVALID_CREDENTIALS);
}

/*
 * The status read after a refused bind.  Only an inactive account whose
 * hash the service could read is checked further; everything else (no
 * such entry, active, unreadable, directory trouble) is a wrong username
 * or password, which it is as far as anyone may learn.
 */
static void
auth_status_read(struct ldc_res *res, void *arg)
{
	struct auth_try	*t = arg;

	if (res->rc != LDAP_SUCCESS && res->rc != LDAP_NO_SUCH_OBJECT)
		log_info("req %llu %s: cannot read the status of %s: %s",
		    (unsigned long long)t->r->seq, t->r->method->name, t->name,
		    res->rc < 0 && res->diag != NULL ? res->diag :
		    ldap_err2string(res->rc));
	if (res->rc == LDAP_SUCCESS && t->found &&
	    t->acct.status == ST_INACTIVE && t->nhashes > 0) {
		if (auth_hash_submit(t) == 0)
			return;
		log_info("req %llu %s: hash checks queue full",
		    (unsigned long long)t->r->seq, t->r->method->name);
	}
	auth_fail(t, RPC_INVALID_CREDENTIALS);
}

/* The account read after a successful bind the view knew nothing of. */
static void
auth_account_read(struct ldc_res *res, void *arg)
{
	struct auth_try	*t = arg;

	if (res->rc != LDAP_SUCCESS && res->rc != LDAP_NO_SUCH_OBJECT) {
		auth_dir_error(t, res->rc, res->diag);
		return;
	}
	if (!t->found || !t->is_account || t->acct.username == NULL) {
		auth_fail(t, RPC_INVALID_CREDENTIALS);
		return;
	}
	if (t->acct.full_name == NULL)
		t->acct.full_name = strdup("");
	if (t->acct.email == NULL)
		t->acct.email = strdup("");
	if (t->acct.full_name == NULL || t->acct.email == NULL) {
		auth_end(t, RPC_INTERNAL_ERROR, NULL, "internal error", NULL);
		return;
	}
	/* Not put into the view: the view follows the directory itself
	 * (view.c), and will have this entry in a moment. */
	auth_decide(t, &t->acct);
}

/* The bind has its answer. */
static void
auth_bound(struct ldc_res *res, void *arg)
{
	struct auth_try		*t = arg;
	const struct account	*a;

	switch (res->rc) {
	case LDAP_SUCCESS:
		if ((a = view_get(t->name)) != NULL) {
			auth_decide(t, a);
			return;
		}
		if (auth_read_entry(t, attrs_account, auth_account_read) != 0)
			auth_end(t, RPC_DIR_UNAVAILABLE,
			    REASON_DIR_UNAVAILABLE, "the directory is "
			    "unavailable; nothing was changed", NULL);
		return;
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_UNWILLING_TO_PERFORM:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_INVALID_DN_SYNTAX:
		/* Wrong password, no such account, or (with the shipped
		 * rules) an inactive account: always read the entry, so
		 * that each case costs the same. */
		if (auth_read_entry(t, attrs_status, auth_status_read) != 0)
			auth_fail(t, RPC_INVALID_CREDENTIALS);
		return;
	}
	auth_dir_error(t, res->rc, res->diag);
}

/* The least busy bind connection (one that is up, if any), or NULL when
 * neither it nor the service connection is up: the directory is down. */
static struct ldc *
auth_pool_pick(void)
{
	struct ldc	*best = NULL;
	bool		 best_up = false;

	for (unsigned i = 0; i < auth_npool; i++) {
		struct ldc	*l = auth_pool[i];
		bool		 up = ldc_state(l) == LDC_UP;

		if (ldc_state(l) == LDC_CLOSED)
			continue;
		if (best == NULL || (up && !best_up) || (up == best_up &&
		    ldc_pending(l) < ldc_pending(best))) {
			best = l;
			best_up = up;
		}
	}
	if (best != NULL && !best_up && !dir_up())
		return NULL;
	return best;
}

/* Refuse at once: key(s) inside their delay. */
static void
auth_throttled(struct auth_try *t, uint64_t wait_ms)
{
	struct req	*r = t->r;
	cJSON		*data, *extra;
	unsigned long	 secs = (unsigned long)((wait_ms + 999) / 1000);
	char		 msg[96], actor[128];

	if (secs < 1)
		secs = 1;
	snprintf(msg, sizeof(msg), "too many failed logins; retry in %lu s",
	    secs);
	req_actor(r, actor, sizeof(actor));
	log_debug("%s %s by %s: rate_limited (%lu s)", r->method->name,
	    t->named ? t->name : "(invalid username)", actor, secs);
	if ((extra = cJSON_CreateObject()) != NULL)
		cJSON_AddNumberToObject(extra, "retry_after_s", (double)secs);
	audit_log(r, t->named ? t->name : NULL, REASON_RATE_LIMITED, extra);
	auth_try_free(t);
	if ((data = cJSON_CreateObject()) != NULL)
		cJSON_AddNumberToObject(data, "retry_after_s", (double)secs);
	req_reply_error(r, RPC_RATE_LIMITED, REASON_RATE_LIMITED, msg, data);
}

/*
 * auth.login and auth.verify: throttle, validate, bind, and on a refused
 * bind tell an inactive account from a wrong password.  login: switch the
 * connection to the account on success.
 */
static void
auth_start(struct req *r, bool login)
{
	struct auth_try	*t;
	cJSON		*pw = cJSON_GetObjectItemCaseSensitive(r->params,
	    "password");
	const char	*name = req_str(r, "username");
	struct ldc	*l;
	struct ldc_call	 call;
	uint64_t	 now = now_ms(), wait = 0, w;

	/* Take the password out of the request at once. */
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->pw = strdup(pw->valuestring)) == NULL) {
		explicit_bzero(pw->valuestring, strlen(pw->valuestring));
		free(t);
		req_fail_internal(r, "out of memory");
		return;
	}
	t->pwlen = strlen(t->pw);
	explicit_bzero(pw->valuestring, t->pwlen);
	t->r = r;
	t->login = login;
	t->named = valid_username(name, strlen(name)) == NULL;
	if (t->named) {
		snprintf(t->name, sizeof(t->name), "%s", name);
		for (size_t i = 0; t->name[i] != '\0'; i++)
			t->key[i] = (char)tolower((unsigned char)t->name[i]);
	}

	/* Throttle.  A super admin may set any password anyway, and is
	 * typically a front end relaying many people's logins: only the
	 * account counts for it, not the peer. */
	if (r->who.role != ROLE_SUPERADMIN) {
		snprintf(t->peer_key, sizeof(t->peer_key), "%u",
		    (unsigned)r->peer.uid);
		wait = thr_wait(&thr_peers, t->peer_key, now);
	}
	if (t->named && (w = thr_wait(&thr_accounts, t->key, now)) > wait)
		wait = w;
	if (wait > 0) {
		auth_throttled(t, wait);
		return;
	}
	if (t->peer_key[0] != '\0') {
		if (thr_begin(&thr_peers, t->peer_key, now) != 0)
			goto busy;
		t->in_peer = true;
	}
	if (t->named) {
		if (thr_begin(&thr_accounts, t->key, now) != 0)
			goto busy;
		t->in_acct = true;
	}

	/* Never an unauthenticated bind: an empty password is just wrong
	 * (ldc_bind refuses it too). */
	if (!t->named || t->pwlen == 0 || t->pwlen > PASSWORD_MAX) {
		auth_fail(t, RPC_INVALID_CREDENTIALS);
		return;
	}
	if ((t->dn = user_dn(t->name)) == NULL) {
		auth_end(t, RPC_INTERNAL_ERROR, NULL, "internal error", NULL);
		return;
	}
	if ((l = auth_pool_pick()) == NULL) {
		auth_end(t, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    "the directory is unavailable; nothing was changed", NULL);
		return;
	}
	memset(&call, 0, sizeof(call));
	call.deadline_ms = r->deadline_ms;
	call.done = auth_bound;
	call.arg = t;
	if (ldc_bind(l, &call, t->dn, t->pw, t->pwlen) == NULL)
		auth_end(t, RPC_INTERNAL_ERROR, NULL, "internal error", NULL);
	return;
busy:
	auth_end(t, RPC_OVERLOADED, REASON_OVERLOADED, "too many logins in "
	    "flight; retry later", NULL);
}

void
auth_login(struct req *r)
{
	auth_start(r, true);
}

void
auth_verify(struct req *r)
{
	auth_start(r, false);
}

/* ------------------------------------------------------------------ */

/*
 * A logged-in connection acts as its account as the view knows it now:
 * deleted or inactive, it keeps the username but loses every right
 * (ROLE_NONE); a changed role applies at once.  Until the view is loaded
 * nothing changes.
 */
void
auth_refresh_ident(struct ident *id)
{
	const struct account	*a;

	if (id->kind != IDENT_ACCOUNT || !view_ready())
		return;
	if ((a = view_get(id->username)) == NULL || a->status != ST_ACTIVE)
		id->role = ROLE_NONE;
	else
		id->role = a->role;
}

/* Make the bind pool and start the hash worker; called once the
 * directory (dir_init) is set up.  Exits on failure, like dir_init. */
void
auth_init(void)
{
	struct ldc_opts	 o = {
		.name = "bind",
		.bind = false,
		.serial = true,
	};

	thr_accounts.seed = arc4random();
	thr_peers.seed = arc4random();
	TAILQ_INIT(&thr_accounts.lru);
	TAILQ_INIT(&thr_peers.lru);
	auth_npool = D.cfg->bind_connections;
	if ((auth_pool = calloc(auth_npool, sizeof(*auth_pool))) == NULL)
		fatalx("auth: out of memory");
	for (unsigned i = 0; i < auth_npool; i++)
		if ((auth_pool[i] = ldc_new(&o)) == NULL)
			fatalx("cannot create the bind connections");
	auth_hash_start();
}

/* Close the pool (binds in flight are answered directory_unavailable),
 * stop the worker, forget the counts. */
void
auth_shutdown(void)
{
	for (unsigned i = 0; i < auth_npool; i++)
		ldc_free(auth_pool[i]);
	free(auth_pool);
	auth_pool = NULL;
	auth_npool = 0;
	auth_hash_stop();
	thr_clear(&thr_accounts);
	thr_clear(&thr_peers);
}
