#!/usr/bin/env python3
"""Write the hand-made seeds of tests/fuzz/corpus/{config,proto,ctl,state,httphead}/.

Run from anywhere: python3 tests/fuzz/seeds.py.  Seeds are named
seed-*; crash regressions found by the fuzzers are kept next to them as
crash-* (never rewritten here).  The proto seeds follow the input layout
of fuzz_proto.c: an fd-count byte, a receive-buffer byte, the message.
The state seeds are reexec states as supervisor/STATE.md describes them
(header, checksum and all), shaped like the ones batond writes, and
broken variants of them.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(kind, name, data):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- worker protocol (worker/PROTOCOL.md) ----

CONN, DRAIN, STATUS, READY, ACK, DONE, HEARTBEAT = 1, 2, 3, 100, 101, 102, 103


def msg(mtype, body, version=1, length=None):
    n = 8 + len(body) if length is None else length
    return struct.pack("<HHI", mtype, version, n) + body


def conn(conns, pad=0):
    body = struct.pack("<HH", len(conns), pad)
    for cid, listener, peer in conns:
        body += struct.pack("<Q", cid) + listener.ljust(32, b"\0") + peer.ljust(64, b"\0")
    return msg(CONN, body)


def ids(mtype, values, count=None):
    count = len(values) if count is None else count
    return msg(mtype, struct.pack("<H6x", count) + b"".join(struct.pack("<Q", v) for v in values))


def proto(name, nfds, message, buf=0, passcred=False):
    write("proto", name, bytes([nfds | (0x20 if passcred else 0), buf]) + message)


def proto_seeds():
    c1 = conn([(1, b"http", b"127.0.0.1:40000")])
    proto("conn-1", 1, c1)
    proto("conn-2", 2, conn([(2, b"http", b"[::1]:5"), (3, b"http-unix", b"unix")]))
    c16 = conn([(i, b"l" * 31, b"p" * 63) for i in range(16)])
    proto("conn-16", 16, c16)
    proto("drain", 0, msg(DRAIN, b""))
    proto("status", 0, msg(STATUS, b""))
    proto("ready", 0, msg(READY, struct.pack("<II", 1024, 0)))
    proto("heartbeat", 0, msg(HEARTBEAT, struct.pack("<II", 3, 1024)))
    proto("ack-1", 0, ids(ACK, [1]))
    proto("ack-128", 0, ids(ACK, list(range(1, 129))))
    proto("done-3", 0, ids(DONE, [7, 8, 2**64 - 1]))
    # Edge cases: fd count, truncation, control messages, malformed fields.
    proto("conn-fd-missing", 1, conn([(2, b"a", b"b"), (3, b"a", b"b")]))
    proto("conn-fd-extra", 3, c1)
    proto("conn-17-fds", 17, c16)           # more fds than FDPASS_MAX: MSG_CTRUNC
    proto("ready-with-fd", 1, msg(READY, struct.pack("<II", 1, 0)))
    proto("conn-truncated", 1, c1, buf=0x80 | 20)  # MSG_TRUNC
    proto("ready-buf-short", 0, msg(READY, struct.pack("<II", 1, 0)), buf=63)
    proto("ready-buf-exact", 0, msg(READY, struct.pack("<II", 1, 0)), buf=64)
    proto("drain-passcred", 0, msg(DRAIN, b""), passcred=True)
    proto("conn-passcred", 1, c1, passcred=True)
    proto("empty", 0, b"")
    proto("empty-with-fd", 1, b"")
    proto("short-header", 0, b"\x01\x00\x01\x00")
    proto("bad-version", 0, msg(DRAIN, b"", version=2))
    proto("bad-length", 0, msg(DRAIN, b"", length=9))
    proto("unknown-type", 0, msg(50, b""))
    proto("conn-count-0", 0, msg(CONN, struct.pack("<HH", 0, 0)))
    proto("conn-count-17", 17, msg(CONN, struct.pack("<HH", 17, 0) + b"\0" * (104 * 17)))
    proto("conn-pad", 1, conn([(1, b"a", b"b")], pad=1))
    proto("conn-no-nul", 1, conn([(1, b"x" * 32, b"b")]))
    proto("conn-junk-after-nul", 1, conn([(1, b"a\0b", b"b")]))
    proto("ack-count-129", 0, ids(ACK, list(range(129))))
    proto("ack-count-wrong", 0, ids(ACK, [1, 2], count=3))
    proto("ack-pad", 0, msg(ACK, struct.pack("<HBxxxxx", 1, 1) + struct.pack("<Q", 1)))
    proto("ready-pad", 0, msg(READY, struct.pack("<II", 1, 1)))
    proto("ready-long", 0, msg(READY, struct.pack("<III", 1, 0, 0)))


# ---- control protocol (common/ctl.h) ----

def ctl_seeds():
    lines = {
        "status": "baton/1 text status\n",
        "status-json": "baton/1 json status web web:1\n",
        "scale": "baton/1 text scale web 4\n",
        "upgrade-abort": "baton/1 text upgrade --abort web\n",
        "reload-dry": "baton/1 json reload --dry-run\n",
        "signal": "baton/1 text signal all HUP\n",
        "help": "baton/1 text help scale\n",
        "no-newline": "baton/1 text version",
        "spaces": "  baton/1   text   metrics  \n",
        "16-words": "baton/1 text status" + " w" * 15 + "\n",
        "17-words": "baton/1 text status" + " w" * 16 + "\n",
        "max-line": "baton/1 text status " + "x" * (1023 - 20) + "\n",
        "too-long": "baton/1 text status " + "x" * (1024 - 20) + "\n",
        "crlf": "baton/1 text status\r\n",
        "tab": "baton/1\ttext status\n",
        "nul": "baton/1 text st\0atus\n",
        "high-byte": "baton/1 text status caf\xc3\xa9\n",
        "other-version": "baton/2 text status\n",
        "no-version": "status web\n",
        "no-format": "baton/1\n",
        "bad-format": "baton/1 yaml status\n",
        "no-command": "baton/1 json\n",
        "unknown-command": "baton/1 text frobnicate\n",
        "empty": "",
        "newline": "\n",
        # Response lines (ctl_parse_response) and JSON strings (ctl_json_str).
        "resp-ok": "= 0 done",
        "resp-code-only": "= 3",
        "resp-255": "= 255 x",
        "resp-256": "= 256 x",
        "resp-leading-zero": "= 01 x",
        "resp-progress": "> web:0 ready",
        "resp-output": "| {\"programs\":[]}",
        "json-escapes": "a\"b\\c\x01\x1f\x7f end",
    }
    for name, text in lines.items():
        write("ctl", name, text.encode("latin-1"))


# ---- configuration (supervisor/config.c) ----

PROG = "[program:p]\ncommand = /bin/true\n"
LIS = "[listener:l]\naddress = tcp:127.0.0.1:8000\nprogram = p\n"

FULL = """; every key, none at its default
[baton]
control = %(here)s/ctl.sock
control_mode = 0660
control_group = root
control_group_write = yes
log_level = debug
log_file = %(here)s/batond.log
http = tcp:127.0.0.1:9180

[listener:web]
address = tcp:127.0.0.1:8080
program = app
backlog = 128
tcp_nodelay = no
tcp_keepalive = yes
tcp_keepidle = 30s
tcp_keepintvl = 5s
tcp_keepcnt = 4
tcp_user_timeout = 2m

[listener:sock]
address = unix:%(here)s/app.sock
program = app
mode = 0640
owner = root:root

[listener:v6]
address = [::1]:9090
program = other

[program:app]
command = /usr/bin/env "arg one" 'single q' plain\\ esc
workers = 4
directory = %(here)s
environment = A=1,B="x,y",C_3=hello world
user = root
ready_timeout = 3s
drain_timeout = 1m
stop_timeout = 1500ms
queue_timeout = 250ms
heartbeat_timeout = 4s
stop_signal = SIGINT
restart = on-failure
backoff = 200ms
backoff_max = 1h
start_retries = 7
start_window = 2s
capacity = 64
upgrade_batch = 2

[program:other]
command=/bin/cat
stop_signal = 9
restart = never
workers = 0
heartbeat_timeout = 0
"""

HARNESS = """
[baton]
log_level = info

[listener:v4]
address = tcp:127.0.0.1:0
program = web

[listener:v6]
address = tcp:[::1]:0
program = web

[program:web]
command = /usr/bin/baton-http --ready-delay 100
workers = 2
ready_timeout = 5s
drain_timeout = 5s
stop_timeout = 2s
backoff = 50ms
"""


def config_seeds():
    with open(os.path.join(ROOT, "etc", "baton.ini")) as f:
        write("config", "etc-baton", f.read())
    write("config", "full", FULL)
    write("config", "harness", HARNESS)
    write("config", "minimal", PROG)
    write("config", "listener", PROG + LIS)
    write("config", "comments", "; only a comment\n# and another\n\n[baton]\n")
    write("config", "crlf-bom", "\xef\xbb\xbf" + (PROG + LIS).replace("\n", "\r\n"))
    write("config", "continuation", PROG + "environment = A=1,\n  B=2\n")
    write("config", "inline-comment", PROG + "workers = 2 ; two\n")
    write("config", "errors",
          "key = outside\n[nosuch]\n[program:bad name]\n[program:p]\ncommand = 'open\n"
          "workers = 2000\nworkers = 3\nbogus = 1\n[listener:l]\naddress = unix:rel\n"
          "program = q\ntcp_nodelay = maybe\n[listener:l]\n[program:q\nno equals\n")
    write("config", "unix-tcp-keys",
          PROG + "[listener:u]\naddress = unix:/tmp/x.sock\nprogram = p\ntcp_keepalive = yes\n"
          "[listener:t]\naddress = tcp:*:1\nprogram = p\nmode = 0600\nowner = nobody:nogroup\n")
    write("config", "same-address", PROG + LIS + "[listener:m]\naddress = tcp:127.0.0.1:8000\nprogram = p\n")
    write("config", "long-line", PROG + "directory = " + "d" * 400 + "\n")
    write("config", "here-long", PROG + "directory = " + "%(here)s" * 40 + "\n")
    write("config", "users", "[baton]\ncontrol_group = nosuchgroup\n" + PROG + "user = nosuchuser\n")
    # The whole input is also split as one command and one environment value.
    write("config", "env-value", 'A=1,B="x,y",C_3=hello world, D=\\"q\\"')
    write("config", "command-value", "/usr/bin/env \"arg one\" 'single q' plain\\ esc")
    write("config", "bad-baton-keys", "[baton]\ncontrol = run/ctl.sock\nlog_file = rel.log\n"
          "http = unix:/tmp/h.sock\ncontrol_mode = 0888\n")
    write("config", "durations", PROG + "ready_timeout = 0\nbackoff = 2h\nbackoff_max = 1s\n"
          "drain_timeout = 99999999999999999999s\nstop_timeout = 1h\n")
    # A NUL byte inside a value: an error, never a silently cut value.
    write("config", "nul-byte", "[baton]\nlog_level = info\n[listener:l]\naddress = tcp:127.0.0.1:0\n"
          "program = p\n[program:p]\ncommand = /bin/sleep 100\0 --evil\nworkers = 1\n")


# ---- reexec state (supervisor/state.c, supervisor/STATE.md) ----

def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return h


def esc(value):
    """A field value as state_bytes() writes it: %XX for space, controls, '%', > 0x7e."""
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode("latin-1")
    return b"".join(bytes([c]) if 0x20 < c < 0x7f and c != 0x25 else b"%%%02x" % c
                    for c in value)


def st_rec(rtype, fields, required=True):
    out = (b"+" if required else b"?") + rtype.encode() + b"\n"
    for key, value in fields:
        out += key.encode() + b" " + esc(value) + b"\n"
    return out


def sealed(body, version=1, length=None, checksum=None):
    """The header state_seal() writes, then the body."""
    n = len(body) if length is None else length
    h = fnv1a64(body) if checksum is None else checksum
    return b"baton-state %d %d %016x\n" % (version, n, h) + body


def cfg_baton(**over):
    keys = dict(control="/run/baton/batond.sock", control_mode="0660", control_group="",
                control_group_write="no", log_level="info", log_file="/var/log/baton/batond.log",
                http="tcp:127.0.0.1:9180")
    keys.update(over)
    return [("cfg." + k, v) for k, v in keys.items()]


def cfg_listener(address, program="app", **over):
    keys = dict(address=address, program=program, backlog="511", mode="0666", owner="",
                tcp_nodelay="yes", tcp_keepalive="no", tcp_keepidle="0ms", tcp_keepintvl="0ms",
                tcp_keepcnt="0", tcp_user_timeout="0ms")
    keys.update(over)
    return [("cfg." + k, v) for k, v in keys.items()]


def cfg_program(command, **over):
    keys = dict(command=command, workers="2", directory="", environment="", user="",
                umask="022", ready_timeout="10000ms", drain_timeout="30000ms",
                stop_timeout="10000ms", queue_timeout="5000ms", heartbeat_timeout="10000ms",
                ack_timeout="10000ms", stdout="log", stderr="log", stop_signal="TERM",
                restart="always", backoff="500ms", backoff_max="30000ms", start_retries="5",
                start_window="1000ms", capacity="1024", upgrade_batch="1")
    keys.update(over)
    return [("cfg." + k, v) for k, v in keys.items()]


def st_listener(name, cfg, fd, bound, dev=0, ino=0, accepted=0, tcp=(0, 0, 7200, 75, 9, 0)):
    names = ["nodelay", "keepalive", "idle", "intvl", "cnt", "user_timeout"]
    return st_rec("listener", [("name", name)] + cfg + [
        ("fd", fd), ("bound", bound), ("dev", dev), ("ino", ino), ("accepted", accepted)] +
        [("tcp_base." + n, v) for n, v in zip(names, tcp)])


def st_program(name, cfg, generation=1, nslots=2, counters=(0,) * 7, lat=None):
    lat = lat or [0] * 15
    names = ["accepted", "handed", "acked", "redispatched", "dropped", "lost", "restarts"]
    return st_rec("program", [("name", name)] + cfg + [
        ("generation", generation), ("retired", 0), ("nslots", nslots)] +
        list(zip(names, counters)) +
        [("lat.%d" % i, v) for i, v in enumerate(lat)] +
        [("lat_count", sum(lat)), ("lat_sum_us", 1234 * sum(lat)),
         ("upgrades.ok", 1), ("upgrades.failed", 0), ("upgrades.aborted", 0)])


def st_slot(prog, index, state="RUNNING", failures=0, generation=1, last_exit="", due=None):
    f = [("program", prog), ("index", index), ("state", state), ("failures", failures),
         ("held", 0), ("removing", 0), ("generation", generation), ("last_exit", last_exit)]
    if due is not None:
        f.append(("backoff_due_ms", due))
    return st_rec("slot", f)


def st_worker(prog, slotn, pid, chan, state="RUNNING", out=None, err=None, timer=None,
           why="", active=0, handed=0, acked=0, retiring=0, generation=1):
    f = [("program", prog), ("slot", slotn), ("generation", generation), ("pid", pid),
         ("chan", chan), ("state", state), ("broken", 0), ("retiring", retiring),
         ("drain_pending", 0), ("replacement", 0), ("why", why), ("capacity", 1024),
         ("active", active), ("started_ms", 26738372), ("ready_ms", 26738384),
         ("last_msg_ms", 26739372), ("status_sent", 0), ("handed", handed), ("acked", acked)]
    if timer is not None:
        f.append(("timer_due_ms", timer))
    for key, o in (("stdout", out), ("stderr", err)):
        if o is not None:
            f += [(key + ".fd", o[0]), (key + ".partial", o[1]), (key + ".dropped", o[2])]
    return st_rec("worker", f)


def st_conn(prog, pid, unacked, cid, fd, listener_name, peer, handed_ms=0):
    return st_rec("conn", [("program", prog), ("worker", pid), ("unacked", unacked), ("id", cid),
                        ("fd", fd), ("accepted_ms", 26740001), ("accepted_us", 26740001234),
                        ("handed_ms", handed_ms), ("listener", listener_name), ("peer", peer)])


def batond_rec(requests=3):
    return st_rec("batond", [("version", "0.1.0"), ("config_path", "/etc/baton/baton.ini"),
                          ("requests", requests), ("refused_busy", 0), ("refused_denied", 1),
                          ("bad_requests", 0)])


def log_rec(path="/var/log/baton/batond.log", fd=3):
    return st_rec("log", [("path", path), ("fd", fd if path else -1), ("level", "info")])


def st_control(fd=9):
    return st_rec("control", [("fd", fd), ("path", "/run/baton/batond.sock"), ("dev", 65024),
                           ("ino", 10979667), ("mode", 0o660)])


def st_reexec(old_exe=25, commit_us=26741002003):
    return st_rec("reexec", [("old_version", "0.1.0"), ("binary", "/usr/local/bin/batond"),
                          ("commit_us", commit_us), ("old_exe", old_exe)])


CMD = "/usr/local/bin/baton-http --ready-delay 10"
ENV = 'GREETING="hello, world",RATE=100%'


def full_body(extra_fields=(), future=b""):
    body = batond_rec()
    body += st_rec("baton", cfg_baton() + list(extra_fields))
    body += log_rec()
    body += st_listener("web", cfg_listener("tcp:127.0.0.1:8080", tcp_keepalive="yes",
                                         tcp_keepidle="30000ms", backlog="128"),
                     7, "127.0.0.1:8080", accepted=1042)
    body += st_listener("local", cfg_listener("unix:/run/baton/app sock", mode="0640",
                                           owner="www-data:www-data"),
                     8, "unix:/run/baton/app sock", dev=65024, ino=10979666, accepted=17,
                     tcp=(0, 0, 0, 0, 0, 0))
    body += future
    body += st_rec("engine", [("next_id", 1060)])
    body += st_program("app", cfg_program(CMD, environment=ENV, stdout="/var/log/baton/app.out",
                                       directory="/srv/app", user="www-data"),
                    generation=2, nslots=3, counters=(1059, 1057, 1055, 2, 1, 0, 1),
                    lat=[900, 100, 40, 10, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    body += st_slot("app", 0, generation=2)
    body += st_slot("app", 1, generation=2, last_exit="exit=0 after draining")
    body += st_slot("app", 2, state="BACKOFF", failures=2, generation=2,
                 last_exit="killed by SIGSEGV", due=26741500)
    body += st_worker("app", 0, 11150, 12, out=(15, "half a li", 0), err=(17, "", 3),
                   timer=26740884, active=2, handed=530, acked=528)
    body += st_conn("app", 11150, 1, 1057, 21, "web", "127.0.0.1:40000", handed_ms=26740990)
    body += st_conn("app", 11150, 0, 1058, 22, "local", "unix")
    body += st_worker("app", 1, 11151, 13, state="DRAINING", out=(18, "", 0), err=(20, "\x00\xff", 0),
                   timer=26770000, why="drained by the operator", retiring=1, handed=527,
                   acked=527)
    body += st_conn("app", 0, 0, 1059, 23, "web", "[::1]:51234")
    body += st_program("cat", cfg_program("/bin/cat", workers="0", restart="never",
                                       stop_signal="INT", heartbeat_timeout="0ms",
                                       stdout="inherit", stderr="/var/log/baton/cat err.log"),
                    nslots=0)
    body += st_rec("http", [("fd", 11), ("bound", "127.0.0.1:9180"), ("refused", 4)])
    body += st_control()
    body += st_rec("control_client", [("fd", 24), ("uid", 0), ("pid", 4242), ("full", 1),
                                   ("pending", "> /usr/local/bin/batond checked the state; "
                                               "executing it\n")])
    body += st_reexec()
    return body


def preflight_body():
    """What the preflight check gets: no requester, no old binary yet."""
    body = batond_rec(2)
    body += st_rec("baton", cfg_baton(http="", log_file="", control_mode="0600"))
    body += log_rec(path="", fd=-1)
    body += st_listener("http", cfg_listener("tcp:127.0.0.1:0", program="web"), 7,
                     "127.0.0.1:35365")
    body += st_rec("engine", [("next_id", 1)])
    body += st_program("web", cfg_program("/usr/local/bin/baton-http", ready_timeout="5000ms",
                                       drain_timeout="10000ms", stop_timeout="5000ms"))
    body += st_slot("web", 0) + st_slot("web", 1)
    body += st_worker("web", 0, 2001, 12, timer=26740884, out=(15, "", 0), err=(17, "", 0))
    body += st_worker("web", 1, 2002, 13, state="STARTING", timer=26740885)
    body += st_control()
    body += st_reexec(old_exe=-1, commit_us=0)
    return body


def state_seeds():
    full = full_body()
    write("state", "full", sealed(full))
    write("state", "preflight", sealed(preflight_body()))
    minimal = (batond_rec() + st_rec("baton", cfg_baton()) + log_rec() + st_rec("engine", [("next_id", 1)])
               + st_control() + st_reexec())
    write("state", "minimal", sealed(minimal))
    write("state", "empty-body", sealed(b""))
    # What a newer build may add: optional records and fields this one skips.
    future = st_rec("future_thing", [("x", "1"), ("blob", bytes(range(256)))], required=False)
    write("state", "optional-unknown",
          sealed(full_body(extra_fields=[("cfg.from_the_future", "yes"), ("zz", "1")],
                           future=future)))
    write("state", "required-unknown", sealed(minimal + st_rec("future_thing", [("x", "1")])))
    write("state", "systemd-listeners",
          sealed(minimal + st_listener("web", cfg_listener("systemd"), 3, "127.0.0.1:80") +
                 st_listener("api", cfg_listener("systemd:api-sock"), 4, "unix:/run/api.sock")))
    write("state", "cfg-repeated",
          sealed(st_rec("baton", cfg_baton() + [("cfg.http", ""), ("cfg.log_level", "debug")]) +
                 st_rec("program", cfg_program(CMD) + [("cfg.command", "/bin/true"),
                                                    ("cfg.environment", "A=1")])))
    write("state", "cfg-bad-values",
          sealed(st_rec("baton", cfg_baton(control_mode="0999", http="unix:/x")) +
                 st_rec("listener", cfg_listener("tcp:999.0.0.1:80", program="bad name")) +
                 st_rec("program", cfg_program("'open", workers="5000", restart="sometimes",
                                            ready_timeout="0ms", stop_signal="STOP"))))
    # Keys without a default missing: restored empty (batond would refuse
    # the program for want of a command, not the listener).
    write("state", "cfg-required-missing",
          sealed(st_listener("web", cfg_listener("tcp:127.0.0.1:80")[1:], 7, "127.0.0.1:80") +
                 st_rec("program", [("name", "app"), ("cfg.workers", "1")])))
    write("state", "cfg-nul", sealed(st_rec("program", [("cfg.command", b"/bin/sh\0-c")])))
    write("state", "escapes",
          sealed(st_rec("escapes", [("all", bytes(range(256))), ("pct", "100%"), ("empty", ""),
                                 ("upper", "%4A")]) + b"+x\nk %4A%4a%ff\n"))
    # Broken: each one is refused, for one reason.
    body = minimal
    write("state", "bad-magic", b"baton-stat" + sealed(body)[len(b"baton-state"):])
    write("state", "version-2", sealed(body, version=2))
    write("state", "version-0", sealed(body, version=0))
    write("state", "length-short", sealed(body, length=len(body) - 1))
    write("state", "length-long", sealed(body, length=len(body) + 1))
    write("state", "truncated", sealed(body)[:-10])
    write("state", "checksum", sealed(body, checksum=fnv1a64(body) ^ 1))
    write("state", "no-header", body)
    write("state", "empty", b"")
    write("state", "unterminated", sealed(body[:-1]))
    write("state", "field-first", sealed(b"fd 3\n" + body))
    write("state", "bad-type", sealed(body + b"+Bad-Type\nk v\n"))
    write("state", "bad-key", sealed(body + b"+x\nBad-Key v\n"))
    write("state", "no-space", sealed(body + b"+x\nkeyvalue\n"))
    write("state", "empty-line", sealed(body + b"+x\n\n"))
    write("state", "escape-short", sealed(body + b"+x\nk %4\n"))
    write("state", "escape-hex", sealed(body + b"+x\nk %zz\n"))
    write("state", "control-byte", sealed(body + b"+x\nk a\tb\n"))
    write("state", "raw-space", sealed(body + b"+x\nk a b\n"))
    write("state", "high-byte", sealed(body + b"+x\nk caf\xc3\xa9\n"))


# ---- the HTTP endpoint's request heads (supervisor/httphead.c) ----

def httphead_seeds():
    heads = {
        "get-metrics": b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "head-readyz-query": b"HEAD /readyz?a=b#c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "absolute-form": b"GET http://h:9180/healthz HTTP/1.0\n\n",
        "leading-empty-lines": b"\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        "keepalive-10": b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n",
        "content-length-zero": b"GET / HTTP/1.1\r\nContent-Length:  000 \r\n\r\n",
        "content-length": b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "chunked": b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "folded": b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        "no-colon": b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "nul": b"GET /he\0lthz HTTP/1.1\r\n\r\n",
        "http2": b"GET / HTTP/2.0\r\n\r\n",
        "no-version": b"GET /x\r\n\r\n",
        "other-method": b"DELETE /healthz HTTP/1.1\r\n\r\n",
        "unknown-method": b"BREW /pot HTTP/1.1\r\n\r\n",
        "lowercase-method": b"get / HTTP/1.1\r\n\r\n",
        "double-space": b"GET  / HTTP/1.1\r\n\r\n",
        "asterisk": b"OPTIONS * HTTP/1.1\r\n\r\n",
        "pipelined": b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n",
        "unfinished": b"GET /metrics HTTP/1.1\r\nHost: x",
    }
    for name, data in heads.items():
        write("httphead", name, data)


if __name__ == "__main__":
    proto_seeds()
    ctl_seeds()
    config_seeds()
    state_seeds()
    httphead_seeds()
