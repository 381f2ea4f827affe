"""The otasdird side of the integration tests: a real otasdird in the
foreground with a generated config, a JSON-RPC client speaking to its
socket, and otasctl.

    with running_slapd() as s:
        d = Daemon(s, tmpdir, seats=10)
        d.start()
        c = d.client()
        assert c.result("server.ping") == "pong"
        d.stop()

Under `make check-asan` (OTASDIR_SANITIZED=1) Daemon.stop() also fails the
test when the daemon's stderr holds a sanitizer report.  With
OTASDIR_VALGRIND=1 every daemon runs under valgrind's memcheck (leaks of
kind definite and indirect count as errors, exit status 99); Daemon.stop()
then fails the test on that status or on any error valgrind reports.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

BUILD = Path(os.environ.get("OTASDIR_BUILD",
                            Path(__file__).resolve().parents[2] / "build"))
OTASDIRD = BUILD / "otasdird"
OTASCTL = BUILD / "otasctl"
SANITIZED = os.environ.get("OTASDIR_SANITIZED") == "1"
VALGRIND = os.environ.get("OTASDIR_VALGRIND") == "1"
# Sanitized builds are several times slower, valgrind more so: scale
# waits, not asserts.
SLOW = 8 if VALGRIND else 4 if SANITIZED else 1
# Exit status of a daemon in which valgrind found errors or leaks.
VALGRIND_ERROR_EXIT = 99
VALGRIND_CMD = [
    "valgrind", "--tool=memcheck", "--leak-check=full",
    "--show-leak-kinds=definite,indirect",
    "--errors-for-leak-kinds=definite,indirect",
    f"--error-exitcode={VALGRIND_ERROR_EXIT}", "--track-fds=no",
    "--num-callers=30",
    f"--suppressions={Path(__file__).resolve().parent / 'valgrind.supp'}",
]


VALGRIND_LINE = re.compile(r"==\d+== ")


class RpcError(Exception):
    """A JSON-RPC error reply."""

    def __init__(self, error):
        self.error = error
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data") or {}
        self.reason = self.data.get("reason")
        self.field = self.data.get("field")
        super().__init__(f"{self.code} {self.reason or ''} {self.message}")


class Client:
    """One connection to otasdird's socket.  call() sends a request and
    waits for the reply with the same id (replies may come in any order);
    send()/recv() give raw access for pipelining and bad-input tests."""

    def __init__(self, path, timeout=10 * SLOW):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # A Unix socket whose listen backlog is full refuses a
        # non-blocking connect with EAGAIN instead of waiting: retry
        # until the timeout, as a blocking connect would wait.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(self.path)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.sock.close()
                    raise socket.timeout(f"connect {self.path}: backlog "
                                         "full") from None
                time.sleep(0.01)
        self.buf = b""
        self.next_id = 0
        self.stash = {}          # replies read while waiting for another

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw ------------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def recv_line(self):
        """One reply line, parsed; None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None, id=None):
        """Send one request; return its id."""
        if id is None:
            self.next_id += 1
            id = self.next_id
        req = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            req["params"] = params
        self.send(json.dumps(req) + "\n")
        return id

    def wait(self, id):
        """The reply whose id is id (others are kept for later)."""
        key = json.dumps(id)
        while key not in self.stash:
            rep = self.recv_line()
            if rep is None:
                raise ConnectionError("otasdird closed the connection")
            if isinstance(rep, list):
                raise AssertionError(f"unexpected batch reply {rep}")
            self.stash[json.dumps(rep.get("id"))] = rep
        return self.stash.pop(key)

    # -- calls ----------------------------------------------------------

    def call(self, method, params=None):
        """The whole reply object."""
        return self.wait(self.request(method, params))

    def result(self, method, params=None, **kw):
        """The result, or RpcError.  Params as a dict or keywords."""
        if params is None and kw:
            params = kw
        rep = self.call(method, params)
        if "error" in rep:
            raise RpcError(rep["error"])
        return rep["result"]

    def error(self, method, params=None, **kw):
        """The error of a call that must fail (AssertionError if it
        succeeded)."""
        if params is None and kw:
            params = kw
        rep = self.call(method, params)
        assert "error" in rep, f"{method} {params} succeeded: {rep}"
        return RpcError(rep["error"])


class Daemon:
    """otasdird in the foreground against slapd s, in directory dir."""

    def __init__(self, s, dirpath, seats=25, admin_uids=(0,),
                 admin_groups=(), uris=None, log_level="debug", extra=None,
                 name="otasdird"):
        self.slapd = s
        self.dir = Path(dirpath)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.sock = self.dir / f"{name}.sock"
        self.cfg_path = self.dir / f"{name}.yaml"
        self.log_path = self.dir / f"{name}.log"
        self.audit_path = self.dir / f"{name}.audit.jsonl"
        self.proc = None
        self.logf = None
        self.settings = {
            "socket": {"path": str(self.sock), "mode": "0666",
                       "idle_timeout_s": 300},
            "ldap": {
                "uris": list(uris) if uris else [s.ldapi_uri],
                "bind_dn": s.service_dn,
                "bind_password_file": str(s.bind_pw_file),
                "people_dn": s.people_dn,
                "timeout_ms": 5000 * SLOW,
                "connect_timeout_ms": 2000,
                "reconnect_min_ms": 50,
                "reconnect_max_ms": 1000,
            },
            "license": {"seats": seats},
            "admins": {"uids": list(admin_uids),
                       "groups": list(admin_groups)},
            "audit": {"path": str(self.audit_path)},
            "log": {"level": log_level},
        }
        if extra:
            merge(self.settings, extra)

    def write_config(self, text=None):
        """Write the config (JSON is YAML) from self.settings, or text."""
        if text is None:
            text = json.dumps(self.settings, indent=2)
        self.cfg_path.write_text(text)

    def start(self, wait=True, directory_up=True, args=(), env=None,
              preexec_fn=None):
        """Start otasdird; wait until it answers (and, by default, until
        the directory connection is up).  preexec_fn runs in the child
        before exec (e.g. to lower a resource limit)."""
        self.write_config() if not self.cfg_path.exists() else None
        self.logf = open(self.log_path, "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        cmd = [str(OTASDIRD), "--config", str(self.cfg_path), *args]
        if VALGRIND:
            cmd = VALGRIND_CMD + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf,
                                     env=e, preexec_fn=preexec_fn)
        if wait:
            self.wait_ready(directory_up=directory_up)
        return self

    def wait_ready(self, directory_up=True, timeout=15 * SLOW):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"otasdird exited {self.proc.returncode}:\n"
                    + self.log_text())
            try:
                with Client(self.sock, timeout=2) as c:
                    st = c.result("server.status")
                    if not directory_up or (st["directory"] == "up" and
                                            st.get("seats_used") is not None):
                        return st
                    last = st
            except (OSError, RpcError, ValueError) as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"otasdird not ready: {last}\n" + self.log_text())

    def client(self, **kw):
        return Client(self.sock, **kw)

    def ctl(self, *args, input=None, env=None, socket_path=None,
            timeout=30 * SLOW):
        """Run otasctl; returns CompletedProcess (text)."""
        e = dict(os.environ)
        e.pop("OTASDIR_SOCKET", None)
        if env:
            e.update(env)
        cmd = [str(OTASCTL)]
        if socket_path is not False:
            cmd += ["--socket", str(socket_path or self.sock)]
        return subprocess.run(cmd + [str(a) for a in args], input=input,
                              capture_output=True, text=True, env=e,
                              timeout=timeout)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP, and wait until the daemon has logged the reload."""
        before = self.log_text().count("reload")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            if self.log_text().count("reload") > before:
                return
            time.sleep(0.02)
        raise AssertionError("no reload in the log:\n" + self.log_text())

    def raw_log(self):
        """The daemon's stdout and stderr, valgrind's lines included."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_text(self):
        """What otasdird logged (under valgrind, without valgrind's own
        "==pid== " lines, which share the file)."""
        text = self.raw_log()
        if VALGRIND:
            text = "".join(l for l in text.splitlines(keepends=True)
                           if not VALGRIND_LINE.match(l))
        return text

    def audit(self):
        """The audit log as a list of dicts."""
        try:
            lines = self.audit_path.read_text().splitlines()
        except OSError:
            return []
        return [json.loads(l) for l in lines if l.strip()]

    def stop(self, sig=signal.SIGTERM, expect=0, timeout=30 * SLOW):
        """Stop with sig; assert the exit status and a clean sanitizer
        report.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("otasdird did not stop:\n"
                                     + self.log_text())
        rc = self.proc.returncode
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
        check_sanitizer(self.raw_log())
        if VALGRIND:
            assert rc != VALGRIND_ERROR_EXIT, (
                "valgrind found errors or leaks:\n" + valgrind_report(
                    self.raw_log()))
        if expect is not None:
            assert rc == expect, (f"otasdird exited {rc}, expected "
                                  f"{expect}:\n" + self.log_text()[-4000:])
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None


def check_sanitizer(text):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "==ERROR"):
        assert marker not in text, "sanitizer report:\n" + text[-8000:]
    if VALGRIND:
        for line in text.splitlines():
            m = re.search(r"ERROR SUMMARY: (\d+) errors", line)
            assert not m or m.group(1) == "0", (
                "valgrind found errors:\n" + valgrind_report(text))


def valgrind_report(text):
    """valgrind's own lines ("==pid== ...") of a log, at most 12 kB."""
    lines = [l for l in text.splitlines() if re.match(r"==\d+==", l)]
    return "\n".join(lines)[-12000:]


def rss_kib(pid):
    """The resident set size of process pid, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def merge(dst, src):
    """Deep-merge dict src into dst."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def wait_for(pred, timeout=10, interval=0.02, what="condition"):
    """Poll pred() until it is true; AssertionError after timeout."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
