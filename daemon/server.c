/*
 * server.c - server.ping, server.status and auth.whoami: the methods that
 * need nothing but the daemon's own state.
 */
#include <stdlib.h>
#include <time.h>

#include "otasdird.h"

void
server_ping(struct req *r)
{
	req_reply_result(r, cJSON_CreateString("pong"));
}

/* {version, uptime_s, directory, ldap_server, seats, seats_used,
 *  connections, requests_in_flight} */
void
server_status(struct req *r)
{
	cJSON		*o;
	const char	*uri;

	if ((o = cJSON_CreateObject()) == NULL) {
		req_fail_internal(r, "out of memory");
		return;
	}
	cJSON_AddStringToObject(o, "version", OTASDIR_VERSION);
	cJSON_AddNumberToObject(o, "uptime_s",
	    (double)(time(NULL) - D.started));
	cJSON_AddStringToObject(o, "directory", dir_up() ? "up" : "down");
	if ((uri = ldc_uri(dir_service())) != NULL)
		cJSON_AddStringToObject(o, "ldap_server", uri);
	else
		cJSON_AddNullToObject(o, "ldap_server");
	cJSON_AddNumberToObject(o, "seats", (double)D.cfg->seats);
	if (seat_used() >= 0)
		cJSON_AddNumberToObject(o, "seats_used", (double)seat_used());
	else
		cJSON_AddNullToObject(o, "seats_used");
	cJSON_AddStringToObject(o, "view", !view_ready() ? "loading" :
	    view_live() ? "live" : "polling");
	cJSON_AddNumberToObject(o, "connections", conn_count());
	cJSON_AddNumberToObject(o, "requests_in_flight",
	    conn_inflight_total());
	req_reply_result(r, o);
}

void
auth_whoami(struct req *r)
{
	cJSON	*o;

	if ((o = cJSON_CreateObject()) == NULL) {
		req_fail_internal(r, "out of memory");
		return;
	}
	if (r->who.kind == IDENT_ACCOUNT) {
		cJSON_AddStringToObject(o, "kind", "account");
		cJSON_AddStringToObject(o, "role", role_name(r->who.role));
		cJSON_AddStringToObject(o, "username", r->who.username);
	} else {
		cJSON_AddStringToObject(o, "kind", "peer");
		cJSON_AddStringToObject(o, "role", role_name(r->who.role));
		cJSON_AddNumberToObject(o, "uid", (double)r->peer.uid);
	}
	req_reply_result(r, o);
}
