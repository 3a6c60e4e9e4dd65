"""Incremental plans, with no I/O (docs/plan-and-apply.md, "Incremental plans"): what a
run that found a database converged remembers of it (a ``Hint``: the desired state's
fingerprint and the database's sequence then), and whether the next plan may skip it.
``couchsync.read`` stores hints in the lock database and reads them back.

A hint is self-checking: it names the database's ``update_seq`` and ``purge_seq`` at a
moment the database matched the manifests, so any write since (by anyone, couchsync
included) moves them and the database is read in full again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from couchsync._canonical import canonical_json
from couchsync.manifest.model import AttachmentSpec, DatabaseSpec, attachments_hash
from couchsync.plan._erlang import decode_term

HINTS_FORMAT = 1
#: Hint documents in the lock database: a database's hint is in ``hints:<CRC-32 % 256>``
#: (a million databases: ~4,000 entries, ~250 KB, per document).
HINT_DOCS = 256
HINT_PREFIX = "hints:"

#: Why a database was read in full rather than skipped (the text plan shows them).
NEW = "no apply found it converged yet"
MOVED = "written since an apply found it converged"
EDITED = "its manifests, or couchsync's code, changed since an apply found it converged"
GONE = "not on the server"
OTHER_COPY = "a shard copy not seen before answered (a cluster's)"
UNCONFIRMED = ("found converged once, to be confirmed by a second read (a cluster's copies "
               "may lag each other by a write)")


class Hint(NamedTuple):
    """A database as runs found it converged: ``fingerprint`` of the desired state, and
    the sequences it had then (``seq_tokens``), ``trusted`` or still ``pending``."""

    fingerprint: str
    trusted: frozenset[str]
    pending: frozenset[str] = frozenset()

    def to_json(self) -> list[str]:
        return [self.fingerprint, " ".join(sorted(self.trusted)), " ".join(sorted(self.pending))]

    @classmethod
    def from_json(cls, value: Any) -> Hint | None:
        if isinstance(value, list) and len(value) == 3 and all(
                isinstance(part, str) for part in value):
            return cls(value[0], frozenset(value[1].split()), frozenset(value[2].split()))
        return None  # written by something else: as good as none


def hint_doc_id(database: str) -> str:
    return f"{HINT_PREFIX}{zlib.crc32(database.encode('utf-8')) % HINT_DOCS}"


def shard_hint_doc_ids(k: int, n: int) -> list[str] | None:
    """The hint documents holding the databases of shard ``k`` of ``n`` and no other's, or
    None when every document may hold every shard's. A shard keeps the names whose CRC-32
    is ``k - 1`` modulo ``n`` (``manifest.Shard``), so when ``n`` divides ``HINT_DOCS``
    its databases are in the documents numbered ``k - 1`` modulo ``n``: a runner of a
    million-database fleet split 8 ways reads an eighth of the hints (~40 MB, not 300)."""
    if n == 1 or HINT_DOCS % n:
        return None
    return [f"{HINT_PREFIX}{number}" for number in range(k - 1, HINT_DOCS, n)]


def seq_tokens(info: Mapping[str, Any]) -> frozenset[str]:
    """The database's ``update_seq`` and ``purge_seq`` (a ``_dbs_info`` row's info) as
    short tokens, one per shard copy that answered: its node and range (six characters)
    and its sequence there. A cluster answers each range from whichever copy is first,
    so two asks may name different copies; one sequence the server does not pack (PouchDB
    Server's numbers) is one token."""
    tokens = set()
    for kind in ("update_seq", "purge_seq"):
        seq = info.get(kind)
        for copy, at in _copies(seq) or [("", seq)]:
            tokens.add(_short(f"{kind}\0{copy}", 6) + _short(repr(at), 8))
    return frozenset(tokens)


def every_copy_seen(infos: Iterable[Mapping[str, Any]], copies: int) -> bool:
    """Whether a database's ``infos`` (asked again and again: each names the copy of each
    shard range that answered first) have named all ``copies`` copies of every range."""
    named = {copy for info in infos for copy, _ in _copies(info.get("update_seq")) or ()}
    ranges = {copy.rpartition(" ")[2] for copy in named}
    return len(named) >= len(ranges) * copies


def _short(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:size]


def _copies(seq: Any) -> list[tuple[str, Any]] | None:
    """A packed sequence (``N-`` and base64url of Erlang's compressed external term
    format: ``[{Node, [Begin, End], Seq}]``, fabric_view_changes:pack_seqs) as
    ``(node and range, that copy's sequence)``; None when it is not one."""
    if not isinstance(seq, str) or "-" not in seq:
        return None
    try:
        value = decode_term(seq.split("-", 1)[1])
        return [(f"{node} {begin}-{end}", at) for node, (begin, end), at in value]
    except (ValueError, TypeError, IndexError, struct.error, zlib.error):
        return None


def converged(before: Hint | None, printed: str, info: Mapping[str, Any],
              copies: int | None, seen: Collection[Mapping[str, Any]] = ()) -> Hint:
    """The hint to record for a database read in full and found matching the desired
    state of fingerprint ``printed``, its info (``_dbs_info``) asked before the read: any
    write since moves a sequence it names, and the hint no longer matches.

    One copy of each shard: trusted at once. A cluster's copy may lag another by a write
    for a moment, and the read may come from another copy than the sequence did: a
    copy's sequence is trusted once a second converged read found that copy still at it
    (``pending`` until then). ``seen``: the database's info asked again after the read,
    which names other copies (each ask is answered by the first copy of each range): they
    wait as pending, so that the next converged read trusts every copy it sees again."""
    tokens = seq_tokens(info)
    if (copies or 1) <= 1:
        return Hint(printed, tokens)
    observed = tokens.union(*(seq_tokens(other) for other in seen))
    same = before is not None and before.fingerprint == printed
    trusted = _newest(before.trusted, before.pending & observed) if before and same else (
        frozenset())
    pending = _newest(before.pending if before and same else frozenset(), observed)
    return Hint(printed, trusted, pending - trusted)


def _newest(old: frozenset[str], new: frozenset[str]) -> frozenset[str]:
    """``old`` and ``new``, a copy's token in ``new`` replacing its older one (a copy's
    sequence only grows: an older one can never be seen again)."""
    copies = {token[:6] for token in new}
    return frozenset(token for token in old if token[:6] not in copies) | new


def fingerprint(spec: DatabaseSpec, code: str) -> str | None:
    """A digest of everything in ``spec`` that a plan of its database depends on, and of
    ``code``, the planning code's identity (``couchsync._version.code_identity``); None
    when a plan of it must always read it: a database to be absent (its plan reads one
    info anyway) or one holding a secret (the record cannot vouch for it, and a digest of
    a password is not to be stored)."""
    if spec.state == "absent" or any(doc.secret for doc in spec.documents.values()):
        return None
    digest = hashlib.sha256(canonical_json([
        HINTS_FORMAT, code,
        {name: _plain(getattr(spec, name)) for name in _SETTINGS},
        spec.matched_by is None,  # a named database is created, a matched one never
    ], drop=()))
    if spec.documents_digest is not None:  # the loader's, of the documents' sources
        digest.update(b"sources\0" + spec.documents_digest.encode())
    else:
        for doc_id, doc in spec.documents.items():
            digest.update(f"{doc_id}\0{spec.record_hash(doc)}\0{int(doc.deleted)}\n".encode())
    return digest.hexdigest()[:24]


#: Every setting of a database spec a plan reads, but its documents (hashed one by one).
_SETTINGS = ("state", "partitioned", "q", "n", "placement", "security", "public", "prune",
             "design_deploy", "indexes", "design_docs", "create_only", "ignore",
             "document_rules", "migrations")
#: Where a spec was written, not what it says (a checkout elsewhere is the same state).
_PLACES = frozenset({"source", "file", "directory", "transform_file"})


def _plain(value: Any) -> Any:
    """``value`` as JSON values: dataclasses as dicts without their places."""
    if isinstance(value, tuple) and value and isinstance(value[0], AttachmentSpec):
        return attachments_hash(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in _PLACES}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def full_reason(hint: Hint | None, printed: str | None,
                info: Mapping[str, Any] | None) -> str | None:
    """Why the database must be read in full, or None: ``hint`` proves it still matches
    the desired state of fingerprint ``printed`` (``info``: its ``_dbs_info``, None when it
    does not exist)."""
    if hint is None or printed is None:
        return NEW
    if info is None:
        return GONE
    if hint.fingerprint != printed:
        return EDITED
    tokens = seq_tokens(info)
    if tokens <= hint.trusted:
        return None
    known = hint.trusted | hint.pending
    if tokens <= known:
        return UNCONFIRMED
    copies = {token[:6] for token in known}
    return MOVED if any(token[:6] in copies for token in tokens - known) else OTHER_COPY


def hint_bodies(hints: Mapping[str, Hint | None],
                stored: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The hint documents that change when ``hints`` (None: forget it) are written over
    ``stored`` (by document id, as read): ``{doc id: body without _id and _rev}``."""
    changed: dict[str, dict[str, Any]] = {}
    for database, hint in hints.items():
        doc_id = hint_doc_id(database)
        body = changed.get(doc_id)
        if body is None:
            old = stored.get(doc_id) or {}
            entries = old.get("hints") if old.get("format") == HINTS_FORMAT else None
            body = {"format": HINTS_FORMAT, "hints": dict(entries or {})}
        if hint is None:
            body["hints"].pop(database, None)
        else:
            body["hints"][database] = hint.to_json()
        changed[doc_id] = body
    return {doc_id: body for doc_id, body in changed.items()
            if body["hints"] != (stored.get(doc_id) or {}).get("hints")}


def parse_hints(docs: Mapping[str, Mapping[str, Any]]) -> Hints:
    """The hints that hint documents (by id, as read) hold."""
    stored: dict[str, Any] = {}
    for body in docs.values():
        if body.get("format") == HINTS_FORMAT:  # a newer couchsync's: as good as none
            stored.update(body.get("hints") or {})
    return Hints(stored)


class Hints(Mapping[str, Hint]):
    """Hints by database, each decoded when looked up: a plan of one database on a server
    that keeps 10,000 decodes one (a decode costs 30 µs)."""

    __slots__ = ("_stored",)

    def __init__(self, stored: dict[str, Any]) -> None:
        self._stored = stored

    def __getitem__(self, database: str) -> Hint:
        hint = Hint.from_json(self._stored[database])
        if hint is None:
            raise KeyError(database)
        return hint

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in self._stored.items()
                if Hint.from_json(value) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return bool(self._stored)

    def databases(self) -> Iterator[str]:
        """The databases hints are stored for (not decoded)."""
        return iter(self._stored)
