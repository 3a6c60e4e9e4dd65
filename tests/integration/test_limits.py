"""A hostile world: the server's size limits, and values on it Python cannot round-trip.

The limits are lowered on the server under test for the test's duration (on every
node of a cluster) and put back afterwards. CouchDB measures ``[couchdb]
max_document_size`` against a document's body; PouchDB Server uses the same
setting as its limit on a whole request body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from couchsync.apply import apply_plan
from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import DesiredState
from couchsync.plan import Plan, load_and_plan
from couchsync.plan._limits import couchdb_size, read_limits
from couchsync.plan._unreadable import UnreadableDocument


@contextmanager
def server_setting(url: str, section: str, key: str, value: int) -> Iterator[None]:
    """``[section] key = value`` on every node (PouchDB Server: its one config), then
    as it was."""
    with httpx.Client(base_url=url, timeout=30) as http:
        if "couchdb" in http.get("/").json():
            nodes = http.get("/_membership").json()["cluster_nodes"]
            paths = [f"/_node/{node}/_config/{section}/{key}" for node in nodes]
        else:
            paths = [f"/_config/{section}/{key}"]
        old = {path: http.get(path) for path in paths}
        for path in paths:
            http.put(path, json=str(value)).raise_for_status()
        try:
            yield
        finally:
            for path, before in old.items():
                if before.status_code == 200:
                    http.put(path, json=before.json()).raise_for_status()
                else:
                    http.delete(path)


def write_manifest(tmp_path: Path, databases: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False))
    return path


def plan_of(client: Client, path: Path) -> tuple[DesiredState, Plan]:
    return load_and_plan(client, [path], environ={})


def put_raw(url: str, db: str, doc_id: str, body: bytes) -> httpx.Response:
    """Write a document from raw JSON bytes: values Python's json would never write.
    On every shard copy (w = n): a plan right after may read any copy."""
    with httpx.Client(base_url=url, timeout=60) as http:
        http.put(f"/{db}")
        copies = (http.get(f"/{db}").json().get("cluster") or {}).get("n", 1)
        return http.put(f"/{db}/{doc_id}", content=body, params={"w": str(copies)},
                        headers={"Content-Type": "application/json"})


# -- size limits


def test_limits_are_read_from_the_server(client: Client, couch_url: str,
                                         is_couchdb: bool) -> None:
    before = read_limits(client)
    with server_setting(couch_url, "couchdb", "max_document_size", 123_456):
        lowered = read_limits(client)
    if is_couchdb:
        assert (before.document, lowered.document) == (8_000_000, 123_456)
        assert before.request == lowered.request == 4_294_967_296
    else:  # PouchDB Server: the setting bounds the whole request
        assert (before.request, lowered.request) == (4 * 1024**3, 123_456)
        assert before.document is lowered.document is None


def test_batches_stay_within_the_request_limit(client: Client, couch_url: str,
                                               db_name: str, tmp_path: Path,
                                               is_couchdb: bool) -> None:
    # 40 documents of ~2 KB: one batch of 80 KB, over a 30 KB request limit.
    docs = [{"_id": f"d{i:02}", "text": "x" * 2000} for i in range(40)]
    path = write_manifest(tmp_path, {db_name: {"documents": docs}})
    section, key = (("chttpd", "max_http_request_size") if is_couchdb
                    else ("couchdb", "max_document_size"))
    with server_setting(couch_url, section, key, 30_000):
        desired, made = plan_of(client, path)
        assert not made.errors
        result = apply_plan(client, made, desired)
    assert result.ok and result.counts()["create"] == 41  # the database and 40 documents
    assert client.database(db_name).info()["doc_count"] == 40


def test_a_document_over_the_limit_is_a_plan_error_naming_it(
        client: Client, couch_url: str, db_name_factory: Callable[[], str],
        tmp_path: Path) -> None:
    too_big, fine = db_name_factory(), db_name_factory()
    path = write_manifest(tmp_path, {
        too_big: {"documents": [{"_id": "small", "v": 1}, {"_id": "big", "text": "x" * 3000}]},
        fine: {"documents": [{"_id": "small", "v": 1}]},
    })
    with server_setting(couch_url, "couchdb", "max_document_size", 2000):
        desired, made = plan_of(client, path)
        assert set(made.errors) == {too_big}
        reason = made.errors[too_big]
        assert f"db:{too_big}/doc:big ({path}:" in reason and "doc:small" not in reason
        assert "max_document_size" in reason
        assert [step.address for step in made.steps] == [f"db:{fine}",
                                                         f"db:{fine}/doc:small"]
        assert apply_plan(client, made, desired).ok
    assert client.database(fine).get("small")["v"] == 1
    with httpx.Client(timeout=30) as http:  # nothing was written to the refused database
        assert http.get(f"{couch_url}/{too_big}").status_code == 404


@pytest.mark.couchdb_only("PouchDB Server bounds the request, not the document body")
def test_the_size_check_is_couchdbs_own_to_the_byte(client: Client, couch_url: str,
                                                    db_name: str, tmp_path: Path) -> None:
    # {"v": "x" * n} measures n + 8 bytes as CouchDB counts (couch_ejson_size).
    at_limit, over = {"v": "x" * 1992}, {"v": "x" * 1993}
    assert (couchdb_size(at_limit), couchdb_size(over)) == (2000, 2001)
    path = write_manifest(tmp_path, {db_name: {"documents": [{"_id": "a", **at_limit}]}})
    with server_setting(couch_url, "couchdb", "max_document_size", 2000):
        desired, made = plan_of(client, path)
        assert not made.errors
        assert apply_plan(client, made, desired).ok
        refused = httpx.put(f"{couch_url}/{db_name}/b", json=over, timeout=30)
        assert refused.status_code == 413
        path.write_text(path.read_text().replace("x" * 1992, "x" * 1993))
        _, made = plan_of(client, path)
        assert "is 2,001 bytes as CouchDB measures" in made.errors[db_name]


def test_an_update_keeps_attachments_larger_than_the_limit(
        client: Client, couch_url: str, db_name: str, tmp_path: Path) -> None:
    # Manifests declare no attachments; an update carries the live stubs, not the data.
    data = base64.b64encode(b"y" * 6000).decode()
    body = {"v": 1, "_attachments": {"y.txt": {"content_type": "text/plain", "data": data}}}
    assert put_raw(couch_url, db_name, "a", json.dumps(body).encode()).status_code == 201
    path = write_manifest(tmp_path, {db_name: {"documents": [{"_id": "a", "v": 2}]}})
    with server_setting(couch_url, "couchdb", "max_document_size", 2000):
        desired, made = plan_of(client, path)
        assert [step.address for step in made.steps] == [f"db:{db_name}/doc:a"]
        assert apply_plan(client, made, desired).ok
    doc = client.database(db_name).get("a")
    assert doc["v"] == 2 and doc["_attachments"]["y.txt"]["length"] == 6000


# -- values the server holds that Python cannot round-trip


def test_an_integer_beyond_a_double_compares_as_the_double(
        client: Client, couch_url: str, db_name: str, tmp_path: Path) -> None:
    assert put_raw(couch_url, db_name, "big",
                   b'{"n":123456789012345678901234567890}').status_code == 201
    path = write_manifest(tmp_path, {db_name: {"documents": [
        {"_id": "big", "n": 123456789012345678901234567890}]}})
    _, made = plan_of(client, path)
    assert made.is_empty and not made.errors
    path.write_text(path.read_text().replace("123456789012345678901234567890", "1"))
    _, made = plan_of(client, path)
    assert [step.address for step in made.steps] == [f"db:{db_name}/doc:big"]
    exported = export_manifest(client, [db_name], with_docs=True)
    (tmp_path / "exported.yaml").write_text(exported)
    _, again = plan_of(client, tmp_path / "exported.yaml")
    assert again.is_empty and not again.errors


def test_a_number_beyond_a_double_never_reaches_couchsync(
        client: Client, couch_url: str, db_name: str, tmp_path: Path,
        is_couchdb: bool) -> None:
    answer = put_raw(couch_url, db_name, "inf", b'{"n":1e400}')
    if is_couchdb:  # refused: CouchDB never holds it
        assert answer.status_code == 400
        return
    assert answer.status_code == 201  # PouchDB Server stores it as null
    path = write_manifest(tmp_path, {db_name: {"documents": [{"_id": "inf", "n": 1}]}})
    _, made = plan_of(client, path)
    assert [step.before for step in made.steps] == [{"n": None}]


def test_a_lone_surrogate_on_the_server_is_named(
        client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        is_couchdb: bool) -> None:
    odd, fine = db_name_factory(), db_name_factory()
    answer = put_raw(couch_url, odd, "s", b'{"v":"x\\ud800y"}')
    if is_couchdb:  # refused: "invalid UTF-8 JSON"
        assert answer.status_code == 400
        return
    assert answer.status_code == 201
    path = write_manifest(tmp_path, {odd: {"documents": [{"_id": "s", "v": "x"}]},
                                     fine: {"documents": [{"_id": "a"}]}})
    _named_and_alone(client, path, odd, fine, "s", "lone UTF-16 surrogate")


@pytest.mark.couchdb_only("PouchDB Server refuses a body nested 10,000 deep (RangeError)")
@pytest.mark.parametrize("depth", [300, 10_000])
def test_a_deeply_nested_document_on_the_server_is_named(
        client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        depth: int) -> None:
    odd, fine = db_name_factory(), db_name_factory()
    body = b'{"v":' + b"[" * depth + b"]" * depth + b"}"
    assert put_raw(couch_url, odd, "deep", body).status_code == 201
    for i in range(20):  # neighbours in the same read, which must still be read
        assert put_raw(couch_url, odd, f"n{i}", b'{"v":1}').status_code == 201
    path = write_manifest(tmp_path, {
        odd: {"documents": [{"_id": f"n{i}", "v": 1} for i in range(20)]
              + [{"_id": "deep", "v": 1}]},
        fine: {"documents": [{"_id": "a"}]}})
    _named_and_alone(client, path, odd, fine, "deep", "nested")


def _named_and_alone(client: Client, path: Path, odd: str, fine: str, doc_id: str,
                     why: str) -> None:
    """The plan names ``doc_id`` of ``odd`` (``why``) and still plans ``fine``; export
    names it too."""
    _, made = plan_of(client, path)
    assert set(made.errors) == {odd}
    assert made.errors[odd].startswith(f"doc:{doc_id} (declared at {path}:")
    assert why in made.errors[odd]
    assert f"db:{fine}/doc:a" in [step.address for step in made.steps]
    with pytest.raises(UnreadableDocument, match=f"db:{odd}/doc:{doc_id}: .*{why}"):
        export_manifest(client, [odd], with_docs=True)

