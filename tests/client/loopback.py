"""Loopback stand-ins for what sits between couchsync and a real server: an HTTP proxy
(forward or reverse, which may answer some requests itself or misbehave on them: see
``Fault``), a TLS terminator, and a certificate authority made with the ``openssl``
command.

Every one runs on 127.0.0.1 in threads of the test process and passes requests on to
the real server under test, so the client talks to a real CouchDB (or PouchDB
Server) through them.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

#: An answer the proxy gives itself: (status, headers, body).
Answer = tuple[int, dict[str, str], bytes]
#: Called with (method, path without the query string): an Answer, or None to pass on.
Script = Callable[[str, str], Answer | None]

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade", "content-length"}


@dataclass
class Seen:
    """One request the proxy received."""

    method: str
    target: str  # as on the request line: absolute through a forward proxy
    headers: dict[str, str] = field(repr=False)


FaultKind = Literal["answer", "stall", "drop", "cut", "trickle", "refuse"]


@dataclass
class Fault:
    """How the proxy misbehaves on the requests it selects.

    Selected: requests of ``method`` (any when None) whose path (no query string) ends
    with ``path`` (any when None), from the ``nth`` such request on, ``times`` of them
    (None: every one from then on); with ``sticky``, once it has acted it acts on every
    later request too, whatever its method and path ("the connection is lost from the
    second ``_bulk_docs`` on"). ``kind``:

    - ``answer``: answers ``status`` itself, with a CouchDB-like JSON error body and
      ``retry_after`` as the ``Retry-After`` header when given; the server never sees it;
    - ``stall``: reads the request and never answers, until the client hangs up; with
      ``until``, only until that event is set: then the request goes on to the server
      (a write held at a chosen point while the test acts, then let through);
    - ``drop``: closes the connection without an answer; the server never sees it;
    - ``cut``: passes the request on (the server does the work), then sends the
      server's answer with half its body and closes the connection;
    - ``trickle``: passes it on, then sends the answer (status line, headers and body)
      in ``pieces`` parts, ``pause`` seconds apart;
    - ``refuse``: stops listening and closes every connection, this one unanswered: the
      server never sees it, and every later connection is refused.

    ``hits`` counts the requests it acted on.
    """

    kind: FaultKind
    method: str | None = None
    path: str | None = None
    nth: int = 1
    times: int | None = None
    sticky: bool = False
    status: int = 503
    retry_after: str | None = None
    pieces: int = 8
    pause: float = 0.02
    until: threading.Event | None = None
    hits: int = 0
    _matched: int = field(default=0, repr=False)

    def selects(self, method: str, path: str) -> bool:
        """Whether it acts on this request (counted: call it once per request)."""
        if self.sticky and self.hits:
            self.hits += 1
            return True
        if (self.method is not None and method != self.method) or (
                self.path is not None and not path.endswith(self.path)):
            return False
        self._matched += 1
        if self._matched < self.nth or (
                self.times is not None and self._matched >= self.nth + self.times):
            return False
        self.hits += 1
        return True

    def answer(self) -> Answer:
        """The answer of an ``answer`` fault: CouchDB's JSON error body, but a 502's, which
        comes from a proxy: an HTML page."""
        retry = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        if self.status == 502:
            return 502, {"Content-Type": "text/html", **retry}, (
                b"<html><head><title>502 Bad Gateway</title></head><body>"
                b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                b"</body></html>\n")
        error = {429: "too_many_requests", 500: "unknown_error",
                 503: "service_unavailable"}.get(self.status, "error")
        return self.status, {"Content-Type": "application/json", **retry}, (
            f'{{"error":"{error}","reason":"injected by the test proxy"}}\n'.encode())


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream: tuple[str, int]
    seen: list[Seen]
    script: Script | None
    faults: list[Fault]
    lock: threading.Lock
    connections: set[socket.socket]
    closing: threading.Event  # set when the proxy closes: stalled handlers give up
    refusing: bool

    def refuse(self) -> None:
        """Stop listening (later connections are refused) and end every connection."""
        with self.lock:
            if self.refusing:
                return
            self.refusing = True
        self.shutdown()  # the accept loop (never called from its own thread)
        self.socket.close()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # a connection a fault hung up on
            super().finish()

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self) -> None:
        """Wait, answering nothing, until the client hangs up or the proxy closes."""
        self.connection.settimeout(0.05)
        while not self.server.closing.is_set():
            try:
                if not self.connection.recv(1 << 16):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        with self.server.lock:
            self.server.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            # Every fault counts every request, whichever acts on it.
            selected = [fault for fault in self.server.faults
                        if fault.selects(self.command, parts.path)]
        fault = selected[0] if selected else None
        if fault is not None and fault.kind == "stall" and fault.until is not None:
            while not (fault.until.wait(0.05) or self.server.closing.is_set()):
                pass
            fault = None  # let through, held no more
        if fault is not None and fault.kind in ("stall", "drop", "refuse"):
            if fault.kind == "stall":
                self._stall()
            elif fault.kind == "refuse":
                self.server.refuse()
            self._hang_up()
            return
        if fault is not None and fault.kind == "answer":
            answer: Answer | None = fault.answer()
        else:
            answer = None if self.server.script is None else self.server.script(
                self.command, parts.path)
        if answer is None:
            upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
            try:
                upstream.request(self.command, path, body=body or None, headers={
                    name: value for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP})
                response = upstream.getresponse()
                data = response.read()
                headers = [(name, value) for name, value in response.getheaders()
                           if name.lower() not in _HOP_BY_HOP]
                length_header = response.getheader("Content-Length")
                status = response.status
            finally:
                upstream.close()
        else:
            status, extra, data = answer
            headers = list(extra.items())
            length_header = None
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", length_header or "0")
            data = b""
        else:
            self.send_header("Content-Length", str(len(data)))
        if fault is None or fault.kind == "answer":
            self.end_headers()
            self.wfile.write(data)
            return
        # The head end_headers() would send, sent below with the body, as the fault says.
        head = b"".join([*vars(self).pop("_headers_buffer"), b"\r\n"])
        if fault.kind == "cut":
            self.wfile.write(head + data[:len(data) // 2])
            self._hang_up()
            return
        whole = head + data  # trickle
        size = -(-len(whole) // fault.pieces)
        try:
            for start in range(0, len(whole), size):
                if start:
                    time.sleep(fault.pause)
                if self.server.closing.is_set():
                    break
                self.wfile.write(whole[start:start + size])
            else:
                return
        except OSError:  # the client gave up waiting
            pass
        self._hang_up()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_COPY = _handle

    def do_CONNECT(self) -> None:
        """A tunnel (for https:// through the proxy) to the host:port asked for."""
        with self.server.lock:
            self.server.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            other = threading.Thread(target=TLSTerminator._copy,
                                     args=(upstream, self.connection), daemon=True)
            other.start()
            TLSTerminator._copy(self.connection, upstream)
            other.join()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Proxy:
    """An HTTP proxy on loopback in front of ``upstream`` (host, port): a forward proxy
    to clients that send it absolute URLs, a reverse proxy to those that send paths.
    ``script`` may answer a request itself (a 503, say) instead of passing it on;
    ``faults`` (a list, which may be added to while it runs) misbehave on the requests
    they select: the first that selects a request acts on it, before ``script``.
    ``seen`` lists every request received; ``url`` is where it listens."""

    def __init__(self, upstream: tuple[str, int], script: Script | None = None,
                 faults: Iterable[Fault] = ()) -> None:
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.upstream = upstream
        self._server.seen = []
        self._server.script = script
        self._server.faults = list(faults)
        self._server.lock = threading.Lock()
        self._server.connections = set()
        self._server.closing = threading.Event()
        self._server.refusing = False
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    @property
    def faults(self) -> list[Fault]:
        return self._server.faults

    def refuse(self) -> None:
        """Stop listening now: every connection from now on is refused."""
        self._server.refuse()

    def close(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def upstream_of(url: str) -> tuple[str, int]:
    """(host, port) of a server URL."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or 5984


class TLSTerminator:
    """A TLS server on loopback that decrypts each connection and passes its bytes on to
    ``upstream`` (plain TCP): the real server, reached over TLS. ``peer_certs`` holds
    the client certificate of each connection (``{}`` when none was asked for),
    ``failures`` the handshakes that failed."""

    def __init__(self, upstream: tuple[str, int], context: ssl.SSLContext) -> None:
        self._upstream = upstream
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.peer_certs: list[dict[str, Any]] = []
        self.failures: list[BaseException] = []
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # closing a socket does not wake up its accept()
        while not self._closed:
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(30)
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.failures.append(exc)
            raw.close()
            return
        try:
            self.peer_certs.append(tls.getpeercert() or {})
            with socket.create_connection(self._upstream, timeout=30) as up:
                other = threading.Thread(target=self._copy, args=(up, tls), daemon=True)
                other.start()
                self._copy(tls, up)
                other.join()
        except (ssl.SSLError, OSError) as exc:  # the client refused to go on, say
            self.failures.append(exc)
        finally:
            tls.close()

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                target.sendall(data)
        except (OSError, ValueError):
            pass
        for sock in (source, target):  # one side ended: end both
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> TLSTerminator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A CA made for the test with the ``openssl`` command (skips the test without it)."""

    def __init__(self, directory: Path, name: str = "couchsync test CA") -> None:
        if shutil.which("openssl") is None:
            pytest.skip("no openssl command to make test certificates")
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._serial = 0
        slug = name.replace(" ", "-")
        self.cert = directory / f"{slug}.pem"
        self.key = directory / f"{slug}.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", self.key, "-out", self.cert, "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash")

    def issue(self, name: str, *, client: bool = False) -> Issued:
        """A certificate for ``name`` signed by this CA: a server's for localhost and
        127.0.0.1, or (``client``) a client's."""
        self._serial += 1
        base = self._dir / f"{name}-{self._serial}"
        key, csr, cert, ext = (base.with_suffix(s) for s in (".key", ".csr", ".pem", ".ext"))
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
            + ("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n" if client
               else "extendedKeyUsage=serverAuth\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"))
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-set_serial", str(self._serial), "-days", "2", "-out", cert,
                 "-extfile", ext)
        return Issued(cert=cert, key=key)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
