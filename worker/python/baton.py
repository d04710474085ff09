"""Serve Python servers behind batond, the hot-upgrade process supervisor.

batond accepts every client connection itself and hands the connected
socket to one of its workers over a private channel (the SOCK_SEQPACKET
socket on fd $BATON_FD, normally 3).  This module is the worker side of
that channel (worker/PROTOCOL.md, version 1), standard library only,
Python 3.9 or later.  Copy it next to your program or put its directory on
sys.path.

Three ways to use it, from the least to the most code:

A socketserver / http.server application, unchanged::

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import baton

    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"hello\\n")

    baton.serve(ThreadingHTTPServer, Hello)

A WSGI application, through wsgiref::

    baton.serve_wsgi(app)

An asyncio application, with the (reader, writer) callback of
asyncio.start_server, or a protocol factory::

    asyncio.run(baton.serve_asyncio(handle))

Each of them sends READY, acknowledges every connection the moment it
arrives (one ACK per CONN, before anything touches the sockets), reports
DONE when a connection's socket is closed, sends a HEARTBEAT every second
and answers STATUS, and on DRAIN (or when batond disappears) takes no
more work, lets the open connections finish and returns, so that the
program exits 0.  During a drain an http.server response says
"Connection: close" and its connection closes after it.

A connection is a BatonSocket: a socket.socket that sends DONE, exactly
once, when its file descriptor is closed (by close(), by the last of its
makefile() objects, or by the garbage collector).  Its baton_id,
baton_listener and baton_peer say which connection it is.

Protocol errors.  A malformed message from batond (PROTOCOL.md section 6)
is written to stderr as "PROG[PID]: protocol error: ...", the descriptors
that came with it are closed, nothing of it is acknowledged, and the
channel is shut down: batond stops sending work, re-dispatches what was
not acknowledged, and kills the worker after its stop_timeout.  The
connections already acknowledged are served to the end, then serve(),
serve_wsgi(), serve_asyncio() and Worker.connections() raise
ProtocolError, so that an uncaught error ends the program with status 1.

For a server of your own, Worker is the channel itself::

    worker = baton.get_worker(capacity=64)
    for sock in worker.connections():      # READY, heartbeats, STATUS, DRAIN
        threading.Thread(target=serve_client, args=(sock,)).start()
    # drained, and every connection closed: exit 0

Note: socket.recv_fds() ignores its flags argument (CPython issue
gh-107898; so in 3.9 to 3.13 at least), so it cannot receive descriptors
close-on-exec; this module calls recvmsg() with MSG_CMSG_CLOEXEC itself.
"""

import array
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from wsgiref import simple_server

__all__ = [
    "BatonError", "ProtocolError", "Worker", "BatonSocket", "get_worker",
    "serve", "ServerMixin", "HTTPHandlerMixin",
    "serve_wsgi", "WSGIServer", "WSGIRequestHandler",
    "serve_asyncio",
]

PROTOCOL_VERSION = 1
CONN, DRAIN, STATUS = 1, 2, 3                      # supervisor -> worker
READY, ACK, DONE, HEARTBEAT = 100, 101, 102, 103   # worker -> supervisor
CONN_MAX = 16                                      # connections in one CONN
IDS_MAX = 128                                      # ids in one ACK or DONE
HEARTBEAT_INTERVAL = 1.0                           # seconds

_HDR = struct.Struct("<HHI")          # type, version, total length
_ENTRY = struct.Struct("<Q32s64s")    # CONN entry: id, listener, peer
_RECV_BYTES = 4096                    # the largest message is 1676 bytes
_CMSG_ROOM = socket.CMSG_SPACE(CONN_MAX * array.array("i").itemsize)
_NAMES = {CONN: "CONN", DRAIN: "DRAIN", STATUS: "STATUS"}


class BatonError(Exception):
    """Something about the baton channel is wrong (for example: the program
    was not started by batond, so there is no channel)."""


class ProtocolError(BatonError):
    """batond sent something this worker cannot parse (PROTOCOL.md section 6).

    By the time it is raised the worker has logged it, closed the
    descriptors that came with the message and shut the channel down."""


def _prog():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return name[:-3] if name.endswith(".py") else name


def _log(message):
    """One line on stderr, which batond writes to its log; never raises."""
    try:
        sys.stderr.write(f"{_prog()}[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


class _QuietStream:
    """A text stream whose writes never fail: once batond is gone, the pipes
    it read the worker's stdout and stderr from are broken (PROTOCOL.md
    section 5.6), and a request handler that logs must not fail because
    of it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _env_int(name):
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else 0


def _parse_peer(peer):
    """A client_address tuple from CONN's peer text: ("1.2.3.4", 5678),
    ("::1", 5678), or ("unix", 0) for a Unix-socket listener."""
    host, sep, port = peer.rpartition(":")
    if sep and port.isdigit():
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host, int(port)
    return peer, 0


class BatonSocket(socket.socket):
    """A client connection batond handed to this worker.

    It is a socket.socket (TCP or Unix stream, blocking, close-on-exec)
    with three more attributes:

    baton_id        the connection's id (unique in this batond's life)
    baton_listener  the name of the [listener:NAME] that accepted it
    baton_peer      the client's address as batond wrote it:
                    "1.2.3.4:5678", "[::1]:5678" or "unix"

    When its file descriptor is closed (close(), the last makefile()
    object closed, or the garbage collector), the worker sends DONE for
    it, exactly once.  A dup() of it is a plain copy that sends nothing,
    and detach() hands the descriptor over without a DONE: call
    Worker.done(sock.baton_id) yourself when that descriptor is closed.
    """

    baton_id = 0
    baton_listener = ""
    baton_peer = ""
    _baton_worker = None

    def _real_close(self, _ss=socket.socket):
        try:
            _ss._real_close(self)
        finally:
            worker = self._baton_worker
            if worker is not None:
                worker._release(self)

    def __del__(self):
        # Forgotten without close(): the socket module closes the descriptor
        # (with a ResourceWarning); the connection has ended all the same.
        try:
            super().__del__()
        finally:
            worker = self._baton_worker
            if worker is not None:
                try:
                    worker._release(self)
                except Exception:  # interpreter shutdown
                    pass

    @property
    def baton_address(self):
        """The client's address as a (host, port) tuple; ("unix", 0) for a
        Unix-socket listener."""
        return _parse_peer(self.baton_peer)


class Worker:
    """The channel to batond, and the state of this worker.

    Worker() opens the channel named by $BATON_FD (or fd), checks it is a
    SOCK_SEQPACKET socket and makes it close-on-exec.  Keep the object for
    the life of the process: batond reads a closed channel as "this worker
    is leaving".  Most programs use get_worker(), the process's one
    Worker, or let serve(), serve_wsgi() or serve_asyncio() use it.

    capacity   the most connections this worker wants at once, announced
               in READY; 0 (the default) leaves it to the program's
               `capacity =` in batond's config.
    heartbeat_interval   seconds between HEARTBEATs (1 s, PROTOCOL.md 5.8).

    Attributes (read-only): program, slot and generation from batond's
    environment; active (connections acknowledged and not yet closed);
    draining (no more work wanted: DRAIN, channel EOF, a protocol error or
    leave()); channel_open; error (the ProtocolError, if one happened).

    One thread at a time may receive; sending is thread-safe.
    """

    def __init__(self, fd=None, capacity=0, heartbeat_interval=HEARTBEAT_INTERVAL):
        if fd is None:
            value = os.environ.get("BATON_FD")
            if value is None:
                raise BatonError("BATON_FD is not set: run this program under batond")
            try:
                fd = int(value)
            except ValueError:
                raise BatonError(f"BATON_FD is not a number: {value!r}") from None
        try:
            chan = socket.socket(fileno=fd)
        except OSError as e:
            raise BatonError(f"no baton channel on fd {fd} ({e}): run this program under batond") from None
        if chan.type != socket.SOCK_SEQPACKET:
            chan.detach()
            raise BatonError(f"fd {fd} is not a SOCK_SEQPACKET socket: run this program under batond")
        os.set_inheritable(fd, False)
        self._chan = chan
        self._fd = fd
        self._capacity = self._check_capacity(capacity)
        self.heartbeat_interval = heartbeat_interval
        self.program = os.environ.get("BATON_PROGRAM", "")
        self.slot = _env_int("BATON_WORKER")
        self.generation = _env_int("BATON_GENERATION")
        # re-entrant: a socket the garbage collector closes in the middle of
        # a send sends its DONE from the same thread
        self._send_lock = threading.RLock()
        self._cond = threading.Condition()   # guards everything below
        self._active = 0
        self._draining = False
        self._channel_open = True
        self._error = None
        self._ready_sent = False
        self._last_heartbeat = 0.0
        self._drain_callbacks = []
        self._listeners = []

    # ------------------------------------------------------------ state

    @staticmethod
    def _check_capacity(capacity):
        capacity = int(capacity)
        if not 0 <= capacity <= 0xFFFFFFFF:
            raise ValueError(f"capacity out of range: {capacity}")
        return capacity

    @property
    def capacity(self):
        """The capacity announced in READY (0: batond's setting)."""
        return self._capacity

    @capacity.setter
    def capacity(self, value):
        value = self._check_capacity(value)
        with self._cond:
            if self._ready_sent and value != self._capacity:
                raise ValueError("capacity is announced once, in READY, which was already sent")
            self._capacity = value

    @property
    def active(self):
        """Connections acknowledged and not yet closed."""
        return self._active

    @property
    def draining(self):
        """True once this worker takes no more work: DRAIN arrived, batond
        is gone, a protocol error happened, or leave() was called."""
        return self._draining

    @property
    def channel_open(self):
        """False after channel EOF, a protocol error or leave()."""
        return self._channel_open

    @property
    def error(self):
        """The ProtocolError that ended the channel, or None."""
        return self._error

    def fileno(self):
        """The channel's file descriptor (for select/poll/add_reader)."""
        return self._fd

    def on_drain(self, callback):
        """Call callback() once when this worker starts draining (at once if
        it already is), from the thread that reads the channel.  Use it to
        tell kept-alive connections to close after their next response."""
        with self._cond:
            if not self._draining:
                self._drain_callbacks.append(callback)
                return
        callback()

    def _add_listener(self, fn):
        with self._cond:
            self._listeners.append(fn)

    def _remove_listener(self, fn):
        with self._cond:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _changed(self):
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:
                pass

    def _start_draining(self, why=None):
        with self._cond:
            if self._draining:
                return
            self._draining = True
            callbacks, self._drain_callbacks = self._drain_callbacks, []
            active = self._active
            self._cond.notify_all()
        if why:
            _log(f"{why}: {active} connections open")
        for cb in callbacks:
            try:
                cb()
            except Exception as e:  # a callback must not stop the drain
                _log(f"drain callback failed: {e!r}")
        self._changed()

    def wait_idle(self, timeout=None):
        """Wait until no connection is active; True if none is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    # ------------------------------------------------------------ sending

    def _send(self, mtype, body=b""):
        """Send one record; False if the channel is gone (PROTOCOL.md 5.6:
        then sends are ignored)."""
        data = _HDR.pack(mtype, PROTOCOL_VERSION, _HDR.size + len(body)) + body
        with self._send_lock:
            while self._channel_open:
                try:
                    self._chan.send(data, socket.MSG_NOSIGNAL)
                    return True
                except (BlockingIOError, InterruptedError):
                    # someone made fd 3 non-blocking: wait for room, send the
                    # same record again (never drop one)
                    poller = select.poll()
                    poller.register(self._fd, select.POLLOUT)
                    poller.poll(1000)
                except OSError:
                    return False
            return False

    def _send_ids(self, mtype, ids):
        for i in range(0, len(ids), IDS_MAX):
            part = ids[i:i + IDS_MAX]
            self._send(mtype, struct.pack(f"<H6x{len(part)}Q", len(part), *part))

    def ready(self):
        """Send READY (once; later calls do nothing).  The serve functions
        call it when they start; call it yourself only with Worker.receive()."""
        with self._cond:
            if self._ready_sent:
                return
            self._ready_sent = True
        self._send(READY, struct.pack("<II", self._capacity, 0))
        self._last_heartbeat = time.monotonic()

    def heartbeat(self):
        """Send a HEARTBEAT now: active connections and announced capacity."""
        self._last_heartbeat = time.monotonic()
        self._send(HEARTBEAT, struct.pack("<II", self._active, self._capacity))

    def maybe_heartbeat(self):
        """Send a HEARTBEAT if heartbeat_interval has passed since the last."""
        if self._ready_sent and time.monotonic() - self._last_heartbeat >= self.heartbeat_interval:
            self.heartbeat()

    def done(self, conn_id):
        """Report a connection finished.  Only for a descriptor you took with
        BatonSocket.detach(): closing a BatonSocket does this by itself."""
        # DONE first: whoever waits for active == 0 may exit the process
        # at once, and the DONE must be on the channel by then
        self._send_ids(DONE, [conn_id])
        with self._cond:
            self._active -= 1
            self._cond.notify_all()
        self._changed()

    def _release(self, sock):
        with self._cond:  # exactly once, whichever thread closes first
            if sock._baton_worker is not self:
                return
            sock._baton_worker = None
        self.done(sock.baton_id)

    def leave(self):
        """Take no more work and tell batond so by shutting the channel down.

        For a program that stops on its own (not after DRAIN): batond sends
        no more connections, hands the ones not yet acknowledged to other
        workers, and kills this process after its stop_timeout, so finish
        the open connections and exit before that."""
        with self._cond:
            was_open, self._channel_open = self._channel_open, False
        if was_open:
            try:
                self._chan.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._start_draining()

    # ------------------------------------------------------------ receiving

    def receive(self, timeout=None):
        """Read and handle one message from batond, waiting up to timeout
        seconds (None: until one comes) for it.  Returns the new
        connections, as BatonSockets, already acknowledged: a CONN's ids
        all in one ACK, sent before this returns.  STATUS is answered with
        a HEARTBEAT; DRAIN and channel EOF make the worker draining.  Once
        the channel is closed, it waits for a connection to end instead.
        Raises ProtocolError for a malformed message."""
        if not self._channel_open:
            with self._cond:
                self._cond.wait(timeout)
            return []
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            return []
        try:
            data, anc, flags, _ = self._chan.recvmsg(
                _RECV_BYTES, _CMSG_ROOM, socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except ConnectionResetError:  # batond exited with our messages unread
            data, anc, flags = b"", [], 0
        except OSError as e:
            if not self._channel_open:  # leave() from another thread
                return []
            raise
        return self._handle(data, anc, flags)

    def _fail(self, why, fds):
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        err = ProtocolError(why)
        _log(f"protocol error: {why}")
        with self._cond:
            if self._error is None:
                self._error = err
        self.leave()
        return err

    def _handle(self, data, anc, flags):
        fds = []
        stray = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", payload[:len(payload) - len(payload) % 4])
            else:
                stray = (level, kind)
        if stray:
            raise self._fail(f"unexpected control message {stray}", fds)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise self._fail("message or its fds truncated", fds)
        if not data:
            if fds:
                raise self._fail(f"empty record with {len(fds)} fds", fds)
            with self._cond:
                was_open, self._channel_open = self._channel_open, False
            if not was_open:  # our own leave(), from another thread
                return []
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name, None)
                if stream is not None and not isinstance(stream, _QuietStream):
                    setattr(sys, name, _QuietStream(stream))
            self._start_draining("channel closed: batond is gone")
            with self._cond:
                self._cond.notify_all()
            return []
        if len(data) < _HDR.size:
            raise self._fail(f"short message ({len(data)} bytes)", fds)
        mtype, version, length = _HDR.unpack_from(data)
        if version != PROTOCOL_VERSION or length != len(data):
            raise self._fail(f"bad header (type {mtype}, version {version}, "
                             f"length {length}, {len(data)} bytes received)", fds)
        body = data[_HDR.size:]
        if mtype == CONN:
            return self._on_conn(body, fds)
        if mtype not in (DRAIN, STATUS) or body or fds:
            raise self._fail(f"unexpected message type {mtype} ({len(body)} body bytes, "
                             f"{len(fds)} fds)", fds)
        if mtype == STATUS:
            self.heartbeat()
        else:
            self._start_draining("draining")
        return []

    def _on_conn(self, body, fds):
        count, reserved = struct.unpack_from("<HH", body) if len(body) >= 4 else (0, 0)
        if not 1 <= count <= CONN_MAX or reserved or len(body) != 4 + count * _ENTRY.size:
            raise self._fail(f"bad CONN (count {count}, reserved {reserved}, "
                             f"{len(body)} body bytes)", fds)
        if len(fds) != count:
            raise self._fail(f"CONN of {count} with {len(fds)} fds", fds)
        entries = []
        for i in range(count):
            cid, listener, peer = _ENTRY.unpack_from(body, 4 + i * _ENTRY.size)
            texts = []
            for field in (listener, peer):
                n = field.find(b"\0")
                if n < 0 or field[n:].strip(b"\0"):
                    raise self._fail("CONN text field not NUL-padded", fds)
                texts.append(field[:n].decode("utf-8", "replace"))
            entries.append((cid, texts[0], texts[1]))
        # Acknowledge on receipt, before anything touches the descriptors
        # (PROTOCOL.md 5.3): until then the connections are batond's.
        with self._cond:
            self._active += count
        self._send_ids(ACK, [e[0] for e in entries])
        socks = []
        for (cid, listener, peer), fd in zip(entries, fds):
            try:
                sock = BatonSocket(fileno=fd)
            except OSError as e:  # not a socket: nothing to serve
                _log(f"connection {cid} is not a socket ({e}): closed")
                os.close(fd)
                self.done(cid)
                continue
            sock.baton_id, sock.baton_listener, sock.baton_peer = cid, listener, peer
            sock._baton_worker = self
            socks.append(sock)
        return socks

    def connections(self, poll_interval=0.5):
        """Yield each connection batond hands this worker, until it has
        drained and every connection is closed.

        Sends READY first, heartbeats, answers STATUS.  Hand each socket to
        a thread (or another loop) and return quickly: nothing is read from
        the channel while the loop body runs.  Close each socket when done
        with it (that sends DONE).  Raises ProtocolError at the end, after
        the open connections have finished, if batond sent something
        malformed."""
        self.ready()
        while True:
            try:
                wait = 0.1 if self._draining else poll_interval
                socks = self.receive(wait)
            except ProtocolError:
                socks = []
            for sock in socks:
                yield sock
            self.maybe_heartbeat()
            if self._draining and self._active == 0:
                break
        if self._error is not None:
            raise self._error


_default_worker = None
_default_lock = threading.Lock()


def get_worker(capacity=None):
    """The process's Worker on $BATON_FD, opened on the first call.

    capacity, if given, is what READY will announce; it cannot change once
    READY was sent.  Raises BatonError when the program was not started
    by batond."""
    global _default_worker
    with _default_lock:
        if _default_worker is None:
            _default_worker = Worker(capacity=capacity or 0)
        elif capacity is not None:
            _default_worker.capacity = capacity
        return _default_worker


def _pick_worker(worker, capacity):
    if worker is None:
        return get_worker(capacity)
    if capacity is not None:
        worker.capacity = capacity
    return worker


# ---------------------------------------------------------------- socketserver


class HTTPHandlerMixin:
    """For http.server.BaseHTTPRequestHandler subclasses: while the worker
    drains, every response carries "Connection: close" (a "keep-alive" the
    handler sends becomes "close") and its connection closes after it.
    A response on a connection the handler closes anyway (the client sent
    "Connection: close", or HTTP/1.0 without keep-alive) says so too, if
    the handler did not: http.server leaves it out, and an HTTP/1.1 client
    would otherwise take the close for an error.

    serve() and ServerMixin add it to a BaseHTTPRequestHandler subclass by
    themselves; list it first in your handler's bases to do it yourself.

    A kept-alive connection that is idle when the drain starts is not cut
    (PROTOCOL.md 5.5: a request may already be on its way): it closes after
    its next response, when the client leaves, or when the handler's
    `timeout` passes."""

    def _baton_draining(self):
        worker = getattr(self.server, "baton_worker", None)
        return worker is not None and worker.draining

    def send_response_only(self, code, message=None):
        self._baton_connection_sent = False
        super().send_response_only(code, message)

    def send_header(self, keyword, value):
        if keyword.lower() == "connection":
            self._baton_connection_sent = True
            if self._baton_draining():
                value = "close"
        super().send_header(keyword, value)

    def end_headers(self):
        if (not getattr(self, "_baton_connection_sent", False)
                and (getattr(self, "close_connection", True) or self._baton_draining())
                and self.request_version != "HTTP/0.9"):
            self.send_header("Connection", "close")
        super().end_headers()


class ServerMixin:
    """Serve a socketserver server's connections from batond instead of a
    listening socket.  List it first in the bases of a socketserver.TCPServer
    subclass that has socketserver.ThreadingMixIn (serve() builds such a
    class for you)::

        class Server(baton.ServerMixin, ThreadingHTTPServer): pass
        with Server(Handler, capacity=64) as server:
            server.serve_forever()

    The constructor takes the handler class (no address: nothing is bound)
    and the keyword arguments worker (a Worker, default get_worker()) and
    capacity.  get_request() returns the connections batond hands over,
    acknowledged, with client_address parsed from batond's peer text;
    fileno() is the channel, so serve_forever() wakes for batond's
    messages.  serve_forever() sends READY, heartbeats, answers STATUS; on
    DRAIN or channel EOF it stops taking work, keeps serving the open
    connections, and returns when the last one is closed.  shutdown() from
    another thread makes the worker leave() and drain the same way.  After
    a protocol error serve_forever() raises ProtocolError, once the open
    connections have ended.  Each connection runs in its own thread, so
    that the channel is read (and connections acknowledged) while others
    are served; forking servers are not supported (a child's close would
    not report DONE).  A BaseHTTPRequestHandler subclass gets
    HTTPHandlerMixin.  A client that leaves mid-request (reset, broken
    pipe) ends its connection without a traceback on stderr.
    """

    baton_worker = None

    def __init__(self, RequestHandlerClass, *, worker=None, capacity=None, **kwargs):
        if hasattr(socketserver, "ForkingMixIn") and isinstance(self, socketserver.ForkingMixIn):
            raise TypeError("baton serves connections in threads: ForkingMixIn is not supported")
        if not isinstance(self, socketserver.ThreadingMixIn):
            raise TypeError(f"{type(self).__name__} needs socketserver.ThreadingMixIn "
                            "(or use baton.serve(), which adds it)")
        if (isinstance(RequestHandlerClass, type)
                and issubclass(RequestHandlerClass, BaseHTTPRequestHandler)
                and not issubclass(RequestHandlerClass, HTTPHandlerMixin)):
            RequestHandlerClass = _with_mixin(HTTPHandlerMixin, RequestHandlerClass)
        self.baton_worker = _pick_worker(worker, capacity)
        self._baton_pending = []
        self._baton_stopping = False
        address = "" if getattr(self, "address_family", None) == getattr(socket, "AF_UNIX", None) else ("", 0)
        super().__init__(address, RequestHandlerClass, bind_and_activate=False, **kwargs)
        # TCPServer made a listening socket we never use: give its fd back.
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if not getattr(self, "server_name", None):
            self.server_name = socket.gethostname()
            self.server_port = 0

    def fileno(self):
        """The channel to batond: readable when batond has sent something."""
        return self.baton_worker.fileno()

    def _baton_receive(self, timeout):
        try:
            self._baton_pending += self.baton_worker.receive(timeout)
        except ProtocolError:
            pass
        self._baton_check_stop()

    def _baton_check_stop(self):
        if self.baton_worker.draining and not self._baton_stopping:
            self._baton_stopping = True
            # shutdown() waits for serve_forever() to return: not from its thread
            threading.Thread(target=self.shutdown, name="baton-stop", daemon=True).start()

    def get_request(self):
        """The next connection from batond, acknowledged: (sock, client_address)."""
        if not self._baton_pending:
            self._baton_receive(0)
        if not self._baton_pending:
            raise OSError("no connection from batond")  # serve_forever ignores it
        sock = self._baton_pending.pop(0)
        return sock, sock.baton_address

    def _baton_dispatch(self):
        # as BaseServer._handle_request_noblock, for the rest of a CONN
        while self._baton_pending:
            request = self._baton_pending.pop(0)
            client_address = request.baton_address
            try:
                if self.verify_request(request, client_address):
                    self.process_request(request, client_address)
                else:
                    self.shutdown_request(request)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except BaseException:
                self.shutdown_request(request)
                raise

    def handle_error(self, request, client_address):
        """A client that went away mid-request (reset, broken pipe) is
        ordinary, not an error to print a traceback for; anything else is
        reported as socketserver does."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def service_actions(self):
        super().service_actions()
        self._baton_dispatch()
        self.baton_worker.maybe_heartbeat()
        self._baton_check_stop()

    def serve_forever(self, poll_interval=0.5):
        """Serve until drained and idle (see the class documentation)."""
        worker = self.baton_worker
        worker.ready()
        super().serve_forever(poll_interval)
        self._baton_stopping = True
        if not worker.draining:  # shutdown() by the program itself
            worker.leave()
        # Draining: nothing new is wanted, but a CONN sent before the DRAIN
        # still gets acknowledged and served, STATUS answered, EOF noticed.
        while True:
            self._baton_dispatch()
            worker.maybe_heartbeat()
            if worker.active == 0 and not self._baton_pending:
                break
            self._baton_receive(0.1)
        if worker.error is not None:
            raise worker.error


def _with_mixin(mixin, cls, extra=None):
    return type(cls.__name__, (mixin, cls), dict(extra or {}, __module__=cls.__module__,
                                                  __qualname__=cls.__qualname__,
                                                  __doc__=cls.__doc__))


def serve(server_class, handler_class, *, worker=None, capacity=None, poll_interval=0.5):
    """Run a socketserver application (http.server included) behind batond.

    server_class is a socketserver.TCPServer subclass such as
    http.server.ThreadingHTTPServer or HTTPServer; it gets ServerMixin and,
    if it lacks it, socketserver.ThreadingMixIn (daemon threads).  It is
    created without binding anything and serves the connections batond
    hands over until it drains; then serve() returns, once the last
    connection has closed, and the program should exit 0.  handler_class
    is the request handler, unchanged (a BaseHTTPRequestHandler subclass
    gets HTTPHandlerMixin: "Connection: close" during a drain).

    capacity is announced in READY (None or 0: batond's setting).  Raises
    ProtocolError after a protocol error (once the open connections have
    ended), BatonError when not run by batond, TypeError for a forking
    server."""
    cls = server_class
    if not issubclass(cls, ServerMixin):
        bases = [ServerMixin]
        extra = {}
        if not issubclass(cls, socketserver.ThreadingMixIn):
            bases.append(socketserver.ThreadingMixIn)
            extra["daemon_threads"] = True
        cls = type(cls.__name__, (*bases, cls), dict(extra, __module__=cls.__module__,
                                                       __doc__=cls.__doc__))
    server = cls(handler_class, worker=worker, capacity=capacity)
    with server:
        server.serve_forever(poll_interval)


# ---------------------------------------------------------------- WSGI


class WSGIRequestHandler(HTTPHandlerMixin, simple_server.WSGIRequestHandler):
    """wsgiref's request handler behind baton.  One request per connection
    (as wsgiref does), with environ["wsgi.multithread"] true, SERVER_NAME
    and SERVER_PORT from the connection's local address, and
    environ["baton.listener"], environ["baton.peer"], environ["baton.id"]."""

    def get_environ(self):
        env = super().get_environ()
        sock = self.connection
        env["baton.listener"] = getattr(sock, "baton_listener", "")
        env["baton.peer"] = getattr(sock, "baton_peer", "")
        env["baton.id"] = getattr(sock, "baton_id", 0)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                host, port = sock.getsockname()[:2]
                env["SERVER_NAME"], env["SERVER_PORT"] = host, str(port)
            except OSError:
                pass
        return env

    def handle(self):
        # wsgiref.simple_server.WSGIRequestHandler.handle, multithreaded
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = simple_server.ServerHandler(self.rfile, self.wfile, self.get_stderr(),
                                              self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())


class _QuietWSGIRequestHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class WSGIServer(ServerMixin, socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """wsgiref's WSGIServer behind baton: one thread per connection.
    WSGIServer(app, handler_class=WSGIRequestHandler, worker=None,
    capacity=None), then serve_forever()."""

    daemon_threads = True

    def __init__(self, app, handler_class=WSGIRequestHandler, **kwargs):
        super().__init__(handler_class, **kwargs)
        self.setup_environ()
        self.set_app(app)


def serve_wsgi(app, *, handler_class=None, log_requests=True, worker=None, capacity=None,
               poll_interval=0.5):
    """Run a WSGI application behind batond with wsgiref, until drained.

    Like wsgiref.simple_server.make_server(...).serve_forever(), with the
    connections coming from batond, one thread per connection (wsgiref
    answers one request per connection, HTTP/1.0 style).  log_requests=False
    leaves out wsgiref's line per request on stderr (batond's log).
    Returns once drained and idle; raises as serve() does."""
    if handler_class is None:
        handler_class = WSGIRequestHandler if log_requests else _QuietWSGIRequestHandler
    with WSGIServer(app, handler_class, worker=worker, capacity=capacity) as server:
        server.serve_forever(poll_interval)


# ---------------------------------------------------------------- asyncio


async def serve_asyncio(client_connected_cb=None, *, protocol_factory=None, worker=None,
                        capacity=None, limit=2 ** 16):
    """Serve batond's connections in the running asyncio event loop.

    Give exactly one of:

    client_connected_cb(reader, writer)  as for asyncio.start_server: called
        (or, if a coroutine function, run as a task) with a StreamReader
        and StreamWriter for each connection; close the writer when done.
        An exception it raises is reported to the loop's exception handler
        and closes the connection.
    protocol_factory  as for loop.connect_accepted_socket(): an
        asyncio.Protocol per connection.

    The channel is read in the loop (loop.add_reader on its fd), each
    connection acknowledged before it is made non-blocking and attached
    with loop.connect_accepted_socket(); heartbeats run on the loop, so
    a loop blocked longer than heartbeat_timeout is seen as hung by
    batond, as it should be.  Returns when the worker has drained (DRAIN,
    channel EOF) and every connection is closed; raises ProtocolError after
    a protocol error, once the open connections have ended.  During a
    drain, get_worker().draining is true: answer with "Connection: close".
    limit is the StreamReader buffer limit."""
    import asyncio  # here: a worker that does not use it starts faster
    import inspect
    if (client_connected_cb is None) == (protocol_factory is None):
        raise TypeError("give exactly one of client_connected_cb and protocol_factory")
    loop = asyncio.get_running_loop()
    w = _pick_worker(worker, capacity)
    fd = w.fileno()
    finished = loop.create_future()
    tasks = set()

    async def run_cb(reader, writer):
        try:
            res = client_connected_cb(reader, writer)
            if inspect.isawaitable(res):
                await res
        except Exception as e:
            loop.call_exception_handler({"message": "baton: client_connected_cb failed",
                                         "exception": e})
            writer.close()

    def make_protocol():
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, run_cb, loop=loop)

    async def attach(sock):
        try:
            await loop.connect_accepted_socket(protocol_factory or make_protocol, sock)
        except BaseException as e:
            sock.close()
            if isinstance(e, Exception):
                loop.call_exception_handler({"message": "baton: cannot attach a connection",
                                             "exception": e})
            else:
                raise

    def check():
        if not finished.done() and w.draining and w.active == 0:
            finished.set_result(None)

    def on_channel():
        try:
            socks = w.receive(0)
        except ProtocolError:
            socks = []
        for sock in socks:
            sock.setblocking(False)  # ours now: acknowledged
            task = loop.create_task(attach(sock))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if not w.channel_open:
            loop.remove_reader(fd)
        check()

    timer = None

    def tick():
        nonlocal timer
        w.maybe_heartbeat()
        check()
        timer = loop.call_later(min(0.25, w.heartbeat_interval), tick)

    def from_any_thread():
        try:
            loop.call_soon_threadsafe(check)
        except RuntimeError:  # the loop is closed
            pass

    w._add_listener(from_any_thread)
    try:
        w.ready()
        if w.channel_open:
            loop.add_reader(fd, on_channel)
        tick()
        await finished
    finally:
        w._remove_listener(from_any_thread)
        if timer is not None:
            timer.cancel()
        loop.remove_reader(fd)
    if w.error is not None:
        raise w.error
