"""The schema (what editors check) and the loader (what couchsync checks) agree.

Each sample runs through both: jsonschema on ``yaml.safe_load`` of the text,
and ``load_manifests``. The samples hold no ``${...}``, duplicate ids or
other cross-file matters, so the two must reach the same verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from couchsync.manifest import ManifestError, load_manifests, schema_text

VALIDATOR = Draft202012Validator(json.loads(schema_text()))

DB = "version: 1\ndatabases:\n  app:\n"
F = "'function (doc) {}'"  # design-doc functions compile (couchsync checks them)
VALID = [
    "version: 1\ndatabases: {}\n",
    DB + "    state: absent\n",
    DB + "    partitioned: false\n    q: 8\n    n: 3\n    prune: true\n",
    DB + "    security: {admins: {names: [a], roles: []}, members: {roles: [r]}}\n",
    DB + "    security: {}\n",
    DB + "    indexes: {i: {fields: [a, b]}}\n",
    DB + "    indexes: {i: {fields: [{a: desc}], ddoc: d, type: json}}\n",
    DB + "    indexes: {i: {fields: [a], partial_filter_selector: {x: {$gt: 1}}}}\n",
    DB + "    design_docs: {d: {views: {v: {map: 'function (doc) {}', reduce: _count}}}}\n",
    DB + "    design_docs: {d: {language: javascript, options: {local_seq: true}, "
         f"validate_doc_update: {F}, filters: {{f: {F}}}, updates: {{u: {F}}}, "
         "autoupdate: false}}\n",
    DB + f"    design_docs: {{d: {{shows: {{s: {F}}}, lists: {{l: {F}}}, "
         "rewrites: [{from: a, to: b}]}}\n",
    DB + f"    design_docs: {{d: {{indexes: {{s: {{index: {F}, analyzer: standard}}}}}}}}\n",
    DB + f"    design_docs: {{d: {{nouveau: {{s: {{index: {F}, "
         "default_analyzer: standard}}}}\n",
    DB + "    design_docs: {d: {_deleted: true}}\n",
    DB + "    design_docs: {d: {unknown: 1, couchapp: {signatures: {}}, tags: [a], x: null}}\n",
    DB + "    design_docs: {d: {views: {lib: {util: 'exports.x = 1;', deep: {m: 'exports.y = 2;'}},"
         " v: {map: 'function (doc) { emit(require(\"views/lib/util\").x); }'}}}}\n",
    DB + "    design_docs: {d: {views: {lib: {}}}}\n",
    DB + "    indexes: {i: {fields: [{a: desc}, {b: desc}]}, j: {fields: [a, {b: asc}]}}\n",
    DB + "    documents: [{_id: a, nested: {list: [1, 2.5, null, true]}},"
         " {_id: b, _deleted: true}]\n",
    DB + "    documents: []\n    documents_from: []\n",
    "version: 1\ndatabases:\n  a-b_c$(d)+e/f: {}\n",
    DB + "    migrations: [{id: a.1_b-c, selector: {x: {$in: [1]}}, rename: {a: b.c}, "
         "copy: {d: e}, set_default: {f: []}, set: {g: {h: 1}}, unset: [i.j], "
         "keep_originals: true, rerun_on_change: false, description: d}, "
         "{id: r, revert: a.1_b-c}]\n",
    DB + "    migrations: [{id: d, selector: {type: session}, delete: true}]\n",
]
INVALID = [
    "version: 1\n",
    "databases: {}\n",
    "version: '1'\ndatabases: {}\n",
    "version: 1\ndatabases: []\n",
    "version: 1\ndatabases: {}\nextra: 1\n",
    "version: 1\ndatabases:\n  9lives: {}\n",
    "version: 1\ndatabases:\n  UPPER: {}\n",
    DB + "    state: maybe\n",
    DB + "    partitioned: 'no'\n",
    DB + "    q: 1.5\n",
    DB + "    n: 0\n",
    DB + "    security: {admins: {names: a}}\n",
    DB + "    security: {others: {}}\n",
    DB + "    indexes: {i: {}}\n",
    DB + "    indexes: {i: {fields: []}}\n",
    DB + "    indexes: {i: {fields: ['']}}\n",
    DB + "    indexes: {i: {fields: [{a: asc, b: asc}]}}\n",
    DB + "    indexes: {i: {fields: [a], type: text}}\n",
    DB + "    indexes: {i: {fields: [a], partial_filter_selector: [x]}}\n",
    DB + "    design_docs: {d: {views: {v: {reduce: _sum}}}}\n",
    DB + "    design_docs: {d: {views: {v: {map: 1}}}}\n",
    DB + "    design_docs: {d: {_id: _design/d}}\n",
    DB + "    design_docs: {d: {_conflicts: {}}}\n",
    DB + "    design_docs: {d: {_attachments: {_x: a.png}}}\n",
    DB + "    documents: [{_id: a, _attachments_from: 3}]\n",
    DB + "    design_docs: {d: {_deleted: true, version: 3}}\n",
    DB + "    design_docs: {d: {filters: {f: 1}}}\n",
    DB + "    design_docs: {d: {_deleted: true, views: {}}}\n",
    DB + "    design_docs: {d: {_deleted: false}}\n",
    DB + "    design_docs: {d: {_rev: 1-x}}\n",
    DB + "    design_docs: {d: {views: {lib: {util: 1}}}}\n",
    DB + "    design_docs: {d: {views: {lib: {'': 'exports.x = 1;'}}}}\n",
    DB + "    design_docs: {d: {views: {lib: 'exports.x = 1;'}}}\n",
    DB + "    indexes: {i: {fields: [{a: asc}, {b: desc}]}}\n",
    DB + "    indexes: {i: {fields: [{a: desc}, b]}}\n",
    DB + "    documents: [{a: 1}]\n",
    DB + "    documents: [{_id: ''}]\n",
    DB + "    documents: [{_id: _x}]\n",
    DB + "    documents: [{_id: _design/x}]\n",
    DB + "    documents: [{_id: _local/x}]\n",
    DB + "    documents: [{_id: 1}]\n",
    DB + "    documents: [{_id: a, _rev: x}]\n",
    DB + "    documents: [{_id: a, _deleted: 'yes'}]\n",
    DB + "    documents: {_id: a}\n",
    DB + "    documents_from: seeds.jsonl\n",
    DB + "    documents_from: [seeds.txt]\n",
    DB + "    migrations: {id: a}\n",
    DB + "    migrations: [{set: {x: 1}}]\n",
    DB + "    migrations: [{id: _a, set: {x: 1}}]\n",
    DB + "    migrations: [{id: a, set: {_rev: 1}}]\n",
    DB + "    migrations: [{id: a, unset: [x.]}]\n",
    DB + "    migrations: [{id: a, rename: {x: 1}}]\n",
    DB + "    migrations: [{id: a, transform: t.js:f}]\n",
    DB + "    migrations: [{id: a, delete: 1}]\n",
    DB + "    migrations: [{id: a, set: {x: 1}, selector: x}]\n",
    DB + "    migrations: [{id: a, set: {x: 1}, revert: ''}]\n",
    DB + "    migrations: [{id: a, set: {x: 1}, op: 1}]\n",
]


def _verdicts(tmp_path: Path, text: str) -> tuple[bool, bool]:
    schema_ok = VALIDATOR.is_valid(yaml.safe_load(text))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text, encoding="utf-8")
    try:
        load_manifests([manifest], environ={})
    except ManifestError:
        return schema_ok, False
    return schema_ok, True


@pytest.mark.parametrize("text", VALID)
def test_valid_samples_pass_both(tmp_path: Path, text: str) -> None:
    assert _verdicts(tmp_path, text) == (True, True)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_samples_fail_both(tmp_path: Path, text: str) -> None:
    assert _verdicts(tmp_path, text) == (False, False)


# Random manifests: each setting is usually well-formed and sometimes arbitrary,
# so that many get deep into the schema and the verdicts are tested both ways.
_KEYS = ["version", "databases", "state", "q", "security", "names", "indexes", "fields", "ddoc",
         "views", "map", "reduce", "documents", "_id", "_deleted", "x"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from(
    ["present", "absent", "asc", "desc", "json", "a", "_count", "A b"]))
_junk = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner,
                                                                 max_size=4),
    max_leaves=10,
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` nineteen times in twenty, else anything."""
    return st.integers(0, 19).flatmap(lambda n: _junk if n == 0 else valid)


_names = st.sampled_from(["a", "b", "c"])
_group = st.fixed_dictionaries({}, optional={"names": st.lists(_mostly(_names), max_size=2),
                                             "roles": st.lists(_names, max_size=2)})
_field = st.one_of(_names, st.dictionaries(_names, st.sampled_from(["asc", "desc"]),
                                           min_size=1, max_size=1))
_index = st.fixed_dictionaries(
    {"fields": st.lists(_mostly(_field), min_size=1, max_size=3)},
    optional={"ddoc": _mostly(st.sampled_from(["d", "e"])),
              "partial_filter_selector": st.dictionaries(_names, _scalars, max_size=2)})
_view = st.fixed_dictionaries({"map": _mostly(st.just("function (doc) { emit(doc._id); }"))},
                              optional={"reduce": st.sampled_from(["_count", "_sum"])})
_lib = st.recursive(st.just("exports.x = 1;"),
                    lambda inner: st.dictionaries(_names, inner, max_size=2), max_leaves=4)
_design = st.fixed_dictionaries({}, optional={
    "views": st.tuples(st.dictionaries(_names, _mostly(_view), max_size=2),
                       st.none() | _mostly(_lib)).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], "lib": pair[1]}),
    "language": st.just("javascript"),
    "validate_doc_update": _mostly(st.just("function (doc) {}")),
    "couchapp": _junk,  # a field of the user's own: any JSON value
    "_deleted": _mostly(st.just(True))})
_deleted_design = st.just({"_deleted": True})
_document = st.fixed_dictionaries({"_id": _mostly(st.sampled_from(["a", "b", "p:1", "", "_x",
                                                                  "_design/d", "_local/l"]))},
                                  optional={"x": _junk, "_deleted": _mostly(st.booleans())})
_database = st.fixed_dictionaries({}, optional={
    "state": _mostly(st.sampled_from(["present", "absent"])),
    "partitioned": _mostly(st.booleans()),
    "q": _mostly(st.integers(1, 4)),
    "prune": _mostly(st.booleans()),
    "security": _mostly(st.fixed_dictionaries({}, optional={"admins": _group,
                                                            "members": _group})),
    "indexes": _mostly(st.dictionaries(st.sampled_from(["i", "j"]), _mostly(_index),
                                       max_size=2)),
    "design_docs": _mostly(st.dictionaries(st.sampled_from(["d", "r"]),
                                           _mostly(_design | _deleted_design), max_size=2)),
    "documents": _mostly(st.lists(_mostly(_document), max_size=3)),
})
_manifest = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2])},
    optional={"databases": st.dictionaries(st.sampled_from(["app", "b", "c", "Bad"]),
                                           _mostly(_database),
                                           max_size=2)},
)


def _beyond_schema(manifest: dict[str, Any]) -> bool:
    """True when a rule the schema cannot express applies (the loader may then differ).

    The id rules that look at one id alone (empty, ``_``-prefixed) and the one-direction
    rule of index fields are in the schema, so they are not listed here.
    """
    for db in manifest.get("databases", {}).values():
        ids = [doc["_id"] for doc in db.get("documents", [])]
        ddocs = {index.get("ddoc") for index in db.get("indexes", {}).values()}
        if (len(ids) != len(set(ids))
                or (db.get("partitioned") and ids)
                or (db.get("state") == "absent" and len(db) > 1)
                or ddocs & set(db.get("design_docs", {}))):
            return True
    return False


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=_manifest)
def test_random_manifests_get_the_same_verdict(tmp_path: Path, manifest: dict[str, Any]) -> None:
    schema_ok, loader_ok = _verdicts(tmp_path, yaml.safe_dump(manifest))
    if not schema_ok:
        assert not loader_ok
    elif not _beyond_schema(manifest):
        assert loader_ok
