"""Attachments apply sends from files: large ones streamed by a PUT of their own after
their document is written (revisions chained), and the ledger (``ATTACHMENTS_DDOC``)
that lets the next plan compare them unread: written ahead (the names about to be sent,
as couchsync's), then with the digests the server gave them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import CONFLICT_ROUNDS, Target
from couchsync.client import Conflict, Database, FileChunks, NotFound
from couchsync.plan import ATTACHMENTS_DDOC, Step, sent_files
from couchsync.read import follow_up_body, follow_ups, inline_names, read_bodies, streamed


def stream_attachments(db: Database, result: StepResult, w: int | None) -> StepResult:
    """Send the attachments a written document's first write left out: the small ones
    in follow-up writes of the document (``follow_ups``), then each large one streamed
    by a ``PUT``, each at the revision the one before gave; the result holds the last
    revision, or fails naming the attachment."""
    step, rev = result.step, result.rev
    groups, large = follow_ups(step), streamed(step)
    if rev is None or not (groups or large):  # a delete, or all sent by the write itself
        return result
    doc_id = step.id or ""
    sent = set(inline_names(step))
    for group in groups:
        with refusal() as refused:
            rev = db.update(doc_id, follow_up_body(step, sent, group), rev, w=w)[1]
        if refused:
            return StepResult(step, False, error=f"attachment {group[0]!r}: {refused.reason}")
        sent.update(group)
    for name, att in large:
        with refusal() as refused:
            rev = db.put_attachment(doc_id, name, FileChunks(att["file"]), rev=rev,
                                    content_type=att["content_type"], length=att["length"],
                                    w=w)
        if refused:
            return StepResult(step, False, error=f"attachment {name!r} ({att['file']}): "
                                                 f"{refused.reason}")
    return StepResult(step, True, rev=rev)


def note_ahead(target: Target, steps: Iterable[Step]) -> bool:
    """Write into the ledger, before sending them, the attachments ``steps`` send: a
    crash after the write leaves them known as couchsync's. False (every step failed)
    when the ledger cannot be written."""
    steps = list(steps)
    ahead = {step.id or "": dict.fromkeys(sent_files(step), "") for step in steps}
    ahead = {doc_id: names for doc_id, names in ahead.items() if names}
    if not ahead:
        return True
    target.run.guard()
    with refusal() as refused:
        _merge_ledger(target.db, lambda written: [
            written.setdefault(doc_id, {}).setdefault(name, ["", ""])
            for doc_id, names in ahead.items() for name in names], target.w)
    if refused:
        target.fail(steps, f"the attachment ledger could not be written ahead: {refused.reason}")
    return not refused


def record_attachments(target: Target) -> None:
    """Fold into the ledger what this apply sent (each stub's digest as the server now
    gives it, and the file's) and removed."""
    if not target.attached:
        return
    target.run.guard()
    bodies = read_bodies(target.db, list(target.attached))

    def learn(written: dict[str, dict[str, list[str]]]) -> None:
        for doc_id, (sent, removed) in target.attached.items():
            entry = written.setdefault(doc_id, {})
            stubs = (bodies.get(doc_id) or {}).get("_attachments") or {}
            for name in removed:
                entry.pop(name, None)
            for name, file_digest in sent.items():
                if name in stubs:
                    entry[name] = [stubs[name]["digest"], file_digest]
            if not entry:
                del written[doc_id]

    with refusal() as refused:
        _merge_ledger(target.db, learn, target.w)
    if refused:
        target.run.warn(f"db:{target.name}: the attachment ledger was not updated "
                        f"({refused.reason}); the next plan reads the attachments it cannot "
                        "tell by their digests")


def _merge_ledger(db: Database, change: Any, w: int | None) -> None:
    """Read the ledger, ``change(written)`` it in place, write it; a conflict reads again."""
    for attempt in range(CONFLICT_ROUNDS + 1):
        try:
            current = db.get(ATTACHMENTS_DDOC)
        except NotFound:
            current = {}
        written = current.get("written") or {}
        change(written)
        body = {"written": written}
        try:
            db.update(ATTACHMENTS_DDOC, body, current.get("_rev", ""), w=w)
            return
        except Conflict:
            if attempt == CONFLICT_ROUNDS:
                raise
