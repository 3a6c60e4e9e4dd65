"""The live-state reader: what the planner needs from the server, in few requests.

Per database of the desired state (or of the ``only`` selection): its info
(existence, document count), ``_security`` when the manifest sets it, the
Mango indexes when it declares any, the declared design docs, the ownership
record, and the managed documents.

The ownership record is read in full only when needed: a sharded record's
head carries a digest of its entries, and when the live revisions and the
manifests' hashes give the same digest, every listed document is proven
unchanged without reading the shards (see ``_ownership``).

Documents are read in two passes. First revisions only: a ``POST
_all_docs`` with the ids when they are few, or one paged ``_all_docs`` scan
of the whole database when the manifest lists more than a tenth of it (a
scan streams rows sequentially; per-key lookups cost more per row, so past
that point the scan is cheaper). Then bodies, in batches of ``include_docs``
lookups, only for documents the ownership record cannot prove unchanged — so
re-planning a large unchanged database reads revisions only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from couchsync.client import Client, Database, NotFound
from couchsync.manifest.model import DatabaseSpec, DesiredState
from couchsync.plan._batch import batched
from couchsync.plan._ownership import Record, is_unchanged, read_head, read_shards, record_digest
from couchsync.plan._select import Scope, resolve_only
from couchsync.plan._state import LiveDatabase, LiveDoc, LiveIndex, LiveState

#: Scan the whole database when the manifest lists more than 1/SCAN_RATIO of it.
SCAN_RATIO = 10
SCAN_PAGE_SIZE = 10_000  # rows per _all_docs page when scanning (revisions only: small rows)
KEYS_BATCH_SIZE = 2_000  # ids per POST _all_docs revision lookup
BODY_BATCH_SIZE = 500  # ids per include_docs lookup (bodies can be large)


def read_live_state(
    client: Client, desired: DesiredState, *, only: Sequence[str] | None = None
) -> LiveState:
    """Read what ``plan_changes(desired, live, only=only)`` needs; nothing is written."""
    return LiveState({
        name: _read_database(client.database(name), desired.databases[name], scope)
        for name, scope in resolve_only(desired, only).items()
    })


def _read_database(db: Database, spec: DatabaseSpec, scope: Scope) -> LiveDatabase:
    try:
        info = db.info()
    except NotFound:
        return LiveDatabase(db.name, exists=False)
    live = LiveDatabase(db.name, exists=True, doc_count=int(info.get("doc_count", 0)))
    if spec.state == "absent":
        return live
    if scope.whole and spec.security is not None:
        live.security = db.get_security()
    if scope.whole and spec.indexes:
        live.indexes = _read_indexes(db)
    design_ids = [d.id for d in spec.design_docs.values() if scope.covers(d.id)]
    if design_ids:
        live.design_docs = {
            doc_id.removeprefix("_design/"): LiveDoc(body["_rev"], body)
            for doc_id, body in read_bodies(db, design_ids).items()
        }
    if spec.documents or spec.prune:
        live.documents = _read_documents(db, spec, scope, live, read_head(db))
    return live


def _read_indexes(db: Database) -> list[LiveIndex]:
    return [
        LiveIndex(
            name=index["name"],
            ddoc=index["ddoc"].removeprefix("_design/"),
            fields=index["def"]["fields"],
            partial_filter_selector=index["def"].get("partial_filter_selector") or None,
            type=index.get("type", "json"),
        )
        for index in db.get_indexes()["indexes"]
        if index.get("ddoc")  # the special _all_docs index has none
    ]


def _read_documents(
    db: Database, spec: DatabaseSpec, scope: Scope, live: LiveDatabase, record: Record
) -> dict[str, LiveDoc]:
    if spec.prune or not scope.whole:
        # Prune candidates come from every entry; a selection cannot use the digest.
        record = read_shards(db, record)
    live.managed = record.managed
    wanted = {doc_id for doc_id in spec.documents if scope.covers(doc_id)}
    if spec.prune:  # prune candidates: recorded, created by couchsync, no longer listed
        wanted.update(
            doc_id for doc_id, entry in live.managed.items()
            if entry.created and doc_id not in spec.documents and scope.covers(doc_id)
        )
    revs = _read_revisions(db, wanted, live.doc_count)
    if not record.complete:
        if record.digest == _digest_if_current(spec, revs):
            live.record_proven = True
            return {doc_id: LiveDoc(rev) for doc_id, rev in revs.items()}
        live.managed = read_shards(db, record).managed
    unproven = [
        doc_id for doc_id, rev in revs.items()
        if (doc := spec.documents.get(doc_id)) is not None
        and not doc.deleted
        and not is_unchanged(doc, rev, live.managed.get(doc_id))
    ]
    documents = {doc_id: LiveDoc(rev) for doc_id, rev in revs.items()}
    for doc_id in unproven:
        documents.pop(doc_id)  # deleted since its revision was read, unless found below
    for doc_id, body in read_bodies(db, unproven).items():
        documents[doc_id] = LiveDoc(body["_rev"], body)
    return documents


def _digest_if_current(spec: DatabaseSpec, revs: Mapping[str, str]) -> str:
    """The record's digest if it held exactly the listed documents that exist, as listed."""
    listed = spec.documents
    return record_digest((doc_id, rev, listed[doc_id].hash) for doc_id, rev in revs.items()
                         if not listed[doc_id].deleted)


def _read_revisions(db: Database, wanted: Collection[str], doc_count: int) -> dict[str, str]:
    """``{id: rev}`` of the ``wanted`` documents that exist (not deleted)."""
    if not wanted:
        return {}
    if len(wanted) * SCAN_RATIO <= doc_count:
        return _lookup_revisions(db, wanted)
    found: dict[str, str] = {}
    scanned = 0
    for row in db.iter_all_docs(page_size=SCAN_PAGE_SIZE):
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
    """``{id: body}`` of those ``ids`` that exist, ``BODY_BATCH_SIZE`` per request."""
    return {
        row["id"]: row["doc"]
        for batch in batched(ids, BODY_BATCH_SIZE)
        for row in db.all_docs(keys=batch, include_docs=True)
        if row.get("doc") is not None
    }
