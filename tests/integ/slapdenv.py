"""A private slapd for otasdir's integration tests and benchmarks.

Slapd builds one with tests/lib/mkslapd.sh (schema and access rules as an
installed site would have them), starts and stops it, and drives it with
the ldap-utils commands, which is also what an operator would type.

    s = Slapd(tempfile.mkdtemp(prefix="otas", dir="/tmp"), form="cnconfig")
    s.start()
    try:
        s.ldapadd(ldif)                         # as the rootdn
        s.ldapadd(ldif, **s.service)            # as otasdird's bind DN
        entries = s.ldapsearch(s.people_dn, "(uid=alice)", ["mail"])
        assert s.whoami(dn, "secret") == 49
    finally:
        s.stop()

Every ldap* helper binds as the rootdn unless given dn= and pw= (or
anonymous=True), and raises LdapError (with .rc) when the tool fails,
unless check=False, in which case the caller reads .rc itself.
Standard library only.
"""

import base64
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
MKSLAPD = TOP / "tests" / "lib" / "mkslapd.sh"

# LDAP result codes the tests talk about.
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
OBJECT_CLASS_VIOLATION = 65
ALREADY_EXISTS = 68
ASSERTION_FAILED = 122
# slapd 2.5 answers a second value of a SINGLE-VALUE attribute (add or
# replace) with constraintViolation.
CONSTRAINT_VIOLATION = 19
# What Password Modify answers when oldPasswd does not match.
UNWILLING_TO_PERFORM = 53

# Seconds an ldap-utils command may take (slapadd -q of 100k accounts
# takes about 12 s here, most of it building the substring indexes).
TOOL_TIMEOUT = 120


class LdapError(Exception):
    """An ldap-utils command failed; rc is its exit status (the LDAP
    result code for ldapadd/modify/delete/search/passwd/whoami)."""

    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        super().__init__(f"{cmd[0]} failed with {rc}: {err.strip() or out.strip()}")


class Result:
    """What an ldap-utils command returned."""

    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self):
        return f"Result(rc={self.rc}, err={self.err.strip()!r})"


class Entry(dict):
    """One search result entry: attribute name -> list of str values
    (names as slapd spells them), with the DN in .dn."""

    def __init__(self, dn):
        super().__init__()
        self.dn = dn

    def first(self, attr, default=None):
        """The first value of attr (looked up case-insensitively)."""
        for k, v in self.items():
            if k.lower() == attr.lower():
                return v[0]
        return default


class Entries(list):
    """Search results with the result code in .rc (0 unless check=False)."""

    rc = 0
    err = ""


def parse_ldif(text):
    """Parse ldapsearch -LLL output into a list of Entry.  Handles folded
    lines and base64 (::) values; values are decoded as UTF-8, with bytes
    that are not kept as surrogates."""
    entries = []
    lines = []
    for raw in text.split("\n"):
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    entry = None
    for line in lines:
        if not line:
            entry = None
            continue
        if line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"bad LDIF line: {line!r}")
        if rest.startswith(":"):
            value = base64.b64decode(rest[1:].strip()).decode("utf-8", "surrogateescape")
        else:
            value = rest[1:] if rest.startswith(" ") else rest
        if entry is None:
            if name.lower() != "dn":
                raise ValueError(f"LDIF record without dn: {line!r}")
            entry = Entry(value)
            entries.append(entry)
        else:
            entry.setdefault(name, []).append(value)
    return entries


def ssha(password):
    """An {SSHA} hash of password, as slapd would store it (for seeding
    many accounts without the Password Modify round trip per entry)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _read_env(path):
    """Read the KEY='value' lines mkslapd.sh writes into a dict."""
    env = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key] = "".join(shlex.split(value))
    return env


class Slapd:
    """A private slapd in dirpath, built by mkslapd.sh when first made
    (an existing build in dirpath is reused as it is).  Not started until
    start(); usable as a context manager (start on enter, stop on exit)."""

    def __init__(self, dirpath, form="conf", port=None, syncprov=True,
                 limits=True, hash="SSHA", superadmin="admin",
                 dbnosync=False, writemap=False, suffix=None,
                 server_id=None, peers=(), seed_from=None):
        self.dir = Path(dirpath).resolve()
        args = [str(MKSLAPD), "--no-start", "--form", form, "--hash", hash,
                "--superadmin", superadmin]
        if port is not None:
            args += ["--port", str(port)]
        if suffix is not None:
            args += ["--suffix", suffix]
        if not syncprov:
            args.append("--no-syncprov")
        if not limits:
            args.append("--no-limits")
        if dbnosync:
            args.append("--dbnosync")
        if writemap:
            args.append("--writemap")
        if server_id is not None:
            args += ["--server-id", str(server_id)]
        for peer in peers:
            args += ["--peer", peer]
        if seed_from is not None:
            args += ["--seed-from", str(seed_from)]
        args.append(str(self.dir))
        run = subprocess.run(args, capture_output=True, text=True,
                             timeout=TOOL_TIMEOUT)
        if run.returncode != 0:
            raise RuntimeError(f"mkslapd.sh failed ({run.returncode}): {run.stderr}")
        self.env = _read_env(self.dir / "env")
        e = self.env
        self.form = e["FORM"]
        self.suffix = e["SUFFIX"]
        self.people_dn = e["PEOPLE_DN"]
        self.service_dn = e["SERVICE_DN"]
        self.root_dn = e["ROOT_DN"]
        self.superadmin = e["SUPERADMIN"]
        self.superadmin_dn = e["SUPERADMIN_DN"]
        self.port = int(e["PORT"])
        self.ldap_uri = e["LDAP_URI"]
        self.ldapi_uri = e["LDAPI_URI"]
        self.pidfile = Path(e["SLAPD_PIDFILE"])
        self.root_pw_file = Path(e["ROOT_PW_FILE"])
        self.bind_pw_file = Path(e["BIND_PW_FILE"])
        self.superadmin_pw_file = Path(e["SUPERADMIN_PW_FILE"])
        self.root_pw = self.root_pw_file.read_text()
        self.bind_pw = self.bind_pw_file.read_text()
        self.superadmin_pw = self.superadmin_pw_file.read_text()
        self.syncprov = e["SYNCPROV"] == "1"
        self.limits = e["LIMITS"] == "1"
        self.hash = e["HASH"]
        self.server_id = e.get("SERVER_ID") or None

    # -- process control ----------------------------------------------------

    def start(self):
        """Start slapd (it daemonizes); return once it answers."""
        self._script("start")

    def stop(self):
        """Stop slapd (SIGTERM, SIGKILL after 10 s); fine if not running."""
        self._script("stop")

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL slapd, as a crash would, and wait until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.02)

    def pid(self):
        """The pid of our running slapd, or None."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        # An exited but unreaped process has an empty cmdline.
        if b"slapd" in cmdline and str(self.dir).encode() in cmdline:
            return pid
        return None

    @property
    def running(self):
        return self.pid() is not None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _script(self, name):
        run = subprocess.run([str(self.dir / name)], capture_output=True,
                             text=True, timeout=60, env=_tool_env())
        if run.returncode != 0:
            raise RuntimeError(f"{self.dir / name} failed: {run.stderr.strip()}")

    # -- identities ---------------------------------------------------------

    @property
    def service(self):
        """Keyword arguments that bind as otasdird's service DN."""
        return {"dn": self.service_dn, "pw": self.bind_pw}

    @property
    def admin(self):
        """Keyword arguments that bind as the first super admin account."""
        return {"dn": self.superadmin_dn, "pw": self.superadmin_pw}

    def user_dn(self, username):
        return f"uid={username},{self.people_dn}"

    # -- ldap-utils ---------------------------------------------------------

    def _bind_args(self, dn, pw, anonymous):
        if anonymous:
            return ["-x"]
        if dn is None:
            return ["-x", "-D", self.root_dn, "-y", str(self.root_pw_file)]
        return ["-x", "-D", dn, "-w", pw]

    def _run(self, tool, args, dn=None, pw=None, anonymous=False,
             uri=None, stdin=None, check=True):
        cmd = [tool, "-H", uri or self.ldap_uri]
        cmd += self._bind_args(dn, pw, anonymous) + list(args)
        run = subprocess.run(cmd, input=stdin, capture_output=True,
                             text=True, timeout=TOOL_TIMEOUT, env=_tool_env())
        if check and run.returncode != 0:
            raise LdapError(cmd, run.returncode, run.stdout, run.stderr)
        return Result(run.returncode, run.stdout, run.stderr)

    def ldapadd(self, ldif, dn=None, pw=None, *, anonymous=False, cont=False,
                args=(), uri=None, check=True):
        """Add the entries in ldif (cont: go on after errors, -c)."""
        extra = ["-c"] if cont else []
        return self._run("ldapadd", extra + list(args), dn, pw, anonymous,
                         uri, ldif, check)

    def ldapmodify(self, ldif, dn=None, pw=None, *, anonymous=False,
                   args=(), uri=None, check=True):
        """Apply an ldapmodify LDIF; args can carry controls, e.g.
        ["-e", "!assert=(otasSeatsUsed<=4)"]."""
        return self._run("ldapmodify", list(args), dn, pw, anonymous, uri,
                         ldif, check)

    def ldapdelete(self, target, dn=None, pw=None, *, anonymous=False,
                   uri=None, check=True):
        return self._run("ldapdelete", [target], dn, pw, anonymous, uri,
                         None, check)

    def ldappasswd(self, target, new_pw, dn=None, pw=None, *, old_pw=None,
                   anonymous=False, uri=None, check=True):
        """Set target's password with the Password Modify extended
        operation (slapd hashes it); old_pw is sent as oldPasswd (-a)."""
        args = ["-s", new_pw]
        if old_pw is not None:
            args += ["-a", old_pw]
        res = self._run("ldappasswd", args + [target], dn, pw, anonymous,
                        uri, None, check=False)
        # ldappasswd exits 1 for any failed extended operation and prints
        # "Result: <text> (<code>)": report the LDAP code instead.
        m = re.search(r"^Result: .*\((\d+)\)$", res.out, re.M)
        if res.rc == 1 and m:
            res.rc = int(m.group(1))
        if check and res.rc != 0:
            raise LdapError(["ldappasswd", target], res.rc, res.out, res.err)
        return res

    def ldapsearch(self, base, filt="(objectClass=*)", attrs=(), scope="sub",
                   dn=None, pw=None, *, anonymous=False, args=(), uri=None,
                   check=True):
        """Search and return Entries (a list of Entry; .rc is the result
        code, which with check=False may be non-zero, e.g. 4 with the
        entries sent before the size limit hit)."""
        cmd_args = ["-LLL", "-o", "ldif-wrap=no", "-b", base, "-s", scope]
        cmd_args += list(args) + [filt] + list(attrs)
        res = self._run("ldapsearch", cmd_args, dn, pw, anonymous, uri,
                        None, check)
        entries = Entries(parse_ldif(res.out))
        entries.rc, entries.err = res.rc, res.err
        return entries

    def ldapcompare(self, target, assertion, dn=None, pw=None, *,
                    anonymous=False, uri=None):
        """Compare "attr:value" on target; returns the result code
        (6 compareTrue, 5 compareFalse, 50 insufficientAccess...)."""
        return self._run("ldapcompare", [target, assertion], dn, pw,
                         anonymous, uri, None, check=False).rc

    def whoami(self, dn, pw, uri=None):
        """The result code of a simple bind as dn (ldapwhoami's exit
        status): 0 on success, 49 for invalid credentials."""
        return self._run("ldapwhoami", [], dn, pw, uri=uri, check=False).rc

    def count_people(self):
        """The number of entries directly under people_dn (as rootdn)."""
        return len(self.ldapsearch(self.people_dn, "(objectClass=*)",
                                   ["1.1"], scope="one"))

    # -- seeding ------------------------------------------------------------

    def account_ldif(self, username, full_name=None, email=None,
                     status="active", role="user", password=None):
        """The LDIF of one account as otasdird would create it; password,
        if given, is stored as an {SSHA} hash (never cleartext)."""
        full_name = full_name or f"User {username}"
        lines = [
            f"dn: {self.user_dn(username)}",
            "objectClass: inetOrgPerson",
            "objectClass: otasAccount",
            f"uid: {username}",
            f"cn: {full_name}",
            f"displayName: {full_name}",
            f"sn: {full_name.split()[-1]}",
            f"mail: {email or username + '@example.com'}",
            f"otasAccountStatus: {status}",
            f"otasRole: {role}",
        ]
        if password is not None:
            lines.append(f"userPassword: {ssha(password)}")
        return "\n".join(lines) + "\n\n"

    def _seed_ldif(self, n, prefix, password, inactive_every):
        names = [f"{prefix}{i:06d}" for i in range(n)]
        parts = []
        for i, name in enumerate(names):
            inactive = inactive_every and i % inactive_every == inactive_every - 1
            parts.append(self.account_ldif(
                name, status="inactive" if inactive else "active",
                password=password))
        return names, "".join(parts)

    def seed(self, n, prefix="user", password=None, inactive_every=5):
        """Add n accounts <prefix>000000.. over LDAP as the rootdn (every
        inactive_every-th one inactive); returns their usernames."""
        names, ldif = self._seed_ldif(n, prefix, password, inactive_every)
        self.ldapadd(ldif, cont=True)
        return names

    def seed_offline(self, n, prefix="bulk", password=None, inactive_every=5):
        """Load n accounts with slapadd -q (seconds for 100k); slapd is
        stopped for it and restarted if it was running.  Returns the
        usernames."""
        names, ldif = self._seed_ldif(n, prefix, password, inactive_every)
        was_running = self.running
        self.stop()
        path = self.dir / "seed.ldif"
        path.write_text(ldif)
        cmd = ["slapadd", "-q"]
        if self.syncprov:
            cmd.append("-w")  # keep the contextCSN current for syncprov
        cmd += shlex.split(self.env["SLAPD_CONF_ARGS"])
        cmd += ["-b", self.suffix, "-l", str(path)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True,
                                 timeout=600)
            if run.returncode != 0:
                raise RuntimeError(f"slapadd failed: {run.stderr.strip()}")
        finally:
            path.unlink(missing_ok=True)
        if was_running:
            self.start()
        return names


@contextlib.contextmanager
def running_slapd(**kwargs):
    """Build and start a Slapd in a new short directory under /tmp; stop
    it and remove the directory afterwards, also when the body fails
    (set OTASDIR_KEEP=1 to keep the directory for a post-mortem)."""
    path = tempfile.mkdtemp(prefix="otas", dir="/tmp")
    s = None
    try:
        s = Slapd(path, **kwargs)
        s.start()
        yield s
    finally:
        if s is not None:
            s.stop()
        if not os.environ.get("OTASDIR_KEEP"):
            shutil.rmtree(path, ignore_errors=True)


def free_port():
    """A loopback TCP port nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def provider_pair(**kwargs):
    """Two slapd on loopback ports replicating to each other
    (multi-provider, serverID 1 and 2, syncrepl both ways as the rootdn,
    syncprov), the second seeded from the first: same secrets, same data.
    Yields (first, second); both are stopped and removed afterwards."""
    pa, pb = free_port(), free_port()
    while pb == pa:
        pb = free_port()
    paths = [tempfile.mkdtemp(prefix="otasA", dir="/tmp"),
             tempfile.mkdtemp(prefix="otasB", dir="/tmp")]
    nodes = []
    try:
        a = Slapd(paths[0], port=pa, server_id=1,
                  peers=[f"ldap://127.0.0.1:{pb}"], **kwargs)
        nodes.append(a)
        b = Slapd(paths[1], port=pb, server_id=2,
                  peers=[f"ldap://127.0.0.1:{pa}"], seed_from=paths[0],
                  **kwargs)
        nodes.append(b)
        a.start()
        b.start()
        yield a, b
    finally:
        for n in nodes:
            n.stop()
        if not os.environ.get("OTASDIR_KEEP"):
            for p in paths:
                shutil.rmtree(p, ignore_errors=True)


def entry_sid(entry):
    """The serverID (an int) in an entry's entryCSN: which provider took
    the write that made it (YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod)."""
    csn = entry.first("entryCSN")
    return int(csn.split("#")[2], 16)


def _tool_env():
    """The environment for ldap-utils: no ldap.conf, ~/.ldaprc or LDAP*
    variables of the host."""
    env = dict(os.environ)
    env["LDAPNOINIT"] = "1"
    return env
