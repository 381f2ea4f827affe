"""otasdir's LDAP schema: both shipped forms define the same thing, and a
private slapd built from either config form (slapd.conf, cn=config)
loads and enforces it."""

import re
import uuid
from pathlib import Path

import pytest

from slapdenv import (ASSERTION_FAILED, CONSTRAINT_VIOLATION,
                      OBJECT_CLASS_VIOLATION, TOP, running_slapd)

SCHEMA = TOP / "schema"
ARC = "2.25.227055995085020233191259502776578977160"
OIDS = {f"{ARC}.1.{n}" for n in (1, 2, 3, 4)} | {f"{ARC}.2.{n}" for n in (1, 2)}


def _definitions(text):
    """Split text that starts with '(' into its top-level parenthesised
    definitions, honouring quoted strings (a DESC may hold parentheses)."""
    defs, depth, quoted, start = [], 0, False, None
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif c == "(":
            if depth == 0:
                start = i
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                defs.append(text[start:i + 1])
    assert depth == 0 and not quoted, "unbalanced schema text"
    return defs


def _normalize(definition):
    return " ".join(definition.split())


def _by_oid(kind_defs):
    """{oid: (kind, normalized definition)} from [(kind, definition)]."""
    out = {}
    for kind, d in kind_defs:
        d = _normalize(d)
        oid = d.split()[1]
        assert oid not in out, f"OID {oid} defined twice"
        out[oid] = (kind, d)
    return out


def parse_schema_conf(path):
    """The attributetype/objectclass definitions of a slapd.conf schema."""
    text = "\n".join(line for line in Path(path).read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    found = []
    for m in re.finditer(r"^(attributetype|objectclass)\s+(?=\()", text,
                         re.M | re.I):
        kind = "attr" if m.group(1).lower() == "attributetype" else "class"
        found.append((kind, _definitions(text[m.end():])[0]))
    return _by_oid(found)


def parse_schema_ldif(path):
    """The olcAttributeTypes/olcObjectClasses values of a cn=config LDIF."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        if raw.startswith("#"):
            continue
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    found = []
    for line in lines:
        name, _, value = line.partition(":")
        kind = {"olcattributetypes": "attr", "olcobjectclasses": "class"}.get(name.lower())
        if kind:
            found.append((kind, re.sub(r"^\{\d+\}", "", value.strip())))
    return _by_oid(found)


def test_oid_arc_is_the_uuid_as_integer():
    assert ARC == "2.25." + str(uuid.UUID("aad164dd-1918-470d-9545-501e5f73ad88").int)


def test_schema_files_define_the_same():
    conf = parse_schema_conf(SCHEMA / "otasdir.schema")
    ldif = parse_schema_ldif(SCHEMA / "otasdir.ldif")
    assert set(conf) == OIDS
    assert conf == ldif
    # The properties otasdird and the seat counter depend on.
    by_name = {d.split()[3].strip("'"): d for _, d in conf.values()}
    assert "SINGLE-VALUE" in by_name["otasAccountStatus"]
    assert "SINGLE-VALUE" in by_name["otasRole"]
    assert "ORDERING integerOrderingMatch" in by_name["otasSeatsUsed"]
    assert "SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE" in by_name["otasSeatsUsed"]
    assert "SINGLE-VALUE" not in by_name["otasSeatPending"]
    assert "AUXILIARY MUST ( otasAccountStatus $ otasRole )" in by_name["otasAccount"]
    assert "STRUCTURAL MUST ( cn $ otasSeatsUsed ) MAY ( otasSeatPending $ description )" \
        in by_name["otasSeatCounter"]


@pytest.fixture(scope="module", params=["conf", "cnconfig"])
def slapd(request):
    with running_slapd(form=request.param, hash="SSHA") as s:
        yield s


def test_slapd_publishes_the_shipped_definitions(slapd):
    sub = slapd.ldapsearch("cn=Subschema", "(objectClass=*)",
                           ["attributeTypes", "objectClasses"], scope="base",
                           anonymous=True)
    live = {}
    for attr in ("attributeTypes", "objectClasses"):
        for d in sub[0][attr]:
            if ARC in d.split()[1]:
                live[d.split()[1]] = _normalize(d)
    shipped = parse_schema_conf(SCHEMA / "otasdir.schema")
    assert live == {oid: d for oid, (_, d) in shipped.items()}


def test_account_entry(slapd):
    slapd.ldapadd(slapd.account_ldif("schema1", "Ada Lovelace",
                                     status="inactive", role="superadmin"))
    [e] = slapd.ldapsearch(slapd.people_dn, "(&(uid=schema1)(otasAccountStatus=INACTIVE))",
                           ["objectClass", "otasAccountStatus", "otasRole", "cn"])
    assert set(e["objectClass"]) == {"inetOrgPerson", "otasAccount"}
    assert e["otasAccountStatus"] == ["inactive"]
    assert e["otasRole"] == ["superadmin"]
    assert e["cn"] == ["Ada Lovelace"]


@pytest.mark.parametrize("drop", ["otasAccountStatus", "otasRole"])
def test_account_needs_status_and_role(slapd, drop):
    ldif = "".join(line for line in slapd.account_ldif("no" + drop.lower()).splitlines(True)
                   if not line.startswith(drop + ":"))
    r = slapd.ldapadd(ldif, check=False)
    assert r.rc == OBJECT_CLASS_VIOLATION
    assert f"requires attribute '{drop}'" in r.err


@pytest.mark.parametrize("attr,first,second", [
    ("otasAccountStatus", "active", "inactive"),
    ("otasRole", "user", "superadmin"),
])
def test_status_and_role_are_single_valued(slapd, attr, first, second):
    name = "single" + attr.lower()
    slapd.ldapadd(slapd.account_ldif(name))
    r = slapd.ldapmodify(f"dn: {slapd.user_dn(name)}\nchangetype: modify\n"
                         f"add: {attr}\n{attr}: {second}\n", check=False)
    assert r.rc == CONSTRAINT_VIOLATION
    assert "cannot have multiple values" in r.err
    [e] = slapd.ldapsearch(slapd.user_dn(name), attrs=[attr], scope="base")
    assert e[attr] == [first]


def _increment(slapd, limit, **bind):
    """Add one seat if otasSeatsUsed <= limit (critical assertion)."""
    return slapd.ldapmodify(
        f"dn: cn=otasdir-seats,{slapd.suffix}\nchangetype: modify\n"
        "increment: otasSeatsUsed\notasSeatsUsed: 1\n-\n",
        args=["-e", f"!assert=(otasSeatsUsed<={limit})"], check=False, **bind)


def _seats(slapd):
    [e] = slapd.ldapsearch(f"cn=otasdir-seats,{slapd.suffix}",
                           attrs=["otasSeatsUsed"], scope="base")
    return int(e["otasSeatsUsed"][0])


def test_seat_counter_increment_guarded_by_assertion(slapd):
    # As otasdird does it: its own bind DN, not the rootdn.
    svc = slapd.service
    slapd.ldapadd(f"dn: cn=otasdir-seats,{slapd.suffix}\n"
                  "objectClass: otasSeatCounter\ncn: otasdir-seats\n"
                  "otasSeatsUsed: 3\n", **svc)
    try:
        assert _increment(slapd, 4, **svc).rc == 0
        assert _seats(slapd) == 4
        assert _increment(slapd, 4, **svc).rc == 0
        assert _seats(slapd) == 5
        r = _increment(slapd, 4, **svc)
        assert r.rc == ASSERTION_FAILED, r
        assert _seats(slapd) == 5
        # The ORDERING rule also serves searches.
        assert len(slapd.ldapsearch(slapd.suffix, "(otasSeatsUsed>=5)", ["1.1"])) == 1
        assert len(slapd.ldapsearch(slapd.suffix, "(otasSeatsUsed<=4)", ["1.1"])) == 0
    finally:
        slapd.ldapdelete(f"cn=otasdir-seats,{slapd.suffix}", **svc)


def test_seat_pending_is_multi_valued_and_case_exact(slapd):
    dn = f"cn=otasdir-seats,{slapd.suffix}"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: otasSeatCounter\ncn: otasdir-seats\n"
                  "otasSeatsUsed: 0\n"
                  "otasSeatPending: tokA 1700000000 2\n"
                  "otasSeatPending: toka 1700000001 1\n", **slapd.service)
    try:
        [e] = slapd.ldapsearch(dn, attrs=["otasSeatPending"], scope="base")
        assert sorted(e["otasSeatPending"]) == ["tokA 1700000000 2",
                                                "toka 1700000001 1"]
        # Delete one marker by its exact value, as otasdird releases one.
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\ndelete: otasSeatPending\n"
                         "otasSeatPending: tokA 1700000000 2\n", **slapd.service)
        [e] = slapd.ldapsearch(dn, attrs=["otasSeatPending"], scope="base")
        assert e["otasSeatPending"] == ["toka 1700000001 1"]
    finally:
        slapd.ldapdelete(dn, **slapd.service)


def test_offline_load_crash_and_restart(slapd):
    # The benchmarks load big directories with slapadd (seed_offline): the
    # entries must pass the schema there, survive a SIGKILL of slapd, and
    # reach a syncrepl refresh (syncprov) done as the service DN.
    before = slapd.count_people()
    names = slapd.seed_offline(300, prefix="offline")
    assert slapd.running
    assert slapd.count_people() == before + 300
    slapd.kill()
    assert not slapd.running
    slapd.start()
    hits = slapd.ldapsearch(slapd.people_dn, "(&(uid=offline*)(otasAccountStatus=inactive))",
                            ["uid"], scope="one", **slapd.service)
    assert sorted(e["uid"][0] for e in hits) == names[4::5]
    sync = slapd.ldapsearch(slapd.people_dn, "(uid=offline*)", ["1.1"], scope="one",
                            args=["-E", "!sync=ro"], **slapd.service)
    assert len(sync) == 300
