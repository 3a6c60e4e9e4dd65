"""Manifest files planned together lose no section (issue 19.1): a file of database
patterns beside a file of server sections once made the planner rebuild the desired
state without ``config`` and ``prune.config``, so ``plan server.yaml fleet.yaml``
showed no config step and "No changes" while the node lacked the key.

The pure property test (every section, generated manifests) is
``tests/unit/manifest/test_sections_planned_together.py``; this is the same on a real server,
through the real command.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_helpers import run


def _write(path: Path, manifest: dict[str, Any]) -> str:
    path.write_text(json.dumps({"version": 1, **manifest}, indent=1))
    return str(path)


def _nodes(url: str) -> list[str]:
    return sorted(httpx.get(f"{url}/_membership", timeout=10).json()["cluster_nodes"])


@pytest.fixture
def section(couch_url: str) -> Iterator[str]:
    """A config section of the test's own, removed from every node afterwards."""
    name = f"couchsync_test_{uuid.uuid4().hex[:8]}"
    yield name
    for node in _nodes(couch_url):
        keys = httpx.get(f"{couch_url}/_node/{node}/_config/{name}", timeout=10).json()
        for key in keys:
            httpx.delete(f"{couch_url}/_node/{node}/_config/{name}/{key}", timeout=10)


@pytest.mark.couchdb_only("node config is per node (/_node/{node}/_config); PouchDB Server "
                          "has no _membership")
def test_config_and_prune_config_survive_a_file_of_patterns_beside_them(
    couch_url: str, section: str, db_name: str, tmp_path: Path,
) -> None:
    httpx.put(f"{couch_url}/{db_name}-1", timeout=30).raise_for_status()
    try:
        server = _write(tmp_path / "server.yaml", {
            "config": {section: {"enable": True, "later_dropped": "x"}},
            "prune": {"config": True}})
        fleet = _write(tmp_path / "fleet.yaml", {"databases": {f"{db_name}-*": {
            "documents": [{"_id": "settings", "theme": "dark"}]}}})

        alone = run(couch_url, "plan", server)
        together = run(couch_url, "plan", server, fleet, "--detailed-exitcode")
        assert together.returncode == 2, together.stderr
        for key in ("enable", "later_dropped"):
            assert f"+ config:{section}/{key}" in alone.stdout
            assert f"+ config:{section}/{key}" in together.stdout
        assert f"+ db:{db_name}-1/doc:settings" in together.stdout
        applied = run(couch_url, "apply", server, fleet, "--yes")
        assert applied.returncode == 0, applied.stderr
        for node in _nodes(couch_url):
            assert httpx.get(f"{couch_url}/_node/{node}/_config/{section}/enable",
                             timeout=10).json() == "true"
        again = run(couch_url, "plan", server, fleet, "--detailed-exitcode")
        assert again.returncode == 0, again.stdout

        # prune: {config: true} is kept beside the patterns too: the dropped key goes.
        smaller = _write(tmp_path / "server.yaml", {
            "config": {section: {"enable": True}}, "prune": {"config": True}})
        pruned = run(couch_url, "plan", smaller, fleet, "--detailed-exitcode")
        assert pruned.returncode == 2, pruned.stderr
        assert f"- config:{section}/later_dropped" in pruned.stdout
        assert run(couch_url, "apply", smaller, fleet, "--yes").returncode == 0
        for node in _nodes(couch_url):
            assert "later_dropped" not in httpx.get(
                f"{couch_url}/_node/{node}/_config/{section}", timeout=10).json()
    finally:
        httpx.delete(f"{couch_url}/{db_name}-1", timeout=30)
