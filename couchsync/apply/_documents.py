"""Documents and design docs in ``_bulk_docs`` batches, every answer checked. A conflict
(changed since the plan) is re-read, re-diffed with the planner's own comparison and
written again while still needed; other refusals fail their step only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain

from couchsync.apply._attachments import stream_attachments
from couchsync.apply._record import learn, write_ahead_retried
from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import CONFLICT_ROUNDS, Target
from couchsync.client import BulkResults, CouchError, Database, TransportError
from couchsync.manifest.model import DEFAULT_RULE, SeedRule
from couchsync.plan import (
    Action,
    LiveDoc,
    Step,
    StepKind,
    batched_within,
    content_step,
    dropped,
)
from couchsync.read import BATCH_BYTES, BULK_ENVELOPE, bulk_body, encoded, read_bodies

#: Errors that mean "read it again and retry": ``conflict``, and on a cluster
#: ``missing_stub``: a copy not yet given the revision whose attachments an update keeps
#: refuses the stubs (the whole request, 412, though other copies stored it) for moments.
_RETRIED = ("conflict", "missing_stub")
_LAG_PAUSE = 0.2  # seconds, times the round, before retrying after a missing_stub


def write_documents(target: Target, steps: list[Step]) -> None:
    """Write ``steps`` in batches bounded by count and by bytes (over the server's
    request size a whole batch is refused), one batch in flight ahead: while the
    server writes it, this thread checks the answers to the one before. The sender is
    one thread, so the server still gets the batches one at a time, in order."""
    db, w, rule = target.db, target.w, target.run.desired.databases[target.name].rule
    batches = batched_within(((step, encoded(step)) for step in steps),
                             target.run.batch_size,
                             min(target.run.limits().request, BATCH_BYTES) - BULK_ENVELOPE,
                             lambda item: len(item[1]) + 1)  # each body and its comma
    lost: list[TransportError] = []  # set by the sender: the server was lost

    def send(bodies: list[bytes]) -> BulkResults:
        # The next batch is queued before this one's answer is read, and cancel() is
        # too late once the sender has it: after a lost server it must not go out.
        if lost:
            raise lost[0]
        try:
            return db.bulk_docs(bodies, w=w)
        except TransportError as exc:
            lost.append(exc)
            raise

    with ThreadPoolExecutor(1, thread_name_prefix="couchsync-bulk-docs") as sender:
        in_flight: tuple[Sequence[Step], Future[BulkResults]] | None = None
        for batch in chain(batches, [None]):
            if batch is not None:
                target.run.guard()
            sent = None if batch is None else (
                [step for step, _ in batch], sender.submit(send, [body for _, body in batch]))
            try:
                if in_flight is not None:
                    for result in write_batch(
                            db, in_flight[0], in_flight[1].result, w=w, rule=rule,
                            on_partial=target.count_partial,
                            before_create=lambda ids: write_ahead_retried(target, ids)):
                        target.finish(result)
                        if result.ok and result.step.kind is StepKind.DOCUMENT:
                            learn(target, result)
            except BaseException:
                if sent is not None:
                    sent[1].cancel()
                raise
            in_flight = sent


def write_batch(db: Database, batch: Sequence[Step],
                sent: Callable[[], BulkResults] | None = None, *, w: int | None = None,
                rule: Callable[[str], SeedRule] = lambda doc_id: DEFAULT_RULE,
                on_partial: Callable[[], None] | None = None,
                before_create: Callable[[list[str]], None] | None = None) -> list[StepResult]:
    """Write one batch (``sent``: already sent, this gives the answers), conflicts re-read,
    re-diffed by each document's seed ``rule`` and retried; one result per step.
    ``on_partial`` is told each ``202``; ``before_create`` the ids a retry creates (an
    update whose document was deleted meanwhile), before they are sent."""
    results: dict[str, StepResult] = {}
    origin = {step.id or "": step for step in batch}  # results name the plan's step
    pending: list[Step] = list(batch)
    for round_ in range(CONFLICT_ROUNDS + 1):
        with refusal() as refused:
            answers = (sent() if round_ == 0 and sent is not None
                       else db.bulk_docs([bulk_body(step) for step in pending], w=w))
        if refused:
            exc = refused.error
            if not (isinstance(exc, CouchError) and exc.error == "missing_stub"):
                for step in pending:
                    results[step.id or ""] = StepResult(origin[step.id or ""], False,
                                                        error=refused.reason)
                break
            # A whole request refused for one document's stubs (412): each is re-read
            # and retried, as if each had been refused so.
            answers = BulkResults({"id": step.id, "error": exc.error, "reason": exc.reason}
                                  for step in pending)
        if answers.accepted and on_partial is not None:
            on_partial()
        # Matched by id, not position: PouchDB Server lists rejected items first.
        by_id = {answer.get("id"): answer for answer in answers}
        conflicted = []
        lagging = False
        for step in pending:
            doc_id = step.id or ""
            answer = by_id.get(doc_id, {"error": "unknown", "reason": "no result for this id"})
            if "error" not in answer:
                rev = None if step.action is Action.DELETE else answer["rev"]
                results[doc_id] = StepResult(_as_written(origin[doc_id], step), True, rev=rev)
            elif answer["error"] in _RETRIED and round_ < CONFLICT_ROUNDS:
                conflicted.append(step)
                lagging = lagging or answer["error"] == "missing_stub"
            else:
                reason = f"{answer['error']}: {answer.get('reason', '')}"
                if answer["error"] in _RETRIED:
                    still = "changing" if answer["error"] == "conflict" else "so"
                    reason += f" (still {still} after {CONFLICT_ROUNDS} retries)"
                results[doc_id] = StepResult(origin[doc_id], False, error=reason)
        pending = []
        if lagging:  # give the lagging copy a moment to catch up
            time.sleep(_LAG_PAUSE * (round_ + 1))
        for step, redo, live_rev in _rediff(db, conflicted, rule):
            if redo is None:  # the server already holds what the step wanted
                rev = None if step.action is Action.DELETE else live_rev
                results[step.id or ""] = StepResult(origin[step.id or ""], True, rev=rev)
            else:
                pending.append(redo)
        created = [step.id or "" for step in pending if step.action is Action.CREATE
                   and step.kind is StepKind.DOCUMENT and origin[step.id or ""].action
                   is not Action.CREATE]
        if created and before_create is not None:
            before_create(created)
        if not pending:
            break
    # The large attachments of each document written, streamed from their files.
    return [stream_attachments(db, results[step.id or ""], w) if results[step.id or ""].ok
            else results[step.id or ""] for step in batch]


def _as_written(planned: Step, written: Step) -> Step:
    """The plan's step, unless a retry turned it into another action (update → create)."""
    if planned.action is written.action:
        return planned
    return Step(written.action, planned.kind, planned.database, planned.id, written.before,
                written.after, written.rev, planned.reason)


def _rediff(
    db: Database, steps: Iterable[Step], rule: Callable[[str], SeedRule]
) -> list[tuple[Step, Step | None, str | None]]:
    """Each conflicted step, what it still needs now (``None``: nothing), and the live rev:
    a create_only document created meanwhile needs nothing; an update keeps the ignored
    fields as the server now has them."""
    steps = list(steps)
    if not steps:
        return []
    current = read_bodies(db, [step.id or "" for step in steps])
    redone: list[tuple[Step, Step | None, str | None]] = []
    for step in steps:
        body = current.get(step.id or "")
        live = None if body is None else LiveDoc(body["_rev"], body)
        kept = rule(step.id or "") if step.kind is StepKind.DOCUMENT else DEFAULT_RULE
        if step.action is Action.DELETE:
            again = None if live is None else Step(
                Action.DELETE, step.kind, step.database, step.id, rev=live.rev)
        elif kept.create_only and live is not None:
            again = None
        else:
            again = content_step(step.kind, step.database, step.id or "", step.after, live,
                                 step.reason, ignore=kept.ignore, owned=dropped(step))
        redone.append((step, again, None if live is None else live.rev))
    return redone
