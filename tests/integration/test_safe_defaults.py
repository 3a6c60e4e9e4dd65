"""Safe defaults (issue 19): no server is assumed when none is named, replication
endpoints the server would refuse are refused first, and a database open to anyone is
said so before anything is sent."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from cli_helpers import COUCHSYNC

from couchsync.manifest._server import endpoint_problem


def test_no_server_url_is_refused_naming_the_setting(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n  orders: {}\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("COUCHDB_URL", "COUCH_URL")}
    for command in (["plan", str(manifest)], ["apply", str(manifest), "--yes"],
                    ["export", "--db", "orders"]):
        done = subprocess.run([COUCHSYNC, *command], env=env, text=True,
                              capture_output=True, timeout=60)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert done.stderr == ("Error: no server given: pass --url URL or set COUCHDB_URL "
                               "(e.g. http://localhost:5984)\n"), command
        assert done.stdout == ""


@pytest.mark.couchdb_only("the rule is CouchDB 3's _replicator validation; PouchDB Server "
                          "has none")
@pytest.mark.parametrize("endpoint", [
    "orders", "http://127.0.0.1:9/orders", "https://127.0.0.1:9/orders",
    "HTTP://127.0.0.1:9/orders", "http:/127.0.0.1:9/orders", " http://127.0.0.1:9/o",
    "ftp://127.0.0.1:9/orders", "a/b", {"url": "orders"}, {"url": "http://127.0.0.1:9/o"},
])
def test_the_endpoint_rule_is_the_servers(couch_url: str,
                                          endpoint: str | dict[str, str]) -> None:
    doc_id = f"cstest-{uuid.uuid4().hex[:12]}"
    answer = httpx.put(f"{couch_url}/_replicator/{doc_id}", timeout=30, json={
        "source": endpoint, "target": "http://127.0.0.1:9/nowhere"})
    if answer.status_code in (201, 202):
        httpx.delete(f"{couch_url}/_replicator/{doc_id}",
                     params={"rev": answer.json()["rev"]}, timeout=30)
    else:
        assert answer.status_code == 403, answer.text
    assert (endpoint_problem("source", endpoint) is None) == (answer.status_code != 403), \
        answer.text
