"""The audit trail (otasdird(8), AUDIT TRAIL): every change and every
refusal that matters is one JSON line in audit.path with the time, the
actor, the method, the target, the outcome and, where seats are
concerned, the seats used and the limit; never a password.  It survives
rotation (rename, then SIGHUP; and the shipped logrotate rules run for
real), and goes to syslog without audit.path."""

import datetime
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from otasenv import SLOW, Daemon, wait_for
from test_permissions import NOBODY, PeerClient, open_socket_dir

TOP = Path(__file__).resolve().parents[2]
PW = "Audit-pass-4e1f"
PW2 = "Audit-pass-new-77d0"
WRONG = "Audit-wrong-c3b2"
SEATS = 6
KEYS = {"time", "actor", "method", "target", "outcome"}


ANY = object()


def lines_for(d, method, target=ANY, outcome=ANY):
    return [a for a in d.audit() if a["method"] == method and
            (target is ANY or a["target"] == target) and
            (outcome is ANY or a["outcome"] == outcome)]


def one(d, method, target, outcome):
    """The single audit line for (method, target, outcome)."""
    got = lines_for(d, method, target, outcome)
    assert len(got) == 1, (method, target, outcome, d.audit())
    return got[0]


def check_common(a, kind="peer", uid=0, username=None):
    assert KEYS <= set(a), a
    t = datetime.datetime.strptime(a["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - t).total_seconds()) < 120, a["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", a["time"])
    assert a["actor"]["kind"] == kind
    assert a["actor"]["uid"] == uid
    assert isinstance(a["actor"]["pid"], int) and a["actor"]["pid"] > 0
    if kind == "peer" and uid == 0:
        assert a["actor"]["pid"] == os.getpid()
    if username is not None:
        assert a["actor"]["username"] == username
    else:
        assert "username" not in a["actor"]


@pytest.fixture
def adaemon(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, seats=SEATS, log_level="info",
               extra={"auth": {"max_failures": 2, "base_delay_s": 60,
                               "max_delay_s": 60}})
    d.start()
    open_socket_dir(d)
    yield d
    # Leave the shared directory as it was, also after a failure.
    if d.proc is not None and d.proc.poll() is None:
        with d.client() as c:
            for u in c.result("user.list", search="au-")["users"]:
                c.call("user.delete", {"username": u["username"],
                                       "confirm": u["username"]})
    d.stop()


def test_every_action_has_its_line(slapd, adaemon):
    d = adaemon
    c = d.client()
    used0 = c.result("license.get")["used"]

    # create (with a password)
    c.result("user.create", username="au-ann", full_name="Ann Audit",
             email="ann@example.com", password=PW)
    a = one(d, "user.create", "au-ann", "ok")
    check_common(a)
    assert (a["seats"], a["used"]) == (SEATS, used0 + 1)
    assert (a["status"], a["role"], a["password"]) == ("active", "user", True)

    # update: full name and email
    c.result("user.update", username="au-ann", full_name="Ann B. Audit",
             email="annb@example.com")
    a = one(d, "user.update", "au-ann", "ok")
    check_common(a)
    assert sorted(a["changed"]) == ["email", "full_name"]

    # status change
    c.result("user.update", username="au-ann", status="inactive")
    a = lines_for(d, "user.update", "au-ann", "ok")[-1]
    assert a["changed"] == ["status"] and a["status"] == "inactive"

    # role change
    c.result("user.update", username="au-ann", role="superadmin")
    a = lines_for(d, "user.update", "au-ann", "ok")[-1]
    assert a["changed"] == ["role"] and a["role"] == "superadmin"
    c.result("user.update", username="au-ann", role="user")

    # password set (by an admin)
    c.result("user.set_password", username="au-ann", password=PW2)
    a = one(d, "user.set_password", "au-ann", "ok")
    check_common(a)

    # a refused change: the username is taken
    c.error("user.create", username="AU-ANN", full_name="Dup",
            email="dup@example.com")
    a = one(d, "user.create", "AU-ANN", "already_exists")
    check_common(a)

    # logins: inactive, wrong password, throttled, then right
    with d.client() as u:
        assert u.error("auth.login", username="au-ann",
                       password=PW2).reason == "account_inactive"
    a = one(d, "auth.login", "au-ann", "account_inactive")
    check_common(a)
    c.result("user.update", username="au-ann", status="active")
    with PeerClient(d.sock) as p:
        assert p.error("auth.login", username="au-ann",
                       password=WRONG).reason == "invalid_credentials"
        e = p.error("auth.login", username="au-ann", password=WRONG)
        assert e.reason in ("invalid_credentials", "rate_limited")
        e = p.error("auth.login", username="au-ann", password=PW2)
        assert e.reason == "rate_limited"
    a = lines_for(d, "auth.login", "au-ann", "invalid_credentials")[0]
    check_common(a, uid=NOBODY)
    a = lines_for(d, "auth.login", "au-ann", "rate_limited")[-1]
    check_common(a, uid=NOBODY)
    assert a["retry_after_s"] >= 1

    # an account acting: bob logs in and changes his own password
    c.result("user.create", username="au-bob", full_name="Bob Audit",
             email="bob@example.com", password=PW)
    with PeerClient(d.sock) as p:
        p.result("auth.login", username="au-bob", password=PW)
        p.result("user.set_password", username="au-bob", password=PW2)
        # and is refused what only a super admin may do
        assert p.error("user.delete", username="au-ann",
                       confirm="au-ann").reason == "permission_denied"
    a = one(d, "auth.login", "au-bob", "ok")
    check_common(a, uid=NOBODY)
    a = one(d, "user.set_password", "au-bob", "ok")
    check_common(a, kind="account", uid=NOBODY, username="au-bob")
    a = one(d, "user.delete", "au-ann", "permission_denied")
    check_common(a, kind="account", uid=NOBODY, username="au-bob")

    # a local peer that is not an admin
    with PeerClient(d.sock) as p:
        p.error("user.create", username="au-eve", full_name="Eve",
                email="eve@example.com")
    a = one(d, "user.create", "au-eve", "permission_denied")
    check_common(a, uid=NOBODY)

    # seat refusal: fill the licence, then one more
    used = c.result("license.get")["used"]
    for i in range(SEATS - used):
        c.result("user.create", username=f"au-fill{i}", full_name="Fill",
                 email=f"fill{i}@example.com")
    assert c.error("user.create", username="au-over", full_name="Over",
                   email="over@example.com").reason == "seat_limit_reached"
    a = one(d, "user.create", "au-over", "seat_limit_reached")
    check_common(a)
    assert (a["seats"], a["used"]) == (SEATS, SEATS)
    e = c.error("user.import", users=[
        {"username": f"au-imp{i}", "full_name": "Imp",
         "email": f"i{i}@example.com"} for i in (0, 1)])
    assert e.reason == "seat_limit_reached"
    a = one(d, "user.import", None, "seat_limit_reached")
    assert (a["seats"], a["used"], a["needed"]) == (SEATS, SEATS, 2)

    # delete frees a seat; the line says how many are used after it
    c.result("user.delete", username="au-fill0", confirm="au-fill0")
    a = one(d, "user.delete", "au-fill0", "ok")
    check_common(a)
    assert (a["seats"], a["used"]) == (SEATS, SEATS - 1)
    # a refused delete: no confirmation
    c.error("user.delete", username="au-bob", confirm="bob")
    one(d, "user.delete", "au-bob", "confirmation_required")

    # import: one line for the request, one per row
    c.result("user.import", users=[
        {"username": "au-imp2", "full_name": "Imp Two",
         "email": "i2@example.com", "password": PW}])
    a = one(d, "user.import", None, "ok")
    assert (a["rows"], a["created"], a["used"]) == (1, 1, SEATS)
    one(d, "user.import", "au-imp2", "ok")

    # nothing in the trail is a password
    text = d.audit_path.read_text()
    for s in (PW, PW2, WRONG, slapd.bind_pw):
        assert s not in text
    assert "userPassword" not in text
    # every line is one JSON object with the common members
    for line in text.splitlines():
        assert KEYS <= set(json.loads(line))

    c.close()


def test_rotation_by_rename_and_sighup(slapd, adaemon):
    d = adaemon
    with d.client() as c:
        c.result("user.create", username="au-rot1", full_name="Rot",
                 email="r1@example.com")
        rotated = d.audit_path.with_name("audit.jsonl.1")
        d.audit_path.rename(rotated)
        # Until the SIGHUP the renamed file still gets the lines.
        c.result("user.create", username="au-rot2", full_name="Rot",
                 email="r2@example.com")
        assert not d.audit_path.exists()
        d.reload()
        c.result("user.create", username="au-rot3", full_name="Rot",
                 email="r3@example.com")
        old = [json.loads(l)["target"] for l in rotated.read_text()
               .splitlines()]
        assert "au-rot1" in old and "au-rot2" in old and "au-rot3" not in old
        assert [a["target"] for a in d.audit()] == ["au-rot3"]
        assert stat.S_IMODE(d.audit_path.stat().st_mode) == 0o640 & \
            ~current_umask()

        # A broken config on SIGHUP keeps the settings but still lets go
        # of a rotated file.
        d.audit_path.rename(rotated.with_name("audit.jsonl.2"))
        good = d.cfg_path.read_text()
        d.write_config("license:\n  seats: -1\n")
        d.reload()
        c.result("user.delete", username="au-rot1", confirm="au-rot1")
        assert [a["target"] for a in d.audit()] == ["au-rot1"]
        d.write_config(good)
        for u in ("au-rot2", "au-rot3"):
            c.result("user.delete", username=u, confirm=u)


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_shipped_logrotate_rules(slapd, adaemon, tmp_path):
    """conf/otasdird.logrotate, run by logrotate itself, with the path and
    the reload command pointed at this daemon."""
    d = adaemon
    pid = d.proc.pid
    rules = (TOP / "conf" / "otasdird.logrotate").read_text()
    assert "/var/log/otasdir/audit.jsonl {" in rules
    assert "systemctl reload otasdird.service" in rules
    rules = rules.replace("/var/log/otasdir/audit.jsonl", str(d.audit_path))
    rules = rules.replace("systemctl reload otasdird.service",
                          f"kill -HUP {pid}")
    conf = tmp_path / "otasdird.logrotate"
    conf.write_text(rules)
    with d.client() as c:
        c.result("user.create", username="au-lr1", full_name="Lr",
                 email="lr1@example.com")
        mode = stat.S_IMODE(d.audit_path.stat().st_mode)
        before = d.log_text().count("reloaded")
        r = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"),
                            str(conf)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: d.log_text().count("reloaded") > before,
                 what="the reload sent by postrotate")
        c.result("user.create", username="au-lr2", full_name="Lr",
                 email="lr2@example.com")
    rotated = [p for p in d.audit_path.parent.iterdir()
               if p.name.startswith("otasdird.audit.jsonl-")]
    assert len(rotated) == 1, list(d.audit_path.parent.iterdir())
    # dateext, not yet compressed (delaycompress)
    assert re.fullmatch(r"otasdird\.audit\.jsonl-\d{8}-\d+",
                        rotated[0].name)
    old = [json.loads(l)["target"] for l in rotated[0].read_text()
           .splitlines()]
    assert "au-lr1" in old and "au-lr2" not in old
    # the new file: created by logrotate with the old mode, written to by
    # the daemon after the reload
    assert stat.S_IMODE(d.audit_path.stat().st_mode) == mode
    assert [a["target"] for a in d.audit()] == ["au-lr2"]
    with d.client() as c:
        for u in ("au-lr1", "au-lr2"):
            c.result("user.delete", username=u, confirm=u)


@pytest.mark.skipif(os.path.exists("/dev/log"),
                    reason="a syslog daemon owns /dev/log here; the "
                    "fallback is only checked where the test can own it")
def test_without_audit_path_lines_go_to_syslog(slapd, tmpdir_short):
    """audit.path ~: each line is a syslog message, facility authpriv,
    priority notice, tag otasdird[pid].  /dev/log is stood in for by a
    datagram socket of the test (only where no syslog daemon runs)."""
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind("/dev/log")
    log.settimeout(0.2)
    got, done = [], threading.Event()

    def drain():
        # Always read: slapd logs here too, and a full socket would block
        # every sender (as a stalled syslog daemon would).
        while not done.is_set():
            try:
                m = log.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            if " otasdird[" in m:
                got.append(m)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    d = Daemon(slapd, tmpdir_short, extra={"audit": {"path": None}})
    try:
        d.start()
        with d.client() as c:
            c.result("user.create", username="au-sys", full_name="Sys",
                     email="sys@example.com")
            c.result("user.delete", username="au-sys", confirm="au-sys")
        wait_for(lambda: len(got) >= 2, what="two syslog messages")
        msgs = list(got)
        d.stop()
    finally:
        d.kill()
        done.set()
        reader.join()
        log.close()
        os.unlink("/dev/log")
    assert not d.audit_path.exists()
    authpriv_notice = 10 * 8 + 5
    for m, method in zip(msgs, ("user.create", "user.delete")):
        mm = re.match(rf"<{authpriv_notice}>.* otasdird\[(\d+)\]: (\{{.*\}})$",
                      m)
        assert mm, m
        a = json.loads(mm.group(2))
        assert a["method"] == method and a["target"] == "au-sys"
        assert a["outcome"] == "ok"
