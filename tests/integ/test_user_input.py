"""Bad input to the user.* methods (issue 3): each gets -32602 with
data.field naming the param (or -32700 when the bytes are not even valid
UTF-8 JSON), and the directory is unchanged.  Nothing a client sends
reaches a DN or a filter: usernames such as `a*)(uid=*` or `x,ou=people`
are refused outright."""

import json

import pytest

from otasenv import Daemon

BAD_USERNAMES = [
    ("a*)(uid=*", "filter syntax"),
    ("x,ou=people", "DN syntax"),
    ("admin,ou=people,dc=example,dc=com", "a whole DN"),
    ("a" * 65, "65 characters"),
    (" alice", "leading space"),
    ("alice ", "trailing space"),
    ("ali\nce", "newline"),
    ("alice\n", "trailing newline"),
    ("", "empty"),
    (".alice", "leading dot"),
    ("-alice", "leading dash"),
    ("al ice", "inner space"),
    ("alicé", "non-ASCII"),
    ("ali\tce", "tab"),
    ("uid=alice", "equals sign"),
    ("al\\ice", "backslash"),
    ("al#ice", "hash"),
]

BAD_EMAILS = [
    ("no-at-sign.example.com", "no @"),
    ("two@@example.com", "two @"),
    ("a@b@example.com", "two @ apart"),
    ("a b@example.com", "space"),
    ("ab@exa mple.com", "space in domain"),
    (" ab@example.com", "leading space"),
    ("ab@example.com\n", "newline"),
    ("ab\t@example.com", "tab"),
    ("@example.com", "nothing before @"),
    ("ab@", "nothing after @"),
    ("", "empty"),
    ("a" * 243 + "@example.com", "255 bytes"),
    ("zoë@example.com", "non-ASCII (mail is IA5)"),
]

BAD_NAMES = [
    ("Bell\u0007Ringer", "BEL"),
    ("Line\nBreak", "newline"),
    ("Car\rriage", "carriage return"),
    ("Tab\there", "tab"),
    ("Del\u007fete", "DEL"),
    ("C1\u0085next", "C1 control"),
    ("Esc\u001b[31mRed", "escape sequence"),
    ("evil\u202egnp.exe", "bidi override"),
    ("para\u2029graph", "paragraph separator"),
    ("", "empty"),
    (" Leading", "leading space"),
    ("Trailing ", "trailing space"),
    ("x" * 257, "257 bytes"),
    ("é" * 129, "258 bytes of UTF-8"),
]


@pytest.fixture(scope="module")
def env(slapd, tmp_path_factory):
    import tempfile
    d = Daemon(slapd, tempfile.mkdtemp(prefix="otd", dir="/tmp"),
               seats=100000)
    d.start()
    with d.client() as c:
        c.result("user.create", username="victim", full_name="Vic Tim",
                 email="victim@example.com", password="victim-pw-1")
        yield slapd, d, c
    d.stop()


def snapshot(s):
    """Everything under people_dn, as the rootdn sees it."""
    return sorted((e.dn, sorted((k, tuple(v)) for k, v in e.items()))
                  for e in s.ldapsearch(s.people_dn, "(objectClass=*)",
                                        ["*", "userPassword"], scope="one"))


def refused(c, s, method, params, field):
    """Call method with params: it must fail with -32602 naming field,
    and leave the directory as it was."""
    before = snapshot(s)
    err = c.error(method, params)
    assert err.code == -32602, (method, params, err)
    assert err.field == field, (method, params, err)
    assert err.message.startswith("invalid params:")
    assert snapshot(s) == before
    return err


def create_params(**kw):
    p = {"username": "okname", "full_name": "Ok Name",
         "email": "ok@example.com"}
    p.update(kw)
    return p


# -- usernames ------------------------------------------------------------------

@pytest.mark.parametrize("username,why", BAD_USERNAMES,
                         ids=[w for _, w in BAD_USERNAMES])
def test_bad_username_create(env, username, why):
    s, d, c = env
    refused(c, s, "user.create", create_params(username=username),
            "username")


@pytest.mark.parametrize("username,why", BAD_USERNAMES,
                         ids=[w for _, w in BAD_USERNAMES])
def test_bad_username_everywhere(env, username, why):
    s, d, c = env
    refused(c, s, "user.get", {"username": username}, "username")
    refused(c, s, "user.update", {"username": username, "status": "inactive"},
            "username")
    refused(c, s, "user.delete", {"username": username, "confirm": username},
            "username")
    refused(c, s, "user.set_password", {"username": username,
                                        "password": "long enough pw"},
            "username")


def test_64_characters_is_fine(env):
    s, d, c = env
    name = "b" * 64
    assert c.result("user.create", create_params(username=name))[
        "username"] == name
    c.result("user.delete", username=name, confirm=name)


def test_filter_and_dn_syntax_reach_nothing(env):
    """The refused usernames above also match nothing when searched: the
    search text is escaped, never a filter."""
    s, d, c = env
    for text in ("*", "*)(uid=*", "*)(|(uid=*", "victim)(mail=*", "\\",
                 "(", ")"):
        assert c.result("user.list", search=text)["users"] == [], text


# -- emails and names --------------------------------------------------------------

@pytest.mark.parametrize("email,why", BAD_EMAILS,
                         ids=[w for _, w in BAD_EMAILS])
def test_bad_email(env, email, why):
    s, d, c = env
    refused(c, s, "user.create", create_params(email=email), "email")
    refused(c, s, "user.update", {"username": "victim", "email": email},
            "email")


@pytest.mark.parametrize("name,why", BAD_NAMES, ids=[w for _, w in BAD_NAMES])
def test_bad_full_name(env, name, why):
    s, d, c = env
    refused(c, s, "user.create", create_params(full_name=name), "full_name")
    refused(c, s, "user.update", {"username": "victim", "full_name": name},
            "full_name")


@pytest.mark.parametrize("raw", [
    b"Bad \xff\xfe name",              # not UTF-8 at all
    b"Over\xc0\xaflong",                # overlong encoding of '/'
    b"Surrogate \xed\xa0\x80",          # UTF-16 surrogate
    b"Truncated \xe5\xb1",              # cut in the middle
    b"Latin-1 Zo\xeb",                  # ISO-8859-1, not UTF-8
], ids=["ff-fe", "overlong", "surrogate", "truncated", "latin1"])
def test_invalid_utf8_is_refused_at_parse(env, raw):
    s, d, c = env
    before = snapshot(s)
    line = (b'{"jsonrpc":"2.0","id":77,"method":"user.create","params":'
            b'{"username":"utf","full_name":"' + raw +
            b'","email":"utf@example.com"}}\n')
    c.send(line)
    rep = c.recv_line()
    assert rep["error"]["code"] == -32700
    assert rep["id"] is None
    assert snapshot(s) == before
    # The connection is still usable, and nothing was created.
    assert c.error("user.get", username="utf").reason == "not_found"


def test_nul_in_a_name_is_refused(env):
    s, d, c = env
    before = snapshot(s)
    c.send('{"jsonrpc":"2.0","id":78,"method":"user.create","params":'
           '{"username":"nul","full_name":"a\\u0000b",'
           '"email":"nul@example.com"}}\n')
    rep = c.recv_line()
    assert rep["error"]["code"] in (-32700, -32602)
    assert snapshot(s) == before


# -- passwords, status, role ------------------------------------------------------------

@pytest.mark.parametrize("pw", ["", "short", "x" * 7, "y" * 257])
def test_bad_password(env, pw):
    s, d, c = env
    refused(c, s, "user.create", create_params(password=pw), "password")
    refused(c, s, "user.set_password", {"username": "victim",
                                        "password": pw}, "password")
    assert s.whoami(s.user_dn("victim"), "victim-pw-1") == 0


@pytest.mark.parametrize("status", ["enabled", "Active", "ACTIVE", "",
                                    "disabled", "inactive "])
def test_bad_status(env, status):
    s, d, c = env
    refused(c, s, "user.create", create_params(status=status), "status")
    refused(c, s, "user.update", {"username": "victim", "status": status},
            "status")
    refused(c, s, "user.list", {"status": status}, "status")


@pytest.mark.parametrize("role", ["admin", "root", "SuperAdmin", "", "users"])
def test_bad_role(env, role):
    s, d, c = env
    refused(c, s, "user.create", create_params(role=role), "role")
    refused(c, s, "user.update", {"username": "victim", "role": role}, "role")


# -- wrong JSON types ---------------------------------------------------------------

@pytest.mark.parametrize("method,params,field", [
    ("user.create", create_params(username=42), "username"),
    ("user.create", create_params(full_name=["a"]), "full_name"),
    ("user.create", create_params(email={"a": 1}), "email"),
    ("user.create", create_params(password=12345678), "password"),
    ("user.create", create_params(status=True), "status"),
    ("user.get", {"username": 42}, "username"),
    ("user.get", {"username": None}, "username"),
    ("user.get", {}, "username"),
    ("user.update", {"username": "victim", "status": 1}, "status"),
    ("user.delete", {"username": "victim", "confirm": 1}, "confirm"),
    ("user.set_password", {"username": "victim", "password": None},
     "password"),
    ("user.list", {"limit": "10"}, "limit"),
    ("user.list", {"limit": 10.5}, "limit"),
    ("user.list", {"limit": True}, "limit"),
    ("user.list", {"cursor": 5}, "cursor"),
    ("user.list", {"search": 5}, "search"),
    ("user.import", {"users": "alice"}, "users"),
    ("user.import", {"users": [], "dry_run": "yes"}, "dry_run"),
    ("user.create", dict(create_params(), extra="x"), "extra"),
])
def test_wrong_types(env, method, params, field):
    s, d, c = env
    refused(c, s, method, params, field)


# -- list limits and cursors -----------------------------------------------------------

@pytest.mark.parametrize("limit", [0, -1, 1001, 10**12])
def test_limit_out_of_range(env, limit):
    s, d, c = env
    err = refused(c, s, "user.list", {"limit": limit}, "limit")
    assert "1-1000" in err.message


@pytest.mark.parametrize("limit", [1, 1000])
def test_limit_bounds_are_fine(env, limit):
    s, d, c = env
    assert len(c.result("user.list", limit=limit)["users"]) >= 1


@pytest.mark.parametrize("search", ["x" * 257, "a\u0007b", "tab\there"])
def test_bad_search(env, search):
    s, d, c = env
    refused(c, s, "user.list", {"search": search}, "search")


@pytest.mark.parametrize("cursor", [
    "AAAA", "!!!!", "a" * 300, "AbkNb8LAw8XSPFjx5f2cyn0FYWRtaW5HqxCTBhDMSA",
    "AQ", "====",
])
def test_forged_cursor(env, cursor):
    s, d, c = env
    refused(c, s, "user.list", {"cursor": cursor}, "cursor")


def test_stale_cursor(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short, seats=100000)
    d.start()
    with d.client() as c:
        cursor = c.result("user.list", limit=1)["next_cursor"]
        assert cursor
    d.stop()
    d.start()
    try:
        with d.client() as c:
            before = snapshot(slapd)
            err = c.error("user.list", limit=1, cursor=cursor)
            assert err.code == -32602 and err.field == "cursor"
            assert "stale" in err.message
            assert snapshot(slapd) == before
    finally:
        d.stop()


def test_nothing_bad_reached_the_log_unescaped(env):
    """Refused usernames never reach a log line (they could forge one)."""
    s, d, c = env
    refused(c, s, "user.delete", {"username": "x\nFAKE LOG LINE",
                                  "confirm": "x"}, "username")
    assert "FAKE LOG LINE" not in d.log_text()
    audit = d.audit_path.read_text()
    for line in audit.splitlines():
        json.loads(line)
