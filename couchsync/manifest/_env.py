"""``${VAR}`` / ``${VAR:-default}`` expansion in manifest string values.

Only values are expanded, never keys (the manifest's structure reads the same in every
environment), and the result is always a string, whatever the environment holds. Values
of secret variables are collected (``Expansion.secrets``): plans mask them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from couchsync.manifest._problems import Path, surrogate_problem

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
    problems: list[tuple[Path, str]] = []
    expanded: set[Path] = set()
    secrets: set[str] = set()
    warnings: list[tuple[Path, str]] = []

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            secret = bool(path) and is_secret_variable(str(path[-1]))
            warnings.extend((path, message) for message in bare_references(value, secret))
            text, found = expand_string(value, environ, secrets)
            problems.extend((path, message) for message in found)
            if text != value:
                expanded.add(path)
            return text
        return value

    return Expansion(walk(value, ()), problems, expanded, secrets, warnings)


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
