"""Saved plans as values: the file format, what refuses one, and ``plan_moves``."""

from __future__ import annotations

import json

import pytest

from couchsync.manifest.model import DatabaseSpec, DesiredState, DocumentSpec, SourcePos
from couchsync.plan import Action, Plan, Step, StepKind
from couchsync.saved_plan import SavedPlan, SavedPlanError, fingerprint, plan_moves

POS = SourcePos("m.yaml", 1, 1)
UPDATE = Step(Action.UPDATE, StepKind.DOCUMENT, "shop", "ui", before={"v": 1}, after={"v": 2},
              rev="1-a", reason="changed in the manifests")


def desired(value: int = 2) -> DesiredState:
    spec = DatabaseSpec("shop", POS)
    spec.documents["ui"] = DocumentSpec.from_body({"_id": "ui", "v": value}, POS)
    return DesiredState(databases={"shop": spec})


def saved(plan: Plan, state: DesiredState, uuid: str | None = "u1") -> SavedPlan:
    return SavedPlan.of(plan, state, server_url="http://couch:5984", server_uuid=uuid,
                        paths=["m.yaml"], settings={"only": None})


def test_a_saved_plan_round_trips_through_its_file() -> None:
    original = saved(Plan([UPDATE]), desired())
    again = SavedPlan.from_json(original.to_json({}), "plan.json")
    assert again == original
    assert again.refusal(Plan([UPDATE]), desired(), server_url="http://couch:5984",
                         server_uuid="u1") is None


@pytest.mark.parametrize(("text", "message"), [
    ("{", "plan.json: not a saved plan (not JSON: "),
    ("[]", "plan.json: not a saved plan (couchsync plan --out writes them)"),
    ('{"kind": "couchsync-saved-plan", "format_version": 9}',
     "plan.json: a saved plan of format 9; this couchsync reads 2"),
    ('{"kind": "couchsync-saved-plan", "format_version": 1}',
     "plan.json: a saved plan of format 1; this couchsync reads 2 (make the plan again)"),
    ('{"kind": "couchsync-saved-plan", "format_version": 2}',
     "plan.json: a saved plan with a part missing ('manifests')"),
])
def test_what_is_not_a_saved_plan_is_said_so(text: str, message: str) -> None:
    with pytest.raises(SavedPlanError) as exc:
        SavedPlan.from_json(text, "plan.json")
    assert str(exc.value).startswith(message)


def test_refusals_name_the_server_the_manifests_or_what_moved() -> None:
    kept = saved(Plan([UPDATE]), desired())
    assert "made against another server (uuid u1" in (kept.refusal(
        Plan([UPDATE]), desired(), server_url="http://couch:5984", server_uuid="u2") or "")
    assert "declare something else" in (kept.refusal(
        Plan([UPDATE]), desired(3), server_url="http://couch:5984", server_uuid="u1") or "")
    moved = Step(Action.UPDATE, StepKind.DOCUMENT, "shop", "ui", before={"v": 5},
                 after={"v": 2}, rev="2-b", reason="edited on the server since couchsync wrote it")
    refusal = kept.refusal(Plan([moved]), desired(), server_url="http://couch:5984",
                           server_uuid="u1") or ""
    assert refusal.splitlines() == [
        "the server moved since the plan was made (1 change); nothing was written:",
        "  db:shop/doc:ui: planned at rev 1-a, now at rev 2-b",
        "Make a new plan and review it.",
    ]


def test_without_uuids_the_url_identifies_the_server() -> None:
    kept = saved(Plan(), desired(), uuid=None)
    assert kept.refusal(Plan(), desired(), server_url="http://other:5984",
                        server_uuid=None) == (
        "the plan was made against http://couch:5984, not http://other:5984")


def test_plan_moves_lists_steps_gone_new_and_changed_ignoring_rebuild_figures() -> None:
    index = Step(Action.CREATE, StepKind.INDEX, "shop", "by-v", after={"fields": []},
                 rebuild={"documents": 10, "index_bytes": None, "staged": False})
    grown = Step(Action.CREATE, StepKind.INDEX, "shop", "by-v", after={"fields": []},
                 rebuild={"documents": 11, "index_bytes": None, "staged": False})
    gone = Step(Action.DELETE, StepKind.DOCUMENT, "shop", "old", rev="1-o")
    new = Step(Action.CREATE, StepKind.DOCUMENT, "shop", "new", after={})
    body_moved = Step(Action.UPDATE, StepKind.DOCUMENT, "shop", "ui", before={"v": 7},
                      after={"v": 2}, rev="1-a")
    before = Plan([index, gone, UPDATE]).to_dict()
    after = Plan([grown, body_moved, new], errors={"shop2": "forbidden"}).to_dict()
    assert plan_moves(before, after) == [
        "db:shop/doc:old: planned (-), now nothing to do",
        "db:shop/doc:ui: changed on the server since the plan",
        "db:shop/doc:new: now needs +, which the plan lacks",
        "db:shop2: could not be read now",
    ]


def test_fingerprints_differ_when_any_declared_thing_does() -> None:
    assert fingerprint(desired()) == fingerprint(desired())
    assert fingerprint(desired()) != fingerprint(desired(3))
    state = desired()
    state.databases["shop"].prune = True
    assert fingerprint(state) != fingerprint(desired())


def test_fingerprints_follow_config_and_replications_but_never_their_secrets() -> None:
    from couchsync._names import REPLICATOR_DB
    from couchsync.manifest.model import ConfigSetting

    def server(origins: str, secret: str, target: str) -> DesiredState:
        state = desired()
        state.config = {"cors": {"origins": ConfigSetting(origins, POS)},
                        "chttpd_auth": {"secret": ConfigSetting(secret, POS)}}
        replicator = state.databases[REPLICATOR_DB] = DatabaseSpec(REPLICATOR_DB, POS)
        replicator.documents["r"] = DocumentSpec.from_body(
            {"_id": "r", "source": f"http://u:{secret}@h/a", "target": target}, POS)
        return state

    base = fingerprint(server("https://a", "s3cret-1", "http://h/b"))
    assert base != fingerprint(desired())
    assert base != fingerprint(server("https://b", "s3cret-1", "http://h/b"))
    assert base != fingerprint(server("https://a", "s3cret-1", "http://h/c"))
    # A secret is re-read at apply time: the fingerprint holds no trace of it.
    assert base == fingerprint(server("https://a", "another-2", "http://h/b"))


def test_the_file_holds_no_secret() -> None:
    plan = Plan([Step(Action.CREATE, StepKind.DOCUMENT, "shop", "smtp",
                      after={"password": "correct horse"})])
    kept = saved(plan, desired())
    with pytest.raises(SavedPlanError, match=r"holds the value of \$\{SMTP_PASSWORD\}") as exc:
        kept.to_json({"SMTP_PASSWORD": "correct horse", "HOME": "/root"})
    assert "correct horse" not in str(exc.value)
    assert json.loads(kept.to_json({"HOME": "correct horse", "API_KEY": "abc"}))
