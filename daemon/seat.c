/*
 * seat.c - the licence's seats, arbitrated by the directory.
 *
 * Every entry directly under people_dn takes a seat.  Counting before
 * adding is racy (FIELD-NOTES: 16 clients overshot a limit of 300 by 15),
 * and LDAP transactions crash this slapd under load, so the directory
 * arbitrates through one counter entry (ldap.counter_dn):
 *
 *   reserve n:  modify counter { increment otasSeatsUsed by n,
 *                                add otasSeatPending "<token> <time> r <n>" }
 *               with a critical assertion (otasSeatsUsed<=seats-n)
 *               and post-read of otasSeatsUsed.
 *               back-mdb applies it in one LMDB write transaction, so of
 *               any number of racing daemons exactly as many succeed as
 *               there are seats.
 *   settle:     after the adds, modify { increment by -(n - added),
 *                                        delete that pending value }.
 *   release n:  before deletes, add a pending value "... d <n>"; after,
 *               modify { increment by -deleted, delete the value }.
 *
 * A crash between any two steps leaves the counter too high, never too
 * low (a reservation is counted before its entry exists; a delete is
 * counted off only after its entry is gone), and leaves a pending value
 * behind.  Reconciliation heals both: pending values older than
 * SEAT_STALE_S are removed, and when no value is pending the counter is
 * set to a fresh count of people_dn by a modify that asserts
 * (&(otasSeatsUsed=<value read before counting>)(!(otasSeatPending=*))),
 * so it cannot overwrite a change made by another daemon while it
 * counted.  docs/seats.md has the full failure analysis.
 *
 * The counter only sees otasdird's changes.  An entry added by another
 * LDAP client is seen by the live view (view.c) at once: a reservation is
 * also refused when the view's count leaves no room, and the next
 * reconciliation brings the counter up to date.
 */
#include <sys/queue.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "otasdird.h"

#define SEAT_STALE_S	120	/* pending values older than this are
				 * abandoned (their daemon died) */
#define SEAT_LEASE_MIN	16	/* seats in one lease, unless fewer are
				 * free ... */
#define SEAT_LEASE_MAX	128	/* ... or more creates are waiting */
#define SEAT_SETTLE_MS	1000	/* after moving to another server: time for
				 * replication of the old one's last changes
				 * to land before seats are counted there */
#define SEAT_LINGER_MS	20	/* an idle lease is closed after this */
#define SEAT_RETRY_MS	100	/* a refused reservation tries again after
				 * this when another change was pending */
#define SEAT_TRIES	3	/* a reservation the counter refuses while
				 * the view sees room: reconciles waited for
				 * before it is refused */
#define SEAT_RECENT	64
#define SEAT_LATER	3	/* an unsure settle that finds no value goes
				 * again after 1, 2, 4 s (replication may
				 * still bring the value) */	/* settles remembered for a move */
#define SEAT_CHECK_TRIES 5	/* a session check whose write met another
				 * change runs again, this many times */

struct lease;

struct seat_hold {
	enum { HOLD_RESERVE, HOLD_RELEASE } kind;
	unsigned	 n;
	char		 marker[96];
	struct lease	*lease;		/* one seat handed out of a lease */
	bool		 is_lease;	/* the reservation behind a lease */
	unsigned	 epoch;		/* session it was granted on */
	unsigned	 entries;	/* of its seats, now entries */
	bool		 live;		/* granted, not settled: in S.live */
	TAILQ_ENTRY(seat_hold) entry;
};
TAILQ_HEAD(seat_holds, seat_hold);

/*
 * A settle: the modify that ends a hold.  It increments the counter by
 * delta and deletes the hold's pending value in one modify, which slapd
 * applies only if that value is there -- so a settle is idempotent and
 * may be sent again (after a lost answer, or to another provider) without
 * ever counting twice: where the value is missing, nothing changes.
 */
struct settle {
	char		 marker[96];
	long		 delta;
	uint64_t	 at_ms;		/* when it succeeded; for one that
					 * waits in S.later, when it goes */
	unsigned	 later;		/* times it found no value, if it
					 * may still come (below) */
	bool		 unsure;	/* may reach a server before its
					 * value does */
	unsigned	 epoch;		/* session its hold was granted on
					 * (0: never answered) */
	TAILQ_ENTRY(settle) entry;	/* in S.settles while in flight */
};
TAILQ_HEAD(settles, settle);

/*
 * A lease: a reservation of k seats that single creates are served from
 * without a round trip each.  It is counted in the directory like any
 * reservation (so the invariant of docs/seats.md holds), and it is closed
 * -- its unused seats given back -- once it is used up, or SEAT_LINGER_MS
 * after its last seat came back.  k is at most an eighth of the seats the
 * view sees free, so near the limit every create reserves its own seat,
 * and no daemon ever holds seats another daemon would need for long.
 */
struct lease {
	struct seat_hold hold;		/* the reservation behind it */
	unsigned	 free;		/* seats not handed out */
	unsigned	 out;		/* handed out, not settled */
	unsigned	 taken;		/* settled as used */
	unsigned	 out_entries;	/* of out, now entries */
	bool		 open;		/* may hand out more */
	bool		 busy;		/* lease_granted is handing it
					 * out: not closed under it */
	unsigned	 epoch;		/* ldc_epoch() of the service
					 * connection it was granted on */
};

/* Which session of the service connection this is (ldc_epoch). */
static unsigned
seat_epoch(void)
{
	return dir_service() != NULL ? ldc_epoch(dir_service()) : 0;
}

/*
 * May l hand out a seat?  Only on the directory session it was granted
 * on: after a reconnect -- maybe to another provider, which may not have
 * the lease's reservation yet -- seats must come from a reservation made
 * there.
 */
static bool
lease_usable(struct lease *l)
{
	if (l == NULL || !l->open)
		return false;
	if (l->epoch != seat_epoch()) {
		l->open = false;
		return false;
	}
	return l->free > 0;
}

/* Seats of own reservation h that may still become entries: all of a
 * single reservation until it is settled; of a lease, those not yet
 * handed out or handed out and not yet settled. */
static unsigned
hold_unused(const struct seat_hold *h)
{
	const struct lease	*l;

	if (!h->is_lease)
		return h->n - h->entries;
	l = (const struct lease *)(const void *)((const char *)h -
	    offsetof(struct lease, hold));
	return l->free + l->out - l->out_entries;
}

void
seat_note_entry(struct seat_hold *h, int delta)
{
	if (h == NULL || h->kind != HOLD_RESERVE ||
	    (delta < 0 && h->entries == 0) || (delta > 0 && h->entries >= h->n))
		return;
	h->entries += delta > 0 ? 1 : -1;
	if (h->lease != NULL)
		h->lease->out_entries += delta > 0 ? 1 : -1;
}

/* A reservation or release on its way to being granted. */
struct seat_req {
	struct seat_hold	*hold;
	uint64_t		 deadline_ms;
	seat_done_fn		*done;
	void			*arg;
	unsigned		 tries;		/* reconciles it waited for */
	enum seat_status	 status;	/* for seat_defer */
	STAILQ_ENTRY(seat_req)	 next;		/* in a queue below */
};
/* Waiting requests are served first come, first served: a stack would
 * let the newest overtake the oldest without end under load. */
STAILQ_HEAD(seat_reqs, seat_req);

/* One reconciliation, a chain of directory operations. */
struct recon {
	long			 counter;	/* -1: no value */
	bool			 pending;	/* values present */
	bool			 exists;
	char			 **stale;	/* pending values to drop */
	size_t			 nstale;
	long			 count;		/* fresh count */
	long			 slice;		/* entries of this slice */
	bool			 raise_only;	/* values pending: may only
						 * raise the counter */
	long			 reserved;	/* seats of pending
						 * reservations not yet used */
	unsigned		 epoch;		/* session it ran on */
	bool			 refused;	/* its write met a change */
	long			 target;	/* what it writes */
	bool			 by_view;	/* count is the live view's */
};

static struct {
	LDAP			*enc;		/* encodes controls only */
	long			 counter;	/* last value seen, -1 none */
	bool			 reconciling;
	struct seat_reqs	 waiters;	/* retry after reconcile */
	struct seat_reqs	 retry;		/* retry after a pause */
	struct event		*timer;
	struct event		*retry_timer;
	bool			 started;
	unsigned		 session;	/* seat_epoch() checked */
	bool			 checking;	/* ... and being checked */
	char			*session_uri;	/* its server */
	struct event		*settle;	/* SEAT_SETTLE_MS, then check */

	unsigned		 settling;	/* settles in flight */
	struct lease		*lease;		/* open lease, or NULL */
	bool			 leasing;	/* a lease is being reserved */
	struct seat_reqs	 lease_waiters;	/* served from it */
	struct event		*linger;

	struct seat_holds	 live;		/* own reservations granted */
	struct settles		 settles;	/* settles in flight */
	struct settles		 later;		/* settles waiting to go again */
	struct event		*later_timer;
	struct settle		 recent[SEAT_RECENT];	/* ring of settles */
	unsigned		 nrecent;	/* ever added */
	unsigned		 check_tries;	/* of this session's check */
} S = { .counter = -1, .live = TAILQ_HEAD_INITIALIZER(S.live),
    .settles = TAILQ_HEAD_INITIALIZER(S.settles),
    .later = TAILQ_HEAD_INITIALIZER(S.later),
    .waiters = STAILQ_HEAD_INITIALIZER(S.waiters),
    .retry = STAILQ_HEAD_INITIALIZER(S.retry),
    .lease_waiters = STAILQ_HEAD_INITIALIZER(S.lease_waiters) };

static void	seat_reconcile(void);
static void	seat_send_reserve(struct seat_req *);
static void	seat_settle_send(const struct seat_hold *, unsigned);
static void	seat_settle_again(const struct settle *);
static void	seat_settles_replay(void);
static void	seat_settle_later(struct settle *);
static void	seat_reserve_one(struct seat_req *);
static void	lease_request(unsigned);

/* ------------------------------------------------------------------ */
/* helpers */

static void
seat_marker(struct seat_hold *h)
{
	unsigned char	 rnd[8];
	char		 hex[17];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(h->marker, sizeof(h->marker), "%s %lld %c %u", hex,
	    (long long)time(NULL), h->kind == HOLD_RESERVE ? 'r' : 'd',
	    h->n);
}

/* Own granted reservations, so that a reconciliation can tell how much
 * of each pending value is still unused (see recon_read_msg). */
static void
hold_live(struct seat_hold *h)
{
	if (!h->live && h->kind == HOLD_RESERVE) {
		TAILQ_INSERT_TAIL(&S.live, h, entry);
		h->live = true;
	}
}

static void
hold_unlive(struct seat_hold *h)
{
	if (h->live) {
		TAILQ_REMOVE(&S.live, h, entry);
		h->live = false;
	}
}

/* A critical assertion control for filter, or NULL. */
static LDAPControl *
seat_assertion(const char *filter)
{
	LDAPControl	*c = NULL;

	if (ldap_create_assertion_control(S.enc, (char *)(uintptr_t)filter,
	    1, &c) != LDAP_SUCCESS)
		return NULL;
	return c;
}

/* A post-read control asking for otasSeatsUsed, or NULL. */
static LDAPControl *
seat_postread(void)
{
	BerElement	*ber;
	struct berval	 bv;
	LDAPControl	*c = NULL;

	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL)
		return NULL;
	if (ber_printf(ber, "{s}", "otasSeatsUsed") == -1 ||
	    ber_flatten2(ber, &bv, 0) != 0 ||
	    ldap_control_create(LDAP_CONTROL_POST_READ, 0, &bv, 1, &c) !=
	    LDAP_SUCCESS)
		c = NULL;
	ber_free(ber, 1);
	return c;
}

/* otasSeatsUsed from a post-read response control, or -1. */
static long
seat_parse_postread(LDAPControl **ctrls)
{
	LDAPControl	*c;
	BerElement	*ber;
	struct berval	 dn, type;
	BerVarray	 vals = NULL;
	ber_len_t	 len;
	char		*last;
	long		 v = -1;

	if ((c = ldap_control_find(LDAP_CONTROL_POST_READ, ctrls, NULL)) ==
	    NULL || (ber = ber_init(&c->ldctl_value)) == NULL)
		return -1;
	/* SEQUENCE { dn, attributes SEQUENCE OF ... }: ber_first_element
	 * wants to stand on the SEQUENCE OF itself. */
	if (ber_scanf(ber, "{m" /*}*/, &dn) == LBER_ERROR)
		goto out;
	for (ber_tag_t t = ber_first_element(ber, &len, &last);
	    t != LBER_DEFAULT; t = ber_next_element(ber, &len, last)) {
		if (ber_scanf(ber, "{m[W]}", &type, &vals) == LBER_ERROR)
			break;
		if (type.bv_len == 13 && strncasecmp(type.bv_val,
		    "otasSeatsUsed", 13) == 0 && vals != NULL &&
		    vals[0].bv_val != NULL)
			v = strtol(vals[0].bv_val, NULL, 10);
		ber_bvarray_free(vals);
		vals = NULL;
	}
out:
	ber_free(ber, 1);
	return v;
}

static unsigned
seat_free_by_view(void)
{
	size_t	 used = view_seats_used();

	return (long)used >= D.cfg->seats ? 0 :
	    (unsigned)(D.cfg->seats - (long)used);
}

cJSON *
seat_limit_data(void)
{
	cJSON	*o = cJSON_CreateObject();
	long	 used = (long)view_seats_used();

	if (o != NULL) {
		cJSON_AddNumberToObject(o, "seats", (double)D.cfg->seats);
		cJSON_AddNumberToObject(o, "used", (double)used);
	}
	return o;
}

long
seat_used(void)
{
	return view_ready() ? (long)view_seats_used() : -1;
}

static void
seat_req_finish(struct seat_req *sr, enum seat_status st)
{
	struct seat_hold	*h = st == SEAT_OK ? sr->hold : NULL;

	if (st != SEAT_OK)
		free(sr->hold);
	sr->done(st, h, sr->arg);
	free(sr);
}

/* ------------------------------------------------------------------ */
/* reservations */

/*
 * A new directory session -- perhaps with the other provider of a
 * replicated pair, which can hold entries that replication brought before
 * the counter increments that admitted them -- starts with a check of the
 * counter against a count, which raises it if it is behind.  Until that
 * check is done, reservations wait for it: returns true if sr now waits.
 */
static void
seat_session_begin(void)
{
	const char	*uri = ldc_uri(dir_service());
	bool		 moved = S.session_uri != NULL && uri != NULL &&
	    strcmp(S.session_uri, uri) != 0;
	struct timeval	 tv = { 0, SEAT_SETTLE_MS * 1000 };

	free(S.session_uri);
	S.session_uri = uri != NULL ? strdup(uri) : NULL;
	S.session = seat_epoch();
	S.checking = true;
	S.check_tries = 0;
	if (moved) {
		log_info("seats: now on %s: counting seats there in %d ms, "
		    "once replication has settled", uri, SEAT_SETTLE_MS);
		seat_settles_replay();
		evtimer_add(S.settle, &tv);
	} else {
		log_debug("seats: new directory session: checking the "
		    "counter before granting seats");
		seat_reconcile();
	}
}

static bool
seat_session_wait(struct seat_req *sr)
{
	if (S.session == seat_epoch() && !S.checking)
		return false;
	STAILQ_INSERT_TAIL(&S.waiters, sr, next);
	if (S.session != seat_epoch())
		seat_session_begin();
	return true;
}

static void
seat_settled(evutil_socket_t fd, short ev, void *arg)
{
	seat_reconcile();
}

static void
seat_reserve_done(struct ldc_res *res, void *arg)
{
	struct seat_req	*sr = arg;
	long		 v;

	switch (res->rc) {
	case LDAP_SUCCESS:
		if ((v = seat_parse_postread(res->ctrls)) >= 0)
			S.counter = v;
		log_info("seats: granted %u (counter %ld, %zu entries, "
		    "limit %ld)", sr->hold->n, S.counter, view_seats_used(),
		    D.cfg->seats);
		sr->hold->epoch = seat_epoch();
		hold_live(sr->hold);
		seat_req_finish(sr, SEAT_OK);
		return;
	case LDAP_ASSERTION_FAILED:
		/* The counter says full.  If the view sees room, the counter
		 * may be high (after a crash or a failover, or raised while
		 * changes were pending): reconcile, then try again. */
		if (sr->tries < SEAT_TRIES &&
		    seat_free_by_view() >= sr->hold->n) {
			sr->tries++;
			STAILQ_INSERT_TAIL(&S.waiters, sr, next);
			seat_reconcile();
			return;
		}
		log_info("seats: refused %u (counter full, %zu entries, "
		    "limit %ld)", sr->hold->n, view_seats_used(),
		    D.cfg->seats);
		seat_req_finish(sr, SEAT_FULL);
		return;
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_NO_SUCH_ATTRIBUTE:
		/* The counter entry (or its value) is gone: rebuild it from
		 * a fresh count, then try once more. */
		log_warnx("seats: counter %s is missing or damaged; rebuilding "
		    "it from a count", D.cfg->counter_dn);
		if (sr->tries == 0) {
			sr->tries = SEAT_TRIES;
			STAILQ_INSERT_TAIL(&S.waiters, sr, next);
			seat_reconcile();
			return;
		}
		seat_req_finish(sr, SEAT_ERROR);
		return;
	case LDC_ERR_DOWN:
	case LDC_ERR_TIMEOUT:
		/* Sent, answer lost: it may have been applied.  Take it
		 * back by its pending value, which undoes it where it was
		 * applied and does nothing where it was not. */
		if (res->sent) {
			log_info("seats: the answer to a reservation of %u was "
			    "lost; taking it back", sr->hold->n);
			seat_settle_send(sr->hold, 0);
		}
		seat_req_finish(sr, res->sent ? SEAT_TIMEOUT :
		    SEAT_UNAVAILABLE);
		return;
	default:
		log_warnx("seats: reserving on %s failed: %s%s%s",
		    D.cfg->counter_dn, ldap_err2string(res->rc),
		    res->diag != NULL && res->diag[0] ? ": " : "",
		    res->diag != NULL ? res->diag : "");
		seat_req_finish(sr, SEAT_ERROR);
	}
}

static void
seat_send_reserve(struct seat_req *sr)
{
	struct ldapmods	 m = { 0 };
	struct ldc_call	 call = {
		.deadline_ms = sr->deadline_ms,
		.done = seat_reserve_done,
		.arg = sr,
	};
	LDAPControl	*ctrls[3] = { NULL, NULL, NULL };
	char		 filter[64], n[24];
	struct ldc_op	*op;

	if (now_ms() >= sr->deadline_ms) {
		seat_req_finish(sr, SEAT_TIMEOUT);
		return;
	}
	/* Never queued while the connection is down: it would go out on
	 * the next session before that session's counter check. */
	if (!dir_up()) {
		seat_req_finish(sr, SEAT_UNAVAILABLE);
		return;
	}
	if (seat_session_wait(sr))
		return;
	/* A new marker for each attempt: values must be unique. */
	seat_marker(sr->hold);
	snprintf(filter, sizeof(filter), "(otasSeatsUsed<=%ld)",
	    D.cfg->seats - (long)sr->hold->n);
	snprintf(n, sizeof(n), "%u", sr->hold->n);
	if ((ctrls[0] = seat_assertion(filter)) == NULL ||
	    (ctrls[1] = seat_postread()) == NULL ||
	    ldapmods_add(&m, LDAP_MOD_INCREMENT, "otasSeatsUsed", n) != 0 ||
	    ldapmods_add(&m, LDAP_MOD_ADD, "otasSeatPending",
	    sr->hold->marker) != 0) {
		ldapmods_free(&m);
		ldap_control_free(ctrls[0]);
		ldap_control_free(ctrls[1]);
		seat_req_finish(sr, SEAT_ERROR);
		return;
	}
	call.ctrls = ctrls;
	op = ldc_modify(dir_service(), &call, D.cfg->counter_dn, m.v);
	ldapmods_free(&m);
	ldap_control_free(ctrls[0]);
	ldap_control_free(ctrls[1]);
	if (op == NULL)
		seat_req_finish(sr, SEAT_ERROR);
}

static struct seat_req *
seat_req_new(int kind, unsigned n, uint64_t deadline_ms, seat_done_fn *done,
    void *arg)
{
	struct seat_req	*sr;

	if ((sr = calloc(1, sizeof(*sr))) == NULL ||
	    (sr->hold = calloc(1, sizeof(*sr->hold))) == NULL) {
		free(sr);
		return NULL;
	}
	sr->hold->kind = kind;
	sr->hold->n = n;
	sr->deadline_ms = deadline_ms;
	sr->done = done;
	sr->arg = arg;
	return sr;
}

/* Always answers through done, never before returning. */
static void
seat_defer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct seat_req	*sr = arg;

	seat_req_finish(sr, sr->status);
}

/* Answer from the loop, not from inside the caller. */
static void
seat_defer(struct seat_req *sr, enum seat_status st)
{
	sr->status = st;
	if (event_base_once(D.base, -1, EV_TIMEOUT, seat_defer_cb, sr, NULL) !=
	    0)
		seat_req_finish(sr, st);
}

/* ------------------------------------------------------------------ */
/* leases */

/* Seats to lease now, for `waiting` creates waiting for them: as many
 * (at least SEAT_LEASE_MIN, at most SEAT_LEASE_MAX), but never more than
 * an eighth of what the view sees free; below 2 there is no point. */
static unsigned
lease_size(unsigned waiting)
{
	unsigned	 free8 = seat_free_by_view() / 8;
	unsigned	 k = waiting < SEAT_LEASE_MIN ? SEAT_LEASE_MIN : waiting;

	if (k > SEAT_LEASE_MAX)
		k = SEAT_LEASE_MAX;
	return k > free8 ? free8 : k;
}

/* Hand one seat of l to sr. */
static void
lease_take(struct lease *l, struct seat_req *sr)
{
	l->free--;
	l->out++;
	sr->hold->lease = l;
	if (S.linger != NULL)
		evtimer_del(S.linger);
}

/* Give back what l did not use and forget it (its seats out are all
 * settled). */
static void
lease_close(struct lease *l)
{
	if (S.lease == l)
		S.lease = NULL;
	hold_unlive(&l->hold);
	seat_settle_send(&l->hold, l->taken);
	free(l);
}

/* A seat of l came back: close l when nothing more will come of it. */
static void
lease_idle(struct lease *l)
{
	struct timeval	 tv = { 0, SEAT_LINGER_MS * 1000 };

	if (l->out > 0 || l->busy)
		return;
	if (!l->open || l->free == 0) {
		lease_close(l);
		return;
	}
	evtimer_add(S.linger, &tv);
}

static void
lease_linger(evutil_socket_t fd, short ev, void *arg)
{
	struct lease	*l = S.lease;

	if (l != NULL && l->out == 0) {
		l->open = false;
		lease_close(l);
	}
}

/* The reservation for a new lease is answered: serve the waiters. */
static void
lease_granted(enum seat_status st, struct seat_hold *h, void *arg)
{
	struct seat_reqs ws = STAILQ_HEAD_INITIALIZER(ws);
	struct seat_req	*w;
	struct lease	*l = NULL;

	S.leasing = false;
	STAILQ_CONCAT(&ws, &S.lease_waiters);
	if (st == SEAT_OK)
		hold_unlive(h);		/* l->hold takes its place */
	if (st == SEAT_OK && (l = calloc(1, sizeof(*l))) != NULL) {
		l->hold = *h;
		l->hold.is_lease = true;
		hold_live(&l->hold);
		l->free = h->n;
		l->open = true;
		l->busy = true;
		l->epoch = seat_epoch();
		if (S.lease != NULL) {
			S.lease->open = false;
			if (S.lease->out == 0)
				lease_close(S.lease);
		}
		S.lease = l;
	} else if (st == SEAT_OK) {
		/* out of memory: give the seats straight back */
		seat_settle_send(h, 0);
	}
	free(h);
	/*
	 * What follows may fail synchronously -- a write to a server that
	 * has just gone away tears the connection down at once -- and fail
	 * the creates this lease just served, which settle their seats:
	 * l->busy keeps lease_idle from closing l until the end, and a
	 * lease whose session is gone serves no one more.
	 */
	while ((w = STAILQ_FIRST(&ws)) != NULL) {
		if (l != NULL && !lease_usable(l))
			break;
		STAILQ_REMOVE_HEAD(&ws, next);
		if (l != NULL) {
			lease_take(l, w);
			seat_req_finish(w, SEAT_OK);
		} else
			seat_send_reserve(w);	/* one by one, exactly */
	}
	/* More waited than it held: one lease for all of them, in order. */
	if (!STAILQ_EMPTY(&ws)) {
		unsigned	 n = 0;

		STAILQ_FOREACH(w, &ws, next)
			n++;
		STAILQ_CONCAT(&S.lease_waiters, &ws);
		lease_request(n);
	}
	if (l != NULL) {
		l->busy = false;
		lease_idle(l);
	}
}

/* Reserve a lease for the n creates in S.lease_waiters (or, where there
 * is no room for one, their seats one by one). */
static void
lease_request(unsigned n)
{
	struct seat_req	*lr, *w;
	unsigned	 k = lease_size(n);
	uint64_t	 deadline = STAILQ_FIRST(&S.lease_waiters)->deadline_ms;

	if (k < 2 || (lr = seat_req_new(HOLD_RESERVE, k, deadline,
	    lease_granted, NULL)) == NULL) {
		while ((w = STAILQ_FIRST(&S.lease_waiters)) != NULL) {
			STAILQ_REMOVE_HEAD(&S.lease_waiters, next);
			seat_send_reserve(w);
		}
		return;
	}
	S.leasing = true;
	lr->tries = SEAT_TRIES;	/* a refused lease falls back at once */
	seat_send_reserve(lr);
}

/*
 * Reserve one seat for sr (n == 1: from a new lease when there is room
 * for one, joining the lease being reserved if there is one) or sr's n
 * seats on their own.
 */
static void
seat_reserve_one(struct seat_req *sr)
{
	if (sr->hold->n != 1 || (!S.leasing && lease_size(1) < 2)) {
		seat_send_reserve(sr);
		return;
	}
	STAILQ_INSERT_TAIL(&S.lease_waiters, sr, next);
	if (!S.leasing)
		lease_request(1);
}

void
seat_reserve(unsigned n, uint64_t deadline_ms, seat_done_fn *done, void *arg)
{
	struct seat_req	*sr;

	if ((sr = seat_req_new(HOLD_RESERVE, n, deadline_ms, done, arg)) ==
	    NULL) {
		done(SEAT_ERROR, NULL, arg);
		return;
	}
	if (!view_ready() || !dir_up()) {
		seat_defer(sr, SEAT_UNAVAILABLE);
		return;
	}
	if (seat_session_wait(sr))
		return;
	/* Entries added by other LDAP clients count at once (the counter
	 * learns of them at the next reconciliation). */
	if (seat_free_by_view() < n || (long)n > D.cfg->seats) {
		log_info("seats: refused %u (%zu entries under %s, limit %ld)",
		    n, view_seats_used(), D.cfg->people_dn, D.cfg->seats);
		seat_defer(sr, SEAT_FULL);
		return;
	}
	if (n == 1 && lease_usable(S.lease)) {
		lease_take(S.lease, sr);
		seat_defer(sr, SEAT_OK);
		return;
	}
	seat_reserve_one(sr);
}

static void
seat_release_done(struct ldc_res *res, void *arg)
{
	struct seat_req	*sr = arg;

	if (res->rc == LDAP_SUCCESS) {
		sr->hold->epoch = seat_epoch();
		seat_req_finish(sr, SEAT_OK);
		return;
	}
	if (res->rc == LDAP_NO_SUCH_OBJECT && sr->tries == 0) {
		sr->tries = SEAT_TRIES;
		STAILQ_INSERT_TAIL(&S.waiters, sr, next);
		seat_reconcile();
		return;
	}
	if (res->rc == LDC_ERR_DOWN || res->rc == LDC_ERR_TIMEOUT) {
		/* Its pending value may be there: remove it if so. */
		if (res->sent)
			seat_settle_send(sr->hold, 0);
		seat_req_finish(sr, res->sent ? SEAT_TIMEOUT :
		    SEAT_UNAVAILABLE);
		return;
	}
	log_warnx("seats: marking a release on %s failed: %s",
	    D.cfg->counter_dn, res->rc < 0 ? res->diag :
	    ldap_err2string(res->rc));
	seat_req_finish(sr, SEAT_ERROR);
}

static void
seat_send_release(struct seat_req *sr)
{
	struct ldapmods	 m = { 0 };
	struct ldc_call	 call = {
		.deadline_ms = sr->deadline_ms,
		.done = seat_release_done,
		.arg = sr,
	};
	struct ldc_op	*op;

	seat_marker(sr->hold);
	if (ldapmods_add(&m, LDAP_MOD_ADD, "otasSeatPending",
	    sr->hold->marker) != 0) {
		ldapmods_free(&m);
		seat_req_finish(sr, SEAT_ERROR);
		return;
	}
	op = ldc_modify(dir_service(), &call, D.cfg->counter_dn, m.v);
	ldapmods_free(&m);
	if (op == NULL)
		seat_req_finish(sr, SEAT_ERROR);
}

void
seat_release(unsigned n, uint64_t deadline_ms, seat_done_fn *done, void *arg)
{
	struct seat_req	*sr;

	if ((sr = seat_req_new(HOLD_RELEASE, n, deadline_ms, done, arg)) ==
	    NULL) {
		done(SEAT_ERROR, NULL, arg);
		return;
	}
	if (!dir_up()) {
		seat_defer(sr, SEAT_UNAVAILABLE);
		return;
	}
	seat_send_release(sr);
}

/* Age in seconds of the pending value "<token> <time> ...". */
static long long
marker_age(const char *marker)
{
	long long	 t = 0;

	if (sscanf(marker, "%*s %lld", &t) != 1)
		return SEAT_STALE_S;
	return (long long)time(NULL) - t;
}

static void
later_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct settle	*st, *next;
	uint64_t	 now = now_ms();
	struct timeval	 tv = { 0, 250 * 1000 };

	for (st = TAILQ_FIRST(&S.later); st != NULL; st = next) {
		next = TAILQ_NEXT(st, entry);
		if (st->at_ms > now || !dir_up())
			continue;
		TAILQ_REMOVE(&S.later, st, entry);
		seat_settle_again(st);
		free(st);
	}
	if (!TAILQ_EMPTY(&S.later))
		evtimer_add(S.later_timer, &tv);
}

/* st (owned) found no value where it may yet come: again in a while. */
static void
seat_settle_later(struct settle *st)
{
	struct timeval	 tv = { 0, 250 * 1000 };

	st->at_ms = now_ms() + ((uint64_t)SEAT_SETTLE_MS << st->later);
	st->later++;
	TAILQ_INSERT_TAIL(&S.later, st, entry);
	if (!evtimer_pending(S.later_timer, NULL))
		evtimer_add(S.later_timer, &tv);
}

static void
seat_settle_done(struct ldc_res *res, void *arg)
{
	struct settle	*st = arg;

	S.settling--;
	TAILQ_REMOVE(&S.settles, st, entry);
	switch (res->rc) {
	case LDAP_SUCCESS:
		st->at_ms = now_ms();
		S.recent[S.nrecent++ % SEAT_RECENT] = *st;
		break;
	case LDAP_NO_SUCH_ATTRIBUTE:
		/* Its value is not there: the change it ends never reached
		 * this server, or was ended already -- or, on a server that
		 * replication has not yet brought it to, is still coming. */
		if ((st->unsure || st->epoch != seat_epoch()) &&
		    st->later < SEAT_LATER && !D.stopping &&
		    marker_age(st->marker) < SEAT_STALE_S) {
			seat_settle_later(st);
			return;
		}
		log_debug("seats: \"%s\" is not pending on %s (%s, %u)",
		    st->marker, D.cfg->counter_dn, st->unsure ? "unsure" :
		    "sure", st->later);
		break;
	case LDC_ERR_DOWN:
	case LDC_ERR_TIMEOUT:
		/* Applied or not, it may go again (struct settle), until its
		 * value would be stale anyway. */
		if (!D.stopping && marker_age(st->marker) < SEAT_STALE_S) {
			st->unsure = true;
			seat_settle_again(st);
			break;
		}
		/* FALLTHROUGH */
	default:
		log_warnx("seats: settling \"%s\" failed (%s); the next "
		    "reconciliation will repair the counter", st->marker,
		    res->rc < 0 ? res->diag : ldap_err2string(res->rc));
	}
	free(st);
}

/* Send the settle st (again). */
static void
seat_settle_again(const struct settle *st)
{
	struct ldapmods	 m = { 0 };
	struct ldc_call	 call = {
		/* Settling matters more than any request deadline. */
		.deadline_ms = now_ms() + 4ULL * D.cfg->op_timeout_ms,
		.done = seat_settle_done,
	};
	struct settle	*copy;
	char		 n[24];

	snprintf(n, sizeof(n), "%ld", st->delta);
	if ((copy = malloc(sizeof(*copy))) == NULL ||
	    (st->delta != 0 && ldapmods_add(&m, LDAP_MOD_INCREMENT,
	    "otasSeatsUsed", n) != 0) ||
	    ldapmods_add(&m, LDAP_MOD_DELETE, "otasSeatPending",
	    st->marker) != 0) {
		log_warnx("seats: out of memory settling a hold");
		free(copy);
		goto out;
	}
	*copy = *st;
	call.arg = copy;
	if (ldc_modify(dir_service(), &call, D.cfg->counter_dn, m.v) ==
	    NULL) {
		free(copy);
		log_warnx("seats: cannot settle a hold; reconciliation will");
	} else {
		TAILQ_INSERT_TAIL(&S.settles, copy, entry);
		S.settling++;
	}
out:
	ldapmods_free(&m);
}

/* Send the modify that settles h with done of its seats used. */
static void
seat_settle_send(const struct seat_hold *h, unsigned done)
{
	struct settle	 st;

	if (done > h->n)
		done = h->n;
	st.delta = h->kind == HOLD_RESERVE ? -(long)(h->n - done) :
	    -(long)done;
	snprintf(st.marker, sizeof(st.marker), "%s", h->marker);
	st.at_ms = 0;
	st.later = 0;
	/* Answered on a session other than the one the hold was granted
	 * on (maybe on another server), or never answered: its value may
	 * not have reached that server yet (seat_settle_done). */
	st.epoch = h->epoch;
	st.unsure = false;
	if (h->kind == HOLD_RESERVE)
		log_info("seats: %u of %u reserved taken", done, h->n);
	else
		log_info("seats: %u released", done);
	seat_settle_again(&st);
}

/*
 * After a move to another server: send again the settles of the last
 * SEAT_STALE_S seconds.  The old server may have applied them without
 * replicating them yet; where the new one has their pending values they
 * end them there, and where it has not they change nothing.
 */
static void
seat_settles_replay(void)
{
	unsigned	 n = S.nrecent < SEAT_RECENT ? S.nrecent : SEAT_RECENT;
	unsigned	 sent = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct settle *st = &S.recent[(S.nrecent - n + i) %
		    SEAT_RECENT];

		struct settle	 again = *st;

		if (marker_age(st->marker) >= SEAT_STALE_S)
			continue;
		again.unsure = true;
		again.later = 0;
		seat_settle_again(&again);
		sent++;
	}
	if (sent > 0)
		log_info("seats: sending %u recent settles again on the new "
		    "server, in case replication had not carried them", sent);
}

void
seat_settle(struct seat_hold *h, unsigned done)
{
	struct lease	*l;

	if (h == NULL)
		return;
	if ((l = h->lease) != NULL) {
		/* A leased seat: taken, or back into the lease. */
		l->out--;
		l->out_entries -= h->entries;
		if (done > 0)
			l->taken++;
		else if (l->open && l->epoch == seat_epoch())
			l->free++;
		else
			l->open = false;
		free(h);
		lease_idle(l);
		return;
	}
	hold_unlive(h);
	seat_settle_send(h, done);
	free(h);
}

/* Seat work still under way: an open lease, or settles in flight. */
bool
seat_busy(void)
{
	return S.lease != NULL || S.leasing || S.settling > 0;
}

/* Close an idle lease now (shutdown): its unused seats go back. */
void
seat_flush(void)
{
	if (S.lease != NULL && S.lease->out == 0) {
		S.lease->open = false;
		lease_close(S.lease);
	} else if (S.lease != NULL)
		S.lease->open = false;	/* closes when its seats come back */
}

/* ------------------------------------------------------------------ */
/* reconciliation */

static void
recon_free(struct recon *rc)
{
	for (size_t i = 0; i < rc->nstale; i++)
		free(rc->stale[i]);
	free(rc->stale);
	free(rc);
}

/* Send the reservations / releases of queue q again, emptying it. */
static void
seat_retry_list(struct seat_reqs *q)
{
	struct seat_reqs ws = STAILQ_HEAD_INITIALIZER(ws);
	struct seat_req	*w;

	STAILQ_CONCAT(&ws, q);
	while ((w = STAILQ_FIRST(&ws)) != NULL) {
		STAILQ_REMOVE_HEAD(&ws, next);
		if (w->hold->kind == HOLD_RESERVE) {
			if (seat_free_by_view() < w->hold->n) {
				seat_req_finish(w, SEAT_FULL);
				continue;
			}
			/* One that only waited for a session check goes the
			 * usual way, from a lease; one the counter refused
			 * goes on its own (near the limit, exactly). */
			if (w->tries == 0 && w->hold->n == 1 &&
			    lease_usable(S.lease)) {
				lease_take(S.lease, w);
				seat_defer(w, SEAT_OK);
			} else if (w->tries == 0)
				seat_reserve_one(w);
			else
				seat_send_reserve(w);
		} else
			seat_send_release(w);
	}
}

static void
seat_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	seat_retry_list(&S.retry);
}

/*
 * The reconciliation ended: let waiting reservations try again -- after a
 * pause if it found another change pending (a lease of another daemon,
 * say, which gives back its unused seats within milliseconds).
 */
static void
recon_end(struct recon *rc)
{
	bool		 pause = rc != NULL && rc->pending && rc->nstale == 0;

	/* A check of a new session that ran (in part) on the old one does
	 * not count: again, waiters still waiting. */
	bool		 again = rc != NULL && S.checking &&
	    (rc->epoch != S.session || (rc->refused &&
	    ++S.check_tries < SEAT_CHECK_TRIES));

	if (rc != NULL)
		recon_free(rc);
	S.reconciling = false;
	if (again) {
		seat_reconcile();
		return;
	}
	S.checking = false;
	if (pause && !STAILQ_EMPTY(&S.waiters)) {
		struct timeval	 tv = { 0, SEAT_RETRY_MS * 1000 };

		STAILQ_CONCAT(&S.retry, &S.waiters);
		evtimer_add(S.retry_timer, &tv);
		return;
	}
	seat_retry_list(&S.waiters);
}

static void
recon_set_done(struct ldc_res *res, void *arg)
{
	struct recon	*rc = arg;

	if (res->rc == LDAP_SUCCESS) {
		long	 to = rc->target;

		log_notice("seats: reconciled counter %s from %ld to %ld "
		    "(%ld entries under %s%s%s)", D.cfg->counter_dn,
		    rc->counter, to, rc->count, D.cfg->people_dn,
		    rc->by_view ? " in the live view" : "",
		    to != rc->count ? ", plus pending reservations" : "");
		S.counter = to;
	} else if (res->rc == LDAP_ALREADY_EXISTS ||
	    res->rc == LDAP_ASSERTION_FAILED) {
		log_debug("seats: counter changed while counting; next time");
		rc->refused = true;
	}
	else
		log_warnx("seats: updating %s failed: %s", D.cfg->counter_dn,
		    res->rc < 0 ? res->diag : ldap_err2string(res->rc));
	recon_end(rc);
}

/* Write the fresh count: create the counter, or set it if nothing
 * changed since it was read. */
static void
recon_set(struct recon *rc)
{
	struct ldapmods	 m = { 0 };
	struct ldc_call	 call = {
		.done = recon_set_done,
		.arg = rc,
	};
	LDAPControl	*ctrls[2] = { NULL, NULL };
	char		 v[24], filter[96], cn[128];
	struct ldc_op	*op = NULL;

	rc->target = rc->count;
	snprintf(v, sizeof(v), "%ld", rc->count);
	if (!rc->exists) {
		const char	*eq = strchr(D.cfg->counter_dn, '=');
		size_t		 len = strcspn(eq != NULL ? eq + 1 : "", ",");

		snprintf(cn, sizeof(cn), "%.*s", (int)len,
		    eq != NULL ? eq + 1 : "otasdir-seats");
		if (ldapmods_add(&m, LDAP_MOD_ADD, "objectClass",
		    "otasSeatCounter") == 0 &&
		    ldapmods_add(&m, LDAP_MOD_ADD, "cn", cn) == 0 &&
		    ldapmods_add(&m, LDAP_MOD_ADD, "otasSeatsUsed", v) == 0)
			op = ldc_add(dir_service(), &call, D.cfg->counter_dn,
			    m.v);
		if (op != NULL)
			log_notice("seats: creating counter %s with %ld",
			    D.cfg->counter_dn, rc->count);
	} else {
		int	 mop;

		if (rc->raise_only && rc->counter >= 0) {
			/* Up to the count plus what pending reservations may
			 * still add (recon_unused), unless the counter moved
			 * meanwhile. */
			rc->target = rc->count + rc->reserved;
			mop = LDAP_MOD_INCREMENT;
			snprintf(v, sizeof(v), "%ld", rc->target - rc->counter);
			snprintf(filter, sizeof(filter), "(otasSeatsUsed=%ld)",
			    rc->counter);
		} else {
			mop = LDAP_MOD_REPLACE;
			if (rc->counter >= 0)
				snprintf(filter, sizeof(filter), "(&(otasSeatsUsed="
				    "%ld)(!(otasSeatPending=*)))", rc->counter);
			else
				snprintf(filter, sizeof(filter), "(&(!(otasSeats"
				    "Used=*))(!(otasSeatPending=*)))");
		}
		if ((ctrls[0] = seat_assertion(filter)) != NULL &&
		    ldapmods_add(&m, mop, "otasSeatsUsed", v) == 0) {
			call.ctrls = ctrls;
			op = ldc_modify(dir_service(), &call,
			    D.cfg->counter_dn, m.v);
		}
		ldap_control_free(ctrls[0]);
	}
	ldapmods_free(&m);
	if (op == NULL)
		recon_end(rc);
}

static void
recon_count_entry(LDAP *ld, LDAPMessage *msg, void *arg)
{
	struct recon	*rc = arg;

	rc->slice++;
}

/* Entries of a slice cut short by a size limit come again: count a
 * slice only once it is complete. */
static void
recon_count_slice(bool complete, void *arg)
{
	struct recon	*rc = arg;

	if (complete)
		rc->count += rc->slice;
	rc->slice = 0;
}

static void
recon_count_done(int status, const char *diag, unsigned searches, void *arg)
{
	struct recon	*rc = arg;

	if (status != LDAP_SUCCESS) {
		log_warnx("seats: counting %s failed: %s", D.cfg->people_dn,
		    status < 0 ? diag : ldap_err2string(status));
		recon_end(rc);
		return;
	}
	if (rc->exists && (rc->counter == rc->count ||
	    (rc->raise_only && rc->counter >= rc->count + rc->reserved))) {
		log_debug("seats: counter %ld, %ld entries counted: %s",
		    rc->counter, rc->count, rc->counter == rc->count ?
		    "matches" : "changes pending");
		S.counter = rc->counter;
		recon_end(rc);
		return;
	}
	recon_set(rc);
}

/*
 * Does the live view show the counter needs no repair?  Its count is as
 * fresh as a count of the same server (view_current) and costs slapd
 * nothing, where a count of 150,000 entries keeps it busy for a second
 * and, run at every reconnect and every reconcile_interval_s, lands in
 * the middle of the writes.  A repair -- the counter below the view's
 * count, or above it with nothing pending -- still counts the directory
 * first: the view may be a few milliseconds behind, and lowering the
 * counter on a count that misses an entry would admit one too many.
 */
static bool
recon_by_view(struct recon *rc)
{
	long	 vc;

	if (!rc->exists || rc->counter < 0 ||
	    !view_current(ldc_uri(dir_service())))
		return false;
	vc = (long)view_seats_used();
	if (rc->counter == vc ||
	    (rc->raise_only && rc->counter >= vc + rc->reserved)) {
		log_debug("seats: counter %ld, %ld entries in the live view: "
		    "%s", rc->counter, vc, rc->counter == vc ? "matches" :
		    "changes pending");
		S.counter = rc->counter;
		recon_end(rc);
		return true;
	}
	if (rc->counter < vc + rc->reserved) {
		/* Below: raise it, as a count would (recon_set), which never
		 * admits too many; if the view was a moment behind a delete,
		 * the counter is a little high until the next round. */
		rc->count = vc;
		rc->raise_only = true;
		rc->by_view = true;
		recon_set(rc);
		return true;
	}
	return false;
}

/* Count people_dn (names only). */
static void
recon_count(struct recon *rc)
{
	static const char *const noattrs[] = { LDAP_NO_ATTRS, NULL };

	rc->count = 0;
	rc->slice = 0;
	/* Not on the service connection: at 100,000 entries the count would
	 * queue every write's answer behind it for most of a second. */
	if (dir_scan(dir_reader(), noattrs, recon_count_entry,
	    recon_count_slice, recon_count_done, rc) == NULL) {
		log_warnx("seats: cannot start a count of %s",
		    D.cfg->people_dn);
		recon_end(rc);
	}
}

static void
recon_drop_done(struct ldc_res *res, void *arg)
{
	struct recon	*rc = arg;

	/* Dropped or already gone: either way, count next round. */
	if (res->rc != LDAP_SUCCESS && res->rc != LDAP_NO_SUCH_ATTRIBUTE)
		log_warnx("seats: removing abandoned pending values failed: "
		    "%s", res->rc < 0 ? res->diag : ldap_err2string(res->rc));
	recon_end(rc);
}

/* Remove pending values whose daemon gave up on them long ago. */
static void
recon_drop_stale(struct recon *rc)
{
	struct ldapmods	 m = { 0 };
	struct ldc_call	 call = {
		.done = recon_drop_done,
		.arg = rc,
	};

	for (size_t i = 0; i < rc->nstale; i++) {
		log_notice("seats: removing abandoned pending value \"%s\"",
		    rc->stale[i]);
		if (ldapmods_add(&m, LDAP_MOD_DELETE, "otasSeatPending",
		    rc->stale[i]) != 0) {
			ldapmods_free(&m);
			recon_end(rc);
			return;
		}
	}
	if (ldc_modify(dir_service(), &call, D.cfg->counter_dn, m.v) == NULL)
		recon_end(rc);
	ldapmods_free(&m);
}

/*
 * Seats of the pending reservation value v (of n seats) that may still
 * become entries.  Of another daemon's, all n; of an own one, what is not
 * used yet -- the rest are entries the count sees, and counting them
 * twice would raise the counter a lease's worth with every round.  (A
 * single reservation whose entry was just added still counts until its
 * settle is sent: an over-count of at most the creates in flight.)
 */
static long
recon_unused(const char *v, unsigned n)
{
	struct seat_hold	*h;
	struct settle		*st;

	/* Being settled: no more entries will come of it. */
	TAILQ_FOREACH(st, &S.settles, entry)
		if (strcmp(st->marker, v) == 0)
			return 0;
	TAILQ_FOREACH(st, &S.later, entry)
		if (strcmp(st->marker, v) == 0)
			return 0;
	TAILQ_FOREACH(h, &S.live, entry)
		if (strcmp(h->marker, v) == 0)
			return hold_unused(h);
	/* Settled since the counter was read (here or, after a move, on
	 * the old server): done. */
	for (unsigned i = 0; i < SEAT_RECENT && i < S.nrecent; i++)
		if (strcmp(S.recent[i].marker, v) == 0)
			return 0;
	return n;
}

static void
recon_read_msg(LDAP *ld, LDAPMessage *msg, void *arg)
{
	struct recon	*rc = arg;
	struct berval	**vals;
	time_t		 now = time(NULL);

	if (ldap_msgtype(msg) != LDAP_RES_SEARCH_ENTRY)
		return;
	rc->exists = true;
	if ((vals = ldap_get_values_len(ld, msg, "otasSeatsUsed")) != NULL &&
	    vals[0] != NULL)
		rc->counter = strtol(vals[0]->bv_val, NULL, 10);
	ber_bvecfree(vals);
	if ((vals = ldap_get_values_len(ld, msg, "otasSeatPending")) == NULL)
		return;
	for (size_t i = 0; vals[i] != NULL; i++) {
		long long	 t = 0;
		char		*v, **nv;

		char		 kind = '?';
		unsigned	 n = 0;

		rc->pending = true;
		if ((v = strndup(vals[i]->bv_val, vals[i]->bv_len)) == NULL)
			continue;
		/* "<token> <time> <kind> <n>"; unparseable values are as
		 * old as can be. */
		if (sscanf(v, "%*s %lld %c %u", &t, &kind, &n) < 1)
			t = 0;
		if (kind == 'r')
			rc->reserved += recon_unused(v, n);
		if (now - (time_t)t < SEAT_STALE_S ||
		    (nv = realloc(rc->stale, (rc->nstale + 1) *
		    sizeof(*nv))) == NULL) {
			free(v);
			continue;
		}
		rc->stale = nv;
		rc->stale[rc->nstale++] = v;
	}
	ber_bvecfree(vals);
}

static void
recon_read_done(struct ldc_res *res, void *arg)
{
	struct recon	*rc = arg;

	if (res->rc == LDAP_NO_SUCH_OBJECT)
		rc->exists = false;
	else if (res->rc != LDAP_SUCCESS) {
		log_warnx("seats: reading %s failed: %s", D.cfg->counter_dn,
		    res->rc < 0 ? res->diag : ldap_err2string(res->rc));
		recon_end(rc);
		return;
	}
	if (rc->exists && rc->counter >= 0)
		S.counter = rc->counter;
	if (rc->nstale > 0) {
		recon_drop_stale(rc);
		return;
	}
	/* Someone is mid-change: their settle will fix the counter, or the
	 * value will go stale; meanwhile it may only go up.  A counter
	 * below the count is wrong whatever is pending (a reservation is
	 * counted before its entry exists, a delete after it is gone), and
	 * raising it never admits too many.  The check of a new session
	 * only raises too: replication may still be bringing entries that
	 * an old session's reservations were for. */
	rc->raise_only = rc->pending || S.checking;
	if (!recon_by_view(rc))
		recon_count(rc);
}

/* Start a reconciliation unless one is running. */
static void
seat_reconcile(void)
{
	static const char *const attrs[] = { "otasSeatsUsed",
	    "otasSeatPending", NULL };
	struct recon	*rc;
	struct ldc_call	 call = {
		.retry = true,
		.on_msg = recon_read_msg,
		.done = recon_read_done,
	};

	if (S.reconciling)
		return;
	if (!dir_up() || (rc = calloc(1, sizeof(*rc))) == NULL) {
		recon_end(NULL);
		return;
	}
	rc->counter = -1;
	rc->epoch = seat_epoch();
	call.arg = rc;
	S.reconciling = true;
	if (ldc_search(dir_service(), &call, D.cfg->counter_dn,
	    LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0) == NULL)
		recon_end(rc);
}

static void
seat_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { (time_t)D.cfg->reconcile_interval_s, 0 };

	if (view_ready() && dir_up()) {
		if (S.session != seat_epoch())
			seat_session_begin();
		else
			seat_reconcile();
	}
	if (!S.started && view_ready() && dir_up())
		S.started = true;
	/* Until the first round has run, look again soon. */
	if (!S.started)
		tv.tv_sec = 0, tv.tv_usec = 200 * 1000;
	evtimer_add(S.timer, &tv);
}

void
seat_init(void)
{
	struct timeval	 tv = { 0, 200 * 1000 };

	if (ldap_initialize(&S.enc, NULL) != LDAP_SUCCESS)
		fatalx("seats: cannot create an LDAP handle for encoding");
	if ((S.timer = evtimer_new(D.base, seat_timer, NULL)) == NULL ||
	    (S.retry_timer = evtimer_new(D.base, seat_retry_cb, NULL)) ==
	    NULL || (S.linger = evtimer_new(D.base, lease_linger, NULL)) ==
	    NULL || (S.settle = evtimer_new(D.base, seat_settled, NULL)) ==
	    NULL || (S.later_timer = evtimer_new(D.base, later_cb, NULL)) ==
	    NULL)
		fatalx("seats: cannot create timers");
	evtimer_add(S.timer, &tv);
}

void
seat_shutdown(void)
{
	struct settle	*st;

	event_freep(&S.timer);
	event_freep(&S.retry_timer);
	event_freep(&S.linger);
	event_freep(&S.settle);
	event_freep(&S.later_timer);
	while ((st = TAILQ_FIRST(&S.later)) != NULL) {
		TAILQ_REMOVE(&S.later, st, entry);
		free(st);
	}
	free(S.session_uri);
	S.session_uri = NULL;
	if (S.enc != NULL)
		ldap_unbind_ext(S.enc, NULL, NULL);
	S.enc = NULL;
}

/* license.get: {seats, used, available, active, inactive}, from the
 * view, at any size in constant time. */
void
license_get(struct req *r)
{
	cJSON	*o;
	size_t	 active, inactive, used;

	if (!view_ready()) {
		req_reply_error(r, RPC_DIR_UNAVAILABLE, REASON_DIR_UNAVAILABLE,
		    "the directory has not been read yet", NULL);
		return;
	}
	used = view_seats_used();
	view_counts(&active, &inactive, NULL);
	if ((o = cJSON_CreateObject()) == NULL) {
		req_fail_internal(r, "out of memory");
		return;
	}
	cJSON_AddNumberToObject(o, "seats", (double)D.cfg->seats);
	cJSON_AddNumberToObject(o, "used", (double)used);
	cJSON_AddNumberToObject(o, "available", (long)used >= D.cfg->seats ?
	    0 : (double)(D.cfg->seats - (long)used));
	cJSON_AddNumberToObject(o, "active", (double)active);
	cJSON_AddNumberToObject(o, "inactive", (double)inactive);
	req_reply_result(r, o);
}
