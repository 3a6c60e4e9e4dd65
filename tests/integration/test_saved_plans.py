"""``plan --out FILE`` and ``apply --plan FILE`` against the real server: the saved plan
is applied exactly, or refused with nothing written and what moved named."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml
from cli_helpers import run


def write(path: Path, db: str, theme: str = "${THEME}") -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {"documents": [
        {"_id": "ui", "theme": theme, "page_size": 25},
        {"_id": "support", "email": "help@example.com"}]}}}))
    return path


def doc(url: str, db: str, doc_id: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/{db}/{doc_id}", timeout=30).json())


def test_a_saved_plan_is_applied_exactly(couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.yaml", db_name)
    saved = tmp_path / "plan.json"
    made = run(couch_url, "plan", str(manifest), "--var", "THEME=dark", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    assert f"Saved the plan to {saved}" in made.stderr
    assert json.loads(saved.read_text())["plan"]["summary"] == {
        "create": 3, "update": 0, "delete": 0}

    done = run(couch_url, "apply", "--plan", str(saved), "--var", "THEME=dark")
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 3 created, 0 updated, 0 deleted." in done.stdout
    assert doc(couch_url, db_name, "ui")["theme"] == "dark"
    # Applied once: applying it again finds the server moved (its own work).
    again = run(couch_url, "apply", "--plan", str(saved), "--var", "THEME=dark")
    assert again.returncode == 1
    assert f"db:{db_name}: planned (+), now nothing to do" in again.stderr


def test_a_stale_saved_plan_is_refused_with_nothing_written_and_the_move_named(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.yaml", db_name, theme="light")
    assert run(couch_url, "apply", str(manifest), "--yes").returncode == 0
    write(manifest, db_name, theme="dark")
    saved = tmp_path / "plan.json"
    assert run(couch_url, "plan", str(manifest), "--out", str(saved)).returncode == 0
    live = doc(couch_url, db_name, "ui")
    moved = httpx.put(f"{couch_url}/{db_name}/ui", timeout=30,
                      json={**live, "page_size": 50}).json()["rev"]

    refused = run(couch_url, "apply", "--plan", str(saved))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert (f"db:{db_name}/doc:ui: planned at rev {live['_rev']}, now at rev {moved}"
            in refused.stderr)
    assert "nothing was written" in refused.stderr
    assert doc(couch_url, db_name, "ui")["_rev"] == moved  # nothing written


def test_a_saved_plan_of_other_manifests_or_another_server_is_refused(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.yaml", db_name, theme="light")
    saved = tmp_path / "plan.json"
    assert run(couch_url, "plan", str(manifest), "--out", str(saved)).returncode == 0

    write(manifest, db_name, theme="dark")
    other_manifests = run(couch_url, "apply", "--plan", str(saved))
    assert other_manifests.returncode == 1
    assert "declare something else than when the plan was made" in other_manifests.stderr

    write(manifest, db_name, theme="light")
    data = json.loads(saved.read_text())
    data["server"]["uuid"] = "0" * 32
    saved.write_text(json.dumps(data))
    other_server = run(couch_url, "apply", "--plan", str(saved))
    assert other_server.returncode == 1
    assert "the plan was made against another server" in other_server.stderr
    assert httpx.get(f"{couch_url}/{db_name}", timeout=30).status_code == 404


def test_a_plan_holding_a_secret_is_not_saved(couch_url: str, db_name: str,
                                              tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {"documents": [
        {"_id": "smtp", "password": "${SMTP_PASSWORD}"}]}}}))
    saved = tmp_path / "plan.json"
    refused = run(couch_url, "plan", str(manifest), "--var", "SMTP_PASSWORD=hunter2-xyzzy",
                  "--out", str(saved))
    assert refused.returncode == 1
    assert "the plan holds the value of ${SMTP_PASSWORD}" in refused.stderr
    assert not saved.exists() and not list(tmp_path.glob("*.partial"))
    assert "hunter2-xyzzy" not in refused.stderr
