"""Pending ownership entries (written ahead by an apply that was interrupted) in the planner."""

from __future__ import annotations

from plan_builders import database, desired, doc, existing, live, live_doc

from couchsync.plan import Action, ManagedDoc, plan_changes


def pending(body: dict[str, object]) -> ManagedDoc:
    return ManagedDoc("", doc(body).hash, True)


def test_a_pending_entry_whose_document_holds_the_manifest_body_is_confirmed_not_a_step() -> None:
    body = {"_id": "a", "v": 1}
    plan = plan_changes(desired(database(documents=[body])), live(existing(
        documents={"a": live_doc(body, "1-written")}, managed={"a": pending(body)})))
    assert plan.steps == []
    assert plan.confirm == {"users": {"a": ManagedDoc("1-written", doc(body).hash, True)}}
    assert plan.record_updates() == 1


def test_a_pending_entry_whose_document_differs_is_an_update_and_not_confirmed() -> None:
    body = {"_id": "a", "v": 2}
    plan = plan_changes(desired(database(documents=[body])), live(existing(
        documents={"a": live_doc({"_id": "a", "v": 1}, "1-other")},
        managed={"a": pending(body)})))
    assert [(s.action, s.id, s.reason) for s in plan.steps] == [
        (Action.UPDATE, "a", "differs from the manifests")]
    assert plan.confirm == {}


def test_a_pending_entry_without_its_document_is_created_again() -> None:
    body = {"_id": "a"}
    plan = plan_changes(desired(database(documents=[body])),
                        live(existing(managed={"a": pending(body)})))
    assert [(s.action, s.id) for s in plan.steps] == [(Action.CREATE, "a")]
    assert plan.confirm == {}


def test_prune_deletes_a_document_known_only_by_a_pending_entry() -> None:
    """A document an interrupted apply created, dropped from the manifests since."""
    gone = {"_id": "gone"}
    plan = plan_changes(desired(database(prune=True)), live(existing(
        documents={"gone": live_doc(gone, "1-x")}, managed={"gone": pending(gone)})))
    assert [(s.action, s.id, s.rev) for s in plan.steps] == [(Action.DELETE, "gone", "1-x")]


def test_a_pending_entry_never_created_and_no_longer_wanted_is_forgotten() -> None:
    """Dropped from the manifests (with prune), or marked _deleted: nothing to confirm."""
    plan = plan_changes(desired(database(prune=True, documents=[{"_id": "x", "_deleted": True}])),
                        live(existing(managed={"x": pending({"_id": "x"}),
                                               "gone": pending({"_id": "gone"})})))
    assert plan.steps == [] and plan.confirm == {}
    assert plan.forget == {"users": {"gone", "x"}}
