"""auth.login and auth.verify against a real slapd: what a client sees for
right and wrong passwords, unknown and inactive accounts, hostile
usernames, throttling, a flood of wrong passwords, status and role changes
while logged in, and the account's rights over itself."""

import base64
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time

import pytest

from otasenv import (SANITIZED, SLOW, VALGRIND, Client, Daemon, RpcError,
                     wait_for)
from slapdenv import INVALID_CREDENTIALS, running_slapd
from test_permissions import (PeerClient, add_account, open_socket_dir,
                              set_attr, snapshot, view_shows)

PW = "Right-pass-123"
WRONG = "Wrong-pass-123"

INVALID = -32006
INACTIVE = -32007
DENIED = -32001
UNAVAILABLE = -32010
TIMEOUT = -32011
RATE_LIMITED = -32013


def login_error(c, username, password, method="auth.login"):
    return c.error(method, username=username, password=password)


def no_secret_logged(d, *secrets):
    """Neither the log nor the audit trail holds any of the secrets."""
    text = d.log_text()
    if d.audit_path.exists():
        text += d.audit_path.read_text()
    for s in secrets:
        assert s not in text, "a password reached the log or audit trail"


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def tdaemon(slapd, tmpdir_short):
    """A daemon with a quick throttle: 3 failures, then 1 s doubling to
    4 s."""
    d = Daemon(slapd, tmpdir_short, extra={"auth": {
        "max_failures": 3, "base_delay_s": 1, "max_delay_s": 4}})
    d.start()
    open_socket_dir(d)
    yield d
    d.stop()


@pytest.fixture
def loose(slapd, tmpdir_short):
    """A daemon that throttles only after many failures."""
    d = Daemon(slapd, tmpdir_short, extra={"auth": {"max_failures": 100000}})
    d.start()
    open_socket_dir(d)
    yield d
    d.stop()


# ---------------------------------------------------------------------------
# right and wrong


def test_login_returns_the_account_and_switches_the_connection(
        slapd, daemon, client):
    add_account(slapd, "au-alice", PW)
    wait_for(lambda: view_shows(client, "au-alice"), what="view")
    with daemon.client() as c:
        assert c.result("auth.whoami")["kind"] == "peer"
        a = c.result("auth.login", username="au-alice", password=PW)
        assert a == {"username": "au-alice", "full_name": "User au-alice",
                     "email": "au-alice@example.com", "status": "active",
                     "role": "user"}
        assert c.result("auth.whoami") == {
            "kind": "account", "role": "user", "username": "au-alice"}
    # Usernames compare case-insensitively; the stored spelling comes back.
    with daemon.client() as c:
        a = c.result("auth.login", username="AU-Alice", password=PW)
        assert a["username"] == "au-alice"
        assert c.result("auth.whoami")["username"] == "au-alice"
    audit = [e for e in daemon.audit() if e["method"] == "auth.login"]
    assert audit[-1]["outcome"] == "ok" and audit[-1]["target"] == "au-alice"
    no_secret_logged(daemon, PW)


def test_wrong_password_and_unknown_user_look_the_same(slapd, loose):
    add_account(slapd, "au-bert", PW)
    with loose.client() as c:
        wrong = login_error(c, "au-bert", WRONG)
        unknown = login_error(c, "au-nobody-here", WRONG)
        for e in (wrong, unknown):
            assert e.code == INVALID
            assert e.reason == "invalid_credentials"
        assert wrong.error == unknown.error
        # ... and take about as long.
        times = {"wrong": [], "unknown": []}
        for _ in range(40):
            for kind, name in (("wrong", "au-bert"),
                               ("unknown", "au-nobody-here")):
                t = time.monotonic()
                assert login_error(c, name, WRONG).code == INVALID
                times[kind].append(time.monotonic() - t)
        mw = statistics.median(times["wrong"])
        mu = statistics.median(times["unknown"])
        assert abs(mw - mu) < 0.010 * SLOW, (mw, mu)
        assert c.result("auth.whoami")["kind"] == "peer"
    outcomes = [e["outcome"] for e in loose.audit()
                if e["method"] == "auth.login"]
    assert outcomes.count("invalid_credentials") >= 82
    log = loose.log_text()
    assert "auth.login au-bert by uid 0" in log
    assert ": invalid_credentials" in log
    no_secret_logged(loose, WRONG)


def test_inactive_account(slapd, daemon, client):
    add_account(slapd, "au-ina", PW, status="inactive")
    # slapd itself refuses the bind (the shipped access rules) ...
    assert slapd.whoami(slapd.user_dn("au-ina"), PW) == INVALID_CREDENTIALS
    # ... and otasdird says why when the password is right, and only then.
    e = login_error(client, "au-ina", PW)
    assert (e.code, e.reason) == (INACTIVE, "account_inactive")
    e = login_error(client, "au-ina", WRONG)
    assert (e.code, e.reason) == (INVALID, "invalid_credentials")
    e = login_error(client, "au-ina", PW, method="auth.verify")
    assert e.code == INACTIVE
    assert client.result("auth.whoami")["kind"] == "peer"
    outcomes = [e["outcome"] for e in daemon.audit()
                if e.get("target") == "au-ina"]
    assert "account_inactive" in outcomes
    no_secret_logged(daemon, PW, WRONG)


def slappasswd(scheme, password):
    """A hash of password in scheme, made by slapd's own tool."""
    with tempfile.NamedTemporaryFile("w", dir="/tmp") as f:
        os.chmod(f.name, 0o600)
        f.write(password)
        f.flush()
        args = ["slappasswd", "-T", f.name, "-h", scheme,
                "-o", "module-path=/usr/lib/ldap"]
        if scheme == "{ARGON2}":
            args += ["-o", "module-load=argon2"]
        elif "SHA2" in scheme or "SHA5" in scheme or "SHA3" in scheme:
            args += ["-o", "module-load=pw-sha2"]
        elif scheme == "{CRYPT}":
            args += ["-c", "$6$%.16s"]
        out = subprocess.run(args, capture_output=True, text=True,
                             check=True)
    return out.stdout.strip()


# What slapd 2.5.13's argon2 module leaves after the hash: the NUL and
# a byte of whatever followed in its buffer (seen: \0\0, \0\xa0, \0P).
TAILS = {"": b"", "+NUL": b"\0", "+NULNUL": b"\0\0", "+NULjunk": b"\0\xa0",
         "+NULP": b"\0P"}


@pytest.mark.parametrize("scheme", [
    "{SSHA}", "{SHA}", "{SSHA256}", "{SSHA512}", "{SMD5}", "{CRYPT}",
    "{ARGON2}", "{ARGON2}+NUL", "{ARGON2}+NULNUL", "{ARGON2}+NULjunk",
    "{ARGON2}+NULP"])
def test_inactive_account_with_each_hash_scheme(slapd, daemon, client,
                                                scheme):
    """otasdird checks an inactive account's password itself, whatever
    scheme slapd stored it in (argon2 values may carry a NUL and junk)."""
    name = "au-h-" + "".join(ch for ch in scheme.lower() if ch.isalnum())
    add_account(slapd, name, None, status="inactive")
    base, plus, tail = scheme.partition("+")
    h = slappasswd(base, PW).encode() + TAILS[plus + tail]
    slapd.ldapmodify(f"dn: {slapd.user_dn(name)}\nchangetype: modify\n"
                     f"replace: userPassword\n"
                     f"userPassword:: {base64.b64encode(h).decode()}\n")
    assert login_error(client, name, PW).code == INACTIVE
    assert login_error(client, name, WRONG).code == INVALID
    assert login_error(client, name, PW[:-1]).code == INVALID


@pytest.fixture(scope="module")
def argon2_slapd():
    with running_slapd(hash="ARGON2") as s:
        yield s


def test_argon2_directory(argon2_slapd, tmpdir_short):
    """With slapd hashing {ARGON2} (as the sandbox does) through Password
    Modify, active logins work and inactive ones are told apart."""
    s = argon2_slapd
    d = Daemon(s, tmpdir_short, extra={"auth": {"max_failures": 1000}})
    d.start()
    try:
        for name, status in (("au-a2", "active"), ("au-a2-off", "inactive")):
            add_account(s, name, None, status=status)
            s.ldappasswd(s.user_dn(name), PW)
        stored = s.ldapsearch(s.user_dn("au-a2-off"), attrs=["userPassword"],
                              scope="base")[0].first("userPassword")
        assert stored.startswith("{ARGON2}")
        # slapd's argon2 module stores its buffer's tail after the NUL:
        # more accounts make that show up (it made 1 in 40 fail before).
        for i in range(40):
            add_account(s, f"au-a2-off{i}", None, status="inactive")
            s.ldappasswd(s.user_dn(f"au-a2-off{i}"), PW)
        with d.client() as c:
            assert c.result("auth.login", username="au-a2",
                            password=PW)["status"] == "active"
            assert login_error(c, "au-a2", WRONG).code == INVALID
            assert login_error(c, "au-a2-off", PW).code == INACTIVE
            assert login_error(c, "au-a2-off", WRONG).code == INVALID
            for i in range(40):
                assert login_error(c, f"au-a2-off{i}", PW).code == INACTIVE
            # The hash checks (~12 ms of CPU each) run off the event
            # loop: another client is answered while they queue.
            with d.client() as other:
                ids = [other.request("auth.verify",
                                     {"username": "au-a2-off",
                                      "password": PW}) for _ in range(40)]
                for _ in range(10):
                    assert c.result("server.ping") == "pong"
                for i in ids:
                    assert other.wait(i)["error"]["code"] == INACTIVE
    finally:
        d.stop()


def test_accounts_the_view_has_not_seen_yet(tmpdir_short):
    """Without syncprov the view re-reads the directory only now and then;
    a login must not depend on it: otasdird reads the entry itself."""
    with running_slapd(syncprov=False) as s:
        d = Daemon(s, tmpdir_short,
                   extra={"ldap": {"reconcile_interval_s": 3600}})
        d.start()
        try:
            add_account(s, "au-new", PW, role="superadmin")
            add_account(s, "au-new-off", PW, status="inactive")
            # An entry under people_dn that is no platform account.
            s.ldapadd(f"dn: {s.user_dn('au-plain')}\n"
                      "objectClass: inetOrgPerson\nuid: au-plain\n"
                      f"cn: Plain\nsn: Plain\nuserPassword: {PW}\n")
            with d.client() as c:
                assert c.error("user.get", username="au-new").code == \
                    -32002
                a = c.result("auth.verify", username="au-new", password=PW)
                assert a == {"username": "au-new",
                             "full_name": "User au-new",
                             "email": "au-new@example.com",
                             "status": "active", "role": "superadmin"}
                assert login_error(c, "AU-NEW", WRONG).code == INVALID
                assert login_error(c, "au-new-off", PW).code == INACTIVE
                assert s.whoami(s.user_dn("au-plain"), PW) == 0
                assert login_error(c, "au-plain", PW).code == INVALID
        finally:
            d.stop()


# ---------------------------------------------------------------------------
# hostile input


def test_empty_and_oversized_passwords(slapd, loose):
    add_account(slapd, "au-empty", PW)
    with loose.client() as c:
        for name in ("au-empty", slapd.superadmin, "au-nobody-here"):
            e = login_error(c, name, "")
            assert e.code == INVALID, "an empty password must never bind"
            assert c.result("auth.whoami")["kind"] == "peer"
        assert login_error(c, "au-empty", PW + "x" * 257).code == INVALID
        # 256 bytes is still a password (and a wrong one here).
        assert login_error(c, "au-empty", "y" * 256).code == INVALID
        assert login_error(c, "", PW).code == INVALID
        assert c.result("auth.login", username="au-empty",
                        password=PW)["username"] == "au-empty"


@pytest.mark.parametrize("username", [
    "*", "a)(uid=*", "x,ou=people", "admin,ou=people", "admin*",
    "*)(objectClass=*", "admin)(|(uid=*", "uid=admin", "admin\\", " admin",
    "admin ", "#admin", "adm\u00efn", "a" * 65, "admin\n",
])
def test_hostile_usernames(slapd, loose, username):
    """Filter and DN metacharacters are just a wrong username: even with
    the real admin's password, nothing binds and nothing changes."""
    before = snapshot(slapd)
    with loose.client() as c:
        for method in ("auth.login", "auth.verify"):
            e = login_error(c, username, slapd.superadmin_pw, method=method)
            assert (e.code, e.reason) == (INVALID, "invalid_credentials")
        assert c.result("auth.whoami")["kind"] == "peer"
    assert snapshot(slapd) == before
    assert "invalid username" in loose.log_text()


# ---------------------------------------------------------------------------
# throttling


def test_throttle_per_account(slapd, tdaemon):
    add_account(slapd, "au-thr", PW)
    with tdaemon.client() as c:
        for _ in range(3):
            assert login_error(c, "au-thr", WRONG).code == INVALID
        e = login_error(c, "au-thr", WRONG)
        assert (e.code, e.reason) == (RATE_LIMITED, "rate_limited")
        assert isinstance(e.data["retry_after_s"], int)
        assert e.data["retry_after_s"] >= 1
        # Throttled: even the right password is not tried now.
        e = login_error(c, "au-thr", PW)
        assert e.code == RATE_LIMITED
        # Another account is not affected (an admin peer has no per-peer
        # count).
        assert login_error(c, "au-nobody-here", WRONG).code == INVALID

        time.sleep(e.data["retry_after_s"])
        assert c.result("auth.verify", username="au-thr",
                        password=PW)["username"] == "au-thr"
        # The success reset the count: three more tries before a delay.
        for _ in range(3):
            assert login_error(c, "au-thr", WRONG).code == INVALID
        e = login_error(c, "au-thr", WRONG)
        assert e.code == RATE_LIMITED and e.data["retry_after_s"] == 1
        # The delay doubles with each further failure.
        time.sleep(1.05)
        assert login_error(c, "au-thr", WRONG).code == INVALID
        e = login_error(c, "au-thr", WRONG)
        assert e.code == RATE_LIMITED and e.data["retry_after_s"] == 2
    outcomes = [a["outcome"] for a in tdaemon.audit()
                if a.get("target") == "au-thr"]
    assert "rate_limited" in outcomes
    rl = [a for a in tdaemon.audit() if a["outcome"] == "rate_limited"]
    assert all(a["retry_after_s"] >= 1 for a in rl)


def test_throttle_holds_against_pipelining(slapd, tdaemon):
    """Attempts in flight count: 60 pipelined guesses at one account get
    exactly max_failures real tries."""
    add_account(slapd, "au-pipe", PW)
    with tdaemon.client() as c:
        ids = [c.request("auth.login", {"username": "au-pipe",
                                        "password": f"{WRONG}{i}"})
               for i in range(60)]
        codes = [c.wait(i)["error"]["code"] for i in ids]
    assert codes.count(INVALID) == 3
    assert codes.count(RATE_LIMITED) == 57


def test_throttle_per_peer(slapd, tdaemon):
    """A non-admin peer is throttled across usernames; a success resets
    it."""
    add_account(slapd, "au-peer", PW)
    with PeerClient(tdaemon.sock) as p:
        for i in range(3):
            assert login_error(p, f"au-guess{i}", WRONG).code == INVALID
        e = login_error(p, "au-guess-new", WRONG)
        assert e.code == RATE_LIMITED and e.data["retry_after_s"] >= 1
        time.sleep(e.data["retry_after_s"])
        assert p.result("auth.login", username="au-peer",
                        password=PW)["username"] == "au-peer"
        assert login_error(p, "au-guess-x", WRONG).code == INVALID
        assert login_error(p, "au-guess-y", WRONG).code == INVALID
    # Another uid (root) is not throttled by nobody's failures.
    with tdaemon.client() as c:
        assert login_error(c, "au-guess-z", WRONG).code == INVALID


def pinger(sock, stop, stats):
    """Ping until stop is set; record every answer."""
    try:
        with Client(sock, timeout=30 * SLOW) as c:
            while not stop.is_set():
                t = time.monotonic()
                assert c.result("server.ping") == "pong"
                stats["n"] += 1
                stats["max"] = max(stats["max"], time.monotonic() - t)
                time.sleep(0.005)
    except Exception as exc:  # reported by the main thread
        stats["error"] = exc


def flood(c, n, name_of, window=60):
    """n wrong-password logins pipelined window at a time; the error
    codes in order."""
    codes = []
    for start in range(0, n, window):
        ids = [c.request("auth.login", {"username": name_of(i),
                                        "password": WRONG})
               for i in range(start, min(n, start + window))]
        codes += [c.wait(i)["error"]["code"] for i in ids]
    return codes


def test_ten_thousand_wrong_passwords(slapd, tmpdir_short):
    """10,000 wrong passwords for 10,000 different usernames from one
    admin client, twice: every one answered, other clients keep being
    served, and the daemon's memory stays bounded (the throttle tables
    hold at most 10,000 names each)."""
    loose = Daemon(slapd, tmpdir_short,
                   extra={"auth": {"max_failures": 100000}})
    # Under ASan, freed memory sits in a quarantine (256 MB by default)
    # that would hide the daemon's own growth: keep it small.
    asan = os.environ.get("ASAN_OPTIONS", "")
    loose.start(env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=4"}
                if SANITIZED else None)
    try:
        flood_and_measure(loose)
    finally:
        loose.stop()


def flood_and_measure(loose):
    pid = loose.proc.pid
    stop, stats = threading.Event(), {"n": 0, "max": 0.0}
    t = threading.Thread(target=pinger, args=(loose.sock, stop, stats))
    with loose.client(timeout=60 * SLOW) as c:
        flood(c, 500, lambda i: f"warm{i}")
        rss0 = rss_kib(pid)
        t.start()
        try:
            t0 = time.monotonic()
            codes = flood(c, 10000, lambda i: f"flood-a{i}")
            took = time.monotonic() - t0
            rss1 = rss_kib(pid)
            codes += flood(c, 10000, lambda i: f"flood-b{i}")
            rss2 = rss_kib(pid)
        finally:
            stop.set()
            t.join()
    assert "error" not in stats, stats.get("error")
    assert codes.count(INVALID) == 20000
    assert stats["n"] >= 10, stats
    assert took < 120 * SLOW
    grow1, grow2 = rss1 - rss0, rss2 - rss1
    # valgrind's shadow memory roughly doubles what each allocation costs
    limit = (64 if VALGRIND else 32) * 1024
    assert grow1 < limit and grow2 < limit, (rss0, rss1, rss2)
    print(f"10,000 wrong logins in {took:.1f} s "
          f"({10000 / took:.0f}/s); RSS {rss0} -> {rss1} -> {rss2} KiB; "
          f"{stats['n']} pings, slowest {stats['max'] * 1000:.0f} ms")


def test_ten_thousand_wrong_passwords_from_a_peer(slapd, tdaemon):
    """From an ordinary uid the per-peer throttle holds: a handful of
    binds, everything else refused at once."""
    with PeerClient(tdaemon.sock) as p:
        codes = []
        for start in range(0, 10000, 60):
            codes += [r["error"]["code"] for r in p.calls(
                [("auth.login", {"username": f"peer{i}", "password": WRONG})
                 for i in range(start, min(10000, start + 60))])]
    assert len(codes) == 10000
    assert set(codes) <= {INVALID, RATE_LIMITED}
    assert 3 <= codes.count(INVALID) <= 3 + 10
    with tdaemon.client() as c:
        assert c.result("server.ping") == "pong"


# ---------------------------------------------------------------------------
# changes while logged in


def test_status_flip_takes_effect_at_once(slapd, daemon, client):
    add_account(slapd, "au-flip", PW)
    dn = slapd.user_dn("au-flip")
    wait_for(lambda: view_shows(client, "au-flip"), what="view")
    with daemon.client() as c:
        c.result("auth.login", username="au-flip", password=PW)
        assert c.result("user.get", username="au-flip")["status"] == "active"

        set_attr(slapd, "au-flip", "otasAccountStatus", "inactive")
        # Both slapd and otasdird refuse at once: otasdird reads the
        # status from the directory when the bind is refused.
        assert slapd.whoami(dn, PW) == INVALID_CREDENTIALS
        assert login_error(client, "au-flip", PW).code == INACTIVE
        # The open session loses its rights as soon as the view has it.
        wait_for(lambda: "error" in c.call("user.get", {"username": "au-flip"}),
                 what="the session to lose its rights")
        assert c.error("user.get", username="au-flip").code == DENIED
        assert c.error("user.set_password", username="au-flip",
                       password="Another-pass-1").code == DENIED
        assert c.error("auth.whoami").code == DENIED
        assert c.result("server.ping") == "pong"

        set_attr(slapd, "au-flip", "otasAccountStatus", "active")
        assert slapd.whoami(dn, PW) == 0
        wait_for(lambda: "result" in client.call(
            "auth.verify", {"username": "au-flip", "password": PW}),
            timeout=5, what="the activation in otasdird")
        # A fresh login works again.
        c.result("auth.login", username="au-flip", password=PW)
        assert c.result("auth.whoami")["role"] == "user"


def test_demoted_superadmin_loses_rights_on_its_connection(slapd, daemon,
                                                           client):
    add_account(slapd, "au-boss", PW, role="superadmin")
    wait_for(lambda: view_shows(client, "au-boss", role="superadmin"),
             what="view")
    with daemon.client() as c:
        c.result("auth.login", username="au-boss", password=PW)
        assert isinstance(c.result("user.list")["users"], list)
        assert c.result("license.get")["seats"] >= 1
        set_attr(slapd, "au-boss", "otasRole", "user")
        wait_for(lambda: "error" in c.call("user.list"),
                 what="the demotion to apply")
        assert c.error("user.list").code == DENIED
        assert c.error("license.get").code == DENIED
        assert c.error("user.get", username=slapd.superadmin).code == DENIED
        assert c.result("auth.whoami") == {
            "kind": "account", "role": "user", "username": "au-boss"}
        # ... and gets them back when promoted again.
        set_attr(slapd, "au-boss", "otasRole", "superadmin")
        wait_for(lambda: "result" in c.call("user.list"),
                 what="the promotion to apply")


def test_deleted_account_loses_rights_on_its_connection(slapd, daemon,
                                                        client):
    add_account(slapd, "au-del", PW)
    wait_for(lambda: view_shows(client, "au-del"), what="view")
    with daemon.client() as c:
        c.result("auth.login", username="au-del", password=PW)
        slapd.ldapdelete(slapd.user_dn("au-del"))
        wait_for(lambda: "error" in c.call("user.get", {"username": "au-del"}),
                 what="the deletion to apply")
        assert c.error("user.get", username="au-del").code == DENIED
        assert login_error(c, "au-del", PW).code == INVALID


def test_account_may_read_and_change_only_itself(slapd, daemon, client):
    add_account(slapd, "au-self", PW)
    add_account(slapd, "au-other", PW)
    for n in ("au-self", "au-other"):
        wait_for(lambda: view_shows(client, n), what="view")
    new_pw = "Changed-pass-456"
    open_socket_dir(daemon)
    with PeerClient(daemon.sock) as p:
        p.result("auth.login", username="au-self", password=PW)
        assert p.result("user.get", username="au-self")["username"] == \
            "au-self"
        assert p.error("user.get", username="au-other").code == DENIED
        assert p.error("user.get", username=slapd.superadmin).code == DENIED
        assert p.error("user.set_password", username="au-other",
                       password=new_pw).code == DENIED
        assert p.error("user.list").code == DENIED
        p.result("user.set_password", username="au-self", password=new_pw)
    assert slapd.whoami(slapd.user_dn("au-self"), new_pw) == 0
    assert slapd.whoami(slapd.user_dn("au-other"), PW) == 0
    assert slapd.whoami(slapd.user_dn("au-other"), new_pw) != 0
    assert client.result("auth.verify", username="au-self",
                         password=new_pw)["username"] == "au-self"
    no_secret_logged(daemon, PW, new_pw)


def test_verify_is_for_super_admins_and_does_not_switch(slapd, daemon,
                                                        client):
    add_account(slapd, "au-ver", PW)
    wait_for(lambda: view_shows(client, "au-ver"), what="view")
    a = client.result("auth.verify", username="au-ver", password=PW)
    assert a["username"] == "au-ver" and a["status"] == "active"
    assert client.result("auth.whoami")["kind"] == "peer"
    assert login_error(client, "au-ver", WRONG,
                       method="auth.verify").code == INVALID
    open_socket_dir(daemon)
    with PeerClient(daemon.sock) as p:
        assert login_error(p, "au-ver", PW, method="auth.verify").code == \
            DENIED
        p.result("auth.login", username="au-ver", password=PW)
        assert login_error(p, "au-ver", PW, method="auth.verify").code == \
            DENIED


# ---------------------------------------------------------------------------
# the directory in trouble


def test_directory_down_and_silent(slapd, tmpdir_short):
    add_account(slapd, "au-down", PW)
    d = Daemon(slapd, tmpdir_short, extra={"ldap": {"timeout_ms": 1000}})
    d.start()
    try:
        with d.client() as c:
            assert c.result("auth.verify", username="au-down",
                            password=PW)["username"] == "au-down"
            # A slapd that accepts but never answers: timeout.
            pid = slapd.pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                e = login_error(c, "au-down", PW)
                assert (e.code, e.reason) == (TIMEOUT, "timeout")
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: "result" in c.call(
                "auth.verify", {"username": "au-down", "password": PW}),
                what="binds to work again")
            # No slapd at all: directory_unavailable, and no failure
            # counted against anyone.
            slapd.stop()
            try:
                wait_for(lambda: c.result("server.status")["directory"] ==
                         "down", what="the daemon to notice")
                for _ in range(8):
                    e = login_error(c, "au-down", WRONG)
                    assert (e.code, e.reason) == (UNAVAILABLE,
                                                  "directory_unavailable")
            finally:
                slapd.start()
            wait_for(lambda: "result" in c.call(
                "auth.verify", {"username": "au-down", "password": PW}),
                what="binds to work again")
    finally:
        d.stop()
