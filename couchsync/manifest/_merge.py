"""Build the ``DesiredState`` from validated manifest data, merging files as they come:
settings must agree, and each index, design doc and document is defined once; each clash
names both places. Then the rules the schema cannot express (they need several values at
once), each a small pure function yielding (where, message).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Set
from dataclasses import replace
from itertools import chain
from typing import Any

from couchsync._canonical import NotJSONNumber
from couchsync.manifest._attachments import FileDigests, read_attachments
from couchsync.manifest._datacache import NO_CACHE, DataFileCache
from couchsync.manifest._documents_from import read_documents
from couchsync.manifest._javascript import javascript_problems
from couchsync.manifest._migrations import list_problems, read_migration
from couchsync.manifest._patterns import (
    add_migrations,
    combine,
    is_pattern,
    matches,
    merge_spec,
    patterns_overlap,
)
from couchsync.manifest._problems import Path, Problem, conflict, format_path
from couchsync.manifest._server import ServerSections
from couchsync.manifest._yaml import Positions
from couchsync.manifest.model import (
    AttachmentSpec,
    DatabaseSpec,
    DesignDocSpec,
    DesiredState,
    DocumentRule,
    DocumentSpec,
    IndexSpec,
    SourcePos,
    ignored_fields,
)

_SETTINGS = ("state", "partitioned", "q", "n", "placement", "security", "public", "prune",
             "design_deploy", "create_only", "ignore")
#: Sections built entry by entry: a broken entry leaves out only itself.
ENTRY_SECTIONS = ("indexes", "design_docs", "documents", "documents_from")
#: The keys of a document or design doc that declare attachments, not fields.
ATTACHMENT_KEYS = ("_attachments", "_attachments_from")


class StateBuilder:
    """Accumulates databases file by file; ``finish()`` applies the cross-file rules."""

    def __init__(self, cache: DataFileCache = NO_CACHE,
                 digests: FileDigests | None = None) -> None:
        self.state = DesiredState()
        self.problems: list[Problem] = []
        self.cache = cache
        self.digests = digests or FileDigests(None)
        # In manifest order: a document, or a data file (path, as written, where).
        self._documents: list[tuple[DatabaseSpec, DocumentSpec | tuple[str, str, SourcePos],
                                    Path]] = []
        #: config, users, replications, prune (users and replications are documents)
        self.server = ServerSections(self.state, self._problem,
                                     lambda db, doc, path: self._documents.append((db, doc, path)))

    def _problem(self, where: SourcePos, message: str, path: Path = ()) -> None:
        self.problems.append(Problem(*where, message, format_path(path)))

    def add_database(self, file: str, name: str, data: dict[str, Any], positions: Positions,
                     skip: Set[Path] = frozenset()) -> None:
        """Merge one file's declaration of database ``name``, schema-valid but for the
        parts in ``skip`` (paths below ``databases.NAME``), which are left out."""
        base: Path = ("databases", name)

        def at(*path: str | int, key: bool = False) -> SourcePos:
            full = (*base, *path)
            return SourcePos(file, *(positions.key(full) if key else positions.value(full)))

        def entries(section: str) -> list[tuple[Any, Any]]:
            value = {} if (section,) in skip else data.get(section, {})
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            return [(key, entry) for key, entry in pairs if (section, key) not in skip]

        specs = self.state.patterns if is_pattern(name) else self.state.databases
        db = specs.setdefault(name, DatabaseSpec(name=name, source=at(key=True)))
        for setting in _SETTINGS:
            if setting in data and (setting,) not in skip:
                value = (int(data[setting]) if setting in ("q", "n")
                         else ignored_fields(data[setting]) if setting == "ignore"
                         else data[setting])
                self._set(db, setting, value, at(setting), (*base, setting))
        for doc_id, rule in entries("document_rules"):
            where, ignore = at("document_rules", doc_id, key=True), rule.get("ignore")
            override = DocumentRule(where, rule.get("create_only"),
                                    None if ignore is None else ignored_fields(ignore))
            first_rule = db.document_rules.setdefault(doc_id, override)
            if replace(first_rule, source=where) != override:  # its settings differ
                self._problem(where, f"document rule {doc_id!r} of database {name!r} differs "
                              f"from the one at {first_rule.source}",
                              (*base, "document_rules", doc_id))
        for index_name, definition in entries("indexes"):
            index = IndexSpec(
                name=index_name, fields=list(definition["fields"]),
                source=at("indexes", index_name, key=True), ddoc=definition.get("ddoc"),
                partial_filter_selector=definition.get("partial_filter_selector"),
                type=definition.get("type", "json"), partitioned=definition.get("partitioned"))
            first_index = db.indexes.setdefault(index_name, index)
            if first_index is not index:
                self._problem(index.source, f"index {index_name!r} of database {name!r} is "
                              f"already defined at {first_index.source}",
                              (*base, "indexes", index_name))
        base_dir = os.path.dirname(os.path.abspath(file))  # attachment paths start there

        def attachments(body: dict[str, Any], *place: str | int
                        ) -> tuple[dict[str, Any], tuple[AttachmentSpec, ...]]:
            """``body`` without its attachment keys, and the attachments they declare."""
            if not any(key in body for key in ATTACHMENT_KEYS):
                return body, ()
            found, problems = read_attachments(body, base_dir, lambda *within: at(*place, *within),
                                               self.digests)
            for within, message in problems:
                self._problem(at(*place, *within), message, (*base, *place, *within))
            return {k: v for k, v in body.items() if k not in ATTACHMENT_KEYS}, found

        for ddoc_name, written in entries("design_docs"):
            body, carried = attachments(written, "design_docs", ddoc_name)
            design = DesignDocSpec(ddoc_name, body, at("design_docs", ddoc_name, key=True),
                                   carried)
            first = db.design_docs.setdefault(ddoc_name, design)
            if first is not design:
                self._problem(design.source, f"design doc {ddoc_name!r} of database {name!r} is "
                              f"already defined at {first.source}",
                              (*base, "design_docs", ddoc_name))
            for inside, message in javascript_problems(body):
                path = (*base, "design_docs", ddoc_name, *inside)
                self._problem(at("design_docs", ddoc_name, *inside),
                              f"{'.'.join(inside)} of design doc {ddoc_name!r}: {message}", path)
        # Documents are added by add_documents(), once every file is declared (on_declared).
        for i, written in entries("documents"):
            body, carried = attachments(written, "documents", i)
            try:
                spec = DocumentSpec.from_body(body, at("documents", i))
            except NotJSONNumber as exc:
                self._problem(at("documents", i), str(exc), (*base, "documents", i))
                continue
            if carried:
                spec.attachments = carried
                spec.with_attachments_hash()
            self._documents.append((db, spec, (*base, "documents", i)))
        for i, relative in entries("documents_from"):
            data_file = os.path.join(os.path.dirname(file), relative)
            db.data_files.append(data_file)
            self._documents.append((db, (data_file, relative, at("documents_from", i)),
                                    (*base, "documents_from", i)))
        kind = "pattern" if is_pattern(name) else "database"
        for i, entry in entries("migrations"):
            migration, problems = read_migration(entry, file, at("migrations", i))
            for within, message, on_key in problems:
                self._problem(at("migrations", i, *within, key=on_key), message,
                              (*base, "migrations", i, *within))
            for where, clash in add_migrations(db, [migration], f"{kind} {name!r}"):
                self._problem(where, clash, (*base, "migrations", i))

    def digest_documents(self) -> None:
        """Set each named database's ``documents_digest`` from what is declared: its inline
        documents' hashes and its data files' bytes (SHA-256: a tenth of parsing them). A
        data file that cannot be read (adding the documents says why) or a document
        holding a secret leaves it None."""
        import hashlib

        digests: dict[str, Any] = {}
        for db, item, _ in self._documents:
            if db.name not in self.state.databases:
                continue  # a pattern's: its databases' fingerprints hash each document
            digest = digests.setdefault(db.name, hashlib.sha256())
            if digest is None:
                continue
            if isinstance(item, DocumentSpec):
                if item.secret:  # never fingerprinted: see couchsync.plan.fingerprint
                    digests[db.name] = None
                else:
                    digest.update(f"d{item.id}\0{item.hash}\n".encode())
                continue
            content = hashlib.sha256()
            try:
                with open(item[0], "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        content.update(chunk)
            except (OSError, ValueError):
                digests[db.name] = None
                continue
            digest.update(b"f" + content.digest() + b"\n")
        for name, digest in digests.items():
            self.state.databases[name].documents_digest = (
                None if digest is None else digest.hexdigest()[:32])

    def add_documents(self, skip: Collection[str] = ()) -> None:
        """Add the documents and data files of every file declared, in manifest order; the
        databases named in ``skip`` get none (``documents_unread``)."""
        for name in skip:
            self.state.databases[name].documents_unread = True
        for db, item, path in self._documents:
            if db.documents_unread:
                continue
            if isinstance(item, DocumentSpec):
                self._add_document(db, item, path)
            else:
                self._add_documents_from(db, *item, path)
        self._documents.clear()

    def _set(self, db: DatabaseSpec, setting: str, value: Any, where: SourcePos,
             path: Path) -> None:
        first = db.sources.get(setting)
        if first is None:
            setattr(db, setting, value)
            db.sources[setting] = where
        elif getattr(db, setting) != value:
            self._problem(where, f"conflicting {setting} for database {db.name!r}: "
                          f"{conflict(value, getattr(db, setting), first)}", path)

    def _add_document(self, db: DatabaseSpec, doc: DocumentSpec, path: Path = ()) -> None:
        # The schema has already refused ids that are empty or start with '_'.
        first = db.documents.setdefault(doc.id, doc)
        if first is not doc:
            self._problem(doc.source, f"duplicate _id {doc.id!r} in database {db.name!r} "
                          f"(first at {first.source})", path)

    def _add_documents_from(self, db: DatabaseSpec, data_file: str, relative: str,
                            where: SourcePos, path: Path) -> None:
        if "\0" in relative:  # open() would raise ValueError: no file can be named so
            self._problem(where, f"documents_from file {relative!r}: a file name cannot hold "
                          "a NUL character", path)
            return
        try:
            for item in read_documents(data_file, self.cache):
                if isinstance(item, Problem):
                    self.problems.append(item)
                else:
                    self._add_document(db, item)
        except OSError as exc:
            self._problem(where, f"cannot read documents_from file {relative!r} "
                          f"({data_file}): {exc.strerror or exc}", path)

    def finish(self) -> DesiredState:
        """Apply the rules that need every file merged (patterns into the named databases
        they match, pairs of overlapping patterns checked); problems land in ``.problems``."""
        patterns = list(self.state.patterns.values())
        for db in self.state.databases.values():
            if db.state == "absent":
                continue  # deleted: what patterns declare for it does not apply
            # The patterns' migrations run first, then the database's own (docs/manifest.md).
            own, db.migrations = db.migrations, []
            for pattern in patterns:
                if matches(pattern.name, db.name):
                    db.documents_digest = None  # its documents are the pattern's too
                    for where, clash in merge_spec(db, pattern):
                        self._problem(where, clash)
            for where, clash in add_migrations(db, own, f"database {db.name!r}"):
                self._problem(where, clash)
        for i, first in enumerate(patterns):
            for second in patterns[i + 1:]:
                if patterns_overlap(first.name, second.name):
                    for where, clash in combine([first, second])[1]:
                        self._problem(where, clash)
        for db in [*self.state.databases.values(), *patterns]:
            # Unread documents are those of a load that found no problem with them.
            documents = () if db.documents_unread else (
                *_partition_id_problems(db), *_seed_rule_problems(db))
            for where, message in chain(
                    documents, _absent_database_problems(db), _ddoc_collision_problems(db),
                    _index_partition_problems(db), list_problems(db.migrations)):
                self._problem(where, message)
        return self.state


def _partition_id_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """Documents of a partitioned database need ``partition:id`` ids."""
    for doc in db.documents.values() if db.partitioned else ():
        partition, colon, rest = doc.id.partition(":")
        if not (colon and partition and rest and not partition.startswith("_")):
            yield (doc.source, f"_id {doc.id!r}: database {db.name!r} is partitioned, so ids "
                   "must look like 'partition:id' (a partition not starting with '_')")


def _absent_database_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """A database declared absent must not also declare content or settings."""
    if db.state != "absent":
        return
    declared_at = db.sources.get("state", db.source)
    declared: list[tuple[str, SourcePos]] = [
        (name, db.sources[name])
        for name in ("partitioned", "q", "n", "placement", "security", "prune", "design_deploy")
        if name in db.sources and not (name == "prune" and not db.prune)]
    sections: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("indexes", db.indexes), ("design_docs", db.design_docs), ("documents", db.documents))
    declared += [(what, next(iter(specs.values())).source) for what, specs in sections if specs]
    declared += [("migrations", db.migrations[0].source)] if db.migrations else []
    for what, where in declared:
        yield (where,
               f"database {db.name!r} is declared absent (at {declared_at}) but also declares "
               f"{what}; a database that is deleted cannot have them")


def _ddoc_collision_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """An index may not live in a design document that design_docs also writes."""
    for index in db.indexes.values():
        design = db.design_docs.get(index.ddoc or "")
        if design is not None:
            yield (index.source, f"index {index.name!r} is kept in design document "
                   f"{index.ddoc!r}, which design_docs also defines (at {design.source}); "
                   f"both would overwrite _design/{index.ddoc}")


def _index_partition_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
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


def _seed_rule_problems(db: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
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
