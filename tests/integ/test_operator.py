"""docs/operator.md, run as written.

A slapd is set up from Debian's own /usr/share/slapd/slapd.init.ldif, as
the slapd package does on installation (cn=config, root on the ldapi
socket manages the config, a rootdn with a password, back-mdb, no
otasdir anything).  Then the blocks of the guide marked `<!-- test: NAME
-->` are run by sh, with only these substitutions:

- `ldapi:///` -> this slapd's ldapi socket;
- `/usr/local/share/otasdir/schema` -> the source tree's schema/;
- `/etc/otasdir` -> a scratch directory, `/tmp/otasdir-access.ldif` ->
  a scratch file, `/var/log/otasdir` and `/run/otasdird` -> scratch
  directories;
- `-W` (ask for the rootdn's password) -> `-y FILE`;
- `otasdird` in a command -> the built daemon; the group `otasadm` ->
  `root` (the test machine has no otasadm).

Then otasdird runs against the result and shows what the guide promises:
the directory up, the live view (syncprov), the service's writes allowed
and nothing more, an inactive account's bind refused by slapd itself,
the jq recipes working on a real audit trail, and TLS (ldaps:// and
StartTLS with a private CA; a wrong CA refused)."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import types
import urllib.parse
from pathlib import Path

import pytest

from otasenv import OTASDIRD, SLOW, Daemon, wait_for
from slapdenv import (INVALID_CREDENTIALS, _tool_env, parse_ldif,
                      running_slapd)

TOP = Path(__file__).resolve().parents[2]
GUIDE = TOP / "docs" / "operator.md"
SUFFIX = "dc=example,dc=com"
PEOPLE_DN = f"ou=people,{SUFFIX}"
SERVICE_DN = f"cn=otasdird,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"


def blocks():
    """{name: code} of the guide's tested blocks."""
    text = GUIDE.read_text()
    found = re.findall(r"<!-- test: ([\w-]+) -->\n```\w*\n(.*?)\n```", text,
                       re.S)
    out = dict(found)
    assert len(out) == len(found), "duplicate test block names"
    return out


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StockSlapd:
    """A slapd configured as Debian's slapd package configures a new
    installation, in dirpath."""

    def __init__(self, dirpath):
        self.dir = Path(dirpath)
        self.root_pw_file = self.dir / "root.secret"
        self.root_pw_file.write_text("stock-root-pw")
        self.root_pw_file.chmod(0o600)
        h = subprocess.run(["slappasswd", "-T", str(self.root_pw_file)],
                           capture_output=True, text=True, check=True)
        ldif = Path("/usr/share/slapd/slapd.init.ldif").read_text()
        ldif = (ldif.replace("@SUFFIX@", SUFFIX)
                .replace("@PASSWORD@", h.stdout.strip())
                .replace("/var/run/slapd/", f"{self.dir}/")
                .replace("/var/lib/ldap", f"{self.dir}/db"))
        (self.dir / "config.ldif").write_text(ldif)
        (self.dir / "db").mkdir()
        (self.dir / "slapd.d").mkdir()
        self.tool(["slapadd", "-n0", "-F", str(self.dir / "slapd.d"), "-l",
                   str(self.dir / "config.ldif")])
        # What the package's postinst adds: the suffix entry.
        base = self.dir / "base.ldif"
        base.write_text(f"dn: {SUFFIX}\nobjectClass: top\n"
                        "objectClass: dcObject\nobjectClass: organization\n"
                        "o: example.com\ndc: example\n")
        self.tool(["slapadd", "-n1", "-F", str(self.dir / "slapd.d"), "-l",
                   str(base)])
        self.ldapi = "ldapi://" + urllib.parse.quote(
            str(self.dir / "ldapi"), safe="")
        self.port, self.ldaps_port = free_port(), free_port()
        self.ldap_uri = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_uri = f"ldaps://127.0.0.1:{self.ldaps_port}"

    @staticmethod
    def tool(cmd, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True,
                           env=_tool_env(), timeout=120, **kw)
        assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
        return r

    def start(self):
        self.tool(["slapd", "-h", f"{self.ldapi} {self.ldap_uri} "
                   f"{self.ldaps_uri}", "-F", str(self.dir / "slapd.d")])
        wait_for(lambda: subprocess.run(
            ["ldapwhoami", "-x", "-H", self.ldap_uri], env=_tool_env(),
            capture_output=True).returncode == 0, what="slapd")

    def stop(self):
        try:
            pid = int((self.dir / "slapd.pid").read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, 9)

    def external(self, tool, ldif=None, args=()):
        """An ldap-utils command as root over ldapi (SASL EXTERNAL)."""
        return self.tool([tool, "-Q", "-Y", "EXTERNAL", "-H", self.ldapi,
                          *args], input=ldif)

    def as_root(self, tool, ldif=None, args=(), check=True):
        cmd = [tool, "-x", "-H", self.ldap_uri, "-D", ROOT_DN, "-y",
               str(self.root_pw_file), *args]
        r = subprocess.run(cmd, input=ldif, capture_output=True, text=True,
                           env=_tool_env(), timeout=120)
        if check:
            assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
        return r

    def whoami(self, dn, pw):
        return subprocess.run(["ldapwhoami", "-x", "-H", self.ldap_uri, "-D",
                               dn, "-w", pw], capture_output=True,
                              env=_tool_env(), timeout=60).returncode


@pytest.fixture(scope="module")
def site():
    """The stock slapd, prepared by the guide's section 2."""
    d = Path(tempfile.mkdtemp(prefix="otop", dir="/tmp"))
    s = StockSlapd(d)
    s.start()
    s.etc = d / "etc-otasdir"
    s.logs = d / "log-otasdir"
    s.logs.mkdir()
    s.run_dir = d / "run-otasdird"
    s.run_dir.mkdir()
    try:
        yield s
    finally:
        s.stop()
        if not os.environ.get("OTASDIR_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


def substitute(code, s):
    code = code.replace("ldapi:///", s.ldapi)
    code = code.replace("/usr/local/share/otasdir/schema",
                        str(TOP / "schema"))
    code = code.replace("/etc/otasdir", str(s.etc))
    code = code.replace("/tmp/otasdir-access.ldif",
                        str(s.dir / "otasdir-access.ldif"))
    code = code.replace("/var/log/otasdir", str(s.logs))
    code = code.replace("/run/otasdird", str(s.run_dir))
    code = re.sub(r"(?<= )-W\b", f"-y {s.root_pw_file}", code)
    code = re.sub(r"^otasdird ", f"{OTASDIRD} ", code, flags=re.M)
    code = re.sub(r"(?<= )otasdird --", f"{OTASDIRD} --", code)
    return code


def sh(code, s, env=None):
    e = _tool_env()
    if env:
        e.update(env)
    r = subprocess.run(["sh", "-ec", code], capture_output=True, text=True,
                       env=e, timeout=300)
    assert r.returncode == 0, f"{code}\n--- stdout\n{r.stdout}\n--- " \
        f"stderr\n{r.stderr}"
    return r.stdout


def prepare(s):
    """Section 2 of the guide, block by block, in one shell."""
    b = blocks()
    code = "\n".join(substitute(b[n], s) for n in (
        "vars", "find-db", "schema", "access", "limits", "syncprov",
        "service", "whoami"))
    return sh(code, s)


@pytest.fixture(scope="module")
def prepared(site):
    site.prepare_out = prepare(site)
    return site


def daemon_for(s, tmpdir, uris=None, extra=None):
    """An otasdird with the guide's config block (section 3), put where
    the test wants its socket and audit trail."""
    import yaml
    cfg = yaml.safe_load(substitute(blocks()["config"], s).replace(
        "[ otasadm ]", "[ root ]"))
    fake = types.SimpleNamespace(ldapi_uri=s.ldapi, service_dn=SERVICE_DN,
                                 bind_pw_file=s.etc / "bind.secret",
                                 people_dn=PEOPLE_DN)
    d = Daemon(fake, tmpdir, uris=uris)
    d.settings["ldap"] = dict(cfg["ldap"], **{
        k: v for k, v in d.settings["ldap"].items()
        if k.endswith("_ms")})
    if uris:
        d.settings["ldap"]["uris"] = list(uris)
    d.settings["license"] = cfg["license"]
    d.settings["admins"] = cfg["admins"]
    d.settings["audit"] = {"path": str(d.audit_path)}
    if extra:
        from otasenv import merge
        merge(d.settings, extra)
    return d


def creds(s):
    return {"CREDENTIALS_DIRECTORY": str(s.etc)}


def test_the_guide_prepares_a_stock_directory(prepared):
    s = prepared
    # The search block printed the DN the guide then uses.
    assert "dn: olcDatabase={1}mdb,cn=config" in s.prepare_out
    assert f"dn:{SERVICE_DN}" in s.prepare_out           # ldapwhoami
    # The secret: root's, 0600, no newline; slapd has only its hash.
    secret = s.etc / "bind.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert not secret.read_text().endswith("\n")
    entry = parse_ldif(s.as_root("ldapsearch", args=[
        "-LLL", "-b", SERVICE_DN, "-s", "base", "userPassword"]).stdout)[0]
    assert entry.first("userPassword").startswith("{SSHA}")
    cfg = parse_ldif(s.external("ldapsearch", args=[
        "-LLL", "-o", "ldif-wrap=no", "-b", "olcDatabase={1}mdb,cn=config",
        "-s", "base", "olcAccess", "olcLimits", "olcDbIndex"]).stdout)[0]
    acl = cfg["olcAccess"]
    # otasdir's rules first, the site's (Debian's three) after them.
    assert len(acl) == 8 + 3
    assert acl[0].startswith("{0}to dn.children=\"ou=people,dc=example")
    assert acl[8].startswith("{8}to attrs=userPassword")
    assert cfg["olcLimits"] == [f'{{0}}dn.exact="{SERVICE_DN}" '
                                "size=unlimited time=unlimited"]
    assert "entryCSN eq" in cfg["olcDbIndex"]


def test_otasdird_runs_against_it(prepared, tmp_path):
    s = prepared
    d = daemon_for(s, tmp_path)
    d.write_config()
    # The guide's --check-config line.
    check = substitute(blocks()["check-config"], s).replace(
        str(s.etc / "otasdird.yaml"), str(d.cfg_path))
    assert sh(check, s).strip() == f"{d.cfg_path}: ok"
    d.start(env=creds(s))
    try:
        with d.client() as c:
            st = c.result("server.status")
            assert st["directory"] == "up"
            assert st["view"] == "live"                 # syncprov
            used = st["seats_used"]
            c.result("user.create", username="op-alice", full_name="Alice",
                     email="alice@example.com", password="Op-alice-pw-1")
            alice = f"uid=op-alice,{PEOPLE_DN}"
            assert s.whoami(alice, "Op-alice-pw-1") == 0
            c.result("user.update", username="op-alice", status="inactive")
            # slapd itself refuses the inactive account's bind
            assert s.whoami(alice, "Op-alice-pw-1") == INVALID_CREDENTIALS
            # its hash is hidden even from the rootdn-less site rules
            r = subprocess.run(["ldapsearch", "-x", "-LLL", "-H",
                                s.ldap_uri, "-b", alice, "-s", "base",
                                "userPassword"], capture_output=True,
                               text=True, env=_tool_env())
            assert "userPassword" not in r.stdout
            # an entry another tool adds takes a seat at once (live view)
            s.as_root("ldapadd", ldif=f"dn: cn=other,{PEOPLE_DN}\n"
                      "objectClass: organizationalRole\ncn: other\n")
            wait_for(lambda: c.result("server.status")["seats_used"] ==
                     used + 2, what="the external entry counted")
            s.as_root("ldapdelete", args=[f"cn=other,{PEOPLE_DN}"])
            c.error("user.create", username="op-alice", full_name="Dup",
                    email="d@example.com")
            c.result("user.delete", username="op-alice", confirm="op-alice")
            with d.client() as u:
                u.error("auth.login", username="op-nobody",
                        password="Op-wrong-pw-1")
        # The counter entry the service created itself.
        r = s.as_root("ldapsearch", args=["-LLL", "-b",
                                          f"cn=otasdir-seats,{SUFFIX}",
                                          "-s", "base", "otasSeatsUsed"])
        assert "otasSeatsUsed:" in r.stdout

        # The guide's jq recipes, on this daemon's audit trail.
        jq = substitute(blocks()["jq"], s).replace(
            f"{s.logs}/audit.jsonl", str(d.audit_path)).replace(
            '"alice"', '"op-alice"')
        out = sh(jq, s).splitlines()
        refused = [l for l in out if l.startswith("{") and
                   '"outcome":"already_exists"' in l]
        assert refused, out
        assert any(re.fullmatch(r"\S+Z\top-alice\t0", l) for l in out), out
        assert any(re.fullmatch(r"\s*1 op-nobody", l) for l in out), out
        assert sum('"target":"op-alice"' in l for l in out) >= 4, out
    finally:
        d.stop()


# -- TLS ------------------------------------------------------------------

def make_ca(dirpath, name):
    """A CA and, signed by it, a certificate for 127.0.0.1 / localhost."""
    d = Path(dirpath)
    run = lambda *a: subprocess.run(["openssl", *a], capture_output=True,
                                    text=True, check=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name} test CA", "-keyout", f"{name}-ca.key",
        "-out", f"{name}-ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", f"{name}-server.key", "-out", f"{name}-server.csr")
    (d / f"{name}-ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", f"{name}-server.csr", "-CA", f"{name}-ca.pem",
        "-CAkey", f"{name}-ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", f"{name}-ext.cnf", "-out", f"{name}-server.pem")
    return d / f"{name}-ca.pem"


@pytest.fixture(scope="module")
def tls_site(prepared):
    s = prepared
    ca = make_ca(s.dir, "good")
    s.wrong_ca = make_ca(s.dir, "wrong")
    s.external("ldapmodify", ldif=(
        "dn: cn=config\nchangetype: modify\n"
        f"replace: olcTLSCACertificateFile\nolcTLSCACertificateFile: {ca}\n"
        "-\nreplace: olcTLSCertificateFile\n"
        f"olcTLSCertificateFile: {s.dir}/good-server.pem\n-\n"
        "replace: olcTLSCertificateKeyFile\n"
        f"olcTLSCertificateKeyFile: {s.dir}/good-server.key\n"))
    s.ca = ca
    return s


@pytest.mark.parametrize("form", ["ldaps", "starttls"])
def test_tls_with_a_private_ca(tls_site, tmp_path, form):
    s = tls_site
    uri = s.ldaps_uri if form == "ldaps" else s.ldap_uri
    tls = {"ca_file": str(s.ca), "starttls": form == "starttls"}
    d = daemon_for(s, tmp_path, uris=[uri], extra={"ldap": {"tls": tls}})
    d.start(env=creds(s))
    try:
        with d.client() as c:
            st = c.result("server.status")
            assert st["directory"] == "up" and st["ldap_server"] == uri
            c.result("user.create", username=f"op-tls-{form}",
                     full_name="Tls", email="tls@example.com")
            c.result("user.delete", username=f"op-tls-{form}",
                     confirm=f"op-tls-{form}")
    finally:
        d.stop()


@pytest.mark.parametrize("form", ["ldaps", "starttls"])
def test_tls_carries_bursts_of_replies(tls_site, tmp_path, form):
    """Hundreds of replies in flight at once over TLS: pipelined creates
    and deletes (the writer's replies and the view's change notices
    arrive in bursts, read ahead under the TLS layer), and a restart whose
    view loads every account in one refresh."""
    s = tls_site
    uri = s.ldaps_uri if form == "ldaps" else s.ldap_uri
    tls = {"ca_file": str(s.ca), "starttls": form == "starttls"}
    d = daemon_for(s, tmp_path, uris=[uri], extra={"ldap": {"tls": tls}})
    d.settings["license"] = dict(d.settings["license"], seats=1000)
    d.settings["socket"] = dict(d.settings.get("socket", {}),
                                max_inflight_per_connection=512)
    names = [f"op-burst-{form}-{i:03d}" for i in range(300)]
    long_name = "Burst " + "x" * 200

    def listed(c):
        got = c.result("user.list", search=f"op-burst-{form}-",
                       limit=1000)
        return sorted(u["username"] for u in got["users"])

    d.start(env=creds(s))
    try:
        with d.client() as c:
            ids = [c.request("user.create", {
                "username": n, "full_name": long_name,
                "email": f"{n}@example.com"}) for n in names]
            for i in ids:
                rep = c.wait(i)
                assert "result" in rep, rep
            wait_for(lambda: listed(c) == names, what="all 300 in the view")
        d.stop()
        d.start(env=creds(s))
        with d.client() as c:
            assert listed(c) == names
            [u] = c.result("user.list", search=names[7])["users"]
            assert u["full_name"] == long_name
            ids = [c.request("user.delete", {"username": n, "confirm": n})
                   for n in names]
            for i in ids:
                rep = c.wait(i)
                assert "result" in rep, rep
            wait_for(lambda: listed(c) == [], what="all 300 gone")
    finally:
        d.stop()
    left = s.external("ldapsearch", args=[
        "-LLL", "-b", PEOPLE_DN, "-s", "one", f"(uid=op-burst-{form}-*)",
        "1.1"]).stdout
    assert left.strip() == ""


@pytest.mark.parametrize("form", ["ldaps", "starttls"])
def test_tls_refuses_a_certificate_from_another_ca(tls_site, tmp_path,
                                                   form):
    s = tls_site
    uri = s.ldaps_uri if form == "ldaps" else s.ldap_uri
    tls = {"ca_file": str(s.wrong_ca), "starttls": form == "starttls"}
    d = daemon_for(s, tmp_path, uris=[uri], extra={"ldap": {"tls": tls}})
    d.start(directory_up=False, env=creds(s))
    try:
        why = "TLS handshake failed" if form == "ldaps" else \
            "StartTLS failed"
        wait_for(lambda: f"cannot use {uri}: {why}" in d.log_text(),
                 what=why)
        with d.client() as c:
            assert c.result("server.status")["directory"] == "down"
            assert c.error("license.get").reason == "directory_unavailable"
    finally:
        d.stop()
    # tls.verify: false accepts it (for tests only).
    d2 = daemon_for(s, tmp_path / "noverify", uris=[uri], extra={
        "ldap": {"tls": dict(tls, verify=False)}})
    d2.start(env=creds(s))
    d2.stop()


# -- troubleshooting (section 9) ------------------------------------------

def test_a_wrong_bind_password_is_named_in_the_log(prepared, tmp_path):
    s = prepared
    wrong = tmp_path / "creds"
    wrong.mkdir()
    (wrong / "bind.secret").write_text("not-the-password")
    (wrong / "bind.secret").chmod(0o400)
    d = daemon_for(s, tmp_path / "d")
    d.start(directory_up=False, env={"CREDENTIALS_DIRECTORY": str(wrong)})
    try:
        wait_for(lambda: re.search(
            rf"ldap service: bind as {re.escape(SERVICE_DN)} at \S+ failed: "
            r"Invalid credentials", d.log_text()), what="the bind failure")
        with d.client() as c:
            assert c.result("server.status")["directory"] == "down"
    finally:
        d.stop()


def test_without_syncprov_the_log_says_so(tmp_path):
    with running_slapd(syncprov=False, hash="SSHA") as s:
        d = Daemon(s, tmp_path, log_level="info")
        d.start()
        try:
            assert re.search(r"^<5>view: cannot follow ou=people,"
                             r"dc=example,dc=com with syncprov \(.*\); "
                             r"re-reading it every 60 s instead",
                             d.log_text(), re.M), d.log_text()
            with d.client() as c:
                assert c.result("server.status")["view"] == "polling"
        finally:
            d.stop()
