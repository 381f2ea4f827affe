/*
 * fuzz_rpc.c - libFuzzer target for request framing and JSON-RPC
 * decoding: the input is a byte stream as a client would send it.  It is
 * cut into lines the way conn.c cuts them (LF ends a line, one trailing CR
 * is dropped, empty lines are skipped, a line over the cap is refused),
 * and each line goes through rpc_parse() and then, for an object or each
 * member of a batch, rpc_request(); a reply is built and printed for each
 * as the daemon would.  Checked:
 *
 *   - rpc_parse returns a value or a code and message, never both;
 *     an accepted value is an object or a non-empty array, and the line
 *     was valid UTF-8 without NUL bytes;
 *   - rpc_request's out-params borrow from the request (method a
 *     non-empty string, params an object/array or NULL, id a string,
 *     number or null);
 *   - every printed reply is one line (no newline inside), parses back
 *     and echoes the id.
 *
 * Built by `make fuzz` (see the Makefile) with
 * -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

struct daemon	 D;	/* what otasdird.c would define */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* conn.c's default max_request_bytes is 64 KiB; inputs are smaller. */
#define FUZZ_LINE_MAX	4096

/* Build, print and re-parse a reply echoing id. */
static void
check_reply(const cJSON *id, bool error)
{
	cJSON		*rep, *back, *data;
	const cJSON	*bid;
	char		*s;

	if (error) {
		data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "reason", "overloaded");
		rep = rpc_error(id, RPC_OVERLOADED, "too many", data);
	} else
		rep = rpc_result(id, cJSON_CreateString("pong"));
	if (rep == NULL)
		abort();
	if ((s = rpc_print(rep)) == NULL)
		abort();
	if (strchr(s, '\n') != NULL)
		abort();
	if ((back = cJSON_Parse(s)) == NULL)
		abort();
	bid = cJSON_GetObjectItemCaseSensitive(back, "id");
	if (bid == NULL || (id == NULL && !cJSON_IsNull(bid)) ||
	    (id != NULL && !cJSON_Compare(id, bid, 1)))
		abort();
	cJSON_Delete(back);
	free(s);
	cJSON_Delete(rep);
}

static void
check_request(const cJSON *obj)
{
	const char	*method, *msg = NULL;
	const cJSON	*params, *id;

	if (rpc_request(obj, &method, &params, &id, &msg) != 0) {
		if (msg == NULL)
			abort();
		check_reply(id, true);
		return;
	}
	if (method == NULL || method[0] == '\0')
		abort();
	if (params != NULL && !cJSON_IsObject(params) &&
	    !cJSON_IsArray(params))
		abort();
	if (id != NULL && !cJSON_IsString(id) && !cJSON_IsNumber(id) &&
	    !cJSON_IsNull(id))
		abort();
	check_reply(id, false);
}

/* One line as conn.c hands it to method_dispatch. */
static void
check_line(const char *p, size_t len)
{
	const char	*msg = NULL;
	char		*line;
	int		 code = 0;
	cJSON		*v;

	if ((line = malloc(len + 1)) == NULL)
		abort();
	memcpy(line, p, len);
	line[len] = '\0';
	v = rpc_parse(line, len, &code, &msg);
	if (v == NULL) {
		if (msg == NULL ||
		    (code != RPC_PARSE_ERROR && code != RPC_INVALID_REQUEST))
			abort();
		check_reply(NULL, true);
		free(line);
		return;
	}
	if (!utf8_valid(line, len) || memchr(line, '\0', len) != NULL)
		abort();
	if (cJSON_IsArray(v)) {
		if (v->child == NULL)
			abort();
		for (const cJSON *e = v->child; e != NULL; e = e->next)
			check_request(e);
	} else if (cJSON_IsObject(v))
		check_request(v);
	else
		abort();
	cJSON_Delete(v);
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size;

	while (p < end) {
		const char	*nl = memchr(p, '\n', (size_t)(end - p));
		size_t		 len;

		if (nl == NULL) {
			/* A trailing partial line waits for more bytes (or,
			 * over the cap, closes the connection). */
			break;
		}
		len = (size_t)(nl - p);
		if (len > FUZZ_LINE_MAX)
			break;		/* conn.c: error line, then close */
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > 0)
			check_line(p, len);
		p = nl + 1;
	}
	/* And the whole input as one line, as a client without newlines
	 * would send it. */
	if (size <= FUZZ_LINE_MAX && memchr(data, '\n', size) == NULL &&
	    size > 0)
		check_line((const char *)data, size);
	return 0;
}
