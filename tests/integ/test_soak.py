"""Soak: thousands of mixed operations from many clients while slapd is
killed (SIGKILL) and restarted several times; then the directory is
compared with a model of what the replies said.

The comparison is made each time slapd lies dead (read with slapcat,
once every request sent before the kill has its reply: nothing can change
the data then) and once more at the end.  What must hold:
  - every request is answered exactly once, within the deadline;
  - every acknowledged create is there (unless later deleted), every
    acknowledged delete is gone;
  - every account whose password was acknowledged (create with password,
    set_password) has that password;
  - the directory never holds more entries under people_dn than seats;
  - a `timeout` reply means "unknown": the model accepts either outcome,
    even one that lands later than the reply (an abandoned operation that
    the server still carried out).

SOAK_SECONDS (default 40) sets how long the load runs; `make check`
uses the default, a longer soak is e.g. SOAK_SECONDS=600.
"""

import base64
import hashlib
import json
import os
import random
import threading
import time

import shlex
import subprocess

import pytest

from otasenv import SLOW, Client, Daemon, wait_for
from slapdenv import parse_ldif, running_slapd

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
THREADS = 16
NAMES_PER_THREAD = 8            # 128 names for SEATS seats: the limit bites
SEATS = 60
# Requests queued while slapd lies dead wait out this deadline, and the
# comparison after each kill waits for them: kept short under the
# sanitizers too (their daemon is slower at computing, not at waiting).
TIMEOUT_MS = 5000 * min(SLOW, 2)
KILL_EVERY_S = 6

# Replies that change nothing, whatever the directory did meanwhile.
DEFINITE_FAILURES = {"directory_unavailable", "already_exists",
                     "not_found", "seat_limit_reached"}


@pytest.fixture(scope="module")
def soak_slapd():
    with running_slapd(hash="SSHA", dbnosync=True) as s:
        yield s


# ---------------------------------------------------------------------------
# the model


class Model:
    """What the replies allow the directory to hold for one username.

    A state is (exists, password, pending): password is the one set last
    (None: none), pending the operations whose outcome is unknown and that
    may still take effect, at any later moment, at most once each."""

    MAX_PENDING = 6

    def __init__(self):
        self.states = {(False, None, frozenset())}
        self.unknown_ops = []        # (kind, password)
        self.overflow = False

    @staticmethod
    def apply(kind, pw, exists, cur_pw):
        """The states an operation can leave behind when it takes
        effect."""
        if kind == "create":
            return {(True, pw)} if not exists else {(exists, cur_pw)}
        if kind == "create?":
            # A create whose outcome is unknown may also have stopped
            # half-way: added, password not set (the reply says so).
            return {(True, pw), (True, None)} if not exists else \
                {(exists, cur_pw)}
        if kind == "delete":
            return {(False, None)}
        if kind == "passwd":
            return {(True, pw)} if exists else {(exists, cur_pw)}
        return {(exists, cur_pw)}

    def _closure(self):
        todo = list(self.states)
        seen = set(self.states)
        while todo:
            exists, pw, pending = todo.pop()
            for p in pending:
                kind, npw = self.unknown_ops[p]
                for e2, pw2 in self.apply(kind, npw, exists, pw):
                    st = (e2, pw2, pending - {p})
                    if st not in seen:
                        seen.add(st)
                        todo.append(st)
        self.states = seen

    def step(self, kind, pw, outcome):
        """kind: create/delete/passwd/update; outcome: ok, failed or
        unknown."""
        if self.overflow:
            return
        self._closure()
        if outcome == "failed":
            return
        if outcome == "ok":
            self.states = {st + (pend,) for e, p, pend in self.states
                           for st in self.apply(kind, pw, e, p)}
            return
        if kind == "create" and pw is not None:
            kind = "create?"
        idx = len(self.unknown_ops)
        self.unknown_ops.append((kind, pw))
        new = set()
        for e, p, pend in self.states:
            for st in self.apply(kind, pw, e, p):
                new.add(st + (pend,))
            new.add((e, p, pend | {idx}))
        if any(len(pend) > self.MAX_PENDING for _, _, pend in new):
            self.overflow = True
        self.states = new

    def finals(self):
        self._closure()
        return {(e, p) for e, p, _ in self.states}


def ssha_matches(stored, password):
    if not stored.startswith("{SSHA}"):
        return False
    raw = base64.b64decode(stored[6:])
    digest, salt = raw[:20], raw[20:]
    return hashlib.sha1(password.encode() + salt).digest() == digest


# ---------------------------------------------------------------------------
# the load


class Worker(threading.Thread):
    """One client: its own connection and its own usernames, one request
    at a time, so that the replies say in which order things happened to
    each of its accounts."""

    def __init__(self, k, d, stop):
        super().__init__(daemon=True)
        self.k = k
        self.d = d
        self.stop_ev = stop
        self.rng = random.Random(1000 + k)
        self.names = [f"sk{k:02d}x{i}" for i in range(NAMES_PER_THREAD)]
        self.models = {n: Model() for n in self.names}
        self.history = {n: [] for n in self.names}   # for failure reports
        self.counts = {}
        self.error = None
        self.slowest = 0.0
        self.next_id = 0
        self.lock = threading.Lock()     # guards models
        self.last_sent = 0.0             # monotonic time of the last send
        self.finished = False

    def call(self, c, method, params):
        self.next_id += 1
        rid = f"{self.k}-{self.next_id}"
        t0 = time.monotonic()
        self.last_sent = t0
        c.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                           "params": params}) + "\n")
        rep = c.recv_line()
        took = time.monotonic() - t0
        self.slowest = max(self.slowest, took)
        assert rep is not None, f"{rid} {method}: connection closed"
        # One request at a time: the next line is its reply, or some
        # request was answered twice.
        assert rep.get("id") == rid, f"{rid} {method}: got reply {rep}"
        assert took < TIMEOUT_MS / 1000 + 3 * SLOW, (rid, method, took)
        return rep

    def run(self):
        try:
            c = self.d.client(timeout=TIMEOUT_MS / 1000 + 30 * SLOW)
            while not self.stop_ev.is_set():
                self.one(c)
            # Nothing more may arrive: a ping's reply is the next line,
            # and after it, end of file.
            self.call(c, "server.ping", {})
            c.sock.shutdown(1)
            extra = c.recv_line()
            assert extra is None, f"a reply nobody asked for: {extra}"
            c.close()
        except Exception as exc:          # reported by the test
            self.error = exc
        finally:
            self.finished = True

    def one(self, c):
        rng = self.rng
        u = rng.choice(self.names)
        r = rng.random()
        pw = None
        if r < 0.30:
            kind, method = "create", "user.create"
            params = {"username": u, "full_name": f"Soak {u}",
                      "email": f"{u}@example.com"}
            if rng.random() < 0.7:
                pw = f"pw-{u}-{rng.getrandbits(40):x}"
                params["password"] = pw
        elif r < 0.50:
            kind, method = "delete", "user.delete"
            params = {"username": u, "confirm": u}
        elif r < 0.65:
            kind, method = "passwd", "user.set_password"
            pw = f"pw-{u}-{rng.getrandbits(40):x}"
            params = {"username": u, "password": pw}
        elif r < 0.80:
            kind, method = "update", "user.update"
            params = {"username": u, "full_name": f"Soak {rng.random()}",
                      "email": f"{u}.{rng.randint(0, 99)}@example.com"}
        elif r < 0.90:
            kind, method = "get", "user.get"
            params = {"username": u}
        else:
            kind, method = "list", "user.list"
            params = {"search": f"sk{self.k:02d}x", "limit": 50}
        rep = self.call(c, method, params)
        if "result" in rep:
            outcome = "ok"
        else:
            err = rep["error"]
            reason = (err.get("data") or {}).get("reason")
            if reason in DEFINITE_FAILURES:
                outcome = "failed"
            elif reason == "timeout":
                outcome = "unknown"
            else:
                raise AssertionError(f"{method} {u}: unexpected {rep}")
            self.counts[reason] = self.counts.get(reason, 0) + 1
        self.counts[method + ":" + outcome] = self.counts.get(
            method + ":" + outcome, 0) + 1
        if kind not in ("get", "list"):
            with self.lock:
                self.models[u].step(kind, pw, outcome)
                h = self.history[u]
                h.append(f"{time.monotonic():.3f} {kind} {pw or ''} -> "
                         f"{outcome} {rep.get('error', {}).get('message', '')}")
                del h[:-12]


class SeatWatch(threading.Thread):
    """Counts the entries under people_dn every half second while slapd
    is up; remembers the largest count."""

    def __init__(self, s, stop):
        super().__init__(daemon=True)
        self.s = s
        self.stop_ev = stop
        self.most = 0
        self.samples = 0

    def run(self):
        while not self.stop_ev.wait(0.5):
            if not self.s.running:
                continue
            res = self.s.ldapsearch(self.s.people_dn, "(objectClass=*)",
                                    ["1.1"], scope="one", check=False)
            if res.rc == 0:
                self.most = max(self.most, len(res))
                self.samples += 1


def people_now(s):
    """uid -> Entry for the entries directly under people_dn, read with
    slapcat (which works whether slapd runs or lies dead)."""
    cmd = ["slapcat"] + shlex.split(s.env["SLAPD_CONF_ARGS"]) + [
        "-b", s.suffix, "-o", "ldif-wrap=no"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    suffix = "," + s.people_dn.lower()
    out = {}
    for e in parse_ldif(run.stdout):
        dn = e.dn.lower()
        if dn.endswith(suffix) and "," not in dn[:-len(suffix)]:
            out[e.first("uid")] = e
    return out


class Compare:
    """Checks the directory against every worker's models."""

    def __init__(self):
        self.checked = self.with_pw = self.skipped = self.rounds = 0
        self.certain = []               # (username, password)

    def check(self, entries, workers, when):
        assert len(entries) <= SEATS, (
            f"{when}: {len(entries)} entries for {SEATS} seats")
        self.rounds += 1
        self.certain = []
        for w in workers:
            with w.lock:
                finals = {u: m.finals() for u, m in w.models.items()
                          if not m.overflow}
                self.skipped += len(w.models) - len(finals)
            for u, fin in finals.items():
                try:
                    self.one(u, fin, entries.get(u), when)
                except AssertionError as exc:
                    with w.lock:
                        hist = "\n  ".join(w.history[u])
                    raise AssertionError(f"{exc}\nlast replies for {u} "
                                         f"(now {time.monotonic():.3f}):"
                                         f"\n  {hist}") from None

    def one(self, u, finals, e, when):
        exists = e is not None
        assert any(fe == exists for fe, _ in finals), (
            f"{when}: {u} is {'present' if exists else 'absent'} in the "
            f"directory; the replies allow only {finals}")
        self.checked += 1
        if not exists:
            return
        stored = e.first("userPassword")
        for fe, fpw in finals:
            if not fe:
                continue
            if fpw is None and stored is None:
                return
            if fpw is not None and stored is not None and \
                    ssha_matches(stored, fpw):
                self.with_pw += 1
                if len(finals) == 1:
                    self.certain.append((u, fpw))
                return
        raise AssertionError(f"{when}: {u} has a password none of the "
                             f"replies allow ({finals})")


def wait_replied_since(workers, t, timeout):
    """Wait until every worker has sent a request after time t, that is,
    has its reply to whatever it had sent before."""
    wait_for(lambda: all(w.finished or w.last_sent > t for w in workers),
             timeout=timeout, what="replies to what was in flight")


def test_soak(soak_slapd, tmpdir_short):
    s = soak_slapd
    d = Daemon(s, tmpdir_short, seats=SEATS, log_level="info", extra={
        "ldap": {"timeout_ms": TIMEOUT_MS, "reconnect_min_ms": 50,
                 "reconnect_max_ms": 500},
        "socket": {"max_inflight_per_connection": 8}})
    d.start()
    stop = threading.Event()
    workers = [Worker(k, d, stop) for k in range(THREADS)]
    watch = SeatWatch(s, stop)
    cmp = Compare()
    kills = 0
    try:
        for w in workers:
            w.start()
        watch.start()
        rng = random.Random(6)
        end = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < end - 3:
            time.sleep(min(KILL_EVERY_S * rng.uniform(0.6, 1.2),
                           max(0.0, end - time.monotonic())))
            if time.monotonic() >= end - 3:
                break
            s.kill()
            kills += 1
            # Dead: once what was in flight has its reply, the data on
            # disk must agree with every reply.
            wait_replied_since(workers, time.monotonic(),
                               TIMEOUT_MS / 1000 + 10)
            cmp.check(people_now(s), workers, f"after kill {kills}")
            time.sleep(rng.uniform(0.1, 1.0))
            s.start()
        remaining = end - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    finally:
        stop.set()
        if not s.running:
            s.start()
        for w in workers:
            w.join(timeout=TIMEOUT_MS / 1000 + 60 * SLOW)
        watch.join(timeout=30)
    errors = [f"worker {w.k}: {w.error!r}" for w in workers if w.error]
    assert not errors, "\n".join(errors)
    # Several restarts (fewer under the sanitizers, where each costs
    # more of the time).
    assert kills >= min(2, int(SOAK_SECONDS // KILL_EVERY_S) - 1), kills

    # Let anything the daemon still owes the directory finish (seat
    # settlements are fire and forget), then compare once more.
    with d.client() as c:
        wait_for(lambda: c.result("server.status")["directory"] == "up",
                 timeout=20, what="directory up at the end")
        wait_for(lambda: c.result("server.status")["requests_in_flight"]
                 == 1, timeout=20, what="nothing in flight")
        lic = c.result("license.get")
        assert lic["used"] <= SEATS, lic
    cmp.check(people_now(s), workers, "at the end")
    assert watch.most <= SEATS, f"{watch.most} entries seen for {SEATS}"
    assert watch.samples > 10

    totals = {}
    for w in workers:
        for k, v in w.counts.items():
            totals[k] = totals.get(k, 0) + v
    total_ops = sum(v for k, v in totals.items() if ":" in k)
    print(f"\nsoak: {total_ops} requests in {SOAK_SECONDS:.0f} s, "
          f"{kills} kills, {cmp.rounds} comparisons of "
          f"{THREADS * NAMES_PER_THREAD} accounts ({cmp.with_pw} "
          f"passwords matched, {cmp.skipped} too uncertain), most "
          f"entries seen {watch.most}/{SEATS}; slowest reply "
          f"{max(w.slowest for w in workers):.2f} s\n{totals}")
    assert total_ops >= 2000 * min(1.0, SOAK_SECONDS / 40) / SLOW, totals
    assert totals.get("user.create:ok", 0) > 50, totals
    assert totals.get("user.delete:ok", 0) > 20, totals
    assert totals.get("user.set_password:ok", 0) > 20, totals
    assert totals.get("directory_unavailable", 0) > 0, totals
    assert cmp.skipped <= cmp.rounds * THREADS * NAMES_PER_THREAD // 10
    # A real bind for a sample of the accounts whose password is certain.
    for u, pw in cmp.certain[:10]:
        assert s.whoami(s.user_dn(u), pw) == 0, u
    d.stop()
