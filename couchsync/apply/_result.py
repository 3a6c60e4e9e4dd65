"""What an apply did: each step's outcome, the errors apply raises, and the one place a
server error becomes either a refused step or a stop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from couchsync._version import __version__
from couchsync._words import counted
from couchsync.client import CouchError, TransportError
from couchsync.errors import CouchsyncError
from couchsync.plan import FORMAT_VERSION, Plan, Step

#: Steps failed with one error from which ApplyError's text gives them one line.
GROUPED_FROM = 4
#: Failures the text of ApplyError lists one by one; JSON output lists all.
SHOWN_FAILURES = 20


@dataclass(frozen=True, slots=True)
class StepResult:
    """What became of one step: ``rev`` is the revision written, ``error`` the server's reason."""

    step: Step
    ok: bool
    rev: str | None = None
    error: str | None = None

    @property
    def address(self) -> str:
        return self.step.address

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "action": self.step.action.value,
                "kind": self.step.kind.value, "database": self.step.database,
                "id": self.step.id, "ok": self.ok, "rev": self.rev, "error": self.error}


@dataclass(slots=True)
class ApplyResult:
    """Every step's outcome, in the order the steps ran."""

    results: list[StepResult] = field(default_factory=list)
    #: What did not fail but is not plain success either (writes answered 202).
    warnings: list[str] = field(default_factory=list)
    #: Ownership-record entries confirmed or forgotten (``Plan.confirm``, ``Plan.forget``).
    confirmed: int = 0
    #: One line per staged rollout done: what was built, for how long.
    staged: list[str] = field(default_factory=list)
    #: One line per migration run: what it changed.
    migrated: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[StepResult]:
        return [result for result in self.results if not result.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        """``{"create", "update", "delete"}`` of the steps done, counted as ``Plan.counts``."""
        return Plan([result.step for result in self.results if result.ok]).counts()

    def summary(self) -> str:
        return f"Apply complete: {self._done()}."

    def _done(self) -> str:
        done = self.counts()
        return f"{done['create']:,} created, {done['update']:,} updated, {done['delete']:,} deleted"

    def to_json(self, plan: Plan) -> str:
        """What ``apply --format json`` prints."""
        return json.dumps(
            {"format_version": FORMAT_VERSION, "couchsync_version": __version__,
             "ok": self.ok, "plan": plan.to_dict(),
             "results": [result.to_dict() for result in self.results],
             "summary": self.counts(), "warnings": self.warnings,
             "confirmed": self.confirmed, "staged": self.staged,
             "migrated": self.migrated},
            indent=2, sort_keys=True, ensure_ascii=False,
        )


class ApplyError(CouchsyncError):
    """Raised by apply_plan when some steps failed; the others were applied."""

    def __init__(self, results: list[StepResult], result: ApplyResult | None = None) -> None:
        self.results = results
        self.result = result or ApplyResult(results)  # with its warnings
        self.failures = [result for result in results if not result.ok]
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"apply failed for {len(self.failures):,} of "
                 f"{counted(len(self.results), 'step')}:"]
        # A batch the server refused as a whole (a 500, a 429) fails each of its steps
        # with the same error: one line for them, not one per document.
        same: dict[str | None, list[str]] = {}
        for failure in self.failures:
            same.setdefault(failure.error, []).append(failure.address)
        shown = 0
        for error, addresses in list(same.items())[:SHOWN_FAILURES]:
            if len(addresses) <= GROUPED_FROM - 1:  # a few: each named
                lines += [f"  {address}: {error}" for address in addresses]
            else:
                lines.append(f"  {addresses[0]} and {len(addresses) - 1:,} more: {error}")
            shown += len(addresses)
        if len(self.failures) > shown:
            lines.append(f"  … and {len(self.failures) - shown:,} more "
                         "(--format json lists every one)")
        return "\n".join(lines)


class ApplyInterrupted(CouchsyncError):
    """Apply stopped before the end: the server was lost, or the apply lock was taken;
    its text says why, what was done and what not, how to go on."""

    def __init__(self, cause: str, result: ApplyResult, total: int, *,
                 server_lost: bool = False) -> None:
        self.cause = cause
        self.server_lost = server_lost
        self.result = result  # what was done, with its warnings
        self.results = result.results
        self.total = total
        self.notes: list[str] = []  # lines the caller adds (the CLI: a lock left behind)
        super().__init__(cause)

    def __str__(self) -> str:
        failed = len(self.result.failures)
        return "\n".join([
            f"apply stopped: {self.cause}",
            f"Done before it: {len(self.results) - failed:,} of {counted(self.total, 'step')} "
            f"({self.result._done()})" + (f", {failed:,} refused" if failed else "")
            + f"; not done: {self.total - len(self.results):,}.",
            "Nothing is orphaned: the ownership records list every document this apply "
            "set out to create.",
            "Run the same apply again" + (" once the server is back" if self.server_lost
                                          else "") + " to finish.",
            *self.notes,
        ])


class Stop(Exception):
    """The lock was lost or the caller interrupted: becomes ApplyInterrupted."""


class Refusal:
    """What a ``with refusal() as refused:`` block ended in: true when it was refused."""

    error: Exception | None = None

    def __bool__(self) -> bool:
        return self.error is not None

    @property
    def reason(self) -> str:
        """The server's ``error: reason``, as a step's result says it."""
        error = self.error
        return error.brief if isinstance(error, CouchError) else str(error)


@contextmanager
def refusal(*also: type[Exception]) -> Iterator[Refusal]:
    """Run requests, keeping a refusal (any ``CouchError`` but a lost server, or one of
    ``also``) in what it yields. A lost server (``TransportError``) and ``Stop`` go on
    up: nothing more is sent then, in any database."""
    outcome = Refusal()
    refused: tuple[type[Exception], ...] = (CouchError, *also)
    try:
        yield outcome
    except TransportError:
        raise
    except refused as exc:
        outcome.error = exc
