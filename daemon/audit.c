/*
 * audit.c - the audit trail: one JSON line per change or refusal.
 *
 *   {"time":"2026-12-03T13:45:00.123Z","actor":{"kind":"peer","uid":0,
 *    "pid":4242},"method":"user.create","target":"alice","outcome":"ok",
 *    "seats":25,"used":7}
 *
 * Lines go to audit.path, opened O_APPEND and written with one write(2)
 * each, so concurrent writers and logrotate's copytruncate keep lines
 * whole; SIGHUP re-opens the file (rotation by rename).  Without
 * audit.path they go to syslog (LOG_AUTHPRIV).  Callers never pass a
 * password; nothing here could print one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "otasdird.h"

static int	 audit_fd = -1;
static bool	 audit_syslog;
static bool	 audit_warned;

/* (Re)open the audit destination named by the current config. */
int
audit_open(void)
{
	int	 fd;

	if (D.cfg->audit_path == NULL) {
		if (audit_fd >= 0)
			close(audit_fd);
		audit_fd = -1;
		if (!audit_syslog)
			openlog("otasdird", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
		audit_syslog = true;
		return 0;
	}
	fd = open(D.cfg->audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0640);
	if (fd < 0) {
		log_warn("audit: open %s", D.cfg->audit_path);
		if (audit_fd < 0 && !audit_syslog) {
			openlog("otasdird", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
			audit_syslog = true;
		}
		return -1;
	}
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = fd;
	if (audit_syslog)
		closelog();
	audit_syslog = false;
	audit_warned = false;
	return 0;
}

void
audit_close(void)
{
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = -1;
	if (audit_syslog)
		closelog();
	audit_syslog = false;
}

/* ISO 8601 UTC with milliseconds. */
static void
audit_time(char *buf, size_t len)
{
	struct timeval	 tv;
	struct tm	 tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/*
 * The methods that take or free seats say how many are in use after the
 * change (or refusal) and the licence's limit, unless the caller already
 * did (a seat refusal gives the numbers it refused with).
 */
static void
audit_seats(const struct req *r, cJSON *o)
{
	static const char *const seat_methods[] = { "user.create",
	    "user.delete", "user.import" };
	long	 used;

	for (size_t i = 0; i < nitems(seat_methods); i++) {
		if (strcmp(r->method->name, seat_methods[i]) != 0)
			continue;
		if (cJSON_GetObjectItemCaseSensitive(o, "seats") == NULL)
			cJSON_AddNumberToObject(o, "seats",
			    (double)D.cfg->seats);
		if (cJSON_GetObjectItemCaseSensitive(o, "used") == NULL &&
		    (used = seat_used()) >= 0)
			cJSON_AddNumberToObject(o, "used", (double)used);
		return;
	}
}

void
audit_log(const struct req *r, const char *target, const char *outcome,
    cJSON *extra)
{
	cJSON	*o, *actor;
	char	 ts[64], *line = NULL;
	size_t	 len;

	if ((o = cJSON_CreateObject()) == NULL)
		goto out;
	audit_time(ts, sizeof(ts));
	cJSON_AddStringToObject(o, "time", ts);
	if ((actor = cJSON_AddObjectToObject(o, "actor")) != NULL) {
		cJSON_AddStringToObject(actor, "kind",
		    r->who.kind == IDENT_ACCOUNT ? "account" : "peer");
		if (r->who.kind == IDENT_ACCOUNT)
			cJSON_AddStringToObject(actor, "username",
			    r->who.username);
		cJSON_AddNumberToObject(actor, "uid", (double)r->peer.uid);
		cJSON_AddNumberToObject(actor, "pid", (double)r->peer.pid);
	}
	cJSON_AddStringToObject(o, "method", r->method->name);
	if (target != NULL)
		cJSON_AddStringToObject(o, "target", target);
	else
		cJSON_AddNullToObject(o, "target");
	cJSON_AddStringToObject(o, "outcome", outcome);
	if (cJSON_IsObject(extra))
		for (cJSON *c = extra->child; c != NULL; c = c->next)
			if (cJSON_GetObjectItemCaseSensitive(o, c->string) ==
			    NULL)
				cJSON_AddItemToObject(o, c->string,
				    cJSON_Duplicate(c, 1));
	audit_seats(r, o);
	if ((line = cJSON_PrintUnformatted(o)) == NULL)
		goto out;
	if (audit_syslog || audit_fd < 0) {
		syslog(LOG_NOTICE, "%s", line);
		goto out;
	}
	len = strlen(line);
	line[len++] = '\n';		/* over the NUL: one write */
	if (write(audit_fd, line, len) != (ssize_t)len && !audit_warned) {
		log_warn("audit: write %s", D.cfg->audit_path);
		audit_warned = true;
	}
out:
	free(line);
	cJSON_Delete(o);
	cJSON_Delete(extra);
}
