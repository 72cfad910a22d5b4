"""A fault-injecting HTTP proxy on loopback, put in front of a real S3 API (moto's server).

Clients (obstore, GDAL's /vsis3, boto3) are pointed at the proxy instead of the server; it
forwards every request and, where a :class:`Fault` rule matches, answers as a flaky network
or an overloaded S3 would: a 503 SlowDown or a 500 InternalError (or a 403 AccessDenied,
which no retry mends), a connection reset, a
body cut mid-way, or a stall longer than the client's read timeout. Rules match a request
kind (``GET``, ``HEAD``, ``PUT``, ``LIST``, ``PART`` for multipart parts, ``POST``), a key
(substring of the path) and fire on every Nth matching request, at most ``times`` times.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = ("503", "500", "403", "reset", "cut", "stall")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te"}
_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>chaos</RequestId></Error>"
)


@dataclass
class Fault:
    """Inject ``kind`` on every ``every``-th request matching ``method`` and ``key``."""

    kind: str
    method: str | None = None
    every: int = 1
    key: str | None = None
    times: int | None = None
    stall_s: float = 8.0
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")

    def fires(self, kind: str, path: str) -> bool:
        """Count a request and say whether this rule faults it (the caller holds the lock)."""
        if self.method is not None and self.method != kind:
            return False
        if self.key is not None and self.key not in path:
            return False
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.seen % self.every:
            return False
        self.fired += 1
        return True


def request_kind(method: str, url: str) -> str:
    """GET, HEAD, PUT, POST, DELETE, or LIST (a bucket GET) and PART (a multipart part)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    if method == "GET" and (parts.path.strip("/").count("/") == 0 or "list-type" in query):
        return "LIST"
    if method == "PUT" and "partNumber" in query:
        return "PART"
    return method


class FaultProxy:
    """The proxy, serving on a free loopback port until :meth:`stop`; ``url`` is its
    endpoint. ``log`` keeps ``(kind, path, fault or None)`` of every request."""

    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults = list(faults)

    def clear(self) -> None:
        self.inject()

    def injected(self) -> list[tuple[str, str, str]]:
        return [entry for entry in self.log if entry[2] is not None]

    def choose(self, kind: str, path: str) -> Fault | None:
        with self.lock:
            chosen = None
            for fault in self.faults:
                if fault.fires(kind, path) and chosen is None:
                    chosen = fault
            self.log.append((kind, path, chosen.kind if chosen else None))
            return chosen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a connection the proxy reset on purpose, or a client that gave up


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    proxy: FaultProxy

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - http.server's names
        self._forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET  # noqa: N815

    def _forward(self) -> None:
        body = self._read_body()
        kind = request_kind(self.command, self.path)
        fault = self.proxy.choose(kind, urlsplit(self.path).path)
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.stall_s)
        if fault is not None and fault.kind == "reset" and kind != "GET":
            return self._reset()  # before the server saw it: nothing was written
        if fault is not None and fault.kind in ("503", "500", "403"):
            return self._error(fault.kind)
        status, headers, payload = self._upstream(body)
        if fault is not None and fault.kind == "reset":
            return self._reset()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        length = len(payload) if self.command != "HEAD" else _length(headers)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return None
        if fault is not None and fault.kind == "cut" and len(payload) > 1:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            return self._reset()
        self.wfile.write(payload)
        return None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _upstream(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _error(self, kind: str) -> None:
        code, message = {
            "503": ("SlowDown", "Please reduce your request rate."),
            "500": ("InternalError", "We encountered an internal error. Please try again."),
            "403": ("AccessDenied", "Access Denied"),
        }[kind]
        payload = _ERROR_BODY.format(code=code, message=message).encode()
        self.send_response(int(kind))
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset (SO_LINGER 0), as a broken network does."""
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _length(headers: list[tuple[str, str]]) -> int:
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    return 0
