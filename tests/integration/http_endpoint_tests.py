"""The HTTP endpoint (`http` in [baton]): /metrics parsed as Prometheus
text, /healthz, /readyz flipping to not-ready in a failed upgrade's window
and back, bad requests, and a reload that would move it."""
import os
import re
import socket
import subprocess
import threading
import time

from control_tests import parse_metrics
from harness import Batond, bin_path, read_response, test, wait_until, web_config


def get(port, path, method="GET", timeout=10):
    """(status, headers, body) of one request on a fresh connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        if method == "HEAD":
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode()
            status = int(head.split()[1])
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
            return status, {k.lower(): v for k, v in headers.items()}, data.split(b"\r\n\r\n", 1)[1]
        return read_response(s)
    finally:
        s.close()


def with_http(config, value):
    """A web_config() with `http = value` in its [baton] section."""
    return config.replace("[baton]\n", f"[baton]\nhttp = {value}\n", 1)


def http_port(b):
    m = b.wait_log(r"http endpoint address=\S+ bound=127\.0\.0\.1:(\d+)")[0]
    return int(m.group(1))


@test
def http_endpoint_metrics_healthz_readyz(td):
    # generation 2 is a release that dies 1 s after taking over slot 0 (and
    # is slow to start again) while slot 1's new worker is still starting:
    # the upgrade fails and rolls back, and the old generation takes 1 s to
    # be ready again, so slot 0 has no RUNNING worker for about a second
    script = td.file("release.sh", f"""#!/bin/sh
if [ "$BATON_GENERATION" = 2 ]; then
    [ "$BATON_WORKER" = 1 ] && exec {bin_path('baton-http')} --ready-delay 4000
    [ -e {td.path}/crashed ] && exec {bin_path('baton-http')} --ready-delay 3000
    touch {td.path}/crashed
    exec timeout -s KILL 1 {bin_path('baton-http')}
fi
[ -e {td.path}/started.$BATON_WORKER ] && exec {bin_path('baton-http')} --ready-delay 1000
touch {td.path}/started.$BATON_WORKER
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, with_http(web_config(workers=2, command=script, program_extra="ready_timeout = 10s"),
                             "tcp:127.0.0.1:0"), wait_ready=2)
    port = http_port(b)

    status, headers, body = get(port, "/healthz")
    assert status == 200 and body == b"ok\n", (status, body)
    status, headers, body = get(port, "/readyz")
    assert status == 200 and body == b"ready: web 2/2 running\n", (status, body)

    # /metrics is the same Prometheus text as batonctl metrics
    status, headers, body = get(port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    helps, types, samples = parse_metrics(body.decode())
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "metrics"], capture_output=True,
                       text=True, timeout=30)
    helps2, types2, _ = parse_metrics(r.stdout)
    assert types == types2 and "baton_workers" in types, (sorted(types), sorted(types2))
    running = [v for n, lab, v in samples if n == "baton_workers" and lab.get("state") == "RUNNING"
               and lab.get("program") == "web"]
    assert running == [2.0], running
    status, headers, body = get(port, "/metrics", method="HEAD")
    assert status == 200 and body == b"", (status, body)

    # bad requests
    assert get(port, "/nope")[0] == 404
    assert get(port, "/metrics", method="POST")[0] == 405
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 10000 + b"\r\n\r\n")
    try:
        answer = s.recv(100)
    except ConnectionResetError:
        answer = b""
    s.close()
    assert answer == b"" or answer.split()[1] in (b"400", b"413", b"414", b"431"), answer

    # a failed upgrade: /readyz goes 503 while slot 0 has no worker, then back
    seen, stop = [], threading.Event()

    def poll():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(seen) < 5000:
            try:
                st, _, bd = get(port, "/readyz", timeout=5)
                seen.append((st, bd.decode().strip()))
            except OSError as e:
                seen.append((0, repr(e)))
            time.sleep(0.02)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "upgrade", "web"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "web:0: new worker pid" in r.stderr and "exited after taking over" in r.stderr, \
        (r.returncode, r.stderr)
    wait_until(lambda: seen and seen[-1] == (200, "ready: web 2/2 running"), 10, "ready again")
    stop.set()
    t.join(10)
    codes = [st for st, _ in seen]
    assert 0 not in codes, [x for x in seen if x[0] == 0][:3]
    first_down = codes.index(503)
    assert 200 in codes[:first_down] and 200 in codes[first_down:], codes
    down = [bd for st, bd in seen if st == 503]
    assert "not ready: web 1/2 running" in down, sorted(set(down))
    print(f"    /readyz: {len(seen)} polls, {len(down)} not ready during the failed upgrade, then ready")

    # a reload may not move the endpoint
    with open(b.config) as f:
        cfg = f.read()
    with open(b.config, "w") as f:
        f.write(cfg.replace("http = tcp:127.0.0.1:0", "http = tcp:127.0.0.1:1"))
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "reload"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "moving the HTTP endpoint" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)
    assert get(port, "/healthz")[0] == 200

    assert b.stop() == 0


@test
def http_endpoint_bad_config(td):
    base = web_config(workers=1)
    for value, msg in (("unix:/tmp/x.sock", "takes a TCP address"),
                       ("tcp:1.2.3:80", "bad IPv4 address"),
                       ("tcp:127.0.0.1:99999", "port")):
        text = with_http(base, value)
        line = text.splitlines().index(f"http = {value}") + 1
        path = td.file("bad.ini", text.replace("@BIN@", os.path.dirname(bin_path("x"))))
        r = subprocess.run([bin_path("batond"), "-t", "-c", path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and re.search(rf"{re.escape(path)}:{line}: http: .*{msg}", r.stderr), \
            (value, r.stderr)
    # a port that is taken: batond refuses to start, and says why
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        b = Batond(td, with_http(base, f"tcp:127.0.0.1:{taken.getsockname()[1]}"), expect_fail=True)
        assert b.proc.wait(30) == 1
        assert re.search(r"http tcp:127\.0\.0\.1:\d+: Address already in use", b.log()), b.tail()
        assert not os.path.exists(b.control)
    finally:
        taken.close()
