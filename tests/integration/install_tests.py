"""make install / make uninstall into a DESTDIR: the expected tree, a
worker built against the installed pkg-config file, served by the
installed batond and driven by the installed batonctl."""
import os
import re
import shutil
import socket
import subprocess
import time

from harness import skip, ROOT, test, wait_until

EXPECTED = """
bin/baton-echo
bin/baton-http
bin/batonctl
bin/batond
include/baton.h
lib/libbaton.a
lib/pkgconfig/baton.pc
lib/systemd/system/batond.service
lib/systemd/system/batond.socket
share/doc/baton/PROTOCOL.md
share/doc/baton/README.md
share/doc/baton/baton.ini.example
share/man/man1/batonctl.1
share/man/man3/libbaton.3
share/man/man5/baton.ini.5
share/man/man8/batond.8
""".split()

WORKER = r"""
#include <baton.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_conn(struct baton *b, const struct baton_conn *c, void *arg)
{
	char buf[512], msg[256];
	(void)arg;
	if (read(c->fd, buf, sizeof(buf)) > 0) {
		int n = snprintf(msg, sizeof(msg),
				 "HTTP/1.1 200 OK\r\nContent-Length: 17\r\nConnection: close\r\n\r\n"
				 "installed worker\n");
		if (write(c->fd, msg, (size_t)n) < 0)
			perror("write");
	}
	close(c->fd);
	baton_done(b, c->id);
}

int main(void)
{
	static const struct baton_callbacks cb = {.conn = on_conn};
	struct event_base *base = event_base_new();
	struct baton *b = baton_open(-1, &cb, NULL);
	if (!base || !b || baton_attach(b, base) < 0 || baton_ready(b, 0) < 0) {
		perror("baton");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	event_base_dispatch(base);
	baton_free(b);
	event_base_free(base);
	return 0;
}
"""


def make(*args, timeout=600):
    """make in the checkout, not as a sub-make of the running `make test`
    (whose SANITIZE=1 or jobserver must not leak in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE")}
    return subprocess.run(["make", "-s", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def files_under(root):
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(out)


@test
def make_install_and_uninstall_into_destdir(td):
    if shutil.which("make") is None or shutil.which("pkg-config") is None:
        skip("needs make and pkg-config")
    stage, prefix = os.path.join(td.path, "stage"), "/opt/baton"
    root = stage + prefix
    r = make("install", "SANITIZE=1", f"DESTDIR={stage}", f"PREFIX={prefix}")
    assert r.returncode != 0 and "not with SANITIZE=1" in r.stdout + r.stderr, (r.stdout, r.stderr)
    assert not os.path.exists(stage) or files_under(stage) == [], files_under(stage)
    r = make("install", f"DESTDIR={stage}", f"PREFIX={prefix}")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    assert files_under(stage) == sorted(os.path.join(prefix.lstrip("/"), f) for f in EXPECTED), \
        files_under(stage)
    for f in ("bin/batond", "bin/batonctl", "bin/baton-http", "bin/baton-echo"):
        assert os.stat(os.path.join(root, f)).st_mode & 0o777 == 0o755, f
    for f in EXPECTED[4:]:
        assert os.stat(os.path.join(root, f)).st_mode & 0o777 == 0o644, f
    # the units and the example config point at the installed binaries
    unit = open(os.path.join(root, "lib/systemd/system/batond.service")).read()
    assert f"ExecStart={prefix}/bin/batond -c /etc/baton/baton.ini" in unit, unit
    assert "/usr/local/bin" not in unit
    example = open(os.path.join(root, "share/doc/baton/baton.ini.example")).read()
    settings = [ln for ln in example.splitlines() if ln and not ln.startswith(";")]
    assert f"command = {prefix}/bin/baton-http" in settings and not any("%(here)s" in ln for ln in settings), example

    # a worker built with the installed pkg-config file
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, "lib/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=stage)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "baton"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert flags.returncode == 0, flags.stderr
    assert f"-I{root}/include" in flags.stdout and f"-L{root}/lib" in flags.stdout \
        and "-lbaton" in flags.stdout and "-levent" in flags.stdout, flags.stdout
    version = subprocess.run(["pkg-config", "--modversion", "baton"], env=env, capture_output=True,
                             text=True, timeout=30).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    src = td.file("hello.c", WORKER)
    exe = os.path.join(td.path, "hello")
    cc = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror", "-o", exe, src, *flags.stdout.split()],
                        capture_output=True, text=True, timeout=120)
    assert cc.returncode == 0, cc.stderr

    # served by the installed batond, driven by the installed batonctl
    ctl = os.path.join(td.path, "inst.sock")
    cfg = td.file("inst.ini", f"""[baton]
control = {ctl}
[listener:hello]
address = tcp:127.0.0.1:0
program = hello
[program:hello]
command = {exe}
workers = 2
""")
    log = open(os.path.join(td.path, "inst.log"), "w")
    p = subprocess.Popen([os.path.join(root, "bin/batond"), "-c", cfg], stdout=log, stderr=log)
    log.close()
    try:
        logpath = os.path.join(td.path, "inst.log")
        wait_until(lambda: len(re.findall("worker ready", open(logpath).read())) == 2, 10,
                   "the installed batond's workers")
        port = int(re.search(r"bound=127\.0\.0\.1:(\d+)", open(logpath).read()).group(1))
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"installed worker\n"), data
        r = subprocess.run([os.path.join(root, "bin/batonctl"), "-s", ctl, "--json", "status"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.count('"RUNNING"') == 2, (r.stdout, r.stderr)
        p.terminate()
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    # the installed man pages are found by man
    if shutil.which("man"):
        m = subprocess.run(["man", "-M", os.path.join(root, "share/man"), "-P", "cat", "5", "baton.ini"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
        assert m.returncode == 0 and "heartbeat_timeout" in m.stdout, m.stderr

    r = make("uninstall", f"DESTDIR={stage}", f"PREFIX={prefix}", timeout=120)
    assert r.returncode == 0, r.stderr
    assert files_under(stage) == [], files_under(stage)
