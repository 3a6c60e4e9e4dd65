"""Fixtures for plan/apply tests against the real test server (see tests/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from couchsync.client import Client
from couchsync.manifest import DesiredState, load_manifests


@pytest.fixture
def client(couch_url: str) -> Iterator[Client]:
    with Client(couch_url) as opened:
        yield opened


@pytest.fixture
def manifest(tmp_path: Path) -> Callable[[dict[str, Any]], DesiredState]:
    """Write ``{db: spec}`` as a version 1 manifest file and load it with the real loader."""
    numbers = itertools.count()

    def load(databases: dict[str, Any]) -> DesiredState:
        path = tmp_path / f"manifest{next(numbers)}.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "databases": databases}))
        return load_manifests([path], environ={})

    return load


@pytest.fixture(scope="session")
def admin_password(couch_url: str) -> str:
    """The test server's admin password, for tests that check it reaches no output.

    It must be distinctive (8 characters or more, not part of the user name), so that
    such a test can look for it anywhere: ``admin`` of ``admin:admin`` shows in every
    URL that names the user. The project's test servers have one (scripts/test-couchdb:
    ``couchsync-ci-pw``; PouchDB Server: ``couchsync-test-pw``); start another server
    with, e.g., ``--admin admin:some-long-password``."""
    parts = urlsplit(couch_url)
    password = unquote(parts.password or "")
    if len(password) < 8 or password in unquote(parts.username or ""):
        pytest.fail("the test server's admin password is not distinctive (8 characters or "
                    "more, not in the user name), so this test could not tell whether it "
                    "leaks; use a server with e.g. admin:some-long-password",
                    pytrace=False)
    return password
