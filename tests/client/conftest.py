"""Fixtures for the client-core tests: a client on the real test server, and mocked servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from jwt_node import jwt_node

from couchsync.client import Client, Database

MOCK_URL = "http://admin:s3cret-pw@couch.test:5984"
MOCK_PASSWORD = "s3cret-pw"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def client(couch_url: str) -> Iterator[Client]:
    """A Client on the server under test, closed afterwards."""
    with Client(couch_url) as cli:
        yield cli


@pytest.fixture
def jwt_secret(couch_url: str, server_kind: str) -> Iterator[bytes]:
    """The node under test takes HS256 tokens signed with this secret (jwt_node.py)."""
    yield from jwt_node(couch_url, server_kind)


@pytest.fixture
def db(client: Client, db_name: str) -> Database:
    """A freshly created, empty database (deleted after the test by db_name_factory)."""
    client.create(db_name)
    return client.database(db_name)


@pytest.fixture
def copies(db: Database) -> int:
    """How many copies of each shard ``db`` has: the cluster's n (3 on the test cluster),
    1 on a single node and on PouchDB Server. On a cluster, _all_docs ranges, _find and
    index listings read one copy of each shard, which a write answered at the default
    quorum may not have reached yet: tests that read so write with ``w=copies``."""
    return int(db.info().get("cluster", {}).get("n", 1))


class RecordingTransport(httpx.BaseTransport):
    """Sends every request to the real server (httpx.HTTPTransport) and records
    ``(method, path)`` of each, to show which endpoints a call used."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def recording_client(couch_url: str) -> Iterator[tuple[Client, RecordingTransport]]:
    """A Client on the server under test whose requests are recorded, closed afterwards."""
    transport = RecordingTransport()
    with Client(couch_url, transport=transport) as cli:
        yield cli, transport


class Recorder:
    """A MockTransport handler that answers from a route table and records requests."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.routes.get(
            (request.method, request.url.raw_path.decode().split("?")[0]),
            (404, {"error": "not_found", "reason": "missing"}),
        )
        return httpx.Response(status, json=body)


@pytest.fixture
def mock_client() -> Callable[..., tuple[Client, Recorder]]:
    """Make a Client whose server is a route table: ``{(method, raw path): (status, json)}``.

    The raw path is as sent (``%2F`` stays encoded), without the query string.
    """

    def make(
        routes: dict[tuple[str, str], tuple[int, Any]], url: str = MOCK_URL
    ) -> tuple[Client, Recorder]:
        recorder = Recorder(routes)
        return Client(url, transport=httpx.MockTransport(recorder), retries=0), recorder

    return make


@pytest.fixture
def handler_client() -> Callable[[Handler], Client]:
    """Make a Client whose every request is answered by ``handler`` (an httpx.MockTransport)."""

    def make(handler: Handler) -> Client:
        return Client(MOCK_URL, transport=httpx.MockTransport(handler), retries=0)

    return make


@pytest.fixture
def user_factory(couch_url: str) -> Iterator[Callable[[str], str]]:
    """Make users in ``_users`` with the password given (a unique name each, returned);
    every one is deleted afterwards. CouchDB and PouchDB Server both have ``_users``."""
    import uuid

    made: list[str] = []
    with Client(couch_url) as admin:
        users = admin.database("_users")

        def make(password: str) -> str:
            name = f"cstest-{uuid.uuid4().hex[:10]}"
            users.add({"_id": f"org.couchdb.user:{name}", "name": name, "password": password,
                       "roles": [], "type": "user"})
            made.append(name)
            return name

        yield make
        for name in made:
            users.delete(f"org.couchdb.user:{name}")
