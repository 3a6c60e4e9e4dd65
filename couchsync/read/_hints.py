"""Incremental plans' I/O: the hints (``plan/_hints.py``) as documents in the lock
database, read in one request and written back by compare-and-swap."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from couchsync._names import LOCK_DB
from couchsync.client import Client, CouchError, Database, NotFound, PreconditionFailed
from couchsync.manifest import Shard
from couchsync.plan import HINT_PREFIX, Hint, Hints, hint_bodies, parse_hints, shard_hint_doc_ids

#: Every database: no ``--shard``.
ALL = Shard()
#: Rounds of re-reading and merging when another run wrote the same hint documents.
WRITE_ROUNDS = 5


@dataclass
class StoredHints:
    """The hint documents as read: bodies and revisions by id, and the hints they hold."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    hints: Hints = field(default_factory=lambda: Hints({}))

    @classmethod
    def of(cls, docs: dict[str, dict[str, Any]]) -> StoredHints:
        return cls(docs, parse_hints(docs))


def read_hints(client: Client, shard: Shard = ALL) -> StoredHints:
    """The hints on the server (none when no apply ever ran there) of the databases of
    ``shard``, and maybe others' (``shard_hint_doc_ids``): one request."""
    db = client.database(LOCK_DB)
    ids = shard_hint_doc_ids(shard.k, shard.n)
    try:
        rows = (db.all_docs(include_docs=True, start_key=HINT_PREFIX,
                            end_key=HINT_PREFIX + "\ufff0") if ids is None
                else db.all_docs(keys=ids, include_docs=True))
    except NotFound:
        return StoredHints()
    return StoredHints.of({row["id"]: row["doc"] for row in rows if row.get("doc")})


def record_hints(client: Client, hints: Mapping[str, Hint | None], shard: Shard = ALL) -> None:
    """Record ``hints`` of databases of ``shard`` (None: forget the database's) over those
    stored. Another run writing the same documents meanwhile (``--shard`` runners do)
    costs a re-read and a merge; a write lost to more rounds than ``WRITE_ROUNDS`` leaves
    an older hint, which names an older sequence and so costs one full read, never a
    wrong skip."""
    db = client.database(LOCK_DB)
    docs = read_hints(client, shard).docs
    # On every copy: the next plan reads them from whichever copy answers first.
    w = _copies(db)
    for _ in range(WRITE_ROUNDS):
        bodies = hint_bodies(hints, docs)
        if not bodies:
            return
        sent = [{**body, "_id": doc_id, **({"_rev": docs[doc_id]["_rev"]}
                                           if doc_id in docs else {})}
                for doc_id, body in bodies.items()]
        try:
            answers = db.bulk_docs(sent, w=w)
        except NotFound:
            with contextlib.suppress(PreconditionFailed):  # created by a racing run
                client.create(LOCK_DB)
            w = _copies(db)
            answers = db.bulk_docs(sent, w=w)
        written = answers.revs()
        docs = {**docs, **{doc["_id"]: {**doc, "_rev": written[doc["_id"]]}
                           for doc in sent if doc["_id"] in written}}
        refused = {doc_id: answer for doc_id, answer in answers.errors().items()
                   if answer["error"] != "conflict"}
        if refused:
            doc_id, answer = next(iter(refused.items()))
            raise CouchError(f"{doc_id} in {LOCK_DB}: {answer['error']}: "
                             f"{answer.get('reason', '')}", error=answer["error"],
                             reason=answer.get("reason"))
        stale = [doc_id for doc_id in bodies if doc_id not in written]
        if not stale:
            return
        rows = db.all_docs(keys=stale, include_docs=True)
        docs.update({row["key"]: row["doc"] for row in rows if row.get("doc")})


def _copies(db: Database) -> int | None:
    """The lock database's ``n`` (None: it does not exist yet, or one copy)."""
    try:
        n = (db.info().get("cluster") or {}).get("n")
    except NotFound:
        return None
    return n if isinstance(n, int) and n > 1 else None
