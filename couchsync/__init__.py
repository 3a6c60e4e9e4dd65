"""couchsync: keep Apache CouchDB servers in the state your manifests declare.

Two halves, one package: a complete, typed CouchDB client (``Client``, ``Server``,
``Database``...) and the declarative sync tool built on it (``load_manifests`` →
``read_live_state`` → ``plan_changes`` → ``apply_plan``, or ``apply_manifests`` for all of
it under the apply lock; docs/architecture.md). Every error the sync tool raises is a
``CouchsyncError``; the client's are ``CouchError``.

Names are imported on first use (PEP 562) so that ``couchsync validate``
starts without paying for httpx, and the client never pays for YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from couchsync._version import __version__

# Where each public name lives: the client core, then the sync tool.
_MODULES: dict[str, tuple[str, ...]] = {
    "couchsync.client": (
        "BadRequest", "BulkResults", "Client", "ClientClosedError", "Conflict", "CouchError",
        "Database", "DatabaseError", "Document", "DocumentError", "FileChunks", "FindQuery",
        "Forbidden",
        "HTTPStatusError", "HttpxConnection", "IndexQuery", "InvalidDatabaseName",
        "InvalidURL", "NotFound", "PreconditionFailed", "Server", "ServerError",
        "TransportError", "Unauthorized"),
    "couchsync.apply": ("ApplyError", "ApplyInterrupted", "ApplyResult", "apply_plan"),
    "couchsync.errors": ("CouchsyncError",),
    "couchsync.lock": ("LockHeld", "LockSet", "force_unlock"),
    "couchsync.manifest": ("DesiredState", "ManifestError", "Problem", "expand_patterns",
                           "load_manifests"),
    "couchsync.operation": ("ApplyHooks", "apply_manifests"),
    "couchsync.plan": ("LiveState", "Plan", "plan_changes"),
    "couchsync.read": ("discover", "load_and_plan", "load_and_read", "plan_server",
                       "read_live_state"),
    "couchsync.watch": ("WatchHooks", "watch_manifests"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

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
        FileChunks,
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
    from couchsync.watch import WatchHooks, watch_manifests
