"""Data migrations against the real server: every operation, the Python transform, the
preview against a brute-force count, the record that makes them run once, checksum
refusal, resuming, an application writing meanwhile, revert, and a fleet."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import run

from couchsync import ApplyHooks, apply_manifests
from couchsync.apply import ApplyError
from couchsync.client import Client
from couchsync.operation import Progress, plan_manifests
from couchsync.plan import MIGRATIONS_DDOC, MigrationChanged, Plan, StepKind, render_text
from couchsync.read import MigrationOptions, journal_id


def write(tmp_path: Path, databases: dict[str, Any], name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False))
    return str(path)


def seed(client: Client, name: str, docs: list[dict[str, Any]]) -> None:
    if not client.database(name).exists():
        client.create(name)
    answers = client.database(name).bulk_docs(docs)
    assert not answers.errors()


def bodies(client: Client, name: str) -> dict[str, dict[str, Any]]:
    """Every document but design docs, without ``_rev``."""
    return {row["id"]: {k: v for k, v in row["doc"].items() if k != "_rev"}
            for row in client.database(name).all_docs(include_docs=True)
            if not row["id"].startswith("_design/")}


def migration_steps(plan: Plan) -> dict[str, dict[str, Any]]:
    return {step.id or "": step.after for step in plan.steps
            if step.kind is StepKind.MIGRATION}


PEOPLE = [
    {"_id": "u1", "type": "user", "name": "Ada Lovelace", "email": "ada@example.org",
     "legacy": True},
    {"_id": "u2", "type": "user", "name": "Alan Turing", "contact": {"phone": "1"},
     "email": "alan@example.org"},
    {"_id": "u3", "type": "user", "name": "Grace Hopper", "schema": 1},
    {"_id": "s1", "type": "session", "expires": "2025-01-01"},
    {"_id": "s2", "type": "session", "expires": "2027-01-01"},
    {"_id": "o1", "type": "org", "name": "ACME", "email": "x@acme.test"},
]


def test_declarative_operations_change_the_matching_documents_once(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [dict(doc) for doc in PEOPLE])
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "2026-12-contact", "selector": {"type": "user"},
         "rename": {"email": "contact.email"}, "copy": {"name": "display_name"},
         "set_default": {"schema": 1}, "set": {"version": 2}, "unset": ["legacy"]},
        {"id": "2026-12-drop-expired",
         "selector": {"type": "session", "expires": {"$lt": "2026-01-01"}}, "delete": True},
    ]}})

    _, plan, _ = plan_manifests(client, [path])
    previews = migration_steps(plan)
    assert {key: previews["2026-12-contact"][key] for key in ("matched", "changed")} == {
        "matched": 3, "changed": 3}
    assert previews["2026-12-drop-expired"]["deleted"] == 1
    # No index serves these selectors: the plan names the fields to index.
    assert previews["2026-12-drop-expired"]["unindexed"] == ["type", "expires"]
    assert "add an index on [type, expires]" in render_text(plan.to_dict())

    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.ok
    now = bodies(client, db_name)
    assert now["u1"] == {"_id": "u1", "type": "user", "name": "Ada Lovelace",
                         "display_name": "Ada Lovelace", "contact": {"email": "ada@example.org"},
                         "schema": 1, "version": 2}
    assert now["u2"]["contact"] == {"phone": "1", "email": "alan@example.org"}
    assert now["u3"]["schema"] == 1 and now["u3"]["version"] == 2
    assert now["o1"] == {k: v for k, v in PEOPLE[5].items()}  # not matched: untouched
    assert "s1" not in now and "s2" in now
    # Recorded: the re-plan is empty, and a second apply changes nothing.
    _, again, _ = plan_manifests(client, [path])
    assert again.is_empty, render_text(again.to_dict())
    record = client.database(db_name).get(MIGRATIONS_DDOC)["migrations"]
    assert {name: entry["state"] for name, entry in record.items()} == {
        "2026-12-contact": "done", "2026-12-drop-expired": "done"}
    # The journal went with the record: its work is in the documents.
    for name in record:
        assert journal_id(name, 0, 0) not in client.database(db_name)


def test_the_preview_counts_what_a_brute_force_count_finds_and_apply_does(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    docs = [{"_id": f"d{i:03}", "kind": ["a", "b", "c"][i % 3], "n": i,
             **({"old": i} if i % 5 == 0 else {})} for i in range(240)]
    seed(client, db_name, [dict(doc) for doc in docs])
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "m", "selector": {"kind": {"$in": ["a", "b"]}}, "rename": {"old": "new"}}]}})
    out = tmp_path / "out"

    _, plan, _ = plan_manifests(client, [path], migrations=MigrationOptions(2, out))

    matched = [doc for doc in docs if doc["kind"] in ("a", "b")]
    changed = [doc for doc in matched if "old" in doc]
    preview = migration_steps(plan)["m"]
    assert (preview["matched"], preview["changed"], preview["failed"]) == (
        len(matched), len(changed), 0)
    assert len(preview["samples"]) == 2
    lines = [json.loads(line) for line in
             (out / db_name / "m.jsonl").read_text().splitlines()]
    assert sorted(line["_id"] for line in lines) == sorted(doc["_id"] for doc in changed)
    assert all("new" in line and "old" not in line for line in lines)
    text = render_text(plan.to_dict())
    assert f"{len(matched)} documents matched, {len(changed)} to change" in text

    class Counting(ApplyHooks):
        def __init__(self) -> None:
            self.told: list[tuple[int, int, int]] = []

        def progress(self, verb: str) -> Any:
            hooks = self

            class Told(Progress):
                def documents(self, done: int, total: int, failed: int) -> None:
                    hooks.told.append((done, total, failed))

            return contextlib.nullcontext(Told())

    hooks = Counting()
    done = apply_manifests(client, [path], hooks=hooks, batch_size=50)

    assert hooks.told[-1] == (len(matched), len(matched), 0)  # one bar: documents read
    assert done.result is not None
    assert done.result.migrated == [
        f"db:{db_name}/migration:m: {len(changed)} of {len(matched)} matched documents changed"]
    now = bodies(client, db_name)
    assert {doc_id for doc_id, body in now.items() if "new" in body} == {
        doc["_id"] for doc in changed}
    assert all("old" not in body or body["kind"] == "c" for body in now.values())


def test_a_python_transform_runs_once_per_document(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": f"c{i}", "count": i} for i in range(30)])
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "bump.py").write_text(
        "def bump(doc):\n"
        "    if doc['count'] % 10 == 9:\n"
        "        return None  # left as it is\n"
        "    doc['count'] += 1\n"
        "    return doc\n")
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "bump", "transform": "migrations/bump.py:bump"}]}})

    apply_manifests(client, [path])
    apply_manifests(client, [path])

    assert {doc_id: body["count"] for doc_id, body in bodies(client, db_name).items()} == {
        f"c{i}": i if i % 10 == 9 else i + 1 for i in range(30)}


def test_an_edited_migration_that_ran_is_refused_unless_it_says_rerun_on_change(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": "a", "v": 1}])
    apply_manifests(client, [write(tmp_path, {db_name: {"migrations": [
        {"id": "m", "set": {"v": 2}}]}})])

    edited = write(tmp_path, {db_name: {"migrations": [{"id": "m", "set": {"v": 3}}]}})
    with pytest.raises(MigrationChanged) as refused:
        plan_manifests(client, [edited])
    assert f"migration m ({edited}:" in str(refused.value)
    assert f"was applied in {db_name} with another definition" in str(refused.value)

    rerun = write(tmp_path, {db_name: {"migrations": [
        {"id": "m", "set": {"v": 3}, "rerun_on_change": True}]}})
    apply_manifests(client, [rerun])
    assert client.database(db_name).get("a")["v"] == 3
    _, plan, _ = plan_manifests(client, [rerun])
    assert plan.is_empty


def test_a_document_that_cannot_be_migrated_is_named_and_the_run_not_recorded_done(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": "a", "v": 1}])
    # A document the set cannot reach into: counted as failed, named, not recorded done.
    seed(client, db_name, [{"_id": "b", "v": 1, "contact": "a string"}])
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "m", "set": {"contact.email": "x"}}]}})

    _, plan, _ = plan_manifests(client, [path])

    preview = migration_steps(plan)["m"]
    assert (preview["matched"], preview["changed"], preview["failed"]) == (2, 1, 1)
    assert preview["errors"] == [
        "b: contact is a string, not an object, so contact.email cannot be set"]
    with pytest.raises(ApplyError) as failed:
        apply_manifests(client, [path])
    assert (f"db:{db_name}/migration:m: 1 document not migrated (the next apply tries "
            "again): b: contact is a string, not an object, so contact.email cannot be set"
            ) in str(failed.value)
    assert MIGRATIONS_DDOC not in client.database(db_name)  # not recorded: it runs again
    _, plan, _ = plan_manifests(client, [path])
    preview = migration_steps(plan)["m"]
    # A set runs again as it ran: no journal; a, migrated, is matched and left as it is.
    assert (preview["matched"], preview["changed"], preview["failed"]) == (2, 0, 1)
    assert "resumed" not in preview
    # Mended by hand, the next apply migrates what is left, once.
    body = client.database(db_name).get("b")
    client.database(db_name).update("b", {**body, "contact": {}})
    apply_manifests(client, [path])
    now = bodies(client, db_name)
    assert now["a"]["contact"] == {"email": "x"} and now["b"]["contact"] == {"email": "x"}


def test_a_fleet_pattern_migrates_every_matching_database_and_re_plans_empty(
    client: Client, db_name_factory: Callable[[], str], tmp_path: Path
) -> None:
    prefix = db_name_factory()
    names = [f"{prefix}-user{i}" for i in range(4)]
    for name in names:
        seed(client, name, [{"_id": "profile", "email": f"{name}@x.test"}])
    path = write(tmp_path, {f"{prefix}-user*": {"migrations": [
        {"id": "contact", "rename": {"email": "contact.email"}}]}})

    done = apply_manifests(client, [path], parallel=2)

    assert done.result is not None and len(done.result.migrated) == len(names)
    for name in names:
        assert client.database(name).get("profile")["contact"] == {"email": f"{name}@x.test"}
    _, plan, _ = plan_manifests(client, [path])
    assert plan.is_empty
    for name in names:
        client.delete(name)


def test_revert_restores_what_the_migration_changed_and_names_what_was_edited_since(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": f"d{i}", "v": i} for i in range(5)])
    forward = {"id": "double", "set": {"v": 0, "w": 1}, "keep_originals": True}
    apply_manifests(client, [write(tmp_path, {db_name: {"migrations": [forward]}})])
    edited = client.database(db_name).get("d0")
    client.database(db_name).update("d0", {**edited, "w": 99})  # the application's edit

    path = write(tmp_path, {db_name: {"migrations": [
        forward, {"id": "undo-double", "revert": "double"}]}})
    _, plan, _ = plan_manifests(client, [path])
    preview = migration_steps(plan)["undo-double"]
    assert (preview["changed"], preview["failed"]) == (4, 1)
    assert preview["errors"] == ["d0: changed since the migration, left as it is"]
    assert preview["samples"][0] == {"id": "d1", "before": {"v": 0, "w": 1},
                                     "after": {"v": 1}}  # as it is now, as it will be

    apply_manifests(client, [path])

    now = bodies(client, db_name)
    assert now["d0"] == {"_id": "d0", "v": 0, "w": 99}
    assert {doc_id: body for doc_id, body in now.items() if doc_id != "d0"} == {
        f"d{i}": {"_id": f"d{i}", "v": i} for i in range(1, 5)}
    _, plan, _ = plan_manifests(client, [path])
    assert plan.is_empty


@pytest.fixture
def scanning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs read the documents again: the preview keeps no outcome for them (as past its
    budget). Tests whose application writes from inside the transform need it: a run
    writing the preview's outcomes calls the transform only on what changed since
    (test_migrations_kept.py covers that way)."""
    monkeypatch.setattr("couchsync.read._migrations.KEEP_BYTES", 0)


class ArmWhenLocking(ApplyHooks):
    """Arms ``armed`` once the plan's preview has run: the transform acts in the apply."""

    def __init__(self, armed: Path) -> None:
        self.armed = armed

    def locking(self, plan: Plan, locks: Any) -> None:
        self.armed.touch()


APPLICATION = """\
import os

import httpx

DB = os.environ["MIGRATION_TEST_DB_URL"]
ARMED = os.environ["MIGRATION_TEST_ARMED"]


def bump(doc):
    if doc["_id"] == "d150" and os.path.exists(ARMED):
        os.remove(ARMED)  # once, mid-run: the application writes meanwhile
        for i in range(20):  # new documents, behind the scan
            httpx.put(f"{DB}/a{i:03}", json={"count": 0, "new": True}).raise_for_status()
        for first in (0, 200):  # edits of migrated documents, and of ones to come
            for i in range(first, first + 10):
                body = httpx.get(f"{DB}/d{i:03}").json()
                httpx.put(f"{DB}/d{i:03}", json={**body, "app": True}).raise_for_status()
    doc["count"] += 1
    return doc
"""


@pytest.mark.usefixtures("scanning")
def test_what_the_application_writes_during_the_run_is_migrated_once(
    client: Client, db_name: str, tmp_path: Path, couch_url: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(client, db_name, [{"_id": f"d{i:03}", "count": i} for i in range(300)])
    (tmp_path / "app.py").write_text(APPLICATION)
    armed = tmp_path / "armed"
    monkeypatch.setenv("MIGRATION_TEST_DB_URL", f"{couch_url}/{db_name}")
    monkeypatch.setenv("MIGRATION_TEST_ARMED", str(armed))
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "bump", "selector": {"count": {"$gte": 0}}, "transform": "app.py:bump"}]}})

    done = apply_manifests(client, [path], hooks=ArmWhenLocking(armed), batch_size=100)

    assert not armed.exists(), "the application's writes happened during the run"
    assert done.result is not None and done.result.ok
    now = bodies(client, db_name)
    assert {doc_id: body["count"] for doc_id, body in now.items()} == {
        **{f"d{i:03}": i + 1 for i in range(300)}, **{f"a{i:03}": 1 for i in range(20)}}
    assert {doc_id for doc_id, body in now.items() if body.get("app")} == {
        f"d{i:03}" for i in (*range(10), *range(200, 210))}
    _, plan, _ = plan_manifests(client, [path])
    assert plan.is_empty


def test_revert_brings_back_the_documents_a_migration_deleted(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": f"s{i}", "type": "session", "n": i} for i in range(6)])
    forward = {"id": "drop", "selector": {"n": {"$lt": 3}}, "delete": True,
               "keep_originals": True}
    apply_manifests(client, [write(tmp_path, {db_name: {"migrations": [forward]}})])
    assert sorted(bodies(client, db_name)) == ["s3", "s4", "s5"]

    path = write(tmp_path, {db_name: {"migrations": [
        forward, {"id": "undo-drop", "revert": "drop"}]}})
    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.migrated == [
        f"db:{db_name}/migration:undo-drop: 3 documents restored"]
    assert bodies(client, db_name) == {
        f"s{i}": {"_id": f"s{i}", "type": "session", "n": i} for i in range(6)}


VALIDATE = """function (newDoc, oldDoc, userCtx) {
  if (newDoc.type === 'user' && newDoc.schema !== 2 && !newDoc._deleted) {
    throw({forbidden: 'a user needs schema 2'});
  }
}"""


def test_a_migration_beside_every_other_section_applies_once_and_re_plans_empty(
    client: Client, db_name: str, tmp_path: Path, is_couchdb: bool
) -> None:
    # Data written before the validate_doc_update below existed.
    seed(client, db_name, [{"_id": f"u{i}", "type": "user", "schema": 1, "mail": f"{i}@x"}
                           for i in range(20)])
    path = write(tmp_path, {db_name: {
        "security": {"members": {"roles": ["staff"]}},
        "prune": True,
        "indexes": {"by-type": {"fields": ["type"]}},
        "design_docs": {"rules": {"validate_doc_update": VALIDATE,
                                  "views": {"users": {"map": "function (doc) {"
                                                      " if (doc.type === 'user')"
                                                      " emit(doc._id, doc.schema); }"}}}},
        # A seed document the migration's selector matches too: the seed's content wins.
        "documents": [{"_id": "u0", "type": "user", "schema": 2, "mail": "seeded@x"},
                      {"_id": "settings", "theme": "dark"}],
        "migrations": [{"id": "schema-2", "selector": {"type": "user"},
                        "set": {"schema": 2}, "rename": {"mail": "contact.mail"}}],
    }})

    _, plan, _ = plan_manifests(client, [path])
    preview = migration_steps(plan)["schema-2"]
    assert (preview["matched"], preview["changed"]) == (20, 20)
    if is_couchdb:  # the index the manifest declares does not exist yet at plan time
        assert preview.get("unindexed") == ["type"]

    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.ok, done.result
    now = bodies(client, db_name)
    assert now["u0"] == {"_id": "u0", "type": "user", "schema": 2, "mail": "seeded@x"}
    assert all(now[f"u{i}"] == {"_id": f"u{i}", "type": "user", "schema": 2,
                                "contact": {"mail": f"{i}@x"}} for i in range(1, 20))
    rows = client.database(db_name).query_view("rules", "users")["rows"]
    assert {row["value"] for row in rows} == {2}
    _, again, _ = plan_manifests(client, [path])
    assert again.is_empty, render_text(again.to_dict())


def test_documents_the_migration_moves_out_of_its_selector_skip_nothing(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    # CouchDB resumes a _find bookmark after the page's last document, counted only while
    # it still matches: paging on after changing a page's documents would skip one.
    seed(client, db_name, [{"_id": f"e{i:05}", "stage": "a"} for i in range(2500)])
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "a-to-b", "selector": {"stage": "a"}, "set": {"stage": "b"}}]}})

    done = apply_manifests(client, [path])

    assert done.result is not None and done.result.migrated == [
        f"db:{db_name}/migration:a-to-b: 2,500 of 2,500 matched documents changed"]
    assert {body["stage"] for body in bodies(client, db_name).values()} == {"b"}


BOUNDARY = """\
import os

import httpx

DB = os.environ["MIGRATION_TEST_DB_URL"]
ARMED = os.environ["MIGRATION_TEST_ARMED"]


def bump(doc):
    if doc["_id"] == "e00500" and os.path.exists(ARMED):
        os.remove(ARMED)  # the application moves the next page's last document
        body = httpx.get(f"{DB}/e01999").json()
        httpx.put(f"{DB}/e01999", json={**body, "stage": "z"}).raise_for_status()
    if doc["_id"] == "e00003":
        raise ValueError("bad document")
    if doc["_id"] == "e00007":
        return None
    doc["stage"] = "b"
    return doc
"""


@pytest.mark.usefixtures("scanning")
def test_a_page_s_last_document_changed_by_the_application_skips_nothing(
    client: Client, db_name: str, tmp_path: Path, couch_url: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(client, db_name, [{"_id": f"e{i:05}", "stage": "a"} for i in range(2500)])
    (tmp_path / "boundary.py").write_text(BOUNDARY)
    armed = tmp_path / "armed"
    monkeypatch.setenv("MIGRATION_TEST_DB_URL", f"{couch_url}/{db_name}")
    monkeypatch.setenv("MIGRATION_TEST_ARMED", str(armed))
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "a-to-b", "selector": {"stage": "a"}, "transform": "boundary.py:bump"}]}})

    with pytest.raises(ApplyError) as failed:
        apply_manifests(client, [path], hooks=ArmWhenLocking(armed))

    assert not armed.exists(), "the application's write happened during the run"
    # Read twice (the second scan), counted and named once.
    assert (f"db:{db_name}/migration:a-to-b: 1 document not migrated (the next apply tries "
            "again): e00003: boundary.py:bump raised ValueError: bad document\n"
            ) in str(failed.value) + "\n"
    stages = {doc_id: body["stage"] for doc_id, body in bodies(client, db_name).items()}
    assert stages == {**{f"e{i:05}": "b" for i in range(2500)}, "e01999": "z",
                      "e00003": "a", "e00007": "a"}


def test_a_migration_edited_before_it_finished_changes_no_document_twice(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    seed(client, db_name, [{"_id": f"c{i}", "count": i} for i in range(10)])
    (tmp_path / "bump.py").write_text(
        "def bump(doc):\n"
        "    if doc['_id'] == 'c7':\n"
        "        raise ValueError('c7 is odd')\n"
        "    doc['count'] += 1\n"
        "    return doc\n")
    path = write(tmp_path, {db_name: {"migrations": [
        {"id": "bump", "transform": "bump.py:bump"}]}})
    with pytest.raises(ApplyError):
        apply_manifests(client, [path])
    # Mended: the run goes on with the documents it has not changed.
    (tmp_path / "bump.py").write_text(
        "def bump(doc):\n"
        "    doc['count'] += 1\n"
        "    return doc\n")

    _, plan, _ = plan_manifests(client, [path])
    assert {key: migration_steps(plan)["bump"][key] for key in ("resumed", "changed")} == {
        "resumed": 9, "changed": 1}
    apply_manifests(client, [path])

    assert {doc_id: body["count"] for doc_id, body in bodies(client, db_name).items()} == {
        f"c{i}": i + 1 for i in range(10)}


def test_the_command_refuses_an_edited_migration_in_one_clear_line(
    client: Client, db_name: str, tmp_path: Path, couch_url: str
) -> None:
    seed(client, db_name, [{"_id": "a", "v": 1}])
    path = write(tmp_path, {db_name: {"migrations": [{"id": "m", "set": {"v": 2}}]}})
    applied = run(couch_url, "apply", path, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert f"Migrated: db:{db_name}/migration:m: 1 of 1 matched documents changed" in (
        applied.stdout)
    write(tmp_path, {db_name: {"migrations": [{"id": "m", "set": {"v": 3}}]}})

    refused = run(couch_url, "plan", path)

    assert refused.returncode == 1
    assert refused.stderr.startswith(f"Error: migration m ({path}:5:7) was applied in ")
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1
