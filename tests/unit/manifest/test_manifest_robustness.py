"""Whatever the input, the loader answers with a DesiredState or a ManifestError."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from couchsync.manifest import ManifestError, load_manifests, schema_text
from couchsync.manifest._schema import document_issues

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)
# YAML-ish text: the characters that make YAML's syntax, so the parser gets exercised.
_yamlish = st.text(
    alphabet=string.ascii_letters[:6] + string.digits[:3] + " \t\n:-[]{},&*!|>'\"#%@`?$_/",
    max_size=120)


def _load(tmp_path: Path, content: str | bytes, name: str = "m.yaml") -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        load_manifests([path], environ={})
    except ManifestError as exc:
        assert exc.problems
        assert all(str(p).startswith(str(tmp_path)) for p in exc.problems)


@SETTINGS
@given(text=_yamlish)
def test_arbitrary_yaml_text(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


@SETTINGS
@given(data=st.binary(max_size=80))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)


@SETTINGS
@given(value=_json)
def test_arbitrary_structures(tmp_path: Path, value: Any) -> None:
    _load(tmp_path, yaml.safe_dump(value))


@SETTINGS
@given(database=_json, name=st.sampled_from(["app", "Bad", ""]))
def test_arbitrary_structures_inside_a_database(tmp_path: Path, database: Any, name: str) -> None:
    _load(tmp_path, yaml.safe_dump({"version": 1, "databases": {name: database}}))


@SETTINGS
@given(section=st.sampled_from(["indexes", "design_docs", "documents", "security"]), value=_json)
def test_arbitrary_structures_inside_a_section(tmp_path: Path, section: str, value: Any) -> None:
    _load(tmp_path, yaml.safe_dump({"version": 1, "databases": {"app": {section: value}}}))


@SETTINGS
@given(data=st.text(max_size=200), suffix=st.sampled_from([".jsonl", ".json"]))
def test_arbitrary_documents_from_data(tmp_path: Path, data: str, suffix: str) -> None:
    (tmp_path / f"d{suffix}").write_text(data, encoding="utf-8", errors="surrogatepass")
    _load(tmp_path, f"version: 1\ndatabases:\n  app:\n    documents_from: [d{suffix}]\n")


_DOCUMENT = Draft202012Validator(json.loads(schema_text())["$defs"]["document"])


@settings(max_examples=500)
@given(body=st.dictionaries(st.sampled_from(["_id", "_deleted", "_rev", "_idx", "_", "a", "_id\n"]),
                            _json, max_size=4) | _json)
def test_document_fast_path_never_accepts_what_the_schema_rejects(body: Any) -> None:
    assert (document_issues(body) == []) == _DOCUMENT.is_valid(body)
