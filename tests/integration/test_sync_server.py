"""plan → apply → re-plan against a real server: convergence, drift, prune, races."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from sync_helpers import addresses, counting_client, plan, sync

from couchsync.apply import ApplyError, apply_plan
from couchsync.client import Client, NotFound
from couchsync.manifest import DesiredState
from couchsync.plan import RECORD_ID, Action, LiveState, ManagedDoc, StepKind
from couchsync.plan import _ownership as ownership
from couchsync.read import read_live_state, read_record

Manifest = Callable[[dict[str, Any]], DesiredState]

SECURITY = {"admins": {"names": [], "roles": ["admins"]},
            "members": {"names": [], "roles": ["staff"]}}
REPORTS = {"views": {"by_age": {"map": "function (doc) { if (doc.age) emit(doc.age, 1); }",
                                "reduce": "_count"}}}


def full_spec() -> dict[str, Any]:
    return {
        "security": SECURITY,
        "indexes": {"by-email": {"fields": ["email"], "partial_filter_selector": {"type": "user"},
                                 "ddoc": "idx"}},
        "design_docs": {"reports": REPORTS},
        "documents": [
            {"_id": "settings", "theme": "dark", "sizes": [1, 2.5]},
            {"_id": "user:ada", "type": "user", "email": "ada@example.com", "age": 36},
        ],
    }


def _copies(client: Client, db: str) -> int | None:
    """The ``w`` that puts a test's own write on every shard copy (None off a cluster)."""
    n = (client.database(db).info().get("cluster") or {}).get("n")
    return int(n) if n else None


def body(client: Client, db: str, doc_id: str) -> dict[str, Any]:
    doc = client.database(db).get(doc_id)
    return {k: v for k, v in doc.items() if k not in ("_id", "_rev")}


def record(client: Client, db: str) -> dict[str, ManagedDoc]:
    return read_record(client.database(db)).managed


def test_first_apply_creates_everything_and_the_second_plan_is_empty(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    desired = manifest({db_name: full_spec()})
    made, result = sync(client, desired)
    assert addresses(made) == [
        f"+ db:{db_name}", f"+ db:{db_name}/security", f"+ db:{db_name}/index:by-email",
        f"+ db:{db_name}/design:reports", f"+ db:{db_name}/doc:settings",
        f"+ db:{db_name}/doc:user:ada",
    ]
    assert result.ok and len(result.results) == 6
    db = client.database(db_name)
    assert db.get_security() == SECURITY
    assert body(client, db_name, "_design/reports") == REPORTS
    assert body(client, db_name, "settings") == {"theme": "dark", "sizes": [1, 2.5]}
    [index] = [i for i in db.get_indexes()["indexes"] if i["name"] == "by-email"]
    assert index["ddoc"] == "_design/idx"
    assert set(record(client, db_name)) == {"settings", "user:ada"}

    live = read_live_state(client, desired)
    assert live.bodies_read() == 0
    assert plan(client, desired).is_empty


def test_progress_is_reported_per_step(client: Client, db_name: str, manifest: Manifest) -> None:
    calls: list[tuple[int, int]] = []
    sync(client, manifest({db_name: full_spec()}), batch_size=1,
         on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, 6) for n in range(1, 7)]


def test_a_document_edited_on_the_server_shows_as_drift_and_is_repaired(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    desired = manifest({db_name: full_spec()})
    sync(client, desired)
    db = client.database(db_name)
    # Edited on every copy (w = n): the plan's revisions scan reads one copy per shard
    # range, which a quorum write may not have reached yet (docs/plan-and-apply.md,
    # "Clusters").
    db.update("settings", {"theme": "light", "sizes": [1, 2.5], "extra": True},
              w=_copies(client, db_name))

    made = plan(client, desired)
    [step] = made.steps
    assert (step.action, step.address) == (Action.UPDATE, f"db:{db_name}/doc:settings")
    assert step.reason == "edited on the server since couchsync wrote it"
    assert step.before == {"theme": "light", "sizes": [1, 2.5], "extra": True}
    assert step.rev == db.get("settings")["_rev"]

    apply_plan(client, made, desired)
    assert body(client, db_name, "settings") == {"theme": "dark", "sizes": [1, 2.5]}
    assert plan(client, desired).is_empty


def test_a_manifest_change_updates_the_document(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    spec = full_spec()
    sync(client, manifest({db_name: spec}))
    spec["documents"][0]["theme"] = "light"
    desired = manifest({db_name: spec})
    made, _ = sync(client, desired)
    assert [s.reason for s in made.steps] == ["changed in the manifests"]
    assert body(client, db_name, "settings")["theme"] == "light"
    assert plan(client, desired).is_empty


def test_prune_deletes_only_what_couchsync_created_and_no_manifest_lists(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    client.create(db_name)
    db = client.database(db_name)
    copies = _copies(client, db_name)  # others' writes on every copy, as for the next
    db.bulk_docs([{"_id": "adopted", "v": 0}], w=copies)  # someone else's, later managed
    docs = [{"_id": "a"}, {"_id": "b"}, {"_id": "adopted", "v": 1}]
    sync(client, manifest({db_name: {"documents": docs}}))
    db.bulk_docs([{"_id": "theirs"}], w=copies)

    without_prune = manifest({db_name: {"documents": docs[:1]}})
    assert plan(client, without_prune).is_empty

    with_prune = manifest({db_name: {"documents": docs[:1], "prune": True}})
    made, _ = sync(client, with_prune)
    assert addresses(made) == [f"- db:{db_name}/doc:b"]
    assert "a" in db and "adopted" in db and "theirs" in db
    assert "b" not in db
    assert set(record(client, db_name)) == {"a", "adopted"}
    assert plan(client, with_prune).is_empty


def test_deleted_true_deletes_a_document_and_state_absent_deletes_the_database(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    sync(client, manifest({db_name: {"documents": [{"_id": "a", "v": 1}, {"_id": "b"}]}}))
    gone = manifest({db_name: {"documents": [{"_id": "a", "_deleted": True}, {"_id": "b"}]}})
    made, _ = sync(client, gone)
    assert addresses(made) == [f"- db:{db_name}/doc:a"]
    assert "a" not in client.database(db_name)
    assert set(record(client, db_name)) == {"b"}
    assert plan(client, gone).is_empty

    absent = manifest({db_name: {"state": "absent"}})
    made, _ = sync(client, absent)
    assert addresses(made) == [f"- db:{db_name}"]
    assert made.steps[0].before == {"doc_count": 1}
    assert db_name not in client
    assert plan(client, absent).is_empty


def test_an_edit_between_plan_and_apply_is_re_read_and_converges(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    sync(client, manifest({db_name: {"documents": [{"_id": "a", "v": 1}, {"_id": "c"}]}}))
    desired = manifest({db_name: {"documents": [
        {"_id": "a", "v": 2}, {"_id": "b", "v": 1}, {"_id": "c", "v": 3}]}})
    made = plan(client, desired)
    assert addresses(made) == [f"~ db:{db_name}/doc:a", f"+ db:{db_name}/doc:b",
                               f"~ db:{db_name}/doc:c"]

    db = client.database(db_name)
    copies = _copies(client, db_name)  # on every copy, before apply writes
    db.update("a", {"v": 99}, w=copies)  # someone edits a,
    db.bulk_docs([{"_id": "b", "v": 5}], w=copies)  # creates b,
    db.update("c", {"v": 3}, w=copies)  # and makes c what the manifest wants anyway

    result = apply_plan(client, made, desired)
    assert result.ok
    assert [(r.step.action, r.address) for r in result.results] == [
        (Action.UPDATE, f"db:{db_name}/doc:a"),
        (Action.UPDATE, f"db:{db_name}/doc:b"),  # the create became an update
        (Action.UPDATE, f"db:{db_name}/doc:c"),
    ]
    assert body(client, db_name, "a") == {"v": 2}
    assert body(client, db_name, "b") == {"v": 1}
    assert plan(client, desired).is_empty
    assert read_live_state(client, desired).bodies_read() == 0  # the record learnt every rev


def test_a_changed_index_definition_replaces_the_index(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    spec = full_spec()
    sync(client, manifest({db_name: spec}))

    spec["indexes"]["by-email"]["fields"] = ["email", "age"]
    desired = manifest({db_name: spec})
    made, result = sync(client, desired)
    [step] = made.steps
    assert (step.action, step.address, step.reason) == (
        Action.REPLACE, f"db:{db_name}/index:by-email", "fields changed")
    assert made.counts() == {"create": 1, "update": 0, "delete": 1}
    assert result.ok
    [index] = [i for i in client.database(db_name).get_indexes()["indexes"]
               if i["name"] == "by-email"]
    assert index["def"]["fields"] == [{"email": "asc"}, {"age": "asc"}]
    assert plan(client, desired).is_empty

    spec["indexes"]["by-email"]["ddoc"] = "elsewhere"
    moved = manifest({db_name: spec})
    made, _ = sync(client, moved)
    assert made.steps[0].reason == "design doc changed"
    ddocs = [i["ddoc"] for i in client.database(db_name).get_indexes()["indexes"]
             if i["name"] == "by-email"]
    assert ddocs == ["_design/elsewhere"]
    assert plan(client, moved).is_empty


def test_security_and_design_doc_changes_are_applied(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    spec = full_spec()
    sync(client, manifest({db_name: spec}))
    spec["security"] = {**SECURITY, "members": {"names": ["ada"], "roles": ["staff"]}}
    spec["design_docs"]["reports"]["views"]["by_age"]["map"] = "function (doc) { emit(doc.age); }"
    desired = manifest({db_name: spec})
    made, _ = sync(client, desired)
    assert addresses(made) == [f"~ db:{db_name}/security", f"~ db:{db_name}/design:reports"]
    assert made.steps[1].reason == "differs from the manifests"
    assert made.steps[1].rebuild is not None and not made.steps[1].rebuild["staged"]
    assert client.database(db_name).get_security() == spec["security"]
    assert body(client, db_name, "_design/reports") == spec["design_docs"]["reports"]
    assert plan(client, desired).is_empty


def test_a_design_doc_marked_deleted_is_deleted_and_then_left_alone(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    spec = full_spec()
    sync(client, manifest({db_name: spec}))
    spec["design_docs"]["reports"] = {"_deleted": True}
    desired = manifest({db_name: spec})
    made, result = sync(client, desired)
    assert addresses(made) == [f"- db:{db_name}/design:reports"]
    assert result.ok
    assert "_design/reports" not in client.database(db_name)
    assert plan(client, desired).is_empty


def test_only_limits_the_plan_and_apply_keeps_the_rest_of_the_record(
    client: Client, db_name_factory: Callable[[], str], manifest: Manifest
) -> None:
    first, second = db_name_factory(), db_name_factory()
    docs = [{"_id": "a", "v": 1}, {"_id": "b", "v": 1}]
    desired = manifest({first: {"documents": docs}, second: {"documents": docs}})
    made, _ = sync(client, desired, only=[first])
    assert addresses(made) == [f"+ db:{first}", f"+ db:{first}/doc:a", f"+ db:{first}/doc:b"]
    assert addresses(plan(client, desired)) == [
        f"+ db:{second}", f"+ db:{second}/doc:a", f"+ db:{second}/doc:b"]

    changed = [{"_id": "a", "v": 2}, {"_id": "b", "v": 2}]
    desired = manifest({first: {"documents": changed}, second: {"documents": docs}})
    made, _ = sync(client, desired, only=[f"{first}/a"])
    assert addresses(made) == [f"~ db:{first}/doc:a"]
    assert addresses(plan(client, desired, only=[first])) == [f"~ db:{first}/doc:b"]
    assert set(record(client, first)) == {"a", "b"}


def test_a_large_database_re_plans_reading_revisions_only(
    couch_url: str, client: Client, db_name: str, manifest: Manifest
) -> None:
    docs = [{"_id": f"doc{i:05}", "n": i, "text": "x" * 50} for i in range(3000)]
    desired = manifest({db_name: {"documents": docs}})
    sync(client, desired)

    counting, engine = counting_client(couch_url)
    with counting:
        live = read_live_state(counting, desired)
    assert live.bodies_read() == 0
    assert not any("include_docs" in params for _, _, params in engine.requests)
    all_docs = [r for r in engine.requests if r[1].endswith("/_all_docs")]
    assert len(all_docs) == 1  # one revisions-only scan
    assert len(engine.document_reads) == 3  # info, the ownership record, the scan
    assert plan(client, desired).is_empty


def test_a_sharded_record_is_proven_current_by_its_digest_without_its_shards(
    couch_url: str, client: Client, db_name: str, manifest: Manifest,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 40)  # 150 documents → 4 shards
    docs = [{"_id": f"doc{i:03}", "n": i} for i in range(150)]
    desired = manifest({db_name: {"documents": docs}})
    sync(client, desired)

    def read() -> tuple[LiveState, list[str]]:
        counting, engine = counting_client(couch_url)
        with counting:
            live = read_live_state(counting, desired)
        return live, [p.rsplit("/", 1)[-1] for _, p, _ in engine.document_reads]

    live, paths = read()
    assert live.databases[db_name].record_digest and live.bodies_read() == 0
    assert paths == [db_name, "couchsync", "_all_docs"]  # the head, no shard
    assert plan(client, desired).is_empty

    client.database(db_name).update("doc007", {"_id": "doc007", "n": "edited"},
                                    rev=client.database(db_name).get("doc007")["_rev"],
                                    w=_copies(client, db_name))  # seen by the scan
    live, paths = read()  # the digest no longer fits: every shard is read, one body
    assert live.databases[db_name].record_digest is None and live.bodies_read() == 1
    assert {f"couchsync.{i}" for i in range(4)} <= set(paths)
    assert addresses(plan(client, desired)) == [f"~ db:{db_name}/doc:doc007"]

    sync(client, desired)
    changed = manifest({db_name: {"documents": [*docs[:-1], {"_id": "doc149", "n": -1}]}})
    assert addresses(plan(client, changed)) == [f"~ db:{db_name}/doc:doc149"]
    fewer = manifest({db_name: {"documents": docs[:-1]}})  # doc149 dropped (no prune)
    assert plan(client, fewer).is_empty
    pruning = manifest({db_name: {"documents": docs[:-1], "prune": True}})
    assert addresses(plan(client, pruning)) == [f"- db:{db_name}/doc:doc149"]


def test_a_few_documents_in_a_big_database_are_looked_up_by_key(
    couch_url: str, client: Client, db_name: str, manifest: Manifest
) -> None:
    client.create(db_name)
    client.database(db_name).bulk_docs([{"_id": f"other{i}"} for i in range(50)],
                                       w=_copies(client, db_name))  # counted by every copy
    desired = manifest({db_name: {"documents": [{"_id": "mine", "v": 1}]}})
    sync(client, desired)

    counting, engine = counting_client(couch_url)
    with counting:
        assert read_live_state(counting, desired).bodies_read() == 0
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in engine.document_reads] == [
        ("GET", db_name), ("GET", "couchsync"), ("POST", "_all_docs")]


def test_a_failed_write_is_reported_the_rest_applied_and_a_rerun_converges(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    guard = {"validate_doc_update": "function (doc) { if (!doc._deleted && !doc.type) "
                                    "{ throw({forbidden: 'type is required'}); } }"}
    spec: dict[str, Any] = {"design_docs": {"guard": guard},
                            "documents": [{"_id": "good", "type": "x"}, {"_id": "bad"}]}
    with pytest.raises(ApplyError) as caught:
        sync(client, manifest({db_name: spec}))
    error = caught.value
    [failure] = error.failures
    assert failure.address == f"db:{db_name}/doc:bad"
    assert failure.error is not None and "type is required" in failure.error
    assert str(error).splitlines() == [
        "apply failed for 1 of 4 steps:", f"  db:{db_name}/doc:bad: {failure.error}"]
    assert set(record(client, db_name)) == {"good"}

    spec["documents"][1]["type"] = "y"
    desired = manifest({db_name: spec})
    made, _ = sync(client, desired)
    assert addresses(made) == [f"+ db:{db_name}/doc:bad"]
    assert plan(client, desired).is_empty


def test_batches_written_one_ahead_keep_their_order_conflicts_and_failures(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    # Batches of 3: while one is written the answers to the one before are checked,
    # and its conflicts re-read and retried, so outcomes must still land per step.
    guard = {"validate_doc_update": "function (doc) { if (!doc._deleted && doc.bad) "
                                    "{ throw({forbidden: 'no bad documents'}); } }"}
    docs = [{"_id": f"d{i:02}", "v": 1} for i in range(11)]
    sync(client, manifest({db_name: {"design_docs": {"guard": guard}, "documents": docs[:6]}}))
    changed = [{**d, "v": 2} for d in docs]
    changed[7]["bad"] = True  # a new document the server refuses (third batch)
    desired = manifest({db_name: {"design_docs": {"guard": guard}, "documents": changed}})
    made = plan(client, desired)
    db = client.database(db_name)
    db.update("d01", {"v": 99})  # conflicts in the first batch
    db.bulk_docs([{"_id": "d06", "v": 7}])  # and a create that became an update, second

    with pytest.raises(ApplyError) as caught:
        apply_plan(client, made, desired, batch_size=3)
    results = caught.value.results
    assert [r.address for r in results] == [f"db:{db_name}/doc:d{i:02}" for i in range(11)]
    assert [r.address for r in caught.value.failures] == [f"db:{db_name}/doc:d07"]
    assert "no bad documents" in (caught.value.failures[0].error or "")
    assert results[6].step.action is Action.UPDATE  # d06 existed by then
    for i in (0, 1, 6, 10):
        assert body(client, db_name, f"d{i:02}") == {"v": 2}
    assert set(record(client, db_name)) == {f"d{i:02}" for i in range(11)} - {"d07"}
    changed[7].pop("bad")
    fixed = manifest({db_name: {"design_docs": {"guard": guard}, "documents": changed}})
    assert addresses(sync(client, fixed, batch_size=3)[0]) == [f"+ db:{db_name}/doc:d07"]
    assert plan(client, fixed).is_empty


def test_an_update_keeps_the_attachments_on_the_server(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    client.create(db_name)
    data = base64.b64encode(b"hello").decode()
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    # Written to every copy: the plan below may read any (a missing_stub answer, which a
    # copy not yet told gives, is tested in tests/unit/plan/test_apply_retries.py).
    client.database(db_name).bulk_docs([{"_id": "a", "v": 0, "_attachments": {
        "hello.txt": {"content_type": "text/plain", "data": data}}}], w=copies)
    desired = manifest({db_name: {"documents": [{"_id": "a", "v": 1}]}})
    made, _ = sync(client, desired)
    [step] = made.steps
    assert step.kind is StepKind.DOCUMENT and step.action is Action.UPDATE
    assert list(client.database(db_name).get("a")["_attachments"]) == ["hello.txt"]
    assert body(client, db_name, "a")["v"] == 1
    assert plan(client, desired).is_empty


def test_databases_outside_the_manifests_are_untouched(
    client: Client, db_name_factory: Callable[[], str], manifest: Manifest
) -> None:
    mine, other = db_name_factory(), db_name_factory()
    client.create(other)
    sync(client, manifest({mine: {"documents": [{"_id": "a"}], "prune": True}}))
    assert other in client
    with pytest.raises(NotFound):
        client.database(other).get(RECORD_ID)


def test_a_delete_whose_document_changed_or_vanished_since_the_plan_still_converges(
    client: Client, db_name: str, manifest: Manifest
) -> None:
    sync(client, manifest({db_name: {"documents": [{"_id": "a"}, {"_id": "b"}]}}))
    desired = manifest({db_name: {"documents": [
        {"_id": "a", "_deleted": True}, {"_id": "b", "_deleted": True}]}})
    made = plan(client, desired)
    db = client.database(db_name)
    db.update("a", {"edited": True})  # a changes under the plan,
    db.delete("b")  # b is deleted by someone else

    result = apply_plan(client, made, desired)
    assert result.ok and result.summary() == "Apply complete: 0 created, 0 updated, 2 deleted."
    assert "a" not in db and "b" not in db
    assert record(client, db_name) == {}
    assert plan(client, desired).is_empty
