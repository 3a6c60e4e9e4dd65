"""Data migrations: each document changed exactly once, under crashes, races and an
application writing meanwhile (docs/plan-and-apply.md, "Data migrations").

Every batch is written ahead into a journal document (``_local``) naming each document
and the revision it was read at, with the hash of what it is about to become; then sent
with ``_bulk_docs``; then the journal learns what was written. A run killed between the
two is settled by the next one (``read.settle``): the revision history tells whether the
batch's write landed. Documents the journals list are never migrated again, so a
transform that is not idempotent runs once per document. The record (the migrations
design doc) says ``done`` only after a last pass over the changes made since the run
began: documents the application wrote meanwhile are migrated too.

A plan made for the apply keeps its preview's outcomes (``KeptOutcomes``, within a
budget): the run then reads no document again. It writes them as the preview computed
them, each at the revision the preview read: one written since is a conflict, read
again and migrated as always. The pass over the changes since the preview's sequence
then finds what was written meanwhile, in one request when nothing was (a pass before
the writes as well cost a fleet database a ``_changes`` of the 9 requests it sends).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from couchsync._words import counted
from couchsync.apply._result import StepResult, refusal
from couchsync.apply._state import CONFLICT_ROUNDS, Target
from couchsync.client import Conflict, Database
from couchsync.manifest import load_transform
from couchsync.manifest.model import MigrationSpec
from couchsync.plan import (
    MIGRATIONS_DDOC,
    Change,
    Journal,
    KeptOutcomes,
    Step,
    Transform,
    batched,
    batched_within,
    journaled,
    kept_outcomes,
    migrate,
)
from couchsync.read import (
    BULK_ENVELOPE,
    Matching,
    among,
    change,
    changed_since,
    current_revs,
    id_key,
    journal_id,
    next_run,
    read_journal,
    read_migrations_record,
    reverted,
    settle,
)

#: Documents a failed migration's error names.
NAMED = 5


def run_migrations(target: Target, steps: list[Step]) -> None:
    """The migration steps of one database, in the manifests' order; one that fails
    stops those after it (they may build on it)."""
    declared = {m.id: m for m in target.run.desired.databases[target.name].migrations}
    for index, step in enumerate(steps):
        migration = declared.get(step.id or "")
        failure = None
        if migration is None or migration.checksum != (step.after or {}).get("checksum"):
            failure = "the manifests define this migration otherwise than the plan did: plan again"
        else:
            target.run.guard()
            with refusal() as refused:
                done, line = (_revert(target, migration) if migration.revert is not None
                              else _Run(target, migration, step.after.get("since"),
                                        kept_outcomes(step)).run())
            failure = refused.reason if refused else None if done else line
        if failure is not None:
            target.finish(StepResult(step, False, error=failure))
            target.fail(steps[index + 1:], f"not run: {step.address} failed before it")
            return
        target.finish(StepResult(step, True))
        target.run.report(f"{step.address}: {line}")


@dataclass(eq=False)
class _Run:
    """One migration's run in one database."""

    target: Target
    migration: MigrationSpec
    planned_since: str | None  # the database's sequence when the plan read it
    kept: KeptOutcomes | None = None  # what the plan's preview computed, to write as is
    run_number: int = 0  # which run of the migration this is (``read.next_run``)
    journal: Journal = field(default_factory=Journal)
    #: The journal document of the last batch as it is to be stored once its answer is
    #: known: sent with the next batch's write-ahead, or last with the record.
    closing: dict[str, Any] | None = None
    changed: int = 0
    deleted: int = 0
    #: Matched, and left as they are (unchanged), or failed, with why: a document read
    #: again (the second scan, the catch-up) is counted once, as it is now.
    unchanged: set[bytes] = field(default_factory=set)
    failed: dict[bytes, str] = field(default_factory=dict)
    scan: Matching | None = None
    #: A page's last document changed by someone else before its bookmark was used.
    disturbed: bool = False
    uncertain: list[str] = field(default_factory=list)

    @property
    def journaled(self) -> bool:
        return journaled(self.migration)

    @property
    def matched(self) -> int:
        return self.changed + len(self.unchanged) + len(self.failed)

    @property
    def db(self) -> Database:
        return self.target.db

    def run(self) -> tuple[bool, str]:
        """Migrate, catch up, record ``done``: whether it got there, and what it did (or
        which documents it could not migrate), in a line."""
        migration, kept = self.migration, self.kept
        record = (kept.record if kept is not None and kept.record is not None
                  else read_migrations_record(self.db))
        entry = record["migrations"].get(migration.id)
        if (entry or {}).get("checksum") == migration.checksum:
            return True, "done already (by an apply that ran since the plan)"
        self.run_number = next_run(entry)
        self.journal = (kept.journal if kept is not None and kept.journal is not None
                        else read_journal(self.db, migration.id, self.run_number))
        for batch in self.journal.unsettled:  # the interrupted run's last batch
            written, uncertain = settle(self.db, batch["intended"])
            self.uncertain += uncertain
            self.closing = _closed(batch, written)
            self.journal.migrated.update(id_key(doc_id) for doc_id in written)
            self._send_closing()
        since = (self.journal.since or self.planned_since
                 or str(self.db.info()["update_seq"]))
        transform = load_transform(migration) if migration.transform else None
        if self.kept is None:
            self.scan = Matching(self.db, migration.selector)
            for page in self.scan:
                self._migrate(page, transform, since)
        else:  # the preview's pages, written as it computed them
            self.scan = Matching(self.db, migration.selector,
                                 boundaries=self.kept.boundaries)
            self._write_kept(since, transform)
        self._catch_up(since, transform)
        if self.disturbed:  # a page may have skipped a document: scan again, surely
            for page in Matching(self.db, migration.selector, by_id=True):
                self._migrate(page, transform, since)
            self._catch_up(since, transform)
        if self.failed:
            self._send_closing()
            return False, (f"{counted(len(self.failed), 'document')} not migrated (the next "
                           "apply tries again): "
                           + "; ".join(itertools.islice(filter(None, self.failed.values()),
                                                        NAMED)))
        self._record_done(record, since)
        if self.uncertain:
            self.target.run.warn(
                f"db:{self.target.name}/migration:{migration.id}: counted as migrated, "
                "changed by someone else after an interrupted batch whose outcome the "
                f"server no longer tells: {', '.join(self.uncertain[:NAMED])}")
        return True, (f"{self.changed:,} of {self.matched:,} matched documents changed"
                      + (f" ({self.deleted:,} deleted)" if self.deleted else ""))

    def _catch_up(self, since: str, transform: Transform | None) -> None:
        """Migrate what was written since the run began and not by it, until a pass over
        the changes finds nothing more to write."""
        while True:
            wrote = self.changed
            for revs, last in changed_since(self.db, since):
                self.disturbed = self.disturbed or any(
                    self.scan.disturbed(doc_id, rev) for doc_id, rev in revs.items()
                    if self.scan is not None)
                todo = [doc_id for doc_id in revs
                        if id_key(doc_id) not in self.journal.migrated]
                if todo:
                    self._migrate(among(self.db, self.migration.selector, todo), transform,
                                  since)
                since = last
            if self.changed == wrote:
                return

    def _write_kept(self, since: str, transform: Transform | None) -> None:
        """Write what the preview computed for the documents nobody wrote since it."""
        kept, self.kept = self.kept, None
        assert kept is not None
        new: list[Change] = []
        read, failed = 0, len(self.failed)
        for doc_id, outcome in kept.outcomes.items():
            key = id_key(doc_id)
            if key in self.journal.migrated:
                continue
            read += 1
            if isinstance(outcome, str):
                self._fail(key, f"{doc_id}: {outcome}")
            elif outcome is None:
                self.unchanged.add(key)
            else:
                new.append(outcome)
        kept.outcomes.clear()
        self.target.run.documents(read, len(self.failed) - failed)
        self._send(new, transform, since)

    def _migrate(self, docs: Sequence[dict[str, Any]], transform: Transform | None,
                 since: str, round_: int = 0) -> None:
        new: list[Change] = []
        read, failed = 0, len(self.failed)
        for doc in docs:
            key = id_key(doc["_id"])
            if key in self.journal.migrated:
                continue
            seen = key in self.unchanged or self.failed.pop(key, None) is not None
            self.unchanged.discard(key)
            read += not seen and round_ == 0
            outcome = migrate(self.migration, doc, transform)
            if outcome.error is not None:
                self._fail(key, f"{doc['_id']}: {outcome.error}")
            elif outcome.body is not None:
                new.append(change(doc, outcome, hashed=self.journaled,
                                  original=self.migration.keep_originals))
            else:
                self.unchanged.add(key)
        self.target.run.documents(read, max(len(self.failed) - failed, 0))
        self._send(new, transform, since, round_)

    def _send(self, new: Sequence[Change], transform: Transform | None, since: str,
              round_: int = 0) -> None:
        """Write ``new`` in batches of the batch size, each within the server's request
        size."""
        limit = self.target.run.limits().request - BULK_ENVELOPE
        for batch in batched_within(new, self.target.run.batch_size, limit,
                                    lambda item: len(item.body) + 1):
            self._write(batch, transform, since, round_)

    def _write(self, batch: Sequence[Change], transform: Transform | None, since: str,
               round_: int) -> None:
        """Write ``batch`` ahead into the journal (with the last batch's outcome, in one
        request), then send it; a conflict is this write's own (sent again after a lost
        answer) or the application's: the document is read and migrated again. An
        ``idempotent`` migration keeping no originals needs no journal."""
        self.target.run.guard()
        number = len(self.journal.revs)
        ahead: dict[str, Any] = {
            "_id": journal_id(self.migration.id, self.run_number, number),
            "intended": {item.id: [item.rev, item.hash] for item in batch},
            **({"since": since} if number == 0 else {}),
            **({"originals": {item.id: item.original for item in batch}}
               if self.migration.keep_originals else {})}
        if self.journaled:
            self.journal.revs.append(
                self._put_local([*self._take_closing(), ahead])[ahead["_id"]])
        answers = self.db.bulk_docs([item.body for item in batch], w=self.target.w)
        if answers.accepted:
            self.target.count_partial()
        written = answers.revs()
        conflicted = []
        for failed_id, answer in answers.errors().items():
            if answer["error"] == "conflict" and round_ < CONFLICT_ROUNDS:
                conflicted.append(failed_id)
            else:
                self._fail(id_key(failed_id),
                           f"{failed_id}: {answer['error']}: {answer.get('reason', '')}")
        if conflicted and self.journaled:
            mine, uncertain = settle(self.db, {doc_id: ahead["intended"][doc_id]
                                               for doc_id in conflicted})
            written.update(mine)
            self.uncertain += uncertain
            conflicted = [doc_id for doc_id in conflicted if doc_id not in mine]
        if self.journaled:
            self.closing = _closed({**ahead, "_rev": self.journal.revs[-1]}, written)
        if self.scan is not None:
            for doc_id, rev in written.items():
                self.scan.moved(doc_id, rev)
            self.disturbed = self.disturbed or any(doc_id in self.scan.boundaries
                                                   for doc_id in conflicted)
        self.journal.migrated.update(id_key(doc_id) for doc_id in written)
        self.changed += len(written)
        self.deleted += sum(1 for item in batch if item.deleted and item.id in written)
        if conflicted:  # the application wrote it meanwhile: read again, migrate that
            self._migrate(among(self.db, self.migration.selector, conflicted), transform,
                          since, round_ + 1)

    def _fail(self, key: bytes, reason: str) -> None:
        # Only the first few reasons are kept: a million failures hold no million texts.
        self.failed[key] = reason if len(self.failed) < NAMED else ""

    def _take_closing(self) -> list[dict[str, Any]]:
        closing, self.closing = self.closing, None
        return [] if closing is None else [closing]

    def _send_closing(self) -> None:
        if self.closing is not None:
            number = int(self.closing["_id"].rpartition(".")[2])
            self.journal.revs[number] = self._put_local(self._take_closing())[
                journal_id(self.migration.id, self.run_number, number)]

    def _put_local(self, docs: list[dict[str, Any]]) -> dict[str, str]:
        """Write journal documents in one request; their new revisions."""
        stored = self.db.bulk_docs(docs, w=self.target.w)
        if stored.errors():  # a journal another process wrote meanwhile (no lock held?)
            raise Conflict(f"the journal of migration {self.migration.id} in {self.db.name} "
                           f"was written by another run meanwhile: {stored.errors()}")
        return stored.revs()

    def _record_done(self, record: dict[str, Any], since: str) -> None:
        """The record says ``done``; in the same request the journal goes (its work is in
        the documents now), or, with ``keep_originals``, gets its last batch's outcome."""
        entry = {"checksum": self.migration.checksum, "state": "done",
                 "changed": len(self.journal.migrated), "runs": self.run_number + 1,
                 **({"originals": True} if self.migration.keep_originals else {})}
        if self.migration.keep_originals:
            journal = self._take_closing()
        else:
            self.closing = None
            journal = [{"_id": journal_id(self.migration.id, self.run_number, number),
                        "_rev": rev, "_deleted": True}
                       for number, rev in enumerate(self.journal.revs)]
        _write_record(self.db, record, self.migration.id, entry, self.target.w, journal)


def _closed(batch: dict[str, Any], written: dict[str, str]) -> dict[str, Any]:
    """A batch's journal document once its outcome is known: what was written (and the
    originals of those documents)."""
    return {"_id": batch["_id"], "_rev": batch["_rev"], "written": written,
            **({"originals": {doc_id: body for doc_id, body in batch["originals"].items()
                              if doc_id in written}} if "originals" in batch else {})}


def _revert(target: Target, migration: MigrationSpec) -> tuple[bool, str]:
    """Restore the originals of the documents the reverted migration changed and nobody
    changed since; name those left."""
    db, record = target.db, read_migrations_record(target.db)
    restored = 0
    left: list[str] = []
    for batch in reverted(db, migration, record["migrations"]):
        written, originals = batch.get("written", {}), batch.get("originals", {})
        now = current_revs(db, list(written))
        restore = []
        for doc_id, rev in written.items():
            current, deleted = now.get(doc_id, ("", False))
            if current != rev:
                left.append(doc_id)
            elif doc_id in originals:  # a deleted one is made anew over its tombstone
                original = {k: v for k, v in originals[doc_id].items() if k != "_rev"}
                restore.append(original if deleted else {**original, "_rev": rev})
        for chunk in batched(restore, target.run.batch_size):
            target.run.guard()
            answers = db.bulk_docs(chunk, w=target.w)
            restored += len(answers.revs())
            left += list(answers.errors())
    _write_record(db, record, migration.id, {
        "checksum": migration.checksum, "state": "done", "changed": restored,
        "runs": next_run(record["migrations"].get(migration.id)) + 1}, target.w)
    if left:
        target.run.warn(f"db:{target.name}/migration:{migration.id}: {len(left):,} documents "
                        "changed since the migration were left as they are: "
                        + ", ".join(left[:NAMED]))
    return True, f"{restored:,} documents restored" + (f", {len(left):,} left" if left else "")


def _write_record(db: Database, record: dict[str, Any], migration: str,
                  entry: dict[str, Any], w: int | None,
                  along: Sequence[dict[str, Any]] = ()) -> None:
    """``record`` with ``entry`` as ``migration``'s, written with the ``along`` local
    documents in one request; read again and merged when someone else wrote it
    meanwhile."""
    for _ in range(CONFLICT_ROUNDS):
        body = {**record, "migrations": {**record["migrations"], migration: entry}}
        answers = db.bulk_docs([body, *along], w=w)
        if MIGRATIONS_DDOC not in answers.errors():
            return
        record, along = read_migrations_record(db), ()  # the journal's part went through
    raise Conflict(f"{MIGRATIONS_DDOC} in {db.name}: still changing after "
                   f"{CONFLICT_ROUNDS} tries")
