"""Database: single documents, awkward ids, bulk reads and writes, Mango, security, purge."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from couchsync.client import (
    BadRequest,
    Client,
    Conflict,
    Database,
    DatabaseError,
    FindQuery,
    Forbidden,
    IndexQuery,
    NotFound,
    ServerError,
)

MockClient = Callable[..., tuple[Client, Any]]


def _not_found(call: Callable[[], object]) -> bool:
    try:
        call()
    except NotFound:
        return True
    return False


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Wait until ``condition()`` holds (eventual consistency, a write done later);
    fail saying ``what`` did not happen within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)
HandlerClient = Callable[[Callable[[httpx.Request], httpx.Response]], Client]

AWKWARD_IDS = [
    "plain",
    "a/b",
    "with space",
    "q?h#a&p+e=p%",
    "%2F",
    "non-ascii é ü 漢字 🎉",
    "_design/x",
    "_design/a/b c",
]


def test_info_and_exists(db: Database, client: Client, db_name_factory: Any) -> None:
    assert db.info()["doc_count"] == 0
    assert db.exists() is True
    assert client.database(db_name_factory()).exists() is False
    assert repr(db).startswith(f"<Database {db.name!r} at http")


def test_errors_on_a_missing_database_are_database_errors(
    client: Client, db_name_factory: Any
) -> None:
    missing = client.database(db_name_factory())
    with pytest.raises(NotFound) as info:
        missing.info()
    assert isinstance(info.value, DatabaseError) and not isinstance(info.value, ServerError)


@pytest.mark.parametrize("doc_id", AWKWARD_IDS)
def test_awkward_ids_in_every_method(db: Database, doc_id: str) -> None:
    assert db.add({"_id": doc_id, "v": 1})[0] == doc_id
    assert doc_id in db
    assert db.get(doc_id)["v"] == 1
    rev = db.doc_info(doc_id)["rev"]
    new_id, rev2 = db.update(doc_id, {"v": 2})
    assert new_id == doc_id and rev2.startswith("2-") and rev2 != rev
    assert db.get_many([{"id": doc_id}])[0]["v"] == 2  # type: ignore[index]
    assert [row["id"] for row in db.all_docs([doc_id])] == [doc_id]
    assert db.delete(doc_id)[0] == doc_id
    assert doc_id not in db


def test_add_without_id_gets_a_server_id_and_leaves_input_alone(db: Database) -> None:
    doc = {"name": "john"}
    doc_id, rev = db.add(doc)
    assert doc == {"name": "john"}
    assert rev.startswith("1-") and db.get(doc_id)["name"] == "john"


def test_add_with_id_is_not_mutated_and_duplicate_conflicts(db: Database, copies: int) -> None:
    doc = {"_id": "x", "n": 1}
    assert db.add(doc)[0] == "x"
    assert doc == {"_id": "x", "n": 1}
    # The duplicate is tried once every shard copy has the first (w=copies, answered 201):
    # on a cluster a copy that had not got it yet would accept the duplicate, and CouchDB
    # answers 202 Accepted instead of 409 when some copies accept and the others conflict.
    assert not db.bulk_docs([{"_id": "y", "n": 1}], w=copies).accepted
    dup = {"_id": "y", "n": 2}
    with pytest.raises(Conflict) as info:
        db.add(dup)
    assert isinstance(info.value, DatabaseError) and info.value.status == 409
    assert dup == {"_id": "y", "n": 2}


def test_add_batch(db: Database) -> None:
    result = db.add_batch({"_id": "batched", "v": 1})
    assert result["ok"] is True and result["id"] == "batched"
    # CouchDB answers 202 before the write is done: the document appears a little later.
    _eventually(lambda: "batched" in db, "the batch-mode document is there")
    assert db.get("batched")["v"] == 1


def test_add_batch_sends_batch_ok(mock_client: MockClient) -> None:
    """CouchDB's documented answer to ?batch=ok: 202 with ok and id, no rev."""
    answer = {"ok": True, "id": "b"}
    cli, recorder = mock_client({("POST", "/db"): (202, answer)})
    doc = {"_id": "b", "n": 1}
    assert cli.database("db").add_batch(doc) == answer
    assert dict(recorder.requests[0].url.params) == {"batch": "ok"}
    assert json.loads(recorder.requests[0].content) == doc


def test_update_replaces_the_body(db: Database) -> None:
    db.add({"_id": "d", "keep": 1, "drop": 2})
    db.update("d", {"keep": 3})
    doc = db.get("d")
    assert doc["keep"] == 3 and "drop" not in doc


def test_update_revision_rules(db: Database, copies: int) -> None:
    # Every shard copy has each revision before the stale writes (w=copies): on a cluster
    # a copy that rev2 had not reached yet would accept a write based on rev1, and
    # CouchDB answers 202 Accepted, not 409, when some copies accept and others conflict.
    _, rev1 = db.update("d", {"n": 1}, w=copies)
    _, rev2 = db.update("d", {"n": 2}, rev1, w=copies)
    with pytest.raises(Conflict):
        db.update("d", {"n": 3}, rev1)  # stale explicit rev
    with pytest.raises(Conflict):
        db.update("d", {"n": 3, "_rev": rev1})  # stale rev in the body
    _, rev3 = db.update("d", {"n": 4})  # no rev: the current one
    assert rev3.startswith("3-") and db.get("d")["n"] == 4
    assert db.get("d", rev=rev2)["n"] == 2


def test_update_missing_document_without_rev_creates_it(db: Database) -> None:
    doc_id, rev = db.update("fresh", {"n": 1})
    assert (doc_id, rev[:2]) == ("fresh", "1-") and db.get("fresh")["n"] == 1


def test_delete_with_and_without_rev(db: Database) -> None:
    _, rev = db.add({"_id": "a"})
    db.add({"_id": "b"})
    with pytest.raises((Conflict, NotFound)):  # CouchDB: 409; PouchDB Server: 404
        db.delete("a", "1-00000000000000000000000000000000")
    assert db.delete("a", rev)[1].startswith("2-")
    assert db.delete("b")[1].startswith("2-")
    with pytest.raises(NotFound):
        db.get("a")
    with pytest.raises(NotFound):
        db.delete("never-existed")


def test_local_documents(db: Database) -> None:
    assert db.update("_local/state", {"n": 1}) == ("_local/state", "0-1")
    assert db.update("_local/state", {"n": 2}) == ("_local/state", "0-2")
    assert db.update("_local/state", {"n": 3}, "0-2")[1] == "0-3"
    doc = db.get("_local/state")
    assert doc["n"] == 3 and doc["_id"] == "_local/state"
    assert db.doc_info("_local/state")["rev"] == "0-3"
    assert db.add({"_id": "_local/other x", "n": 1})[0] == "_local/other x"
    db.delete("_local/state")
    # _local documents are not replicated between shard copies: on a cluster a read may
    # meet a copy that the delete (answered at quorum) has not reached yet, for a moment.
    _eventually(lambda: _not_found(lambda: db.get("_local/state")),
                "get of the deleted _local document raises NotFound")
    assert all(not row["id"].startswith("_local/") for row in db.list_documents())


def test_design_documents(db: Database) -> None:
    ddoc = {"views": {"all": {"map": "function (doc) { emit(doc._id, 1); }"}}}
    db.update("_design/app", ddoc)
    assert db.get("_design/app")["views"] == ddoc["views"]
    assert db.doc_info("_design/app")["rev"].startswith("1-")
    assert db.delete("_design/app")[1].startswith("2-")


def test_get_sends_every_option(mock_client: MockClient) -> None:
    cli, recorder = mock_client({("GET", "/db/a%2Fb"): (200, {"_id": "a/b"})})
    cli.database("db").get(
        "a/b",
        attachments=True,
        att_encoding_info=True,
        atts_since=["1-a", "2-b"],
        conflicts=True,
        deleted_conflicts=True,
        latest=True,
        rev="3-c",
        revs=True,
    )
    assert dict(recorder.requests[0].url.params) == {
        "attachments": "true",
        "att_encoding_info": "true",
        "atts_since": '["1-a", "2-b"]',
        "conflicts": "true",
        "deleted_conflicts": "true",
        "latest": "true",
        "rev": "3-c",
        "revs": "true",
    }
    cli.database("db").get("a/b")
    assert recorder.requests[1].url.query == b""


def test_get_options_on_the_real_server(db: Database) -> None:
    _, rev = db.add({"_id": "d"})
    doc = db.get("d", revs=True, conflicts=True, atts_since=[rev])
    assert doc["_revisions"]["start"] == 1


def test_doc_info_is_the_true_current_rev(db: Database) -> None:
    db.add({"_id": "d", "n": 1})
    _, rev = db.update("d", {"n": 2})
    info = db.doc_info("d")
    assert info["rev"] == rev
    assert info["size"] > 0 and info["date"]
    with pytest.raises(NotFound):
        db.doc_info("missing")


def test_doc_info_trusts_a_couchdb_etag(handler_client: HandlerClient) -> None:
    """CouchDB's ETag is the quoted rev: no second request is needed."""
    rev = "2-0123456789abcdef0123456789abcdef"
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        headers = {"ETag": f'"{rev}"', "Content-Length": "55", "Date": "Mon, 1 Jan 2024"}
        return httpx.Response(200, headers=headers)

    info = handler_client(handler).database("db").doc_info("d")
    assert info == {"rev": rev, "size": 55, "date": "Mon, 1 Jan 2024"}
    assert methods == ["HEAD"]


def test_get_many_keeps_order_and_marks_missing_as_none(db: Database) -> None:
    db.bulk_docs([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}, {"_id": "gone"}])
    db.delete("gone")
    docs = db.get_many([{"id": "b"}, {"id": "missing"}, {"id": "a"}, {"id": "gone"}])
    assert [d and d["n"] for d in docs] == [2, None, 1, None]


def test_get_many_with_couchdb_shapes(mock_client: MockClient) -> None:
    """CouchDB's documented _bulk_get answer: a missing id carries an error object."""
    results = {
        "results": [
            {"id": "a", "docs": [{"ok": {"_id": "a", "_rev": "1-x"}}]},
            {
                "id": "m",
                "docs": [
                    {
                        "error": {
                            "id": "m",
                            "rev": "undefined",
                            "error": "not_found",
                            "reason": "missing",
                        }
                    }
                ],
            },
            {"id": "d", "docs": [{"ok": {"_id": "d", "_rev": "2-y", "_deleted": True}}]},
        ]
    }
    cli, recorder = mock_client({("POST", "/db/_bulk_get"): (200, results)})
    docs = cli.database("db").get_many([{"id": "a"}, {"id": "m"}, {"id": "d"}])
    assert docs == [{"_id": "a", "_rev": "1-x"}, None, None]
    assert json.loads(recorder.requests[0].content) == {
        "docs": [{"id": "a"}, {"id": "m"}, {"id": "d"}]
    }
    bad = {
        "results": [
            {
                "id": "a",
                "docs": [{"error": {"id": "a", "rev": "x", "error": "bad_request", "reason": "r"}}],
            }
        ]
    }
    cli, _ = mock_client({("POST", "/db/_bulk_get"): (200, bad)})
    with pytest.raises(BadRequest, match="bad_request") as info:
        cli.database("db").get_many([{"id": "a", "rev": "x"}])
    assert isinstance(info.value, DatabaseError) and info.value.status == 400
    assert info.value.url == "http://admin:***@couch.test:5984/db/_bulk_get"
    assert "s3cret" not in str(info.value)


def test_get_many_without_ids_sends_nothing(mock_client: MockClient) -> None:
    cli, recorder = mock_client({})
    assert cli.database("db").get_many([]) == []
    assert recorder.requests == []


def test_bulk_docs_returns_item_errors(db: Database, copies: int) -> None:
    # w=copies: on a cluster, a shard copy that had not got "a" yet would accept it again
    # (answered as accepted, not as a conflict).
    results = db.bulk_docs([{"_id": "a"}, {"_id": "b"}], w=copies)
    assert not results.accepted
    assert [r["id"] for r in results] == ["a", "b"] and all(r.get("ok") for r in results)
    again = db.bulk_docs([{"_id": "a"}, {"_id": "c"}])
    assert again[0]["id"] == "a" and again[0]["error"] == "conflict"
    assert again[1]["id"] == "c" and "rev" in again[1]


def test_bulk_results_sort_written_from_refused(db: Database, copies: int) -> None:
    db.bulk_docs([{"_id": "a"}], w=copies)
    results = db.bulk_docs([{"_id": "a"}, {"_id": "c"}], w=copies)
    assert results.revs() == {"c": next(r["rev"] for r in results if r["id"] == "c")}
    assert list(results.errors()) == ["a"] and results.errors()["a"]["error"] == "conflict"


def test_bulk_docs_new_edits_false(db: Database) -> None:
    rev = "1-0123456789abcdef0123456789abcdef"
    db.bulk_docs([{"_id": "r", "_rev": rev, "n": 1}], new_edits=False)
    assert db.get("r")["_rev"] == rev


def test_all_docs_with_keys(db: Database) -> None:
    db.bulk_docs([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}])
    db.delete("b")
    rows = db.all_docs(["b", "missing", "a"], include_docs=True)
    assert [row["key"] for row in rows] == ["b", "missing", "a"]
    assert rows[0]["value"]["deleted"] is True
    assert rows[1]["error"] == "not_found"
    assert rows[2]["doc"]["n"] == 1


def test_all_docs_range(db: Database, copies: int) -> None:
    db.bulk_docs([{"_id": f"k{i}"} for i in range(5)], w=copies)
    assert [r["id"] for r in db.all_docs(start_key="k1", end_key="k3")] == ["k1", "k2", "k3"]
    assert [r["id"] for r in db.all_docs(limit=2)] == ["k0", "k1"]
    assert "doc" not in db.all_docs(limit=1)[0]
    assert db.all_docs(limit=1, include_docs=True)[0]["doc"]["_id"] == "k0"


def test_large_listings_are_paged(db: Database, copies: int) -> None:
    ids = sorted(f"doc-{i:05d}" for i in range(3100))
    for start in range(0, len(ids), 1000):
        results = db.bulk_docs([{"_id": i, "n": 1} for i in ids[start : start + 1000]],
                               w=copies)
        assert not [r for r in results if "error" in r]
    assert [row["id"] for row in db.list_documents()] == ids
    assert [doc["_id"] for doc in db.get_all_docs()] == ids
    assert [row["id"] for row in db.iter_all_docs(page_size=700)] == ids
    ranged = list(db.iter_all_docs(start_key="doc-01000", end_key="doc-02000", page_size=333))
    assert [row["id"] for row in ranged] == ids[1000:2001]
    first_three = itertools.islice(db.iter_all_docs(page_size=1), 3)
    assert [row["id"] for row in first_three] == ids[:3]
    # Read ahead: the same rows, each next page asked for while this one is consumed.
    assert list(db.iter_all_docs(page_size=700, read_ahead=True)) == list(
        db.iter_all_docs(page_size=700))
    ahead = db.iter_all_docs(start_key="doc-01000", end_key="doc-02000", page_size=333,
                             read_ahead=True)
    assert list(ahead) == ranged
    stopped = db.iter_all_docs(page_size=1000, read_ahead=True)
    assert next(stopped)["id"] == ids[0]
    stopped.close()  # the page asked for ahead is dropped unread


def test_iter_all_docs_asks_page_by_page(handler_client: HandlerClient) -> None:
    rows = [{"id": k, "key": k, "value": {"rev": "1-a"}} for k in "abcde"]
    pages = iter([rows[0:3], rows[2:5], rows[4:5]])
    params: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params.append(dict(request.url.params))
        return httpx.Response(200, json={"rows": next(pages)})

    database = handler_client(handler).database("db")
    assert [r["id"] for r in database.iter_all_docs(page_size=2)] == list("abcde")
    assert params == [
        {"limit": "3"},
        {"limit": "3", "startkey": '"c"'},
        {"limit": "3", "startkey": '"e"'},
    ]


def test_find_and_iter_find(db: Database, copies: int) -> None:
    db.bulk_docs([{"_id": f"d{i:02d}", "type": "t", "n": i} for i in range(30)] + [{"type": "u"}],
                 w=copies)
    query = FindQuery(selector={"type": "t"}, fields=["_id", "n"], limit=5)
    first = db.find(query)
    assert len(first["docs"]) == 5 and set(first["docs"][0]) == {"_id", "n"}
    found = sorted(doc["n"] for doc in db.iter_find(query))
    assert found == list(range(30))
    assert len(list(db.iter_find({"selector": {"type": "u"}}))) == 1
    with pytest.raises(BadRequest):
        db.find({"selector": "not an object"})


def test_iter_find_follows_bookmarks(handler_client: HandlerClient) -> None:
    """CouchDB pages _find with bookmarks (PouchDB Server has none; that path runs above)."""
    pages = iter(
        [
            {"docs": [{"_id": "a"}, {"_id": "b"}], "bookmark": "bm1"},
            {"docs": [{"_id": "c"}], "bookmark": "bm2"},
        ]
    )
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=next(pages))

    query = FindQuery(selector={"x": 1}, limit=2, skip=1)
    found = handler_client(handler).database("db").iter_find(query)
    assert [d["_id"] for d in found] == ["a", "b", "c"]
    assert bodies == [
        {"selector": {"x": 1}, "limit": 2, "skip": 1},
        {"selector": {"x": 1}, "limit": 2, "bookmark": "bm1"},
    ]


def test_indexes(db: Database, is_couchdb: bool) -> None:
    query = IndexQuery(name="by-type", ddoc="_design/idx")
    query.fields.append("type")
    created = db.set_index(query)
    assert created == {"result": "created", "id": "_design/idx", "name": "by-type"}
    assert db.set_index(query)["result"] == "exists"
    db.set_index(IndexQuery(fields=[{"n": "desc"}], name="by n", ddoc="other x"))
    # The listing reads one copy of each shard: on a cluster it shows a change once the
    # design documents have reached every copy (set_index and delete_index take no w).
    both = {("_design/idx", "by-type"), ("_design/other x", "by n")}
    _eventually(lambda: both <= {(i["ddoc"], i["name"]) for i in db.get_indexes()["indexes"]},
                "get_indexes lists both new indexes")
    assert db.delete_index("idx", "by-type") == {"ok": True}
    assert db.delete_index("_design/other x", "by n") == {"ok": True}
    _eventually(lambda: not {"by-type", "by n"} & {i["name"] for i in db.get_indexes()["indexes"]},
                "get_indexes no longer lists the deleted indexes")
    if is_couchdb:  # PouchDB Server answers 500 for an index that is gone
        with pytest.raises(NotFound):
            db.delete_index("idx", "by-type")


def test_partial_index(db: Database) -> None:
    index = IndexQuery(fields=["n"], name="p", partial_filter_selector={"type": "t"})
    assert db.set_index(index)["result"] == "created"


def test_delete_index_path(mock_client: MockClient) -> None:
    cli, recorder = mock_client({("DELETE", "/db/_index/_design%2Fd%20x/json/n%2F1"): (200, {})})
    cli.database("db").delete_index("_design/d x", "n/1")
    assert recorder.requests[0].url.raw_path == b"/db/_index/_design%2Fd%20x/json/n%2F1"


def test_security(db: Database, is_couchdb: bool) -> None:
    initial = db.get_security()
    # CouchDB 3.x gives a new database an admin-only security object (members and admins
    # {"roles": ["_admin"]}, [couchdb] default_security); PouchDB Server has none.
    assert isinstance(initial, dict)
    if not is_couchdb:
        assert initial == {}
    security = {
        "admins": {"names": [], "roles": ["admins"]},
        "members": {"names": ["bob"], "roles": []},
    }
    assert db.set_security(security) == {"ok": True}
    # A cluster's nodes learn a new security object a moment apart (each copy is
    # written in turn): read until a node answering shows it, for a while.
    deadline = time.monotonic() + 30
    while db.get_security() != security and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.get_security() == security


@pytest.mark.couchdb_only("PouchDB Server has no _purge")
def test_purge(db: Database) -> None:
    """POST /{db}/_purge removes the document for good (revisions given as any sequence)."""
    _, rev = db.add({"_id": "p"})
    result = db.purge({"p": (rev,)})
    assert result["purged"] == {"p": [rev]} and "purge_seq" in result
    # On a cluster the answer comes once a quorum of copies has purged; a read may still
    # meet the last copy for a moment.
    _eventually(lambda: "p" not in db, "the purged document is gone")


def test_page_sizes_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(db.iter_all_docs(page_size=0))
    with pytest.raises(ValueError, match="limit"):
        next(db.iter_find({"selector": {}, "limit": 0}))


@pytest.mark.parametrize(
    "doc_id", ["", "_all_docs", "_security", "_index", "_design/", "_local/", "_x/y"]
)
def test_ids_that_would_address_an_endpoint_are_refused(
    mock_client: MockClient, doc_id: str
) -> None:
    """CouchDB rejects such ids (illegal_docid); in a URL path they would name the database
    or one of its endpoints, e.g. update("_security", ...) would replace the security object."""
    cli, recorder = mock_client({})
    database = cli.database("db")
    calls = [
        lambda: database.get(doc_id),
        lambda: database.doc_info(doc_id),
        lambda: database.update(doc_id, {"members": {}}),
        lambda: database.update(doc_id, {"n": 1}, "1-a"),
        lambda: database.delete(doc_id),
        lambda: database.delete(doc_id, "1-a"),
        lambda: database.add({"_id": doc_id}),
    ]
    for call in calls:
        with pytest.raises(BadRequest) as info:
            call()
        assert isinstance(info.value, DatabaseError) and info.value.error == "illegal_docid"
        assert "s3cret" not in str(info.value) + (info.value.url or "")
    assert doc_id not in database
    assert recorder.requests == []


def test_validation_failure_is_forbidden(db: Database) -> None:
    """A validate_doc_update that throws {forbidden: ...} answers 403 on both servers."""
    validate = "function (doc) { if (doc.bad) { throw({forbidden: 'no bad docs'}); } }"
    db.update("_design/guard", {"validate_doc_update": validate})
    assert db.add({"_id": "good"})[0] == "good"
    with pytest.raises(Forbidden) as info:
        db.add({"_id": "evil", "bad": True})
    assert isinstance(info.value, DatabaseError) and info.value.status == 403
    assert info.value.error == "forbidden" and info.value.reason == "no bad docs"


def test_local_ids_with_awkward_characters(db: Database) -> None:
    """_local ids with awkward characters work with in, doc_info, get, update and delete."""
    doc_id = "_local/a/b c?#&+=%é"
    assert doc_id not in db
    assert db.add({"_id": doc_id, "n": 1}) == (doc_id, "0-1")
    assert doc_id in db
    assert db.doc_info(doc_id)["rev"] == "0-1"  # CouchDB's _local ETag is a hash, not the rev
    assert db.update(doc_id, {"n": 2}) == (doc_id, "0-2")
    assert db.get(doc_id) == {"_id": doc_id, "_rev": "0-2", "n": 2}
    db.delete(doc_id)
    # On a cluster the delete is answered once a quorum of shard copies has it; _local
    # documents are not replicated between copies, so a read that meets a copy not yet
    # reached may still find the document for a moment.
    _eventually(lambda: doc_id not in db, "the deleted _local document is gone")


def test_bulk_docs_sends_pre_encoded_documents_as_they_are(db: Database) -> None:
    results = db.bulk_docs([b'{"_id":"raw","n":1,"s":"\xc3\xa9"}', {"_id": "dict", "n": 2}])
    assert [r["id"] for r in results] == ["raw", "dict"]
    assert all(r.get("ok") for r in results)
    assert {k: v for k, v in db.get("raw").items() if k != "_rev"} == {
        "_id": "raw", "n": 1, "s": "é"}
