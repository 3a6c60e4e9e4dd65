"""The ownership record against a real server: one document while small, shards when large."""

from __future__ import annotations

from collections.abc import Mapping
from json import loads
from typing import Any
from urllib.parse import unquote

import pytest
from sync_helpers import CountingEngine

from couchsync.client import Client, Conflict, Database, NotFound
from couchsync.plan import ManagedDoc, PlanError
from couchsync.plan import _ownership as ownership
from couchsync.plan._ownership import (
    RECORD_ID,
    Record,
    record_bodies,
    record_digest,
    shard_count,
    shard_doc_id,
    split,
)
from couchsync.read import _ownership as record_io
from couchsync.read._ownership import (
    read_head,
    read_record,
    read_shards,
    write_ahead,
    write_record,
)


def entries(count: int, rev: str = "1-a") -> dict[str, ManagedDoc]:
    return {f"doc-{i:05d}": ManagedDoc(rev, f"sha256:{i:064x}", i % 2 == 0)
            for i in range(count)}


def test_shard_count_keeps_every_shard_small() -> None:
    size = ownership.SHARD_ENTRIES
    assert [shard_count(n) for n in (0, size, size + 1, 4 * size, 4 * size + 1)] == [1, 1, 2, 4, 8]
    parts = split(entries(4 * size), 4)
    assert sum(map(len, parts)) == 4 * size
    assert max(map(len, parts)) < 1.1 * size  # CRC-32 spreads ids evenly


def test_small_records_are_one_document_of_json_arrays() -> None:
    bodies = record_bodies({"b": ManagedDoc("1-x", "sha256:1", True),
                            "a": ManagedDoc("2-y", "sha256:2", False)})
    assert list(bodies) == [RECORD_ID]
    head = bodies[RECORD_ID]
    assert head["format"] == 1 and head["shards"] == 1
    assert list(head["managed"]) == ["a", "b"]
    assert list(head["managed"]["a"]) == ["2-y", "sha256:2", False]


@pytest.fixture
def db(client: Client, db_name: str) -> Database:
    client.create(db_name)
    return client.database(db_name)


@pytest.fixture
def w(db: Database) -> int | None:
    """What apply writes the record with: on a cluster every copy (``w = n``), so that
    any read right after sees the write."""
    n: int | None = db.info().get("cluster", {}).get("n")
    return n


def test_a_record_round_trips_through_the_server(db: Database, w: int | None) -> None:
    assert read_record(db).managed == {}
    small = entries(10)
    write_record(db, read_record(db), small, w=w)
    assert read_record(db).managed == small
    assert read_record(db).shards == 1


def test_a_large_record_is_sharded_and_only_changed_shards_are_rewritten(
    db: Database, monkeypatch: pytest.MonkeyPatch, w: int | None
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 50)  # 200 entries → 4 shards
    first = entries(200)
    write_record(db, read_record(db), first, w=w)
    record = read_record(db)
    assert record.shards == 4 and record.managed == first
    assert set(record.revs) == {RECORD_ID, *(shard_doc_id(i) for i in range(4))}
    assert "managed" not in db.get(RECORD_ID)

    changed = dict(first)
    changed["doc-00007"] = ManagedDoc("2-b", "sha256:new", True)
    write_record(db, record, changed, w=w)
    after = read_record(db)
    assert after.managed == changed
    rewritten = {doc_id for doc_id in after.revs if after.revs[doc_id] != record.revs[doc_id]}
    assert len(rewritten) == 2 and RECORD_ID in rewritten  # one shard, and the head's digest
    assert db.get(RECORD_ID)["digest"] == digest_of(
        [(doc_id, e.rev, e.hash) for doc_id, e in changed.items()])

    write_record(db, after, entries(10), w=w)  # shrinks back to one document
    final = read_record(db)
    assert final.shards == 1 and final.managed == entries(10)
    for index in range(4):
        with pytest.raises(NotFound):
            db.get(shard_doc_id(index))


def digest_of(entries: list[tuple[str, str, str]]) -> str:
    table = {doc_id: (rev, content) for doc_id, rev, content in entries}
    return record_digest(table, table.__getitem__)


def test_the_digest_covers_every_entry_in_any_order_but_not_created() -> None:
    base = [("a", "1-x", "h1"), ("b", "2-y", "h2")]
    digest = digest_of(base)
    assert digest_of(base[::-1]) == digest
    for changed in ([("a", "1-x", "h1"), ("b", "3-y", "h2")],  # a revision
                    [("a", "1-x", "h1"), ("b", "2-y", "h3")],  # a hash
                    [("a", "1-x", "h1")],  # an entry less
                    [("a", "1-x", "h1"), ("b", "2-y", "h2"), ("c", "1-z", "h4")],  # one more
                    [("a1", "-x", "h1"), ("b", "2-y", "h2")]):  # the same characters, moved
        assert digest_of(changed) != digest
    many = [(f"doc{i:06}", f"1-{i}", f"h{i}") for i in range(25_000)]  # several slices
    assert digest_of(many) == digest_of(many[::-1]) != digest_of(many[:-1])
    with_created = record_bodies({"a": ManagedDoc("1-x", "h1", True)})[RECORD_ID]["digest"]
    assert with_created == record_bodies({"a": ManagedDoc("1-x", "h1", False)})[RECORD_ID][
        "digest"] == digest_of([("a", "1-x", "h1")])


def test_the_head_alone_is_incomplete_until_its_shards_are_read(
    db: Database, monkeypatch: pytest.MonkeyPatch, w: int | None
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 50)
    write_record(db, read_record(db), entries(120), w=w)
    head = read_head(db)
    assert not head.complete and head.managed == {} and head.shards == 4
    assert read_shards(db, head).managed == entries(120) and head.complete


def test_a_record_of_another_format_is_refused(db: Database, w: int | None) -> None:
    db.update(RECORD_ID, {"_id": RECORD_ID, "format": 99}, w=w)
    with pytest.raises(PlanError, match="format 99"):
        read_record(db)


def test_a_stale_record_write_conflicts_only_where_the_server_checks_local_revisions(
    db: Database, is_couchdb: bool, w: int | None
) -> None:
    """PouchDB Server checks ``_local`` revisions; CouchDB takes a stale one and keeps the
    last write, which is why apply holds the database's lock (couchsync.lock) while it
    writes the record."""
    write_record(db, Record(), entries(3), w=w)
    stale = read_record(db)
    write_record(db, stale, entries(4), w=w)
    if not is_couchdb:
        with pytest.raises(Conflict):
            write_record(db, stale, entries(5), w=w)
        return
    write_record(db, stale, entries(5), w=w)  # accepted: last writer wins
    assert len(read_record(db).managed) == 5


def test_ids_written_ahead_are_pending_until_the_record_is_written(
    db: Database, monkeypatch: pytest.MonkeyPatch, w: int | None
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 50)  # 120 entries → 4 shards
    monkeypatch.setattr(record_io, "CREATING_IDS", 2)  # 3 ids → 2 documents
    monkeypatch.setattr(record_io, "INLINE_CREATING", 2)  # 3 ids: too many for the head
    write_record(db, read_record(db), entries(120), w=w)
    before = read_record(db)

    ahead = write_ahead(db, before, ["new-1", "new-2", "doc-00003"], w=w)
    # The head (now counting the ids' documents) and those documents; no shard.
    assert {doc_id for doc_id in ahead.revs if ahead.revs.get(doc_id) != before.revs.get(
        doc_id)} == {RECORD_ID, "_local/couchsync.creating.0", "_local/couchsync.creating.1"}
    assert db.get(RECORD_ID)["creating"] == 2
    again = read_record(db)
    assert again.digest is None  # nothing is proven while ids are pending
    assert again.creating == {"new-1", "new-2", "doc-00003"}
    assert again.managed == entries(120)  # the entries as stored
    merged = again.entries()
    assert merged["new-1"] == ManagedDoc("", "", True)
    assert merged["doc-00003"] == entries(120)["doc-00003"]._replace(rev="")  # created kept
    head = read_head(db)
    assert not head.complete and head.digest is None and head.creating == again.creating

    written = dict(again.managed)
    written["new-1"] = ManagedDoc("1-n", "hash", True)
    final = write_record(db, ahead, written, w=w)
    assert "creating" not in db.get(RECORD_ID)
    with pytest.raises(NotFound):
        db.get("_local/couchsync.creating.0")
    # Only the shard of new-1 and the head were rewritten.
    assert len({doc_id for doc_id in final.revs if final.revs[doc_id] != ahead.revs.get(
        doc_id)}) == 2
    assert read_record(db).managed == written


def test_a_few_ids_are_written_ahead_into_the_head_alone(
    db: Database, w: int | None
) -> None:
    write_record(db, read_record(db), entries(3), w=w)
    before = read_record(db)
    ahead = write_ahead(db, before, ["new-1", "doc-00001"], w=w)
    assert set(ahead.revs) == {RECORD_ID}  # one write: no creating documents
    assert db.get(RECORD_ID)["creating_ids"] == ["doc-00001", "new-1"]
    again = read_record(db)
    assert again.digest is None and again.creating == {"new-1", "doc-00001"}
    assert again.entries()["new-1"] == ManagedDoc("", "", True)
    written = {**again.managed, "new-1": ManagedDoc("1-n", "hash", True)}
    write_record(db, ahead, written, w=w)
    head = db.get(RECORD_ID)
    assert "creating_ids" not in head and "creating" not in head
    assert read_record(db).managed == written and not read_record(db).creating


class WritesSeen(CountingEngine):
    """Each document id written, in the order the requests reach the server: those of a
    ``_bulk_docs`` (in the body's order), those a ``PUT`` or ``DELETE`` names."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.written: list[tuple[str, str]] = []  # (method, document id)

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                json: Any = None, content: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Any:
        if path.endswith("/_bulk_docs"):
            body = json if content is None else loads(content)
            self.written += [("POST", doc["_id"]) for doc in body["docs"]]
        elif method in ("PUT", "DELETE"):
            self.written.append((method, unquote(path.split("/", 2)[2])))
        return super().request(method, path, params=params, json=json, content=content,
                               headers=headers)


def test_a_record_that_changes_its_number_of_shards_writes_new_ones_before_the_head(
    couch_url: str, db: Database, monkeypatch: pytest.MonkeyPatch, w: int | None
) -> None:
    monkeypatch.setattr(ownership, "SHARD_ENTRIES", 50)
    write_record(db, read_record(db), entries(120), w=w)  # 4 shards, first generation
    first = read_record(db)
    assert first.generation == 0 and shard_doc_id(0) in first.revs
    engines: list[WritesSeen] = []
    with Client(couch_url, connection_engine=lambda url, **options: engines.append(
            WritesSeen(url, **options)) or engines[-1]) as seeing:
        write_record(seeing.database(db.name), first, entries(250), w=w)  # 8 new shards
    # Every new shard is written before the head names it; the old ones go after it.
    new_shards = [("POST", shard_doc_id(i, 1)) for i in range(8)]
    old_shards = [("DELETE", shard_doc_id(i)) for i in range(4)]
    written = engines[0].written
    assert sorted(written) == sorted([*new_shards, ("POST", RECORD_ID), *old_shards])
    head = written.index(("POST", RECORD_ID))
    assert set(written[:head]) == set(new_shards) and set(written[head + 1:]) == set(old_shards)
    grown = read_record(db)
    assert grown.generation == 1 and grown.managed == entries(250)
    assert set(grown.revs) == {RECORD_ID, *(shard_doc_id(i, 1) for i in range(8))}
    for index in range(4):  # the old shards are gone, after the head moved on
        with pytest.raises(NotFound):
            db.get(shard_doc_id(index))
    write_record(db, grown, entries(10), w=w)  # back to the head alone
    assert read_record(db).managed == entries(10)
    with pytest.raises(NotFound):
        db.get(shard_doc_id(0, 1))
