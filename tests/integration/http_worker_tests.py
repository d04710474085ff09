"""baton-http exposed to hostile clients: a pipelining client that never
reads, and slow headers and bodies, each against a real worker behind a
real batond, over loopback only.

The limits tested are the constants at the top of worker/http.c.
"""
import re
import select
import socket
import time

from harness import Batond, bin_path, http_get, read_response, test, web_config
from upgrade_tests import program, status

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
    assert b.stop() == 0
