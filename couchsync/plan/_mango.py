"""Mango selectors normalised as CouchDB does (``mango_selector:normalize/1``), ``$and``/``$or``
arguments sorted, so that index definitions compare by meaning (docs/design-notes.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from couchsync._canonical import canonical_json

_COMBINATORS = ("$and", "$or", "$nor")
_ARRAY_MATCHERS = ("$elemMatch", "$allMatch")
_NEGATED = {
    "$lt": "$gte", "$lte": "$gt", "$eq": "$ne", "$ne": "$eq", "$gte": "$lt", "$gt": "$lte",
    "$in": "$nin", "$nin": "$in",
}  # fmt: skip


def normalize_selector(selector: Mapping[str, Any] | None) -> dict[str, Any]:
    """``selector`` in CouchDB's normal form, ``$and``/``$or`` arguments sorted."""
    if not selector:
        return {}
    return dict(_sort_commutative(_norm_negations(_norm_fields(_norm_ops(dict(selector)), ""))))


def _single(value: Any) -> tuple[str, Any] | None:
    """The one ``(key, value)`` pair of a one-key object, else ``None``."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.items()))
    return None


def _norm_ops(value: Any) -> Any:
    """Make every operator explicit: bare values become ``$eq``, several keys ``$and``."""
    pair = _single(value)
    if pair is None:
        if isinstance(value, dict) and len(value) > 1:
            return {"$and": [_norm_ops({k: v}) for k, v in value.items()]}
        return {"$eq": value}
    key, arg = pair
    if key in _COMBINATORS and isinstance(arg, list):
        return {key: [_norm_ops(a) for a in arg]}
    if key in ("$not", *_ARRAY_MATCHERS) and isinstance(arg, dict):
        return {key: _norm_ops(arg)}
    if key == "$text":
        return {"$default": {"$text": arg}}
    if key.startswith("$"):
        return value
    return {key: _norm_ops(arg)}


def _norm_fields(selector: Any, path: str) -> Any:
    """Move field names down to the operators: ``{a: {b: {$gt: 1}}}`` → ``{"a.b": {$gt: 1}}``."""
    pair = _single(selector)
    if pair is None:
        return {path: selector} if path else selector
    key, arg = pair
    if key in _COMBINATORS:
        return {key: [_norm_fields(a, path) for a in arg]}
    if key == "$not":
        return {key: _norm_fields(arg, path)}
    if key in _ARRAY_MATCHERS:
        return {path: {key: _norm_fields(arg, "")}}
    if key == "$default" and not path:
        return selector
    if key.startswith("$"):
        return {path: selector}
    return _norm_fields(arg, f"{path}.{key}" if path else key)


def _norm_negations(selector: Any) -> Any:
    pair = _single(selector)
    if pair is None:
        return selector
    key, arg = pair
    if key == "$not":
        return _negate(arg)
    if key == "$nor":
        return {"$and": [_negate(a) for a in arg]}
    if key in ("$and", "$or"):
        return {key: [_norm_negations(a) for a in arg]}
    if key in _ARRAY_MATCHERS:
        return {key: _norm_negations(arg)}
    return selector


def _negate(selector: Any) -> Any:
    pair = _single(selector)
    if pair is None:
        return selector
    key, arg = pair
    if key == "$not":
        return _norm_negations(arg)
    if key == "$nor":
        return {"$or": [_norm_negations(a) for a in arg]}
    if key == "$and":
        return {"$or": [_negate(a) for a in arg]}
    if key == "$or":
        return {"$and": [_negate(a) for a in arg]}
    if key in _NEGATED:
        return {_NEGATED[key]: arg}
    if key == "$exists":
        return {key: not arg}
    if key.startswith("$"):
        return {"$not": selector}
    return {key: _negate(arg)}


def _sort_commutative(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _sort_commutative(v) for k, v in value.items()}
        for key in ("$and", "$or"):
            if isinstance(out.get(key), list):
                out[key] = sorted(out[key], key=lambda v: canonical_json(v, drop=()))
        return out
    if isinstance(value, list):
        return [_sort_commutative(v) for v in value]
    return value
