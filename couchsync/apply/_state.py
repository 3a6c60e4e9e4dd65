"""One apply's state: ``Run``, what its databases share across threads, and ``Target``,
one database's own, touched by the one thread that applies it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from couchsync.apply._result import ApplyResult, StepResult, Stop
from couchsync.client import Client, NotFound, TransportError
from couchsync.manifest.model import DesiredState
from couchsync.plan import ManagedDoc, Record, Step, StepKind, dropped, sent_files
from couchsync.read import LimitsReader

#: How many times a write refused for a conflict is re-read and tried again.
CONFLICT_ROUNDS = 3

Progress = Callable[[int, int], None]
#: ``on_build(address, done, total)``: a staged build's changes indexed so far.
BuildProgress = Callable[[str, int, int], None]
#: ``on_documents(done, total, failed)``: documents data migrations read so far.
DocumentProgress = Callable[[int, int, int], None]


@dataclass(eq=False)
class Run:
    """What the databases of one apply share: the result, progress, the stop flag and the
    lock check."""

    client: Client
    desired: DesiredState
    total: int
    batch_size: int
    limits: LimitsReader  # batches stay within the server's request size
    on_progress: Progress | None
    check_lock: Callable[[], None] | None
    wait_timeout: float | None
    on_build: BuildProgress | None
    on_documents: DocumentProgress | None = None
    documents_total: int = 0  # what the plan's migrations matched
    documents_done: int = 0
    documents_failed: int = 0
    result: ApplyResult = field(default_factory=ApplyResult)
    #: (database, warning) for writes answered 202: told last, by database name.
    partial: list[tuple[str, str]] = field(default_factory=list)
    #: Why a database's work stopped (the server lost, the lock taken): every other
    #: database stops at its next write.
    stopped: TransportError | Stop | None = None
    mutex: threading.Lock = field(default_factory=threading.Lock)  # over result

    def interrupt(self) -> None:
        """The caller was interrupted: every database stops at its next write or poll."""
        if self.stopped is None:
            self.stopped = Stop("interrupted")

    def guard(self) -> None:
        """Before each write: stop if the lock was taken from this apply, or another
        database's work stopped."""
        if self.stopped is not None:
            raise Stop(f"stopped with another database: {self.stopped}")
        if self.check_lock is not None:
            try:
                self.check_lock()
            except Exception as exc:
                raise Stop(str(exc)) from exc

    def finish(self, result: StepResult, count: bool = True) -> None:
        with self.mutex:  # progress told in order
            self.result.results.append(result)
            if count and self.on_progress is not None:
                self.on_progress(len(self.result.results), self.total)

    def warn(self, text: str) -> None:
        with self.mutex:
            self.result.warnings.append(text)

    def documents(self, read: int, failed: int) -> None:
        """A migration read ``read`` more documents, of which ``failed`` failed."""
        with self.mutex:
            self.documents_done += read
            self.documents_failed += failed
            if self.on_documents is not None:
                self.on_documents(self.documents_done,
                                  max(self.documents_total, self.documents_done),
                                  self.documents_failed)

    def report(self, line: str) -> None:
        """A line of what a migration did (``ApplyResult.migrated``)."""
        with self.mutex:
            self.result.migrated.append(line)


class Target:
    """One database's apply: what it did and what its ownership record must learn."""

    def __init__(self, run: Run, name: str, n: int | None) -> None:
        self.run = run
        self.name = name
        self.db = run.client.database(name)
        self._n = n  # shard copies as the plan read them; None: read when first needed
        self.blocked = False  # the database could not be created
        self.failed = 0
        self.refused_design: StepResult | None = None  # the first design doc refused
        self.replacing: set[str] = set()  # addresses of replaces whose delete half succeeded
        self.visible: dict[int, Any] = {}  # phase → what reads must show before going on
        self.rebuilt = False  # some index was rebuilt: old index files to clean up
        self.keep_index_files = False  # no _view_cleanup (see _rollout.roll_out)
        self.partial = 0  # writes answered 202
        self.written: dict[str, ManagedDoc] = {}  # id → its new record entry
        self.removed: set[str] = set()  # ids deleted
        self.intended: set[str] = set()  # ids written ahead as pending
        self.record: Record | None = None  # the record as this apply last wrote it
        #: Attachments written: document id → ({name: file digest} sent, names removed).
        self.attached: dict[str, tuple[dict[str, str], set[str]]] = {}

    @property
    def w(self) -> int | None:
        """The ``w`` of writes: the database's ``n`` on a cluster (every copy), else None."""
        if self._n is None:
            try:
                cluster = self.db.info().get("cluster") or {}
            except NotFound:
                cluster = {}
            self._n = int(cluster.get("n", 1))
        return self._n if self._n > 1 else None

    def finish(self, result: StepResult, count: bool = True) -> None:
        if not result.ok:
            self.failed += 1
            if result.step.kind is StepKind.DESIGN_DOC and self.refused_design is None:
                self.refused_design = result
        else:
            if result.step.rebuild is not None:
                self.rebuilt = True
            sent, removed = sent_files(result.step), dropped(result.step)
            if sent or removed:
                self.attached[result.step.id or ""] = (sent, removed)
        self.run.finish(result, count)

    def fail(self, steps: Iterable[Step], error: str) -> None:
        for step in steps:
            self.finish(StepResult(step, False, error=error))

    def count_partial(self) -> None:
        self.partial += 1
