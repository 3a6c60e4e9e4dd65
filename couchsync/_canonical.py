"""Canonical JSON: the one definition of "the same document" couchsync uses.

Sorted keys, compact separators, integral floats as integers (``1 == 1.0``), and
integers beyond 2**53 as the double they round to, as JavaScript servers (PouchDB) store
them: otherwise such a number would show as drift for ever. Equal canonical bytes mean
equal documents; the ownership record's content hash is taken of them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Fields the server manages; they never take part in a comparison.
SERVER_FIELDS = frozenset({"_rev", "_revisions", "_revs_info", "_conflicts",
                           "_deleted_conflicts", "_local_seq"})

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)
_EXACT_INTS = 2**53
_LONG_NUMBER = re.compile(r"\d{16}")  # every integer past 2**53 has 16 digits or more


class NotJSONNumber(ValueError):
    """A number canonical JSON cannot write: NaN, an infinity, or an integer beyond the
    range of the double CouchDB and JavaScript read every JSON number as."""


_TOO_LARGE = "an integer too large for a JSON number (beyond a double's range, about 1.8e308)"


def _as_double(value: int) -> int:
    try:
        return int(float(value))
    except OverflowError:
        raise NotJSONNumber(_TOO_LARGE) from None


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is int and not -_EXACT_INTS <= value <= _EXACT_INTS:
        return _as_double(value)
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _canonical_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # past Python's 4,300-digit limit for int(), far past a double
        raise NotJSONNumber(_TOO_LARGE) from None
    if len(text) < 16 or -_EXACT_INTS <= value <= _EXACT_INTS:  # the cheap test first
        return value
    return _as_double(value)


def _canonical_float(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def canonical_decoder(**options: Any) -> json.JSONDecoder:
    """A JSON decoder whose numbers come out as ``canonical_json`` writes them, so that
    ``numbers_canonical=True`` can skip looking for numbers to rewrite (a costly walk)."""
    return json.JSONDecoder(parse_int=_canonical_int, parse_float=_canonical_float, **options)


def canonical_json(value: Any, *, drop: Iterable[str] = SERVER_FIELDS,
                   numbers_canonical: bool = False) -> bytes:
    """Serialise ``value`` canonically, leaving out the top-level keys in ``drop``;
    ``numbers_canonical``: it came from ``canonical_decoder``. Raises ``NotJSONNumber``
    for NaN, an infinity or an integer beyond a double."""
    if type(value) is dict or isinstance(value, Mapping):  # the cheap test first: a hot path
        dropped = drop if isinstance(drop, frozenset) else frozenset(drop)
        if type(value) is not dict or not dropped.isdisjoint(value):
            value = {k: v for k, v in value.items() if k not in dropped}
    try:
        text = _ENCODER.encode(value)
        # An integral float always prints as "1.0" or "1e+16", a large integer as 16
        # digits or more; without those there is none, and the walk that rewrites them
        # (the costly part) is skipped.
        if not numbers_canonical and (".0" in text or "e+" in text
                                      or _LONG_NUMBER.search(text)):
            text = _ENCODER.encode(_normalise(value))
    except NotJSONNumber:
        raise
    except ValueError:
        # A NaN or an infinity (allow_nan=False), or an integer too long to print: the
        # number walk refuses the latter, so what is left is the former.
        _normalise(value)
        raise NotJSONNumber("NaN and Infinity are not valid JSON numbers") from None
    return text.encode("utf-8")


def hash_canonical(canonical: bytes) -> str:
    """The content hash of canonical JSON bytes: the first 128 bits of their SHA-256,
    base64url without padding (22 characters, stored once per managed document)."""
    sha256, b64encode = _hash_functions()
    return b64encode(sha256(canonical).digest()[:16]).decode()[:22]


@functools.cache
def _hash_functions() -> tuple[Callable[[bytes], Any], Callable[[bytes], bytes]]:
    # Imported when first needed: loading OpenSSL's hashes costs time `validate` never needs.
    import base64
    import hashlib

    return hashlib.sha256, base64.urlsafe_b64encode
