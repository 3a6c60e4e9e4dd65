"""The planner's helpers: Mango selector normalisation, ``only`` selectors, the ownership
record, batching and field diffs."""

from __future__ import annotations

from typing import Any

import pytest
from plan_builders import database, design, desired, doc

from couchsync._canonical import canonical_json, hash_canonical
from couchsync.plan import PlanError
from couchsync.plan._batch import batched
from couchsync.plan._fielddiff import FieldChange, field_changes
from couchsync.plan._mango import normalize_selector
from couchsync.plan._select import Scope, resolve_only


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ({}, {}),
        (None, {}),
        ({"type": "user"}, {"type": {"$eq": "user"}}),
        ({"a": {"b": {"$gt": 1}}}, {"a.b": {"$gt": 1}}),
        ({"b": 2, "a": 1}, {"$and": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}),
        ({"a": {"$gt": 1, "$lt": 5}}, {"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]}),
        ({"$not": {"a": {"$gt": 1}}}, {"a": {"$lte": 1}}),
        ({"$nor": [{"a": 1}]}, {"$and": [{"a": {"$ne": 1}}]}),
        ({"$not": {"$or": [{"a": 1}, {"b": {"$in": [1]}}]}},
         {"$and": [{"a": {"$ne": 1}}, {"b": {"$nin": [1]}}]}),
        ({"status": {"$ne": "archived"}}, {"status": {"$ne": "archived"}}),
        ({"tags": {"$elemMatch": {"$eq": "x"}}}, {"tags": {"$elemMatch": {"": {"$eq": "x"}}}}),
    ],
)
def test_selectors_normalise_like_couchdb(given: Any, normal: dict[str, Any]) -> None:
    assert normalize_selector(given) == normal
    assert normalize_selector(normal) == normal  # the server's form is a fixed point


def test_only_resolves_databases_and_documents() -> None:
    state = desired(database("users", documents=[{"_id": "x"}, {"_id": "y"}]),
                    database("logs"), database("a/b", documents=[{"_id": "c"}]))
    assert resolve_only(state, None) == {n: Scope(True) for n in ("users", "logs", "a/b")}
    assert resolve_only(state, ["users/x", "users/y", "a/b/c", "logs/"]) == {
        "users": Scope(False, frozenset({"x", "y"})),
        "logs": Scope(True),
        "a/b": Scope(False, frozenset({"c"})),
    }
    assert resolve_only(state, ["users/x", "users"]) == {"users": Scope(True)}


def test_only_refuses_a_document_id_that_the_manifests_do_not_list() -> None:
    state = desired(database("users", documents=[{"_id": "a"}],
                             design_docs=[design("reports", {"views": {}})]))
    with pytest.raises(PlanError) as caught:
        resolve_only(state, ["users/nope"])
    assert str(caught.value) == (
        "only: 'users/nope' names no document that the manifests list for users"
    )
    with pytest.raises(PlanError, match="'users/_design/nope' names no document"):
        resolve_only(state, ["users/_design/nope"])
    with pytest.raises(PlanError, match=r"'users/reports' names no document .* \(a design doc "
                       r"is selected as users/_design/reports\)"):
        resolve_only(state, ["users/reports"])
    assert resolve_only(state, ["users/a", "users/_design/reports"]) == {
        "users": Scope(False, frozenset({"a", "_design/reports"})),
    }


def test_only_allows_any_id_under_prune_as_a_possible_prune_candidate() -> None:
    # Known only to the ownership record, which is read after selectors are resolved.
    state = desired(database("users", prune=True))
    assert resolve_only(state, ["users/gone"]) == {"users": Scope(False, frozenset({"gone"}))}


def test_document_hash_is_the_content_hash_of_its_body() -> None:
    spec = doc({"_id": "a", "z": 1.0, "a": [1, {"b": 2}]})
    assert spec.hash == hash_canonical(canonical_json({"a": [1, {"b": 2}], "_id": "a", "z": 1}))


def test_batched() -> None:
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError):
        list(batched([1], 0))


def test_field_changes_name_json_paths() -> None:
    before = {"profile": {"email": "a@x"}, "tags": ["a", "b"], "legacy": True, "n": 1,
              "odd key": 1, "same": {"deep": [1, 2]}}
    after = {"profile": {"email": "b@x"}, "tags": ["a", "b", "new"], "n": 1.0,
             "odd key": 2, "same": {"deep": [1.0, 2]}}
    assert list(field_changes(before, after)) == [
        FieldChange("-", "legacy", before=True),
        FieldChange("~", '["odd key"]', before=1, after=2),
        FieldChange("~", "profile.email", before="a@x", after="b@x"),
        FieldChange("+", "tags[2]", after="new"),
    ]


def test_field_changes_of_a_type_change_replace_the_whole_value() -> None:
    assert list(field_changes({"a": [1]}, {"a": {"x": 1}})) == [
        FieldChange("~", "a", before=[1], after={"x": 1})]
