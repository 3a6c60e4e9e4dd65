"""Proxies given as the transport; with ``trust_env=False`` no proxy variable is read.
(The proxy variables and ``proxy=``: test_core_env_proxy.py.)

A local HTTP proxy that answers by itself stands in for the proxy and the server
both: the server's host does not resolve, so an answer proves the proxy was used.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from couchsync.client import Client, TransportError


class _Proxy(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None]]] = []  # one list per fixture subclass

    def do_GET(self) -> None:
        # Through a proxy, the request line holds the absolute URL (RFC 9112, 3.2.2).
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        body = json.dumps({"couchdb": "Welcome", "via": "proxy"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    seen: ClassVar[list[tuple[str, str, str | None]]] = []  # one list per fixture subclass
    handler = type("Proxy", (_Proxy,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_is_used_when_given_as_the_transport(
    proxy: tuple[str, list[tuple[str, str, str | None]]],
) -> None:
    proxy_url, seen = proxy
    transport = httpx.HTTPTransport(proxy=proxy_url)
    with Client("http://admin:pw@couch.invalid:5984", transport=transport) as client:
        assert client.server.info()["via"] == "proxy"
    [(method, target, authorization)] = seen
    assert (method, target) == ("GET", "http://couch.invalid:5984/")
    assert authorization is not None and authorization.startswith("Basic ")


def test_proxy_environment_variables_are_not_read_without_trust_env(
    proxy: tuple[str, list[tuple[str, str, str | None]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy_url, seen = proxy
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with Client("http://couch.invalid:5984", retries=0, trust_env=False) as client, \
            pytest.raises(TransportError):
        client.server.info()  # straight to the unresolvable host, not to the proxy
    assert seen == []
