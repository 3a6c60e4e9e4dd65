"""couchsync: keep Apache CouchDB servers in the state your manifests declare.

Two halves, one package: a complete, typed CouchDB client (``Client``,
``Server``, ``Database``, ``Document``, ``IndexQuery``, ``FindQuery``) and the
declarative sync tool built on it (``load_manifests`` → ``read_live_state`` →
``plan_changes`` → ``apply_plan``; ``load_and_read`` does the first two at once,
``load_and_plan`` the first three, database by database, patterns included, and
``apply_manifests`` all of it under the apply lock, as ``couchsync apply`` does). Every
error the sync tool raises is a ``CouchsyncError``; the client's are ``CouchError``.

Names are imported on first use (PEP 562) so that ``couchsync validate``
starts without paying for httpx, and the client never pays for YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from couchsync._version import __version__

_EXPORTS: dict[str, str] = {
    # client core
    "BadRequest": "couchsync.client",
    "BulkResults": "couchsync.client",
    "Client": "couchsync.client",
    "ClientClosedError": "couchsync.client",
    "Conflict": "couchsync.client",
    "CouchError": "couchsync.client",
    "Database": "couchsync.client",
    "DatabaseError": "couchsync.client",
    "Document": "couchsync.client",
    "DocumentError": "couchsync.client",
    "FindQuery": "couchsync.client",
    "Forbidden": "couchsync.client",
    "HTTPStatusError": "couchsync.client",
    "HttpxConnection": "couchsync.client",
    "IndexQuery": "couchsync.client",
    "InvalidDatabaseName": "couchsync.client",
    "InvalidURL": "couchsync.client",
    "NotFound": "couchsync.client",
    "PreconditionFailed": "couchsync.client",
    "Server": "couchsync.client",
    "ServerError": "couchsync.client",
    "TransportError": "couchsync.client",
    "Unauthorized": "couchsync.client",
    # sync tool
    "ApplyError": "couchsync.apply",
    "ApplyHooks": "couchsync.operation",
    "ApplyInterrupted": "couchsync.apply",
    "ApplyResult": "couchsync.apply",
    "CouchsyncError": "couchsync.errors",
    "DesiredState": "couchsync.manifest",
    "LiveState": "couchsync.plan",
    "LockHeld": "couchsync.lock",
    "LockSet": "couchsync.lock",
    "ManifestError": "couchsync.manifest",
    "Plan": "couchsync.plan",
    "Problem": "couchsync.manifest",
    "apply_manifests": "couchsync.operation",
    "apply_plan": "couchsync.apply",
    "force_unlock": "couchsync.lock",
    "discover": "couchsync.read",
    "expand_patterns": "couchsync.manifest",
    "load_and_plan": "couchsync.read",
    "load_and_read": "couchsync.read",
    "load_manifests": "couchsync.manifest",
    "plan_changes": "couchsync.plan",
    "plan_server": "couchsync.read",
    "read_live_state": "couchsync.read",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'couchsync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from couchsync.apply import ApplyError, ApplyInterrupted, ApplyResult, apply_plan
    from couchsync.client import (
        BadRequest,
        BulkResults,
        Client,
        ClientClosedError,
        Conflict,
        CouchError,
        Database,
        DatabaseError,
        Document,
        DocumentError,
        FindQuery,
        Forbidden,
        HTTPStatusError,
        HttpxConnection,
        IndexQuery,
        InvalidDatabaseName,
        InvalidURL,
        NotFound,
        PreconditionFailed,
        Server,
        ServerError,
        TransportError,
        Unauthorized,
    )
    from couchsync.errors import CouchsyncError
    from couchsync.lock import LockHeld, LockSet, force_unlock
    from couchsync.manifest import (
        DesiredState,
        ManifestError,
        Problem,
        expand_patterns,
        load_manifests,
    )
    from couchsync.operation import ApplyHooks, apply_manifests
    from couchsync.plan import LiveState, Plan, plan_changes
    from couchsync.read import (
        discover,
        load_and_plan,
        load_and_read,
        plan_server,
        read_live_state,
    )
