"""Ignored fields (``ignore:``): the application owns them; couchsync neither compares nor
overwrites them.

A path is field names joined by ``.`` (never into arrays). The wanted body has, at each
ignored path, the server's value or, where the server has none, nothing (as Terraform's
``ignore_changes``), so an apply is followed by an empty plan whatever the application
wrote; where the manifests make a parent something other than an object, theirs stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from couchsync._canonical import canonical_json

_MISSING = object()


def keep_server_values(desired: dict[str, Any], server: dict[str, Any],
                       paths: Sequence[str]) -> dict[str, Any]:
    """``desired`` (not changed) with the server's value, or absence, at each path."""
    kept = dict(desired)
    for path in paths:
        parts = path.split(".")
        _put(kept, parts, _get(server, parts))
    return kept


def differing(desired: dict[str, Any], server: dict[str, Any],
              paths: Sequence[str]) -> tuple[str, ...]:
    """The ``paths`` whose values differ between the manifests and the server (kept)."""
    def value(body: dict[str, Any], parts: list[str]) -> bytes | None:
        found = _get(body, parts)
        return None if found is _MISSING else canonical_json(found, drop=())

    return tuple(path for path in paths
                 if value(desired, path.split(".")) != value(server, path.split(".")))


def _get(body: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(body, dict) or part not in body:
            return _MISSING
        body = body[part]
    return body


def _put(body: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set (or, for ``_MISSING``, remove) the value at ``parts``, copying the objects on
    the way (``body`` is a copy already); a parent that is not an object stops it."""
    node = body
    for part in parts[:-1]:
        child = node.get(part, _MISSING)
        if child is _MISSING:
            if value is _MISSING:
                return  # nothing there to remove
            child = {}
        elif not isinstance(child, dict):
            return  # the manifests' value stands
        else:
            child = dict(child)
        node[part] = child
        node = child
    if value is _MISSING:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
