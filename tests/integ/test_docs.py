"""docs/protocol.md agrees with the code: every method of the dispatch
table (daemon/method.c) has a section with an example, every section is
a real method, every error reason and code of src/proto.h is listed, the
examples are real JSON-RPC, and otasctl's exit statuses are documented.
No daemon needed."""

import json
import re

import pytest

from slapdenv import TOP

DOC = TOP / "docs" / "protocol.md"


def doc_text():
    return DOC.read_text()


def table_methods():
    """The method names of the dispatch table: its rows start with
    `{ "name",` and the names have a dot (the param tables' rows do
    not)."""
    text = (TOP / "daemon" / "method.c").read_text()
    start = text.index("methods[] = {")
    body = text[start:text.index("};", start)]
    names = re.findall(r'\{\s*"([a-z]+\.[a-z_]+)",', body)
    assert len(names) >= 13, names
    return names


def sections():
    """method name -> the text of its `### `name`` section."""
    text = doc_text()
    heads = list(re.finditer(r"^### `([^`]+)`\s*$", text, re.M))
    out = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        nxt = re.search(r"^## ", text[m.end():end], re.M)
        if nxt:
            end = m.end() + nxt.start()
        out[m.group(1)] = text[m.end():end]
    return out


def proto_defines(prefix):
    text = (TOP / "src" / "proto.h").read_text()
    return re.findall(rf"#define\s+{prefix}\w*\s+(\S+)", text)


@pytest.mark.parametrize("method", table_methods())
def test_every_method_has_a_section_with_an_example(method):
    sec = sections()
    assert method in sec, f"docs/protocol.md has no section for {method}"
    body = sec[method]
    reqs = [json.loads(line[4:]) for line in body.splitlines()
            if line.startswith("--> ")]
    reps = [json.loads(line[4:]) for line in body.splitlines()
            if line.startswith("<-- ")]
    assert reqs, f"{method}: no example request"
    assert len(reqs) == len(reps), f"{method}: a request without a reply"
    for req, rep in zip(reqs, reps):
        assert req["jsonrpc"] == "2.0" and rep["jsonrpc"] == "2.0"
        assert req["method"] == method
        assert rep["id"] == req["id"]
        assert ("result" in rep) != ("error" in rep)
        if "error" in rep:
            assert isinstance(rep["error"]["code"], int)
            assert isinstance(rep["error"]["message"], str)


def test_every_section_is_a_real_method():
    assert set(sections()) <= set(table_methods())


@pytest.mark.parametrize("reason", [r.strip('"') for r in
                                    proto_defines("REASON_")])
def test_every_error_reason_is_documented(reason):
    assert f"`{reason}`" in doc_text()


@pytest.mark.parametrize("code", [c.strip("()") for c in
                                  proto_defines("RPC_")])
def test_every_error_code_is_documented(code):
    assert re.search(rf"^\| {re.escape(code)} \|", doc_text(), re.M), code


def test_every_reason_is_in_the_error_table_with_its_code():
    text = doc_text()
    src = (TOP / "src" / "proto.h").read_text()
    for name, code in re.findall(r"#define\s+RPC_(\w+)\s+\((-320\d\d)\)",
                                 src):
        m = re.search(rf'#define\s+REASON_{name}\s+"(\w+)"', src)
        if m is None:
            # the codes whose REASON_ names differ
            continue
        assert re.search(rf"^\| {code} \| `{m.group(1)}` \|", text, re.M), \
            (code, m.group(1))


def test_otasctl_exit_statuses_are_documented():
    src = (TOP / "src" / "otasctl.c").read_text()
    codes = {int(v) for v in re.findall(r"#define\s+EXIT_\w+\s+(\d+)", src)}
    assert codes == set(range(0, 11))
    text = doc_text()
    for code in codes:
        assert re.search(rf"^\| {code} \| ", text, re.M), code


def test_otasctl_commands_are_documented():
    src = (TOP / "src" / "otasctl.c").read_text()
    table = src[src.index("commands[] = {"):]
    usages = re.findall(r'\{ "([a-z ]+)", cmd_\w+,', table)
    assert "user list" in usages and "user import" in usages
    text = doc_text()
    for name in usages:
        assert re.search(rf"^  {name}\b", text, re.M), name
