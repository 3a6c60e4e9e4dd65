"""IndexQuery and FindQuery bodies."""

from __future__ import annotations

from couchsync.client import FindQuery, IndexQuery


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
