"""The one-line summary ``couchsync validate`` prints for valid manifests."""

from __future__ import annotations

from couchsync.manifest.model import DesiredState


def summarize(desired: DesiredState) -> str:
    """``2 databases, 14 documents, 3 indexes, 1 design doc`` (absent databases counted;
    ``1 pattern`` after the databases when there are patterns, their content counted once)."""
    dbs = [*desired.databases.values(), *desired.patterns.values()]
    patterns = ((len(desired.patterns), "pattern", "patterns"),) if desired.patterns else ()
    counts = (
        (len(desired.databases), "database", "databases"),
        *patterns,
        (sum(len(db.documents) for db in dbs), "document", "documents"),
        (sum(len(db.indexes) for db in dbs), "index", "indexes"),
        (sum(len(db.design_docs) for db in dbs), "design doc", "design docs"),
    )
    return ", ".join(f"{n:,} {one if n == 1 else many}" for n, one, many in counts)
