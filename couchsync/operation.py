"""The safe apply as one call, as Terraform's backend operation (``opApply``), for the CLI
and Python callers alike (docs/plan-and-apply.md, "The apply lock"). It never prints and
never asks: its ``ApplyHooks`` do. Heavy modules are imported inside the functions
(``couchsync.cli`` imports this module at start).
"""

from __future__ import annotations

import contextlib
import os
from collections import ChainMap
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from couchsync._parallel import DEFAULT_PARALLEL
from couchsync.errors import CouchsyncError

if TYPE_CHECKING:
    from couchsync.apply import ApplyResult
    from couchsync.client import Client
    from couchsync.lock import LockReader, LockSet
    from couchsync.manifest import DesiredState, Shard
    from couchsync.plan import Hint, Plan
    from couchsync.read import MigrationOptions
    from couchsync.saved_plan import SavedPlan

__all__ = ["ApplyCancelled", "ApplyHooks", "ApplyOutcome", "Progress", "apply_manifests",
           "plan_manifests"]

DesignDeploy = Literal["in_place", "staged"]


class ApplyCancelled(CouchsyncError):
    """The caller's ``confirm`` (or ``replanned``) answered no; nothing was written."""


class Progress:
    """Progress callbacks; these do nothing (the CLI draws a bar)."""

    def steps(self, done: int, total: int) -> None:
        """Steps done of total (an apply of one database)."""

    def databases(self, done: int, total: int, failed: int) -> None:
        """Databases done of total, and how many failed (fleets)."""

    def build(self, address: str, done: int, total: int) -> None:
        """A staged build: changes indexed of total."""

    def documents(self, done: int, total: int, failed: int) -> None:
        """Data migrations: documents read of those the plan counted, and how many could
        not be migrated (the catch-up may read more than the plan counted)."""


class ApplyHooks:
    """What the operation tells its caller and asks it. These defaults tell nothing and
    apply without asking: override what a user should see or answer."""

    def notice(self, text: str) -> None:
        """A note: a lock waited for, a lock taken over from an apply that is gone."""

    def warning(self, text: str) -> None:
        """A warning about the plan, before ``confirm``: a database open to anyone."""

    def progress(self, verb: str) -> AbstractContextManager[Progress]:
        """Progress while ``"Planning"`` and ``"Applying"``."""
        return contextlib.nullcontext(Progress())

    def confirm(self, plan: Plan) -> bool:
        """Whether to apply ``plan`` (it has changes), asked before the locks are taken."""
        return True

    def locking(self, plan: Plan, locks: LockSet) -> None:
        """The locks of ``plan``'s databases are about to be taken."""

    def replanned(self, plan: Plan) -> bool:
        """Another apply ran while the locks were taken, and the plan made again under them
        differs: whether to apply this one (by default, as ``confirm`` says)."""
        return plan.is_empty or self.confirm(plan)


@dataclass
class ApplyOutcome:
    """What ``apply_manifests`` did."""

    desired: DesiredState
    plan: Plan  # the plan applied: made again under the locks if another apply ran since
    result: ApplyResult | None = None  # None: nothing to apply, no lock was taken
    unreleased: list[str] = field(default_factory=list)  # locks a lost server kept


def plan_manifests(
    client: Client, paths: Sequence[str | os.PathLike[str]], *,
    only: Sequence[str] | None = None, db_prefix: str = "", db_suffix: str = "",
    design_deploy: DesignDeploy | None = None, environ: Mapping[str, str] | None = None,
    parallel: int = DEFAULT_PARALLEL, lock_wait: float | None = None,
    hooks: ApplyHooks | None = None, migrations: MigrationOptions | None = None,
    full: bool = False, shard: Shard | None = None, lazy: bool = True,
    find_converged: bool = False,
) -> tuple[DesiredState, Plan, LockReader]:
    """Load and plan as ``couchsync plan`` does. The apply locks are read before the
    databases (``couchsync.lock``); with ``lock_wait`` a held one is waited for up to that
    many seconds, then ``LockHeld``. ``migrations``: what the plan shows of each data
    migration (samples, files of would-be documents). ``full``: read every database, even
    those a hint proves unchanged since an apply found them converged. ``shard``: only
    the databases of that shard (``--shard K/N``). ``lazy``: the documents of a database
    a hint proves unchanged are not loaded (False for a plan to save, which lists them).
    ``find_converged``: find the databases an apply records as converged
    (``Plan.converged``), as ``apply_manifests`` does; a plan only shown need not (on a
    cluster that would ask each converged database's info several times more)."""
    from couchsync.lock import LockReader
    from couchsync.manifest import DatabaseNames, Shard
    from couchsync.plan import PlanError, public_warnings
    from couchsync.read import PREVIEW, load_and_plan

    hooks = hooks or ApplyHooks()
    try:  # the server's URL: replication endpoints on it are mapped too
        names = DatabaseNames(db_prefix, db_suffix, client.url)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    locks = LockReader(client, wait=lock_wait, on_wait=hooks.notice)
    with hooks.progress("Planning") as bar:
        desired, plan = load_and_plan(
            client, paths, only=only, before_read=locks, parallel=parallel,
            on_database=bar.databases, environ=environ, names=names,
            design_deploy=design_deploy, migrations=migrations or PREVIEW,
            incremental=not full, shard=shard or Shard(), lazy=lazy,
            find_converged=find_converged)
    for line in [*plan.warnings, *public_warnings(desired, plan)]:
        hooks.warning(line)
    return desired, plan, locks


def apply_manifests(
    client: Client, paths: Sequence[str | os.PathLike[str]] = (), *,
    saved: SavedPlan | None = None,
    only: Sequence[str] | None = None, db_prefix: str = "", db_suffix: str = "",
    design_deploy: DesignDeploy | None = None,
    variables: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None,
    parallel: int = DEFAULT_PARALLEL, batch_size: int = 1000,
    lock_timeout: float = 0.0, lock_ttl: float | None = None,
    wait_timeout: float | None = None, hooks: ApplyHooks | None = None,
    full: bool = False, shard: Shard | None = None,
) -> ApplyOutcome:
    """Make the server match the manifests at ``paths``, holding the apply lock of every
    database the plan changes while it writes.

    ``variables`` are read for ``${KEY}`` before ``environ`` (default ``os.environ``).
    ``saved`` (``SavedPlan.read``): apply exactly that plan, from its paths, settings and
    variables (one given too must be the same); refused, nothing written, when the server,
    the manifests or their variables moved. ``lock_timeout``: seconds to wait for another
    apply's locks; ``lock_ttl``: after which a lock not renewed may be taken over (600 s).
    Raises ManifestError, LockHeld, SavedPlanError, ApplyCancelled, ApplyError and
    ApplyInterrupted (all CouchsyncError), and the client's CouchError.

    The databases the plan found converged are recorded (``couchsync.read.record_hints``),
    so that the next plan skips them while they stay unchanged; ``full``: the plan reads
    every database all the same. ``shard``: only the
    databases of that shard, so that N runners converge a fleet together.
    """
    from couchsync.apply import ApplyInterrupted, apply_plan
    from couchsync.lock import DEFAULT_TTL, LockSet, unreleased_note
    from couchsync.manifest import Shard
    from couchsync.read import MigrationOptions, plan_server

    hooks = hooks or ApplyHooks()
    shard = shard or Shard()
    environ = os.environ if environ is None else environ
    if saved is not None:
        settings = saved.settings_with({
            "only": None if only is None else list(only), "db_prefix": db_prefix,
            "db_suffix": db_suffix, "design_deploy": design_deploy})
        only, db_prefix, db_suffix, design_deploy = (
            settings.get("only"), settings.get("db_prefix", ""),
            settings.get("db_suffix", ""), settings.get("design_deploy"))
        paths = paths or saved.paths
        environ = saved.environ(variables or {}, environ)  # its variables, secrets anew
    elif variables:
        environ = ChainMap(dict(variables), dict(environ))
    desired, plan, reader = plan_manifests(
        client, paths, only=only, db_prefix=db_prefix, db_suffix=db_suffix,
        design_deploy=design_deploy, environ=environ, parallel=parallel,
        lock_wait=lock_timeout, hooks=hooks, migrations=MigrationOptions.for_apply(),
        full=full, shard=shard, lazy=saved is None, find_converged=True)
    if saved is not None:
        saved.check(plan, desired, client)
    if plan.is_empty and not plan.record_updates():
        _record_hints(client, plan.converged, hooks, shard)
        return ApplyOutcome(desired, plan)
    if not plan.is_empty and not hooks.confirm(plan):
        raise ApplyCancelled("apply cancelled")
    ttl = DEFAULT_TTL if lock_ttl is None else lock_ttl
    locks = LockSet(client, plan.databases(), reader.result(), ttl=ttl,
                    on_notice=hooks.notice)
    hooks.locking(plan, locks)
    try:
        with locks:  # released on the way out, whatever happens
            locks.acquire(lock_timeout)
            if locks.stale:  # another apply ran since the locks were read: plan again
                shown = plan
                plan = plan_server(client, desired, only=plan.databases(), parallel=parallel,
                                   shard=shard)
                if saved is not None:
                    saved.check(plan, desired, client)
                if _changes(plan) != _changes(shown) and not hooks.replanned(plan):
                    raise ApplyCancelled("apply cancelled")
            with hooks.progress("Applying") as bar:
                result = apply_plan(client, plan, desired, batch_size=batch_size,
                                    on_progress=bar.steps, check_lock=locks.check,
                                    parallel=parallel, on_database=bar.databases,
                                    wait_timeout=wait_timeout, on_build=bar.build,
                                    on_documents=bar.documents)
            # Those the plan found converged; those it wrote, the next plan reads (reading
            # them again now would cost a first apply of a fleet a third more requests).
            _record_hints(client, plan.converged, hooks, shard)
    except ApplyInterrupted as exc:
        if locks.unreleased:
            exc.notes.append(unreleased_note(locks.unreleased, ttl))
        raise
    return ApplyOutcome(desired, plan, result, locks.unreleased)


def _record_hints(client: Client, converged: Mapping[str, Hint | None],
                  hooks: ApplyHooks, shard: Shard) -> None:
    """Record ``converged``; failing to costs the next plan full reads, not the apply."""
    from couchsync.client import CouchError
    from couchsync.read import record_hints

    if not converged:
        return
    try:
        record_hints(client, converged, shard)
    except CouchError as exc:
        hooks.notice(f"could not record which databases are converged (the next plan reads "
                     f"them all): {exc.brief}")


def _changes(plan: Plan) -> dict[str, Any]:
    """What ``plan`` changes: its machine format but what it read in full and why."""
    return {key: value for key, value in plan.to_dict().items() if key != "incremental"}
