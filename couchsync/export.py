"""Export: live databases → manifest YAML that re-plans empty against the same server.

Per database: ``partitioned`` when it is, the ``_security`` object, the Mango
indexes (each with its ddoc, so the manifest pins them where they are), the
design docs (except the ``language: query`` ones that hold Mango indexes,
which the indexes already describe), and with ``with_docs`` every document
without ``_rev``. Documents keep only ``_id`` of CouchDB's underscore fields,
as the manifest format asks; attachments are not exported (apply keeps the
ones on the server).

The YAML is written for people and diffs: a multi-line string (a view's map
function) is a literal block scalar (``|``, ``|-``, ``|+``) whenever that reads
back exactly, else a double-quoted string with escapes. String values have each
``${`` written as ``$${``, so the loader's ``${VAR}`` expansion gives back the
text the server holds (a JavaScript template literal, a ``${...}`` in a document).

``placeholders`` (``export --var``/``--var-file``) turns every string value equal
to a variable's value into ``${KEY}``: applied with the same variables, the
manifest re-plans empty, and the value (a host name, a credential) stays out
of the file. couchsync's staging design docs are never exported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from couchsync.client import Client, Database
from couchsync.plan._live import SCAN_PAGE_SIZE, read_bodies
from couchsync.plan._staging import is_staging_id
from couchsync.plan._unreadable import UnreadableDocument, check_bodies

__all__ = ["export_manifest"]

_DESIGN = "_design/"
_SECURITY_GROUPS = ("admins", "members")  # what the manifest format's security holds
# _all_docs sorts ids bytewise: every "_design/..." id lies between these ('0' follows '/').
_DESIGN_RANGE = (_DESIGN, "_design0")
# YAML 1.1 line breaks besides "\n": PyYAML writes them raw, even in single-quoted and
# block scalars, and reads \x85 back as "\n". Only double quotes escape them.
_OTHER_BREAKS = re.compile("[\x85\u2028\u2029]")


def export_manifest(client: Client, names: Sequence[str], *, with_docs: bool = False,
                    placeholders: Mapping[str, str] | None = None) -> str:
    """Manifest YAML (version 1) describing databases ``names`` as they are now; string
    values equal to a ``placeholders`` value are written as ``${KEY}``.

    Raises ``NotFound`` for a database that does not exist.
    """
    databases = {name: _export_checked(client.get_db(name), with_docs) for name in names}
    references: dict[str, str] = {}
    for key, value in sorted((placeholders or {}).items()):
        if value:
            references.setdefault(value, "${" + key + "}")
    return "# Exported by couchsync export.\n" + _dump_yaml(
        {"version": 1, "databases": _literal_references(databases, references)})


def _dump_yaml(data: Any) -> str:
    """``data`` (JSON-like) as block-style YAML; multi-line strings as literal blocks
    where that reads back exactly (see the module docstring)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    """``SafeDumper`` whose strings use ``_string_style``."""


def _string_style(text: str) -> str | None:
    """``|`` for a multi-line string, ``"`` where a block or quotes would lose something,
    None (PyYAML's choice, as before) for the rest.

    A literal block asked for is written by PyYAML only when its own analysis
    allows it (no trailing spaces on a line, no tabs, no control characters such as
    a carriage return); else PyYAML falls back to double quotes. Refused here as
    well: a first line starting with a space or a break (it would need an
    indentation indicator, ``|2``, which few readers know), and ``_OTHER_BREAKS``,
    in any string.
    """
    if _OTHER_BREAKS.search(text):
        return '"'
    if "\n" not in text:
        return None
    return '"' if text[0] in " \n" else "|"


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=_string_style(text))


_Dumper.add_representer(str, _represent_str)


def _literal_references(value: Any, references: Mapping[str, str]) -> Any:
    """``value`` with each string value that ``references`` names replaced by its
    ``${KEY}``, and ``${`` as ``$${`` in the others (never in keys: the loader expands
    values only), so that loading with those variables gives back ``value``."""
    if isinstance(value, str):
        return references.get(value) or value.replace("${", "$${")
    if isinstance(value, dict):
        return {key: _literal_references(item, references) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_references(item, references) for item in value]
    return value


def _export_checked(db: Database, with_docs: bool) -> dict[str, Any]:
    """``_export_database``; a document whose values a manifest cannot hold is an
    ``UnreadableDocument`` naming it (the manifest would not load back)."""
    try:
        spec = _export_database(db, with_docs)
        check_bodies([*((f"_design/{name}", body)
                        for name, body in spec.get("design_docs", {}).items()),
                      *((body["_id"], body) for body in spec.get("documents", []))])
    except UnreadableDocument as exc:
        raise UnreadableDocument(exc.doc_id, exc.problem, db.name) from None
    return spec


def _export_database(db: Database, with_docs: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if db.info().get("props", {}).get("partitioned"):
        spec["partitioned"] = True
    security = db.get_security()
    spec["security"] = {key: security[key] for key in _SECURITY_GROUPS if key in security}
    indexes = {
        index["name"]: _export_index(index)
        for index in db.get_indexes()["indexes"]
        # Not the special _all_docs index, nor a staged rollout's copy.
        if index.get("ddoc") and not is_staging_id(index["ddoc"])
    }
    if indexes:
        spec["indexes"] = indexes
    design_docs = {
        row["id"].removeprefix(_DESIGN): _without_underscores(row["doc"], keep_id=False)
        for row in db.all_docs(start_key=_DESIGN_RANGE[0], end_key=_DESIGN_RANGE[1],
                               include_docs=True)
        # Mango index ddocs are exported as indexes; staging copies not at all.
        if row["doc"].get("language") != "query" and not is_staging_id(row["id"])
    }
    if design_docs:
        spec["design_docs"] = design_docs
    if with_docs:
        try:
            documents = [
                _without_underscores(row["doc"], keep_id=True)
                for row in db.iter_all_docs(include_docs=True, page_size=SCAN_PAGE_SIZE)
                if not row["id"].startswith(_DESIGN)
            ]
        except RecursionError:  # a body too deep to decode: read by id, which names it
            read_bodies(db, [row["id"] for row in db.iter_all_docs(page_size=SCAN_PAGE_SIZE)])
            raise
        if documents:
            spec["documents"] = documents
    return spec


def _export_index(index: dict[str, Any]) -> dict[str, Any]:
    definition = index["def"]
    exported: dict[str, Any] = {
        "fields": definition["fields"],
        "ddoc": index["ddoc"].removeprefix(_DESIGN),
    }
    if definition.get("partial_filter_selector"):
        exported["partial_filter_selector"] = definition["partial_filter_selector"]
    return exported


def _without_underscores(doc: dict[str, Any], *, keep_id: bool) -> dict[str, Any]:
    return {
        key: value for key, value in doc.items()
        if not key.startswith("_") or (keep_id and key == "_id")
    }
