"""otasctl end to end (issue 3): every user command against a real slapd
and otasdird, what the operator sees (the table, one-line errors), the
exit statuses, the delete confirmation and the password handling."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from otasenv import OTASCTL, Daemon, wait_for
from slapdenv import NO_SUCH_OBJECT, running_slapd

GOLDEN = Path(__file__).resolve().parent / "golden"

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PERMISSION = 1, 2, 3, 4
EXIT_SEATS, EXIT_DIRECTORY, EXIT_EXISTS, EXIT_CREDENTIALS = 5, 6, 7, 8
EXIT_ABORTED, EXIT_CONNECT = 9, 10


@pytest.fixture
def d(slapd, tmpdir_short):
    dm = Daemon(slapd, tmpdir_short, seats=100000)
    dm.start()
    yield dm
    dm.stop()


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def fails(p, code):
    """p exited with code and said so in one line on stderr."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("otasctl: ")
    return lines[0]


def exists(s, username):
    res = s.ldapsearch(s.user_dn(username), scope="base", check=False)
    return res.rc != NO_SUCH_OBJECT


def add(d, username, name=None, email=None, *extra, **kw):
    return d.ctl("user", "add", username, "--name", name or f"User {username}",
                 "--email", email or f"{username}@example.com", *extra, **kw)


# -- the commands -------------------------------------------------------------

def test_add_show_edit_activate_deactivate(d, slapd):
    p = ok(add(d, "cli1", "Ada Lovelace", "ada@example.com"))
    assert p.stdout.splitlines() == [
        "Username   cli1",
        "Full Name  Ada Lovelace",
        "Email      ada@example.com",
        "Status     Active",
        "Role       User",
    ]
    e = slapd.ldapsearch(slapd.user_dn("cli1"), scope="base",
                         attrs=["*", "userPassword"])[0]
    assert e["cn"] == ["Ada Lovelace"] and e["sn"] == ["Lovelace"]
    assert "userPassword" not in e   # stdin is not a terminal: no password

    p = ok(d.ctl("user", "show", "CLI1"))
    assert "Full Name  Ada Lovelace" in p.stdout

    p = ok(d.ctl("user", "edit", "cli1", "--name", "Ada King",
                 "--email", "ada@king.example", "--role", "superadmin"))
    assert "Full Name  Ada King" in p.stdout
    assert "Role       Super admin" in p.stdout
    e = slapd.ldapsearch(slapd.user_dn("cli1"), scope="base")[0]
    assert (e["cn"], e["mail"], e["otasRole"]) == (
        ["Ada King"], ["ada@king.example"], ["superadmin"])

    p = ok(d.ctl("user", "deactivate", "cli1"))
    assert "Status     Inactive" in p.stdout
    assert slapd.ldapsearch(slapd.user_dn("cli1"), scope="base")[0][
        "otasAccountStatus"] == ["inactive"]
    p = ok(d.ctl("user", "activate", "cli1"))
    assert "Status     Active" in p.stdout
    ok(d.ctl("user", "edit", "cli1", "--role", "user"))

    fails(d.ctl("user", "edit", "cli1"), EXIT_USAGE)
    fails(d.ctl("user", "edit", "cli1", "--role", "root"), EXIT_USAGE)


def test_add_options(d, slapd):
    p = ok(add(d, "cli2", "Bo Inactive", None, "--inactive", "--superadmin",
               "--password-stdin", input="cli2-password\n"))
    assert "Status     Inactive" in p.stdout
    assert "Role       Super admin" in p.stdout
    e = slapd.ldapsearch(slapd.user_dn("cli2"), scope="base",
                         attrs=["*", "userPassword"])[0]
    assert e["userPassword"][0].startswith("{SSHA}")
    ok(d.ctl("user", "activate", "cli2"))
    assert slapd.whoami(slapd.user_dn("cli2"), "cli2-password") == 0
    ok(d.ctl("user", "delete", "cli2", "--yes"))


def test_passwords_are_never_taken_from_argv(d):
    p = add(d, "cli3", None, None, "--password", "secret-on-argv")
    assert p.returncode == EXIT_USAGE
    p = d.ctl("user", "passwd", "cli3", "secret-on-argv")
    assert p.returncode == EXIT_USAGE


def test_passwd(d, slapd):
    ok(add(d, "cli4"))
    p = ok(d.ctl("user", "passwd", "cli4", "--password-stdin",
                 input="a fine password\n"))
    assert p.stdout == "password of cli4 set\n"
    assert slapd.whoami(slapd.user_dn("cli4"), "a fine password") == 0
    # No terminal and no --password-stdin: refused, nothing changed.
    p = d.ctl("user", "passwd", "cli4", input="other password\n")
    assert fails(p, EXIT_USAGE).endswith("use --password-stdin")
    assert slapd.whoami(slapd.user_dn("cli4"), "a fine password") == 0
    fails(d.ctl("user", "passwd", "cli4", "--password-stdin", input=""),
          EXIT_USAGE)
    line = fails(d.ctl("user", "passwd", "cli4", "--password-stdin",
                       input="short\n"), EXIT_ERROR)
    assert "password" in line


def test_delete_asks_for_the_username(d, slapd):
    ok(add(d, "cli5"))
    for typed in ("cli", "CLI5", "cli5 ", "", "yes", "y"):
        p = d.ctl("user", "delete", "cli5", input=typed + "\n")
        assert p.returncode == EXIT_ABORTED, (typed, p.stderr)
        assert "not deleted" in p.stderr
        assert exists(slapd, "cli5")
    p = d.ctl("user", "delete", "cli5", input="")        # end of input
    assert p.returncode == EXIT_ABORTED and exists(slapd, "cli5")

    p = ok(d.ctl("user", "delete", "cli5", input="cli5\n"))
    assert p.stdout == "deleted cli5\n"
    assert "Type the username" in p.stderr
    assert not exists(slapd, "cli5")

    ok(add(d, "cli6"))
    p = ok(d.ctl("user", "delete", "cli6", "--yes"))
    assert not exists(slapd, "cli6")


def test_login(d, slapd):
    ok(add(d, "cli7", "Log In", None, "--password-stdin",
           input="cli7-password\n"))
    p = ok(d.ctl("login", "--password-stdin", "cli7", input="cli7-password\n"))
    assert "Username   cli7" in p.stdout
    p = d.ctl("login", "--password-stdin", "cli7", input="wrong password\n")
    assert "invalid username or password" in fails(p, EXIT_CREDENTIALS)
    # A command after USER runs as that account.
    p = ok(d.ctl("login", "cli7", "--password-stdin", "user", "passwd",
                 "cli7", "--password-stdin",
                 input="cli7-password\ncli7-new-password\n"))
    assert slapd.whoami(slapd.user_dn("cli7"), "cli7-new-password") == 0
    p = d.ctl("login", "cli7", "--password-stdin", "user", "list",
              input="cli7-new-password\n")
    fails(p, EXIT_PERMISSION)
    p = ok(d.ctl("--json", "login", "cli7", "--password-stdin", "whoami",
                 input="cli7-new-password\n"))
    assert json.loads(p.stdout) == {"kind": "account", "role": "user",
                                    "username": "cli7"}


# -- import -------------------------------------------------------------------

def test_import_csv(d, slapd, tmp_path):
    f = tmp_path / "people.csv"
    f.write_bytes(
        "\ufeffusername,full_name,email,password,status,role\r\n"
        'impc1,"Lovelace, Ada",impc1@example.com,,,\r\n'
        'impc2,"Quote ""Q"" Person",impc2@example.com,impc2-password,'
        'inactive,\r\n'
        'impc3,"Line\r\nBreak",impc3@example.com,,,superadmin\r\n'
        "\r\n"
        "impc4,山田太郎,impc4@example.com,,,\r\n".encode())
    # The multi-line name is refused (control character): nothing created.
    p = d.ctl("user", "import", f)
    assert p.returncode == EXIT_ERROR
    lines = p.stderr.strip().splitlines()
    assert lines[0] == f"{f}:4: full_name must not contain control characters"
    assert lines[-1] == f"otasctl: {f}: 1 of 4 rows are invalid; nothing " \
        "was imported"
    assert not exists(slapd, "impc1")

    f.write_bytes(f.read_bytes().replace(b"Line\r\nBreak", b"Line Break"))
    p = ok(d.ctl("user", "import", f, "--dry-run"))
    assert p.stdout == "dry run: 4 accounts would be created; nothing was " \
        "changed\n"
    assert not exists(slapd, "impc1")
    p = ok(d.ctl("user", "import", f))
    assert p.stdout == "created 4 of 4 accounts\n"
    got = {u: json.loads(ok(d.ctl("--json", "user", "show", u)).stdout)
           for u in ("impc1", "impc2", "impc3", "impc4")}
    assert got["impc1"]["full_name"] == "Lovelace, Ada"
    assert got["impc2"]["full_name"] == 'Quote "Q" Person'
    assert got["impc2"]["status"] == "inactive"
    assert got["impc3"]["role"] == "superadmin"
    assert got["impc4"]["full_name"] == "山田太郎"
    ok(d.ctl("user", "activate", "impc2"))
    assert slapd.whoami(slapd.user_dn("impc2"), "impc2-password") == 0
    ok(d.ctl("user", "edit", "impc3", "--role", "user"))

    # Again: every row is taken.
    p = d.ctl("user", "import", f)
    assert p.returncode == EXIT_ERROR
    assert f"{f}:2: username impc1 is taken (already_exists)" in p.stderr


def test_import_jsonl(d, slapd, tmp_path):
    f = tmp_path / "people.jsonl"
    rows = [{"username": f"impj{i}", "full_name": f"Json {i}",
             "email": f"impj{i}@example.com"} for i in range(3)]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    p = ok(d.ctl("--json", "user", "import", f))
    res = json.loads(p.stdout)
    assert res["created"] == 3
    assert [r["username"] for r in res["results"]] == ["impj0", "impj1",
                                                      "impj2"]
    assert all(exists(slapd, f"impj{i}") for i in range(3))

    f.write_text('{"username": "impj9", "full_name": "X", "email": "bad"}\n')
    p = d.ctl("user", "import", f)
    assert p.returncode == EXIT_ERROR
    assert f"{f}:1: email must contain exactly one @" in p.stderr
    assert not exists(slapd, "impj9")

    f.write_text("{not json}\n")
    assert d.ctl("user", "import", f).returncode == EXIT_USAGE
    f.write_text("username,nickname\nx,y\n")
    line = fails(d.ctl("user", "import", f), EXIT_USAGE)
    assert "unknown column 'nickname'" in line
    fails(d.ctl("user", "import", tmp_path / "missing.csv"), EXIT_USAGE)


def test_import_seat_limit(slapd, tmpdir_short, tmp_path):
    probe = Daemon(slapd, tmpdir_short / "p", seats=100000).start()
    used = json.loads(probe.ctl("--json", "license").stdout)["used"]
    probe.stop()
    dm = Daemon(slapd, tmpdir_short / "s", seats=used + 1).start()
    try:
        f = tmp_path / "two.csv"
        f.write_text("username,full_name,email\nimps1,A B,a@example.com\n"
                     "imps2,C D,c@example.com\n")
        before = slapd.count_people()
        fails(dm.ctl("user", "import", f), EXIT_SEATS)
        fails(dm.ctl("user", "import", f, "--dry-run"), EXIT_SEATS)
        assert slapd.count_people() == before
    finally:
        dm.stop()


# -- listing ------------------------------------------------------------------

@pytest.fixture
def fresh():
    """A slapd of its own (only `admin` in it) with a daemon."""
    with running_slapd(hash="SSHA") as s:
        tmp = tempfile.mkdtemp(prefix="otd", dir="/tmp")
        dm = Daemon(s, tmp, seats=5000)
        dm.start()
        try:
            yield s, dm
        finally:
            dm.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def test_list_table_golden(fresh):
    s, dm = fresh
    ok(add(dm, "zoe", "Zoë Ångström", "zoe@example.com"))
    ok(add(dm, "yamada", "山田太郎", "yamada@example.jp"))
    ok(add(dm, "ana", "Ana María", "ana@example.es", "--inactive"))
    ok(add(dm, "jose", "Jose\u0301 Nun\u0303ez", "jose@example.mx"))
    ok(add(dm, "kim", "김민준 Kim", "kim@example.kr"))
    p = ok(dm.ctl("user", "list"))
    assert p.stdout == (GOLDEN / "user-list.txt").read_text()
    p = ok(dm.ctl("user", "list", "--status", "inactive"))
    assert p.stdout == (GOLDEN / "user-list-inactive.txt").read_text()
    p = ok(dm.ctl("user", "list", "--search", "EXAMPLE.JP"))
    assert p.stdout.splitlines()[1].startswith("yamada  ")
    assert len(p.stdout.splitlines()) == 2
    p = ok(dm.ctl("user", "list", "--search", "nobody-matches"))
    assert p.stdout == "Username  Full Name  Email  Status\n"


def test_list_json_pages_through_everything(fresh):
    s, dm = fresh
    names = s.seed(1234, prefix="many")
    with dm.client() as c:
        wait_for(lambda: c.result("license.get")["used"] == 1235,
                 what="the view to see 1,235 entries")
    p = ok(dm.ctl("--json", "user", "list"))
    res = json.loads(p.stdout)
    assert res["next_cursor"] is None
    got = [u["username"] for u in res["users"]]
    assert got == ["admin"] + names
    p = ok(dm.ctl("user", "list", "--json", "--status", "inactive"))
    assert len(json.loads(p.stdout)["users"]) == 1234 // 5
    p = ok(dm.ctl("user", "list"))
    lines = p.stdout.splitlines()
    assert len(lines) == 1 + 1235
    assert lines[0].split() == ["Username", "Full", "Name", "Email", "Status"]
    assert lines[-1].split()[0] == names[-1]


# -- exit statuses ---------------------------------------------------------------

def test_not_found_exits_3(d):
    assert fails(d.ctl("user", "show", "ghost"), EXIT_NOT_FOUND) == \
        "otasctl: no account ghost"
    fails(d.ctl("user", "delete", "ghost", "--yes"), EXIT_NOT_FOUND)
    fails(d.ctl("user", "deactivate", "ghost"), EXIT_NOT_FOUND)
    fails(d.ctl("user", "passwd", "ghost", "--password-stdin",
                input="long enough\n"), EXIT_NOT_FOUND)


def test_permission_denied_exits_4(d, tmpdir_short):
    # otasctl as `nobody`, a peer that is not an admin.
    os.chmod(tmpdir_short, 0o755)
    base = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            str(OTASCTL), "--socket", str(d.sock)]
    for args in (["user", "list"], ["user", "show", "admin"],
                 ["user", "delete", "admin", "--yes"], ["license"]):
        p = subprocess.run(base + args, capture_output=True, text=True,
                           timeout=60)
        line = fails(p, EXIT_PERMISSION)
        assert "permission denied" in line
    p = subprocess.run(base + ["ping"], capture_output=True, text=True,
                       timeout=60)
    ok(p)


def test_last_superadmin_exits_4(fresh):
    s, dm = fresh
    line = fails(dm.ctl("user", "delete", "admin", "--yes"), EXIT_PERMISSION)
    assert "last active super admin" in line
    fails(dm.ctl("user", "deactivate", "admin"), EXIT_PERMISSION)
    fails(dm.ctl("user", "edit", "admin", "--role", "user"), EXIT_PERMISSION)


def test_seat_limit_exits_5(fresh):
    s, dm = fresh
    small = Daemon(s, Path(dm.dir) / "small", seats=2).start()
    try:
        ok(add(small, "seat1"))
        line = fails(add(small, "seat2"), EXIT_SEATS)
        assert "no free seat: 2 of 2 seats are taken" in line
        assert not exists(s, "seat2")
    finally:
        small.stop()


def test_directory_unavailable_exits_6(fresh):
    s, dm = fresh
    ok(add(dm, "dirdown"))
    s.stop()
    try:
        with dm.client() as c:
            wait_for(lambda: c.result("server.status")["directory"] ==
                     "down", what="the daemon to see the directory down")
        before_fail = [
            add(dm, "dirdown2"),
            dm.ctl("user", "deactivate", "dirdown"),
            dm.ctl("user", "passwd", "dirdown", "--password-stdin",
                   input="long enough\n"),
            dm.ctl("user", "delete", "dirdown", "--yes"),
        ]
        for p in before_fail:
            line = fails(p, EXIT_DIRECTORY)
            assert "directory is unavailable" in line
            assert "nothing was" in line
        # Reads are served from memory meanwhile.
        assert "dirdown" in ok(dm.ctl("user", "list")).stdout
    finally:
        s.start()
    with dm.client() as c:
        wait_for(lambda: c.result("server.status")["directory"] == "up",
                 what="the daemon to reconnect")
    assert exists(s, "dirdown") and not exists(s, "dirdown2")
    e = s.ldapsearch(s.user_dn("dirdown"), scope="base")[0]
    assert e["otasAccountStatus"] == ["active"]


def test_already_exists_exits_7(d):
    ok(add(d, "dup1"))
    line = fails(add(d, "DUP1"), EXIT_EXISTS)
    assert "taken" in line


def test_cannot_connect_exits_10(d, tmpdir_short):
    fails(d.ctl("user", "list", socket_path=tmpdir_short / "nothing.sock"),
          EXIT_CONNECT)


def test_usage_errors_exit_2(d):
    for args in (["user"], ["user", "frobnicate"], ["user", "show"],
                 ["user", "show", "a", "b"], ["user", "add", "x"],
                 ["user", "list", "--status", "asleep"],
                 ["user", "add", "bad name", "--name", "N", "--email",
                  "n@example.com"]):
        p = d.ctl(*args)
        assert p.returncode == EXIT_USAGE, (args, p.stderr)


def test_socket_from_the_environment(d):
    p = ok(d.ctl("ping", socket_path=False,
                 env={"OTASDIR_SOCKET": str(d.sock)}))
    assert p.stdout.strip() == '"pong"'
    # --socket wins over the environment.
    ok(d.ctl("ping", env={"OTASDIR_SOCKET": "/nonexistent.sock"}))
    fails(d.ctl("ping", socket_path=False,
                env={"OTASDIR_SOCKET": "/nonexistent.sock"}), EXIT_CONNECT)


def test_json_output_parses(d):
    ok(add(d, "js1", "Jay Son"))
    for args in (["--json", "user", "show", "js1"],
                 ["user", "show", "js1", "--json"]):
        got = json.loads(ok(d.ctl(*args)).stdout)
        assert got == {"username": "js1", "full_name": "Jay Son",
                       "email": "js1@example.com", "status": "active",
                       "role": "user"}
    got = json.loads(ok(d.ctl("--json", "user", "list")).stdout)
    assert any(u["username"] == "js1" for u in got["users"])
    got = json.loads(ok(d.ctl("--json", "license")).stdout)
    assert set(got) >= {"seats", "used", "available"}
    got = json.loads(ok(d.ctl("--json", "user", "delete", "js1",
                              "--yes")).stdout)
    assert got == {"username": "js1", "deleted": True}
    # An error with --json: the error object on stderr, then the line.
    p = d.ctl("--json", "user", "show", "js1")
    assert p.returncode == EXIT_NOT_FOUND
    assert '"reason":\t"not_found"' in p.stderr
