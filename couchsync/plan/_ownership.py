"""The ownership record's format, with no I/O (docs/plan-and-apply.md, "The ownership
record"; why: docs/design-notes.md); ``couchsync.read`` reads and writes it."""

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
    """A database's ownership record as read, with the revisions needed to rewrite it;
    ``complete`` is False when only a sharded record's head was read (``read_head``)."""

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
    """The digest of the entries of ``ids`` (``entry(id)``: rev, hash), each written
    unambiguously, fed a slice at a time (a million entries are 70 MB of text)."""
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
