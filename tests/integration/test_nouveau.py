"""Nouveau indexes: CouchDB 3.5 adds ``lucene_version`` to each index of a design doc it
creates, and an index without it is a legacy (Lucene 9) one. Plans take the server's value
where the manifest omits it (or gives a lower one) and never write a downgrade.

The bundled CouchDB runs without a Nouveau server (``[nouveau] enable`` unset): the stored
form and the comparison rules are tested, not searches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import plan, sync
from test_export_server import export_and_load

from couchsync.client import Client
from couchsync.manifest import DesiredState
from couchsync.plan import Action

INDEX = "function (doc) { index('string', 'name', doc.name); }"


def _search(index: str = INDEX, **extra: Any) -> dict[str, Any]:
    return {"nouveau": {"by_name": {"index": index, "default_analyzer": "standard", **extra}}}


def _stored(client: Client, db: str) -> dict[str, Any]:
    body: dict[str, Any] = client.database(db).get("_design/search")
    return body["nouveau"]["by_name"]  # type: ignore[no-any-return]


@pytest.mark.couchdb_only("CouchDB adds lucene_version to the Nouveau indexes it stores")
def test_a_nouveau_index_the_server_versioned_re_plans_empty(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    desired = manifest({db_name: {"design_docs": {"search": _search()}}})
    sync(client, desired)
    assert _stored(client, db_name)["lucene_version"] == 10  # written by the server
    assert plan(client, desired).is_empty


@pytest.mark.couchdb_only("CouchDB adds lucene_version to the Nouveau indexes it stores")
def test_a_changed_nouveau_index_keeps_the_servers_lucene_version(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    sync(client, manifest({db_name: {"design_docs": {"search": _search()}}}))
    changed = manifest({db_name: {"design_docs": {"search": _search(INDEX + " ")}}})
    made, _ = sync(client, changed)
    assert [step.id for step in made.steps] == ["_design/search"]
    # CouchDB adds the field to new design docs only: an update without it would
    # have made the index a legacy Lucene 9 one.
    assert _stored(client, db_name) == {"index": INDEX + " ", "default_analyzer": "standard",
                                        "lucene_version": 10}
    assert plan(client, changed).is_empty


@pytest.mark.couchdb_only("CouchDB adds lucene_version to the Nouveau indexes it stores")
def test_a_lower_lucene_version_in_the_manifest_is_not_written(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    sync(client, manifest({db_name: {"design_docs": {"search": _search()}}}))
    legacy = manifest({db_name: {"design_docs": {"search": _search(lucene_version=9)}}})
    assert plan(client, legacy).is_empty
    made, _ = sync(client, manifest({db_name: {"design_docs": {"search": {
        **_search(lucene_version=9), "version": 2}}}}))
    assert made.steps and _stored(client, db_name)["lucene_version"] == 10


def test_a_higher_lucene_version_in_the_manifest_is_an_upgrade(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    client.create(db_name)
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    legacy = {"_id": "_design/search", **_search()}
    first = client.database(db_name).bulk_docs([legacy], w=copies)[0]
    # An update: CouchDB adds no version to it, so the index stays a Lucene 9 one.
    client.database(db_name).bulk_docs([{**legacy, "_rev": first["rev"]}], w=copies)
    if "lucene_version" in _stored(client, db_name):  # created with one: drop it
        stored = client.database(db_name).get("_design/search")
        del stored["nouveau"]["by_name"]["lucene_version"]
        client.database(db_name).bulk_docs([stored], w=copies)
    assert "lucene_version" not in _stored(client, db_name)
    upgraded = manifest({db_name: {"design_docs": {"search": _search(lucene_version=10)}}})
    made, _ = sync(client, upgraded)
    assert [step.action for step in made.steps] == [Action.UPDATE]
    assert _stored(client, db_name)["lucene_version"] == 10
    assert plan(client, upgraded).is_empty


def test_an_exported_nouveau_design_doc_validates_and_re_plans_empty(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState],
    tmp_path: Path,
) -> None:
    sync(client, manifest({db_name: {"design_docs": {"search": _search()}}}))
    _, exported = export_and_load(client, [db_name], tmp_path)
    stored = _stored(client, db_name)
    assert exported.databases[db_name].design_docs["search"].body["nouveau"]["by_name"] == stored
    assert plan(client, exported).is_empty


@pytest.mark.couchdb_only("CouchDB adds lucene_version to the Nouveau indexes it stores")
def test_an_index_an_update_adds_is_planned_saying_it_gets_legacy_lucene(
    client: Client, db_name: str, manifest: Callable[[dict[str, Any]], DesiredState]
) -> None:
    sync(client, manifest({db_name: {"design_docs": {"search": {"language": "javascript"}}}}))
    added = manifest({db_name: {"design_docs": {"search": {"language": "javascript",
                                                             **_search()}}}})
    [step] = plan(client, added).steps
    assert step.reason.endswith(
        "; by_name added to an existing design doc gets no lucene_version from CouchDB: "
        "built with legacy Lucene 9 (give lucene_version: 10 for the Lucene a new design "
        "doc gets)")
    sync(client, added)
    assert "lucene_version" not in _stored(client, db_name)  # what the plan said
    assert plan(client, added).is_empty
    versioned = manifest({db_name: {"design_docs": {"search": {
        "language": "javascript", **_search(INDEX + " ", lucene_version=10)}}}})
    assert "legacy" not in plan(client, versioned).steps[0].reason  # given: no note
