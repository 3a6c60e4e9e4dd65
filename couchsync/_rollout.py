"""Staged rollouts, the I/O: write a staging copy, wait until every shard copy has
built its indexes, and tell whether the swapped-in design doc reused that build.

The order (``apply`` drives it, see ``couchsync.plan._staging`` for why it works):

1. ``stage``: the new body goes under a staging id (``_design/couchsync-staged.NAME``;
   for a Mango index, the index goes into ``_design/couchsync-staged-index.NAME``
   through ``_index``, beside the other indexes its design doc will hold). A
   staging copy already holding that body (left by an interrupted apply) is kept,
   and its build goes on where it was.
2. ``wait_until_built``: CouchDB builds the index of every shard copy (a query that
   waits for the build starts it on every copy, see ``_start_builds``). Built
   means: the clustered ``_info`` shows no changes left for the copies that answer
   it first, and ``_active_tasks`` (every node's) shows no indexer still building
   the staging copy on any copy. (A copy's own ``_info`` cannot be asked: through
   ``/_node/{node}/{shard}`` it needs the design doc in that very shard, and a
   document is in one shard range only.) Without the right to read
   ``_active_tasks`` (not a server admin), the clustered ``_info`` is what there
   is. A server without build state (PouchDB Server) builds on a query: one is
   made, and waited for.
3. The live id gets the body (``apply``), and the query servers find its index built.
4. ``same_index``: the live design doc's signature is the staging copy's (else the
   swap rebuilt: said as a warning). The staging copy is deleted, and
   ``_view_cleanup`` drops the old index files.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from couchsync._canonical import canonical_json
from couchsync.client import (
    Client,
    CouchError,
    Database,
    Forbidden,
    IndexQuery,
    NotFound,
    Unauthorized,
)
from couchsync.plan._model import Step, StepKind
from couchsync.plan._staging import staging_body

__all__ = ["CAUGHT_UP", "BuildTimeout", "same_index", "stage", "wait_until_built"]

#: A shard copy whose index is within this many changes of its database counts as
#: built: a query then waits for those few (milliseconds), and a database written
#: to all the while would otherwise never be "built".
CAUGHT_UP = 100
#: Polls come quickly at first (a small index is built in a moment), then every this.
POLL_SECONDS = 0.5
FIRST_POLL_SECONDS = 0.05

#: ``on_progress(done, total)``: changes indexed so far, of those there were to index.
BuildProgress = Callable[[int, int], None]


class BuildTimeout(Exception):
    """The staging copy's indexes were not built in time; the live design doc is untouched."""

    def __init__(self, staging_id: str, seconds: float, done: int, total: int) -> None:
        self.staging_id = staging_id
        share = f"{100 * done // total}% of {total:,} changes" if total else "not started"
        super().__init__(
            f"the staged build was not done after {seconds:g} s ({share} indexed); the live "
            f"design doc is unchanged, and {staging_id} goes on building on the server. Run "
            "apply again to wait for it, or apply --design-deploy in_place to write the "
            "change in place (the staging copy is then deleted)")


def stage(client: Client, db: Database, step: Step, staging_id: str, *, w: int | None
          ) -> str:
    """Write the staging copy of ``step`` (a design doc or a Mango index); returns the
    name of a view in it, whose queries start its build."""
    if step.kind is StepKind.INDEX:
        return _stage_index(db, step, staging_id, w=w)
    body = staging_body(step.after)
    current = _get(db, staging_id)
    if current is None or canonical_json(staging_body(current), drop=()) != canonical_json(
            body, drop=()):
        db.update(staging_id, body, current["_rev"] if current else "", w=w)
    return str(min(name for name in body["views"] if name != "lib"))


def _stage_index(db: Database, step: Step, staging_id: str, *, w: int | None) -> str:
    """The index, through ``_index`` (CouchDB writes its view as it would in the live
    design doc), beside the other indexes the live design doc holds: the index
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


def wait_until_built(client: Client, db: Database, staging_id: str, view: str, *,
                     timeout: float | None = None, check: Callable[[], None] | None = None,
                     on_progress: BuildProgress | None = None) -> None:
    """Until the index of ``staging_id`` is built on every shard copy (``CAUGHT_UP``).

    ``check`` is called at each poll and may raise to stop waiting (a lost lock, an
    interrupted apply). Raises ``BuildTimeout`` after ``timeout`` seconds.
    """
    started = time.monotonic()
    _start_builds(db, staging_id, view)
    tasks: bool = True  # whether _active_tasks may be read (server admins)
    total = 0
    built_before = False
    pause = FIRST_POLL_SECONDS
    while True:
        if check is not None:
            check()
        state = _build_state(db, staging_id)
        if state is None:  # no build state (PouchDB Server): a query builds, and waits
            db.query_view(staging_id, view, limit=0)
            return
        pending, built = state
        if tasks:
            try:
                running = _indexers(client, db.name, staging_id)
            except (Unauthorized, Forbidden):
                tasks, running = False, []
            pending = max(pending, sum(max(int(task.get("total_changes", 0))
                                           - int(task.get("changes_done", 0)), 0)
                                       for task in running))
            built = built and not running
        total = max(total, pending)
        if on_progress is not None:
            on_progress(total - pending, total)
        if built and built_before:  # twice in a row: not an indexer between two batches
            return
        built_before = built
        if timeout is not None and time.monotonic() - started >= timeout:
            raise BuildTimeout(staging_id, timeout, total - pending, total)
        time.sleep(pause if timeout is None
                   else max(0.0, min(pause, started + timeout - time.monotonic())))
        pause = min(POLL_SECONDS, pause * 2)


def _start_builds(db: Database, staging_id: str, view: str) -> None:
    """Start the index build on every shard copy, in the background.

    A clustered view query goes to every copy, and each starts its build and waits
    for it; the first copy per shard range to answer is used and the others'
    workers are stopped, but their builds go on. A query that does not wait
    (``update=lazy``) would not do: a copy whose worker is stopped before it asks
    for a build never starts one. So this query waits (in a thread of its own,
    abandoned: its answer, or its timeout, changes nothing).
    """

    def query() -> None:
        # Whatever it ends in (an answer, a timeout, the client closed at exit) says
        # nothing the polls do not: never printed.
        with contextlib.suppress(Exception):
            db.query_view(staging_id, view, limit=0)

    threading.Thread(target=query, name="couchsync-start-build", daemon=True).start()


def _build_state(db: Database, staging_id: str) -> tuple[int, bool] | None:
    """(changes still to index, whether built) as the clustered ``_info`` tells them for
    the copies that answer first; None when the server tells no build state."""
    try:
        info = db.design_info(staging_id).get("view_index")
    except CouchError:
        return None
    if not isinstance(info, dict):
        return None
    updates = info.get("updates_pending")
    pending = updates.get("total") if isinstance(updates, dict) else info.get("pending_updates")
    if not isinstance(pending, int):
        return None
    return pending, pending <= CAUGHT_UP


def _indexers(client: Client, database: str, staging_id: str) -> list[dict[str, Any]]:
    """The indexer tasks building ``staging_id`` on any shard copy of ``database``, on
    any node (``_active_tasks`` gathers every node's)."""
    shard = re.compile(r"shards/[0-9a-f]+-[0-9a-f]+/" + re.escape(database) + r"\.\d+")
    return [task for task in client.server.active_tasks()
            if task.get("type") == "indexer" and task.get("design_document") == staging_id
            and shard.fullmatch(str(task.get("database", "")))]


def same_index(db: Database, staging_id: str, live_id: str) -> bool:
    """Whether the live design doc's index is the staging copy's (the build is reused);
    True when the server tells no signatures."""
    signatures = [_signature(db, doc_id) for doc_id in (staging_id, live_id)]
    return None in signatures or signatures[0] == signatures[1]


def _signature(db: Database, design_id: str) -> str | None:
    try:
        info = db.design_info(design_id).get("view_index")
    except CouchError:
        return None
    signature = info.get("signature") if isinstance(info, dict) else None
    return signature if isinstance(signature, str) else None
