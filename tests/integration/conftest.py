"""Fixtures for plan/apply tests against the real test server (see tests/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
