"""``couchsync validate`` and ``couchsync schema``: output and exit codes, no server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.client import Client
from couchsync.manifest import schema_text

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate must never talk to a server: opening any connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("validate contacted a server")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("COUCHDB_URL", "http://127.0.0.1:9")


def test_the_guard_catches_a_connection() -> None:
    with pytest.raises(AssertionError, match="contacted a server"):
        Client("http://127.0.0.1:9", retries=0).list_database_names()


def test_validate_examples() -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "manifests")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 4 databases, 12 documents, 4 indexes, 2 design docs\n"
    assert result.stderr == ""


def test_validate_several_paths(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\ndatabases:\n  app:\n"
                                     "    documents: [{_id: one}]\n")
    (tmp_path / "b.yml").write_text("version: 1\ndatabases:\n  app:\n"
                                    "    indexes: {by-x: {fields: [x]}}\n")
    result = runner.invoke(app, ["validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 1 database, 1 document, 1 index, 0 design docs\n"


def test_validate_reports_every_problem_then_a_count(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n  users:\n    indxes: {}\n    q: '8'\n")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{manifest}:4:5: unknown key 'indxes' under databases.users (did you mean 'indexes'?)",
        f"{manifest}:5:8: expected an integer, got string",
        "Error: 2 problems in manifests",
    ]
    assert "Traceback" not in result.output


def test_validate_single_problem(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n  Users: {}\n")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "Error: 1 problem in manifests"
    assert result.stderr.startswith(f"{manifest}:3:3: invalid database name")


def test_validate_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"{missing}: no such file or directory",
                                          "Error: 1 problem in manifests"]


def test_validate_yaml_syntax_error_has_no_traceback(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n\tusers: {}\n")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{manifest}:3:1: tab character here: YAML indentation must use spaces",
        "Error: 1 problem in manifests",
    ]


def test_validate_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COUCHSYNC_TEST_SECRET", raising=False)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n  app:\n"
                        "    documents: [{_id: k, key: '${COUCHSYNC_TEST_SECRET}'}]\n")
    missing = runner.invoke(app, ["validate", str(manifest)])
    assert missing.exit_code == 1
    assert "variable COUCHSYNC_TEST_SECRET is not set" in missing.stderr
    given = runner.invoke(app, ["validate", str(manifest)],
                          env={"COUCHSYNC_TEST_SECRET": "s3cret"})
    assert given.exit_code == 0, given.output
    assert "s3cret" not in given.output


def test_schema_prints_the_packaged_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(schema_text())
