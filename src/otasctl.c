/*
 * otasctl.c - the operators' command-line client for otasdird.
 *
 *   otasctl [--socket PATH] [--json] COMMAND [ARGS]
 *
 * Speaks JSON-RPC 2.0 over the daemon's Unix socket (src/proto.h,
 * docs/protocol.md).  The socket is --socket, else $OTASDIR_SOCKET, else
 * the default path.  Plain output is for people; --json (before the
 * command or among its options) prints the JSON result for scripts.
 * Errors are one line on stderr and a distinct exit status:
 *
 *    0  success
 *    1  any other error (invalid input, internal error, some import rows
 *       failed)
 *    2  usage: bad command line, or a password/file could not be read
 *    3  not found (no such account)
 *    4  permission denied, or the last-super-admin rule
 *    5  seat limit reached
 *    6  directory unavailable, timed out, or daemon overloaded
 *    7  already exists
 *    8  invalid credentials, inactive account, or rate limited (login)
 *    9  aborted: the confirmation was not given (or passwords differ)
 *   10  cannot reach otasdird
 *
 * Passwords never come from the command line: they are read from the
 * terminal without echo, or, with --password-stdin, as one line of
 * standard input.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cJSON.h>

#include "proto.h"
#include "valid.h"

/* Exit statuses (above; docs/protocol.md, "Command line"). */
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

/* Largest import file read. */
#define IMPORT_FILE_MAX		(64L * 1024 * 1024)
/* Accounts per user.list page. */
#define LIST_PAGE		LIST_LIMIT_MAX

struct ctl {
	const char	*socket;
	bool		 json;
	int		 fd;
	FILE		*in;
	int		 next_id;
};

static struct ctl	 C;

static void	die(int, const char *, ...)
		    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
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

static const char *
ctl_err_message(const cJSON *err)
{
	const cJSON	*msg = cJSON_GetObjectItemCaseSensitive(err, "message");

	return cJSON_IsString(msg) ? msg->valuestring : "error";
}

/* Print an error reply (taken over) and exit with its status. */
static void __attribute__((noreturn))
ctl_die_error(cJSON *err)
{
	int	 code = ctl_exit_code(err);

	if (C.json) {
		char	*o = cJSON_Print(err);

		fprintf(stderr, "%s\n", o != NULL ? o : "");
		free(o);
	}
	die(code, "%s", ctl_err_message(err));
}

/*
 * Call method with params (taken over; may be NULL).  Returns the result
 * (caller frees), or NULL with *errp set to the error object (caller
 * frees).  Exits if otasdird cannot be reached or answers nonsense.
 */
static cJSON *
ctl_rpc(const char *method, cJSON *params, cJSON **errp)
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
	/* The request may hold a password. */
	explicit_bzero(s, (size_t)n);
	free(s);
	if ((n = getline(&line, &cap, C.in)) <= 0)
		die(EXIT_CONNECT, "otasdird closed the connection");
	if ((rep = cJSON_ParseWithLength(line, (size_t)n)) == NULL)
		die(EXIT_ERROR, "cannot parse the reply from otasdird");
	free(line);
	if ((err = cJSON_DetachItemFromObjectCaseSensitive(rep, "error")) !=
	    NULL) {
		cJSON_Delete(rep);
		*errp = err;
		return NULL;
	}
	res = cJSON_DetachItemFromObjectCaseSensitive(rep, "result");
	cJSON_Delete(rep);
	if (res == NULL)
		die(EXIT_ERROR, "reply without a result");
	*errp = NULL;
	return res;
}

/* ctl_rpc, exiting on an error reply. */
static cJSON *
ctl_call(const char *method, cJSON *params)
{
	cJSON	*res, *err;

	if ((res = ctl_rpc(method, params, &err)) == NULL)
		ctl_die_error(err);
	return res;
}

/* ------------------------------------------------------------------ */
/* output */

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

/* A member of o as text: the string, or "" (entries made by other tools
 * may lack one). */
static const char *
str_of(const cJSON *o, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* s with control characters replaced by '?', so that a name stored by
 * some other LDAP client cannot drive the terminal.  malloc'd. */
static char *
safe_text(const char *s)
{
	char	*t = strdup(s);

	if (t == NULL)
		die(EXIT_ERROR, "out of memory");
	for (unsigned char *p = (unsigned char *)t; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return t;
}

static const char *
status_label(const char *s)
{
	if (strcmp(s, STATUS_ACTIVE) == 0)
		return "Active";
	if (strcmp(s, STATUS_INACTIVE) == 0)
		return "Inactive";
	return s;
}

static const char *
role_label(const char *s)
{
	if (strcmp(s, ROLE_NAME_SUPERADMIN) == 0)
		return "Super admin";
	if (strcmp(s, ROLE_NAME_USER) == 0)
		return "User";
	return s;
}

/* One account as labelled lines. */
static void
print_account(const cJSON *a)
{
	static const struct {
		const char	*label, *name;
		const char	*(*fmt)(const char *);
	} rows[] = {
		{ "Username", "username", NULL },
		{ "Full Name", "full_name", NULL },
		{ "Email", "email", NULL },
		{ "Status", "status", status_label },
		{ "Role", "role", role_label },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char	*v = str_of(a, rows[i].name);
		char		*t = safe_text(rows[i].fmt != NULL ?
		    rows[i].fmt(v) : v);

		printf("%-10s %s\n", rows[i].label, t);
		free(t);
	}
}

#define TABLE_COLS	4

/* Print s and pad it to width columns (as a terminal counts them). */
static void
print_cell(const char *s, size_t width, bool last)
{
	size_t	 w = utf8_width(s);

	fputs(s, stdout);
	if (last)
		return;
	for (; w < width + 2; w++)
		putchar(' ');
}

/*
 * The accounts as a table like the platform's overview page: Username,
 * Full Name, Email, Status; columns two spaces apart, aligned by display
 * width (wide CJK characters take two columns, combining marks none).
 */
static void
print_table(const cJSON *users)
{
	static const char *const head[TABLE_COLS] = {
		"Username", "Full Name", "Email", "Status",
	};
	size_t		 width[TABLE_COLS], n = 0, i = 0;
	char		*(*cells)[TABLE_COLS];
	const cJSON	*u;

	n = (size_t)cJSON_GetArraySize(users);
	if ((cells = calloc(n + 1, sizeof(*cells))) == NULL)
		die(EXIT_ERROR, "out of memory");
	for (size_t c = 0; c < TABLE_COLS; c++)
		width[c] = utf8_width(head[c]);
	cJSON_ArrayForEach(u, users) {
		cells[i][0] = safe_text(str_of(u, "username"));
		cells[i][1] = safe_text(str_of(u, "full_name"));
		cells[i][2] = safe_text(str_of(u, "email"));
		cells[i][3] = safe_text(status_label(str_of(u, "status")));
		for (size_t c = 0; c < TABLE_COLS; c++) {
			size_t	 w = utf8_width(cells[i][c]);

			if (w > width[c])
				width[c] = w;
		}
		i++;
	}
	for (size_t c = 0; c < TABLE_COLS; c++)
		print_cell(head[c], width[c], c == TABLE_COLS - 1);
	putchar('\n');
	for (i = 0; i < n; i++) {
		for (size_t c = 0; c < TABLE_COLS; c++) {
			print_cell(cells[i][c], width[c], c == TABLE_COLS - 1);
			free(cells[i][c]);
		}
		putchar('\n');
	}
	free(cells);
}

/* ------------------------------------------------------------------ */
/* passwords and confirmations */

static int		 tty_fd = -1;
static struct termios	 tty_saved;
static bool		 tty_echo_off;

static void
tty_restore(void)
{
	if (tty_echo_off) {
		(void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		tty_echo_off = false;
	}
}

/* A signal while echo is off: turn it back on, then die of the signal. */
static void
tty_signal(int sig)
{
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from f without its newline; NULL at EOF.  malloc'd. */
static char *
read_line(FILE *f)
{
	char	*line = NULL;
	size_t	 cap = 0;
	ssize_t	 n;

	if ((n = getline(&line, &cap, f)) < 0) {
		free(line);
		return NULL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	return line;
}

static void
secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* One password from the terminal, without echo.  malloc'd. */
static char *
tty_password(const char *prompt)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
	    SIGTSTP };
	struct termios	 t;
	FILE		*f;
	char		*pw;
	int		 fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
		die(EXIT_USAGE, "no terminal to read the password from; use "
		    "--password-stdin");
	if ((f = fdopen(fd, "r+")) == NULL)
		die(EXIT_ERROR, "fdopen: %s", strerror(errno));
	tty_fd = fd;
	if (tcgetattr(fd, &tty_saved) == 0) {
		t = tty_saved;
		t.c_lflag &= ~(tcflag_t)ECHO;
		t.c_lflag |= ECHONL;
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], tty_signal);
		if (tcsetattr(fd, TCSAFLUSH, &t) == 0)
			tty_echo_off = true;
	}
	fputs(prompt, f);
	fflush(f);
	pw = read_line(f);
	tty_restore();
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	fclose(f);
	tty_fd = -1;
	if (pw == NULL)
		die(EXIT_ABORTED, "no password given");
	return pw;
}

/* One password as one line of standard input.  malloc'd. */
static char *
stdin_password(void)
{
	char	*pw = read_line(stdin);

	if (pw == NULL)
		die(EXIT_USAGE, "--password-stdin: no password on standard "
		    "input");
	return pw;
}

/*
 * A new password for user, typed twice on the terminal.  With
 * allow_empty, an empty first answer means "no password" (NULL).
 */
static char *
tty_new_password(const char *user, bool allow_empty)
{
	char	 prompt[160];
	char	*pw, *again;

	snprintf(prompt, sizeof(prompt), "New password for %s%s: ", user,
	    allow_empty ? " (empty: none)" : "");
	pw = tty_password(prompt);
	if (pw[0] == '\0' && allow_empty) {
		free(pw);
		return NULL;
	}
	again = tty_password("Retype the password: ");
	if (strcmp(pw, again) != 0) {
		secret_free(pw);
		secret_free(again);
		die(EXIT_ABORTED, "the passwords do not match; nothing changed");
	}
	secret_free(again);
	return pw;
}

/* ------------------------------------------------------------------ */
/* option parsing for commands */

/* Options every command takes. */
#define COMMON_OPTS \
	{ "json", no_argument, NULL, 'j' }, \
	{ "help", no_argument, NULL, 'h' }

/* A row of the command table (at the end of the file). */
struct command {
	const char	*name;		/* one or two words */
	int		(*fn)(int, char **);
	const char	*usage;
};

static const struct command *cmd_current;

static void __attribute__((noreturn))
cmd_usage(void)
{
	die(EXIT_USAGE, "usage: otasctl %s", cmd_current->usage);
}

/*
 * getopt_long over a command's words (argv[0] is the command's last
 * word).  Handles the common options; returns the command's own option
 * characters, -1 at the end.
 */
static int
cmd_getopt(int argc, char **argv, const struct option *opts)
{
	int	 ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			C.json = true;
			continue;
		case 'h':
			printf("usage: otasctl %s\n", cmd_current->usage);
			exit(EXIT_OK);
		case '?':
		case ':':
			cmd_usage();
		default:
			return ch;
		}
	}
	return -1;
}

/* After options: exactly nargs operands, returned at argv + optind. */
static char **
cmd_operands(int argc, char **argv, int nargs)
{
	if (argc - optind != nargs)
		cmd_usage();
	return argv + optind;
}

/* Check a username on this side too, for a clear message before any
 * prompt. */
static const char *
cmd_username(const char *u)
{
	const char	*msg = valid_username(u, strlen(u));

	if (msg != NULL)
		die(EXIT_USAGE, "invalid username '%s': %s", u, msg);
	return u;
}

static cJSON *
params_new(void)
{
	cJSON	*p = cJSON_CreateObject();

	if (p == NULL)
		die(EXIT_ERROR, "out of memory");
	return p;
}

/* Print a result: JSON, or an account, or fields. */
static void
print_result(const cJSON *res, bool account)
{
	if (C.json || !cJSON_IsObject(res))
		print_json(res);
	else if (account)
		print_account(res);
	else
		print_fields(res);
}

/* ------------------------------------------------------------------ */
/* commands */

static int	ctl_run(int argc, char **argv);

static int
cmd_simple(const char *method, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { NULL, 0, 0, 0 } };
	cJSON	*res;

	if (cmd_getopt(argc, argv, opts) != -1)
		cmd_usage();
	(void)cmd_operands(argc, argv, 0);
	res = ctl_call(method, NULL);
	print_result(res, false);
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

static int
cmd_license(int argc, char **argv)
{
	return cmd_simple("license.get", argc, argv);
}

/*
 * login [--password-stdin] USER [COMMAND ...]: log in as an account
 * (auth.login).  The identity lasts as long as the connection, which is
 * this process: with a COMMAND, it runs as that account (e.g. `otasctl
 * login alice user passwd alice`); without, the account is printed.
 */
static int
cmd_login(int argc, char **argv)
{
	const char	*user = NULL;
	bool		 from_stdin = false;
	char		*pw, prompt[128];
	cJSON		*p, *res;
	int		 i;

	for (i = 1; i < argc && user == NULL; i++) {
		if (strcmp(argv[i], "--password-stdin") == 0)
			from_stdin = true;
		else if (strcmp(argv[i], "--json") == 0)
			C.json = true;
		else if (argv[i][0] == '-')
			cmd_usage();
		else
			user = cmd_username(argv[i]);
	}
	if (i < argc && strcmp(argv[i], "--password-stdin") == 0) {
		from_stdin = true;
		i++;
	}
	if (user == NULL)
		cmd_usage();
	snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
	pw = from_stdin ? stdin_password() : tty_password(prompt);
	p = params_new();
	cJSON_AddStringToObject(p, "username", user);
	cJSON_AddStringToObject(p, "password", pw);
	secret_free(pw);
	res = ctl_call("auth.login", p);
	if (i < argc) {
		cJSON_Delete(res);
		return ctl_run(argc - i, argv + i);
	}
	print_result(res, true);
	cJSON_Delete(res);
	return EXIT_OK;
}

/* user list [--status active|inactive] [--search TEXT]: every account,
 * page by page. */
static int
cmd_user_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "search", required_argument, NULL, 'q' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	const char	*status = NULL, *search = NULL;
	cJSON		*all, *res, *users, *next, *out;
	char		*cursor = NULL;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1) {
		if (ch == 's')
			status = optarg;
		else if (ch == 'q')
			search = optarg;
	}
	(void)cmd_operands(argc, argv, 0);
	if (status != NULL && valid_status(status, strlen(status)) != NULL)
		die(EXIT_USAGE, "--status must be active or inactive");
	if ((all = cJSON_CreateArray()) == NULL)
		die(EXIT_ERROR, "out of memory");
	do {
		cJSON	*p = params_new();

		if (status != NULL)
			cJSON_AddStringToObject(p, "status", status);
		if (search != NULL)
			cJSON_AddStringToObject(p, "search", search);
		cJSON_AddNumberToObject(p, "limit", LIST_PAGE);
		if (cursor != NULL)
			cJSON_AddStringToObject(p, "cursor", cursor);
		free(cursor);
		cursor = NULL;
		res = ctl_call("user.list", p);
		users = cJSON_GetObjectItemCaseSensitive(res, "users");
		while (cJSON_IsArray(users) && users->child != NULL)
			cJSON_AddItemToArray(all,
			    cJSON_DetachItemViaPointer(users, users->child));
		next = cJSON_GetObjectItemCaseSensitive(res, "next_cursor");
		if (cJSON_IsString(next) &&
		    (cursor = strdup(next->valuestring)) == NULL)
			die(EXIT_ERROR, "out of memory");
		cJSON_Delete(res);
	} while (cursor != NULL);
	if (C.json) {
		if ((out = cJSON_CreateObject()) == NULL)
			die(EXIT_ERROR, "out of memory");
		cJSON_AddItemToObject(out, "users", all);
		cJSON_AddNullToObject(out, "next_cursor");
		print_json(out);
		cJSON_Delete(out);
	} else {
		print_table(all);
		cJSON_Delete(all);
	}
	return EXIT_OK;
}

/* user show USER */
static int
cmd_user_show(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { NULL, 0, 0, 0 } };
	char	**arg;
	cJSON	 *p, *res;

	if (cmd_getopt(argc, argv, opts) != -1)
		cmd_usage();
	arg = cmd_operands(argc, argv, 1);
	p = params_new();
	cJSON_AddStringToObject(p, "username", cmd_username(arg[0]));
	res = ctl_call("user.get", p);
	print_result(res, true);
	cJSON_Delete(res);
	return EXIT_OK;
}

/*
 * user add USER --name NAME --email EMAIL [--inactive] [--superadmin]
 * [--password-stdin].  The password: with --password-stdin, one line of
 * standard input; otherwise, if standard input is a terminal, typed
 * twice without echo (empty: none); otherwise none (set one later with
 * `user passwd`).
 */
static int
cmd_user_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "email", required_argument, NULL, 'e' },
		{ "inactive", no_argument, NULL, 'i' },
		{ "superadmin", no_argument, NULL, 'S' },
		{ "password-stdin", no_argument, NULL, 'p' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	const char	*name = NULL, *email = NULL, *user;
	bool		 inactive = false, superadmin = false, pwstdin = false;
	char		*pw = NULL;
	cJSON		*p, *res;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 'i':
			inactive = true;
			break;
		case 'S':
			superadmin = true;
			break;
		case 'p':
			pwstdin = true;
			break;
		}
	}
	user = cmd_username(cmd_operands(argc, argv, 1)[0]);
	if (name == NULL || email == NULL)
		cmd_usage();
	if (pwstdin)
		pw = stdin_password();
	else if (isatty(STDIN_FILENO))
		pw = tty_new_password(user, true);
	p = params_new();
	cJSON_AddStringToObject(p, "username", user);
	cJSON_AddStringToObject(p, "full_name", name);
	cJSON_AddStringToObject(p, "email", email);
	if (pw != NULL)
		cJSON_AddStringToObject(p, "password", pw);
	secret_free(pw);
	if (inactive)
		cJSON_AddStringToObject(p, "status", STATUS_INACTIVE);
	if (superadmin)
		cJSON_AddStringToObject(p, "role", ROLE_NAME_SUPERADMIN);
	res = ctl_call("user.create", p);
	print_result(res, true);
	cJSON_Delete(res);
	return EXIT_OK;
}

/* user.update with params p (taken over); prints the account. */
static int
cmd_update(cJSON *p)
{
	cJSON	*res = ctl_call("user.update", p);

	print_result(res, true);
	cJSON_Delete(res);
	return EXIT_OK;
}

/* user edit USER [--name NAME] [--email EMAIL] [--role superadmin|user] */
static int
cmd_user_edit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "email", required_argument, NULL, 'e' },
		{ "role", required_argument, NULL, 'r' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	const char	*name = NULL, *email = NULL, *role = NULL;
	cJSON		*p;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1) {
		if (ch == 'n')
			name = optarg;
		else if (ch == 'e')
			email = optarg;
		else if (ch == 'r')
			role = optarg;
	}
	p = params_new();
	cJSON_AddStringToObject(p, "username",
	    cmd_username(cmd_operands(argc, argv, 1)[0]));
	if (name == NULL && email == NULL && role == NULL)
		die(EXIT_USAGE, "nothing to change: give --name, --email or "
		    "--role");
	if (role != NULL && valid_role(role, strlen(role)) != NULL)
		die(EXIT_USAGE, "--role must be superadmin or user");
	if (name != NULL)
		cJSON_AddStringToObject(p, "full_name", name);
	if (email != NULL)
		cJSON_AddStringToObject(p, "email", email);
	if (role != NULL)
		cJSON_AddStringToObject(p, "role", role);
	return cmd_update(p);
}

static int
cmd_set_status(int argc, char **argv, const char *status)
{
	static const struct option opts[] = { COMMON_OPTS, { NULL, 0, 0, 0 } };
	cJSON	*p;

	if (cmd_getopt(argc, argv, opts) != -1)
		cmd_usage();
	p = params_new();
	cJSON_AddStringToObject(p, "username",
	    cmd_username(cmd_operands(argc, argv, 1)[0]));
	cJSON_AddStringToObject(p, "status", status);
	return cmd_update(p);
}

static int
cmd_user_activate(int argc, char **argv)
{
	return cmd_set_status(argc, argv, STATUS_ACTIVE);
}

static int
cmd_user_deactivate(int argc, char **argv)
{
	return cmd_set_status(argc, argv, STATUS_INACTIVE);
}

/*
 * user delete USER [--yes]: irreversible, so without --yes the operator
 * types the username again (read from standard input, the terminal when
 * run interactively); anything else aborts with exit 9, nothing deleted.
 */
static int
cmd_user_delete(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "yes", no_argument, NULL, 'y' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	const char	*user;
	bool		 yes = false;
	char		*typed = NULL;
	cJSON		*p, *res;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1)
		if (ch == 'y')
			yes = true;
	user = cmd_username(cmd_operands(argc, argv, 1)[0]);
	if (!yes) {
		fprintf(stderr, "Deleting %s cannot be undone.  Type the "
		    "username to confirm: ", user);
		fflush(stderr);
		typed = read_line(stdin);
		if (typed == NULL || strcmp(typed, user) != 0) {
			free(typed);
			if (isatty(STDIN_FILENO) == 0)
				fputc('\n', stderr);
			die(EXIT_ABORTED, "confirmation did not match; %s was "
			    "not deleted", user);
		}
	}
	p = params_new();
	cJSON_AddStringToObject(p, "username", user);
	cJSON_AddStringToObject(p, "confirm", yes ? user : typed);
	free(typed);
	res = ctl_call("user.delete", p);
	if (C.json)
		print_json(res);
	else
		printf("deleted %s\n", user);
	cJSON_Delete(res);
	return EXIT_OK;
}

/* user passwd USER [--password-stdin] */
static int
cmd_user_passwd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "password-stdin", no_argument, NULL, 'p' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	const char	*user;
	bool		 pwstdin = false;
	char		*pw;
	cJSON		*p, *res;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1)
		if (ch == 'p')
			pwstdin = true;
	user = cmd_username(cmd_operands(argc, argv, 1)[0]);
	pw = pwstdin ? stdin_password() : tty_new_password(user, false);
	p = params_new();
	cJSON_AddStringToObject(p, "username", user);
	cJSON_AddStringToObject(p, "password", pw);
	secret_free(pw);
	res = ctl_call("user.set_password", p);
	if (C.json)
		print_json(res);
	else
		printf("password of %s set\n", user);
	cJSON_Delete(res);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* user import: CSV (RFC 4180, header row) or JSON lines */

/* The rows read from a file, with the line each starts on. */
struct import {
	const char	*file;
	cJSON		*users;
	size_t		*lines;
	size_t		 n, cap;
};

static void
import_add(struct import *im, cJSON *row, size_t line)
{
	if (im->n == im->cap) {
		size_t	 ncap = im->cap ? im->cap * 2 : 64;
		size_t	*nl = realloc(im->lines, ncap * sizeof(*nl));

		if (nl == NULL)
			die(EXIT_ERROR, "out of memory");
		im->lines = nl;
		im->cap = ncap;
	}
	im->lines[im->n++] = line;
	cJSON_AddItemToArray(im->users, row);
}

/* The whole file (or standard input for "-"), NUL-terminated. */
static char *
import_slurp(const char *file, size_t *lenp)
{
	FILE	*f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	char	*buf = NULL;
	size_t	 len = 0, cap = 0, n;

	if (f == NULL)
		die(EXIT_USAGE, "%s: %s", file, strerror(errno));
	do {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			if ((long)cap > IMPORT_FILE_MAX + 65536 ||
			    (buf = realloc(buf, cap + 1)) == NULL)
				die(EXIT_USAGE, "%s: too large (at most %ld "
				    "bytes)", file, IMPORT_FILE_MAX);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f))
		die(EXIT_USAGE, "%s: %s", file, strerror(errno));
	if (f != stdin)
		fclose(f);
	if (memchr(buf, '\0', len) != NULL)
		die(EXIT_USAGE, "%s: holds NUL bytes (not a text file)", file);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* One CSV record's fields. */
struct csv_rec {
	char	**v;
	size_t	  n, cap;
};

static void
csv_push(struct csv_rec *r, char *field)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		if ((r->v = realloc(r->v, r->cap * sizeof(*r->v))) == NULL)
			die(EXIT_ERROR, "out of memory");
	}
	r->v[r->n++] = field;
}

static void
csv_clear(struct csv_rec *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	r->n = 0;
}

/*
 * Read one RFC 4180 record at *pp into rec; *line counts lines (quoted
 * fields may span several).  Records end with LF or CRLF or the end of
 * the text.  Returns false at the end of the text.
 */
static bool
csv_record(const char *file, const char **pp, size_t *line,
    struct csv_rec *rec)
{
	const char	*p = *pp;
	size_t		 start = *line;

	csv_clear(rec);
	if (*p == '\0')
		return false;
	for (;;) {
		char	*field;
		size_t	 cap = 16, n = 0;

		if ((field = malloc(cap)) == NULL)
			die(EXIT_ERROR, "out of memory");
		if (*p == '"') {
			for (p++;; p++) {
				if (*p == '\0')
					die(EXIT_USAGE, "%s:%zu: a quoted field "
					    "is not closed", file, start);
				if (*p == '"' && p[1] == '"')
					p++;
				else if (*p == '"') {
					p++;
					break;
				} else if (*p == '\n')
					(*line)++;
				if (n + 2 > cap &&
				    (field = realloc(field, cap *= 2)) == NULL)
					die(EXIT_ERROR, "out of memory");
				field[n++] = *p;
			}
			if (*p != ',' && *p != '\n' && *p != '\0' &&
			    !(*p == '\r' && p[1] == '\n'))
				die(EXIT_USAGE, "%s:%zu: text after a closing "
				    "quote", file, *line);
		} else {
			for (; *p != ',' && *p != '\n' && *p != '\0' &&
			    !(*p == '\r' && p[1] == '\n'); p++) {
				if (*p == '"')
					die(EXIT_USAGE, "%s:%zu: a quote inside "
					    "an unquoted field (quote the whole "
					    "field and double the quote)", file,
					    *line);
				if (n + 2 > cap &&
				    (field = realloc(field, cap *= 2)) == NULL)
					die(EXIT_ERROR, "out of memory");
				field[n++] = *p;
			}
		}
		field[n] = '\0';
		csv_push(rec, field);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\r')
			p++;
		if (*p == '\n') {
			p++;
			(*line)++;
		}
		break;
	}
	*pp = p;
	return true;
}

/* A CSV file with a header row naming the columns. */
static void
import_csv(struct import *im, const char *text)
{
	static const char *const known[] = {
		"username", "full_name", "email", "password", "status", "role",
	};
	struct csv_rec	 rec = { NULL, 0, 0 };
	const char	*p = text;
	const char	**cols;
	size_t		 ncols, line = 1, start;

	if (!csv_record(im->file, &p, &line, &rec))
		die(EXIT_USAGE, "%s: empty file", im->file);
	ncols = rec.n;
	if ((cols = calloc(ncols, sizeof(*cols))) == NULL)
		die(EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < ncols; i++) {
		char	*c = rec.v[i];
		size_t	 k;

		/* Names may carry spaces around them. */
		while (*c == ' ')
			c++;
		c[strcspn(c, " ")] = '\0';
		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strcmp(c, known[k]) == 0)
				break;
		if (k == sizeof(known) / sizeof(known[0]))
			die(EXIT_USAGE, "%s:1: unknown column '%s' (columns: "
			    "username, full_name, email, and optionally "
			    "password, status, role)", im->file, c);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cols[j], known[k]) == 0)
				die(EXIT_USAGE, "%s:1: column '%s' appears "
				    "twice", im->file, c);
		cols[i] = known[k];
	}
	for (size_t k = 0; k < 3; k++) {
		size_t	 i;

		for (i = 0; i < ncols; i++)
			if (strcmp(cols[i], known[k]) == 0)
				break;
		if (i == ncols)
			die(EXIT_USAGE, "%s:1: the header has no '%s' column",
			    im->file, known[k]);
	}
	for (start = line; csv_record(im->file, &p, &line, &rec);
	    start = line) {
		cJSON	*row;

		/* A blank line is no record. */
		if (rec.n == 1 && rec.v[0][0] == '\0')
			continue;
		if (rec.n != ncols)
			die(EXIT_USAGE, "%s:%zu: %zu fields, but the header has "
			    "%zu", im->file, start, rec.n, ncols);
		if ((row = cJSON_CreateObject()) == NULL)
			die(EXIT_ERROR, "out of memory");
		for (size_t i = 0; i < ncols; i++) {
			bool	 optional = strcmp(cols[i], "password") == 0 ||
			    strcmp(cols[i], "status") == 0 ||
			    strcmp(cols[i], "role") == 0;

			if (optional && rec.v[i][0] == '\0')
				continue;
			cJSON_AddStringToObject(row, cols[i], rec.v[i]);
			if (strcmp(cols[i], "password") == 0)
				explicit_bzero(rec.v[i], strlen(rec.v[i]));
		}
		import_add(im, row, start);
	}
	csv_clear(&rec);
	free(rec.v);
	free(cols);
}

/* JSON lines: one object per non-blank line. */
static void
import_jsonl(struct import *im, char *text)
{
	size_t	 line = 1;

	for (char *p = text, *nl; *p != '\0'; p = nl + 1, line++) {
		const char	*end;
		cJSON		*row;
		char		*q;

		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		for (q = p; q < nl && (*q == ' ' || *q == '\t' || *q == '\r');
		    q++)
			;
		if (q == nl) {
			if (*nl == '\0')
				break;
			continue;
		}
		row = cJSON_ParseWithLengthOpts(p, (size_t)(nl - p), &end, 0);
		if (row == NULL || !cJSON_IsObject(row))
			die(EXIT_USAGE, "%s:%zu: not a JSON object", im->file,
			    line);
		for (; end < nl && (*end == ' ' || *end == '\t' ||
		    *end == '\r'); end++)
			;
		if (end != nl)
			die(EXIT_USAGE, "%s:%zu: text after the JSON object",
			    im->file, line);
		import_add(im, row, line);
		if (*nl == '\0')
			break;
	}
}

/* The file line of row index i, for messages. */
static size_t
import_line(const struct import *im, double index)
{
	if (index < 0 || index >= (double)im->n)
		return 0;
	return im->lines[(size_t)index];
}

/* An import refused for invalid rows: each on its own line. */
static void __attribute__((noreturn))
import_invalid(const struct import *im, cJSON *err)
{
	const cJSON	*data = cJSON_GetObjectItemCaseSensitive(err, "data");
	const cJSON	*rows = cJSON_GetObjectItemCaseSensitive(data, "rows");
	const cJSON	*nbad = cJSON_GetObjectItemCaseSensitive(data,
	    "invalid_rows");
	const cJSON	*row;

	if (C.json) {
		char	*o = cJSON_Print(err);

		fprintf(stderr, "%s\n", o != NULL ? o : "");
		free(o);
	}
	cJSON_ArrayForEach(row, rows) {
		const cJSON	*idx = cJSON_GetObjectItemCaseSensitive(row,
		    "index");
		char		*msg = safe_text(str_of(row, "message"));

		fprintf(stderr, "%s:%zu: %s\n", im->file, cJSON_IsNumber(idx) ?
		    import_line(im, idx->valuedouble) : 0, msg);
		free(msg);
	}
	die(EXIT_ERROR, "%s: %.0f of %zu rows are invalid; nothing was "
	    "imported", im->file, cJSON_IsNumber(nbad) ? nbad->valuedouble :
	    0.0, im->n);
}

/* user import FILE [--dry-run] */
static int
cmd_user_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		COMMON_OPTS, { NULL, 0, 0, 0 },
	};
	struct import	 im = { NULL, NULL, NULL, 0, 0 };
	const cJSON	*results, *r;
	bool		 dry = false;
	char		*text, *t;
	cJSON		*p, *res, *err;
	size_t		 len, failed = 0, i = 0;
	int		 ch;

	while ((ch = cmd_getopt(argc, argv, opts)) != -1)
		if (ch == 'n')
			dry = true;
	im.file = cmd_operands(argc, argv, 1)[0];
	text = import_slurp(im.file, &len);
	if ((im.users = cJSON_CreateArray()) == NULL)
		die(EXIT_ERROR, "out of memory");
	t = text;
	if (strncmp(t, "\xef\xbb\xbf", 3) == 0)	/* a UTF-8 BOM */
		t += 3;
	if (t[strspn(t, " \t\r\n")] == '{')
		import_jsonl(&im, t);
	else
		import_csv(&im, t);
	explicit_bzero(text, len);
	free(text);
	p = params_new();
	cJSON_AddItemToObject(p, "users", im.users);
	if (dry)
		cJSON_AddTrueToObject(p, "dry_run");
	if ((res = ctl_rpc("user.import", p, &err)) == NULL) {
		const cJSON	*data = cJSON_GetObjectItemCaseSensitive(err,
		    "data");

		if (cJSON_GetObjectItemCaseSensitive(data, "rows") != NULL)
			import_invalid(&im, err);
		ctl_die_error(err);
	}
	results = cJSON_GetObjectItemCaseSensitive(res, "results");
	cJSON_ArrayForEach(r, results) {
		const cJSON	*ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
		const cJSON	*e = cJSON_GetObjectItemCaseSensitive(r,
		    "error");

		if (!cJSON_IsTrue(ok)) {
			char	*msg = safe_text(str_of(e, "message"));

			fprintf(stderr, "%s:%zu: %s: %s\n", im.file,
			    import_line(&im, (double)i), str_of(r, "username"),
			    msg);
			free(msg);
			failed++;
		}
		i++;
	}
	if (C.json)
		print_json(res);
	else if (dry)
		printf("dry run: %zu accounts would be created; nothing was "
		    "changed\n", im.n);
	else
		printf("created %zu of %zu accounts\n", im.n - failed, im.n);
	cJSON_Delete(res);
	free(im.lines);
	if (failed > 0)
		die(EXIT_ERROR, "%zu of %zu accounts could not be created",
		    failed, im.n);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */

static const struct command commands[] = {
	{ "status", cmd_status, "status" },
	{ "ping", cmd_ping, "ping" },
	{ "whoami", cmd_whoami, "whoami" },
	{ "license", cmd_license, "license" },
	{ "login", cmd_login, "login [--password-stdin] USER [COMMAND ...]" },
	{ "user list", cmd_user_list,
	    "user list [--status active|inactive] [--search TEXT]" },
	{ "user show", cmd_user_show, "user show USER" },
	{ "user add", cmd_user_add, "user add USER --name NAME --email EMAIL "
	    "[--inactive] [--superadmin] [--password-stdin]" },
	{ "user edit", cmd_user_edit, "user edit USER [--name NAME] "
	    "[--email EMAIL] [--role superadmin|user]" },
	{ "user activate", cmd_user_activate, "user activate USER" },
	{ "user deactivate", cmd_user_deactivate, "user deactivate USER" },
	{ "user import", cmd_user_import, "user import FILE [--dry-run]" },
	{ "user delete", cmd_user_delete, "user delete USER [--yes]" },
	{ "user passwd", cmd_user_passwd,
	    "user passwd USER [--password-stdin]" },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: otasctl [--socket PATH] [--json] COMMAND\n"
	    "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].usage);
}

/* Does the command row name match argv's first word(s)?  Returns how
 * many words it takes (1 or 2), or 0. */
static int
cmd_match(const struct command *c, int argc, char **argv)
{
	const char	*sp = strchr(c->name, ' ');
	size_t		 n;

	if (sp == NULL)
		return strcmp(argv[0], c->name) == 0 ? 1 : 0;
	n = (size_t)(sp - c->name);
	if (argc < 2 || strlen(argv[0]) != n ||
	    strncmp(argv[0], c->name, n) != 0 || strcmp(argv[1], sp + 1) != 0)
		return 0;
	return 2;
}

/* Run the command in argv (argv[0] is its first word). */
static int
ctl_run(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		int	 words = cmd_match(&commands[i], argc, argv);

		if (words == 0)
			continue;
		cmd_current = &commands[i];
		argc -= words - 1;
		argv += words - 1;
		optind = 0;	/* GNU: start a fresh scan */
		return commands[i].fn(argc, argv);
	}
	fprintf(stderr, "otasctl: unknown command '%s%s%s'\n", argv[0],
	    argc > 1 && strcmp(argv[0], "user") == 0 ? " " : "",
	    argc > 1 && strcmp(argv[0], "user") == 0 ? argv[1] : "");
	usage(stderr);
	return EXIT_USAGE;
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
	return ctl_run(argc, argv);
}
