/*
 * dir.c - the directory as the rest of the daemon sees it: the service
 * connection (bound as ldap.bind_dn) on which every read and write runs,
 * and whether it is up.
 */
#include <stdlib.h>

#include "otasdird.h"

static struct ldc	*dir_svc;
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

	if ((dir_svc = ldc_new(&o)) == NULL)
		fatalx("cannot create the directory connection");
}

void
dir_shutdown(void)
{
	ldc_free(dir_svc);
	dir_svc = NULL;
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
