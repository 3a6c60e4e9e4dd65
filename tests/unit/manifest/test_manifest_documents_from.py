"""documents_from: JSON Lines and JSON arrays, streamed, with bad data named by file and line."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import Collect, Write

from couchsync._canonical import canonical_json
from couchsync.manifest import (
    DocumentSpec,
    ManifestError,
    Problem,
    _documents_from,
    load_manifests,
)
from couchsync.manifest._documents_from import read_documents

MANIFEST = "version: 1\ndatabases:\n  app:\n    documents_from: [{name}]\n"


def _ids(path: str) -> list[str]:
    return [item.id if isinstance(item, DocumentSpec) else str(item)
            for item in read_documents(path)]


def _documents(path: str) -> list[DocumentSpec]:
    items = list(read_documents(path))
    assert all(isinstance(i, DocumentSpec) for i in items), items
    return [i for i in items if isinstance(i, DocumentSpec)]


def test_json_lines(write: Write) -> None:
    path = write("d.jsonl", '{"_id": "a", "n": 1}\n\n   \n{"_id": "b", "_deleted": true}\n')
    docs = _documents(path)
    assert [(d.id, d.source.line, d.source.col) for d in docs] == [("a", 1, 1), ("b", 4, 1)]
    assert docs[1].deleted


def test_ndjson_crlf_bom_and_missing_final_newline(write: Write) -> None:
    path = write("d.ndjson", b'\xef\xbb\xbf{"_id": "a"}\r\n{"_id": "b"}')
    assert _ids(path) == ["a", "b"]


def test_json_array_positions(write: Write) -> None:
    path = write("d.json", b'[\n  {"_id": "a"},\n  {"_id": "b",\n   "x": [1, 2]}, {"_id": "c"}\n]')
    assert [(d.id, d.source.line, d.source.col) for d in _documents(path)] == [
        ("a", 2, 3), ("b", 3, 3), ("c", 4, 18)]


@pytest.mark.parametrize("text", ["[]", " [ ] \n", "[\n]"])
def test_empty_json_array(write: Write, text: str) -> None:
    assert _ids(write("d.json", text)) == []


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_json_array_across_chunk_boundaries(write: Write, monkeypatch: pytest.MonkeyPatch,
                                            chunk: int) -> None:
    # Numbers cut by a chunk boundary must not decode as shorter numbers.
    monkeypatch.setattr(_documents_from, "_CHUNK", chunk)
    docs = [{"_id": f"d{i}", "n": 10**i, "f": 1.25 * i, "s": "x" * i, "t": True, "z": None}
            for i in range(12)]
    path = write("d.json", "[\n" + ",\n".join(json.dumps(d) for d in docs) + "\n]")
    loaded = _documents(path)
    assert [d.canonical for d in loaded] == [canonical_json(d) for d in docs]
    assert [d.source.line for d in loaded] == list(range(2, 14))


@pytest.mark.parametrize(("text", "line", "col", "fragment"), [
    ('[{"_id": "a"},]', 1, 15, "trailing comma before ']'"),
    ('[{"_id": "a"} {"_id": "b"}]', 1, 15, "expected ',' or ']' after a document"),
    ('[{"_id": "a"}', 1, 14, "expected ',' or ']'"),
    ('[{"_id": "a"},\n', 2, 1, "the JSON array is not closed"),
    ('[{"_id": "a"}]\n{"_id": "b"}', 2, 1, "unexpected text after the JSON array"),
    ('[\n  {"_id": "a", "_id": "b"}\n]', 2, 3, "duplicate key '_id'"),
    ('[\n  {"_id": "a", "n": NaN}\n]', 2, 3, "NaN and Infinity are not valid JSON numbers"),
    ('[\n  {"_id": "a", "n": 1' + "0" * 400 + '}\n]', 2, 3, "an integer too large"),
    ('[\n  {"_id": "a", "s": "unterminated}\n]', 2, 35, "invalid JSON: Invalid control character"),
    ('[\n  {"_id": "a", "s": "unterminated}', 2, 21, "invalid JSON: Unterminated string starting"),
    ('{"_id": "a"}', 1, 1, "expected a JSON array of documents"),
    ('', 1, 1, "expected a JSON array of documents"),
])
def test_bad_json_array(write: Write, text: str, line: int, col: int, fragment: str) -> None:
    path = write("d.json", text.encode())
    problems = [i for i in read_documents(path) if isinstance(i, Problem)]
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line, problems[0].col) == (path, line, col)
    assert fragment in problems[0].message


def test_bad_lines_are_named_and_good_ones_kept(write: Write, collect: Collect) -> None:
    write("m.yaml", MANIFEST.format(name="seeds/d.jsonl"))
    write("seeds/d.jsonl", "\n".join([
        '{"_id": "ok-1"}',
        '{"_id": "x", "a": 1, "a": 2}',
        '"just a string"',
        '{"no_id": true}',
        '{"_id": 7}',
        '{"_id": "_design/v"}',
        '{"_id": "ok-2", "_deleted": "yes"}',
        '{"_id": "ok-3"',
        '{"_id": "ok-4"}',
    ]) + "\n")
    assert collect("m.yaml") == [
        ("seeds/d.jsonl", 2, 1, "duplicate key 'a' in a JSON object"),
        ("seeds/d.jsonl", 3, 1, "expected a mapping, got string"),
        ("seeds/d.jsonl", 4, 1, "missing required key '_id'"),
        ("seeds/d.jsonl", 5, 1, "expected a string, got integer"),
        ("seeds/d.jsonl", 6, 1,
         "_id: design documents go under design_docs, not documents (got '_design/v')"),
        ("seeds/d.jsonl", 7, 1, "expected a boolean (true or false), got string 'yes' (only "
                                "true and false are booleans)"),
        ("seeds/d.jsonl", 8, 15, "invalid JSON: Expecting ',' delimiter"),
    ]


def test_data_file_that_is_not_utf8(write: Write, collect: Collect) -> None:
    write("m.yaml", MANIFEST.format(name="d.jsonl"))
    write("d.jsonl", b'{"_id": "a"}\n{"_id": "\xff"}\n')
    assert collect("m.yaml") == [("d.jsonl", 2, 10, "not valid UTF-8 text (invalid start byte)")]


def test_path_is_relative_to_the_manifest(write: Write, tmp_path: Path) -> None:
    write("data/d.json", '[{"_id": "a"}]')
    path = write("conf/m.yaml", MANIFEST.format(name="../data/d.json"))
    app = load_manifests([path], environ={}).databases["app"]
    assert app.documents["a"].source.file == str(tmp_path / "conf" / ".." / "data" / "d.json")


def test_large_json_lines_file(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200,000 lines load in one pass: the data file is opened once and each line is
    decoded once (the work grows with the file, whatever the machine's speed)."""
    count = 200_000
    with open(tmp_path / "big.jsonl", "w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(f'{{"_id": "user:{i:06d}", "n": {i}, "active": true}}\n')
    path = write("m.yaml", MANIFEST.format(name="big.jsonl"))
    opened: list[str] = []
    decoded = 0
    real_open, real_decode = open, _documents_from._decode_line

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_decode(text: str) -> Any:
        nonlocal decoded
        decoded += 1
        return real_decode(text)

    monkeypatch.setenv("COUCHSYNC_CACHE_DIR", "")  # no cache: every line is read from the file
    monkeypatch.setattr(_documents_from, "open", counting_open, raising=False)
    monkeypatch.setattr(_documents_from, "_decode_line", counting_decode)
    app = load_manifests([path], environ={}).databases["app"]
    assert len(app.documents) == count
    last = app.documents[f"user:{count - 1:06d}"]
    assert (last.source.line, last.body["n"]) == (count, count - 1)
    assert opened == [str(tmp_path / "big.jsonl")]
    assert decoded == count


def test_json_array_is_streamed_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text("[\n" + ",\n".join(
        json.dumps({"_id": f"d{i}", "payload": "x" * 200}) for i in range(20_000)) + "\n]\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        for item in read_documents(str(path)):
            assert isinstance(item, DocumentSpec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 4_000_000
    assert peak < size / 10  # a few chunks, never the whole text


def test_json_lines_documents_stay_in_their_file_until_read(write: Write) -> None:
    lines = ['{"_id": "é", "n": 1.0, "tags": ["x"]}', '{"b": 2, "_id": "b"}']
    path = write("d.jsonl", ("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    docs = _documents(path)
    assert [d.inline for d in docs] == [None, None]  # only where each line is, not its text
    assert [d.json for d in docs] == [line.encode() for line in lines]
    assert docs[0].body == {"_id": "é", "n": 1.0, "tags": ["x"]}
    assert docs[0].canonical == canonical_json({"_id": "é", "n": 1, "tags": ["x"]})
    assert docs[1].hash == DocumentSpec.from_body({"_id": "b", "b": 2}, docs[1].source).hash


def test_a_data_file_changed_after_loading_is_an_error_not_another_document(
    write: Write,
) -> None:
    path = write("d.jsonl", b'{"_id": "a", "v": 1}\n')
    [doc] = _documents(path)
    time.sleep(0.01)  # a new modification time even on coarse clocks
    write("d.jsonl", b'{"_id": "a", "v": 22}\n')
    with pytest.raises(ManifestError, match="changed since the manifests were loaded"):
        doc.json  # noqa: B018


def test_numbers_json_cannot_hold_are_problems_in_data_files_and_manifests(
    write: Write, collect: Collect
) -> None:
    write("d.jsonl", "\n".join([
        '{"_id": "big", "n": ' + "9" * 400 + "}",
        '{"_id": "huge", "n": ' + "9" * 5000 + "}",
        '{"_id": "inf", "n": 1e400}',
        '{"_id": "ok", "n": 12345678901234567890}',
    ]) + "\n")
    write("m.yaml", "version: 1\ndatabases:\n  app:\n    documents_from: [d.jsonl]\n"
                    "    documents:\n      - {_id: inline, n: " + "9" * 400 + "}\n")
    assert [(file.rsplit("/", 1)[-1], line, message[:30])
            for file, line, _, message in collect("m.yaml")] == [
        ("d.jsonl", 1, "an integer too large for a JSO"),
        ("d.jsonl", 2, "an integer too large for a JSO"),
        ("d.jsonl", 3, "NaN and Infinity are not valid"),
        ("m.yaml", 6, "an integer too large for a JSO")]
