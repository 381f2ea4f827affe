"""Overload and hostile clients: in-flight caps, clients that stop
reading, many idle connections, descriptor exhaustion, idle timeouts,
connection floods.  A slow or hostile client must never delay the
others."""

import json
import resource
import socket
import threading
import time

import pytest

from faults import frozen
from otasenv import (SANITIZED, SLOW, VALGRIND, Client, Daemon, rss_kib,
                     wait_for)

OVERLOADED = "overloaded"
# A liveness bound, not a benchmark.
PING_BOUND_S = 1.0 * SLOW
# What the daemon's memory may grow by under a hostile client (KiB).
RSS_GROWTH_KIB = (400 if VALGRIND or SANITIZED else 64) * 1024


def reason(rep):
    return (rep.get("error") or {}).get("data", {}).get("reason")


def create(u):
    return {"username": u, "full_name": f"O {u}", "email": f"{u}@example.com"}


def timed_ping(d):
    t0 = time.monotonic()
    with d.client(timeout=10 * SLOW) as c:
        assert c.result("server.ping") == "pong"
    return time.monotonic() - t0


def raw_socket(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)
    s.connect(str(d.sock))
    return s


def line(method, id, params=None):
    req = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        req["params"] = params
    return (json.dumps(req) + "\n").encode()


# ---------------------------------------------------------------------------
# in-flight caps


def test_inflight_caps(slapd, tmpdir_short):
    """Requests that wait on the directory (slapd frozen, so they stay in
    flight) are capped per connection and in total; beyond the caps they
    are answered at once with `overloaded`, and requests answered from
    memory (ping, status) still go through.  When slapd thaws, the
    admitted ones finish."""
    d = Daemon(slapd, tmpdir_short, seats=5000, extra={
        "socket": {"max_inflight_per_connection": 4, "max_inflight": 10},
        "ldap": {"timeout_ms": 60000}})
    d.start()
    try:
        c1, c2, c3 = (d.client(timeout=30 * SLOW) for _ in range(3))
        with frozen(slapd.pid()):
            ids1 = [c1.request("user.create", create(f"ov-a{i}"))
                    for i in range(10)]
            # 4 admitted, 6 refused at once
            over = [c1.wait(i) for i in ids1[4:]]
            assert all(reason(r) == OVERLOADED for r in over), over
            assert "retry" in over[0]["error"]["message"]
            assert c1.result("server.ping") == "pong"
            ids2 = [c2.request("user.create", create(f"ov-b{i}"))
                    for i in range(4)]
            # total cap: 8 in flight, so 2 more fit on the third
            ids3 = [c3.request("user.create", create(f"ov-c{i}"))
                    for i in range(4)]
            over3 = [c3.wait(i) for i in ids3[2:]]
            assert all(reason(r) == OVERLOADED for r in over3), over3
            st = c3.result("server.status")
            # ten waiting on the directory, and this status request
            assert st["requests_in_flight"] == 11, st
            # a batch larger than the per-connection cap is refused whole
            c3.send(json.dumps([{"jsonrpc": "2.0", "id": 100 + i,
                                 "method": "server.ping"}
                                for i in range(5)]) + "\n")
            rep = c3.recv_line()
            assert rep["error"]["code"] == -32600, rep
        for c, ids in ((c1, ids1[:4]), (c2, ids2), (c3, ids3[:2])):
            for i in ids:
                rep = c.wait(i)
                assert "result" in rep, rep
            c.close()
    finally:
        d.stop()


def test_pipelined_beyond_the_cap_every_id_answered_once(slapd,
                                                         tmpdir_short):
    """500 pipelined directory requests on one connection with a cap of
    16: each id gets exactly one answer, a result or `overloaded`."""
    d = Daemon(slapd, tmpdir_short, extra={
        "socket": {"max_inflight_per_connection": 16}})
    d.start()
    try:
        s = raw_socket(d)
        n = 500
        s.sendall(b"".join(line("user.get", i, {"username": "admin"})
                           if i % 2 else
                           line("user.set_password", i, {
                               "username": "no-such-user",
                               "password": "Whatever-123"})
                           for i in range(n)))
        seen = {}
        buf = b""
        while len(seen) < n:
            chunk = s.recv(65536)
            assert chunk, f"closed after {len(seen)} replies"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for l in lines:
                rep = json.loads(l)
                assert rep["id"] not in seen, f"two replies for {rep['id']}"
                seen[rep["id"]] = rep
        assert set(seen) == set(range(n))
        for i, rep in seen.items():
            assert "result" in rep or reason(rep) in (OVERLOADED,
                                                      "not_found"), rep
        s.close()
    finally:
        d.stop()


# ---------------------------------------------------------------------------
# clients that do not read


class SlowReader:
    """A client that sends requests and never reads the replies, until
    told to.  sent counts the requests it managed to write."""

    def __init__(self, d, method="server.status"):
        self.s = raw_socket(d)
        self.s.settimeout(0.5)
        self.method = method
        self.sent = 0
        self.stop = threading.Event()
        self.blocked = threading.Event()
        self.t = threading.Thread(target=self.write, daemon=True)

    def start(self):
        self.t.start()
        return self

    def write(self):
        batch = 256
        while not self.stop.is_set():
            data = b"".join(line(self.method, self.sent + i)
                            for i in range(batch))
            try:
                self.s.sendall(data)
                self.sent += batch
            except socket.timeout:
                # The daemon stopped reading us: part of the batch may
                # have gone; finish the line cleanly later.
                self.blocked.set()
                self.partial = True
                return
            except OSError:
                return

    def drain(self):
        """Read every reply now; returns the ids."""
        self.stop.set()
        self.t.join()
        self.s.settimeout(10 * SLOW)
        ids = set()
        buf = b""
        self.s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = self.s.recv(1 << 16)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for l in lines:
                rep = json.loads(l)
                assert rep["id"] not in ids, f"two replies for {rep['id']}"
                ids.add(rep["id"])
        self.s.close()
        return ids


def test_client_that_stops_reading(slapd, tmpdir_short):
    """A client that writes requests and never reads the replies stops
    being read once its backlog passes max_reply_backlog: the daemon's
    memory stays bounded, others are served, and when the client reads
    again it gets every reply to what it sent, once."""
    d = Daemon(slapd, tmpdir_short, extra={
        "socket": {"max_reply_backlog": 65536}})
    d.start()
    try:
        base = rss_kib(d.proc.pid)
        r = SlowReader(d).start()
        assert r.blocked.wait(30 * SLOW), "the daemon kept reading"
        time.sleep(0.5)
        for _ in range(10):
            assert timed_ping(d) < PING_BOUND_S
        grown = rss_kib(d.proc.pid) - base
        assert grown < RSS_GROWTH_KIB, f"RSS grew {grown} KiB"
        with d.client() as c:
            st = c.result("server.status")
            assert st["requests_in_flight"] <= 2, st
        ids = r.drain()
        # Every whole request line sent was answered, once; at most the
        # batch cut short by the timeout was lost half-way.
        assert len(ids) >= r.sent, (len(ids), r.sent)
        assert ids == set(range(len(ids)))
    finally:
        d.stop()


def test_idle_crowd_and_a_slow_reader_do_not_delay_others(slapd,
                                                          tmpdir_short):
    """500 idle connections and one client that stopped reading are held
    open while a normal client's server.ping keeps answering promptly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    d = Daemon(slapd, tmpdir_short, extra={
        "socket": {"max_reply_backlog": 65536}})
    d.start()
    idle = []
    try:
        for _ in range(500):
            idle.append(raw_socket(d))
        r = SlowReader(d).start()
        assert r.blocked.wait(30 * SLOW), "the daemon kept reading"
        with d.client() as c:
            wait_for(lambda: c.result("server.status")["connections"] >= 502,
                     what="502 connections")
        worst = max(timed_ping(d) for _ in range(30))
        assert worst < PING_BOUND_S, f"a ping took {worst:.3f} s"
        # A directory request goes through too.
        with d.client() as c:
            assert c.result("user.get", username="admin")["username"] == \
                "admin"
        r.drain()
    finally:
        for s in idle:
            s.close()
        d.stop()


# ---------------------------------------------------------------------------
# descriptors, idle timeouts, floods


@pytest.mark.skipif(VALGRIND, reason="valgrind keeps descriptors at the "
                    "top of the limit for itself: an accept that lands there "
                    "is closed by valgrind (the client sees a reset) and "
                    "reported to otasdird as EMFILE, which natively never "
                    "dequeues the connection")
def test_accept_pauses_when_out_of_descriptors(slapd, tmpdir_short):
    """With a low RLIMIT_NOFILE, clients beyond what the daemon can hold
    wait in the listen queue (accept pauses, the log says so) instead of
    spinning the loop; closing some lets the waiting one in."""
    limit = 64

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    d = Daemon(slapd, tmpdir_short)
    d.start(preexec_fn=lower)
    held = []
    waiting = None
    try:
        for i in range(limit + 20):
            c = Client(d.sock, timeout=1.0 * SLOW)
            c.request("server.ping")
            try:
                c.wait(1)
            except (socket.timeout, TimeoutError):
                waiting = c
                break
            held.append(c)
        assert waiting is not None, "never ran out of descriptors"
        assert len(held) > 10
        wait_for(lambda: "accept: pausing" in d.log_text(), timeout=5,
                 what="the pause in the log")
        # the daemon is not spinning: its CPU time barely moves
        cpu0 = proc_cpu(d.proc.pid)
        time.sleep(1.0)
        assert proc_cpu(d.proc.pid) - cpu0 < 0.5, "accept loop spins"
        for c in held[:3]:
            c.close()
        del held[:3]
        waiting.sock.settimeout(10 * SLOW)
        assert waiting.wait(1)["result"] == "pong"
        assert held[0].result("server.ping") == "pong"
    finally:
        for c in held:
            c.close()
        if waiting is not None:
            waiting.close()
        d.stop()


def proc_cpu(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_timeout_closes_a_crowd(slapd, tmpdir_short):
    """300 connections that say nothing are closed after idle_timeout_s;
    one that keeps talking stays."""
    d = Daemon(slapd, tmpdir_short, extra={"socket": {"idle_timeout_s": 2}})
    d.start()
    crowd = []
    try:
        crowd = [raw_socket(d) for _ in range(300)]
        talker = d.client()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.5:
            assert talker.result("server.ping") == "pong"
            time.sleep(0.3)
        # all of the crowd is closed by now (EOF), the talker is not
        for s in crowd:
            s.settimeout(10 * SLOW)
            assert s.recv(1) == b""
        st = talker.result("server.status")
        assert st["connections"] == 1, st
        talker.close()
    finally:
        for s in crowd:
            s.close()
        d.stop()


def test_ten_thousand_connections_opened_and_dropped(slapd, tmpdir_short):
    """10,000 connections, each closed at once, a fifth of them after
    half a request line: the daemon keeps serving, frees them all and
    its memory does not follow."""
    d = Daemon(slapd, tmpdir_short, log_level="info")
    d.start()
    try:
        base = rss_kib(d.proc.pid)
        errors = []

        def flood(k):
            try:
                for i in range(2500):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(str(d.sock))
                    if i % 5 == 0:
                        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ser')
                    s.close()
            except OSError as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=flood, args=(k,))
                   for k in range(4)]
        for t in threads:
            t.start()
        pings = []
        while any(t.is_alive() for t in threads):
            pings.append(timed_ping(d))
            time.sleep(0.05)
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert max(pings, default=0) < 2 * PING_BOUND_S, max(pings)
        with d.client() as c:
            wait_for(lambda: c.result("server.status")["connections"] == 1,
                     what="every dropped connection freed")
        grown = rss_kib(d.proc.pid) - base
        assert grown < RSS_GROWTH_KIB, f"RSS grew {grown} KiB"
    finally:
        d.stop()
