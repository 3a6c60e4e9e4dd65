"""Bearer tokens (``token=``) on a CouchDB node configured for JWT authentication.

The test configures the node under test itself through ``/_node/_local/_config`` and
restores the configuration afterwards: an HMAC key in ``[jwt_keys] hmac:_default``
(in force at once), and ``jwt_authentication_handler`` in ``[chttpd]
authentication_handlers`` if the node lacks it. CouchDB 3.5 reads that list only
when its HTTP listener starts; the test then restarts the listener (a change of
``[chttpd] server_options`` does that). That drops every connection other clients
have open, so it is done only with ``COUCHSYNC_TEST_OWN_SERVER=1`` (no one else uses
the server); otherwise the test is skipped with the reason. It is done once and not
undone by a second restart: CouchDB's supervisor allows 3 listener restarts in 10 s
and stops the node beyond (seen here), so two runs in a row could bring it down. The
running listener keeps the JWT handler until it next starts; with the key removed
it refuses every token and ignores requests without one. Tokens are made here with
hmac/hashlib (HS256). The node started for this test had the handlers in its
``local.ini`` before it started, as a JWT deployment has.
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

from couchsync.client import Client, HTTPStatusError, HttpxConnection, Unauthorized

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


def _bare(url: str) -> str:
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


def _handlers(http: httpx.Client, base: str) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            info = http.get(f"{base}/_session").json()["info"]
            return list(info["authentication_handlers"])
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


@pytest.fixture
def jwt_secret(couch_url: str, server_kind: str) -> Iterator[bytes]:
    """A node under test that takes HS256 tokens signed with the yielded secret."""
    if server_kind != "couchdb":
        pytest.skip("Apache CouchDB only, the server under test is PouchDB Server: it has "
                    "no JWT authentication")
    base = _bare(couch_url)
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
                assert "jwt" in _handlers(http, base)
            yield secret
        finally:
            config.restore()


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "jwt-tester", "exp": int(time.time()) + 300, **extra}


def test_a_bearer_token_authenticates(couch_url: str, jwt_secret: bytes) -> None:
    token = make_token(jwt_secret, _claims(**{"_couchdb.roles": ["_admin"]}))
    with Client(_bare(couch_url), token=token) as client:
        session = client._conn.request("GET", "/_session").json()
        assert session["userCtx"] == {"name": "jwt-tester", "roles": ["_admin"]}
        assert session["info"]["authenticated"] == "jwt"
        assert "_users" in client.list_database_names()  # admin only


def test_the_token_decides_who_the_client_is(couch_url: str, jwt_secret: bytes) -> None:
    token = make_token(jwt_secret, _claims(sub="jwt-reader", **{"_couchdb.roles": ["reader"]}))
    with Client(_bare(couch_url), token=token) as client:
        session = client._conn.request("GET", "/_session").json()
        assert session["userCtx"] == {"name": "jwt-reader", "roles": ["reader"]}
        with pytest.raises(Unauthorized, match="not a server admin"):
            client.create("cstest_jwt_not_allowed")


@pytest.mark.parametrize(("problem", "status"), [("expired", 401), ("wrong key", 400)])
def test_a_token_the_server_refuses_is_an_error_without_the_token(
    couch_url: str, jwt_secret: bytes, problem: str, status: int,
) -> None:
    """CouchDB 3.5 answers an expired token 401 and a bad signature 400 ("Bad HMAC")."""
    if problem == "expired":
        token = make_token(jwt_secret, _claims(exp=int(time.time()) - 60))
    else:
        token = make_token(b"not-the-key", _claims())
    with Client(_bare(couch_url), token=token) as client, \
            pytest.raises(HTTPStatusError) as caught:
        client.list_database_names()
    assert caught.value.status == status
    assert token not in str(caught.value) + repr(caught.value)


def test_the_bearer_header_is_sent_as_given() -> None:
    """(httpx.MockTransport: shows the exact header, which a server does not echo.)"""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    engine = HttpxConnection("http://couch.test", token="aaa.bbb.ccc",
                             transport=httpx.MockTransport(handler))
    engine.request("GET", "/")
    assert sent[0].headers["Authorization"] == "Bearer aaa.bbb.ccc"
    with pytest.raises(ValueError, match="not both"):
        HttpxConnection("http://u:p@couch.test", token="aaa.bbb.ccc")
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        HttpxConnection("http://couch.test", token="aaa.bbb\r\nX-Evil: 1")
    assert "Evil" not in str(caught.value)
