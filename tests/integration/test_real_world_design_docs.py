"""Design docs as real projects write them (tests/data/real-world/design-docs, see its
README) round-trip: PUT raw, export, validate, apply to a fresh database; the stored
bodies are the same canonical JSON, and both databases re-plan empty."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sync_helpers import plan, sync

from couchsync._canonical import canonical_json
from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import ManifestError, load_manifests

DATA = Path(__file__).resolve().parents[1] / "data" / "real-world" / "design-docs"
FILES = sorted(DATA.glob("*.json"))
#: npm's couchapp has a named map function, which CouchDB 3.5 refuses (see the README).
NAMED_MAP = ("views", "modified", "map")


def _design(path: Path) -> dict[str, Any]:
    design: dict[str, Any] = json.loads(path.read_text())
    if path.stem == "npm-registry-couchapp":
        views = design["views"]["modified"]
        views["map"] = "(" + views["map"] + ")"
    return design


def _stored(client: Client, db: str, doc_id: str) -> bytes:
    body = client.database(db).get(doc_id)
    return canonical_json({key: value for key, value in body.items()
                           if key not in ("_id", "_rev")})


def test_the_data_holds_every_form_the_issue_names() -> None:
    designs = [json.loads(path.read_text()) for path in FILES]
    reduces = {view.get("reduce") for design in designs
               for name, view in design.get("views", {}).items() if name != "lib"}
    assert {"_count", "_sum", "_stats", "_approx_count_distinct"} <= reduces
    fields = set().union(*designs)
    assert {"shows", "lists", "updates", "rewrites", "validate_doc_update", "options",
            "autoupdate", "nouveau"} <= fields
    assert {type(d["rewrites"]).__name__ for d in designs if "rewrites" in d} == {"str", "list"}
    assert any("lib" in d.get("views", {}) for d in designs)
    assert {key for d in designs for key in d.get("options", {})} >= {
        "local_seq", "include_design", "partitioned"}


def test_validate_names_the_map_couchdb_35_refuses(tmp_path: Path) -> None:
    design = json.loads((DATA / "npm-registry-couchapp.json").read_text())
    del design["_id"]
    path = tmp_path / "npm.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {"registry": {
        "design_docs": {"app": design}}}}))
    with pytest.raises(ManifestError) as refused:
        load_manifests([path], environ={})
    [problem] = refused.value.problems
    assert problem.message.startswith("views.modified.map of design doc 'app': does not "
                                      "evaluate to a function: CouchDB reads")


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_a_real_world_design_doc_round_trips(
    client: Client, db_name_factory: Callable[[], str], tmp_path: Path, path: Path
) -> None:
    design = _design(path)
    source, copy = db_name_factory(), db_name_factory()
    client.create(source)
    copies = (client.database(source).info().get("cluster") or {}).get("n")
    [written] = client.database(source).bulk_docs([design], w=copies)
    assert written.get("ok"), written

    exported = tmp_path / "exported.yaml"
    exported.write_text(export_manifest(client, [source]))
    at_source = load_manifests([exported], environ={})  # validates, JavaScript included
    assert plan(client, at_source).is_empty
    text = exported.read_text()
    elsewhere = tmp_path / "copy.yaml"
    elsewhere.write_text(text.replace(f"  {source}:\n", f"  {copy}:\n", 1))
    desired = load_manifests([elsewhere], environ={})

    sync(client, desired)

    assert _stored(client, copy, design["_id"]) == _stored(client, source, design["_id"])
    assert plan(client, desired).is_empty
