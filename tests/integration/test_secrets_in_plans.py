"""A value a secret variable gives the manifests (``${API_TOKEN}``: its name says
secret) is masked in every plan format and never written to a saved plan, in any
database, whatever its length. Each command's exit code is checked: a crash would
print no secret either, and must not pass for one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from cli_helpers import run

# Characters couchsync never prints by itself, so that even one of them is found.
SECRETS = ["§", "§¶†", "§¶†‡¤µ¶§", ("§¶†‡¤µ" * 7)[:40]]


def manifest(path: Path, db: str) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {
        "design_docs": {"guard": {"validate_doc_update": (
            "function (doc) {\n  if (doc.kind === 'hook' && doc.key !== '${API_TOKEN}') {\n"
            "    throw({forbidden: 'bad key'});\n  }\n}")}},
        "documents": [{"_id": "mailer", "region": "${REGION}", "api_key": "${API_TOKEN}",
                       "url": "https://mailer:${API_TOKEN}@smtp.example.com/send",
                       "headers": ["X-Token: ${API_TOKEN}"]}]}}}))
    return path


@pytest.mark.parametrize("secret", SECRETS, ids=lambda secret: f"{len(secret)}-chars")
def test_a_secret_variable_is_masked_in_every_plan_format_and_saved_plan(
        couch_url: str, db_name: str, tmp_path: Path, secret: str) -> None:
    path = str(manifest(tmp_path / "m.yaml", db_name))
    other = "¤" + secret[1:]  # the secret changed, as rotated
    seen: list[str] = []

    def check(code: int, *args: str, token: str = secret) -> str:
        result = run(couch_url, *args, env={"API_TOKEN": token})
        assert result.returncode == code, result.stderr
        seen.append(result.stdout + result.stderr)
        return result.stdout

    for fmt in ("text", "markdown", "json"):
        shown = check(2, "plan", path, "--var", "REGION=eu", "--format", fmt,
                      "--detailed-exitcode")
        assert "***" in shown and '"eu"' in shown
    saved = tmp_path / "plan.json"
    check(0, "plan", path, "--var", "REGION=eu", "--out", str(saved))
    seen.append(saved.read_text(encoding="utf-8"))
    check(0, "apply", "--plan", str(saved))
    stored = httpx.get(f"{couch_url}/{db_name}/mailer", timeout=30).json()
    assert stored["api_key"] == secret  # written, not masked, on the server
    check(0, "plan", path, "--var", "REGION=eu", "--detailed-exitcode")

    for fmt in ("text", "markdown", "json"):
        shown = check(2, "plan", path, "--var", "REGION=eu", "--format", fmt,
                      "--detailed-exitcode", token=other)
        assert "(changed)" in shown
    applied = check(0, "apply", path, "--var", "REGION=eu", "--yes", "--format", "json",
                    token=other)
    steps = {step["id"]: step for step in json.loads(applied)["plan"]["steps"]}
    assert steps["mailer"]["after"]["api_key"] == "(changed)"
    assert httpx.get(f"{couch_url}/{db_name}/mailer", timeout=30).json()["api_key"] == other

    for text in seen:
        for value in (secret, other):
            assert value not in text
            assert json.dumps(value)[1:-1] not in text  # nor \u-escaped
