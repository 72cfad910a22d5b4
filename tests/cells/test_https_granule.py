"""The real ATL06 granule read over HTTP(S) with h5coro's HTTP driver, from a range-serving
server on loopback: plain http, and TLS with a self-signed certificate made at test time
(trusted through ``REQUESTS_CA_BUNDLE``), checked against the h5py + healpy reference."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cells.test_real_granule import check_store, run_cells

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Served:
    """What the server saw: every request (method, Range header, status), bytes sent."""

    url: str
    size: int
    requests: list[tuple[str, str | None, int]] = field(default_factory=list, repr=False)
    authorization: set[str | None] = field(default_factory=set)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _handler(path: Path, served: Served) -> type[BaseHTTPRequestHandler]:
    data = path.read_bytes()
    name = f"/{path.name}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests' pooled sessions expect

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            header = self.headers.get("Range")
            start, stop, status = 0, len(data), 200
            if self.path != name:
                status = 404
            elif header is not None:
                match = RANGE.match(header.strip())
                first = match.group(1) if match else ""
                last = match.group(2) if match else ""
                if not match or (not first and not last):
                    status = 416
                elif not first:  # suffix range: the last N bytes
                    start, status = max(0, len(data) - int(last)), 206
                else:
                    start, status = int(first), 206
                    stop = min(len(data), int(last) + 1) if last else len(data)
                    if start >= len(data) or stop <= start:
                        status = 416
            payload = data[start:stop] if status in (200, 206) else b""
            with served.lock:
                served.requests.append((self.command, header, status))
                served.authorization.add(self.headers.get("Authorization"))
                if body:
                    served.bytes_sent += len(payload)
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/x-hdf5")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            elif status == 416:
                self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    return Handler


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA, so a client can trust it as a bundle)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def serve(tmp_path, monkeypatch) -> Iterator:
    """``serve(path, scheme)``: ``path`` behind a range-serving server on loopback (plain
    http, or TLS with a self-signed certificate the client trusts), shut down at the end."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("EARTHDATA_TOKEN", "tilefleet-test-token")
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(path: Path, scheme: str = "http") -> Served:
        served = Served(url="", size=path.stat().st_size)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(path, served))
        server.daemon_threads = True
        if scheme == "https":
            cert, key = _self_signed(tmp_path)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            # requests (h5coro's HTTP driver) trusts the bundle named here; the spawned
            # workers inherit the environment.
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        served.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/{path.name}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return served

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_and_check(served: Served, granule: Path, tmp_path: Path) -> None:
    store = tmp_path / "http.zarr"
    result = run_cells(tmp_path, granules=[served.url], store=str(store), workers=1)
    assert result.exit_code == 0 and result.report["succeeded"] == 2
    check_store(str(store), granule)
    assert (store / ".tilefleet/done/44338.json").is_file()
    assert served.requests, "the granule was not read from the server"
    # Every read is a ranged GET answered 206 (no HEAD, no plain GET of the whole file), and
    # carries the Earthdata token.
    assert all(m == "GET" and r and status == 206 for m, r, status in served.requests)
    assert served.authorization == {"Bearer tilefleet-test-token"}


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_real_granule_over_http_matches_reference(serve, scheme, real_granule, tmp_path):
    served = serve(real_granule, scheme)
    _run_and_check(served, real_granule, tmp_path)
    # h5coro reads in 4 MiB cache lines, so its first ranged GET (bytes=0-4194303) covers
    # this whole 3 MiB granule: each open (plan, then one per parent) fetches it once.
    assert served.bytes_sent <= 3 * served.size


def test_only_the_ranges_read_are_served(serve, real_granule, tmp_path):
    """A granule larger than h5coro's cache lines (the real one, 32 MiB of bytes after its
    end that HDF5 ignores) is not downloaded: only the lines holding what is read are."""
    padded = tmp_path / real_granule.name
    padded.write_bytes(real_granule.read_bytes() + bytes(32 << 20))
    served = serve(padded)
    _run_and_check(served, padded, tmp_path)
    assert served.bytes_sent < served.size / 2
