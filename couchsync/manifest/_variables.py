"""Variables for ``${KEY}``: ``--var KEY=VALUE`` and ``--var-file FILE``, before the
environment.

A variables file is a YAML (or JSON) mapping of names to scalar values when it
ends in ``.yaml``, ``.yml`` or ``.json``, else ``.env`` lines: ``KEY=VALUE``,
optionally after ``export``, the value optionally in single quotes (taken as
written) or double quotes (``\\"``, ``\\\\`` and ``\\n`` escapes); blank lines and
lines starting with ``#`` are skipped. A YAML ``true`` becomes ``"true"``, a
number its YAML spelling: values are strings, as in the environment.
"""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence

from couchsync.manifest._problems import ManifestError, Problem

__all__ = ["variables"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENV_LINE = re.compile(r"(?:export\s+)?(?P<key>[^=\s]+)\s*=\s*(?P<value>.*?)\s*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def variables(assignments: Sequence[str] = (), files: Sequence[str | os.PathLike[str]] = (),
              environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """What ``${KEY}`` reads: ``--var KEY=VALUE`` assignments first (the last of a key
    wins), then the files (a later file wins), then ``environ`` (default
    ``os.environ``). Raises ``ManifestError`` naming each bad assignment or line."""
    problems: list[Problem] = []
    given: dict[str, str] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not _NAME.match(key):
            problems.append(Problem("--var", 0, 0, f"expected KEY=VALUE with KEY a name "
                                    f"(letters, digits, _), got {_shown(text)}"))
        else:
            given[key] = value
    from_files: dict[str, str] = {}
    for path in files:
        found, trouble = _read_file(os.fspath(path))
        from_files.update(found)
        problems.extend(trouble)
    if problems:
        raise ManifestError(problems)
    return ChainMap(given, from_files, dict(os.environ if environ is None else environ))


def _shown(text: str) -> str:
    """An assignment as an error shows it: the key only, never a value (it may be secret)."""
    key = text.partition("=")[0]
    return repr(key + "=…") if "=" in text else repr(key)


def _read_file(path: str) -> tuple[dict[str, str], list[Problem]]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {}, [Problem(path, 0, 0, f"cannot read the variables file: {reason}")]
    if path.endswith((".yaml", ".yml", ".json")):
        return _read_yaml(path, text)
    return _read_env(path, text.splitlines())


def _read_env(path: str, lines: Iterable[str]) -> tuple[dict[str, str], list[Problem]]:
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if match is None or not _NAME.match(match["key"]):
            problems.append(Problem(path, number, 1, "expected KEY=VALUE with KEY a name "
                                    "(letters, digits, _)"))
            continue
        value, problem = _unquote(match["value"])
        if problem:
            problems.append(Problem(path, number, 1, f"{match['key']}: {problem}"))
        else:
            found[match["key"]] = value
    return found, problems


def _unquote(value: str) -> tuple[str, str | None]:
    if value[:1] == "'":
        if len(value) < 2 or not value.endswith("'"):
            return "", "a value opened with ' must end with '"
        return value[1:-1], None
    if value[:1] != '"':
        return value, None
    out: list[str] = []
    i = 1
    while i < len(value):
        char = value[i]
        if char == '"':
            if i != len(value) - 1:
                return "", 'text after the closing "'
            return "".join(out), None
        if char == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "", 'a value opened with " must end with "'


def _read_yaml(path: str, text: str) -> tuple[dict[str, str], list[Problem]]:
    import yaml

    from couchsync.manifest._yaml import compose

    try:
        root = compose(text)  # nesting limited: 10^5 "[" is a problem, not a RecursionError
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return {}, [Problem(path, line, col, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if root is None:
        return {}, []
    if not isinstance(root, yaml.MappingNode):
        return {}, [Problem(path, root.start_mark.line + 1, root.start_mark.column + 1,
                            "a variables file holds a mapping of names to values")]
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in root.value:
        where = (key.start_mark.line + 1, key.start_mark.column + 1)
        name = key.value if isinstance(key, yaml.ScalarNode) else ""
        if not _NAME.match(name):
            problems.append(Problem(path, *where, f"{name!r} is not a variable name "
                                    "(letters, digits, _)"))
        elif not isinstance(value, yaml.ScalarNode) or value.tag.endswith(":null"):
            problems.append(Problem(path, *where, f"{name}: a value must be a string, "
                                    "number or boolean"))
        elif name in found:
            problems.append(Problem(path, *where, f"{name} is given twice"))
        else:
            found[name] = value.value
    return found, problems
