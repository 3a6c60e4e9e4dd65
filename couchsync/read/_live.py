"""The live-state reader: what the planner needs from the server, in few requests;
revisions first, bodies only where the record proves nothing (docs/design-notes.md, read)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from couchsync.client import Client, CouchError, Database, NotFound
from couchsync.manifest.model import DatabaseSpec, DesiredState, DocumentSpec
from couchsync.plan import (
    ATTACHMENTS_DDOC,
    MIGRATIONS_DDOC,
    Hint,
    LiveDatabase,
    LiveDoc,
    LiveIndex,
    PlanError,
    Record,
    Scope,
    StepKind,
    batched,
    content_step,
    design_staging_id,
    digest_if_current,
    fetch_decodable,
    identity_digests,
    index_differences,
    index_staging_id,
    is_staging_id,
    is_unchanged,
    read_index_ddoc,
    rebuilds_views,
    seq_tokens,
    shard_copy_ids,
    unresolved,
)
from couchsync.read._migrations import (
    PREVIEW,
    MigrationOptions,
    migrations_record,
    read_previews,
)
from couchsync.read._ownership import read_head, read_shards

#: Scan the whole database when the manifest lists more than 1/SCAN_RATIO of it.
SCAN_RATIO = 10
SCAN_PAGE_SIZE = 10_000  # rows per _all_docs page when scanning (revisions only: small rows)
KEYS_BATCH_SIZE = 2_000  # ids per POST _all_docs revision lookup
BODY_BATCH_SIZE = 500  # ids per include_docs lookup (bodies can be large)
EARLY_SCANS = 8  # revisions scans prefetch sends off at once, each on its own connection
#: A database a pattern matched with this few design docs and documents (a fleet member's
#: template) has them read with their bodies; the record, which could only explain a
#: difference, only if one differs (a named database's head is prefetched, at no wait).
SMALL_READ = 100


@dataclass(slots=True)
class Prefetched:
    """What was asked of one database before its documents were known (``prefetch``)."""

    info: dict[str, Any] | None  # None: the database does not exist
    head: Record | None = None  # the ownership record's head
    scan: Iterator[dict[str, Any]] | None = None  # a revisions scan under way (read ahead)
    error: CouchError | PlanError | None = None  # asking failed; read_live_state raises it


def prefetch(client: Client, declared: DesiredState,
             hints: Mapping[str, Hint] | None = None) -> dict[str, Prefetched]:
    """Ask the server, while the data files load (``load_manifests(on_declared=...)``),
    what ``read_live_state`` will need and can know without documents: each database's
    info and record head, and a revisions scan where one is likely (at most
    ``EARLY_SCANS``: each holds a connection); only the info of a database whose
    sequence is the one its hint in ``hints`` names (its documents decide whether the
    plan skips it). The first failure ends the asking and is raised by
    ``read_live_state``: an unreachable server costs one timeout, and a problem in the
    manifests is still reported first."""
    found: dict[str, Prefetched] = {}
    scans = 0
    for name, spec in declared.databases.items():
        db = client.database(name)
        try:
            info = read_info(db)
            hint = (hints or {}).get(name)
            if info is not None and hint is not None and seq_tokens(info) <= hint.trusted:
                found[name] = Prefetched(info)
                continue
            head = None if info is None or spec.state == "absent" else read_head(db)
        except (CouchError, PlanError) as exc:
            found[name] = Prefetched(None, error=exc)  # read_database raises it first
            break
        scan = None
        if (info is not None and head is not None and scans < EARLY_SCANS
                and head.entries_at_least() * SCAN_RATIO > int(info.get("doc_count", 0))):
            scan = db.iter_all_docs(page_size=SCAN_PAGE_SIZE, read_ahead=True)
            scans += 1
        found[name] = Prefetched(info, head, scan)
    return found


def close_scans(prefetched: Mapping[str, Prefetched]) -> None:
    for ahead in prefetched.values():
        close = getattr(ahead.scan, "close", None)
        if close is not None:
            close()


def read_info(db: Database) -> dict[str, Any] | None:
    """The database's info; None when it does not exist."""
    try:
        return db.info()
    except NotFound:
        return None


def read_database(db: Database, spec: DatabaseSpec, scope: Scope,
                  ahead: Prefetched | None,
                  migrations: MigrationOptions = PREVIEW) -> LiveDatabase:
    live = _read_database(db, spec, scope, ahead, migrations)
    if live.exists and spec.state != "absent":
        _explain_attachments(db, spec, live)
    return live


def _read_database(db: Database, spec: DatabaseSpec, scope: Scope,
                   ahead: Prefetched | None, migrations: MigrationOptions) -> LiveDatabase:
    if ahead is None:
        ahead = Prefetched(read_info(db))
    elif ahead.error is not None:
        raise ahead.error
    info = ahead.info
    if info is None:
        return LiveDatabase(db.name, exists=False)
    live = LiveDatabase(db.name, exists=True, doc_count=int(info.get("doc_count", 0)),
                        copies=(info.get("cluster") or {}).get("n"),
                        partitioned=(info.get("props") or {}).get("partitioned") is True)
    if spec.state == "absent":
        return live
    if scope.whole and (spec.security is not None or _may_be_open(spec, info)):
        live.security = db.get_security()
    design_ids = [d.id for d in spec.design_docs.values() if scope.covers(d.id)]
    # Staging copies a staged apply may have left, in the same request (indexes': below).
    staging_ids = [design_staging_id(d.removeprefix("_design/")) for d in design_ids]
    doc_ids = [doc_id for doc_id in spec.documents if scope.covers(doc_id)]
    small = (spec.matched_by is not None and ahead.head is None and not spec.prune
             and 0 < len(design_ids) + len(doc_ids) + len(spec.indexes) <= SMALL_READ)
    # A small database is read whole: its Mango indexes off its design docs, too.
    whole = small and scope.whole and live.doc_count <= SMALL_READ
    bodies = _all_bodies(db) if whole else None
    if bodies is None:  # not whole, or some body there too deep to decode: by id
        whole = False
        # The migrations' record in the same request (a no-op plan asks nothing more).
        record_ids = [MIGRATIONS_DDOC] if spec.migrations and scope.whole else []
        if design_ids or record_ids or small:  # and the attachment ledger, at no cost
            record_ids.append(ATTACHMENTS_DDOC)
        bodies = read_bodies(db, [*design_ids, *staging_ids, *record_ids,
                                  *(doc_ids if small else ())])
    if scope.whole and spec.indexes:
        found = _mango_indexes(bodies.values(), live.partitioned) if whole else None
        listed: set[str] = set(bodies)  # staging design docs seen
        if found is None:
            found, listed = read_indexes(db, live.partitioned)
        live.indexes = found
        left = [index_staging_id(name) for name in spec.indexes]
        staging_ids += left
        # Read only when _index shows one: a plan without leftovers asks nothing more.
        bodies.update(read_bodies(db, [doc_id for doc_id in left
                                       if doc_id in listed and doc_id not in bodies]))
    # A staging copy left behind names its copies in other shard ranges.
    copies = [doc_id for staging in staging_ids if staging in bodies
              for doc_id in shard_copy_ids(bodies[staging])]
    bodies.update(read_bodies(db, [doc_id for doc_id in copies if doc_id not in bodies]))
    staging_ids += copies
    live.design_docs = {doc_id.removeprefix("_design/"): doc
                        for doc_id, doc in _found(bodies, design_ids).items()}
    if whole or ATTACHMENTS_DDOC in record_ids:
        live.attachments = (bodies.get(ATTACHMENTS_DDOC) or {}).get("written") or {}
        live.ledger_read = True
    live.staging = _found(bodies, staging_ids)
    live.index_sizes = _index_sizes(db, spec, live)
    if spec.migrations and scope.whole:
        record = migrations_record(bodies.get(MIGRATIONS_DDOC))
        live.migrations = record["migrations"]
        live.previews = read_previews(db, spec, record, migrations, info.get("update_seq"))
    if small:
        documents = _found(bodies, doc_ids)
        if not any(_needs_record(spec.documents[doc_id], documents.get(doc_id))
                   for doc_id in doc_ids):
            live.documents = documents  # the record would add nothing to the plan
            return live
    if spec.documents or spec.prune:
        live.documents = _read_documents(db, spec, scope, live, ahead.head or read_head(db),
                                         ahead.scan)
    return live


def _explain_attachments(db: Database, spec: DatabaseSpec, live: LiveDatabase) -> None:
    """Learn what the planner needs to compare attachments without their bytes: the
    ledger (read only where a body read has attachments, if not read with the design
    docs) and, for a stub nothing explains, the attachment's own digest (read: ``unresolved``)."""
    read = [(design.id, design.attachments, live.design_docs.get(name))
            for name, design in spec.design_docs.items()]
    read += [(doc_id, spec.documents[doc_id].attachments, doc)
             for doc_id, doc in live.documents.items()
             if doc.body is not None and doc_id in spec.documents]
    stubbed = [(doc_id, attachments, doc.body.get("_attachments") or {})
               for doc_id, attachments, doc in read
               if doc is not None and doc.body is not None and doc.body.get("_attachments")]
    if not stubbed:
        return
    if not live.ledger_read:
        live.attachments = (read_bodies(db, [ATTACHMENTS_DDOC]).get(ATTACHMENTS_DDOC)
                            or {}).get("written") or {}
        live.ledger_read = True
    live.identity = identity_digests(live.attachments)
    for doc_id, attachments, stubs in stubbed:
        wanted = {att.name: att.declared() for att in attachments}
        for name in unresolved(wanted, stubs, live.identity):
            live.identity[stubs[name]["digest"]] = attachment_digest(db, doc_id, name)


def attachment_digest(db: Database, doc_id: str, name: str) -> str:
    """``md5-`` and the base64 MD5 of an attachment's bytes as the server returns them."""
    import base64
    import hashlib

    data = db.get_attachment(doc_id, name)
    return "md5-" + base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _found(bodies: Mapping[str, dict[str, Any]], ids: Iterable[str]) -> dict[str, LiveDoc]:
    return {doc_id: LiveDoc(bodies[doc_id]["_rev"], bodies[doc_id])
            for doc_id in ids if doc_id in bodies}


def _may_be_open(spec: DatabaseSpec, info: dict[str, Any]) -> bool:
    """Whether to read the ``_security`` the manifests do not declare, to warn if it is
    open to anyone (``_public``): for named, non-public, non-system databases (a fleet
    would cost a request each; CouchDB guards system databases per document), and only
    on CouchDB (its info tells the ``cluster``), where databases are created admin-only:
    every PouchDB Server database is open, and warning would only teach ``public: true``."""
    return (spec.matched_by is None and not spec.public and not spec.name.startswith("_")
            and "cluster" in info)


def _index_sizes(db: Database, spec: DatabaseSpec, live: LiveDatabase) -> dict[str, int]:
    """The size on disk of each index that a planned change rebuilds (the plan states
    what a change costs); asked only for those, so a no-op plan asks nothing more."""
    rebuilt = [f"_design/{name}" for name, design in spec.design_docs.items()
               if (current := live.design_docs.get(name)) is not None
               and rebuilds_views(current.body, design.body)]
    for name, index in spec.indexes.items():
        namesakes = [found for found in live.indexes if found.name == name]
        if namesakes and all(index_differences(index, found, live.partitioned)
                             for found in namesakes):
            rebuilt.append(f"_design/{namesakes[0].ddoc}")
    sizes = {}
    for design_id in dict.fromkeys(rebuilt):
        try:
            size = db.design_info(design_id)["view_index"]["sizes"]["file"]
        except (CouchError, KeyError, TypeError):  # PouchDB Server tells no sizes
            continue
        if isinstance(size, int):
            sizes[design_id] = size
    return sizes


def _needs_record(doc: DocumentSpec, live: LiveDoc | None) -> bool:
    """Whether the ownership record could change what is planned for ``doc``: why it
    differs (the record tells who changed it), or a pending entry to forget (a document
    marked deleted that is gone). A create, or an unchanged document, needs none."""
    return doc.deleted or (live is not None and content_step(
        StepKind.DOCUMENT, "", doc.id, doc.body, live, "") is not None)


def _all_bodies(db: Database) -> dict[str, dict[str, Any]] | None:
    """``{id: body}`` of every document and design doc of a small database; None when
    one is too deep to decode (maybe one the manifests do not list)."""
    try:
        return {row["id"]: row["doc"] for row in db.all_docs(include_docs=True)
                if row.get("doc") is not None}
    except RecursionError:
        return None


def _mango_indexes(bodies: Iterable[dict[str, Any]], partitioned: bool
                   ) -> list[LiveIndex] | None:
    """The json Mango indexes of ``language: query`` design docs (in a database of
    kind ``partitioned``); None when a design doc holds something else (text or Nouveau
    indexes, an unknown form): ask ``_index`` then."""
    found = []
    for body in bodies:
        if body.get("language") != "query" or is_staging_id(body["_id"]):
            continue
        indexes, left = read_index_ddoc(body)
        if left:
            return None
        found += [LiveIndex(index.name, index.ddoc, index.fields, index.partial_filter_selector,
                            partitioned=partitioned if index.partitioned is None
                            else index.partitioned) for index in indexes]
    return found


def read_indexes(db: Database, partitioned: bool) -> tuple[list[LiveIndex], set[str]]:
    """The Mango indexes ``_index`` lists, and the staging design docs it shows (their
    indexes are not in use: left out). ``partitioned``: the database's kind, which
    PouchDB Server (it has no partitions) does not tell per index."""
    listed = db.get_indexes()["indexes"]
    staging = {index["ddoc"] for index in listed if is_staging_id(index.get("ddoc") or "")}
    return [LiveIndex(index["name"], index["ddoc"].removeprefix("_design/"),
                      index["def"]["fields"],
                      # A legacy selector (a design doc written by hand) is the partial filter.
                      index["def"].get("partial_filter_selector")
                      or index["def"].get("selector") or None,
                      index.get("type", "json"), index.get("partitioned", partitioned) is True)
            for index in listed  # the special _all_docs index has no ddoc
            if index.get("ddoc") and index["ddoc"] not in staging], staging


def _read_documents(
    db: Database, spec: DatabaseSpec, scope: Scope, live: LiveDatabase, record: Record,
    scan: Iterator[dict[str, Any]] | None,
) -> dict[str, LiveDoc]:
    if spec.prune or not scope.whole:
        # Prune candidates come from every entry; a selection cannot use the digest.
        record = read_shards(db, record)
    live.managed = record.entries()
    wanted = {doc_id for doc_id in spec.documents if scope.covers(doc_id)}
    if spec.prune:  # prune candidates: recorded, created by couchsync, no longer listed
        wanted.update(
            doc_id for doc_id, entry in live.managed.items()
            if entry.created and doc_id not in spec.documents and scope.covers(doc_id)
        )
    revs = _read_revisions(db, wanted, live.doc_count, scan)
    if not record.complete:
        if record.digest == digest_if_current(spec, revs) and not any(
                spec.documents[doc_id].secret for doc_id in revs if doc_id in spec.documents):
            live.record_digest = record.digest  # the planner checks it again, itself
            return {doc_id: LiveDoc(rev) for doc_id, rev in revs.items()}
        live.managed = read_shards(db, record).entries()
    unproven = dict.fromkeys(  # an ordered set
        doc_id for doc_id, rev in revs.items()
        if (doc := spec.documents.get(doc_id)) is not None
        and not doc.deleted
        and not spec.rule(doc_id).create_only  # never compared once it exists
        and not is_unchanged(spec, doc, rev, live.managed.get(doc_id)))
    # An unproven document not found with its body was deleted since its revision was read.
    documents = {doc_id: LiveDoc(rev) for doc_id, rev in revs.items() if doc_id not in unproven}
    return {**documents, **_found(read_bodies(db, unproven), unproven)}


def _read_revisions(db: Database, wanted: Collection[str], doc_count: int,
                    scan: Iterator[dict[str, Any]] | None = None) -> dict[str, str]:
    """``{id: rev}`` of the ``wanted`` documents that exist (not deleted); ``scan``: a
    revisions scan of the whole database under way, used if scanning is the way."""
    if not wanted or doc_count == 0:  # an empty database (as its info said) holds none
        return {}
    if len(wanted) * SCAN_RATIO <= doc_count:
        return _lookup_revisions(db, wanted)
    found: dict[str, str] = {}
    scanned = 0
    for row in scan or db.iter_all_docs(page_size=SCAN_PAGE_SIZE):
        scanned += 1
        if row["id"] in wanted:
            found[row["id"]] = row["value"]["rev"]
    if scanned < doc_count:
        # The scan saw fewer documents than the database holds: PouchDB Server's range
        # scans skip ids beyond ASCII, and a concurrent writer can move rows between
        # pages. Ask for the missing ids by key, which every server answers exactly.
        found.update(_lookup_revisions(db, [i for i in wanted if i not in found]))
    return found


def _lookup_revisions(db: Database, ids: Collection[str]) -> dict[str, str]:
    return {
        row["id"]: row["value"]["rev"]
        for batch in batched(sorted(ids), KEYS_BATCH_SIZE)
        for row in db.all_docs(keys=batch)
        if "value" in row and not row["value"].get("deleted")
    }


def read_bodies(db: Database, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{id: body}`` of those ``ids`` that exist, ``BODY_BATCH_SIZE`` per request;
    ``UnreadableDocument`` names a body too deep to decode."""
    def fetch(batch: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {row["id"]: row["doc"] for row in db.all_docs(keys=batch, include_docs=True)
                if row.get("doc") is not None}

    return {doc_id: body for batch in batched(ids, BODY_BATCH_SIZE)
            for doc_id, body in fetch_decodable(fetch, batch).items()}
