/*
 * dir.c - the directory as the rest of the daemon sees it: the service
 * connection (bound as ldap.bind_dn) on which every read and write runs,
 * and whether it is up; and a reader connection, bound the same way, for
 * the seat counts, whose hundred thousand entries would otherwise hold
 * up the answers to writes on the service connection.
 */
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

static struct ldc	*dir_svc;
static struct ldc	*dir_rd;	/* long reads (seat counts) */
static bool		 dir_tried;	/* first attempt finished */

/* Readiness (sd_notify) waits until the directory has been tried once,
 * up or not, so that a supervisor sees a daemon that knows its state. */
static void
dir_state(enum ldc_state s, void *arg)
{
	if (!dir_tried && (s == LDC_UP || s == LDC_DOWN)) {
		dir_tried = true;
		if (s != LDC_UP)
			log_warnx("directory unavailable at start; retrying "
			    "in the background");
		(void)sd_notify(s == LDC_UP ? "READY=1\nSTATUS=directory up" :
		    "READY=1\nSTATUS=directory down, retrying");
	} else if (dir_tried && (s == LDC_UP || s == LDC_DOWN))
		(void)sd_notify(s == LDC_UP ? "STATUS=directory up" :
		    "STATUS=directory down, retrying");
}

void
dir_init(void)
{
	struct ldc_opts	 o = {
		.name = "service",
		.bind = true,
		.on_state = dir_state,
	};

	struct ldc_opts	 r = {
		.name = "reader",
		.bind = true,
	};

	if ((dir_svc = ldc_new(&o)) == NULL || (dir_rd = ldc_new(&r)) ==
	    NULL)
		fatalx("cannot create the directory connection");
}

void
dir_shutdown(void)
{
	ldc_free(dir_rd);
	dir_rd = NULL;
	ldc_free(dir_svc);
	dir_svc = NULL;
}

struct ldc *
dir_reader(void)
{
	const char	*a, *b;

	if (dir_rd == NULL || ldc_state(dir_rd) != LDC_UP ||
	    (a = ldc_uri(dir_rd)) == NULL || (b = ldc_uri(dir_svc)) == NULL ||
	    strcmp(a, b) != 0)
		return dir_svc;
	return dir_rd;
}

struct ldc *
dir_service(void)
{
	return dir_svc;
}

bool
dir_up(void)
{
	return dir_svc != NULL && ldc_state(dir_svc) == LDC_UP;
}

const char *
dir_state_name(void)
{
	return dir_svc != NULL ? ldc_state_name(ldc_state(dir_svc)) :
	    "closed";
}

/* ------------------------------------------------------------------ */
/* dir_scan: read every entry under people_dn, size limits or not */

/*
 * slapd's default size limit (500) caps what a non-root DN gets from one
 * search, and with paged results too: size.prtotal defaults to the hard
 * limit, so a paged search as the service stops at 500 entries in all.
 * A scan therefore reads the OU in slices of the entryUUID space, which
 * has an ordering rule: first everything at once, and whenever a slice
 * answers sizeLimitExceeded, its sixteen sub-slices (one more hex digit
 * of the UUID) instead.  With a `limits` line for the service the first
 * search returns everything; without, 100,000 entries take some 300
 * searches.
 *
 * Entries of a slice that was cut short are delivered again by its
 * sub-slices: on_entry must be idempotent, or count per slice and use
 * on_slice, which says whether the slice's entries were all there.
 */
struct dir_scan {
	struct ldc		*ldc;
	struct ldc_op		*op;
	char			**attrs;
	dir_scan_entry_fn	*on_entry;
	dir_scan_slice_fn	*on_slice;
	dir_scan_done_fn	*done;
	void			*arg;
	char			(*todo)[33];	/* UUID hex prefixes */
	size_t			 ntodo, cap;
	unsigned		 searches;
};

static void	dir_scan_next(struct dir_scan *);

static void
dir_scan_free(struct dir_scan *s)
{
	if (s->attrs != NULL) {
		for (char **a = s->attrs; *a != NULL; a++)
			free(*a);
		free(s->attrs);
	}
	free(s->todo);
	free(s);
}

static void
dir_scan_finish(struct dir_scan *s, int rc, const char *diag)
{
	s->done(rc, diag, s->searches, s->arg);
	dir_scan_free(s);
}

static int
dir_scan_push(struct dir_scan *s, const char *prefix)
{
	if (s->ntodo == s->cap) {
		size_t	 ncap = s->cap ? s->cap * 2 : 32;
		char	(*n)[33] = realloc(s->todo, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		s->todo = n;
		s->cap = ncap;
	}
	snprintf(s->todo[s->ntodo++], 33, "%s", prefix);
	return 0;
}

/* A UUID in text form from 32 hex digits. */
static void
dir_uuid_text(const char *hex, char *out)
{
	size_t	 o = 0;

	for (size_t i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[o++] = '-';
		out[o++] = hex[i];
	}
	out[o] = '\0';
}

/* The filter for the slice of UUIDs starting with prefix. */
static void
dir_scan_filter(const char *prefix, char *buf, size_t len)
{
	char	 lo[33], hi[33], tlo[40], thi[40];
	size_t	 n = strlen(prefix);

	if (n == 0) {
		snprintf(buf, len, "(objectClass=*)");
		return;
	}
	memcpy(lo, prefix, n);
	memcpy(hi, prefix, n);
	memset(lo + n, '0', 32 - n);
	memset(hi + n, 'f', 32 - n);
	lo[32] = hi[32] = '\0';
	dir_uuid_text(lo, tlo);
	dir_uuid_text(hi, thi);
	snprintf(buf, len, "(&(entryUUID>=%s)(entryUUID<=%s))", tlo, thi);
}

static void
dir_scan_msg(LDAP *ld, LDAPMessage *msg, void *arg)
{
	struct dir_scan	*s = arg;

	if (ldap_msgtype(msg) == LDAP_RES_SEARCH_ENTRY)
		s->on_entry(ld, msg, s->arg);
}

static void
dir_scan_result(struct ldc_res *res, void *arg)
{
	struct dir_scan	*s = arg;
	char		 prefix[33];

	s->op = NULL;
	snprintf(prefix, sizeof(prefix), "%s", s->todo[s->ntodo - 1]);
	if (res->rc == LDAP_SIZELIMIT_EXCEEDED && strlen(prefix) < 32) {
		static const char hex[] = "0123456789abcdef";

		if (s->on_slice != NULL)
			s->on_slice(false, s->arg);
		s->ntodo--;
		for (int i = 15; i >= 0; i--) {
			char	 sub[34];

			snprintf(sub, sizeof(sub), "%s%c", prefix, hex[i]);
			if (dir_scan_push(s, sub) != 0) {
				dir_scan_finish(s, LDAP_NO_MEMORY, NULL);
				return;
			}
		}
		dir_scan_next(s);
		return;
	}
	if (res->rc != LDAP_SUCCESS) {
		dir_scan_finish(s, res->rc, res->diag);
		return;
	}
	if (s->on_slice != NULL)
		s->on_slice(true, s->arg);
	s->ntodo--;
	dir_scan_next(s);
}

static void
dir_scan_next(struct dir_scan *s)
{
	struct ldc_call	 call = {
		.retry = true,
		.on_msg = dir_scan_msg,
		.done = dir_scan_result,
		.arg = s,
	};
	char		 filter[128];

	if (s->ntodo == 0) {
		dir_scan_finish(s, LDAP_SUCCESS, NULL);
		return;
	}
	dir_scan_filter(s->todo[s->ntodo - 1], filter, sizeof(filter));
	s->searches++;
	s->op = ldc_search(s->ldc, &call, D.cfg->people_dn,
	    LDAP_SCOPE_ONELEVEL, filter, (const char *const *)s->attrs, 0);
	if (s->op == NULL)
		dir_scan_finish(s, LDAP_NO_MEMORY, NULL);
}

/*
 * Start a scan of people_dn on l.  done is called exactly once, from the
 * loop; returns NULL (and done is not called) if out of memory.
 */
struct dir_scan *
dir_scan(struct ldc *l, const char *const *attrs, dir_scan_entry_fn *on_entry,
    dir_scan_slice_fn *on_slice, dir_scan_done_fn *done, void *arg)
{
	struct dir_scan	*s;
	size_t		 n = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->ldc = l;
	s->on_entry = on_entry;
	s->on_slice = on_slice;
	s->done = done;
	s->arg = arg;
	while (attrs[n] != NULL)
		n++;
	if ((s->attrs = calloc(n + 1, sizeof(*s->attrs))) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((s->attrs[i] = strdup(attrs[i])) == NULL)
			goto fail;
	if (dir_scan_push(s, "") != 0)
		goto fail;
	dir_scan_next(s);
	return s;
fail:
	dir_scan_free(s);
	return NULL;
}

/* Stop a scan; its done callback does not run. */
void
dir_scan_cancel(struct dir_scan *s)
{
	if (s == NULL)
		return;
	if (s->op != NULL)
		ldc_cancel(s->op);
	dir_scan_free(s);
}
