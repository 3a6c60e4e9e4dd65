"""What data migrations read: the documents a selector matches, page by page; the journal
of a migration under way, and what became of a batch a crash left unanswered; the plan's
preview (docs/plan-and-apply.md, "Data migrations")."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from couchsync.client import Database, NotFound, encode_json
from couchsync.manifest import load_transform
from couchsync.manifest.model import DatabaseSpec, MigrationSpec
from couchsync.plan import (
    DELETED,
    MIGRATIONS_DDOC,
    Change,
    Journal,
    KeptOutcomes,
    MigrationPreview,
    Outcome,
    PlanError,
    batched,
    body_hash,
    journaled,
    migrate,
    pending_migrations,
)

PAGE_SIZE = 1000  # documents per _find or _all_docs page
JOURNAL_PREFIX = "_local/couchsync-migration."
#: How many documents a plan names of those a migration cannot change.
ERRORS_SHOWN = 5


#: What the outcomes a plan keeps for its apply may hold, over all its databases, as
#: ``KeepBudget`` counts it (about the memory they take): past it, runs read again.
KEEP_BYTES = 64 * 2**20
#: What one kept document costs besides its id, new body and original: the revision,
#: the hash, the tuple and dict slot around them (tracemalloc: about 300; rounded up).
KEPT_OVERHEAD = 400


class KeepBudget:
    """The bytes left for kept outcomes, shared by the databases one plan reads at once."""

    def __init__(self, limit: int | None = None) -> None:
        self.left = KEEP_BYTES if limit is None else limit
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if size > self.left:
                return False
            self.left -= size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.left += size


@dataclass(frozen=True, slots=True)
class MigrationOptions:
    """What a plan shows of each migration: ``samples`` before/after pairs, and, with
    ``out``, every would-be document in ``OUT/DATABASE/MIGRATION.jsonl``; with ``keep``
    (a plan made for an apply), the first migration still to run in each database keeps
    its outcomes within that budget, for the run to write (``KeptOutcomes``)."""

    samples: int = 3
    out: Path | None = None
    keep: KeepBudget | None = None

    @classmethod
    def for_apply(cls) -> MigrationOptions:
        """Three samples, and a budget of its own to keep outcomes in."""
        return cls(keep=KeepBudget())

    def file(self, database: str, migration: str) -> Path | None:
        return None if self.out is None else self.out / quote(database, safe="") / (
            f"{migration}.jsonl")


PREVIEW = MigrationOptions()  # three samples, no files


def next_run(entry: Mapping[str, Any] | None) -> int:
    """The number of a migration's next run, from its record entry (None: never done).
    Its journal is that run's: an edit of a migration that has not finished goes on
    with the documents the run has not changed, never changing one twice."""
    return 0 if entry is None else int(entry.get("runs", 1))


def journal_id(migration: str, run: int, batch: int) -> str:
    """Batch ``batch`` of a run's journal (each run of ``rerun_on_change`` has its own)."""
    return f"{JOURNAL_PREFIX}{migration}.{run}.{batch}"


def id_key(doc_id: str) -> bytes:
    """A document id as the set of migrated documents keeps it: 16 bytes, whatever the
    id's length (ids of 10^9 documents collide with odds under 10^-20)."""
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=16).digest()


def journal_batches(db: Database, migration: str, run: int) -> Iterator[dict[str, Any]]:
    """Every batch of ``migration`` in ``db``, one at a time, in order (numbered from 0)."""
    for number in itertools.count():
        try:
            yield db.get(journal_id(migration, run, number))
        except NotFound:
            return


def read_journal(db: Database, migration: str, run: int) -> Journal:
    """What ``migration``'s journal in ``db`` says (its batches are not kept: memory stays
    flat over a million documents)."""
    journal = Journal()
    for body in journal_batches(db, migration, run):
        journal.revs.append(body["_rev"])
        journal.since = journal.since or body.get("since")
        if "written" in body:
            journal.migrated.update(id_key(doc_id) for doc_id in body["written"])
        else:
            journal.unsettled.append(body)
    return journal


def settle(db: Database, intended: dict[str, list[str]]) -> tuple[dict[str, str], list[str]]:
    """What a batch written ahead (``{id: [from_rev, new body's hash]}``) and never
    answered did: ``{id: rev}`` of the documents it wrote, and the ids it cannot tell
    (changed since by someone else, the revision between compacted away), which count
    as written: a document is never migrated twice."""
    written: dict[str, str] = {}
    uncertain: list[str] = []
    for row in db.all_docs(keys=list(intended), include_docs=True):
        doc_id, value = row["key"], row.get("value") or {}
        from_rev, new_hash = intended[doc_id]
        rev = value.get("rev")
        if rev is None or rev == from_rev:
            continue  # not written (or the document was purged)
        now = DELETED if value.get("deleted") else body_hash(row.get("doc"))
        if now == new_hash:
            written[doc_id] = rev
            continue
        child = _child(db, doc_id, rev, from_rev)
        if child is None:
            continue  # from_rev is not an ancestor: deleted and made anew since
        try:
            body = db.get(doc_id, rev=child)
        except NotFound:
            uncertain.append(doc_id)
            written[doc_id] = rev
            continue
        if (DELETED if body.get("_deleted") else body_hash(body)) == new_hash:
            written[doc_id] = rev  # written, then changed by someone else
    return written, uncertain


def _child(db: Database, doc_id: str, leaf: str, ancestor: str) -> str | None:
    """The revision after ``ancestor`` on the branch of ``leaf``."""
    history = db.get(doc_id, rev=leaf, revs=True).get("_revisions") or {}
    start, ids = int(history.get("start", 0)), list(history.get("ids", ()))
    generation, _, digest = ancestor.partition("-")
    position = start - int(generation)
    if not 0 < position < len(ids) or ids[position] != digest:
        return None
    return f"{int(generation) + 1}-{ids[position - 1]}"


class Matching:
    """The documents ``selector`` matches (every document when None; design docs never),
    a page at a time: ``_find`` following bookmarks over the index CouchDB picks, or by
    ``_id`` ranges (``by_id``, or where the server gives no bookmarks: PouchDB Server;
    skip would jump over documents a migration moved out of the selector). ``unindexed``
    is set when CouchDB says no index serves the selector.

    CouchDB resumes a bookmark after the page's last document, counted only while it
    still matches: changed out of the selector first, the next page skips a document.
    So each next page is asked for before a page is handed out (a migration changes it
    after), and ``disturbed`` tells whether someone else may have changed a page's last
    document before its bookmark was used: then only a scan ``by_id`` is sure.
    """

    def __init__(self, db: Database, selector: dict[str, Any] | None,
                 page_size: int = PAGE_SIZE, *, by_id: bool = False,
                 boundaries: dict[str, str] | None = None) -> None:
        self.db, self.selector, self.page_size, self.by_id = db, selector, page_size, by_id
        self.unindexed = False
        #: id → rev of each page's last document (``boundaries``: an earlier scan's, whose
        #: pages a run writes from, not scanning: the preview's ``KeptOutcomes``).
        self.boundaries: dict[str, str] = {} if boundaries is None else boundaries

    def moved(self, doc_id: str, rev: str) -> None:
        """Our own write of ``doc_id``: not someone else's change (``disturbed``)."""
        if doc_id in self.boundaries:
            self.boundaries[doc_id] = rev

    def disturbed(self, doc_id: str, rev: str | None) -> bool:
        """Whether ``doc_id`` at ``rev`` is a page's last document changed by someone else."""
        return doc_id in self.boundaries and self.boundaries[doc_id] != rev

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        if self.selector is None:
            yield from self._all()
            return
        if self.by_id:
            yield from self._by_id()
            return
        body: dict[str, Any] = {"selector": self.selector, "limit": self.page_size}
        result = self.db.find(body)
        self.unindexed = "no matching index" in str(result.get("warning", "")).lower()
        if "bookmark" not in result:
            yield from self._by_id()
            return
        while True:
            docs = result["docs"]
            if len(docs) < self.page_size:
                yield _documents(docs)
                return
            self.boundaries[docs[-1]["_id"]] = docs[-1]["_rev"]
            body["bookmark"] = result["bookmark"]
            result = self.db.find(body)  # before this page's documents change
            yield _documents(docs)

    def _all(self) -> Iterator[list[dict[str, Any]]]:
        rows = self.db.iter_all_docs(include_docs=True, page_size=self.page_size,
                                     read_ahead=True)
        try:
            for page in batched(rows, self.page_size):
                yield _documents([row["doc"] for row in page])
        finally:  # a run stopped midway: the page asked ahead is dropped
            getattr(rows, "close", lambda: None)()

    def _by_id(self) -> Iterator[list[dict[str, Any]]]:
        last = ""
        while True:
            docs = self.db.find({"selector": {"$and": [self.selector, {"_id": {"$gt": last}}]},
                                 "sort": [{"_id": "asc"}], "limit": self.page_size})["docs"]
            yield _documents(docs)
            if len(docs) < self.page_size:
                return
            last = docs[-1]["_id"]


def _documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if not doc["_id"].startswith("_design/")]


def among(db: Database, selector: dict[str, Any] | None, ids: Sequence[str]
          ) -> list[dict[str, Any]]:
    """The documents of ``ids`` that exist and ``selector`` matches, as they are now."""
    if not ids:
        return []
    if selector is None:
        return _documents([row["doc"] for row in db.all_docs(keys=ids, include_docs=True)
                           if row.get("doc")])
    docs = db.find({"selector": {"$and": [selector, {"_id": {"$in": list(ids)}}]},
                    "limit": len(ids)})["docs"]
    return _documents(docs)


CHANGES_PAGE = 10_000  # rows per _changes page: ids and revisions only, small rows


def changed_since(db: Database, since: str, page_size: int = CHANGES_PAGE
                  ) -> Iterator[tuple[dict[str, str], str]]:
    """``{id: rev}`` of the documents written after ``since`` (deleted ones left out), a
    page at a time, each with the sequence to resume from."""
    while True:
        page = db.changes(since, limit=page_size)
        results = page.get("results", [])
        yield ({row["id"]: row["changes"][0]["rev"] for row in results
                if not row.get("deleted") and not row["id"].startswith("_design/")},
               str(page["last_seq"]))
        if len(results) < page_size:
            return
        since = str(page["last_seq"])


def change(doc: dict[str, Any], outcome: Outcome, *, hashed: bool, original: bool
           ) -> Change:
    """What a run writes of ``doc`` migrated to ``outcome`` (it changes it); ``hashed``: with
    the new body's hash for the journal; ``original``: with ``doc`` (``keep_originals``)."""
    body = outcome.body
    assert body is not None  # a change
    return Change(doc["_id"], doc["_rev"], encode_json(body), outcome.deleted,
                  body_hash(None if outcome.deleted else body) if hashed else None,
                  doc if original else None)


def preview(db: Database, spec: MigrationSpec, migrated: set[bytes], samples: int,
            out: Path | None = None, keep: KeepBudget | None = None) -> MigrationPreview:
    """What running ``spec`` now would do, by running it on every document it matches
    (those in ``migrated`` aside); ``out``: a JSON Lines file of every would-be document.
    With ``keep``, the outcomes are kept too (``found.kept``) while the budget lasts."""
    transform = load_transform(spec) if spec.transform else None
    found = MigrationPreview(done=len(migrated))
    matching = Matching(db, spec.selector)
    kept = None if keep is None else KeptOutcomes(boundaries=matching.boundaries)
    hashed = journaled(spec)
    with _lines(out) as write:
        for page in matching:
            for doc in page:
                if migrated and id_key(doc["_id"]) in migrated:
                    continue
                found.matched += 1
                outcome = migrate(spec, doc, transform)
                after = outcome.body
                if outcome.error is not None:
                    found.failed += 1
                    if len(found.errors) < ERRORS_SHOWN:
                        found.errors.append(f"{doc['_id']}: {outcome.error}")
                elif after is not None:
                    found.changed += 1
                    found.deleted += outcome.deleted
                    if len(found.samples) < samples:
                        found.samples.append((doc, after))
                    if write is not None:
                        write({k: v for k, v in after.items() if k != "_rev"})
                if kept is not None and keep is not None:
                    kept = _keep(kept, keep, doc, outcome, hashed, spec.keep_originals)
    found.unindexed = matching.unindexed
    found.kept = kept
    return found


def _keep(kept: KeptOutcomes, keep: KeepBudget, doc: dict[str, Any], outcome: Outcome,
          hashed: bool, original: bool) -> KeptOutcomes | None:
    """``kept`` with ``doc``'s outcome, or None (the budget given back) when it is spent."""
    kept_as: Change | str | None = outcome.error
    size = KEPT_OVERHEAD + len(doc["_id"]) + len(outcome.error or "")
    if outcome.body is not None:
        kept_as = change(doc, outcome, hashed=hashed, original=original)
        size += len(kept_as.body) * (2 if original else 1)  # the original about as large
    if not keep.take(size):
        keep.give(kept.size)
        return None
    kept.outcomes[doc["_id"]] = kept_as
    kept.size += size
    return kept


@contextmanager
def _lines(path: Path | None) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """A JSON Lines file opened for writing (nothing when ``path`` is None)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        def write(doc: dict[str, Any]) -> None:
            file.write(json.dumps(doc, ensure_ascii=False) + "\n")

        yield write


def read_previews(db: Database, spec: DatabaseSpec, record: Mapping[str, Any],
                  options: MigrationOptions, since: Any) -> dict[str, MigrationPreview]:
    """The preview of every migration of ``spec`` still to run (``record``: the
    migrations design doc, ``migrations_record``; ``since``: the database's
    ``update_seq``, read before)."""
    previews = {}
    entries = record["migrations"]
    for number, migration in enumerate(pending_migrations(spec, entries)):
        if migration.revert is not None:
            previews[migration.id] = preview_revert(db, migration, entries, options.samples)
            continue
        # What an interrupted run wrote is not run again.
        journal = read_journal(db, migration.id, next_run(entries.get(migration.id)))
        # Shared with the run (``KeptOutcomes.journal``): it settles the batches again and
        # adds the same documents.
        migrated = journal.migrated
        for batch in journal.unsettled:
            migrated.update(id_key(doc_id) for doc_id in settle(db, batch["intended"])[0])
        # Only the first: those after it run on what it wrote, not on what they read now.
        found = previews[migration.id] = preview(
            db, migration, migrated, options.samples, options.file(spec.name, migration.id),
            options.keep if number == 0 else None)
        found.since = None if since is None else str(since)
        if found.kept is not None:
            found.kept.record, found.kept.journal = dict(record), journal
    return previews


def reverted(db: Database, migration: MigrationSpec, record: Mapping[str, Any]
             ) -> Iterator[dict[str, Any]]:
    """The journal batches of the migration ``migration`` reverts; a ``PlanError`` when
    it did not run to the end keeping the originals."""
    entry = record.get(migration.revert or "")
    if entry is None or entry.get("state") != "done" or not entry.get("originals"):
        state = ("has not run here" if entry is None
                 else "kept no originals" if not entry.get("originals")
                 else "has not finished")
        raise PlanError(f"migration {migration.id} ({migration.source}) reverts "
                        f"{migration.revert}, which {state} in {db.name}")
    yield from journal_batches(db, migration.revert or "", next_run(entry) - 1)


def preview_revert(db: Database, migration: MigrationSpec, record: Mapping[str, Any],
                   samples: int) -> MigrationPreview:
    """What reverting would do: which documents still hold what the migration wrote
    (restored) and which were changed since (named, left)."""
    found = MigrationPreview()
    shown: dict[str, dict[str, Any]] = {}  # sample id → its original
    for batch in reverted(db, migration, record):
        written, originals = batch.get("written", {}), batch.get("originals", {})
        now = current_revs(db, list(written))
        for doc_id, rev in written.items():
            found.matched += 1
            if now.get(doc_id, ("", False))[0] != rev:
                found.failed += 1
                if len(found.errors) < ERRORS_SHOWN:
                    found.errors.append(f"{doc_id}: changed since the migration, left as it is")
                continue
            found.changed += 1
            if doc_id in originals and len(shown) < samples:
                shown[doc_id] = originals[doc_id]
    now_bodies = {row["key"]: row.get("doc") or {"_id": row["key"]}  # deleted: no body
                  for row in db.all_docs(keys=list(shown), include_docs=True)} if shown else {}
    found.samples = [(now_bodies.get(doc_id, {"_id": doc_id}), original)
                     for doc_id, original in shown.items()]
    return found


def read_migrations_record(db: Database) -> dict[str, Any]:
    """The migrations design doc of ``db`` (``migrations_record``)."""
    try:
        return migrations_record(db.get(MIGRATIONS_DDOC))
    except NotFound:
        return migrations_record(None)


def migrations_record(body: dict[str, Any] | None) -> dict[str, Any]:
    """The migrations design doc as read (None: there is none), its ``migrations`` there
    when empty."""
    if body is None:
        return {"_id": MIGRATIONS_DDOC, "migrations": {}}
    return {**body, "migrations": body.get("migrations") or {}}


def current_revs(db: Database, ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """``{id: (rev, deleted)}``: the leaf revision of each of ``ids``, deleted ones too."""
    return {row["key"]: (row["value"]["rev"], row["value"].get("deleted") is True)
            for row in db.all_docs(keys=ids) if "value" in row}
