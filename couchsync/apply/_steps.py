"""One-request steps (a database created or deleted, ``_security``, a Mango index created
or deleted, node config), and the wait until the server shows what they wrote."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from couchsync._canonical import canonical_json
from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import Run, Target
from couchsync.client import CouchError, Database, IndexQuery, NotFound, PreconditionFailed
from couchsync.manifest.model import IndexSpec, SourcePos
from couchsync.plan import (
    RECORD_KEY,
    RECORD_SECTION,
    Action,
    Step,
    config_entries,
    index_differences,
    record_value,
)
from couchsync.plan.phases import CREATE_DB, DELETE_DB, INDEX_CREATE, INDEX_DELETE, SECURITY
from couchsync.read import read_indexes

#: How long apply waits for a new index (any CouchDB) or _security (clusters) to show.
VISIBLE_SECONDS = 30.0


def run_steps(target: Target, phase: int, steps: list[Step]) -> None:
    """One phase of one-request steps. A replace deletes the old index in the
    index-delete phase; its create half runs only if that succeeded."""
    for step in steps:
        if step.action is not Action.REPLACE:
            _run_one(target, step, phase)
        elif phase == INDEX_DELETE:
            target.run.guard()
            with refusal() as refused:
                delete_index(target, step)
            if refused:
                target.fail([step], f"deleting the old index: {refused.reason}")
            else:
                target.replacing.add(step.address)
        elif step.address in target.replacing:  # else its failure is already recorded
            _run_one(target, step, phase)
    wait_until_visible(target, phase)


def _run_one(target: Target, step: Step, phase: int) -> None:
    target.run.guard()
    with refusal() as refused:
        _SIMPLE[phase](target, step)
    if refused:
        target.blocked = target.blocked or phase == CREATE_DB
        target.fail([step], refused.reason)
        return
    if phase == INDEX_CREATE:
        target.visible.setdefault(phase, {})[step.id or ""] = step.after
    elif phase == SECURITY:
        target.visible[phase] = step.after
    target.finish(StepResult(step, True))


def _create_database(target: Target, step: Step) -> None:
    options = step.after or {}
    if options.get("n", 1) > 1:
        _check_copies(target, options["n"])
    with suppress(PreconditionFailed):  # created by someone else since: what the plan wanted
        target.run.client.create(step.database, **options)


def _check_copies(target: Target, n: int) -> None:
    """Refuse an ``n`` above the node count: CouchDB accepts it and keeps fewer copies."""
    try:
        nodes = len(target.run.client.server.membership().get("cluster_nodes", []))
    except NotFound:  # no /_membership (PouchDB Server): nothing to check against
        return
    if n > nodes:
        raise _Refused(f"n: {n} is more than the {nodes} node{'s' if nodes != 1 else ''} of "
                       "this server (/_membership); CouchDB would keep fewer copies than asked")


class _Refused(CouchError):
    """A step couchsync refuses before sending it (its text is the reason)."""


def _delete_database(target: Target, step: Step) -> None:
    with suppress(NotFound):  # already gone
        target.run.client.delete(step.database)


def delete_index(target: Target, step: Step) -> None:
    with suppress(NotFound):  # already gone
        target.db.delete_index(step.before["ddoc"], step.id or "", w=target.w)
    if step.after and step.before.get("partitioned") != step.after.get("partitioned"):
        # CouchDB keeps a design doc whose last index went when it has a ``partitioned``
        # option, and refuses an index of the other kind in it: that husk must go.
        with suppress(NotFound):  # gone with its last index, or never there
            body = target.db.get(f"_design/{step.before['ddoc']}")
            if not body.get("views") and set(body) <= {"_id", "_rev", "language", "options",
                                                        "views"}:
                target.db.delete(body["_id"], body["_rev"], w=target.w)


def create_index(target: Target, step: Step) -> str:
    """Create the index from the definition as the manifest writes it, so that CouchDB
    stores what a ``POST /_index`` of that definition stores; the design doc's id."""
    after = step.after
    return str(target.db.set_index(IndexQuery(
        fields=after["fields"], name=step.id or "", type=after["type"], ddoc=after.get("ddoc"),
        partial_filter_selector=after.get("partial_filter_selector"),
        partitioned=after.get("partitioned"),
    ), w=target.w).get("id", ""))


_SIMPLE: dict[int, Callable[[Target, Step], object]] = {
    CREATE_DB: _create_database,
    DELETE_DB: _delete_database,
    SECURITY: lambda target, step: target.db.set_security(step.after),
    INDEX_DELETE: delete_index,
    INDEX_CREATE: create_index,
}


def wait_until_visible(target: Target, phase: int) -> None:
    """Until the server shows what this phase wrote, so that a re-plan does not see the old
    state: CouchDB answers ``_index`` from a design-doc cache refreshed after the write
    is answered, and a cluster a ``_security`` read from one copy."""
    expected = target.visible.pop(phase, None)
    if expected is None or (phase == SECURITY and target.w is None):
        return
    what, shown = _VISIBLE[phase]
    deadline = time.monotonic() + VISIBLE_SECONDS
    while True:
        with refusal() as refused:
            if shown(target.db, expected):
                return
        if refused:  # a refusal to read (a permission): nothing couchsync could wait for
            return
        if time.monotonic() > deadline:
            target.run.warn(f"db:{target.name}: {what} written but not yet shown by the "
                            f"server after {VISIBLE_SECONDS:.0f} s")
            return
        time.sleep(0.05)


def _indexes_listed(db: Database, written: dict[str, dict[str, Any]]) -> bool:
    """Whether ``_index`` lists each index (``{name: step.after}``) as written, not only by
    name: after an index replaced in place, a node can still list the old definition."""
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


#: What a phase waits to be shown: its name (for the warning), and whether reads show it.
_VISIBLE: dict[int, tuple[str, Callable[[Database, Any], bool]]] = {
    INDEX_CREATE: ("new indexes", _indexes_listed),
    SECURITY: ("_security", lambda db, security: canonical_json(
        db.get_security()) == canonical_json(security)),
}


def clean_up_indexes(target: Target) -> None:
    """``_view_cleanup`` after indexes were rebuilt: the old index files stay until then."""
    if not target.rebuilt or target.keep_index_files:
        return
    with refusal() as refused:
        target.db.view_cleanup()
    if refused:
        target.run.warn(f"db:{target.name}: old index files not cleaned up "
                        f"(_view_cleanup: {refused.reason})")


def apply_config(run: Run, steps: list[Step]) -> bool:
    """Config steps, node by node: each node that differs gets the key recorded
    (``couchsync/managed``) ahead of its value, or deleted then unrecorded. False
    when some step failed."""
    server = run.client.server
    records: dict[str, set[str]] = {}

    def record(node: str, entry: str, add: bool) -> None:
        if node not in records:
            records[node] = set(config_entries(server.config_section(
                node, RECORD_SECTION).get(RECORD_KEY)))
        if (entry in records[node]) != add:
            records[node] ^= {entry}
            run.guard()
            server.set_config(node, RECORD_SECTION, RECORD_KEY, record_value(records[node]))

    ok = True
    for step in steps:
        section, key = (step.id or "").split("/", 1)
        before, after = step.before or {}, step.after or {}
        with refusal() as refused:
            for node in sorted({*before, *after}):
                if after.get(node) == before.get(node):
                    continue
                if node in after:
                    record(node, step.id or "", add=True)
                    run.guard()
                    server.set_config(node, section, key, after[node])
                else:
                    run.guard()
                    server.delete_config(node, section, key)
                    record(node, step.id or "", add=False)
        ok = ok and not refused
        run.finish(StepResult(step, not refused, error=refused.reason if refused else None))
    return ok
