/*
 * test_rpc.c - unit tests of the JSON-RPC codec (rpc.c): what it accepts,
 * what it refuses and with which error, and the shape of replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "otasdird.h"

struct daemon	 D;	/* unit tests link every daemon file but main's */

/* Parse s; return the error code, or 0 if it parsed. */
static int
parse_code(const char *s)
{
	const char	*msg = NULL;
	int		 code = 0;
	cJSON		*v = rpc_parse(s, strlen(s), &code, &msg);

	if (v != NULL) {
		cJSON_Delete(v);
		return 0;
	}
	assert_non_null(msg);
	return code;
}

static void
test_parse_accepts(void **state)
{
	assert_int_equal(parse_code(
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}"), 0);
	assert_int_equal(parse_code("[{\"a\":1},{\"b\":2}]"), 0);
	assert_int_equal(parse_code("  {\"s\":\"\\u00e9 \\n \\\"q\\\"\"}  "),
	    0);
	/* 32 levels is the limit */
	{
		char	 buf[80];

		memset(buf, '[', 32);
		memset(buf + 32, ']', 32);
		buf[64] = '\0';
		assert_int_equal(parse_code(buf), 0);
		buf[0] = '[';
		memset(buf, '[', 33);
		memset(buf + 33, ']', 33);
		buf[66] = '\0';
		assert_int_equal(parse_code(buf), RPC_PARSE_ERROR);
	}
}

static void
test_parse_refuses(void **state)
{
	static const struct {
		const char	*in;
		int		 code;
	} cases[] = {
		{ "{", RPC_PARSE_ERROR },
		{ "{\"a\":1} x", RPC_PARSE_ERROR },
		{ "{\"a\":1}{\"b\":2}", RPC_PARSE_ERROR },
		{ "{\"a\":\"\xff\"}", RPC_PARSE_ERROR },
		{ "{\"a\":\"\xc0\xaf\"}", RPC_PARSE_ERROR },
		{ "{\"a\":\"\xed\xa0\x80\"}", RPC_PARSE_ERROR },
		{ "{\"a\":\"x\\u0000y\"}", RPC_PARSE_ERROR },
		{ "{\"a\":1,\"a\":2}", RPC_INVALID_REQUEST },
		{ "{\"o\":{\"k\":1,\"z\":2,\"k\":3}}", RPC_INVALID_REQUEST },
		{ "[{\"a\":1,\"a\":1}]", RPC_INVALID_REQUEST },
		{ "\"str\"", RPC_INVALID_REQUEST },
		{ "12", RPC_INVALID_REQUEST },
		{ "null", RPC_INVALID_REQUEST },
		{ "[]", RPC_INVALID_REQUEST },
		{ "", RPC_PARSE_ERROR },
	};

	for (size_t i = 0; i < nitems(cases); i++) {
		int	 c = parse_code(cases[i].in);

		if (c != cases[i].code)
			fail_msg("case %zu \"%s\": got %d want %d", i,
			    cases[i].in, c, cases[i].code);
	}
}

/* An escaped backslash before "u0000" is not a NUL escape. */
static void
test_parse_escapes(void **state)
{
	assert_int_equal(parse_code("{\"a\":\"\\\\u0000\"}"), 0);
	/* brackets inside strings do not count as nesting */
	{
		char	*s = malloc(300);

		strcpy(s, "{\"a\":\"");
		memset(s + 6, '[', 200);
		strcpy(s + 206, "\"}");
		assert_int_equal(parse_code(s), 0);
		free(s);
	}
}

/* NUL bytes inside the line are refused, not silently cut. */
static void
test_parse_embedded_nul(void **state)
{
	const char	 in[] = "{\"a\":1}\0garbage";
	const char	*msg;
	int		 code;

	assert_null(rpc_parse(in, sizeof(in) - 1, &code, &msg));
	assert_int_equal(code, RPC_PARSE_ERROR);
}

/* The tree whose members req_check's out-params borrow. */
static cJSON	*last;

static int
req_check(const char *s, const char **method, const cJSON **id)
{
	const char	*msg;
	const cJSON	*params;
	int		 code;

	cJSON_Delete(last);
	last = rpc_parse(s, strlen(s), &code, &msg);
	assert_non_null(last);
	return rpc_request(last, method, &params, id, &msg);
}

static void
test_request_shape(void **state)
{
	const char	*m;
	const cJSON	*id;

	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":\"x\","
	    "\"method\":\"a.b\",\"params\":{}}", &m, &id), 0);
	assert_string_equal(m, "a.b");
	assert_string_equal(id->valuestring, "x");

	/* notification: no id */
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"method\":\"a\"}",
	    &m, &id), 0);
	assert_null(id);

	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":[1],"
	    "\"method\":\"a\"}", &m, &id), -1);
	assert_int_equal(req_check("{\"jsonrpc\":2,\"id\":1,"
	    "\"method\":\"a\"}", &m, &id), -1);
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"\"}", &m, &id), -1);
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"a\",\"params\":\"x\"}", &m, &id), -1);
	/* an invalid request still yields its id for the error reply */
	assert_int_equal(req_check("{\"jsonrpc\":\"1.0\",\"id\":7,"
	    "\"method\":\"a\"}", &m, &id), -1);
	assert_non_null(id);
	assert_int_equal(id->valueint, 7);
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"a\",\"bogus\":1}", &m, &id), -1);
	/* an id a double cannot hold would be echoed as null (found by
	 * fuzz_rpc): refused, and the error carries id null */
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":1e400,"
	    "\"method\":\"a\"}", &m, &id), -1);
	assert_null(id);
	assert_int_equal(req_check("{\"jsonrpc\":\"2.0\",\"id\":-31.e500,"
	    "\"method\":\"a\"}", &m, &id), -1);
	assert_null(id);
	cJSON_Delete(last);
	last = NULL;
}

static void
test_replies(void **state)
{
	cJSON	*id = cJSON_CreateString("q\n1");
	cJSON	*r, *data;
	char	*s;

	r = rpc_result(id, cJSON_CreateString("pong"));
	s = rpc_print(r);
	assert_string_equal(s,
	    "{\"jsonrpc\":\"2.0\",\"id\":\"q\\n1\",\"result\":\"pong\"}");
	assert_null(strchr(s, '\n'));
	free(s);
	cJSON_Delete(r);

	data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "reason", "not_found");
	r = rpc_error(NULL, RPC_NOT_FOUND, "no such account", data);
	s = rpc_print(r);
	assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":"
	    "{\"code\":-32002,\"message\":\"no such account\",\"data\":"
	    "{\"reason\":\"not_found\"}}}");
	free(s);
	cJSON_Delete(r);
	cJSON_Delete(id);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_accepts),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_parse_escapes),
		cmocka_unit_test(test_parse_embedded_nul),
		cmocka_unit_test(test_request_shape),
		cmocka_unit_test(test_replies),
	};

	return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
