"""export → manifest → plan: the exported YAML loads and re-plans empty."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cli_helpers import run
from sync_helpers import plan, sync

from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import DesiredState, load_manifests

SPEC = {
    "security": {"admins": {"names": [], "roles": ["admins"]}, "members": {"roles": ["staff"]}},
    "indexes": {
        "by-email": {"fields": ["email"], "partial_filter_selector": {"type": "user"},
                     "ddoc": "idx"},
        "newest": {"fields": [{"created": "desc"}]},
    },
    "design_docs": {"reports": {"views": {"all": {"map": "function (doc) { emit(doc._id); }"}}}},
    "documents": [{"_id": "a", "type": "user", "email": "a@x", "n": 1.5, "tags": ["é"]}],
}


def export_and_load(client: Client, names: list[str], tmp_path: Path,
                    **options: Any) -> tuple[str, DesiredState]:
    text = export_manifest(client, names, **options)
    path = tmp_path / "exported.yaml"
    path.write_text(text)
    return text, load_manifests([path], environ={})


def test_export_with_docs_re_plans_empty(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState],
    tmp_path: Path,
) -> None:
    sync(client, manifest({db_name: SPEC}))
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    # On every copy: export reads one copy per shard range (docs/plan-and-apply.md).
    client.database(db_name).bulk_docs([{"_id": "theirs", "v": {"deep": [1, None]}}],
                                       w=copies)

    text, exported = export_and_load(client, [db_name], tmp_path, with_docs=True)
    assert text.startswith("# Exported by couchsync export.\n")
    spec = yaml.safe_load(text)["databases"][db_name]
    assert spec["security"] == SPEC["security"]
    # As written (apply sent them so, CouchDB stored them so), without the ddoc name
    # CouchDB generated for "newest".
    assert spec["indexes"] == SPEC["indexes"]
    assert set(spec["design_docs"]) == {"reports"}  # not the Mango index ddocs
    assert [d["_id"] for d in spec["documents"]] == ["a", "theirs"]
    assert plan(client, exported).is_empty


def test_export_without_docs_leaves_documents_out(client: Client, db_name: str,
                                                  manifest: Callable[[dict[str, Any]],
                                                                     DesiredState],
                                                  tmp_path: Path) -> None:
    sync(client, manifest({db_name: SPEC}))
    text, exported = export_and_load(client, [db_name], tmp_path)
    assert "documents" not in yaml.safe_load(text)["databases"][db_name]
    assert plan(client, exported).is_empty


def test_export_of_a_missing_database_names_it_plainly(couch_url: str, db_name: str) -> None:
    done = run(couch_url, "export", "--db", db_name)
    assert done.returncode == 1 and not done.stdout
    assert done.stderr == f"Error: database {db_name!r} does not exist\n"
    pattern = run(couch_url, "export", "--db", f"{db_name}-*")
    assert pattern.returncode == 1
    assert pattern.stderr == f"Error: no database matches the pattern '{db_name}-*'\n"


def test_a_pattern_is_exported_once_as_what_its_databases_share(
    client: Client, couch_url: str, db_name: str, tmp_path: Path,
) -> None:
    base = db_name
    names = [f"{base}-{tail}" for tail in ("a", "b", "c")]
    shared_doc = {"_id": "settings", "theme": "dark"}
    for i, name in enumerate(names):
        databases = {name: {
            "security": {"members": {"names": [f"user{i // 2}"], "roles": []}},  # 2 kinds
            "indexes": SPEC["indexes"], "design_docs": {**SPEC["design_docs"], **(
                {"extra": {"views": {"x": {"map": "function (doc) {}"}}}} if i == 2 else {})},
            "documents": [shared_doc, {"_id": "own", "n": i}]}}
        path = tmp_path / f"seed{i}.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "databases": databases}))
        sync(client, load_manifests([path], environ={}))
    try:
        done = run(couch_url, "export", "--db", f"{base}-*", "--with-docs")
        assert done.returncode == 0, done.stderr
        exported = yaml.safe_load(done.stdout)["databases"]
        assert list(exported) == [f"{base}-*"]  # once, as a pattern
        entry = exported[f"{base}-*"]
        assert set(entry) == {"indexes", "design_docs", "documents"}  # no security
        assert set(entry["indexes"]) == set(SPEC["indexes"])
        assert set(entry["design_docs"]) == {"reports"}
        assert entry["documents"] == [shared_doc]
        note = next(line for line in done.stderr.splitlines() if "pattern" in line)
        assert note.startswith(f"pattern '{base}-*' (3 databases): exported what they all "
                               "share; left out, and so left as each database has it: ")
        assert "security (2 different objects)" in note
        assert "design doc 'extra' (in 1 of 3)" in note and "document 'own' (differs)" in note

        path = tmp_path / "exported.yaml"
        path.write_text(done.stdout)
        assert plan(client, load_manifests([path], environ={})).is_empty
    finally:
        for name in names:
            client.delete(name)


def test_export_of_a_design_doc_with_commonjs_view_modules_loads_and_re_plans_empty(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    # views.lib: CommonJS modules that map functions require() (CouchDB's design doc format).
    design = {
        "_id": "_design/shared",
        "views": {
            "lib": {"util": "exports.key = function (doc) { return doc._id; };",
                    "nested": {"more": "exports.one = 1;"}},
            "by_key": {"map": "function (doc) { emit(require('views/lib/util').key(doc)); }"},
        },
    }
    client.create(db_name)
    # On every shard copy (w = n on a cluster): export may read any copy.
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    client.database(db_name).bulk_docs([design], w=copies)

    text, exported = export_and_load(client, [db_name], tmp_path)
    body = exported.databases[db_name].design_docs["shared"].body
    assert body["views"]["lib"] == design["views"]["lib"]  # type: ignore[index]
    assert "lib:" in text
    assert plan(client, exported).is_empty


def test_export_of_a_design_doc_with_fields_of_its_own_and_multi_line_functions(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    design = {
        "_id": "_design/app",
        "couchapp": {"name": "App", "signatures": {}},
        "version": 3,
        "language": "javascript",
        "views": {"by_type": {"map": "function (doc) {\n  if (doc.type) {\n    emit(doc.type);"
                                     "\n  }\n}\n", "reduce": "_count"}},
        "validate_doc_update": "function (newDoc) {\n  if (!newDoc.type) {\n"
                               "    throw({forbidden: 'a type'});\n  }\n}",
    }
    client.create(db_name)
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    client.database(db_name).bulk_docs([design], w=copies)

    text, exported = export_and_load(client, [db_name], tmp_path)
    assert "map: |\n" in text and "validate_doc_update: |-\n" in text  # block scalars
    body = exported.databases[db_name].design_docs["app"].body
    assert body == {key: value for key, value in design.items() if key != "_id"}
    assert plan(client, exported).is_empty


def test_export_writes_placeholders_for_given_values_and_leaves_staging_copies_out(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    client.create(db_name)
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    client.database(db_name).bulk_docs([
        {"_id": "cfg", "host": "db.internal.example", "note": "at db.internal.example"},
        {"_id": "_design/couchsync-staged.app", "views": {"v": {"map": "function (d) {}"}}},
    ], w=copies)

    text = export_manifest(client, [db_name], with_docs=True,
                           placeholders={"DB_HOST": "db.internal.example", "EMPTY": ""})
    assert "host: ${DB_HOST}" in text
    assert "note: at db.internal.example" in text  # whole values only
    assert "couchsync-staged" not in text
    path = tmp_path / "exported.yaml"
    path.write_text(text)
    exported = load_manifests([path], environ={"DB_HOST": "db.internal.example"})
    assert exported.databases[db_name].documents["cfg"].body["host"] == "db.internal.example"
    assert plan(client, exported).is_empty
