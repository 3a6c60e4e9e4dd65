"""Data migrations on content real projects wrote (tests/data/real-world, see the READMEs):
cht-core's own migrations, ported, leave the documents cht-core's tests expect; in a
database holding cht-core's design docs, the documents its validate_doc_update refuses
are named and stay pending, the others migrate once and the views still answer; and the
plan's counts for real-world selectors equal a brute-force evaluation."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_migrations import bodies, migration_steps, seed

from couchsync import apply_manifests
from couchsync.apply import ApplyError
from couchsync.client import Client
from couchsync.operation import plan_manifests
from couchsync.plan import MIGRATIONS_DDOC

DATA = Path(__file__).resolve().parents[1] / "data" / "real-world"
MIGRATIONS = DATA / "migrations"
TRANSFORM = MIGRATIONS / "namespace_form_fields.py"
#: cht-core's migration tests: per spec, each test's seeded and expected documents.
CHT: dict[str, list[dict[str, Any]]] = json.loads(
    (MIGRATIONS / "cht-core-migration-tests.json").read_text())["specs"]
#: cht-core's migrations as couchsync declares them, by id (= cht-core's name).
PORTED: dict[str, dict[str, Any]] = {
    migration["id"]: migration
    for migration in yaml.safe_load((MIGRATIONS / "cht-core.yaml").read_text())}
#: The medic database's design docs, as cht-core's migration tests install them.
CHT_DESIGN_DOCS = [json.loads((DATA / "design-docs" / f"cht-core-medic-db-{name}.json")
                              .read_text()) for name in ("medic", "medic-client")]
PURGED = "forbidden: Purged documents should not be written to CouchDB!"


def declare(tmp_path: Path, db: str, migrations: list[dict[str, Any]]) -> str:
    """A manifest declaring ``migrations`` for ``db``, the transform beside it."""
    shutil.copy(TRANSFORM, tmp_path / TRANSFORM.name)
    path = tmp_path / "cht.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {
        "migrations": copy.deepcopy(migrations)}}}, sort_keys=False))
    return str(path)


def corpus_id(doc_id: str, spec: str, test: int) -> str:
    """Several of cht-core's tests seed one id (``abc``): in one database each gets the
    test it comes from after it (a prefix such as ``org.couchdb.user:`` stays)."""
    return f"{doc_id}~{spec}.{test}"


def corpus() -> dict[str, dict[str, Any]]:
    """Every document cht-core's migration tests seed, by id."""
    return {corpus_id(doc["_id"], spec, test): {**doc, "_id": corpus_id(doc["_id"], spec, test)}
            for spec, tests in CHT.items() for test, case in enumerate(tests)
            for doc in case["seeded"]}


def expected_by(spec: str) -> dict[str, dict[str, Any]]:
    """What the tests of ``spec`` expect once it ran, by id in the corpus."""
    return {corpus_id(doc["_id"], spec, test): {**doc, "_id": corpus_id(doc["_id"], spec, test)}
            for test, case in enumerate(CHT[spec]) for doc in case["expected"]}


def generations(client: Client, db: str) -> dict[str, int]:
    """How many times each document was written."""
    return {row["id"]: int(row["value"]["rev"].partition("-")[0])
            for row in client.database(db).all_docs() if not row["id"].startswith("_design/")}


def test_the_transform_moves_the_fields_the_settings_of_cht_cores_test_declare() -> None:
    spec = importlib.util.spec_from_file_location("namespace_form_fields", TRANSFORM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [case] = CHT["namespace-form-fields"]
    declared = {form: tuple(definition["fields"])
                for form, definition in case["settings"]["forms"].items()}
    assert declared == module.FORM_FIELDS


CASES = [(spec, test) for spec in PORTED for test in range(len(CHT[spec]))]


@pytest.mark.parametrize(("spec", "test"), CASES, ids=[f"{spec}.{test}" for spec, test in CASES])
def test_a_ported_cht_core_migration_leaves_what_cht_cores_own_test_expects(
    client: Client, db_name: str, tmp_path: Path, spec: str, test: int
) -> None:
    case = CHT[spec][test]
    seed(client, db_name, copy.deepcopy(case["seeded"]))
    path = declare(tmp_path, db_name, [PORTED[spec]])
    expected = {doc["_id"]: doc for doc in case["expected"]}

    _, plan, _ = plan_manifests(client, [path])
    preview = migration_steps(plan)[spec]
    assert (preview["changed"], preview["failed"]) == (
        sum(expected[doc["_id"]] != doc for doc in case["seeded"]), 0)
    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.ok
    assert bodies(client, db_name) == expected
    _, again, _ = plan_manifests(client, [path])
    assert again.is_empty


@pytest.mark.couchdb_only("PouchDB Server cannot compile a validate_doc_update that begins "
                          "with a comment, as cht-core's medic design doc's does: it refuses "
                          "every write with compilation_error")
def test_in_a_cht_core_database_what_its_vdu_refuses_is_named_and_the_rest_migrates_once(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seeded = corpus()
    # Two contacts remove-empty-parents matches, flagged as a client-side purge that leaked
    # to the server (the VDU's own comment): written before the design docs, whose VDU
    # refuses any write of them, an admin's included.
    refused = {corpus_id("purged", "remove-empty-parents", test): {
        **CHT["remove-empty-parents"][test]["seeded"][0],
        "_id": corpus_id("purged", "remove-empty-parents", test), "purged": True}
        for test in (1, 2)}
    seed(client, db_name, [*copy.deepcopy(list(seeded.values())), *refused.values()])
    seeded.update(refused)
    seed(client, db_name, copy.deepcopy(CHT_DESIGN_DOCS))  # as cht-core's tests do
    path = declare(tmp_path, db_name, list(PORTED.values()))
    address = f"db:{db_name}/migration:"

    _, plan, _ = plan_manifests(client, [path])
    previews = migration_steps(plan)
    with pytest.raises(ApplyError) as failed:
        apply_manifests(client, [path])

    # The failure names each refused document and the VDU's reason.
    lines = str(failed.value).splitlines()
    assert lines[1].startswith(f"  {address}remove-empty-parents: 2 documents not migrated "
                               "(the next apply tries again): ")
    assert all(f"{doc_id}: {PURGED}" in lines[1] for doc_id in refused)
    assert lines[2:] == [f"  {address}remove-user-language: not run: {address}"
                         "remove-empty-parents failed before it"]
    # Refused: untouched. The rest: what cht-core's tests expect, each written once.
    now, written = bodies(client, db_name), generations(client, db_name)
    assert {doc_id: now[doc_id] for doc_id in refused} == refused
    changed = {doc_id for doc_id, body in now.items() if body != seeded[doc_id]}
    assert {doc_id: written[doc_id] for doc_id in now} == {
        doc_id: 2 if doc_id in changed else 1 for doc_id in now}
    assert len(changed) == previews["namespace-form-fields"]["changed"] + previews[
        "remove-empty-parents"]["changed"] - len(refused)
    for spec in ("namespace-form-fields", "remove-empty-parents"):
        expected = expected_by(spec)
        assert {doc_id: now[doc_id] for doc_id in expected} == expected
    # The plan after it: the failed migration is left with the refused documents only.
    _, again, _ = plan_manifests(client, [path])
    pending = migration_steps(again)
    assert set(pending) == {"remove-empty-parents", "remove-user-language"}
    # Its unset runs with no journal (running it again changes nothing): the documents
    # it changed left its selector, so only the refused ones match now.
    assert (pending["remove-empty-parents"]["matched"],
            pending["remove-empty-parents"]["changed"]) == (len(refused), len(refused))
    assert "resumed" not in pending["remove-empty-parents"]
    # The record went through the VDU, and cht-core's views still answer.
    record = client.database(db_name).get(MIGRATIONS_DDOC)["migrations"]
    assert {name: entry["state"] for name, entry in record.items()} == {
        "namespace-form-fields": "done"}
    assert_views_answer(client, db_name)

    # The application drops the flag; the next apply migrates them, and what is left.
    for doc_id in refused:
        body = client.database(db_name).get(doc_id)
        client.database(db_name).update(doc_id, {k: v for k, v in body.items()
                                                 if k != "purged"})
    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.ok
    now, written = bodies(client, db_name), generations(client, db_name)
    assert all("parent" not in now[doc_id] and written[doc_id] == 3 for doc_id in refused)
    expected = expected_by("remove-user-language")
    assert {doc_id: now[doc_id] for doc_id in expected} == expected
    _, again, _ = plan_manifests(client, [path])
    assert again.is_empty
    record = client.database(db_name).get(MIGRATIONS_DDOC)["migrations"]
    assert {name: entry["state"] for name, entry in record.items()} == {
        name: "done" for name in PORTED}
    assert_views_answer(client, db_name)


def assert_views_answer(client: Client, db: str) -> None:
    """A view of each cht-core design doc answers with the rows its map gives the
    documents as they are now."""
    database = client.database(db)
    docs = bodies(client, db)
    reports = database.query_view("medic-client", "reports_by_form", reduce=False)["rows"]
    assert sorted(row["id"] for row in reports) == sorted(
        doc_id for doc_id, doc in docs.items() if doc.get("type") == "data_record"
        and doc.get("form"))
    codes = database.query_view("medic", "docs_by_shortcode")["rows"]
    assert sorted((row["key"], row["id"]) for row in codes) == sorted(
        (doc[key], doc_id) for doc_id, doc in docs.items()
        for key in ("place_id", "patient_id", "case_id") if doc.get(key))


# Selectors with the operators real projects use, and a brute-force evaluation of them.

MISSING = object()


def field(value: Any, path: str) -> Any:
    """The value at a dotted ``path``; ``MISSING`` where a part is absent or no object."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def satisfies(value: Any, condition: Any) -> bool:
    """Does ``value`` (a document, a field's value, an array's element) satisfy the
    Mango ``condition``: operators and fields, or a value it must equal."""
    if not (isinstance(condition, dict) and condition):
        return _operator(value, "$eq", condition)
    return all(_operator(value, key, argument) if key.startswith("$")
               else satisfies(field(value, key), argument)
               for key, argument in condition.items())


def _operator(value: Any, operator: str, argument: Any) -> bool:
    if operator == "$or":
        return any(satisfies(value, branch) for branch in argument)
    if operator == "$exists":
        return (value is not MISSING) is argument
    if value is MISSING:
        return False
    if operator == "$eq":
        return type(value) is type(argument) and value == argument
    if operator == "$in":
        assert not isinstance(value, list), "an array's $in: not evaluated here"
        return any(type(value) is type(item) and value == item for item in argument)
    if operator == "$regex":
        return isinstance(value, str) and re.search(argument, value) is not None
    if operator == "$gt":
        # CouchDB collates every type; these selectors compare ISO dates only.
        assert isinstance(value, str), f"$gt of {value!r}: not evaluated here"
        return value > argument
    if operator == "$elemMatch":
        return isinstance(value, list) and any(satisfies(item, argument) for item in value)
    raise AssertionError(f"the evaluator does not know {operator}")


def changes(doc: dict[str, Any], migration: dict[str, Any]) -> bool:
    """Whether ``migration``'s rename or unset changes ``doc``: its source exists."""
    sources = [*migration.get("rename", {}), *migration.get("unset", [])]
    return any(field(doc, source) is not MISSING for source in sources)


#: PouchDB Server's _find (pouchdb-find 7.3.1) answers a $regex inside $or with 400
#: "userValue.every is not a function" (apache/pouchdb#8491).
REGEX_IN_OR = pytest.mark.couchdb_only("PouchDB Server's _find refuses a $regex inside $or "
                                       "(apache/pouchdb#8491)")
SELECTED = [
    pytest.param(PORTED["remove-empty-parents"], id="cht-remove-empty-parents"),
    pytest.param({
        "selector": {"type": "data_record", "$or": [
            {"scheduled_tasks": {"$elemMatch": {
                "due": {"$gt": "2026-12-01T00:00:00.000Z"},
                "messages": {"$elemMatch": {"uuid": {"$exists": False},
                                            "to": {"$regex": "^\\+"}}}}}},
            {"fields.patient_name": {"$regex": "^[A-Z]"}}]},
        "rename": {"fields.patient_name": "fields.name"}}, id="reports", marks=REGEX_IN_OR),
    pytest.param({
        "selector": {
            "type": {"$in": ["clinic", "health_center", "district_hospital", "person"]},
            "$or": [{"contact.phone": {"$regex": "^555 "}},
                    {"parent.parent._id": {"$regex": "-id$"}},
                    {"phone": {"$regex": "^555-"}}]},
        "unset": ["contact.phone"]}, id="contacts", marks=REGEX_IN_OR),
]


@pytest.mark.parametrize("migration", SELECTED)
def test_a_real_world_selector_previews_what_a_brute_force_evaluation_finds(
    client: Client, db_name: str, tmp_path: Path, migration: dict[str, Any]
) -> None:
    docs = corpus()
    seed(client, db_name, copy.deepcopy(list(docs.values())))
    migration = {**migration, "id": "selected"}
    path = declare(tmp_path, db_name, [migration])
    matched = {doc_id for doc_id, doc in docs.items()
               if satisfies(doc, migration["selector"])}
    changed = {doc_id for doc_id in matched if changes(docs[doc_id], migration)}
    assert 0 < len(changed) <= len(matched) < len(docs)  # the selector tells documents apart

    _, plan, _ = plan_manifests(client, [path])
    preview = migration_steps(plan)["selected"]
    assert (preview["matched"], preview["changed"], preview["failed"]) == (
        len(matched), len(changed), 0)
    apply_manifests(client, [path])
    now = bodies(client, db_name)
    assert {doc_id for doc_id, body in now.items() if body != docs[doc_id]} == changed
