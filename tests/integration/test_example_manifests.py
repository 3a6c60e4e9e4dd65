"""The example manifests in manifests/ (the README's walkthrough) converge on the real server.

Their databases are renamed to unique test names first, so that running the suite
against a shared server (COUCHSYNC_TEST_URL) never touches databases called
``users`` or ``orders``, nor deletes one called ``legacy_sessions``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from sync_helpers import addresses, plan, sync

from couchsync.client import Client
from couchsync.manifest import DesiredState, load_manifests

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"


def renamed(desired: DesiredState, new_name: Callable[[], str]) -> DesiredState:
    databases = [dataclasses.replace(spec, name=new_name()) for spec in desired.databases.values()]
    return DesiredState({spec.name: spec for spec in databases}, desired.files)


def test_the_examples_apply_completely_and_then_plan_empty(
    client: Client, db_name_factory: Callable[[], str]
) -> None:
    desired = renamed(load_manifests([EXAMPLES], environ={}), db_name_factory)
    absent = [name for name, spec in desired.databases.items() if spec.state == "absent"]
    client.create(absent[0])  # a database the manifests declare absent: apply deletes it

    made, result = sync(client, desired)
    assert result.ok, result.failures
    assert f"- db:{absent[0]}" in addresses(made)
    assert absent[0] not in client

    for name, spec in desired.databases.items():
        if spec.state == "absent":
            continue
        db = client.database(name)
        if spec.security is not None:
            assert db.get_security() == spec.security
        live_indexes = {i["name"] for i in db.get_indexes()["indexes"]}
        assert set(spec.indexes) <= live_indexes
        for design in spec.design_docs.values():
            if design.body.get("_deleted"):
                assert design.id not in db
            else:
                live = db.get(design.id)
                assert {k: live[k] for k in design.body} == design.body
        for doc in spec.documents.values():
            if doc.deleted:
                assert doc.id not in db
            else:
                live = db.get(doc.id)
                assert {k: v for k, v in live.items() if k != "_rev"} == doc.body

    assert plan(client, desired).is_empty
