"""A design doc CouchDB refuses stops the documents of its database (issue 19, item 6).

Design docs that set a ``validate_doc_update`` are written before the documents so that
it checks them; when one is refused, writing the documents anyway would let in what it
exists to keep out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import doc_count, run
from sync_helpers import plan

from couchsync.apply import ApplyError, apply_plan
from couchsync.client import Client
from couchsync.manifest import DesiredState

GUARD = ("function (doc) { if (!doc._deleted && !doc.type) "
         "{ throw({forbidden: 'type is required'}); } }")
DOCUMENTS = [{"_id": "typed", "type": "t"}, {"_id": "untyped"}]


@pytest.mark.couchdb_only("CouchDB compiles a view's reduce when it saves the design doc")
def test_a_refused_design_doc_stops_the_documents_of_its_database(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    desired = manifest({db_name: {
        "design_docs": {"guard": {"validate_doc_update": GUARD, "views": {
            "by_type": {"map": "function (doc) { emit(doc.type, 1); }", "reduce": "_count"}}}},
        "documents": DOCUMENTS}})
    # validate refuses `reduce: count`: put it in past the loader, as a hand-made state would.
    design = desired.databases[db_name].design_docs["guard"]
    design.body["views"]["by_type"]["reduce"] = "count"

    with pytest.raises(ApplyError) as refused:
        apply_plan(client, plan(client, desired), desired)

    assert client.database(db_name).all_docs() == []
    lines = str(refused.value).splitlines()
    assert lines[1].startswith(f"  db:{db_name}/design:guard: compilation_error: ")
    assert "'count' is not defined" in lines[1]
    assert len(lines) == 4 and all(
        line.endswith(": not written: _design/guard was refused (compilation_error: "
                      "Compilation of the reduce function in the 'by_type' view failed: "
                      "ReferenceError: 'count' is not defined (count)), and the design docs "
                      "must be in force before the documents") for line in lines[2:])


@pytest.mark.couchdb_only("CouchDB refuses options.partitioned in a database that is not")
def test_apply_exits_1_naming_the_refused_design_doc_and_writes_no_document(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {
        "design_docs": {"guard": {"validate_doc_update": GUARD,
                                  "options": {"partitioned": True}}},
        "documents": DOCUMENTS}}}))

    result = run(couch_url, "apply", str(path), "--yes")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"db:{db_name}/design:guard: invalid_design_doc: partitioned option cannot be "
            "true in a non-partitioned database.") in result.stderr
    assert f"db:{db_name}/doc:typed: not written: _design/guard was refused" in result.stderr
    assert doc_count(couch_url, db_name) == 0
