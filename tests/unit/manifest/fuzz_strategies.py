"""Fuzzing the manifest loader: cases of hostile files, and the property every case must hold.

Shared by ``test_fuzz.py`` (a bounded run in CI) and ``scripts/fuzz`` (a long run).
A ``Case`` is a few files (manifests and ``documents_from`` data files) written to a
fresh directory; ``check`` loads its manifests and holds the loader to its contract:
a ``DesiredState`` whose documents can be read back and hashed, or a ``ManifestError``
whose every problem names a file of the case and a line in it. Anything else (a
``RecursionError``, a ``UnicodeEncodeError``, a ``MemoryError``) fails.

The strategies (``STRATEGIES``):

- ``schema``: random manifests built from ``couchsync/schemas/manifest.schema.json``
  with random data files, written as YAML (block or flow) or JSON, sometimes mutated;
- ``examples``: the example manifests of ``manifests/`` with one file mutated;
- ``hostile``: the inputs known to break parsers, at random places: nesting 10^5 deep,
  alias bombs, ``!!python/object`` and other tags, duplicate keys at any depth, NUL
  and control characters, invalid UTF-8, lone surrogates, huge lines and numbers,
  hostile ``${VAR}`` values;
- ``bytes``: random bytes as a manifest or a data file.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from couchsync._canonical import canonical_json, hash_canonical
from couchsync.manifest import DesiredState, ManifestError, load_manifests, schema_text, summarize

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "manifests"
COUCHSYNC = str(Path(sys.executable).parent / "couchsync")

# ---------------------------------------------------------------------------- the case


@dataclass(frozen=True)
class Case:
    """Files to write (relative name, bytes), which of them to load, and the variables."""

    files: tuple[tuple[str, bytes], ...]
    manifests: tuple[str, ...]
    environ: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # what a failure shows: short, the bytes exact where it can
        shown = ", ".join(f"{name!r}: {_abbreviate(data)}" for name, data in self.files)
        environ = "ENVIRON" if self.environ == ENVIRON else repr(dict(self.environ))
        return f"Case(files={{{shown}}}, manifests={self.manifests!r}, environ={environ})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints with it
        printer.text(repr(self))

    def write(self, directory: Path) -> list[Path]:
        """Write the files under ``directory``; the manifest paths to load."""
        for name, data in self.files:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return [directory / name for name in self.manifests]


def _abbreviate(data: bytes, keep: int = 300) -> str:
    """``data`` as a bytes literal; a long run of one byte sequence is shown as ``* n``."""
    if len(data) <= keep:
        return repr(data)
    return f"{data[:keep // 2]!r} + <{len(data) - keep:,} bytes> + {data[-keep // 2:]!r}"


# ------------------------------------------------------------------------------ the check

#: A problem names a file and a line; only the count of problems not shown names none.
_NOT_SHOWN = re.compile(r"\d+ more problems in this file not shown")


def check(case: Case, directory: Path) -> str:
    """Load ``case`` from ``directory``: ``"valid"`` or ``"problems"``, else an
    AssertionError (or the loader's own exception) saying what broke the contract."""
    manifests = case.write(directory)
    written = {(directory / name).resolve() for name, _ in case.files}
    try:
        state = load_manifests(manifests, environ=dict(case.environ))
    except ManifestError as exc:
        assert exc.problems, "a ManifestError without problems"
        for problem in exc.problems:
            assert Path(problem.file).resolve() in written, f"names no file of the case: {problem}"
            assert problem.message.strip(), f"an empty message: {problem!r}"
            if not _NOT_SHOWN.fullmatch(problem.message):
                assert problem.line >= 1 and problem.col >= 1, f"no line: {problem!r}"
        return "problems"
    _use(state)
    return "valid"


def _use(state: DesiredState) -> None:
    """What the planner reads of a valid load must be there: every body encodes as
    canonical JSON, and every document read back hashes as loaded."""
    summarize(state)
    for db in [*state.databases.values(), *state.patterns.values()]:
        canonical_json(db.security or {})
        for index in db.indexes.values():
            canonical_json([index.fields, index.partial_filter_selector], drop=())
        for design in db.design_docs.values():
            canonical_json(design.body, drop=())
        for doc in db.documents.values():
            body = doc.body
            assert body["_id"] == doc.id, f"{doc.source}: read back as {body['_id']!r}"
            # (A users: password is left out of the hash: the server keeps only its hash.)
            assert doc.secret or hash_canonical(canonical_json(body)) == doc.hash, \
                f"{doc.source}: read back differently"
    canonical_json({section: {key: setting.value for key, setting in keys.items()}
                    for section, keys in state.config.items()})


_PROBLEM_LINE = re.compile(r"(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")


def check_cli(case: Case, directory: Path,
              problems: bool = True) -> subprocess.CompletedProcess[str]:
    """``couchsync validate`` of ``case`` in a process of its own, never with a traceback:
    with ``problems`` it exits 1 with one ``file:line:col: message`` line per problem,
    else 0 with ``OK: ...`` (an AssertionError otherwise)."""
    manifests = case.write(directory)
    written = {str(directory / name) for name, _ in case.files}
    # (An environment cannot hold NUL: those variables are for the library's checks.)
    variables = {name: value for name, value in case.environ if "\x00" not in value}
    env = {**os.environ, **variables, "NO_COLOR": "1"}
    done = subprocess.run([COUCHSYNC, "validate", *map(str, manifests)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    if not problems:
        assert done.returncode == 0 and done.stdout.startswith("OK: "), output
        return done
    assert done.returncode == 1, (done.returncode, output)
    lines = done.stderr.splitlines()
    assert lines and re.fullmatch(r"Error: [\d,]+ problems? in manifests", lines[-1]), output
    for line in lines[:-1]:
        match = _PROBLEM_LINE.match(line)
        if not (match and match["file"] in written) and not _NOT_SHOWN.search(line):
            raise AssertionError(f"not a file:line:col: problem line: {line!r}")
    return done


# ------------------------------------------------- YAML and JSON text from a tree of nodes


@dataclass
class Map:
    """A mapping as written: pairs in order, so a key can be written twice."""

    pairs: list[tuple[str, Node]]


@dataclass
class Seq:
    items: list[Node]


@dataclass
class Raw:
    """Text written as it is: a scalar already quoted, or a hostile snippet."""

    text: str


Node = Map | Seq | Raw
_PLAIN = re.compile(r"[a-z][a-z0-9_-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def tree(value: Any) -> Node:
    """The tree of a JSON-like value (scalars quoted as JSON, which YAML reads the same)."""
    if isinstance(value, dict):
        return Map([(str(k), tree(v)) for k, v in value.items()])
    if isinstance(value, list):
        return Seq([tree(v) for v in value])
    return Raw(json.dumps(value, allow_nan=True, default=str))  # (str: YAML's dates)


def _key(key: str, as_json: bool) -> str:
    if not as_json and _PLAIN.fullmatch(key) and key not in _YAML_WORDS:
        return key
    return json.dumps(key)


def flow(node: Node, as_json: bool = False) -> str:
    """One line: YAML flow style, which is JSON when every scalar is."""
    if isinstance(node, Map):
        return "{" + ", ".join(f"{_key(k, as_json)}: {flow(v, as_json)}"
                               for k, v in node.pairs) + "}"
    if isinstance(node, Seq):
        return "[" + ", ".join(flow(item, as_json) for item in node.items) + "]"
    return node.text


def block(node: Node, indent: int = 0) -> list[str]:
    """YAML block style, a line per key or item (flow inside for empty collections)."""
    pad = " " * indent
    # Each entry's head ("key:" or "-") and value; a non-empty collection goes below it.
    entries = ([(f"{_key(key, False)}:", value) for key, value in node.pairs]
               if isinstance(node, Map) else
               [("-", item) for item in node.items] if isinstance(node, Seq) else [])
    if not entries:
        return [pad + flow(node)]
    lines = []
    for head, value in entries:
        if isinstance(value, (Map, Seq)) and (value.pairs if isinstance(value, Map)
                                               else value.items):
            lines.append(f"{pad}{head}")
            lines.extend(block(value, indent + 2))
        else:
            lines.append(f"{pad}{head} {flow(value)}")
    return lines


def _handles(node: Node) -> Iterator[tuple[list[Any], int]]:
    """(container, index) of every node below ``node``: where one can be replaced."""
    if isinstance(node, Map):
        for i, (_, value) in enumerate(node.pairs):
            yield node.pairs, i
            yield from _handles(value)
    elif isinstance(node, Seq):
        for i, item in enumerate(node.items):
            yield node.items, i
            yield from _handles(item)


def _maps(node: Node) -> Iterator[Map]:
    if isinstance(node, Map):
        yield node
    for container, i in _handles(node):
        child = container[i][1] if isinstance(container[i], tuple) else container[i]
        if isinstance(child, Map):
            yield child


# ------------------------------------------------------------------- hostile snippets

#: Nesting depths: either side of the loader's limit (64), far past Python's stack.
_DEPTHS = st.sampled_from([1, 2, 10, 62, 63, 64, 65, 66, 200, 1_000, 5_000, 100_000])
#: Long strings and lines: mostly short, a few of a megabyte (YAML is parsed in Python:
#: a 10 MB scalar takes seconds).
_LENGTHS = st.sampled_from([0, 1, 100, 4_096, 65_535, 65_536, 65_537, 300_000, 1_000_000])
_BIG_LENGTHS = st.sampled_from([1_000, 65_536, 1_000_000, 3_000_000])

_TAGS = [
    "!!python/object:os.system", "!!python/object/apply:os.system", "!!python/name:os.system",
    "!!python/object/new:os.system", "!!python/module:os", "!<tag:yaml.org,2002:python/object>",
    "!!binary", "!!set", "!!omap", "!!pairs", "!!map", "!!seq", "!!str", "!!int", "!!float",
    "!!bool", "!!null", "!!timestamp", "!!merge", "!!value", "!custom", "!", "!e!x",
]
_YAML_SCALARS = [
    ".nan", "-.inf", ".inf", "1e999", "-1e999", "0x" + "f" * 40, "0o777", "0b101", "1_000",
    "~", "null", "yes", "no", "on", "Off", "2001-12-14t21:59:43.10-05:00", "2001-13-45",
    "12:30:45", "1:20", "'${A}'", '"${UNSET}"', '"${BAD:-x}"', '"${NUL}"', '"${"', '"$${x}"',
    '"${1x}"', '"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"\\ud83d"', '"\\U0010ffff"',
    '"\\x00"', '"\\0"', '"\\e\\a\\v"', '"\\N\\_\\L\\P"', "'it''s'", "|\n  text\n", ">-\n  x\n",
    "*undefined", "&a", "&a *a", "&x 1", "? a", "- a", "[", "]", "{", "}", ",", ":", "'", '"',
    "%YAML 1.1", "---", "...", "@x", "`x", "#c", "\t1", "&r [*r]", "&m {k: *m}",
    "{<<: [1, 2]}", "{<<: *undefined}", "{<<: {a: 1}, a: 2}", "&b {x: 1}", "{? [a] : 1}",
    "{[a]: 1}", "{{a: 1}: 1}", "{null: 1}", "{1: 1}", "{true: 1}", "{1.5: x}", "{'': 1}",
    "[&a 1, &a 2]", "!!python/object/apply:os.system ['true']",
]


def _bomb(levels: int, fanout: int, mapping: bool) -> str:
    """A "billion laughs" in one flow value: ``fanout ** levels`` leaves from a few bytes."""
    parts = ["&l0 [" + ", ".join(["lol"] * fanout) + "]"]
    for i in range(1, levels):
        inner = ", ".join([f"*l{i - 1}"] * fanout)
        parts.append(f"&l{i} " + (f"{{k: [{inner}]}}" if mapping else f"[{inner}]"))
    return "[" + ", ".join(parts) + "]"


def _deep(depth: int, style: str, close: bool) -> str:
    opener, closer = {"seq": ("[", "]"), "map": ('{"a": ', "}"), "mix": ('[{"a": ', "}]")}[style]
    return opener * depth + ("1" + closer * depth if close else "")


@st.composite
def yaml_snippet(draw: st.DrawFn) -> str:
    """One hostile YAML value, written on one line (flow style)."""
    kind = draw(st.sampled_from(["deep", "bomb", "tag", "scalar", "long", "number", "text"]))
    if kind == "deep":
        return _deep(draw(_DEPTHS), draw(st.sampled_from(["seq", "map", "mix"])),
                     draw(st.booleans()))
    if kind == "bomb":
        return _bomb(draw(st.integers(2, 10)), draw(st.integers(2, 10)), draw(st.booleans()))
    if kind == "tag":
        value = draw(st.sampled_from(["{}", "[]", "''", "x", "[ls]", "{a: 1}", "aGk="]))
        return f"{draw(st.sampled_from(_TAGS))} {value}"
    if kind == "scalar":
        return draw(st.sampled_from(_YAML_SCALARS))
    if kind == "long":
        return '"' + draw(st.sampled_from(["x", "é", "\\t", "😀"])) * draw(_LENGTHS) + '"'
    if kind == "number":
        return draw(st.sampled_from(["9", "-9", "0.", "1e"])) * draw(_DEPTHS)
    return json.dumps(draw(st.text(max_size=20)), ensure_ascii=draw(st.booleans()))


@st.composite
def json_snippet(draw: st.DrawFn) -> str:
    """One hostile JSON value (for data files)."""
    kind = draw(st.sampled_from(["deep", "scalar", "long", "number", "text"]))
    if kind == "deep":
        return _deep(draw(_DEPTHS), draw(st.sampled_from(["seq", "map", "mix"])),
                     draw(st.booleans()))
    if kind == "scalar":
        return draw(st.sampled_from([
            "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "-0", "0.0",
            "9007199254740993", "1" + "0" * 400, '"\\ud800"', '"\\udfff"', '"\\ud83d\\ude00"',
            '"\\ud83d"', '"\\u0000"', '"\\x"', '"\x00"', '"\x1f"', "'x'", "[1,]", "{,}",
            '{"a" 1}', "tru", "nul", "[", "]", "{", "}", '"', "", " ", "\ufeff", "\u2028"]))
    if kind == "long":
        return '"' + draw(st.sampled_from(["x", "é", "\\n", "😀"])) * draw(_BIG_LENGTHS) + '"'
    if kind == "number":
        return draw(st.sampled_from(["9", "1.5e", "-"])) * draw(_DEPTHS)
    return json.dumps(draw(st.text(max_size=20)), ensure_ascii=draw(st.booleans()))


#: Bytes inserted by byte mutations: encodings gone wrong, and the characters parsers trip on.
_BYTES = [
    b"\x00", b"\xff", b"\xfe", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf",
    b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xef\xbb\xbf", b"\r", b"\r\n", b"\n", b"\t", b"\x1b",
    b"\x7f", b"\x85", b"\xc2\x85", b"\xe2\x80\xa8", b"\\", b'"', b"'", b"&a ", b"*a", b"!!",
    b"<<: ", b"- ", b": ", b"---\n", b"...\n", b"%YAML 1.1\n", b"#", b"{", b"[", b"}", b"]",
    b",", b"\\ud800", b"${", b"\x00" * 10,
]


@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after one to three edits: inserts, deletions, copies, truncation, a line twice."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "insert", "random", "delete", "copy", "truncate",
                                   "line", "flip"]))
        if op == "insert":
            data = data[:at] + draw(st.sampled_from(_BYTES)) + data[at:]
        elif op == "random":
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)):]
        elif op == "copy":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data = data[:end] + data[at:end] + data[end:]
        elif op == "truncate":
            data = data[:at]
        elif op == "line" and data:  # a line written twice: its key, twice, at its depth
            lines = data.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            data = b"".join([*lines[:i + 1], lines[i], *lines[i + 1:]])
        elif op == "flip" and at < len(data):
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
    return data


@st.composite
def mutate_tree(draw: st.DrawFn, node: Node, snippet: st.SearchStrategy[str]) -> Node:
    """``node`` (changed in place) after one to three edits: a value replaced by a hostile
    snippet, a key written twice (at any depth), a value given a tag (YAML)."""
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["snippet", "snippet", "duplicate", "tag"]))
        handles = list(_handles(node))
        if op == "duplicate":
            maps = [m for m in _maps(node) if m.pairs]
            if maps:
                target = maps[draw(st.integers(0, len(maps) - 1))]
                key, value = target.pairs[draw(st.integers(0, len(target.pairs) - 1))]
                again = value if draw(st.booleans()) else Raw(draw(snippet))
                target.pairs.insert(draw(st.integers(0, len(target.pairs))), (key, again))
            continue
        if not handles:
            return Raw(draw(snippet))
        container, i = handles[draw(st.integers(0, len(handles) - 1))]
        old = container[i][1] if isinstance(container[i], tuple) else container[i]
        new = (Raw(draw(snippet)) if op == "snippet"
               else Raw(f"{draw(st.sampled_from(_TAGS))} {flow(old)}"))
        container[i] = (container[i][0], new) if isinstance(container[i], tuple) else new
    return node


# ------------------------------------------------------- random structures from the schema

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)
#: What documents_from names: data files the case holds, one it does not, and odd paths.
DATA_FILES = ("d0.jsonl", "d1.json", "sub/d2.ndjson")
_DATA_NAMES = st.sampled_from([*DATA_FILES, "missing.jsonl", "../d0.jsonl", "./d1.json",
                               "sub/../d0.jsonl", "d0.jsonl/x.json", ".json", "a\x00.json"])


def _from_regex(pattern: str) -> st.SearchStrategy[str]:
    if "(?" in pattern:  # lookarounds: hypothesis cannot draw from them; mostly they hold
        return st.text("abcdefz_-:/.", min_size=1, max_size=8)
    return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= 30)


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


def _at(ref: str) -> Any:
    target: Any = _schema()
    for part in ref[2:].split("/"):
        target = target[part]
    return target


@functools.cache
def _from_schema_cached(key: str, depth: int) -> st.SearchStrategy[Any]:
    return _build(_at(key), depth)


def from_schema(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of ``schema`` (mostly valid: lookaround patterns and ``allOf`` are not
    enforced); nested ``$ref``s stop growing past a few levels."""
    if isinstance(schema, dict) and set(schema) - {"description"} == {"$ref"}:
        return st.deferred(lambda: _from_schema_cached(schema["$ref"], depth + 1))
    return _build(schema, depth)


def _build(schema: Any, depth: int) -> st.SearchStrategy[Any]:
    if schema is True or schema == {} or set(schema) <= {"description", "examples"}:
        return _JSON
    if schema is _at("#/$defs/database")["properties"]["documents_from"]["items"]:
        return _DATA_NAMES
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "$ref" in schema:
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        base = _at(schema["$ref"])
        return _build({**base, **rest, "properties": {**base.get("properties", {}),
                                                       **rest.get("properties", {})}}, depth + 1)
    for choice in ("anyOf", "oneOf"):
        if choice in schema:
            return st.one_of([from_schema(branch, depth + 1) for branch in schema[choice]])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        items = from_schema(schema.get("items", True), depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=2 if depth < 6 else 1)
    if kind == "string":
        if "pattern" in schema:
            return _from_regex(schema["pattern"])
        return st.text(min_size=schema.get("minLength", 0), max_size=12)
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=2**40)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    properties = {name: sub for name, sub in schema.get("properties", {}).items()
                  if sub.get("not") != {}}  # {"not": {}}: a key that may never be given
    required = {name: from_schema(properties.get(name, True), depth + 1)
                for name in schema.get("required", [])}
    optional = {name: from_schema(sub, depth + 1) for name, sub in properties.items()
                if name not in required}
    fixed = st.fixed_dictionaries(required, optional=optional if depth < 8 else {})
    extra_schema = schema.get("additionalProperties", True)
    if extra_schema is False or depth >= 8:
        return fixed
    names = schema.get("propertyNames", {})
    if "pattern" in names:
        keys = _from_regex(names["pattern"])
    else:
        keys = st.text("abcxyz_-", min_size=names.get("minLength", 0), max_size=8)
    patterns = schema.get("patternProperties", {})
    if "\\*" in patterns:  # database names: a pattern now and then
        keys = keys | st.sampled_from(["app-*", "*", "user*db", "*-x-*"])
    extra = st.dictionaries(keys, from_schema(extra_schema, depth + 1), max_size=2)
    return st.tuples(fixed, extra).map(lambda both: {**both[1], **both[0]})


@functools.cache
def manifest_values() -> st.SearchStrategy[dict[str, Any]]:
    """Random manifests drawn from the shipped schema."""
    return from_schema(_schema())  # type: ignore[no-any-return]


@functools.cache
def documents() -> st.SearchStrategy[Any]:
    """Random seed documents from the schema's ``document``, and ids that collide."""
    ids = st.sampled_from(["a", "b", "p:x", "_bad", "", "x" * 300]) | st.text(max_size=8)
    drawn = from_schema(_at("#/$defs/document"))
    return st.one_of(drawn, st.builds(lambda i, d: {**d, "_id": i}, ids,
                                      st.dictionaries(st.text(max_size=4), _JSON, max_size=3)))


# ------------------------------------------------------------------------- the strategies


@st.composite
def data_file(draw: st.DrawFn, name: str, hostile: bool) -> bytes:
    """A JSON Lines or JSON array file of random documents, sometimes broken."""
    node = Seq([tree(doc) for doc in draw(st.lists(documents(), max_size=4))])
    if hostile or draw(st.integers(0, 3)) == 0:
        node = draw(mutate_tree(node, json_snippet()))
    items = node.items if isinstance(node, Seq) else [node]
    newline = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    if name.endswith(".json"):
        text = ("[" + ("," + newline).join(flow(item, as_json=True) for item in items) + "]"
                if isinstance(node, Seq) else flow(node, as_json=True))
    else:
        text = "".join(flow(item, as_json=True) + newline for item in items)
    data = (b"\xef\xbb\xbf" if draw(st.integers(0, 7)) == 0 else b"") + text.encode(
        "utf-8", "surrogatepass")
    if draw(st.integers(0, 3 if hostile else 7)) == 0:
        data = draw(mutate_bytes(data))
    return data


def _yaml_text(draw: st.DrawFn, node: Node) -> bytes:
    style = draw(st.sampled_from(["block", "block", "flow", "json"]))
    if style == "block":
        text = "\n".join(block(node)) + "\n"
    else:
        text = flow(node, as_json=style == "json") + "\n"
    return text.encode("utf-8", "surrogatepass")


ENVIRON = (("A", "a"), ("EMPTY", ""), ("NUL", "a\x00b"), ("NOT_UTF8", "x\udcff"),
            ("DEEP", "[" * 1_000), ("LONG", "y" * 100_000), ("REF", "${A}"))


@st.composite
def schema_cases(draw: st.DrawFn) -> Case:
    """A manifest from the schema, with data files, sometimes mutated."""
    node = tree(draw(manifest_values()))
    if draw(st.integers(0, 3)) == 0:
        node = draw(mutate_tree(node, yaml_snippet()))
    manifest = _yaml_text(draw, node)
    if draw(st.integers(0, 5)) == 0:
        manifest = draw(mutate_bytes(manifest))
    files = [("m.yaml", manifest)]
    files += [(name, draw(data_file(name, hostile=False))) for name in DATA_FILES]
    return Case(tuple(files), ("m.yaml",), ENVIRON)


@functools.cache
def _example_files() -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((str(path.relative_to(EXAMPLES)), path.read_bytes())
                        for path in EXAMPLES.rglob("*") if path.is_file()))


@st.composite
def example_cases(draw: st.DrawFn) -> Case:
    """The example manifests (all loaded), one of their files mutated."""
    import yaml

    files = dict(_example_files())
    name = draw(st.sampled_from(sorted(files)))
    data = files[name]
    if name.endswith((".yaml", ".yml")) and draw(st.booleans()):
        # Structurally: a key twice at any depth, a hostile value anywhere.
        node = draw(mutate_tree(tree(yaml.safe_load(data)), yaml_snippet()))
        files[name] = _yaml_text(draw, node)
    elif name.endswith((".json", ".jsonl")) and draw(st.booleans()):
        parsed = (json.loads(data) if name.endswith(".json")
                  else [json.loads(line) for line in data.splitlines() if line.strip()])
        node = draw(mutate_tree(tree(parsed), json_snippet()))
        joined = (flow(node, as_json=True) if name.endswith(".json")
                  else "\n".join(flow(n, as_json=True)
                                 for n in (node.items if isinstance(node, Seq) else [node])))
        files[name] = joined.encode("utf-8", "surrogatepass")
    else:
        files[name] = draw(mutate_bytes(data))
    manifests = tuple(n for n in sorted(files) if n.endswith(".yaml"))
    return Case(tuple(files.items()), manifests, ENVIRON)


def _deep_block(depth: int, kind: str) -> str:
    if kind == "dash":  # "- - - x": block sequences nested on one line
        return "version: 1\ndatabases:\n  app:\n    documents:\n    " + "- " * depth + "x\n"
    lines = [" " * i + ("- " if kind == "seq" else "k:") for i in range(min(depth, 400))]
    return "\n".join(lines) + " 1\n"


@st.composite
def hostile_cases(draw: st.DrawFn) -> Case:
    """A schema manifest and data files with hostile values or keys written into them."""
    where = draw(st.sampled_from(["manifest", "manifest", "data", "document", "whole"]))
    manifest_node = tree(draw(manifest_values()))
    data = {name: draw(data_file(name, hostile=where == "data")) for name in DATA_FILES}
    if where == "whole":
        kind = draw(st.sampled_from(["dash", "seq", "map", "bomb", "tag", "bytes"]))
        if kind == "bomb":  # the classic: one mapping per level
            levels, fanout = draw(st.integers(2, 12)), draw(st.integers(2, 12))
            lines = ["l0: &l0 [" + ", ".join(["lol"] * fanout) + "]"]
            lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]"
                      for i in range(1, levels)]
            manifest = ("\n".join(lines) + "\n").encode()
        elif kind == "tag":
            manifest = f"--- {draw(st.sampled_from(_TAGS))}\nversion: 1\n".encode()
        elif kind == "bytes":
            manifest = draw(st.binary(max_size=200))
        else:
            manifest = _deep_block(draw(_DEPTHS), kind).encode()
    else:
        if where == "manifest":
            manifest_node = draw(mutate_tree(manifest_node, yaml_snippet()))
        elif where == "document":  # inline documents, where anything JSON goes
            docs = Seq([tree(doc) for doc in draw(st.lists(documents(), min_size=1,
                                                           max_size=3))])
            docs = draw(mutate_tree(docs, yaml_snippet()))
            manifest_node = Map([("version", Raw("1")), ("databases", Map([
                ("app", Map([("documents", docs), ("documents_from",
                                                   tree(list(DATA_FILES)))]))]))])
        manifest = _yaml_text(draw, manifest_node)
    if draw(st.integers(0, 3)) == 0:
        manifest = draw(mutate_bytes(manifest))
    return Case((("m.yaml", manifest), *data.items()), ("m.yaml",), ENVIRON)


@st.composite
def byte_cases(draw: st.DrawFn) -> Case:
    """Random bytes as the manifest, or as a data file of a valid manifest."""
    noise = draw(st.binary(max_size=400) | st.text(max_size=200).map(
        lambda t: t.encode("utf-8", "surrogatepass")))
    if draw(st.booleans()):
        return Case((("m.yaml", noise),), ("m.yaml",))
    name = draw(st.sampled_from(DATA_FILES))
    manifest = f"version: 1\ndatabases:\n  app:\n    documents_from: [{name}]\n".encode()
    return Case((("m.yaml", manifest), (name, noise)), ("m.yaml",))


STRATEGIES: Mapping[str, Callable[[], st.SearchStrategy[Case]]] = {
    "schema": schema_cases,
    "examples": example_cases,
    "hostile": hostile_cases,
    "bytes": byte_cases,
}
