"""Apply: carry out a plan's steps on the server, in phases, with bulk writes.

Phases, across all databases: create databases, delete databases, security,
design docs, index deletes (``-`` and the first half of ``-/+``), index
creates, documents, and last the ownership record of every database whose
documents were written.

Documents and design docs go through ``_bulk_docs`` in batches, every item's
result checked. A conflict means the document changed since the plan was
made: it is re-read and re-diffed against the desired body with the
planner's own comparison, and written again while still needed (at most
``CONFLICT_ROUNDS`` more times). Any other failure is recorded and apply
carries on with what it can; at the end ``ApplyError`` lists every failure.
Re-running converges, since a new plan starts from what was done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from couchsync.client import (
    Client,
    Conflict,
    CouchError,
    Database,
    IndexQuery,
    NotFound,
    PreconditionFailed,
)
from couchsync.manifest.model import DesiredState
from couchsync.plan._batch import batched
from couchsync.plan._diff import content_step
from couchsync.plan._live import read_bodies
from couchsync.plan._model import FORMAT_VERSION, Action, Plan, PlanError, Step, StepKind
from couchsync.plan._ownership import RECORD_ID, read_record, write_record
from couchsync.plan._state import LiveDoc, ManagedDoc

__all__ = ["ApplyError", "ApplyResult", "StepResult", "apply_plan"]

#: How many times a document that conflicted is re-read and written again.
CONFLICT_ROUNDS = 3

Progress = Callable[[int, int], None]


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
        return {
            "address": self.address,
            "action": self.step.action.value,
            "kind": self.step.kind.value,
            "database": self.step.database,
            "id": self.step.id,
            "ok": self.ok,
            "rev": self.rev,
            "error": self.error,
        }


@dataclass(slots=True)
class ApplyResult:
    """Every step's outcome, in the order the steps ran."""

    results: list[StepResult] = field(default_factory=list)

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
        """``Apply complete: N created, M updated, K deleted.``"""
        done = self.counts()
        return (f"Apply complete: {done['create']} created, {done['update']} updated, "
                f"{done['delete']} deleted.")

    def to_json(self, plan: Plan) -> str:
        """The one JSON document ``apply --format json`` prints, indented::

            {"format_version": 1, "ok": bool, "plan": plan.to_dict(),
             "results": [StepResult.to_dict(), ...], "summary": counts()}

        ``plan`` is the plan that was applied; ``results`` hold every step run,
        failed ones with the server's reason in ``error``.
        """
        return json.dumps(
            {"format_version": FORMAT_VERSION,
             "ok": self.ok,
             "plan": plan.to_dict(),
             "results": [result.to_dict() for result in self.results],
             "summary": self.counts()},
            indent=2, sort_keys=True, ensure_ascii=False,
        )


class ApplyError(Exception):
    """Raised by apply_plan when some steps failed; the others were applied."""

    def __init__(self, results: list[StepResult]) -> None:
        self.results = results
        self.failures = [result for result in results if not result.ok]
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"apply failed for {len(self.failures)} of {len(self.results)} steps:"]
        lines += [f"  {failure.address}: {failure.error}" for failure in self.failures]
        return "\n".join(lines)


def apply_plan(
    client: Client,
    plan: Plan,
    desired: DesiredState,
    *,
    batch_size: int = 1000,
    on_progress: Progress | None = None,
) -> ApplyResult:
    """Run ``plan`` (made from ``desired``) against the server behind ``client``.

    ``on_progress(done, total)`` is called as steps complete. Raises
    ``ApplyError`` (with every step's outcome) if any step failed.
    """
    _check_desired_covers(plan, desired)
    run = _Run(client, desired, batch_size, len(plan.steps), on_progress)
    phases: dict[int, list[Step]] = {}
    for step in plan.steps:
        for phase in _phases(step):
            phases.setdefault(phase, []).append(step)
    for phase in sorted(phases):
        run.phase(phase, phases[phase])
    run.write_ownership_records()
    if run.result.failures:
        raise ApplyError(run.result.results)
    return run.result


def _check_desired_covers(plan: Plan, desired: DesiredState) -> None:
    """Refuse, before writing anything, a plan whose documents ``desired`` does not hold.

    The ownership record stores the manifest hash of each written document.
    """
    strays = [
        step.address for step in plan.steps
        if step.kind is StepKind.DOCUMENT and step.action is not Action.DELETE
        and (step.database not in desired.databases
             or step.id not in desired.databases[step.database].documents)
    ]
    if strays:
        raise PlanError(f"the plan writes documents the desired state lacks: {strays[:5]}")


# Phase numbers; a replace is in both index phases (its delete half, then its create half).
_CREATE_DB, _DELETE_DB, _SECURITY, _DESIGN, _INDEX_DELETE, _INDEX_CREATE, _DOCS = range(7)


def _phases(step: Step) -> tuple[int, ...]:
    if step.kind is StepKind.DATABASE:
        return (_CREATE_DB,) if step.action is Action.CREATE else (_DELETE_DB,)
    if step.kind is StepKind.INDEX:
        return {Action.CREATE: (_INDEX_CREATE,), Action.DELETE: (_INDEX_DELETE,),
                Action.REPLACE: (_INDEX_DELETE, _INDEX_CREATE)}[step.action]
    return ({StepKind.SECURITY: _SECURITY, StepKind.DESIGN_DOC: _DESIGN}.get(step.kind, _DOCS),)


class _Run:
    """The state of one apply: results so far, progress, and what the record must learn."""

    def __init__(self, client: Client, desired: DesiredState, batch_size: int, total: int,
                 on_progress: Progress | None) -> None:
        self.client = client
        self.desired = desired
        self.batch_size = batch_size
        self.total = total
        self.on_progress = on_progress
        self.result = ApplyResult()
        self.blocked: set[str] = set()  # databases that could not be created
        self.replacing: set[str] = set()  # addresses of replaces whose delete half succeeded
        self.written: dict[str, dict[str, ManagedDoc]] = {}  # db → id → new record entry
        self.removed: dict[str, set[str]] = {}  # db → ids deleted

    def phase(self, phase: int, steps: list[Step]) -> None:
        if phase in (_DESIGN, _DOCS):
            for database, group in groupby(steps, key=lambda s: s.database):
                self.write_documents(database, list(group))
            return
        for step in steps:
            if step.action is not Action.REPLACE:
                self.run_one(step, phase)
            elif phase == _INDEX_DELETE:
                self.delete_half_of_replace(step)
            elif step.address in self.replacing:  # else its failure is already recorded
                self.run_one(step, phase)

    def finish(self, result: StepResult, count: bool = True) -> None:
        self.result.results.append(result)
        if count and self.on_progress is not None:
            self.on_progress(len(self.result.results), self.total)

    def run_one(self, step: Step, phase: int) -> None:
        if step.database in self.blocked:
            self.finish(StepResult(step, False, error="skipped: the database was not created"))
            return
        try:
            _SIMPLE[phase](self.client, step)
        except CouchError as exc:
            if phase == _CREATE_DB:
                self.blocked.add(step.database)
            self.finish(StepResult(step, False, error=_reason(exc)))
        else:
            self.finish(StepResult(step, True))

    def delete_half_of_replace(self, step: Step) -> None:
        """Delete the old index; its create half (and its result) come in the next phase."""
        try:
            _delete_index(self.client, step)
        except CouchError as exc:
            self.finish(StepResult(step, False, error=f"deleting the old index: {_reason(exc)}"))
        else:
            self.replacing.add(step.address)

    def write_documents(self, database: str, steps: list[Step]) -> None:
        if database in self.blocked:
            for step in steps:
                self.finish(StepResult(step, False, error="skipped: the database was not created"))
            return
        db = self.client.database(database)
        # One batch in flight ahead: while the server writes a batch, this thread
        # checks the answers to the one before and prepares the next. The sender is
        # one thread, so batches still reach the server one at a time, in order.
        with ThreadPoolExecutor(1, thread_name_prefix="couchsync-bulk-docs") as sender:
            in_flight: tuple[Sequence[Step], Future[list[dict[str, Any]]]] | None = None
            for batch in [*batched(steps, self.batch_size), None]:
                sent = None if batch is None else (
                    batch, sender.submit(db.bulk_docs, [_bulk_body(step) for step in batch]))
                if in_flight is not None:
                    self._finish_batch(database, db, *in_flight)
                in_flight = sent

    def _finish_batch(self, database: str, db: Database, batch: Sequence[Step],
                      answers: Future[list[dict[str, Any]]]) -> None:
        for result in _write_batch(db, batch, answers.result):
            self.finish(result)
            if result.ok and result.step.kind is StepKind.DOCUMENT:
                self.learn(database, result)

    def learn(self, database: str, result: StepResult) -> None:
        """Remember what the ownership record must say about a written document."""
        step = result.step
        doc_id = step.id or ""
        if result.rev is None:  # deleted (or found already gone)
            self.removed.setdefault(database, set()).add(doc_id)
            return
        spec = self.desired.databases[database].documents[doc_id]
        self.written.setdefault(database, {})[doc_id] = ManagedDoc(
            rev=result.rev, hash=spec.hash, created=step.action is Action.CREATE
        )

    def write_ownership_records(self) -> None:
        for database in dict.fromkeys([*self.written, *self.removed]):
            db = self.client.database(database)
            written, removed = self.written.get(database, {}), self.removed.get(database, set())
            try:
                _merge_record(db, written, removed)
            except CouchError as exc:
                step = Step(Action.UPDATE, StepKind.DOCUMENT, database, RECORD_ID,
                            reason="ownership record")
                self.finish(StepResult(step, False, error=_reason(exc)), count=False)


def _reason(exc: CouchError) -> str:
    """The server's ``error: reason`` when it gave one, else the whole message."""
    return f"{exc.error}: {exc.reason}" if exc.error and exc.reason else str(exc)


# -- one-request steps


def _create_database(client: Client, step: Step) -> None:
    with suppress(PreconditionFailed):  # created by someone else since: what the plan wanted
        client.create(step.database, **(step.after or {}))


def _delete_database(client: Client, step: Step) -> None:
    with suppress(NotFound):  # already gone
        client.delete(step.database)


def _set_security(client: Client, step: Step) -> None:
    client.database(step.database).set_security(step.after)


def _delete_index(client: Client, step: Step) -> None:
    with suppress(NotFound):  # already gone
        client.database(step.database).delete_index(step.before["ddoc"], step.id or "")


def _create_index(client: Client, step: Step) -> None:
    after = step.after
    client.database(step.database).set_index(IndexQuery(
        fields=after["fields"], name=step.id or "", type=after["type"], ddoc=after.get("ddoc"),
        partial_filter_selector=after.get("partial_filter_selector"),
    ))


_SIMPLE: dict[int, Callable[[Client, Step], None]] = {
    _CREATE_DB: _create_database,
    _DELETE_DB: _delete_database,
    _SECURITY: _set_security,
    _INDEX_DELETE: _delete_index,
    _INDEX_CREATE: _create_index,
}


# -- documents and design docs


def _bulk_body(step: Step) -> dict[str, Any] | bytes:
    if step.action is Action.DELETE:
        return {"_id": step.id, "_rev": step.rev, "_deleted": True}
    if step.spec is not None and not step.rev:  # a new document: its JSON as loaded
        return step.spec.json
    body = {**step.after, "_id": step.id}
    if step.rev:
        body["_rev"] = step.rev
    return body


def _write_batch(db: Database, batch: Sequence[Step],
                 sent: Callable[[], list[dict[str, Any]]] | None = None) -> list[StepResult]:
    """Write one batch; conflicts are re-read, re-diffed and retried. One result per step.

    ``sent``: the batch was already sent; this gives the server's answers.
    """
    results: dict[str, StepResult] = {}
    origin = {step.id or "": step for step in batch}  # results name the plan's step
    pending: list[Step] = list(batch)
    for round_ in range(CONFLICT_ROUNDS + 1):
        try:
            if round_ == 0 and sent is not None:
                answers = sent()
            else:
                answers = db.bulk_docs([_bulk_body(step) for step in pending])
        except CouchError as exc:
            for step in pending:
                results[step.id or ""] = StepResult(origin[step.id or ""], False,
                                                    error=_reason(exc))
            break
        # Matched by id, not position: PouchDB Server lists rejected items first.
        by_id = {answer.get("id"): answer for answer in answers}
        conflicted = []
        for step in pending:
            doc_id = step.id or ""
            answer = by_id.get(doc_id, {"error": "unknown", "reason": "no result for this id"})
            if "error" not in answer:
                rev = None if step.action is Action.DELETE else answer["rev"]
                results[doc_id] = StepResult(_as_written(origin[doc_id], step), True, rev=rev)
            elif answer["error"] == "conflict" and round_ < CONFLICT_ROUNDS:
                conflicted.append(step)
            else:
                reason = f"{answer['error']}: {answer.get('reason', '')}"
                if answer["error"] == "conflict":
                    reason += f" (still changing after {CONFLICT_ROUNDS} retries)"
                results[doc_id] = StepResult(origin[doc_id], False, error=reason)
        pending = []
        for step, redo, live_rev in _rediff(db, conflicted):
            if redo is None:  # the server already holds what the step wanted
                rev = None if step.action is Action.DELETE else live_rev
                results[step.id or ""] = StepResult(origin[step.id or ""], True, rev=rev)
            else:
                pending.append(redo)
        if not pending:
            break
    return [results[step.id or ""] for step in batch]


def _as_written(planned: Step, written: Step) -> Step:
    """The plan's step, unless a retry turned it into another action (update → create)."""
    if planned.action is written.action:
        return planned
    return Step(written.action, planned.kind, planned.database, planned.id, written.before,
                written.after, written.rev, planned.reason)


def _rediff(
    db: Database, steps: Iterable[Step]
) -> list[tuple[Step, Step | None, str | None]]:
    """Each conflicted step, what it still needs now (``None``: nothing), and the live rev."""
    steps = list(steps)
    if not steps:
        return []
    current = read_bodies(db, [step.id or "" for step in steps])
    redone: list[tuple[Step, Step | None, str | None]] = []
    for step in steps:
        body = current.get(step.id or "")
        live = None if body is None else LiveDoc(body["_rev"], body)
        if step.action is Action.DELETE:
            again = None if live is None else Step(
                Action.DELETE, step.kind, step.database, step.id, rev=live.rev)
        else:
            again = content_step(step.kind, step.database, step.id or "", step.after, live,
                                 step.reason)
        redone.append((step, again, None if live is None else live.rev))
    return redone


# -- the ownership record


def _merge_record(db: Database, written: dict[str, ManagedDoc], removed: set[str]) -> None:
    """Fold this apply's writes into the ownership record, keeping every other entry.

    Entries of documents this apply did not touch (other ``only`` selections,
    documents dropped from the manifests without ``prune``) stay as they are.
    A concurrent writer makes it re-read and merge again.
    """
    for attempt in range(CONFLICT_ROUNDS + 1):
        record = read_record(db)
        managed = dict(record.managed)
        for doc_id in removed:
            managed.pop(doc_id, None)
        for doc_id, entry in written.items():
            before = managed.get(doc_id)
            if before is not None and before.created and not entry.created:
                entry = entry._replace(created=True)  # created by an earlier apply
            managed[doc_id] = entry  # the same tuple: a million entries are not copied
        try:
            write_record(db, record, managed)
            return
        except Conflict:
            if attempt == CONFLICT_ROUNDS:
                raise
