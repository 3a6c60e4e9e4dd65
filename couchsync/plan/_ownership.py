"""The ownership record: which documents couchsync wrote, per database.

It lives in ``_local/couchsync`` — a local document, so it is never
replicated and never appears in ``_all_docs`` (it cannot show up as drift)::

    {
      "_id": "_local/couchsync",
      "format": 1,
      "managed": {
        "<doc id>": {"rev": "<rev couchsync wrote>", "hash": "sha256:<hex>", "created": true}
      }
    }

``hash`` is the content hash of the manifest body that was written; ``rev``
the revision the write produced. Together they make the fast no-op: a
document whose live revision is still ``rev`` and whose manifest hash is
still ``hash`` is unchanged without reading its body. ``created`` is true
when couchsync created the document; ``prune`` deletes only those, so a
document that someone else created is never deleted, even after couchsync
updated it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from couchsync.manifest.model import DocumentSpec
from couchsync.plan._model import PlanError
from couchsync.plan._state import ManagedDoc

RECORD_ID = "_local/couchsync"
RECORD_FORMAT = 1


def is_unchanged(doc: DocumentSpec, live_rev: str, entry: ManagedDoc | None) -> bool:
    """True when the record proves the live document equals the manifest's, body unread."""
    return entry is not None and entry.rev == live_rev and entry.hash == doc.hash


def parse_record(record: Mapping[str, Any] | None) -> dict[str, ManagedDoc]:
    """The entries of a ``_local/couchsync`` document (``None``: no record yet)."""
    if record is None:
        return {}
    version = record.get("format")
    if version != RECORD_FORMAT:
        raise PlanError(
            f"{RECORD_ID} has format {version!r}; this couchsync understands format "
            f"{RECORD_FORMAT} (was it written by a newer version?)"
        )
    return {
        doc_id: ManagedDoc(rev=entry["rev"], hash=entry["hash"], created=bool(entry["created"]))
        for doc_id, entry in record["managed"].items()
    }


def record_body(managed: Mapping[str, ManagedDoc]) -> dict[str, Any]:
    """The ``_local/couchsync`` body for ``managed`` (ids sorted, for stable output)."""
    return {
        "format": RECORD_FORMAT,
        "managed": {
            doc_id: {"rev": entry.rev, "hash": entry.hash, "created": entry.created}
            for doc_id, entry in sorted(managed.items())
        },
    }
