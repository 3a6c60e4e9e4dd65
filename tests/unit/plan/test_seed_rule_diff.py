"""Ignored fields in the planner (issue 19), for any bodies and paths: an update keeps the
server's value (or absence) of each ignored field, writes the manifests' everywhere else,
and a plan after it is empty."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from couchsync.plan._diff import content_step
from couchsync.plan._ignore import differing, keep_server_values
from couchsync.plan._model import StepKind
from couchsync.plan._state import LiveDoc

_ABSENT = object()
_keys = st.sampled_from(["a", "b", "c"])
_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y"]))
_bodies = st.recursive(_values, lambda inner: st.dictionaries(_keys, inner, max_size=3),
                       max_leaves=8).filter(lambda value: isinstance(value, dict))
_paths = st.lists(st.sampled_from(["a", "b", "a.b", "a.c", "b.a.c", "c.c"]), max_size=3,
                  unique=True)


def _at(body: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(body, dict) or part not in body:
            return _ABSENT
        body = body[part]
    return body


def _json(value: Any) -> str | None:
    """A value as JSON compares it (``true`` is not ``1``, as Python's ``==`` has it)."""
    return None if value is _ABSENT else json.dumps(value, sort_keys=True)


def _object_or_absent(body: dict[str, Any], path: str) -> bool:
    """Whether every parent of ``path`` in ``body`` is an object or not there."""
    parts = path.split(".")
    return all(isinstance(_at(body, ".".join(parts[:i])), dict) or
               _at(body, ".".join(parts[:i])) is _ABSENT for i in range(1, len(parts)))


def _plan(desired: dict[str, Any], server: dict[str, Any], ignore: list[str]) -> Any:
    return content_step(StepKind.DOCUMENT, "db", "doc", desired,
                        LiveDoc("1-a", {"_id": "doc", **server}), "r", ignore=ignore)


@given(desired=_bodies, server=_bodies, ignore=_paths)
def test_an_update_keeps_the_servers_ignored_fields_and_then_nothing_is_left(
        desired: dict[str, Any], server: dict[str, Any], ignore: list[str]) -> None:
    step = _plan(desired, server, ignore)
    written = server if step is None else step.after
    assert _plan(desired, written, ignore) is None
    for path in ignore:
        if _object_or_absent(desired, path):
            assert _at(written, path) == _at(server, path), path
    # Everything else is the manifests': they differ from what was written only at
    # ignored paths.
    assert keep_server_values(desired, written, ignore) == written


@given(desired=_bodies, server=_bodies, ignore=_paths)
@example(desired={"b": True}, server={"b": 1}, ignore=["b"])  # true is not 1
def test_v_names_exactly_the_ignored_paths_whose_values_differ(
        desired: dict[str, Any], server: dict[str, Any], ignore: list[str]) -> None:
    assert set(differing(desired, server, ignore)) == {
        path for path in ignore if _json(_at(desired, path)) != _json(_at(server, path))}


def test_an_absent_field_stays_absent_and_a_nested_one_is_kept_beside_new_content() -> None:
    step = _plan({"seats": 10, "profile": {"name": "Acme", "last_login": None}},
                 {"profile": {"name": "Old", "last_login": "2026-12-01"}},
                 ["seats", "profile.last_login"])
    assert step is not None
    assert step.after == {"profile": {"name": "Acme", "last_login": "2026-12-01"}}
