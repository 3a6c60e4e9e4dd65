"""One rule for secrets in plans: a value a secret variable gave the manifests is masked
in the text, markdown and JSON plans and in a saved plan, not even hashed there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from couchsync.manifest import load_manifests
from couchsync.manifest._env import is_secret_variable
from couchsync.plan import Action, Plan, Step, StepKind, render_json, render_markdown, render_text
from couchsync.saved_plan import declared_items, fingerprint

SECRET, OLD = "tok-§-new", "tok-§-old"
FUNCTION = "function (doc) {\n  if (doc.key !== '%s') {\n    throw({forbidden: 'no'});\n  }\n}"


def plan_with_secrets() -> Plan:
    return Plan([
        Step(Action.CREATE, StepKind.DOCUMENT, "app", "hook",
             after={"auth": {"headers": [f"Bearer {SECRET}"]}, "name": "hook"}),
        # The old value is not known to be a secret: masked for being where one is now.
        Step(Action.UPDATE, StepKind.DOCUMENT, "app", "mailer", rev="1-a",
             before={"key": OLD, "region": "eu"}, after={"key": SECRET, "region": "us"}),
        Step(Action.UPDATE, StepKind.DESIGN_DOC, "app", "_design/guard", rev="1-b",
             before={"validate_doc_update": FUNCTION % OLD},
             after={"validate_doc_update": FUNCTION % SECRET}),
        Step(Action.DELETE, StepKind.DOCUMENT, "app", "gone", rev="1-c",
             before={"url": f"https://u:{SECRET}@x.example.com"}),
    ], secrets=frozenset({SECRET}))


def test_a_secret_value_is_masked_in_every_format() -> None:
    plan = plan_with_secrets()
    outputs = {"text": render_text(plan.view()), "markdown": render_markdown(plan.view()),
               "json": render_json(plan), "dict": json.dumps(plan.to_dict())}
    for name, text in outputs.items():
        assert SECRET not in text and OLD not in text, name
        assert "tok-" not in text, name  # no part of either
    text = outputs["text"]
    assert '      ~ key: "***" → "(changed)"' in text
    assert '      ~ region: "eu" → "us"' in text  # the rest shows as it is
    # The secret's place in a string is masked; a string that held an unknown (old)
    # value where one is now is masked whole.
    assert "\n".join(["      ~ validate_doc_update:", "          @@ -1 +1,5 @@",
                      "          -***", "          +function (doc) {",
                      "          +  if (doc.key !== '***') {"]) in text
    assert '      + auth: {"headers": ["Bearer ***"]}' in text
    assert '      - url: "https://u:***@x.example.com"' in text
    assert plan.steps[1].after["key"] == SECRET  # apply still writes the value


def test_without_secrets_values_show_as_they_are() -> None:
    step = Step(Action.UPDATE, StepKind.DOCUMENT, "app", "m", rev="1-a",
                before={"key": OLD}, after={"key": SECRET})
    assert f'~ key: "{OLD}" → "{SECRET}"' in render_text(Plan([step]).view())


@pytest.mark.parametrize("name", ["API_TOKEN", "smtp_password", "AppSecret", "STRIPE_KEY",
                                  "GH_AUTH", "DB_CREDENTIALS", "PASSPHRASE"])
def test_names_that_say_secret(name: str) -> None:
    assert is_secret_variable(name)


@pytest.mark.parametrize("name", ["REGION", "STAGE", "THEME", "HOMEPAGE"])
def test_names_that_do_not(name: str) -> None:
    assert not is_secret_variable(name)


def test_a_saved_plan_does_not_hash_a_secret(tmp_path: Path) -> None:
    """A guessable secret would be found by hashing guesses: the declared items a saved
    plan holds are digests of what plans show, the secret masked."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {"app": {
        "design_docs": {"guard": {"validate_doc_update": FUNCTION % "${API_TOKEN}"}},
        "security": {"members": {"names": ["${API_TOKEN}"]}},
        "documents": [{"_id": "mailer", "key": "${API_TOKEN}", "region": "${REGION}"},
                      {"_id": "plain", "n": 1}]}}}))

    def loaded(token: str, region: str = "eu") -> dict[str, str]:
        desired = load_manifests([manifest], environ={"API_TOKEN": token, "REGION": region})
        assert desired.secrets == {token}
        return declared_items(desired)

    assert loaded(SECRET) == loaded(OLD)
    assert loaded(SECRET) != loaded(SECRET, region="us")  # other values still count
    assert fingerprint(load_manifests([manifest], environ={"API_TOKEN": SECRET,
                                                           "REGION": "eu"})) == \
        fingerprint(load_manifests([manifest], environ={"API_TOKEN": OLD, "REGION": "eu"}))
