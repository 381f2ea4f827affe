"""The daemon's log (otasdird(8), LOGGING): sd-daemon priority prefixes
when stderr is not a terminal, levels spelt out on a terminal, log.level
and its change by SIGHUP, one line per request at debug and per change at
info, and never a secret, whatever happens."""

import os
import re
import select
import signal
import subprocess
import time

from otasenv import OTASDIRD, SLOW, Daemon, wait_for
from test_permissions import PeerClient, open_socket_dir

PREFIXED = re.compile(r"^<[3-7]>\S")


def req_lines(d, method):
    return re.findall(rf"^<7>req \d+ conn \d+ {re.escape(method)} by .*$",
                      d.log_text(), re.M)


def test_every_line_has_a_priority_prefix(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, log_level="debug")
    d.start()
    try:
        with d.client() as c:
            c.result("server.ping")
            c.error("user.get", username="nosuchuser")
    finally:
        d.stop()
    lines = d.log_text().splitlines()
    assert lines
    bad = [l for l in lines if not PREFIXED.match(l)]
    assert not bad, bad
    # Levels are the syslog priorities journald expects.
    text = d.log_text()
    assert re.search(r"^<6>otasdird \S+ started", text, re.M)
    assert re.search(r"^<7>req \d+ conn \d+ server\.ping by uid 0 pid "
                     rf"{os.getpid()} \(admin\): ok in \d+ ms$", text, re.M)
    assert re.search(r"^<7>req \d+ conn \d+ user\.get by .*: error -32002 "
                     r"in \d+ ms$", text, re.M)
    assert re.search(r"^<6>stopped$", text, re.M)


def test_levels_spelt_out_on_a_terminal(slapd, tmpdir_short):
    """On a terminal there are no prefixes: info lines are bare, the
    others start with their level."""
    master, slave = os.openpty()
    d = Daemon(slapd, tmpdir_short, uris=["ldap://127.0.0.1:1"],
               log_level="debug")
    d.write_config()
    proc = subprocess.Popen([str(OTASDIRD), "--config", str(d.cfg_path)],
                            stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 15 * SLOW
        while b"directory unavailable at start" not in out and \
                time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                out += os.read(master, 65536)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert re.search(r"^warning: directory unavailable at start", text,
                     re.M), text
    assert re.search(r"^otasdird \S+ started", text, re.M), text
    assert re.search(r"^debug: ldap service: ", text, re.M), text
    assert "<6>" not in text and "<4>" not in text


def test_log_level_changes_on_sighup(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, log_level="info")
    d.start()
    try:
        with d.client() as c:
            c.result("server.ping")
            assert req_lines(d, "server.ping") == []
            d.settings["log"]["level"] = "debug"
            d.write_config()
            d.reload()
            c.result("server.ping")
            wait_for(lambda: len(req_lines(d, "server.ping")) == 1,
                     what="a debug request line")
            d.settings["log"]["level"] = "info"
            d.write_config()
            d.reload()
            for _ in range(3):
                c.result("server.ping")
            c.result("server.status")       # a round trip after the pings
            assert len(req_lines(d, "server.ping")) == 1
            # warning hides the info lines too (the reload itself is not
            # logged then: its seats change shows when it has happened)
            d.settings["log"]["level"] = "warning"
            d.settings["license"]["seats"] = 26
            d.write_config()
            before = len(d.log_text().splitlines())
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: c.result("license.get")["seats"] == 26,
                     what="the reload")
            c.result("user.create", username="lg-quiet", full_name="Quiet",
                     email="q@example.com")
            c.result("user.delete", username="lg-quiet", confirm="lg-quiet")
            c.result("server.status")
            new = d.log_text().splitlines()[before:]
            assert not [l for l in new if l[:3] in ("<6>", "<7>")], new
    finally:
        d.stop()


def test_one_info_line_per_change_and_refusal(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, log_level="info", seats=100)
    d.start()
    open_socket_dir(d)
    me = f"uid 0 pid {os.getpid()} (admin)"
    try:
        with d.client() as c:
            c.result("user.create", username="lg-bob", full_name="Bob",
                     email="bob@example.com")
            c.result("user.update", username="lg-bob", status="inactive")
            c.result("user.update", username="lg-bob", full_name="Robert",
                     email="rob@example.com")
            c.error("user.create", username="lg-bob", full_name="Bob",
                    email="bob@example.com")
            c.result("user.get", username="lg-bob")          # a read
            c.result("user.list")                             # a read
            with PeerClient(d.sock) as p:
                p.error("user.delete", username="lg-bob", confirm="lg-bob")
            c.result("user.delete", username="lg-bob", confirm="lg-bob")
            c.result("server.status")
    finally:
        d.stop()
    text = d.log_text()
    want = [
        rf"<6>user\.create lg-bob by {re.escape(me)}: ok",
        rf"<6>user\.update lg-bob by {re.escape(me)}: ok \(changed "
        r"status=inactive\)",
        rf"<6>user\.update lg-bob by {re.escape(me)}: ok \(changed "
        r"full_name email\)",
        rf"<6>user\.create lg-bob by {re.escape(me)}: already_exists",
        r"<6>user\.delete lg-bob by uid 65534 pid \d+: permission_denied",
        rf"<6>user\.delete lg-bob by {re.escape(me)}: ok",
    ]
    for w in want:
        assert len(re.findall(rf"^{w}$", text, re.M)) == 1, (w, text)
    # Reads are not changes: no info line for them.
    assert not re.search(r"^<6>user\.(get|list) ", text, re.M)


def test_no_secret_reaches_the_log_or_the_audit_trail(slapd, tmpdir_short):
    """At debug level, through every path that carries a password (create,
    import, set_password, successful and failed logins, a bad password
    that fails validation, a malformed request), neither the log nor the
    audit trail holds one, nor the bind password."""
    d = Daemon(slapd, tmpdir_short, log_level="debug", seats=100,
               extra={"auth": {"max_failures": 2, "base_delay_s": 60}})
    d.start()
    secrets = ["Secret-create-9f3a", "Secret-import-71bc",
               "Secret-passwd-0d2e", "Wrong-login-a8c4", "Sh0rt!",
               "Secret-garbage-5e6f"]
    try:
        with d.client() as c:
            c.result("user.create", username="lg-sec", full_name="Sec",
                     email="sec@example.com", password=secrets[0])
            c.result("user.import", users=[{
                "username": "lg-sec2", "full_name": "Sec Two",
                "email": "sec2@example.com", "password": secrets[1]}])
            c.result("user.set_password", username="lg-sec",
                     password=secrets[2])
            c.error("user.set_password", username="lg-sec",
                    password=secrets[4])
            with d.client() as u:
                u.result("auth.login", username="lg-sec",
                         password=secrets[2])
            with d.client() as u:
                for _ in range(4):           # failures, then throttled
                    u.error("auth.login", username="lg-sec2",
                            password=secrets[3])
            c.send('{"jsonrpc":"2.0","id":9,"method":"auth.login",'
                   f'"params":{{"password":"{secrets[5]}"\n')
            assert "error" in c.recv_line()
        with d.client() as c:
            for u in ("lg-sec", "lg-sec2"):
                c.result("user.delete", username=u, confirm=u)
    finally:
        d.stop()
    text = d.log_text() + d.audit_path.read_text()
    assert "auth.login" in text and "user.import" in text
    for s in secrets + [slapd.bind_pw]:
        assert s not in text, f"{s!r} reached the log or audit trail"


def test_reload_names_what_needs_a_restart(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, log_level="info")
    d.start()
    try:
        d.settings["socket"]["mode"] = "0600"
        d.settings["ldap"]["people_dn"] = "ou=other,dc=example,dc=com"
        d.settings["license"]["seats"] = 31
        d.write_config()
        d.reload()
        text = d.log_text()
        assert "<4>reload: socket settings change only on restart" in text
        assert "<4>reload: ldap settings change only on restart" in text
        with d.client() as c:
            assert c.result("license.get")["seats"] == 31
            assert c.result("server.status")["directory"] == "up"
    finally:
        d.stop()
