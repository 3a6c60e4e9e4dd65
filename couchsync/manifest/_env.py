"""Variables: ``--var KEY=VALUE`` and ``--var-file FILE`` before the environment, and
``${VAR}`` / ``${VAR:-default}`` expansion in manifest string values.

Only values are expanded, never keys (the manifest's structure reads the same in every
environment), and the result is always a string, whatever the environment holds. Values
of secret variables are collected (``Expansion.secrets``): plans mask them.
"""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from couchsync.manifest._problems import ManifestError, Path, Problem, surrogate_problem

#: Variable names whose values are secrets: masked in plans, never written to a file.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def is_secret_variable(name: str) -> bool:
    """Whether a variable's name says its value is a secret (``SECRET_NAME``)."""
    return SECRET_NAME.search(name) is not None


# "$${" first so that an escaped reference is never expanded; an unclosed or
# malformed "${" is matched by the last branch so it can be reported.
_TOKEN = re.compile(
    r"\$\$\{"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{(?P<bad>[^}]*\}?)"
)


#: ``$NAME`` without braces, as a shell would expand it: the value keeps it literally,
#: which is seldom what was meant (``password: $WORKER_PASSWORD``). Upper case only, the
#: convention of environment variables: ``$eq`` or jQuery's ``$`` in code are not meant.
_BARE = re.compile(r"(?<!\$)\$(?P<name>[A-Z_][A-Z0-9_]*)(?![A-Za-z0-9_{])")


@dataclass(slots=True)
class Expansion:
    """The expanded value, the problems found, which paths held references, and the
    (non-empty) values that secret variables gave."""

    value: Any
    problems: list[tuple[Path, str]]
    expanded: set[Path]
    secrets: set[str]
    #: ``$NAME`` written without braces (``bare_references``), by path.
    warnings: list[tuple[Path, str]] = field(default_factory=list)


def expand(value: Any, environ: Mapping[str, str]) -> Expansion:
    """Expand every string value inside ``value`` (a JSON-like tree)."""
    found = Expansion(None, [], set(), set())

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            secret = bool(path) and is_secret_variable(str(path[-1]))
            found.warnings.extend((path, message) for message in bare_references(value, secret))
            text, problems = expand_string(value, environ, found.secrets)
            found.problems.extend((path, message) for message in problems)
            if text != value:
                found.expanded.add(path)
            return text
        return value

    found.value = walk(value, ())
    return found


def bare_references(text: str, secret: bool = False) -> list[str]:
    """A warning for each ``$NAME`` in ``text`` that is not a ``${NAME}`` reference, naming
    only it, and not even that in a ``secret`` value (a password may hold ``$AB``)."""
    return [(f"${name} is not a variable reference and is kept as written; write "
             f"${{{name}}} to use the variable") if not secret else
            ("a $NAME in this secret value (not shown) is kept as written, not "
             "expanded: write ${NAME} to use a variable")
            for name in (match.group("name") for match in _BARE.finditer(_TOKEN.sub("", text)))
            if any(c.isalpha() for c in name)]


def expand_string(text: str, environ: Mapping[str, str], secrets: set[str] | None = None
                  ) -> tuple[str, list[str]]:
    """Expand the references in one string; returns the text and problem messages.
    ``secrets`` collects the values given by secret variables."""
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            problems.append(
                f"invalid variable reference '${{{match.group('bad')}' "
                "(use ${NAME} or ${NAME:-default}; write $${ for a literal ${)"
            )
            return match.group(0)
        found = environ.get(name)
        default = match.group("default")
        if default is not None and not found:
            return default
        if found is None:
            problems.append(f"variable {name} is not set (by --var, --var-file or the "
                            "environment) and has no default")
            return match.group(0)
        if surrogate_problem(found) is not None:
            # Bytes of the environment that are not UTF-8 reach Python as lone surrogates,
            # which no JSON sent to CouchDB can hold. The value may be secret: not shown.
            problems.append(f"the value of variable {name} is not valid UTF-8 text")
            return match.group(0)
        if secrets is not None and found and is_secret_variable(name):
            secrets.add(found)
        return found

    return _TOKEN.sub(replace, text), problems


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENV_LINE = re.compile(r"(?:export\s+)?(?P<key>[^=\s]+)\s*=\s*(?P<value>.*?)\s*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}
_ESCAPE = re.compile(r'\\(["\\n])')
#: A double-quoted .env value: escapes, other characters but '"', a backslash kept as is.
_QUOTED = re.compile(r'"((?:\\["\\n]|[^"\\]|\\(?!["\\n]))*)"')


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
            shown = key + ("=…" if sep else "")  # never the value: it may be secret
            problems.append(Problem("--var", 0, 0, f"expected KEY=VALUE with KEY a name "
                                    f"(letters, digits, _), got {shown!r}"))
        else:
            given[key] = value
    from_files: dict[str, str] = {}
    for path in [os.fspath(given) for given in files]:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(Problem(path, 0, 0, f"cannot read the variables file: {reason}"))
            continue
        # A YAML/JSON mapping by the file's suffix, else .env lines (docs/manifest.md).
        found, trouble = (_read_yaml(path, text) if path.endswith((".yaml", ".yml", ".json"))
                          else _read_env(path, text.splitlines()))
        from_files.update(found)
        problems.extend(trouble)
    if problems:
        raise ManifestError(problems)
    return ChainMap(given, from_files, dict(os.environ if environ is None else environ))


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
    quoted = _QUOTED.match(value)
    if quoted is None:
        return "", 'a value opened with " must end with "'
    if quoted.end() != len(value):
        return "", 'text after the closing "'
    return _ESCAPE.sub(lambda escape: _ESCAPES[escape[1]], quoted[1]), None


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
