"""The engine interface: another engine plugs in without touching Database."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from couchsync.client import (
    Client,
    ConnectionEngine,
    DatabaseError,
    HTTPStatusError,
    NotFound,
    ServerError,
)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeResponse:
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = json.dumps(body).encode()

    def json(self) -> Any:
        return json.loads(self.content)


class DictEngine:
    """An in-memory 'server' holding one database's documents by raw path."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[tuple[str, str]] = []
        self.docs: dict[str, Any] = {"/db/a%2Fb": {"_id": "a/b", "_rev": "1-x"}}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FakeResponse:
        self.calls.append((method, path))
        if path in self.docs:
            return FakeResponse(200, self.docs[path])
        return FakeResponse(404, {"error": "not_found", "reason": "missing"})

    def close(self) -> None:
        self.calls.append(("CLOSE", ""))


def test_custom_engine_plugs_in() -> None:
    engines: list[DictEngine] = []

    def factory(url: str) -> DictEngine:  # pycouchdb's Callable[[str], Connection] shape
        engines.append(DictEngine(url))
        return engines[-1]

    with Client("mem://server", connection_engine=factory) as cli:
        engine: ConnectionEngine = engines[0]
        assert engine.url == "mem://server"
        db = cli.database("db")
        assert db.get("a/b") == {"_id": "a/b", "_rev": "1-x"}
        with pytest.raises(NotFound, match=r"GET mem://server/db/nope"):
            db.get("nope")
    assert engines[0].calls == [("GET", "/db/a%2Fb"), ("GET", "/db/nope"), ("CLOSE", "")]


# httpx.MockTransport: a real CouchDB never answers like this, a proxy in front of it may.
def test_a_2xx_body_that_is_not_json_is_a_scoped_couch_error(
    handler_client: Callable[[Handler], Client],
) -> None:
    client = handler_client(lambda request: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(DatabaseError) as caught:
        client.database("db").get("doc")
    assert isinstance(caught.value, HTTPStatusError)
    assert caught.value.status == 200
    assert "not JSON" in str(caught.value) and "GET" in str(caught.value)


def test_a_redirect_is_an_error_not_a_result(
    handler_client: Callable[[Handler], Client],
) -> None:
    client = handler_client(
        lambda request: httpx.Response(302, headers={"location": "/login"}, text=""))
    with pytest.raises(ServerError) as caught:
        client.list_database_names()
    assert isinstance(caught.value, HTTPStatusError)
    assert caught.value.status == 302
