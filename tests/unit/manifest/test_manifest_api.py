"""The public face of couchsync.manifest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import couchsync.manifest as manifest
from couchsync.manifest import (
    DatabaseSpec,
    DesignDocSpec,
    DesiredState,
    DocumentSpec,
    IndexSpec,
    ManifestError,
    Problem,
    SourcePos,
    load_manifests,
    summarize,
)


def test_exported_names() -> None:
    assert manifest.__all__ == sorted(manifest.__all__)
    assert set(manifest.__all__) == {
        "AttachmentSpec", "DatabaseSpec", "DesignDocSpec", "DesiredState", "DocumentSpec",
        "IndexSpec", "referenced_files", "content_type_of",
        "ManifestError", "Problem", "SourcePos", "iter_problems", "load_manifests",
        "schema_text", "summarize", "expand_patterns", "matches",
        "DatabaseNames", "Shard", "variables", "MigrationSpec",
        "load_transform",  # for plan and apply: a migration's function, imported once
        # for the other packages (no couchsync.manifest._private import outside it)
        "is_pattern", "literal_prefix", "looks_like_a_number", "is_secret_variable",
        "show_warnings_on_stderr"}


def test_problem_is_a_frozen_value_printed_as_file_line_col() -> None:
    problem = Problem("m.yaml", 3, 7, "unknown key 'x'", "databases.app.x")
    assert str(problem) == "m.yaml:3:7: unknown key 'x'"
    assert Problem("m.yaml", 3, 7, "msg").json_path == ""
    assert str(Problem("missing.yaml", 0, 0, "no such file or directory")) == (
        "missing.yaml: no such file or directory")
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.line = 4  # type: ignore[misc]


def test_manifest_error_carries_every_problem() -> None:
    problems = [Problem("a.yaml", 1, 1, "one"), Problem("b.yaml", 2, 3, "two")]
    error = ManifestError(problems)
    assert error.problems == problems
    assert str(error) == "a.yaml:1:1: one\nb.yaml:2:3: two"
    assert error.summary == "2 problems in manifests"
    assert ManifestError(problems[:1]).summary == "1 problem in manifests"


def test_load_manifests_raises_with_all_problems(tmp_path: object) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifests(["/nonexistent/a.yaml", "/nonexistent/b.yaml"], environ={})
    assert [p.file for p in caught.value.problems] == ["/nonexistent/a.yaml",
                                                        "/nonexistent/b.yaml"]


def test_load_manifests_needs_a_path() -> None:
    with pytest.raises(ValueError, match="at least one path"):
        load_manifests([], environ={})


def _state(dbs: int, docs: int, indexes: int, ddocs: int) -> DesiredState:
    where = SourcePos("m.yaml", 1, 1)
    state = DesiredState()
    for d in range(dbs):
        db = state.databases[f"db{d}"] = DatabaseSpec(f"db{d}", where)
        if d == 0:
            db.documents = {f"d{i}": DocumentSpec.from_body({"_id": f"d{i}"}, where)
                            for i in range(docs)}
            db.indexes = {f"i{i}": IndexSpec(f"i{i}", [{"a": "asc"}], where)
                          for i in range(indexes)}
            db.design_docs = {f"r{i}": DesignDocSpec(f"r{i}", {}, where) for i in range(ddocs)}
    return state


@pytest.mark.parametrize(("counts", "expected"), [
    ((2, 14, 3, 1), "2 databases, 14 documents, 3 indexes, 1 design doc"),
    ((1, 1, 1, 2), "1 database, 1 document, 1 index, 2 design docs"),
    ((0, 0, 0, 0), "0 databases, 0 documents, 0 indexes, 0 design docs"),
])
def test_summarize(counts: tuple[int, int, int, int], expected: str) -> None:
    assert summarize(_state(*counts)) == expected


def test_summarize_counts_users_and_replications_apart_from_databases(tmp_path: Path) -> None:
    manifest = tmp_path / "server.yaml"
    manifest.write_text("version: 1\nconfig: {cors: {origins: x, credentials: true}}\n"
                        "users: {a: {}, b: {}}\n"
                        "replications: {r: {source: 'http://h/s', target: 'http://h/t'}}\n"
                        "databases: {orders: {}}\n")
    assert summarize(load_manifests([manifest], environ={})) == (
        "1 database, 0 documents, 0 indexes, 0 design docs, 2 config keys, 2 users, "
        "1 replication")
