#!/usr/bin/env python3
"""A baton worker in Python, standard library only: http.server behind batond.

The protocol (worker/PROTOCOL.md) is handled by the baton library,
worker/python/baton.py: READY, an ACK for each CONN before the connections
are touched, a DONE when each connection closes, a HEARTBEAT every second
and one for each STATUS.  DRAIN or channel EOF: take no more work, answer
the next request on each kept-alive connection with "Connection: close",
exit 0 when every connection is closed.  A malformed message from batond:
"protocol error" on stderr, exit 1 once the open connections are done.

The server is an ordinary http.server application, one thread per
connection.  Every `GET /` gets 200 "hello from python\\n" (keep-alive
unless the client says `Connection: close`), with X-Baton-Pid and
X-Baton-Generation headers; other paths 404, other methods 405.
Config:  [program:py]  command = python3 worker/examples/http_worker.py
"""
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import baton  # noqa: E402

CAPACITY = 64          # announced in READY: at most 64 connections at once
BODY = b"hello from python\n"
BODY_MAX = 1 << 20     # a request body we read and discard, at most


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 60                   # an idle kept-alive connection closes after a minute

    def do_GET(self):
        if not self.discard_body():
            return
        status, body = (200, BODY) if self.path == "/" else (404, b"404 Not Found\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Baton-Pid", str(os.getpid()))
        self.send_header("X-Baton-Generation", os.environ.get("BATON_GENERATION", "0"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def not_allowed(self):
        self.send_error(405)  # closes the connection: its body is not read

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = not_allowed

    def discard_body(self):
        """Read a request body away, so that the next request parses; False
        (after answering) when it cannot be framed."""
        if "Transfer-Encoding" in self.headers:
            self.send_error(501, "Transfer-Encoding not supported")
            return False
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > BODY_MAX:
            self.send_error(400, "Bad Content-Length")
            return False
        self.rfile.read(int(length))
        return True

    def log_message(self, format, *args):
        pass  # no line per request in batond's log


if __name__ == "__main__":
    try:
        baton.serve(ThreadingHTTPServer, Hello, capacity=CAPACITY)
    except baton.ProtocolError:
        sys.exit(1)  # baton has said why on stderr
    except baton.BatonError as e:
        sys.exit(f"http_worker: {e}")
