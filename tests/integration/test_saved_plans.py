"""``plan --out FILE`` and ``apply --plan FILE`` against the real server: the saved plan
is applied exactly, or refused with nothing written and what moved named."""

from __future__ import annotations

import json
import uuid
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


def test_a_plan_holding_a_secret_is_saved_with_it_masked(couch_url: str, db_name: str,
                                                         tmp_path: Path) -> None:
    """As every plan shows it (test_secrets_in_plans.py tries each format and length)."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {"documents": [
        {"_id": "smtp", "password": "${SMTP_PASSWORD}"}]}}}))
    saved = tmp_path / "plan.json"
    made = run(couch_url, "plan", str(manifest), "--var", "SMTP_PASSWORD=hunter2-xyzzy",
               "--out", str(saved))
    assert made.returncode == 0, made.stderr
    text = saved.read_text()
    assert "hunter2-xyzzy" not in text + made.stdout + made.stderr
    step = json.loads(text)["plan"]["steps"][1]
    assert step["address"] == f"db:{db_name}/doc:smtp" and step["after"]["password"] == "***"


def test_a_saved_plan_keeps_the_variables_it_was_made_with(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    """--var, --var-file and environment values travel in the plan; an unset variable
    stays unset (its default holds) whatever the environment says at apply."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {"documents": [
        {"_id": "ui", "stage": "${STAGE}", "region": "${REGION}", "home": "${HOMEPAGE}",
         "mode": "${MODE:-standard}"}]}}}))
    (tmp_path / "vars.env").write_text("REGION=eu-west\n")
    saved = tmp_path / "plan.json"
    made = run(couch_url, "plan", str(manifest), "--var", "STAGE=blue", "--var-file",
               str(tmp_path / "vars.env"), "--out", str(saved),
               env={"HOMEPAGE": "https://blue.example.com"})
    assert made.returncode == 0, made.stderr

    done = run(couch_url, "apply", "--plan", str(saved),
               env={"MODE": "turbo", "HOMEPAGE": "https://other.example.com"})
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 2 created" in done.stdout
    ui = doc(couch_url, db_name, "ui")
    assert (ui["stage"], ui["region"], ui["home"], ui["mode"]) == (
        "blue", "eu-west", "https://blue.example.com", "standard")


def test_a_saved_plan_asks_again_only_for_secrets(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    user = f"couchsync-test-{db_name[-8:]}"
    password = f"pw-{uuid.uuid4().hex}"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({
        "version": 1, "users": {user: {"password": "${APP_USER_PASSWORD}", "roles": []}},
        "databases": {db_name: {"documents": [{"_id": "ui", "stage": "${STAGE}"}]}}}))
    saved = tmp_path / "plan.json"
    made = run(couch_url, "plan", str(manifest), "--var", "STAGE=blue", "--out", str(saved),
               env={"APP_USER_PASSWORD": password})
    assert made.returncode == 0, made.stderr
    assert password not in saved.read_text() and password[3:] not in saved.read_text()
    try:
        missing = run(couch_url, "apply", "--plan", str(saved))
        assert missing.returncode == 1
        assert ("Error: the saved plan needs the secret variable APP_USER_PASSWORD, which is "
                "not set") in missing.stderr
        assert httpx.get(f"{couch_url}/{db_name}", timeout=30).status_code == 404

        done = run(couch_url, "apply", "--plan", str(saved),
                   env={"APP_USER_PASSWORD": password})
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
        assert doc(couch_url, db_name, "ui")["stage"] == "blue"
        login = httpx.post(f"{couch_url.split('@')[0].rsplit('//', 1)[0]}//"
                           f"{couch_url.split('@')[1]}/_session", timeout=30,
                           json={"name": user, "password": password})
        assert login.status_code == 200, login.text
    finally:
        live = httpx.get(f"{couch_url}/_users/org.couchdb.user:{user}", timeout=30)
        if live.status_code == 200:
            httpx.delete(f"{couch_url}/_users/org.couchdb.user:{user}", timeout=30,
                         params={"rev": live.json()["_rev"]})


def test_the_refusal_names_the_file_the_item_and_the_variable_that_changed(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.yaml", db_name)
    saved = tmp_path / "plan.json"
    assert run(couch_url, "plan", str(manifest), "--var", "THEME=dark",
               "--out", str(saved)).returncode == 0

    other_value = run(couch_url, "apply", "--plan", str(saved), "--var", "THEME=light")
    assert other_value.returncode == 1
    assert "variable THEME: 'dark' in the plan, given 'light' now" in other_value.stderr
    assert (f"db:{db_name}/doc:ui: declared differently since the plan was made"
            in other_value.stderr)

    manifest.write_text(manifest.read_text().replace("help@example.com", "ops@example.com"))
    edited = run(couch_url, "apply", "--plan", str(saved))
    assert edited.returncode == 1
    assert f"manifest file {manifest}: changed since the plan was made" in edited.stderr
    assert (f"db:{db_name}/doc:support: declared differently since the plan was made"
            in edited.stderr)
    assert f"db:{db_name}/doc:ui" not in edited.stderr
    assert "nothing was written" in edited.stderr
    assert httpx.get(f"{couch_url}/{db_name}", timeout=30).status_code == 404
