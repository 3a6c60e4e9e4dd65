"""The ownership record's I/O: read it (whole, or its head then its shards), note ids
ahead of their creation, and rewrite it. Its format, its digest and how entries are
split into shards are pure, in ``couchsync.plan`` (``plan/_ownership.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from couchsync.client import Conflict, CouchError, Database, NotFound
from couchsync.plan import (
    RECORD_FORMAT,
    RECORD_ID,
    ManagedDoc,
    PlanError,
    Record,
    creating_doc_id,
    record_bodies,
    shard_count,
    shard_doc_id,
)

CREATING_IDS = 50_000  # ids written ahead per document (~1 MB at most)
INLINE_CREATING = 1_000  # ids written ahead into the head itself, at most


def _entries(body: Mapping[str, Any]) -> dict[str, ManagedDoc]:
    return {doc_id: ManagedDoc(*entry) for doc_id, entry in body.get("managed", {}).items()}


def _get(db: Database, doc_id: str) -> dict[str, Any] | None:
    try:
        return db.get(doc_id)
    except NotFound:
        return None


def read_record(db: Database) -> Record:
    """The record of ``db`` (empty when couchsync never wrote to it)."""
    return read_shards(db, read_head(db))


def read_head(db: Database) -> Record:
    """The head of the record of ``db``: the whole record unless it is sharded."""
    head = _get(db, RECORD_ID)
    if head is None:
        return Record()
    version = head.get("format")
    if version != RECORD_FORMAT:
        raise PlanError(
            f"{RECORD_ID} in {db.name} has format {version!r}; this couchsync understands "
            f"format {RECORD_FORMAT} (was it written by a newer version?)"
        )
    shards = int(head.get("shards", 1))
    revs = {RECORD_ID: head["_rev"]}
    creating: set[str] = set(head.get("creating_ids", ()))
    for index in range(int(head.get("creating", 0))):
        body = _get(db, creating_doc_id(index))
        if body is not None:
            creating.update(body.get("ids", ()))
            revs[creating_doc_id(index)] = body["_rev"]
    stored = {key: value for key, value in head.items() if key not in ("_id", "_rev")}
    # Ids written ahead are not proven by the digest: their documents must be judged.
    return Record(_entries(head), shards, revs, None if creating else head.get("digest"),
                  complete=shards == 1, creating=creating, head=stored,
                  generation=int(head.get("generation", 0)))


def read_shards(db: Database, record: Record) -> Record:
    """``record`` (as ``read_head`` gave it) with the entries of its shards added."""
    if record.complete:
        return record
    for index in range(record.shards):
        doc_id = shard_doc_id(index, record.generation)
        body = _get(db, doc_id)
        if body is not None:  # a lost shard only costs body reads and protects from prune
            record.managed.update(_entries(body))
            record.revs[doc_id] = body["_rev"]
    record.complete = True
    return record


def write_ahead(db: Database, record: Record, ids: Iterable[str], *,
                w: int | None = None) -> Record:
    """Note ``ids`` in ``db``'s record before any of them is created, so that a process
    killed after this leaves no document the record cannot name; ``record`` with them
    added to its ``creating``. Up to ``INLINE_CREATING`` ids go into the head itself,
    more into ``_local/couchsync.creating.N`` documents the head counts; ``write_record``
    folds them into the entries."""
    creating = sorted(record.creating | set(ids))
    head = {key: value for key, value in (record.head or record_bodies({})[RECORD_ID]).items()
            if key not in ("creating", "creating_ids")}
    revs = dict(record.revs)
    if len(creating) <= INLINE_CREATING:
        head["creating_ids"] = creating  # one write (creating documents left by an
        # earlier write-ahead are in ``revs``: write_record deletes them)
    else:
        chunks = {creating_doc_id(index): {"ids": creating[start:start + CREATING_IDS]}
                  for index, start in enumerate(range(0, len(creating), CREATING_IDS))}
        revs.update(_put(db, chunks, record.revs, w))
        head["creating"] = len(chunks)
    revs.update(_put(db, {RECORD_ID: head}, record.revs, w))
    return Record(record.managed, record.shards, revs, None, record.complete, set(creating),
                  head, record.generation)


def _put(db: Database, bodies: Mapping[str, Mapping[str, Any]], revs: Mapping[str, str],
         w: int | None) -> dict[str, str]:
    """Write local documents in one ``_bulk_docs`` over the revisions in ``revs``; their new
    revisions. Raises Conflict for a stale revision (where the server checks one)."""
    if not bodies:
        return {}
    docs = [{**body, "_id": doc_id, **({"_rev": revs[doc_id]} if doc_id in revs else {})}
            for doc_id, body in bodies.items()]
    answers = db.bulk_docs(docs, w=w)
    written = answers.revs()
    for doc_id, answer in answers.errors().items():
        if answer["error"] == "conflict" and doc_id not in revs:
            # A document the record did not name (a shard left by an interrupted
            # write): PouchDB Server wants its revision, looked up here.
            written[doc_id] = db.update(doc_id, {**bodies[doc_id], "_id": doc_id}, w=w)[1]
        else:
            kind = Conflict if answer["error"] == "conflict" else CouchError
            raise kind(f"{doc_id} in {db.name}: {answer['error']}: {answer.get('reason', '')}",
                       error=answer["error"], reason=answer.get("reason"))
    return written


def write_record(db: Database, before: Record, managed: Mapping[str, ManagedDoc], *,
                 w: int | None = None) -> Record:
    """Store ``managed`` as the record of ``db``, rewriting only the documents that change;
    the record as now stored (for a later ``write_record`` without reading it again).

    Shards go first, the head last, and what the old head named (old shards when they
    are resharded under a new generation of ids, ids written ahead) is deleted after it:
    a process killed at any instant leaves a whole record. Raises Conflict when someone
    else wrote the record since ``before`` was read, where the server checks (CouchDB
    does not for ``_local`` documents: apply holds the database's lock).
    """
    shards = shard_count(len(managed))
    # Shards the head names now are never overwritten by another split of the entries.
    resharded = before.shards > 1 and shards > 1 and shards != before.shards
    generation = before.generation + 1 if resharded else before.generation
    old = {} if resharded or not before.revs else record_bodies(before.managed, generation)
    if before.creating:  # the head as stored counts them: rewritten without
        old.pop(RECORD_ID, None)
    new = record_bodies(managed, generation)
    revs = dict(before.revs)
    changed = [doc_id for doc_id in new
               if new[doc_id] != old.get(doc_id) or doc_id not in before.revs]
    shard_bodies = {doc_id: new[doc_id] for doc_id in changed if doc_id != RECORD_ID}
    revs.update(_put(db, shard_bodies, before.revs, w))  # all shards in one request
    if RECORD_ID in changed:
        revs.update(_put(db, {RECORD_ID: new[RECORD_ID]}, before.revs, w))
    for doc_id in sorted(before.revs.keys() - new.keys()):  # old shards, ids written ahead
        db.delete(doc_id, rev=before.revs[doc_id], w=w)
        del revs[doc_id]
    stored = managed if isinstance(managed, dict) else dict(managed)  # a million: not copied
    return Record(stored, shards, revs, new[RECORD_ID]["digest"], head=new[RECORD_ID],
                  generation=generation)
