#!/usr/bin/env python3
"""C100K: batond while its workers hold BENCH_C100K (default 100000) idle
keep-alive connections.

One TCP listener on 127.0.0.1 and two baton-http workers with the capacity
for all of them.  Client processes (this script in client mode, one per
source address 127.0.0.2, 127.0.0.3, ..., at most PER_SOURCE connections
each, so that ephemeral ports neither run out nor get slow to find) open
their share with non-blocking connects, send one GET on each and read its
200 answer (so the connection was accepted, handed, acknowledged and
answered), then hold it idle.  Reported, each against its target with "met" or "not met":

  - the time to open and answer all N connections, and connections/s;
  - batond's VmRSS and VmHWM idle and with N held (target: at most 4 MiB);
  - batond's fd count idle and with N held (target: unchanged);
  - new connections/s (wrk -t2 -c50 --latency with Connection: close)
    with none held, with N held, and with none held again once they are
    closed (target: held / the mean of the two runs with none >= 0.9;
    the runs on either side keep the machine's drift out of the ratio);
  - every error: failed connections, connections closed while held, wrk's
    errors, batond's warnings and errors.

Timings are reported, never asserted.  The exit status is non-zero only if
connections failed (or were not all open by the deadline) or wrk saw
errors.

baton-http closes a connection idle for 75 s; a client sends one more GET
on a connection idle for REFRESH_AFTER seconds, so a slow run still holds
all N (the report counts these).

The fd limits are raised here: this process's RLIMIT_NOFILE (the clients
inherit it) and batond's through `prlimit --nofile=` (the workers inherit
it).  Raising the hard limit needs CAP_SYS_RESOURCE (root has it, but not
in every container); without it the hard limit stays, and since one
process cannot hold more fds than that, the bench runs as many workers
(and client processes) as N needs at that limit, and says so.

Environment: BATON_BIN (binaries), BENCH_C100K (connections, default
100000), BENCH_SECONDS (each wrk run, default 5), BENCH_C100K_DEADLINE
(seconds to open them all, default 300), BENCH_C100K_WORKERS (default 2).
"""
import collections
import errno
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import TestDir, bin_path, http_get  # noqa: E402
from bench import web_batond  # noqa: E402

N = int(os.environ.get("BENCH_C100K", "100000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
DEADLINE = float(os.environ.get("BENCH_C100K_DEADLINE", "300"))
WORKERS = int(os.environ.get("BENCH_C100K_WORKERS", "2"))
WRK_CONNS = 50


def per_source():
    """Connections per source address: 90% of half the ephemeral range.

    connect() looks for a free port among those of one parity first (bind()
    among the other); once that half is taken, each connect() walks all of
    it before trying the other half, and opening slows down from thousands
    of connections a second to hundreds (seen here at 14,000 per address
    with the range 32768-60999)."""
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    return max(1000, (hi - lo + 1) // 2 * 9 // 10)


PER_SOURCE = per_source()   # 12703 with 32768-60999
FD_SPARE = 256           # fds a process needs besides its connections
CAP_SPARE = 1024         # a worker's capacity beyond its share (wrk's connections)
INFLIGHT = 256           # connections a client has between connect() and the answer
CONN_TIMEOUT = 30.0      # from connect() to the answer, for one connection
REFRESH_AFTER = 60.0     # baton-http's idle timeout is 75 s
RSS_TARGET = 4 * 1024 * 1024
RATIO_TARGET = 0.9
MIB = 1024 * 1024
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


# ---------------------------------------------------------------- client mode

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def err_name(e):
    return errno.errorcode.get(e, str(e))


class Client:
    """Opens `count` connections from `src` to (host, port), holds them.

    A connection: fd -> [state, sock, buf, t, answered once], the state
      "connect"  connect() under way           t: when it started
      "answer"   request sent, answer awaited  t: connect() or the refresh
      "held"     answered, idle                t: when the answer came
    """

    def __init__(self, src, host, port, count, seconds):
        self.src, self.addr, self.count = src, (host, port), count
        self.seconds = seconds   # to open them all, from "go"
        self.deadline = None
        self.ep = select.epoll()
        self.conns = {}
        self.started = self.ok = self.failed = 0
        self.held = 0
        self.closed_held = 0     # held connections the server closed
        self.refreshed = 0
        self.errors = collections.Counter()
        self.pending = collections.deque()   # (t, fd) in start order: timeouts
        self.idle = collections.deque()      # (t, fd) in answer order: refreshes
        self.done_at = None

    def fail(self, fd, kind):
        st = self.conns.pop(fd)
        was_held = st[0] == "held" or st[4]
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        st[1].close()
        self.errors[kind] += 1
        if was_held:             # it had been answered: counted in ok, now lost
            self.closed_held += 1
            if st[0] == "held":
                self.held -= 1
        else:
            self.failed += 1

    def open_one(self):
        self.started += 1
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            self.errors["socket: " + err_name(e.errno)] += 1
            self.failed += 1
            return
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((self.src, 0))
        except OSError as e:
            s.close()
            self.errors["bind: " + err_name(e.errno)] += 1
            self.failed += 1
            return
        s.setblocking(False)
        rc = s.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.errors["connect: " + err_name(rc)] += 1
            self.failed += 1
            return
        now = time.monotonic()
        fd = s.fileno()
        self.conns[fd] = ["connect", s, b"", now, False]   # [4]: answered once
        self.ep.register(fd, select.EPOLLOUT)
        self.pending.append((now, fd))

    def on_event(self, fd, ev):
        st = self.conns.get(fd)
        if st is None:
            return
        s = st[1]
        if st[0] == "connect":
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                self.fail(fd, "connect: " + err_name(e))
                return
            try:
                s.send(REQUEST)   # 28 bytes into an empty buffer: all of it
            except OSError as ex:
                self.fail(fd, "send: " + err_name(ex.errno))
                return
            st[0] = "answer"
            self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
            return
        try:
            data = s.recv(4096)
        except BlockingIOError:
            return
        except OSError as ex:
            self.fail(fd, ("while held: " if st[0] == "held" else "before the answer: ")
                      + err_name(ex.errno))
            return
        if not data:
            self.fail(fd, "closed by the server while held" if st[0] == "held"
                      else "closed by the server before the answer")
            return
        if st[0] == "held":
            self.fail(fd, "unexpected data while held")
            return
        st[2] += data
        buf = st[2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        if not buf.startswith(b"HTTP/1.1 200 "):
            self.fail(fd, "answer not 200: " + buf.split(b"\r\n", 1)[0].decode(errors="replace")[:40])
            return
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", buf[:end], re.I)
        if len(buf) < end + 4 + (int(m.group(1)) if m else 0):
            return
        first = not st[4]
        st[0], st[2], st[3], st[4] = "held", b"", time.monotonic(), True
        self.held += 1
        self.idle.append((st[3], fd))
        if first:
            self.ok += 1
        else:
            self.refreshed += 1

    def sweep(self, now):
        while self.pending and now - self.pending[0][0] > CONN_TIMEOUT:
            t, fd = self.pending.popleft()
            st = self.conns.get(fd)
            if st and st[0] != "held" and st[3] == t:
                self.fail(fd, "timeout (%s%s, %.0f s)" % (
                    "refresh " if st[4] else "", st[0], CONN_TIMEOUT))
        while self.idle and now - self.idle[0][0] > REFRESH_AFTER:
            t, fd = self.idle.popleft()
            st = self.conns.get(fd)
            if st and st[0] == "held" and st[3] == t:    # idle since t: ask again
                try:
                    st[1].send(REQUEST)
                except OSError as ex:
                    self.fail(fd, "refresh send: " + err_name(ex.errno))
                    continue
                st[0], st[3] = "answer", now
                self.held -= 1
                self.pending.append((now, fd))

    def summary(self):
        return {"ok": self.ok, "failed": self.failed, "held": self.held,
                "open": len(self.conns), "closed_held": self.closed_held,
                "refreshed": self.refreshed, "errors": dict(self.errors)}

    def run(self):
        """Open everything after "go", then hold until "close" (or stdin EOF)."""
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.ep.register(stdin, select.EPOLLIN)
        emit({"ev": "started", "pid": os.getpid()})
        line, go, t0, last_progress = b"", False, None, 0.0
        while True:
            now = time.monotonic()
            if go and self.done_at is None:
                while (self.started < self.count and
                       len(self.conns) - self.held < INFLIGHT and now < self.deadline):
                    self.open_one()
                if self.ok + self.failed >= self.count or (
                        now >= self.deadline and len(self.conns) == self.held):
                    self.done_at = now
                    emit({"ev": "opened", "t": now, "secs": now - t0, **self.summary()})
                elif now - last_progress >= 1.0:
                    last_progress = now
                    emit({"ev": "progress", **self.summary()})
            self.sweep(now)
            for fd, ev in self.ep.poll(0.2):
                if fd != stdin:
                    self.on_event(fd, ev)
                    continue
                data = os.read(stdin, 4096)
                if not data:
                    return
                line += data
                while b"\n" in line:
                    cmd, line = line.split(b"\n", 1)
                    cmd = cmd.strip().decode()
                    if cmd == "go":
                        go, t0 = True, time.monotonic()
                        self.deadline = t0 + self.seconds
                    elif cmd == "status":
                        emit({"ev": "status", **self.summary()})
                    elif cmd == "close":
                        return

    def close_all(self):
        for st in self.conns.values():
            st[1].close()
        self.conns.clear()


def client_main(argv):
    src, host, port, count, deadline = argv[0], argv[1], int(argv[2]), int(argv[3]), float(argv[4])
    c = Client(src, host, port, count, deadline)
    try:
        c.run()
    finally:
        c.close_all()
        emit({"ev": "closed"})
    return 0


# ---------------------------------------------------------------- bench mode

def status_of(pid):
    """(VmRSS, VmHWM) in bytes and the open fds of a process ({fd: target})."""
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    rss, hwm = (int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) * 1024
                for k in ("VmRSS", "VmHWM"))
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:   # closed in between
            pass
    return rss, hwm, fds


def cpu_seconds(pids):
    """User plus system CPU time of processes, in seconds."""
    t = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        t += int(fields[11]) + int(fields[12])
    return t / os.sysconf("SC_CLK_TCK")


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def wrk(port, bpid, wpids):
    """New connection per request: (req/s, errors, error text, p50, p99,
    batond's and the workers' CPU microseconds per request)."""
    args = ["wrk", "-t2", f"-c{WRK_CONNS}", f"-d{SECONDS}s", "-H", "Connection: close",
            "--latency", f"http://127.0.0.1:{port}/"]
    c0 = cpu_seconds([bpid]), cpu_seconds(wpids)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=SECONDS + 60)
    except subprocess.TimeoutExpired:
        return 0.0, 1, "wrk did not finish", "-", "-", 0.0, 0.0
    c1 = cpu_seconds([bpid]), cpu_seconds(wpids)
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m:
        return (0.0, 1, f"wrk failed ({r.returncode}): {(r.stderr or out).strip()[:200]}",
                "-", "-", 0.0, 0.0)
    rps = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    reqs = int(m.group(1)) if m else max(1, rps * SECONDS)
    errors, text = 0, []
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
        text.append(m.group(0))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
        text.append(m.group(0))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return (rps, errors, "; ".join(text), lat.get("50", "-"), lat.get("99", "-"),
            (c1[0] - c0[0]) / reqs * 1e6, (c1[1] - c0[1]) / reqs * 1e6)


def raise_nofile(want):
    """Raise RLIMIT_NOFILE (soft and hard) to want; if the hard limit may not
    be raised (no CAP_SYS_RESOURCE), to the hard limit.  Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return want if soft == resource.RLIM_INFINITY else soft
    if hard == resource.RLIM_INFINITY or hard >= want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        return want
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


class Clients:
    """The client processes, by PID, and their JSON lines."""

    def __init__(self, port, total, deadline, per_client):
        self.procs, self.buf, self.last, self.eof = [], {}, {}, set()
        n = -(-total // per_client)
        if n > 250:
            sys.exit(f"c100k: {total} connections need {n} source addresses (at most 250)")
        self.sources = [f"127.0.0.{2 + i}" for i in range(n)]
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        self.shares = shares
        for src, share in zip(self.sources, shares):
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--client", src,
                                  "127.0.0.1", str(port), str(share), str(deadline)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            os.set_blocking(p.stdout.fileno(), False)
            self.procs.append(p)
            self.buf[p.pid] = b""

    def lines(self, timeout):
        """The JSON lines that arrive within timeout: [(pid, obj)]."""
        fds = {p.stdout.fileno(): p for p in self.procs if p.pid not in self.eof}
        if not fds:
            time.sleep(timeout)
            return []
        r, _, _ = select.select(list(fds), [], [], timeout)
        got = []
        for fd in r:
            p = fds[fd]
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                self.eof.add(p.pid)
                continue
            self.buf[p.pid] += data
            while b"\n" in self.buf[p.pid]:
                ln, self.buf[p.pid] = self.buf[p.pid].split(b"\n", 1)
                obj = json.loads(ln)
                self.last[(p.pid, obj["ev"])] = obj
                got.append((p.pid, obj))
        return got

    def wait_all(self, ev, timeout, progress=None):
        """Wait until every client has sent ev, or exited; returns {pid: obj}
        of those that sent it."""
        end = time.monotonic() + timeout
        seen = {}
        while time.monotonic() < end:
            if all(p.pid in seen or p.pid in self.eof for p in self.procs):
                break
            for pid, obj in self.lines(min(1.0, max(0.0, end - time.monotonic()))):
                if obj["ev"] == ev:
                    seen[pid] = obj
            if progress:
                progress()
        return seen

    def dead(self):
        """Clients that exited unasked: [(pid, exit status)]."""
        return [(p.pid, p.returncode) for p in self.procs if p.poll() is not None]

    def send(self, cmd):
        for p in self.procs:
            try:
                p.stdin.write((cmd + "\n").encode())
                p.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def status(self, timeout=30):
        self.send("status")
        return self.wait_all("status", timeout)

    def close(self, timeout=60):
        self.send("close")
        end = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass


def total(objs, key):
    return sum(o[key] for o in objs.values())


def errors_of(objs):
    c = collections.Counter()
    for o in objs.values():
        c.update(o["errors"])
    return c


def metrics(b):
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "--timeout", "30", "metrics"],
                       capture_output=True, text=True, timeout=60)
    out = {}
    for name in ("accepted", "handed", "acked", "redispatched", "dropped", "lost"):
        m = re.search(rf'^baton_connections_{name}_total{{program="web"}} (\d+)', r.stdout, re.M)
        out[name] = int(m.group(1)) if m else None
    m = re.search(r'^baton_queue_depth{program="web"} (\d+)', r.stdout, re.M)
    out["queued"] = int(m.group(1)) if m else None
    return out


def ctl_status(b):
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "--timeout", "30", "status"],
                       capture_output=True, text=True, timeout=60)
    return (r.stdout + r.stderr).strip()


def verdict(ok):
    return "met" if ok else "NOT MET"


def bench():
    t_start = time.monotonic()
    nr_open = int(open("/proc/sys/fs/nr_open").read())
    # Each worker holds its share of N plus its own fds; so does each client.
    want_worker = -(-N // WORKERS) + CAP_SPARE + FD_SPARE
    want_client = min(N, PER_SOURCE) + FD_SPARE
    nofile = raise_nofile(min(nr_open, max(want_worker, want_client)))
    workers, notes = WORKERS, []
    if nofile < max(want_worker, want_client):
        # One process cannot hold more than nofile fds: more workers, more clients.
        what = []
        if nofile < want_worker:
            workers = -(-N // (nofile - FD_SPARE - CAP_SPARE))
            what.append(f"{WORKERS} workers holding {N} need {want_worker} each: "
                        f"{workers} workers instead")
        if nofile < want_client:
            what.append(f"a client process holds at most {nofile - FD_SPARE}")
        notes.append(f"RLIMIT_NOFILE's hard limit is {nofile} and may not be raised here "
                     f"(setrlimit: EPERM, no CAP_SYS_RESOURCE); " + "; ".join(what))
    cap = -(-N // workers) + CAP_SPARE
    per_client = min(PER_SOURCE, nofile - FD_SPARE)
    print(f"baton C100K: {N} idle keep-alive connections held by {workers} baton-http workers "
          f"through batond (capacity {cap} each), {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    for n in notes:
        print("NOTE: " + n, flush=True)

    td = TestDir()
    clients = None
    rows = []              # (state, rss, hwm, fds, workers' fds)
    problems = []          # lines for the error section that make the exit non-zero
    other = []             # errors that do not (the exit says whether connections failed)
    try:
        b = web_batond(td, workers, cap, nofile)
        port = b.port("web")
        bpid = b.proc.pid
        wpids = sorted(b.ready_pids("web"))
        start_log_len = len(b.log())

        def snap(state):
            rss, hwm, fds = status_of(bpid)
            rows.append((state, rss, hwm, len(fds), [nfds(p) for p in wpids]))
            return rss, hwm, fds

        for _ in range(100):
            assert http_get(("127.0.0.1", port))[0] == 200
        time.sleep(0.5)
        idle = snap("idle (after 100 requests)")
        print(f"batond pid {bpid}, workers {wpids}; RLIMIT_NOFILE {nofile} here and in the "
              f"clients (setrlimit), for batond and its workers (prlimit)", flush=True)

        print(f"wrk, none held: {SECONDS} s ...", flush=True)
        w_idle = wrk(port, bpid, wpids)
        time.sleep(1.0)
        snap("idle, after wrk")
        m_before = metrics(b)

        clients = Clients(port, N, DEADLINE, per_client)
        print(f"{len(clients.procs)} client process(es), one per source address "
              f"{clients.sources[0]}" + (f"..{clients.sources[-1]}" if len(clients.sources) > 1 else "")
              + f", {max(clients.shares)} connections at most each, {INFLIGHT} in flight each",
              flush=True)
        started = clients.wait_all("started", 30)
        if len(started) < len(clients.procs):
            raise AssertionError(f"only {len(started)} of {len(clients.procs)} client "
                                 "processes started")

        t0 = time.monotonic()
        state = {"next": t0 + 10}

        def progress():
            now = time.monotonic()
            if now >= state["next"]:
                state["next"] = now + 10
                objs = {pid: o for (pid, ev), o in clients.last.items() if ev == "progress"}
                print(f"  {now - t0:5.0f} s: {total(objs, 'ok')} answered, "
                      f"{total(objs, 'failed')} failed", flush=True)
                if b.proc.poll() is not None:
                    raise AssertionError(f"batond exited ({b.proc.returncode}):\n{b.tail()}")

        clients.send("go")
        opened = clients.wait_all("opened", DEADLINE + CONN_TIMEOUT + 10, progress)
        t_open = max((o["t"] for o in opened.values()), default=time.monotonic()) - t0
        ok, failed = total(opened, "ok"), total(opened, "failed")
        complete = len(opened) == len(clients.procs) and ok == N
        if len(opened) < len(clients.procs) or ok + failed < N:
            problems.append(f"deadline: only {ok} of {N} connections answered in "
                            f"{DEADLINE:.0f} s (BENCH_C100K_DEADLINE); "
                            f"{len(opened)} of {len(clients.procs)} clients finished")
            print(problems[-1] + "; measuring what is open", flush=True)
        if failed:
            problems.append(f"{failed} connections failed while opening")

        time.sleep(1.0)
        held_before = clients.status()
        rss_h, hwm_h, fds_h = snap(f"{total(held_before, 'held')} held")
        m_held = metrics(b)      # after the snapshot: batonctl's connection is an fd
        status_text = ctl_status(b)

        print(f"wrk, {total(held_before, 'held')} held: {SECONDS} s ...", flush=True)
        w_held = wrk(port, bpid, wpids)
        time.sleep(1.0)
        held_after = clients.status()
        for pid, rc_ in clients.dead():
            problems.append(f"client process {pid} exited ({rc_}) before it was told to: "
                            "its connections are gone")
        snap(f"{total(held_after, 'held')} held, after wrk")

        clients.close()
        for p in clients.procs:
            if p.returncode is None:
                other.append(f"client {p.pid} did not exit after 'close'; killed")
        clients.kill()
        clients_final = held_after
        time.sleep(2.0)
        snap("all closed")
        print(f"wrk, none held again: {SECONDS} s ...", flush=True)
        w_after = wrk(port, bpid, wpids)
        m_end = metrics(b)

        run_log = b.log()[start_log_len:]
        rc = b.stop(timeout=60)
        if rc != 0:
            other.append(f"batond exited {rc} on SIGTERM")
        log = b.log()[start_log_len:]
        bad_log = [ln for ln in log.splitlines()
                   if re.search(r" (warn|error|fatal):| info: \S+:\d+ (stdout|stderr):", ln)]

        # ------------------------------------------------------- report
        print()
        print(f"opening: {ok} of {N} connections accepted, handed, acknowledged and answered "
              f"200 in {t_open:.1f} s ({ok / t_open if t_open > 0 else 0:.0f} connections/s)"
              + ("" if complete else "  -- INCOMPLETE"))
        d = {k: (m_held[k] or 0) - (m_before[k] or 0) for k in m_held}
        print(f"batond's metrics, opening them: accepted {d['accepted']}, handed {d['handed']}, "
              f"acked {d['acked']}, dropped {d['dropped']}, lost {d['lost']}; queue depth "
              f"{m_held['queued']}")
        print("batonctl status with them held:")
        for ln in status_text.splitlines():
            print("  " + ln)
        print()
        print(f"{'batond':<28} {'VmRSS':>10} {'VmHWM':>10} {'fds':>6}   workers' fds")
        for st, rss, hwm, fds, wf in rows:
            print(f"{st:<28} {rss / MIB:>6.2f} MiB {hwm / MIB:>6.2f} MiB {fds:>6}   "
                  + " ".join(str(x) for x in wf))
        print()
        (ri, ei, txi, p50i, p99i, bci, wci), (rh, eh, txh, p50h, p99h, bch, wch) = w_idle, w_held
        ra, ea, txa, p50a, p99a, bca, wca = w_after
        held_n = total(held_before, "held")
        print(f"new connections (wrk -t2 -c{WRK_CONNS} -d{SECONDS}s, Connection: close), "
              "with the CPU time each took in batond and in the workers:")
        for label, r_, p50, p99, bc, wc, e_, tx in (
                ("none held", ri, p50i, p99i, bci, wci, ei, txi),
                (f"{held_n} held", rh, p50h, p99h, bch, wch, eh, txh),
                ("none again", ra, p50a, p99a, bca, wca, ea, txa)):
            print(f"  {label:<12} {r_:>7.0f} req/s  p50 {p50:>7} p99 {p99:>7}  "
                  f"batond {bc:5.1f} us  workers {wc:5.1f} us  errors {e_}"
                  + (f" ({tx})" if tx else ""))
        none_rate = (ri + ra) / 2
        ratio = rh / none_rate if ri and ra else 0.0
        print()
        print("targets:")
        print(f"  batond VmRSS with {held_n} held: {rss_h / MIB:.2f} MiB "
              f"(idle {idle[0] / MIB:.2f} MiB); target at most 4 MiB: {verdict(rss_h <= RSS_TARGET)}")
        print(f"  batond VmHWM with {held_n} held: {hwm_h / MIB:.2f} MiB "
              f"(idle {idle[1] / MIB:.2f} MiB); target at most 4 MiB: {verdict(hwm_h <= RSS_TARGET)}")
        print(f"  batond fds with {held_n} held: {len(fds_h)} (idle {len(idle[2])}); target "
              f"unchanged: {verdict(len(fds_h) == len(idle[2]))}")
        for fd in sorted(set(fds_h) | set(idle[2])):
            if fds_h.get(fd) != idle[2].get(fd):
                print(f"    fd {fd}: idle {idle[2].get(fd, '-')}, held {fds_h.get(fd, '-')}")
        print(f"  new connections/s with {held_n} held vs none (the mean of before and after): "
              f"{rh:.0f} / {none_rate:.0f} = {ratio:.2f} (against the run before alone "
              f"{rh / ri if ri else 0.0:.2f}); target >= {RATIO_TARGET}: {verdict(ratio >= RATIO_TARGET)}")
        print(f"  all {N} answered and held: {verdict(complete and total(clients_final, 'held') == N)}")

        print()
        print("errors:")
        errs = errors_of(clients_final)
        closed_held = total(clients_final, "closed_held")
        refreshed = total(clients_final, "refreshed")
        print(f"  client connections: {failed} failed while opening, {closed_held} closed while "
              f"held; still held after the second wrk run: {total(clients_final, 'held')} of {N}")
        for kind, n in sorted(errs.items(), key=lambda kv: -kv[1]):
            print(f"    {n:>7}  {kind}")
        if closed_held:
            problems.append(f"{closed_held} held connections closed by the server")
        if total(clients_final, "held") != N and complete and not closed_held:
            problems.append(f"only {total(clients_final, 'held')} of {N} held at the end")
        if refreshed:
            print(f"  (sent one more GET on {refreshed} connections idle for {REFRESH_AFTER:.0f} s: "
                  "baton-http closes one idle for 75 s)")
        print(f"  wrk: none held {ei}, {held_n} held {eh}, none again {ea}")
        if ei or eh or ea:
            problems.append(f"wrk saw errors: none held {ei}, held {eh}, none again {ea}")
        print(f"  batond metrics at the end: accepted {m_end['accepted']}, handed {m_end['handed']}, "
              f"acked {m_end['acked']}, redispatched {m_end['redispatched']}, dropped "
              f"{m_end['dropped']}, lost {m_end['lost']}")
        print(f"  batond log, warn and worse from start to stop: {len(bad_log)} lines; "
              f"any line while the bench ran: {len(run_log.splitlines())} lines")
        for ln in (bad_log + [x for x in run_log.splitlines() if x not in bad_log])[:20]:
            print("    " + ln)
        for ln in other:
            print("  ERROR: " + ln)
        for ln in problems:
            print("  FAILED: " + ln)
        print()
        print(f"total run time {time.monotonic() - t_start:.0f} s")
        return 1 if problems else 0
    finally:
        if clients:
            clients.kill()
        td.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(client_main(sys.argv[2:]))
    sys.exit(bench())
