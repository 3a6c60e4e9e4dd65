"""The ownership record's writes: the ids a database's documents will create, written
ahead as pending entries before the first of them, so that a crash at any instant
orphans nothing; then, once its documents are written, the record merged."""

from __future__ import annotations

from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import CONFLICT_ROUNDS, Target
from couchsync.client import Conflict, Database
from couchsync.plan import (
    RECORD_ID,
    Action,
    ManagedDoc,
    PlanError,
    Record,
    Step,
    StepKind,
    expected_entry,
)
from couchsync.read import read_record, write_ahead, write_record


def write_ahead_creates(target: Target, steps: list[Step]) -> bool:
    """Record the ids about to be created as pending entries; False (every step failed)
    when the record cannot be written: documents written then could be orphaned."""
    creates = [step.id or "" for step in steps
               if step.action is Action.CREATE and step.kind is StepKind.DOCUMENT]
    if not creates:
        return True
    target.run.guard()
    with refusal(PlanError) as refused:
        _note_creating(target, creates)
    if refused:
        target.fail(steps, f"the ownership record could not be written ahead: {refused.error}")
    return not refused


def write_ahead_retried(target: Target, ids: list[str]) -> None:
    """Updates that became creates on a retry (their document was deleted meanwhile):
    written ahead too, before they are sent. Failing that, the final record still
    learns them; only a crash before it would lose them."""
    with refusal(PlanError):
        _note_creating(target, ids)


def _note_creating(target: Target, ids: list[str]) -> None:
    record = target.record or read_record(target.db)  # read once per apply
    if set(ids) - record.creating:
        target.record = write_ahead(target.db, record, ids, w=target.w)
    target.intended.update(ids)


def learn(target: Target, result: StepResult) -> None:
    """Remember what the ownership record must say about a written document."""
    step = result.step
    doc_id = step.id or ""
    if result.rev is None:  # deleted (or found already gone)
        target.removed.add(doc_id)
        return
    spec = target.run.desired.databases[target.name]
    target.written[doc_id] = expected_entry(
        spec, spec.documents[doc_id], result.rev, created=step.action is Action.CREATE)


def write_final_record(target: Target, confirm: dict[str, ManagedDoc],
                       forget: set[str]) -> None:
    """Fold what this apply wrote (and the plan's confirmed and forgotten entries) into
    the database's record."""
    written = {**confirm, **target.written}
    removed = target.removed | forget
    if not (written or removed or target.intended):
        return
    target.run.guard()
    with refusal() as refused:
        _merge_record(target.db, target.record, written, removed,
                      target.intended - written.keys(), w=target.w)
    if refused:
        step = Step(Action.UPDATE, StepKind.DOCUMENT, target.name, RECORD_ID,
                    reason="ownership record")
        target.finish(StepResult(step, False, error=refused.reason), count=False)
    else:
        with target.run.mutex:
            target.run.result.confirmed += len(confirm) + len(forget)


def _merge_record(db: Database, known: Record | None, written: dict[str, ManagedDoc],
                  removed: set[str], not_written: set[str], *, w: int | None = None) -> None:
    """Fold this apply's writes into the record, keeping the entries it did not touch.

    Ids written ahead become entries with what the write gave; those it failed to
    create (``not_written``) go; those of an interrupted apply stay pending (``rev``
    ""). ``known``: the record as written ahead (under the lock: not read again). A
    conflict, where the server checks ``_local`` revisions, makes it re-read and merge.
    """
    for attempt in range(CONFLICT_ROUNDS + 1):
        record = known if known is not None and attempt == 0 else read_record(db)
        managed = record.entries()  # ids written ahead as pending entries
        if managed is record.managed:
            managed = dict(managed)  # entries() copies only when there are such ids
        for doc_id in not_written & record.creating:  # never created: back as stored
            if doc_id in record.managed:
                managed[doc_id] = record.managed[doc_id]
            else:
                del managed[doc_id]
        for doc_id in removed:
            managed.pop(doc_id, None)
        for doc_id, entry in written.items():
            before = record.managed.get(doc_id)  # as stored: a pending id was not created
            if before is not None and before.created and not entry.created:
                entry = entry._replace(created=True)  # created by an earlier apply
            managed[doc_id] = entry  # the same tuple: a million entries are not copied
        try:
            write_record(db, record, managed, w=w)
            return
        except Conflict:
            if attempt == CONFLICT_ROUNDS:
                raise
