"""The HTTP/1.1 machinery both wire servers share: chunked streaming, pacing, request records.

Every request is recorded (method, path, headers, raw body bytes) with what became of its stream:
finished, or closed by the client early (seen as EOF on the socket between two writes, or a
failed write). Streams currently being written are counted, with the maximum seen, so tests can
observe how many runs streamed at once.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    chunks_sent: int = 0
    finished: bool = False
    closed_by_client: bool = False
    ended_at: float | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class ClientGone(Exception):
    """The client closed its end while we were streaming."""


class WireHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WireHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self, method: str) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.server.lock:
            self.server.requests.append(rec)
        return rec

    def do_GET(self) -> None:
        rec = self._record("GET")
        self.server.owner.handle(self, rec)

    def do_POST(self) -> None:
        rec = self._record("POST")
        self.server.owner.handle(self, rec)

    def do_DELETE(self) -> None:
        rec = self._record("DELETE")
        self.server.owner.handle(self, rec)

    # -- responses -------------------------------------------------------------------------

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def start_stream(self, content_type: str) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, rec: Recorded, data: bytes) -> None:
        """One HTTP chunk, flushed at once (one TCP segment with TCP_NODELAY)."""
        if self.client_closed():
            raise ClientGone
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            raise ClientGone from None
        rec.chunks_sent += 1

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            raise ClientGone from None

    def client_closed(self, wait: float = 0.0) -> bool:
        """Wait up to `wait` seconds; True as soon as the client's end is closed."""
        sock = self.connection
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def pause(self, seconds: float) -> None:
        """Sleep between tokens, noticing a client that hangs up meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.client_closed(left):
                raise ClientGone


class WireHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: WireServer, host: str, port: int) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        super().__init__((host, port), WireHandler)


class WireServer:
    """Base for the wire servers: start/stop in a thread, request log, live stream count."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = WireHTTPServer(self, host, port)
        self._thread: threading.Thread | None = None
        self.active = 0
        self.max_active = 0

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._httpd.lock:
            return list(self._httpd.requests)

    def start(self) -> WireServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stream(self, handler: WireHandler, rec: Recorded, body: Any) -> None:
        """Run a streaming body (a callable writing chunks), tracking concurrency and hang-ups."""
        with self._httpd.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            body()
            rec.finished = True
        except ClientGone:
            rec.closed_by_client = True
            handler.close_connection = True
        finally:
            rec.ended_at = time.monotonic()
            with self._httpd.lock:
                self.active -= 1

    def handle(self, handler: WireHandler, rec: Recorded) -> None:
        raise NotImplementedError


def go_json(obj: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, raw UTF-8, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")
