"""The JSON Schema of format v1, and its errors turned into messages people can act on.

The schema file is the one description of the format, read by editors and the loader
alike; its ``errorMessage`` and ``patternErrorMessage`` are the keywords VS Code's
language servers understand, so both word those errors the same way.
"""

from __future__ import annotations

import difflib
import functools
import json
import pathlib
import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from couchsync.manifest._fastcheck import UnsupportedKeyword, conforms
from couchsync.manifest._problems import Path, format_path, type_name

if TYPE_CHECKING:
    from jsonschema import (  # type: ignore[import-untyped]  # no types-jsonschema in dev deps
        Draft202012Validator,
        ValidationError,
    )

_A_TYPE = {"string": "a string", "integer": "an integer", "number": "a number",
           "boolean": "a boolean (true or false)", "object": "a mapping", "array": "a list",
           "null": "null"}

# Beside the package's modules, as setuptools installs package data (not importlib.resources:
# its import costs more than reading the file).
_SCHEMA_FILE = pathlib.Path(__file__).resolve().parent.parent / "schemas" / "manifest.schema.json"


@dataclass(frozen=True, slots=True)
class Issue:
    """A schema violation at ``path``; ``at_key`` points at the key rather than its value."""

    path: Path
    message: str
    at_key: bool = False


def schema_text() -> str:
    """The manifest JSON Schema (format v1), as shipped in the package."""
    return _SCHEMA_FILE.read_text("utf-8")


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


@functools.cache
def _validator(definition: str | None = None) -> Draft202012Validator:
    """The whole schema's validator, or that of one of its ``$defs``."""
    # Imported here: jsonschema is only needed once a manifest has a problem.
    from jsonschema import Draft202012Validator

    root = _schema()
    # A definition checked alone keeps the definitions its references name.
    return Draft202012Validator(root if definition is None
                                else {**root["$defs"][definition], "$defs": root["$defs"]})


def schema_issues(instance: Any, expanded: Set[Path] = frozenset()) -> list[Issue]:
    """Every schema violation of a whole manifest; ``expanded``: paths that held ``${...}``."""
    try:
        if conforms(instance, _schema()):
            return []
    except UnsupportedKeyword:
        pass  # the full validator below knows every keyword
    return _unique(_validator().iter_errors(instance), expanded)


def plainly_valid(body: Any) -> bool:
    """The usual valid seed document, known without jsonschema (a data file may hold 10^5
    documents); never says yes where the schema says no (a property test holds it)."""
    if type(body) is not dict:
        return False
    doc_id = body.get("_id")
    return (type(doc_id) is str and doc_id[:1] not in ("", "_")  # the schema's _id rules
            and type(body.get("_deleted", False)) is bool
            and all(key[:1] != "_" or key in ("_id", "_deleted") for key in body))


def document_issues(body: Any) -> list[Issue]:
    """Schema violations of one seed document (used for ``documents_from`` data)."""
    if plainly_valid(body):
        return []
    return _unique(_validator("document").iter_errors(body), frozenset())


def _unique(errors: Iterator[ValidationError], expanded: Set[Path]) -> list[Issue]:
    seen: dict[Issue, None] = {}
    for error in errors:
        seen.update(dict.fromkeys(_translate(error, expanded)))
    return list(seen)


def _translate(error: ValidationError, expanded: Set[Path]) -> Iterator[Issue]:
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind, instance, expected = error.validator, error.instance, error.validator_value
    if "propertyNames" in error.absolute_schema_path:
        yield Issue((*path, instance), _name_message(kind, expected, instance, schema), True)
    elif kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        where = f"under {format_path(path)}" if path else "at the top level"
        for key in instance:
            if key not in allowed and not any(re.search(p, key) for p in patterns):
                yield Issue((*path, key), f"unknown key {key!r} {where}{_suggest(key, allowed)}",
                            True)
    elif "errorMessage" in schema:
        yield Issue(path, schema["errorMessage"], kind == "not")
    elif kind in ("anyOf", "oneOf"):
        yield from _translate_alternatives(error, path, expanded)
    else:
        yield Issue(path, _value_message(error, schema, path in expanded))


def _translate_alternatives(error: ValidationError, path: Path,
                            expanded: Set[Path]) -> Iterator[Issue]:
    # Report the errors of the alternative whose type fits the value (a mapping
    # given where "a name or a mapping" is allowed is judged as a mapping).
    branches: list[dict[str, Any]] = error.validator_value
    name = type_name(error.instance)
    actual = {"list": "array", "mapping": "object"}.get(name, name)  # the schema's word
    for index, branch in enumerate(branches):
        types = branch.get("type")
        if actual in (types if isinstance(types, list) else [types]) or (
            actual == "integer" and types == "number"
        ):
            for sub in error.context or ():
                if sub.relative_schema_path[0] == index:
                    yield from _translate(sub, expanded)
            return
    wanted = " or ".join(_A_TYPE.get(str(b.get("type")), "a valid value") for b in branches)
    yield Issue(path, f"expected {wanted}, got {type_name(error.instance)}")


#: What YAML 1.1 read as booleans and YAML 1.2 (the manifests' YAML) reads as text.
_YAML11_BOOLS = frozenset(("yes", "no", "on", "off", "y", "n"))


def _value_message(error: ValidationError, schema: dict[str, Any], expanded: bool) -> str:
    kind, instance, expected = error.validator, error.instance, error.validator_value
    if kind == "type":
        wanted = " or ".join(_A_TYPE[t] for t in ([expected] if isinstance(expected, str)
                                                  else expected))
        hint = " (a ${...} reference always gives a string)" if expanded else ""
        if "boolean" in expected and str(instance).lower() in _YAML11_BOOLS:
            hint = f" {instance!r} (only true and false are booleans)"
        return f"expected {wanted}, got {type_name(instance)}{hint}"
    if kind == "enum":
        choices = ", ".join(repr(c) for c in expected)
        suggestion = _suggest(instance, expected) if isinstance(instance, str) else ""
        return f"expected one of {choices}, got {_show(instance)}{suggestion}"
    if kind == "const":
        return f"expected {expected!r}, got {_show(instance)}"
    if kind == "required":
        missing = [key for key in expected if key not in instance]
        keys = ", ".join(repr(key) for key in missing)
        where = f" under {format_path(tuple(error.absolute_path))}" if error.absolute_path else ""
        return f"missing required key{'s' if len(missing) > 1 else ''} {keys}{where}"
    if kind == "minItems" and expected == 1:
        return "must not be empty"
    if kind == "minLength" and expected == 1:
        return "must not be an empty string"
    if kind == "minimum":
        return f"must be at least {expected}, got {instance}"
    if kind == "pattern":
        reason = schema.get("patternErrorMessage", f"must match {expected}")
        return f"{reason} (got {instance!r})"
    return str(error.message)


def _name_message(kind: str, expected: Any, name: str, schema: dict[str, Any]) -> str:
    if kind == "pattern":
        return f"{schema.get('patternErrorMessage', f'name must match {expected}')} (got {name!r})"
    if kind == "maxLength":
        return f"name {name!r} is too long: {len(name)} characters, at most {expected}"
    if kind == "minLength":
        return "empty names are not allowed"
    return f"invalid name {name!r}"


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    return f"a {type_name(value)}" if isinstance(value, (dict, list)) else repr(value)
