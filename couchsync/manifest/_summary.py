"""The one-line summary ``couchsync validate`` prints for valid manifests."""

from __future__ import annotations

from couchsync._names import REPLICATOR_DB, USERS_DB
from couchsync.manifest.model import DesiredState


def summarize(desired: DesiredState) -> str:
    """``2 databases, 14 documents, 3 indexes, 1 design doc`` (absent databases counted;
    ``1 pattern`` after the databases when there are patterns, their content counted once),
    then the server sections declared: ``3 config keys, 2 users, 1 replication``."""
    system = (USERS_DB, REPLICATOR_DB)  # counted as users and replications, not databases
    dbs = [*(db for name, db in desired.databases.items() if name not in system),
           *desired.patterns.values()]
    patterns = ((len(desired.patterns), "pattern", "patterns"),) if desired.patterns else ()
    server = tuple(
        (count, one, many) for count, one, many in (
            (sum(len(keys) for keys in desired.config.values()), "config key", "config keys"),
            (_documents(desired, USERS_DB), "user", "users"),
            (_documents(desired, REPLICATOR_DB), "replication", "replications"))
        if count)
    counts = (
        (len(dbs) - len(desired.patterns), "database", "databases"),
        *patterns,
        (sum(len(db.documents) for db in dbs), "document", "documents"),
        (sum(len(db.indexes) for db in dbs), "index", "indexes"),
        (sum(len(db.design_docs) for db in dbs), "design doc", "design docs"),
        *server,
    )
    return ", ".join(f"{n:,} {one if n == 1 else many}" for n, one, many in counts)


def _documents(desired: DesiredState, name: str) -> int:
    spec = desired.databases.get(name)
    return 0 if spec is None else len(spec.documents)
