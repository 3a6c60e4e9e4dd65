"""Canonical JSON: the one definition of "the same document"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from couchsync._canonical import (
    NotJSONNumber,
    canonical_decoder,
    canonical_json,
    hash_canonical,
)


def test_key_order_never_matters() -> None:
    assert canonical_json({"b": 1, "a": {"y": 2, "x": 3}}) == b'{"a":{"x":3,"y":2},"b":1}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"n": 1.0}, b'{"n":1}'),
        ({"n": [2.0, {"m": -0.0}]}, b'{"n":[2,{"m":0}]}'),
        ({"n": 1e16}, b'{"n":10000000000000000}'),
        ({"n": 1.5, "s": "v1.0"}, b'{"n":1.5,"s":"v1.0"}'),
        ({"s": "1.0e+5"}, b'{"s":"1.0e+5"}'),
        ({"n": 2**60 + 1}, b'{"n":1152921504606846976}'),  # the double a JS server keeps
        ({"n": 1152921504606847000}, b'{"n":1152921504606846976}'),
        ({"n": 2**53, "m": -(2**53)}, b'{"m":-9007199254740992,"n":9007199254740992}'),
        ({"s": "12345678901234567890"}, b'{"s":"12345678901234567890"}'),
    ],
)
def test_numbers_compare_as_json_numbers(value: dict[str, Any], expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_server_fields_are_left_out_at_the_top_level_only() -> None:
    body = {"_id": "a", "_rev": "1-x", "_conflicts": [], "nested": {"_rev": "kept"}}
    assert canonical_json(body) == b'{"_id":"a","nested":{"_rev":"kept"}}'
    assert canonical_json(body, drop=()) != canonical_json(body)


def test_non_ascii_is_kept_as_text() -> None:
    assert canonical_json({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()


def test_hashes_agree() -> None:
    body = {"_id": "a", "x": 1.0}
    assert hash_canonical(canonical_json(body)) == hash_canonical(
        canonical_json({"x": 1, "_id": "a", "_rev": "9-z"}))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_equal_json_values_have_equal_canonical_bytes(value: Any) -> None:
    again = json.loads(json.dumps(value))  # a round trip may turn 1.0 into 1.0 or keep ints
    assert canonical_json(again, drop=()) == canonical_json(value, drop=())
    assert canonical_json(json.loads(canonical_json(value, drop=())), drop=()) == canonical_json(
        value, drop=())


@given(JSON)
def test_the_canonical_decoder_makes_the_number_check_unneeded(value: Any) -> None:
    # Data files are decoded with canonical_decoder and serialised without the number
    # check; that must give the same bytes (hence the same hash) as the general path.
    text = json.dumps(value)
    decoded = canonical_decoder().decode(text)
    assert canonical_json(decoded, drop=(), numbers_canonical=True) == canonical_json(
        json.loads(text), drop=())


@pytest.mark.parametrize("text", ["1.0", "-0.0", "1e16", "12345678901234567890",
                                  "-9007199254740993", "9007199254740992", "2.5",
                                  "[1.0, {\"a\": 1E+2}]"])
def test_the_canonical_decoder_rewrites_numbers_as_canonical_json_does(text: str) -> None:
    decoded = canonical_decoder().decode(text)
    assert canonical_json(decoded, drop=(), numbers_canonical=True) == canonical_json(
        json.loads(text), drop=())


@pytest.mark.parametrize(("value", "message"), [
    ({"n": 10**400}, "too large"),
    ({"n": [-(10**309)]}, "too large"),
    ({"n": float("nan")}, "NaN and Infinity"),
    ({"n": float("-inf")}, "NaN and Infinity"),
])
def test_numbers_json_cannot_hold_are_a_clear_error(value: Any, message: str) -> None:
    with pytest.raises(NotJSONNumber, match=message):
        canonical_json(value)


@pytest.mark.parametrize("text", ["9" * 400, "-" + "9" * 400, "1" * 5000])
def test_the_canonical_decoder_refuses_integers_beyond_a_double(text: str) -> None:
    with pytest.raises(NotJSONNumber, match="too large"):
        canonical_decoder().decode(f'{{"n": {text}}}')
