"""The socket protocol: framing, JSON-RPC 2.0 strictness and bad input.

Every bad request gets the right JSON-RPC error (or, for an over-long
line without a newline, an error and a clean close) while other clients
are served all the while.
"""

import json
import socket
import threading
import time

import pytest

from otasenv import Client, Daemon, SLOW


def ping_ok(daemon):
    with daemon.client(timeout=5 * SLOW) as c:
        assert c.result("server.ping") == "pong"


def raw(client, data):
    """Send raw bytes, return the next reply line parsed."""
    client.send(data)
    return client.recv_line()


def test_ping_status_whoami(client):
    assert client.result("server.ping") == "pong"
    st = client.result("server.status")
    assert st["version"]
    assert st["directory"] == "up"
    assert st["seats"] == 25
    assert st["seats_used"] >= 1
    assert isinstance(st["uptime_s"], (int, float))
    who = client.result("auth.whoami")
    assert who == {"kind": "peer", "role": "superadmin", "uid": 0}


@pytest.mark.parametrize("idval", [7, "abc", "", 0, -3, 1.5, None])
def test_id_is_echoed(client, idval):
    client.send(json.dumps({"jsonrpc": "2.0", "id": idval,
                            "method": "server.ping"}) + "\n")
    rep = client.recv_line()
    assert rep == {"jsonrpc": "2.0", "id": idval, "result": "pong"}


@pytest.mark.parametrize("line,code", [
    (b"{bad json\n", -32700),
    (b"\x00\x01\x02garbage\n", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"server.ping"} trailing\n', -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"server.\xff\xfe"}\n', -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"\xc0\xafping"}\n', -32700),
    (b'"just a string"\n', -32600),
    (b"42\n", -32600),
    (b"[]\n", -32600),
    (b'{"jsonrpc":"1.0","id":1,"method":"server.ping"}\n', -32600),
    (b'{"id":1,"method":"server.ping"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":5}\n', -32600),
    (b'{"jsonrpc":"2.0","id":{"a":1},"method":"server.ping"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"server.ping","params":3}\n',
     -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"server.ping","extra":1}\n',
     -32600),
    (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"server.ping"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"user.get",'
     b'"params":{"username":"a","username":"b"}}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"user.get",'
     b'"params":{"username":"adm\\u0000in"}}\n', -32700),
])
def test_bad_requests(daemon, client, line, code):
    rep = raw(client, line)
    assert "error" in rep, rep
    assert rep["error"]["code"] == code, rep
    assert isinstance(rep["error"]["message"], str) and rep["error"]["message"]
    # The connection stays usable and other clients are served.
    assert client.result("server.ping") == "pong"
    ping_ok(daemon)


def test_invalid_request_echoes_id_when_readable(client):
    rep = raw(client, b'{"jsonrpc":"1.0","id":99,"method":"server.ping"}\n')
    assert rep["id"] == 99 and rep["error"]["code"] == -32600


def test_unknown_method(client):
    rep = client.call("no.such.method")
    assert rep["error"]["code"] == -32601
    assert rep["id"] == 1


def test_params_must_be_named(client):
    rep = client.call("user.get", ["admin"])
    assert rep["error"]["code"] == -32602
    assert rep["error"]["data"]["field"] == "params"


def test_unknown_and_mistyped_params(client):
    rep = client.call("server.ping", {"x": 1})
    assert rep["error"]["code"] == -32602
    assert rep["error"]["data"]["field"] == "x"
    rep = client.call("user.get", {"username": 5})
    assert rep["error"]["code"] == -32602
    assert rep["error"]["data"]["field"] == "username"
    rep = client.call("user.get", {})
    assert rep["error"]["code"] == -32602
    assert rep["error"]["data"]["field"] == "username"


def test_deep_nesting_refused_fast(slapd, tmpdir_short):
    # A line cap large enough that the nesting check itself is what
    # refuses 100,000 brackets.
    d = Daemon(slapd, tmpdir_short,
               extra={"socket": {"max_request_bytes": 1 << 20}})
    d.start()
    try:
        with d.client() as c:
            t0 = time.monotonic()
            rep = raw(c, b"[" * 100000 + b"]" * 100000 + b"\n")
            assert rep["error"]["code"] == -32700
            assert "nesting" in rep["error"]["message"]
            assert time.monotonic() - t0 < 5 * SLOW
            rep = raw(c, b'{"a":' * 40 + b"1" + b"}" * 40 + b"\n")
            assert rep["error"]["code"] == -32700
            # 32 levels are fine (a params object 31 deep is only a
            # wrong param)
            rep = raw(c, b'{"jsonrpc":"2.0","id":1,"method":"server.ping",'
                      b'"params":{"x":' + b"[" * 30 + b"]" * 30 + b"}}\n")
            assert rep["error"]["code"] == -32602
        ping_ok(d)
    finally:
        d.stop()


def test_over_cap_nesting_is_an_error_too(daemon, client):
    rep = raw(client, b"[" * 100000 + b"]" * 100000 + b"\n")
    assert rep["error"]["code"] == -32600
    ping_ok(daemon)


def test_notifications_get_no_reply(client):
    client.send(b'{"jsonrpc":"2.0","method":"server.ping"}\n')
    client.send(b'{"jsonrpc":"2.0","method":"no.such"}\n')
    client.send(b'{"jsonrpc":"2.0","id":"after","method":"server.ping"}\n')
    rep = client.recv_line()
    assert rep == {"jsonrpc": "2.0", "id": "after", "result": "pong"}


def test_batch(client):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "server.ping"},
        {"jsonrpc": "2.0", "method": "server.ping"},          # notification
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        5,
        {"jsonrpc": "2.0", "id": 3, "method": "auth.whoami"},
    ]
    rep = raw(client, json.dumps(batch) + "\n")
    assert isinstance(rep, list)
    by_id = {json.dumps(r["id"]): r for r in rep}
    assert len(rep) == 4
    assert by_id["1"]["result"] == "pong"
    assert by_id["2"]["error"]["code"] == -32601
    assert by_id["null"]["error"]["code"] == -32600
    assert by_id["3"]["result"]["kind"] == "peer"


def test_batch_of_notifications_gets_nothing(client):
    client.send(json.dumps([{"jsonrpc": "2.0", "method": "server.ping"}] * 3)
                + "\n")
    client.send(b'{"jsonrpc":"2.0","id":"x","method":"server.ping"}\n')
    assert client.recv_line()["id"] == "x"


def test_crlf_and_blank_lines(client):
    client.send(b'\n\r\n{"jsonrpc":"2.0","id":5,"method":"server.ping"}\r\n')
    assert client.recv_line() == {"jsonrpc": "2.0", "id": 5,
                                  "result": "pong"}


def test_long_line_gets_error_then_close(daemon, client):
    big = b'{"jsonrpc":"2.0","id":1,"method":"server.ping","params":{"x":"' \
        + b"a" * 70000 + b'"}}\n'
    rep = raw(client, big)
    assert rep["error"]["code"] == -32600
    assert "longer than 65536" in rep["error"]["message"]
    # closed after the error line (a reset, if our unread bytes were
    # still queued at the daemon when it closed, is a close too)
    try:
        assert client.recv_line() is None
    except ConnectionResetError:
        pass
    ping_ok(daemon)


def test_long_line_without_newline_closes(daemon):
    """100 MB without a newline: an error line, then a clean close, and
    the daemon's memory does not follow."""
    c = daemon.client()
    stop = threading.Event()
    sent = [0]

    def writer():
        chunk = b"x" * 65536
        try:
            while not stop.is_set() and sent[0] < 100 * 1024 * 1024:
                c.sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    t = threading.Thread(target=writer)
    t.start()
    rep = c.recv_line()
    assert rep["error"]["code"] == -32600
    assert "closing" in rep["error"]["message"]
    # then EOF
    c.sock.settimeout(10 * SLOW)
    try:
        while c.sock.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    stop.set()
    t.join()
    c.close()
    ping_ok(daemon)
    rss = int([l for l in open(f"/proc/{daemon.proc.pid}/status")
               if l.startswith("VmRSS")][0].split()[1])
    assert rss < 200 * 1024, f"RSS {rss} kB after a 100 MB line"


def test_half_line_then_gone(daemon):
    for _ in range(20):
        c = daemon.client()
        c.send(b'{"jsonrpc":"2.0","id":1,"meth')
        c.close()
    ping_ok(daemon)


def test_pipelined_requests_answered_by_id(client):
    n = 300
    for i in range(n):
        client.send(json.dumps({"jsonrpc": "2.0", "id": i,
                                "method": "server.ping"}) + "\n")
    seen = set()
    for _ in range(n):
        rep = client.recv_line()
        assert rep["result"] == "pong"
        seen.add(rep["id"])
    assert seen == set(range(n))


def test_half_close_still_answered(daemon):
    c = daemon.client()
    c.send(b'{"jsonrpc":"2.0","id":1,"method":"server.ping"}\n'
           b'{"jsonrpc":"2.0","id":2,"method":"license.get"}\n')
    c.sock.shutdown(socket.SHUT_WR)
    ids = set()
    while True:
        rep = c.recv_line()
        if rep is None:
            break
        ids.add(rep["id"])
    assert ids == {1, 2}
    c.close()


def test_many_connections_opened_and_dropped(daemon):
    for _ in range(2000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(daemon.sock))
        s.close()
    ping_ok(daemon)
    with daemon.client() as c:
        st = c.result("server.status")
        assert st["connections"] < 50
