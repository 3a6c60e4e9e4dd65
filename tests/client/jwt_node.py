"""A CouchDB node under test configured for JWT authentication (``jwt_secret`` in
conftest.py), and HS256 tokens it takes: for test_core_jwt.py and test_core_iam.py.

The node is configured through ``/_node/_local/_config`` and restored afterwards: an
HMAC key in ``[jwt_keys] hmac:_default`` (in force at once), and
``jwt_authentication_handler`` in ``[chttpd] authentication_handlers`` if the node lacks
it. CouchDB 3.5 reads that list only when its HTTP listener starts; the listener is
then restarted (a change of ``[chttpd] server_options`` does that). That drops every
connection other clients have open, so it is done only with
``COUCHSYNC_TEST_OWN_SERVER=1`` (no one else uses the server); otherwise the test is
skipped with the reason. It is done once and not undone by a second restart: CouchDB's
supervisor allows 3 listener restarts in 10 s and stops the node beyond (seen here), so
two runs in a row could bring it down. The running listener keeps the JWT handler
until it next starts; with the key removed it refuses every token and ignores requests
without one. Tokens are made here with hmac/hashlib (HS256).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

JWT_HANDLERS = ("{chttpd_auth, jwt_authentication_handler}, "
                "{chttpd_auth, cookie_authentication_handler}, "
                "{chttpd_auth, default_authentication_handler}")
# CouchDB 3.5's default [chttpd] server_options (chttpd.erl, DEFAULT_SERVER_OPTIONS).
DEFAULT_SERVER_OPTIONS = "[{recbuf, undefined}, {acceptor_pool_size, 32}, {max, 65536}]"


def make_token(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 JWT of ``claims`` signed with ``secret``."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def bare_url(url: str) -> str:
    """``url`` without its credentials."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


class NodeConfig:
    """Reads and changes ``/_node/_local/_config`` and remembers how to undo it."""

    def __init__(self, http: httpx.Client, base: str) -> None:
        self.http = http
        self.base = base
        self.undo: list[tuple[str, str | None]] = []

    def get(self, key: str) -> str | None:
        response = self.http.get(f"{self.base}/_node/_local/_config/{key}")
        return None if response.status_code == 404 else str(response.json())

    def set(self, key: str, value: str) -> None:
        self.undo.append((key, self.get(key)))
        self._put(key, value)

    def _put(self, key: str, value: str | None) -> None:
        url = f"{self.base}/_node/_local/_config/{key}"
        try:
            if value is None:
                self.http.delete(url)
            else:
                self.http.put(url, json=value)
        except httpx.TransportError:
            pass  # a change of server_options restarts the listener under this request

    def restore(self) -> None:
        """Undo every change, newest first (the listener is not restarted for it)."""
        while self.undo:
            self._put(*self.undo.pop())


def _handlers(http: httpx.Client, base: str, *, until: str | None = None) -> list[str]:
    """The node's authentication handlers; with ``until``, asked again (for up to 30 s)
    until they include it: the listener restarts a moment after the config change is
    answered, and the old one may answer the first asks."""
    deadline = time.monotonic() + 30
    while True:
        try:
            info = http.get(f"{base}/_session").json()["info"]
            handlers = list(info["authentication_handlers"])
            if until is None or until in handlers or time.monotonic() > deadline:
                return handlers
        except (httpx.TransportError, KeyError, ValueError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _restart_listener(config: NodeConfig) -> None:
    """Make CouchDB restart its HTTP listener (which reads the authentication handlers)
    by changing ``[chttpd] server_options`` to an equivalent value."""
    current = config.get("chttpd/server_options")
    value = (current or DEFAULT_SERVER_OPTIONS).rstrip("]").rstrip() + " ]"
    config.set("chttpd/server_options", value)


def jwt_node(couch_url: str, server_kind: str) -> Iterator[bytes]:
    """A node under test that takes HS256 tokens signed with the yielded secret (the
    ``jwt_secret`` fixture)."""
    if server_kind != "couchdb":
        pytest.skip("Apache CouchDB only, the server under test is PouchDB Server: it has "
                    "no JWT authentication")
    base = bare_url(couch_url)
    parts = urlsplit(couch_url)
    auth = None if parts.username is None else (parts.username, parts.password or "")
    with httpx.Client(auth=auth, timeout=30) as http:
        ctx = http.get(f"{base}/_session").json()["userCtx"]
        if "_admin" not in ctx["roles"]:
            pytest.skip("configuring JWT needs server admin rights on the server under test")
        secret = secrets.token_bytes(32)
        config = NodeConfig(http, base)
        try:
            config.set("jwt_keys/hmac:_default", base64.b64encode(secret).decode("ascii"))
            if "jwt" not in _handlers(http, base):
                if os.environ.get("COUCHSYNC_TEST_OWN_SERVER") != "1":
                    pytest.skip(
                        "the node's [chttpd] authentication_handlers lack "
                        "jwt_authentication_handler, and CouchDB reads them only when its "
                        "HTTP listener starts: configure it, or set "
                        "COUCHSYNC_TEST_OWN_SERVER=1 (no one else uses the server) to let "
                        "the test set it and restart the listener")
                config.set("chttpd/authentication_handlers", JWT_HANDLERS)
                _restart_listener(config)
                assert "jwt" in _handlers(http, base, until="jwt")
            yield secret
        finally:
            config.restore()
