/*
 * fuzz_params.c - libFuzzer target for params validation: the input is
 * the JSON text of a request's "params".  It is parsed the way the daemon
 * parses requests (rpc_parse, so the same limits apply), and if it is an
 * object, checked against every row of the real dispatch table with
 * params_check() (method.c), then each string param the handlers
 * validate goes through its valid_*() check.  Checked:
 *
 *   - params_check fails with a field and a message, or passes;
 *   - a pass means: no member the row lacks, every required param there
 *     and not null, every typed member of its type, and every integer
 *     whole and within +-2^53 (so the handlers' casts to long long are
 *     defined);
 *   - the valid_* checks accept only what the contract allows (lengths,
 *     UTF-8, no NUL).
 *
 * Built by `make fuzz` with -fsanitize=fuzzer,address,undefined.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

struct daemon	 D;	/* what otasdird.c would define */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct param *
row_param(const struct method *m, const char *name)
{
	for (const struct param *p = m->params; p->name != NULL; p++)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/* What a pass of params_check promises. */
static void
check_pass(const struct method *m, const cJSON *params)
{
	const struct param	*p;
	const cJSON		*v;

	for (v = params->child; v != NULL; v = v->next) {
		if ((p = row_param(m, v->string)) == NULL)
			abort();
		if (cJSON_IsNull(v)) {
			if (p->required)
				abort();
			continue;
		}
		switch (p->type) {
		case P_STRING:
			if (!cJSON_IsString(v) || v->valuestring == NULL)
				abort();
			break;
		case P_INT:
			if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
			    fabs(v->valuedouble) > 9007199254740992.0 ||
			    v->valuedouble != floor(v->valuedouble))
				abort();
			/* what req_int() does */
			(void)(long long)v->valuedouble;
			break;
		case P_BOOL:
			if (!cJSON_IsBool(v))
				abort();
			break;
		case P_ARRAY:
			if (!cJSON_IsArray(v))
				abort();
			break;
		case P_OBJECT:
			if (!cJSON_IsObject(v))
				abort();
			break;
		}
	}
	for (p = m->params; p->name != NULL; p++) {
		v = cJSON_GetObjectItemCaseSensitive(params, p->name);
		if (p->required && (v == NULL || cJSON_IsNull(v)))
			abort();
	}
}

/* The value checks the handlers run on string params. */
static void
check_values(const cJSON *params)
{
	static const struct {
		const char	*name;
		const char	*(*fn)(const char *, size_t);
		size_t		 min, max;
	} checks[] = {
		{ "username", valid_username, 1, USERNAME_MAX },
		{ "confirm", valid_username, 1, USERNAME_MAX },
		{ "email", valid_email, 3, EMAIL_MAX },
		{ "full_name", valid_full_name, 1, FULLNAME_MAX },
		{ "password", valid_password, PASSWORD_MIN, PASSWORD_MAX },
		{ "status", valid_status, 6, 8 },
		{ "role", valid_role, 4, 10 },
		{ "search", valid_search, 1, 256 },
	};

	for (size_t i = 0; i < nitems(checks); i++) {
		const cJSON	*v = cJSON_GetObjectItemCaseSensitive(params,
		    checks[i].name);
		size_t		 len;

		if (!cJSON_IsString(v))
			continue;
		len = strlen(v->valuestring);
		if (checks[i].fn(v->valuestring, len) != NULL)
			continue;
		if (len < checks[i].min || len > checks[i].max ||
		    !utf8_valid(v->valuestring, len))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct method	*tab;
	const char		*msg, *field;
	char			*line, buf[96];
	size_t			 n;
	int			 code;
	cJSON			*params;

	if ((line = malloc(size + 1)) == NULL)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	params = rpc_parse(line, size, &code, &msg);
	free(line);
	if (params == NULL)
		return 0;
	tab = method_table(&n);
	if (cJSON_IsObject(params)) {
		for (size_t i = 0; i < n; i++) {
			field = NULL;
			buf[0] = '\0';
			if (params_check(&tab[i], params, &field, buf,
			    sizeof(buf)) == 0)
				check_pass(&tab[i], params);
			else if (field == NULL || buf[0] == '\0')
				abort();
		}
		check_values(params);
	}
	/* user.import's rows are create params one by one. */
	if (cJSON_IsArray(params))
		for (const cJSON *e = params->child; e != NULL; e = e->next)
			if (cJSON_IsObject(e))
				check_values(e);
	cJSON_Delete(params);
	return 0;
}
