"""IndexQuery and FindQuery bodies, and a FindQuery run on the server."""

from __future__ import annotations

from couchsync.client import Client, FindQuery, IndexQuery


def test_index_query_defaults_do_not_share_lists() -> None:
    first, second = IndexQuery(), IndexQuery()
    first.fields.append("type")
    assert second.fields == []
    assert first.to_dict() == {"index": {"fields": ["type"]}, "type": "json"}


def test_index_query_full_body() -> None:
    query = IndexQuery(
        fields=[{"a": "asc"}, "b"],
        name="by-a",
        ddoc="_design/mine",
        partial_filter_selector={"type": "user"},
    )
    assert query.to_dict() == {
        "index": {"fields": [{"a": "asc"}, "b"], "partial_filter_selector": {"type": "user"}},
        "type": "json",
        "name": "by-a",
        "ddoc": "mine",
    }
    assert IndexQuery(fields=["x"], ddoc="plain").to_dict()["ddoc"] == "plain"


def test_find_query_body() -> None:
    assert FindQuery({"a": 1}).to_dict() == {"selector": {"a": 1}}
    full = FindQuery(
        {"a": {"$gt": 1}},
        fields=["_id"],
        sort=[{"a": "asc"}],
        limit=10,
        skip=0,
        use_index=["_design/i", "n"],
        bookmark="bm",
    )
    assert full.to_dict() == {
        "selector": {"a": {"$gt": 1}},
        "fields": ["_id"],
        "sort": [{"a": "asc"}],
        "limit": 10,
        "skip": 0,
        "use_index": ["_design/i", "n"],
        "bookmark": "bm",
    }


def test_find_query_made_empty_and_filled_in() -> None:
    """As with pycouchdb (and IndexQuery): ``q = FindQuery(); q.selector["type"] = "user"``;
    each instance has its own selector."""
    first, second = FindQuery(), FindQuery()
    assert first.to_dict() == {"selector": {}}
    first.selector["type"] = "user"
    first.limit = 5
    assert second.selector == {}
    assert first.to_dict() == {"selector": {"type": "user"}, "limit": 5}


def test_a_filled_in_find_query_runs_on_the_server(client: Client, db_name: str) -> None:
    # n=1 (one copy of each shard; PouchDB Server ignores it): on a cluster, _find then
    # cannot read a copy that the writes below have not reached yet.
    client.create(db_name, n=1)
    db = client.database(db_name)
    results = db.bulk_docs([
        {"_id": "u1", "type": "user", "age": 30},
        {"_id": "u2", "type": "user", "age": 41},
        {"_id": "o1", "type": "order", "age": 50},
    ])
    assert all(r.get("ok") for r in results), results
    query = FindQuery()
    query.selector["type"] = "user"
    query.selector["age"] = {"$gt": 35}
    query.fields = ["_id", "age"]
    assert db.find(query)["docs"] == [{"_id": "u2", "age": 41}]
    query.selector.pop("age")
    assert sorted(doc["_id"] for doc in db.iter_find(query)) == ["u1", "u2"]
