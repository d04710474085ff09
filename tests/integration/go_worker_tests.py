"""The Go worker example (worker/examples/go_worker), built with the local Go
toolchain and run through a real batond, plus its protocol checks against a
fake supervisor; and a ten-line program on the Go worker package
(worker/go, which the example uses too) through a real batond.  Without
`go` on PATH every test says so and passes.

The build writes nothing outside the test's temp dir: GOCACHE and GOPATH
live there, GOENV=off ignores the user's go env file, GOPROXY=off and
GOTOOLCHAIN=local keep it off the network (the module has no dependencies).
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

from harness import (skip, BIN, ROOT, Batond, Load, bin_path, http_get, pid_alive, read_response,
                     test, wait_until, web_config)

GO_DIR = os.path.join(ROOT, "worker", "examples", "go_worker")
LIB_DIR = os.path.join(ROOT, "worker", "go")
BODY = b"hello from go\n"
CONN, DRAIN, STATUS, READY, ACK, DONE, HEARTBEAT = 1, 2, 3, 100, 101, 102, 103


def go_env(td):
    """The go command and an environment that keeps it in td and offline (the
    test is skipped without Go)."""
    go = shutil.which("go")
    if not go:
        skip("no Go toolchain (apt-get install golang-go)")
    return go, dict(os.environ, GOCACHE=os.path.join(td.path, "go-cache"),
                    GOPATH=os.path.join(td.path, "go-path"), GOENV="off", GOPROXY="off",
                    GOTOOLCHAIN="local", GOFLAGS="-mod=mod -buildvcs=false")


def build(td, src=GO_DIR, name="goworker"):
    """Build the Go program in src (the example by default) into td."""
    go, env = go_env(td)
    exe = os.path.join(td.path, name)
    before = [sorted(os.listdir(d)) for d in (GO_DIR, LIB_DIR)]
    t0 = time.monotonic()
    r = subprocess.run([go, "build", "-o", exe, "."], cwd=src, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"go build failed:\n{r.stdout}{r.stderr}"
    assert [sorted(os.listdir(d)) for d in (GO_DIR, LIB_DIR)] == before, "go build wrote into the checkout"
    build.seconds = time.monotonic() - t0
    return exe


def ctl(b, *args, timeout=120):
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, *args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def exited_ok(b, pid, timeout=10):
    """Wait until batond logs this worker's exit with status 0, nothing lost."""
    return b.wait_log(r"worker exited program=web slot=\d+ pid=%d exit=0 state=\S+ unacked=0 active=0"
                      % pid, timeout)


def no_protocol_errors(b):
    assert "protocol error" not in b.log(), b.tail()


# ---------------------------------------------------------------- through batond

@test
def go_worker_serves_http_and_load(td):
    exe = build(td)
    sock = os.path.join(td.path, "web.sock")
    b = Batond(td, web_config(f"""
[listener:unix]
address = unix:{sock}
program = web
""", command=exe, workers=2), wait_ready=2)
    port = b.port("v4")
    pids = set(b.ready_pids("web"))
    for addr, fam in ((("127.0.0.1", port), socket.AF_INET), (sock, socket.AF_UNIX)):
        status, headers, body = http_get(addr, family=fam)
        assert status == 200 and body == BODY, (status, headers, body)
        assert int(headers["x-baton-pid"]) in pids, (headers, pids)
        assert headers["x-baton-generation"] == "1", headers
    assert http_get(("127.0.0.1", port), "/nope")[0] == 404
    # keep-alive: two requests on one connection, one worker answers both
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    answers = []
    for _ in range(2):
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answers.append(read_response(s))
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(4096)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    post = read_response(s)
    s.close()
    assert [a[0] for a in answers] == [200, 200], answers
    assert answers[0][1]["x-baton-pid"] == answers[1][1]["x-baton-pid"], answers
    assert "connection" not in answers[1][1], answers[1]
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head  # no body
    assert post[0] == 405, post
    load = Load(("127.0.0.1", port), threads=4, max_requests=2000, max_seconds=30)
    for t in load.threads:  # all 2000, then collect
        t.join(60)
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    assert ok == 2000 and load.pids == pids, (ok, load.pids, pids)
    no_protocol_errors(b)
    assert b.stop() == 0
    for p in pids:
        exited_ok(b, p, 0)
    print(f"    go build {build.seconds:.1f}s; {ok} requests over 2 Go workers, 0 errors")


@test
def go_worker_upgrade_under_load(td):
    exe = build(td)
    b = Batond(td, web_config(command=exe, workers=2), wait_ready=2)
    port = b.port("v4")
    first = set(b.ready_pids("web"))
    load = Load(("127.0.0.1", port), threads=4, max_requests=10**6, max_seconds=60)
    time.sleep(0.3)
    for gen in (2, 3, 4):
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 0 and f"web upgraded to generation {gen}" in out, (code, out, err, b.tail())
    time.sleep(0.3)
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    now = set(b.ready_pids("web"))
    assert len(now) == 2 and not now & first, (first, now)
    for _ in range(10):
        status, headers, body = http_get(("127.0.0.1", port))
        assert status == 200 and body == BODY
        assert int(headers["x-baton-pid"]) in now and headers["x-baton-generation"] == "4", headers
    for p in first:  # drained: exited 0 with nothing lost
        exited_ok(b, p)
    no_protocol_errors(b)
    print(f"    3 upgrades under load: {ok} requests, 0 errors; generation 4 pids {sorted(now)}")
    assert b.stop() == 0


@test
def go_worker_drain_closes_kept_alive_connection(td):
    exe = build(td)
    b = Batond(td, web_config(command=exe, workers=1, program_extra="drain_timeout = 30s"),
               wait_ready=1)
    port = b.port("v4")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_response(s)
    assert status == 200 and "connection" not in headers, headers
    old = int(headers["x-baton-pid"])
    code, out, err = ctl(b, "upgrade", "web")
    assert code == 0, (out, err)
    b.wait_log(r"goworker\[%d\]: draining: 1 connections open" % old)
    # The idle kept-alive connection is not closed under the client: the
    # worker waits for its next request.
    s.settimeout(0.5)
    try:
        assert False, "closed or answered unasked: %r" % s.recv(100)
    except socket.timeout:
        pass
    assert pid_alive(old)
    s.settimeout(10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 200 and body == BODY, (status, body)
    assert headers.get("connection") == "close", headers
    assert int(headers["x-baton-pid"]) == old and headers["x-baton-generation"] == "1", headers
    assert s.recv(10) == b""  # closed after that answer
    s.close()
    exited_ok(b, old)
    assert "goworker[%d]: drained: exiting" % old in b.log(), b.tail()
    status, headers, _ = http_get(("127.0.0.1", port))
    assert status == 200 and headers["x-baton-generation"] == "2", headers
    no_protocol_errors(b)
    assert b.stop() == 0


def client_sockets(pid):
    """How many sockets other than the channel (fd 3) pid holds: client
    connections it acked or received and has not closed."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += fd != "3" and os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def stopped(pid):
    """Every thread of pid is in group stop (state T)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


@test
def go_worker_sigkill_under_load(td):
    """SIGKILL a Go worker under load: the connections batond had passed to
    it but it had not acked go to the other worker, the slot gets a
    replacement, and no client notices.  Connections a worker has acked
    are lost when it dies (PROTOCOL.md 5.3), so the kill is aimed: the
    victim is stopped (SIGSTOP) at a moment it holds no client socket,
    then batond keeps handing it connections it cannot ack, then it is
    killed."""
    exe = build(td)
    b = Batond(td, web_config(command=exe, workers=2), wait_ready=2)
    port = b.port("v4")
    before = b.ready_pids("web")
    victim = next(iter(before))
    load = Load(("127.0.0.1", port), threads=4, max_requests=10**6, max_seconds=60)
    time.sleep(0.5)
    tries = 0
    while True:
        tries += 1
        os.kill(victim, signal.SIGSTOP)
        wait_until(lambda: stopped(victim), 5, "SIGSTOP to take effect")  # kill() does not wait
        if client_sockets(victim) == 0:
            break
        os.kill(victim, signal.SIGCONT)  # it holds a connection: try again
        assert tries < 1000, "the victim never was between connections"
        time.sleep(0.001 * (tries % 7))
    time.sleep(0.3)  # batond passes it connections: unacked
    os.kill(victim, signal.SIGKILL)
    m = b.wait_log(r"worker exited program=web slot=\d+ pid=%d signal=Killed state=\S+ unacked=(\d+) "
                   r"active=(\d+)" % victim)[0]
    unacked = int(m.group(1))
    b.wait_ready(3)
    time.sleep(0.5)  # the replacement under load too
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    assert ok >= 1000, ok
    requeued = re.search(r"requeued connections program=web slot=\d+ pid=%d count=(\d+)" % victim, b.log())
    assert unacked >= 1 and requeued and int(requeued.group(1)) == unacked, (m.group(0), b.tail())
    after = b.ready_pids("web")
    assert victim not in after and len(after) == 2, (before, after)
    replacement = (set(after) - set(before)).pop()
    seen = {int(http_get(("127.0.0.1", port))[1]["x-baton-pid"]) for _ in range(20)}
    assert replacement in seen and seen <= set(after), (seen, after)
    no_protocol_errors(b)
    print(f"    {ok} requests, 0 errors; Go worker {victim} killed holding {unacked} unacked connections "
          f"(re-dispatched; stopped idle after {tries} tries), replaced by {replacement}")
    assert b.stop() == 0


@test
def go_worker_batond_stop(td):
    exe = build(td)
    b = Batond(td, web_config(command=exe, workers=2), wait_ready=2)
    pids = list(b.ready_pids("web"))
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    t0 = time.monotonic()
    assert b.stop() == 0
    took = time.monotonic() - t0
    assert not any(pid_alive(p) for p in pids), pids
    for p in pids:
        exited_ok(b, p, 0)
        assert f"goworker[{p}]: drained: exiting" in b.log(), b.tail()
    assert took < 3, took  # drained at once, not after drain_timeout
    no_protocol_errors(b)


@test
def go_worker_orphaned_by_batond_sigkill(td):
    """batond dies: the channel reads EOF. The idle worker exits at once;
    the one holding a kept-alive connection answers its next request with
    Connection: close, then exits."""
    exe = build(td)
    # stderr = inherit: the orphans' last words must reach a file that
    # outlives batond (its pipes for captured output die with it)
    b = Batond(td, web_config(command=exe, workers=2, program_extra="stderr = inherit"), wait_ready=2)
    orphans = list(b.ready_pids("web"))
    s = socket.create_connection(("127.0.0.1", b.port("v4")), timeout=10)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        busy = int(read_response(s)[1]["x-baton-pid"])
        b.proc.kill()
        b.proc.wait(10)
        idle = (set(orphans) - {busy}).pop()
        wait_until(lambda: not pid_alive(idle), 10, "the idle orphan to exit")
        # each orphan reads its own channel: wait until the busy one saw EOF too
        wait_until(lambda: f"goworker[{busy}]: channel closed: batond is gone" in b.log(), 10,
                   "the busy orphan to notice batond is gone")
        assert pid_alive(busy)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == 200 and body == BODY and headers.get("connection") == "close", headers
        assert s.recv(10) == b""
        wait_until(lambda: not pid_alive(busy), 10, "the busy orphan to exit")
        log = b.log()
        for p in orphans:
            assert f"goworker[{p}]: channel closed: batond is gone" in log, log
            assert f"goworker[{p}]: drained: exiting" in log, log
    finally:
        s.close()
        for p in orphans:  # started by our batond, which cannot reap or kill them now
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------- the Go worker package

@test
def go_lib_vet_and_package_tests(td):
    """go vet and the package's own tests (a fake batond on a socketpair, and
    a real batond from BATON_BIN serving the test binary)."""
    go, env = go_env(td)
    env["BATON_BIN"] = BIN
    before = sorted(os.listdir(LIB_DIR))
    for args in (["vet", "./..."], ["test", "-count=1", "-v", "./..."]):
        r = subprocess.run([go, *args], cwd=LIB_DIR, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"go {' '.join(args)} failed:\n{r.stdout}{r.stderr}"
    assert "--- PASS: TestThroughBatond" in r.stdout, r.stdout  # batond found: not skipped
    assert sorted(os.listdir(LIB_DIR)) == before, "go test wrote into the checkout"
    print(f"    {r.stdout.count('--- PASS: ')} Go tests passed")


TEN_LINES = """package main

import ("io"; "net/http"; "os"; "strconv"; "baton.example/baton")

func main() {
	ln, err := baton.Listen()
	if err != nil { panic(err) }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Baton-Pid", strconv.Itoa(os.Getpid()))
		w.Header().Set("X-Baton-Generation", os.Getenv("BATON_GENERATION"))
		io.WriteString(w, "hello from ten lines of go\\n")
	})
	srv := &http.Server{Handler: baton.CloseOnDrain(h)}
	baton.Ready()
	srv.Serve(ln)
	if baton.Wait() != nil { os.Exit(1) }
}
"""


@test
def go_lib_ten_line_worker_upgrade_under_load(td):
    """A program of ten lines on the package in worker/go, written here with
    a go.mod that replaces the package with the checkout's copy: it serves
    through batond, and three upgrades under load lose nothing."""
    src = os.path.join(td.path, "tenlines-src")
    os.mkdir(src)
    td.file("tenlines-src/main.go", TEN_LINES)
    td.file("tenlines-src/go.mod", "module tenlines\n\ngo 1.19\n\nrequire baton.example/baton v0.0.0\n\n"
            f"replace baton.example/baton => {LIB_DIR}\n")
    exe = build(td, src, "tenlines")
    body = b"hello from ten lines of go\n"
    b = Batond(td, web_config(command=exe, workers=2), wait_ready=2)
    port = b.port("v4")
    first = set(b.ready_pids("web"))
    for _ in range(4):
        status, headers, got = http_get(("127.0.0.1", port))
        assert status == 200 and got == body, (status, headers, got)
        assert int(headers["x-baton-pid"]) in first and headers["x-baton-generation"] == "1", headers
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    answers = []
    for _ in range(2):  # keep-alive: one worker answers both
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answers.append(read_response(s))
    s.close()
    assert [a[0] for a in answers] == [200, 200] and "connection" not in answers[1][1], answers
    assert answers[0][1]["x-baton-pid"] == answers[1][1]["x-baton-pid"], answers
    load = Load(("127.0.0.1", port), threads=4, max_requests=10**6, max_seconds=60)
    time.sleep(0.3)
    for gen in (2, 3, 4):
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 0 and f"web upgraded to generation {gen}" in out, (code, out, err, b.tail())
    time.sleep(0.3)
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    assert ok >= 100, ok
    now = set(b.ready_pids("web"))
    assert len(now) == 2 and not now & first, (first, now)
    for _ in range(10):
        status, headers, got = http_get(("127.0.0.1", port))
        assert status == 200 and got == body, (status, got)
        assert int(headers["x-baton-pid"]) in now and headers["x-baton-generation"] == "4", headers
    for p in first:  # drained: exited 0 with nothing lost
        exited_ok(b, p)
    no_protocol_errors(b)
    print(f"    go build {build.seconds:.1f}s; 3 upgrades under load: {ok} requests, 0 errors")
    assert b.stop() == 0
    for p in now:
        exited_ok(b, p, 0)


# ---------------------------------------------------------------- against a fake batond

class FakeBatond:
    """The worker alone, with this test as its supervisor on the channel."""

    def __init__(self, td, exe):
        self.sup, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sup.settimeout(5)
        env = dict(os.environ, BATON_FD=str(child.fileno()), BATON_PROGRAM="web",
                   BATON_WORKER="0", BATON_GENERATION="7")
        self.errpath = os.path.join(td.path, f"stderr.{len(os.listdir(td.path))}")
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen([exe], stdin=subprocess.DEVNULL, stderr=err, env=env,
                                         pass_fds=(child.fileno(),))
        child.close()
        td.procs.append(self)

    def recv(self, want):
        """The next message of type want, skipping heartbeats; raw bytes."""
        while True:
            data = self.sup.recv(4096)
            if not data:
                raise ConnectionError("worker closed the channel")
            if struct.unpack_from("<H", data)[0] != HEARTBEAT or want == HEARTBEAT:
                assert struct.unpack_from("<H", data)[0] == want, (want, data)
                return data

    def send(self, data, fds=()):
        self.sup.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                         if fds else [])

    def wait(self):
        code = self.proc.wait(10)
        return code, open(self.errpath).read()

    def tail(self, n=40):  # run.py prints it when a test fails
        return "\n".join(open(self.errpath).read().splitlines()[-n:])

    def kill_all(self):  # TestDir.cleanup
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sup.close()


def conn_msg(entries, reserved=0, count=None):
    """CONN: entries of (id, listener bytes, peer bytes)."""
    body = struct.pack("<HH", len(entries) if count is None else count, reserved)
    for cid, listener, peer in entries:
        body += struct.pack("<Q32s64s", cid, listener, peer)
    return struct.pack("<HHI", CONN, 1, 8 + len(body)) + body


@test
def go_worker_protocol_conformance(td):
    """Exact bytes of READY, ACK, DONE and HEARTBEAT; every malformed message
    from the supervisor makes the worker exit 1 without acking; DRAIN and
    EOF make it exit 0."""
    exe = build(td)
    # READY, a heartbeat by itself, STATUS answered, one connection served, DRAIN
    w = FakeBatond(td, exe)
    assert w.recv(READY) == bytes.fromhex("6400010010000000 4000000000000000")
    assert w.recv(HEARTBEAT) == struct.pack("<HHIII", HEARTBEAT, 1, 16, 0, 64)
    w.send(struct.pack("<HHI", STATUS, 1, 8))
    t0 = time.monotonic()
    assert w.recv(HEARTBEAT) == struct.pack("<HHIII", HEARTBEAT, 1, 16, 0, 64)
    assert time.monotonic() - t0 < 0.5
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    w.send(conn_msg([(7, b"v4", b"127.0.0.1:5555")]), [server.fileno()])
    server.close()
    assert w.recv(ACK) == bytes.fromhex("6500010018000000 0100000000000000 0700000000000000")
    w.send(struct.pack("<HHI", STATUS, 1, 8))
    assert w.recv(HEARTBEAT) == struct.pack("<HHIII", HEARTBEAT, 1, 16, 1, 64)  # active 1
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = read_response(client)
    assert status == 200 and body == BODY and headers["x-baton-generation"] == "7", headers
    client.close()
    assert w.recv(DONE) == bytes.fromhex("6600010018000000 0100000000000000 0700000000000000")
    w.send(bytes.fromhex("0200010008000000"))  # DRAIN
    code, err = w.wait()
    assert code == 0 and "draining: 0 connections open" in err, (code, err)

    # EOF: like a drain, exit 0. Closing with none of its messages unread
    # gives the worker a 0-byte read; with a heartbeat unread, ECONNRESET.
    for unread in (False, True):
        w = FakeBatond(td, exe)
        w.recv(READY)
        if unread:
            time.sleep(0.2)  # the first HEARTBEAT, sent right after READY, waits unread
        else:
            w.recv(HEARTBEAT)
        w.sup.close()
        code, err = w.wait()
        assert code == 0 and "channel closed: batond is gone" in err, (unread, code, err)

    # malformed messages: stderr, exit 1, no ACK
    ok_entry = [(9, b"v4", b"1.2.3.4:5")]
    cases = [
        ("short", b"\x03\x00\x01\x00", 0),
        ("version 2", struct.pack("<HHI", STATUS, 2, 8), 0),
        ("length > received", struct.pack("<HHI", STATUS, 1, 9), 0),
        ("STATUS with a body", struct.pack("<HHI", STATUS, 1, 12) + b"\0" * 4, 0),
        ("DRAIN with an fd", struct.pack("<HHI", DRAIN, 1, 8), 1),
        ("a worker type", struct.pack("<HHIII", READY, 1, 16, 0, 0), 0),
        ("unknown type", struct.pack("<HHI", 99, 1, 8), 0),
        ("CONN count 0", conn_msg([], count=0), 0),
        ("CONN count 17", conn_msg(ok_entry * 17), 17),
        ("CONN 16 with 17 fds: MSG_CTRUNC", conn_msg(ok_entry * 16), 17),
        ("CONN reserved", conn_msg(ok_entry, reserved=1), 1),
        ("CONN count/length", conn_msg(ok_entry, count=2), 1),
        ("CONN too few fds", conn_msg(ok_entry * 2), 1),
        ("CONN too many fds", conn_msg(ok_entry), 2),
        ("CONN no fds", conn_msg(ok_entry), 0),
        ("CONN listener no NUL", conn_msg([(9, b"x" * 32, b"p")]), 1),
        ("CONN peer text after NUL", conn_msg([(9, b"v4", b"1.2.3.4\0junk")]), 1),
    ]
    for name, msg, nfds in cases:
        w = FakeBatond(td, exe)
        w.recv(READY)
        pairs = [socket.socketpair() for _ in range(nfds)]
        if name == "CONN count 17":  # more than 16 fds do not fit the worker's buffer
            w.send(msg, [p[1].fileno() for p in pairs[:16]])
        else:
            w.send(msg, [p[1].fileno() for p in pairs])
        for a, c in pairs:
            c.close()
        code, err = w.wait()
        assert code == 1 and "protocol error" in err, (name, code, err)
        rest = []
        w.sup.settimeout(0.2)
        try:
            while (data := w.sup.recv(4096)):
                rest.append(struct.unpack_from("<H", data)[0])
        except socket.timeout:
            pass
        assert ACK not in rest, (name, rest)
        for a, _ in pairs:  # the worker closed what it was given: the peer sees EOF
            a.settimeout(2)
            assert a.recv(10) == b"", name
            a.close()
    print(f"    {len(cases)} malformed messages: exit 1, no ACK")
