"""The root of the errors the sync side raises, so that callers catch one thing.

Every error that manifests, planning, reading, apply, the lock, saved plans,
export and the connection settings raise for a caller is a ``CouchsyncError``;
its text is meant for users and never repeats a secret. The client core keeps
its own root, ``CouchError``: it stands alone (pycouchdb's API) and imports
nothing of the sync side, so a caller of the whole tool catches both
(``except (CouchsyncError, CouchError)``), as ``couchsync.cli`` does.
"""

from __future__ import annotations

__all__ = ["CouchsyncError"]


class CouchsyncError(Exception):
    """An error of couchsync's sync side (manifest, plan, read, apply, lock, saved plan,
    export, connection settings)."""
