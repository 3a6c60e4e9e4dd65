"""Fuzzed manifests and data files: a valid load, or problems naming file and line.

The properties run a bounded number of cases here (``scripts/fuzz`` runs the same ones
for as long as asked); the tests after them pin each hostile input class the fuzz
covers to what the loader answers, through the library and through ``couchsync validate``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
from pathlib import Path

import pytest
from conftest import Collect, Write
from fuzz_strategies import STRATEGIES, Case, check, check_cli
from hypothesis import HealthCheck, given, settings

from couchsync.manifest import _load, load_manifests
from couchsync.manifest._documents_from import _CHUNK, _json_array
from couchsync.manifest._problems import MAX_DEPTH, TOO_DEEP

# Cases are large and slow to draw on purpose (a megabyte line, 10^5 brackets).
FUZZ = settings(max_examples=60, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
    HealthCheck.function_scoped_fixture])

HEAD = "version: 1\ndatabases:\n  app:\n"
BAD_UTF8 = "not valid UTF-8 text"
SURROGATE = "'\\ud800' is a lone UTF-16 surrogate, not a character"


def _check(tmp_path: Path, case: Case) -> str:
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:  # a fresh one per case
        return check(case, Path(directory))


@FUZZ
@given(case=STRATEGIES["schema"]())
def test_fuzz_manifests_from_the_schema(tmp_path: Path, case: Case) -> None:
    _check(tmp_path, case)


@FUZZ
@given(case=STRATEGIES["examples"]())
def test_fuzz_mutated_example_manifests(tmp_path: Path, case: Case) -> None:
    _check(tmp_path, case)


@FUZZ
@given(case=STRATEGIES["hostile"]())
def test_fuzz_hostile_values_keys_and_bytes(tmp_path: Path, case: Case) -> None:
    _check(tmp_path, case)


@settings(FUZZ, max_examples=150)
@given(case=STRATEGIES["bytes"]())
def test_fuzz_random_bytes(tmp_path: Path, case: Case) -> None:
    _check(tmp_path, case)


def test_the_check_fails_on_a_problem_without_a_line(tmp_path: Path) -> None:
    # The contract the fuzz holds the loader to is not vacuous: a valid load and placed
    # problems pass, a problem placed nowhere does not.
    assert _check(tmp_path, Case((("m.yaml", b"version: 1\ndatabases: {}\n"),),
                                 ("m.yaml",))) == "valid"
    bad = Case((("m.yaml", b"version: 2\ndatabases: {}\n"),), ("m.yaml",))
    assert _check(tmp_path, bad) == "problems"
    limit = _load._limit
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_load, "_limit", lambda found: [
            dataclasses.replace(p, line=0, col=0) for p in limit(found)])
        with pytest.raises(AssertionError, match="no line"):
            _check(tmp_path, bad)


# ----------------------------------------------------------------------------- nesting


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("text", "width"), [
    ("[" * 100_000, 1), (_nested(100_000), 1), ("{a: " * 100_000, 4), ("- " * 100_000 + "x", 2),
])
def test_yaml_nested_100000_deep_is_a_problem_where_level_65_opens(
        write: Write, collect: Collect, text: str, width: int) -> None:
    write("m.yaml", text)
    assert collect("m.yaml") == [("m.yaml", 1, 1 + MAX_DEPTH * width, TOO_DEEP)]


def test_yaml_nesting_up_to_the_limit_loads(write: Write, collect: Collect) -> None:
    # documents[0].x is 5 levels down: MAX_DEPTH - 5 more lists reach the limit.
    inner = MAX_DEPTH - 5
    write("m.yaml", HEAD + f"    documents:\n    - {{_id: a, x: {_nested(inner)}}}\n")
    assert collect("m.yaml") == []
    write("m.yaml", HEAD + f"    documents:\n    - {{_id: a, x: {_nested(inner + 1)}}}\n")
    assert collect("m.yaml") == [("m.yaml", 5, 19 + inner, TOO_DEEP)]


def test_yaml_aliases_cannot_nest_past_the_limit(write: Write, collect: Collect) -> None:
    # Each list is shallow as written (5 + 32 levels); the alias puts one inside the
    # other. The place is the first list past the limit, where the anchored one is written.
    half = MAX_DEPTH // 2
    write("m.yaml", HEAD + f"    documents:\n    - {{_id: a, x: &a {_nested(half)}}}\n"
                           f"    - {{_id: b, x: {'[' * half}*a{']' * half}}}\n")
    level_65 = MAX_DEPTH + 1 - (5 + half)  # counted in the anchored list
    assert collect("m.yaml") == [("m.yaml", 5, 21 + level_65, TOO_DEEP)]


@pytest.mark.parametrize(("name", "text", "col"), [
    ("d.jsonl", '{"_id": "a", "x": ' + "[" * 100_000 + "\n", 1),
    ("d.jsonl", '{"_id": "a", "x": ' + _nested(MAX_DEPTH) + "}\n", 1),
    ("d.json", '[{"_id": "a", "x": ' + "[" * 100_000, 2),
    ("d.json", '[{"_id": "a", "x": ' + _nested(MAX_DEPTH) + "}]", 2),
])
def test_data_file_documents_nested_too_deep(write: Write, collect: Collect, name: str,
                                             text: str, col: int) -> None:
    write("m.yaml", HEAD + f"    documents_from: [{name}]\n")
    write(name, text)
    assert collect("m.yaml") == [(name, 1, col, TOO_DEEP)]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_data_file_documents_nested_to_the_limit_load(tmp_path: Path, write: Write,
                                                      name: str) -> None:
    doc = '{"_id": "a", "x": ' + _nested(MAX_DEPTH - 1) + "}"
    write("m.yaml", HEAD + f"    documents_from: [{name}]\n")
    write(name, f"[{doc}]" if name.endswith(".json") else doc + "\n")
    assert list(load_manifests([tmp_path / "m.yaml"]).databases["app"].documents) == ["a"]


# ------------------------------------------------------------- aliases, tags, duplicates


def test_billion_laughs_is_refused_at_once(write: Write, collect: Collect) -> None:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    write("m.yaml", "\n".join(lines) + "\n")  # 10^10 leaves
    assert collect("m.yaml") == [("m.yaml", 1, 1, "YAML aliases expand to far more data than "
                                  "the file holds; refusing to load")]


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!python/object/apply:os.system",
                                 "!!python/name:os.system", "!!binary", "!!set"])
def test_unsafe_and_unknown_tags_are_problems(write: Write, collect: Collect, tag: str) -> None:
    write("m.yaml", HEAD + f"    documents: {tag} [echo]\n")
    found = collect("m.yaml")
    assert [(line, col) for _, line, col, _ in found] == [(4, 16)]
    assert "unsupported YAML tag" in found[0][3]


@pytest.mark.parametrize("value", ["!!float ''", "!!int ''", "!!float '-'", "!!int 0b",
                                   "!!bool maybe"])
def test_scalar_tags_on_text_they_cannot_read(write: Write, collect: Collect, value: str) -> None:
    # PyYAML's constructors raise IndexError on some (found by the fuzz: "!!float ''").
    write("m.yaml", HEAD + f"    q: {value}\n")
    tag, text = value.split(" ")
    assert collect("m.yaml") == [("m.yaml", 4, 8, f"invalid {tag[2:]} value "
                                  f"{text.strip(chr(39))!r}")]


def test_duplicate_keys_at_every_depth(write: Write, collect: Collect) -> None:
    # databases.app.documents[0].x.x.x...: a key written twice at each depth, 1 to 40.
    value = "1"
    for _ in range(40):
        value = f"{{x: {value}, x: 2}}"
    write("m.yaml", f"version: 1\nversion: 1\ndatabases:\n  app:\n    documents:\n"
                    f"    - {{_id: a, x: {value}}}\n")
    found = collect("m.yaml")
    assert found[0] == ("m.yaml", 2, 1, "duplicate key 'version' (first defined at line 1, "
                                        "col 1)")
    assert len([p for p in found if p[3].startswith("duplicate key 'x'")]) == 40
    write("d.jsonl", '{"_id": "a", "x": ' + '{"y": ' * 30 + '{"z": 1, "z": 2}' + "}" * 31 + "\n")
    write("m.yaml", HEAD + "    documents_from: [d.jsonl]\n")
    assert collect("m.yaml") == [("d.jsonl", 1, 1, "duplicate key 'z' in a JSON object")]


TAGGED = "!!python/object:os.system {}"


@pytest.mark.parametrize("text", [
    f"databases: {TAGGED}\nversion: 1\ndatabases:\n  orders: ''\n",
    HEAD.replace("app:\n", f"app: {TAGGED}\n  app: ''\n"),
    HEAD + f"    indexes: {TAGGED}\n    indexes: x\n    q: {TAGGED}\n    q: x\n"
           f"    documents: [{{_id: {TAGGED}, _id: 1}}]\n",
    f"version: 1\nusers: {TAGGED}\nusers: x\nreplications: {{r: {TAGGED}, r: 1}}\n",
])
def test_a_key_twice_whose_first_value_failed(write: Write, collect: Collect,
                                              text: str) -> None:
    # Found by the fuzz: the second "databases:" stood in for the failed first one
    # unchecked, and its database '' was built (AttributeError).
    write("m.yaml", text)
    found = collect("m.yaml")
    assert found and {message.split(" ")[0] for *_, message in found} == {"unsupported",
                                                                          "duplicate"}


# -------------------------------------------------------------------- bytes and encodings


@pytest.mark.parametrize(("name", "data", "where"), [
    ("m.yaml", b"version: 1\ndatabases:\n  \xc3(: {}\n", (3, 3, BAD_UTF8)),
    ("m.yaml", b"version: 1\x00\ndatabases: {}\n", (1, 11, "character '\\x00' is not allowed")),
    ("d.jsonl", b'{"_id": "a"}\n{"_id": "\xff"}\n', (2, 10, BAD_UTF8)),
    ("d.json", b'[{"_id": "a"},\n {"_id": "\xed\xa0\x80"}]', (2, 11, BAD_UTF8)),
    ("d.json", b"\xef\xbb\xbf\xfe[]", (1, 1, BAD_UTF8)),
    ("d.jsonl", b'{"_id": "\\ud800"}\n', (1, 1, SURROGATE)),
    ("d.json", b'[{"_id": "a", "b": "x\\ud800"}]', (1, 2, SURROGATE)),
    ("m.yaml", HEAD.encode() + b'    documents: [{_id: "\\ud800"}]\n', (4, 23, SURROGATE)),
])
def test_bad_bytes_are_placed(write: Write, collect: Collect, name: str, data: bytes,
                              where: tuple[int, int, str]) -> None:
    if name != "m.yaml":
        write("m.yaml", HEAD + f"    documents_from: [{name}]\n")
    write(name, data)
    found = collect("m.yaml")
    assert [(file, line, col) for file, line, col, _ in found] == [(name, *where[:2])]
    assert found[0][3].startswith(where[2])


def test_a_surrogate_pair_written_as_two_escapes_is_one_character(tmp_path: Path,
                                                                  write: Write) -> None:
    write("m.yaml", HEAD + '    documents: [{_id: "\\ud83d\\ude00"}]\n')  # as JSON writes 😀
    assert list(load_manifests([tmp_path / "m.yaml"]).databases["app"].documents) == ["😀"]


def test_a_nul_in_a_data_file_name_is_a_problem(write: Write, collect: Collect) -> None:
    write("m.yaml", HEAD + '    documents_from: ["a\\0.json"]\n')
    assert collect("m.yaml") == [("m.yaml", 4, 22, "documents_from file 'a\\x00.json': a file "
                                  "name cannot hold a NUL character")]


def test_server_sections_with_numbers_and_names_no_server_can_hold(
        write: Write, collect: Collect) -> None:
    # Found by the fuzz in users:/replications: (each was a traceback).
    huge = "9" * 400
    write("m.yaml", "version: 1\nreplications:\n  r1:\n    source: http://h/a\n"
                    f"    target: http://h/b\n"
                    f"    n: {huge}\nusers:\n  bob:\n    password_file: \"p\\0.txt\"\n"
                    f"  ann:\n    password: x\n    n: {huge}\n")
    too_large = "an integer too large for a JSON number (beyond a double's range, about 1.8e308)"
    assert collect("m.yaml") == [
        ("m.yaml", 3, 3, too_large),
        ("m.yaml", 8, 3, "password_file 'p\\x00.txt' of user 'bob': a file name cannot hold "
                         "a NUL character"),
        ("m.yaml", 10, 3, too_large)]


def test_variables_that_are_not_text_are_problems(tmp_path: Path, write: Write,
                                                  collect: Collect) -> None:
    write("m.yaml", HEAD + '    documents: [{_id: "${ID}"}]\n')
    # An environment's bytes that are not UTF-8 reach Python as lone surrogates.
    assert collect("m.yaml", environ={"ID": "x\udcff"}) == [
        ("m.yaml", 4, 23, "the value of variable ID is not valid UTF-8 text")]
    from couchsync.manifest import ManifestError, variables

    write("v.yaml", "ID: " + "[" * 100_000 + "\n")
    with pytest.raises(ManifestError) as caught:
        variables(files=[tmp_path / "v.yaml"])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'v.yaml'}:1:{4 + MAX_DEPTH}: not valid YAML: {TOO_DEEP}"]


# ---------------------------------------------------------------------------- huge lines


def test_huge_lines_load(tmp_path: Path, write: Write) -> None:
    long = "x" * 1_000_000
    write("m.yaml", HEAD + f"    documents: [{{_id: a, v: {long}}}]\n"
                           "    documents_from: [d.jsonl, d.json]\n")
    write("d.jsonl", json.dumps({"_id": "b", "v": [long] * 3}) + "\n")
    write("d.json", json.dumps([{"_id": "c", "v": list(range(300_000))}]))
    state = load_manifests([tmp_path / "m.yaml"])
    assert list(state.databases["app"].documents) == ["a", "b", "c"]


def test_a_huge_json_array_element_is_not_decoded_once_per_chunk() -> None:
    # The window grows with what it holds: decoding a 4 MB element tries a few times,
    # not once per 64 KiB chunk read (which made it quadratic: 7 s for this one).
    reads: list[int] = []

    class Counting(io.StringIO):
        name = "d.json"

        def read(self, size: int | None = -1) -> str:
            reads.append(size or -1)
            return super().read(size)

    element = json.dumps({"_id": "a", "v": list(range(700_000))})
    found = list(_json_array(Counting(f"[{element}]")))
    assert [item[1:] for item in found] == [(1, 2)]  # type: ignore[index]
    assert len(element) > 60 * _CHUNK and len(reads) < 12


# ------------------------------------------------------------------ the command line


CLI_CASES = {
    "yaml 10^5 [": (("m.yaml", b"[" * 100_000),),
    "jsonl 10^5 [": (("m.yaml", (HEAD + "    documents_from: [d.jsonl]\n").encode()),
                     ("d.jsonl", b'{"_id": "a", "x": ' + b"[" * 100_000 + b"\n")),
    "billion laughs": (("m.yaml", b"a: &a [x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n" % ((c, c) + (c - 1,) * 8)
        for c in range(ord("b"), ord("m")))),),
    "python tag": (("m.yaml", HEAD.encode() + b"    q: !!python/object/apply:os.system [ls]\n"),),
    "bad UTF-8 in .json": (("m.yaml", (HEAD + "    documents_from: [d.json]\n").encode()),
                           ("d.json", b'[\n{"_id": "\xff"}]')),
}


@pytest.mark.parametrize("files", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_couchsync_validate_reports_problems_without_a_traceback(
        tmp_path: Path, files: tuple[tuple[str, bytes], ...]) -> None:
    done = check_cli(Case(files, ("m.yaml",)), tmp_path)
    assert len(done.stderr.splitlines()) == 2  # the one problem, then the count


def test_couchsync_validate_of_an_environment_value_that_is_not_utf8(tmp_path: Path) -> None:
    case = Case((("m.yaml", (HEAD + '    documents: [{_id: "${ID}"}]\n').encode()),),
                ("m.yaml",), (("ID", "x\udcff"),))
    done = check_cli(case, tmp_path)
    assert f"{tmp_path / 'm.yaml'}:4:23: the value of variable ID" in done.stderr
