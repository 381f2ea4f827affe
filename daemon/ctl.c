/*
 * ctl.c - the listening Unix socket: creating it (or taking it from
 * systemd), accepting clients, and the connection cap.
 *
 * A stale socket file left by a crash is removed; a live one (another
 * otasdird answers on it) makes start-up fail rather than steal it.  When
 * the process runs out of descriptors, accepting pauses briefly instead of
 * spinning on EMFILE.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otasdird.h"

#define CTL_BACKLOG		512
#define CTL_ACCEPT_BURST	64
#define CTL_PAUSE_MS		250

static int		 ctl_fd = -1;
static bool		 ctl_activated;		/* fd came from systemd */
static struct stat	 ctl_st;		/* the inode we created */
static struct event	*ctl_ev;
static struct event	*ctl_pause_ev;
static bool		 ctl_paused;

/* Is something answering on path?  1 yes, 0 no (stale), -1 error. */
static int
ctl_probe(const struct sockaddr_un *sun)
{
	int	 fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0)
		return 1;
	return errno == ECONNREFUSED || errno == ENOENT ? 0 : -1;
}

/* Create, bind and listen on cfg socket.path with its mode and group. */
static int
ctl_bind(void)
{
	const struct cfg	*cfg = D.cfg;
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cfg->socket_path) >= sizeof(sun.sun_path)) {
		log_warnx("socket path %s is too long", cfg->socket_path);
		return -1;
	}
	strcpy(sun.sun_path, cfg->socket_path);

	if (lstat(cfg->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("%s exists and is not a socket",
			    cfg->socket_path);
			return -1;
		}
		switch (ctl_probe(&sun)) {
		case 1:
			log_warnx("another otasdird is listening on %s",
			    cfg->socket_path);
			return -1;
		case 0:
			log_info("removing stale socket %s",
			    cfg->socket_path);
			if (unlink(cfg->socket_path) != 0 && errno != ENOENT) {
				log_warn("unlink %s", cfg->socket_path);
				return -1;
			}
			break;
		default:
			log_warn("cannot probe %s", cfg->socket_path);
			return -1;
		}
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("socket");
		return -1;
	}
	/* Nobody may connect before the mode and group are right. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_warn("bind %s", cfg->socket_path);
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	if (cfg->socket_gid != (gid_t)-1 &&
	    chown(cfg->socket_path, (uid_t)-1, cfg->socket_gid) != 0) {
		log_warn("chown %s to group %s", cfg->socket_path,
		    cfg->socket_group);
		goto fail;
	}
	if (chmod(cfg->socket_path, cfg->socket_mode) != 0) {
		log_warn("chmod %s", cfg->socket_path);
		goto fail;
	}
	if (listen(fd, CTL_BACKLOG) != 0) {
		log_warn("listen %s", cfg->socket_path);
		goto fail;
	}
	if (stat(cfg->socket_path, &ctl_st) != 0)
		memset(&ctl_st, 0, sizeof(ctl_st));
	return fd;
fail:
	unlink(cfg->socket_path);
	close(fd);
	return -1;
}

/* Take the socket from systemd, or make our own. */
int
ctl_listen(void)
{
	int	 n = sd_listen_fds();

	if (n > 0) {
		int		 type = 0, listening = 0;
		socklen_t	 len = sizeof(type);

		if (n > 1)
			log_warnx("systemd passed %d sockets; using the "
			    "first", n);
		ctl_fd = 3;
		if (getsockopt(ctl_fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
		    type != SOCK_STREAM ||
		    (len = sizeof(listening), getsockopt(ctl_fd, SOL_SOCKET,
		    SO_ACCEPTCONN, &listening, &len)) != 0 || !listening) {
			log_warnx("the socket passed by systemd is not a "
			    "listening stream socket");
			return -1;
		}
		(void)fcntl(ctl_fd, F_SETFL, fcntl(ctl_fd, F_GETFL) |
		    O_NONBLOCK);
		ctl_activated = true;
		log_info("listening on the socket passed by systemd");
		return 0;
	}
	if ((ctl_fd = ctl_bind()) < 0)
		return -1;
	log_info("listening on %s", D.cfg->socket_path);
	return 0;
}

/* Tell a client we are full, without waiting for it. */
static void
ctl_refuse(int fd)
{
	static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":null,"
	    "\"error\":{\"code\":-32012,\"message\":\"too many connections\","
	    "\"data\":{\"reason\":\"overloaded\"}}}\n";

	(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void
ctl_resume(evutil_socket_t fd, short ev, void *arg)
{
	if (!ctl_paused || D.stopping)
		return;
	ctl_paused = false;
	event_add(ctl_ev, NULL);
}

static void
ctl_accept(evutil_socket_t lfd, short ev, void *arg)
{
	for (int i = 0; i < CTL_ACCEPT_BURST; i++) {
		int	 fd = accept4(lfd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				struct timeval	 tv = { 0, CTL_PAUSE_MS * 1000 };

				log_warn("accept: pausing for %d ms",
				    CTL_PAUSE_MS);
				event_del(ctl_ev);
				ctl_paused = true;
				evtimer_add(ctl_pause_ev, &tv);
			} else if (errno != EAGAIN)
				log_warn("accept");
			return;
		}
		if (conn_count() >= D.cfg->max_connections) {
			log_debug("connection refused: %u connections",
			    conn_count());
			ctl_refuse(fd);
			continue;
		}
		if (conn_new(fd) != 0)
			log_debug("connection dropped at accept");
	}
}

void
ctl_start(void)
{
	ctl_ev = event_new(D.base, ctl_fd, EV_READ | EV_PERSIST, ctl_accept,
	    NULL);
	ctl_pause_ev = evtimer_new(D.base, ctl_resume, NULL);
	if (ctl_ev == NULL || ctl_pause_ev == NULL)
		fatalx("cannot create the accept event");
	event_add(ctl_ev, NULL);
}

/* A connection closed: if accept was paused for lack of descriptors,
 * there is one now. */
void
ctl_conn_closed(void)
{
	if (ctl_paused && !D.stopping) {
		ctl_paused = false;
		evtimer_del(ctl_pause_ev);
		event_add(ctl_ev, NULL);
	}
}

void
ctl_stop(void)
{
	if (ctl_ev != NULL)
		event_del(ctl_ev);
	if (ctl_pause_ev != NULL)
		evtimer_del(ctl_pause_ev);
}

/* Close the socket; remove the file if it is still the one we made. */
void
ctl_close(void)
{
	struct stat	 st;

	ctl_stop();
	if (ctl_ev != NULL)
		event_free(ctl_ev);
	if (ctl_pause_ev != NULL)
		event_free(ctl_pause_ev);
	ctl_ev = ctl_pause_ev = NULL;
	if (ctl_fd >= 0)
		close(ctl_fd);
	ctl_fd = -1;
	if (!ctl_activated && D.cfg != NULL &&
	    stat(D.cfg->socket_path, &st) == 0 &&
	    st.st_ino == ctl_st.st_ino && st.st_dev == ctl_st.st_dev)
		unlink(D.cfg->socket_path);
}
