"""load_and_read: the server is read while the data files load, with the same result."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sync_helpers import addresses, counting_client, plan, sync

from couchsync.client import Client, TransportError
from couchsync.manifest import DesiredState, ManifestError, load_manifests
from couchsync.plan import _ownership as ownership
from couchsync.plan import plan_changes
from couchsync.read import _live, load_and_read, read_live_state

Write = Callable[[str, list[dict[str, Any]]], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write a manifest of database ``db`` seeding ``docs`` from a JSON Lines file."""

    def make(db: str, docs: list[dict[str, Any]]) -> Path:
        (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        path = tmp_path / "manifest.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "databases": {
            db: {"documents_from": ["docs.jsonl"],
                 "documents": [{"_id": "inline", "v": 1}]}}}))
        return path

    return make


def docs(count: int, version: int = 1) -> list[dict[str, Any]]:
    return [{"_id": f"doc{i:04}", "v": version} for i in range(count)]


def paths(requests: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    return [f"{method} {path.rsplit('/', 1)[-1]}{' early' if 'early' in params else ''}"
            for method, path, params in requests]


def test_the_data_files_load_while_the_scan_is_under_way(
    couch_url: str, client: Client, db_name: str, write: Write
) -> None:
    manifest = write(db_name, docs(300))
    sync(client, load_manifests([manifest]))
    copies = (client.database(db_name).info().get("cluster") or {}).get("n")
    client.database(db_name).bulk_docs([{"_id": "doc0007", "v": "edited",  # on every copy:
                                         "_rev": client.database(db_name).get("doc0007")["_rev"]}],
                                       w=copies)  # the scan reads one (docs/plan-and-apply.md)

    counting, engine = counting_client(couch_url)
    with counting:
        desired, live = load_and_read(counting, [manifest])
    # info and the record head before the documents are known; the scan sent early
    # and read after; then the one body the record cannot vouch for.
    assert paths(engine.document_reads) == [f"GET {db_name}", "GET couchsync",
                                      "GET _all_docs early", "POST _all_docs"]
    sequential = read_live_state(client, load_manifests([manifest]))
    assert live == sequential
    assert addresses(plan_changes(desired, live)) == [f"~ db:{db_name}/doc:doc0007"]


def test_a_scan_not_needed_after_all_is_dropped_and_the_few_ids_looked_up(
    couch_url: str, client: Client, db_name: str, write: Write
) -> None:
    sync(client, load_manifests([write(db_name, docs(300))]))
    fewer = write(db_name, docs(5, version=2))  # 6 of 301 listed now: looked up by key

    counting, engine = counting_client(couch_url)
    with counting:
        desired, live = load_and_read(counting, [fewer])
    assert paths(engine.document_reads) == [f"GET {db_name}", "GET couchsync",
                                      "GET _all_docs early", "POST _all_docs",
                                      "POST _all_docs"]  # revisions, then 5 bodies
    assert live == read_live_state(client, load_manifests([fewer]))
    assert len(plan_changes(desired, live).steps) == 5


def test_nothing_is_asked_ahead_for_a_new_database_or_a_selection(
    couch_url: str, client: Client, db_name: str, write: Write
) -> None:
    manifest = write(db_name, docs(20))
    counting, engine = counting_client(couch_url)
    with counting:
        desired, live = load_and_read(counting, [manifest])
    assert paths(engine.requests) == [f"GET {db_name}"]
    assert not live.databases[db_name].exists
    sync(client, desired)

    counting, engine = counting_client(couch_url)
    with counting:
        desired, live = load_and_read(counting, [manifest], only=[f"{db_name}/doc0003"])
    assert not [r for r in engine.requests if "early" in r[2]]
    assert plan_changes(desired, live, only=[f"{db_name}/doc0003"]).is_empty


def test_a_manifest_that_fails_to_load_after_the_prefetch_raises_as_ever(
    couch_url: str, client: Client, db_name: str, write: Write, tmp_path: Path
) -> None:
    manifest = write(db_name, docs(50))
    sync(client, load_manifests([manifest]))
    with (tmp_path / "docs.jsonl").open("a") as data:
        data.write('{"_id": "broken",\n')
    counting, engine = counting_client(couch_url)
    with counting, pytest.raises(ManifestError, match=r"docs\.jsonl:51:"):
        load_and_read(counting, [manifest])
    assert "GET _all_docs early" in paths(engine.requests)  # sent, then dropped unread


def test_on_declared_sees_every_database_before_any_document(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"_id": "x"}\n')
    (tmp_path / "a.yaml").write_text("version: 1\ndatabases:\n  one:\n    documents_from: "
                                     "[d.jsonl]\n")
    (tmp_path / "b.yaml").write_text("version: 1\ndatabases:\n  two:\n    documents: "
                                     "[{_id: y}]\n  one:\n    prune: true\n")
    seen: list[DesiredState] = []

    def declared(state: DesiredState) -> None:
        seen.append(state)
        assert list(state.databases) == ["one", "two"]
        assert state.databases["one"].prune and not state.databases["one"].documents
        assert not state.databases["two"].documents

    state = load_manifests([tmp_path], on_declared=declared)
    assert len(seen) == 1 and list(state.databases["one"].documents) == ["x"]
    (tmp_path / "b.yaml").write_text("version: 1\ndatabases:\n  two:\n    nope: 1\n")
    with pytest.raises(ManifestError):
        load_manifests([tmp_path], on_declared=declared)
    assert len(seen) == 1  # not called for manifests with problems


def test_plan_converges_through_load_and_read(client: Client, db_name: str,
                                              write: Write) -> None:
    manifest = write(db_name, docs(120))
    desired, live = load_and_read(client, [manifest])
    sync(client, desired)
    desired, live = load_and_read(client, [manifest])
    assert plan_changes(desired, live).is_empty and live.bodies_read() == 0
    assert plan(client, desired).is_empty


class SilentServer:
    """Accepts connections and never answers (a hung server); counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_hung_server_costs_one_timeout_and_manifest_problems_come_first(
    silent: SilentServer, tmp_path: Path
) -> None:
    # A socket that never answers stands in for a hung server (no real server hangs
    # on demand); the connections it accepts show how often couchsync waited on it.
    (tmp_path / "d.jsonl").write_text('{"_id": "a"}\n')
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        name: {"documents_from": ["d.jsonl"]} for name in ("one", "two", "three")}}))
    with Client(f"http://127.0.0.1:{silent.port}", timeout=0.3, retries=0) as hung:
        with pytest.raises(TransportError, match="timed out"):
            load_and_read(hung, [manifest])
        assert len(silent.accepted) == 1  # asked once, not once per database
        (tmp_path / "d.jsonl").write_text('{"_id": "a", oops}\n')
        with pytest.raises(ManifestError, match=r"d\.jsonl:1:"):
            load_and_read(hung, [manifest])
        assert len(silent.accepted) == 2


def test_at_most_a_few_scans_are_sent_early(
    couch_url: str, client: Client, db_name_factory: Callable[[], str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [db_name_factory() for _ in range(3)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs(30)))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        name: {"documents_from": ["d.jsonl"]} for name in names}}))
    sync(client, load_manifests([manifest]))
    monkeypatch.setattr(_live, "EARLY_SCANS", 2)
    counting, engine = counting_client(couch_url)
    with counting:
        desired, live = load_and_read(counting, [manifest])
    assert paths(engine.requests).count("GET _all_docs early") == 2
    assert paths(engine.requests).count("GET _all_docs") == 1  # the third, when its turn came
    assert plan_changes(desired, live).is_empty


def test_the_planner_checks_the_digest_against_the_manifests_it_is_given(
    client: Client, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 10)  # 40 documents: a sharded record
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs(40)))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        db_name: {"documents_from": ["d.jsonl"]}}}))
    sync(client, load_manifests([manifest]))
    desired, live = load_and_read(client, [manifest])
    assert live.databases[db_name].record_digest is not None
    assert plan_changes(desired, live).is_empty
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs(40, 2)))
    other = load_manifests([manifest])  # another manifest than the live state was read for
    with pytest.raises(ValueError, match="lacks the body"):
        plan_changes(other, live)
