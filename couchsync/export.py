"""Export: live databases, users, replications and config → manifest YAML that re-plans
empty against the same server.

What the format cannot hold (a text index) fails the export unless ``skip_unsupported``;
a pattern name exports what all its matches share. Every ``${`` is written ``$${`` and
each credential as a ``${VAR}`` placeholder, so that loading with those variables gives
back what the server holds, without the secret in the file.

With an attachments directory, the attachments of exported documents and design docs are
downloaded into it as files (``_Dir`` lays them out) and the manifest references them
with ``_attachments``; the manifest is returned only once every file is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import yaml

from couchsync._names import REPLICATOR_DB, USER_PREFIX, USERS_DB
from couchsync.client import Client, Database, NotFound, Server
from couchsync.errors import CouchsyncError
from couchsync.manifest import (
    content_type_of,
    is_pattern,
    literal_prefix,
    looks_like_a_number,
    matches,
)
from couchsync.plan import (
    ATTACHMENTS_DDOC,
    CONFIG_SECRET,
    GENERATED_DDOC,
    MIGRATIONS_DDOC,
    RECORD_SECTION,
    SECRET_KEYS,
    SERVER_WRITTEN,
    URL_PASSWORD,
    UnreadableDocument,
    check_bodies,
    is_staging_id,
    read_index_ddoc,
)
from couchsync.read import SCAN_PAGE_SIZE, read_bodies

__all__ = ["ExportError", "export_manifest"]

_DESIGN = "_design/"
_SECURITY_GROUPS = ("admins", "members")  # what the manifest format's security holds
# YAML 1.1 line breaks besides "\n": PyYAML writes them raw, even in single-quoted and
# block scalars, and reads \x85 back as "\n". Only double quotes escape them.
_OTHER_BREAKS = re.compile("[\x85\u2028\u2029]")
# What the manifest format accepts as a config section and a user name (the schema's rules).
_CONFIG_SECTION = re.compile(r"[A-Za-z0-9_.-]+\Z")
_USER_NAME = re.compile(r"[^_:][^:]{0,254}\Z")
# A user's fields never exported: the password, its hash, and what couchsync writes.
_USER_LEFT_OUT = SERVER_WRITTEN[USERS_DB] | {"password", "name", "type"}
# couchsync's records in a database, never exported: the migrations', the attachments'.
_RECORDS = (MIGRATIONS_DDOC, ATTACHMENTS_DDOC)
# What the manifest schema takes as an attachment's content_type (type/subtype, then
# parameters such as "; charset=utf-8").
_MEDIA_TYPE = re.compile(r"[^/\s;]+/[^/\s;]+(\s*;.*)?\Z")
# What a file name cannot hold, or a file system reads as a path or a device; '%' too, so
# that a name written %XX is never another name as it is.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\%:*?"<>|]')
# Longer file names are cut (and told apart by a digest): 255 bytes is the usual limit, and
# a "~2" may be added.
_NAME_BYTES = 200


class ExportError(CouchsyncError):
    """What was asked cannot be exported (nothing, or a refused config section)."""


def export_manifest(client: Client, names: Sequence[str] = (), *, with_docs: bool = False,
                    users: bool = False, replications: bool = False,
                    config: Sequence[str] = (), placeholders: Mapping[str, str] | None = None,
                    notes: Callable[[str], None] | None = None,
                    skip_unsupported: bool = False,
                    attachments_dir: str | os.PathLike[str] | None = None) -> str:
    """Manifest YAML (version 1) of databases ``names`` and the server sections asked
    for, as they are now; ``notes`` hears the variables to set, nodes that disagree and
    what was left out. Raises ``ExportError`` for what cannot be exported.

    With ``attachments_dir``, the attachments of the exported documents and design docs
    are written as files under it, and the manifest names them by paths that start at
    the directory holding ``attachments_dir``: the manifest is to be saved there. Without
    it they are left out (apply leaves them as the server has them), and ``notes`` hears
    how many."""
    if not (names or users or replications or config):
        raise ExportError("nothing to export: name databases (--db), --users, "
                          "--replications or --config SECTION")
    for section in config:
        if section == "admins":
            raise ExportError("config section 'admins' refused: server admins' passwords "
                              "never go through couchsync (create admins with the server's "
                              "own setup)")
        if section == RECORD_SECTION:
            raise ExportError(f"config section {section!r} refused: it is couchsync's own "
                              "record of the config it set")
        if not _CONFIG_SECTION.match(section):
            raise ExportError(f"invalid config section name {section!r}: letters, digits "
                              "and _ . - only")
    note = notes or (lambda _message: None)
    references: dict[str, str] = {}
    for key, value in sorted((placeholders or {}).items()):
        if value:
            references.setdefault(value, key)
    variables = _Variables(references)
    manifest: dict[str, Any] = {"version": 1}
    if config:
        try:
            manifest["config"] = _export_config(client.server, config, variables, note)
        except NotFound as exc:  # PouchDB Server: no /_node/{node}/_config
            raise ExportError("--config: this server has no per-node configuration API "
                              f"({exc.brief}); it needs Apache CouchDB") from None
    if names:
        left_out: list[str] = []

        def leave_out(what: str) -> None:
            left_out.append(what)
            note(f"not exported: {what}")

        matched = _matched(client, names)  # a pattern: every database it matches
        attachments = _Attachments(attachments_dir, leave_out)
        exported = {name: _export_checked(client.get_db(name), with_docs, note, leave_out,
                                          attachments)
                    for name in dict.fromkeys(chain.from_iterable(matched.values()))}
        if left_out and not skip_unsupported:
            raise ExportError("a manifest cannot hold what the 'not exported:' lines name; "
                              "--skip-unsupported exports the rest without it")
        manifest["databases"] = attachments.written(client, note, {
            name: _shared(name, [exported[real] for real in reals], note)
            if is_pattern(name) else exported[name] for name, reals in matched.items()})
    if users:
        manifest["users"] = _export_users(client.get_db(USERS_DB), variables, note)
    if replications:
        manifest["replications"] = _export_replications(client.get_db(REPLICATOR_DB),
                                                        variables)
    if variables.made:
        note("the manifest needs these variables, each set to the credential the server "
             "holds (a URL's password as written there, percent-encoded): "
             + ", ".join(sorted(variables.made)))
    return "# Exported by couchsync export.\n" + _dump_yaml(
        _literal_references(manifest, references))


def _matched(client: Client, names: Sequence[str]) -> dict[str, list[str]]:
    """Each name asked for, with the databases it stands for (a pattern: its matches)."""
    matched: dict[str, list[str]] = {}
    for name in names:
        if not is_pattern(name):
            if not client.database(name).exists():
                raise ExportError(f"database {name!r} does not exist")
            matched[name] = [name]
            continue
        prefix = literal_prefix(name)
        found = [real for real in client.server.iter_database_names(
                     start_key=prefix or None, end_key=prefix + "\ufff0" if prefix else None,
                     page_size=1000)  # names per page of _all_dbs
                 if matches(name, real)]
        if not found:
            raise ExportError(f"no database matches the pattern {name!r}")
        matched[name] = found
    return matched


def _shared(pattern: str, specs: list[dict[str, Any]], note: Callable[[str], None]
            ) -> dict[str, Any]:
    """What every exported database of ``specs`` holds alike, as pattern ``pattern``'s
    entry; ``note`` names what was left out (it differs, or some lack it)."""
    total = len(specs)
    shared: dict[str, Any] = {}
    left: list[str] = []
    securities = {json.dumps(spec.get("security"), sort_keys=True) for spec in specs}
    if len(securities) == 1:
        if "security" in specs[0]:
            shared["security"] = specs[0]["security"]
    else:
        left.append(f"security ({len(securities)} different objects)")
    partitioned = sum(bool(spec.get("partitioned")) for spec in specs)
    if partitioned:  # a pattern never creates a database, so it has no such setting
        left.append(f"partitioned ({partitioned} of {total})")
    for section, kind in (("indexes", "index"), ("design_docs", "design doc"),
                          ("documents", "document")):
        entries = [spec.get(section, {}) for spec in specs]
        if section == "documents":  # a list: compared by _id
            entries = [{doc["_id"]: doc for doc in docs} for docs in entries]
        kept, dropped = _common(entries, kind)
        if kept:
            shared[section] = list(kept.values()) if section == "documents" else kept
        left += dropped
    if left:
        note(f"pattern {pattern!r} ({total:,} database{'s' if total != 1 else ''}): exported "
             "what they all share; left out, and so left as each database has it: "
             + "; ".join(left[:10]) + (f"; … and {len(left) - 10:,} more" if len(left) > 10
                                       else ""))
    return shared


def _common(entries: list[dict[str, Any]], kind: str) -> tuple[dict[str, Any], list[str]]:
    """The entries (by key) every mapping of ``entries`` holds alike, and a line for each
    of the others."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key in dict.fromkeys(key for entry in entries for key in entry):
        holders = [entry[key] for entry in entries if key in entry]
        if len(holders) < len(entries):
            dropped.append(f"{kind} {key!r} (in {len(holders):,} of {len(entries):,})")
        elif any(holder != holders[0] for holder in holders[1:]):
            dropped.append(f"{kind} {key!r} (differs)")
        else:
            kept[key] = holders[0]
    return kept, dropped


def _dump_yaml(data: Any) -> str:
    """``data`` as block-style YAML, for people and diffs."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    """``SafeDumper`` whose strings use ``_string_style``; literal blocks may hold tabs."""

    def analyze_scalar(self, scalar: str) -> Any:
        # PyYAML rules out a block for any tab, though YAML reads a tab inside a block's
        # lines back as it is (code indented with tabs). Each is analysed as a space, so
        # a trailing one still rules the block out, as a trailing space does (editors
        # strip them).
        if "\n" not in scalar or "\t" not in scalar:
            return super().analyze_scalar(scalar)
        analysis = super().analyze_scalar(scalar.replace("\t", " "))
        analysis.scalar = scalar
        return analysis


def _string_style(text: str) -> str | None:
    """``|`` for a multi-line string (PyYAML falls back to double quotes where its
    analysis refuses a block), ``"`` where a block or quotes would lose something (a
    first line starting with a space or a break would need ``|2``), else PyYAML's choice.
    """
    if _OTHER_BREAKS.search(text):
        return '"'
    if "\n" not in text:
        return "'" if looks_like_a_number(text) else None  # 1e5: quiet when read back
    return '"' if text[0] in " \n" else "|"


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style=_string_style(text)))


@dataclass(frozen=True, slots=True)
class _Secret:
    """A string value holding a credential: ``before``, variable ``name``'s value, ``after``."""

    name: str
    before: str = ""
    after: str = ""


class _Variables:
    """Names the variables that stand for credentials: the ``placeholders`` key holding the
    value, else one made from ``wanted`` (``_2``, ``_3``... when two values would share it)."""

    def __init__(self, references: Mapping[str, str]) -> None:
        self.references = references  # value → KEY
        self._taken = set(references.values())
        self.made: dict[str, str] = {}  # name → value
        self.unknowns: list[str] = []  # names of secrets the server does not give back

    def secret(self, wanted: str, value: str, before: str = "", after: str = "") -> _Secret:
        name = self.references.get(value)
        if name is None:
            name = self._free(wanted, value)
            self.made[name] = value
        return _Secret(name, before, after)

    def unknown(self, wanted: str) -> _Secret:
        """A variable for a secret the server keeps only a hash of (a user's password)."""
        name = self._free(wanted, None)
        self.unknowns.append(name)
        self._taken.add(name)
        return _Secret(name)

    def _free(self, wanted: str, value: str | None) -> str:
        """``wanted`` made a variable name, numbered if another value has it."""
        wanted = re.sub("[^A-Z0-9]", "_", wanted.upper())
        name, number = wanted, 1
        while name in self._taken or self.made.get(name, value) != value:
            number += 1
            name = f"{wanted}_{number}"
        return name


def _credentials_out(value: Any, stem: str, variables: _Variables, *, top: bool = False
                     ) -> Any:
    """``value`` with what plan masks as ``_Secret``s named ``STEM_KEY`` (with ``top``:
    ``STEM_FIELD_KEY``)."""
    if isinstance(value, dict):
        return {key: variables.secret(f"{stem}_{key}", item)
                if key.lower() in SECRET_KEYS and isinstance(item, str) and item
                else _credentials_out(item, f"{stem}_{key}" if top else stem, variables)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_credentials_out(item, stem, variables) for item in value]
    if (isinstance(value, str) and value not in variables.references  # all of it a ${KEY}
            and (match := URL_PASSWORD.match(value)) and match[2]):
        return variables.secret(f"{stem}_PASSWORD", match[2], match[1] + ":",
                                value[match.end() - 1:])
    return value


def _literal_references(value: Any, references: Mapping[str, str]) -> Any:
    """``value`` with ``${KEY}`` for each string ``references`` holds and each
    ``_Secret``, and ``$${`` for ``${`` elsewhere (values only: keys are not expanded)."""
    if isinstance(value, _Secret):
        return _escaped(value.before) + "${" + value.name + "}" + _escaped(value.after)
    if isinstance(value, str):
        key = references.get(value)
        return _escaped(value) if key is None else "${" + key + "}"
    if isinstance(value, dict):
        return {key: _literal_references(item, references) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_references(item, references) for item in value]
    return value


def _export_checked(db: Database, with_docs: bool, note: Callable[[str], None],
                    left_out: Callable[[str], None],
                    attachments: _Attachments) -> dict[str, Any]:
    """``_export_database``, refusing (``UnreadableDocument``) what would not load back."""
    try:
        spec = _export_database(db, with_docs, note, left_out, attachments)
        check_bodies([*((f"_design/{name}", body)
                        for name, body in spec.get("design_docs", {}).items()),
                      *((body["_id"], body) for body in spec.get("documents", []))])
    except UnreadableDocument as exc:
        raise UnreadableDocument(exc.doc_id, exc.problem, db.name) from None
    return spec


def _escaped(text: str) -> str:
    return text.replace("${", "$${")


def _export_config(server: Server, sections: Sequence[str], variables: _Variables,
                   note: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    nodes = sorted(server.membership()["cluster_nodes"])
    exported: dict[str, dict[str, Any]] = {}
    for section in sections:
        held = {node: server.config_section(node, section) for node in nodes}
        keys: dict[str, Any] = {}
        for key in sorted(set().union(*held.values())):
            values = {node: held[node].get(key) for node in nodes}
            first = next(node for node in nodes if values[node] is not None)
            secret = bool(CONFIG_SECRET.search(f"{section}/{key}"))
            if len(set(values.values())) > 1:  # a secret's values never shown
                shown = ("differs on " + ", ".join(node for node in nodes
                                                   if values[node] != values[first])
                         if secret else "; ".join(
                             f"{node}: {'unset' if value is None else json.dumps(value)}"
                             for node, value in values.items()))
                note(f"warning: config {section}/{key} is not the same on every node "
                     f"({shown}); exported the value of {first}, and plan will show the "
                     "others as differing")
            value = values[first]
            keys[key] = variables.secret(f"CONFIG_{section}_{key}", value) \
                if secret and value else value
        if keys:
            exported[section] = keys
        else:  # the manifest format has no empty section
            note(f"config section {section!r} holds no key on any node: not exported")
    return exported


def _export_users(db: Database, variables: _Variables,
                  note: Callable[[str], None]) -> dict[str, Any]:
    users: dict[str, Any] = {}
    for doc in _documents(db, USER_PREFIX, USER_PREFIX[:-1] + ";"):  # ';' follows ':'
        name = doc["_id"].removeprefix(USER_PREFIX)
        if not _USER_NAME.match(name):
            note(f"user {name!r} not exported: the manifest format cannot name it")
            continue
        user = _credentials_out(_fields(doc, _USER_LEFT_OUT), f"USER_{name}", variables,
                                top=True)
        if doc.get("derived_key") or doc.get("password_sha"):  # a hash (either scheme)
            user = {"password": variables.unknown(f"COUCHDB_USER_{name}_PASSWORD"), **user}
        users[name] = user
    if variables.unknowns:
        note("users' passwords cannot be read (the server keeps a hash): set "
             + ", ".join(variables.unknowns) + " to each user's password; plan checks "
             "each against the stored hash and shows a change (masked) where it differs")
    return users


def _export_replications(db: Database, variables: _Variables) -> dict[str, Any]:
    return {
        doc["_id"]: _credentials_out(_fields(doc, SERVER_WRITTEN[REPLICATOR_DB]),
                                     f"REPLICATION_{doc['_id']}", variables, top=True)
        for doc in _documents(db)
        if not doc["_id"].startswith(_DESIGN)
    }


def _documents(db: Database, start_key: str | None = None,
               end_key: str | None = None) -> Iterator[dict[str, Any]]:
    """The documents of system database ``db`` (between the keys); none when the server
    has no such database."""
    try:
        for row in db.iter_all_docs(include_docs=True, start_key=start_key, end_key=end_key,
                                    page_size=SCAN_PAGE_SIZE):
            yield row["doc"]
    except NotFound:
        return


def _export_database(db: Database, with_docs: bool, note: Callable[[str], None],
                     left_out: Callable[[str], None],
                     attachments: _Attachments) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if db.info().get("props", {}).get("partitioned"):
        spec["partitioned"] = True
    security = db.get_security()
    spec["security"] = {key: security[key] for key in _SECURITY_GROUPS if key in security}
    # _all_docs sorts ids bytewise: every "_design/..." id lies before "_design0".
    designs = [row["doc"] for row in db.all_docs(start_key=_DESIGN, end_key="_design0",
                                                 include_docs=True)
               # A staged rollout's copies, couchsync's records: never.
               if not is_staging_id(row["id"]) and row["id"] not in _RECORDS]
    # Mango index ddocs (language: query) are exported as indexes.
    spec["indexes"] = _export_indexes(
        [body for body in designs if body.get("language") == "query"],
        lambda what: left_out(f"database {db.name!r}: {what}"),
        lambda what: note(f"database {db.name!r}: {what}"))
    spec["design_docs"] = {
        body["_id"].removeprefix(_DESIGN): attachments.of(db.name, body, _fields(body))
        for body in designs if body.get("language") != "query"
    }
    if with_docs:
        try:
            spec["documents"] = [
                attachments.of(db.name, row["doc"], _fields(row["doc"], keep_id=True))
                for row in db.iter_all_docs(include_docs=True, page_size=SCAN_PAGE_SIZE)
                if not row["id"].startswith(_DESIGN)
            ]
        except RecursionError:  # a body too deep to decode: read by id, which names it
            read_bodies(db, [row["id"] for row in db.iter_all_docs(page_size=SCAN_PAGE_SIZE)])
            raise
    # No empty section; an empty security is one (it declares no admins or members).
    return {key: value for key, value in spec.items() if value or key == "security"}


def _export_indexes(bodies: list[dict[str, Any]], left_out: Callable[[str], None],
                    note: Callable[[str], None]) -> dict[str, Any]:
    """The json indexes of the ``language: query`` design docs ``bodies`` as ``POST
    /_index`` definitions; ``left_out`` hears what the format cannot hold, ``note`` an
    index stored in another form."""
    exported: dict[str, Any] = {}
    where: dict[str, str] = {}
    for body in bodies:
        indexes, others = read_index_ddoc(body)
        for other in others:
            left_out(f"{body['_id']}: {other}")
        for index in indexes:
            if index.name in exported:
                left_out(f"index {index.name!r} of {body['_id']}: the manifest names indexes "
                         f"by name, and {where[index.name]} has one of that name too")
                continue
            if not index.exact:
                note(f"index {index.name!r} of {body['_id']} is stored in a form that POST "
                     "/_index does not write (a legacy selector, or made by hand): exported "
                     "by what it means; apply stores CouchDB's current form of it")
            definition = dict(index.definition)
            # A design doc name CouchDB generated means no choice: a manifest naming it
            # would pin a hash of another request's options.
            if len(indexes) > 1 or not GENERATED_DDOC.match(index.ddoc):
                definition["ddoc"] = index.ddoc
            if index.partitioned is not None:
                definition["partitioned"] = index.partitioned
            exported[index.name], where[index.name] = definition, body["_id"]
    return exported


def _fields(doc: dict[str, Any], left_out: Set[str] = frozenset(), *,
            keep_id: bool = False) -> dict[str, Any]:
    """``doc`` without ``left_out`` and the ``_`` fields (but ``_id`` with ``keep_id``)."""
    return {key: value for key, value in doc.items() if key not in left_out
            and (not key.startswith("_") or (keep_id and key == "_id"))}


@dataclass(frozen=True, slots=True)
class _AttachmentFile:
    """An attachment to write as a file: ``path`` ('/'-separated, under the attachments
    directory) and where to read it. Compared by what the server's stub holds (a pattern
    shares a design doc whose attachments are the same in all its databases)."""

    content_type: str
    length: int
    digest: str
    path: str = field(compare=False)
    db: str = field(compare=False)
    doc_id: str = field(compare=False)
    rev: str = field(compare=False)
    name: str = field(compare=False)


class _Attachments:
    """What becomes of the attachments of the exported documents: files under
    ``directory``, or (None) left out and counted."""

    def __init__(self, directory: str | os.PathLike[str] | None,
                 left_out: Callable[[str], None]) -> None:
        self.directory = directory
        self._left_out = left_out
        self._layout = _Dir("")
        self.not_exported = 0

    def of(self, db: str, doc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``body`` (what is exported of ``doc``) with ``doc``'s attachments as files
        to write (``_AttachmentFile``)."""
        stubs: dict[str, Any] = doc.get("_attachments") or {}
        if not stubs:
            return body
        if self.directory is None:
            self.not_exported += len(stubs)
            return body
        folder = self._layout.directory(_file_name(db))
        doc_id = str(doc["_id"])
        if doc_id.startswith(_DESIGN):  # <db>/_design/<name>/: no document id starts with _
            folder = folder.directory("_design").directory(
                _file_name(doc_id.removeprefix(_DESIGN)), own=True)
        else:
            folder = folder.directory(_file_name(doc_id), own=True)
        files: dict[str, _AttachmentFile] = {}
        for name, stub in sorted(stubs.items()):
            content_type = str(stub.get("content_type", ""))
            if not _MEDIA_TYPE.match(content_type):
                self._left_out(f"database {db!r}: {doc_id}: attachment {name!r}: its content "
                               f"type {content_type!r} is not a media type (type/subtype) a "
                               "manifest holds")
                continue
            files[name] = _AttachmentFile(content_type, stub["length"], stub["digest"],
                                          _file_path(folder, name), db, doc_id,
                                          str(doc["_rev"]), name)
        return {**body, "_attachments": files} if files else body

    def written(self, client: Client, note: Callable[[str], None],
                databases: dict[str, Any]) -> dict[str, Any]:
        """``databases`` with each attachment file written and named as a manifest does;
        ``note`` hears how many were written, or left out."""
        if self.directory is None:
            if self.not_exported:
                note(f"left out: {self.not_exported:,} attachment"
                     f"{'s' if self.not_exported != 1 else ''} of the exported documents and "
                     "design docs (apply leaves them as the server has them); "
                     "--attachments-dir DIR exports them as files")
            return databases
        root = os.path.abspath(self.directory)
        written: dict[str, int] = {}  # path → length: each file once (a pattern shares it)

        def reference(att: _AttachmentFile) -> str | dict[str, str]:
            if att.path not in written:
                written[att.path] = _download(client, att, root)
            path = os.path.basename(root) + "/" + att.path
            if att.content_type == content_type_of(att.name):
                return path
            return {"file": path, "content_type": att.content_type}

        def bodies(entry: dict[str, Any]) -> dict[str, Any]:
            return {**entry, "_attachments": {name: reference(att) for name, att in
                                              entry["_attachments"].items()}} \
                if "_attachments" in entry else entry

        exported = {
            name: {**spec, **({"design_docs": {ddoc: bodies(body) for ddoc, body in
                                               spec["design_docs"].items()}}
                              if "design_docs" in spec else {}),
                   **({"documents": [bodies(body) for body in spec["documents"]]}
                      if "documents" in spec else {})}
            for name, spec in databases.items()}
        if written:
            total = sum(written.values())
            note(f"wrote {len(written):,} attachment file{'s' if len(written) != 1 else ''} "
                 f"({total:,} bytes) under {root}; the manifest names them from "
                 f"{os.path.dirname(root)}: save it there")
        return exported


def _download(client: Client, att: _AttachmentFile, root: str) -> int:
    """Write ``att`` to its file under ``root`` (whole or not at all: written aside and
    renamed); its length."""
    # One GET per attachment, held in memory: the client reads no body in parts. Pinned to
    # the revision exported, so that the files go with the document's body.
    try:
        content = client.database(att.db).get_attachment(att.doc_id, att.name, rev=att.rev)
    except NotFound as exc:  # the document changed, and that revision was compacted away
        raise ExportError(f"database {att.db!r}: {att.doc_id}: attachment {att.name!r} of "
                          f"revision {att.rev} not found ({exc.brief}); if the document "
                          "changed while it was exported, export again") from None
    target = os.path.join(root, *att.path.split("/"))
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        handle, aside = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".couchsync-",
                                         suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.replace(aside, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(aside)
            raise
    except OSError as exc:
        raise ExportError(f"cannot write attachment {att.name!r} of {att.doc_id} to {target}: "
                          f"{exc.strerror or exc}") from None
    return len(content)


class _Dir:
    """A directory of the attachments' layout: ``<database>/<document id>/<attachment
    name, its '/' as subdirectories>``, design docs under ``<database>/_design/<name>/``.
    Two entries whose names differ only in case get two names (``x~2``): a
    case-insensitive file system would hold them as one."""

    def __init__(self, path: str) -> None:
        self.path = path  # from the attachments directory, '/'-separated, ending in '/'
        self._taken: set[str] = set()  # casefolded
        self._dirs: dict[str, _Dir] = {}  # by the name asked for, casefolded

    def directory(self, name: str, *, own: bool = False) -> _Dir:
        """Subdirectory ``name`` (a safe file name): the same one each time it is asked
        for, or with ``own`` one for this caller alone (a document's)."""
        key = name.casefold()
        if own or key not in self._dirs:
            made = _Dir(f"{self.path}{self._free(name)}/")
            if own:
                return made
            self._dirs[key] = made
        return self._dirs[key]

    def file(self, name: str) -> str:
        """The path of a new file ``name`` (a safe file name) here."""
        return self.path + self._free(name)

    def _free(self, name: str) -> str:
        stem, extension = os.path.splitext(name)
        candidate, number = name, 1
        while candidate.casefold() in self._taken:
            number += 1
            candidate = f"{stem}~{number}{extension}"
        self._taken.add(candidate.casefold())
        return candidate


def _file_path(folder: _Dir, name: str) -> str:
    """Where attachment ``name`` goes in ``folder``: each '/'-separated part a
    directory; a name with an empty part ("a//b", "/a") as one file."""
    parts = name.split("/")
    if "" in parts:
        parts = [name]
    for part in parts[:-1]:
        folder = folder.directory(_file_name(part))
    return folder.file(_file_name(parts[-1]))


def _file_name(text: str) -> str:
    """``text`` as one file name that stays in its directory: ``_UNSAFE`` characters as
    %XX (their UTF-8 bytes), '.' and '..' as %2E, one too long cut and told apart by a
    digest of the whole."""
    name = _UNSAFE.sub(lambda found: "".join(f"%{byte:02X}" for byte in found[0].encode()),
                       text)
    if not name.strip("."):
        name = name.replace(".", "%2E") or "%"
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > _NAME_BYTES:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = encoded[:_NAME_BYTES - 17].decode("utf-8", "ignore") + "~" + digest
    return name
