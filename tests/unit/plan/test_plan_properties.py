"""Properties of the comparison: any JSON body equals itself however it is written."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from plan_builders import database, desired, existing, live, live_doc

from couchsync._canonical import canonical_json
from couchsync.plan import Plan, plan_changes
from couchsync.plan._fielddiff import field_changes

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False, width=32)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)
bodies = st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: not k.startswith("_")),
                         json_values, max_size=6)


def rewritten(value: Any, rng: random.Random) -> Any:
    """The same JSON value with keys shuffled and integers written as floats."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: rewritten(v, rng) for k, v in items}
    if isinstance(value, list):
        return [rewritten(v, rng) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@given(bodies, st.integers())
def test_a_body_written_differently_plans_no_change(body: dict[str, Any], seed: int) -> None:
    server = {"_id": "d", **rewritten(body, random.Random(seed))}
    plan = plan_changes(desired(database(documents=[{"_id": "d", **body}])),
                        live(existing(documents={"d": live_doc(server)})))
    assert plan.is_empty


@given(bodies, bodies)
def test_field_changes_are_empty_exactly_when_bodies_are_equal(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    same = canonical_json(before, drop=()) == canonical_json(after, drop=())
    assert same == (not list(field_changes(before, after)))


@given(bodies, bodies)
def test_every_update_plan_round_trips_through_its_dict(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    plan = plan_changes(desired(database(documents=[{"_id": "d", **after}])),
                        live(existing(documents={"d": live_doc({"_id": "d", **before})})))
    assert Plan.from_dict(plan.to_dict()) == plan
