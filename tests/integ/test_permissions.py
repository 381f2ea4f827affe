"""Who may call what (CONTRACT.md, "Identity"): every method of the
dispatch table, as every kind of caller, checked against the contract.

The dispatch table is read from daemon/method.c, so a method added there
without a line in CONTRACT below fails the test.  Non-admin callers are
real: a helper process that drops to uid 65534 (nobody) with the groups
the test asks for, and speaks JSON-RPC on the daemon's socket
(PeerClient).  Denied calls are checked not to change the directory.
"""

import grp
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from otasenv import SLOW, Daemon, RpcError, wait_for

TOP = Path(__file__).resolve().parents[2]
NOBODY = 65534
PERMISSION_DENIED = -32001

# ---------------------------------------------------------------------------
# A client running as another uid


# Runs as the unprivileged peer: prints its credentials, then for each
# "N" line on stdin sends the next N request lines to the daemon at once
# and prints the N replies.
_HELPER = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[2]))
s.connect(sys.argv[1])
f = s.makefile("rwb")
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(),
                  "groups": sorted(os.getgroups())}), flush=True)
while True:
    hdr = sys.stdin.readline()
    if not hdr:
        break
    n = int(hdr)
    f.write("".join(sys.stdin.readline() for _ in range(n)).encode())
    f.flush()
    for _ in range(n):
        rep = f.readline()
        if not rep:
            sys.exit(3)
        sys.stdout.write(rep.decode())
    sys.stdout.flush()
"""


class PeerClient:
    """A connection to otasdird made by a process running as uid (with
    primary gid and supplementary groups): the kernel, not the test, says
    who it is.  call()/result()/error() work like otasenv.Client; calls()
    pipelines a list of (method, params)."""

    def __init__(self, sock, uid=NOBODY, gid=NOBODY, groups=(),
                 timeout=30 * SLOW):
        groups = list(groups)

        def drop():
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)

        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-I", "-c", _HELPER, str(sock),
             str(timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd="/", preexec_fn=drop)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"peer helper failed ({self.proc.wait()})")
        self.creds = json.loads(line)
        assert self.creds["uid"] == uid and self.creds["gid"] == gid
        self.next_id = 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def calls(self, reqs):
        """Send [(method, params), ...] pipelined; the replies in the
        same order."""
        ids, lines = [], []
        for method, params in reqs:
            self.next_id += 1
            ids.append(self.next_id)
            req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
            if params is not None:
                req["params"] = params
            lines.append(json.dumps(req) + "\n")
        self.proc.stdin.write(f"{len(lines)}\n" + "".join(lines))
        self.proc.stdin.flush()
        got = {}
        for _ in lines:
            line = self.proc.stdout.readline()
            if not line:
                raise ConnectionError("peer helper: connection lost")
            rep = json.loads(line)
            got[rep.get("id")] = rep
        return [got[i] for i in ids]

    def call(self, method, params=None):
        return self.calls([(method, params)])[0]

    def result(self, method, params=None, **kw):
        rep = self.call(method, params if params is not None or not kw
                        else kw)
        if "error" in rep:
            raise RpcError(rep["error"])
        return rep["result"]

    def error(self, method, params=None, **kw):
        params = params if params is not None or not kw else kw
        rep = self.call(method, params)
        assert "error" in rep, f"{method} {params} succeeded: {rep}"
        return RpcError(rep["error"])


def open_socket_dir(daemon):
    """Let other uids reach the socket (the temp dir is 0700)."""
    os.chmod(daemon.dir, 0o755)


def two_groups():
    """Two local groups (name, gid) that nobody is not a member of."""
    found = []
    for name in ("users", "games", "audio", "video", "staff", "src",
                 "floppy", "tape", "fax", "voice"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid not in (0, NOBODY) and "nobody" not in g.gr_mem:
            found.append((name, g.gr_gid))
        if len(found) == 2:
            return found
    pytest.fail("need two local groups for the admins.groups tests")


# ---------------------------------------------------------------------------
# Directory helpers


def add_account(s, name, password, status="active", role="user"):
    s.ldapadd(s.account_ldif(name, status=status, role=role,
                             password=password))


def set_attr(s, name, attr, value):
    s.ldapmodify(f"dn: {s.user_dn(name)}\nchangetype: modify\n"
                 f"replace: {attr}\n{attr}: {value}\n")


def view_shows(client, name, status=None, role=None):
    """Does otasdird (asked by an admin connection) see the account so?"""
    try:
        a = client.result("user.get", username=name)
    except RpcError:
        return False
    return ((status is None or a["status"] == status) and
            (role is None or a["role"] == role))


def snapshot(s):
    """Everything under the suffix, operational attributes included, as
    the rootdn sees it: equal snapshots mean nothing changed.  The seat
    counter is left out: otasdird reconciles it on its own schedule."""
    entries = s.ldapsearch(s.suffix, "(!(objectClass=otasSeatCounter))",
                           ["*", "+"])
    return sorted((e.dn, sorted((k, sorted(v)) for k, v in e.items()
                             if k != "contextCSN"))
                  for e in entries)


# ---------------------------------------------------------------------------
# The contract

ANYONE, ADMIN, ACCOUNT, SELF = "anyone", "admin", "account", "self"

# CONTRACT.md, "Identity" and the method table: who may call each method.
CONTRACT = {
    "server.ping": {ANYONE},
    "server.status": {ANYONE},
    "auth.login": {ANYONE},
    "auth.verify": {ADMIN},
    "auth.whoami": {ADMIN, ACCOUNT},
    "license.get": {ADMIN},
    "user.list": {ADMIN},
    "user.get": {ADMIN, SELF},
    "user.create": {ADMIN},
    "user.update": {ADMIN},
    "user.delete": {ADMIN},
    "user.set_password": {ADMIN, SELF},
    "user.import": {ADMIN},
}


def dispatch_table():
    """The method names of daemon/method.c's dispatch table."""
    text = (TOP / "daemon" / "method.c").read_text()
    m = re.search(r"static const struct method methods\[\] = \{(.*?)\n\};",
                  text, re.S)
    assert m, "dispatch table not found in daemon/method.c"
    names = re.findall(r'\{\s*"([a-z_]+\.[a-z_]+)"\s*,', m.group(1))
    assert names
    return names


def test_contract_lists_every_method():
    assert sorted(dispatch_table()) == sorted(CONTRACT)


PW = "Secret-pass-123"
USER, BOSS, GONE = "pu-user", "pu-boss", "pu-gone"
SCRATCH, NOSUCH = "pu-scratch", "pu-nosuch"


def variants(method, ident, me):
    """(label, params, targets_self) for calling method as ident; me is
    the identity's own username (accounts) or None."""
    other = SCRATCH
    tag = re.sub(r"[^a-z0-9]", "", ident)
    if method in ("auth.login", "auth.verify"):
        return [("", {"username": NOSUCH, "password": "wrong-password"},
                 False)]
    if method == "user.list":
        return [("", {"limit": 1}, False)]
    if method == "user.get":
        v = [("other", {"username": other}, False)]
        if me:
            v.append(("self", {"username": me.upper()}, True))
        return v
    if method == "user.set_password":
        v = [("other", {"username": other, "password": PW}, False)]
        if me:
            v.append(("self", {"username": me, "password": PW}, True))
        return v
    if method == "user.create":
        return [("", {"username": f"pu-new-{tag}", "full_name": "New Person",
                      "email": f"new-{tag}@example.com"}, False)]
    if method == "user.update":
        return [("", {"username": other, "full_name": f"Scratch {tag}"},
                 False)]
    if method == "user.delete":
        return [("", {"username": NOSUCH, "confirm": NOSUCH}, False)]
    if method == "user.import":
        return [("", {"users": [{"username": f"pu-imp-{tag}",
                                 "full_name": "Imported Person",
                                 "email": f"imp-{tag}@example.com"}],
                      "dry_run": True}, False)]
    return [("", None, False)]


def allowed(method, kind, targets_self):
    """May a caller of kind ('admin', 'account', 'peer', 'none') call
    method (on itself when targets_self)?"""
    who = CONTRACT[method]
    if ANYONE in who:
        return True
    if kind == "admin":
        return ADMIN in who
    if kind == "account":
        return ACCOUNT in who or (SELF in who and targets_self)
    return False


@pytest.fixture
def pdaemon(slapd, tmpdir_short):
    """A daemon whose admins are uid 0 and two groups (one to be held as
    a supplementary group, one as the primary gid)."""
    (g1, gid1), (g2, gid2) = two_groups()
    d = Daemon(slapd, tmpdir_short, seats=1000, admin_groups=(g1, g2),
               extra={"auth": {"max_failures": 1000}})
    d.start()
    open_socket_dir(d)
    d.groups = {"supplementary": gid1, "primary": gid2}
    yield d
    d.stop()


def test_every_method_as_every_identity(slapd, pdaemon):
    d = pdaemon
    for name, role in ((USER, "user"), (BOSS, "superadmin"),
                       (GONE, "user"), (SCRATCH, "user")):
        add_account(slapd, name, PW, role=role)
    root = d.client()
    for name in (USER, BOSS, GONE, SCRATCH):
        wait_for(lambda: view_shows(root, name), what=f"{name} in the view")

    idents = {}
    try:
        idents["admin peer (uid 0)"] = ("admin", None, d.client())
        idents["other peer (uid 65534)"] = ("none", None,
                                            PeerClient(d.sock))
        idents["admin by supplementary group"] = (
            "admin", None,
            PeerClient(d.sock, groups=[d.groups["supplementary"]]))
        idents["admin by primary gid"] = (
            "admin", None, PeerClient(d.sock, gid=d.groups["primary"]))
        for label, name, kind in (("user account", USER, "account"),
                                  ("superadmin account", BOSS, "admin"),
                                  ("deactivated account", GONE, "none")):
            c = PeerClient(d.sock)
            a = c.result("auth.login", username=name, password=PW)
            assert a["username"] == name
            idents[label] = (kind, name, c)

        # The connections as the kernel and the daemon see them.
        assert idents["other peer (uid 65534)"][2].creds["uid"] == NOBODY
        assert (d.groups["supplementary"] in
                idents["admin by supplementary group"][2].creds["groups"])
        for label in ("admin peer (uid 0)", "admin by supplementary group",
                      "admin by primary gid"):
            w = idents[label][2].result("auth.whoami")
            assert w["kind"] == "peer" and w["role"] == "superadmin", label
        w = idents["superadmin account"][2].result("auth.whoami")
        assert w == {"kind": "account", "role": "superadmin",
                     "username": BOSS}

        # Deactivate one logged-in account behind its back.
        set_attr(slapd, GONE, "otasAccountStatus", "inactive")
        wait_for(lambda: view_shows(root, GONE, status="inactive"),
                 what="the deactivation in the view")

        methods = dispatch_table()
        seen = set()
        for label, (kind, me, c) in idents.items():
            calls = []
            for method in methods:
                for vlabel, params, is_self in variants(method, label, me):
                    ok = allowed(method, kind, is_self)
                    calls.append((method, vlabel, params, ok))
                    seen.add((label, method, ok))
            denied = [x for x in calls if not x[3]]
            permitted = [x for x in calls if x[3]]

            before = snapshot(slapd)
            for method, vlabel, params, _ in denied:
                rep = c.call(method, params)
                where = f"{label}: {method} {vlabel}"
                assert "error" in rep, f"{where} was allowed: {rep}"
                assert rep["error"]["code"] == PERMISSION_DENIED, \
                    f"{where}: {rep}"
                assert rep["error"]["data"]["reason"] == "permission_denied"
            assert snapshot(slapd) == before, \
                f"{label}: a denied call changed the directory"

            for method, vlabel, params, _ in permitted:
                rep = c.call(method, params)
                where = f"{label}: {method} {vlabel}"
                err = rep.get("error")
                assert err is None or err["code"] not in (
                    PERMISSION_DENIED, -32601, -32602), f"{where}: {rep}"

        # Every identity met both answers where the contract has both.
        assert ("other peer (uid 65534)", "user.list", False) in seen
        assert ("user account", "user.get", True) in seen
        assert ("user account", "user.get", False) in seen
        # The account's own calls really were its own.
        assert view_shows(root, USER, status="active")
        assert slapd.whoami(slapd.user_dn(USER), PW) == 0
    finally:
        root.close()
        for _, _, c in idents.values():
            c.close()


def test_sighup_changes_a_connected_peers_rights(slapd, tmpdir_short):
    """admins.uids and admins.groups are re-read on SIGHUP and apply to
    connections already open, without reconnecting."""
    (g1, gid1), _ = two_groups()
    d = Daemon(slapd, tmpdir_short)
    d.start()
    open_socket_dir(d)
    try:
        with PeerClient(d.sock, groups=[gid1]) as p:
            def is_admin():
                rep = p.call("license.get")
                if "error" in rep:
                    assert rep["error"]["code"] == PERMISSION_DENIED
                    return False
                return True

            assert not is_admin()
            assert p.call("auth.whoami")["error"]["code"] == \
                PERMISSION_DENIED

            d.settings["admins"] = {"uids": [0, NOBODY], "groups": []}
            d.write_config()
            d.reload()
            assert is_admin()
            assert p.result("auth.whoami")["role"] == "superadmin"

            d.settings["admins"] = {"uids": [0], "groups": [g1]}
            d.write_config()
            d.reload()
            assert is_admin()       # now through its supplementary group

            d.settings["admins"] = {"uids": [0], "groups": []}
            d.write_config()
            d.reload()
            assert not is_admin()
            assert p.result("server.ping") == "pong"

            # A bad file on reload keeps the last good settings.
            d.settings["admins"] = {"uids": [0, NOBODY], "groups": []}
            d.write_config()
            d.reload()
            assert is_admin()
            d.write_config("admins: [ this is not valid\n")
            d.reload()
            assert is_admin()
    finally:
        d.stop()


def test_login_from_an_admin_peer_gives_up_its_rights(slapd, daemon,
                                                      client):
    """auth.login switches even an admin peer's connection to the
    account: it then has only the account's rights."""
    add_account(slapd, "pu-switch", PW)
    wait_for(lambda: view_shows(client, "pu-switch"), what="view")
    with daemon.client() as c:
        assert c.result("license.get")["seats"] >= 1
        c.result("auth.login", username="pu-switch", password=PW)
        assert c.error("license.get").code == PERMISSION_DENIED
        assert c.error("user.get", username=slapd.superadmin).code == \
            PERMISSION_DENIED
        assert c.result("user.get", username="pu-switch")["username"] == \
            "pu-switch"
