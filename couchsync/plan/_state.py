"""The live state: what the server holds, as far as the desired state needs to know.
``couchsync.read`` fills it in and the planner only reads it, so tests build it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class LiveDoc:
    """A document's current revision and, when it had to be read, its body."""

    rev: str
    body: dict[str, Any] | None = None  # None: the revision alone proved it unchanged


@dataclass(frozen=True, slots=True)
class LiveIndex:
    """A Mango index as the server reports it (``ddoc`` without ``_design/``)."""

    name: str
    ddoc: str
    fields: list[dict[str, str]]
    partial_filter_selector: dict[str, Any] | None = None
    type: str = "json"
    partitioned: bool = False  # in effect: its design doc's setting, else the database's


#: The ``rev`` of a create_only document's entry: any revision is what the manifests want.
CREATE_ONLY_REV = "*"


class ManagedDoc(NamedTuple):
    """One entry of the ownership record: what couchsync last wrote to a document. A
    tuple, so that a million entries parse cheaply and are stored as JSON arrays."""

    rev: str  # "" while pending: written ahead by apply, before the document itself
    hash: str
    created: bool  # couchsync created it; only such documents are ever pruned

    @property
    def pending(self) -> bool:
        """Recorded before the write, by an apply that did not get to record its outcome."""
        return not self.rev


class Change(NamedTuple):
    """One document a migration run writes: read at ``rev``, its new ``body`` as sent (a
    tombstone when ``deleted``); for the journal, the new body's ``hash`` (``body_hash``)
    and, with ``keep_originals``, the document as read."""

    id: str
    rev: str
    body: bytes
    deleted: bool
    hash: str | None  # None: the run keeps no journal
    original: dict[str, Any] | None


@dataclass(slots=True)
class Journal:
    """A migration's batches as written ahead and settled: ``revs`` of its journal
    documents, in order; ``migrated``, the id key of every document it wrote;
    ``unsettled``, the batches whose answer a crash lost."""

    revs: list[str] = field(default_factory=list)
    migrated: set[bytes] = field(default_factory=set)
    unsettled: list[dict[str, Any]] = field(default_factory=list)
    since: str | None = None  # the sequence the run began at (batch 0 holds it)


@dataclass(slots=True)
class KeptOutcomes:
    """What a preview made for an apply computed for the documents a migration matched,
    so that its run writes them without reading them again: by id, the change, None
    (left as it is) or why it cannot be migrated; ``boundaries``, the scan's
    (``read.Matching``); ``size``, what they hold, as the budget counts it."""

    outcomes: dict[str, Change | str | None] = field(default_factory=dict)
    boundaries: dict[str, str] = field(default_factory=dict)
    size: int = 0
    #: The migrations record (with its revision) and the migration's journal as the plan
    #: read them, after the apply locks were read: the run reads neither again, as no
    #: other apply wrote them since (one that did makes the apply plan again, under the
    #: locks, keeping nothing).
    record: dict[str, Any] | None = None
    journal: Journal | None = None


@dataclass(slots=True)
class MigrationPreview:
    """What running a migration now would do (``couchsync.read`` runs it on
    every document its selector matches, writing nothing)."""

    matched: int = 0
    changed: int = 0  # deletes included
    deleted: int = 0
    failed: int = 0  # documents the migration cannot change (``errors`` names some)
    done: int = 0  # documents an interrupted run already migrated (not matched again)
    errors: list[str] = field(default_factory=list)
    samples: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    unindexed: bool = False  # CouchDB said no index serves the selector
    #: The database's sequence before the preview read it: a run that starts from it
    #: checks, after its scan, every document written since (an earlier start is safe).
    since: str | None = None
    #: Made for an apply, within its budget: what the run writes instead of scanning.
    kept: KeptOutcomes | None = None


@dataclass(slots=True)
class LiveDatabase:
    """One database on the server."""

    name: str
    exists: bool
    doc_count: int = 0
    copies: int | None = None  # the cluster's n for it, as its info says (None: not told)
    partitioned: bool = False  # as its info says
    security: dict[str, Any] | None = None  # None: not read (the manifest leaves it alone)
    indexes: list[LiveIndex] = field(default_factory=list)
    design_docs: dict[str, LiveDoc] = field(default_factory=dict)  # by name, no _design/
    managed: dict[str, ManagedDoc] = field(default_factory=dict)  # the ownership record
    documents: dict[str, LiveDoc] = field(default_factory=dict)  # existing docs, by id
    #: The record's digest when it proved every listed document unchanged, its entries
    #: then unread (``managed`` lacks them); the planner checks the proof again.
    record_digest: str | None = None
    #: Index size on disk by design doc id, of the indexes a planned change rebuilds.
    index_sizes: dict[str, int] = field(default_factory=dict)
    #: Staging design docs (``_design/couchsync-staged…``) a staged rollout left, by id.
    staging: dict[str, LiveDoc] = field(default_factory=dict)
    #: The migrations that ran or started here (``MIGRATIONS_DDOC``'s ``migrations``),
    #: and what each one still to run would do.
    migrations: dict[str, Any] = field(default_factory=dict)
    previews: dict[str, MigrationPreview] = field(default_factory=dict)
    #: The attachment ledger's entries (``ATTACHMENTS_DDOC``): what couchsync wrote, by
    #: document id, then name: [stub digest, file digest].
    attachments: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    ledger_read: bool = False
    #: File digests of stub digests: the ledger's, and those the reader read attachments
    #: for (``unresolved``).
    identity: dict[str, str] = field(default_factory=dict)

    def attachment_terms(self, doc_id: str, current: LiveDoc | None
                         ) -> dict[str, Any]:
        """``content_step``'s ``owned`` and ``identity`` for the document ``doc_id``."""
        stubs = ((current.body or {}).get("_attachments") or {}) if current else {}
        entry = self.attachments.get(doc_id)
        owned = {name for name, (digest, _) in entry.items()
                 if name in stubs and digest in ("", stubs[name].get("digest"))} if entry else set()
        return {"owned": owned, "identity": self.identity}


@dataclass(slots=True)
class LiveState:
    """Every database of the desired state (or of the ``only`` selection), by name."""

    databases: dict[str, LiveDatabase] = field(default_factory=dict)

    def bodies_read(self) -> int:
        """How many document bodies were read (design docs not counted)."""
        return sum(
            doc.body is not None for db in self.databases.values() for doc in db.documents.values()
        )
