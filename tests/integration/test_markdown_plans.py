"""A markdown plan too long for a GitHub comment is summarised and points to the full
plan: the --out file when the plan was saved, else `couchsync plan --format json`."""

from __future__ import annotations

from pathlib import Path

import yaml
from cli_helpers import run

#: Enough databases that the full comment (a table row each) passes 60,000 characters.
DATABASES = 1_500


def test_a_long_markdown_plan_is_summarised_and_names_the_saved_plan(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        f"{db_name}-{i:04}": {"documents": [{"_id": "settings", "tenant": i}]}
        for i in range(DATABASES)}}))
    saved = tmp_path / "plan.json"
    made = run(couch_url, "plan", str(manifest), "--format", "markdown", "--out", str(saved),
               "--detailed-exitcode")
    assert made.returncode == 2, made.stderr
    assert len(made.stdout) < 65_536
    assert "too long for one comment" in made.stdout
    assert f"the full plan is saved in `{saved}`" in made.stdout
    assert f"| + databases to create | {DATABASES:,} | {DATABASES:,} |" in made.stdout
    assert f"| + documents to create | {DATABASES:,} | {DATABASES:,} |" in made.stdout
    plain = run(couch_url, "plan", str(manifest), "--format", "markdown")
    assert plain.returncode == 0, plain.stderr
    assert "the full plan: run `couchsync plan --format json`" in plain.stdout
