"""batond under valgrind (memcheck): a scenario that exercises every
module (listeners, dispatch, worker crashes, the control socket with good
and bad clients, scale, restart, upgrade, reload, shutdown) must end with
no memory error, no leak and no fd left open.

Skipped with a message when valgrind is missing or the binaries are built
with ASan (the two do not mix); CI installs valgrind and runs it with the
plain build.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import skip, Batond, Load, bin_path, http_get, test, wait_until


def sanitized(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def ctl(b, *args, timeout=120):
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "--timeout", str(timeout), *args],
                       capture_output=True, text=True, timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr


CONFIG = """
[baton]
log_level = info
[listener:v4]
address = tcp:127.0.0.1:0
program = web
[listener:local]
address = unix:@DIR@/web.sock
program = web
[listener:echo]
address = tcp:127.0.0.1:0
program = echo
[program:web]
command = @BIN@/baton-http
workers = 2
ready_timeout = 60s
heartbeat_timeout = 30s
[program:echo]
command = @BIN@/baton-echo
workers = 1
ready_timeout = 60s
heartbeat_timeout = 30s
"""


@test
def batond_under_valgrind_no_errors_no_leaks(td):
    vg = shutil.which("valgrind")
    if not vg:
        skip("valgrind is not installed (apt-get install -y valgrind)")
    if sanitized(bin_path("batond")):
        skip("batond is built with ASan; valgrind runs with the plain build", in_ci=True)
    # batond's new image after `reexec` and the binary checking the state
    # run under valgrind too (the workers do not); each process its own log.
    wrapper = [vg, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,indirect",
               "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
               "--track-fds=yes", "--child-silent-after-fork=yes", "--trace-children=yes",
               "--trace-children-skip=*baton-http*,*baton-echo*",
               f"--log-file={td.path}/valgrind.%p.log"]
    b = Batond(td, CONFIG, wrapper=wrapper, start_timeout=60, wait_ready=None)
    log = os.path.join(td.path, f"valgrind.{b.proc.pid}.log")
    b.wait_ready(3, 60)
    port = b.port("v4")

    # traffic through TCP, Unix and the echo program
    load = Load(("127.0.0.1", port), threads=2, max_requests=300, max_seconds=60)
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(os.path.join(td.path, "web.sock"))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200"), "unix"
        s.close()
    e = socket.create_connection(("127.0.0.1", b.port("echo")), timeout=20)
    e.sendall(b"ping")
    assert e.recv(4) == b"ping"
    wait_until(lambda: load.ok + len(load.errors) >= 300, 120, "300 requests")
    ok, errors = load.finish()
    assert not errors and ok == 300, (ok, errors[:5])

    # a worker crash: its slot is restarted
    victim = next(iter(b.ready_pids("web")))
    os.kill(victim, signal.SIGKILL)
    b.wait_log(r"worker exited program=web slot=\d+ pid=%d" % victim, 30)
    b.wait_ready(4, 60)

    # the control socket, good and bad clients
    assert ctl(b, "status")[0] == 0
    assert ctl(b, "--json", "status")[0] == 0
    assert "baton_connections_accepted_total" in ctl(b, "metrics")[1]
    assert ctl(b, "nosuchcommand")[0] == 2
    for payload in (b"garbage\n", b"x" * 5000, b"baton/1 text sta", b"baton/9 text status\n", b""):
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(30)
        c.connect(b.control)
        if payload:
            c.sendall(payload)
        if payload in (b"baton/1 text sta", b""):
            c.close()  # half a request, or nothing: hang up
            continue
        try:
            while c.recv(4096):
                pass
        except ConnectionResetError:
            pass
        c.close()
    assert ctl(b, "scale", "web", "3")[0] == 0
    assert ctl(b, "scale", "web", "2")[0] == 0
    assert ctl(b, "restart", "web:0")[0] == 0
    code, out, err = ctl(b, "upgrade", "web")
    assert code == 0, (out, err)
    e.close()  # the echo worker drains: it exits once this connection ends
    assert ctl(b, "stop", "echo")[0] == 0
    assert ctl(b, "start", "echo")[0] == 0

    # a reload that adds a listener, removes a program and changes another
    with open(b.config) as f:
        cfg = f.read()
    cfg = cfg.replace("[listener:echo]\naddress = tcp:127.0.0.1:0\nprogram = echo\n", "")
    cfg = re.sub(r"\[program:echo\]\n(.*\n)*?heartbeat_timeout = 30s\n", "", cfg)
    cfg = cfg.replace("workers = 2\n", "workers = 2\nupgrade_batch = 2\n")
    cfg += "[listener:v4b]\naddress = tcp:127.0.0.1:0\nprogram = web\n"
    with open(b.config, "w") as f:
        f.write(cfg)
    code, out, err = ctl(b, "reload")
    assert code == 0, (out, err)
    wait_until(lambda: http_get(("127.0.0.1", b.port("v4b")), timeout=20)[0] == 200, 30,
               "the new listener serves")
    e.close()

    # batond re-executes itself: the check child and the new image are
    # checked (valgrind starts a new log at the exec; the old image's
    # errors would have been reported before it, and ASan covers it too)
    code, out, err = ctl(b, "reexec")
    assert code == 0 and "exec window" in out, (code, out, err)
    assert ctl(b, "status")[0] == 0
    assert http_get(("127.0.0.1", b.port("v4b")), timeout=20)[0] == 200

    # orderly shutdown; valgrind's verdict is in its exit code and log
    b.signal(signal.SIGTERM)
    try:
        code = b.proc.wait(120)
    except subprocess.TimeoutExpired:
        raise AssertionError("batond under valgrind did not exit:\n" + b.tail())
    with open(log) as f:
        report = f.read()
    if os.environ.get("VG_KEEP"):
        shutil.copy(log, os.environ["VG_KEEP"])
    others = [o for o in os.listdir(td.path) if o.startswith("valgrind.") and o != os.path.basename(log)]
    assert others, os.listdir(td.path)
    for other in others:  # the binary that checked the state
        with open(os.path.join(td.path, other)) as f:
            text = f.read()
        assert "--check-state" in text and "ERROR SUMMARY: 0 errors" in text, text[-4000:]
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    assert code == 0 and summary and summary.group(1) == "0", (code, report[-4000:])
    for kind in ("definitely", "indirectly"):
        m = re.search(kind + r" lost: ([\d,]+) bytes", report)
        assert not m or m.group(1) == "0", report[-4000:]
    # at exit only stdin, stdout, stderr (and valgrind's own log) are open
    assert re.search(r"FILE DESCRIPTORS: \d+ open", report), report[-4000:]
    left = [(int(n), what) for n, what in re.findall(r"Open (?:file descriptor|AF_\w+ socket) (\d+): ?(.*)", report)
            if int(n) > 2 and what.strip() != log]
    assert not left, left
    heap = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees", report)
    assert heap, report[-4000:]
    print(f"    valgrind: 0 errors, 0 bytes definitely/indirectly lost, no fd left open; "
          f"heap {heap.group(1)} allocs / {heap.group(2)} frees")
