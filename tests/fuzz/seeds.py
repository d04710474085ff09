#!/usr/bin/env python3
"""Write the hand-made seeds of tests/fuzz/corpus/{config,proto,ctl}/.

Run from anywhere: python3 tests/fuzz/seeds.py.  Seeds are named
seed-*; crash regressions found by the fuzzers are kept next to them as
crash-* (never rewritten here).  The proto seeds follow the input layout
of fuzz_proto.c: an fd-count byte, a receive-buffer byte, the message.
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


if __name__ == "__main__":
    proto_seeds()
    ctl_seeds()
    config_seeds()
