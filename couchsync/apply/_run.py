"""``apply_plan``: databases applied ``parallel`` at a time (they do not depend on each
other), each in phase order (``couchsync.plan.phases``), its ownership record last.

One database's refusals do not stop the others (``ApplyError`` lists them all at the
end, and a re-run converges); a lost server or lock stops every one at its next
write (``ApplyInterrupted``). On a cluster writes go with ``w`` = the database's
``n``; a ``202`` (fewer copies) is counted and reported as a warning.
"""

from __future__ import annotations

from collections.abc import Callable

from couchsync._names import CONFIG
from couchsync._parallel import DEFAULT_PARALLEL, DatabaseProgress, ordered_map
from couchsync._words import counted
from couchsync.apply._attachments import note_ahead, record_attachments
from couchsync.apply._documents import write_documents
from couchsync.apply._migrations import run_migrations
from couchsync.apply._record import write_ahead_creates, write_final_record
from couchsync.apply._result import ApplyError, ApplyInterrupted, ApplyResult, Stop
from couchsync.apply._rollout import roll_out
from couchsync.apply._state import BuildProgress, Progress, Run, Target
from couchsync.apply._steps import apply_config, clean_up_indexes, run_steps
from couchsync.client import Client, TransportError
from couchsync.manifest.model import DesiredState
from couchsync.plan import Action, ManagedDoc, Plan, PlanError, Step, StepKind
from couchsync.plan.phases import DESIGN, DOCS, MIGRATE, STAGED, run_order, validates
from couchsync.plan.phases import phases as step_phases
from couchsync.read import LimitsReader


def apply_plan(
    client: Client,
    plan: Plan,
    desired: DesiredState,
    *,
    batch_size: int = 1000,
    on_progress: Progress | None = None,
    check_lock: Callable[[], None] | None = None,
    parallel: int = DEFAULT_PARALLEL,
    on_database: DatabaseProgress | None = None,
    wait_timeout: float | None = None,
    on_build: BuildProgress | None = None,
    on_documents: DatabaseProgress | None = None,
) -> ApplyResult:
    """Run ``plan`` (made from ``desired``) against the server behind ``client``.

    ``on_progress(done, total)`` is called as steps complete, ``on_database(done,
    total, failed)`` as databases do, ``on_build`` as staged builds go on (each waited
    for at most ``wait_timeout`` s), ``on_documents(done, total, failed)`` as data
    migrations read documents. ``check_lock`` raises before a write when the
    lock is lost (``LockSet.check``). Raises ``ApplyError`` (every step's outcome) if
    a step failed; ``ApplyInterrupted`` when the server was lost, the lock taken or
    the caller interrupted: nothing more is written then, in any database.
    """
    _check_desired_covers(plan, desired)
    run = Run(client, desired, len(plan.steps), batch_size, LimitsReader(client), on_progress,
              check_lock, wait_timeout, on_build, on_documents,
              documents_total=sum((step.after or {}).get("matched", 0) for step in plan.steps
                                  if step.kind is StepKind.MIGRATION))
    steps: dict[str, list[Step]] = {}
    for step in plan.steps:
        steps.setdefault(step.database, []).append(step)
    names = plan.databases()

    def apply_one(name: str) -> bool:
        return _apply_database(Target(run, name, plan.copies.get(name)), steps.get(name, []),
                               plan.confirm.get(name, {}), plan.forget.get(name, set()))

    try:
        done = failed = 0
        if CONFIG in steps:  # node settings first: the rest may depend on them
            done, failed = 1, int(not apply_config(run, steps[CONFIG]))
        for group in run_order([name for name in names if name != CONFIG]):
            for ok in ordered_map(apply_one, group, parallel, on_interrupt=run.interrupt):
                done, failed = done + 1, failed + (not ok)
                if on_database is not None:
                    on_database(done, len(names), failed)
    except (TransportError, Stop) as exc:
        cause = run.stopped or exc  # the first database to stop, not one stopped after it
        lost = isinstance(cause, TransportError)
        raise ApplyInterrupted(f"lost the server: {cause}" if lost else str(cause), run.result,
                               len(plan.steps), server_lost=lost) from None
    finally:
        run.result.warnings += [warning for _, warning in sorted(run.partial)]
    if run.result.failures:
        raise ApplyError(run.result.results, run.result)
    return run.result


def _check_desired_covers(plan: Plan, desired: DesiredState) -> None:
    """Refuse, before writing anything, a plan whose documents ``desired`` does not hold
    (the ownership record stores the manifest hash of each written document)."""
    strays = [
        step.address for step in plan.steps
        if step.kind is StepKind.DOCUMENT and step.action is not Action.DELETE
        and (step.database not in desired.databases
             or step.id not in desired.databases[step.database].documents)
    ]
    if strays:
        raise PlanError(f"the plan writes documents the desired state lacks: {strays[:5]}")


def _apply_database(target: Target, steps: list[Step], confirm: dict[str, ManagedDoc],
                    forget: set[str]) -> bool:
    """One database's steps in phase order, then its ownership record; False when some
    step failed."""
    # Design docs go with the documents, in the same requests, unless a
    # validate_doc_update is set or dropped: it must be in force (or gone) first.
    validating = any(step.kind is StepKind.DESIGN_DOC
                     and validates(step.kind, step.action, step.before, step.after)
                     for step in steps)
    phases: dict[int, list[Step]] = {}
    for step in steps:
        staged = step.rebuild is not None and step.rebuild["staged"]
        for phase in step_phases(step.kind, step.action, staged, validating):
            phases.setdefault(phase, []).append(step)
    try:
        for phase in sorted(phases):
            _phase(target, phase, phases[phase])
        record_attachments(target)
        write_final_record(target, confirm, forget)
        clean_up_indexes(target)
    except (TransportError, Stop) as exc:
        if target.run.stopped is None:
            target.run.stopped = exc
        raise
    finally:
        if target.partial:
            target.run.partial.append((target.name, (
                f"db:{target.name}: {counted(target.partial, 'write request')} stored on "
                f"fewer than all {target.w or 'its'} copies (202 Accepted: is a node down?). "
                "They reach the other copies when it is back; until then a plan may not "
                "see them.")))
    return not target.failed


def _phase(target: Target, phase: int, steps: list[Step]) -> None:
    if phase == DOCS and (refused := target.refused_design):
        # Design docs go first only to put a validate_doc_update in force: one
        # refused leaves the documents unchecked, so none is written.
        target.fail(steps, f"not written: {refused.step.id} was refused ({refused.error}), "
                           "and the design docs must be in force before the documents")
    elif target.blocked:
        target.fail(steps, "skipped: the database was not created")
    elif phase == STAGED:
        roll_out(target, steps)
    elif phase == MIGRATE:
        run_migrations(target, steps)
    elif phase in (DESIGN, DOCS):
        if ((phase == DESIGN or write_ahead_creates(target, steps))
                and note_ahead(target, steps)):
            write_documents(target, steps)
    else:
        run_steps(target, phase, steps)
