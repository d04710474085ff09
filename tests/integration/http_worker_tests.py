"""baton-http exposed to hostile clients: a pipelining client that never
reads, slow headers and bodies, ambiguous request framing (smuggling), and
HTTP/1.0 keep-alive (with ab), each against a real worker behind a real
batond or listening by itself (--listen), over loopback only.

The limits tested are the constants at the top of worker/http.c.
"""
import collections
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time

from harness import Batond, bin_path, http_get, read_response, skip, test, wait_until, web_config
from upgrade_tests import ab_available, program, run_ab, status

WRITE_TIMEOUT = 10    # WRITE_TIMEOUT_SEC
REQUEST_TIMEOUT = 10  # REQUEST_TIMEOUT_SEC
REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def web_conns(b):
    """Connections batond counts on the RUNNING web workers (each ends with DONE)."""
    return sum(w["conns"] for w in program(status(b), "web")["workers"] if w["state"] == "RUNNING")


@test
def http_worker_pipelining_client_that_never_reads_is_bounded_and_closed(td):
    """20,000 pipelined requests for a 4 KiB page, none of the answers read:
    without a limit the worker would buffer 80 MB of responses.  It must
    stop reading instead, keep serving others, and close the connection
    once nothing could be written for WRITE_TIMEOUT."""
    script = td.file("big.sh", f"#!/bin/sh\nexec {bin_path('baton-http')} --body {'x' * 4096}\n", 0o755)
    b = Batond(td, web_config(workers=1, command=script), wait_ready=1)
    port = b.port("v4")
    pid = list(b.ready_pids("web"))[0]
    assert len(http_get(("127.0.0.1", port))[2]) == 4096
    rss0 = peak = rss_kib(pid)

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    t0 = time.monotonic()
    s.setblocking(False)
    data, sent, stalled = REQ * 20000, 0, None
    # Send until all is out or the worker has stopped taking more for 2 s
    # (bounded: 30 s at most).
    while sent < len(data) and time.monotonic() - t0 < 30:
        try:
            sent += s.send(data[sent:sent + 65536])
            stalled = None
        except BlockingIOError:
            stalled = stalled or time.monotonic()
            if time.monotonic() - stalled > 2:
                break
            select.select([], [s], [], 0.1)
        peak = max(peak, rss_kib(pid))
    # Another client is served while the worker holds the stuck connection.
    status_, headers, body = http_get(("127.0.0.1", port))
    assert status_ == 200 and int(headers["x-baton-pid"]) == pid and len(body) == 4096
    assert web_conns(b) == 1
    # The connection is closed WRITE_TIMEOUT after the last byte the worker
    # could write, which is no sooner than the connect: allow 30 s more.
    closed = None
    while time.monotonic() - t0 < WRITE_TIMEOUT + 30:
        peak = max(peak, rss_kib(pid))
        if web_conns(b) == 0:
            closed = time.monotonic() - t0
            break
        time.sleep(0.2)
    s.close()
    assert peak - rss0 < 32 * 1024, f"worker RSS grew {rss0} -> {peak} KiB"
    assert closed is not None, f"the connection was not closed within {WRITE_TIMEOUT + 30} s"
    assert closed > WRITE_TIMEOUT - 3, f"closed after {closed:.1f} s, before the write timeout"
    assert http_get(("127.0.0.1", port))[0] == 200
    assert b.ready_pids("web") == {pid: 0}, b.tail()
    print(f"    sent {sent // len(REQ)} requests unread; worker RSS {rss0} -> peak {peak} KiB; "
          f"closed after {closed:.1f} s")
    assert "worker exited" not in b.log(), b.tail()  # no worker crashed on the way
    assert b.stop() == 0


@test
def http_worker_slow_clients_are_closed_at_the_request_deadline(td):
    """A header sent one byte every 0.5 s is closed REQUEST_TIMEOUT after its
    first byte (with a 408), a body trickled the same way REQUEST_TIMEOUT
    after its header; an idle kept-alive connection is not touched, and
    other clients are served meanwhile."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    port = b.port("v4")
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    idle.sendall(REQ)
    assert read_response(idle)[0] == 200

    head = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = socket.create_connection(("127.0.0.1", port), timeout=10)
    body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    assert read_response(body)[0] == 405  # answered; its body is still to come
    header_bytes = iter(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100)
    t0 = time.monotonic()
    clients = {head: [header_bytes, None, b""], body: [iter(b"b" * 1000), None, b""]}
    served = 0
    # One byte to each open client every 0.5 s, for at most 40 rounds.
    for _ in range(40):
        for s, st in clients.items():
            if st[1] is not None:
                continue
            readable, _, _ = select.select([s], [], [], 0)
            try:
                if not readable:
                    s.send(bytes([next(st[0])]))
                elif chunk := s.recv(4096):
                    st[2] += chunk  # the 408: its close comes next
                else:
                    st[1] = time.monotonic() - t0
            except (BrokenPipeError, ConnectionResetError):
                st[1] = time.monotonic() - t0
        if all(st[1] is not None for st in clients.values()):
            break
        if http_get(("127.0.0.1", port), timeout=10)[0] == 200:
            served += 1
        time.sleep(0.5)
    (_, head_closed, head_got), (_, body_closed, body_got) = clients[head], clients[body]
    head.close()
    body.close()
    for what, when in (("slow header", head_closed), ("slow body", body_closed)):
        assert when is not None, f"{what}: still open after 20 s"
        # The body's clock starts when its header is in, just before t0.
        assert REQUEST_TIMEOUT - 3 < when < REQUEST_TIMEOUT + 6, f"{what}: closed after {when:.1f} s"
    assert head_got.startswith(b"HTTP/1.1 408 ") or head_got == b"", head_got
    assert body_got == b"", body_got  # its answer was the 405 already read
    assert served >= 10, served
    # The idle kept-alive connection was not touched by the deadline.
    idle.sendall(REQ)
    assert read_response(idle)[0] == 200
    idle.close()
    print(f"    slow header closed after {head_closed:.1f} s, slow body after {body_closed:.1f} s; "
          f"{served} other requests served meanwhile")
    assert "worker exited" not in b.log(), b.tail()  # no worker crashed on the way
    assert b.stop() == 0


def closed_after(s, timeout=10):
    """Read what is left on s until the peer closes it; returns those bytes,
    or raises if it is still open after timeout seconds."""
    s.settimeout(timeout)
    data = b""
    try:
        while len(data) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        pass
    raise AssertionError(f"still open after {timeout} s; read {data[:200]!r}")


def statuses(s, n):
    """Status codes of the next n responses on s (read_response() would drop
    whatever follows the first one in the same read)."""
    data, codes = b"", []
    while len(codes) < n:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {codes}: {data!r}")
            data += chunk
            continue
        head = data[:end].decode()
        length = int(re.search(r"^content-length:\s*(\d+)", head, re.M | re.I).group(1))
        if len(data) < end + 4 + length:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed in a body after {codes}")
            data += chunk
            continue
        codes.append(int(head.split()[1]))
        data = data[end + 4 + length:]
    return codes


def exchange(port, request, timeout=10):
    """Send request on a new connection; return (status, headers, the
    connection's socket) after reading one response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    status_, headers, _ = read_response(s)
    return status_, headers, s


@test
def http_worker_rejects_ambiguous_framing(td):
    """Anything two HTTP parsers could frame differently (the stuff of
    request smuggling, RFC 9112 §6.3, §5.1, §2.2, §3.2) gets 400 and a
    closed connection; nothing after it on the connection is answered."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    port = b.port("v4")
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = [
        ("differing Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc"),
        # Equal repeated values: RFC 9110 §8.6 lets a recipient merge them or
        # reject the message; baton-http rejects them, so that a repeated or
        # listed length is never read two ways.
        ("equal Content-Length twice", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        ("Content-Length list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"),
        ("Transfer-Encoding space colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("Content-Length space colon", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc"),
        ("tab before colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: b\r\n\r\n"),
        ("Content-Length non-digit", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc"),
        ("Content-Length plus sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"),
        ("Content-Length negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("Content-Length hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc"),
        ("Content-Length empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"),
        ("Content-Length huge", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        ("Transfer-Encoding and Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding not ending in chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("chunked twice", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("bare LF line end", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rContent-Length: 3\r\n\r\nabc"),
        ("folded line", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Content-Length: 3\r\n\r\nabc"),
        ("control character", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n"),
        ("no colon", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length 3\r\n\r\nabc"),
        ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
        ("request line extra word", b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n"),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
    ]
    for name, request in bad:
        status_, headers, s = exchange(port, request + smuggled)
        rest = closed_after(s)
        s.close()
        assert status_ == 400 and headers.get("connection") == "close", (name, status_, headers)
        assert rest == b"", (name, rest)  # the smuggled request got no answer
    # A chunked body is well-formed but not decoded: 501, then closed, as
    # the next request could not be found.
    status_, headers, s = exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
    assert status_ == 501 and closed_after(s) == b"", status_
    s.close()
    # The same connection goes on after a body that is framed right.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = b"GET /in-the-body HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s%s" % (len(body), body, REQ))
    assert statuses(s, 2) == [405, 200]  # not the 404 of /in-the-body
    s.close()
    assert "worker exited" not in b.log(), b.tail()  # no worker crashed on the way
    print(f"    {len(bad)} malformed framings: 400 and closed, nothing after them answered")
    assert b.stop() == 0


class Direct:
    """baton-http --listen on a free loopback port, without batond; killed
    by PID when the test ends."""

    def __init__(self, td, *args):
        self.logpath = os.path.join(td.path, "direct.log")
        self.logf = open(self.logpath, "w")
        self.proc = None
        td.procs.append(self)
        for _ in range(5):  # a port probed free may be taken before we bind it
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
            probe.close()
            self.proc = subprocess.Popen([bin_path("baton-http"), "--listen", f"tcp:127.0.0.1:{self.port}", *args],
                                         stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: self.proc.poll() is not None or self.answers(), 10, "baton-http --listen")
            except AssertionError:
                raise AssertionError("baton-http --listen never answered:\n" + self.tail())
            if self.proc.poll() is None:
                return
        raise AssertionError("baton-http --listen found no free port:\n" + self.tail())

    def answers(self):
        try:
            return http_get(("127.0.0.1", self.port), timeout=2)[0] == 200
        except OSError:
            return False

    def tail(self, n=30):
        with open(self.logpath) as f:
            return "\n".join(f.read().splitlines()[-n:])

    def kill_all(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


@test
def http_worker_http10_keepalive(td):
    """HTTP/1.0 with Connection: keep-alive is told the connection stays
    (Connection: keep-alive) and serves the next request; without it the
    connection closes after the response.  ab, an HTTP/1.0 client, with
    and without -k, through batond."""
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    status_, headers, s = exchange(port, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert status_ == 200 and headers.get("connection") == "keep-alive", headers
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status2, headers2, _ = read_response(s)
    assert status2 == 200 and headers2["x-baton-pid"] == headers["x-baton-pid"], headers2
    s.close()
    status_, headers, s = exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert status_ == 200 and headers.get("connection") == "close", headers
    assert closed_after(s) == b""
    s.close()
    # HTTP/1.1 keeps the connection without being told, and is not told.
    status_, headers, s = exchange(port, REQ)
    assert status_ == 200 and "connection" not in headers, headers
    s.sendall(REQ)
    assert read_response(s)[0] == 200
    s.close()

    if ab_available():
        for keepalive in (True, False):
            r = run_ab(port, 200, 4, keepalive, seconds=60)
            assert r["complete"] == 200 and r["failed"] == 0 and r["non2xx"] == 0, r["out"]
            assert r["keepalive"] == (200 if keepalive else 0), r["out"]
        print("    ab -k and ab: 200 requests each, 0 failed, 0 non-2xx")
    assert "worker exited" not in b.log(), b.tail()  # no worker crashed on the way
    assert b.stop() == 0


@test
def http_worker_direct_ab_keepalive(td):
    """The issue's reproduction: ab -k against baton-http --listen (no
    batond) completes instead of waiting for a close that never comes."""
    ab_available()
    d = Direct(td)
    r = run_ab(d.port, 1, 1, True, seconds=30, timeout=3)
    assert r["complete"] == 1 and r["failed"] == 0 and r["keepalive"] == 1, r["out"]
    r = run_ab(d.port, 200, 4, True, seconds=60)
    assert r["complete"] == 200 and r["failed"] == 0 and r["non2xx"] == 0, r["out"]
    assert r["keepalive"] == 200, r["out"]
    assert d.proc.poll() is None, d.tail()
    print("    ab -k against baton-http --listen: 1 and 200 requests, all kept alive, 0 failed")


def read_to_eof(s):
    """What s receives until EOF; fails at its timeout."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no EOF within the timeout after {data!r}")
        if not chunk:
            return data
        data += chunk


def handed_over(td, cid):
    """baton-http alone, with the test as its batond: one TCP connection
    handed over and acknowledged, the test keeping its own copy of the
    socket as batond does until it reads the ACK. (client, server copy)."""
    from go_worker_tests import ACK, READY, FakeBatond, conn_msg
    w = FakeBatond(td, bin_path("baton-http"))
    w.recv(READY)
    with socket.create_server(("127.0.0.1", 0)) as ls:
        client = socket.create_connection(ls.getsockname(), timeout=5)
        server, _ = ls.accept()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    w.send(conn_msg([(cid, b"v4", b"127.0.0.1:5555")]), [server.fileno()])
    w.recv(ACK)
    return client, server


@test
def http_worker_sends_fin_while_batond_holds_its_copy(td):
    """batond closes its copy of a connection only once it has read the
    worker's ACK, and a close(2) sends no FIN while another copy is open.
    So baton-http shuts the write side down before it closes a connection
    after a `Connection: close` response: here the test is batond and keeps
    its copy open throughout, and the client still reads the whole response
    and then EOF."""
    client, server = handed_over(td, 7)
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = read_to_eof(client)  # within the client's 5 s timeout
        assert data.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in data, data
    finally:
        client.close()
        server.close()


@test
def http_worker_keeps_the_listeners_tcp_options(td):
    """A connection from batond carries the options of its listener, as the
    operator set them ([listener] tcp_nodelay = no here): baton-http sets
    none of its own.  The test is batond and keeps its copy of the socket,
    so it reads the option the worker left on it after a response."""
    client, server = handed_over(td, 9)  # TCP_NODELAY off
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # kept alive
        status, headers, body = read_response(client)
        assert status == 200, (status, headers)
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    finally:
        client.close()
        server.close()


class Strace:
    """strace -p PID logging the given system calls, until stop()."""

    def __init__(self, td, pid, calls):
        if not shutil.which("strace"):
            skip("strace is not installed (apt-get install strace)")
        self.out = os.path.join(td.path, f"strace.{pid}.{len(os.listdir(td.path))}")
        self.proc = td.spawn(["strace", "-qq", "-o", self.out, "-e", "trace=" + ",".join(calls),
                              "-p", str(pid)], stderr=subprocess.DEVNULL)

        def attached():
            with open(f"/proc/{pid}/status") as f:
                return int(re.search(r"^TracerPid:\s+(\d+)", f.read(), re.M).group(1)) != 0
        wait_until(attached, 10, "strace attached")

    def stop(self):
        """{syscall: calls} made since the start."""
        self.proc.send_signal(signal.SIGINT)  # strace detaches
        self.proc.wait(10)
        with open(self.out) as f:
            return collections.Counter(m.group(1) for m in re.finditer(r"^(\w+)\(", f.read(), re.M))


def handed_with_request_waiting(td, cid, request):
    """A fake batond, a baton-http worker behind it and a TCP connection
    whose client has sent request before the handoff: (worker, client,
    server copy), not yet handed."""
    from go_worker_tests import READY, FakeBatond
    w = FakeBatond(td, bin_path("baton-http"))
    w.recv(READY)
    with socket.create_server(("127.0.0.1", 0)) as ls:
        client = socket.create_connection(ls.getsockname(), timeout=5)
        server, _ = ls.accept()
    client.sendall(request)
    assert select.select([server], [], [], 5)[0], "the request never reached the server socket"
    return w, client, server


@test
def http_worker_serves_a_waiting_request_without_polling(td):
    """A connection whose request is already in when batond hands it over
    (the usual case: the client sent it while batond accepted) is read at
    once, answered and closed with no epoll_ctl at all, and baton-http sets
    no fd flag on it (every read and write says MSG_DONTWAIT itself): the
    test is batond and keeps its copy, and its copy is still blocking."""
    from go_worker_tests import ACK, DONE, conn_msg
    w, client, server = handed_with_request_waiting(
        td, 11, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    try:
        trace = Strace(td, w.proc.pid, ["epoll_ctl", "fcntl", "ioctl", "recvfrom", "readv", "writev"])
        w.send(conn_msg([(11, b"v4", b"127.0.0.1:5555")]), [server.fileno()])
        w.recv(ACK)
        data = read_to_eof(client)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello from baton\n"), data
        w.recv(DONE)
        calls = trace.stop()
        assert calls["epoll_ctl"] == 0 and calls["fcntl"] == 0 and calls["ioctl"] == 0, calls
        assert calls["recvfrom"] == 1 and calls["readv"] == 0 and calls["writev"] == 0, calls
        assert fcntl.fcntl(server.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK == 0
        print(f"    handed over with its request in: {dict(calls)}")
    finally:
        client.close()
        server.close()


@test
def http_worker_keepalive_request_is_one_recv_and_one_send(td):
    """On a kept-alive connection each request costs baton-http one read
    and one write: no epoll_ctl (the connection stays polled for input, the
    answer goes out at once instead of waiting for EPOLLOUT), no FIONREAD."""
    client, server = handed_over(td, 13)
    pid = [p for p in td.procs if hasattr(p, "errpath")][-1].proc.pid
    try:
        client.sendall(REQ)
        assert read_response(client)[0] == 200  # from here on the worker polls it
        trace = Strace(td, pid, ["epoll_ctl", "ioctl", "fcntl", "recvfrom", "sendmsg", "readv", "writev"])
        for _ in range(200):
            client.sendall(REQ)
            assert read_response(client)[0] == 200
        calls = trace.stop()
        assert calls["epoll_ctl"] == 0 and calls["ioctl"] == 0 and calls["fcntl"] == 0, calls
        assert calls["readv"] == 0 and calls["writev"] == 0, calls
        assert 200 <= calls["recvfrom"] <= 210, calls
        assert 200 <= calls["sendmsg"] <= 210, calls  # and a heartbeat a second
        print(f"    200 kept-alive requests: {dict(calls)}")
    finally:
        client.close()
        server.close()


@test
def http_worker_answers_a_client_that_half_closes(td):
    """A client that sends its requests and then shuts its write side down
    (printf ... | nc) gets every answer, then EOF; directly and behind
    batond."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    d = Direct(td)
    for addr in (("127.0.0.1", d.port), ("127.0.0.1", b.port("v4"))):
        for i in range(20):
            s = socket.create_connection(addr, timeout=5)
            s.sendall(REQ * 2)
            s.shutdown(socket.SHUT_WR)
            data = read_to_eof(s)
            s.close()
            assert data.count(b"HTTP/1.1 200 ") == 2, (addr, i, data)
    assert b.stop() == 0


def syn_recv(port):
    """Server-side connections to port still held back by the kernel: with
    TCP_DEFER_ACCEPT a client that has not spoken stays SYN-RECV there."""
    out = subprocess.run(["ss", "-Htn", "state", "syn-recv", f"sport = :{port}"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return len(out.splitlines())


@test
def http_worker_listen_defer_accept(td):
    """baton-http --listen --defer-accept (the benchmark's direct baseline
    for batond's tcp_defer_accept): a client that has not spoken is not
    accepted (the kernel holds it back, SYN-RECV on the server side) while
    one that speaks is served; the silent one is served once it speaks."""
    d = Direct(td, "--defer-accept", "30")
    silent = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    wait_until(lambda: syn_recv(d.port) == 1, 5, "the silent client held back")
    assert http_get(("127.0.0.1", d.port), timeout=5)[0] == 200
    assert syn_recv(d.port) == 1
    silent.sendall(REQ)
    assert read_response(silent)[0] == 200
    silent.close()
    assert syn_recv(d.port) == 0
