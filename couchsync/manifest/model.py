"""The desired state: what the manifests declare, merged and validated.

Every value remembers where it was written (``SourcePos``) so that later
stages (the planner, apply errors) can point back at the manifest line.
Document bodies are kept as canonical JSON bytes rather than dicts: it is the
form comparison and hashing need anyway, and it is several times smaller,
which matters for seed files with hundreds of thousands of documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from couchsync._canonical import canonical_json, hash_canonical


@dataclass(frozen=True, slots=True)
class SourcePos:
    """A place in a manifest or data file; ``line`` and ``col`` count from 1."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """A seed document. ``canonical`` is its canonical JSON, ``_id`` included."""

    id: str
    canonical: bytes
    source: SourcePos

    @classmethod
    def from_body(cls, body: dict[str, Any], source: SourcePos) -> DocumentSpec:
        return cls(id=str(body["_id"]), canonical=canonical_json(body), source=source)

    @property
    def body(self) -> dict[str, Any]:
        """The document as a fresh dict (safe to mutate)."""
        value: dict[str, Any] = json.loads(self.canonical)
        return value

    @property
    def deleted(self) -> bool:
        """True when the manifest asks for this document to be deleted (``_deleted: true``)."""
        return b'"_deleted":true' in self.canonical and self.body.get("_deleted") is True

    @property
    def hash(self) -> str:
        """``sha256:<hex>`` of the canonical body: what the ownership record stores."""
        return hash_canonical(self.canonical)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A Mango index. ``fields`` is normalised to ``[{name: "asc"|"desc"}, ...]``."""

    name: str
    fields: list[dict[str, str]]
    source: SourcePos
    ddoc: str | None = None  # without the "_design/" prefix
    partial_filter_selector: dict[str, Any] | None = None
    type: str = "json"


@dataclass(frozen=True, slots=True)
class DesignDocSpec:
    """A design document; ``body`` holds every field except ``_id`` and ``_rev``."""

    name: str  # without the "_design/" prefix
    body: dict[str, Any]
    source: SourcePos

    @property
    def id(self) -> str:
        return f"_design/{self.name}"


@dataclass(slots=True)
class DatabaseSpec:
    """One database as the manifests (possibly several files, merged) declare it."""

    name: str
    source: SourcePos
    state: Literal["present", "absent"] = "present"
    partitioned: bool | None = None
    q: int | None = None
    n: int | None = None
    security: dict[str, Any] | None = None  # None: left alone
    prune: bool = False
    indexes: dict[str, IndexSpec] = field(default_factory=dict)
    design_docs: dict[str, DesignDocSpec] = field(default_factory=dict)
    documents: dict[str, DocumentSpec] = field(default_factory=dict)  # by _id, manifest order
    #: Where each setting given (state, partitioned, q, n, security, prune) was written.
    sources: dict[str, SourcePos] = field(default_factory=dict)


@dataclass(slots=True)
class DesiredState:
    """Every database the manifests describe, by name, in first-seen order."""

    databases: dict[str, DatabaseSpec] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the manifest files read, in order
