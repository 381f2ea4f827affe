#!/usr/bin/python3
"""bench.py - the driver behind `make bench` (Python standard library only).

For each size (1,000 and 100,000 accounts by default) it builds a private
slapd (tests/lib/mkslapd.sh through tests/integ/slapdenv.py: {SSHA}
password hashes, dbnosync, writemap), seeds it offline with `slapadd -q`,
starts build/otasdird against it, and runs build/bench/loadgen; the sizes
run side by side, each repetition at every size in turn:

  * start-up time to ready (exec until server.status says the directory
    is up and seats_used is a number);
  * otasdird's RSS with 1,000 idle connections (fresh, and again after the
    load below);
  * user.create, user.get, user.list, license.get and auth.verify, each
    through otasdird and as raw libldap calls in the same loadgen run, at
    1 client (window 1) and 32 clients (window BENCH_WINDOW);
  * per-user creation through one `ldapadd` process each;
  * at the largest size, server.ping latency while a client pages through
    every account with user.list limit=1000.

Every measurement runs --reps times (default 3); the tables quote the
median of each figure.  It prints a markdown report and writes it, with
every single run, to bench-results/latest.md and bench-results/latest.json.

Everything it starts is stopped and every temporary directory removed,
also on failure and on Ctrl-C / SIGTERM.

    tests/bench/bench.py [--sizes 1000,100000] [--reps 3] [--duration 2]
        [--warmup 0.5] [--window 4] [--ops get,list,...] [--quick]
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integ"))

import otasenv  # noqa: E402
from otasenv import Client, Daemon, RpcError  # noqa: E402
from slapdenv import running_slapd  # noqa: E402

BUILD = Path(os.environ.get("OTASDIR_BUILD", ROOT / "build")).resolve()
LOADGEN = BUILD / "bench" / "loadgen"
RESULTS = ROOT / "bench-results"

OPS = ["get", "list", "license", "verify", "create"]
OP_METHOD = {
    "create": ("user.create", "ldap_add_ext"),
    "get": ("user.get", "base search"),
    "list": ("user.list 100 active", "one-level search, size limit 100"),
    "license": ("license.get", "paged one-level count"),
    "verify": ("auth.verify", "simple bind"),
}
SEATS = 10_000_000          # the largest licence otasdird accepts
# A configuration whose first run takes longer than this is not repeated
# (a raw license.get at 100k and 32 clients: ~30 s of full scans).
LONG_RUN_S = 15
# Created accounts are deleted after each run below this size; above it
# they stay (a few % of the directory; the report gives the final size),
# because deleting them costs more than creating them did.
T0 = time.monotonic()
try:
    LOAD_START = Path("/proc/loadavg").read_text().split()[0]
except OSError:
    LOAD_START = "?"

# The deployment benchmarked: the shipped defaults, except what a bench
# needs (a huge licence, caps above the offered load, no login throttle:
# every verify comes from one peer uid) and log.level info (the default).
DAEMON_SETTINGS = {
    "socket": {"max_connections": 4096, "max_inflight_per_connection": 256,
               "max_inflight": 100000, "idle_timeout_s": 3600},
    "auth": {"max_failures": 1000000},
    "ldap": {"timeout_ms": 30000},
}


class Stop(Exception):
    """SIGTERM: unwind like Ctrl-C so that every finally block runs."""


def on_sigterm(signum, frame):
    raise Stop()


def log(msg):
    print(f"bench: [{time.monotonic() - T0:5.0f} s] {msg}", file=sys.stderr,
          flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- running loadgen ---------------------------------------------------------

class Bench:
    """One size: a seeded slapd, an otasdird and how to run loadgen on
    them."""

    def __init__(self, args, size, slapd, workdir):
        self.args = args
        self.size = size
        self.s = slapd
        self.dir = workdir
        self.label = size_label(size)
        self.pw_file = workdir / "user.secret"
        self.daemon = None
        self.runs = []          # every loadgen JSON line
        self.tagn = 0

    def new_daemon(self, name="otasdird"):
        d = Daemon(self.s, self.dir / name, seats=SEATS, log_level="info",
                   extra=json.loads(json.dumps(DAEMON_SETTINGS)), name=name)
        d.settings["ldap"]["bind_connections"] = self.args.bind_connections
        return d

    def tag(self):
        self.tagn += 1
        return f"{self.size}r{self.tagn}t{os.getpid() % 10000}"

    def loadgen(self, op, *extra, modes="otasdird,raw", timeout=300):
        cmd = [str(LOADGEN), "--op", op, "--modes", modes,
               "--socket", str(self.daemon.sock),
               "--uri", self.s.ldapi_uri, "--bind-dn", self.s.service_dn,
               "--bind-pw-file", str(self.s.bind_pw_file),
               "--people-dn", self.s.people_dn,
               "--password-file", str(self.pw_file),
               "--users", str(self.size), "--prefix", "bulk",
               "--tag", self.tag(), "--size", self.label,
               "--duration", str(self.args.duration),
               "--warmup", str(self.args.warmup)]
        if "otasdird" in modes.split(","):
            # otasdird's own CPU time and syscalls per op in the window
            cmd += ["--pid", str(self.daemon.proc.pid)]
        cmd += [str(x) for x in extra]
        run = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=timeout)
        if run.returncode != 0:
            raise RuntimeError(f"loadgen failed ({run.returncode}): "
                               f"{' '.join(cmd)}\n{run.stderr}")
        out = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
        for o in out:
            o["size_n"] = self.size
            if o.get("errors"):
                log(f"{o['op']} {o['mode']} {self.label}: {o['errors']} "
                    f"errors, first: {o.get('error')}")
        self.runs += out
        return out

    # -- the measurements ----------------------------------------------------

    def startup(self):
        """Exec to ready, --reps times after one unmeasured start (the
        first start creates the seat counter and warms the page cache).
        Returns seconds per run and the view's own load time from the
        log."""
        times, view_ms = [], []
        for i in range(self.args.reps + 1):
            d = self.new_daemon(f"start{i}")
            t0 = time.monotonic()
            d.start(wait=False)
            try:
                while True:
                    if d.proc.poll() is not None:
                        raise RuntimeError("otasdird exited:\n"
                                           + d.log_text())
                    if time.monotonic() - t0 > 120:
                        raise RuntimeError("otasdird not ready in 120 s")
                    try:
                        with Client(d.sock, timeout=5) as c:
                            st = c.result("server.status")
                        if (st.get("directory") == "up" and
                                isinstance(st.get("seats_used"), int)):
                            break
                    except (OSError, RpcError, ValueError):
                        pass
                    time.sleep(0.002)
                took = time.monotonic() - t0
            finally:
                d.stop(expect=None)
            m = re.search(r"view: \d+ entries .* loaded in (\d+) ms",
                          d.log_text())
            if i > 0:
                times.append(took)
                view_ms.append(int(m.group(1)) if m else None)
        rec = {"op": "startup", "mode": "otasdird", "size": self.label,
               "size_n": self.size, "runs_s": times,
               "view_load_ms": view_ms}
        self.runs.append(rec)
        return rec

    def idle(self, when):
        out = []
        for _ in range(self.args.reps):
            o = self.loadgen("idle", "--idle-conns", 1000, "--pid",
                             self.daemon.proc.pid, modes="otasdird")[0]
            o["when"] = when
            out.append(o)
        return out

    def one_rep(self, op, clients, window, rep):
        """One repetition of op at clients x window: through otasdird and
        raw, in alternating order.  Returns its wall time."""
        extra = ["--clients", clients, "--window", window]
        if op == "license":
            # A raw count of 100k entries takes over a second, and 32 of
            # them start together: measure from the start (no warm-up)
            # until at least 3 counts and one per connection have
            # finished, so that the rate is whole ops over their own time.
            extra += ["--warmup", 0, "--min-ops", max(3, clients),
                      "--max-time", 90]
        t_rep = time.monotonic()
        # Alternate the order so that neither way always runs on a
        # directory the other has just churned.
        order = ["otasdird", "raw"]
        if rep % 2:
            order.reverse()
        log(f"{self.label} {op} {clients}x{window} rep {rep + 1}")
        if op != "create":
            self.loadgen(op, *extra, modes=",".join(order))
        else:
            # Raw adds run without otasdird: its syncrepl session makes
            # slapd push every change to it, which costs a raw add ~20%
            # here, and the ceiling must not pay it.
            for mode in order:
                if mode == "raw":
                    with self.daemon_stopped():
                        self.loadgen(op, *extra, modes="raw")
                else:
                    self.loadgen(op, *extra, modes="otasdird")
        return time.monotonic() - t_rep

    @contextlib.contextmanager
    def daemon_stopped(self):
        self.daemon.stop(expect=None)
        try:
            yield
        finally:
            self.daemon.start()

    def ldapadd(self):
        """One ldapadd process per account, as shell tools work (without
        otasdird, like the raw adds)."""
        with self.daemon_stopped():
            for rep in range(self.args.reps):
                log(f"{self.label} ldapadd rep {rep + 1}")
                self.loadgen("create", "--clients", 1, modes="exec")

    def pinglist(self):
        for rep in range(self.args.reps):
            log(f"{self.label} ping during full listing rep {rep + 1}")
            self.loadgen("pinglist", "--warmup", 1, modes="otasdird")


def size_label(n):
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def setup_size(args, size, stack):
    """A seeded slapd of size accounts and a running otasdird, with the
    start-up times and the fresh RSS measured; everything is stopped when
    stack closes."""
    s = stack.enter_context(running_slapd(hash="SSHA", dbnosync=True,
                                          writemap=True))
    workdir = Path(tempfile.mkdtemp(prefix="otbench", dir="/tmp"))
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    b = Bench(args, size, s, workdir)
    pw = secrets.token_hex(12)
    b.pw_file.write_text(pw)
    b.pw_file.chmod(0o600)
    log(f"{b.label}: seeding {size} accounts with slapadd -q")
    t0 = time.monotonic()
    s.seed_offline(size, prefix="bulk", password=pw)
    seed_s = time.monotonic() - t0
    b.runs.append({"op": "seed", "size": b.label, "size_n": size,
                   "seconds": seed_s})
    log(f"{b.label}: seeded in {seed_s:.1f} s; start-up times")
    b.startup()
    b.daemon = b.new_daemon()
    stack.callback(lambda: b.daemon.kill())
    b.daemon.start()
    b.idle("fresh")
    return b


def run_all(args):
    """Every measurement at every size; returns the loadgen records.

    The sizes run interleaved: each repetition of an operation runs at
    every size in turn (in alternating order) before the next repetition,
    so that a busy moment on this shared machine falls on both sizes of a
    comparison, not on one of them."""
    with contextlib.ExitStack() as stack:
        benches = [setup_size(args, size, stack) for size in args.sizes]
        # Creates first: they restart otasdird (Bench.one_rep), and the
        # reads after them leave it "after load" for the last RSS.
        ops = [o for o in args.ops if o == "create"] + \
            [o for o in args.ops if o != "create"]
        for op in ops:
            for clients, window in ((1, 1), (32, args.window)):
                long_runs = set()
                for rep in range(args.reps):
                    order = benches if rep % 2 == 0 else benches[::-1]
                    for b in order:
                        if b.size in long_runs:
                            continue
                        if b.one_rep(op, clients, window, rep) > LONG_RUN_S:
                            log(f"{b.label} {op} {clients}x{window}: a run "
                                f"takes over {LONG_RUN_S} s, not repeated")
                            long_runs.add(b.size)
            if op == "create":
                for b in benches:
                    b.ldapadd()
        big = benches[-1]
        if big.size >= 10000:
            big.pinglist()
        runs = []
        for b in benches:
            b.idle("after load")
            with Client(b.daemon.sock) as c:
                used = c.result("license.get")["used"]
            b.runs.append({"op": "final", "size": b.label, "size_n": b.size,
                           "used": used})
            b.daemon.stop(expect=None)
            runs += b.runs
        return runs


# -- the report --------------------------------------------------------------

def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    return str(x)


def fms(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def rows_of(runs, **kw):
    return [r for r in runs if all(r.get(k) == v for k, v in kw.items())]


def summarize(runs, sizes, args):
    """Medians per (op, size, clients, mode) and the derived ratios."""
    S = {}
    for op in OPS:
        for size in sizes:
            for clients in (1, 32):
                cell = {}
                for mode in ("otasdird", "raw"):
                    rs = rows_of(runs, op=op, size_n=size, clients=clients,
                                 mode=mode)
                    if not rs:
                        continue
                    cell[mode] = {
                        "ops_per_s": median([r["ops_per_s"] for r in rs]),
                        "p50_ms": median([r["p50_ms"] for r in rs]),
                        "p99_ms": median([r["p99_ms"] for r in rs]),
                        "errors": sum(r["errors"] for r in rs),
                        "window": rs[0]["window"],
                        "conns": rs[0]["conns"],
                        "runs": len(rs),
                        "counted": rs[0].get("counted"),
                    }
                    for k in ("daemon_cpu_us_per_op", "daemon_reads_per_op",
                              "daemon_writes_per_op"):
                        cell[mode][k] = median([r.get(k) for r in rs])
                if cell:
                    o, r = cell.get("otasdird"), cell.get("raw")
                    if o and r and r["ops_per_s"]:
                        cell["ratio"] = o["ops_per_s"] / r["ops_per_s"]
                    S[(op, size, clients)] = cell
    return S


def machine():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    slapd = "?"
    try:
        v = subprocess.run(["slapd", "-V"], capture_output=True, text=True)
        m = re.search(r"slapd ([\w.+~-]+)", v.stderr + v.stdout)
        slapd = m.group(1) if m else "?"
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "load_end": load,
            "kernel": platform.release(), "slapd": slapd,
            "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC")}


def daemon_cost(o):
    """otasdird's CPU µs and read/write syscalls per op (medians), or —."""
    if not o or o.get("daemon_cpu_us_per_op") is None:
        return "—"
    return (f"{o['daemon_cpu_us_per_op']:.0f} / "
            f"{o['daemon_reads_per_op']:.1f} / "
            f"{o['daemon_writes_per_op']:.1f}")


def verdict(ok):
    return "**met**" if ok else "**MISSED**"


def report(runs, sizes, args, wall_s, m=None):
    S = summarize(runs, sizes, args)
    if m is None:
        m = machine()
        m["load_start"] = LOAD_START
    ended = ", ".join(f"{size_label(r['size_n'])} ended at {r['used']:,}"
                      for r in runs if r.get("op") == "final")
    out = []
    w = out.append
    w(f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
      f"slapd {m['slapd']}; {m['date']}; `make bench` wall time "
      f"{wall_s / 60:.1f} min; load average {m['load_start']} at the "
      f"start, {m['load_end']} at the end.")
    w("")
    w(f"Each figure is the median of {args.reps} runs of "
      f"{args.duration:g} s (after {args.warmup:g} s of warm-up). "
      "1 client = one connection, one request at a time; "
      f"32 clients = 32 connections, each pipelining up to "
      f"{args.window} requests. ratio = otasdird ops/s ÷ raw ops/s.")
    w("")
    w("| operation | size | clients | otasdird ops/s | raw ops/s | ratio "
      "| otasdird p50 / p99 ms | raw p50 / p99 ms "
      "| otasdird CPU µs / reads / writes per op | raw libldap work |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for op in OPS:
        for size in sizes:
            for clients in (1, 32):
                cell = S.get((op, size, clients))
                if not cell:
                    continue
                o, r = cell.get("otasdird"), cell.get("raw")
                raw_what = OP_METHOD[op][1]
                if op == "verify" and r:
                    raw_what += f" ({r['conns']} conns)"
                if op == "license" and r and r.get("counted"):
                    raw_what += (f" of {r['counted']:,} entries, "
                                 f"page {args.page_size}")
                errs = (o or {}).get("errors", 0) + (r or {}).get("errors", 0)
                note = f" ⚠ {errs} errors" if errs else ""
                n = min((o or {}).get("runs", 0), (r or {}).get("runs", 0))
                if n and n < args.reps:
                    note += f" ({n} run: over {LONG_RUN_S} s)"
                w(f"| {OP_METHOD[op][0]} | {size_label(size)} | {clients} | "
                  f"{fmt(o and o['ops_per_s'])} | {fmt(r and r['ops_per_s'])} | "
                  f"{fmt(cell.get('ratio'), 2)} | "
                  f"{fms(o and o['p50_ms'])} / {fms(o and o['p99_ms'])} | "
                  f"{fms(r and r['p50_ms'])} / {fms(r and r['p99_ms'])} | "
                  f"{daemon_cost(o)} | {raw_what}{note} |")
    w("")

    # ldapadd per user, next to user.create at 1 client.
    ex = [(size, rows_of(runs, op="create", mode="exec", size_n=size))
          for size in sizes]
    if any(rs for _, rs in ex):
        w("Creating one account per `ldapadd` process (fork/exec per "
          "user, as shell tools do), one at a time, beside user.create "
          "at 1 client:")
        w("")
        w("| size | ldapadd ops/s | p50 / p99 ms | user.create ops/s "
          "| user.create p50 / p99 ms |")
        w("|---|---:|---:|---:|---:|")
        for size, rs in ex:
            if not rs:
                continue
            c = S.get(("create", size, 1), {}).get("otasdird")
            w(f"| {size_label(size)} | "
              f"{fmt(median([r['ops_per_s'] for r in rs]))} | "
              f"{fms(median([r['p50_ms'] for r in rs]))} / "
              f"{fms(median([r['p99_ms'] for r in rs]))} | "
              f"{fmt(c and c['ops_per_s'])} | "
              f"{fms(c and c['p50_ms'])} / {fms(c and c['p99_ms'])} |")
        w("")

    # Start-up, memory, loop responsiveness.
    w("| measurement | size | median | runs |")
    w("|---|---|---:|---|")
    for size in sizes:
        for r in rows_of(runs, op="startup", size_n=size):
            v = [x for x in r["view_load_ms"] if x is not None]
            w(f"| start-up to ready (exec → directory up, seats_used "
              f"known) | {size_label(size)} | "
              f"{median(r['runs_s']) * 1000:.0f} ms | "
              f"{', '.join(f'{x * 1000:.0f}' for x in r['runs_s'])} ms"
              f"{'; view loaded in ' + ', '.join(map(str, v)) + ' ms' if v else ''} |")
    for size in sizes:
        for when in ("fresh", "after load"):
            rs = rows_of(runs, op="idle", size_n=size, when=when)
            if rs:
                each = ", ".join(f"{r['rss_kib'] / 1024:.1f}" for r in rs)
                before = ", ".join(f"{r['rss_before_kib'] / 1024:.1f}"
                                   for r in rs)
                w(f"| RSS with 1,000 idle connections ({when}) | "
                  f"{size_label(size)} | "
                  f"{median([r['rss_kib'] for r in rs]) / 1024:.1f} MiB | "
                  f"{each} MiB; before connecting: {before} MiB |")
    for size in sizes:
        rs = rows_of(runs, op="pinglist", size_n=size)
        if rs:
            w(f"| server.ping p99 while one client lists all accounts "
              f"(limit 1000) | {size_label(size)} | "
              f"{fms(median([r['busy_p99_ms'] for r in rs]))} ms | "
              f"p50 {fms(median([r['busy_p50_ms'] for r in rs]))} ms, max "
              f"{fms(median([r['busy_max_ms'] for r in rs]))} ms; idle p99 "
              f"{fms(median([r['idle_p99_ms'] for r in rs]))} ms; "
              f"{median([r['accounts_per_pass'] for r in rs]):,.0f} accounts "
              f"in {median([r['pages'] / r['passes'] for r in rs]):.0f} pages,"
              f" {median([r['pass_s'] for r in rs]) * 1000:.0f} ms per pass, "
              f"slowest page {fms(median([r['page_max_ms'] for r in rs]))} ms |")
    w("")

    # Targets.
    w("Targets:")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for op, what in (("create", "user.create ≥ 0.9 × raw ldap_add_ext"),
                     ("get", "user.get ≥ 0.9 × raw base search")):
        for size in sizes:
            for clients in (1, 32):
                r = S.get((op, size, clients), {}).get("ratio")
                if r is not None:
                    w(f"| {what} ({size_label(size)}, {clients} "
                      f"client{'s' if clients > 1 else ''}) | {r:.2f} × | "
                      f"{verdict(r >= 0.9)} |")
    if len(sizes) >= 2:
        lo, hi = min(sizes), max(sizes)
        for op, what in (("create", "user.create"),
                         ("license", "license.get")):
            for clients in (1, 32):
                a = S.get((op, lo, clients), {})
                b = S.get((op, hi, clients), {})
                try:
                    ratio = a["otasdird"]["ops_per_s"] / \
                        b["otasdird"]["ops_per_s"]
                    raw = a["raw"]["ops_per_s"] / b["raw"]["ops_per_s"]
                except (KeyError, TypeError, ZeroDivisionError):
                    continue
                w(f"| {what} cost at {size_label(hi)} ≤ 1.2 × at "
                  f"{size_label(lo)} ({clients} client"
                  f"{'s' if clients > 1 else ''}; cost ratio = ops/s at "
                  f"{size_label(lo)} ÷ ops/s at {size_label(hi)}) | "
                  f"{ratio:.2f} (raw libldap: {raw:.2f}; otasdird ÷ raw: "
                  f"{ratio / raw:.2f}) | "
                  f"{verdict(ratio <= 1.2)} |")
    for size in sizes:
        rs = rows_of(runs, op="pinglist", size_n=size)
        if rs:
            p = median([r["busy_p99_ms"] for r in rs])
            w(f"| server.ping p99 ≤ 2 ms while listing all "
              f"{size_label(size)} accounts | {fms(p)} ms | "
              f"{verdict(p <= 2.0)} |")
    for size in sizes:
        for when in ("fresh", "after load"):
            rs = rows_of(runs, op="idle", size_n=size, when=when)
            if rs:
                v = median([r["rss_kib"] for r in rs]) / 1024
                w(f"| RSS ≤ 32 MiB with 1,000 idle connections "
                  f"({size_label(size)}, {when}) | {v:.1f} MiB | "
                  f"{verdict(v <= 32)} |")
    w("")
    w("otasdird's CPU µs / reads / writes per op: its utime + stime "
      "(/proc/PID/stat, all threads, 10 ms ticks) and its read- and "
      "write-family system calls (/proc/PID/io syscr, syscw; poll and "
      "epoll are not among them) between the opening and the closing of "
      "the measured window, divided by the ops finished in it.")
    w("")
    w("Notes: slapd runs with `dbnosync`, LMDB's `writemap` and `{SSHA}` "
      "password hashes (tests/lib/mkslapd.sh --dbnosync --writemap --hash "
      "SSHA) so that adds and binds measure the software, not fsync, the "
      "kernel's buffered writes of LMDB pages (without writemap, raw adds "
      "are 1.3-1.8x slower at 100k than at 1k) or argon2. Directories are seeded "
      "offline with `slapadd -q` (every 5th account inactive). otasdird "
      "and raw libldap reach slapd over the same ldapi:// socket, bound as "
      "the same service DN. Raw adds are the ceiling for writes: "
      "user.create also moves the seat counter (reserve before, settle "
      "after: two more modifies of one entry), and raw adds and ldapadd "
      "run with otasdird stopped (its syncrepl session costs slapd ~20% "
      "per write), right before or after the otasdird run of the same "
      "repetition; every other raw run shares one loadgen run with its "
      "otasdird run while otasdird sits idle. Raw user.list returns "
      "slapd's first 100 active entries unsorted (otasdird's are sorted "
      "by username). Raw license.get is what a client without otasdird "
      "would do: count people_dn with a paged search, one count per "
      "connection at a time. Raw auth.verify needs one connection per "
      "bind in flight (RFC 4511 §4.2.1); otasdird uses its "
      f"ldap.bind_connections = {args.bind_connections}. license.get runs "
      "without warm-up until at least 3 ops and one per connection have "
      "finished. Created accounts are deleted after each run (through "
      "otasdird's user.delete after its runs, so that its seat counter "
      "stays exact; raw after raw runs), so every run starts at the "
      f"seeded size ({ended} entries). The sizes run interleaved: each "
      "repetition runs at every size in turn before the next, so that a "
      "busy moment on this shared machine falls on both sides of a size "
      f"ratio. Everything shares the machine's {m['nproc']} CPUs: slapd, otasdird and the load "
      "generator (one thread).")
    return "\n".join(out) + "\n", S, m


# -- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=os.environ.get("BENCH_SIZES",
                                                      "1000,100000"))
    ap.add_argument("--reps", type=int,
                    default=int(os.environ.get("BENCH_REPS", 3)))
    ap.add_argument("--duration", type=float,
                    default=float(os.environ.get("BENCH_DURATION", 1.5)))
    ap.add_argument("--warmup", type=float,
                    default=float(os.environ.get("BENCH_WARMUP", 0.3)))
    ap.add_argument("--window", type=int,
                    default=int(os.environ.get("BENCH_WINDOW", 4)))
    ap.add_argument("--bind-connections", type=int,
                    default=int(os.environ.get("BENCH_BIND_CONNECTIONS", 4)))
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--quick", action="store_true",
                    help="1 rep of 1 s at 1k and 10k (a smoke run)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="print the report of a saved run again")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        for k, v in saved["settings"].items():
            setattr(args, k.removesuffix("_s"), v)
        args.page_size = 1000
        print(report(saved["runs"], args.sizes, args, saved["wall_s"],
                     saved["machine"])[0])
        return 0
    if args.quick:
        args.sizes, args.reps, args.duration, args.warmup = \
            "1000,10000", 1, 1.0, 0.2
    args.sizes = sorted(int(x) for x in args.sizes.split(","))
    args.ops = [o for o in args.ops.split(",") if o]
    args.page_size = 1000
    for o in args.ops:
        if o not in OPS:
            ap.error(f"--ops: unknown {o}")
    for f in (BUILD / "otasdird", LOADGEN):
        if not f.exists():
            ap.error(f"{f} is missing: run `make bench`")
    otasenv.OTASDIRD = BUILD / "otasdird"

    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # 1,000 idle connections and 128 raw bind connections need fds.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    t0 = time.monotonic()
    runs = []
    try:
        runs = run_all(args)
    except (KeyboardInterrupt, Stop):
        log("interrupted; everything started has been stopped")
        return 130
    wall = time.monotonic() - t0
    text, S, m = report(runs, args.sizes, args, wall)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    summary = [{"op": k[0], "size": k[1], "clients": k[2], **v}
               for k, v in S.items()]
    (RESULTS / "latest.json").write_text(json.dumps(
        {"machine": m, "settings": {"sizes": args.sizes, "reps": args.reps,
                                    "duration_s": args.duration,
                                    "warmup_s": args.warmup,
                                    "window": args.window,
                                    "bind_connections": args.bind_connections,
                                    "daemon": DAEMON_SETTINGS},
         "wall_s": wall, "summary": summary, "runs": runs}, indent=1) + "\n")
    print(text)
    log(f"done in {wall:.0f} s; wrote {RESULTS}/latest.md and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
