"""The Python worker library (worker/python/baton.py): its unit tests, and
real Python servers (a WSGI app through wsgiref, an asyncio app, the
http.server example) behind a real batond, under wrk across rolling
upgrades, draining kept-alive connections, and orphaned by batond's death.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

from harness import (ROOT, Batond, TestDir, http_get, pid_alive, read_response, test, wait_until, wrk_while,
                     web_config)
from upgrade_tests import ctl, program, status, wrk_available

LIB = os.path.join(ROOT, "worker", "python")
EXAMPLE = os.path.join(ROOT, "worker", "examples", "http_worker.py")

WSGI_APP = """
import os, sys
sys.path.insert(0, {lib!r})
import baton

def app(environ, start_response):
    body = b"hello from wsgi\\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body))),
                              ("X-Baton-Pid", str(os.getpid()))])
    return [body]

if __name__ == "__main__":
    baton.serve_wsgi(app, log_requests={log!r})
"""

ASYNCIO_APP = """
import asyncio, os, sys
sys.path.insert(0, {lib!r})
import baton

BODY = b"hello from asyncio\\n"

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            lines = head.decode("latin-1").lower().split("\\r\\n")
            close = (lines[0].endswith("http/1.0") or "connection: close" in lines
                     or baton.get_worker().draining)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\n"
                         b"Content-Length: %d\\r\\nX-Baton-Pid: %d\\r\\nConnection: %s\\r\\n\\r\\n%s"
                         % (len(BODY), os.getpid(), b"close" if close else b"keep-alive", BODY))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()

asyncio.run(baton.serve_asyncio(handle, capacity=64))
"""


def app_command(td, kind, log_requests=False):
    """The batond command line for one of the three Python servers."""
    if kind == "example":
        return f"python3 {EXAMPLE}"
    source = {"wsgi": WSGI_APP, "asyncio": ASYNCIO_APP}[kind]
    path = td.file(f"{kind}_app.py", source.format(lib=LIB, log=log_requests))
    return f"python3 {path}"


def no_protocol_errors(b):
    assert "protocol error" not in b.log(), b.tail()


def totals(b):
    m = re.search(r"program totals program=web accepted=(\d+) handed=\d+ acked=(\d+) "
                  r"redispatched=\d+ dropped=(\d+) lost_with_worker=(\d+)", b.log())
    assert m, b.tail()
    return tuple(map(int, m.groups()))


@test
def python_lib_unit_tests(td):
    """worker/python/test_baton.py: the library against a fake batond."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-m", "unittest", "test_baton"],
                       cwd=LIB, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^Ran (\d+) tests", r.stderr, re.M)
    assert m and int(m.group(1)) >= 15 and re.search(r"^OK$", r.stderr, re.M), r.stderr[-3000:]
    assert "ResourceWarning" not in r.stderr, r.stderr[-3000:]  # no socket left unclosed
    print(f"    {m.group(1)} unit tests of baton.py, OK")


def wrk_across_upgrades(td, kind, upgrades=5, seconds=60):
    """wrk -t2 -c16 (a new connection per request, then keep-alive) while
    `batonctl upgrade web` runs `upgrades` times: every request answered 2xx,
    no socket error, nothing dropped, every drained worker exits 0. wrk is
    given `seconds` as an upper bound and stopped after the last upgrade
    (wrk_while), so however slow the machine, every upgrade happens under
    load."""
    assert wrk_available(), "wrk is needed (make test installs it)"
    b = Batond(td, web_config(command=app_command(td, kind), workers=2,
                              program_extra="ready_timeout = 10s\ndrain_timeout = 20s"),
               wait_ready=2)
    url = f"http://127.0.0.1:{b.port('v4')}/"
    first = set(b.ready_pids("web"))
    generation = 1
    results = []
    for mode in ("close", "keep-alive"):
        args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s",
                *(["-H", "Connection: close"] if mode == "close" else []), url]

        def upgrade_all():
            nonlocal generation
            for _ in range(upgrades):
                code, out, err = ctl(b, "upgrade", "web", timeout=60)
                generation += 1
                assert code == 0 and f"web upgraded to generation {generation}" in out, \
                    (mode, code, out, err, b.tail())
                time.sleep(0.2)
        out = wrk_while(td, args, upgrade_all)
        m = re.search(r"(\d+) requests in", out)
        assert m, out
        reqs = int(m.group(1))
        assert "Socket errors" not in out, (mode, out)
        assert "Non-2xx" not in out, (mode, out)
        assert reqs >= 500, (mode, reqs, out)
        results.append(f"{mode}: {reqs} requests, 0 errors")
    now = set(b.ready_pids("web"))
    assert len(now) == 2 and not now & first, (first, now)
    assert program(status(b), "web")["generation"] == generation
    assert b.stop() == 0, b.tail()
    accepted, acked, dropped, lost = totals(b)
    assert dropped == 0 and lost == 0 and accepted == acked, (accepted, acked, dropped, lost)
    exits = re.findall(r"worker exited program=web slot=\d+ pid=\d+ (\S+)", b.log())
    assert len(exits) == 2 * generation and set(exits) == {"exit=0"}, (exits, b.tail())
    no_protocol_errors(b)
    print(f"    {kind}: {upgrades} upgrades during each wrk run; " + "; ".join(results)
          + f"; {len(exits)} workers exited 0")


@test
def python_lib_wsgi_wrk_across_upgrades(td):
    wrk_across_upgrades(td, "wsgi")


@test
def python_lib_asyncio_wrk_across_upgrades(td):
    wrk_across_upgrades(td, "asyncio")


@test
def python_lib_http_server_example_wrk_across_upgrades(td):
    wrk_across_upgrades(td, "example")


@test
def python_lib_drain_closes_kept_alive_after_next_response(td):
    """http.server (the example) and asyncio: a kept-alive connection, idle
    when its worker is drained, is not cut; its next request is answered by
    the old worker with Connection: close, then the connection closes and
    the old worker exits 0."""
    for kind in ("example", "asyncio"):
        sub = TestDir()
        try:
            drain_one(sub, kind)
        finally:
            sub.cleanup()


def drain_one(td, kind):
    b = Batond(td, web_config(command=app_command(td, kind), workers=1,
                              program_extra="drain_timeout = 30s"), wait_ready=1)
    port = b.port("v4")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        code, headers, _ = read_response(s)
        assert code == 200 and headers.get("connection", "keep-alive") == "keep-alive", (kind, headers)
        old = int(headers["x-baton-pid"])
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 0, (kind, out, err)
        b.wait_log(r"web:0 stderr: \S+\[%d\]: draining: 1 connections open" % old)
        s.settimeout(0.5)
        try:
            assert False, "%s: closed or answered unasked: %r" % (kind, s.recv(100))
        except socket.timeout:
            pass
        assert pid_alive(old)
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        code, headers, body = read_response(s)
        assert code == 200 and headers.get("connection") == "close", (kind, headers)
        assert int(headers["x-baton-pid"]) == old, (kind, headers, old)
        assert s.recv(10) == b"", kind  # closed after that answer
    finally:
        s.close()
    b.wait_log(r"worker exited program=web slot=0 pid=%d exit=0 state=DRAINING unacked=0 active=0" % old)
    code, headers, _ = http_get(("127.0.0.1", port))
    assert code == 200 and int(headers["x-baton-pid"]) != old, (kind, headers)
    no_protocol_errors(b)
    assert b.stop() == 0, b.tail()


@test
def python_lib_orphaned_by_batond_sigkill(td):
    """batond is killed while a WSGI worker (which logs every request to
    the stderr pipe batond read) holds a connection whose request has not
    come yet.  The idle worker exits; the busy one still answers that
    request, although its stderr is now a broken pipe, then exits."""
    b = Batond(td, web_config(command=app_command(td, "wsgi", log_requests=True), workers=2),
               wait_ready=2)
    orphans = list(b.ready_pids("web"))
    s = socket.create_connection(("127.0.0.1", b.port("v4")), timeout=10)
    try:
        wait_until(lambda: sum(w["conns"] for w in program(status(b), "web")["workers"]) == 1, 10,
                   "the connection to be acknowledged")
        b.proc.kill()
        b.proc.wait(10)
        wait_until(lambda: sum(pid_alive(p) for p in orphans) == 1, 10, "the idle orphan to exit")
        busy = next(p for p in orphans if pid_alive(p))
        time.sleep(0.3)  # it has read the same EOF by now, most likely
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        code, headers, body = read_response(s)
        assert code == 200 and body == b"hello from wsgi\n" and int(headers["x-baton-pid"]) == busy, \
            (code, headers, body)
        assert s.recv(10) == b""
        wait_until(lambda: not pid_alive(busy), 10, "the busy orphan to exit")
    finally:
        s.close()
        for p in orphans:  # started by our batond, which cannot reap or kill them now
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
