"""An apply's run writes what its plan's preview computed, reading no document again
(docs/plan-and-apply.md, "How a run works"): the documents written between the preview
and the run, and during it, are still migrated once, as they are then."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from couchsync import ApplyHooks, apply_manifests
from couchsync.client import Client
from couchsync.operation import plan_manifests
from couchsync.plan import Plan

BUMP = """\
def bump(doc):
    doc["count"] += 1
    doc["seen"] = doc.get("v")
    return doc
"""
#: A declarative migration (no journal) and a transform that is not idempotent, keeping
#: the originals (a journal, written ahead of each batch).
MIGRATIONS = {
    "declarative": {"id": "m", "selector": {"type": "user"}, "rename": {"v": "w"},
                    "set": {"schema": 2}},
    "transform": {"id": "m", "selector": {"type": "user"}, "transform": "bump.py:bump",
                  "keep_originals": True},
}


class _Transport(httpx.HTTPTransport):
    """The real transport, noting each request's method and path, and calling ``after``
    (once) when the first request ``when`` picks has been answered."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
        self.when: Callable[[httpx.Request], bool] = lambda request: False
        self.after: Callable[[], None] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        response = super().handle_request(request)
        if self.after is not None and self.when(request):
            after, self.after = self.after, None
            response.read()
            after()
        return response

    def finds(self) -> int:
        return sum(method == "POST" and path.endswith("/_find")
                   for method, path in self.requests)


@pytest.fixture
def watched(couch_url: str) -> Iterator[tuple[Client, _Transport]]:
    transport = _Transport()
    with Client(couch_url, transport=transport) as opened:
        yield opened, transport


def seeded(client: Client, db_name: str, tmp_path: Path, kind: str, docs: int = 300) -> str:
    """``docs`` documents, every other one a user; the manifest of ``kind``'s migration."""
    client.create(db_name)
    db = client.database(db_name)
    # On every copy of a cluster's shards: the test reads them back at once (_all_docs
    # reads one copy of each shard).
    copies = int((db.info().get("cluster") or {}).get("n", 1))
    answers = db.bulk_docs([
        {"_id": f"d{i:03}", "type": "user" if i % 2 == 0 else "org", "count": i, "v": i}
        for i in range(docs)], w=copies)
    assert not answers.errors()
    (tmp_path / "bump.py").write_text(BUMP)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {
        "migrations": [MIGRATIONS[kind]]}}}))
    return str(path)


def migrated(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as the migration leaves it (``_rev`` aside)."""
    if kind == "declarative":
        return {**{k: v for k, v in doc.items() if k != "v"}, "w": doc["v"], "schema": 2}
    return {**doc, "count": doc["count"] + 1, "seen": doc.get("v")}


def bodies(client: Client, db_name: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: {k: v for k, v in row["doc"].items() if k != "_rev"}
            for row in client.database(db_name).all_docs(include_docs=True)
            if not row["id"].startswith("_")}


@pytest.mark.parametrize("kind", MIGRATIONS)
def test_the_run_writes_the_preview_s_outcomes_without_reading_them_again(
    client: Client, db_name: str, tmp_path: Path, watched: tuple[Client, _Transport],
    kind: str
) -> None:
    path = seeded(client, db_name, tmp_path, kind)
    before = bodies(client, db_name)
    recording, transport = watched
    plan_manifests(recording, [path])
    planned = transport.finds()  # what the preview reads: one page here
    assert planned >= 1
    transport.requests.clear()

    done = apply_manifests(recording, [path], batch_size=40)

    assert transport.finds() == planned  # the plan's preview, and no second scan
    assert done.result is not None and done.result.migrated == [
        f"db:{db_name}/migration:m: 150 of 150 matched documents changed"]
    assert sum(path.endswith("/_bulk_docs") for _, path in transport.requests) >= 150 // 40
    assert bodies(client, db_name) == {
        doc_id: migrated(kind, doc) if doc["type"] == "user" else doc
        for doc_id, doc in before.items()}
    assert plan_manifests(client, [path])[1].is_empty


@pytest.mark.parametrize("kind", MIGRATIONS)
def test_the_run_reads_neither_the_record_nor_the_journal_its_plan_read(
    client: Client, db_name: str, tmp_path: Path, watched: tuple[Client, _Transport],
    kind: str
) -> None:
    """The plan read both after the apply locks were read, and no other apply ran since
    (one that did makes the apply plan again): a fleet database is spared two requests."""
    path = seeded(client, db_name, tmp_path, kind)
    recording, transport = watched

    done = apply_manifests(recording, [path])

    assert done.result is not None and len(done.result.migrated) == 1
    gets = [path for method, path in transport.requests if method == "GET"]
    assert not [path for path in gets if path.endswith("/_design/couchsync-migrations")]
    # The plan's look for an interrupted run's journal: batch 0, not there.
    assert [path for path in gets if "/_local/couchsync-migration." in path] == [
        f"/{db_name}/_local/couchsync-migration.m.0.0"]
    assert plan_manifests(client, [path])[1].is_empty


class Meanwhile(ApplyHooks):
    """The application's writes once the plan is made, before the run: ``locking``."""

    def __init__(self, write: Callable[[], None]) -> None:
        self.write = write

    def locking(self, plan: Plan, locks: Any) -> None:
        self.write()


def application(client: Client, db_name: str) -> Callable[[], None]:
    """Edit a matched document (the migration reads the field it edits), move one out of
    the selector and one into it, create a matching one."""
    db = client.database(db_name)

    def write() -> None:
        for doc_id, change in (("d010", {"v": "edited"}), ("d020", {"type": "gone"}),
                               ("d011", {"type": "user"})):
            db.update(doc_id, {**db.get(doc_id), **change})
        db.update("n001", {"type": "user", "count": 1000, "v": "new"})

    return write


@pytest.mark.parametrize("kind", MIGRATIONS)
def test_documents_written_between_the_preview_and_the_run_are_migrated_as_they_are_then(
    client: Client, db_name: str, tmp_path: Path, kind: str
) -> None:
    path = seeded(client, db_name, tmp_path, kind)

    done = apply_manifests(client, [path], hooks=Meanwhile(application(client, db_name)),
                           batch_size=40)

    assert done.result is not None and done.result.migrated == [
        f"db:{db_name}/migration:m: 151 of 151 matched documents changed"]
    now = bodies(client, db_name)
    base = {"type": "user", "count": 10, "v": "edited"}
    assert now["d010"] == migrated(kind, {"_id": "d010", **base})  # the edit, migrated
    assert now["d020"] == {"_id": "d020", "type": "gone", "count": 20, "v": 20}  # left
    assert now["d011"] == migrated(kind, {"_id": "d011", "type": "user", "count": 11,
                                          "v": 11})
    assert now["n001"] == migrated(kind, {"_id": "n001", "type": "user", "count": 1000,
                                          "v": "new"})
    assert now["d012"] == migrated(kind, {"_id": "d012", "type": "user", "count": 12,
                                          "v": 12})
    assert plan_manifests(client, [path])[1].is_empty


@pytest.mark.parametrize("kind", MIGRATIONS)
def test_documents_the_application_writes_during_the_run_are_migrated_once(
    client: Client, db_name: str, tmp_path: Path, watched: tuple[Client, _Transport],
    kind: str
) -> None:
    path = seeded(client, db_name, tmp_path, kind)
    recording, transport = watched
    db = client.database(db_name)

    def write() -> None:  # after the first batch: edits of a written document, and of
        for doc_id in ("d000", "d200", "d202"):  # two still to write (conflicts: read again)
            db.update(doc_id, {**db.get(doc_id), "app": True})
        db.update("n002", {"type": "user", "count": 2000, "v": "new"})

    transport.when = lambda request: (request.url.path.endswith("/_bulk_docs")
                                      and b'"_local/' not in request.content)
    transport.after = write

    done = apply_manifests(recording, [path], batch_size=40)

    assert transport.after is None, "the application wrote during the run"
    assert done.result is not None and done.result.ok
    now = bodies(client, db_name)
    first = migrated(kind, {"_id": "d000", "type": "user", "count": 0, "v": 0})
    assert now["d000"] == {**first, "app": True}  # written by the run, then edited
    for doc_id in ("d200", "d202"):
        number = int(doc_id[1:])
        assert now[doc_id] == migrated(kind, {"_id": doc_id, "type": "user", "count": number,
                                              "v": number, "app": True})
    assert now["n002"] == migrated(kind, {"_id": "n002", "type": "user", "count": 2000,
                                          "v": "new"})
    assert plan_manifests(client, [path])[1].is_empty


def test_past_the_budget_nothing_is_kept_and_the_run_reads_the_documents_again(
    client: Client, db_name: str, tmp_path: Path, watched: tuple[Client, _Transport],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("couchsync.read._migrations.KEEP_BYTES", 20 * 1000)  # ~30 documents
    path = seeded(client, db_name, tmp_path, "transform")
    before = bodies(client, db_name)
    recording, transport = watched
    plan_manifests(recording, [path])
    planned = transport.finds()
    transport.requests.clear()

    done = apply_manifests(recording, [path], batch_size=40)

    assert transport.finds() == 2 * planned  # the preview's scan, and the run's
    assert done.result is not None and done.result.ok
    assert bodies(client, db_name) == {
        doc_id: migrated("transform", doc) if doc["type"] == "user" else doc
        for doc_id, doc in before.items()}
