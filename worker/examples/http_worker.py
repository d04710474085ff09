#!/usr/bin/env python3
"""A baton worker in Python 3.11, standard library only: a tiny HTTP/1.1 server.

The wire format and every rule it follows are in worker/PROTOCOL.md.  In short:
the channel to batond is the SOCK_SEQPACKET socket on fd $BATON_FD (3).  Send
READY, then for each CONN one ACK for all its ids before touching the
connections, a DONE per connection when it closes, a HEARTBEAT every second.
DRAIN or channel EOF: take no more work, finish open connections, exit 0.
A malformed message from batond: message on stderr, exit 1.

Every `GET /` gets 200 "hello from python\n" (keep-alive unless the client
says `Connection: close`).  One thread per connection; channel sends share
a lock.  Config:  [program:py]  command = python3 worker/examples/http_worker.py
"""
import array, os, select, socket, struct, sys, threading, time

CAPACITY = 64
HDR = struct.Struct("<HHI")          # type, version (1), total length
ENTRY = struct.Struct("<Q32s64s")    # CONN entry: id, listener, peer (104 bytes)
CONN, DRAIN, STATUS, READY, ACK, DONE, HEARTBEAT = 1, 2, 3, 100, 101, 102, 103
CONN_MAX, HEAD_MAX, IDLE_SECS = 16, 16384, 60
BODY = b"hello from python\n"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 501: "Not Implemented"}

chan = None                    # the channel socket
send_lock = threading.Lock()   # one sender at a time on the channel
state = threading.Condition()  # guards `active`
active = 0                     # acked and not yet done
draining = False               # set once on DRAIN or EOF, never cleared


def send(mtype, body=b""):
    with send_lock:
        try:
            chan.send(HDR.pack(mtype, 1, HDR.size + len(body)) + body)
        except OSError:
            pass  # batond is gone: the main loop sees EOF and drains


def send_ids(mtype, ids):  # ACK or DONE: u16 count, 6 zero bytes, u64 ids
    send(mtype, struct.pack(f"<H6x{len(ids)}Q", len(ids), *ids))


def heartbeat():
    while True:
        send(HEARTBEAT, struct.pack("<II", active, CAPACITY))
        time.sleep(1)


def fail(why, fds=()):
    for fd in fds:
        os.close(fd)
    sys.stderr.write(f"http_worker[{os.getpid()}]: protocol error: {why}\n")
    sys.exit(1)


def text(field, fds):  # a NUL-padded text field: text, one NUL at least, only NULs after
    n = field.find(b"\0")
    if n < 0 or field[n:].strip(b"\0"):
        fail("text field not NUL-padded", fds)
    return field[:n].decode("utf-8", "replace")


def receive():
    """One record from batond as (type, body, fds), or None at EOF."""
    data, anc, flags, _ = chan.recvmsg(4096, socket.CMSG_SPACE(CONN_MAX * 4),
                                       socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, payload in anc:
        if level != socket.SOL_SOCKET or kind != socket.SCM_RIGHTS:
            fail("unexpected control message", fds)
        fds += array.array("i", payload[:len(payload) - len(payload) % 4])
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        fail("message or fds truncated", fds)
    if not data and not fds:
        return None
    if len(data) < HDR.size:
        fail(f"short message ({len(data)} bytes)", fds)
    mtype, version, length = HDR.unpack_from(data)
    if version != 1 or length != len(data):
        fail(f"bad header (type {mtype}, version {version}, length {length}/{len(data)})", fds)
    return mtype, data[HDR.size:], fds


def on_conn(body, fds):
    global active
    count, reserved = struct.unpack_from("<HH", body) if len(body) >= 4 else (0, 0)
    if not 1 <= count <= CONN_MAX or reserved or len(body) != 4 + count * ENTRY.size:
        fail(f"bad CONN (count {count}, {len(body)} body bytes)", fds)
    if len(fds) != count:
        fail(f"CONN of {count} with {len(fds)} fds", fds)
    conns = []
    for i in range(count):
        cid, listener, peer = ENTRY.unpack_from(body, 4 + i * ENTRY.size)
        conns.append((cid, text(listener, fds), text(peer, fds)))
    send_ids(ACK, [c[0] for c in conns])  # ack on receipt, before any I/O
    with state:
        active += count
    for (cid, _listener, _peer), fd in zip(conns, fds):
        threading.Thread(target=serve, args=(cid, fd), daemon=True).start()


def serve(cid, fd):
    global active
    try:
        try:
            sock = socket.socket(fileno=fd)  # owns fd from here on
        except OSError:
            os.close(fd)  # not a socket: nothing to serve
            return
        with sock:
            http_session(sock)
    except OSError:
        pass  # e.g. reset by the client
    finally:  # the connection is closed: give the credit back
        send_ids(DONE, [cid])
        with state:
            active -= 1
            state.notify_all()


def http_session(sock):
    poller, buf = select.poll(), b""
    poller.register(sock, select.POLLIN)

    def read_more(idle):
        """Append client bytes to buf; False when the connection should end."""
        nonlocal buf
        waited = 0.0
        while not poller.poll(500):  # wake up twice a second to notice a drain
            waited += 0.5
            if idle and (draining or waited >= IDLE_SECS):
                return False  # idle keep-alive connection: close it
        chunk = sock.recv(65536)
        buf += chunk
        return bool(chunk)

    while True:
        while b"\r\n\r\n" not in buf:
            if len(buf) > HEAD_MAX:
                return respond(sock, 431, False)
            if not read_more(idle=not buf):
                return
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return respond(sock, 400, False)
            headers[name.strip().lower()] = value.strip().lower()
        length = headers.get("content-length", "0")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not length.isdigit():
            return respond(sock, 400, False)
        if "transfer-encoding" in headers:
            return respond(sock, 501, False)
        method, target, version = parts
        tokens = [t.strip() for t in headers.get("connection", "").split(",")]
        keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        length = int(length)
        while len(buf) < length:  # discard a request body
            length -= len(buf)
            buf = b""
            if not read_more(idle=False):
                return
        buf = buf[length:]
        status = 405 if method not in ("GET", "HEAD") else 200 if target == "/" else 404
        keep = keep and not draining  # draining: answer this one, then close
        respond(sock, status, keep, head_only=method == "HEAD")
        if not keep:
            return


def respond(sock, status, keep, head_only=False):
    body = BODY if status == 200 else f"{status} {REASONS[status]}\n".encode()
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nX-Baton-Pid: {os.getpid()}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n")
    sock.sendall(head.encode("latin-1") + (b"" if head_only else body))


def main():
    global chan, draining
    try:
        chan = socket.socket(fileno=int(os.environ["BATON_FD"]))
        if chan.type != socket.SOCK_SEQPACKET:
            raise OSError("not a SOCK_SEQPACKET socket")
    except (KeyError, ValueError, OSError) as e:
        sys.exit(f"http_worker: no baton channel in BATON_FD ({e}): run me under batond")
    os.set_inheritable(chan.fileno(), False)
    send(READY, struct.pack("<II", CAPACITY, 0))
    threading.Thread(target=heartbeat, daemon=True).start()
    while (msg := receive()) is not None:  # None: EOF, batond is gone
        mtype, body, fds = msg
        if mtype == CONN:
            on_conn(body, fds)
        elif mtype not in (DRAIN, STATUS) or body or fds:
            fail(f"unexpected message type {mtype} ({len(body)} body bytes, {len(fds)} fds)", fds)
        elif mtype == STATUS:
            send(HEARTBEAT, struct.pack("<II", active, CAPACITY))
        else:
            break  # DRAIN
    draining = True
    with state:
        state.wait_for(lambda: active == 0)
    sys.exit(0)


if __name__ == "__main__":
    main()
