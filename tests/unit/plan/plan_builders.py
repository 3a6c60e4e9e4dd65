"""Small builders for desired and live states, so planner tests read like the rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from couchsync.manifest.model import (
    DatabaseSpec,
    DesignDocSpec,
    DesiredState,
    DocumentSpec,
    IndexSpec,
    SourcePos,
)
from couchsync.plan import LiveDatabase, LiveDoc, LiveState, ManagedDoc

POS = SourcePos("test.yaml", 1, 1)


def doc(body: dict[str, Any]) -> DocumentSpec:
    return DocumentSpec.from_body(body, POS)


def index(name: str, fields: list[str], **options: Any) -> IndexSpec:
    return IndexSpec(name=name, fields=[{f: "asc"} for f in fields], source=POS, **options)


def design(name: str, body: dict[str, Any]) -> DesignDocSpec:
    return DesignDocSpec(name=name, body=body, source=POS)


def database(
    name: str = "users",
    *,
    documents: Sequence[dict[str, Any]] = (),
    indexes: Sequence[IndexSpec] = (),
    design_docs: Sequence[DesignDocSpec] = (),
    **options: Any,
) -> DatabaseSpec:
    return DatabaseSpec(
        name=name,
        source=POS,
        documents={d["_id"]: doc(d) for d in documents},
        indexes={i.name: i for i in indexes},
        design_docs={d.name: d for d in design_docs},
        **options,
    )


def desired(*databases: DatabaseSpec) -> DesiredState:
    return DesiredState(databases={db.name: db for db in databases})


def live(*databases: LiveDatabase) -> LiveState:
    return LiveState(databases={db.name: db for db in databases})


def live_doc(body: dict[str, Any], rev: str = "1-abc") -> LiveDoc:
    return LiveDoc(rev, {**body, "_rev": rev})


def recorded(body: dict[str, Any], rev: str = "1-abc", *, created: bool = True) -> ManagedDoc:
    """The ownership entry couchsync would have written for ``body`` at ``rev``."""
    return ManagedDoc(rev=rev, hash=doc(body).hash, created=created)


def missing(name: str = "users") -> LiveDatabase:
    return LiveDatabase(name, exists=False)


def existing(name: str = "users", **fields: Any) -> LiveDatabase:
    return LiveDatabase(name, exists=True, **fields)
