"""Design-doc JavaScript checked at load with QuickJS (CouchDB 3.5's engine): each
function CouchDB would not compile, and each reduce that is no built-in, is a problem
naming file:line:col, and ``couchsync validate`` exits 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.manifest import ManifestError, load_manifests
from couchsync.manifest._javascript import BUILTIN_REDUCES, javascript_problems

MAP = "function (doc) { emit(doc.type, 1); }"


def _problems(tmp_path: Path, design: dict[str, Any]) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {"shop": {
        "design_docs": {"app": design}}}}))
    try:
        load_manifests([path], environ={})
    except ManifestError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def test_reduce_count_is_refused_naming_the_built_in(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"views": {"by_type": {"map": MAP, "reduce": "count"}}})
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'm.yaml'}:")
    assert ("views.by_type.reduce of design doc 'app': does not evaluate to a function: "
            "ReferenceError: 'count' is not defined") in problems[0]
    assert problems[0].endswith("(the built-in is '_count')")


@pytest.mark.parametrize("reduce", [*sorted(BUILTIN_REDUCES), "_top_1", "_bottom_100"])
def test_every_built_in_reduce_is_accepted(tmp_path: Path, reduce: str) -> None:
    assert _problems(tmp_path, {"views": {"v": {"map": MAP, "reduce": reduce}}}) == []


@pytest.mark.parametrize("reduce", ["_countx", "_Count", "_top_0", "_top_101", "_sum ", "_"])
def test_a_reduce_starting_with_underscore_must_be_a_built_in(tmp_path: Path,
                                                              reduce: str) -> None:
    [problem] = _problems(tmp_path, {"views": {"v": {"map": MAP, "reduce": reduce}}})
    assert f"{reduce!r} is not one of CouchDB's built-in reduces" in problem


@pytest.mark.parametrize("field", ["validate_doc_update", "shows", "lists", "updates",
                                   "filters", "map", "reduce", "nouveau", "lib"])
def test_a_function_that_does_not_compile_names_its_place(tmp_path: Path, field: str) -> None:
    broken = "function (doc, req) {\n  if (doc.type {\n    return 1;\n  }\n}"
    design: dict[str, Any] = {
        "validate_doc_update": {"validate_doc_update": broken},
        "map": {"views": {"v": {"map": broken}}},
        "reduce": {"views": {"v": {"map": MAP, "reduce": broken}}},
        "nouveau": {"nouveau": {"n": {"index": broken}}},
        "lib": {"views": {"lib": {"util": {"dates": "exports.x = {;"}}}},
    }.get(field, {field: {"f": broken}})
    [problem] = _problems(tmp_path, design)
    where, _, message = problem.partition(": ")
    line, col = map(int, where.rsplit(":", 2)[1:])
    assert line > 1 and col > 1  # the function's own place in the file
    assert "of design doc 'app': " in message
    assert "SyntaxError" in message


def test_the_error_names_the_line_of_the_function() -> None:
    [(path, message)] = javascript_problems(
        {"validate_doc_update": "function (doc) {\n  if (doc.type {\n  }\n}"})
    assert path == ("validate_doc_update",)
    assert message == "does not compile: SyntaxError: expecting ')' (line 2 of the function)"


@pytest.mark.parametrize("source", [
    MAP,
    "(function (doc) { emit(doc._id, 1); })",
    "// leading comment\nfunction (doc) {\n\temit(doc._id, null);\n}\n",
    "var x = 1; function (doc) { emit(x, 1); }",  # CouchDB's SpiderMonkey 1.8.5 mode
    "function f(doc) { emit(doc._id, 1); } f",
    "function (doc) { emit(`${doc.a}`, [1, 2].map((v) => v * 2)); }",
    "function (doc) { if (doc.type) { emit(doc.type, require('views/lib/x').y); } }",
    "function (doc) { for (;;) { } }",  # never run: only compiled
])
def test_functions_couchdb_compiles_are_accepted(source: str) -> None:
    assert list(javascript_problems({"views": {"v": {"map": source}}})) == []


@pytest.mark.parametrize("source, reason", [
    ("function map(doc) { emit(doc._id, 1); }", "as a declaration"),
    ("1 + 1", "does not evaluate to a function"),
    ("function (doc) { emit(doc._id, 1);", "does not compile: SyntaxError"),
])
def test_functions_couchdb_refuses_are_refused(source: str, reason: str) -> None:
    [(_, message)] = javascript_problems({"views": {"v": {"map": source}}})
    assert reason in message


def test_other_languages_are_not_checked() -> None:
    assert list(javascript_problems({"language": "erlang", "views": {"v": {
        "map": "fun({Doc}) -> Emit(null, null) end."}}})) == []


def test_validate_exits_1_with_file_line_col(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\ndatabases:\n  shop:\n    design_docs:\n      app:\n"
                    "        views:\n          v:\n            map: 'function (doc) { }'\n"
                    "            reduce: count\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:9:21: views.v.reduce of design doc 'app': ")
    assert "Traceback" not in result.output
