"""The desired state: what the manifests declare, merged and validated.

Every value remembers where it was written (``SourcePos``) so that plans and apply errors
point back at the manifest line. Document bodies are canonical JSON bytes, not dicts:
the form comparing and hashing need, and several times smaller.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from couchsync._canonical import canonical_json, hash_canonical
from couchsync._names import REPLICATOR_DB, USERS_DB
from couchsync.manifest._datafiles import read_span


class SourcePos(NamedTuple):  # a tuple: made for every seed document as it is loaded
    """A place in a manifest or data file; ``line`` and ``col`` count from 1."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    """A file a document or design doc carries as an attachment (``_attachments`` or
    ``_attachments_from`` in a manifest); read again when apply sends it."""

    name: str
    file: str  # resolved from the manifest's directory
    content_type: str
    length: int
    #: ``md5-`` and the base64 of the file's MD5: what CouchDB's stub says of an attachment
    #: it stores as sent (it gzips compressible types, and then digests the gzip).
    digest: str
    source: SourcePos
    directory: str | None = None  # the ``_attachments_from`` it was found in

    def declared(self) -> dict[str, Any]:
        """This attachment as a step's ``_attachments`` entry holds it until apply reads
        the file (``file``: what apply sends; the rest: what the plan compared)."""
        return {"content_type": self.content_type, "length": self.length,
                "digest": self.digest, "file": self.file}


def attachments_hash(attachments: tuple[AttachmentSpec, ...]) -> str:
    """A digest of what ``attachments`` are (not where their files are: a checkout in
    another directory is the same content), for the ownership record's content hash."""
    return hash_canonical(canonical_json(
        [[att.name, att.content_type, att.length, att.digest] for att in attachments]))


@dataclass(slots=True)  # not frozen: a frozen __init__ is slower, and there may be 10^6
class DocumentSpec:
    """A seed document: its id, where it was written, its content hash, and its JSON.

    A document of a JSON Lines file keeps only where its line is (``offset``,
    ``length``) and reads it again when needed: a large seed is not held in memory
    twice. Its hash is taken when loaded; the file must not change before apply.
    """

    id: str
    file: str  # where it was written: file, line and column (see ``source``)
    line: int
    col: int
    digest: str | None  # the content hash, for documents left in their file (or attached)
    deleted: bool = False  # the manifest asks for this document to be deleted
    inline: bytes | None = None  # canonical JSON, when held in memory
    offset: int = -1  # else: where its JSON is in ``file``
    length: int = 0
    #: It holds a secret the server stores only hashed (a ``users:`` password): every plan
    #: checks it, and its ``hash`` leaves the secret out.
    secret: bool = False
    attachments: tuple[AttachmentSpec, ...] = ()  # by name

    @classmethod
    def from_body(
        cls, body: dict[str, Any], source: SourcePos, *, line: tuple[int, int] | None = None,
        numbers_canonical: bool = False,
    ) -> DocumentSpec:
        """The spec of ``body``; with ``line`` (offset, length), its JSON is left in the
        file. ``numbers_canonical``: ``body`` was decoded with ``canonical_decoder``."""
        canonical = canonical_json(body, numbers_canonical=numbers_canonical)
        doc_id, deleted = str(body["_id"]), body.get("_deleted") is True
        if line is None:  # hashed when asked: `couchsync validate` never needs it
            return cls(doc_id, source.file, source.line, source.col, None, deleted,
                       inline=canonical)
        return cls(doc_id, source.file, source.line, source.col, hash_canonical(canonical),
                   deleted, offset=line[0], length=line[1])

    @property
    def hash(self) -> str:
        """The content hash of the document (what the ownership record stores): of its
        body, and its attachments' (``with_attachments_hash``)."""
        if self.digest is not None:
            return self.digest
        body = hash_canonical(self.canonical)
        return body + "+" + attachments_hash(self.attachments) if self.attachments else body

    def with_attachments_hash(self) -> None:
        """Take the content hash now, once: a plan asks for it several times."""
        self.digest = None
        self.digest = self.hash

    @property
    def source(self) -> SourcePos:
        # Made when asked (for messages): a million seed documents keep no million objects.
        return SourcePos(self.file, self.line, self.col)

    @property
    def json(self) -> bytes:
        """The document as JSON bytes (canonical for inline documents)."""
        if self.inline is not None:
            return self.inline
        return read_span(self.file, self.offset, self.length)

    @property
    def canonical(self) -> bytes:
        """The document's canonical JSON, ``_id`` included."""
        return self.inline if self.inline is not None else canonical_json(self.body)

    @property
    def body(self) -> dict[str, Any]:
        """The document as a fresh dict (safe to mutate)."""
        value: dict[str, Any] = json.loads(self.json)
        return value

    @property
    def desired(self) -> dict[str, Any]:
        """``body``, with its declared attachments as ``_attachments`` (``declared``)."""
        return with_attachments(self.body, self.attachments)


def with_attachments(body: dict[str, Any],
                     attachments: tuple[AttachmentSpec, ...]) -> dict[str, Any]:
    """``body`` with ``attachments`` as its ``_attachments`` (unchanged without any)."""
    if not attachments:
        return body
    return {**body, "_attachments": {att.name: att.declared() for att in attachments}}


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A Mango index, ``fields`` and ``partial_filter_selector`` as written (CouchDB keeps
    what ``POST /_index`` was sent); plans compare them by meaning."""

    name: str
    fields: list[str | dict[str, str]]  # a name (ascending) or {name: "asc"|"desc"}
    source: SourcePos
    ddoc: str | None = None  # without the "_design/" prefix
    partial_filter_selector: dict[str, Any] | None = None  # None: not given ({} kept)
    type: str = "json"
    #: A partitioned (True) or global (False) index; None: the database's kind.
    partitioned: bool | None = None

    @property
    def sort_fields(self) -> list[dict[str, str]]:
        return sort_fields(self.fields)


def sort_fields(fields: list[str | dict[str, str]]) -> list[dict[str, str]]:
    """Mango index fields as ``[{name: "asc"|"desc"}, ...]``: a bare name sorts ascending."""
    return [{field: "asc"} if isinstance(field, str) else dict(field) for field in fields]


@dataclass(frozen=True, slots=True)
class DesignDocSpec:
    """A design document; ``body`` holds every field except ``_id`` and ``_rev``."""

    name: str  # without the "_design/" prefix
    body: dict[str, Any]
    source: SourcePos
    attachments: tuple[AttachmentSpec, ...] = ()  # by name

    @property
    def id(self) -> str:
        return f"_design/{self.name}"


@dataclass(frozen=True, slots=True)
class SeedRule:
    """How couchsync keeps a seed document the application edits later: ``create_only``
    (created when missing, never updated), ``ignore`` (dotted field paths neither compared
    nor overwritten)."""

    create_only: bool = False
    ignore: tuple[str, ...] = ()  # sorted, without repeats
    tag: str = ""  # "~" and a digest of the rule (made by ``seed_rule``)

    def record_hash(self, content_hash: str) -> str:
        """What the ownership record keeps: the content hash and the rule's tag, so that a
        change of rule is a change of the manifests (a tag, not a hash of both: cheaper
        on every document of a no-op plan)."""
        return content_hash + self.tag


DEFAULT_RULE = SeedRule()


def ignored_fields(paths: list[str]) -> tuple[str, ...]:
    """An ``ignore:`` list as rules keep it: sorted, each path once (order means nothing)."""
    return tuple(sorted(set(paths)))


@functools.lru_cache(maxsize=1024)
def seed_rule(create_only: bool, ignore: tuple[str, ...]) -> SeedRule:
    """The one ``SeedRule`` of these settings: looked up per document of a seed."""
    if not create_only and not ignore:
        return DEFAULT_RULE
    return SeedRule(create_only, ignore,
                    "~" + hash_canonical(canonical_json([create_only, list(ignore)],
                                                        drop=()))[:8])


@dataclass(frozen=True, slots=True)
class DocumentRule:
    """``document_rules.<id>``: the settings one document overrides (None: the database's)."""

    source: SourcePos
    create_only: bool | None = None
    ignore: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """One entry of a database's ``migrations:`` list: a change to the documents already
    there, run once per database and recorded on the server with ``checksum``.

    Paths are dotted (``contact.email``); a run applies, to each document ``selector``
    matches, ``rename``, ``copy``, ``set_default``, ``set``, ``unset`` and ``transform``
    in that order, or deletes it (``delete``). ``revert`` names a migration run with
    ``keep_originals`` whose documents it restores instead.
    """

    id: str
    source: SourcePos
    #: The definition's digest (the transform's source file included): an applied
    #: migration whose checksum moved is refused unless ``rerun_on_change``.
    checksum: str
    selector: dict[str, Any] | None = None  # None: every document (design docs never)
    rename: dict[str, str] = field(default_factory=dict)
    copy: dict[str, str] = field(default_factory=dict)
    set_default: dict[str, Any] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    transform: str | None = None  # "file.py:function" as written
    transform_file: str | None = None  # the file, resolved from the manifest's directory
    delete: bool = False
    description: str = ""
    rerun_on_change: bool = False
    keep_originals: bool = False
    revert: str | None = None  # the id of the migration this one undoes

    @property
    def transform_function(self) -> str | None:
        """The function's name in ``transform_file``."""
        return None if self.transform is None else self.transform.rpartition(":")[2]


@dataclass(slots=True)
class DatabaseSpec:
    """One database as the manifests (possibly several files, merged) declare it."""

    name: str
    source: SourcePos
    state: Literal["present", "absent"] = "present"
    partitioned: bool | None = None
    q: int | None = None
    n: int | None = None
    placement: str | None = None  # shard copies by zone, "zone-a:2,zone-b:1"
    security: dict[str, Any] | None = None  # None: left alone
    #: Meant to be open to anyone (no members): plan and apply do not warn of it.
    public: bool = False
    prune: bool = False
    #: How index-rebuilding design changes roll out ("staged": ``couchsync.apply._rollout``).
    design_deploy: Literal["in_place", "staged"] = "in_place"
    indexes: dict[str, IndexSpec] = field(default_factory=dict)
    design_docs: dict[str, DesignDocSpec] = field(default_factory=dict)
    documents: dict[str, DocumentSpec] = field(default_factory=dict)  # by _id, manifest order
    #: The seed rule of every document ``document_rules`` does not name (held once here).
    create_only: bool = False
    ignore: tuple[str, ...] = ()
    document_rules: dict[str, DocumentRule] = field(default_factory=dict)  # by _id, sparse
    #: ``migrations:``, in the order they run (manifest files in the order given).
    migrations: list[MigrationSpec] = field(default_factory=list)
    sources: dict[str, SourcePos] = field(default_factory=dict)  # each setting's place
    #: For a database no manifest names: the pattern(s) matching it; never created.
    matched_by: str | None = None
    #: A digest of where its documents come from, in declared order: each inline
    #: document's content hash and each data file's bytes (the loader's; None: the
    #: documents are hashed one by one). What an incremental plan fingerprints.
    documents_digest: str | None = None
    #: Its ``documents_from`` files, as resolved.
    data_files: list[str] = field(default_factory=list)
    #: Its documents were not loaded: an incremental plan proved it unchanged first.
    documents_unread: bool = False

    def rule(self, doc_id: str) -> SeedRule:
        """How ``doc_id`` is kept: its ``document_rules`` entry over the database's."""
        override = self.document_rules.get(doc_id) if self.document_rules else None
        if override is None:
            if not (self.create_only or self.ignore):
                return DEFAULT_RULE  # most databases: no lookup per document
            return seed_rule(self.create_only, self.ignore)
        return seed_rule(
            self.create_only if override.create_only is None else override.create_only,
            self.ignore if override.ignore is None else override.ignore)

    def record_hash(self, doc: DocumentSpec) -> str:
        """What the ownership record keeps for ``doc``: its content under its rule."""
        return self.rule(doc.id).record_hash(doc.hash)


@dataclass(frozen=True, slots=True)
class ConfigSetting:
    """One ``config:`` key: the string the server is to hold, and where it was written."""

    value: str
    source: SourcePos


@dataclass(slots=True)
class DesiredState:
    """Every database the manifests name, in first-seen order, and the patterns, kept
    apart: what they match is known only on the server (``expand_patterns``)."""

    databases: dict[str, DatabaseSpec] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the manifest files read, in order
    patterns: dict[str, DatabaseSpec] = field(default_factory=dict)
    #: ``config:``, section → key → setting, for every node of the cluster.
    config: dict[str, dict[str, ConfigSetting]] = field(default_factory=dict)
    #: ``prune: {config: true}``: keys couchsync set that no manifest declares are deleted.
    prune_config: bool = False
    #: Values that secret variables gave the manifests: plans mask them.
    secrets: frozenset[str] = frozenset()


def summarize(desired: DesiredState) -> str:
    """What ``validate`` prints: ``2 databases, 1 pattern, 14 documents, 3 indexes, 1 design
    doc`` (absent databases counted, a pattern's content once), then the migrations and
    server sections declared: ``2 migrations, 3 config keys, 2 users, 1 replication``."""
    system = (USERS_DB, REPLICATOR_DB)  # counted as users and replications, not databases
    dbs = [*(db for name, db in desired.databases.items() if name not in system),
           *desired.patterns.values()]

    def documents(name: str) -> int:
        return len(desired.databases[name].documents) if name in desired.databases else 0

    counts = [(len(dbs) - len(desired.patterns), "database", "databases"),
              *([(len(desired.patterns), "pattern", "patterns")] if desired.patterns else []),
              (sum(len(db.documents) for db in dbs), "document", "documents"),
              (sum(len(db.indexes) for db in dbs), "index", "indexes"),
              (sum(len(db.design_docs) for db in dbs), "design doc", "design docs")]
    server = [(sum(len(db.migrations) for db in dbs), "migration", "migrations"),
              (sum(len(keys) for keys in desired.config.values()), "config key", "config keys"),
              (documents(USERS_DB), "user", "users"),
              (documents(REPLICATOR_DB), "replication", "replications")]
    return ", ".join(f"{n:,} {one if n == 1 else many}"
                     for n, one, many in [*counts, *(item for item in server if item[0])])


def referenced_files(desired: DesiredState) -> set[str]:
    """Every file a plan of ``desired`` reads: the manifests, their data files, transform
    files and attachment files, and the ``_attachments_from`` directories (what
    ``apply --watch`` watches)."""
    files = set(desired.files)
    for db in (*desired.databases.values(), *desired.patterns.values()):
        files.update(doc.file for doc in db.documents.values())
        files.update(db.data_files)
        attachments = [att for doc in db.documents.values() for att in doc.attachments]
        attachments += [att for design in db.design_docs.values() for att in design.attachments]
        # A directory, for a file added to it later; each file, for one named alone.
        files.update(att.directory or att.file for att in attachments)
        files.update(m.transform_file for m in db.migrations if m.transform_file)
    return files
