"""The YAML ``export`` writes: multi-line strings as literal blocks, every value read back exactly.

Each string is checked twice: ``yaml.safe_load`` of the dumped YAML gives it back,
and so does couchsync's own manifest loader on what ``export_manifest`` writes
(a design doc holding the string as a map function, a field of its own, and a key).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from couchsync.client import Client
from couchsync.export import _dump_yaml, export_manifest
from couchsync.manifest import load_manifests
from couchsync.manifest._yaml import looks_like_a_number

FUNCTION = "function (doc) {\n  if (doc.type === 'order') {\n    emit(doc.day, doc.total);\n  }\n}"
TRICKY = [
    "",
    " ",
    "plain",
    "one line, no break",
    FUNCTION,
    FUNCTION + "\n",
    FUNCTION + "\n\n",
    FUNCTION + "\n\n\n",
    "a\n",
    "a\nb",
    "a\n\nb\n",
    "\n",
    "\n\n\n",
    "\na",
    " leading space\nsecond line",
    "  two leading spaces\n  on both lines\n",
    "first\n   indented more\nback",
    "first\n\n\n   after blank lines\n",
    "trailing space \nnext",
    "last line has trailing space\nhere ",
    "a\n \nb",  # a line of spaces only
    "tab\tinside\nline two",
    "\tleading tab\n\tsecond\n",
    "windows\r\nline\r\nends\r\n",
    "old mac\rends",
    "unicode: é ü 中文 😀\nsecond ☃ line\n",
    "next line \x85 char\nx",
    "line\u2028separator\nx",
    "para\u2029separator",
    "bom \ufeff inside\nx",
    "bell \x07 and nul \x00\nx",
    "del \x7f\nx",
    "- looks: like yaml\n# not a comment\n---\n...\n",
    "key: value\n? question\n",
    "'single' and \"double\" quotes\n\\ backslash\n",
    "|\n>\n",
    "${HOME} and $${x} and ${x:-d} and ${\nsecond ${line}\n",
    "`template ${x}`",
    "ends with a backslash \\\n",
    "x" * 150 + "\n" + "y " * 80,
    "many words " * 30 + "\nand a long second line " * 10,
]


def _server(design: dict[str, Any]) -> httpx.MockTransport:
    """The requests ``export_manifest`` makes of database ``shop`` holding ``design``."""
    answers: dict[str, Any] = {
        "/shop": {"db_name": "shop", "props": {}},
        "/shop/_security": {},
        "/shop/_index": {"total_rows": 0, "indexes": []},
        "/shop/_all_docs": {"total_rows": 1, "offset": 0, "rows": [
            {"id": design["_id"], "key": design["_id"], "value": {"rev": design["_rev"]},
             "doc": design}]},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method in ("GET", "HEAD") and request.url.path in answers:
            return httpx.Response(200, json=answers[request.url.path])
        return httpx.Response(404, json={"error": "not_found", "reason": request.url.path})

    return httpx.MockTransport(handler)


def _yaml_round_trip(text: str) -> None:
    data = {"s": text, "nested": {"list": [text, {"k": text}]}, "key " + text: 1}
    dumped = _dump_yaml(data)
    assert yaml.safe_load(dumped) == data, dumped


def _manifest_round_trip(text: str, directory: Path) -> None:
    # Any text as a map function: in a language couchsync does not compile (it compiles
    # JavaScript ones at load).
    design = {"_id": "_design/d", "_rev": "1-a", "language": "erlang",
              "views": {"v": {"map": text}},
              "mine": [text, {"k": text}], "k " + text: text}
    with Client("http://couch.test", transport=_server(design)) as client:
        exported = export_manifest(client, ["shop"])
    path = directory / "exported.yaml"
    path.write_text(exported, encoding="utf-8")
    state = load_manifests([path], environ={})
    body = state.databases["shop"].design_docs["d"].body
    assert body == {key: value for key, value in design.items() if key[0] != "_"}, exported


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_read_back_exactly(text: str, tmp_path: Path) -> None:
    _yaml_round_trip(text)
    _manifest_round_trip(text, tmp_path)


# Lines built from the characters that matter to YAML's scalar styles, and any others.
_PIECES = st.sampled_from([" ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "\x85", "\u2028",
                           "\ufeff", "\x00", "-", "#", ":", "'", '"', "\\", "|", ">", "${",
                           "$${", "}", "...", "---", "é", "😀", "emit(doc);", "x"])
STRINGS = st.one_of(
    st.lists(_PIECES | st.text(max_size=3), max_size=12).map("".join),
    st.text(),
)


@settings(max_examples=1000, deadline=None)
@given(STRINGS)
def test_any_string_reads_back_exactly_through_yaml(text: str) -> None:
    _yaml_round_trip(text)


@settings(max_examples=200, deadline=None)
@given(STRINGS)
def test_any_string_reads_back_exactly_through_the_manifest_loader(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _manifest_round_trip(text, Path(directory))


@settings(max_examples=300, deadline=None)
@given(st.text().filter(lambda s: not any(c in s for c in "\n\x85\u2028\u2029")))
@example("1e5")
def test_single_line_strings_are_written_as_before(text: str) -> None:
    # Except text JSON reads as a number (1e5, 0E0): quoted, so that reading it back
    # does not warn that it stays text (test_values_mean_what_they_look_like).
    data = {"s": text, text: [text]}
    before = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    if looks_like_a_number(text):
        assert _dump_yaml(data) == f"s: '{text}'\n'{text}':\n- '{text}'\n"
    else:
        assert _dump_yaml(data) == before


@pytest.mark.parametrize(("text", "written"), [
    (FUNCTION, "map: |-\n  function (doc) {\n    if (doc.type === 'order') {\n"
               "      emit(doc.day, doc.total);\n    }\n  }\n"),
    (FUNCTION + "\n", "map: |\n  function (doc) {\n    if (doc.type === 'order') {\n"
                      "      emit(doc.day, doc.total);\n    }\n  }\n"),
    ("a\nb\n\n", "map: |+\n  a\n  b\n\n"),
    ("a\n\n  b", "map: |-\n  a\n\n    b\n"),
    # Tabs: code indented with them stays readable (PyYAML alone quotes any tab).
    ("function (doc) {\n\tif (doc.a) {\n\t\temit(doc.a);\n\t}\n}\n",
     "map: |\n  function (doc) {\n  \tif (doc.a) {\n  \t\temit(doc.a);\n  \t}\n  }\n"),
    ("\tfirst\n\tsecond\n", "map: |\n  \tfirst\n  \tsecond\n"),
    ("tab\tinside\nnext", "map: |-\n  tab\tinside\n  next\n"),
])
def test_multi_line_strings_are_literal_blocks(text: str, written: str) -> None:
    assert _dump_yaml({"map": text}).removesuffix("...\n") == written


@pytest.mark.parametrize("text", [
    " leading space\nsecond",  # would need an indentation indicator (|2)
    "\nleading break",
    "trailing space \nnext",
    "trailing tab\t\nnext",  # editors strip it, as they strip trailing spaces
    "windows\r\nends\r\n",
    "bell \x07\nnext",
    "next line \x85\nnext",
])
def test_strings_a_block_would_change_are_double_quoted(text: str) -> None:
    dumped = _dump_yaml({"map": text})
    assert dumped.startswith('map: "'), dumped
    assert yaml.safe_load(dumped) == {"map": text}


def test_an_exported_design_doc_shows_its_functions_as_blocks() -> None:
    design = {"_id": "_design/reports", "_rev": "2-b", "language": "javascript",
              "views": {"by_day": {"map": FUNCTION + "\n", "reduce": "_sum"}}}
    with Client("http://couch.test", transport=_server(design)) as client:
        exported = export_manifest(client, ["shop"])
    assert exported == (
        "# Exported by couchsync export.\n"
        "version: 1\n"
        "databases:\n"
        "  shop:\n"
        "    security: {}\n"
        "    design_docs:\n"
        "      reports:\n"
        "        language: javascript\n"
        "        views:\n"
        "          by_day:\n"
        "            map: |\n"
        "              function (doc) {\n"
        "                if (doc.type === 'order') {\n"
        "                  emit(doc.day, doc.total);\n"
        "                }\n"
        "              }\n"
        "            reduce: _sum\n"
    )
