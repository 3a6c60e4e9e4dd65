"""The quick schema check agrees with jsonschema, so skipping jsonschema is safe."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from couchsync.manifest import schema_text
from couchsync.manifest._fastcheck import _ANNOTATIONS, _KEYWORDS, conforms

SCHEMA: dict[str, Any] = json.loads(schema_text())
FULL = Draft202012Validator(SCHEMA)
VALID: dict[str, Any] = {
    "version": 1,
    "databases": {
        "users": {
            "state": "present",
            "security": {"admins": {"names": [], "roles": ["admins"]},
                         "members": {"names": ["bob"], "roles": []}},
            "indexes": {"by-email": {"fields": ["email", {"created": "asc"}],
                                     "partial_filter_selector": {"type": "user"},
                                     "ddoc": "users-indexes"},
                        "newest": {"fields": [{"created": "desc"}, {"id": "desc"}]}},
            "design_docs": {"reports": {"views": {"by_age": {"map": "function (doc) {}",
                                                             "reduce": "_count"},
                                                  "lib": {"m": "exports.a = 1;",
                                                          "dir": {"n": "exports.b = 2;"}}}},
                            "retired": {"_deleted": True}},
            "prune": True,
            "documents": [{"_id": "settings", "theme": "dark", "n": 1}],
            "documents_from": ["seeds/users.jsonl"],
            "migrations": [{"id": "split", "selector": {"type": "user"},
                            "rename": {"email": "contact.email"}, "set": {"schema": 2},
                            "unset": ["legacy"], "keep_originals": True},
                           {"id": "undo", "revert": "split", "description": "back"}],
        },
        "gone": {"state": "absent"},
    },
}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16)
    | st.sampled_from(["", "users", "asc", "desc", "present", "absent", "_design/x", "Bad Name",
                       "_x", "json", "_count", "function (doc) {}"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["_id", "fields", "map", "state", "names", "x", "views",
                                       "roles", "ddoc", "type", "admins", "q", "lib", "id",
                                       "set", "_x", "a..b", "revert"]),
                      children, max_size=3),
    max_leaves=8,
)


def _keywords(node: Any, in_map: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not in_map:
                found.add(key)
            found |= _keywords(value, key in ("properties", "patternProperties", "$defs",
                                               "dependentSchemas")
                               and not in_map)
    elif isinstance(node, list):
        for value in node:
            found |= _keywords(value)
    return found


def test_every_keyword_of_the_shipped_schema_is_known() -> None:
    unknown = _keywords(SCHEMA) - set(_KEYWORDS) - _ANNOTATIONS - {"$defs"}
    assert unknown == set()


def test_valid_manifest_and_examples_conform() -> None:
    assert FULL.is_valid(VALID)
    assert conforms(VALID, SCHEMA)
    from pathlib import Path

    for path in sorted(Path(__file__).parents[3].joinpath("manifests").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert conforms(data, SCHEMA) == FULL.is_valid(data) == True, path  # noqa: E712


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_quick_check_agrees_with_jsonschema_on_mutated_manifests(data: st.DataObject) -> None:
    manifest = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(manifest)))
        replacement = data.draw(JSON_VALUES)
        if not path:
            manifest = replacement
            continue
        parent = manifest
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            extra = data.draw(st.sampled_from(["extra", "indxes", "q", "n", "_rev", "_deleted"]))
            parent[extra] = replacement
        else:
            parent[path[-1]] = replacement
    assert conforms(manifest, SCHEMA) == FULL.is_valid(manifest)


@pytest.mark.parametrize("value", [1, True, None, [], "x", {"version": 2}, {"version": 1}])
def test_top_level_values(value: Any) -> None:
    assert conforms(value, SCHEMA) == FULL.is_valid(value)
