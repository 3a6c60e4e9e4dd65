"""ApplyResult and ApplyError as values: counts, JSON, and the message the CLI prints."""

from __future__ import annotations

import json

from couchsync.apply import ApplyError, ApplyResult, StepResult
from couchsync.plan import Action, Plan, Step, StepKind

CREATE = Step(Action.CREATE, StepKind.DOCUMENT, "users", "a", after={})
REPLACE = Step(Action.REPLACE, StepKind.INDEX, "users", "by-email")
FAILED = Step(Action.UPDATE, StepKind.DOCUMENT, "users", "b", after={}, rev="1-x")


def results() -> list[StepResult]:
    return [
        StepResult(CREATE, True, rev="1-a"),
        StepResult(REPLACE, True),
        StepResult(FAILED, False, error="forbidden: type is required"),
    ]


def test_result_counts_only_what_was_done() -> None:
    result = ApplyResult(results())
    assert not result.ok
    assert [f.address for f in result.failures] == ["db:users/doc:b"]
    assert result.counts() == {"create": 2, "update": 0, "delete": 1}
    assert result.summary() == "Apply complete: 2 created, 0 updated, 1 deleted."


def test_result_json_is_one_document_with_the_plan_and_every_step() -> None:
    plan = Plan([CREATE, REPLACE, FAILED])
    data = json.loads(ApplyResult(results()).to_json(plan))
    assert data["format_version"] == 1
    assert data["ok"] is False
    assert data["plan"] == plan.to_dict()
    assert data["summary"] == {"create": 2, "update": 0, "delete": 1}
    assert data["results"][2] == {
        "address": "db:users/doc:b", "action": "~", "kind": "document", "database": "users",
        "id": "b", "ok": False, "rev": None, "error": "forbidden: type is required",
    }


def test_apply_error_names_each_failed_document_and_the_servers_reason() -> None:
    error = ApplyError(results())
    assert error.results == results()
    assert [f.step for f in error.failures] == [FAILED]
    assert str(error) == (
        "apply failed for 1 of 3 steps:\n"
        "  db:users/doc:b: forbidden: type is required"
    )



def _failed(doc_id: str, error: str) -> StepResult:
    return StepResult(Step(Action.CREATE, StepKind.DOCUMENT, "users", doc_id, after={}),
                      False, error=error)


def test_apply_error_gives_one_line_to_the_steps_that_failed_alike() -> None:
    batch = [_failed(f"d-{i}", "unknown_error: the batch failed") for i in range(10)]
    assert str(ApplyError([*batch, _failed("x", "forbidden: type is required"),
                           *results()])) == (
        "apply failed for 12 of 14 steps:\n"
        "  db:users/doc:d-0 and 9 more: unknown_error: the batch failed\n"
        "  db:users/doc:x: forbidden: type is required\n"  # a few: each named
        "  db:users/doc:b: forbidden: type is required")


def test_apply_error_lists_20_reasons_then_counts_the_rest() -> None:
    failures = [_failed(f"d-{i:02d}", f"forbidden: reason {i}") for i in range(25)]
    lines = str(ApplyError(failures)).splitlines()
    assert len(lines) == 22
    assert lines[20] == "  db:users/doc:d-19: forbidden: reason 19"
    assert lines[21] == "  … and 5 more (--format json lists every one)"
