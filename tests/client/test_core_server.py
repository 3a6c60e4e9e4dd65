"""Server: info, is_up, active_tasks, dbs_info, list_database_names, membership."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from couchsync.client import (
    Client,
    ClientClosedError,
    Database,
    Server,
    ServerError,
    Unauthorized,
)

MockClient = Callable[..., tuple[Client, Any]]
RecordingClient = tuple[Client, Any]  # conftest.recording_client: (client, RecordingTransport)


@pytest.fixture
def server(couch_url: str) -> Iterator[Server]:
    with Server(couch_url) as opened:
        yield opened


def test_info(server: Server, server_kind: str) -> None:
    info = server.info()
    assert "version" in info
    assert ("couchdb" in info) == (server_kind == "couchdb")


def test_is_up_on_the_real_server(server: Server) -> None:
    assert server.is_up() is True


def test_is_up_false_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Server(f"http://127.0.0.1:{port}", retries=0) as nobody:
        assert nobody.is_up() is False


@pytest.mark.couchdb_only("PouchDB Server has no /_up")
def test_is_up_uses_up_endpoint(recording_client: RecordingClient) -> None:
    """One GET /_up, answered 200 {"status": "ok"}."""
    cli, transport = recording_client
    assert cli.server.is_up() is True
    assert transport.sent == [("GET", "/_up")]
    assert cli.server._send("GET", "/_up").json()["status"] == "ok"


def test_is_up_false_in_maintenance_mode(mock_client: MockClient) -> None:
    """CouchDB in maintenance mode answers GET /_up with 404 {"status": "maintenance_mode"}.
    A stand-in (httpx.MockTransport) serves that documented answer: PouchDB Server has no
    maintenance mode, and putting the shared CouchDB under test into it would disturb the
    rest of the suite (on a cluster the other nodes stop using this node's shard copies)."""
    cli, recorder = mock_client({("GET", "/_up"): (404, {"status": "maintenance_mode"})})
    assert cli.server.is_up() is False
    assert [r.url.path for r in recorder.requests] == ["/_up"]


def test_is_up_falls_back_to_root_where_up_is_missing(mock_client: MockClient) -> None:
    cli, recorder = mock_client({("GET", "/"): (200, {"express-pouchdb": "Welcome!"})})
    assert cli.server.is_up() is True
    assert [r.url.path for r in recorder.requests] == ["/_up", "/"]


def test_is_up_raises_on_auth_failure(mock_client: MockClient) -> None:
    cli, _ = mock_client({("GET", "/_up"): (401, {"error": "unauthorized", "reason": "x"})})
    with pytest.raises(Unauthorized):
        cli.server.is_up()


def test_active_tasks_and_membership(server: Server) -> None:
    assert isinstance(server.active_tasks(), list)
    membership = server.membership()
    assert isinstance(membership["all_nodes"], list)
    assert isinstance(membership["cluster_nodes"], list)


def test_list_database_names(client: Client, db: Database) -> None:
    assert db.name in client.server.list_database_names()


def test_dbs_info_without_keys_sends_nothing(mock_client: MockClient) -> None:
    cli, recorder = mock_client({})
    assert cli.server.dbs_info() == []
    assert recorder.requests == []


def test_dbs_info_on_the_real_server(client: Client, db: Database, db_name_factory: Any) -> None:
    missing = db_name_factory()
    rows = client.server.dbs_info(db.name, missing)
    assert [row["key"] for row in rows] == [db.name, missing]
    assert rows[0]["info"]["db_name"] == db.name
    assert rows[1] == {"key": missing, "error": "not_found"}


@pytest.mark.couchdb_only("PouchDB Server has no POST /_dbs_info (its fallback is tested above)")
def test_dbs_info_uses_one_post(
    recording_client: RecordingClient, db: Database, db_name_factory: Any
) -> None:
    """POST /_dbs_info (CouchDB >= 2.2): one request for several names, answers in order."""
    cli, transport = recording_client
    missing = db_name_factory()
    rows = cli.server.dbs_info(db.name, missing)
    assert transport.sent == [("POST", "/_dbs_info")]
    assert [row["key"] for row in rows] == [db.name, missing]
    assert rows[0]["info"]["db_name"] == db.name
    assert rows[1] == {"key": missing, "error": "not_found"}


def test_dbs_info_is_sent_in_batches_of_100(handler_client: Any) -> None:
    """CouchDB refuses more than max_db_number_for_dbs_info_req (default 100) keys with
    400 too_many_keys, so longer lists go in several requests, answers in order."""
    bodies: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys = json.loads(request.content)["keys"]
        bodies.append(keys)
        if len(keys) > 100:
            return httpx.Response(400, json={"error": "bad_request", "reason": "too_many_keys"})
        return httpx.Response(200, json=[{"key": k, "error": "not_found"} for k in keys])

    names = [f"db{i:03d}" for i in range(250)]
    rows = handler_client(handler).server.dbs_info(*names)
    assert [row["key"] for row in rows] == names
    assert [len(body) for body in bodies] == [100, 100, 50]


def test_server_errors_are_server_scoped(mock_client: MockClient) -> None:
    cli, _ = mock_client({})
    with pytest.raises(ServerError):
        cli.server.membership()


def test_server_as_context_manager(couch_url: str) -> None:
    with Server(couch_url) as server:
        assert server.info()
    # Only the password as it stands in a URL is looked for: the bare string may occur in
    # other words (admin:admin has its password in the user name).
    user, password = couch_url.split("://", 1)[1].split("@")[0].split(":", 1)
    assert f":{password}@" not in repr(server) and f"{user}:***@" in repr(server)
    with pytest.raises(ClientClosedError):
        server.info()
