"""The ownership record: which documents couchsync wrote, per database.

It lives in local documents (never replicated, never listed in ``_all_docs``,
so it cannot show up as drift). Small records are one document::

    _local/couchsync   {"format": 1, "shards": 1,
                        "managed": {"<doc id>": ["<rev couchsync wrote>", "<content hash>", true]}}

Past ``SHARD_ENTRIES`` documents the entries are spread over ``shards`` (a
power of two) documents ``_local/couchsync.0`` … ``_local/couchsync.N-1``,
each ``{"managed": {...}}``, by CRC-32 of the id; the head then holds only
``format``, ``shards`` and ``digest``. CouchDB refuses documents over
``max_document_size`` (8 MB by default), which one record would pass at about
60,000 entries, and apply rewrites only the shards whose entries changed.

``digest`` (see ``record_digest``) sums up every entry's id, rev and hash. When
the live revisions and the manifests' hashes give the same digest, every entry
is proven current without reading the shards: a no-op plan of a large
database reads the small head, not a megabyte of entries per 10,000 documents.

Before apply writes the first document it creates in a database, it notes
their ids in the head itself when they are few (``"creating_ids": [...]``, at
most ``INLINE_CREATING``: a fleet member's template costs one write), else in
``_local/couchsync.creating.0`` … (up to ``CREATING_IDS`` ids each) and the
head says how many such documents there are (``"creating": K``;
``write_ahead``): a process killed at any instant then leaves no document the
record cannot name. Readers take those ids as *pending* entries (rev ``""``,
``Record.entries``), and the next ``write_record`` stores them as entries and
drops the list. A head with ids written ahead proves nothing by its digest. An
entry whose ``rev`` is ``""`` is pending too: its document is judged by its body.

When the number of shards changes, the new shards get new ids (a new
``generation``: ``_local/couchsync.G.I``), the head is written after them and
the old shards are deleted last, so a process killed in between leaves the old
record whole.

Reading and writing the record (``read_head``, ``write_ahead``, ``write_record``...)
is ``couchsync.read``'s (``read/_ownership.py``); this module does no I/O.

An entry is ``[rev, hash, created]``: ``hash`` is the content hash of the
manifest body that was written (``couchsync._canonical.hash_canonical``),
under the document's seed rule when it has one (``SeedRule.record_hash``:
a new rule is a change of the manifests), ``rev`` the revision the write
produced, or the last revision a plan found holding what the manifests say
(``Plan.confirm``: a document whose ignored fields the application edits
is proven by the record again once apply has noted the new revision). A
create_only document's ``rev`` is ``"*"`` (``CREATE_ONLY_REV``): it is never
compared once it exists, so the application's edits cost no read and keep
the digest's proof.
Together they make the fast no-op: a document whose live revision is still
``rev`` and whose manifest hash is still ``hash`` is unchanged without reading
its body. ``created`` is true when couchsync created the document; ``prune``
deletes only those, so a document someone else created is never deleted,
even after couchsync updated it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from couchsync.manifest.model import DatabaseSpec, DocumentSpec
from couchsync.plan._state import CREATE_ONLY_REV, ManagedDoc

RECORD_ID = "_local/couchsync"  # the head
RECORD_FORMAT = 1
SHARD_ENTRIES = 5_000  # entries per shard document (~700 KB): far below max_document_size


def is_unchanged(spec: DatabaseSpec, doc: DocumentSpec, live_rev: str,
                 entry: ManagedDoc | None) -> bool:
    """True when the record proves the live document equals the manifest's, body unread
    (never for a document holding a secret: the record has no trace of the secret)."""
    return (entry is not None and entry.rev == live_rev and not doc.secret
            and entry.hash == spec.record_hash(doc))


def expected_entry(spec: DatabaseSpec, doc: DocumentSpec, live_rev: str,
                   created: bool) -> ManagedDoc:
    """The entry that vouches for ``doc`` as it is now at ``live_rev``: a create_only
    document's entry holds ``CREATE_ONLY_REV``, whatever the application wrote since."""
    rule = spec.rule(doc.id)
    return ManagedDoc(CREATE_ONLY_REV if rule.create_only else live_rev,
                      rule.record_hash(doc.hash), created)


@dataclass(slots=True)
class Record:
    """A database's ownership record as read, with the revisions needed to rewrite it.

    ``complete`` is False when only the head of a sharded record was read
    (``read_head``); ``read_shards`` completes it.
    """

    managed: dict[str, ManagedDoc] = field(default_factory=dict)  # the entries as stored
    shards: int = 1
    revs: dict[str, str] = field(default_factory=dict)  # local doc id → _rev, as read
    digest: str | None = None  # as the head stores it (records of 0.1.0 have none)
    complete: bool = True
    #: Ids written ahead and not yet recorded (pending; see ``entries``).
    creating: set[str] = field(default_factory=set)
    head: dict[str, Any] | None = None  # the head as stored (for write_ahead), no _id/_rev
    generation: int = 0  # of the shard documents' ids

    def entries(self) -> dict[str, ManagedDoc]:
        """``managed`` with every id written ahead as a pending entry: new ones as
        ``["", "", true]``, recorded ones with their revision cleared (their document is
        judged by its body) and their ``created`` kept."""
        if not self.creating:
            return self.managed
        merged = dict(self.managed)
        for doc_id in self.creating:
            entry = merged.get(doc_id)
            merged[doc_id] = (ManagedDoc("", "", True) if entry is None
                              else entry._replace(rev=""))
        return merged

    def entries_at_least(self) -> int:
        """How many entries the record holds at least, known from the head alone."""
        if self.shards == 1 or self.complete:
            return len(self.managed)
        return self.shards // 2 * SHARD_ENTRIES + 1  # fewer would have taken fewer shards


def record_digest(ids: Iterable[str], entry: Callable[[str], tuple[str, str]]) -> str:
    """The digest of the entries of ``ids``, ``entry(id)`` giving (rev, hash); ``created``
    is left out.

    SHA-256 of the entries in id order, each written unambiguously (the id
    length-prefixed; revisions and hashes hold no NUL), first 128 bits in hex.
    Fed a slice at a time: a record of a million entries is 70 MB of text.
    """
    import hashlib

    digest = hashlib.sha256()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 10_000):
        text = "".join(f"{len(doc_id)}:{doc_id}{rev}\0{content}\n"
                       for doc_id in ordered[start:start + 10_000]
                       for rev, content in (entry(doc_id),))
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:32]


def digest_if_current(spec: DatabaseSpec, revs: Mapping[str, str]) -> str:
    """The digest the record would have if it held exactly the listed documents that
    exist (``revs``: live revision by id), each as the manifests list it now."""
    listed = spec.documents
    return record_digest((doc_id for doc_id in revs
                          if doc_id in listed and not listed[doc_id].deleted),
                         lambda doc_id: expected_entry(spec, listed[doc_id], revs[doc_id],
                                                       False)[:2])


def shard_count(entries: int) -> int:
    """The number of shard documents for ``entries`` entries (1: all in the head)."""
    count = 1
    while entries > count * SHARD_ENTRIES:
        count *= 2
    return count


def shard_doc_id(index: int, generation: int = 0) -> str:
    return f"{RECORD_ID}.{index}" if generation == 0 else f"{RECORD_ID}.{generation}.{index}"


def creating_doc_id(index: int) -> str:
    return f"{RECORD_ID}.creating.{index}"


def split(managed: Mapping[str, ManagedDoc], shards: int) -> list[dict[str, ManagedDoc]]:
    """``managed`` as ``shards`` dicts; an id's shard is its CRC-32 modulo ``shards``."""
    parts: list[dict[str, ManagedDoc]] = [{} for _ in range(shards)]
    for doc_id in sorted(managed):  # sorted: stable bodies, stable diffs of the record
        parts[zlib.crc32(doc_id.encode("utf-8")) & (shards - 1)][doc_id] = managed[doc_id]
    return parts


def record_bodies(managed: Mapping[str, ManagedDoc],
                  generation: int = 0) -> dict[str, dict[str, Any]]:
    """Every local document that stores ``managed``: ``{doc id: body}``, head first."""
    shards = shard_count(len(managed))
    digest = record_digest(managed, lambda doc_id: managed[doc_id][:2])
    head: dict[str, Any] = {"format": RECORD_FORMAT, "shards": shards, "digest": digest}
    if shards == 1:
        return {RECORD_ID: {**head, "managed": dict(sorted(managed.items()))}}
    if generation:
        head["generation"] = generation
    bodies = {RECORD_ID: head}
    for index, part in enumerate(split(managed, shards)):
        bodies[shard_doc_id(index, generation)] = {"managed": part}
    return bodies
