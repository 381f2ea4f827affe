/*
 * log.c - logging to stderr, where journald (or the terminal) collects it.
 *
 * Every line starts with an sd-daemon priority prefix ("<6>") when
 * prefixes are on, so journald keeps the level; in a terminal they are off
 * and the level is spelled out instead.  errno is preserved across every
 * call.  Secrets never reach a log line: callers pass none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otasdird.h"

static enum log_level	 log_level = LOGL_INFO;
static bool		 log_prefix;

static const char *const level_names[] = {
	[LOGL_ERR] = "err",
	[LOGL_WARNING] = "warning",
	[LOGL_NOTICE] = "notice",
	[LOGL_INFO] = "info",
	[LOGL_DEBUG] = "debug",
};

/* prefix: use "<N>" priority prefixes (stderr is not a terminal). */
void
log_init(enum log_level level, bool prefix)
{
	log_level = level;
	log_prefix = prefix;
}

void
log_setlevel(enum log_level level)
{
	log_level = level;
}

enum log_level
log_getlevel(void)
{
	return log_level;
}

bool
log_enabled(enum log_level level)
{
	return level <= log_level;
}

const char *
log_level_name(enum log_level level)
{
	if (level < LOGL_ERR || level > LOGL_DEBUG)
		return "?";
	return level_names[level];
}

/* Parse a level name; 0 or -1. */
int
log_parse_level(const char *s, enum log_level *out)
{
	for (int l = LOGL_ERR; l <= LOGL_DEBUG; l++) {
		if (strcmp(s, level_names[l]) == 0) {
			*out = (enum log_level)l;
			return 0;
		}
	}
	return -1;
}

/*
 * Write one line at level: the message, then ": strerror(err)" when err is
 * non-zero.  A single write(2) per line keeps lines whole when several
 * processes share stderr.
 */
static void log_vlog(enum log_level, int, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vlog(enum log_level level, int err, const char *fmt, va_list ap)
{
	char	 line[2048];
	int	 n = 0, m;

	if (!log_enabled(level))
		return;
	if (log_prefix)
		n = snprintf(line, sizeof(line), "<%d>", (int)level);
	else if (level != LOGL_INFO)
		n = snprintf(line, sizeof(line), "%s: ", level_names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof(line) - 1 ? (int)sizeof(line) - 2 :
	    n + m;
	if (err != 0) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
		    strerror(err));
		if (m > 0)
			n = (size_t)(n + m) >= sizeof(line) - 1 ?
			    (int)sizeof(line) - 2 : n + m;
	}
	/* No control characters from messages reach the journal. */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void
log_warn(const char *fmt, ...)
{
	int	 saved = errno;
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOGL_WARNING, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

#define LOG_FN(name, level)					\
void								\
name(const char *fmt, ...)					\
{								\
	int	 saved = errno;					\
	va_list	 ap;						\
								\
	va_start(ap, fmt);					\
	log_vlog(level, 0, fmt, ap);				\
	va_end(ap);						\
	errno = saved;						\
}

LOG_FN(log_warnx, LOGL_WARNING)
LOG_FN(log_notice, LOGL_NOTICE)
LOG_FN(log_info, LOGL_INFO)
LOG_FN(log_debug, LOGL_DEBUG)

void
fatal(const char *fmt, ...)
{
	int	 saved = errno;
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOGL_ERR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOGL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
