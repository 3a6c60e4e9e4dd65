"""``--var``, ``--var-file`` and ``--db-prefix`` in real plans and applies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from cli_helpers import run


def test_a_prefixed_environment_is_applied_with_its_variables_and_re_plans_empty(
        couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path) -> None:
    declared = db_name_factory()  # the manifests' name; the server gets pr-7-<it>
    prefix = "pr-7-"
    real = prefix + declared
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {declared: {"documents": [
        {"_id": "ui", "theme": "${THEME}", "region": "${REGION}"}]}}}))
    variables = tmp_path / "staging.env"
    variables.write_text("THEME=from-file\nREGION=eu-west\n")
    common = ["--var-file", str(variables), "--var", "THEME=from-var", "--db-prefix", prefix]
    try:
        shown = run(couch_url, "plan", str(manifest), *common)
        assert shown.returncode == 0, shown.stderr
        assert f"+ db:{real}/doc:ui" in shown.stdout
        assert f"db:{declared}" not in shown.stdout.replace(real, "")

        done = run(couch_url, "apply", str(manifest), "--yes", *common)
        assert done.returncode == 0, done.stderr
        body = httpx.get(f"{couch_url}/{real}/ui", timeout=30).json()
        assert (body["theme"], body["region"]) == ("from-var", "eu-west")
        assert httpx.get(f"{couch_url}/{declared}", timeout=30).status_code == 404

        only = run(couch_url, "plan", str(manifest), *common, "--only", declared,
                   "--detailed-exitcode")
        assert only.returncode == 0, only.stdout + only.stderr
        assert "No changes." in only.stdout
        changed = run(couch_url, "plan", str(manifest), *common[:-2], "--var", "THEME=x",
                      "--db-prefix", prefix)
        assert '~ theme: "from-var" → "x"' in changed.stdout
    finally:
        httpx.delete(f"{couch_url}/{real}", timeout=30)


def test_a_missing_variable_is_named_with_its_place_and_nothing_is_written(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {"documents": [
        {"_id": "ui", "theme": "${THEME}"}]}}}))
    failed = run(couch_url, "apply", str(manifest), "--yes", "--var", "OTHER=1")
    assert failed.returncode == 1
    assert (f"{manifest}:5:14: variable THEME is not set (by --var, --var-file or the "
            "environment) and has no default") in failed.stderr
    assert httpx.get(f"{couch_url}/{db_name}", timeout=30).status_code == 404
