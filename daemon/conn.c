/*
 * conn.c - one client connection: framing, back-pressure, idle timeout.
 *
 * A connection reads newline-framed requests and hands each line to
 * method_dispatch().  It owns everything it points to and is freed in one
 * place, conn_free().  Requests do not point at their connection: they keep
 * its id and look it up again with conn_find() when they reply, so a reply
 * for a client that has gone is dropped quietly.
 *
 * Limits: a line longer than max_request_bytes is answered with one error
 * line, then the connection is closed; a client whose unread replies pass max_reply_backlog
 * stops being read until it catches up; an idle client is closed after
 * idle_timeout_s.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "otasdird.h"

#define CONN_HASH	4096

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct conn		*hnext;
	uint64_t		 id;
	struct bufferevent	*bev;
	struct peer		 peer;
	gid_t			*groups;
	size_t			 ngroups;
	struct ident		 ident;
	enum conn_state		 state;
	bool			 eof;		/* peer shut its side */
	bool			 busy;		/* inside conn_process */
	unsigned		 inflight;
	struct event		*idle;
	uint64_t		 last_ms;
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static struct conn	*conn_hash[CONN_HASH];
static uint64_t		 conn_next_id = 1;
static unsigned		 nconns;
static unsigned		 inflight_total;

static void	conn_process(struct conn *);
static void	conn_maybe_close(struct conn *);

static const char *const conn_state_names[] = {
	[CONN_OPEN] = "open",
	[CONN_BLOCKED] = "blocked",
	[CONN_DRAINING] = "draining",
};

/* The one place the state changes. */
static void
conn_set_state(struct conn *c, enum conn_state s)
{
	if (c->state == s)
		return;
	log_debug("conn %llu: %s -> %s", (unsigned long long)c->id,
	    conn_state_names[c->state], conn_state_names[s]);
	c->state = s;
}

struct conn *
conn_find(uint64_t id)
{
	struct conn	*c;

	for (c = conn_hash[id % CONN_HASH]; c != NULL; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

uint64_t
conn_id(const struct conn *c)
{
	return c->id;
}

const struct peer *
conn_peer(const struct conn *c)
{
	return &c->peer;
}

const struct ident *
conn_ident(const struct conn *c)
{
	return &c->ident;
}

void
conn_set_ident(struct conn *c, const struct ident *id)
{
	c->ident = *id;
}

unsigned
conn_count(void)
{
	return nconns;
}

unsigned
conn_inflight_total(void)
{
	return inflight_total;
}

/* Free c and everything it owns; closes the socket. */
static void
conn_free(struct conn *c)
{
	struct conn	**pp;

	for (pp = &conn_hash[c->id % CONN_HASH]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	log_debug("conn %llu: closed", (unsigned long long)c->id);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->idle != NULL)
		event_free(c->idle);
	free(c->groups);
	free(c);
	ctl_conn_closed();
}

/* Close once nothing more is owed: no request in flight, replies out. */
static void
conn_maybe_close(struct conn *c)
{
	if (c->busy)
		return;
	if (c->state != CONN_DRAINING && !c->eof)
		return;
	if (c->inflight > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return;
	conn_free(c);
}

/* Stop reading and close once what is owed has been written. */
static void
conn_drain(struct conn *c)
{
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	conn_set_state(c, CONN_DRAINING);
}

void
conn_send(struct conn *c, const char *line, size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	if (evbuffer_add(out, line, len) != 0 ||
	    evbuffer_add(out, "\n", 1) != 0) {
		log_warnx("conn %llu: out of memory for a reply",
		    (unsigned long long)c->id);
		conn_drain(c);
		return;
	}
	/* A client that does not read its replies stops being read. */
	if (c->state == CONN_OPEN &&
	    evbuffer_get_length(out) > D.cfg->max_reply_backlog) {
		conn_set_state(c, CONN_BLOCKED);
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE,
		    D.cfg->max_reply_backlog / 2, 0);
	}
}

/* Send a protocol error with id null (for framing problems). */
static void
conn_send_error(struct conn *c, int code, const char *msg, const char *reason)
{
	cJSON	*data = NULL, *r;
	char	*s;

	if (reason != NULL && (data = cJSON_CreateObject()) != NULL)
		cJSON_AddStringToObject(data, "reason", reason);
	if ((r = rpc_error(NULL, code, msg, data)) == NULL)
		return;
	if ((s = rpc_print(r)) != NULL) {
		conn_send(c, s, strlen(s));
		free(s);
	}
	cJSON_Delete(r);
}

bool
conn_over_cap(const struct conn *c)
{
	return c->inflight > D.cfg->max_inflight_conn ||
	    inflight_total > D.cfg->max_inflight;
}

void
conn_req_started(struct conn *c)
{
	c->inflight++;
	inflight_total++;
}

void
conn_req_done(uint64_t id)
{
	struct conn	*c;

	inflight_total--;
	if ((c = conn_find(id)) == NULL)
		return;
	c->inflight--;
	conn_maybe_close(c);
}

/*
 * Take every complete line from the input and dispatch it, while the
 * connection is open.
 */
static void
conn_process(struct conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	size_t		 max = D.cfg->max_request_bytes;

	c->busy = true;
	while (c->state == CONN_OPEN && !D.stopping) {
		struct evbuffer_ptr	 eol;
		size_t			 eol_len, len;
		char			*line;

		eol = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_LF);
		/* A line over the limit cannot be told from a flood: the
		 * client gets one error line and the connection closes,
		 * whether or not its newline has arrived yet. */
		if ((eol.pos < 0 && evbuffer_get_length(in) > max) ||
		    (eol.pos >= 0 && (size_t)eol.pos > max)) {
			char	 msg[96];

			snprintf(msg, sizeof(msg), "request line longer than "
			    "%zu bytes; closing", max);
			log_info("conn %llu: %s", (unsigned long long)c->id,
			    msg);
			conn_send_error(c, RPC_INVALID_REQUEST, msg, NULL);
			evbuffer_drain(in, evbuffer_get_length(in));
			conn_drain(c);
			break;
		}
		if (eol.pos < 0)
			break;
		len = (size_t)eol.pos;
		c->last_ms = now_ms();
		if ((line = malloc(len + 1)) == NULL) {
			conn_send_error(c, RPC_INTERNAL_ERROR,
			    "out of memory", NULL);
			conn_drain(c);
			break;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len > 0)
			method_dispatch(c, line, len);
		/* The line may hold a password (params are wiped by the
		 * methods that take one). */
		explicit_bzero(line, len);
		free(line);
	}
	c->busy = false;
	conn_maybe_close(c);
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

/* Output drained to the low watermark. */
static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CONN_BLOCKED) {
		conn_set_state(c, CONN_OPEN);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (!c->eof)
			bufferevent_enable(c->bev, EV_READ);
		conn_process(c);	/* lines already buffered */
		return;
	}
	conn_maybe_close(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;

	if (what & BEV_EVENT_ERROR) {
		log_debug("conn %llu: %s", (unsigned long long)c->id,
		    strerror(EVUTIL_SOCKET_ERROR()));
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* The client finished sending.  Answer what it asked, then
		 * close; a trailing partial line is dropped. */
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		conn_maybe_close(c);
	}
}

static void
conn_idlecb(evutil_socket_t fd, short ev, void *arg)
{
	struct conn	*c = arg;
	uint64_t	 idle = (uint64_t)D.cfg->idle_timeout_s * 1000;
	uint64_t	 now = now_ms(), left;
	struct timeval	 tv;

	if (idle == 0)
		return;
	if (c->inflight == 0 && now - c->last_ms >= idle) {
		log_debug("conn %llu: idle for %u s, closing",
		    (unsigned long long)c->id, D.cfg->idle_timeout_s);
		conn_free(c);
		return;
	}
	left = c->inflight > 0 ? idle : idle - (now - c->last_ms);
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000 + 1000;
	evtimer_add(c->idle, &tv);
}

/* Take an accepted socket. */
int
conn_new(int fd)
{
	struct conn	*c;
	struct timeval	 tv;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return -1;
	}
	if (ident_peer(fd, &c->peer, &c->groups, &c->ngroups) != 0) {
		log_warn("conn: cannot read peer credentials");
		close(fd);
		free(c);
		return -1;
	}
	ident_from_peer(&c->peer, c->groups, c->ngroups, &c->ident);
	c->bev = bufferevent_socket_new(D.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->idle = evtimer_new(D.base, conn_idlecb, c);
	if (c->bev == NULL || c->idle == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->idle != NULL)
			event_free(c->idle);
		free(c->groups);
		free(c);
		return -1;
	}
	c->id = conn_next_id++;
	c->state = CONN_OPEN;
	c->last_ms = now_ms();
	/* Stop reading a little past the line limit: conn_process decides
	 * what to do with an over-long line. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    D.cfg->max_request_bytes + 2);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ);
	if (D.cfg->idle_timeout_s > 0) {
		tv.tv_sec = D.cfg->idle_timeout_s;
		tv.tv_usec = 0;
		evtimer_add(c->idle, &tv);
	}
	c->hnext = conn_hash[c->id % CONN_HASH];
	conn_hash[c->id % CONN_HASH] = c;
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	log_debug("conn %llu: uid %u gid %u pid %d, %s",
	    (unsigned long long)c->id, (unsigned)c->peer.uid,
	    (unsigned)c->peer.gid, (int)c->peer.pid,
	    c->ident.role == ROLE_SUPERADMIN ? "super admin" : "peer");
	return 0;
}

/* Admins changed (SIGHUP): peers get their identity decided again;
 * logged-in accounts keep theirs. */
void
conn_reident_all(void)
{
	struct conn	*c;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->ident.kind == IDENT_PEER)
			ident_from_peer(&c->peer, c->groups, c->ngroups,
			    &c->ident);
}

/* Shutdown: read nothing more; close each connection once it has its
 * answers. */
void
conn_shutdown(void)
{
	struct conn	*c, *next;

	for (c = TAILQ_FIRST(&conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		conn_drain(c);
		conn_maybe_close(c);
	}
}

void
conn_close_all(void)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&conns)) != NULL)
		conn_free(c);
}
