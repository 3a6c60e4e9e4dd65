"""The planner: a pure function from (desired state, live state) to a plan.

Only what the manifests declare is compared, so that undeclared things on the server are
left alone; documents compare as canonical JSON, and the ownership record proves a
document unchanged without its body. docs/plan-and-apply.md ("How plan compares") gives
the rules; staged rollouts and their leftovers are ``_staging``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from couchsync._canonical import SERVER_FIELDS, canonical_json
from couchsync._names import USERS_DB
from couchsync.manifest.model import (
    DatabaseSpec,
    DesiredState,
    IndexSpec,
    sort_fields,
    with_attachments,
)
from couchsync.plan._attachments import merged_attachments
from couchsync.plan._designdoc import added_unversioned, with_server_fields
from couchsync.plan._ignore import differing, keep_server_values
from couchsync.plan._mango import normalize_selector
from couchsync.plan._migrate import migration_steps
from couchsync.plan._model import (
    CREATE_ONLY_EXISTING,
    IGNORING_UNREAD,
    Action,
    DatabasePlan,
    Plan,
    Rebuild,
    Step,
    StepKind,
)
from couchsync.plan._ownership import digest_if_current, expected_entry, is_unchanged
from couchsync.plan._public import is_open_to_anyone
from couchsync.plan._select import Scope, resolve_only
from couchsync.plan._staging import (
    changes_validation,
    rebuilds_search,
    rebuilds_views,
    shard_copy_ids,
    staging_id,
)
from couchsync.plan._state import LiveDatabase, LiveDoc, LiveIndex, LiveState, ManagedDoc
from couchsync.plan._system import SERVER_WRITTEN, password_matches

#: Fields left out of every document comparison.
IGNORED_FIELDS = SERVER_FIELDS | {"_id", "_attachments"}

NOT_ON_SERVER = "not on the server"


def plan_changes(desired: DesiredState, live: LiveState, *,
                 only: Sequence[str] | None = None) -> Plan:
    """The steps that make the server match ``desired``; ``live`` must cover every
    database the ``only`` selectors select (``read_live_state`` with them does)."""
    plan = Plan(secrets=desired.secrets)
    for name, scope in resolve_only(desired, only).items():
        current = live.databases.get(name)
        if current is None:
            raise ValueError(f"the live state does not cover database {name!r}")
        plan.add(plan_database(desired.databases[name], current, scope))
    return plan


def plan_database(spec: DatabaseSpec, live: LiveDatabase, scope: Scope) -> DatabasePlan:
    """The steps for one database, and what its ownership record must learn; no I/O."""
    part = DatabasePlan(spec.name, [], {}, set(), live.copies,
                        open_to_anyone=spec.security is None and live.security is not None
                        and is_open_to_anyone(live.security))
    part.steps = list(_database_steps(spec, live, scope, part))
    return part


def _database_steps(spec: DatabaseSpec, live: LiveDatabase, scope: Scope,
                    record: DatabasePlan) -> Iterator[Step]:
    name = spec.name
    if spec.state == "absent":
        if live.exists and scope.whole:
            yield Step(Action.DELETE, StepKind.DATABASE, name,
                       before={"doc_count": live.doc_count}, reason="state: absent")
        return
    if not live.exists:
        if spec.matched_by is not None:
            return  # matched on the server, deleted since: a pattern never creates
        # Also with a document-only scope: the document cannot exist without its database.
        yield Step(Action.CREATE, StepKind.DATABASE, name, after=_create_options(spec),
                   reason=NOT_ON_SERVER)
    if scope.whole:
        yield from _security_steps(spec, live)
    building = [*(_index_steps(spec, live) if scope.whole else ()),
                *_design_doc_steps(spec, live, scope)]
    yield from building
    yield from _staging_cleanup(spec, live, scope, building)
    if scope.whole:
        yield from migration_steps(spec, live.migrations, live.previews)
    yield from _document_steps(spec, live, scope, record)


def _create_options(spec: DatabaseSpec) -> dict[str, Any]:
    options = {"partitioned": spec.partitioned, "q": spec.q, "n": spec.n,
               "placement": spec.placement}
    return {key: value for key, value in options.items() if value is not None}


def _security_steps(spec: DatabaseSpec, live: LiveDatabase) -> Iterator[Step]:
    if spec.security is None:
        return
    if not live.exists:
        yield Step(Action.CREATE, StepKind.SECURITY, spec.name, after=spec.security,
                   reason="set on the new database")
        return
    if live.security is None:
        raise ValueError(f"the live state lacks the _security of {spec.name!r}")
    if canonical_json(live.security) != canonical_json(spec.security):
        yield Step(Action.UPDATE, StepKind.SECURITY, spec.name, before=live.security,
                   after=spec.security, reason="differs from the manifests")


def _index_steps(spec: DatabaseSpec, live: LiveDatabase) -> Iterator[Step]:
    for name, index in spec.indexes.items():
        # The definition as written: apply sends it so, and CouchDB keeps it so.
        wanted = _index_definition(index.ddoc, index.fields, index.partial_filter_selector,
                                   index.type, index.partitioned)
        namesakes = [found for found in live.indexes if found.name == name]
        if not namesakes:
            yield Step(Action.CREATE, StepKind.INDEX, spec.name, name, after=wanted,
                       reason=NOT_ON_SERVER, rebuild=_rebuild(spec, live, None))
            continue
        differences = [index_differences(index, found, live.partitioned) for found in namesakes]
        if any(not diff for diff in differences):
            continue
        # Replace the namesake in the declared ddoc when there is one, else the first.
        pick = next((i for i, f in enumerate(namesakes) if f.ddoc == index.ddoc), 0)
        found, changed = namesakes[pick], differences[pick]
        # What means the same is shown in the manifest's wording, so the diff shows only
        # what really differs.
        before = _index_definition(
            found.ddoc, _worded_as(found.fields, index.fields),
            found.partial_filter_selector if "partial filter" in changed
            else index.partial_filter_selector,
            found.type, found.partitioned if "partitioned" in changed else index.partitioned)
        yield Step(Action.REPLACE, StepKind.INDEX, spec.name, name, before=before,
                   after=wanted, reason=f"{', '.join(changed)} changed",
                   rebuild=_rebuild(spec, live, f"_design/{found.ddoc}"))


def _worded_as(fields: list[dict[str, str]], written: list[Any]) -> list[Any]:
    """Live index ``fields``, each written as the manifest writes the field at its place
    when that means the same (``"a"`` for ``{"a": "asc"}``)."""
    return [written[i] if i < len(written) and sort_fields(written[i:i + 1]) == [field]
            else field for i, field in enumerate(fields)]


def _index_definition(ddoc: str | None, fields: list[Any], selector: dict[str, Any] | None,
                      kind: str, partitioned: bool | None) -> dict[str, Any]:
    given = {"ddoc": ddoc, "partial_filter_selector": selector, "partitioned": partitioned}
    return {"fields": fields, "type": kind,
            **{key: value for key, value in given.items() if value is not None}}


def index_differences(index: IndexSpec, found: LiveIndex, partitioned: bool) -> list[str]:
    """What about ``found`` differs from the declaration, by meaning (empty: the same
    index); ``partitioned``: the database's kind, an index's default."""
    differences = []
    if index.ddoc is not None and index.ddoc != found.ddoc:
        differences.append("design doc")
    if index.sort_fields != found.fields:
        differences.append("fields")
    if (normalize_selector(index.partial_filter_selector)
            != normalize_selector(found.partial_filter_selector)):
        differences.append("partial filter")
    if index.type != found.type:
        differences.append("type")
    if (partitioned if index.partitioned is None else index.partitioned) != found.partitioned:
        differences.append("partitioned")
    return differences


def _design_doc_steps(spec: DatabaseSpec, live: LiveDatabase, scope: Scope) -> Iterator[Step]:
    for name, design in spec.design_docs.items():
        if not scope.covers(design.id):
            continue
        current = live.design_docs.get(name)
        if design.body.get("_deleted") is True:
            if current is not None:
                yield _delete(StepKind.DESIGN_DOC, spec.name, design.id, current,
                              "marked _deleted: true in the manifests")
            continue
        body = with_attachments(with_server_fields(design.body, current.body if current
                                                   else None), design.attachments)
        step = content_step(StepKind.DESIGN_DOC, spec.name, design.id, body, current,
                            "differs from the manifests",
                            **live.attachment_terms(design.id, current))
        if step is None:
            continue
        if rebuilds_views(step.before, step.after):
            step.rebuild = _rebuild(spec, live, design.id)
            if (step.rebuild is not None and step.rebuild["staged"]
                    and changes_validation(step.before, step.after)):
                step.rebuild["staged"] = False
                step.reason += ("; written in place, not staged: its validate_doc_update "
                                "changes, and must be in force before the documents")
        if rebuilds_search(step.before, step.after):
            step.reason += "; search indexes rebuild in place (staging covers views only)"
        if legacy := added_unversioned(design.body, step.before):
            step.reason += (f"; {', '.join(legacy)} added to an existing design doc gets no "
                            "lucene_version from CouchDB: built with legacy Lucene 9 (give "
                            "lucene_version: 10 for the Lucene a new design doc gets)")
        yield step


def _rebuild(spec: DatabaseSpec, live: LiveDatabase, design_id: str | None
             ) -> Rebuild | None:
    """The cost of building an index in ``design_id`` (None: a new one), and whether
    the database's ``design_deploy`` stages it; None in a database apply creates
    (nothing can query it before, nothing to stage)."""
    if not live.exists:
        return None
    return Rebuild(documents=live.doc_count,
                   index_bytes=None if design_id is None else live.index_sizes.get(design_id),
                   staged=spec.design_deploy == "staged")


def _staging_cleanup(spec: DatabaseSpec, live: LiveDatabase, scope: Scope,
                     building: list[Step]) -> Iterator[Step]:
    """Deletes of the staging design docs an interrupted staged apply left that no
    staged step of this plan goes on with."""
    used = set()
    for step in building:
        if step.rebuild and step.rebuild["staged"]:
            used.add(staging_id(step))
            if staging_id(step) in live.staging:
                step.reason += "; goes on with the staged build an earlier apply left"
                used.update(shard_copy_ids(live.staging[staging_id(step)].body or {}))
    for doc_id, current in sorted(live.staging.items()):
        if doc_id not in used and scope.covers(doc_id):
            yield _delete(StepKind.DESIGN_DOC, spec.name, doc_id, current,
                          "staging copy left by an interrupted staged apply")


def _document_steps(spec: DatabaseSpec, live: LiveDatabase, scope: Scope,
                    record: DatabasePlan) -> Iterator[Step]:
    """The document steps; ``record`` learns the entries to confirm and forget, the
    ignored fields the server keeps and the documents left unread."""
    # The record's digest vouches for every existing listed document at once, when it
    # is the digest of these documents as listed here (checked, not taken on trust:
    # the live state may have been read for other manifests).
    proven = live.record_digest is not None and live.record_digest == digest_if_current(
        spec, {doc_id: doc.rev for doc_id, doc in live.documents.items()})
    for doc_id, doc in spec.documents.items():
        if not scope.covers(doc_id):
            continue
        current = live.documents.get(doc_id)
        if doc.deleted:
            if current is not None:
                yield _delete(StepKind.DOCUMENT, spec.name, doc_id, current,
                              "marked _deleted: true in the manifests")
            elif (pending := live.managed.get(doc_id)) is not None and pending.pending:
                record.forget.add(doc_id)
            continue
        if current is None:  # the common case when seeding: no body decoded, none stored
            # create_only or not: Terraform recreates too
            yield Step(Action.CREATE, StepKind.DOCUMENT, spec.name, doc_id,
                       after=doc if not doc.attachments else _creation(doc.desired),
                       reason=NOT_ON_SERVER)
            continue
        entry = live.managed.get(doc_id)
        rule = spec.rule(doc_id)
        if rule.create_only:  # exists: the application's now; the record says so
            record.unread[CREATE_ONLY_EXISTING] = record.unread.get(CREATE_ONLY_EXISTING, 0) + 1
            step = None
        elif (proven and not doc.secret) or is_unchanged(spec, doc, current.rev, entry):
            if rule.ignore:  # its ignored fields are as the last apply left them
                record.unread[IGNORING_UNREAD] = record.unread.get(IGNORING_UNREAD, 0) + 1
            continue
        else:
            step = content_step(StepKind.DOCUMENT, spec.name, doc_id, doc.desired, current,
                                _drift_reason(spec.record_hash(doc), current, entry),
                                ignore=rule.ignore, **live.attachment_terms(doc_id, current))
            if rule.ignore and current.body is not None and (
                    kept := differing(doc.body, current.body, rule.ignore)):
                record.ignored[doc_id] = kept
        if step is not None:
            yield step
        elif entry is not None and entry != (
                now := expected_entry(spec, doc, current.rev, entry.created)):
            # It holds what the manifests say (create_only, its ignored fields edited, an
            # interrupted apply): apply notes the revision, so that the next plan is
            # proven by the record without reading the body.
            record.confirm[doc_id] = now
    if spec.prune:  # every entry's document was looked up (see the reader)
        for doc_id in sorted(live.managed):
            if doc_id in spec.documents or not scope.covers(doc_id):
                continue
            current = live.documents.get(doc_id)
            if current is not None and live.managed[doc_id].created:
                yield _delete(StepKind.DOCUMENT, spec.name, doc_id, current,
                              "created by couchsync, no longer in the manifests (prune: true)")
            elif current is None and live.managed[doc_id].pending:
                record.forget.add(doc_id)


def _drift_reason(record_hash: str, current: LiveDoc | None, entry: ManagedDoc | None) -> str:
    if current is None or entry is None or entry.pending:
        return "differs from the manifests"
    edited_on_server = current.rev != entry.rev
    changed_in_manifest = record_hash != entry.hash
    if edited_on_server and changed_in_manifest:
        return "changed in the manifests and edited on the server"
    if edited_on_server:
        return "edited on the server since couchsync wrote it"
    return "changed in the manifests"


def content_step(kind: StepKind, database: str, doc_id: str, desired: dict[str, Any],
                 current: LiveDoc | None, reason: str, *, ignore: Sequence[str] = (),
                 owned: Collection[str] = (), identity: Mapping[str, str] | None = None,
                 ) -> Step | None:
    """Create, update (explained by ``reason``) or nothing, for a document or design doc.
    Fields the server writes are not compared, a user's ``password`` is checked against
    the stored hash, which an update keeps unless it changed; ``ignore``: fields an update
    keeps as the server has them (a create writes the manifests' values). The declared
    ``_attachments`` of ``desired`` are compared as ``_attachments`` says, ``owned`` and
    ``identity`` being what the ledger knows (``merged_attachments``)."""
    ignored = IGNORED_FIELDS | SERVER_WRITTEN.get(database, frozenset())
    after = _comparable(desired, ignored)
    wanted = desired.get("_attachments")
    if current is None:
        if wanted:
            after["_attachments"] = {name: want for name, want in wanted.items()
                                     if "file" in want}
        return Step(Action.CREATE, kind, database, doc_id, after=after, reason=NOT_ON_SERVER)
    if current.body is None:
        raise ValueError(f"the live state lacks the body of {doc_id!r} in {database!r}")
    before = _comparable(current.body, ignored)
    if ignore:
        after = keep_server_values(after, before, ignore)
    password = after.pop("password", None) if database == USERS_DB else None
    same_password = password is None or password_matches(password, current.body)
    # The live stubs are written back with the new body (all of them, unless the manifests
    # declare attachments): updating a document never drops an attachment by the way.
    stubs = current.body.get("_attachments") or {}
    written, attachments_differ = (merged_attachments(wanted or {}, stubs, owned, identity or {})
                                   if wanted or owned else (stubs, False))
    if same_password and canonical_json(before) == canonical_json(after):
        if not attachments_differ:
            return None
        generic = "differs from the manifests"
        reason = "attachments differ from the manifests" + (
            "" if reason == generic else f" ({reason})")
    carried: dict[str, Any] = {}
    if database == USERS_DB and same_password:  # declared or not: the stored hash stays
        carried.update((key, value) for key, value in current.body.items()
                       if key in SERVER_WRITTEN[USERS_DB])
    if password is not None and not same_password:
        only_password = canonical_json(before) == canonical_json(after)
        reason = "the password differs" if only_password else reason + "; so does the password"
        after["password"] = password
    return Step(Action.UPDATE, kind, database, doc_id,
                before={**before, **carried, **({"_attachments": stubs} if stubs else {})},
                after={**after, **carried, **({"_attachments": written} if written else {})},
                rev=current.rev, reason=reason)


def _creation(desired: dict[str, Any]) -> dict[str, Any]:
    """A created document's ``after``: its declared attachments are all sent."""
    return {key: value for key, value in desired.items() if key != "_id"}


def _delete(kind: StepKind, database: str, doc_id: str, current: LiveDoc, reason: str) -> Step:
    return Step(Action.DELETE, kind, database, doc_id, rev=current.rev, reason=reason)


def _comparable(body: dict[str, Any], ignored: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ignored}
