"""Staged rollouts: a new index is built under a staging id, on every shard copy,
before the live design doc takes it: ``stage``, ``wait_until_built``, then ``_swap``.
docs/plan-and-apply.md ("Staged design-doc rollouts") tells why each step is so.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from couchsync._canonical import canonical_json
from couchsync.apply._documents import write_batch
from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import Target
from couchsync.apply._steps import create_index, delete_index, wait_until_visible
from couchsync.client import (
    BadRequest,
    CouchError,
    Database,
    Forbidden,
    IndexQuery,
    NotFound,
    Unauthorized,
)
from couchsync.errors import CouchsyncError
from couchsync.plan import COPIES_FIELD, Action, Step, StepKind, staging_body, staging_id
from couchsync.plan.phases import INDEX_CREATE

#: A staged rollout's warning when the swapped-in design doc did not reuse the build.
NOT_REUSED = "the live design doc's index is not the one built under"

#: A shard copy whose index is within this many changes of its database counts as
#: built: a query then waits for those few (milliseconds), and a database written
#: to all the while would otherwise never be "built".
CAUGHT_UP = 100
#: Polls come quickly at first (a small index is built in a moment), then every this.
POLL_SECONDS = 0.5
FIRST_POLL_SECONDS = 0.05

#: Ids tried per shard range to find one stored in each (a range gets about one id in
#: as many as there are ranges): past this, the copies are not asked one by one.
RANGE_PROBES = 8


class BuildTimeout(CouchsyncError):
    """The staging copy's indexes were not built in time; the live design doc is untouched."""

    def __init__(self, staging_id: str, seconds: float, done: int, total: int) -> None:
        self.staging_id = staging_id
        share = f"{100 * done // total}% of {total:,} changes" if total else "not started"
        super().__init__(
            f"the staged build was not done after {seconds:g} s ({share} indexed); the live "
            f"design doc is unchanged, and {staging_id} goes on building on the server. Run "
            "apply again to wait for it, or apply --design-deploy in_place to write the "
            "change in place (the staging copy is then deleted)")


@dataclass(frozen=True)
class Staged:
    """A written staging copy: ``ids`` (the staging id first), the view whose queries
    start its build, each shard copy with the id stored in its range (or none)."""

    ids: tuple[str, ...]
    view: str
    copies: tuple[tuple[Database, str], ...] = ()


def stage(db: Database, step: Step, staging_id: str, *, w: int | None) -> Staged:
    """Write the staging copy of ``step`` (a design doc or a Mango index), under one id
    per shard range where the shard copies can be asked."""
    copies = _copies(db, staging_id)
    ids = (staging_id, *sorted({doc_id for _, doc_id in copies} - {staging_id}))
    extra = {COPIES_FIELD: list(ids[1:])} if len(ids) > 1 else {}
    # The first copy names the others before they exist: a plan finds them through it.
    for doc_id in ids:
        view = (_stage_index(db, step, doc_id, extra, w=w) if step.kind is StepKind.INDEX
                else _stage_design(db, step, doc_id, extra, w=w))
    return Staged(ids, view, tuple(copies))


def _copies(db: Database, staging_id: str) -> list[tuple[Database, str]]:
    """Each shard copy with the staging id stored in its range; none when the shard map
    cannot be read (not a server admin, not CouchDB)."""
    try:
        copies = db.shard_copies()
        ids = {db.shard_of(staging_id): staging_id}
        for number in range(1, RANGE_PROBES * len(copies)):
            if len(ids) == len(copies):
                break
            ids.setdefault(db.shard_of(f"{staging_id}.{number}"), f"{staging_id}.{number}")
    except (Unauthorized, Forbidden, NotFound, BadRequest):
        return []
    if len(ids) < len(copies):
        return []
    return [(copy, ids[range_]) for range_, nodes in copies.items() for copy in nodes.values()]


def _stage_design(db: Database, step: Step, staging_id: str, extra: dict[str, Any], *,
                  w: int | None) -> str:
    body = {**staging_body(step.after), **extra}
    current = _get(db, staging_id)
    if current is None or canonical_json(staging_body(current), drop=()) != canonical_json(
            body, drop=()):
        db.update(staging_id, body, current["_rev"] if current else "", w=w)
    return str(min(name for name in body["views"] if name != "lib"))


def _stage_index(db: Database, step: Step, staging_id: str, extra: dict[str, Any], *,
                 w: int | None) -> str:
    """The index through ``_index``, beside the live design doc's other indexes: the
    signature covers every view of a design doc."""
    name, after = step.id or "", step.after
    seed: dict[str, Any] = {"language": "query", "views": {}}
    target = _get(db, f"_design/{after['ddoc']}") if after.get("ddoc") else None
    if target is not None:
        seed = staging_body(target)
        seed["views"] = {key: view for key, view in (seed.get("views") or {}).items()
                         if key != name}
    # CouchDB adds an index only to a design doc of its own partitioned setting.
    options = {key: value for key, value in (seed.get("options") or {}).items()
               if key != "partitioned"}
    if after.get("partitioned") is not None:
        options["partitioned"] = after["partitioned"]
    seed = {key: value for key, value in seed.items() if key != "options"}
    seed.update(extra)
    if options:
        seed["options"] = options
    current = _get(db, staging_id)
    if current is None or not _holds(current, seed, name):
        db.update(staging_id, seed, current["_rev"] if current else "", w=w)
    db.set_index(IndexQuery(
        fields=after["fields"], name=name, type=after["type"],
        ddoc=staging_id.removeprefix("_design/"),
        partial_filter_selector=after.get("partial_filter_selector"),
        partitioned=after.get("partitioned")), w=w)
    return name


def _holds(current: dict[str, Any], seed: dict[str, Any], name: str) -> bool:
    """Whether a staging copy left behind is ``seed`` plus index ``name`` (any version:
    ``_index`` replaces it when it differs)."""
    body = staging_body(current)
    body["views"] = {key: view for key, view in (body.get("views") or {}).items()
                     if key != name}
    return canonical_json(body, drop=()) == canonical_json(seed, drop=())


def _get(db: Database, doc_id: str) -> dict[str, Any] | None:
    try:
        return db.get(doc_id)
    except NotFound:
        return None


def wait_until_built(db: Database, staged: Staged, *, timeout: float | None = None,
                     check: Callable[[], None] | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> bool:
    """Until the index of ``staged`` is built on every shard copy (``CAUGHT_UP``);
    ``check``, called at each poll, may raise to stop. ``BuildTimeout`` after ``timeout``.
    False when the server tells no build state and a query built it (PouchDB Server)."""
    started = time.monotonic()
    staging_id = staged.ids[0]
    poll: Callable[[], tuple[int, bool] | None]
    if staged.copies:
        poll = functools.partial(_copies_state, staged)
    else:
        _start_clustered_build(db, staging_id, staged.view)
        poll = functools.partial(_clustered_state, db, staging_id)
    # The clustered _info may say built between two batches of an indexer: it counts
    # when said twice in a row. A copy's own _info counts changes, not batches.
    twice = not staged.copies
    built_before = False
    total = 0
    pause = FIRST_POLL_SECONDS
    while True:
        if check is not None:
            check()
        state = poll()
        if state is None:  # no build state (PouchDB Server): a query builds, and waits
            db.query_view(staging_id, staged.view, limit=0)
            return False
        pending, built = state
        total = max(total, pending)
        if on_progress is not None:
            on_progress(total - pending, total)
        if built and (built_before or not twice):
            return True
        built_before = built
        if timeout is not None and time.monotonic() - started >= timeout:
            raise BuildTimeout(staging_id, timeout, total - pending, total)
        time.sleep(pause if timeout is None
                   else max(0.0, min(pause, started + timeout - time.monotonic())))
        pause = min(POLL_SECONDS, pause * 2)


def _copies_state(staged: Staged) -> tuple[int, bool]:
    """(changes still to index, whether built) of every shard copy, each asked itself; a
    copy behind with no build running is started (again: ken or a compaction may stop it)."""
    pending = 0
    built = True
    for copy, doc_id in staged.copies:
        try:
            info = copy.design_info(doc_id)["view_index"]
        except NotFound:  # written to fewer copies (a 202): on its way to this one
            built = False
            continue
        behind = int(info.get("pending_updates", 0))
        pending += behind
        if behind > CAUGHT_UP:
            built = False
            if not info.get("updater_running"):
                copy.query_view(doc_id, staged.view, limit=0, update="lazy")
    return pending, built


def _start_clustered_build(db: Database, staging_id: str, view: str) -> None:
    """Start the build of the copies a clustered query reaches: a query that waits, in a
    thread of its own, abandoned (one that does not wait, ``update=lazy``, would stop
    the copies' workers before they ask for a build)."""

    def query() -> None:
        # An answer, a timeout, the client closed at exit: nothing the polls do not say.
        with contextlib.suppress(Exception):
            db.query_view(staging_id, view, limit=0)

    threading.Thread(target=query, name="couchsync-start-build", daemon=True).start()


def _clustered_state(db: Database, staging_id: str) -> tuple[int, bool] | None:
    """(changes still to index, whether built) as the clustered ``_info`` tells them for
    the copies that answer first; None when the server tells no build state."""
    info = _view_index(db, staging_id)
    if info is None:
        return None
    updates = info.get("updates_pending")
    pending = updates.get("total") if isinstance(updates, dict) else info.get("pending_updates")
    if not isinstance(pending, int):
        return None
    return pending, pending <= CAUGHT_UP


def same_index(db: Database, staging_id: str, live_id: str) -> bool:
    """Whether the live design doc's index is the staging copy's (the build is reused);
    True when the server tells no signatures."""
    signatures = [(_view_index(db, doc_id) or {}).get("signature")
                  for doc_id in (staging_id, live_id)]
    return not all(isinstance(signature, str) for signature in signatures) or (
        signatures[0] == signatures[1])


def _view_index(db: Database, design_id: str) -> dict[str, Any] | None:
    """The clustered ``_info``'s ``view_index``; None when the server tells none."""
    try:
        info = db.design_info(design_id).get("view_index")
    except CouchError:
        return None
    return info if isinstance(info, dict) else None


def roll_out(target: Target, steps: list[Step]) -> None:
    """Staged steps: every staging copy written first (their indexes build side by side),
    then each waited for and swapped in."""
    run = target.run
    staged = []
    for step in steps:
        run.guard()
        with refusal() as refused:
            staged.append((step, stage(target.db, step, staging_id(step), w=target.w)))
        if refused:
            target.fail([step], f"writing its staging copy: {refused.reason}")
    for step, copy in staged:
        started = time.monotonic()
        with refusal(BuildTimeout) as refused:
            told = wait_until_built(target.db, copy, timeout=run.wait_timeout, check=run.guard,
                                    on_progress=None if run.on_build is None
                                    else functools.partial(run.on_build, step.address))
        if refused:
            target.fail([step], refused.reason)
            continue
        # PouchDB Server files a view's index under the design doc that first queried it
        # (here the staging copy: the live one finds it cached by signature and files
        # nothing), so a _view_cleanup once the staging copy is gone destroys the index
        # just built, under the live queries. Its old index files stay instead.
        target.keep_index_files |= not told
        run.guard()
        if _swap(target, step, copy.ids):
            with run.mutex:
                run.result.staged.append(
                    f"{step.address}: built under {staging_id(step)} in "
                    f"{time.monotonic() - started:.1f} s, then swapped in")
    wait_until_visible(target, INDEX_CREATE)


def _swap(target: Target, step: Step, staged_ids: Sequence[str]) -> bool:
    """Write the staged body to the live id, check the build was reused, and delete the
    staging copies (the first, which lists the others, last); False when the write
    failed."""
    if step.kind is StepKind.DESIGN_DOC:
        result = write_batch(target.db, [step], w=target.w, on_partial=target.count_partial)[0]
        live_id = step.id or ""
    else:
        with refusal() as refused:
            live_id = create_index(target, step)
            if step.action is Action.REPLACE and f"_design/{step.before['ddoc']}" != live_id:
                delete_index(target, step)  # the old one, in another design doc
        result = StepResult(step, not refused, error=refused.reason if refused else None)
        if result.ok:
            target.visible.setdefault(INDEX_CREATE, {})[step.id or ""] = step.after
    target.finish(result)
    if not result.ok:
        return False
    if not same_index(target.db, staging_id(step), live_id):
        target.run.warn(f"{step.address}: {NOT_REUSED} {staging_id(step)}; queries of it "
                        "wait for a rebuild")
    with refusal() as refused:
        for doc_id in reversed(staged_ids):
            target.db.delete(doc_id, w=target.w)
    if refused:  # the next plan deletes it
        target.run.warn(f"{step.address}: its staging copy could not be deleted: "
                        f"{refused.reason}")
    return True
