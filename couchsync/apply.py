"""Apply: carry out a plan's steps on the server, in phases, with bulk writes.

Phases, per database: create the database (or delete it), security, design
docs (when one sets, changes or drops a ``validate_doc_update``; else they go
with the documents), index deletes (``-`` and the first half of ``-/+``), index
creates, documents, staged rollouts, and last its ownership record, if
documents were written. When the design docs go first and one is refused
(a reduce that does not compile), none of the database's documents is written:
they would go in without the ``validate_doc_update`` meant to check them.

A staged step (``Step.rebuild["staged"]``, from ``design_deploy: staged``) is a
design doc or Mango index whose new index is built under a staging id first,
then swapped in (``couchsync._rollout``); its phase comes after the documents,
so that the build covers them. The live design doc is written only once the
build is done everywhere: a timeout or an interruption leaves it as it was.
Databases do not depend on each other: several are applied at once
(``parallel``), and one database's failures do not stop the others.

Documents and design docs go through ``_bulk_docs`` in batches, every item's
result checked. A conflict means the document changed since the plan was
made: it is re-read and re-diffed against the desired body with the
planner's own comparison, and written again while still needed (at most
``CONFLICT_ROUNDS`` more times). Any other refusal is recorded and apply
carries on with what it can; at the end ``ApplyError`` lists every failure.
Re-running converges, since a new plan starts from what was done.

Losing the server (refused, reset, timeout, protocol error) is different: apply
stops at once with ``ApplyInterrupted``, which says what was done and what not.

Crashes lose nothing: before the first document of a database is written, the
ids it will create are written ahead into its ownership record (``write_ahead``),
so a process killed at any instant leaves no document that ``prune`` cannot
find later. The next plan confirms the pending entries whose documents hold
what the manifests say (``Plan.confirm``) and forgets those never created and
no longer wanted (``Plan.forget``).

On a cluster, every write goes with ``w`` = the database's ``n``: answered
``201``, it is on every shard copy, so a design doc's ``validate_doc_update``
is in force on every node before the documents after it, and a re-plan that
reads any copy sees it. A ``202 Accepted`` (fewer copies: a node is down) is
not an error, but it is counted and reported (``ApplyResult.warnings``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from couchsync import _rollout
from couchsync._canonical import canonical_json
from couchsync._names import CONFIG
from couchsync._parallel import DEFAULT_PARALLEL, DatabaseProgress, ordered_map
from couchsync._version import __version__
from couchsync._words import counted
from couchsync.client import (
    BulkResults,
    Client,
    Conflict,
    CouchError,
    Database,
    IndexQuery,
    NotFound,
    PreconditionFailed,
    TransportError,
)
from couchsync.errors import CouchsyncError
from couchsync.manifest.model import DEFAULT_RULE, DesiredState, IndexSpec, SeedRule, SourcePos
from couchsync.plan import (
    FORMAT_VERSION,
    RECORD_ID,
    RECORD_KEY,
    RECORD_SECTION,
    Action,
    LiveDoc,
    ManagedDoc,
    Plan,
    PlanError,
    Record,
    Step,
    StepKind,
    batched_within,
    config_entries,
    content_step,
    expected_entry,
    index_differences,
    record_value,
    staging_id,
)
from couchsync.plan.phases import (
    CREATE_DB,
    DELETE_DB,
    DESIGN,
    DOCS,
    INDEX_CREATE,
    INDEX_DELETE,
    SECURITY,
    STAGED,
    run_order,
    validates,
)
from couchsync.plan.phases import phases as step_phases
from couchsync.read import (
    BULK_ENVELOPE,
    LimitsReader,
    bulk_body,
    encoded,
    read_bodies,
    read_indexes,
    read_record,
    write_ahead,
    write_record,
)

__all__ = ["ApplyError", "ApplyInterrupted", "ApplyResult", "StepResult", "apply_plan"]

#: A staged rollout's warning when the swapped-in design doc did not reuse the build.
NOT_REUSED = "the live design doc's index is not the one built under"
#: How many times a document that conflicted is re-read and written again.
CONFLICT_ROUNDS = 3
#: Steps failed with one error from which ApplyError's text gives them one line.
GROUPED_FROM = 4
#: Failures the text of ApplyError lists one by one; JSON output lists all.
SHOWN_FAILURES = 20
#: How long apply waits for a new index (any CouchDB) or _security (clusters) to show.
VISIBLE_SECONDS = 30.0

Progress = Callable[[int, int], None]
#: ``on_build(address, done, total)``: a staged build's changes indexed so far.
BuildProgress = Callable[[str, int, int], None]


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
    #: What did not fail but is not plain success either (writes answered 202).
    warnings: list[str] = field(default_factory=list)
    #: Ownership-record entries confirmed or forgotten (``Plan.confirm``, ``Plan.forget``).
    confirmed: int = 0
    #: One line per staged rollout done: what was built, for how long.
    staged: list[str] = field(default_factory=list)

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
        return (f"Apply complete: {done['create']:,} created, {done['update']:,} updated, "
                f"{done['delete']:,} deleted.")

    def to_json(self, plan: Plan) -> str:
        """The one JSON document ``apply --format json`` prints, indented::

            {"format_version": 1, "couchsync_version": str, "ok": bool,
             "plan": plan.to_dict(),
             "results": [StepResult.to_dict(), ...], "summary": counts(),
             "warnings": [str, ...], "confirmed": int, "staged": [str, ...]}

        ``plan`` is the plan that was applied; ``results`` hold every step run,
        failed ones with the server's reason in ``error``; ``warnings`` what was
        not plain success (writes answered 202); ``confirmed`` the ownership-record
        entries left pending by an interrupted apply and now confirmed; ``staged``
        one line per staged rollout done.
        """
        return json.dumps(
            {"format_version": FORMAT_VERSION,
             "couchsync_version": __version__,
             "ok": self.ok,
             "plan": plan.to_dict(),
             "results": [result.to_dict() for result in self.results],
             "summary": self.counts(),
             "warnings": self.warnings,
             "confirmed": self.confirmed,
             "staged": self.staged},
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
    """Apply stopped before the end: the server was lost, or the apply lock was taken.

    Its text is a few lines: why, what was done and what not (counts), how to go on.
    """

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
        counts = self.result.counts()
        failed = len(self.result.failures)
        return "\n".join([
            f"apply stopped: {self.cause}",
            f"Done before it: {len(self.results) - failed:,} of {counted(self.total, 'step')} "
            f"({counts['create']:,} created, {counts['update']:,} updated, "
            f"{counts['delete']:,} deleted)" + (f", {failed:,} refused" if failed else "")
            + f"; not done: {self.total - len(self.results):,}.",
            "Nothing is orphaned: the ownership records list every document this apply "
            "set out to create.",
            "Run the same apply again" + (" once the server is back" if self.server_lost
                                          else "") + " to finish.",
            *self.notes,
        ])


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
) -> ApplyResult:
    """Run ``plan`` (made from ``desired``) against the server behind ``client``.

    Databases are applied ``parallel`` at a time, each by itself in phase order
    (databases do not depend on each other); one database's failures do not stop
    the others. ``on_progress(done, total)`` is called as steps complete,
    ``on_database(done, total, failed)`` as databases do. ``check_lock`` is
    called before each write and raises when this apply no longer holds its
    lock (``LockSet.check``). Raises ``ApplyError`` (with every step's outcome)
    if any step failed, ``ApplyInterrupted`` when the server was lost or the
    lock taken (nothing more is written then, in any database).

    Staged builds are waited for at most ``wait_timeout`` seconds each (None: as
    long as they take), their progress told to ``on_build``. Interrupted
    (``KeyboardInterrupt``), every database stops at its next write or poll.
    """
    _check_desired_covers(plan, desired)
    run = _Run(client, desired, batch_size, len(plan.steps), on_progress, check_lock)
    run.wait_timeout, run.on_build = wait_timeout, on_build
    run.copies.update({name: n if n > 1 else None for name, n in plan.copies.items()})
    steps: dict[str, list[Step]] = {}
    for step in plan.steps:
        steps.setdefault(step.database, []).append(step)
    names = plan.databases()

    def apply_one(database: str) -> bool:
        return run.database(database, steps.get(database, []), plan.confirm.get(database, {}),
                            plan.forget.get(database, set()))

    try:
        done = failed = 0
        if CONFIG in steps:  # node settings first: the rest may depend on them
            done, failed = 1, int(not run.config(steps[CONFIG]))
        for group in run_order([name for name in names if name != CONFIG]):
            for ok in ordered_map(apply_one, group, parallel, on_interrupt=run.interrupt):
                done, failed = done + 1, failed + (not ok)
                if on_database is not None:
                    on_database(done, len(names), failed)
    except (TransportError, _Stop) as exc:
        cause = run.stopped or exc  # the first database to stop, not one stopped after it
        if isinstance(cause, TransportError):
            raise ApplyInterrupted(f"lost the server: {cause}", run.result, len(plan.steps),
                                   server_lost=True) from None
        raise ApplyInterrupted(str(cause), run.result, len(plan.steps)) from None
    finally:
        run.report_partial_writes()
    if run.result.failures:
        raise ApplyError(run.result.results, run.result)
    return run.result


class _Stop(Exception):
    """The lock check failed: raised through the phases, turned into ApplyInterrupted."""


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


class _Run:
    """The state of one apply: results so far, progress, and what the record must learn."""

    def __init__(self, client: Client, desired: DesiredState, batch_size: int, total: int,
                 on_progress: Progress | None, check_lock: Callable[[], None] | None) -> None:
        self.client = client
        self.desired = desired
        self.batch_size = batch_size
        self.limits = LimitsReader(client)  # batches stay within the server's request size
        self.total = total
        self.on_progress = on_progress
        self.check_lock = check_lock
        self.result = ApplyResult()
        self.blocked: set[str] = set()  # databases that could not be created
        #: db → the first design doc refused before its documents (see ``phase``)
        self.refused_design: dict[str, StepResult] = {}
        self.replacing: set[str] = set()  # addresses of replaces whose delete half succeeded
        self.written: dict[str, dict[str, ManagedDoc]] = {}  # db → id → new record entry
        self.removed: dict[str, set[str]] = {}  # db → ids deleted
        self.intended: dict[str, set[str]] = {}  # db → ids written ahead as pending
        self.records: dict[str, Record] = {}  # db → its record as this apply last wrote it
        self.copies: dict[str, int | None] = {}  # db → n (shard copies), None off a cluster
        self.partial: dict[str, int] = {}  # db → writes answered 202
        self.failed: dict[str, int] = {}  # db → steps failed
        #: db → phase → what its reads must show before going on (wait_until_visible)
        self.visible: dict[str, dict[int, Any]] = {}
        #: Why a database's work stopped (the server lost, the lock taken): every other
        #: database stops at its next write.
        self.stopped: TransportError | _Stop | None = None
        self.wait_timeout: float | None = None
        self.on_build: BuildProgress | None = None
        self.rebuilt: set[str] = set()  # databases whose old index files to clean up

    def interrupt(self) -> None:
        """The caller was interrupted: every database stops at its next write or poll."""
        if self.stopped is None:
            self.stopped = _Stop("interrupted")

    def guard(self) -> None:
        """Before each write: stop if the lock was taken from this apply, or another
        database's work stopped."""
        if self.stopped is not None:
            raise _Stop(f"stopped with another database: {self.stopped}")
        if self.check_lock is not None:
            try:
                self.check_lock()
            except Exception as exc:
                raise _Stop(str(exc)) from exc

    def database(self, database: str, steps: list[Step], confirm: dict[str, ManagedDoc],
                 forget: set[str]) -> bool:
        """Apply one database's steps in phase order, then its ownership record; False
        when some step failed."""
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
        before = self.failed.get(database, 0)
        try:
            for phase in sorted(phases):
                self.phase(phase, phases[phase])
            self.write_ownership_record(database, confirm, forget)
            self.clean_up_indexes(database)
        except (TransportError, _Stop) as exc:
            if self.stopped is None:
                self.stopped = exc
            raise
        return self.failed.get(database, 0) == before

    def config(self, steps: list[Step]) -> bool:
        """Config steps, node by node: each node that differs gets the key recorded
        (``couchsync/managed``) ahead of its value, or deleted then unrecorded. False
        when some step failed."""
        server = self.client.server
        records: dict[str, set[str]] = {}

        def record(node: str, entry: str, add: bool) -> None:
            if node not in records:
                records[node] = set(config_entries(server.config_section(
                    node, RECORD_SECTION).get(RECORD_KEY)))
            if (entry in records[node]) != add:
                records[node] ^= {entry}
                self.guard()
                server.set_config(node, RECORD_SECTION, RECORD_KEY,
                                  record_value(records[node]))

        ok = True
        for step in steps:
            section, key = (step.id or "").split("/", 1)
            before, after = step.before or {}, step.after or {}
            try:
                for node in sorted({*before, *after}):
                    if after.get(node) == before.get(node):
                        continue
                    if node in after:
                        record(node, step.id or "", add=True)
                        self.guard()
                        server.set_config(node, section, key, after[node])
                    else:
                        self.guard()
                        server.delete_config(node, section, key)
                        record(node, step.id or "", add=False)
            except TransportError:
                raise
            except CouchError as exc:
                ok = False
                self.finish(StepResult(step, False, error=exc.brief))
            else:
                self.finish(StepResult(step, True))
        return ok

    def w(self, database: str) -> int | None:
        """The ``w`` for writes to ``database``: its ``n`` on a cluster (every copy)."""
        if database not in self.copies:
            try:
                cluster = self.client.database(database).info().get("cluster") or {}
            except NotFound:
                cluster = {}
            self.copies[database] = cluster.get("n") if cluster.get("n", 1) > 1 else None
        return self.copies[database]

    def phase(self, phase: int, steps: list[Step]) -> None:
        """One phase of one database."""
        if phase == STAGED:
            self.roll_out(steps[0].database, steps)
            return
        if phase == DOCS and (refused := self.refused_design.get(steps[0].database)):
            # Design docs go first only to put a validate_doc_update in force: one
            # refused leaves the documents unchecked, so none is written.
            error = (f"not written: {refused.step.id} was refused ({refused.error}), and "
                     "the design docs must be in force before the documents")
            for step in steps:
                self.finish(StepResult(step, False, error=error))
            return
        if phase in (DESIGN, DOCS):
            self.write_documents(steps[0].database, steps, ahead=phase == DOCS)
            return
        for step in steps:
            if step.action is not Action.REPLACE:
                self.run_one(step, phase)
            elif phase == INDEX_DELETE:
                self.delete_half_of_replace(step)
            elif step.address in self.replacing:  # else its failure is already recorded
                self.run_one(step, phase)
        self.wait_until_visible(steps[0].database, phase)

    def finish(self, result: StepResult, count: bool = True) -> None:
        if not result.ok:
            database = result.step.database
            self.failed[database] = self.failed.get(database, 0) + 1
            if result.step.kind is StepKind.DESIGN_DOC:
                self.refused_design.setdefault(database, result)
        elif result.step.rebuild is not None:
            self.rebuilt.add(result.step.database)
        self.result.results.append(result)
        if count and self.on_progress is not None:
            self.on_progress(len(self.result.results), self.total)

    def run_one(self, step: Step, phase: int) -> None:
        if step.database in self.blocked:
            self.finish(StepResult(step, False, error="skipped: the database was not created"))
            return
        self.guard()
        try:
            w = None if phase in (CREATE_DB, DELETE_DB) else self.w(step.database)
            _SIMPLE[phase](self.client, step, w)
        except TransportError:
            raise
        except CouchError as exc:
            if phase == CREATE_DB:
                self.blocked.add(step.database)
            self.finish(StepResult(step, False, error=exc.brief))
        else:
            visible = self.visible.setdefault(step.database, {})
            if phase == INDEX_CREATE:
                visible.setdefault(phase, {})[step.id or ""] = step.after
            elif phase == SECURITY:
                visible[phase] = step.after
            self.finish(StepResult(step, True))

    def roll_out(self, database: str, steps: list[Step]) -> None:
        """Staged steps: every staging copy written first (their indexes build side by
        side), then each waited for and swapped in."""
        if database in self.blocked:
            for step in steps:
                self.finish(StepResult(step, False, error="skipped: the database was not created"))
            return
        db = self.client.database(database)
        staged = []
        for step in steps:
            self.guard()
            try:
                staged.append((step, _rollout.stage(db, step, staging_id(step),
                                                    w=self.w(database))))
            except TransportError:
                raise
            except CouchError as exc:
                self.finish(StepResult(step, False,
                                       error=f"writing its staging copy: {exc.brief}"))
        for step, copy in staged:
            started = time.monotonic()
            try:
                _rollout.wait_until_built(db, copy, timeout=self.wait_timeout,
                                          check=self.guard,
                                          on_progress=self.build_progress(step.address))
            except TransportError:
                raise
            except (CouchError, _rollout.BuildTimeout) as exc:
                brief = exc.brief if isinstance(exc, CouchError) else str(exc)
                self.finish(StepResult(step, False, error=brief))
                continue
            self.guard()
            if self.swap(db, step, copy.ids):
                self.result.staged.append(
                    f"{step.address}: built under {staging_id(step)} in "
                    f"{time.monotonic() - started:.1f} s, then swapped in")
        self.wait_until_visible(database, INDEX_CREATE)

    def build_progress(self, address: str) -> _rollout.BuildProgress | None:
        on_build = self.on_build
        if on_build is None:
            return None
        return lambda done, total: on_build(address, done, total)

    def swap(self, db: Database, step: Step, staged_ids: Sequence[str]) -> bool:
        """Write the staged body to the live id, check the build was reused, and delete
        the staging copies (the first, which lists the others, last); False when the
        write failed."""
        w = self.w(db.name)
        if step.kind is StepKind.DESIGN_DOC:
            result = _write_batch(db, [step], w=w,
                                  on_partial=lambda: self.count_partial(db.name))[0]
            live_id = step.id or ""
        else:
            try:
                live_id = _create_index(self.client, step, w)
                if step.action is Action.REPLACE and f"_design/{step.before['ddoc']}" != live_id:
                    _delete_index(self.client, step, w)  # the old one, in another design doc
            except TransportError:
                raise
            except CouchError as exc:
                result = StepResult(step, False, error=exc.brief)
            else:
                result = StepResult(step, True)
                self.visible.setdefault(db.name, {}).setdefault(INDEX_CREATE, {})[
                    step.id or ""] = step.after
        self.finish(result)
        if not result.ok:
            return False
        if not _rollout.same_index(db, staging_id(step), live_id):
            self.result.warnings.append(
                f"{step.address}: {NOT_REUSED} {staging_id(step)}; queries of it wait for a "
                "rebuild")
        try:
            for doc_id in reversed(staged_ids):
                db.delete(doc_id, w=w)
        except TransportError:
            raise
        except CouchError as exc:  # the next plan deletes it
            self.result.warnings.append(
                f"{step.address}: its staging copy could not be deleted: {exc.brief}")
        return True

    def clean_up_indexes(self, database: str) -> None:
        """``_view_cleanup`` after indexes were rebuilt: the old index files stay on disk
        until then."""
        if database not in self.rebuilt:
            return
        self.rebuilt.discard(database)
        try:
            self.client.database(database).view_cleanup()
        except TransportError:
            raise
        except CouchError as exc:
            self.result.warnings.append(
                f"db:{database}: old index files not cleaned up (_view_cleanup: {exc.brief})")

    def delete_half_of_replace(self, step: Step) -> None:
        """Delete the old index; its create half (and its result) come in the next phase."""
        self.guard()
        try:
            _delete_index(self.client, step, self.w(step.database))
        except TransportError:
            raise
        except CouchError as exc:
            self.finish(StepResult(step, False, error=f"deleting the old index: {exc.brief}"))
        else:
            self.replacing.add(step.address)

    def wait_until_visible(self, database: str, phase: int) -> None:
        """Until the server shows what this phase wrote: the indexes listed as written,
        the ``_security`` read back as set. A cluster answers a ``_security`` read from
        one copy, which a write may not have reached yet; and every CouchDB, a single
        node too, answers ``_index`` from a cache of the design docs that it refreshes
        only after answering the write. A re-plan must not see the old state. A
        ``_security`` of one copy reads what was written: nothing to wait for."""
        expected = self.visible.get(database, {}).pop(phase, None)
        if expected is None or (phase == SECURITY and self.w(database) is None):
            return
        db = self.client.database(database)
        check = _VISIBLE[phase]
        deadline = time.monotonic() + VISIBLE_SECONDS
        while not _shown(check, db, expected):
            if time.monotonic() > deadline:
                self.result.warnings.append(
                    f"db:{database}: {_PHASE_NAMES[phase]} written but not yet shown by the "
                    f"server after {VISIBLE_SECONDS:.0f} s")
                break
            time.sleep(0.05)

    def write_documents(self, database: str, steps: list[Step], *, ahead: bool) -> None:
        if database in self.blocked:
            for step in steps:
                self.finish(StepResult(step, False, error="skipped: the database was not created"))
            return
        db = self.client.database(database)
        w = self.w(database)
        if ahead and not self.write_ahead(database, db, steps):
            return
        # One batch in flight ahead: while the server writes a batch, this thread
        # checks the answers to the one before and prepares the next. The sender is
        # one thread, so batches still reach the server one at a time, in order.
        # Batches are bounded by bytes too (each body and its comma): over the server's
        # request size, the whole batch would be refused.
        batches = batched_within(((step, encoded(step)) for step in steps), self.batch_size,
                                 self.limits().request - BULK_ENVELOPE,
                                 lambda item: len(item[1]) + 1)
        lost: list[TransportError] = []  # set by the sender: the server was lost

        def send(bodies: list[bytes]) -> BulkResults:
            # The next batch is queued before the answer to this one is read, and
            # cancel() comes too late once the sender has picked it up: after a lost
            # server it must not go out (apply stops, reporting all that was written).
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
                    self.guard()
                sent = None if batch is None else (
                    [step for step, _ in batch],
                    sender.submit(send, [body for _, body in batch]))
                try:
                    if in_flight is not None:
                        self._finish_batch(database, db, *in_flight)
                except BaseException:
                    if sent is not None:
                        sent[1].cancel()
                    raise
                in_flight = sent

    def write_ahead(self, database: str, db: Database, steps: list[Step]) -> bool:
        """Record the ids about to be created as pending entries, before any is written.

        False (every step failed) when the record cannot be written: documents
        written then could be orphaned by a crash.
        """
        creates = [step.id or "" for step in steps
                   if step.action is Action.CREATE and step.kind is StepKind.DOCUMENT]
        if not creates:
            return True
        self.guard()
        try:
            self.note_creating(database, db, creates)
        except TransportError:
            raise
        except (CouchError, PlanError) as exc:
            reason = f"the ownership record could not be written ahead: {exc}"
            for step in steps:
                self.finish(StepResult(step, False, error=reason))
            return False
        return True

    def write_ahead_more(self, database: str, db: Database, ids: list[str]) -> None:
        """Updates that became creates on a retry (their document was deleted meanwhile):
        written ahead too, before they are sent. Failing that, the final record still
        learns them; only a crash before it would lose them."""
        try:
            self.note_creating(database, db, ids)
        except TransportError:
            raise
        except (CouchError, PlanError):
            return

    def note_creating(self, database: str, db: Database, ids: list[str]) -> None:
        """Write ``ids`` ahead into the record of ``database`` (read once per apply)."""
        record = self.records.get(database) or read_record(db)
        if set(ids) - record.creating:
            self.records[database] = write_ahead(db, record, ids, w=self.w(database))
        self.intended.setdefault(database, set()).update(ids)

    def rule(self, database: str) -> Callable[[str], SeedRule]:
        """The seed rule of a document of ``database`` by id (the conflict re-diff's)."""
        return self.desired.databases[database].rule

    def _finish_batch(self, database: str, db: Database, batch: Sequence[Step],
                      answers: Future[BulkResults]) -> None:
        for result in _write_batch(db, batch, answers.result, w=self.w(database),
                                   rule=self.rule(database),
                                   on_partial=lambda: self.count_partial(database),
                                   before_create=lambda ids: self.write_ahead_more(
                                       database, db, ids)):
            self.finish(result)
            if result.ok and result.step.kind is StepKind.DOCUMENT:
                self.learn(database, result)

    def count_partial(self, database: str) -> None:
        self.partial[database] = self.partial.get(database, 0) + 1

    def report_partial_writes(self) -> None:
        for database, count in sorted(self.partial.items()):
            self.result.warnings.append(
                f"db:{database}: {counted(count, 'write request')} stored "
                f"on fewer than all {self.copies.get(database) or 'its'} copies "
                "(202 Accepted: is a node down?). They reach the other copies when it is "
                "back; until then a plan may not see them.")

    def learn(self, database: str, result: StepResult) -> None:
        """Remember what the ownership record must say about a written document."""
        step = result.step
        doc_id = step.id or ""
        if result.rev is None:  # deleted (or found already gone)
            self.removed.setdefault(database, set()).add(doc_id)
            return
        spec = self.desired.databases[database]
        self.written.setdefault(database, {})[doc_id] = expected_entry(
            spec, spec.documents[doc_id], result.rev, created=step.action is Action.CREATE)

    def write_ownership_record(self, database: str, confirm: dict[str, ManagedDoc],
                               forget: set[str]) -> None:
        """Fold what this apply wrote to ``database`` into its record, then forget it:
        a finished database keeps nothing in memory."""
        written = {**confirm, **self.written.pop(database, {})}
        removed = self.removed.pop(database, set()) | forget
        intended = self.intended.pop(database, set())
        record = self.records.pop(database, None)
        if not (written or removed or intended):
            return
        self.guard()
        db = self.client.database(database)
        try:
            _merge_record(db, record, written, removed, intended - written.keys(),
                          w=self.w(database))
        except TransportError:
            raise
        except CouchError as exc:
            step = Step(Action.UPDATE, StepKind.DOCUMENT, database, RECORD_ID,
                        reason="ownership record")
            self.finish(StepResult(step, False, error=exc.brief), count=False)
        else:
            self.result.confirmed += len(confirm) + len(forget)


# -- one-request steps


def _create_database(client: Client, step: Step, w: int | None = None) -> None:
    options = step.after or {}
    if options.get("n", 1) > 1:
        _check_copies(client, options["n"])
    with suppress(PreconditionFailed):  # created by someone else since: what the plan wanted
        client.create(step.database, **options)


def _check_copies(client: Client, n: int) -> None:
    """Refuse an ``n`` above the node count: CouchDB accepts it and keeps fewer copies."""
    try:
        nodes = len(client.server.membership().get("cluster_nodes", []))
    except NotFound:  # no /_membership (PouchDB Server): nothing to check against
        return
    if n > nodes:
        raise _Refused(f"n: {n} is more than the {nodes} node{'s' if nodes != 1 else ''} of "
                       "this server (/_membership); CouchDB would keep fewer copies than asked")


class _Refused(CouchError):
    """A step couchsync refuses before sending it (its text is the reason)."""


def _delete_database(client: Client, step: Step, w: int | None = None) -> None:
    with suppress(NotFound):  # already gone
        client.delete(step.database)


def _set_security(client: Client, step: Step, w: int | None = None) -> None:
    client.database(step.database).set_security(step.after)


def _delete_index(client: Client, step: Step, w: int | None = None) -> None:
    db = client.database(step.database)
    with suppress(NotFound):  # already gone
        db.delete_index(step.before["ddoc"], step.id or "", w=w)
    if step.after and step.before.get("partitioned") != step.after.get("partitioned"):
        _delete_emptied_design(db, step.before["ddoc"], w)


def _delete_emptied_design(db: Database, ddoc: str, w: int | None) -> None:
    """CouchDB keeps a design doc whose last index went when it has a ``partitioned``
    option, and refuses to add an index of the other kind to it: an index that changes
    kind in its design doc needs that husk gone."""
    with suppress(NotFound):  # gone with its last index, or never there
        body = db.get(f"_design/{ddoc}")
        if not body.get("views") and set(body) <= {"_id", "_rev", "language", "options",
                                                    "views"}:
            db.delete(body["_id"], body["_rev"], w=w)


def _create_index(client: Client, step: Step, w: int | None = None) -> str:
    """Create the index (its design doc written to ``w`` copies) from the definition
    as the manifest writes it, so that CouchDB stores what a ``POST /_index`` of that
    definition stores; returns the design doc's id."""
    after = step.after
    return str(client.database(step.database).set_index(IndexQuery(
        fields=after["fields"], name=step.id or "", type=after["type"], ddoc=after.get("ddoc"),
        partial_filter_selector=after.get("partial_filter_selector"),
        partitioned=after.get("partitioned"),
    ), w=w).get("id", ""))


def _shown(check: Callable[[Database, Any], bool], db: Database, expected: Any) -> bool:
    """``check``, where a refusal to read (a permission) ends the wait: there is nothing
    to wait for that couchsync could see."""
    try:
        return check(db, expected)
    except TransportError:
        raise
    except CouchError:
        return True


def _indexes_listed(db: Database, written: dict[str, dict[str, Any]]) -> bool:
    """Whether ``_index`` lists each index written as written (``{name: definition}``,
    as the step's ``after``), not only by name: a node answers ``_index`` from a cache
    of the design docs that CouchDB refreshes only after it has answered the write, so
    a read right after an index replaced in place can list the old definition, and a
    re-plan would show the change again."""
    listed, _ = read_indexes(db, False)
    for name, after in written.items():
        wanted = IndexSpec(name, after["fields"], SourcePos("", 0, 0), after.get("ddoc"),
                           after.get("partial_filter_selector"), after.get("type", "json"),
                           after.get("partitioned"))
        # No partitioned setting written: the database's kind, whatever the index shows.
        if not any(found.name == name and not index_differences(
                wanted, found, found.partitioned) for found in listed):
            return False
    return True


def _security_shown(db: Database, security: Any) -> bool:
    return canonical_json(db.get_security()) == canonical_json(security)


_VISIBLE: dict[int, Callable[[Database, Any], bool]] = {
    INDEX_CREATE: _indexes_listed,
    SECURITY: _security_shown,
}
_PHASE_NAMES = {INDEX_CREATE: "new indexes", SECURITY: "_security"}

_SIMPLE: dict[int, Callable[[Client, Step, int | None], object]] = {
    CREATE_DB: _create_database,
    DELETE_DB: _delete_database,
    SECURITY: _set_security,
    INDEX_DELETE: _delete_index,
    INDEX_CREATE: _create_index,
}


# -- documents and design docs


def _write_batch(db: Database, batch: Sequence[Step],
                 sent: Callable[[], BulkResults] | None = None, *, w: int | None = None,
                 rule: Callable[[str], SeedRule] = lambda doc_id: DEFAULT_RULE,
                 on_partial: Callable[[], None] | None = None,
                 before_create: Callable[[list[str]], None] | None = None
                 ) -> list[StepResult]:
    """Write one batch; conflicts are re-read, re-diffed and retried. One result per step.

    ``sent``: the batch was already sent; this gives the server's answers. ``rule``:
    each document's seed rule, for the re-diff.
    ``on_partial`` is called for each answer ``202 Accepted``; ``before_create``
    with the ids of documents a retry creates (an update whose document was
    deleted meanwhile), before it is sent. A lost server (TransportError) is
    raised: nothing more should be tried then.
    """
    results: dict[str, StepResult] = {}
    origin = {step.id or "": step for step in batch}  # results name the plan's step
    pending: list[Step] = list(batch)
    for round_ in range(CONFLICT_ROUNDS + 1):
        try:
            if round_ == 0 and sent is not None:
                answers = sent()
            else:
                answers = db.bulk_docs([bulk_body(step) for step in pending], w=w)
        except TransportError:
            raise
        except CouchError as exc:
            if exc.error != "missing_stub":
                for step in pending:
                    results[step.id or ""] = StepResult(origin[step.id or ""], False,
                                                        error=exc.brief)
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
                if answer["error"] == "conflict":
                    reason += f" (still changing after {CONFLICT_ROUNDS} retries)"
                elif answer["error"] in _RETRIED:
                    reason += f" (still so after {CONFLICT_ROUNDS} retries)"
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
    return [results[step.id or ""] for step in batch]


#: Errors that mean "read it again and retry": ``conflict`` (changed since the plan),
#: and on a cluster ``missing_stub``: a shard copy that has not yet received the
#: revision whose attachments an update keeps (written a moment before with fewer than
#: all copies) refuses the stubs, and CouchDB refuses the whole request (412) even
#: though the other copies stored it; that copy catches up within moments.
_RETRIED = ("conflict", "missing_stub")
_LAG_PAUSE = 0.2  # seconds, times the round, before retrying after a missing_stub


def _as_written(planned: Step, written: Step) -> Step:
    """The plan's step, unless a retry turned it into another action (update → create)."""
    if planned.action is written.action:
        return planned
    return Step(written.action, planned.kind, planned.database, planned.id, written.before,
                written.after, written.rev, planned.reason)


def _rediff(
    db: Database, steps: Iterable[Step], rule: Callable[[str], SeedRule]
) -> list[tuple[Step, Step | None, str | None]]:
    """Each conflicted step, what it still needs now (``None``: nothing), and the live rev.

    A create_only document created meanwhile needs nothing (the application's now); an
    update keeps the ignored fields as the server now has them, not as the plan read them.
    """
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
                                 step.reason, ignore=kept.ignore)
        redone.append((step, again, None if live is None else live.rev))
    return redone


# -- the ownership record


def _merge_record(db: Database, known: Record | None, written: dict[str, ManagedDoc],
                  removed: set[str], not_written: set[str], *, w: int | None = None) -> None:
    """Fold this apply's writes into the ownership record, keeping every other entry.

    Entries of documents this apply did not touch (other ``only`` selections,
    documents dropped from the manifests without ``prune``) stay as they are.
    Ids written ahead become entries: those written with what the write gave,
    those this apply failed to create (``not_written``) not at all, those left by
    an interrupted apply as pending entries (``rev`` ""). ``known``: the record as
    this apply wrote it ahead (under its lock, so not read again). A concurrent
    writer, where the server checks ``_local`` revisions, makes it re-read and
    merge again.
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
