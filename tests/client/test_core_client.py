"""Client: create, delete, get_db, database, listing, membership tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from couchsync.client import (
    BadRequest,
    Client,
    Database,
    DatabaseError,
    InvalidDatabaseName,
    NotFound,
    PreconditionFailed,
    ServerError,
)
from couchsync.client._transport import send
from couchsync.client._url import db_path

MockClient = Callable[..., tuple[Client, Any]]


def test_create_list_contains_iterate_delete(client: Client, db_name: str) -> None:
    assert db_name not in client
    assert client.create(db_name) == {"ok": True}
    assert db_name in client
    assert db_name in client.list_database_names()
    assert db_name in list(client)
    assert client.delete(db_name) == {"ok": True}
    assert db_name not in client


def test_create_existing_is_precondition_failed(client: Client, db: Database) -> None:
    with pytest.raises(PreconditionFailed) as info:
        client.create(db.name)
    assert isinstance(info.value, ServerError) and info.value.error == "file_exists"


def test_delete_missing_is_not_found_on_every_server(client: Client, db_name: str) -> None:
    with pytest.raises(NotFound) as info:
        client.delete(db_name)
    assert isinstance(info.value, ServerError)


def test_get_db_checks_existence(client: Client, db: Database, db_name_factory: Any) -> None:
    assert client.get_db(db.name).info()["db_name"] == db.name
    with pytest.raises(NotFound) as info:
        client.get_db(db_name_factory())
    assert isinstance(info.value, ServerError) and not isinstance(info.value, DatabaseError)


def test_database_handle_makes_no_request(mock_client: MockClient) -> None:
    cli, recorder = mock_client({})
    handle = cli.database("not-there")
    assert isinstance(handle, Database) and handle.name == "not-there"
    assert recorder.requests == []


def test_database_names_with_special_characters(
    client: Client, db_name: str, is_couchdb: bool
) -> None:
    name = db_name + "/a+b$c(d)-e_f"
    try:
        client.create(name)
        assert name in client
        if is_couchdb:  # PouchDB Server's _all_dbs drops the "/" from such names
            assert name in client.list_database_names()
        database = client.get_db(name)
        if is_couchdb:  # and reports it without the "/" in db_name
            assert database.info()["db_name"] == name
        database.add({"_id": "x"})
        assert database.get("x")["_id"] == "x"
    finally:
        client.delete(name)
    assert _gone(client, name)


def _gone(client: Client, name: str, seconds: float = 10.0) -> bool:
    """Whether ``name`` is reported missing within ``seconds``. Right after a delete, a
    cluster node still removing the shards may answer 500 for the database: asked
    again, it says 404."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return name not in client
        except ServerError as exc:
            if exc.status != 500 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize(
    "name", ["Upper", "1digit", "_system", "sp ace", "", "a.b", "é", "abc\n", "_users_x"]
)
def test_invalid_name_is_rejected_before_sending(mock_client: MockClient, name: str) -> None:
    cli, recorder = mock_client({})
    with pytest.raises(InvalidDatabaseName) as info:
        cli.create(name)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ServerError)
    assert info.value.error == "illegal_database_name"
    assert "s3cret" not in str(info.value) + (info.value.url or "")
    assert recorder.requests == []


@pytest.mark.parametrize("name", ["", "_all_dbs", "_session", "_config"])
def test_names_that_address_server_endpoints(mock_client: MockClient, name: str) -> None:
    """HEAD / or HEAD /_all_dbs answer 200: without a check "" would be "in" the client and
    get_db("") a Database on the server root."""
    cli, recorder = mock_client({("HEAD", "/" + name): (200, {})})
    assert name not in cli
    for call in (lambda: cli.get_db(name), lambda: cli.delete(name), lambda: cli.create(name)):
        with pytest.raises(InvalidDatabaseName):
            call()
    assert recorder.requests == []


@pytest.mark.parametrize("name", ["_users", "_replicator", "_global_changes"])
def test_system_databases_may_be_created(mock_client: MockClient, name: str) -> None:
    """CouchDB's name check lets these through (a fresh single node needs _users)."""
    cli, recorder = mock_client({("PUT", "/" + name): (201, {"ok": True})})
    assert cli.create(name) == {"ok": True}
    assert [r.url.raw_path for r in recorder.requests] == [b"/" + name.encode()]


@pytest.mark.couchdb_only("PouchDB Server ignores `partitioned`, q and n")
def test_create_partitioned_with_shards(client: Client, db_name: str) -> None:
    """Partitioned creation with q/n (n=1 is valid on a single node and on a cluster)."""
    assert client.create(db_name, partitioned=True, q=2, n=1) == {"ok": True}
    info = client.database(db_name).info()
    assert info["props"] == {"partitioned": True}
    assert info["cluster"]["q"] == 2 and info["cluster"]["n"] == 1


@pytest.mark.couchdb_only("PouchDB Server accepts any database name")
def test_server_side_name_check(client: Client) -> None:
    """What Client.create's own check stands in for: the server's 400 for an illegal name,
    seen as BadRequest+ServerError."""
    bad = "Bad_Name"
    with pytest.raises(BadRequest) as info:  # bypasses create()'s client-side check
        send(client._conn, ServerError, "PUT", db_path(bad))
    assert isinstance(info.value, ServerError) and info.value.error == "illegal_database_name"
