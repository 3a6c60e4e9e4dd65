"""${VAR} and ${VAR:-default} expansion."""

from __future__ import annotations

import pytest
from conftest import Collect, Write

from couchsync.manifest import load_manifests
from couchsync.manifest._env import expand, expand_string

ENV = {"USER": "ada", "EMPTY": "", "PORT": "5984"}

UNSET = "(by --var, --var-file or the environment) and has no default"


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("${USER}", "ada"),
    ("hello ${USER}!", "hello ada!"),
    ("${USER}:${PORT}", "ada:5984"),
    ("${MISSING:-fallback}", "fallback"),
    ("${MISSING:-}", ""),
    ("${EMPTY:-used when empty}", "used when empty"),
    ("${EMPTY}", ""),
    ("${USER:-unused}", "ada"),
    ("${MISSING:-a:b-c d}", "a:b-c d"),
    ("$${USER}", "${USER}"),
    ("cost: $5, $$ and $", "cost: $5, $$ and $"),
    ("$$${USER}", "$${USER}"),  # leftmost "$${" is the escape: "$" + literal "${USER}"
    ("function () { return `$${x}`; }", "function () { return `${x}`; }"),
])
def test_expand_string(text: str, expected: str) -> None:
    assert expand_string(text, ENV) == (expected, [])


@pytest.mark.parametrize(("text", "fragment"), [
    ("${MISSING}", "variable MISSING is not set"),
    ("${doc.field}", "invalid variable reference '${doc.field}'"),
    ("${}", "invalid variable reference '${}'"),
    ("${UNCLOSED", "invalid variable reference '${UNCLOSED'"),
    ("${1ABC}", "invalid variable reference"),
])
def test_expand_string_problems(text: str, fragment: str) -> None:
    _, problems = expand_string(text, ENV)
    assert len(problems) == 1
    assert fragment in problems[0]


def test_values_are_expanded_keys_are_not() -> None:
    result = expand({"${USER}": "${USER}", "list": ["${PORT}", 1, None]}, ENV)
    assert result.value == {"${USER}": "ada", "list": ["5984", 1, None]}
    assert result.expanded == {("${USER}",), ("list", 0)}
    assert result.problems == []


def test_every_missing_variable_is_named_where_used(write: Write, collect: Collect) -> None:
    write("m.yaml", """\
        version: 1
        databases:
          app:
            documents:
              - _id: a
                key: ${API_KEY}
                url: "https://${HOST}:${PORT:-443}/"
        """)
    assert collect("m.yaml") == [
        ("m.yaml", 6, 14, f"variable API_KEY is not set {UNSET}"),
        ("m.yaml", 7, 14, f"variable HOST is not set {UNSET}"),
    ]


def test_expanded_values_reach_the_model(write: Write) -> None:
    path = write("m.yaml", """\
        version: 1
        databases:
          app:
            security: {members: {roles: ["${ROLE}"]}}
            documents: [{_id: "${PREFIX:-dev}-settings", port: "${PORT}", raw: "$${PORT}"}]
        """)
    desired = load_manifests([path], environ={"ROLE": "staff", "PORT": "5984"})
    app = desired.databases["app"]
    assert app.security == {"members": {"roles": ["staff"]}}
    assert app.documents["dev-settings"].body == {"_id": "dev-settings", "port": "5984",
                                                  "raw": "${PORT}"}


def test_expanded_enum_value_is_validated(write: Write, collect: Collect) -> None:
    write("m.yaml", "version: 1\ndatabases:\n  app: {state: '${STATE:-gone}'}\n")
    assert collect("m.yaml") == [
        ("m.yaml", 3, 16, "expected one of 'present', 'absent', got 'gone'")]


def test_environ_defaults_to_os_environ(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUCHSYNC_TEST_THEME", "dark")
    path = write("m.yaml", "version: 1\ndatabases:\n  app:\n"
                           "    documents: [{_id: ui, theme: '${COUCHSYNC_TEST_THEME}'}]\n")
    assert load_manifests([path]).databases["app"].documents["ui"].body["theme"] == "dark"


def test_documents_from_data_is_not_expanded(write: Write) -> None:
    write("d.jsonl", '{"_id": "t", "text": "${USER} and $${x}"}\n')
    path = write("m.yaml", "version: 1\ndatabases:\n  app:\n    documents_from: [d.jsonl]\n")
    body = load_manifests([path], environ=ENV).databases["app"].documents["t"].body
    assert body["text"] == "${USER} and $${x}"


def test_documents_from_path_is_expanded(write: Write) -> None:
    write("seeds/prod.jsonl", '{"_id": "p"}\n')
    path = write("m.yaml", "version: 1\ndatabases:\n  app:\n"
                           "    documents_from: ['seeds/${STAGE:-dev}.jsonl']\n")
    assert list(load_manifests([path], environ={"STAGE": "prod"}).databases["app"].documents) == [
        "p"]
