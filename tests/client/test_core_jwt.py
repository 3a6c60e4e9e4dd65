"""Bearer tokens (``token=``) on a CouchDB node configured for JWT authentication by the
``jwt_secret`` fixture (jwt_node.py says how, and when the test is skipped). The node
started for this test had the handlers in its ``local.ini`` before it started, as a JWT
deployment has.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from jwt_node import bare_url, make_token

from couchsync.client import Client, HTTPStatusError, HttpxConnection, Unauthorized


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "jwt-tester", "exp": int(time.time()) + 300, **extra}


def test_a_bearer_token_authenticates(couch_url: str, jwt_secret: bytes) -> None:
    token = make_token(jwt_secret, _claims(**{"_couchdb.roles": ["_admin"]}))
    with Client(bare_url(couch_url), token=token) as client:
        session = client._conn.request("GET", "/_session").json()
        assert session["userCtx"] == {"name": "jwt-tester", "roles": ["_admin"]}
        assert session["info"]["authenticated"] == "jwt"
        assert "_users" in client.list_database_names()  # admin only


def test_the_token_decides_who_the_client_is(couch_url: str, jwt_secret: bytes) -> None:
    token = make_token(jwt_secret, _claims(sub="jwt-reader", **{"_couchdb.roles": ["reader"]}))
    with Client(bare_url(couch_url), token=token) as client:
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
    with Client(bare_url(couch_url), token=token) as client, \
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
