"""The shipped schema and the example manifests under manifests/ agree with each other."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from couchsync.manifest import load_manifests, schema_text, summarize

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "manifests").rglob("*.y*ml"))
SCHEMA = json.loads(schema_text())


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_schema_text_is_the_packaged_file() -> None:
    packaged = ROOT / "couchsync" / "schemas" / "manifest.schema.json"
    assert schema_text() == packaged.read_text(encoding="utf-8")


def test_repo_schema_is_a_relative_symlink_to_the_packaged_one() -> None:
    link = ROOT / "schemas" / "manifest.schema.json"
    assert link.is_symlink()
    assert os.readlink(link) == "../couchsync/schemas/manifest.schema.json"
    assert link.read_text(encoding="utf-8") == schema_text()


def _properties(schema: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield f"{where}/properties/{name}", sub
        for key, sub in schema.items():
            yield from _properties(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from _properties(sub, f"{where}/{i}")


def test_every_property_has_a_description() -> None:
    defs = SCHEMA["$defs"]
    missing = [where for where, sub in _properties(SCHEMA)
               if "description" not in sub
               and "description" not in defs.get(sub.get("$ref", "").rpartition("/")[2], {})]
    assert missing == []


def test_every_object_rejects_unknown_keys() -> None:
    # Documents, Mango selectors and the values a migration sets are user data; every
    # other object is closed.
    open_objects = {"document", "partial_filter_selector", "analyzer", "selector",
                    "fieldValues"}

    def walk(schema: Any, name: str) -> Iterator[str]:
        if isinstance(schema, dict):
            if schema.get("type") == "object" and name not in open_objects and not (
                "additionalProperties" in schema or "$ref" in schema
            ):
                yield name
            for key, sub in schema.items():
                yield from walk(sub, key)
            for key, sub in schema.get("properties", {}).items():
                yield from walk(sub, key)
            for key, sub in schema.get("$defs", {}).items():
                yield from walk(sub, key)
        elif isinstance(schema, list):
            for sub in schema:
                yield from walk(sub, name)

    assert sorted(set(walk(SCHEMA, "#"))) == ["items"]  # rewrites' rule objects: free-form


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_under_the_schema(path: Path) -> None:
    instance = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(Draft202012Validator(SCHEMA).iter_errors(instance)) == []
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../schemas/manifest.schema.json\n")


def test_examples_load_without_any_environment() -> None:
    desired = load_manifests([ROOT / "manifests"], environ={})
    assert summarize(desired) == "4 databases, 12 documents, 4 indexes, 2 design docs"
    users = desired.databases["users"]
    # users is split over two files and merged
    assert {Path(users.sources["security"].file).name,
            Path(users.documents["user:admin"].source.file).name} == {"users.yaml",
                                                                      "users-seed.yaml"}
    assert users.documents["user:admin"].body["email"] == "admin@example.com"
    assert users.security is not None
    assert users.security["admins"]["roles"] == ["admins"]
    assert desired.databases["legacy_sessions"].state == "absent"
    assert desired.databases["settings"].documents["maintenance-banner"].deleted
    assert desired.databases["orders"].indexes["open-by-customer"].fields == [
        {"customer_id": "desc"}, {"created_at": "desc"}]


def test_examples_cover_every_feature() -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in EXAMPLES)
    for feature in ("security:", "partial_filter_selector:", "ddoc:", ": desc", "reduce:",
                    "validate_doc_update:", "filters:", "updates:", "prune: true",
                    "_deleted: true", "documents_from:", "${", ":-", "state: absent",
                    "partitioned: false", "q: "):
        assert feature in text, feature
    assert (ROOT / "manifests" / "seeds" / "users.jsonl").exists()
    assert (ROOT / "manifests" / "seeds" / "orders.json").exists()


def test_environment_reaches_the_examples() -> None:
    desired = load_manifests([ROOT / "manifests"], environ={"APP_THEME": "dark"})
    assert desired.databases["settings"].documents["ui"].body["theme"] == "dark"
