"""couchsync on a CouchDB cluster: create-time settings and a cluster with a node down.

``n`` and ``placement`` run against the test server (CouchDB only); the node
down test starts a 3-node cluster of its own from the bundled CouchDB
(``../shared/couchdb`` or ``$COUCHDB_DIST``) and stops one of its nodes.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from cli_helpers import couchdb_of_its_own, doc_count, run, seed_manifest


def test_n_above_the_node_count_is_a_clear_error(
    couch_url: str, db_name: str, tmp_path: Path, is_couchdb: bool
) -> None:
    if not is_couchdb:
        pytest.skip("PouchDB Server has no /_membership and ignores n")
    nodes = len(httpx.get(f"{couch_url}/_membership", timeout=10).json()["cluster_nodes"])
    path = tmp_path / "n.yaml"
    path.write_text(json.dumps({"version": 1, "databases": {db_name: {"n": nodes + 2}}}))
    refused = run(couch_url, "apply", str(path), "--yes")
    assert refused.returncode == 1
    assert (f"db:{db_name}: n: {nodes + 2} is more than the {nodes} node" in refused.stderr)
    assert "Traceback" not in refused.stderr
    assert httpx.get(f"{couch_url}/{db_name}", timeout=10).status_code == 404


def test_a_cluster_with_a_node_down_reports_writes_short_of_every_copy(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cluster = couchdb_of_its_own(
        tmp_path_factory, "to start a cluster of its own and stop one of its nodes", nodes=3)
    url = cluster.start()
    try:
        seed = seed_manifest(tmp_path / "seed.yaml", "degraded", range(300))
        os.kill(cluster.pids()[2], signal.SIGKILL)
        applied = run(url, "apply", seed, "--yes", "--batch-size", "100")
        assert applied.returncode == 0, applied.stderr
        assert "Apply complete: 301 created" in applied.stdout
        assert "Warning: db:degraded: " in applied.stderr
        assert "stored on fewer than all 3 copies (202 Accepted" in applied.stderr
        assert doc_count(url, "degraded") == 300
    finally:
        cluster.stop()


def test_placement_puts_the_shard_copies_in_the_zone_asked(
    couch_url: str, db_name: str, tmp_path: Path, is_couchdb: bool
) -> None:
    if not is_couchdb:
        pytest.skip("PouchDB Server has no node zones and ignores placement")
    node = httpx.get(f"{couch_url}/_membership", timeout=10).json()["cluster_nodes"][0]
    node_url = f"{couch_url}/_node/_local/_nodes/{node}"
    before = httpx.get(node_url, timeout=10).json()
    zoned = httpx.put(node_url, json={**before, "zone": "couchsync-test-zone"}, timeout=10)
    assert zoned.status_code in (201, 202), zoned.text
    try:
        path = tmp_path / "placement.yaml"
        path.write_text(json.dumps({"version": 1, "databases": {
            db_name: {"placement": "couchsync-test-zone:1"}}}))
        applied = run(couch_url, "apply", str(path), "--yes")
        assert applied.returncode == 0, applied.stderr
        shards = httpx.get(f"{couch_url}/{db_name}/_shards", timeout=10).json()["shards"]
        assert {tuple(copies) for copies in shards.values()} == {(node,)}
    finally:
        current = httpx.get(node_url, timeout=10).json()
        restored = {key: value for key, value in current.items() if key != "zone"}
        httpx.put(node_url, json=restored, timeout=10)
