"""Design docs may hold fields of their own (any JSON type); of the '_' fields only _deleted.

CouchDB stores any top-level field of a design doc (couchapp's ``couchapp``, a
``version``, a ``description``) and refuses unknown '_' fields (``doc_validation``);
``_id`` and ``_rev`` are never written in a manifest. What ``export`` writes of
such a design doc must pass ``validate`` and load back as the server holds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Collect, Write
from jsonschema import Draft202012Validator

from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import load_manifests, schema_text
from couchsync.manifest._fastcheck import conforms

SCHEMA: dict[str, Any] = json.loads(schema_text())
FULL = Draft202012Validator(SCHEMA)
RESERVED = ("reserved key: a design doc may use only _deleted, _attachments and "
            "_attachments_from of CouchDB's '_' keys (its _id comes from its name under "
            "design_docs, _rev from the server, and CouchDB refuses other '_' fields)")
CUSTOM: dict[str, Any] = {
    "couchapp": {"name": "Reports", "signatures": {}, "manifest": ["vendor/", "lib/x.js"]},
    "version": 3,
    "ratio": 0.5,
    "description": "Sales reports",
    "enabled": False,
    "owner": None,
    "tags": ["sales", 1, {"nested": True}],
}


def test_a_design_doc_with_fields_of_its_own_loads_as_written(write: Write) -> None:
    path = write("m.yaml", """\
        version: 1
        databases:
          app:
            design_docs:
              reports:
                language: javascript
                couchapp: {name: Reports, signatures: {}, manifest: [vendor/, lib/x.js]}
                version: 3
                ratio: 0.5
                description: Sales reports
                enabled: false
                owner: null
                tags: [sales, 1, {nested: true}]
                views:
                  all: {map: "function (doc) { emit(doc._id); }"}
        """)
    state = load_manifests([path], environ={})
    assert state.databases["app"].design_docs["reports"].body == {
        "language": "javascript", **CUSTOM,
        "views": {"all": {"map": "function (doc) { emit(doc._id); }"}},
    }


@pytest.mark.parametrize("key", ["_id", "_rev", "_revisions", "_conflicts", "_foo", "_"])
def test_an_underscore_field_other_than_deleted_is_refused_at_its_key(
    write: Write, collect: Collect, key: str
) -> None:
    write("m.yaml", f"""\
        version: 1
        databases:
          app:
            design_docs:
              reports:
                version: 3
                {key}: x
        """)
    assert collect("m.yaml") == [("m.yaml", 7, 9, RESERVED)]


def test_the_known_fields_keep_their_rules_beside_custom_ones(
    write: Write, collect: Collect
) -> None:
    write("m.yaml", """\
        version: 1
        databases:
          app:
            design_docs:
              reports:
                version: 3
                views: {all: {reduce: _count}}
                options: {local_seq: 'yes'}
                language: 1
              old:
                _deleted: true
                description: gone
        """)
    assert collect("m.yaml") == [
        ("m.yaml", 7, 22, "missing required key 'map' under "
                          "databases.app.design_docs.reports.views.all"),
        ("m.yaml", 8, 30, "expected a boolean (true or false), got string 'yes' (only true "
                          "and false are booleans)"),
        ("m.yaml", 9, 19, "expected a string, got integer"),
        ("m.yaml", 11, 9, "a design doc marked _deleted: true is deleted, "
                          "so it cannot declare anything else"),
    ]


@pytest.mark.parametrize("design", [
    CUSTOM,
    {"views": {"v": {"map": "f"}}, "x": [1, {"_id": "inner '_' keys are data"}]},
    {"_deleted": True},
    {"_deleted": True, "version": 3},
    {"_deleted": False},
    {"_rev": "1-x"},
    {"version": 3, "_id": "_design/d"},
    {"views": {"v": {"map": 1}}, "version": 3},
    {"deleted": True, "_deleted_x": 1},
])
def test_the_quick_check_agrees_with_jsonschema(design: dict[str, Any]) -> None:
    manifest = {"version": 1, "databases": {"app": {"design_docs": {"d": design}}}}
    assert conforms(manifest, SCHEMA) == FULL.is_valid(manifest)


def _server(design_docs: list[dict[str, Any]]) -> httpx.MockTransport:
    """The requests ``export_manifest`` makes of database ``shop``, without documents."""
    rows = [{"id": doc["_id"], "key": doc["_id"], "value": {"rev": doc["_rev"]}, "doc": doc}
            for doc in design_docs]
    answers: dict[str, Any] = {
        "/shop": {"db_name": "shop", "props": {}},
        "/shop/_security": {},
        "/shop/_index": {"total_rows": 1, "indexes": [
            {"ddoc": None, "name": "_all_docs", "type": "special",
             "def": {"fields": [{"_id": "asc"}]}}]},
        "/shop/_all_docs": {"total_rows": len(rows), "offset": 0, "rows": rows},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method in ("GET", "HEAD") and request.url.path in answers:
            return httpx.Response(200, json=answers[request.url.path])
        return httpx.Response(404, json={"error": "not_found", "reason": request.url.path})

    return httpx.MockTransport(handler)


def test_a_design_doc_with_fields_of_its_own_survives_export_and_validate(
    tmp_path: Path,
) -> None:
    design = {
        "_id": "_design/reports", "_rev": "7-abc", "language": "javascript", **CUSTOM,
        "views": {"by_day": {"map": "function (doc) {\n  emit(doc.day, doc.total);\n}\n",
                             "reduce": "_sum"}},
        "validate_doc_update": "function (newDoc) {\n  if (!newDoc.type) throw('no type');\n}",
    }
    with Client("http://couch.test", transport=_server([design])) as client:
        text = export_manifest(client, ["shop"])
    path = tmp_path / "exported.yaml"
    path.write_text(text, encoding="utf-8")
    state = load_manifests([path], environ={})
    expected = {key: value for key, value in design.items() if key not in ("_id", "_rev")}
    assert state.databases["shop"].design_docs["reports"].body == expected
