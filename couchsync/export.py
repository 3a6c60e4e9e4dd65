"""Export: live databases → manifest YAML that re-plans empty against the same server.

Per database: ``partitioned`` when it is, the ``_security`` object, the Mango
indexes (each with its ddoc, so the manifest pins them where they are), the
design docs (except the ``language: query`` ones that hold Mango indexes,
which the indexes already describe), and with ``with_docs`` every document
without ``_rev``. Documents keep only ``_id`` of CouchDB's underscore fields,
as the manifest format asks; attachments are not exported (apply keeps the
ones on the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from couchsync.client import Client, Database
from couchsync.plan._live import SCAN_PAGE_SIZE

__all__ = ["export_manifest"]

_DESIGN = "_design/"
_SECURITY_GROUPS = ("admins", "members")  # what the manifest format's security holds
# _all_docs sorts ids bytewise: every "_design/..." id lies between these ('0' follows '/').
_DESIGN_RANGE = (_DESIGN, "_design0")


def export_manifest(client: Client, names: Sequence[str], *, with_docs: bool = False) -> str:
    """Manifest YAML (version 1) describing databases ``names`` as they are now.

    Raises ``NotFound`` for a database that does not exist.
    """
    databases = {name: _export_database(client.get_db(name), with_docs) for name in names}
    body = yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False,
                          allow_unicode=True, width=100)
    return "# Exported by couchsync export.\n" + body


def _export_database(db: Database, with_docs: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if db.info().get("props", {}).get("partitioned"):
        spec["partitioned"] = True
    security = db.get_security()
    spec["security"] = {key: security[key] for key in _SECURITY_GROUPS if key in security}
    indexes = {
        index["name"]: _export_index(index)
        for index in db.get_indexes()["indexes"]
        if index.get("ddoc")  # not the special _all_docs index
    }
    if indexes:
        spec["indexes"] = indexes
    design_docs = {
        row["id"].removeprefix(_DESIGN): _without_underscores(row["doc"], keep_id=False)
        for row in db.all_docs(start_key=_DESIGN_RANGE[0], end_key=_DESIGN_RANGE[1],
                               include_docs=True)
        if row["doc"].get("language") != "query"  # Mango index ddocs: exported as indexes
    }
    if design_docs:
        spec["design_docs"] = design_docs
    if with_docs:
        documents = [
            _without_underscores(row["doc"], keep_id=True)
            for row in db.iter_all_docs(include_docs=True, page_size=SCAN_PAGE_SIZE)
            if not row["id"].startswith(_DESIGN)
        ]
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
