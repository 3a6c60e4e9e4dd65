"""``--db-prefix`` / ``--db-suffix`` isolate everything they touch (issue 19): a
replication gets a prefixed id and its endpoints on this server prefixed; users and the
pruning of replications, which would reach production's shared ``_users`` and
``_replicator``, are refused naming where they are declared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import run


def _write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({"version": 1, **data}, sort_keys=False))
    return str(path)


def _steps(done: Any) -> dict[str, dict[str, Any]]:
    assert done.returncode == 2, done.stdout + done.stderr
    return {step["address"]: step for step in json.loads(done.stdout)["steps"]}


@pytest.mark.parametrize(("option", "real"), [("--db-prefix", "pr7-{}"),
                                              ("--db-suffix", "{}-pr7")])
def test_a_replication_gets_its_id_and_its_local_endpoints_mapped(
        couch_url: str, db_name: str, tmp_path: Path, option: str, real: str) -> None:
    server = httpx.URL(couch_url)
    local = f"http://localhost:{server.port}"  # this server, too
    auth = {"basic": {"username": "admin", "password": "${REPL_PASSWORD}"}}
    remote = "https://backup.example.com:6984"
    manifest = _write(tmp_path / "m.yaml", {
        "databases": {db_name: {}, f"{db_name}-archive": {}},
        "replications": {f"{db_name}-nightly": {
            "source": {"url": f"{local}/{db_name}", "auth": auth},
            "target": {"url": f"{server.scheme}://{server.host}:{server.port}/"
                              f"{db_name}-archive", "auth": auth},
            "continuous": True},
            f"{db_name}-offsite": {"source": f"{local}/{db_name}",
                                   "target": f"{remote}/{db_name}"}}})
    value = "s3cret-" + db_name[-6:]
    done = run(couch_url, "plan", manifest, option, real.format(""), "--format", "json",
               "--detailed-exitcode",
               env={"REPL_PASSWORD": value})
    assert value not in done.stdout + done.stderr
    steps = _steps(done)
    nightly = steps[f"db:_replicator/doc:{real.format(db_name + '-nightly')}"]["after"]
    assert nightly["source"]["url"] == f"{local}/{real.format(db_name)}"
    assert nightly["target"]["url"] == (f"{server.scheme}://{server.host}:{server.port}/"
                                        f"{real.format(db_name + '-archive')}")
    offsite = steps[f"db:_replicator/doc:{real.format(db_name + '-offsite')}"]["after"]
    assert offsite["target"] == f"{remote}/{db_name}"  # another server: as written
    assert offsite["source"] == f"{local}/{real.format(db_name)}"
    assert not [address for address in steps if address.startswith("db:_replicator/doc:")
                and db_name + "-nightly" in address and real.format("") not in address]


def test_users_and_pruned_replications_are_refused_with_a_prefix(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = _write(tmp_path / "m.yaml", {
        "databases": {db_name: {}},
        "users": {"app": {"password": "${APP_PASSWORD}", "roles": []}},
        "prune": {"replications": True}})
    done = run(couch_url, "plan", manifest, "--db-prefix", "pr7-",
               env={"APP_PASSWORD": "pw-app-123"})
    assert done.returncode == 1 and not done.stdout
    lines = done.stderr.splitlines()
    assert lines[0] == (f"{manifest}:5:3: users refused with --db-prefix pr7-: _users is "
                        "shared by every prefix, and a prefixed run never edits "
                        "production's accounts; plan users without the option, from a "
                        "manifest of their own")
    assert lines[1].startswith(f"{manifest}:9:")
    assert "prune.replications refused with --db-prefix pr7-" in lines[1]
    assert "Traceback" not in done.stderr and "pw-app-123" not in done.stderr
    unprefixed = run(couch_url, "plan", manifest, env={"APP_PASSWORD": "pw-app-123"})
    assert unprefixed.returncode == 0, unprefixed.stderr  # the same manifest, unprefixed


def test_node_config_is_refused_with_a_prefix(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    """The node config is every prefix's: a pull request's run never edits it."""
    manifest = _write(tmp_path / "m.yaml", {
        "databases": {db_name: {}},
        "config": {"couchdb": {"max_document_size": "8000000"}}})
    done = run(couch_url, "plan", manifest, "--db-suffix", "-pr7")
    assert done.returncode == 1 and not done.stdout
    assert done.stderr.splitlines()[0] == (
        f"{manifest}:6:24: config refused with --db-suffix -pr7: the node config is shared "
        "by every prefix, and a prefixed run never edits production's; plan config without "
        "the option, from a manifest of its own")
    pruning = _write(tmp_path / "p.yaml", {"databases": {db_name: {}},
                                           "prune": {"config": True}})
    done = run(couch_url, "plan", pruning, "--db-prefix", "pr7-")
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"{pruning}: config refused with --db-prefix pr7-")
