"""Test harness: run a real batond with a config in a private temp dir.

Every process a test starts is tracked and killed by PID at the end; no
test kills anything by name.  All traffic goes to 127.0.0.1 / ::1.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("BATON_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin")
BIN = os.path.abspath(BIN)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def bin_path(name):
    return os.path.join(BIN, name)


class TestDir:
    """A private temp dir, removed when the test ends."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="baton-it-")
        self.procs = []
        self.children = []

    def spawn(self, args, **kw):
        """subprocess.Popen, killed when the test ends if still running."""
        p = subprocess.Popen(args, **kw)
        self.children.append(p)
        return p

    def file(self, name, text, mode=0o644):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def cleanup(self):
        for b in self.procs:
            b.kill_all()
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.path, ignore_errors=True)


def wrk_while(td, args, work, settle=0.5):
    """Run wrk (args; its -d only an upper bound) while work() runs, then
    stop it with SIGINT, which makes it print its figures; its output.
    Fails if wrk ended first: then part of the work ran without load."""
    wrk = td.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(settle)
    work()
    time.sleep(settle)
    running = wrk.poll() is None
    wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate(timeout=60)
    assert running, f"wrk ended before the work under load did: {out}"
    return out


class Batond:
    """A batond process and what its log says."""

    def __init__(self, td, config, args=(), wait_ready=None, expect_fail=False, wrapper=(),
                 start_timeout=10):
        self.td = td
        config = config.replace("@DIR@", td.path).replace("@BIN@", BIN).replace("@ROOT@", ROOT)
        self.control = os.path.join(td.path, "ctl.sock")
        if not re.search(r"^control\s*=", config, re.M):  # each test its own control socket
            if re.search(r"^\[baton\]", config, re.M):
                config = re.sub(r"^\[baton\]\n", f"[baton]\ncontrol = {self.control}\n", config, 1, re.M)
            else:
                config = f"[baton]\ncontrol = {self.control}\n" + config
        else:
            self.control = re.search(r"^control\s*=\s*(\S+)", config, re.M).group(1)
        self.config = td.file("baton.ini", config)
        self.logpath = os.path.join(td.path, "batond.log")
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen([*wrapper, bin_path("batond"), "-c", self.config, *args],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        td.procs.append(self)
        if expect_fail:
            return
        self.wait_log(r"listening listener=|starting version", start_timeout)
        if wait_ready:
            self.wait_ready(wait_ready)

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def wait_log(self, pattern, timeout=10, count=1):
        """Wait until pattern matches count times; return the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = list(rx.finditer(self.log()))
            if len(found) >= count:
                return found
            if self.proc.poll() is not None and len(list(rx.finditer(self.log()))) < count:
                raise AssertionError(f"batond exited ({self.proc.returncode}) before /{pattern}/ x{count}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timeout waiting for /{pattern}/ x{count}:\n{self.tail()}")
            time.sleep(0.02)

    def wait_ready(self, n, timeout=10):
        return self.wait_log(r"worker ready program=\S+ slot=\d+ pid=\d+", timeout, n)

    def tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def port(self, listener):
        m = self.wait_log(r"listening listener=%s address=\S+ bound=(\S+)" % re.escape(listener))[0]
        return int(m.group(1).rsplit(":", 1)[1])

    def worker_pids(self):
        """PIDs of workers currently alive according to the log."""
        log = self.log()
        started = [int(p) for p in re.findall(r"started worker program=\S+ slot=\d+ pid=(\d+)", log)]
        exited = {int(p) for p in re.findall(r"worker exited program=\S+ slot=\d+ pid=(\d+)", log)}
        return [p for p in started if p not in exited]

    def ready_pids(self, program=None):
        log = self.log()
        rx = r"worker ready program=%s slot=(\d+) pid=(\d+)" % (re.escape(program) if program else r"\S+")
        exited = {int(p) for p in re.findall(r"worker exited program=\S+ slot=\d+ pid=(\d+)", log)}
        return {int(pid): int(slot) for slot, pid in re.findall(rx, log) if int(pid) not in exited}

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("batond did not exit after SIGTERM:\n" + self.tail())

    def kill_all(self):
        """Kill batond and the workers it started (by PID, from its log)."""
        pids = self.worker_pids() if os.path.exists(self.logpath) else []
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.logf.close()


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read
        return False


def wait_until(cond, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timeout waiting for " + what)
        time.sleep(0.02)


def http_get(addr, path="/", timeout=10, close=True, family=socket.AF_INET):
    """One request on a new connection. addr: (host, port) or unix path.
    Returns (status, headers dict, body)."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n{'Connection: close' if close else ''}\r\n\r\n".encode())
        return read_response(s)
    finally:
        s.close()


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed in body")
        rest += chunk
    return status, headers, rest[:n]


class Load:
    """A load client: threads that each open a new connection per request,
    bounded by count and time.  Records every outcome."""

    def __init__(self, addr, threads=4, max_requests=100000, max_seconds=30):
        self.addr = addr
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = []
        self.pids = set()
        self.stop_flag = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            try:
                status, headers, _ = http_get(self.addr, timeout=10)
                with self.lock:
                    if status == 200:
                        self.ok += 1
                        self.pids.add(int(headers.get("x-baton-pid", "0")))
                    else:
                        self.errors.append(f"status {status}")
            except Exception as e:  # every failure is a finding
                with self.lock:
                    self.errors.append(repr(e))

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        return self.ok, self.errors


TESTS = []


class Skip(Exception):
    """A test that cannot run here; run.py counts it as skipped."""

    def __init__(self, reason, in_ci=False):
        super().__init__(reason)
        self.reason = reason
        self.in_ci = in_ci


def skip(reason, in_ci=False):
    """Stop this test as skipped, saying why.  Under CI (CI=true) a skip is
    a failure, since CI installs everything: unless in_ci, for a test that
    does not apply to this build at all (valgrind on an ASan build)."""
    raise Skip(reason, in_ci)


def test(fn):
    """Register an integration test: fn(td) gets its own TestDir."""
    TESTS.append(fn)
    return fn


def web_config(extra_listeners="", workers=2, command="@BIN@/baton-http", program_extra=""):
    """A config with one program 'web'; program_extra lines override the
    test defaults below (a key may appear only once in a section)."""
    keys = {"command": command, "workers": str(workers), "ready_timeout": "5s",
            "drain_timeout": "5s", "stop_timeout": "2s", "backoff": "50ms"}
    for line in program_extra.strip().splitlines():
        k, _, v = line.partition("=")
        keys[k.strip()] = v.strip()
    program = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return f"""
[baton]
log_level = info

[listener:v4]
address = tcp:127.0.0.1:0
program = web
{extra_listeners}
[program:web]
{program}
"""


# A worker that answers heartbeats but never acknowledges a connection.
NOACK_WORKER = r"""
import socket, struct, sys
chan = socket.socket(fileno=3)
chan.send(struct.pack('<HHIII', 100, 1, 16, 4, 0))   # READY, capacity 4
held = []
while True:
    msg, fds, _, _ = socket.recv_fds(chan, 65536, 64)
    if not msg:
        sys.exit(0)
    held += fds                                      # never acknowledged
    if struct.unpack_from('<H', msg)[0] == 3:        # STATUS: alive, says HEARTBEAT
        chan.send(struct.pack('<HHIII', 103, 1, 16, 0, 0))
"""
