"""The directory misbehaving: gone, frozen, silent, speaking garbage,
killed and restarted with requests in flight; and the daemon's own
shutdown (SIGTERM) and reload (SIGHUP) while requests are in flight.

What a client must see: every request answered within the deadline
(ldap.timeout_ms), `directory_unavailable` when nothing reached the
directory, `timeout` (with the outcome stated as unknown) when the
directory went silent after the request reached it, `server.status`
saying `down`, and service coming back by itself.
"""

import json
import re
import signal
import socket
import threading
import time

import pytest

from faults import GarbageServer, Proxy, SilentServer, frozen, garbage_env
from otasenv import (SANITIZED, SLOW, VALGRIND, Client, Daemon, RpcError,
                     wait_for)

UNAVAILABLE = "directory_unavailable"
TIMEOUT = "timeout"
PW = "Soak-pass-0001"

# Deadlines for these tests: short, so that waiting for them is cheap.
# Under valgrind the daemon is slow at computing, not at waiting: the
# deadlines grow less than the waits.
DEADLINE_SCALE = min(SLOW, 3)
TIMEOUT_MS = 1500 * DEADLINE_SCALE
# What "within the deadline" allows on top of it: scheduling on a busy
# machine, not a second deadline.
SLACK_S = 1.5 * SLOW


def fast_daemon(slapd, tmp, uris=None, **extra):
    """A daemon with short deadlines and quick reconnects."""
    settings = {"ldap": {"timeout_ms": TIMEOUT_MS,
                         "connect_timeout_ms": 300 * DEADLINE_SCALE,
                         "reconnect_min_ms": 50,
                         "reconnect_max_ms": 800}}
    for k, v in extra.items():
        settings.setdefault(k, {}).update(v)
    # The module's slapd collects accounts from every test: plenty of
    # seats, so that no test here meets the limit by accident.
    return Daemon(slapd, tmp, uris=uris, seats=5000, extra=settings)


# One request of each kind a super admin can make, as (method, params).
def every_request(tag):
    u = f"rs-{tag}"
    return [
        ("server.status", None),
        ("license.get", None),
        ("user.list", {}),
        ("user.get", {"username": u}),
        ("user.create", {"username": u, "full_name": "R S",
                         "email": f"{u}@example.com", "password": PW}),
        ("user.update", {"username": u, "full_name": "R T"}),
        ("user.set_password", {"username": u, "password": PW + "x"}),
        ("user.delete", {"username": u, "confirm": u}),
        ("user.import", {"users": [{"username": u + "i", "full_name": "I",
                                    "email": "i@example.com"}]}),
        ("auth.verify", {"username": u, "password": PW}),
        ("auth.login", {"username": u, "password": PW}),
    ]


def timed_call(c, method, params):
    t0 = time.monotonic()
    rep = c.call(method, params)
    return rep, time.monotonic() - t0


def reason(rep):
    return (rep.get("error") or {}).get("data", {}).get("reason")


# auth.* checks passwords on connections of their own that bind as the
# account, not as the service: such a connection is "up" as soon as TCP
# is, so against a server that accepts and then stays silent the bind is
# sent, and its honest answer is a timeout (a bind changes nothing).
SENT_WHEN_TCP_UP = {"auth.verify", "auth.login"}


def assert_unavailable_everywhere(d, tag):
    """Every directory-backed request is refused with
    directory_unavailable (or, for a password check that was sent, a
    timeout) within the deadline; ping and status still answer."""
    with d.client() as c:
        assert c.result("server.ping") == "pong"
        st = c.result("server.status")
        assert st["directory"] == "down", st
        assert st["seats_used"] is None
        for method, params in every_request(tag):
            if method == "server.status":
                continue
            rep, took = timed_call(c, method, params)
            allowed = {UNAVAILABLE}
            if method in SENT_WHEN_TCP_UP:
                allowed.add(TIMEOUT)
            assert reason(rep) in allowed, (method, rep)
            assert "message" in rep["error"]
            assert took < TIMEOUT_MS / 1000 + SLACK_S, (method, took)
        # The same, pipelined on one connection: all answered in time.
        t0 = time.monotonic()
        sent = {c.request(m, p): m for m, p in every_request(tag + "p")}
        for i, method in sent.items():
            rep = c.wait(i)
            assert "result" in rep or reason(rep) in (
                {UNAVAILABLE, TIMEOUT} if method in SENT_WHEN_TCP_UP
                else {UNAVAILABLE}), rep
        assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + SLACK_S


def vm_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                return int(line.split()[1])
    raise AssertionError("no VmPeak")


def next_attempts(d, name="service"):
    """The delays of the "next attempt in N ms" lines of one ldap
    connection, in order."""
    return [int(m.group(1)) for m in re.finditer(
        rf"ldap {name}: next attempt in (\d+) ms", d.log_text())]


# ---------------------------------------------------------------------------
# nobody answering


def test_silent_directory(slapd, tmpdir_short):
    """A server that accepts TCP but never answers: every request gets
    directory_unavailable within the deadline (the bind never completed,
    so nothing was sent), status says down, and the daemon retries with
    exponential backoff, capped, with jitter."""
    with SilentServer() as s:
        d = fast_daemon(slapd, tmpdir_short, uris=[s.uri])
        d.start(directory_up=False)
        try:
            assert_unavailable_everywhere(d, "silent")
            # Backoff: delays grow from reconnect_min_ms to
            # reconnect_max_ms and stay under it, jittered (50-100 % of
            # the backoff).
            wait_for(lambda: len(next_attempts(d)) >= 9, timeout=30,
                     what="nine reconnect attempts")
            delays = next_attempts(d)
            assert all(25 <= x <= 800 for x in delays), delays
            assert delays[0] <= 50, delays
            assert max(delays[:2]) < min(delays[5:]), delays
            capped = delays[5:]
            assert all(x >= 400 for x in capped), delays
            assert len(set(capped)) > 1, f"no jitter: {delays}"
            assert s.accepted >= 5, "the daemon stopped trying"
            with d.client() as c:
                assert c.result("server.status")["directory"] == "down"
        finally:
            d.stop()


@pytest.mark.parametrize("mode,close_after", [
    ("greet", None),
    ("reply", None),
    ("reply", 1),
    ("random", None),
    ("undecodable", None),
])
def test_garbage_directory(slapd, tmpdir_short, mode, close_after):
    """A server that answers garbage: the daemon neither crashes nor
    hangs; it keeps saying down and answers every request with
    directory_unavailable in time."""
    with GarbageServer(mode, close_after=close_after, seed=6) as g:
        d = fast_daemon(slapd, tmpdir_short, uris=[g.uri])
        d.start(directory_up=False, env=garbage_env())
        try:
            wait_for(lambda: g.accepted >= 3, timeout=20,
                     what="three connection attempts")
            assert_unavailable_everywhere(d, f"garbage-{mode}")
            # Password checks run on connections that are up as soon as
            # TCP is, so they do reach the garbage: an answer that cannot
            # be decoded is the directory failing (unavailable, or timeout
            # when sent), never an internal error of ours.
            with d.client() as c:
                for _ in range(20):
                    ids = [c.request(m, {"username": "rs-g",
                                         "password": PW})
                           for m in ("auth.login", "auth.verify")]
                    for i in ids:
                        rep = c.wait(i)
                        assert reason(rep) in (UNAVAILABLE, TIMEOUT), rep
            assert d.proc.poll() is None
            # No message may make libldap allocate what it claims to be
            # (a 4 GiB BER length is among the garbage): the daemon's
            # address space never grew near that.  (Sanitizers reserve
            # terabytes of address space of their own: not checked.)
            if not (SANITIZED or VALGRIND):
                peak = vm_peak_kib(d.proc.pid)
                assert peak < 1024 * 1024, f"VmPeak {peak} KiB"
        finally:
            d.stop()


def test_garbage_first_then_the_real_directory(slapd, tmpdir_short):
    """uris = [garbage, slapd]: the daemon moves on to the server that
    works and stays there."""
    with GarbageServer("reply", seed=7) as g:
        d = fast_daemon(slapd, tmpdir_short, uris=[g.uri, slapd.ldap_uri])
        d.start(env=garbage_env())
        try:
            with d.client() as c:
                st = c.result("server.status")
                assert st["ldap_server"] == slapd.ldap_uri
                acct = c.result("user.create", username="rs-gfirst",
                                full_name="G F", email="g@example.com")
                assert acct["username"] == "rs-gfirst"
                c.result("user.delete", username="rs-gfirst",
                         confirm="rs-gfirst")
        finally:
            d.stop()


def test_directory_refusing_connections(slapd, tmpdir_short):
    """Nothing listens at all (connection refused): unavailable at once,
    status down, backoff capped."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = fast_daemon(slapd, tmpdir_short, uris=[f"ldap://127.0.0.1:{port}"])
    d.start(directory_up=False)
    try:
        assert_unavailable_everywhere(d, "refused")
        wait_for(lambda: len(next_attempts(d)) >= 8, timeout=30,
                 what="eight reconnect attempts")
        delays = next_attempts(d)
        assert max(delays) <= 800 and min(delays[5:]) >= 400, delays
    finally:
        d.stop()


# ---------------------------------------------------------------------------
# silent mid-request


def outcome_stated(rep):
    """A timeout's message must say what became of the request."""
    msg = rep["error"]["message"].lower()
    return "unknown" in msg or re.search(
        r"nothing was (changed|created|deleted)", msg) is not None


def create_params(u, pw=PW):
    return {"username": u, "full_name": f"Name {u}",
            "email": f"{u}@example.com", "password": pw}


def fire_writes(c, tag, n):
    """Pipeline n creates, n updates, n password changes and n deletes
    (of accounts rs-<tag>-u<i>, which exist, and rs-<tag>-n<i>, which do
    not); returns {id: (method, params)}."""
    sent = {}
    for i in range(n):
        for method, params in (
                ("user.create", create_params(f"rs-{tag}-n{i}")),
                ("user.update", {"username": f"rs-{tag}-u{i}",
                                 "full_name": "Changed"}),
                ("user.set_password", {"username": f"rs-{tag}-u{i}",
                                       "password": PW + "new"}),
                ("user.delete", {"username": f"rs-{tag}-d{i}",
                                 "confirm": f"rs-{tag}-d{i}"})):
            sent[c.request(method, params)] = (method, params)
    return sent


def seed_accounts(c, tag, n):
    for i in range(n):
        for kind in "ud":
            c.result("user.create", create_params(f"rs-{tag}-{kind}{i}"))


def check_directory_after(slapd, sent, replies):
    """Replies that said nothing was changed must be true: a create
    refused that way left no entry, a delete refused that way left the
    entry."""
    for i, (method, params) in sent.items():
        rep = replies[i]
        if reason(rep) != UNAVAILABLE:
            continue
        u = params["username"]
        found = slapd.ldapsearch(slapd.people_dn, f"(uid={u})", ["1.1"],
                                 scope="one")
        if method == "user.create":
            assert not found, f"{u}: unavailable, yet created"
        if method == "user.delete":
            assert found, f"{u}: unavailable, yet deleted"


def test_frozen_directory(slapd, tmpdir_short):
    """slapd stopped with SIGSTOP: its sockets accept bytes and never
    answer.  Requests already sent end with `timeout` and a message
    saying the outcome is unknown; the daemon notices the silence and
    says down; later requests get directory_unavailable; everything is
    answered within the deadline; after SIGCONT service resumes by
    itself."""
    d = fast_daemon(slapd, tmpdir_short)
    d.start()
    try:
        c = d.client()
        seed_accounts(c, "fz", 4)
        seed_accounts(c, "fy", 2)
        pid = slapd.pid()
        with frozen(pid):
            t0 = time.monotonic()
            sent = fire_writes(c, "fz", 4)
            replies = {i: c.wait(i) for i in sent}
            took = time.monotonic() - t0
            assert took < TIMEOUT_MS / 1000 + SLACK_S, took
            for i, rep in replies.items():
                assert reason(rep) in (TIMEOUT, UNAVAILABLE), rep
                if reason(rep) == TIMEOUT:
                    assert outcome_stated(rep), rep
            assert any(reason(r) == TIMEOUT for r in replies.values())
            # The daemon has noticed: down, and new requests are refused
            # at once without waiting for a deadline.
            wait_for(lambda: c.result("server.status")["directory"] ==
                     "down", timeout=5, what="status down while frozen")
            t0 = time.monotonic()
            # (other accounts: a first-round create of the same name may
            # still be carried out when slapd thaws)
            sent2 = fire_writes(c, "fy", 2)
            replies2 = {i: c.wait(i) for i in sent2}
            assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + SLACK_S
            for rep in replies2.values():
                assert reason(rep) in (UNAVAILABLE, TIMEOUT), rep
            assert c.result("server.ping") == "pong"
        # Thawed: back by itself.
        wait_for(lambda: c.result("server.status")["directory"] == "up",
                 timeout=15, what="status up after SIGCONT")
        wait_for(lambda: "result" in c.call(
            "user.create", create_params("rs-fz-after")), timeout=15,
            what="a create to work again")
        # What was said to be unchanged is unchanged.
        time.sleep(0.5)
        check_directory_after(slapd, {**sent, **sent2},
                              {**replies, **replies2})
        c.close()
    finally:
        d.stop()


def test_partitioned_directory(slapd, tmpdir_short):
    """A network path that goes silent (a proxy that stops forwarding
    and never closes): like a frozen server, answered in time, status
    down; when the path comes back the daemon reconnects by itself."""
    with Proxy(slapd.port) as p:
        # reconcile_interval_s: how often the view's idle connection is
        # checked for life.
        d = fast_daemon(slapd, tmpdir_short, uris=[p.uri],
                        ldap={"reconcile_interval_s": 1})
        d.start()
        try:
            c = d.client()
            seed_accounts(c, "pt", 3)
            p.go_silent()
            t0 = time.monotonic()
            sent = fire_writes(c, "pt", 3)
            replies = {i: c.wait(i) for i in sent}
            assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + SLACK_S
            for rep in replies.values():
                assert reason(rep) in (TIMEOUT, UNAVAILABLE), rep
                if reason(rep) == TIMEOUT:
                    assert outcome_stated(rep), rep
            wait_for(lambda: c.result("server.status")["directory"] ==
                     "down", timeout=5, what="status down")
            p.go_loud()
            wait_for(lambda: c.result("server.status")["directory"] ==
                     "up", timeout=15, what="status up again")
            wait_for(lambda: "result" in c.call(
                "user.create", create_params("rs-pt-after")), timeout=15,
                what="a create to work again")
            check_directory_after(slapd, sent, replies)
            # The live view, whose connection sat idle in a persistent
            # search while the path was dead, follows the directory
            # again: an entry another LDAP client adds shows up.
            slapd.ldapadd(slapd.account_ldif("rs-pt-other"))
            wait_for(lambda: "result" in c.call(
                "user.get", {"username": "rs-pt-other"}), timeout=15,
                what="the view to follow the directory again")
            c.close()
        finally:
            d.stop()


# ---------------------------------------------------------------------------
# killed and restarted with requests in flight


class Load:
    """Worker threads sending a mix of requests, each on a connection of
    its own, one at a time, recording every reply and how long it took."""

    def __init__(self, d, tag, threads=6):
        self.d = d
        self.tag = tag
        self.stop = threading.Event()
        self.records = []          # (method, params, reply, seconds)
        self.lock = threading.Lock()
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(k,),
                                         daemon=True)
                        for k in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, k):
        try:
            c = self.d.client(timeout=TIMEOUT_MS / 1000 + 10 * SLOW)
            i = 0
            while not self.stop.is_set():
                u = f"rs-{self.tag}-{k}-{i % 5}"
                method, params = [
                    ("user.create", create_params(u)),
                    ("user.get", {"username": u}),
                    ("user.set_password", {"username": u,
                                           "password": PW + str(i)}),
                    ("user.update", {"username": u, "full_name": f"N{i}"}),
                    ("user.list", {"search": f"rs-{self.tag}-{k}-"}),
                    ("user.delete", {"username": u, "confirm": u}),
                    ("license.get", None),
                ][i % 7]
                rep, took = timed_call(c, method, params)
                with self.lock:
                    self.records.append((method, params, rep, took))
                i += 1
            c.close()
        except Exception as exc:      # reported by finish()
            self.errors.append(repr(exc))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=TIMEOUT_MS / 1000 + 30 * SLOW)
        assert not self.errors, self.errors
        return self.records


# Replies a write may get while the directory comes and goes, besides
# success: the outcome is always stated.
ALLOWED = {UNAVAILABLE, TIMEOUT, "not_found", "already_exists",
           "seat_limit_reached"}


def test_killed_and_restarted_with_requests_in_flight(slapd, tmpdir_short):
    """kill -9 slapd twice while six clients keep sending; every request
    is answered once, within the deadline, with a result or an error that
    states the outcome; the daemon comes back by itself each time."""
    d = fast_daemon(slapd, tmpdir_short)
    d.start()
    load = Load(d, "kr").start()
    try:
        for _ in range(2):
            wait_for(lambda: len(load.records) > 30, timeout=20,
                     what="some traffic")
            time.sleep(0.5)
            slapd.kill()
            time.sleep(1.0)
            with d.client() as c:
                assert c.result("server.status")["directory"] == "down"
            slapd.start()
            with d.client() as c:
                wait_for(lambda: c.result("server.status")["directory"] ==
                         "up", timeout=15, what="status up after restart")
        n = len(load.records)
        wait_for(lambda: len(load.records) > n + 30, timeout=20,
                 what="traffic after the restarts")
    finally:
        if not slapd.running:
            slapd.start()
        records = load.finish()
    try:
        reasons = {}
        for method, params, rep, took in records:
            assert took < TIMEOUT_MS / 1000 + SLACK_S, (method, took, rep)
            if "error" in rep:
                r = reason(rep)
                assert r in ALLOWED, (method, rep)
                if r == TIMEOUT:
                    assert outcome_stated(rep), rep
                reasons[r] = reasons.get(r, 0) + 1
            else:
                reasons["ok"] = reasons.get("ok", 0) + 1
        assert reasons.get("ok", 0) > 60, reasons
        assert reasons.get(UNAVAILABLE, 0) > 0, reasons
        with d.client() as c:
            acct = c.result("user.create", create_params("rs-kr-last"))
            assert acct["username"] == "rs-kr-last"
    finally:
        d.stop()


# ---------------------------------------------------------------------------
# SIGTERM and SIGHUP


def test_sigterm_answers_what_is_in_flight(slapd, tmpdir_short):
    """SIGTERM with requests stuck on a frozen slapd: the daemon stops
    accepting, answers every request (timeout or unavailable, with the
    outcome stated) within shutdown.grace_ms, and exits 0."""
    grace_ms = 1500 * SLOW
    d = fast_daemon(slapd, tmpdir_short, ldap={"timeout_ms": 60000},
                    shutdown={"grace_ms": grace_ms})
    d.start()
    try:
        clients = [d.client(timeout=30 * SLOW) for _ in range(3)]
        for k, c in enumerate(clients):
            seed_accounts(c, f"st{k}", 3)
        with frozen(slapd.pid()):
            sent = [(c, fire_writes(c, f"st{k}", 3))
                    for k, c in enumerate(clients)]
            # in flight, not answered
            wait_for(lambda: json_status(d)["requests_in_flight"] >= 36,
                     timeout=10, what="requests in flight")
            t0 = time.monotonic()
            d.send_signal(signal.SIGTERM)
            # Stops accepting: a new client is not served.
            time.sleep(0.2)
            assert not served(d), "a new client was served after SIGTERM"
            for c, ids in sent:
                for i in ids:
                    rep = c.wait(i)
                    assert reason(rep) in (TIMEOUT, UNAVAILABLE), rep
                    assert outcome_stated(rep), rep
                # then the daemon closes the connection
                assert c.recv_line() is None
            rc = d.proc.wait(timeout=grace_ms / 1000 + 10 * SLOW)
            took = time.monotonic() - t0
        assert rc == 0, d.log_text()[-3000:]
        assert took < grace_ms / 1000 + 3 * SLOW, took
        for c in clients:
            c.close()
    finally:
        d.stop()


def json_status(d):
    with d.client() as c:
        return c.result("server.status")


def served(d):
    """Does a new client get an answer to server.ping?"""
    try:
        with Client(d.sock, timeout=1) as c:
            return c.result("server.ping") == "pong"
    except (OSError, ConnectionError, ValueError, RpcError):
        return False


def test_sighup_keeps_connections_and_requests(slapd, tmpdir_short):
    """SIGHUP three times while three connections have requests in flight
    (stuck on a frozen slapd) and more pipelined behind them: no
    connection is dropped, every request is answered once, and once
    slapd thaws the writes succeed."""
    d = fast_daemon(slapd, tmpdir_short, ldap={"timeout_ms": 60000})
    d.start()
    try:
        clients = [d.client(timeout=30 * SLOW) for _ in range(3)]
        for k, c in enumerate(clients):
            seed_accounts(c, f"hu{k}", 2)
        with frozen(slapd.pid()):
            sent = [(c, fire_writes(c, f"hu{k}", 2))
                    for k, c in enumerate(clients)]
            wait_for(lambda: json_status(d)["requests_in_flight"] >= 12,
                     timeout=10, what="requests in flight")
            for seats in (30, 31, 32):
                d.settings["license"]["seats"] = seats
                d.write_config()
                d.reload()
                # more requests pipelined during the reloads
                for c, ids in sent:
                    ids[c.request("server.ping")] = ("server.ping", None)
        for c, ids in sent:
            for i, (method, _) in ids.items():
                rep = c.wait(i)
                assert "result" in rep, (method, rep)
            assert c.result("license.get")["seats"] == 32
            c.close()
        assert "reloaded" in d.log_text()
    finally:
        d.stop()
