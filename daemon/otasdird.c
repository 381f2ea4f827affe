/*
 * otasdird.c - start-up, signals, reload and shutdown.
 *
 *   otasdird [--config FILE] [--check-config] [--version]
 *
 * Runs in the foreground and logs to stderr; systemd (or the operator)
 * supervises.  A bad config stops it with "file:line: what is wrong" and
 * exit 78 (EX_CONFIG).  SIGHUP re-reads the file (seats, admins, log level,
 * throttling, audit path) without dropping connections; SIGTERM and SIGINT
 * stop accepting, let requests in flight finish within shutdown.grace_ms,
 * and exit 0.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otasdird.h"

#define EX_CONFIG	78

struct daemon	 D;

/* After the grace period, how long replies may take to reach clients. */
#define SHUTDOWN_FLUSH_MS	1000

static struct event	*ev_term, *ev_int, *ev_hup, *ev_poll;
static uint64_t		 grace_end_ms, flush_end_ms;
static bool		 flushing;	/* shutdown: past the grace period */

static void
usage(FILE *f)
{
	fprintf(f, "usage: otasdird [--config FILE] [--check-config] "
	    "[--version]\n");
}

static void
print_errors(const struct cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->v[i]);
}

/* ------------------------------------------------------------------ */
/* reload */

/* Swap what a reload may change from next into cur; the rest (socket,
 * ldap) needs a restart and is only compared. */
static void
reload_apply(struct cfg *cur, struct cfg *next)
{
#define SWAP(f) do {						\
	__typeof__(cur->f) tmp_ = cur->f;			\
	cur->f = next->f;					\
	next->f = tmp_;						\
} while (0)
	SWAP(seats);
	SWAP(admin_uids);
	SWAP(n_admin_uids);
	SWAP(admin_groups);
	SWAP(admin_gids);
	SWAP(n_admin_gids);
	SWAP(log_level);
	SWAP(login_max_failures);
	SWAP(login_base_delay_s);
	SWAP(login_max_delay_s);
	SWAP(audit_path);
	SWAP(idle_timeout_s);
	SWAP(max_inflight_conn);
	SWAP(max_inflight);
	SWAP(max_connections);
	SWAP(max_reply_backlog);
	SWAP(shutdown_grace_ms);
#undef SWAP
	if (strcmp(cur->socket_path, next->socket_path) != 0 ||
	    cur->socket_mode != next->socket_mode ||
	    cur->max_request_bytes != next->max_request_bytes)
		log_warnx("reload: socket settings change only on restart");
	if (strcmp(cur->people_dn, next->people_dn) != 0 ||
	    strcmp(cur->bind_dn, next->bind_dn) != 0 ||
	    cur->ldap_uris.n != next->ldap_uris.n)
		log_warnx("reload: ldap settings change only on restart");
}

static void
on_hup(evutil_socket_t sig, short ev, void *arg)
{
	struct cfg_errors	 errs = { NULL, 0 };
	struct cfg		*next = NULL;
	long			 old_seats = D.cfg->seats;

	(void)sd_notify("RELOADING=1");
	if (cfg_load(D.cfg_path, 0, &next, &errs) != 0) {
		log_warnx("reload: %s is not valid; keeping the running "
		    "configuration", D.cfg_path);
		for (size_t i = 0; i < errs.n; i++)
			log_warnx("reload: %s", errs.v[i]);
		cfg_errors_free(&errs);
		/* logrotate's SIGHUP must let go of the renamed audit file
		 * even when the config has just been broken. */
		if (audit_open() != 0)
			log_warnx("reload: cannot re-open the audit log");
		(void)sd_notify("READY=1");
		return;
	}
	reload_apply(D.cfg, next);
	cfg_free(next);
	log_setlevel(D.cfg->log_level);
	conn_reident_all();
	/* Log rotation: a renamed audit file is let go here. */
	if (audit_open() != 0)
		log_warnx("reload: cannot re-open the audit log");
	log_info("reloaded %s (seats %ld%s)", D.cfg_path, D.cfg->seats,
	    old_seats != D.cfg->seats ? ", changed" : "");
	(void)sd_notify("READY=1");
}

/* ------------------------------------------------------------------ */
/* shutdown */

/*
 * Close every directory connection: each operation still in flight fails
 * (LDC_ERR_DOWN), so each request waiting on one is answered, timeout
 * (outcome unknown) if it had been sent, unavailable if not.  Owners go
 * before what they use: the bind pool and the service connection first,
 * while the view and the seat counter their callbacks reach for are still
 * there.  Safe to call twice.
 */
static void
shutdown_directory(void)
{
	auth_shutdown();
	dir_shutdown();
	view_shutdown();
	seat_shutdown();
}

/*
 * The shutdown, polled every 20 ms: wait for the requests in flight until
 * shutdown.grace_ms has passed; then answer what is left by closing the
 * directory connections; then give the replies a moment to reach their
 * clients (connections close themselves once flushed) and leave the loop.
 */
static void
shutdown_poll(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, 20 * 1000 };
	uint64_t	 now = now_ms();

	if (!flushing) {
		/* Seats held in advance go back; their settles (and those of
		 * finished requests) are waited for like requests. */
		seat_flush();
		if ((conn_inflight_total() > 0 || seat_busy()) &&
		    now < grace_end_ms) {
			evtimer_add(ev_poll, &tv);
			return;
		}
		if (conn_inflight_total() > 0) {
			log_warnx("shutdown: %u requests still in flight after "
			    "%u ms; ending their directory work",
			    conn_inflight_total(), D.cfg->shutdown_grace_ms);
			shutdown_directory();
		}
		flushing = true;
		flush_end_ms = now + SHUTDOWN_FLUSH_MS;
	}
	if (conn_count() > 0 && now < flush_end_ms) {
		evtimer_add(ev_poll, &tv);
		return;
	}
	if (conn_inflight_total() > 0 || conn_count() > 0)
		log_warnx("shutdown: leaving %u requests unanswered, %u "
		    "connections unflushed", conn_inflight_total(),
		    conn_count());
	event_base_loopbreak(D.base);
}

static void
on_term(evutil_socket_t sig, short ev, void *arg)
{
	if (D.stopping) {
		log_info("second signal: stopping now");
		event_base_loopbreak(D.base);
		return;
	}
	D.stopping = true;
	log_info("%s: stopping (%u requests in flight)",
	    sig == SIGINT ? "SIGINT" : "SIGTERM", conn_inflight_total());
	(void)sd_notify("STOPPING=1");
	/* New clients are refused at once (or, under socket activation,
	 * wait for the next instance) rather than queued unanswered. */
	ctl_close();
	conn_shutdown();
	grace_end_ms = now_ms() + D.cfg->shutdown_grace_ms;
	shutdown_poll(-1, 0, NULL);
}

/* ------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg_errors	 errs = { NULL, 0 };
	const char		*path = OTASDIR_DEFAULT_CONFIG;
	bool			 check = false;
	int			 ch;

	/* No ldap.conf, ldaprc or LDAP* variable may change how libldap
	 * behaves here (FIELD-NOTES). */
	setenv("LDAPNOINIT", "1", 1);

	while ((ch = getopt_long(argc, argv, "c:nVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'V':
			printf("otasdird %s\n", OTASDIR_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 64;
	}

	if (cfg_load(path, CFG_LOAD_SECRET, &D.cfg, &errs) != 0) {
		print_errors(&errs);
		cfg_errors_free(&errs);
		return EX_CONFIG;
	}
	if (check) {
		printf("%s: ok\n", path);
		cfg_free(D.cfg);
		return 0;
	}
	D.cfg_path = path;
	D.started = time(NULL);
	log_init(D.cfg->log_level, !isatty(STDERR_FILENO));

	/* Writing to a directory that went away must not kill us
	 * (FIELD-NOTES: SIGPIPE, exit 141). */
	signal(SIGPIPE, SIG_IGN);

	if ((D.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (ctl_listen() != 0)
		return 1;

	ev_term = evsignal_new(D.base, SIGTERM, on_term, NULL);
	ev_int = evsignal_new(D.base, SIGINT, on_term, NULL);
	ev_hup = evsignal_new(D.base, SIGHUP, on_hup, NULL);
	ev_poll = evtimer_new(D.base, shutdown_poll, NULL);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    ev_poll == NULL || evsignal_add(ev_term, NULL) != 0 ||
	    evsignal_add(ev_int, NULL) != 0 || evsignal_add(ev_hup, NULL) != 0)
		fatalx("cannot install signal handlers");

	dir_init();
	view_init();
	seat_init();
	auth_init();
	if (audit_open() != 0)
		log_warnx("audit: cannot open %s; auditing to syslog",
		    D.cfg->audit_path);
	ctl_start();
	log_info("otasdird %s started (pid %d, %ld seats, people %s)",
	    OTASDIR_VERSION, (int)getpid(), D.cfg->seats, D.cfg->people_dn);

	event_base_dispatch(D.base);

	/* Exiting: a further SIGTERM (a supervisor's or an impatient
	 * operator's) must not turn exit status 0 into death by signal once
	 * the handlers below are gone (the sanitizers' exit-time checks
	 * take long enough for that to happen).  Blocked, it stays pending
	 * and dies with the process. */
	{
		sigset_t	 set;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}

	/* After a second signal, whatever is still in flight fails here
	 * and its client is closed without an answer. */
	ctl_close();
	shutdown_directory();
	conn_close_all();
	audit_close();
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_poll);
	event_base_free(D.base);
	log_info("stopped");
	cfg_free(D.cfg);
	return 0;
}
