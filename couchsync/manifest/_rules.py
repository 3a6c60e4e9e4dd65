"""Semantic rules the schema cannot express; each a small pure function.

Each returns a message (or messages) for the caller to place; None or an empty
list means the rule holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from couchsync.manifest.model import DatabaseSpec, IndexSpec, SourcePos


class _Sourced(Protocol):
    @property
    def source(self) -> SourcePos: ...


def document_id_problem(doc_id: str) -> str | None:
    """Ids a seed document may not have, whatever the database."""
    if doc_id.startswith("_design/"):
        return f"_id {doc_id!r}: design documents go under design_docs, not documents"
    if doc_id.startswith("_local/"):
        return (f"_id {doc_id!r}: _local/ documents are not replicated and couchsync keeps "
                "its own records there; they cannot be seeded")
    if doc_id.startswith("_"):
        return f"_id {doc_id!r}: CouchDB reserves ids that start with '_'"
    if not doc_id:
        return "_id must not be empty"
    return None


def partition_id_problem(doc_id: str, database: str) -> str | None:
    """Documents of a partitioned database need ``partition:id`` ids."""
    partition, colon, rest = doc_id.partition(":")
    if colon and partition and rest and not partition.startswith("_"):
        return None
    return (f"_id {doc_id!r}: database {database!r} is partitioned, so ids must look like "
            "'partition:id' (a partition not starting with '_')")


def normalise_fields(fields: list[str | dict[str, str]]) -> list[dict[str, str]]:
    """Index fields as ``[{name: "asc"|"desc"}]``: a bare name sorts ascending."""
    return [{field: "asc"} if isinstance(field, str) else dict(field) for field in fields]


def mixed_directions_problem(fields: list[str | dict[str, str]]) -> str | None:
    """CouchDB refuses an index whose fields do not all sort the same way."""
    directions = {d for field in normalise_fields(fields) for d in field.values()}
    if len(directions) > 1:
        return "CouchDB needs all fields of an index to use one direction (all asc or all desc)"
    return None


def absent_database_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """A database declared absent must not also declare content or settings."""
    if db.state != "absent":
        return
    declared_at = db.sources.get("state", db.source)
    declared: list[tuple[str, SourcePos]] = [
        (name, db.sources[name]) for name in ("partitioned", "q", "n", "security", "prune")
        if name in db.sources and not (name == "prune" and not db.prune)]
    sections: tuple[tuple[str, Mapping[str, _Sourced]], ...] = (
        ("indexes", db.indexes), ("design_docs", db.design_docs), ("documents", db.documents))
    for what, specs in sections:
        first = next(iter(specs.values()), None)
        if first is not None:
            declared.append((what, first.source))
    for what, where in declared:
        yield (where,
               f"database {db.name!r} is declared absent (at {declared_at}) but also declares "
               f"{what}; a database that is deleted cannot have them")


def ddoc_collision_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """An index may not live in a design document that design_docs also writes."""
    for index in db.indexes.values():
        design = db.design_docs.get(index.ddoc or "")
        if design is not None:
            yield (index.source, _collision(index, design.source))


def _collision(index: IndexSpec, where: SourcePos) -> str:
    return (f"index {index.name!r} is kept in design document {index.ddoc!r}, which "
            f"design_docs also defines (at {where}); both would overwrite _design/{index.ddoc}")
