"""The migration engine (``couchsync.plan._migrate``), with no server: what each
operation does to a document, and the property that lets a declarative migration run
without a journal: ``idempotent(spec)`` means running it on its own output changes
nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from couchsync.manifest.model import MigrationSpec, SourcePos
from couchsync.plan import idempotent, migrate

HERE = SourcePos("m.yaml", 1, 1)


def spec(**operations: Any) -> MigrationSpec:
    return MigrationSpec(id="m", source=HERE, checksum="0" * 32, **operations)


def test_operations_run_in_their_order_on_a_copy() -> None:
    doc = {"_id": "u1", "_rev": "1-a", "email": "a@x", "name": "Ada", "legacy": True,
           "contact": {"phone": "1"}}
    migration = spec(rename={"email": "contact.email"}, copy={"name": "display"},
                     set_default={"schema": 1, "name": "kept"}, set={"version": 2},
                     unset=("legacy",))

    outcome = migrate(migration, doc, None)

    assert outcome.body == {"_id": "u1", "_rev": "1-a", "name": "Ada", "display": "Ada",
                            "contact": {"phone": "1", "email": "a@x"}, "schema": 1,
                            "version": 2}
    assert doc["email"] == "a@x" and "version" not in doc  # the input is left alone


def test_a_document_the_operations_leave_as_it_was_is_not_a_change() -> None:
    assert not migrate(spec(set={"v": 1}), {"_id": "a", "v": 1}, None).changes
    assert not migrate(spec(rename={"gone": "x"}), {"_id": "a"}, None).changes


def test_a_path_through_a_value_that_is_not_an_object_fails_the_document() -> None:
    outcome = migrate(spec(set={"contact.email": "x"}), {"_id": "a", "contact": [1]}, None)
    assert outcome.error == "contact is an array, not an object, so contact.email cannot be set"


def test_a_transform_sees_the_operations_result_and_none_leaves_the_document() -> None:
    def upgrade(doc: dict[str, Any]) -> dict[str, Any] | None:
        return None if doc["v"] == 2 else {**doc, "seen": doc["v"]}

    assert migrate(spec(set={"v": 2}, transform="t.py:upgrade"), {"_id": "a", "v": 1},
                   upgrade) == migrate(spec(), {"_id": "a"}, None)  # left: nothing
    assert migrate(spec(set={"w": 3}, transform="t.py:upgrade"), {"_id": "a", "v": 1},
                   upgrade).body == {"_id": "a", "v": 1, "w": 3, "seen": 1}


def test_a_transform_that_raises_names_its_error() -> None:
    def broken(doc: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("name")

    outcome = migrate(spec(transform="t.py:broken"), {"_id": "a"}, broken)
    assert outcome.error == "t.py:broken raised KeyError: 'name'"


def test_a_transform_or_a_rename_from_a_written_path_is_not_idempotent() -> None:
    assert idempotent(spec(set={"v": 2}, unset=("x",), rename={"a": "b"}))
    assert not idempotent(spec(transform="t.py:f"))
    assert not idempotent(spec(rename={"a": "b"}, set={"a": 1}))  # a set, then moved again
    assert not idempotent(spec(copy={"a.b": "c"}, set={"a": {}}))  # a copy reads what set wrote


FIELDS = st.sampled_from(["a", "b", "c", "d", "e", "f", "a.b", "c.d", "g.h", "g.i"])
VALUES = st.one_of(st.integers(0, 3), st.text(max_size=2), st.none(),
                   st.dictionaries(st.sampled_from(["b", "d", "h"]), st.integers(0, 3),
                                   max_size=2))
SPECS = st.builds(
    lambda rename, copy_, default, set_, unset: spec(
        rename=rename, copy=copy_, set_default=default, set=set_, unset=tuple(unset)),
    st.dictionaries(FIELDS, FIELDS, max_size=2), st.dictionaries(FIELDS, FIELDS, max_size=2),
    st.dictionaries(FIELDS, VALUES, max_size=2), st.dictionaries(FIELDS, VALUES, max_size=2),
    st.lists(FIELDS, max_size=2))
DOCS = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "g"]), VALUES, max_size=4).map(
    lambda body: {"_id": "d", "_rev": "1-x", **body})


@settings(max_examples=2000, deadline=None)
@given(SPECS, DOCS)
def test_an_idempotent_migration_run_again_on_its_output_changes_nothing(
    migration: MigrationSpec, doc: dict[str, Any]
) -> None:
    once = migrate(migration, doc, None)
    if not idempotent(migration) or once.error is not None:
        return
    again = migrate(migration, once.body or doc, None)
    assert again.error is None and not again.changes, (migration, doc, once.body, again.body)
