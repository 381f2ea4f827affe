/*
 * method.c - the dispatch table, the checks every method shares, and the
 * life of a request from dispatch to its one reply.
 *
 * Methods are data: a row names the handler, who may call it and its
 * params.  Before any handler runs, this file has checked the request's
 * shape, the caller's identity against the row, every param's type, that
 * required params are there and that no unknown param is, and the
 * in-flight caps.  Handlers only check values (validation) and do the
 * work.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otasdird.h"

/* Replies for the members of one batch, sent together as one array. */
struct batch {
	uint64_t	 conn_id;
	cJSON		*replies;
	unsigned	 pending;	/* members not yet answered, +1 while
					 * dispatching */
};

static uint64_t	 req_next_seq = 1;

#define NOPARAMS	((const struct param[]){ { NULL, 0, false } })

static const struct param p_credentials[] = {
	{ "username", P_STRING, true },
	{ "password", P_STRING, true },
	{ NULL, 0, false },
};

static const struct param p_username[] = {
	{ "username", P_STRING, true },
	{ NULL, 0, false },
};

static const struct param p_list[] = {
	{ "status", P_STRING, false },
	{ "search", P_STRING, false },
	{ "limit", P_INT, false },
	{ "cursor", P_STRING, false },
	{ NULL, 0, false },
};

static const struct param p_create[] = {
	{ "username", P_STRING, true },
	{ "full_name", P_STRING, true },
	{ "email", P_STRING, true },
	{ "password", P_STRING, false },
	{ "status", P_STRING, false },
	{ "role", P_STRING, false },
	{ NULL, 0, false },
};

static const struct param p_update[] = {
	{ "username", P_STRING, true },
	{ "full_name", P_STRING, false },
	{ "email", P_STRING, false },
	{ "status", P_STRING, false },
	{ "role", P_STRING, false },
	{ NULL, 0, false },
};

static const struct param p_delete[] = {
	{ "username", P_STRING, true },
	{ "confirm", P_STRING, false },	/* checked by the handler:
					 * confirmation_required */
	{ NULL, 0, false },
};

static const struct param p_import[] = {
	{ "users", P_ARRAY, true },
	{ "dry_run", P_BOOL, false },
	{ NULL, 0, false },
};

/*
 * The dispatch table, sorted by name.  "local" methods are answered at
 * once from memory and are exempt from the in-flight caps.
 */
static const struct method methods[] = {
	{ "auth.login", auth_login, WHO_ANYONE, false, p_credentials },
	{ "auth.verify", auth_verify, WHO_SUPERADMIN, false, p_credentials },
	{ "auth.whoami", auth_whoami, WHO_ACCOUNT | WHO_SUPERADMIN, true,
	    NOPARAMS },
	{ "license.get", license_get, WHO_SUPERADMIN, true, NOPARAMS },
	{ "server.ping", server_ping, WHO_ANYONE, true, NOPARAMS },
	{ "server.status", server_status, WHO_ANYONE, true, NOPARAMS },
	{ "user.create", user_create, WHO_SUPERADMIN, false, p_create },
	{ "user.delete", user_delete, WHO_SUPERADMIN, false, p_delete },
	{ "user.get", user_get, WHO_SUPERADMIN | WHO_SELF, true, p_username },
	{ "user.import", user_import, WHO_SUPERADMIN, false, p_import },
	{ "user.list", user_list, WHO_SUPERADMIN, true, p_list },
	{ "user.set_password", user_set_password, WHO_SUPERADMIN | WHO_SELF,
	    false, p_credentials },
	{ "user.update", user_update, WHO_SUPERADMIN, false, p_update },
};

const struct method *
method_table(size_t *n)
{
	*n = nitems(methods);
	return methods;
}

static const struct method *
method_find(const char *name)
{
	for (size_t i = 0; i < nitems(methods); i++)
		if (strcmp(methods[i].name, name) == 0)
			return &methods[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* replies */

static const char *const ptype_names[] = {
	[P_STRING] = "a string",
	[P_INT] = "an integer",
	[P_BOOL] = "a boolean",
	[P_ARRAY] = "an array",
	[P_OBJECT] = "an object",
};

void
req_actor(const struct req *r, char *buf, size_t len)
{
	if (r->who.kind == IDENT_ACCOUNT)
		snprintf(buf, len, "account %s (uid %u pid %d)",
		    r->who.username, (unsigned)r->peer.uid, (int)r->peer.pid);
	else
		snprintf(buf, len, "uid %u pid %d%s", (unsigned)r->peer.uid,
		    (int)r->peer.pid,
		    r->who.role == ROLE_SUPERADMIN ? " (admin)" : "");
}

/* Deliver one reply object for the request with this id / batch / conn:
 * into its batch, or as a line to its connection if that still exists. */
static void
reply_deliver(uint64_t conn_id, struct batch *b, cJSON *reply)
{
	struct conn	*c;
	char		*s;

	if (reply == NULL)
		return;
	if (b != NULL) {
		cJSON_AddItemToArray(b->replies, reply);
		return;
	}
	if ((c = conn_find(conn_id)) != NULL && (s = rpc_print(reply)) !=
	    NULL) {
		conn_send(c, s, strlen(s));
		free(s);
	}
	cJSON_Delete(reply);
}

/* One member of a batch is done; send the array when all are. */
static void
batch_done(struct batch *b)
{
	struct conn	*c;
	char		*s;

	if (--b->pending > 0)
		return;
	if (cJSON_GetArraySize(b->replies) > 0 &&
	    (c = conn_find(b->conn_id)) != NULL &&
	    (s = rpc_print(b->replies)) != NULL) {
		conn_send(c, s, strlen(s));
		free(s);
	}
	cJSON_Delete(b->replies);
	free(b);
}

/* Log, deliver, account and free: the common end of every request. */
static void
req_finish(struct req *r, cJSON *reply, int code)
{
	if (log_enabled(LOGL_DEBUG)) {
		char	 actor[128];

		req_actor(r, actor, sizeof(actor));
		log_debug("req %llu conn %llu %s by %s: %s%.0d in %llu ms",
		    (unsigned long long)r->seq,
		    (unsigned long long)r->conn_id, r->method->name, actor,
		    code == 0 ? "ok" : "error ", code,
		    (unsigned long long)(now_ms() - r->start_ms));
	}
	if (r->id != NULL)
		reply_deliver(r->conn_id, r->batch, reply);
	else
		cJSON_Delete(reply);
	if (r->batch != NULL)
		batch_done(r->batch);
	conn_req_done(r->conn_id);
	cJSON_Delete(r->id);
	cJSON_Delete(r->params);
	free(r);
}

void
req_reply_result(struct req *r, cJSON *result)
{
	req_finish(r, r->id != NULL ? rpc_result(r->id, result) :
	    (cJSON_Delete(result), NULL), 0);
}

/* An error reply.  reason (may be NULL for protocol errors) goes into
 * data.reason; data, if given, is taken over. */
void
req_reply_error(struct req *r, int code, const char *reason,
    const char *message, cJSON *data)
{
	if (reason != NULL) {
		if (data == NULL)
			data = cJSON_CreateObject();
		if (data != NULL)
			cJSON_AddStringToObject(data, "reason", reason);
	}
	if (r->id == NULL) {
		cJSON_Delete(data);
		req_finish(r, NULL, code);
		return;
	}
	req_finish(r, rpc_error(r->id, code, message, data), code);
}

void
req_fail_param(struct req *r, const char *field, const char *message)
{
	cJSON	*data = cJSON_CreateObject();
	char	 msg[256];

	if (data != NULL)
		cJSON_AddStringToObject(data, "field", field);
	snprintf(msg, sizeof(msg), "invalid params: %s %s", field, message);
	req_reply_error(r, RPC_INVALID_PARAMS, NULL, msg, data);
}

void
req_fail_internal(struct req *r, const char *message)
{
	log_warnx("req %llu %s: %s", (unsigned long long)r->seq,
	    r->method->name, message);
	req_reply_error(r, RPC_INTERNAL_ERROR, NULL, "internal error", NULL);
}

/* ------------------------------------------------------------------ */
/* params */

const cJSON *
req_param(const struct req *r, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(r->params, name);
}

bool
req_has(const struct req *r, const char *name)
{
	const cJSON	*v = req_param(r, name);

	return v != NULL && !cJSON_IsNull(v);
}

const char *
req_str(const struct req *r, const char *name)
{
	const cJSON	*v = req_param(r, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long
req_int(const struct req *r, const char *name, long long dflt)
{
	const cJSON	*v = req_param(r, name);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : dflt;
}

bool
req_bool(const struct req *r, const char *name, bool dflt)
{
	const cJSON	*v = req_param(r, name);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Is v of type t?  Integers must be whole and exactly representable. */
static bool
param_type_ok(const cJSON *v, enum ptype t)
{
	switch (t) {
	case P_STRING:
		return cJSON_IsString(v);
	case P_INT:
		return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
		    v->valuedouble == floor(v->valuedouble) &&
		    fabs(v->valuedouble) <= 9007199254740992.0;
	case P_BOOL:
		return cJSON_IsBool(v);
	case P_ARRAY:
		return cJSON_IsArray(v);
	case P_OBJECT:
		return cJSON_IsObject(v);
	}
	return false;
}

/*
 * Check params (an object) against m's row: every member is a param of
 * the method, of its type (null stands for "not given" on optional
 * params), and every required param is there.  Pure: no I/O, no globals.
 * Returns 0, or -1 with *field naming the bad param (borrowed from params
 * or the table) and msg saying what is wrong with it.
 */
int
params_check(const struct method *m, const cJSON *params,
    const char **field, char *msg, size_t msglen)
{
	const struct param	*p;
	const cJSON		*v;

	for (v = params->child; v != NULL; v = v->next) {
		for (p = m->params; p->name != NULL; p++)
			if (strcmp(p->name, v->string) == 0)
				break;
		if (p->name == NULL) {
			*field = v->string;
			snprintf(msg, msglen, "is not a parameter of this "
			    "method");
			return -1;
		}
		if (cJSON_IsNull(v) && !p->required)
			continue;
		if (!param_type_ok(v, p->type)) {
			*field = p->name;
			snprintf(msg, msglen, "must be %s",
			    ptype_names[p->type]);
			return -1;
		}
	}
	for (p = m->params; p->name != NULL; p++) {
		v = cJSON_GetObjectItemCaseSensitive(params, p->name);
		if (p->required && (v == NULL || cJSON_IsNull(v))) {
			*field = p->name;
			snprintf(msg, msglen, "is required");
			return -1;
		}
	}
	return 0;
}

/* params_check for r.  Returns 0, or -1 after replying -32602 (r is
 * freed then). */
static int
req_params_ok(struct req *r)
{
	const char	*field;
	char		 msg[96];

	if (params_check(r->method, r->params, &field, msg, sizeof(msg)) == 0)
		return 0;
	req_fail_param(r, field, msg);
	return -1;
}

/* May the caller use r's method?  An account naming itself counts for
 * WHO_SELF methods. */
static bool
who_ok(const struct req *r)
{
	unsigned	 who = r->method->who;
	const char	*u;

	if (who & WHO_ANYONE)
		return true;
	if ((who & WHO_SUPERADMIN) && r->who.role == ROLE_SUPERADMIN)
		return true;
	/* An account that was deactivated or deleted after it logged in
	 * has ROLE_NONE (auth_refresh_ident): no account rights left. */
	if ((who & WHO_ACCOUNT) && r->who.kind == IDENT_ACCOUNT &&
	    r->who.role != ROLE_NONE)
		return true;
	if ((who & WHO_SELF) && r->who.kind == IDENT_ACCOUNT &&
	    r->who.role != ROLE_NONE &&
	    (u = req_str(r, "username")) != NULL &&
	    strcasecmp(u, r->who.username) == 0)
		return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* dispatch */

/* An error for a request that never became a struct req. */
static void
early_error(struct conn *c, struct batch *b, const cJSON *id, int code,
    const char *msg)
{
	reply_deliver(conn_id(c), b, rpc_error(id, code, msg, NULL));
}

/*
 * A refused call is a security event: log it at info and audit it, like
 * the refusals inside the handlers.  The target is named only when the
 * "username" param is a valid username (params are not checked yet).
 */
static void
method_denied(const struct req *r)
{
	const char	*u = req_str(r, "username");
	char		 actor[128];

	if (u != NULL && valid_username(u, strlen(u)) != NULL)
		u = NULL;
	req_actor(r, actor, sizeof(actor));
	log_info("%s %s by %s: %s", r->method->name, u != NULL ? u : "-",
	    actor, REASON_PERMISSION_DENIED);
	audit_log(r, u, REASON_PERMISSION_DENIED, NULL);
}

/* Dispatch one request object (alone or from a batch). */
static void
dispatch_one(struct conn *c, cJSON *obj, struct batch *b)
{
	const char		*name, *msg;
	const cJSON		*params, *id;
	const struct method	*m;
	struct req		*r;

	if (rpc_request(obj, &name, &params, &id, &msg) != 0) {
		early_error(c, b, id, RPC_INVALID_REQUEST, msg);
		return;
	}
	if ((m = method_find(name)) == NULL) {
		if (id != NULL)
			early_error(c, b, id, RPC_METHOD_NOT_FOUND,
			    "method not found");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		if (id != NULL)
			early_error(c, b, id, RPC_INTERNAL_ERROR,
			    "out of memory");
		return;
	}
	r->conn_id = conn_id(c);
	r->seq = req_next_seq++;
	r->method = m;
	if (conn_ident(c)->kind == IDENT_ACCOUNT) {
		struct ident	 acct = *conn_ident(c);

		auth_refresh_ident(&acct);
		conn_set_ident(c, &acct);
	}
	r->who = *conn_ident(c);
	r->peer = *conn_peer(c);
	r->start_ms = now_ms();
	r->deadline_ms = r->start_ms + D.cfg->op_timeout_ms;
	/* Moved out of the parsed line, which is freed after dispatch (a
	 * copy was a dozen allocations per request). */
	r->id = id != NULL ? cJSON_DetachItemViaPointer(obj,
	    (cJSON *)(uintptr_t)id) : NULL;
	r->params = cJSON_IsObject(params) ? cJSON_DetachItemViaPointer(obj,
	    (cJSON *)(uintptr_t)params) : cJSON_CreateObject();
	r->batch = b;
	if (b != NULL)
		b->pending++;
	conn_req_started(c);
	if ((id != NULL && r->id == NULL) || r->params == NULL) {
		req_fail_internal(r, "out of memory");
		return;
	}
	if (cJSON_IsArray(params)) {
		req_fail_param(r, "params", "must be an object (params by "
		    "name)");
		return;
	}
	if (!who_ok(r)) {
		method_denied(r);
		req_reply_error(r, RPC_PERMISSION_DENIED,
		    REASON_PERMISSION_DENIED,
		    r->who.kind == IDENT_PEER && r->who.role == ROLE_NONE ?
		    "permission denied: log in first (auth.login)" :
		    "permission denied", NULL);
		return;
	}
	if (req_params_ok(r) != 0)
		return;
	if (!m->local && conn_over_cap(c)) {
		req_reply_error(r, RPC_OVERLOADED, REASON_OVERLOADED,
		    "too many requests in flight; retry later", NULL);
		return;
	}
	m->handler(r);
}

/* One line from a client: a request or a batch. */
void
method_dispatch(struct conn *c, const char *line, size_t len)
{
	const char	*msg;
	int		 code;
	cJSON		*v;

	if ((v = rpc_parse(line, len, &code, &msg)) == NULL) {
		early_error(c, NULL, NULL, code, msg);
		return;
	}
	if (cJSON_IsArray(v)) {
		struct batch	*b;

		if (cJSON_GetArraySize(v) > (int)D.cfg->max_inflight_conn) {
			early_error(c, NULL, NULL, RPC_INVALID_REQUEST,
			    "batch larger than max_inflight_per_connection");
			cJSON_Delete(v);
			return;
		}
		if ((b = calloc(1, sizeof(*b))) == NULL ||
		    (b->replies = cJSON_CreateArray()) == NULL) {
			free(b);
			early_error(c, NULL, NULL, RPC_INTERNAL_ERROR,
			    "out of memory");
			cJSON_Delete(v);
			return;
		}
		b->conn_id = conn_id(c);
		b->pending = 1;		/* held while dispatching */
		for (cJSON *e = v->child; e != NULL; e = e->next)
			dispatch_one(c, e, b);
		batch_done(b);
	} else
		dispatch_one(c, v, NULL);
	cJSON_Delete(v);
}
