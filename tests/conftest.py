"""Shared fixtures: a real CouchDB-compatible server for every integration test.

By default a fresh in-memory PouchDB Server (testserver/) is started once per
test session on a free loopback port, with an admin account. Set
``COUCHSYNC_TEST_URL=http://user:pass@host:port`` to run the same suite
against another server, for example a real Apache CouchDB 3.x.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

# Property tests: no per-example deadline (machines here are noisy), and in CI a fixed
# seed, so that a run can be repeated exactly and never fails at random.
settings.register_profile("couchsync", deadline=None)
settings.register_profile("ci", parent=settings.get_profile("couchsync"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "couchsync")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testserver"))

import pouchdb  # noqa: E402  (testserver/pouchdb.py)


@pytest.fixture(scope="session", autouse=True)
def _private_data_file_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The suite (and the commands it runs) caches loaded data files in its own
    # directory, never the user's ~/.cache.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COUCHSYNC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def couch_url() -> Iterator[str]:
    """URL of the server under test, admin credentials included."""
    with pouchdb.server_from_env("COUCHSYNC_TEST_URL") as url:
        yield url


@pytest.fixture(scope="session")
def server_kind(couch_url: str) -> str:
    """``"couchdb"`` for Apache CouchDB, ``"pouchdb"`` for PouchDB Server."""
    welcome = httpx.get(couch_url + "/", timeout=10).json()
    return "couchdb" if "couchdb" in welcome else "pouchdb"


@pytest.fixture(scope="session")
def is_couchdb(server_kind: str) -> bool:
    return server_kind == "couchdb"


@pytest.fixture(autouse=True)
def _couchdb_only(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.couchdb_only("what PouchDB Server lacks")``: the test runs for real
    on Apache CouchDB and is skipped, with that reason, on PouchDB Server."""
    marker = request.node.get_closest_marker("couchdb_only")
    if marker is None:
        return
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    if not reason:
        pytest.fail("@pytest.mark.couchdb_only needs a reason: what PouchDB Server lacks")
    if request.getfixturevalue("server_kind") != "couchdb":
        pytest.skip(f"Apache CouchDB only, the server under test is PouchDB Server: {reason}")


@pytest.fixture
def db_name_factory(couch_url: str) -> Iterator[Callable[[], str]]:
    """Make unique database names; every database so named is deleted afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"cstest_{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    yield make
    with httpx.Client(timeout=30) as http:
        for name in names:
            http.delete(f"{couch_url}/{name}")


@pytest.fixture
def db_name(db_name_factory: Callable[[], str]) -> str:
    """A unique database name (not created) that is cleaned up after the test."""
    return db_name_factory()
