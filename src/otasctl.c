/*
 * otasctl.c - the operators' command-line client for otasdird.
 *
 *   otasctl [--socket PATH] [--json] COMMAND [ARGS]
 *
 * Speaks JSON-RPC 2.0 over the daemon's Unix socket (src/proto.h).  The
 * socket is --socket, else $OTASDIR_SOCKET, else the default path.  Plain
 * output is for people; --json prints the JSON result for scripts.  Errors
 * are one line on stderr and a distinct exit status (see ctl_exit_code and
 * otasctl(1)).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "proto.h"
#include "valid.h"

/* Exit statuses (documented in otasctl(1)). */
#define EXIT_OK			0
#define EXIT_ERROR		1	/* any other error */
#define EXIT_USAGE		2
#define EXIT_NOT_FOUND		3
#define EXIT_PERMISSION		4
#define EXIT_SEATS		5
#define EXIT_DIRECTORY		6	/* unavailable or timed out */
#define EXIT_EXISTS		7
#define EXIT_CREDENTIALS	8	/* invalid, inactive or throttled */
#define EXIT_ABORTED		9	/* confirmation not given */
#define EXIT_CONNECT		10	/* cannot reach otasdird */

struct ctl {
	const char	*socket;
	bool		 json;
	int		 fd;
	FILE		*in;
	int		 next_id;
};

static struct ctl	 C;

static void
die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fputs("otasctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
ctl_connect(void)
{
	struct sockaddr_un	 sun;

	if (C.fd >= 0)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(C.socket) >= sizeof(sun.sun_path))
		die(EXIT_USAGE, "socket path too long: %s", C.socket);
	strcpy(sun.sun_path, C.socket);
	if ((C.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die(EXIT_CONNECT, "socket: %s", strerror(errno));
	if (connect(C.fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		die(EXIT_CONNECT, "cannot connect to otasdird at %s: %s",
		    C.socket, strerror(errno));
	if ((C.in = fdopen(dup(C.fd), "r")) == NULL)
		die(EXIT_ERROR, "fdopen: %s", strerror(errno));
}

/* The exit status for an error reply. */
static int
ctl_exit_code(const cJSON *err)
{
	const cJSON	*data = cJSON_GetObjectItemCaseSensitive(err, "data");
	const cJSON	*reason = cJSON_GetObjectItemCaseSensitive(data,
	    "reason");
	static const struct {
		const char	*reason;
		int		 code;
	} map[] = {
		{ REASON_NOT_FOUND, EXIT_NOT_FOUND },
		{ REASON_PERMISSION_DENIED, EXIT_PERMISSION },
		{ REASON_LAST_SUPERADMIN, EXIT_PERMISSION },
		{ REASON_SEAT_LIMIT, EXIT_SEATS },
		{ REASON_DIR_UNAVAILABLE, EXIT_DIRECTORY },
		{ REASON_TIMEOUT, EXIT_DIRECTORY },
		{ REASON_OVERLOADED, EXIT_DIRECTORY },
		{ REASON_ALREADY_EXISTS, EXIT_EXISTS },
		{ REASON_INVALID_CREDENTIALS, EXIT_CREDENTIALS },
		{ REASON_ACCOUNT_INACTIVE, EXIT_CREDENTIALS },
		{ REASON_RATE_LIMITED, EXIT_CREDENTIALS },
		{ REASON_CONFIRMATION, EXIT_ABORTED },
	};

	if (cJSON_IsString(reason))
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcmp(reason->valuestring, map[i].reason) == 0)
				return map[i].code;
	return EXIT_ERROR;
}

/*
 * Call method with params (taken over; may be NULL).  Returns the result
 * (caller frees); on an error reply prints it and exits with its status.
 */
static cJSON *
ctl_call(const char *method, cJSON *params)
{
	cJSON		*req, *rep, *res, *err;
	char		*line = NULL, *s;
	size_t		 cap = 0;
	ssize_t		 n;
	int		 id = ++C.next_id;

	ctl_connect();
	if ((req = cJSON_CreateObject()) == NULL)
		die(EXIT_ERROR, "out of memory");
	cJSON_AddStringToObject(req, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", method);
	if (params != NULL)
		cJSON_AddItemToObject(req, "params", params);
	if ((s = cJSON_PrintUnformatted(req)) == NULL)
		die(EXIT_ERROR, "out of memory");
	cJSON_Delete(req);
	n = (ssize_t)strlen(s);
	s[n] = '\n';
	for (ssize_t off = 0; off <= n; ) {
		ssize_t	 w = send(C.fd, s + off, (size_t)(n + 1 - off),
		    MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die(EXIT_CONNECT, "sending to otasdird: %s",
			    strerror(errno));
		off += w;
	}
	free(s);
	if ((n = getline(&line, &cap, C.in)) <= 0)
		die(EXIT_CONNECT, "otasdird closed the connection");
	if ((rep = cJSON_ParseWithLength(line, (size_t)n)) == NULL)
		die(EXIT_ERROR, "cannot parse the reply from otasdird");
	free(line);
	if ((err = cJSON_GetObjectItemCaseSensitive(rep, "error")) != NULL) {
		const cJSON	*msg = cJSON_GetObjectItemCaseSensitive(err,
		    "message");

		if (C.json) {
			char	*o = cJSON_Print(err);

			fprintf(stderr, "%s\n", o);
			free(o);
		}
		die(ctl_exit_code(err), "%s", cJSON_IsString(msg) ?
		    msg->valuestring : "error");
	}
	res = cJSON_DetachItemFromObjectCaseSensitive(rep, "result");
	cJSON_Delete(rep);
	if (res == NULL)
		die(EXIT_ERROR, "reply without a result");
	return res;
}

static void
print_json(const cJSON *v)
{
	char	*s = cJSON_Print(v);

	if (s == NULL)
		die(EXIT_ERROR, "out of memory");
	printf("%s\n", s);
	free(s);
}

/* Print an object's members as "key: value" lines. */
static void
print_fields(const cJSON *o)
{
	for (const cJSON *c = o->child; c != NULL; c = c->next) {
		if (cJSON_IsString(c))
			printf("%s: %s\n", c->string, c->valuestring);
		else {
			char	*s = cJSON_PrintUnformatted(c);

			printf("%s: %s\n", c->string, s != NULL ? s : "?");
			free(s);
		}
	}
}

/* ------------------------------------------------------------------ */
/* commands */

static int
cmd_simple(const char *method, int argc, char **argv)
{
	cJSON	*res;

	if (argc != 1)
		die(EXIT_USAGE, "usage: otasctl %s", argv[0]);
	res = ctl_call(method, NULL);
	if (C.json || !cJSON_IsObject(res))
		print_json(res);
	else
		print_fields(res);
	cJSON_Delete(res);
	return EXIT_OK;
}

static int
cmd_status(int argc, char **argv)
{
	return cmd_simple("server.status", argc, argv);
}

static int
cmd_ping(int argc, char **argv)
{
	return cmd_simple("server.ping", argc, argv);
}

static int
cmd_whoami(int argc, char **argv)
{
	return cmd_simple("auth.whoami", argc, argv);
}

static const struct command {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*usage;
} commands[] = {
	{ "status", cmd_status, "status" },
	{ "ping", cmd_ping, "ping" },
	{ "whoami", cmd_whoami, "whoami" },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: otasctl [--socket PATH] [--json] COMMAND\n"
	    "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].usage);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	 ch;

	C.fd = -1;
	C.socket = getenv("OTASDIR_SOCKET");
	if (C.socket == NULL || C.socket[0] == '\0')
		C.socket = OTASDIR_DEFAULT_SOCKET;
	/* '+': options after the command belong to the command. */
	while ((ch = getopt_long(argc, argv, "+s:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			C.socket = optarg;
			break;
		case 'j':
			C.json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			return commands[i].fn(argc, argv);
	fprintf(stderr, "otasctl: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return EXIT_USAGE;
}
