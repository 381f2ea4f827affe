/*
 * loadgen.c - the load generator behind `make bench`.
 *
 * It runs the same work two ways in one invocation and prints one JSON
 * line per way:
 *
 *   otasdird  N connections to otasdird's Unix socket, each pipelining up
 *             to W JSON-RPC requests (one per line) and issuing a new one
 *             as soon as a reply comes back (closed loop, bounded window);
 *   raw       N libldap connections straight to slapd, bound as the same
 *             service DN otasdird uses, each with up to W asynchronous
 *             ldap_*_ext operations in flight: the ceiling of what any
 *             client of this slapd can get;
 *   exec      (create only) one `ldapadd` process per account, forked and
 *             exec'd the way shell tools such as ldapscripts work.
 *
 * Operations and their raw equivalents:
 *
 *   create   user.create            ldap_add_ext of the same entry shape
 *                                   (otasdird also moves a seat counter,
 *                                   so a bare add is the ceiling)
 *   get      user.get               base search of uid=x,people_dn for the
 *                                   account attributes
 *   list     user.list status=active one-level search
 *            limit=100              (otasAccountStatus=active), size limit
 *                                   100 (slapd answers sizeLimitExceeded
 *                                   after the 100th entry: counted as done)
 *   license  license.get            what a naive client does: a paged
 *                                   one-level count of people_dn (page
 *                                   size --page-size), reading each
 *                                   entry's status to count active and
 *                                   inactive; one count in flight per
 *                                   connection (its pages depend on each
 *                                   other)
 *   verify   auth.verify            a simple bind as the account; a bind
 *                                   must be alone on its connection, so
 *                                   raw uses N*W connections, one bind
 *                                   each
 *   ping     server.ping            (otasdird only)
 *
 * and two measurements of otasdird alone:
 *
 *   pinglist server.ping latency (one ping per millisecond, on a
 *            connection of its own) first with the daemon idle, then
 *            while another connection pages through every account with
 *            user.list limit=1000; each runs on its own thread so that
 *            reading the large pages never delays reading a pong;
 *   idle     VmRSS of the otasdird process (--pid) before and after
 *            opening --idle-conns connections (each sends one ping and
 *            waits for its pong, so the daemon has accepted and set up
 *            every one).
 *
 * Timing: a run issues ops for --warmup seconds unmeasured, then measures
 * for --duration seconds (longer if fewer than --min-ops ops have finished
 * by then, at most --max-time seconds in all).  An op counts if it
 * finishes inside the measured window; its latency runs from the moment
 * its request was handed to the socket to the moment its reply was read.
 * Latencies go into a log-linear histogram (HDR style: 128 sub-buckets per
 * power of two, under 0.8% error), from which p50 and p99 are read.
 * Throughput is ops finished in the window / window length.
 * With --pid (the otasdird process), a run through otasdird also reads
 * that process's CPU time (/proc/PID/stat, utime + stime, all threads)
 * and its read- and write-family system calls (/proc/PID/io, syscr and
 * syscw) when the window opens and when it closes, and prints them per
 * op finished in the window: what otasdird itself spends on each op.
 *
 * Why one thread and poll(): on a 2-core machine the generator shares the
 * CPUs with slapd and otasdird.  One thread multiplexing every connection
 * with poll() costs the least CPU and no context switches between
 * generator threads, and drives both ways with the same machinery, so the
 * comparison is fair.  Only pinglist uses two threads (see above).
 * libevent would add nothing here but a dependency; cJSON parses only the
 * replies that are not in the fixed shape otasdird prints.
 *
 * Created accounts are deleted again after each create run (raw
 * asynchronous deletes, not measured), so the directory stays at its
 * seeded size from one run to the next, unless --no-cleanup.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ldap.h>

extern char **environ;

#define USERNAME_MAX	64
#define WINDOW_MAX	200		/* ops in flight per connection */
#define OUTBUF_SIZE	(64 * 1024)	/* WINDOW_MAX requests fit */
#define DRAIN_NS	(15 * NS_PER_S)	/* wait for stragglers at the end */
#define NS_PER_S	1000000000ull
#define NS_PER_MS	1000000ull

#define nitems_(a)	(sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* options */

enum opk {
	OP_CREATE, OP_GET, OP_LIST, OP_LICENSE, OP_VERIFY, OP_PING,
	OP_PINGLIST, OP_IDLE,
	OP_DELETE,		/* internal: removes what a create made */
};

static const char *const op_names[] = {
	"create", "get", "list", "license", "verify", "ping", "pinglist",
	"idle", "delete",
};

enum mode { M_OTASDIRD, M_RAW, M_EXEC };
static const char *const mode_names[] = { "otasdird", "raw", "exec" };

static struct {
	enum opk	 op;
	enum mode	 modes[3];
	unsigned	 nmodes;
	unsigned	 clients;	/* connections (N) */
	unsigned	 window;	/* ops in flight per connection (W) */
	double		 duration;	/* measured seconds */
	double		 warmup;	/* unmeasured seconds first */
	double		 max_time;	/* cap on warmup + measuring */
	unsigned long	 min_ops;
	char		*socket_path;
	char		*uri;
	char		*bind_dn;
	char		*bind_pw;
	char		*bind_pw_file;
	char		*people_dn;
	char		*user_pw;	/* the seeded accounts' password */
	unsigned long	 users;		/* seeded: PREFIX000000 .. */
	char		*prefix;
	unsigned	 inactive_every;
	char		*tag;		/* makes created usernames unique */
	unsigned	 list_limit;
	unsigned	 page_size;	/* raw license count */
	unsigned	 idle_conns;
	pid_t		 pid;		/* otasdird, for idle */
	char		*size_label;	/* copied into the output */
	bool		 cleanup;	/* delete what create made */
} O = {
	.op = OP_GET, .clients = 1, .window = 1, .duration = 2.0,
	.warmup = 0.5, .max_time = 30.0, .min_ops = 1, .users = 1000,
	.prefix = "bulk", .inactive_every = 5, .list_limit = 100,
	.page_size = 1000, .idle_conns = 1000, .size_label = "",
	.cleanup = true,
};

static void	die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list	 ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if ((p = calloc(n, size)) == NULL)
		die("out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		die("out of memory");
	return p;
}

static uint64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* The contents of a secret file, one trailing newline dropped; malloc'd. */
static char *
read_secret(const char *path)
{
	char	 buf[1024];
	size_t	 n;
	FILE	*f;

	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return xstrdup(buf);
}

/* ------------------------------------------------------------------ */
/* latency histogram */

/*
 * Log-linear buckets over nanoseconds: values below 2^7 exactly, above
 * that 128 sub-buckets per power of two.  Reading a percentile gives the
 * middle of its bucket, so the error is below 1/256 of the value.
 */
#define HIST_SUB_BITS	7
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_N		((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t	 n;
	uint64_t	 max;
	uint64_t	 c[HIST_N];
};

static unsigned
hist_index(uint64_t v)
{
	unsigned	 msb, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static void
hist_add(struct hist *h, uint64_t v)
{
	h->c[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* The p-quantile (0 < p <= 1) in nanoseconds, 0 if empty. */
static uint64_t
hist_pct(const struct hist *h, double p)
{
	uint64_t	 rank, seen = 0;
	unsigned	 i, b, sub;
	uint64_t	 lo, width;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_N; i++) {
		if ((seen += h->c[i]) < rank)
			continue;
		if (i < HIST_SUB)
			return i;
		b = i >> HIST_SUB_BITS;
		sub = i & (HIST_SUB - 1);
		lo = (uint64_t)(HIST_SUB + sub) << (b - 1);
		width = 1ull << (b - 1);
		return lo + width / 2 > h->max ? h->max : lo + width / 2;
	}
	return h->max;
}

static double
ns_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* ------------------------------------------------------------------ */
/* usernames */

/* xorshift64*: cheap, and the same sequence for each way of a run. */
static uint64_t	 rng_state;

static void
rng_seed(const char *s)
{
	rng_state = 88172645463325252ull;
	for (; *s != '\0'; s++)
		rng_state = (rng_state ^ (unsigned char)*s) * 0x100000001b3ull;
	if (rng_state == 0)
		rng_state = 1;
}

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* A seeded account, any status (user.get). */
static void
pick_any(char *out, size_t len)
{
	snprintf(out, len, "%s%06lu", O.prefix,
	    (unsigned long)(rng_next() % O.users));
}

/* A seeded active account (auth.verify): the seed makes every
 * inactive_every-th one inactive (tests/integ/slapdenv.py). */
static void
pick_active(char *out, size_t len)
{
	unsigned long	 i = (unsigned long)(rng_next() % O.users);

	if (O.inactive_every > 0 && i % O.inactive_every ==
	    O.inactive_every - 1)
		i = i > 0 ? i - 1 : i + 1;
	snprintf(out, len, "%s%06lu", O.prefix, i);
}

/* A growable list of usernames (what a create run made). */
struct names {
	char		**v;
	size_t		  n, cap, next;	/* next: the delete run's cursor */
};

static void
names_add(struct names *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		if ((l->v = realloc(l->v, l->cap * sizeof(*l->v))) == NULL)
			die("out of memory");
	}
	l->v[l->n++] = xstrdup(s);
}

static void
names_clear(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ */
/* one run: its clock and its tally */

/* One op in flight on a connection. */
struct slot {
	bool		 busy;
	int		 msgid;		/* raw: the LDAP message id */
	uint64_t	 t0;		/* when the request was sent */
	unsigned long	 entries;	/* raw searches: entries seen */
	unsigned long	 active;	/* raw license: active ones */
	struct berval	 cookie;	/* raw license: paged cookie */
	char		 user[USERNAME_MAX + 1];
};

struct run {
	enum opk	 op;
	enum mode	 mode;
	unsigned	 conns, window;
	uint64_t	 t_begin;	/* first op */
	uint64_t	 t_meas;	/* warm-up over */
	uint64_t	 t_min_end;	/* duration over */
	uint64_t	 t_hard;	/* max_time over */
	uint64_t	 t_stop;	/* last op issued */
	bool		 stopped;
	unsigned	 busy;		/* ops in flight, all connections */
	unsigned long	 seq;		/* for unique usernames */
	uint64_t	 ops;		/* finished in the window, ok */
	uint64_t	 errors;	/* failed, any time */
	char		 err[256];	/* the first failure */
	unsigned long	 last_count;	/* raw license: what a count saw */
	unsigned long	 last_active;
	struct hist	 hist;
	struct names	*created;	/* create: made; delete: to remove */
	struct pcost {			/* of --pid, see proc_cost */
		bool		 ok;
		double		 cpu_s;
		unsigned long	 rd, wr;
	}		 cost_meas, cost_stop;	/* window opens / closes */
};

/* CPU seconds and read/write syscalls of process pid so far. */
static struct pcost
proc_cost(pid_t pid)
{
	struct pcost	 c = { .ok = false };
	char		 path[64], buf[1024], *p;
	unsigned long	 ut, st;
	FILE		*f;
	int		 got = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return c;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* After "(comm)": state is field 3, utime 14, stime 15. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%lu %lu", &ut, &st) != 2)
		return c;
	c.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%ld/io", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return c;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		if (sscanf(buf, "syscr: %lu", &c.rd) == 1 ||
		    sscanf(buf, "syscw: %lu", &c.wr) == 1)
			got++;
	}
	fclose(f);
	c.ok = got == 2;
	return c;
}

/* Sample the daemon's cost as the window opens and as it closes. */
static void
run_cost(struct run *r, uint64_t now)
{
	if (O.pid <= 0 || r->mode != M_OTASDIRD || r->op == OP_DELETE)
		return;
	if (!r->cost_meas.ok && now >= r->t_meas && !r->stopped)
		r->cost_meas = proc_cost(O.pid);
	else if (r->stopped && r->cost_meas.ok && !r->cost_stop.ok)
		r->cost_stop = proc_cost(O.pid);
}

static void
run_init(struct run *r, enum opk op, enum mode mode, unsigned conns,
    unsigned window)
{
	uint64_t	 now = now_ns();
	struct names	*keep = r->created;

	memset(r, 0, sizeof(*r));
	r->created = keep;
	r->op = op;
	r->mode = mode;
	r->conns = conns;
	r->window = window;
	r->t_begin = now;
	r->t_meas = now + (uint64_t)(O.warmup * NS_PER_S);
	r->t_min_end = r->t_meas + (uint64_t)(O.duration * NS_PER_S);
	r->t_hard = now + (uint64_t)(O.max_time * NS_PER_S);
	if (r->t_hard < r->t_min_end)
		r->t_hard = r->t_min_end;
}

/* Decide whether to stop issuing ops. */
static void
run_tick(struct run *r, uint64_t now)
{
	run_cost(r, now);
	if (r->stopped)
		return;
	if (r->op == OP_DELETE) {
		if (r->created->next >= r->created->n) {
			r->stopped = true;
			r->t_stop = now;
		}
		return;
	}
	if ((now >= r->t_min_end && r->ops >= O.min_ops) || now >= r->t_hard) {
		r->stopped = true;
		r->t_stop = now;
		run_cost(r, now);
	}
}

/* Record one finished op (ok, or failed with why). */
static void
run_done(struct run *r, uint64_t t0, bool ok, const char *why)
{
	uint64_t	 now = now_ns();

	if (!ok) {
		if (r->errors++ == 0)
			snprintf(r->err, sizeof(r->err), "%s", why);
		return;
	}
	if (now >= r->t_meas && !r->stopped) {
		r->ops++;
		hist_add(&r->hist, now - t0);
	}
}

/* Print the run as one JSON line. */
static void
run_print(const struct run *r, const char *extra)
{
	double	 secs = r->t_stop > r->t_meas ?
	    (double)(r->t_stop - r->t_meas) / 1e9 : 0;
	cJSON	*err = cJSON_CreateString(r->err);
	char	*errs = cJSON_PrintUnformatted(err);
	char	 cost[160] = "";

	if (r->cost_meas.ok && r->cost_stop.ok && r->ops > 0)
		snprintf(cost, sizeof(cost), ",\"daemon_cpu_us_per_op\":%.1f,"
		    "\"daemon_reads_per_op\":%.2f,"
		    "\"daemon_writes_per_op\":%.2f",
		    (r->cost_stop.cpu_s - r->cost_meas.cpu_s) * 1e6 /
		    (double)r->ops,
		    (double)(r->cost_stop.rd - r->cost_meas.rd) /
		    (double)r->ops,
		    (double)(r->cost_stop.wr - r->cost_meas.wr) /
		    (double)r->ops);

	printf("{\"op\":\"%s\",\"mode\":\"%s\",\"size\":\"%s\","
	    "\"clients\":%u,\"window\":%u,\"conns\":%u,\"ops\":%" PRIu64 ","
	    "\"errors\":%" PRIu64 ",\"error\":%s,\"seconds\":%.3f,"
	    "\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	    "\"max_ms\":%.3f%s%s%s}\n",
	    op_names[r->op], mode_names[r->mode], O.size_label, O.clients,
	    O.window, r->conns, r->ops, r->errors, errs ? errs : "\"\"", secs,
	    secs > 0 ? (double)r->ops / secs : 0.0,
	    ns_ms(hist_pct(&r->hist, 0.50)), ns_ms(hist_pct(&r->hist, 0.99)),
	    ns_ms(r->hist.max), cost, extra ? "," : "", extra ? extra : "");
	fflush(stdout);
	free(errs);
	cJSON_Delete(err);
}

/* ------------------------------------------------------------------ */
/* otasdird: JSON-RPC over the Unix socket */

struct rconn {
	int		 fd;
	unsigned	 idx;
	unsigned	 nbusy;
	struct slot	*slots;
	uint64_t	 seq;
	char		*in;
	size_t		 inlen, incap;
	char		 out[OUTBUF_SIZE];
	size_t		 outlen;
	bool		 dead;
};

/* Connect to otasdird; blocking or not.  Returns the fd. */
static int
rpc_connect(bool nonblock)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(O.socket_path) >= sizeof(sun.sun_path))
		die("%s: socket path too long", O.socket_path);
	strcpy(sun.sun_path, O.socket_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("connect %s: %s", O.socket_path, strerror(errno));
	if (nonblock && fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		die("fcntl: %s", strerror(errno));
	return fd;
}

/*
 * Append the request for op into c's out buffer, as slot s.  The id
 * carries the slot: id = seq * 256 + slot (WINDOW_MAX < 256).  Passwords
 * and names are plain [A-Za-z0-9._-], so they need no JSON escaping
 * (main checks the password).
 */
static void
rpc_build(struct run *r, struct rconn *c, unsigned s)
{
	struct slot	*sl = &c->slots[s];
	uint64_t	 id = c->seq++ * 256 + s;
	char		*p = c->out + c->outlen;
	size_t		 room = sizeof(c->out) - c->outlen;
	int		 n = -1;

	switch (r->op) {
	case OP_CREATE:
		snprintf(sl->user, sizeof(sl->user), "c%s.%u.%lu", O.tag,
		    c->idx, r->seq++);
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"user.create\",\"params\":{\"username\":"
		    "\"%s\",\"full_name\":\"Bench %s\",\"email\":"
		    "\"%s@example.com\"}}\n", id, sl->user, sl->user, sl->user);
		break;
	case OP_GET:
		pick_any(sl->user, sizeof(sl->user));
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"user.get\",\"params\":{\"username\":"
		    "\"%s\"}}\n", id, sl->user);
		break;
	case OP_LIST:
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"user.list\",\"params\":{\"status\":"
		    "\"active\",\"limit\":%u}}\n", id, O.list_limit);
		break;
	case OP_LICENSE:
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"license.get\"}\n", id);
		break;
	case OP_VERIFY:
		pick_active(sl->user, sizeof(sl->user));
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"auth.verify\",\"params\":{\"username\":"
		    "\"%s\",\"password\":\"%s\"}}\n", id, sl->user, O.user_pw);
		break;
	case OP_PING:
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"server.ping\"}\n", id);
		break;
	case OP_DELETE:
		snprintf(sl->user, sizeof(sl->user), "%s",
		    r->created->v[r->created->next++]);
		n = snprintf(p, room, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
		    ",\"method\":\"user.delete\",\"params\":{\"username\":"
		    "\"%s\",\"confirm\":\"%s\"}}\n", id, sl->user, sl->user);
		break;
	default:
		die("%s: not an otasdird op", op_names[r->op]);
	}
	if (n < 0 || (size_t)n >= room)
		die("request buffer full");
	c->outlen += (size_t)n;
	sl->busy = true;
	sl->t0 = now_ns();
	c->nbusy++;
	r->busy++;
}

/* Write what is queued; false if the connection died. */
static bool
rpc_flush(struct rconn *c)
{
	ssize_t	 n;

	while (c->outlen > 0) {
		n = write(c->fd, c->out, c->outlen);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return true;
			return false;
		}
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
	return true;
}

/* Count the occurrences of needle in [s, s+len). */
static unsigned long
count_str(const char *s, size_t len, const char *needle)
{
	size_t		 nl = strlen(needle);
	const char	*end = s + len, *p = s;
	unsigned long	 n = 0;

	while ((p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		n++;
		p += nl;
	}
	return n;
}

/*
 * Read a reply line: its id, and whether it is a result.  otasdird prints
 * {"jsonrpc":"2.0","id":N,"result":...} or ...,"error":{...}}: read that
 * shape directly, parse anything else with cJSON.  On an error, *why gets
 * the message.  Returns false if the line is not a reply at all.
 */
static bool
rpc_parse_reply(const char *line, size_t len, uint64_t *id, bool *ok,
    char *why, size_t whylen)
{
	static const char	 head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
	const char		*p;
	char			*end;
	cJSON			*j, *jid, *e, *m;
	bool			 found = false;

	if (len > sizeof(head) && memcmp(line, head, sizeof(head) - 1) == 0) {
		p = line + sizeof(head) - 1;
		errno = 0;
		*id = strtoull(p, &end, 10);
		if (errno == 0 && end != p &&
		    strncmp(end, ",\"result\":", 10) == 0) {
			*ok = true;
			return true;
		}
	}
	/* An error, or a shape we do not know: parse it all. */
	if ((j = cJSON_ParseWithLength(line, len)) == NULL)
		return false;
	jid = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (cJSON_IsNumber(jid)) {
		*id = (uint64_t)jid->valuedouble;
		found = true;
		*ok = cJSON_GetObjectItemCaseSensitive(j, "result") != NULL;
		if (!*ok) {
			e = cJSON_GetObjectItemCaseSensitive(j, "error");
			m = cJSON_GetObjectItemCaseSensitive(e, "message");
			snprintf(why, whylen, "%s",
			    cJSON_IsString(m) ? m->valuestring : "error");
		}
	}
	cJSON_Delete(j);
	return found;
}

/* Handle one reply line of connection c. */
static void
rpc_reply(struct run *r, struct rconn *c, const char *line, size_t len)
{
	char		 why[256] = "";
	uint64_t	 id;
	bool		 ok;
	struct slot	*sl;
	unsigned long	 n;

	if (!rpc_parse_reply(line, len, &id, &ok, why, sizeof(why)))
		die("unexpected line from otasdird: %.200s", line);
	if ((id & 255) >= r->window || !c->slots[id & 255].busy)
		die("reply for an unknown id %" PRIu64, id);
	sl = &c->slots[id & 255];
	sl->busy = false;
	c->nbusy--;
	r->busy--;
	/* Check that the work was the same as the raw way's. */
	if (ok && r->op == OP_LIST &&
	    (n = count_str(line, len, "\"username\":")) != O.list_limit) {
		ok = false;
		snprintf(why, sizeof(why), "user.list gave %lu accounts, not "
		    "%u", n, O.list_limit);
	}
	run_done(r, sl->t0, ok, why);
	if (ok && r->op == OP_CREATE)
		names_add(r->created, sl->user);
}

/* Read what is there; false if the connection died. */
static bool
rpc_read(struct run *r, struct rconn *c)
{
	char	*nl, *start;
	ssize_t	 n;

	for (;;) {
		if (c->incap - c->inlen < 65536) {
			c->incap = c->incap ? c->incap * 2 : 262144;
			if ((c->in = realloc(c->in, c->incap)) == NULL)
				die("out of memory");
		}
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
		if (n == 0)
			return false;
		if (n == -1)
			return errno == EAGAIN || errno == EINTR;
		c->inlen += (size_t)n;
		start = c->in;
		while ((nl = memchr(start, '\n', c->inlen -
		    (size_t)(start - c->in))) != NULL) {
			rpc_reply(r, c, start, (size_t)(nl - start));
			start = nl + 1;
		}
		c->inlen -= (size_t)(start - c->in);
		memmove(c->in, start, c->inlen);
	}
}

/* Drive run r through otasdird until it stops and drains. */
static void
run_rpc(struct run *r)
{
	struct rconn	*cs = xcalloc(r->conns, sizeof(*cs));
	struct pollfd	*pfd = xcalloc(r->conns, sizeof(*pfd));
	uint64_t	 now, drain_end = 0;
	unsigned	 i, s;

	for (i = 0; i < r->conns; i++) {
		cs[i].fd = rpc_connect(true);
		cs[i].idx = i;
		cs[i].slots = xcalloc(r->window, sizeof(struct slot));
	}
	run_init(r, r->op, M_OTASDIRD, r->conns, r->window);
	for (;;) {
		now = now_ns();
		run_tick(r, now);
		if (r->stopped) {
			if (r->busy == 0)
				break;
			if (drain_end == 0)
				drain_end = now + DRAIN_NS;
			else if (now > drain_end) {
				fprintf(stderr, "loadgen: %u replies never came\n",
				    r->busy);
				break;
			}
		}
		for (i = 0; i < r->conns; i++) {
			struct rconn	*c = &cs[i];

			if (c->dead)
				die("otasdird closed connection %u", i);
			for (s = 0; s < r->window; s++) {
				run_tick(r, now);
				if (!r->stopped && !c->slots[s].busy)
					rpc_build(r, c, s);
			}
			if (!rpc_flush(c))
				c->dead = true;
			pfd[i].fd = c->fd;
			pfd[i].events = POLLIN | (c->outlen ? POLLOUT : 0);
			pfd[i].revents = 0;
		}
		if (poll(pfd, r->conns, 5) == -1 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (i = 0; i < r->conns; i++) {
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				if (!rpc_read(r, &cs[i]))
					cs[i].dead = true;
		}
	}
	for (i = 0; i < r->conns; i++) {
		close(cs[i].fd);
		free(cs[i].slots);
		free(cs[i].in);
	}
	free(cs);
	free(pfd);
}

/* ------------------------------------------------------------------ */
/* raw: libldap straight to slapd */

struct lconn {
	LDAP		*ld;
	int		 fd;
	unsigned	 idx;
	unsigned	 nbusy;
	struct slot	*slots;
};

/* A connection bound as the service DN (the bind also connects, so no
 * op pays for the connect). */
static LDAP *
ldap_open_bound(void)
{
	LDAP		*ld;
	struct berval	 cred;
	int		 rc, v3 = LDAP_VERSION3;

	if ((rc = ldap_initialize(&ld, O.uri)) != LDAP_SUCCESS)
		die("ldap_initialize %s: %s", O.uri, ldap_err2string(rc));
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	cred.bv_val = O.bind_pw;
	cred.bv_len = strlen(O.bind_pw);
	if ((rc = ldap_sasl_bind_s(ld, O.bind_dn, LDAP_SASL_SIMPLE, &cred,
	    NULL, NULL, NULL)) != LDAP_SUCCESS)
		die("bind as %s: %s", O.bind_dn, ldap_err2string(rc));
	return ld;
}

static void
user_dn(char *out, size_t len, const char *user)
{
	snprintf(out, len, "uid=%s,%s", user, O.people_dn);
}

/* The attributes of an account as user.get / user.list return it. */
static char	*acct_attrs[] = {
	"uid", "cn", "displayName", "mail", "otasAccountStatus", "otasRole",
	NULL,
};

/* Start (or, for a paged count, continue) slot s's op on c.  Returns the
 * LDAP result code of sending it. */
static int
ldap_issue(struct run *r, struct lconn *c, unsigned s)
{
	static char	*status_attr[] = { "otasAccountStatus", NULL };
	struct slot	*sl = &c->slots[s];
	char		 dn[512], cn[128], mail[128];
	struct berval	 cred;
	LDAPControl	*page = NULL, *ctrls[2] = { NULL, NULL };
	int		 rc;

	switch (r->op) {
	case OP_CREATE: {
		char	*oc[] = { "top", "person", "organizationalPerson",
			    "inetOrgPerson", "otasAccount", NULL };
		char	*uid[] = { sl->user, NULL };
		char	*cnv[] = { cn, NULL };
		char	*snv[] = { sl->user, NULL };
		char	*mailv[] = { mail, NULL };
		char	*st[] = { "active", NULL };
		char	*role[] = { "user", NULL };
		LDAPMod	 m[] = {
			{ LDAP_MOD_ADD, "objectClass", { oc } },
			{ LDAP_MOD_ADD, "uid", { uid } },
			{ LDAP_MOD_ADD, "cn", { cnv } },
			{ LDAP_MOD_ADD, "displayName", { cnv } },
			{ LDAP_MOD_ADD, "sn", { snv } },
			{ LDAP_MOD_ADD, "mail", { mailv } },
			{ LDAP_MOD_ADD, "otasAccountStatus", { st } },
			{ LDAP_MOD_ADD, "otasRole", { role } },
		};
		LDAPMod	*mods[nitems_(m) + 1];

		for (size_t i = 0; i < nitems_(m); i++)
			mods[i] = &m[i];
		mods[nitems_(m)] = NULL;
		snprintf(sl->user, sizeof(sl->user), "c%s.%u.%lu", O.tag,
		    c->idx, r->seq++);
		snprintf(cn, sizeof(cn), "Bench %s", sl->user);
		snprintf(mail, sizeof(mail), "%s@example.com", sl->user);
		user_dn(dn, sizeof(dn), sl->user);
		rc = ldap_add_ext(c->ld, dn, mods, NULL, NULL, &sl->msgid);
		break;
	}
	case OP_GET:
		pick_any(sl->user, sizeof(sl->user));
		user_dn(dn, sizeof(dn), sl->user);
		rc = ldap_search_ext(c->ld, dn, LDAP_SCOPE_BASE,
		    "(objectClass=*)", acct_attrs, 0, NULL, NULL, NULL, 0,
		    &sl->msgid);
		break;
	case OP_LIST:
		rc = ldap_search_ext(c->ld, O.people_dn, LDAP_SCOPE_ONELEVEL,
		    "(otasAccountStatus=active)", acct_attrs, 0, NULL, NULL,
		    NULL, (int)O.list_limit, &sl->msgid);
		break;
	case OP_LICENSE:
		rc = ldap_create_page_control(c->ld, (ber_int_t)O.page_size,
		    sl->cookie.bv_len ? &sl->cookie : NULL, 0, &page);
		if (rc != LDAP_SUCCESS)
			die("page control: %s", ldap_err2string(rc));
		ctrls[0] = page;
		rc = ldap_search_ext(c->ld, O.people_dn, LDAP_SCOPE_ONELEVEL,
		    "(objectClass=*)", status_attr, 0, ctrls, NULL, NULL, 0,
		    &sl->msgid);
		ldap_control_free(page);
		break;
	case OP_VERIFY:
		pick_active(sl->user, sizeof(sl->user));
		user_dn(dn, sizeof(dn), sl->user);
		cred.bv_val = O.user_pw;
		cred.bv_len = strlen(O.user_pw);
		rc = ldap_sasl_bind(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL,
		    NULL, &sl->msgid);
		break;
	case OP_DELETE:
		user_dn(dn, sizeof(dn), r->created->v[r->created->next++]);
		rc = ldap_delete_ext(c->ld, dn, NULL, NULL, &sl->msgid);
		break;
	default:
		die("%s: not a raw op", op_names[r->op]);
	}
	return rc;
}

/* Start a new op in slot s. */
static void
ldap_start(struct run *r, struct lconn *c, unsigned s)
{
	struct slot	*sl = &c->slots[s];
	int		 rc;

	sl->entries = sl->active = 0;
	sl->t0 = now_ns();
	if ((rc = ldap_issue(r, c, s)) != LDAP_SUCCESS)
		die("sending %s: %s", op_names[r->op], ldap_err2string(rc));
	sl->busy = true;
	c->nbusy++;
	r->busy++;
}

/* The final message of slot s's op (or page) arrived. */
static void
ldap_final(struct run *r, struct lconn *c, struct slot *sl, LDAPMessage *msg)
{
	LDAPControl	**sctrls = NULL, *pc;
	char		 *diag = NULL, why[256] = "";
	int		  rc, prc;
	bool		  ok;
	ber_int_t	  count;

	prc = ldap_parse_result(c->ld, msg, &rc, NULL, &diag, NULL, &sctrls, 1);
	if (prc != LDAP_SUCCESS)
		rc = prc;
	ok = rc == LDAP_SUCCESS;
	if (r->op == OP_LIST) {
		/* The 100th entry ends it with sizeLimitExceeded. */
		ok = (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) &&
		    sl->entries == O.list_limit;
	} else if (r->op == OP_GET)
		ok = ok && sl->entries == 1;
	else if (r->op == OP_DELETE)
		ok = ok || rc == LDAP_NO_SUCH_OBJECT;
	if (ok && r->op == OP_LICENSE) {
		pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, sctrls, NULL);
		if (sl->cookie.bv_val != NULL)
			ber_memfree(sl->cookie.bv_val);
		memset(&sl->cookie, 0, sizeof(sl->cookie));
		if (pc == NULL || ldap_parse_pageresponse_control(c->ld, pc,
		    &count, &sl->cookie) != LDAP_SUCCESS) {
			ok = false;
			snprintf(why, sizeof(why), "no paged-results reply");
		} else if (sl->cookie.bv_len > 0) {
			/* More pages: the op goes on in the same slot. */
			ldap_controls_free(sctrls);
			ldap_memfree(diag);
			if ((rc = ldap_issue(r, c, (unsigned)(sl - c->slots)))
			    != LDAP_SUCCESS)
				die("next page: %s", ldap_err2string(rc));
			return;
		} else {
			r->last_count = sl->entries;
			r->last_active = sl->active;
			if (sl->entries < O.users)
				ok = false;
		}
	}
	if (!ok && why[0] == '\0')
		snprintf(why, sizeof(why), "%s: %s (%d)%s%s entries %lu",
		    op_names[r->op], ldap_err2string(rc), rc,
		    diag ? ": " : "", diag ? diag : "", sl->entries);
	ldap_controls_free(sctrls);
	ldap_memfree(diag);
	if (sl->cookie.bv_val != NULL)
		ber_memfree(sl->cookie.bv_val);
	memset(&sl->cookie, 0, sizeof(sl->cookie));
	sl->busy = false;
	c->nbusy--;
	r->busy--;
	run_done(r, sl->t0, ok, why);
	if (ok && r->op == OP_CREATE)
		names_add(r->created, sl->user);
}

/* Read every message that is ready on c (ldap_result with a zero
 * timeout until it has nothing), routing each by msgid. */
static void
ldap_read(struct run *r, struct lconn *c)
{
	struct timeval	 zero = { 0, 0 };
	LDAPMessage	*msg;
	struct berval	**vals;
	struct slot	*sl;
	int		 rc, id;
	unsigned	 s;

	while ((rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero,
	    &msg)) > 0) {
		id = ldap_msgid(msg);
		for (sl = NULL, s = 0; s < r->window; s++)
			if (c->slots[s].busy && c->slots[s].msgid == id) {
				sl = &c->slots[s];
				break;
			}
		if (sl == NULL) {
			ldap_msgfree(msg);
			continue;
		}
		switch (rc) {
		case LDAP_RES_SEARCH_ENTRY:
			sl->entries++;
			if (r->op == OP_LICENSE && (vals = ldap_get_values_len(
			    c->ld, msg, "otasAccountStatus")) != NULL) {
				if (vals[0] != NULL && vals[0]->bv_len == 6 &&
				    memcmp(vals[0]->bv_val, "active", 6) == 0)
					sl->active++;
				ldap_value_free_len(vals);
			}
			ldap_msgfree(msg);
			break;
		case LDAP_RES_SEARCH_REFERENCE:
		case LDAP_RES_INTERMEDIATE:
			ldap_msgfree(msg);
			break;
		default:
			ldap_final(r, c, sl, msg);
			break;
		}
	}
	if (rc == -1)
		die("ldap_result: connection %u lost", c->idx);
}

/* Drive run r straight against slapd until it stops and drains.  A bind
 * (verify) must be alone on its connection: conns*window connections of
 * window 1.  A paged count (license) is one chain per connection. */
static void
run_ldap(struct run *r)
{
	unsigned	 nc = r->conns, w = r->window, i, s;
	struct lconn	*cs;
	struct pollfd	*pfd;
	uint64_t	 now, drain_end = 0;

	if (r->op == OP_VERIFY) {
		nc = r->conns * r->window;
		w = 1;
	} else if (r->op == OP_LICENSE)
		w = 1;
	cs = xcalloc(nc, sizeof(*cs));
	pfd = xcalloc(nc, sizeof(*pfd));
	for (i = 0; i < nc; i++) {
		cs[i].ld = ldap_open_bound();
		cs[i].idx = i;
		cs[i].slots = xcalloc(w, sizeof(struct slot));
		if (ldap_get_option(cs[i].ld, LDAP_OPT_DESC, &cs[i].fd) !=
		    LDAP_OPT_SUCCESS)
			die("LDAP_OPT_DESC");
	}
	run_init(r, r->op, M_RAW, nc, w);
	for (;;) {
		now = now_ns();
		run_tick(r, now);
		if (r->stopped) {
			if (r->busy == 0)
				break;
			if (drain_end == 0)
				drain_end = now + DRAIN_NS;
			else if (now > drain_end) {
				fprintf(stderr, "loadgen: %u results never came\n",
				    r->busy);
				break;
			}
		}
		for (i = 0; i < nc; i++) {
			for (s = 0; s < w; s++) {
				run_tick(r, now);
				if (!r->stopped && !cs[i].slots[s].busy)
					ldap_start(r, &cs[i], s);
			}
			pfd[i].fd = cs[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, nc, 5) == -1 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (i = 0; i < nc; i++)
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				ldap_read(r, &cs[i]);
	}
	for (i = 0; i < nc; i++) {
		for (s = 0; s < w; s++)
			if (cs[i].slots[s].cookie.bv_val != NULL)
				ber_memfree(cs[i].slots[s].cookie.bv_val);
		ldap_unbind_ext(cs[i].ld, NULL, NULL);
		free(cs[i].slots);
	}
	free(cs);
	free(pfd);
}

/* Delete what a create run made (pipelined, not measured): through
 * otasdird (user.delete) after a run through it, so that its seat counter
 * stays exact, else raw.  Prints how many and how long as JSON members
 * into out. */
static void
cleanup_created(struct names *made, enum mode mode, char *out, size_t len)
{
	struct run	*r = xcalloc(1, sizeof(*r));
	double		 save_warm = O.warmup;
	uint64_t	 t0 = now_ns();

	O.warmup = 0;
	made->next = 0;
	r->op = OP_DELETE;
	r->conns = 4;
	r->window = 32;
	r->created = made;
	if (made->n > 0 && mode == M_OTASDIRD)
		run_rpc(r);
	else if (made->n > 0)
		run_ldap(r);
	O.warmup = save_warm;
	snprintf(out, len, "\"cleanup_deleted\":%zu,\"cleanup_errors\":%"
	    PRIu64 ",\"cleanup_s\":%.2f", made->n, r->errors,
	    (double)(now_ns() - t0) / 1e9);
	if (r->errors > 0)
		fprintf(stderr, "loadgen: cleanup: %s\n", r->err);
	free(r);
}

/* ------------------------------------------------------------------ */
/* exec: one ldapadd process per account */

struct child {
	pid_t		 pid;
	uint64_t	 t0;
	char		 user[USERNAME_MAX + 1];
};

/* fork/exec `ldapadd -x -H uri -D binddn -y pwfile` and feed it the
 * account's LDIF on stdin. */
static void
exec_start(struct run *r, struct child *ch, unsigned idx)
{
	posix_spawn_file_actions_t	 fa;
	char				 ldif[1024];
	char	*argv[] = { "ldapadd", "-x", "-H", O.uri,
		    "-D", O.bind_dn, "-y",
		    O.bind_pw_file, NULL };
	int				 p[2], n;

	snprintf(ch->user, sizeof(ch->user), "c%s.%u.%lu", O.tag, idx,
	    r->seq++);
	n = snprintf(ldif, sizeof(ldif),
	    "dn: uid=%s,%s\nobjectClass: top\nobjectClass: person\n"
	    "objectClass: organizationalPerson\nobjectClass: inetOrgPerson\n"
	    "objectClass: otasAccount\nuid: %s\ncn: Bench %s\n"
	    "displayName: Bench %s\nsn: %s\nmail: %s@example.com\n"
	    "otasAccountStatus: active\notasRole: user\n",
	    ch->user, O.people_dn, ch->user, ch->user, ch->user, ch->user,
	    ch->user);
	if (pipe2(p, O_CLOEXEC) == -1)
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	ch->t0 = now_ns();
	if ((errno = posix_spawnp(&ch->pid, "ldapadd", &fa, NULL, argv,
	    environ)) != 0)
		die("spawn ldapadd: %s", strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	/* Less than a pipe buffer: never blocks. */
	if (write(p[1], ldif, (size_t)n) != n)
		die("write to ldapadd: %s", strerror(errno));
	close(p[1]);
	r->busy++;
}

/* N ldapadd processes at a time, each adding one account. */
static void
run_exec(struct run *r)
{
	struct child	*ch = xcalloc(r->conns, sizeof(*ch));
	unsigned	 i;
	int		 st;
	pid_t		 pid;
	char		 why[64];

	run_init(r, OP_CREATE, M_EXEC, r->conns, 1);
	for (i = 0; i < r->conns; i++)
		exec_start(r, &ch[i], i);
	while (r->busy > 0) {
		if ((pid = waitpid(-1, &st, 0)) == -1) {
			if (errno == EINTR)
				continue;
			die("waitpid: %s", strerror(errno));
		}
		for (i = 0; i < r->conns && ch[i].pid != pid; i++)
			;
		if (i == r->conns)
			continue;
		r->busy--;
		snprintf(why, sizeof(why), "ldapadd exited %d",
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		run_done(r, ch[i].t0, WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    why);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			names_add(r->created, ch[i].user);
		run_tick(r, now_ns());
		if (!r->stopped)
			exec_start(r, &ch[i], i);
	}
	free(ch);
}

/* ------------------------------------------------------------------ */
/* pinglist: is the loop responsive while a client lists everything? */

/* A blocking line reader for the two threads of pinglist. */
struct lreader {
	int		 fd;
	char		*buf;
	size_t		 len, cap, skip;
};

/* The next line (without the newline), valid until the next call; NULL
 * at EOF. */
static const char *
lr_line(struct lreader *lr, size_t *len)
{
	char	*nl;
	ssize_t	 n;

	if (lr->skip > 0) {
		lr->len -= lr->skip;
		memmove(lr->buf, lr->buf + lr->skip, lr->len);
		lr->skip = 0;
	}
	while ((nl = memchr(lr->buf, '\n', lr->len)) == NULL) {
		if (lr->cap - lr->len < 65536) {
			lr->cap = lr->cap ? lr->cap * 2 : 262144;
			if ((lr->buf = realloc(lr->buf, lr->cap)) == NULL)
				die("out of memory");
		}
		if ((n = read(lr->fd, lr->buf + lr->len, lr->cap - lr->len))
		    <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			return NULL;
		}
		lr->len += (size_t)n;
	}
	*len = (size_t)(nl - lr->buf);
	lr->skip = *len + 1;
	return lr->buf;
}

static void
write_all(int fd, const char *s, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, s, len)) == -1) {
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		s += n;
		len -= (size_t)n;
	}
}

static struct {
	atomic_int	 phase;		/* 0 idle, 1 busy, 2 stop */
	struct hist	 idle, busy;
	unsigned long	 pages, accounts, passes;
	uint64_t	 list_ns;	/* time of the passes */
	uint64_t	 page_max_ns;	/* slowest page */
} PL;

/* The pinger: one server.ping per millisecond (absolute schedule), its
 * latency into PL.idle or PL.busy by phase. */
static void *
pl_pinger(void *arg)
{
	struct lreader	 lr = { .fd = rpc_connect(false) };
	struct timespec	 next;
	char		 req[128];
	const char	*line;
	size_t		 len;
	uint64_t	 id = 0, t0;
	int		 n, phase;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while ((phase = PL.phase) != 2) {
		n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%"
		    PRIu64 ",\"method\":\"server.ping\"}\n", ++id);
		t0 = now_ns();
		write_all(lr.fd, req, (size_t)n);
		if ((line = lr_line(&lr, &len)) == NULL)
			die("otasdird closed the ping connection");
		if (memmem(line, len, "\"pong\"", 6) == NULL)
			die("bad pong: %.*s", (int)len, line);
		hist_add(phase == 0 ? &PL.idle : &PL.busy, now_ns() - t0);
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	close(lr.fd);
	free(lr.buf);
	return NULL;
}

/* One full pass of user.list limit=1000 over every account. */
static void
pl_pass(struct lreader *lr)
{
	char		 req[512], cursor[256] = "";
	const char	*line, *p, *q;
	size_t		 len;
	uint64_t	 id = 0, t0, t1, tp;
	int		 n;

	t0 = now_ns();
	for (;;) {
		if (cursor[0] == '\0')
			n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\","
			    "\"id\":%" PRIu64 ",\"method\":\"user.list\","
			    "\"params\":{\"limit\":1000}}\n", ++id);
		else
			n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\","
			    "\"id\":%" PRIu64 ",\"method\":\"user.list\","
			    "\"params\":{\"limit\":1000,\"cursor\":\"%s\"}}\n",
			    ++id, cursor);
		tp = now_ns();
		write_all(lr->fd, req, (size_t)n);
		if ((line = lr_line(lr, &len)) == NULL)
			die("otasdird closed the list connection");
		t1 = now_ns();
		if (t1 - tp > PL.page_max_ns)
			PL.page_max_ns = t1 - tp;
		PL.pages++;
		PL.accounts += count_str(line, len, "\"username\":");
		/* The cursor is the last member; a few hundred bytes from the
		 * end. */
		p = len > 400 ? line + len - 400 : line;
		if ((p = memmem(p, len - (size_t)(p - line),
		    "\"next_cursor\":", 14)) == NULL)
			die("user.list: no next_cursor: %.200s", line);
		p += 14;
		if (strncmp(p, "null", 4) == 0)
			break;
		if (*p != '"' || (q = memchr(p + 1, '"', len -
		    (size_t)(p + 1 - line))) == NULL ||
		    (size_t)(q - p - 1) >= sizeof(cursor))
			die("user.list: bad next_cursor");
		memcpy(cursor, p + 1, (size_t)(q - p - 1));
		cursor[q - p - 1] = '\0';
	}
	PL.list_ns += now_ns() - t0;
	PL.passes++;
}

static void
run_pinglist(void)
{
	struct lreader	 lr;
	pthread_t	 th;
	uint64_t	 t_end;
	struct timespec	 ts = { 0, 0 };

	memset(&lr, 0, sizeof(lr));
	PL.phase = 0;
	if (pthread_create(&th, NULL, pl_pinger, NULL) != 0)
		die("pthread_create");
	/* A second of idle pings: the baseline. */
	ts.tv_sec = (time_t)O.warmup;
	ts.tv_nsec = (long)((O.warmup - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
	lr.fd = rpc_connect(false);
	PL.phase = 1;
	t_end = now_ns() + (uint64_t)(O.duration * NS_PER_S);
	do
		pl_pass(&lr);
	while (now_ns() < t_end);
	PL.phase = 2;
	pthread_join(th, NULL);
	close(lr.fd);
	free(lr.buf);
	printf("{\"op\":\"pinglist\",\"mode\":\"otasdird\",\"size\":\"%s\","
	    "\"idle_pings\":%" PRIu64 ",\"idle_p50_ms\":%.3f,"
	    "\"idle_p99_ms\":%.3f,\"idle_max_ms\":%.3f,\"busy_pings\":%"
	    PRIu64 ",\"busy_p50_ms\":%.3f,\"busy_p99_ms\":%.3f,"
	    "\"busy_max_ms\":%.3f,\"passes\":%lu,\"pages\":%lu,"
	    "\"accounts_per_pass\":%lu,\"pass_s\":%.3f,\"page_max_ms\":%.3f}\n",
	    O.size_label, PL.idle.n, ns_ms(hist_pct(&PL.idle, 0.5)),
	    ns_ms(hist_pct(&PL.idle, 0.99)), ns_ms(PL.idle.max), PL.busy.n,
	    ns_ms(hist_pct(&PL.busy, 0.5)), ns_ms(hist_pct(&PL.busy, 0.99)),
	    ns_ms(PL.busy.max), PL.passes, PL.pages,
	    PL.passes ? PL.accounts / PL.passes : 0,
	    PL.passes ? (double)PL.list_ns / 1e9 / (double)PL.passes : 0,
	    ns_ms(PL.page_max_ns));
}

/* ------------------------------------------------------------------ */
/* idle: otasdird's memory with many idle connections */

/* VmRSS (or another Vm* line) of pid in KiB; -1 if unreadable. */
static long
proc_kib(pid_t pid, const char *key)
{
	char	 path[64], line[256];
	size_t	 kl = strlen(key);
	long	 v = -1;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void
run_idle(void)
{
	unsigned	 n = O.idle_conns, i;
	int		*fds = xcalloc(n, sizeof(int));
	struct lreader	 lr;
	static const char ping[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}\n";
	const char	*line;
	size_t		 len;
	long		 before, after, hwm;
	struct timespec	 settle = { 0, 300 * 1000 * 1000 };

	if (O.pid <= 0)
		die("idle needs --pid");
	before = proc_kib(O.pid, "VmRSS");
	memset(&lr, 0, sizeof(lr));
	for (i = 0; i < n; i++) {
		fds[i] = rpc_connect(false);
		write_all(fds[i], ping, sizeof(ping) - 1);
	}
	for (i = 0; i < n; i++) {
		lr.fd = fds[i];
		lr.len = lr.skip = 0;
		if ((line = lr_line(&lr, &len)) == NULL ||
		    memmem(line, len, "\"pong\"", 6) == NULL)
			die("connection %u: no pong", i);
	}
	nanosleep(&settle, NULL);
	after = proc_kib(O.pid, "VmRSS");
	hwm = proc_kib(O.pid, "VmHWM");
	printf("{\"op\":\"idle\",\"mode\":\"otasdird\",\"size\":\"%s\","
	    "\"conns\":%u,\"rss_before_kib\":%ld,\"rss_kib\":%ld,"
	    "\"hwm_kib\":%ld,\"per_conn_kib\":%.2f}\n", O.size_label, n,
	    before, after, hwm, (double)(after - before) / n);
	for (i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	free(lr.buf);
}

/* ------------------------------------------------------------------ */
/* main */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen --op create|get|list|license|verify|ping|pinglist|idle\n"
	    "       [--modes otasdird,raw,exec] [--clients N] [--window W]\n"
	    "       [--duration S] [--warmup S] [--min-ops N] [--max-time S]\n"
	    "       --socket PATH --uri URI --bind-dn DN --bind-pw-file FILE\n"
	    "       --people-dn DN [--password-file FILE] [--users N]\n"
	    "       [--prefix P] [--inactive-every K] [--tag T]\n"
	    "       [--page-size N] [--idle-conns N] [--pid PID] [--size LABEL]\n"
	    "       [--no-cleanup]\n");
	exit(2);
}

static unsigned long
num_arg(const char *s, unsigned long lo, unsigned long hi, const char *what)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
		die("%s: must be %lu..%lu", what, lo, hi);
	return v;
}

static double
secs_arg(const char *s, const char *what)
{
	char	*end;
	double	 v = strtod(s, &end);

	if (*end != '\0' || end == s || !(v >= 0) || v > 3600)
		die("%s: not a number of seconds", what);
	return v;
}

static void
parse_modes(const char *s)
{
	char	*dup = xstrdup(s), *tok, *save = NULL;
	unsigned m;

	O.nmodes = 0;
	for (tok = strtok_r(dup, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (m = 0; m < nitems_(mode_names); m++)
			if (strcmp(tok, mode_names[m]) == 0)
				break;
		if (m == nitems_(mode_names) || O.nmodes == 3)
			die("--modes: %s", s);
		O.modes[O.nmodes++] = (enum mode)m;
	}
	free(dup);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option	 lo[] = {
		{ "op", required_argument, NULL, 'o' },
		{ "modes", required_argument, NULL, 'm' },
		{ "clients", required_argument, NULL, 'c' },
		{ "window", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "min-ops", required_argument, NULL, 'n' },
		{ "max-time", required_argument, NULL, 'T' },
		{ "socket", required_argument, NULL, 's' },
		{ "uri", required_argument, NULL, 'u' },
		{ "bind-dn", required_argument, NULL, 'D' },
		{ "bind-pw-file", required_argument, NULL, 'y' },
		{ "people-dn", required_argument, NULL, 'b' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "users", required_argument, NULL, 'U' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "inactive-every", required_argument, NULL, 'i' },
		{ "tag", required_argument, NULL, 't' },
		{ "page-size", required_argument, NULL, 'g' },
		{ "idle-conns", required_argument, NULL, 'I' },
		{ "pid", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 'z' },
		{ "no-cleanup", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	static char	 deftag[32];
	int		 ch;
	unsigned	 i;

	parse_modes("otasdird,raw");
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'o':
			for (i = 0; i < OP_DELETE; i++)
				if (strcmp(optarg, op_names[i]) == 0)
					break;
			if (i == OP_DELETE)
				die("--op: unknown %s", optarg);
			O.op = (enum opk)i;
			break;
		case 'm': parse_modes(optarg); break;
		case 'c': O.clients = (unsigned)num_arg(optarg, 1, 4096,
			      "--clients"); break;
		case 'w': O.window = (unsigned)num_arg(optarg, 1, WINDOW_MAX,
			      "--window"); break;
		case 'd': O.duration = secs_arg(optarg, "--duration"); break;
		case 'W': O.warmup = secs_arg(optarg, "--warmup"); break;
		case 'n': O.min_ops = num_arg(optarg, 0, ULONG_MAX,
			      "--min-ops"); break;
		case 'T': O.max_time = secs_arg(optarg, "--max-time"); break;
		case 's': O.socket_path = optarg; break;
		case 'u': O.uri = optarg; break;
		case 'D': O.bind_dn = optarg; break;
		case 'y': O.bind_pw_file = optarg; break;
		case 'b': O.people_dn = optarg; break;
		case 'p': O.user_pw = read_secret(optarg); break;
		case 'U': O.users = num_arg(optarg, 1, 999999, "--users");
			  break;
		case 'P': O.prefix = optarg; break;
		case 'i': O.inactive_every = (unsigned)num_arg(optarg, 0,
			      1000000, "--inactive-every"); break;
		case 't': O.tag = optarg; break;
		case 'g': O.page_size = (unsigned)num_arg(optarg, 1, 100000,
			      "--page-size"); break;
		case 'I': O.idle_conns = (unsigned)num_arg(optarg, 1, 100000,
			      "--idle-conns"); break;
		case 'k': O.pid = (pid_t)num_arg(optarg, 1, INT_MAX, "--pid");
			  break;
		case 'z': O.size_label = optarg; break;
		case 'C': O.cleanup = false; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (O.tag == NULL) {
		snprintf(deftag, sizeof(deftag), "%ld", (long)getpid());
		O.tag = deftag;
	}
	for (const char *p = O.tag; *p != '\0'; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9'))
			die("--tag: lower-case letters and digits only");
	if (O.bind_pw_file != NULL)
		O.bind_pw = read_secret(O.bind_pw_file);
	if (O.user_pw != NULL)
		for (const char *p = O.user_pw; *p != '\0'; p++)
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
				die("--password-file: must need no JSON escaping");
}

/* Everything a raw or exec run needs. */
static void
need_ldap(void)
{
	if (O.uri == NULL || O.bind_dn == NULL || O.bind_pw == NULL ||
	    O.people_dn == NULL)
		die("--uri, --bind-dn, --bind-pw-file and --people-dn are "
		    "needed");
}

int
main(int argc, char **argv)
{
	struct rlimit	 rl;
	struct names	 made;
	struct run	*r;
	char		 extra[256];
	unsigned	 m;

	/* Our libldap and ldapadd must not read the host's ldap.conf. */
	setenv("LDAPNOINIT", "1", 1);
	signal(SIGPIPE, SIG_IGN);
	/* Many connections (idle, raw verify). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	parse_args(argc, argv);

	if (O.op == OP_PINGLIST || O.op == OP_IDLE) {
		if (O.socket_path == NULL)
			die("--socket is needed");
		if (O.op == OP_PINGLIST)
			run_pinglist();
		else
			run_idle();
		return 0;
	}
	if (O.op == OP_VERIFY && O.user_pw == NULL)
		die("verify needs --password-file");
	r = xcalloc(1, sizeof(*r));
	for (m = 0; m < O.nmodes; m++) {
		memset(&made, 0, sizeof(made));
		memset(r, 0, sizeof(*r));
		r->op = O.op;
		r->conns = O.clients;
		r->window = O.window;
		r->created = &made;
		/* The same names for each way. */
		rng_seed(O.tag);
		extra[0] = '\0';
		switch (O.modes[m]) {
		case M_OTASDIRD:
			if (O.socket_path == NULL)
				die("--socket is needed");
			run_rpc(r);
			break;
		case M_RAW:
			need_ldap();
			if (O.op == OP_PING)
				die("ping has no raw form");
			run_ldap(r);
			if (O.op == OP_LICENSE)
				snprintf(extra, sizeof(extra), "\"counted\":%lu,"
				    "\"counted_active\":%lu,\"page_size\":%u",
				    r->last_count, r->last_active, O.page_size);
			break;
		case M_EXEC:
			need_ldap();
			if (O.op != OP_CREATE)
				die("exec is for create only");
			run_exec(r);
			break;
		}
		if (O.op == OP_CREATE && O.cleanup) {
			need_ldap();
			run_print(r, NULL);
			cleanup_created(&made, r->mode, extra,
			    sizeof(extra));
			fprintf(stderr, "loadgen: %s\n", extra);
		} else
			run_print(r, extra[0] ? extra : NULL);
		names_clear(&made);
	}
	free(r);
	return 0;
}
