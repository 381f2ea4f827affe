"""The systemd side of otasdird: the shipped units (hardening score,
`systemd-analyze verify`, what they agree on with the daemon and the
contract), the sysusers file, the socket-activation and readiness
protocols as systemd speaks them (systemd-socket-activate, a
NOTIFY_SOCKET owned by the test), the bind password through
LoadCredential= ($CREDENTIALS_DIRECTORY), and the system calls, address
families and memory protections the daemon needs against the unit's
filters (observed with strace)."""

import array
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

import pytest

from otasenv import (BUILD, OTASCTL, OTASDIRD, SANITIZED, SLOW, Client,
                     Daemon, wait_for)

TOP = Path(__file__).resolve().parents[2]
UNITS = TOP / "systemd"
SERVICE = UNITS / "otasdird.service"
SOCKET = UNITS / "otasdird.socket"
SYSUSERS = UNITS / "otasdird.sysusers"
MAN = TOP / "man"

MAX_EXPOSURE = 1.5


# -- unit files -------------------------------------------------------------

def unit_settings(path):
    """A unit file as {section: [(key, value), ...]} (continuation lines
    joined, comments dropped)."""
    sections, cur, pending = {}, None, ""
    for raw in Path(path).read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        cur.append((key.strip(), value.strip()))
    return sections


def unit_value(path, section, key):
    """The last value of key in section (systemd's rule for most keys)."""
    vals = [v for k, v in unit_settings(path)[section] if k == key]
    assert vals, f"{path.name}: no {key}= in [{section}]"
    return vals[-1]


def man_tree(dest):
    """A MANPATH directory holding man/*.N as manN/*.N."""
    for page in MAN.iterdir():
        m = re.fullmatch(r".+\.(\d)", page.name)
        if m:
            d = dest / f"man{m.group(1)}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(page, d / page.name)
    return dest


def test_security_exposure_at_most_1_5():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--no-pager", str(SERVICE)],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for otasdird\.service: "
                  r"(\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= MAX_EXPOSURE, out
    assert r.returncode == 0, out


def test_unit_keeps_peer_credentials_meaningful():
    """PrivateUsers= would map every peer's uid and groups to "nobody"
    (SO_PEERCRED, SO_PEERGROUPS), so admins.uids/groups could never
    match: the hardening must not use it."""
    keys = dict(unit_settings(SERVICE)["Service"])
    assert keys.get("PrivateUsers", "no") in ("no", "false", "0")


def test_verify_clean(tmp_path):
    """`systemd-analyze verify` of both units says nothing, with ExecStart
    pointing at the built daemon and the man pages they name on MANPATH
    (make install does the same rewriting; test_install verifies the
    installed copies)."""
    d = tmp_path / "units"
    d.mkdir()
    for u in (SERVICE, SOCKET):
        text = u.read_text().replace("/usr/local/sbin/otasdird",
                                     str(OTASDIRD))
        (d / u.name).write_text(text)
    env = dict(os.environ, MANPATH=str(man_tree(tmp_path / "man")))
    r = subprocess.run(["systemd-analyze", "verify",
                        str(d / "otasdird.socket"),
                        str(d / "otasdird.service")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", \
        r.stdout + r.stderr


def test_units_agree_with_the_daemon_and_the_contract():
    listen = unit_value(SOCKET, "Socket", "ListenStream")
    assert listen == "/run/otasdird/otasdird.sock"     # the default path
    assert unit_value(SOCKET, "Socket", "SocketMode") == "0660"
    # The socket's directory is the service's RuntimeDirectory, re-owned
    # by systemd at start with the service's user and group: they must be
    # the socket's, or admins lose access after the first start.
    assert Path(listen).parent == Path("/run") / unit_value(
        SERVICE, "Service", "RuntimeDirectory")
    assert unit_value(SOCKET, "Socket", "SocketGroup") == \
        unit_value(SERVICE, "Service", "Group") == "otasadm"
    assert unit_value(SOCKET, "Socket", "SocketUser") == \
        unit_value(SERVICE, "Service", "User") == "otasdird"
    assert unit_value(SOCKET, "Socket", "DirectoryMode") == \
        unit_value(SERVICE, "Service", "RuntimeDirectoryMode")
    # Stopping the service must not delete the socket systemd holds.
    assert unit_value(SERVICE, "Service", "RuntimeDirectoryPreserve") == \
        "yes"
    s = dict(unit_settings(SERVICE)["Service"])
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["Restart"] == "on-failure"
    assert s["RestartPreventExitStatus"] == "78"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["ExecStart"] == ("/usr/local/sbin/otasdird --config "
                              "/etc/otasdir/otasdird.yaml")
    assert s["LoadCredential"] == "bind.secret:/etc/otasdir/bind.secret"
    # audit.path of the example config lives in LogsDirectory=.
    example = (TOP / "conf" / "otasdird.yaml").read_text()
    m = re.search(r"^audit:\n(?:  #.*\n)*  path: (\S+)$", example, re.M)
    assert m, "audit.path not found in conf/otasdird.yaml"
    assert Path(m.group(1)).parent == Path("/var/log") / s["LogsDirectory"]
    assert "Requires" in dict(unit_settings(SERVICE)["Unit"])


def test_sysusers_creates_the_user_with_the_admin_group(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    r = subprocess.run(["systemd-sysusers", f"--root={root}", "-"],
                       input=SYSUSERS.read_text(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    groups = {l.split(":")[0]: l.split(":")
              for l in (root / "etc/group").read_text().splitlines()}
    users = {l.split(":")[0]: l.split(":")
             for l in (root / "etc/passwd").read_text().splitlines()}
    assert "otasadm" in groups
    u = users["otasdird"]
    assert u[3] == groups["otasadm"][2]          # primary group otasadm
    assert int(u[2]) < 1000 and u[6] == "/usr/sbin/nologin"


# -- the notification socket ------------------------------------------------

class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET; records
    each message with the sender's pid (SCM_CREDENTIALS), as systemd does
    to enforce NotifyAccess=main."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.msgs = []               # (pid, {key: value}, raw text)

    def close(self):
        self.sock.close()

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            return False
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:struct.calcsize("3i")])[0]
        text = data.decode()
        fields = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
        self.msgs.append((pid, fields, text))
        return True

    def wait(self, key, value="1", after=0, timeout=15):
        """The first message (index >= after) with key=value; returns
        (index, pid, fields)."""
        deadline = time.monotonic() + timeout * SLOW
        i = after
        while True:
            while i < len(self.msgs):
                pid, fields, _ = self.msgs[i]
                if fields.get(key) == value:
                    return i, pid, fields
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {key}={value} from otasdird; got "
                    f"{[m[2] for m in self.msgs]}")
            self._recv(left)


def socket_activate(d, notify, listen, env=None):
    """Start d's otasdird under systemd-socket-activate listening on
    listen; the daemon is exec'd (same pid) on the first connection.
    Returns once the socket exists."""
    d.write_config()
    d.logf = open(d.log_path, "ab")
    # systemd-socket-activate gives the program a fresh environment, as
    # systemd does: only what -E names is passed on.
    env = dict(env or {}, NOTIFY_SOCKET=notify.path)
    passed = [f"-E{k}={v}" for k, v in env.items()]
    passed += [f"-E{k}" for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")
               if k in os.environ]
    d.proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(listen),
         "--fdname=otasdird.socket", *passed, str(OTASDIRD), "--config",
         str(d.cfg_path)], stdout=d.logf, stderr=d.logf)
    wait_for(lambda: listen.exists() or d.proc.poll() is not None,
             what="the activation socket")
    assert d.proc.poll() is None, d.log_text()


def test_socket_activation_ready_reload_stop(slapd, tmpdir_short):
    own = tmpdir_short / "own.sock"          # socket.path: must stay unused
    act = tmpdir_short / "act.sock"          # what "systemd" listens on
    notify = NotifySocket(tmpdir_short / "notify")
    d = Daemon(slapd, tmpdir_short, extra={"socket": {"path": str(own)}})
    try:
        socket_activate(d, notify, act)
        # The first client starts the daemon and is answered by it.
        with Client(act) as c:
            assert c.result("server.ping") == "pong"
            _, pid, f = notify.wait("READY")
            # From the main process, once the directory has been tried.
            assert pid == d.proc.pid
            assert f["STATUS"] == "directory up"
            assert c.result("server.status")["directory"] == "up"
            assert "listening on the socket passed by systemd" in \
                d.log_text()
            assert not own.exists()
            r = subprocess.run([str(OTASCTL), "--socket", str(act),
                                "status"], capture_output=True, text=True,
                               timeout=30 * SLOW)
            assert r.returncode == 0, r.stderr
            assert "directory: up" in r.stdout

            # systemctl reload: RELOADING=1, then READY=1 again.
            n = len(notify.msgs)
            d.send_signal(signal.SIGHUP)
            i, pid, _ = notify.wait("RELOADING", after=n)
            assert pid == d.proc.pid
            notify.wait("READY", after=i + 1)
            assert c.result("server.ping") == "pong"    # same connection

            # systemctl stop: STOPPING=1, exit 0.
            n = len(notify.msgs)
            d.send_signal(signal.SIGTERM)
            _, pid, _ = notify.wait("STOPPING", after=n)
            assert pid == d.proc.pid
        assert d.stop() == 0
        # The socket belongs to systemd: the daemon leaves it in place.
        assert act.exists() and stat.S_ISSOCK(act.stat().st_mode)
        assert not own.exists()
    finally:
        d.kill()
        notify.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_with_the_directory_unreachable(slapd, tmpdir_short):
    """READY=1 waits until the directory has been tried, not until it is
    up: a supervisor sees a daemon that knows its state and serves
    server.status while it retries."""
    act = tmpdir_short / "act.sock"
    notify = NotifySocket(tmpdir_short / "notify")
    d = Daemon(slapd, tmpdir_short,
               uris=[f"ldap://127.0.0.1:{free_port()}"],
               extra={"socket": {"path": str(tmpdir_short / "own.sock")}})
    try:
        socket_activate(d, notify, act)
        with Client(act) as c:
            assert c.result("server.ping") == "pong"
            _, pid, f = notify.wait("READY")
            assert pid == d.proc.pid
            assert f["STATUS"] == "directory down, retrying"
            # The attempt was logged before READY=1 was sent.
            assert "directory unavailable at start" in d.log_text()
            assert re.search(r"ldap service: cannot use ldap://127\.0\.0\.1:"
                             r"\d+: Connection refused", d.log_text())
            assert c.result("server.status")["directory"] == "down"
        assert d.stop() == 0
    finally:
        d.kill()
        notify.close()


def test_ready_only_once_listening_without_activation(slapd, tmpdir_short):
    """Started without a socket from systemd, the daemon binds its own
    before it says READY=1: a client connecting at that moment gets in."""
    notify = NotifySocket(tmpdir_short / "notify")
    d = Daemon(slapd, tmpdir_short)
    try:
        d.start(wait=False, env={"NOTIFY_SOCKET": notify.path})
        _, pid, f = notify.wait("READY")
        assert pid == d.proc.pid
        with Client(d.sock) as c:
            assert c.result("server.ping") == "pong"
        assert f["STATUS"] == "directory up"
        assert d.stop() == 0
        assert not d.sock.exists()           # its own socket is removed
    finally:
        d.kill()
        notify.close()


def test_stale_listen_pid_is_ignored(slapd, tmpdir_short):
    """LISTEN_FDS meant for another process (LISTEN_PID not ours) is not
    taken: the daemon binds its own socket."""
    d = Daemon(slapd, tmpdir_short)
    try:
        d.start(env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
        assert d.sock.exists()
        assert "listening on " + str(d.sock) in d.log_text()
    finally:
        d.stop()


# -- LoadCredential= ----------------------------------------------------------

def creds_dir(slapd, tmpdir, mode=0o400):
    """A credentials directory as systemd makes it for LoadCredential=
    bind.secret:...: a copy of the bind password, mode 0400."""
    creds = tmpdir / "creds"
    creds.mkdir()
    secret = creds / "bind.secret"
    secret.write_text(slapd.bind_pw)
    secret.chmod(mode)
    return creds


def test_load_credential_end_to_end(slapd, tmpdir_short):
    creds = creds_dir(slapd, tmpdir_short)
    d = Daemon(slapd, tmpdir_short, extra={"ldap": {
        "bind_password_file": "${CREDENTIALS_DIRECTORY}/bind.secret"}})
    try:
        # Bound as the service with the password read from there.
        d.start(env={"CREDENTIALS_DIRECTORY": str(creds)})
        with d.client() as c:
            assert c.result("license.get")["seats"] == 25
        # SIGHUP re-reads the file with the same expansion.
        d.settings["license"]["seats"] = 30
        d.write_config()
        d.reload()
        with d.client() as c:
            assert c.result("license.get")["seats"] == 30
        assert "not valid" not in d.log_text()
    finally:
        d.stop()


def test_load_credential_needs_the_variable(slapd, tmpdir_short):
    creds = creds_dir(slapd, tmpdir_short, mode=0o440)
    d = Daemon(slapd, tmpdir_short, extra={"ldap": {
        "bind_password_file": "%d/bind.secret"}})
    d.write_config()
    env = dict(os.environ)
    env.pop("CREDENTIALS_DIRECTORY", None)
    r = subprocess.run([str(OTASDIRD), "--config", str(d.cfg_path)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 78
    assert re.search(r":\d+: 'ldap.bind_password_file' names the "
                     r"credentials directory, but CREDENTIALS_DIRECTORY is "
                     r"not set", r.stderr), r.stderr
    # The mode check applies to the credential too.
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    r = subprocess.run([str(OTASDIRD), "--config", str(d.cfg_path),
                        "--check-config"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 78
    assert f"bind_password_file {creds}/bind.secret is readable by its " \
        "group (mode 0440)" in r.stderr


# -- what the unit's filters allow ------------------------------------------

def syscall_groups():
    """{"@group": [members]} from `systemd-analyze syscall-filter`."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, check=True,
                         timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and \
                not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(groups, names):
    out, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n.startswith("@"):
            todo.extend(groups[n])
        else:
            out.add(n)
    return out


def unit_syscall_filter():
    """The system calls the service's SystemCallFilter= lines allow."""
    groups = syscall_groups()
    allowed = set()
    for k, v in unit_settings(SERVICE)["Service"]:
        if k != "SystemCallFilter":
            continue
        if v.startswith("~"):
            allowed -= expand(groups, v[1:].split())
        else:
            allowed |= expand(groups, v.split())
    return allowed


@pytest.mark.skipif(SANITIZED, reason="the sanitizer runtime makes system "
                    "calls of its own; the plain build is what ships")
def test_system_calls_within_the_unit_filters(slapd, tmpdir_short):
    """Run a workload (every kind of request, a reload, a stop) under
    strace and check what the unit's SystemCallFilter=,
    RestrictAddressFamilies=, MemoryDenyWriteExecute= and SocketBindDeny=
    would refuse.
    The directory is named by host name over TCP so that name resolution
    runs too."""
    trace = tmpdir_short / "strace.out"
    d = Daemon(slapd, tmpdir_short, uris=[f"ldap://localhost:{slapd.port}"],
               log_level="info")
    d.write_config()
    d.logf = open(d.log_path, "ab")
    d.proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-s", "0", "-o", str(trace), str(OTASDIRD),
         "--config", str(d.cfg_path)], stdout=d.logf, stderr=d.logf)
    pid = None
    try:
        d.wait_ready(timeout=30 * SLOW)
        # d.proc is strace: signals go to the daemon itself.
        pid = int(re.search(r"started \(pid (\d+)", d.log_text()).group(1))
        with d.client() as c:
            pw = "Strace-pw-0001"
            c.result("user.create", username="sctrace", full_name="S Trace",
                     email="s@example.com", password=pw)
            c.result("user.update", username="sctrace", status="inactive")
            c.result("user.update", username="sctrace", status="active")
            c.result("user.set_password", username="sctrace",
                     password=pw + "x")
            c.result("user.list", search="sctrace")
            c.result("license.get")
            with d.client() as u:
                u.result("auth.login", username="sctrace", password=pw + "x")
                u.error("auth.login", username="sctrace", password="wrong-pw")
            c.result("user.delete", username="sctrace", confirm="sctrace")
        d.settings["log"]["level"] = "debug"
        d.write_config()
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log_text(), what="the reload")
        with d.client() as c:
            c.result("server.status")
        os.kill(pid, signal.SIGTERM)
        assert d.proc.wait(timeout=30 * SLOW) == 0
        assert "stopped" in d.log_text()
    finally:
        if pid is None and trace.exists():       # the traced daemon
            m = re.match(r"(\d+) ", trace.read_text())
            pid = int(m.group(1)) if m else None
        if pid is not None and d.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)     # strace would not
            except ProcessLookupError:
                pass
        d.kill()

    allowed = unit_syscall_filter()
    used, families, wx, ip_binds = set(), set(), [], []
    call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
    for line in trace.read_text().splitlines():
        m = call.match(line)
        if not m:
            continue
        name = m.group(1)
        used.add(name)
        if name in ("socket", "socketpair"):
            fam = re.search(r"\((AF_[A-Z0-9]+)", line)
            if fam:
                families.add(fam.group(1))
        if name == "bind" and re.search(r"sa_family=AF_INET6?\b", line):
            ip_binds.append(line)
        if name in ("mmap", "mprotect", "pkey_mprotect") and \
                "PROT_EXEC" in line and \
                (name != "mmap" or "PROT_WRITE" in line):
            wx.append(line)
    # The whole life was traced: exec, accepting clients, the directory.
    assert {"execve", "accept4", "connect", "epoll_wait"} <= used, used
    assert used <= allowed, f"refused by SystemCallFilter=: {used - allowed}"
    restrict = unit_value(SERVICE, "Service", "RestrictAddressFamilies")
    assert families <= set(restrict.split()), families
    assert not wx, "refused by MemoryDenyWriteExecute=:\n" + "\n".join(wx)
    assert unit_value(SERVICE, "Service", "SocketBindDeny") == "any"
    assert not ip_binds, "refused by SocketBindDeny=:\n" + "\n".join(ip_binds)
