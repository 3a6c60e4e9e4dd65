"""YAML text → plain JSON-like values plus the position of every key and value.

``safe_load`` silently keeps the last of two equal keys and makes dates ``datetime``s; a
manifest must be exact and JSON-shaped, so nodes are converted here: duplicate keys,
non-string keys and values JSON cannot hold are problems, timestamps stay text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from couchsync.manifest._problems import (
    MAX_DEPTH,
    TOO_DEEP,
    Path,
    Problem,
    format_path,
    surrogate_problem,
    type_name,
    warn,
)

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}"
                         for name in ("str", "int", "float", "bool", "null", "timestamp"))

#: Aliases may repeat a subtree, but an expansion far larger than the text
#: ("billion laughs") is refused: at most this many visits per distinct node.
_ALIAS_GROWTH = 10
_ALIAS_SLACK = 10_000


class _DepthGuard(yaml.composer.Composer):
    """A composer that refuses nesting deeper than ``MAX_DEPTH`` as it composes."""

    _depth = 0  # compose_node calls under way: the level a collection composed now gets - 1

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # PyYAML composes recursively: 10^5 "[" would end in a RecursionError.
        parser: Any = self  # the events come from the parser it is mixed with
        if self._depth >= MAX_DEPTH and parser.check_event(yaml.SequenceStartEvent,
                                                           yaml.MappingStartEvent):
            raise yaml.MarkedYAMLError(problem=TOO_DEEP,
                                       problem_mark=parser.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Loader(_DepthGuard, yaml.SafeLoader):
    """``SafeLoader`` that keeps timestamps as the text written (JSON has no dates) and
    refuses nesting deeper than ``MAX_DEPTH`` as it composes."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda _loader, node: str(node.value))

# YAML 1.2 booleans and numbers, not YAML 1.1's: `country: NO`, `on: push`, `1:20` and
# `0123` stay text. YAML 1.1 reads each of these patterns as the same type, so what
# `export` writes with PyYAML's (1.1) dumper reads back the same.
_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float"))
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(_DepthGuard, CParser, yaml.constructor.SafeConstructor,
                      yaml.resolver.Resolver):
        """``_Loader`` on libyaml's C parser: its events, composed by PyYAML's composer
        (the depth guard stays), so nodes, tags and marks are the pure loader's (but a
        plain scalar's ``style``: "" here, None there). A manifest of 10^4 lines
        composes about 3× faster (bench/RESULTS.md, issue 22). A text it refuses is read
        again by ``_Loader``, whose messages the problems quote."""

        yaml_constructors = _Loader.yaml_constructors
        yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)

    _LOADERS: tuple[type[Any], ...] = (_FastLoader, _Loader)
else:  # a PyYAML built without libyaml
    _LOADERS = (_Loader,)


@dataclass(slots=True)
class Positions:
    """1-based (line, col) of every value, and of the key that holds it, by path."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def value(self, path: Path) -> tuple[int, int]:
        """Where the value at ``path`` starts (or its nearest recorded ancestor)."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def key(self, path: Path) -> tuple[int, int]:
        """Where the key naming ``path`` is written; the value's place for list items."""
        return self.keys.get(path) or self.value(path)


@dataclass(slots=True)
class ParsedYaml:
    """A parsed manifest file: ``value`` is None when the text could not be parsed;
    ``failed``: paths whose value could not be converted (None in ``value``)."""

    value: Any
    positions: Positions
    problems: list[Problem]
    failed: set[Path] = field(default_factory=set)


class _TooLarge(Exception):
    pass


def parse_yaml(text: str, file: str) -> ParsedYaml:
    """Parse one YAML document; every problem found is in ``.problems``."""
    try:
        loader, node = _compose(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"character {chr(exc.character)!r} is not allowed in YAML"
        return ParsedYaml(None, Positions(), [Problem(file, line, col, message)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return ParsedYaml(None, Positions(), [Problem(file, line, col, _syntax_message(exc))])
    if node is None:
        return ParsedYaml(None, Positions(), [])
    converter = _Converter(loader, file)
    try:
        value = converter.convert(node, ())
    except _TooLarge:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        message = "YAML aliases expand to far more data than the file holds; refusing to load"
        return ParsedYaml(None, Positions(), [Problem(file, line, col, message)])
    return ParsedYaml(value, converter.positions, converter.problems, converter.failed)


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (one document), nested at most ``MAX_DEPTH`` levels;
    raises ``yaml.YAMLError``. For YAML read without positions (``--var-file``)."""
    return _compose(text)[1]


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    """The loader that composed ``text`` and its node tree: the fast one's, unless it
    refuses the text; then the pure one's, or its error."""
    for loader_class in _LOADERS[:-1]:
        try:
            fast = loader_class(text)
            try:
                return fast, fast.get_single_node()
            finally:
                fast.dispose()
        except yaml.YAMLError:
            pass  # the pure loader says what is wrong, as the messages quote it
    loader = _Loader(text)  # reads (and checks) the text already
    try:
        return loader, loader.get_single_node()
    finally:
        loader.dispose()


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    if "'\\t'" in problem:
        return "tab character here: YAML indentation must use spaces"
    if problem == TOO_DEEP:
        return problem
    if exc.context == "expected a single document in the stream":
        return "a manifest file holds one YAML document, but a second one starts here"
    return f"invalid YAML: {problem}" + (f" ({exc.context})" if exc.context else "")


#: A JSON number: what ``1e5`` or ``1.5E3`` looks like to anyone who writes JSON, while
#: these rules (YAML 1.1's floats: a point and a signed exponent) keep it text.
_JSON_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$")


def looks_like_a_number(text: str) -> bool:
    """Whether JSON reads ``text`` as a (finite) number: such text, when these rules keep
    it text (``1e5``), is warned about unquoted, and so written quoted by export."""
    return _JSON_NUMBER.match(text) is not None and math.isfinite(float(text))


def _yaml_float(text: str) -> str:
    """``1e5`` as these rules read a number: ``1.0e+5``."""
    mantissa, _, exponent = text.lower().partition("e")
    return (mantissa if "." in mantissa else mantissa + ".0") + "e" + (
        exponent if exponent[:1] in "+-" else "+" + exponent)


class _Converter:
    def __init__(self, loader: Any, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.failed: set[Path] = set()
        self._active: set[int] = set()  # mappings/lists being converted: a repeat is a cycle
        self._flattened: set[int] = set()
        self._distinct: set[int] = set()
        self._visits = 0

    def _at(self, node: yaml.Node, message: str, path: Path) -> Problem:
        mark = node.start_mark
        return Problem(self.file, mark.line + 1, mark.column + 1, message, format_path(path))

    def _problem(self, node: yaml.Node, message: str, path: Path, failed: bool = True) -> None:
        if failed:
            self.failed.add(path)
        self.problems.append(self._at(node, message, path))

    def convert(self, node: yaml.Node, path: Path) -> Any:
        self._visits += 1
        self._distinct.add(id(node))
        if self._visits > _ALIAS_GROWTH * len(self._distinct) + _ALIAS_SLACK:
            raise _TooLarge
        self.positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node, path)
            if node.style:  # quoted or a block: meant as written ("" or None: plain)
                return value
            # A number that does not write back as the text (1.10 read as 1.1, a version
            # number; 0x1F as 31) may have been meant as the text; 1.0e+5 is meant.
            if (isinstance(value, int | float) and not isinstance(value, bool)
                    and repr(value) != node.value
                    and not (isinstance(value, float) and "e" in node.value.lower())):
                warn(self._at(node, f"{node.value} is read as the number {value!r}; quote it "
                              f"('{node.value}') to keep the text", path))
            elif isinstance(value, str) and looks_like_a_number(value):
                warn(self._at(node, f"{node.value} is read as the text '{node.value}', not "
                              f"the number {float(node.value)!r}: write "
                              f"{_yaml_float(node.value)} for the number, or quote the text",
                              path))
            return value
        if id(node) in self._active:
            self._problem(node, "recursive YAML alias: this value contains itself", path)
            return None
        if len(path) >= MAX_DEPTH:  # aliases can nest what the composer saw unnested
            self._problem(node, TOO_DEEP, path)
            return None
        expected = _MAP if isinstance(node, yaml.MappingNode) else _SEQ
        if node.tag != expected:
            self._problem(node, f"unsupported YAML tag {node.tag!r}", path)
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self._problem(node, f"unsupported YAML tag {node.tag!r}", path)
            return None
        try:  # a string is its text (what SafeConstructor would return, at a third the cost)
            value = node.value if node.tag == _STR else self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError, LookupError):  # "!!float ''": PyYAML's IndexError
            self._problem(node, f"invalid {node.tag.rsplit(':', 1)[-1]} value {node.value!r}", path)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._problem(node, f"{node.value!r} is not a number JSON can hold", path)
            return None
        problem = surrogate_problem(value) if isinstance(value, str) else None
        if problem is not None:
            try:  # a pair written as two escapes, as JSON does ("\ud83d\ude00"): one character
                return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            except UnicodeDecodeError:
                self._problem(node, problem, path)
                return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        if id(node) not in self._flattened:
            self._flattened.add(id(node))
            self._check_duplicates(node, path)
            try:
                self.loader.flatten_mapping(node)  # resolves "<<" merge keys in place
            except yaml.YAMLError as exc:
                self._problem(node, f"invalid merge key: {getattr(exc, 'problem', exc)}", path)
                return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            mark = key_node.start_mark
            self.positions.keys[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.convert(value_node, child)
        return result

    def _key(self, node: yaml.Node, path: Path) -> str | None:
        key = self._scalar(node, path) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(key, str):
            return key
        if isinstance(node, yaml.ScalarNode):
            message = (f"key {node.value!r} is read as {type_name(key)}; "
                       "quote it to use it as a string")
        else:
            message = "mapping keys must be strings, not lists or mappings"
        self._problem(node, message, path)
        return None

    def _check_duplicates(self, node: yaml.MappingNode, path: Path) -> None:
        first: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            name = key_node.value
            earlier = first.setdefault(name, key_node)
            if earlier is not key_node:
                mark = earlier.start_mark
                where = f" under {format_path(path)}" if path else ""
                self._problem(key_node, f"duplicate key {name!r}{where} (first defined at line "
                              f"{mark.line + 1}, col {mark.column + 1})", (*path, name),
                              failed=False)  # the value is whole; the key is the problem
