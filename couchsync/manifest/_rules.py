"""Rules the schema cannot express, each a small pure function returning what breaks it.

What JSON Schema can say it says (editors then show the same errors as ``validate``);
these need several values at once (the partitioned flag and an id, other sections).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from couchsync.manifest._patterns import is_pattern
from couchsync.manifest.model import DatabaseSpec, IndexSpec, SourcePos


class _Sourced(Protocol):
    @property
    def source(self) -> SourcePos: ...


def partition_id_problem(doc_id: str, database: str) -> str | None:
    """Documents of a partitioned database need ``partition:id`` ids."""
    partition, colon, rest = doc_id.partition(":")
    if colon and partition and rest and not partition.startswith("_"):
        return None
    return (f"_id {doc_id!r}: database {database!r} is partitioned, so ids must look like "
            "'partition:id' (a partition not starting with '_')")


def absent_database_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """A database declared absent must not also declare content or settings."""
    if db.state != "absent":
        return
    declared_at = db.sources.get("state", db.source)
    declared: list[tuple[str, SourcePos]] = [
        (name, db.sources[name])
        for name in ("partitioned", "q", "n", "placement", "security", "prune", "design_deploy")
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
            yield (index.source, f"index {index.name!r} is kept in design document "
                   f"{index.ddoc!r}, which design_docs also defines (at {design.source}); "
                   f"both would overwrite _design/{index.ddoc}")


def index_partition_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """A partitioned index needs a partitioned database (but in a pattern: the server
    judges those), and the indexes of one design doc one ``partitioned`` setting, as
    CouchDB keeps it per design doc."""
    first_in: dict[str, IndexSpec] = {}
    for index in db.indexes.values():
        if index.partitioned and not db.partitioned and not is_pattern(db.name):
            yield (index.source, f"index {index.name!r} is partitioned, but database "
                   f"{db.name!r} is not declared partitioned: true (CouchDB refuses "
                   "partitioned indexes in a global database)")
        if index.ddoc is None:
            continue  # a design doc of its own, named by CouchDB
        first = first_in.setdefault(index.ddoc, index)
        if first.partitioned != index.partitioned:
            yield (index.source, f"index {index.name!r} has partitioned: "
                   f"{_setting(index.partitioned)} but index {first.name!r} (at {first.source}) "
                   f"in the same design doc {index.ddoc!r} has {_setting(first.partitioned)}; "
                   "CouchDB keeps one setting per design doc")


def _setting(partitioned: bool | None) -> str:
    return "unset" if partitioned is None else str(partitioned).lower()


def seed_rule_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """``document_rules`` name listed, live documents; ``ignore`` means something."""
    if db.create_only and db.ignore:
        yield (db.sources["ignore"], f"ignore has no effect: every seed document of database "
               f"{db.name!r} is create_only (at {db.sources['create_only']}), never updated")
    for doc_id, override in db.document_rules.items():
        doc = db.documents.get(doc_id)
        if doc is None:
            yield (override.source, f"document_rules names {doc_id!r}, which no manifest "
                   f"lists among the documents of database {db.name!r}")
        elif doc.deleted:
            yield (override.source, f"document {doc_id!r} is marked _deleted: true (at "
                   f"{doc.source}): couchsync deletes it, so create_only and ignore cannot "
                   "apply to it")
        elif override.create_only and override.ignore:  # the database's may have both
            yield (override.source, f"ignore has no effect: document {doc_id!r} is "
                   "create_only, never updated")
