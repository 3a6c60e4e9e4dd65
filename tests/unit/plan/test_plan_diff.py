"""The planner's rules, checked without a server: desired + live state in, steps out."""

from __future__ import annotations

from typing import Any

import pytest
from plan_builders import (
    database,
    design,
    desired,
    existing,
    index,
    live,
    live_doc,
    missing,
    recorded,
)

from couchsync.manifest.model import DesiredState
from couchsync.plan import Action, LiveDoc, LiveIndex, LiveState, Plan, StepKind, plan_changes


def summary(plan: Plan) -> list[tuple[str, str]]:
    return [(step.action.value, step.address) for step in plan.steps]


# -- databases


def test_missing_database_is_created_with_everything_in_it() -> None:
    spec = database(
        partitioned=False,
        q=8,
        security={"members": {"roles": ["staff"]}},
        indexes=[index("by-email", ["email"])],
        design_docs=[design("reports", {"views": {"all": {"map": "function (doc) {}"}}})],
        documents=[{"_id": "settings", "theme": "dark"}],
    )
    plan = plan_changes(desired(spec), live(missing()))
    assert summary(plan) == [
        ("+", "db:users"),
        ("+", "db:users/security"),
        ("+", "db:users/index:by-email"),
        ("+", "db:users/design:reports"),
        ("+", "db:users/doc:settings"),
    ]
    assert plan.steps[0].after == {"partitioned": False, "q": 8}
    assert plan.steps[1].after == {"members": {"roles": ["staff"]}}
    assert plan.steps[2].after == {"fields": [{"email": "asc"}], "type": "json"}
    assert plan.steps[3].id == "_design/reports"
    assert plan.steps[4].after == {"theme": "dark"}  # no _id: it is in the step's id
    assert plan.counts() == {"create": 5, "update": 0, "delete": 0}


def test_state_absent_deletes_an_existing_database_and_nothing_else() -> None:
    spec = database(state="absent", documents=[{"_id": "a"}], security={})
    plan = plan_changes(desired(spec), live(existing(doc_count=7)))
    assert summary(plan) == [("-", "db:users")]
    assert plan.steps[0].before == {"doc_count": 7}
    assert plan.steps[0].kind is StepKind.DATABASE


def test_state_absent_on_a_missing_database_is_no_change() -> None:
    assert plan_changes(desired(database(state="absent")), live(missing())).is_empty


def test_databases_not_in_the_manifests_are_never_touched() -> None:
    state = live(existing("users"), existing("other", documents={"x": live_doc({"_id": "x"})}))
    assert plan_changes(desired(database("users")), state).is_empty


def test_live_state_must_cover_every_planned_database() -> None:
    with pytest.raises(ValueError, match="does not cover database 'users'"):
        plan_changes(desired(database()), live())


# -- documents


def test_equal_documents_give_no_step_whatever_key_order_or_number_form() -> None:
    manifest = {"_id": "a", "n": 1, "nested": {"x": 1, "y": [1.0, 2]}}
    server = {"_id": "a", "nested": {"y": [1, 2.0], "x": 1.0}, "n": 1.0,
              "_revisions": {"start": 1, "ids": ["abc"]}, "_conflicts": []}
    plan = plan_changes(desired(database(documents=[manifest])),
                        live(existing(documents={"a": live_doc(server)})))
    assert plan.is_empty


def test_missing_document_is_created() -> None:
    plan = plan_changes(desired(database(documents=[{"_id": "a", "v": 1}])), live(existing()))
    [step] = plan.steps
    assert (step.action, step.kind, step.id, step.before, step.after, step.rev) == (
        Action.CREATE, StepKind.DOCUMENT, "a", None, {"v": 1}, None)
    assert step.reason == "not on the server"


def test_changed_document_is_updated_with_the_rev_seen_and_both_bodies() -> None:
    state = live(existing(documents={"a": live_doc({"_id": "a", "v": 1, "old": True}, "3-x")}))
    plan = plan_changes(desired(database(documents=[{"_id": "a", "v": 2}])), state)
    [step] = plan.steps
    assert step.action is Action.UPDATE
    assert step.rev == "3-x"
    assert step.before == {"v": 1, "old": True}  # no _id, no _rev
    assert step.after == {"v": 2}
    assert step.reason == "differs from the manifests"


@pytest.mark.parametrize(
    ("live_rev", "recorded_body", "reason"),
    [
        ("2-new", {"_id": "a", "v": 2}, "edited on the server since couchsync wrote it"),
        ("1-abc", {"_id": "a", "v": 1}, "changed in the manifests"),
        ("2-new", {"_id": "a", "v": 1}, "changed in the manifests and edited on the server"),
    ],
)
def test_update_reason_says_which_side_moved(
    live_rev: str, recorded_body: dict[str, int], reason: str
) -> None:
    state = live(existing(
        documents={"a": live_doc({"_id": "a", "v": 3}, live_rev)},
        managed={"a": recorded(recorded_body)},
    ))
    [step] = plan_changes(desired(database(documents=[{"_id": "a", "v": 2}])), state).steps
    assert step.reason == reason


def test_fast_no_op_needs_no_body_when_rev_and_hash_match_the_record() -> None:
    body = {"_id": "a", "v": 1}
    state = live(existing(documents={"a": LiveDoc("1-abc")}, managed={"a": recorded(body)}))
    assert plan_changes(desired(database(documents=[body])), state).is_empty


def test_a_body_is_required_when_the_record_does_not_prove_the_document_unchanged() -> None:
    state = live(existing(documents={"a": LiveDoc("2-other")},
                          managed={"a": recorded({"_id": "a", "v": 1})}))
    with pytest.raises(ValueError, match="lacks the body of 'a'"):
        plan_changes(desired(database(documents=[{"_id": "a", "v": 1}])), state)


def test_deleted_in_manifest_deletes_an_existing_document() -> None:
    state = live(existing(documents={"old": LiveDoc("4-d")}))
    [step] = plan_changes(desired(database(documents=[{"_id": "old", "_deleted": True}])),
                          state).steps
    assert (step.action, step.address, step.rev, step.before, step.after) == (
        Action.DELETE, "db:users/doc:old", "4-d", None, None)
    assert step.reason == "marked _deleted: true in the manifests"


def test_deleted_in_manifest_and_absent_on_server_is_no_change() -> None:
    plan = plan_changes(desired(database(documents=[{"_id": "old", "_deleted": True}])),
                        live(existing()))
    assert plan.is_empty


# -- prune


def prune_state() -> dict[str, Any]:
    return {
        "documents": {
            "ours": LiveDoc("1-a"), "updated-by-us": LiveDoc("2-b"), "theirs": LiveDoc("1-c"),
            "kept": live_doc({"_id": "kept"}, "1-d"),
        },
        "managed": {
            "ours": recorded({"_id": "ours"}, "1-a"),
            "updated-by-us": recorded({"_id": "updated-by-us"}, "2-b", created=False),
            "kept": recorded({"_id": "kept"}, "1-d"),
            "gone-already": recorded({"_id": "gone-already"}, "1-e"),
        },
    }


def test_prune_deletes_only_documents_couchsync_created_that_are_no_longer_listed() -> None:
    spec = database(prune=True, documents=[{"_id": "kept"}])
    plan = plan_changes(desired(spec), live(existing(**prune_state())))
    assert summary(plan) == [("-", "db:users/doc:ours")]
    assert plan.steps[0].rev == "1-a"
    assert "prune" in plan.steps[0].reason


def test_without_prune_unlisted_documents_stay() -> None:
    spec = database(documents=[{"_id": "kept"}])
    assert plan_changes(desired(spec), live(existing(**prune_state()))).is_empty


# -- security


def test_security_is_compared_canonically_and_updated_when_different() -> None:
    security = {"admins": {"names": [], "roles": ["admins"]}, "members": {"roles": ["staff"]}}
    same = {"members": {"roles": ["staff"]}, "admins": {"roles": ["admins"], "names": []}}
    assert plan_changes(desired(database(security=security)),
                        live(existing(security=same))).is_empty
    [step] = plan_changes(desired(database(security=security)),
                          live(existing(security={}))).steps
    assert (step.action, step.address, step.before, step.after) == (
        Action.UPDATE, "db:users/security", {}, security)


def test_security_left_alone_when_the_manifest_omits_it() -> None:
    assert plan_changes(desired(database()), live(existing(security=None))).is_empty


# -- indexes


def live_index(name: str = "by-email", ddoc: str = "idx", fields: tuple[str, ...] = ("email",),
               selector: dict[str, Any] | None = None) -> LiveIndex:
    return LiveIndex(name, ddoc, [{f: "asc"} for f in fields], selector)


def test_index_with_the_same_definition_is_no_change_even_in_normalised_form() -> None:
    spec = database(indexes=[index("by-email", ["email"], ddoc="idx",
                                   partial_filter_selector={"type": "user", "age": {"$gt": 1}})])
    server_form = {"$and": [{"age": {"$gt": 1}}, {"type": {"$eq": "user"}}]}
    assert plan_changes(desired(spec), live(existing(indexes=[
        live_index(selector=server_form)]))).is_empty


def test_index_without_declared_ddoc_matches_any_ddoc() -> None:
    spec = database(indexes=[index("by-email", ["email"])])
    assert plan_changes(desired(spec), live(existing(indexes=[live_index(ddoc="auto")]))).is_empty


def test_changed_index_definition_is_replaced() -> None:
    spec = database(indexes=[index("by-email", ["email", "created"], ddoc="idx")])
    plan = plan_changes(desired(spec), live(existing(indexes=[live_index()])))
    [step] = plan.steps
    assert (step.action, step.address) == (Action.REPLACE, "db:users/index:by-email")
    assert step.before == {"ddoc": "idx", "fields": [{"email": "asc"}], "type": "json"}
    assert step.after == {"ddoc": "idx", "fields": [{"email": "asc"}, {"created": "asc"}],
                          "type": "json"}
    assert step.reason == "fields changed"
    assert plan.counts() == {"create": 1, "update": 0, "delete": 1}


def test_index_declared_under_another_ddoc_counts_as_changed() -> None:
    spec = database(indexes=[index("by-email", ["email"], ddoc="new")])
    [step] = plan_changes(desired(spec), live(existing(indexes=[live_index(ddoc="old")]))).steps
    assert step.action is Action.REPLACE
    assert step.before["ddoc"] == "old"
    assert step.reason == "design doc changed"


def test_replace_shows_an_equivalent_filter_in_the_manifest_wording() -> None:
    spec = database(indexes=[index("by-email", ["name"], ddoc="idx",
                                   partial_filter_selector={"type": "user"})])
    state = live(existing(indexes=[live_index(selector={"type": {"$eq": "user"}})]))
    [step] = plan_changes(desired(spec), state).steps
    assert step.before["partial_filter_selector"] == {"type": "user"}
    assert step.reason == "fields changed"


def test_undeclared_indexes_are_left_alone() -> None:
    assert plan_changes(desired(database()), live(existing(indexes=[live_index()]))).is_empty


# -- design docs


VIEWS = {"views": {"all": {"map": "function (doc) { emit(doc._id); }"}}}


def test_design_doc_equal_apart_from_id_and_rev_is_no_change() -> None:
    server = {"_id": "_design/reports", "_rev": "2-x", **VIEWS}
    state = live(existing(design_docs={"reports": LiveDoc("2-x", server)}))
    assert plan_changes(desired(database(design_docs=[design("reports", VIEWS)])),
                        state).is_empty


def test_design_doc_view_change_states_the_rebuild_cost() -> None:
    server = {"_id": "_design/reports", "_rev": "2-x", "views": {"all": {"map": "old"}}}
    state = live(existing(design_docs={"reports": LiveDoc("2-x", server)}, doc_count=60_000,
                          index_sizes={"_design/reports": 2_000_000}))
    [step] = plan_changes(desired(database(design_docs=[design("reports", VIEWS)])),
                          state).steps
    assert (step.action, step.address, step.rev) == (
        Action.UPDATE, "db:users/design:reports", "2-x")
    assert step.reason == "differs from the manifests"
    assert step.rebuild == {"documents": 60_000, "index_bytes": 2_000_000, "staged": False}


@pytest.mark.parametrize("field", ["language", "options"])
def test_a_language_or_options_change_rebuilds_too(field: str) -> None:
    server = {"_id": "_design/reports", "_rev": "2-x", **VIEWS}
    state = live(existing(design_docs={"reports": LiveDoc("2-x", server)}))
    body = {**VIEWS, field: "erlang" if field == "language" else {"local_seq": True}}
    [step] = plan_changes(desired(database(design_docs=[design("reports", body)])),
                          state).steps
    assert step.rebuild is not None


@pytest.mark.parametrize("change", [
    {"validate_doc_update": "new"}, {"filters": {"f": "function () {}"}},
    {"updates": {"u": "function () {}"}}, {"couchapp": {"signatures": {}}},
])
def test_design_doc_change_outside_views_rebuilds_nothing_and_is_never_staged(
        change: dict[str, Any]) -> None:
    server = {"_id": "_design/reports", "_rev": "2-x", **VIEWS, "validate_doc_update": "old"}
    state = live(existing(design_docs={"reports": LiveDoc("2-x", server)}))
    body = {**VIEWS, "validate_doc_update": "old", **change}
    [step] = plan_changes(desired(database(design_docs=[design("reports", body)],
                                           design_deploy="staged")), state).steps
    assert step.reason == "differs from the manifests"
    assert step.rebuild is None


def test_staged_design_deploy_stages_new_and_changed_views() -> None:
    server = {"_id": "_design/reports", "_rev": "2-x", "views": {"all": {"map": "old"}}}
    state = live(existing(design_docs={"reports": LiveDoc("2-x", server)}, doc_count=5))
    spec = database(design_docs=[design("reports", VIEWS), design("fresh", VIEWS)],
                    design_deploy="staged")
    steps = plan_changes(desired(spec), state).steps
    assert [(s.action, s.address, s.rebuild) for s in steps] == [
        (Action.UPDATE, "db:users/design:reports",
         {"documents": 5, "index_bytes": None, "staged": True}),
        (Action.CREATE, "db:users/design:fresh",
         {"documents": 5, "index_bytes": None, "staged": True}),
    ]


def test_a_views_change_with_a_validate_doc_update_change_is_written_in_place() -> None:
    server = {"_id": "_design/app", "_rev": "2-x", "views": {"all": {"map": "old"}},
              "validate_doc_update": "old"}
    state = live(existing(design_docs={"app": LiveDoc("2-x", server)}))
    body = {**VIEWS, "validate_doc_update": "new"}
    [step] = plan_changes(desired(database(design_docs=[design("app", body)],
                                           design_deploy="staged")), state).steps
    assert step.rebuild is not None and step.rebuild["staged"] is False
    assert "not staged: its validate_doc_update changes" in step.reason


def test_a_search_index_change_says_it_rebuilds_in_place() -> None:
    server = {"_id": "_design/s", "_rev": "2-x", "indexes": {"i": {"index": "old"}}}
    state = live(existing(design_docs={"s": LiveDoc("2-x", server)}))
    body = {"indexes": {"i": {"index": "new"}}}
    [step] = plan_changes(desired(database(design_docs=[design("s", body)],
                                           design_deploy="staged")), state).steps
    assert step.rebuild is None
    assert "search indexes rebuild in place" in step.reason


def test_staged_index_changes_name_the_replaced_index_size() -> None:
    spec = database(indexes=[index("by-email", ["email", "name"]), index("new", ["x"])],
                    design_deploy="staged")
    state = live(existing(indexes=[live_index()], doc_count=9,
                          index_sizes={"_design/idx": 4096}))
    steps = plan_changes(desired(spec), state).steps
    assert [(s.action, s.address, s.rebuild) for s in steps] == [
        (Action.REPLACE, "db:users/index:by-email",
         {"documents": 9, "index_bytes": 4096, "staged": True}),
        (Action.CREATE, "db:users/index:new",
         {"documents": 9, "index_bytes": None, "staged": True}),
    ]


STAGED_APP = "_design/couchsync-staged.app"


def test_a_staging_copy_left_behind_is_deleted_when_no_staged_step_goes_on_with_it() -> None:
    left = {STAGED_APP: LiveDoc("1-s", {"_id": STAGED_APP, **VIEWS}),
            "_design/couchsync-staged-index.gone": LiveDoc("1-t", {})}
    server = {"_id": "_design/app", "_rev": "2-x", **VIEWS}
    state = live(existing(design_docs={"app": LiveDoc("2-x", server)}, staging=left))
    plan = plan_changes(desired(database(design_docs=[design("app", VIEWS)])), state)
    assert [(s.action, s.address, s.rev) for s in plan.steps] == [
        (Action.DELETE, "db:users/design:couchsync-staged-index.gone", "1-t"),
        (Action.DELETE, "db:users/design:couchsync-staged.app", "1-s"),
    ]
    assert all(s.reason == "staging copy left by an interrupted staged apply"
               for s in plan.steps)


def test_a_staging_copy_a_staged_step_goes_on_with_is_kept() -> None:
    left = {STAGED_APP: LiveDoc("1-s", {"_id": STAGED_APP, **VIEWS})}
    server = {"_id": "_design/app", "_rev": "2-x", "views": {"all": {"map": "old"}}}
    state = live(existing(design_docs={"app": LiveDoc("2-x", server)}, staging=left))
    plan = plan_changes(desired(database(design_docs=[design("app", VIEWS)],
                                         design_deploy="staged")), state)
    assert [(s.action, s.address) for s in plan.steps] == [
        (Action.UPDATE, "db:users/design:app")]
    assert plan.steps[0].reason == ("differs from the manifests; goes on with the staged "
                                    "build an earlier apply left")


def test_design_doc_marked_deleted_is_deleted() -> None:
    state = live(existing(design_docs={"old": LiveDoc("1-x", {"_id": "_design/old"})}))
    plan = plan_changes(desired(database(design_docs=[design("old", {"_deleted": True})])),
                        state)
    assert summary(plan) == [("-", "db:users/design:old")]


# -- only


def two_databases() -> tuple[DesiredState, LiveState]:
    spec = desired(
        database("users", security={"members": {}}, documents=[{"_id": "a"}, {"_id": "b"}],
                 design_docs=[design("reports", VIEWS)]),
        database("logs", documents=[{"_id": "l"}]),
    )
    return spec, live(missing("users"), missing("logs"))


def test_only_a_database_limits_the_plan_to_it() -> None:
    spec, state = two_databases()
    plan = plan_changes(spec, state, only=["logs"])
    assert summary(plan) == [("+", "db:logs"), ("+", "db:logs/doc:l")]


def test_only_a_document_plans_that_document_and_the_database_it_needs() -> None:
    spec, state = two_databases()
    plan = plan_changes(spec, state, only=["users/b", "users/_design/reports"])
    assert summary(plan) == [
        ("+", "db:users"), ("+", "db:users/design:reports"), ("+", "db:users/doc:b")]


def test_only_with_an_unknown_database_is_an_error() -> None:
    spec, state = two_databases()
    with pytest.raises(ValueError, match="'nope/a' names no database"):
        plan_changes(spec, state, only=["nope/a"])


def test_only_matches_database_names_that_contain_slashes() -> None:
    spec = desired(database("a"), database("a/b", documents=[{"_id": "c"}]))
    plan = plan_changes(spec, live(existing("a"), existing("a/b")), only=["a/b/c"])
    assert summary(plan) == [("+", "db:a/b/doc:c")]
