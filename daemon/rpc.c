/*
 * rpc.c - the JSON-RPC 2.0 codec: one line in, one parsed request (or
 * batch) out; reply objects in, one line out.  Pure: no I/O, no globals.
 *
 * cJSON is lenient where a protocol must not be (FIELD-NOTES): it accepts
 * trailing garbage unless asked not to, truncates strings at "\u0000",
 * keeps the first of duplicate keys and does not validate UTF-8.  This file
 * closes each of those holes before a handler ever sees a value.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

/*
 * Scan the raw text once, outside cJSON: reject nesting deeper than
 * RPC_MAX_DEPTH and the escape \u0000 inside strings.  Bracket counting
 * only needs to know whether it is inside a string; the real parse comes
 * after.  Returns NULL or a message.
 */
static const char *
rpc_prescan(const char *s, size_t len)
{
	size_t	 depth = 0;
	bool	 in_str = false;

	for (size_t i = 0; i < len; i++) {
		char	 c = s[i];

		if (in_str) {
			if (c == '\\') {
				if (i + 5 < len && s[i + 1] == 'u' &&
				    s[i + 2] == '0' && s[i + 3] == '0' &&
				    s[i + 4] == '0' && s[i + 5] == '0')
					return "\\u0000 is not allowed in "
					    "strings";
				i++;	/* skip the escaped character */
			} else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > RPC_MAX_DEPTH)
				return "nesting deeper than 32 levels";
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return NULL;
}

static int
rpc_keycmp(const void *a, const void *b)
{
	const cJSON *const *x = a, *const *y = b;

	return strcmp((*x)->string, (*y)->string);
}

/*
 * Find a duplicate key anywhere in v.  Each object's keys are sorted by
 * pointer copy, so a hostile object with thousands of keys costs
 * n log n, not n^2.  Returns the duplicated key or NULL.
 */
static const char *
rpc_dupkey(const cJSON *v)
{
	const cJSON	 *c;
	const cJSON	**keys;
	const char	 *dup = NULL;
	size_t		  n = 0, i;

	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return NULL;
	for (c = v->child; c != NULL; c = c->next) {
		if ((dup = rpc_dupkey(c)) != NULL)
			return dup;
		n++;
	}
	if (!cJSON_IsObject(v) || n < 2)
		return NULL;
	if ((keys = calloc(n, sizeof(*keys))) == NULL)
		return "(out of memory)";
	for (i = 0, c = v->child; c != NULL; c = c->next)
		keys[i++] = c;
	qsort(keys, n, sizeof(*keys), rpc_keycmp);
	for (i = 1; i < n; i++)
		if (strcmp(keys[i - 1]->string, keys[i]->string) == 0) {
			dup = keys[i]->string;
			break;
		}
	free(keys);
	return dup;
}

/*
 * Parse one line (line[len] must be '\0').  Returns the JSON value, owned
 * by the caller, or NULL with *code / *msg describing the problem.
 */
cJSON *
rpc_parse(const char *line, size_t len, int *code, const char **msg)
{
	static char	 dupmsg[128];
	const char	*end = NULL, *why, *dup;
	cJSON		*v;

	*code = RPC_PARSE_ERROR;
	if (memchr(line, '\0', len) != NULL) {
		*msg = "parse error: NUL byte in request";
		return NULL;
	}
	if (!utf8_valid(line, len)) {
		*msg = "parse error: request is not valid UTF-8";
		return NULL;
	}
	if ((why = rpc_prescan(line, len)) != NULL) {
		*msg = why;
		return NULL;
	}
	v = cJSON_ParseWithLengthOpts(line, len + 1, &end, 1);
	if (v == NULL) {
		*msg = "parse error: not a JSON text";
		return NULL;
	}
	if ((dup = rpc_dupkey(v)) != NULL) {
		/* The message is copied out before v is freed. */
		snprintf(dupmsg, sizeof(dupmsg), "duplicate key \"%.64s\"",
		    dup);
		cJSON_Delete(v);
		*code = RPC_INVALID_REQUEST;
		*msg = dupmsg;
		return NULL;
	}
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) {
		cJSON_Delete(v);
		*code = RPC_INVALID_REQUEST;
		*msg = "a request must be a JSON object or an array of them";
		return NULL;
	}
	if (cJSON_IsArray(v) && v->child == NULL) {
		cJSON_Delete(v);
		*code = RPC_INVALID_REQUEST;
		*msg = "empty batch";
		return NULL;
	}
	return v;
}

/*
 * Check the shape of one request object.  Out-params borrow from req.
 * Returns 0, or -1 with *msg.  *id is set whenever the id itself is valid,
 * so an error reply can still echo it.
 */
int
rpc_request(const cJSON *req, const char **method, const cJSON **params,
    const cJSON **id, const char **msg)
{
	const cJSON	*c, *v;

	*method = NULL;
	*params = NULL;
	*id = NULL;
	if (!cJSON_IsObject(req)) {
		*msg = "a request must be a JSON object";
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "id");
	if (v != NULL) {
		/* A number too large for a double (1e400) would come back
		 * as null: the client could not match the reply. */
		if ((!cJSON_IsString(v) && !cJSON_IsNumber(v) &&
		    !cJSON_IsNull(v)) ||
		    (cJSON_IsNumber(v) && !isfinite(v->valuedouble))) {
			*msg = "\"id\" must be a string, a number or null";
			return -1;
		}
		*id = v;
	}
	for (c = req->child; c != NULL; c = c->next) {
		if (strcmp(c->string, "jsonrpc") != 0 &&
		    strcmp(c->string, "method") != 0 &&
		    strcmp(c->string, "params") != 0 &&
		    strcmp(c->string, "id") != 0) {
			*msg = "unknown member in request";
			return -1;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0) {
		*msg = "\"jsonrpc\" must be \"2.0\"";
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "method");
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
		*msg = "\"method\" must be a non-empty string";
		return -1;
	}
	*method = v->valuestring;
	v = cJSON_GetObjectItemCaseSensitive(req, "params");
	if (v != NULL && !cJSON_IsObject(v) && !cJSON_IsArray(v)) {
		*msg = "\"params\" must be an object or an array";
		return -1;
	}
	*params = v;
	return 0;
}

/* {"jsonrpc":"2.0","id":...}: the common part of every reply. */
static cJSON *
rpc_reply(const cJSON *id)
{
	cJSON	*r;

	if ((r = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(r, "jsonrpc", "2.0");
	if (id != NULL)
		cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
	else
		cJSON_AddNullToObject(r, "id");
	return r;
}

/* A success reply; takes result (NULL becomes null). */
cJSON *
rpc_result(const cJSON *id, cJSON *result)
{
	cJSON	*r;

	if ((r = rpc_reply(id)) == NULL) {
		cJSON_Delete(result);
		return NULL;
	}
	cJSON_AddItemToObject(r, "result",
	    result != NULL ? result : cJSON_CreateNull());
	return r;
}

/* An error reply; takes data (may be NULL). */
cJSON *
rpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON	*r, *e;

	if ((r = rpc_reply(id)) == NULL ||
	    (e = cJSON_AddObjectToObject(r, "error")) == NULL) {
		cJSON_Delete(r);
		cJSON_Delete(data);
		return NULL;
	}
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	if (data != NULL)
		cJSON_AddItemToObject(e, "data", data);
	return r;
}

/* One line of JSON (cJSON escapes newlines inside strings). */
char *
rpc_print(const cJSON *v)
{
	return cJSON_PrintUnformatted(v);
}
