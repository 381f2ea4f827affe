"""otasdird as a process: command line, config errors, the socket file,
signals, idle timeouts, the connection cap, and the directory going away
and coming back."""

import json
import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from otasenv import OTASDIRD, Client, Daemon, RpcError, SLOW, wait_for


def run_daemon(*args, timeout=10):
    return subprocess.run([str(OTASDIRD), *args], capture_output=True,
                          text=True, timeout=timeout)


def test_version():
    r = run_daemon("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("otasdird ")


def test_usage_error():
    r = run_daemon("--no-such-option")
    assert r.returncode == 64
    assert "usage" in r.stderr


def test_check_config_ok(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short)
    d.write_config()
    r = run_daemon("--config", str(d.cfg_path), "--check-config")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_bad_config_reports_every_problem(tmpdir_short):
    p = tmpdir_short / "bad.yaml"
    p.write_text("socket:\n"
                 "  path: /tmp/x.sock\n"
                 "  nonsense: 1\n"
                 "license:\n"
                 "  seats: -3\n"
                 "ldap:\n"
                 "  uris: [ \"ldap://127.0.0.1:1\" ]\n")
    for extra in ([], ["--check-config"]):
        r = run_daemon("--config", str(p), *extra)
        assert r.returncode == 78
        lines = r.stderr.strip().splitlines()
        assert any(l.startswith(f"{p}:3: ") and "nonsense" in l
                   for l in lines), lines
        assert any(l.startswith(f"{p}:5: ") and "seats" in l
                   for l in lines), lines
        # the missing required ldap keys are reported too
        assert any("bind_dn" in l for l in lines), lines
        assert len(lines) >= 4


def test_missing_config_file(tmpdir_short):
    p = tmpdir_short / "nope.yaml"
    r = run_daemon("--config", str(p))
    assert r.returncode == 78
    assert str(p) in r.stderr and "cannot open" in r.stderr


def test_readable_secret_refused(slapd, tmpdir_short):
    secret = tmpdir_short / "bind.secret"
    secret.write_text(slapd.bind_pw)
    secret.chmod(0o644)
    d = Daemon(slapd, tmpdir_short,
               extra={"ldap": {"bind_password_file": str(secret)}})
    d.write_config()
    r = run_daemon("--config", str(d.cfg_path))
    assert r.returncode == 78
    assert "readable by others" in r.stderr
    assert slapd.bind_pw not in r.stderr


def test_socket_mode_and_group(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short,
               extra={"socket": {"mode": "0640", "group": "daemon"}})
    d.start()
    try:
        st = os.stat(d.sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o640
        import grp
        assert st.st_gid == grp.getgrnam("daemon").gr_gid
    finally:
        d.stop()
    assert not d.sock.exists(), "socket file left behind"


def test_stale_socket_removed_live_one_refused(slapd, tmpdir_short):
    # a stale socket file, as a crash leaves it
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    d = Daemon(slapd, tmpdir_short)
    s.bind(str(d.sock))
    s.close()
    assert d.sock.exists()
    d.start()
    try:
        with d.client() as c:
            assert c.result("server.ping") == "pong"
        # a second instance on the same socket is refused
        d2 = Daemon(slapd, tmpdir_short, name="second")
        d2.settings["socket"]["path"] = str(d.sock)
        d2.write_config()
        r = run_daemon("--config", str(d2.cfg_path))
        assert r.returncode != 0
        assert "another otasdird" in r.stderr
        with d.client() as c:
            assert c.result("server.ping") == "pong"
    finally:
        d.stop()


def test_sighup_reload(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, seats=25)
    d.start()
    try:
        c = d.client()
        assert c.result("license.get")["seats"] == 25
        d.settings["license"]["seats"] = 40
        d.settings["log"]["level"] = "info"
        d.write_config()
        d.reload()
        assert c.result("license.get")["seats"] == 40   # same connection
        # a bad file keeps the old settings and says why
        d.write_config("license:\n  seats: -1\n")
        d.reload()
        assert c.result("license.get")["seats"] == 40
        assert "keeping the running configuration" in d.log_text()
        assert ":2:" in d.log_text()
        assert c.result("server.ping") == "pong"
        c.close()
    finally:
        d.stop()


def test_sigterm_exits_zero_and_removes_socket(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short)
    d.start()
    idle = d.client()
    assert idle.result("server.ping") == "pong"
    assert d.stop(signal.SIGTERM) == 0
    assert not d.sock.exists()
    idle.close()


def test_sigint_exits_zero(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short)
    d.start()
    assert d.stop(signal.SIGINT) == 0


def test_idle_timeout(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short,
               extra={"socket": {"idle_timeout_s": 1}})
    d.start()
    try:
        c = d.client()
        assert c.result("server.ping") == "pong"
        t0 = time.monotonic()
        c.sock.settimeout(10 * SLOW)
        assert c.sock.recv(10) == b""          # closed by the daemon
        assert time.monotonic() - t0 >= 0.9
        c.close()
        # a client that keeps talking is not cut off
        c = d.client()
        for _ in range(6):
            assert c.result("server.ping") == "pong"
            time.sleep(0.4)
        c.close()
    finally:
        d.stop()


def test_connection_cap(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short,
               extra={"socket": {"max_connections": 5}})
    d.start()
    try:
        held = [d.client() for _ in range(5)]
        for c in held:
            assert c.result("server.ping") == "pong"
        extra = d.client()
        rep = extra.recv_line()
        assert rep["error"]["code"] == -32012
        assert rep["error"]["data"]["reason"] == "overloaded"
        extra.close()
        held.pop().close()
        time.sleep(0.2)
        with d.client() as c:
            assert c.result("server.ping") == "pong"
        for c in held:
            c.close()
    finally:
        d.stop()


def test_directory_down_and_back(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short)
    d.start()
    try:
        c = d.client()
        slapd.kill()
        wait_for(lambda: c.result("server.status")["directory"] == "down",
                 what="status down")
        assert c.result("server.ping") == "pong"
        slapd.start()
        wait_for(lambda: c.result("server.status")["directory"] == "up",
                 what="status up again")
        c.close()
    finally:
        if not slapd.running:
            slapd.start()
        d.stop()


def test_starts_with_directory_down(slapd, tmpdir_short):
    slapd.stop()
    d = Daemon(slapd, tmpdir_short)
    try:
        d.start(directory_up=False)
        with d.client() as c:
            st = c.result("server.status")
            assert st["directory"] == "down"
            assert st["seats_used"] is None
            e = c.error("license.get")
            assert e.reason == "directory_unavailable"
        slapd.start()
        d.wait_ready()
    finally:
        if not slapd.running:
            slapd.start()
        d.stop()
