"""Unit tests of baton.py, the Python worker library, with the test playing
batond on a socketpair.  Standard library only; no network but socketpairs.

Run: python3 -m unittest -v test_baton   (in worker/python), or
     python3 worker/python/test_baton.py
The integration runner (tests/integration/python_lib_tests.py) runs them.
"""
import asyncio
import fcntl
import gc
import os
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import baton  # noqa: E402

CONN, DRAIN, STATUS, READY, ACK, DONE, HEARTBEAT = 1, 2, 3, 100, 101, 102, 103
HDR = struct.Struct("<HHI")


def conn_msg(entries, reserved=0, count=None):
    """CONN: entries of (id, listener bytes, peer bytes)."""
    body = struct.pack("<HH", len(entries) if count is None else count, reserved)
    for cid, listener, peer in entries:
        body += struct.pack("<Q32s64s", cid, listener, peer)
    return HDR.pack(CONN, 1, 8 + len(body)) + body


def ids_msg(mtype, ids):
    return HDR.pack(mtype, 1, 16 + 8 * len(ids)) + struct.pack(f"<H6x{len(ids)}Q", len(ids), *ids)


def header(mtype):
    return HDR.pack(mtype, 1, 8)


class Fake:
    """The supervisor's end of a channel; .child is the worker's end."""

    def __init__(self):
        self.sup, self.child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sup.settimeout(5)

    def worker(self, capacity=0):
        self.w = baton.Worker(fd=self.child.detach(), capacity=capacity)
        return self.w

    def send(self, data, fds=()):
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
        self.sup.sendmsg([data], anc)

    def recv(self, want, timeout=5):
        """The next message of type want, skipping heartbeats; raw bytes."""
        self.sup.settimeout(timeout)
        while True:
            data = self.sup.recv(4096)
            if not data:
                raise ConnectionError("worker closed the channel")
            mtype = struct.unpack_from("<H", data)[0]
            if mtype != HEARTBEAT or want == HEARTBEAT:
                assert mtype == want, (want, data)
                return data

    def pending(self):
        """Every message waiting now, as (type, bytes); b'' at EOF."""
        out = []
        self.sup.setblocking(False)
        try:
            while True:
                data = self.sup.recv(4096)
                if not data:
                    out.append((None, b""))
                    break
                out.append((struct.unpack_from("<H", data)[0], data))
        except BlockingIOError:
            pass
        finally:
            self.sup.settimeout(5)
        return out

    def conn(self, ids, listener=b"v4", peer=b"127.0.0.1:5555"):
        """Send a CONN of stream socketpairs; returns the client ends."""
        pairs = [socket.socketpair() for _ in ids]
        self.send(conn_msg([(i, listener, peer) for i in ids]), [p[1].fileno() for p in pairs])
        for _, server in pairs:
            server.close()
        for client, _ in pairs:
            client.settimeout(5)
        return [client for client, _ in pairs]

    def close(self):
        self.sup.close()
        self.child.close()
        if getattr(self, "w", None) is not None:
            self.w._chan.close()  # a real worker never closes it: it exits


class WorkerTest(unittest.TestCase):
    def setUp(self):
        self.fake = Fake()
        self.addCleanup(self.fake.close)

    def test_ready_and_heartbeat_bytes(self):
        w = self.fake.worker(capacity=64)
        w.ready()
        w.ready()  # once only
        self.assertEqual(self.fake.recv(READY), bytes.fromhex("6400010010000000 4000000000000000"))
        w.heartbeat()
        self.assertEqual(self.fake.recv(HEARTBEAT), struct.pack("<HHIII", HEARTBEAT, 1, 16, 0, 64))
        self.assertEqual(self.fake.pending(), [])
        with self.assertRaises(ValueError):
            w.capacity = 8
        w.capacity = 64  # the same value is fine

    def test_conn_acked_in_one_message_before_any_io(self):
        w = self.fake.worker()
        w.ready()
        self.fake.recv(READY)
        clients = self.fake.conn([7, 8], peer=b"[::1]:4242")
        socks = w.receive(5)
        # the ACK is on the channel by the time receive() returns
        self.assertEqual(self.fake.pending(), [(ACK, bytes.fromhex(
            "6500010020000000 0200000000000000 0700000000000000 0800000000000000"))])
        self.assertEqual([s.baton_id for s in socks], [7, 8])
        self.assertEqual({s.baton_listener for s in socks}, {"v4"})
        self.assertEqual(socks[0].baton_peer, "[::1]:4242")
        self.assertEqual(socks[0].baton_address, ("::1", 4242))
        self.assertEqual(w.active, 2)
        for s in socks:
            self.assertIsInstance(s, socket.socket)
            self.assertTrue(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
            self.assertTrue(s.getblocking())
        clients[0].sendall(b"ping")
        self.assertEqual(socks[0].recv(10), b"ping")
        for s in socks + clients:
            s.close()

    def test_peer_forms(self):
        for text, addr in (("1.2.3.4:5678", ("1.2.3.4", 5678)), ("[::1]:80", ("::1", 80)),
                           ("unix", ("unix", 0))):
            self.assertEqual(baton._parse_peer(text), addr)

    def test_close_sends_done_exactly_once(self):
        w = self.fake.worker()
        clients = self.fake.conn([1, 2, 3, 4])
        a, b, c, d = w.receive(5)
        self.fake.recv(ACK)
        a.close()
        self.assertEqual(self.fake.recv(DONE), bytes.fromhex("6600010018000000 0100000000000000 0100000000000000"))
        a.close()
        with b:  # a with block closes
            pass
        self.assertEqual(self.fake.recv(DONE), ids_msg(DONE, [2]))
        f = c.makefile("rb")  # the descriptor lives while the file does
        c.close()
        self.assertEqual(self.fake.pending(), [])
        f.close()
        self.assertEqual(self.fake.recv(DONE), ids_msg(DONE, [3]))
        copy = d.dup()  # a copy sends nothing
        copy.close()
        self.assertEqual(self.fake.pending(), [])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del d  # forgotten without close(): the collector closes it
            gc.collect()
        self.assertEqual(self.fake.recv(DONE), ids_msg(DONE, [4]))
        self.assertEqual(w.active, 0)
        self.assertEqual(self.fake.pending(), [])
        for cl in clients:
            cl.close()

    def test_done_from_many_threads(self):
        w = self.fake.worker()
        socks = []
        for n in range(4):  # 64 connections in 4 CONNs of 16
            clients = self.fake.conn(list(range(100 + 16 * n, 116 + 16 * n)))
            for cl in clients:
                cl.close()
            socks += w.receive(5)
            self.fake.recv(ACK)
        self.assertEqual(w.active, 64)
        start = threading.Barrier(8)

        def closer():
            start.wait()
            for s in socks:  # every socket closed by 8 threads at once
                s.close()
        threads = [threading.Thread(target=closer, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        done = []
        for _ in range(64):
            data = self.fake.recv(DONE)
            done += struct.unpack_from(f"<{(len(data) - 16) // 8}Q", data, 16)
        self.assertEqual(sorted(done), list(range(100, 164)))
        self.assertEqual(self.fake.pending(), [])
        self.assertEqual(w.active, 0)

    def test_status_answered_with_heartbeat(self):
        w = self.fake.worker(capacity=5)
        clients = self.fake.conn([9])
        socks = w.receive(5)
        self.fake.recv(ACK)
        self.fake.send(header(STATUS))
        self.assertEqual(w.receive(5), [])
        self.assertEqual(self.fake.recv(HEARTBEAT), struct.pack("<HHIII", HEARTBEAT, 1, 16, 1, 5))
        socks[0].close()
        clients[0].close()

    def test_drain_then_connections_end(self):
        w = self.fake.worker()
        called = []
        w.on_drain(lambda: called.append(1))
        clients = self.fake.conn([3])
        got = []
        finished = threading.Event()

        def run():
            for s in w.connections(poll_interval=0.1):
                got.append(s)
            finished.set()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.fake.recv(READY)
        self.fake.recv(ACK)
        self.fake.send(header(DRAIN))
        deadline = time.monotonic() + 5
        while not called and time.monotonic() < deadline:  # the reader thread calls it
            time.sleep(0.01)
        self.assertTrue(w.draining)
        self.assertEqual(called, [1])
        w.on_drain(lambda: called.append(2))  # already draining: at once
        self.assertEqual(called, [1, 2])
        # a CONN that arrives after DRAIN is still acknowledged and served
        late = self.fake.conn([4])
        self.assertEqual(self.fake.recv(ACK), ids_msg(ACK, [4]))
        self.assertFalse(finished.wait(0.3))  # two connections still open
        for s in list(got):
            s.close()
        self.assertTrue(finished.wait(5))
        t.join(5)
        self.assertEqual([s.baton_id for s in got], [3, 4])
        for cl in clients + late:
            cl.close()

    def test_eof_is_a_drain(self):
        for unread in (False, True):
            fake = Fake()
            w = fake.worker()
            w.ready()
            if unread:  # batond exits with READY unread: ECONNRESET, then 0 bytes
                fake.sup.close()
            else:
                fake.recv(READY)
                fake.sup.close()
            self.assertEqual(w.receive(5), [])
            self.assertTrue(w.draining)
            self.assertFalse(w.channel_open)
            self.assertIsNone(w.error)
            w.heartbeat()  # sends on a closed channel are ignored
            self.assertEqual(w.receive(0.01), [])
            fake.close()

    def test_leave_closes_the_channel(self):
        w = self.fake.worker()
        w.leave()
        self.assertTrue(w.draining)
        self.assertEqual(self.fake.sup.recv(100), b"")

    def test_malformed_messages(self):
        ok = [(9, b"v4", b"1.2.3.4:5")]
        cases = [
            ("short", b"\x03\x00\x01\x00", 0),
            ("version 2", HDR.pack(STATUS, 2, 8), 0),
            ("length > received", HDR.pack(STATUS, 1, 9), 0),
            ("STATUS with a body", HDR.pack(STATUS, 1, 12) + b"\0" * 4, 0),
            ("DRAIN with an fd", header(DRAIN), 1),
            ("a worker type", struct.pack("<HHIII", READY, 1, 16, 0, 0), 0),
            ("unknown type", HDR.pack(99, 1, 8), 0),
            ("CONN count 0", conn_msg([], count=0), 0),
            ("CONN count 17", conn_msg(ok * 17), 16),
            ("CONN 16 with 17 fds: MSG_CTRUNC", conn_msg(ok * 16), 17),
            ("CONN reserved", conn_msg(ok, reserved=1), 1),
            ("CONN count/length", conn_msg(ok, count=2), 1),
            ("CONN too few fds", conn_msg(ok * 2), 1),
            ("CONN too many fds", conn_msg(ok), 2),
            ("CONN no fds", conn_msg(ok), 0),
            ("CONN listener no NUL", conn_msg([(9, b"x" * 32, b"p")]), 1),
            ("CONN peer text after NUL", conn_msg([(9, b"v4", b"1.2.3.4\0junk")]), 1),
            ("empty record with an fd", b"", 1),
        ]
        for name, msg, nfds in cases:
            with self.subTest(name):
                fake = Fake()
                w = fake.worker()
                pairs = [socket.socketpair() for _ in range(nfds)]
                fake.send(msg, [p[1].fileno() for p in pairs])
                for _, c in pairs:
                    c.close()
                with self.assertRaises(baton.ProtocolError):
                    w.receive(5)
                self.assertIsInstance(w.error, baton.ProtocolError)
                self.assertTrue(w.draining)
                self.assertFalse(w.channel_open)
                # no ACK, and the channel is shut: batond reads EOF
                self.assertEqual(fake.pending(), [(None, b"")])
                for a, _ in pairs:  # what came with it was closed
                    a.settimeout(2)
                    self.assertEqual(a.recv(10), b"", name)
                    a.close()
                fake.close()

    def test_protocol_error_raised_after_open_connections_end(self):
        w = self.fake.worker()
        clients = self.fake.conn([5])
        got = []
        result = []

        def run():
            try:
                for s in w.connections(poll_interval=0.1):
                    got.append(s)
            except baton.ProtocolError as e:
                result.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.fake.recv(READY)
        self.fake.recv(ACK)
        self.fake.send(HDR.pack(99, 1, 8))
        time.sleep(0.3)
        self.assertEqual(result, [])  # connection 5 is still being served
        self.assertTrue(t.is_alive())
        got[0].close()
        t.join(5)
        self.assertEqual(len(result), 1)
        self.assertIn("unexpected message type 99", str(result[0]))
        clients[0].close()

    def test_not_under_batond(self):
        env = os.environ.pop("BATON_FD", None)
        try:
            with self.assertRaisesRegex(baton.BatonError, "BATON_FD is not set"):
                baton.Worker()
        finally:
            if env is not None:
                os.environ["BATON_FD"] = env
        r, wfd = os.pipe()
        try:
            with self.assertRaisesRegex(baton.BatonError, "run this program under batond"):
                baton.Worker(fd=r)
            a, b = socket.socketpair()
            with self.assertRaisesRegex(baton.BatonError, "not a SOCK_SEQPACKET"):
                baton.Worker(fd=a.fileno())
            a.recv(0)  # still open: not closed by the failed Worker
            a.close()
            b.close()
        finally:
            os.close(r)
            os.close(wfd)


class AsyncioTest(unittest.TestCase):
    def setUp(self):
        self.fake = Fake()
        self.addCleanup(self.fake.close)

    def test_streams_echo_done_and_drain(self):
        w = self.fake.worker(capacity=3)
        events = []

        async def echo(reader, writer):
            events.append(writer.get_extra_info("peername"))
            while (data := await reader.read(100)):
                writer.write(data.upper())
                await writer.drain()
            writer.close()

        async def main():
            await baton.serve_asyncio(echo, worker=w)
            return "returned"

        out = []
        t = threading.Thread(target=lambda: out.append(asyncio.run(main())), daemon=True)
        t.start()
        f = self.fake
        self.assertEqual(f.recv(READY), struct.pack("<HHIII", READY, 1, 16, 3, 0))
        self.assertEqual(f.recv(HEARTBEAT), struct.pack("<HHIII", HEARTBEAT, 1, 16, 0, 3))
        clients = f.conn([21, 22])
        self.assertEqual(f.recv(ACK), ids_msg(ACK, [21, 22]))
        for i, cl in enumerate(clients):
            cl.sendall(b"abc%d" % i)
            self.assertEqual(cl.recv(10), b"ABC%d" % i)
        f.send(header(STATUS))
        self.assertEqual(f.recv(HEARTBEAT), struct.pack("<HHIII", HEARTBEAT, 1, 16, 2, 3))
        clients[0].close()
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [21]))
        f.send(header(DRAIN))
        time.sleep(0.3)
        self.assertTrue(t.is_alive())  # 22 is still open
        clients[1].sendall(b"x")
        self.assertEqual(clients[1].recv(10), b"X")
        clients[1].close()
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [22]))
        t.join(5)
        self.assertEqual(out, ["returned"])
        self.assertEqual(len(events), 2)

    def test_protocol_factory_and_protocol_error(self):
        w = self.fake.worker()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data)
                self.transport.close()

        out = []

        async def main():
            try:
                await baton.serve_asyncio(protocol_factory=Echo, worker=w)
            except baton.ProtocolError as e:
                out.append(e)
        t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        t.start()
        f = self.fake
        f.recv(READY)
        clients = f.conn([31])
        f.recv(ACK)
        f.send(conn_msg([(32, b"v4", b"p")]))  # a CONN without its fd
        time.sleep(0.2)
        self.assertTrue(t.is_alive())  # 31 still open
        clients[0].sendall(b"hi")
        self.assertEqual(clients[0].recv(10), b"hi")
        t.join(5)
        self.assertEqual(len(out), 1)
        self.assertIn("CONN of 1 with 0 fds", str(out[0]))
        rest = [m for m, _ in f.pending()]
        self.assertNotIn(ACK, rest)
        clients[0].close()

    def test_callback_exception_closes_the_connection(self):
        w = self.fake.worker()
        errors = []

        async def broken(reader, writer):
            raise RuntimeError("app bug")

        async def main():
            asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
            await baton.serve_asyncio(broken, worker=w)
        t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        t.start()
        f = self.fake
        f.recv(READY)
        clients = f.conn([41])
        f.recv(ACK)
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [41]))
        self.assertEqual(clients[0].recv(10), b"")
        f.sup.close()  # EOF: drained and idle, serve_asyncio returns
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0]["exception"], RuntimeError)
        clients[0].close()


HTTP_APP = textwrap.dedent("""
    import sys
    sys.path.insert(0, {lib!r})
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import baton

    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            body = b"hello\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if self.path == "/ka":
                self.send_header("Connection", "keep-alive")
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass

    try:
        baton.serve(HTTPServer, Hello)   # not a threading server: serve() adds threads
    except baton.ProtocolError:
        sys.exit(1)
    print("served", flush=True)
""")

WSGI_APP = textwrap.dedent("""
    import sys
    sys.path.insert(0, {lib!r})
    import baton

    def app(environ, start_response):
        body = ("%s %s %s %s" % (environ["wsgi.multithread"], environ["baton.listener"],
                                 environ["baton.peer"], environ["REMOTE_ADDR"])).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    baton.serve_wsgi(app, log_requests=False)
""")


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        rest += s.recv(65536)
    return int(lines[0].split()[1]), headers, rest[:n]


class ServeTest(unittest.TestCase):
    """serve() and serve_wsgi() in a child process, on a fake batond."""

    def start(self, source):
        self.tmp = tempfile.mkdtemp(prefix="baton-py-")
        path = os.path.join(self.tmp, "app.py")
        with open(path, "w") as f:
            f.write(source.format(lib=HERE))
        self.fake = Fake()
        fd = self.fake.child.fileno()
        self.errpath = os.path.join(self.tmp, "stderr")
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen([sys.executable, path], env=dict(os.environ, BATON_FD=str(fd)),
                                         pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.fake.child.close()
        self.addCleanup(self.cleanup)
        self.fake.recv(READY)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.fake.close()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)

    def finish(self):
        out, _ = self.proc.communicate(timeout=10)
        with open(self.errpath) as f:
            return self.proc.returncode, out, f.read()

    def test_http_drain_closes_kept_alive_connections_after_their_next_response(self):
        self.start(HTTP_APP)
        f = self.fake
        busy, idle = f.conn([1, 2])
        f.recv(ACK)
        for s in (busy, idle):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(s)
            self.assertEqual((status, body), (200, b"hello\n"))
            self.assertNotIn("connection", headers)
        f.send(header(DRAIN))
        time.sleep(0.3)
        # the idle kept-alive connection is not cut under the client
        idle.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            idle.recv(10)
        busy.sendall(b"GET /ka HTTP/1.1\r\nHost: x\r\n\r\n")  # its "keep-alive" becomes "close"
        status, headers, _ = read_response(busy)
        self.assertEqual((status, headers.get("connection")), (200, "close"))
        self.assertEqual(busy.recv(10), b"")  # closed after that answer
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [1]))
        self.assertIsNone(self.proc.poll())
        idle.settimeout(5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(idle)
        self.assertEqual((status, headers.get("connection")), (200, "close"))
        self.assertEqual(idle.recv(10), b"")
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [2]))
        code, out, err = self.finish()
        self.assertEqual((code, out), (0, "served\n"), err)
        self.assertIn("draining: 2 connections open", err)
        busy.close()
        idle.close()

    def test_http_says_connection_close_when_it_closes(self):
        self.start(HTTP_APP)
        f = self.fake
        for i, request in enumerate((b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                     b"GET / HTTP/1.0\r\n\r\n")):
            (s,) = f.conn([10 + i])
            f.recv(ACK)
            s.sendall(request)
            status, headers, _ = read_response(s)
            self.assertEqual((status, headers.get("connection")), (200, "close"), request)
            self.assertEqual(s.recv(10), b"")
            self.assertEqual(f.recv(DONE), ids_msg(DONE, [10 + i]))
            s.close()
        f.send(header(DRAIN))
        self.assertEqual(self.finish()[0], 0)

    def test_http_protocol_error_exits_1_after_open_connections(self):
        self.start(HTTP_APP)
        f = self.fake
        (s,) = f.conn([1])
        f.recv(ACK)
        f.send(HDR.pack(STATUS, 2, 8))
        self.assertEqual(f.sup.recv(100), b"")  # the worker shut the channel
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(read_response(s)[0], 200)  # served all the same
        s.close()
        code, out, err = self.finish()
        self.assertEqual(code, 1, err)
        self.assertIn("protocol error: bad header (type 3, version 2", err)

    def test_http_status_and_eof(self):
        self.start(HTTP_APP)
        f = self.fake
        f.send(header(STATUS))
        t0 = time.monotonic()
        self.assertEqual(f.recv(HEARTBEAT), struct.pack("<HHIII", HEARTBEAT, 1, 16, 0, 0))
        self.assertLess(time.monotonic() - t0, 0.5)
        f.sup.close()
        code, out, err = self.finish()
        self.assertEqual((code, out), (0, "served\n"), err)
        self.assertIn("channel closed: batond is gone", err)

    def test_http_client_gone_mid_response_is_no_error(self):
        """A client that leaves while its answers are written (broken pipe,
        reset) is ordinary: the connection ends and is reported DONE, with
        no traceback on stderr."""
        self.start(HTTP_APP)
        f = self.fake
        (s,) = f.conn([3])
        f.recv(ACK)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)  # pipelined, never read
        s.close()
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [3]))
        f.send(header(DRAIN))
        code, out, err = self.finish()
        self.assertEqual((code, out), (0, "served\n"), err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("Error", err)

    def test_wsgi(self):
        self.start(WSGI_APP)
        f = self.fake
        (s,) = f.conn([5], listener=b"web", peer=b"10.0.0.1:99")
        f.recv(ACK)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        self.assertEqual((status, body), (200, b"True web 10.0.0.1:99 10.0.0.1"))
        self.assertEqual(s.recv(10), b"")  # wsgiref: one request per connection
        self.assertEqual(f.recv(DONE), ids_msg(DONE, [5]))
        f.send(header(DRAIN))
        code, out, err = self.finish()
        self.assertEqual(code, 0, err)
        s.close()


if __name__ == "__main__":
    unittest.main()
