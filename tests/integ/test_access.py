"""otasdir's access rules (schema/otasdir-access.conf and .ldif), checked
against a private slapd in each config form, binding as the identities
that really use them: otasdird's service DN (never the rootdn, which
skips every rule), the accounts themselves, and anonymous clients.

The conf form runs with {ARGON2} hashing, as the sandbox does; the
cn=config form with {SSHA}; the cn=config form applies the shipped
otasdir-access.ldif in front of the site's own rules (mkslapd.sh)."""

import re
from pathlib import Path

import pytest

from slapdenv import (ALREADY_EXISTS, INSUFFICIENT_ACCESS, INVALID_CREDENTIALS,
                      NO_SUCH_OBJECT, SIZE_LIMIT_EXCEEDED, TOP,
                      UNWILLING_TO_PERFORM, running_slapd, ssha)

SCHEMA = TOP / "schema"
PLACEHOLDERS = {"@SUFFIX@", "@PEOPLE_DN@", "@SERVICE_DN@"}


# -- the two shipped files --------------------------------------------------

def conf_rules(path):
    """The `access to` rules of a slapd.conf snippet, each one string with
    single spaces (continuation lines start with white space)."""
    rules = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            rules[-1] += " " + line.strip()
        else:
            assert line.startswith("access to "), line
            rules.append(line.strip()[len("access "):])
    return [" ".join(r.split()) for r in rules]


def ldif_rules(path):
    """The olcAccess values of an ldapmodify LDIF, in order, without their
    {n} prefixes; also checks the prefixes count up from {0}."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        if raw.startswith("#"):
            continue
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    rules = []
    for line in lines:
        if line.lower().startswith("olcaccess:"):
            value = line.split(":", 1)[1].strip()
            m = re.match(r"\{(\d+)\}(.*)", value)
            assert m and int(m.group(1)) == len(rules), value
            rules.append(" ".join(m.group(2).split()))
    return rules


def test_access_files_hold_the_same_rules():
    conf = conf_rules(SCHEMA / "otasdir-access.conf")
    ldif = ldif_rules(SCHEMA / "otasdir-access.ldif")
    assert len(conf) >= 4
    assert conf == ldif


@pytest.mark.parametrize("name", ["otasdir-access.conf", "otasdir-access.ldif"])
def test_access_templates_use_only_the_three_placeholders(name):
    text = (SCHEMA / name).read_text()
    assert set(re.findall(r"@[A-Za-z_]+@", text)) == PLACEHOLDERS


def test_access_ldif_modifies_olcaccess_first():
    text = (SCHEMA / "otasdir-access.ldif").read_text()
    assert re.search(r"^dn: olcDatabase=\{1\}mdb,cn=config$", text, re.M)
    assert re.search(r"^changetype: modify\nadd: olcAccess$", text, re.M)
    assert "olcAccess: {0}to " in text


# -- against slapd -----------------------------------------------------------

@pytest.fixture(scope="module", params=[("conf", "ARGON2"), ("cnconfig", "SSHA")],
                ids=["conf-argon2", "cnconfig-ssha"])
def slapd(request):
    form, hash_ = request.param
    with running_slapd(form=form, hash=hash_) as s:
        yield s


def add_account(s, name, status="active", password=None, role="user"):
    """Create an account the way otasdird does: an add and, if a password
    is given, a Password Modify, both as the service DN."""
    s.ldapadd(s.account_ldif(name, status=status, role=role), **s.service)
    if password is not None:
        s.ldappasswd(s.user_dn(name), password, **s.service)
    return s.user_dn(name)


def set_status(s, name, status, **bind):
    return s.ldapmodify(f"dn: {s.user_dn(name)}\nchangetype: modify\n"
                        f"replace: otasAccountStatus\notasAccountStatus: {status}\n",
                        **bind)


def stored_password(s, name):
    """The stored userPassword of an account, read as the rootdn."""
    [e] = s.ldapsearch(s.user_dn(name), attrs=["userPassword"], scope="base")
    return e["userPassword"][0]


def test_service_is_not_the_rootdn(slapd):
    assert slapd.service_dn.lower() != slapd.root_dn.lower()
    assert slapd.whoami(slapd.service_dn, slapd.bind_pw) == 0
    assert slapd.whoami(slapd.service_dn, "wrong-password") == INVALID_CREDENTIALS


def test_first_superadmin_can_bind(slapd):
    assert slapd.whoami(slapd.superadmin_dn, slapd.superadmin_pw) == 0
    [e] = slapd.ldapsearch(slapd.superadmin_dn, attrs=["otasRole", "otasAccountStatus",
                                                       "cn", "mail"], scope="base")
    assert e["otasRole"] == ["superadmin"] and e["otasAccountStatus"] == ["active"]
    assert e["cn"] == ["Super Admin"] and e["mail"] == ["admin@example.com"]
    assert stored_password(slapd, slapd.superadmin).startswith("{%s}" % slapd.hash)


def test_inactive_account_cannot_bind(slapd):
    active = add_account(slapd, "bind-active", password="pw-active-1")
    inactive = add_account(slapd, "bind-inactive", status="inactive", password="pw-inactive-1")
    assert slapd.whoami(active, "pw-active-1") == 0
    assert slapd.whoami(active, "wrong-pw-1") == INVALID_CREDENTIALS
    # The right password, and still 49: slapd does not say "inactive".
    assert slapd.whoami(inactive, "pw-inactive-1") == INVALID_CREDENTIALS
    # Over ldapi as well: the rules do not depend on the listener.
    assert slapd.whoami(active, "pw-active-1", uri=slapd.ldapi_uri) == 0
    assert slapd.whoami(inactive, "pw-inactive-1", uri=slapd.ldapi_uri) == INVALID_CREDENTIALS


def test_status_flip_takes_effect_at_once(slapd):
    dn = add_account(slapd, "flip", password="pw-flip-123")
    assert slapd.whoami(dn, "pw-flip-123") == 0
    set_status(slapd, "flip", "inactive", **slapd.service)
    assert slapd.whoami(dn, "pw-flip-123") == INVALID_CREDENTIALS
    set_status(slapd, "flip", "active", **slapd.service)
    assert slapd.whoami(dn, "pw-flip-123") == 0
    # The filter uses the attribute's case-insensitive equality.
    set_status(slapd, "flip", "INACTIVE", **slapd.service)
    assert slapd.whoami(dn, "pw-flip-123") == INVALID_CREDENTIALS


def test_service_adds_and_deletes_accounts(slapd):
    before = slapd.count_people()
    dn = add_account(slapd, "svc-add")
    assert slapd.count_people() == before + 1
    r = slapd.ldapadd(slapd.account_ldif("svc-add"), **slapd.service, check=False)
    assert r.rc == ALREADY_EXISTS
    slapd.ldapdelete(dn, **slapd.service)
    assert slapd.count_people() == before
    assert slapd.ldapdelete(dn, **slapd.service, check=False).rc == NO_SUCH_OBJECT


def test_service_searches_and_edits_accounts(slapd):
    add_account(slapd, "svc-edit")
    slapd.ldapmodify(f"dn: {slapd.user_dn('svc-edit')}\nchangetype: modify\n"
                     "replace: mail\nmail: new@example.com\n-\n"
                     "replace: otasRole\notasRole: superadmin\n", **slapd.service)
    [e] = slapd.ldapsearch(slapd.people_dn, "(&(uid=svc-edit)(otasAccountStatus=active))",
                           ["mail", "otasRole"], scope="one", **slapd.service)
    assert e["mail"] == ["new@example.com"] and e["otasRole"] == ["superadmin"]


def test_service_sets_hashed_passwords(slapd):
    dn = add_account(slapd, "svc-pw", password="first-pw-1")
    stored = stored_password(slapd, "svc-pw")
    assert stored.startswith("{%s}" % slapd.hash), stored
    assert "first-pw-1" not in stored
    slapd.ldappasswd(dn, "second-pw-2", **slapd.service)
    assert slapd.whoami(dn, "second-pw-2") == 0
    assert slapd.whoami(dn, "first-pw-1") == INVALID_CREDENTIALS
    # Inactive accounts too (an admin resets it before reactivating).
    set_status(slapd, "svc-pw", "inactive", **slapd.service)
    slapd.ldappasswd(dn, "third-pw-3", **slapd.service)
    set_status(slapd, "svc-pw", "active", **slapd.service)
    assert slapd.whoami(dn, "third-pw-3") == 0


def test_service_reads_hashes_of_inactive_accounts_only(slapd):
    add_account(slapd, "hash-active", password="pw-hash-a")
    add_account(slapd, "hash-inactive", status="inactive", password="pw-hash-i")
    [a] = slapd.ldapsearch(slapd.user_dn("hash-active"), attrs=["userPassword", "uid"],
                           scope="base", **slapd.service)
    assert a["uid"] == ["hash-active"]
    assert "userPassword" not in a
    [i] = slapd.ldapsearch(slapd.user_dn("hash-inactive"), attrs=["userPassword"],
                           scope="base", **slapd.service)
    assert i["userPassword"] == [stored_password(slapd, "hash-inactive")]
    # Nor can it probe an active hash with a compare or a filter.
    assert slapd.ldapcompare(slapd.user_dn("hash-active"), "userPassword:pw-hash-a",
                             **slapd.service) == INSUFFICIENT_ACCESS
    # (=rw grants no `search` either, so no filter on userPassword matches
    # for the service, inactive accounts included.)
    hits = slapd.ldapsearch(slapd.people_dn, "(&(uid=hash-*)(userPassword=*))",
                            ["1.1"], **slapd.service)
    assert hits == []


def test_service_confined_to_people_and_its_counter(slapd):
    svc = slapd.service
    r = slapd.ldapmodify(f"dn: {slapd.suffix}\nchangetype: modify\n"
                         "replace: o\no: hijacked\n", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    r = slapd.ldapmodify(f"dn: {slapd.people_dn}\nchangetype: modify\n"
                         "replace: description\ndescription: hijacked\n", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    assert slapd.ldapdelete(slapd.people_dn, **svc, check=False).rc == INSUFFICIENT_ACCESS
    # Another subtree of the site's, made by the rootdn.
    slapd.ldapadd(f"dn: ou=groups,{slapd.suffix}\nobjectClass: organizationalUnit\nou: groups\n\n"
                  f"dn: cn=staff,ou=groups,{slapd.suffix}\nobjectClass: organizationalRole\n"
                  "cn: staff\n")
    r = slapd.ldapmodify(f"dn: cn=staff,ou=groups,{slapd.suffix}\nchangetype: modify\n"
                         "replace: description\ndescription: hijacked\n", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    r = slapd.ldapadd(f"dn: cn=intruder,ou=groups,{slapd.suffix}\n"
                      "objectClass: organizationalRole\ncn: intruder\n", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    r = slapd.ldapdelete(f"cn=staff,ou=groups,{slapd.suffix}", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    # The children right on the suffix serves the counter only.
    r = slapd.ldapadd(f"dn: cn=otasdir-other,{slapd.suffix}\n"
                      "objectClass: otasSeatCounter\ncn: otasdir-other\notasSeatsUsed: 0\n",
                      **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    slapd.ldapadd(f"dn: cn=leaf,{slapd.suffix}\nobjectClass: organizationalRole\ncn: leaf\n")
    r = slapd.ldapdelete(f"cn=leaf,{slapd.suffix}", **svc, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    # Nor may it set the password of another bind DN of the site's.
    slapd.ldapadd(f"dn: cn=app,ou=groups,{slapd.suffix}\n"
                  "objectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
                  f"cn: app\nuserPassword: {ssha('pw-app-123')}\n")
    r = slapd.ldappasswd(f"cn=app,ou=groups,{slapd.suffix}", "taken-over", **svc,
                         check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    assert slapd.whoami(f"cn=app,ou=groups,{slapd.suffix}", "pw-app-123") == 0


def test_service_owns_the_seat_counter(slapd):
    svc = slapd.service
    dn = f"cn=otasdir-seats,{slapd.suffix}"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: otasSeatCounter\ncn: otasdir-seats\n"
                  "otasSeatsUsed: 7\n", **svc)
    slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\nreplace: otasSeatsUsed\n"
                     "otasSeatsUsed: 8\n-\nadd: otasSeatPending\n"
                     "otasSeatPending: t1 1700000000 1\n", **svc)
    [e] = slapd.ldapsearch(dn, attrs=["otasSeatsUsed", "otasSeatPending"],
                           scope="base", **svc)
    assert e["otasSeatsUsed"] == ["8"]
    assert e["otasSeatPending"] == ["t1 1700000000 1"]
    # An ordinary account cannot touch it.
    user = add_account(slapd, "counter-user", password="pw-counter-1")
    r = slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\nreplace: otasSeatsUsed\n"
                         "otasSeatsUsed: 0\n", dn=user, pw="pw-counter-1", check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    slapd.ldapdelete(dn, **svc)
    assert slapd.ldapsearch(slapd.suffix, "(objectClass=otasSeatCounter)", ["1.1"]) == []


def test_user_changes_own_password(slapd):
    dn = add_account(slapd, "self-pw", password="old-self-pw")
    r = slapd.ldappasswd(dn, "new-self-pw", dn=dn, pw="old-self-pw",
                         old_pw="wrong-old-pw", check=False)
    assert r.rc == UNWILLING_TO_PERFORM
    slapd.ldappasswd(dn, "new-self-pw", dn=dn, pw="old-self-pw", old_pw="old-self-pw")
    assert slapd.whoami(dn, "new-self-pw") == 0
    assert slapd.whoami(dn, "old-self-pw") == INVALID_CREDENTIALS
    assert stored_password(slapd, "self-pw").startswith("{%s}" % slapd.hash)


def test_user_cannot_touch_others_or_own_status(slapd):
    dn = add_account(slapd, "plain", password="pw-plain-1")
    other = add_account(slapd, "other", password="pw-other-1")
    me = {"dn": dn, "pw": "pw-plain-1"}
    assert slapd.ldappasswd(other, "taken-over", **me, check=False).rc == INSUFFICIENT_ACCESS
    assert slapd.whoami(other, "pw-other-1") == 0
    r = slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         "replace: otasRole\notasRole: superadmin\n", **me, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    r = set_status(slapd, "other", "inactive", **me, check=False)
    assert r.rc == INSUFFICIENT_ACCESS
    r = slapd.ldapadd(slapd.account_ldif("made-by-user"), **me, check=False)
    assert r.rc == INSUFFICIENT_ACCESS


def test_inactive_user_cannot_change_password(slapd):
    dn = add_account(slapd, "inactive-pw", status="inactive", password="pw-inact-1")
    r = slapd.ldappasswd(dn, "pw-inact-2", dn=dn, pw="pw-inact-1",
                         old_pw="pw-inact-1", check=False)
    assert r.rc == INVALID_CREDENTIALS


def test_nobody_else_reads_password_hashes(slapd):
    dn = add_account(slapd, "secretive", password="pw-secret-1")
    other = add_account(slapd, "nosy", password="pw-nosy-1")
    for bind in ({"anonymous": True}, {"dn": other, "pw": "pw-nosy-1"},
                 {"dn": dn, "pw": "pw-secret-1"}):
        hits = slapd.ldapsearch(slapd.people_dn, "(uid=secretive)",
                                ["userPassword", "mail"], **bind)
        # The entry is visible (the site's `to * by * read`, reached through
        # `by * break`), its hash is not.
        assert [e.dn for e in hits] == [dn], bind
        assert hits[0]["mail"] == ["secretive@example.com"]
        assert "userPassword" not in hits[0], bind
        assert slapd.ldapcompare(dn, "userPassword:pw-secret-1", **bind) \
            == INSUFFICIENT_ACCESS, bind
    # Status and role: authenticated clients read them, anonymous does not.
    [e] = slapd.ldapsearch(dn, attrs=["otasAccountStatus"], scope="base",
                           dn=other, pw="pw-nosy-1")
    assert e["otasAccountStatus"] == ["active"]
    [e] = slapd.ldapsearch(dn, attrs=["otasAccountStatus", "otasRole"], scope="base",
                           anonymous=True)
    assert "otasAccountStatus" not in e and "otasRole" not in e


# -- the limits line -----------------------------------------------------------

def _lim_search(s):
    return s.ldapsearch(s.people_dn, "(uid=lim*)", ["1.1"], scope="one",
                        check=False, **s.service)


@pytest.mark.parametrize("form", ["conf", "cnconfig"])
def test_limits_line_lets_the_service_see_every_account(form):
    # dbnosync: 1200 adds with an fsync each would take seconds.
    with running_slapd(form=form, limits=False, dbnosync=True) as s:
        s.seed(600, prefix="lim")
        hits = _lim_search(s)
        assert hits.rc == SIZE_LIMIT_EXCEEDED
        assert len(hits) == 500
        assert s.count_people() == 601  # the rootdn is not limited
    with running_slapd(form=form, dbnosync=True) as s:
        s.seed(600, prefix="lim")
        hits = _lim_search(s)
        assert hits.rc == 0
        assert len(hits) == 600
