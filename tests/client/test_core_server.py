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
Handler = Callable[[httpx.Request], httpx.Response]


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


@pytest.mark.couchdb_only("PouchDB Server has no POST /_dbs_info (its fallback is tested above)")
def test_dbs_info_batches_on_the_real_server(
    recording_client: RecordingClient, db: Database, db_name_factory: Any
) -> None:
    """CouchDB 3.5.2 answers up to 100 keys per POST /_dbs_info, missing databases as
    {"key", "error": "not_found"}: 150 names take two requests, answers in order."""
    cli, transport = recording_client
    names = [db_name_factory() for _ in range(149)]  # never created
    names.insert(120, db.name)
    rows = cli.server.dbs_info(*names)
    assert transport.sent == [("POST", "/_dbs_info")] * 2
    assert [row["key"] for row in rows] == names
    assert rows[120]["info"]["db_name"] == db.name
    assert all(row == {"key": name, "error": "not_found"}
               for row, name in zip(rows, names, strict=True) if name != db.name)


# -- iter_database_names: GET /_all_dbs page by page


@pytest.fixture
def numbered_dbs(client: Client, db_name_factory: Any) -> Iterator[list[str]]:
    """25 databases named PREFIX_00 ... PREFIX_24 (PREFIX unique to the test), deleted after."""
    prefix = db_name_factory()
    names = [f"{prefix}_{i:02d}" for i in range(25)]
    try:
        for name in names:
            client.create(name)
        yield names
    finally:
        for name in names:
            if name in client:
                client.delete(name)


def test_iter_database_names_reads_a_range_page_by_page(
    recording_client: RecordingClient, numbered_dbs: list[str], is_couchdb: bool,
) -> None:
    cli, transport = recording_client
    names = cli.iter_database_names(start_key=numbered_dbs[3], end_key=numbered_dbs[21],
                                    page_size=7)
    assert list(names) == numbered_dbs[3:22]
    # CouchDB pages (7 + 7 + 5 names); PouchDB Server ignores the paging parameters and
    # sends every name at once, which is noticed and filtered here.
    assert transport.sent == [("GET", "/_all_dbs")] * (3 if is_couchdb else 1)


def test_iter_database_names_open_ended_and_exact_pages(
    client: Client, numbered_dbs: list[str],
) -> None:
    prefix = numbered_dbs[0][:-3]
    assert list(client.iter_database_names(start_key=prefix, end_key=prefix + "_99",
                                           page_size=5)) == numbered_dbs
    tail = client.iter_database_names(start_key=numbered_dbs[20], page_size=1)
    assert [name for name in tail if name.startswith(prefix)] == numbered_dbs[20:]
    head = list(client.server.iter_database_names(end_key=numbered_dbs[4], page_size=1000))
    assert head == sorted(head) and head[-5:] == numbered_dbs[:5]
    assert list(client.iter_database_names(start_key=numbered_dbs[5],
                                           end_key=numbered_dbs[5])) == numbered_dbs[5:6]


def _paging_all_dbs(names: list[str], seen: list[dict[str, str]]) -> Handler:
    """GET /_all_dbs as CouchDB answers it: start_key/end_key (JSON, inclusive), limit."""

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        low = json.loads(params.get("start_key", '""'))
        high = json.loads(params["end_key"]) if "end_key" in params else None
        selected = [n for n in sorted(names) if n >= low and (high is None or n <= high)]
        return httpx.Response(200, json=selected[: int(params["limit"])])

    return handler


def test_iter_database_names_asks_for_one_name_more_than_a_page(handler_client: Any) -> None:
    """limit = page_size + 1: the extra name starts the next page (start_key is
    inclusive), so no name is lost if one is deleted between pages, and none repeats."""
    names = [f"db{i:02d}" for i in range(10)]
    seen: list[dict[str, str]] = []
    cli = handler_client(_paging_all_dbs(names, seen))
    assert list(cli.iter_database_names(start_key="db01", page_size=4)) == names[1:]
    assert seen == [{"limit": "5", "start_key": '"db01"'},
                    {"limit": "5", "start_key": '"db05"'},
                    {"limit": "5", "start_key": '"db09"'}]
    seen.clear()
    assert list(cli.iter_database_names(end_key="db03", page_size=4)) == names[:4]
    assert seen == [{"limit": "5", "end_key": '"db03"'}]


def test_iter_database_names_where_the_server_ignores_paging(handler_client: Any) -> None:
    """PouchDB Server answers every name, in creation order, whatever is asked."""
    names = ["zeta", "alpha", "mid", "beta", "omega", "gamma"]
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=names)

    cli = handler_client(handler)
    assert list(cli.iter_database_names(page_size=2)) == sorted(names)
    assert list(cli.iter_database_names(start_key="b", end_key="n", page_size=100)) == [
        "beta", "gamma", "mid"]
    assert list(cli.iter_database_names(start_key="gamma", page_size=100)) == [
        "gamma", "mid", "omega", "zeta"]
    assert len(requests) == 3


def test_iter_database_names_an_empty_range_or_a_bad_page_size(handler_client: Any) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=[])

    cli = handler_client(handler)
    assert list(cli.iter_database_names(start_key="b", end_key="a")) == []
    assert list(cli.iter_database_names()) == []
    assert len(requests) == 1  # the empty range asked nothing
    with pytest.raises(ValueError, match="page_size"):
        cli.iter_database_names(page_size=0)
