"""user.* over the socket against a real slapd (issue 3): round trips
checked in the directory itself, listing and paging (1,200 accounts with
slapd's default size limit for the service DN), seats, pipelining, import
and the super-admin rules.

Tests in this module share the module's slapd (conftest `slapd`), so each
uses usernames of its own.  The super-admin tests and the 1,200-account
test each get a slapd of their own, since they depend on exactly which
accounts exist."""

import base64
import json
import shutil
import tempfile

import pytest

from otasenv import Daemon, RpcError, wait_for
from slapdenv import NO_SUCH_OBJECT, running_slapd

PEOPLE_ATTRS = ["*", "userPassword"]


@pytest.fixture
def d(slapd, tmpdir_short):
    """A daemon with seats to spare (the module's accounts add up)."""
    dm = Daemon(slapd, tmpdir_short, seats=100000)
    dm.start()
    yield dm
    dm.stop()


@pytest.fixture
def c(d):
    with d.client() as cl:
        yield cl


def entry(s, username):
    """The LDAP entry of username as the rootdn sees it, or None."""
    res = s.ldapsearch(s.user_dn(username), "(objectClass=*)",
                       PEOPLE_ATTRS, scope="base", check=False)
    if res.rc == NO_SUCH_OBJECT:
        return None
    assert res.rc == 0, res.err
    assert len(res) == 1
    return res[0]


def create(c, username, **kw):
    params = {"username": username,
              "full_name": kw.pop("full_name", f"User {username}"),
              "email": kw.pop("email", f"{username}@example.com")}
    params.update(kw)
    return c.result("user.create", params)


def account(username, full_name=None, email=None, status="active",
            role="user"):
    return {"username": username,
            "full_name": full_name or f"User {username}",
            "email": email or f"{username}@example.com",
            "status": status, "role": role}


def active_superadmins(s):
    return sorted(e.first("uid") for e in s.ldapsearch(
        s.people_dn, "(&(otasRole=superadmin)(otasAccountStatus=active))",
        ["uid"], scope="one"))


# -- create / get -----------------------------------------------------------

def test_create_with_password_writes_the_entry_and_the_user_can_bind(c, slapd):
    got = create(c, "alice", full_name="Alice Pleasance Liddell",
                 email="alice@example.com", password="correct horse")
    assert got == account("alice", "Alice Pleasance Liddell",
                          "alice@example.com")
    assert "password" not in json.dumps(got)

    e = entry(slapd, "alice")
    assert e is not None
    assert {v.lower() for v in e["objectClass"]} >= {
        "top", "person", "organizationalperson", "inetorgperson",
        "otasaccount"}
    assert e["uid"] == ["alice"]
    assert e["cn"] == ["Alice Pleasance Liddell"]
    assert e["displayName"] == ["Alice Pleasance Liddell"]
    assert e["sn"] == ["Liddell"]
    assert e["mail"] == ["alice@example.com"]
    assert e["otasAccountStatus"] == ["active"]
    assert e["otasRole"] == ["user"]
    # Password Modify: slapd hashed it; no cleartext anywhere.
    assert len(e["userPassword"]) == 1
    assert e["userPassword"][0].startswith("{SSHA}")
    assert "correct horse" not in e["userPassword"][0]

    assert slapd.whoami(slapd.user_dn("alice"), "correct horse") == 0
    assert slapd.whoami(slapd.user_dn("alice"), "wrong horse") == 49
    assert c.result("user.get", username="alice") == got
    # Any case finds it.
    assert c.result("user.get", username="ALICE") == got


def test_create_without_password_sets_none(c, slapd):
    create(c, "nopw")
    e = entry(slapd, "nopw")
    assert "userPassword" not in e
    assert slapd.whoami(slapd.user_dn("nopw"), "anything at all") == 49


def test_create_status_and_role(c, slapd):
    got = create(c, "cara", full_name="Cara", status="inactive",
                 role="superadmin", password="password9")
    assert got == account("cara", "Cara", status="inactive",
                          role="superadmin")
    e = entry(slapd, "cara")
    assert e["otasAccountStatus"] == ["inactive"]
    assert e["otasRole"] == ["superadmin"]
    assert e["sn"] == ["Cara"]
    # The access rules make slapd refuse an inactive account's bind.
    assert slapd.whoami(slapd.user_dn("cara"), "password9") == 49


def test_unicode_names_round_trip(c, slapd):
    create(c, "zoe", full_name="Zoë Ångström")
    create(c, "yamada", full_name="山田太郎")
    assert entry(slapd, "zoe")["cn"] == ["Zoë Ångström"]
    assert entry(slapd, "zoe")["sn"] == ["Ångström"]
    assert entry(slapd, "yamada")["displayName"] == ["山田太郎"]
    assert c.result("user.get", username="yamada")["full_name"] == "山田太郎"


def test_list_writes_the_same_json_as_get(c, slapd):
    """user.list writes its page as text: quotes, backslashes and
    non-ASCII come out exactly as user.get's object."""
    create(c, "quoter", full_name='Ann "Q" \\ O\'Neil ∑')
    # an entry written by another LDAP client, with a tab in its name
    slapd.ldapadd(slapd.account_ldif("tabby", full_name="Tab\tby"))
    wait_for(lambda: c.call("user.get", {"username": "tabby"}).get("result"),
             what="the view to see tabby")
    page = c.result("user.list", search="quoter")["users"]
    assert page == [c.result("user.get", username="quoter")]
    page = c.result("user.list", search="tabby")["users"]
    assert page == [c.result("user.get", username="tabby")]
    assert page[0]["full_name"] == "Tab\tby"


def test_create_already_exists_in_any_case(c, slapd):
    create(c, "bob")
    before = slapd.count_people()
    for name in ("bob", "Bob", "BOB"):
        err = c.error("user.create", username=name, full_name="Other Bob",
                      email="other@example.com")
        assert err.code == -32003 and err.reason == "already_exists"
    assert slapd.count_people() == before
    assert entry(slapd, "bob")["cn"] == ["User bob"]


def test_create_already_exists_for_an_entry_added_by_another_client(c, slapd):
    slapd.ldapadd(slapd.account_ldif("outsider"))
    wait_for(lambda: "error" not in c.call("user.get",
                                           {"username": "outsider"}),
             what="the view to see the new entry")
    err = c.error("user.create", username="Outsider", full_name="X Y",
                  email="x@example.com")
    assert err.reason == "already_exists"


def test_get_not_found(c):
    err = c.error("user.get", username="ghost")
    assert err.code == -32002 and err.reason == "not_found"


# -- update -------------------------------------------------------------------

def test_update_round_trip(c, slapd):
    create(c, "upd", full_name="Up Date", password="password1")
    got = c.result("user.update", username="upd",
                   full_name="Ursula K. Le Guin", email="ursula@example.org")
    assert got == account("upd", "Ursula K. Le Guin", "ursula@example.org")
    e = entry(slapd, "upd")
    assert e["cn"] == ["Ursula K. Le Guin"]
    assert e["displayName"] == ["Ursula K. Le Guin"]
    assert e["sn"] == ["Guin"]
    assert e["mail"] == ["ursula@example.org"]

    got = c.result("user.update", username="UPD", status="inactive")
    assert got["status"] == "inactive"
    assert got["full_name"] == "Ursula K. Le Guin"
    assert entry(slapd, "upd")["otasAccountStatus"] == ["inactive"]
    assert slapd.whoami(slapd.user_dn("upd"), "password1") == 49

    got = c.result("user.update", username="upd", status="active",
                   role="superadmin")
    assert (got["status"], got["role"]) == ("active", "superadmin")
    e = entry(slapd, "upd")
    assert e["otasAccountStatus"] == ["active"]
    assert e["otasRole"] == ["superadmin"]
    assert slapd.whoami(slapd.user_dn("upd"), "password1") == 0
    # Back to a user, so that later tests of this module see one super
    # admin fewer.
    c.result("user.update", username="upd", role="user")
    assert c.result("user.get", username="upd")["role"] == "user"


def test_update_with_nothing_to_change_returns_the_account(c):
    create(c, "same")
    assert c.result("user.update", username="same") == account("same")


def test_update_not_found(c, slapd):
    before = slapd.count_people()
    err = c.error("user.update", username="ghost2", status="inactive")
    assert err.reason == "not_found"
    assert slapd.count_people() == before


# -- delete -------------------------------------------------------------------

def test_delete_requires_confirmation(c, slapd):
    create(c, "del1")
    for params in ({"username": "del1"},
                   {"username": "del1", "confirm": "del2"},
                   {"username": "del1", "confirm": "DEL1"},
                   {"username": "del1", "confirm": ""},
                   {"username": "del1", "confirm": None}):
        err = c.error("user.delete", params)
        assert err.code == -32005, params
        assert err.reason == "confirmation_required"
    assert entry(slapd, "del1") is not None

    used = c.result("license.get")["used"]
    assert c.result("user.delete", username="del1", confirm="del1") == {
        "username": "del1", "deleted": True}
    assert entry(slapd, "del1") is None
    assert c.error("user.get", username="del1").reason == "not_found"
    assert c.result("license.get")["used"] == used - 1
    err = c.error("user.delete", username="del1", confirm="del1")
    assert err.reason == "not_found"


# -- set_password -------------------------------------------------------------

def test_set_password(c, slapd):
    create(c, "pw1", password="first password")
    assert c.result("user.set_password", username="pw1",
                    password="second password") == {"username": "pw1"}
    assert slapd.whoami(slapd.user_dn("pw1"), "second password") == 0
    assert slapd.whoami(slapd.user_dn("pw1"), "first password") == 49
    assert entry(slapd, "pw1")["userPassword"][0].startswith("{SSHA}")

    err = c.error("user.set_password", username="pw1", password="short")
    assert err.code == -32602 and err.field == "password"
    assert slapd.whoami(slapd.user_dn("pw1"), "second password") == 0
    err = c.error("user.set_password", username="ghost3",
                  password="long enough")
    assert err.reason == "not_found"


def test_set_password_of_an_inactive_account(c, slapd):
    create(c, "pw2", status="inactive")
    c.result("user.set_password", username="pw2", password="password22")
    c.result("user.update", username="pw2", status="active")
    assert slapd.whoami(slapd.user_dn("pw2"), "password22") == 0


# -- list ---------------------------------------------------------------------

def test_list_status_filter_and_search(c, slapd):
    create(c, "lsta", full_name="Lst Ada Lovelace", email="ada@lst.example")
    create(c, "lstb", full_name="Lst Bea Brown", email="BEA@lst.example",
           status="inactive")
    create(c, "LstC", full_name="Lst Cid Campeador", email="cid@lst.example")

    def names(**params):
        res = c.result("user.list", params)
        assert res["next_cursor"] is None
        return [u["username"] for u in res["users"]]

    # Search: case-insensitive, in username, full name or email.
    assert names(search="lst") == ["lsta", "lstb", "LstC"]
    assert names(search="LOVELACE") == ["lsta"]
    assert names(search="bea@LST") == ["lstb"]
    assert names(search="lstc") == ["LstC"]
    assert names(search="campeador", status="active") == ["LstC"]
    # Status filter.
    assert names(search="lst", status="inactive") == ["lstb"]
    assert names(search="lst", status="active") == ["lsta", "LstC"]
    inactive = c.result("user.list", status="inactive", limit=1000)["users"]
    assert inactive and all(u["status"] == "inactive" for u in inactive)
    # Filter syntax is text, never a filter: no injection, no wildcard.
    assert names(search="*)(uid=*") == []
    assert names(search="*") == []
    assert names(search="lst*") == []
    assert names(search="\\2a") == []
    # An empty search is no search.
    assert len(c.result("user.list", search="", limit=1000)["users"]) == \
        len(c.result("user.list", limit=1000)["users"])


def test_list_is_sorted_case_insensitively_and_pages(c):
    for name in ("srtB", "srta", "srtC", "srt.d", "srt-e", "srt_f", "srt0"):
        create(c, name)
    res = c.result("user.list", search="srt", limit=1000)
    got = [u["username"] for u in res["users"]]
    assert got == sorted(got, key=str.lower)
    assert set(got) == {"srtB", "srta", "srtC", "srt.d", "srt-e", "srt_f",
                        "srt0"}
    # Pages of 2 give the same, each once.
    seen, cursor = [], None
    while True:
        params = {"search": "srt", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = c.result("user.list", params)
        assert len(page["users"]) <= 2
        seen += [u["username"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert seen == got


def test_cursor_forged_altered_or_for_other_filters(c):
    for name in ("cur1", "cur2", "cur3"):
        create(c, name)
    page = c.result("user.list", search="cur", limit=1)
    cursor = page["next_cursor"]
    assert cursor

    def refused(params):
        err = c.error("user.list", params)
        assert err.code == -32602 and err.field == "cursor", err
        return err

    # Forged: random bytes, garbage, empty.
    refused({"search": "cur", "cursor": base64.urlsafe_b64encode(
        bytes(range(40))).decode().rstrip("=")})
    refused({"search": "cur", "cursor": "not a cursor!"})
    refused({"search": "cur", "cursor": ""})
    refused({"search": "cur", "cursor": "A" * 5000})
    # Altered: each single character changed.
    for i in range(len(cursor)):
        ch = "A" if cursor[i] != "A" else "B"
        refused({"search": "cur", "cursor": cursor[:i] + ch + cursor[i + 1:]})
    # The last username rewritten (a valid encoding of another record).
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-9] ^= 1
    refused({"search": "cur", "cursor": base64.urlsafe_b64encode(
        bytes(raw)).decode().rstrip("=")})
    # Used with other filters.
    err = refused({"search": "cu", "cursor": cursor})
    assert "filters" in err.message
    refused({"search": "cur", "status": "active", "cursor": cursor})
    refused({"cursor": cursor})
    # The real one still works.
    assert [u["username"] for u in c.result(
        "user.list", search="cur", limit=5, cursor=cursor)["users"]] == \
        ["cur2", "cur3"]


def test_cursor_from_before_a_restart_is_stale(slapd, tmpdir_short):
    d1 = Daemon(slapd, tmpdir_short, seats=100000)
    d1.start()
    with d1.client() as c1:
        for name in ("stl1", "stl2"):
            create(c1, name)
        cursor = c1.result("user.list", search="stl", limit=1)["next_cursor"]
        assert cursor
    d1.stop()
    d1.start()
    with d1.client() as c1:
        err = c1.error("user.list", search="stl", limit=1, cursor=cursor)
        assert err.code == -32602 and err.field == "cursor"
        assert "stale" in err.message and "start" in err.message
    d1.stop()


# -- seats --------------------------------------------------------------------

def test_create_refused_when_seats_are_full(slapd, tmpdir_short):
    probe = Daemon(slapd, tmpdir_short / "probe", seats=100000)
    probe.start()
    with probe.client() as pc:
        used = pc.result("license.get")["used"]
    probe.stop()

    small = Daemon(slapd, tmpdir_short / "small", seats=used + 1)
    small.start()
    try:
        with small.client() as sc:
            create(sc, "seat1")
            before = slapd.count_people()
            err = sc.error("user.create", username="seat2",
                           full_name="No Seat", email="s2@example.com")
            assert err.code == -32004 and err.reason == "seat_limit_reached"
            assert err.data["seats"] == used + 1
            assert err.data["used"] == used + 1
            assert slapd.count_people() == before
            assert entry(slapd, "seat2") is None
            # Deleting frees one.
            sc.result("user.delete", username="seat1", confirm="seat1")
            create(sc, "seat2")
            refusals = [a for a in small.audit()
                        if a.get("outcome") == "seat_limit_reached"]
            assert refusals and refusals[0].get("target") == "seat2"
    finally:
        small.stop()


# -- many requests on one connection -------------------------------------------

def test_pipelining_200_requests_on_one_connection(slapd, tmpdir_short):
    # 200 requests in flight on one connection: over the default
    # socket.max_inflight_per_connection (64), so this daemon allows 256.
    dm = Daemon(slapd, tmpdir_short, seats=100000,
                extra={"socket": {"max_inflight_per_connection": 256}})
    dm.start()
    try:
        with dm.client(timeout=60) as cl:
            expect = {}
            lines = []
            for i in range(200):
                rid = 1000 + i
                if i % 3 == 0:
                    req = {"method": "user.create", "params": {
                        "username": f"pipe{i:03d}",
                        "full_name": f"Pipe {i}",
                        "email": f"pipe{i}@example.com"}}
                    expect[rid] = ("create", f"pipe{i:03d}")
                elif i % 3 == 1:
                    req = {"method": "user.get",
                           "params": {"username": "admin"}}
                    expect[rid] = ("get", "admin")
                else:
                    req = {"method": "user.list", "params": {"limit": 5}}
                    expect[rid] = ("list", None)
                req.update({"jsonrpc": "2.0", "id": rid})
                lines.append(json.dumps(req))
            # Every request is sent before any reply is read.
            cl.send("\n".join(lines) + "\n")
            replies = {}
            for _ in range(200):
                rep = cl.recv_line()
                assert rep is not None, "connection closed early"
                assert rep["id"] not in replies, f"two replies for {rep['id']}"
                replies[rep["id"]] = rep
            assert set(replies) == set(expect)
            order = list(replies)
            for rid, (kind, name) in expect.items():
                rep = replies[rid]
                assert "result" in rep, rep
                if kind == "create":
                    assert rep["result"]["username"] == name
                elif kind == "get":
                    assert rep["result"]["username"] == "admin"
                else:
                    assert len(rep["result"]["users"]) == 5
            # Reads answered from memory overtook the writes.
            assert order != sorted(order)
            for i in range(0, 200, 3):
                assert entry(slapd, f"pipe{i:03d}") is not None
    finally:
        dm.stop()


# -- import ------------------------------------------------------------------

def import_rows(prefix, n, password_every=0):
    rows = []
    for i in range(n):
        row = {"username": f"{prefix}{i:04d}", "full_name": f"Imp Orted {i}",
               "email": f"{prefix}{i}@example.com"}
        if password_every and i % password_every == 0:
            row["password"] = f"import-pw-{i}"
        rows.append(row)
    return rows


def test_import_1000_rows(slapd, tmpdir_short):
    # 1,000 rows are ~100 KiB of JSON: over the default max_request_bytes.
    dm = Daemon(slapd, tmpdir_short, seats=100000,
                extra={"socket": {"max_request_bytes": 4 * 1024 * 1024}})
    dm.start()
    try:
        with dm.client(timeout=300) as cl:
            before = slapd.count_people()
            rows = import_rows("imp", 1000, password_every=100)
            dry = cl.result("user.import", users=rows, dry_run=True)
            assert dry["created"] == 0 and dry["dry_run"] is True
            assert slapd.count_people() == before
            res = cl.result("user.import", users=rows)
            assert res["created"] == 1000
            assert [r["username"] for r in res["results"]] == \
                [r["username"] for r in rows]
            assert all(r["ok"] is True and "error" not in r
                       for r in res["results"])
            assert slapd.count_people() == before + 1000
            e = entry(slapd, "imp0501")
            assert e["cn"] == ["Imp Orted 501"] and e["sn"] == ["501"]
            assert "userPassword" not in e
            assert entry(slapd, "imp0100")["userPassword"][0].startswith(
                "{SSHA}")
            assert slapd.whoami(slapd.user_dn("imp0100"),
                                "import-pw-100") == 0
            assert cl.result("user.get", username="imp0999")["email"] == \
                "imp999@example.com"
            # Importing them again: every row is taken, nothing happens.
            err = cl.error("user.import", users=rows[:3])
            assert err.code == -32602 and err.field == "users"
            assert [r["index"] for r in err.data["rows"]] == [0, 1, 2]
        assert "import-pw-" not in dm.log_text()
        assert "import-pw-" not in dm.audit_path.read_text()
    finally:
        dm.stop()


@pytest.mark.parametrize("bad,field", [
    ({"email": "no-at-sign"}, "email"),
    ({"username": "bad name"}, "username"),
    ({"full_name": "Bell\u0007"}, "full_name"),
    ({"status": "enabled"}, "status"),
    ({"role": "root"}, "role"),
    ({"password": "short"}, "password"),
    ({"nickname": "x"}, "nickname"),
])
def test_import_with_one_bad_row_creates_nothing(c, slapd, bad, field):
    rows = import_rows(f"ib{field[:4]}", 10)
    rows[7].update(bad)
    before = slapd.count_people()
    err = c.error("user.import", users=rows)
    assert err.code == -32602 and err.field == "users"
    assert err.data["invalid_rows"] == 1
    assert len(err.data["rows"]) == 1
    row = err.data["rows"][0]
    assert row["index"] == 7 and row["field"] == field
    assert slapd.count_people() == before
    assert entry(slapd, rows[0]["username"]) is None


def test_import_duplicates_and_taken_names_create_nothing(c, slapd):
    create(c, "taken1")
    rows = import_rows("idup", 4)
    rows[2]["username"] = "IDUP0000"   # same as row 0, other case
    rows.append({"username": "Taken1", "full_name": "T", "email": "t@x.org"})
    rows.append("not an object")
    before = slapd.count_people()
    err = c.error("user.import", users=rows)
    assert err.field == "users" and err.data["invalid_rows"] == 3
    bad = {r["index"]: r for r in err.data["rows"]}
    assert set(bad) == {2, 4, 5}
    assert bad[2]["field"] == "username" and "more than once" in \
        bad[2]["message"]
    assert bad[4]["field"] == "username" and "taken" in bad[4]["message"]
    assert slapd.count_people() == before


def test_import_one_seat_too_many_is_refused_whole(slapd, tmpdir_short):
    probe = Daemon(slapd, tmpdir_short / "probe", seats=100000)
    probe.start()
    with probe.client() as pc:
        used = pc.result("license.get")["used"]
    probe.stop()
    dm = Daemon(slapd, tmpdir_short / "four", seats=used + 4)
    dm.start()
    try:
        with dm.client() as cl:
            before = slapd.count_people()
            for dry in (True, False):
                err = cl.error("user.import", users=import_rows("iseat", 5),
                               dry_run=dry)
                assert err.code == -32004 and err.reason == \
                    "seat_limit_reached"
                assert err.data["seats"] == used + 4
                assert err.data["used"] == used
                assert slapd.count_people() == before
            assert cl.result("user.import", users=import_rows("iseat", 4),
                             dry_run=True)["created"] == 0
            res = cl.result("user.import", users=import_rows("iseat", 4))
            assert res["created"] == 4
            assert slapd.count_people() == before + 4
    finally:
        dm.stop()


# -- 1,200 accounts, slapd's default size limit --------------------------------

@pytest.fixture(scope="module")
def big():
    """A slapd without the service DN's `limits` line (a non-root bind DN
    gets at most 500 entries per search) holding 1,200 accounts."""
    with running_slapd(hash="SSHA", limits=False) as s:
        s.seed(1200, prefix="big")
        yield s


def test_list_pages_through_1200_accounts(big):
    # The premise: the service DN alone cannot read them in one search.
    res = big.ldapsearch(big.people_dn, "(objectClass=*)", ["1.1"],
                         scope="one", check=False, **big.service)
    assert res.rc == 4 and len(res) == 500

    tmp = tempfile.mkdtemp(prefix="otd", dir="/tmp")
    dm = Daemon(big, tmp, seats=100000)
    dm.start()
    try:
        with dm.client() as cl:
            wait_for(lambda: cl.result("license.get")["used"] == 1201,
                     what="the view to load 1,201 entries")
            expected = sorted(["admin"] + [f"big{i:06d}" for i in range(1200)],
                              key=str.lower)
            for limit in (100, 1000, 7):
                seen, cursor, pages = [], None, 0
                while True:
                    params = {"limit": limit}
                    if cursor:
                        params["cursor"] = cursor
                    page = cl.result("user.list", params)
                    assert len(page["users"]) <= limit
                    seen += [u["username"] for u in page["users"]]
                    pages += 1
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert seen == expected, f"limit {limit}"
                assert pages == -(-1201 // limit)
            # With a filter: every fifth seeded account is inactive.
            inactive = []
            cursor = None
            while True:
                params = {"status": "inactive", "limit": 100}
                if cursor:
                    params["cursor"] = cursor
                page = cl.result("user.list", params)
                inactive += [u["username"] for u in page["users"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert inactive == [f"big{i:06d}" for i in range(4, 1200, 5)]
    finally:
        dm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_paging_is_stable_while_accounts_come_and_go(big):
    tmp = tempfile.mkdtemp(prefix="otd", dir="/tmp")
    dm = Daemon(big, tmp, seats=100000)
    dm.start()
    try:
        with dm.client() as cl:
            wait_for(lambda: cl.result("license.get")["used"] >= 1201,
                     what="the view to load")
            first = cl.result("user.list", limit=100)
            last_seen = first["users"][-1]["username"]
            # Changes between pages: one deleted behind the position, one
            # ahead, one added behind and one ahead.
            cl.result("user.delete", username="big000010",
                      confirm="big000010")
            cl.result("user.delete", username="big000500",
                      confirm="big000500")
            create(cl, "big000010x")      # sorts before the position
            create(cl, "big000500x")      # sorts after it
            seen = [u["username"] for u in first["users"]]
            cursor = first["next_cursor"]
            while cursor:
                page = cl.result("user.list", limit=100, cursor=cursor)
                seen += [u["username"] for u in page["users"]]
                cursor = page["next_cursor"]
            assert len(seen) == len(set(seen)), "an account came twice"
            now = {u for u in seen}
            assert "big000500" not in now and "big000500x" in now
            assert "big000010" in now         # on the first page already
            assert "big000010x" not in now    # added behind the position
            rest = sorted(["admin"] + [f"big{i:06d}" for i in range(1200)
                                       if i not in (10, 500)] +
                          ["big000500x"], key=str.lower)
            assert [u for u in seen if u.lower() > last_seen.lower()] == \
                [u for u in rest if u.lower() > last_seen.lower()]
    finally:
        dm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- super admins --------------------------------------------------------------

@pytest.fixture
def sa():
    """A slapd whose only active super admin is `admin`, with a daemon."""
    with running_slapd(hash="SSHA") as s:
        tmp = tempfile.mkdtemp(prefix="otd", dir="/tmp")
        dm = Daemon(s, tmp, seats=1000)
        dm.start()
        try:
            yield s, dm
        finally:
            dm.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def test_last_superadmin_cannot_be_deleted_deactivated_or_demoted(sa):
    s, dm = sa
    assert active_superadmins(s) == ["admin"]
    with dm.client() as cl:
        for method, params in [
                ("user.delete", {"username": "admin", "confirm": "admin"}),
                ("user.update", {"username": "admin", "status": "inactive"}),
                ("user.update", {"username": "admin", "role": "user"}),
                ("user.update", {"username": "ADMIN", "role": "user",
                                 "status": "inactive"})]:
            err = cl.error(method, params)
            assert err.code == -32008 and err.reason == "last_superadmin", \
                (method, params)
            assert "last active super admin" in err.message
        e = entry(s, "admin")
        assert e["otasAccountStatus"] == ["active"]
        assert e["otasRole"] == ["superadmin"]
        refusals = [a for a in dm.audit()
                    if a.get("outcome") == "last_superadmin"]
        assert len(refusals) == 4

        # An inactive super admin does not count.
        create(cl, "sleepy", role="superadmin", status="inactive")
        assert cl.error("user.update", username="admin",
                        role="user").reason == "last_superadmin"
        # It may go itself: it is not active.
        cl.result("user.delete", username="sleepy", confirm="sleepy")

        # With a second active super admin, the first may go.
        create(cl, "second", role="superadmin")
        cl.result("user.update", username="admin", status="inactive")
        assert active_superadmins(s) == ["second"]
        err = cl.error("user.update", username="second", role="user")
        assert err.reason == "last_superadmin"
        cl.result("user.update", username="admin", status="active")
        cl.result("user.delete", username="second", confirm="second")
        assert active_superadmins(s) == ["admin"]


def test_nobody_deletes_or_demotes_themselves(sa):
    s, dm = sa
    with dm.client() as cl:
        create(cl, "selfie", role="superadmin", password="selfie-pw")
        create(cl, "plain", password="plain-pw-1")
    with dm.client() as me:
        assert me.result("auth.login", username="selfie",
                         password="selfie-pw")["role"] == "superadmin"
        # Not the last super admin (admin is active too): still refused.
        err = me.error("user.delete", username="selfie", confirm="selfie")
        assert err.code == -32008 and err.reason == "last_superadmin"
        assert "your own" in err.message
        err = me.error("user.update", username="SELFIE", role="user")
        assert err.code == -32008 and "your own" in err.message
        assert entry(s, "selfie")["otasRole"] == ["superadmin"]
        # A super admin account may manage others.
        assert me.result("user.update", username="plain",
                         full_name="Plain Jane")["full_name"] == "Plain Jane"
        # And set its own password.
        me.result("user.set_password", username="selfie",
                  password="selfie-pw-2")
        assert s.whoami(s.user_dn("selfie"), "selfie-pw-2") == 0
    with dm.client() as pl:
        pl.result("auth.login", username="plain", password="plain-pw-1")
        # A plain account: itself only, through user.get / set_password.
        assert pl.result("user.get", username="plain")["full_name"] == \
            "Plain Jane"
        assert pl.error("user.get", username="admin").reason == \
            "permission_denied"
        assert pl.error("user.list").reason == "permission_denied"
        assert pl.error("user.delete", username="plain",
                        confirm="plain").reason == "permission_denied"
        pl.result("user.set_password", username="plain",
                  password="plain-pw-2")
        assert s.whoami(s.user_dn("plain"), "plain-pw-2") == 0
    with dm.client() as cl:
        cl.result("user.delete", username="selfie", confirm="selfie")
        cl.result("user.delete", username="plain", confirm="plain")
    assert active_superadmins(s) == ["admin"]


def test_two_concurrent_demotions_leave_one_active_superadmin(sa):
    s, dm = sa
    with dm.client() as cl, dm.client() as c2:
        create(cl, "duo", role="superadmin")
        rounds = [
            ({"username": "admin", "role": "user"},
             {"username": "duo", "role": "user"}),
            ({"username": "admin", "status": "inactive"},
             {"username": "duo", "role": "user"}),
            ({"username": "duo", "status": "inactive"},
             {"username": "admin", "status": "inactive"}),
        ]
        for same_conn in (True, False):
            for a, b in rounds:
                assert active_superadmins(s) == ["admin", "duo"]
                # Both sent before either is answered.
                if same_conn:
                    ida = cl.request("user.update", a)
                    idb = cl.request("user.update", b)
                    ra, rb = cl.wait(ida), cl.wait(idb)
                else:
                    ida = cl.request("user.update", a)
                    idb = c2.request("user.update", b)
                    ra, rb = cl.wait(ida), c2.wait(idb)
                outcomes = sorted("ok" if "result" in r else
                                  r["error"]["data"]["reason"]
                                  for r in (ra, rb))
                assert outcomes == ["last_superadmin", "ok"], (ra, rb)
                assert len(active_superadmins(s)) == 1
                # Restore both.
                for name in ("admin", "duo"):
                    cl.result("user.update", username=name,
                              role="superadmin", status="active")
        cl.result("user.delete", username="duo", confirm="duo")


def test_concurrent_deletes_of_two_superadmins_leave_one(sa):
    s, dm = sa
    with dm.client() as cl:
        create(cl, "sa1", role="superadmin")
        create(cl, "sa2", role="superadmin")
        cl.result("user.update", username="admin", status="inactive")
        assert active_superadmins(s) == ["sa1", "sa2"]
        ids = [cl.request("user.delete", {"username": n, "confirm": n})
               for n in ("sa1", "sa2")]
        reps = [cl.wait(i) for i in ids]
        assert sorted("ok" if "result" in r else r["error"]["data"]["reason"]
                      for r in reps) == ["last_superadmin", "ok"]
        left = active_superadmins(s)
        assert len(left) == 1
        cl.result("user.update", username="admin", status="active")
        cl.result("user.delete", username=left[0], confirm=left[0])
        assert active_superadmins(s) == ["admin"]


# -- logs and audit -------------------------------------------------------------

def test_changes_are_logged_and_audited_without_passwords(c, d):
    create(c, "aud1", password="audit-secret-1")
    c.result("user.update", username="aud1", status="inactive")
    c.result("user.set_password", username="aud1", password="audit-secret-2")
    c.error("user.delete", username="aud1")
    c.result("user.delete", username="aud1", confirm="aud1")
    log = d.log_text()
    for method in ("user.create", "user.update", "user.set_password",
                   "user.delete"):
        assert f"{method} aud1 by uid 0" in log
    assert "audit-secret" not in log
    audit = [a for a in d.audit() if a.get("target") == "aud1"]
    assert [a.get("outcome") for a in audit] == [
        "ok", "ok", "ok", "confirmation_required", "ok"]
    assert "audit-secret" not in d.audit_path.read_text()


# -- all or nothing: the password step fails -----------------------------------

def test_create_is_all_or_nothing_when_the_password_cannot_be_set(tmpdir_short):
    """A directory whose rules let the service add entries but not set
    passwords (an access rule in front of the shipped ones): the add
    succeeds, Password Modify fails with insufficientAccess, and the
    entry must be removed again, the client told why, the seat freed."""
    import os
    import subprocess
    with running_slapd(hash="SSHA", form="cnconfig") as s:
        rule = (f'{{0}}to dn.children="{s.people_dn}" attrs=userPassword '
                f'by dn.exact="{s.service_dn}" none by * break')
        env = dict(os.environ, LDAPNOINIT="1")
        run = subprocess.run(
            ["ldapmodify", "-Y", "EXTERNAL", "-Q", "-H", s.ldapi_uri],
            input=("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\n"
                   f"add: olcAccess\nolcAccess: {rule}\n"),
            capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        dm = Daemon(s, tmpdir_short, seats=10)
        dm.start()
        try:
            with dm.client() as cl:
                used = cl.result("license.get")["used"]
                before = s.count_people()
                err = cl.error("user.create", username="halfway",
                               full_name="Half Way",
                               email="half@example.com",
                               password="never-set-pw")
                assert err.code == -32603
                assert "nothing was created" in err.message
                assert "removed again" in err.message
                assert entry(s, "halfway") is None
                assert s.count_people() == before
                assert cl.error("user.get",
                                username="halfway").reason == "not_found"
                assert cl.result("license.get")["used"] == used
                # Without a password the same account can be created.
                create(cl, "halfway")
                assert entry(s, "halfway") is not None
                # The password cannot be set later either: refused whole.
                err = cl.error("user.set_password", username="halfway",
                               password="never-set-pw")
                assert err.code == -32603
                assert "userPassword" not in entry(s, "halfway")
            log = dm.log_text()
            assert "insufficient access" in log and "access rules" in log
            assert "never-set-pw" not in log
        finally:
            dm.stop()
