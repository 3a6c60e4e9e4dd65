"""Pure parts of the size limits and of naming values couchsync cannot represent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from couchsync.plan._batch import batched_within
from couchsync.plan._unreadable import (
    MAX_DEPTH,
    UnreadableDocument,
    fetch_decodable,
    value_problem,
)
from couchsync.read._limits import couchdb_size


@pytest.mark.parametrize(("value", "size"), [
    ({}, 2), ([], 2), ({"a": 1}, 7), ([1, 2], 5), ("é", 4), (None, 4), (True, 4),
    (False, 5), (0, 1), (-12, 3), (10**20, 21), (10**16 - 1, 17),  # log10 of a double
    (0.0, 3), (1.5, 3), (-0.5, 4), (1e-5, 4), (1e-50, 5), (1e-200, 6), (1e-305, 3),
    (2e10, 4), (1e150, 5),
])
def test_couchdb_size_follows_couch_ejson_size(value: Any, size: int) -> None:
    assert couchdb_size(value) == size


def test_couchdb_size_matches_the_compact_json_of_plain_values() -> None:
    body = {"name": "x" * 100, "tags": ["a", "b"], "n": 12345, "ok": True, "none": None}
    assert couchdb_size(body) == len(json.dumps(body, separators=(",", ":")))


def test_couchdb_size_walks_deep_values_without_recursion() -> None:
    value: Any = []
    for _ in range(10_000):
        value = [value]
    assert couchdb_size(value) == 2 * 10_001


def test_batched_within_bounds_count_and_weight() -> None:
    batches = list(batched_within([5, 5, 5, 20, 1, 1, 1], 2, 10, lambda n: n))
    assert batches == [[5, 5], [5], [20], [1, 1], [1]]


def test_value_problem_names_depth_and_lone_surrogates() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    assert value_problem(deep) is not None and "nested" in str(value_problem(deep))
    assert "surrogate" in str(value_problem({"x": ["ok", "a\ud800"]}))
    assert "surrogate" in str(value_problem({"\udc00": 1}))
    assert value_problem({"x": ["é", "😀", {"y": None}]}) is None


def test_fetch_decodable_halves_down_to_the_document_to_blame() -> None:
    asked: list[Sequence[str]] = []

    def fetch(ids: Sequence[str]) -> dict[str, Any]:
        asked.append(ids)
        if "bad" in ids:
            raise RecursionError
        return {doc_id: {} for doc_id in ids}

    ids = [f"d{i}" for i in range(7)] + ["bad"]
    with pytest.raises(UnreadableDocument) as raised:
        fetch_decodable(fetch, ids)
    assert raised.value.doc_id == "bad"
    assert len(asked) == 7  # 8 ids: the whole, then halves, log2(8) = 3 levels deep
    assert fetch_decodable(fetch, ids[:7]) == {doc_id: {} for doc_id in ids[:7]}
