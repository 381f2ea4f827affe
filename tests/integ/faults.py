"""Misbehaving directories for the resilience tests: servers on loopback
that accept TCP and then say nothing, or say garbage, and a proxy in front
of a real slapd that can go silent mid-conversation (a network partition
that drops packets instead of resetting).  Also frozen(), which stops a
process with SIGSTOP for the length of a with-block.

    with SilentServer() as s:          # accepts, never answers
        Daemon(..., uris=[s.uri])
    with GarbageServer("reply") as g:  # answers each request with junk
        ...
    with Proxy(slapd.port) as p:       # forwards until p.go_silent()
        ...
    with frozen(slapd.pid()):
        ...                            # slapd takes no CPU meanwhile

Standard library only; every server runs on daemon threads and stops
when its with-block ends.
"""

import contextlib
import os
import random
import select
import signal
import socket
import threading
from pathlib import Path


class _Server:
    """A TCP listener on 127.0.0.1 that hands each connection to
    self.handle(conn) on a thread of its own."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.accepted = 0
        self.stopping = threading.Event()
        self.conns = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _accept_loop(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.1)
            if not r:
                continue
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,),
                             daemon=True).start()

    def _run(self, conn):
        try:
            self.handle(conn)
        except OSError:
            pass

    def handle(self, conn):
        raise NotImplementedError

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
            self.conns.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentServer(_Server):
    """Accepts TCP connections, reads whatever comes, never writes."""

    def handle(self, conn):
        conn.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue


# Byte strings a broken or hostile server might send.
GARBAGE = [
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    b"\x00" * 64,
    b"\xff" * 64,
    # A BER SEQUENCE announcing 4 GiB, then nothing more.
    b"\x30\x84\xff\xff\xff\xff",
    # A BindResponse for message id 1 whose result code has a bogus tag
    # is not here: libldap reads it as a successful bind, which makes it
    # a (strange) server that works, not garbage.
    # A truncated LDAPMessage.
    b"\x30\x0c\x02\x01\x01\x61",
    # A well-formed LDAPMessage for a message id never asked.
    b"\x30\x0c\x02\x02\x7f\xff\x61\x07\x0a\x01\x00\x04\x00\x04\x00",
]


def garbage_env():
    """Environment for a daemon that will meet a GarbageServer: under the
    sanitizers, LeakSanitizer is told about libldap's own leak on
    undecodable answers (tests/integ/lsan.supp), with the slow unwinder
    so that its stacks reach into libldap.  Empty otherwise."""
    if os.environ.get("OTASDIR_SANITIZED") != "1":
        return {}
    supp = Path(__file__).resolve().parent / "lsan.supp"
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (asan + ":" if asan else "") +
            "fast_unwind_on_malloc=0",
            "LSAN_OPTIONS": f"suppressions={supp}:print_suppressions=0"}


def undecodable_answer(request):
    """A well-framed LDAPMessage answering request's message id with an
    empty BindResponse: libldap routes it to the request, and then cannot
    parse its result.  None if request does not start like an
    LDAPMessage."""
    if len(request) < 5 or request[0] != 0x30:
        return None
    i = 2
    if request[1] & 0x80:
        i += request[1] & 0x7f
    if len(request) < i + 2 or request[i] != 0x02:
        return None
    n = request[i + 1]
    msgid = request[i + 2:i + 2 + n]
    body = bytes([0x02, n]) + msgid + b"\x61\x00"
    return bytes([0x30, len(body)]) + body


class GarbageServer(_Server):
    """Answers with garbage.  mode "greet": garbage as soon as a client
    connects; "reply": garbage in answer to each request; "random": random
    bytes in answer to each request; "undecodable": an answer to each
    request's message id that cannot be decoded.  Each connection is
    closed after close_after answers (None: kept open)."""

    def __init__(self, mode="reply", close_after=None, seed=None):
        super().__init__()
        self.mode = mode
        self.close_after = close_after
        self.rng = random.Random(seed)

    def _junk(self):
        if self.mode == "random":
            return bytes(self.rng.getrandbits(8)
                         for _ in range(self.rng.randint(1, 512)))
        return self.rng.choice(GARBAGE)

    def handle(self, conn):
        conn.settimeout(0.2)
        sent = 0
        if self.mode == "greet":
            conn.sendall(self._junk())
            sent += 1
        while not self.stopping.is_set():
            if self.close_after is not None and sent >= self.close_after:
                conn.close()
                return
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            if self.mode == "undecodable":
                conn.sendall(undecodable_answer(data) or self._junk())
            else:
                conn.sendall(self._junk())
            sent += 1


class Proxy(_Server):
    """Forwards TCP to 127.0.0.1:target_port until go_silent(): from then
    on it neither forwards nor closes anything (bytes are read and
    dropped), as a network that lost its route would.  go_loud() forwards
    again, on new connections; the silenced ones stay dead (their bytes
    were lost)."""

    def __init__(self, target_port):
        super().__init__()
        self.target = ("127.0.0.1", target_port)
        self.silent = threading.Event()

    def go_silent(self):
        self.silent.set()

    def go_loud(self):
        self.silent.clear()

    def handle(self, conn):
        if self.silent.is_set():
            self._swallow([conn])
            return
        up = socket.create_connection(self.target, timeout=5)
        with self.lock:
            self.conns.append(up)
        pair = {conn: up, up: conn}
        while not self.stopping.is_set():
            if self.silent.is_set():
                self._swallow([conn, up])
                return
            r, _, _ = select.select(list(pair), [], [], 0.05)
            for s in r:
                data = s.recv(65536)
                if not data:
                    conn.close()
                    up.close()
                    return
                if not self.silent.is_set():
                    pair[s].sendall(data)

    def _swallow(self, socks):
        """Read and drop until the end of the test (never close: a
        partition does not send FIN or RST)."""
        socks = list(socks)
        while not self.stopping.is_set() and socks:
            r, _, _ = select.select(socks, [], [], 0.1)
            for s in r:
                try:
                    if not s.recv(65536):
                        socks.remove(s)
                except OSError:
                    socks.remove(s)


@contextlib.contextmanager
def frozen(pid):
    """SIGSTOP pid for the with-block; SIGCONT when it ends, whatever
    happens (a stopped slapd would wedge every later test)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
