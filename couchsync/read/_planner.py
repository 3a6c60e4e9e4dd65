"""Planning a whole server: find the databases patterns match, then read and plan database
by database, ``parallel`` at a time (docs/design-notes.md); the server is asked while the
manifests load (docs/plan-and-apply.md, "The server works while the manifests load")."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from couchsync._canonical import canonical_json
from couchsync._names import CONFIG, REPLICATOR_DB, USERS_DB
from couchsync._parallel import DEFAULT_PARALLEL, DatabaseProgress, ordered_map
from couchsync._version import code_identity
from couchsync.client import Client, CouchError, NotFound, TransportError, Unauthorized
from couchsync.manifest import (
    DatabaseNames,
    Shard,
    expand_patterns,
    literal_prefix,
    load_manifests,
    matches,
)
from couchsync.manifest.model import DatabaseSpec, DesiredState
from couchsync.plan import (
    Action,
    DatabasePlan,
    Hint,
    LiveDatabase,
    LiveState,
    MigrationChanged,
    Plan,
    PlanError,
    Scope,
    Step,
    UnreadableDocument,
    batched,
    check_passwords,
    converged,
    every_copy_seen,
    fingerprint,
    full_reason,
    plan_checked,
    plan_config,
    resolve_only,
)
from couchsync.read._config import read_config
from couchsync.read._hints import ALL, StoredHints, read_hints
from couchsync.read._limits import LimitsReader, fleet_warning, too_large
from couchsync.read._live import Prefetched, close_scans, prefetch, read_database
from couchsync.read._migrations import PREVIEW, MigrationOptions

DesignDeploy = Literal["in_place", "staged"]
#: Names per ``_all_dbs`` page: 100,000 databases never come in one response.
DISCOVERY_PAGE = 1000
#: The identity: every database under its declared name.
NO_MAPPING = DatabaseNames()
#: Names per ``POST /_dbs_info`` (CouchDB's default ``max_db_number_for_dbs_info_req``).
INFO_BATCH = 100
#: At most how many more times a cluster's converged databases are asked their info, for
#: the sequences of their other shard copies (``converged``), each until every copy
#: answered: 100 databases a request.
CLUSTER_ASKS = 12
#: What the reader and the hints use of a database's info.
_INFO_READ = ("doc_count", "cluster", "props", "update_seq", "purge_seq")
#: Called with the databases a plan will read, before any is read.
BeforeRead = Callable[[Collection[str]], None]


def discover(client: Client, desired: DesiredState) -> list[str]:
    """The databases on the server that a pattern of ``desired`` matches and no manifest
    names, sorted. One paged ``_all_dbs`` range per distinct literal prefix."""
    if not desired.patterns:
        return []
    prefixes = sorted({literal_prefix(pattern) for pattern in desired.patterns})
    # A prefix that starts with another prefix is inside that one's range.
    ranges = [p for i, p in enumerate(prefixes) if not any(p.startswith(q) for q in prefixes[:i])]
    found: set[str] = set()
    for prefix in ranges:
        names = client.server.iter_database_names(
            start_key=prefix or None, end_key=prefix + "\ufff0" if prefix else None,
            page_size=DISCOVERY_PAGE)
        found.update(name for name in names if name not in desired.databases
                     and any(matches(pattern, name) for pattern in desired.patterns))
    return sorted(found)


def load_and_read(
    client: Client, paths: Sequence[str | os.PathLike[str]], *,
    only: Sequence[str] | None = None, before_read: BeforeRead | None = None,
    parallel: int = DEFAULT_PARALLEL, environ: Mapping[str, str] | None = None,
    names: DatabaseNames = NO_MAPPING, migrations: MigrationOptions = PREVIEW,
) -> tuple[DesiredState, LiveState]:
    """``load_manifests(paths)``, patterns expanded, then ``read_live_state`` of it, the
    server asked while the manifests load. ``before_read(names)`` gets the databases to be
    read before any is (the apply locks are taken there); ``environ`` supplies ``${VAR}``;
    ``names`` maps declared database names to real ones (``--db-prefix``; ``only`` is in
    declared names)."""
    desired, ahead, only = _load(client, paths, only, before_read, environ, names)
    return desired, read_live_state(client, desired, only=only, prefetched=ahead,
                                    parallel=parallel, migrations=migrations)


def load_and_plan(
    client: Client, paths: Sequence[str | os.PathLike[str]], *,
    only: Sequence[str] | None = None, before_read: BeforeRead | None = None,
    parallel: int = DEFAULT_PARALLEL, on_database: DatabaseProgress | None = None,
    design_deploy: Literal["in_place", "staged"] | None = None,
    environ: Mapping[str, str] | None = None, names: DatabaseNames = NO_MAPPING,
    migrations: MigrationOptions = PREVIEW, incremental: bool = True,
    shard: Shard = ALL, lazy: bool = True, find_converged: bool = True,
) -> tuple[DesiredState, Plan]:
    """``load_and_read`` then ``plan_changes``, database by database (``plan_server``):
    what ``couchsync plan`` and ``apply`` do. ``design_deploy`` overrides every
    database's setting (``apply --design-deploy``); ``environ`` and ``names`` as for
    ``load_and_read``; ``incremental`` and ``find_converged`` as for ``plan_server``;
    ``shard``: only its
    databases (``--shard K/N``); ``lazy``: the documents of a named database a hint
    proves unchanged are not loaded (False for a saved plan, which records them all)."""
    hints: list[StoredHints] = []
    desired, ahead, only = _load(client, paths, only, before_read, environ, names,
                                 hints if incremental else None, shard,
                                 (design_deploy or True) if lazy else None)
    if design_deploy is not None:
        for spec in desired.databases.values():
            spec.design_deploy = design_deploy
    plan = plan_server(client, desired, only=only, prefetched=ahead, parallel=parallel,
                       on_database=on_database, migrations=migrations,
                       incremental=incremental, hints=hints[0] if hints else None,
                       find_converged=find_converged)
    if hints and only is None and find_converged:
        plan.converged.update(dict.fromkeys(_gone(desired, hints[0], shard)))
    return desired, plan


def _load(client: Client, paths: Sequence[str | os.PathLike[str]], only: Sequence[str] | None,
          before_read: BeforeRead | None, environ: Mapping[str, str] | None,
          names: DatabaseNames, hints: list[StoredHints] | None = None,
          shard: Shard = ALL, lazy: DesignDeploy | Literal[True] | None = None,
          ) -> tuple[DesiredState, dict[str, Prefetched], Sequence[str] | None]:
    """``load_manifests`` and ``expand_patterns``, asking the server meanwhile; ``only``
    in real names. ``hints``: the hints are read meanwhile too, into this list, and
    ``prefetch`` starts no read of a database they may prove unchanged. ``lazy`` (the
    ``design_deploy`` given, or True): the documents of a database they prove unchanged
    are not even loaded (``_unchanged_early``)."""
    only = None if only is None else [names.selector(text) for text in only]
    ahead: dict[str, Prefetched] = {}
    matched: list[str] = []

    def declared(given: DesiredState) -> list[str]:
        # With ``only``, resolving the selectors needs the documents: nothing early.
        state = shard.apply(names.apply(given))
        matched.extend(filter(shard.keeps, discover(client, state)))
        if before_read is not None:
            configured = [CONFIG] if state.config or state.prune_config else []
            before_read([*configured, *state.databases, *matched])
        if hints is not None:
            hints.append(read_hints(client, shard))
        ahead.update(prefetch(client, state, hints[0].hints if hints else None))
        if not (hints and lazy):
            return []
        early = _unchanged_early(state, ahead, hints[0].hints,
                                 None if lazy is True else lazy)
        return [name for name in given.databases if names.real(name) in early]

    try:
        desired = shard.apply(names.apply(load_manifests(
            paths, environ=environ, on_declared=None if only else declared)))
        if only:
            matched.extend(filter(shard.keeps, discover(client, desired)))
        desired = expand_patterns(desired, matched)
        if only and before_read is not None:
            before_read(resolve_only(desired, only).keys())
    except BaseException:
        close_scans(ahead)
        raise
    return desired, ahead, only


def _gone(desired: DesiredState, hints: StoredHints, shard: Shard) -> list[str]:
    """The databases of ``shard`` hints are stored for that a pattern of ``desired``
    matches and discovery did not find: deleted (a fleet's per-user databases come and
    go), their hints to be forgotten."""
    return [name for name in hints.hints.databases()
            if name not in desired.databases and shard.keeps(name)
            and any(matches(pattern, name) for pattern in desired.patterns)]


def _unchanged_early(state: DesiredState, ahead: Mapping[str, Prefetched],
                     hints: Mapping[str, Hint], design_deploy: DesignDeploy | None
                     ) -> set[str]:
    """The named databases ``hints`` prove unchanged from what is declared, documents
    unread: their fingerprint comes from their documents' sources (``documents_digest``),
    and no pattern adds to them. ``plan_server`` skips them by the same rule."""
    early = set()
    for name, spec in state.databases.items():
        if spec.documents_digest is None or any(matches(p, name) for p in state.patterns):
            continue
        if design_deploy is not None:  # as load_and_plan sets it once loaded
            spec = replace(spec, design_deploy=design_deploy)
        if full_reason(hints.get(name), fingerprint(spec, code_identity()),
                       _info(ahead.get(name))) is None:
            early.add(name)
    return early


def read_live_state(
    client: Client, desired: DesiredState, *, only: Sequence[str] | None = None,
    prefetched: dict[str, Prefetched] | None = None, parallel: int = DEFAULT_PARALLEL,
    migrations: MigrationOptions = PREVIEW,
) -> LiveState:
    """Read what ``plan_changes(desired, live, only=only)`` needs, ``parallel`` databases at
    a time, raising the first error; ``desired``'s patterns must be expanded already;
    ``prefetched``: what ``prefetch`` asked for (its scans are read or closed)."""
    scopes = resolve_only(desired, only)
    ahead = _with_infos(client, scopes.keys(), prefetched or {}, parallel)
    try:
        names = list(scopes)
        read = ordered_map(lambda name: read_database(client.database(name),
                                                       desired.databases[name], scopes[name],
                                                       ahead.get(name), migrations),
                           names, parallel)
        return LiveState(dict(zip(names, read, strict=True)))
    finally:
        close_scans(ahead)


def plan_server(
    client: Client, desired: DesiredState, *, only: Sequence[str] | None = None,
    prefetched: dict[str, Prefetched] | None = None, parallel: int = DEFAULT_PARALLEL,
    on_database: DatabaseProgress | None = None,
    migrations: MigrationOptions = PREVIEW, incremental: bool = True,
    hints: StoredHints | None = None, shard: Shard = ALL, find_converged: bool = True,
) -> Plan:
    """``plan_changes(desired, read_live_state(...))``, each database's live state dropped
    once it is planned. A database that cannot be read goes to ``Plan.errors``; a lost
    server and wrong credentials are raised. The node config is planned first, when
    ``only`` is None or holds ``CONFIG`` (as apply's re-plan under the lock does).

    ``incremental``: a database that a hint proves unchanged since a run found it
    converged is not read (``Plan.unchanged``); the others say why in
    ``Plan.read_in_full``, and those found converged are in ``Plan.converged``;
    ``hints``: as read already (None: read here, those of ``shard``'s databases).
    ``find_converged``: fill ``Plan.converged``, the hints an apply records; a plan only
    shown need not (on a cluster it costs more infos of each converged database)."""
    databases = None if only is None else [name for name in only if name != CONFIG]
    scopes = resolve_only(desired, databases) if databases != [] else {}
    plan = Plan(secrets=desired.secrets)
    if only is None or CONFIG in only:
        plan.add(DatabasePlan(CONFIG, plan_config(desired, read_config(client, desired)),
                              {}, set()))
    if not (incremental and scopes):
        hints = StoredHints()
    elif hints is None:
        hints = read_hints(client, shard)
    ahead = _with_infos(client, scopes.keys(), prefetched or {}, parallel,
                        every=incremental)
    prints = _fingerprints(desired, scopes)
    if hints.hints:
        plan.unchanged = []
        for name in list(scopes):
            reason = None if desired.databases[name].documents_unread else full_reason(
                hints.hints.get(name), prints[name], _info(ahead.get(name)))
            if reason is None:
                plan.unchanged.append(name)
                del scopes[name]
                close_scans({name: ahead.pop(name)})
            else:
                plan.read_in_full[name] = reason
    values: dict[bytes, Any] | None = {} if len(scopes) > 1 else None
    limits = LimitsReader(client)
    if (warning := fleet_warning(len(scopes) + len(plan.unchanged or ()), limits)) is not None:
        plan.warnings.append(warning)

    def plan_one(name: str) -> DatabasePlan | str:
        scope: Scope = scopes[name]
        spec = desired.databases[name]
        try:
            live = read_database(client.database(name), spec, scope, ahead.pop(name, None),
                                 migrations)
            if name == USERS_DB:  # each password against its stored hash, on every core
                check_passwords(_user_passwords(spec, live), parallel)
            part = plan_checked(spec, live, scope)
        except (TransportError, Unauthorized, MigrationChanged):
            raise  # not about this database: every other one would fail the same way
        except UnreadableDocument as exc:
            return exc.naming(spec)
        except (CouchError, PlanError) as exc:
            return exc.brief if isinstance(exc, CouchError) else str(exc)
        if (refused := too_large(part.steps, spec, limits)) is not None:
            return refused  # the server would refuse it, and its whole batch
        if values is not None:
            _share(part.steps, values)
        return part

    read_at = {name: info for name in scopes if (info := _info(ahead.get(name))) is not None}
    skipped = len(plan.unchanged or ())
    total = skipped + len(scopes)
    if skipped and on_database is not None:
        on_database(skipped, total, 0)
    matching: list[str] = []
    try:
        for done, (name, part) in enumerate(
                zip(scopes, ordered_map(plan_one, list(scopes), parallel), strict=True),
                skipped + 1):
            if isinstance(part, str):
                plan.errors[name] = part
            else:
                plan.add(part)
                if not part.steps and scopes[name].whole and name in read_at:
                    matching.append(name)
            if on_database is not None:
                on_database(done, total, len(plan.errors))
    finally:
        close_scans(ahead)
    _tell_job_states(client, plan)
    if incremental and find_converged:
        _note_converged(client, plan, {name: read_at[name] for name in matching
                                       if prints[name] is not None}, prints, hints.hints,
                        parallel)
    return plan


def _fingerprints(desired: DesiredState, names: Iterable[str]) -> dict[str, str | None]:
    """Each database's ``fingerprint``, taken once for the databases that share a
    pattern's spec (a fleet of 100,000 is one template)."""
    shared: dict[tuple[str, int], str | None] = {}
    prints: dict[str, str | None] = {}
    for name in names:
        spec = desired.databases[name]
        if spec.matched_by is None:
            prints[name] = fingerprint(spec, code_identity())
        else:
            key = (spec.matched_by, id(spec.documents))
            if key not in shared:
                shared[key] = fingerprint(spec, code_identity())
            prints[name] = shared[key]
    return prints


def _note_converged(client: Client, plan: Plan, read_at: Mapping[str, Mapping[str, Any]],
                    prints: Mapping[str, str | None], hints: Mapping[str, Hint],
                    parallel: int) -> None:
    """``plan.converged``: the hint of each database of ``read_at`` (found matching the
    manifests; its info as asked before its read). Only on CouchDB (its info tells the
    ``cluster``): PouchDB Server moves no sequence when ``_security`` is written. A
    cluster's databases are asked again for their other copies' sequences, until each
    copy answered once (or ``CLUSTER_ASKS`` times): the next converged read trusts the
    copies it sees again, whichever answer the plans between."""
    found = {name: info for name, info in read_at.items() if "cluster" in info}
    copies = {name: n for name, info in found.items() if (n := info["cluster"].get("n") or 1) > 1}
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in copies}
    asking = [name for name in copies if not every_copy_seen([found[name]], copies[name])]
    for _ in range(CLUSTER_ASKS):
        if not asking:
            break
        for name, ahead in _with_infos(client, asking, {}, parallel, every=True).items():
            if ahead.info is not None:
                seen[name].append(ahead.info)
        asking = [name for name in asking
                  if not every_copy_seen([found[name], *seen[name]], copies[name])]
    for name, info in found.items():
        printed = prints[name]
        assert printed is not None  # read_at holds only databases with a fingerprint
        plan.converged[name] = converged(hints.get(name), printed, info,
                                         info["cluster"].get("n"), seen.get(name, ()))


def _info(ahead: Prefetched | None) -> dict[str, Any] | None:
    return None if ahead is None else ahead.info


def _user_passwords(spec: DatabaseSpec, live: LiveDatabase
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(declared password, stored user document) of each declared user on the server."""
    for doc_id, doc in spec.documents.items():
        current = live.documents.get(doc_id)
        if doc.secret and current is not None and current.body is not None:
            password = doc.body.get("password")
            if isinstance(password, str):
                yield password, current.body


def _tell_job_states(client: Client, plan: Plan) -> None:
    """Each replication step's reason says its job's state (``_scheduler/docs``), so a
    reviewer sees what the change restarts or stops."""
    changed = [step for step in plan.steps
               if step.database == REPLICATOR_DB and step.action is not Action.CREATE]
    if not changed:
        return
    jobs = client.server.scheduler_docs(REPLICATOR_DB)
    for step in changed:
        state = (jobs.get(step.id or "") or {}).get("state")
        if not state:
            # A cluster's scheduler forgets a finished job, whose end the server wrote
            # into one copy of the document: read with r = n, the newest copy wins.
            try:
                state = client.database(REPLICATOR_DB).get(
                    step.id or "", r=plan.copies.get(REPLICATOR_DB)).get("_replication_state")
            except NotFound:
                state = None
        if state:
            step.reason += f"; its job is {state}"


def _with_infos(client: Client, names: Iterable[str], prefetched: dict[str, Prefetched],
                parallel: int, *, every: bool = False) -> dict[str, Prefetched]:
    """``prefetched``, plus the info of every other database of ``names`` (``None``:
    it does not exist), asked ``INFO_BATCH`` at a time through ``POST /_dbs_info``; of
    one alone only if ``every`` (else its reader asks, in a request it makes anyway)."""
    for early in prefetched.values():
        if isinstance(early.error, TransportError):
            raise early.error  # a lost or hung server: no more asking, no second timeout
    ahead = dict(prefetched)
    missing = [name for name in names if name not in ahead]
    if len(missing) <= (0 if every else 1):
        return ahead  # read_database asks for it itself, with one request too
    for rows in ordered_map(lambda batch: client.server.dbs_info(*batch),
                            list(batched(missing, INFO_BATCH)), parallel):
        for row in rows:
            info = row.get("info")
            # Only what the reader uses: 10,000 databases' full info is megabytes. (Keys
            # the server gave only: PouchDB Server's info has no "cluster".)
            ahead[row["key"]] = Prefetched(None if info is None else {
                key: info[key] for key in _INFO_READ if key in info})
    return ahead


def _share(steps: list[Step], values: dict[bytes, Any]) -> None:
    """Steps of many databases share one object per distinct value (a design doc's new
    body in 10,000 databases is one dict): memory, and the text plan's grouping."""
    def shared(value: Any) -> Any:
        return (values.setdefault(canonical_json(value, drop=()), value)
                if isinstance(value, dict) else value)

    for step in steps:
        if step.spec is None:  # a manifest document is shared already
            step.before, step.after = shared(step.before), shared(step.after)
