"""The plan as plain data: addresses, counts and the JSON round trip."""

from __future__ import annotations

import json

import pytest

import couchsync
from couchsync.plan import Action, Plan, Step, StepKind, render_json

STEPS = [
    Step(Action.CREATE, StepKind.DATABASE, "users", after={"q": 8}, reason="not on the server"),
    Step(Action.UPDATE, StepKind.SECURITY, "users", before={}, after={"members": {}}),
    Step(Action.REPLACE, StepKind.INDEX, "users", "by-email", before={"fields": []},
         after={"fields": [{"e": "asc"}]}),
    Step(Action.UPDATE, StepKind.DESIGN_DOC, "users", "_design/reports", before={}, after={},
         rev="1-a"),
    Step(Action.DELETE, StepKind.DOCUMENT, "users", "old/1", rev="2-b", reason="prune"),
]


def test_addresses_name_the_target() -> None:
    assert [step.address for step in STEPS] == [
        "db:users",
        "db:users/security",
        "db:users/index:by-email",
        "db:users/design:reports",
        "db:users/doc:old/1",
    ]


def test_action_values_are_the_symbols_users_see() -> None:
    assert [a.value for a in Action] == ["+", "~", "-", "-/+"]


def test_counts_count_a_replace_as_a_create_and_a_delete() -> None:
    assert Plan(STEPS).counts() == {"create": 2, "update": 2, "delete": 2}
    assert Plan().is_empty and not Plan(STEPS).is_empty


def test_to_dict_is_the_documented_structure() -> None:
    data = Plan(STEPS[-1:]).to_dict()
    assert data == {
        "format_version": 1,
        "couchsync_version": couchsync.__version__,
        "steps": [{
            "action": "-", "kind": "document", "address": "db:users/doc:old/1",
            "database": "users", "id": "old/1", "before": None, "after": None,
            "rev": "2-b", "reason": "prune", "rebuild": None,
        }],
        "summary": {"create": 0, "update": 0, "delete": 1},
        "record_updates": 0,
        "errors": {},
    }


def test_plan_round_trips_through_json() -> None:
    plan = Plan(STEPS)
    assert Plan.from_dict(json.loads(render_json(plan))) == plan


def test_render_json_is_sorted_and_indented() -> None:
    text = render_json(Plan(STEPS[:1]))
    assert text.startswith(
        '{\n  "couchsync_version": "' + couchsync.__version__ + '",\n  "errors": {},\n'
        '  "format_version": 1,\n  "record_updates": 0,\n  "steps": [')
    assert json.loads(text) == Plan(STEPS[:1]).to_dict()


def test_from_dict_refuses_another_format_version() -> None:
    with pytest.raises(ValueError, match="format_version 2"):
        Plan.from_dict({"format_version": 2, "steps": []})


def test_a_create_given_as_a_document_spec_decodes_its_body_only_when_read() -> None:
    from couchsync.manifest.model import DocumentSpec, SourcePos

    spec = DocumentSpec.from_body({"_id": "a", "b": 1.0, "c": [1]}, SourcePos("m.yaml", 3, 5))
    step = Step(Action.CREATE, StepKind.DOCUMENT, "users", "a", after=spec)
    assert step.spec is spec
    assert step.after == {"b": 1, "c": [1]}
    assert step.after is not step.after  # decoded afresh: nothing kept in the plan
    assert step == Step(Action.CREATE, StepKind.DOCUMENT, "users", "a", after={"b": 1, "c": [1]})
    assert step.to_dict()["after"] == {"b": 1, "c": [1]}
