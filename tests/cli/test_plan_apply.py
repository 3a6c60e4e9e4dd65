"""``couchsync plan`` / ``apply`` / ``export`` through typer's CliRunner, against the test server.

Output and exit codes are checked here; the server's state through the library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.testing
import yaml
from typer.testing import CliRunner

import couchsync
from couchsync.cli import app
from couchsync.client import Client
from couchsync.plan import Plan


@pytest.fixture
def run(couch_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input,
                             env={"COUCHDB_URL": couch_url, "NO_COLOR": "1"})

    return invoke


def write(tmp_path: Path, databases: dict[str, Any], name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}))
    return str(path)


def test_plan_then_apply_then_plan_shows_no_changes(
    run: Any, db_name: str, tmp_path: Path, couch_url: str
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a", "v": 1}]}})

    planned = run("plan", path, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert f"  + db:{db_name}/doc:a" in planned.stdout
    assert planned.stdout.rstrip().endswith("Plan: 2 to create, 0 to update, 0 to delete.")

    applied = run("apply", path, "--yes")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 2 created, 0 updated, 0 deleted." in applied.stdout
    with Client(couch_url) as client:
        assert client.database(db_name).get("a")["v"] == 1

    again = run("plan", path, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    # What an incremental plan adds is in tests/integration/test_incremental.py.
    assert again.stdout.startswith("No changes. The server matches the manifests.\n")
    full = run("plan", path, "--detailed-exitcode", "--full")
    assert (full.exit_code, full.stdout) == (0, "No changes. The server matches the manifests.\n")


def test_plan_json_is_the_machine_format(run: Any, db_name: str, tmp_path: Path) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})
    result = run("plan", path, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format_version"] == 1
    assert data["summary"] == {"create": 2, "update": 0, "delete": 0}
    assert [s["address"] for s in Plan.from_dict(data).to_dict()["steps"]] == [
        f"db:{db_name}", f"db:{db_name}/doc:a"]


def test_apply_json_is_one_document_with_the_plan_and_every_step(
    run: Any, db_name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})
    result = run("apply", path, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["plan"]["summary"] == report["summary"] == {"create": 2, "update": 0,
                                                              "delete": 0}
    assert [(r["address"], r["ok"]) for r in report["results"]] == [
        (f"db:{db_name}", True), (f"db:{db_name}/doc:a", True)]

    again = run("apply", path, "--yes", "--format", "json")
    assert again.exit_code == 0, again.output
    report_again = json.loads(again.stdout)
    assert report_again == {
        "format_version": 1, "couchsync_version": couchsync.__version__, "ok": True,
        # What an incremental plan adds is in tests/integration/test_incremental.py.
        "plan": {**Plan().to_dict(), **{key: value for key, value in
                                        report_again["plan"].items() if key == "incremental"}},
        "results": [],
        "summary": {"create": 0, "update": 0, "delete": 0}, "warnings": [], "confirmed": 0,
        "staged": [], "migrated": []}


def test_apply_json_on_a_terminal_asks_on_stderr_and_keeps_stdout_one_document(
    run: Any, db_name: str, tmp_path: Path, couch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make CliRunner's stdin, stdout and stderr terminals (colors stay off: NO_COLOR is set).
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})

    # CliRunner echoes the typed answer on stdout, where a terminal would show it.
    cancelled = run("apply", path, "--format", "json", input="no\n")
    assert cancelled.exit_code == 1
    assert cancelled.stdout.strip() == "no"
    assert f"+ db:{db_name}/doc:a" in cancelled.stderr
    assert "Only 'yes' will be accepted." in cancelled.stderr
    assert cancelled.stderr.endswith("Error: apply cancelled\n")
    with Client(couch_url) as client:
        assert db_name not in client

    confirmed = run("apply", path, "--format", "json", input="yes\n")
    assert confirmed.exit_code == 0, confirmed.output
    answer, report = confirmed.stdout.split("\n", 1)
    assert answer.strip() == "yes"
    assert json.loads(report)["summary"] == {"create": 2, "update": 0, "delete": 0}


def test_apply_without_a_terminal_and_without_yes_refuses(
    run: Any, db_name: str, tmp_path: Path, couch_url: str
) -> None:
    result = run("apply", write(tmp_path, {db_name: {}}))
    assert result.exit_code == 1
    assert "pass --yes" in result.stderr
    with Client(couch_url) as client:
        assert db_name not in client


def test_only_limits_the_plan_and_an_unknown_selector_is_a_clean_error(
    run: Any, db_name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}, {"_id": "b"}]}})
    result = run("plan", path, "--only", f"{db_name}/b")
    assert result.exit_code == 0, result.output
    assert f"db:{db_name}/doc:b" in result.stdout and "doc:a" not in result.stdout

    bad = run("plan", path, "--only", "nope")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: only: 'nope' names no database that the manifests describe\n"


def test_only_with_a_document_id_the_manifests_do_not_list_is_a_clean_error(
    run: Any, db_name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})
    result = run("plan", path, "--only", f"{db_name}/nope")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: only: '{db_name}/nope' names no document that the manifests list for {db_name}\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_failed_apply_exits_1_naming_the_document_and_the_reason(
    run: Any, db_name: str, tmp_path: Path, fmt: str
) -> None:
    guard = {"validate_doc_update": "function (doc) { if (!doc._deleted && !doc.type) "
                                    "{ throw({forbidden: 'type is required'}); } }"}
    path = write(tmp_path, {db_name: {"design_docs": {"guard": guard},
                                      "documents": [{"_id": "bad"}, {"_id": "good", "type": "t"}]}})
    result = run("apply", path, "--yes", "--format", fmt)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: apply failed for 1 of 4 steps:",
        f"  db:{db_name}/doc:bad: forbidden: type is required",
    ]
    if fmt == "json":
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert [(r["id"], r["ok"], r["error"]) for r in report["results"][2:]] == [
            ("bad", False, "forbidden: type is required"), ("good", True, None)]
        assert report["summary"] == {"create": 3, "update": 0, "delete": 0}


@pytest.mark.parametrize("url", [
    # A user that does not exist: CouchDB locks an existing user out for 5 minutes after 5
    # failed logins, which would lock out the suite's admin.
    "http://cstest-nobody:wrong-secret@{host}",  # wrong credentials
    "http://admin:wrong-secret@127.0.0.1:9",  # nothing listening
    "ftp://admin:wrong-secret@{host}",  # unusable URL
    "http://admin:wrong-secret@127.0.0.1:99999",
])
def test_server_and_url_errors_are_one_clean_line_without_the_password(
    db_name: str, tmp_path: Path, couch_url: str, url: str
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})
    url = url.format(host=couch_url.rsplit("@", 1)[-1])
    for command in (["plan", path], ["apply", path, "--yes"], ["export", "--db", db_name]):
        result = CliRunner().invoke(app, [*command, "--url", url])
        assert result.exit_code == 1
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: ")
        assert "wrong-secret" not in line


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://admin:wrong-secret@x", "invalid server URL: unsupported scheme, use http or https"),
    ("notaurl", "invalid server URL: expected http://HOST[:PORT] or https://..."),
    ("http://admin:wrong-secret@x:99999", "invalid server URL: its port is out of range (0-65535)"),
])
def test_a_bad_url_is_the_one_line_error_of_invalid_url(
    db_name: str, tmp_path: Path, url: str, message: str
) -> None:
    path = write(tmp_path, {db_name: {}})
    for command in (["plan", path], ["apply", path, "--yes"], ["export", "--db", db_name]):
        result = CliRunner().invoke(app, [*command, "--url", url])
        assert result.exit_code == 1
        assert (result.stdout, result.stderr) == ("", f"Error: {message}\n")


def test_export_writes_a_manifest_that_plans_empty(
    run: Any, db_name: str, tmp_path: Path
) -> None:
    spec = {"security": {"members": {"names": [], "roles": ["staff"]}},
            "indexes": {"by-type": {"fields": ["type"], "ddoc": "idx"}},
            "documents": [{"_id": "a", "type": "t"}]}
    assert run("apply", write(tmp_path, {db_name: spec}), "--yes").exit_code == 0
    exported = run("export", "--db", db_name, "--with-docs")
    assert exported.exit_code == 0, exported.output
    path = tmp_path / "exported.yaml"
    path.write_text(exported.stdout)
    assert run("plan", str(path), "--detailed-exitcode").exit_code == 0
