"""The one-line summary ``couchsync validate`` prints for valid manifests."""

from __future__ import annotations

from couchsync.manifest.model import DesiredState


def summarize(desired: DesiredState) -> str:
    """``2 databases, 14 documents, 3 indexes, 1 design doc`` (absent databases counted)."""
    dbs = desired.databases.values()
    counts = (
        (len(dbs), "database", "databases"),
        (sum(len(db.documents) for db in dbs), "document", "documents"),
        (sum(len(db.indexes) for db in dbs), "index", "indexes"),
        (sum(len(db.design_docs) for db in dbs), "design doc", "design docs"),
    )
    return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)
