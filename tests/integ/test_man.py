"""The manual pages: lint-clean, and complete against the code, which is
parsed at test time (the key table in daemon/cfg.c, the command table,
options and exit statuses in src/otasctl.c, the options, signals and
exit statuses in daemon/otasdird.c, the error reasons in src/proto.h), so
a key, command or reason added without its page fails here."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
MAN = TOP / "man"
PAGES = ["otasctl.1", "otasdird.yaml.5", "otasdird.8"]


def page(name):
    return (MAN / name).read_text()


def items(text):
    """The heads of the list items (.It lines) of an mdoc page."""
    return [l[4:] for l in text.splitlines() if l.startswith(".It ")]


def rendered(name):
    """The page as text, as man(1) would show it."""
    r = subprocess.run(["mandoc", "-Tascii", str(MAN / name)],
                       capture_output=True, text=True, check=True,
                       timeout=60)
    return re.sub(r".\x08", "", r.stdout)


def sections(name):
    """{SECTION HEADER: its text} of the rendered page."""
    out, cur = {}, None
    for line in rendered(name).splitlines():
        if line and not line[0].isspace() and line.isupper():
            cur = out.setdefault(line.strip(), [])
        elif cur is not None:
            cur.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


@pytest.mark.parametrize("name", PAGES)
def test_lint_clean(name):
    r = subprocess.run(["mandoc", "-Tlint", "-W", "warning", str(MAN / name)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        r.stdout + r.stderr


# -- otasdird.yaml(5) against daemon/cfg.c ----------------------------------

def cfg_keys():
    """Every key of the config as "section.key" (and "ldap.tls.ca_file"),
    from the static key tables in daemon/cfg.c."""
    src = (TOP / "daemon" / "cfg.c").read_text()
    tables = {}
    for m in re.finditer(r"static const struct cfg_key (\w+)\[\] = \{(.*?)\n\};",
                         src, re.S):
        rows = re.findall(r'\{ "(\w+)", (K_\w+),(.*?)\}', m.group(2), re.S)
        tables[m.group(1)] = [(n, t, rest) for n, t, rest in rows]
    assert "cfg_top_keys" in tables, "key tables not found in cfg.c"

    def walk(table, prefix):
        for name, typ, rest in tables[table]:
            full = prefix + name
            if typ == "K_MAP":
                sub = re.search(r"(cfg_\w+_keys)\s*$", rest.strip())
                assert sub, f"{full}: no sub-table"
                yield from walk(sub.group(1), full + ".")
            else:
                yield full
    keys = list(walk("cfg_top_keys", ""))
    assert len(keys) > 25, keys
    return keys


def man_keys():
    """{key: item head} of the keys otasdird.yaml(5) describes."""
    out = {}
    for it in items(page("otasdird.yaml.5")):
        m = re.match(r"Ic ([a-z_.]+) Pq (.*)$", it)
        if m:
            out[m.group(1)] = m.group(2)
    return out


@pytest.mark.parametrize("key", cfg_keys())
def test_every_config_key_is_described(key):
    assert key in man_keys(), f"{key} has no entry in otasdird.yaml.5"


def test_every_described_key_exists():
    assert set(man_keys()) <= set(cfg_keys())


def test_required_keys_and_defaults_match_the_example():
    """Each entry says "required" or "default X"; the defaults agree with
    conf/otasdird.yaml, which shows every key with its default (audit.path
    shows the recommended path instead of the default, syslog)."""
    example = yaml.safe_load((TOP / "conf" / "otasdird.yaml").read_text())
    src = (TOP / "daemon" / "cfg.c").read_text()
    required = set()
    for m in re.finditer(r"cfg_(\w+)_keys\[\] = \{(.*?)\n\};", src, re.S):
        for name in re.findall(r'\{ "(\w+)", K_\w+,[^}]*F_REQUIRED',
                               m.group(2)):
            required.add(f"{m.group(1)}.{name}")
    for key, head in man_keys().items():
        if key in required:
            assert "required" in head, key
            continue
        m = re.search(r"default (?:Pa )?(.+)$", head)
        assert m, f"{key}: no default in '{head}'"
        want = m.group(1)
        if key == "audit.path":
            assert want == "~"
            continue
        v = example
        for part in key.split("."):
            v = v[part]
        if v is None:
            got = "~"
        elif isinstance(v, bool):
            got = "true" if v else "false"
        elif isinstance(v, list):
            got = "[ " + " ".join(str(x) for x in v) + " ]" if v else "[ ]"
        else:
            got = str(v)
        man_default = want
        assert man_default == got, f"{key}: man says {man_default}, " \
            f"conf/otasdird.yaml {got}"
    assert required == {"ldap.uris", "ldap.bind_dn",
                        "ldap.bind_password_file", "ldap.people_dn"}


# -- otasctl(1) against src/otasctl.c ---------------------------------------

CTL = (TOP / "src" / "otasctl.c").read_text()


def ctl_commands():
    """(name, usage) of every row of the command table, read at test time
    (the table grows)."""
    table = re.search(r"static const struct command commands\[\] = \{(.*?)\n\};",
                      CTL, re.S)
    assert table, "command table not found in otasctl.c"
    rows = re.findall(r'\{\s*"([^"]+)",\s*\w+,\s*((?:"[^"]*"\s*)+)\}',
                      table.group(1))
    assert rows
    return [(n, "".join(re.findall(r'"([^"]*)"', u))) for n, u in rows]


@pytest.mark.parametrize("name,usage", ctl_commands())
def test_every_otasctl_command_is_described(name, usage):
    text = page("otasctl.1")
    words = name.split()
    # An item head: ".It Cm user add ..." or an Xo block starting with it.
    pat = r"^\.It Cm " + re.escape(name) + r"\b|^\.Cm " + \
        re.escape(name) + r"$"
    assert re.search(pat, text, re.M), f"'{name}' has no entry in otasctl.1"
    for opt in re.findall(r"--([a-z-]+)", usage):
        assert re.search(r"Fl \\-" + re.escape(opt.replace("-", "\\-")),
                         text), f"{name}: --{opt} not in otasctl.1"
    assert words


def test_global_options_are_described():
    main = CTL[CTL.index("\nmain(int argc"):]
    opts = re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', main)
    assert "socket" in opts
    text = page("otasctl.1")
    for o in opts:
        assert f"Fl \\-{o}" in text, o
    assert "OTASDIR_SOCKET" in text


def test_every_exit_status_is_described():
    codes = {int(v): n for n, v in
             re.findall(r"#define (EXIT_\w+)\s+(\d+)", CTL)}
    assert len(codes) >= 10
    section = sections("otasctl.1")["EXIT STATUS"]
    for code in codes:
        assert re.search(rf"^\s+{code}\s+\S", section, re.M), \
            f"exit status {code} ({codes[code]}) not in otasctl.1"


def test_every_error_reason_maps_to_a_described_status():
    """The reasons otasctl turns into exit statuses are named with them."""
    reasons = dict(re.findall(r'#define (REASON_\w+)\s+"(\w+)"',
                              (TOP / "src" / "proto.h").read_text()))
    pairs = re.findall(r"\{ (REASON_\w+), (EXIT_\w+) \}", CTL)
    codes = dict(re.findall(r"#define (EXIT_\w+)\s+(\d+)", CTL))
    assert pairs
    section = sections("otasctl.1")["EXIT STATUS"]
    for reason, exit_name in pairs:
        code = codes[exit_name]
        m = re.search(rf"^\s+{code}\s+(.*?)(?=^\s+\d+\s|\Z)", section,
                      re.M | re.S)
        assert m and reasons[reason] in m.group(1), \
            f"{reasons[reason]} not under exit status {code}"


# -- otasdird(8) against the daemon -----------------------------------------

def test_daemon_options_signals_and_exit_statuses():
    src = (TOP / "daemon" / "otasdird.c").read_text()
    text = page("otasdird.8")
    out = rendered("otasdird.8")
    for long, short in re.findall(
            r'\{ "([a-z-]+)", (?:no|required)_argument, NULL, \'(\w)\' \}',
            src):
        assert "Fl \\-" + long.replace("-", "\\-") in text, long
        assert f"Fl {short}" in text, short
    sigs = set(re.findall(r"\b(SIG[A-Z]+)\b", src))
    assert {"SIGHUP", "SIGTERM", "SIGINT", "SIGPIPE"} <= sigs
    section = sections("otasdird.8")["SIGNALS"]
    for s in sigs:
        assert s in section, f"{s} not in otasdird.8 SIGNALS"
    statuses = {0, 1} | {int(x) for x in
                         re.findall(r"return (\d+);", src)}
    statuses |= {int(x) for x in re.findall(r"#define EX_\w+\s+(\d+)", src)}
    exit_section = sections("otasdird.8")["EXIT STATUS"]
    for st in statuses:
        assert re.search(rf"^\s+{st}\s+\S", exit_section, re.M), st


def test_every_error_reason_with_its_code():
    proto = (TOP / "src" / "proto.h").read_text()
    codes = dict(re.findall(r"#define (RPC_\w+)\s+\((-\d+)\)", proto))
    reasons = dict(re.findall(r'#define REASON_(\w+)\s+"(\w+)"', proto))
    section = sections("otasdird.8")["PROTOCOL ERRORS"]
    assert len(reasons) >= 12
    for key, reason in reasons.items():
        code = codes.get("RPC_" + key) or {
            "SEAT_LIMIT": codes["RPC_SEAT_LIMIT"],
            "CONFIRMATION": codes["RPC_CONFIRMATION"],
        }.get(key)
        m = re.search(rf"^\s+{reason}\s+(-\d+):", section, re.M)
        assert m, f"{reason} not in otasdird.8"
        if code is not None:
            assert m.group(1) == code, reason
    for std in ("-32700", "-32600", "-32601", "-32602", "-32603"):
        assert std in section, std


def test_environment_and_files():
    out = rendered("otasdird.8")
    for var in ("LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET",
                "CREDENTIALS_DIRECTORY", "LDAPNOINIT"):
        assert var in out, var
    proto = (TOP / "src" / "proto.h").read_text()
    for path in re.findall(r'#define OTASDIR_DEFAULT_\w+\s+"([^"]+)"',
                           proto):
        assert path in out, path
        assert path in rendered("otasdird.yaml.5"), path
