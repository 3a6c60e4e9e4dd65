"""A quick yes/no check of a value against the manifest schema, without jsonschema.

Importing jsonschema costs more than the rest of ``validate`` on a small manifest, and
almost every manifest is valid; on "no" (or a keyword unknown here) the loader runs
jsonschema for the positioned errors. A property test holds "yes" to jsonschema's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any


class UnsupportedKeyword(Exception):
    """The schema uses a keyword this checker does not implement."""


# Keywords that never affect validity.
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "title", "description", "default", "deprecated",
    "examples", "errorMessage", "patternErrorMessage", "markdownDescription",
})


_PLAIN_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _is_type(value: Any, name: str) -> bool:
    if name in _PLAIN_TYPES:
        return isinstance(value, _PLAIN_TYPES[name])
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    raise UnsupportedKeyword(f"type {name!r}")


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def conforms(value: Any, schema: Any, root: dict[str, Any] | None = None) -> bool:
    """True when ``value`` is valid against ``schema``; raises UnsupportedKeyword."""
    if schema is True:
        return True
    if schema is False:
        return False
    root = schema if root is None else root
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS or keyword == "$defs":
            continue
        check = _KEYWORDS.get(keyword)
        if check is None:
            raise UnsupportedKeyword(keyword)
        if not check(value, expected, schema, root):
            return False
    return True


def _ref(value: Any, expected: str, _schema: Any, root: dict[str, Any]) -> bool:
    if not expected.startswith("#/"):
        raise UnsupportedKeyword(f"$ref {expected!r}")
    target: Any = root
    for part in expected[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return conforms(value, target, root)


def _additional(value: Any, expected: Any, schema: dict[str, Any], root: Any) -> bool:
    if not isinstance(value, dict):
        return True
    known = schema.get("properties", {})
    patterns = [_regex(p) for p in schema.get("patternProperties", {})]
    extra = [v for k, v in value.items()
             if k not in known and not any(p.search(k) for p in patterns)]
    return all(conforms(v, expected, root) for v in extra)


def _sized(kind: type[str | list[Any] | dict[str, Any]],
           fits: Callable[[int, int], bool]) -> Callable[..., bool]:
    def check(value: Any, expected: int, _schema: Any, _root: Any) -> bool:
        return not isinstance(value, kind) or fits(len(value), expected)
    return check


def _numeric(fits: Callable[[float, float], bool]) -> Callable[..., bool]:
    def check(value: Any, expected: float, _schema: Any, _root: Any) -> bool:
        return (isinstance(value, bool) or not isinstance(value, (int, float))
                or fits(value, expected))
    return check


def _equals(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, and key order never matters.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


_KEYWORDS: dict[str, Callable[..., bool]] = {
    "type": lambda v, exp, _s, _r: any(
        _is_type(v, name) for name in ([exp] if isinstance(exp, str) else exp)),
    "$ref": _ref,
    "properties": lambda v, exp, _s, root: not isinstance(v, dict) or all(
        conforms(v[k], sub, root) for k, sub in exp.items() if k in v),
    "patternProperties": lambda v, exp, _s, root: not isinstance(v, dict) or all(
        conforms(item, sub, root) for pattern, sub in exp.items()
        for k, item in v.items() if _regex(pattern).search(k)),
    "additionalProperties": _additional,
    "propertyNames": lambda v, exp, _s, root: not isinstance(v, dict) or all(
        conforms(k, exp, root) for k in v),
    "items": lambda v, exp, _s, root: not isinstance(v, list) or all(
        conforms(item, exp, root) for item in v),
    "dependentSchemas": lambda v, exp, _s, root: not isinstance(v, dict) or all(
        conforms(v, sub, root) for key, sub in exp.items() if key in v),
    "required": lambda v, exp, _s, _r: not isinstance(v, dict) or all(k in v for k in exp),
    "enum": lambda v, exp, _s, _r: any(_equals(v, e) for e in exp),
    "const": lambda v, exp, _s, _r: _equals(v, exp),
    "pattern": lambda v, exp, _s, _r: not isinstance(v, str) or bool(_regex(exp).search(v)),
    "anyOf": lambda v, exp, _s, root: any(conforms(v, sub, root) for sub in exp),
    "oneOf": lambda v, exp, _s, root: sum(conforms(v, sub, root) for sub in exp) == 1,
    "allOf": lambda v, exp, _s, root: all(conforms(v, sub, root) for sub in exp),
    "not": lambda v, exp, _s, root: not conforms(v, exp, root),
    "minLength": _sized(str, lambda n, e: n >= e),
    "maxLength": _sized(str, lambda n, e: n <= e),
    "minItems": _sized(list, lambda n, e: n >= e),
    "maxItems": _sized(list, lambda n, e: n <= e),
    "minProperties": _sized(dict, lambda n, e: n >= e),
    "maxProperties": _sized(dict, lambda n, e: n <= e),
    "minimum": _numeric(lambda v, e: v >= e),
    "maximum": _numeric(lambda v, e: v <= e),
}
