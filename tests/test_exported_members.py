"""The package root exports exactly the intended public names, and each one resolves."""

import pytest

import couchsync

INTENDED = {
    # client core
    "Client", "Server", "Database", "Document", "IndexQuery", "FindQuery", "HttpxConnection",
    "ClientClosedError",
    "CouchError", "TransportError", "HTTPStatusError", "ServerError", "DatabaseError",
    "DocumentError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
    "PreconditionFailed", "InvalidDatabaseName", "InvalidURL", "BulkResults",
    "FileChunks",  # an attachment streamed from a file (Database.put_attachment)
    # sync tool
    "load_manifests", "read_live_state", "load_and_read", "plan_changes", "apply_plan",
    "DesiredState", "LiveState", "Plan", "ManifestError", "Problem", "ApplyError", "ApplyResult",
    "ApplyInterrupted", "LockSet", "LockHeld", "force_unlock",
    # the safe apply as one call (lock, re-plan under it, saved plans), as the CLI's
    "apply_manifests", "ApplyHooks",
    # apply --watch as a library call
    "watch_manifests", "WatchHooks",
    # the root of every error the sync tool raises (the client's root is CouchError)
    "CouchsyncError",
    # fleets: patterns matched on the server, planned database by database
    "discover", "expand_patterns", "load_and_plan", "plan_server",
}


def test_all_is_the_intended_public_api() -> None:
    assert set(couchsync.__all__) == INTENDED
    assert couchsync.__all__ == sorted(couchsync.__all__)


def test_every_exported_name_resolves() -> None:
    for name in couchsync.__all__:
        assert getattr(couchsync, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        couchsync.does_not_exist  # noqa: B018


def test_importing_the_package_does_not_import_httpx() -> None:
    import subprocess
    import sys

    code = "import sys, couchsync, couchsync.cli; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
