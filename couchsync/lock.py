"""The apply lock: one apply at a time per database, on CouchDB single node and cluster.

Each lock is an ordinary document ``db:<name>`` in ``couchsync-locks`` (a ``_local`` one
has no revision check), never deleted: its revision moves with every apply, so one that
moved since plan read it means another apply ran (``LockSet.stale``). docs/plan-and-apply.md
("The apply lock") tells the whole design: all or nothing, 202s, heartbeat, takeovers.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

from couchsync._names import LOCK_DB
from couchsync._words import counted
from couchsync.client import (
    BulkResults,
    Client,
    CouchError,
    HTTPStatusError,
    NotFound,
    PreconditionFailed,
)
from couchsync.errors import CouchsyncError
from couchsync.manifest import is_pattern, matches

__all__ = ["DEFAULT_TTL", "LOCK_DB", "LockHeld", "LockHolder", "LockLost", "LockReader",
           "LockSet", "force_unlock", "read_locks", "unreleased_note"]

_N = TypeVar("_N", int, float)

DEFAULT_TTL = 600.0  # seconds without a heartbeat after which a lock counts as abandoned
POLL_SECONDS = 1.0  # between attempts while waiting (--lock-timeout), jittered
RACED_ATTEMPTS = 20  # attempts in a row lost to revisions that moved, nobody holding a lock


class LockHeld(CouchsyncError):
    """A lock that this apply needs is held by another process (its text names the holder)."""

    def __init__(self, held: Mapping[str, LockHolder], waited: float) -> None:
        self.held = dict(held)
        self.waited = waited
        super().__init__(str(self))

    def __str__(self) -> str:
        names = sorted(self.held)
        if not names:
            return ("another apply kept taking the same locks at the same time; "
                    "try again (--lock-timeout SECONDS waits)")
        lines = [f"{counted(len(names), 'database')} locked by another apply"
                 + (f" (waited {self.waited:.0f} s)" if self.waited >= 1 else "") + ":"]
        lines += [f"  {name}: {self.held[name].describe()}" for name in names[:10]]
        if len(names) > 10:
            lines.append(f"  … and {len(names) - 10:,} more")
        lines.append("Wait for it (--lock-timeout SECONDS), or, if that process is gone, "
                     "run: couchsync force-unlock " + " ".join(names[:3])
                     + (" …" if len(names) > 3 else ""))
        return "\n".join(lines)


class LockLost(CouchsyncError):
    """This apply's lock was taken from it (expired, or force-unlocked) while it ran."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a lock, as its document says."""

    host: str
    pid: int
    user: str
    run: str
    since: str
    expires: str
    expires_at: float
    pid_ns: str = ""  # the holder's PID namespace ("" when its lock does not say)

    @classmethod
    def this_process(cls, ttl: float) -> LockHolder:
        now = time.time()
        return cls(socket.gethostname(), os.getpid(), _user(), os.urandom(16).hex(),
                   _iso(now), _iso(now + ttl), now + ttl, _pid_namespace())

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LockHolder | None:
        holder = body.get("holder")
        if not isinstance(holder, Mapping):
            return None
        return cls(str(holder.get("host", "?")), _number(holder.get("pid"), int),
                   str(holder.get("user", "?")), str(holder.get("run", "")),
                   str(holder.get("since", "?")), str(holder.get("expires", "?")),
                   _number(holder.get("expires_at"), float), str(holder.get("pid_ns", "")))

    def renewed(self, ttl: float) -> LockHolder:
        until = time.time() + ttl
        return replace(self, expires=_iso(until), expires_at=until)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at < (time.time() if now is None else now)

    def gone(self) -> bool:
        """Its process ran on this host (same PID namespace) and exists no more. A lock that
        names no PID namespace (an older couchsync's) waits its TTL."""
        if (self.host != socket.gethostname() or self.pid <= 0 or not self.pid_ns
                or self.pid_ns != _pid_namespace()):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's live process
            return False
        return False

    def abandoned(self, now: float | None = None) -> bool:
        return self.expired(now) or self.gone()

    def left(self) -> str:
        """Why an abandoned lock may be taken over (``took over the lock … left by``)."""
        if self.gone():
            return f"{self.describe()}: its process {self.pid} on this host is gone"
        return f"{self.describe()}: it expired (not renewed for its TTL)"

    def to_body(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        state = "expired" if self.expired() else "expires"
        return (f"{self.user}@{self.host} (pid {self.pid}) since {self.since}, "
                f"{state} {self.expires}")

    def waiting_note(self, databases: Iterable[str]) -> str:
        names = sorted(databases)
        return (f"waiting for the lock held by {self.host}/{self.pid} ({self.user}) since "
                f"{self.since} on {', '.join(names[:3])}"
                + (f" and {len(names) - 3:,} more" if len(names) > 3 else ""))


@dataclass(slots=True)
class _Lock:
    """One lock document as read: its revision (None: no document yet) and holder."""

    rev: str | None = None
    holder: LockHolder | None = None


def lock_id(database: str) -> str:
    return "db:" + database


def database_of(doc_id: str) -> str:
    return doc_id.removeprefix("db:")


def read_locks(client: Client, databases: Iterable[str]) -> dict[str, _Lock]:
    """The lock documents of ``databases`` (one request; absent ones have rev None)."""
    names = sorted(set(databases))
    locks = {name: _Lock() for name in names}
    if not names:
        return locks
    try:
        rows = client.database(LOCK_DB).all_docs(
            keys=[lock_id(name) for name in names], include_docs=True)
    except NotFound:  # no apply ever ran here
        return locks
    for name, row in zip(names, rows, strict=True):
        doc = row.get("doc")
        if doc is not None:
            locks[name] = _Lock(doc["_rev"], LockHolder.from_body(doc))
    return locks


@dataclass
class LockReader:
    """``load_and_read(before_read=...)``: reads the locks of the databases about to be read.
    A failure is kept in ``error`` (the load goes on: manifest problems are reported
    first), raised by ``result()``. ``wait`` (None: plan only reads): seconds to wait for a
    live holder, ``on_wait`` told once per holder; then ``LockHeld``."""

    client: Client
    seen: dict[str, _Lock] = field(default_factory=dict)
    error: CouchError | None = None
    wait: float | None = None
    on_wait: Callable[[str], None] = lambda text: None

    def __call__(self, databases: Iterable[str]) -> None:
        names = list(databases)
        try:
            self.seen = read_locks(self.client, names)
            if self.wait is not None:
                self._wait_until_free(names, self.wait)
        except CouchError as exc:
            self.error = exc

    def _wait_until_free(self, names: list[str], wait: float) -> None:
        started = time.monotonic()
        told: set[str] = set()
        while held := _live(self.seen, time.time()):
            waited = time.monotonic() - started
            if waited >= wait:
                raise LockHeld(held, waited)
            for run in sorted({holder.run for holder in held.values()} - told):
                holder = next(h for h in held.values() if h.run == run)
                self.on_wait(holder.waiting_note(
                    name for name, other in held.items() if other.run == run))
                told.add(run)
            time.sleep(min(POLL_SECONDS * random.uniform(0.5, 1.5), wait - waited))
            self.seen = read_locks(self.client, names)

    def result(self) -> dict[str, _Lock]:
        if self.error is not None:
            raise self.error
        return self.seen

    def held(self) -> dict[str, LockHolder]:
        """The locks someone holds (expired ones included)."""
        return {name: lock.holder for name, lock in self.result().items()
                if lock.holder is not None}


@dataclass
class LockSet:
    """The locks of one apply over ``databases``; a context manager that releases them.
    ``acquire`` takes each over the revision in ``seen`` (as plan read it) when it can;
    ``stale`` then tells that another apply ran since: the plan must be made again."""

    client: Client
    databases: list[str]
    seen: dict[str, _Lock] = field(default_factory=dict)
    ttl: float = DEFAULT_TTL
    on_notice: Callable[[str], None] = lambda text: None  # "took over the lock on …"
    clock: Callable[[], float] = time.time  # what expiry is judged by (tests: a fake clock)
    holder: LockHolder | None = None
    stale: bool = False
    unreleased: list[str] = field(default_factory=list)
    _revs: dict[str, str] = field(default_factory=dict)  # held: database → our revision
    _lost: str | None = None
    _renewed: float = 0.0  # time.monotonic() of the last write that kept the locks
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, timeout: float = 0.0) -> None:
        """Take every lock, waiting up to ``timeout`` seconds; raises LockHeld."""
        self.holder = LockHolder.this_process(self.ttl)
        started = time.monotonic()
        locks = {name: self.seen.get(name, _Lock()) for name in self.databases}
        raced = 0
        fresh = False  # ``locks`` read now, not the plan's snapshot
        while True:
            try:
                held = self._attempt(locks)
            except HTTPStatusError as exc:  # a 500, a 429 still there after the retries
                names = sorted(locks)
                raise CouchError(
                    f"could not take the apply lock{'s' if len(names) > 1 else ''} of "
                    f"{', '.join(names[:3])}{' …' if len(names) > 3 else ''}: {exc}",
                    status=exc.status, error=exc.error, reason=exc.reason) from exc
            if held is None:
                break
            waited = time.monotonic() - started
            raced = 0 if held else raced + 1
            if ((held and waited >= timeout and fresh) or raced > RACED_ATTEMPTS):
                raise LockHeld(held, waited)
            if held and fresh:  # someone holds one: wait (jittered: waiters spread out)
                time.sleep(min(POLL_SECONDS * random.uniform(0.5, 1.5), timeout - waited))
            else:  # a revision moved under us (another apply came and went): read again now
                time.sleep(random.uniform(0, 0.05) * raced)
            locks = read_locks(self.client, self.databases)
            fresh = True
        self._renewed = time.monotonic()
        self.stale = any(  # another apply ran after plan read the locks
            locks[name].rev != self.seen.get(name, _Lock()).rev for name in self.databases)
        for name, lock in sorted(locks.items()):
            if lock.holder is not None:
                self.on_notice(f"took over the lock on {name} left by {lock.holder.left()}")
        self._beat = threading.Thread(target=self._heartbeat, name="couchsync-lock",
                                      daemon=True)
        self._beat.start()

    def _attempt(self, locks: Mapping[str, _Lock]) -> dict[str, LockHolder] | None:
        """Try once to take every lock in ``locks``: None when taken; else the live holders
        that stand in the way (empty: nobody holds them now, a revision had only moved)."""
        if held := _live(locks, self.clock()):
            return held
        names = sorted(locks)
        db = self.client.database(LOCK_DB)
        docs = [self._body(name, locks[name].rev) for name in names]
        try:
            answers = db.bulk_docs(docs)
        except NotFound:
            with contextlib.suppress(PreconditionFailed):  # created by a racing apply
                self.client.create(LOCK_DB)
            answers = db.bulk_docs(docs)
        written, errors = answers.revs(), answers.errors()
        taken = {name: written[lock_id(name)] for name in names if lock_id(name) in written}
        refused = {name: errors.get(lock_id(name), {}) for name in names if name not in taken
                   and errors.get(lock_id(name), {}).get("error") != "conflict"}
        if refused:  # not a race: no retry can help (a permission, say)
            self._give_back(taken)
            name, answer = sorted(refused.items())[0]
            raise CouchError(f"could not write the apply lock of {name} in {LOCK_DB}: "
                             f"{answer.get('error', 'no answer')}: {answer.get('reason', '')}",
                             error=answer.get("error"), reason=answer.get("reason"))
        if answers.accepted:  # 202: perhaps a racing write from the same revision elsewhere
            taken = self._confirm(taken)
        if len(taken) == len(names):
            self._revs = taken
            return None
        self._give_back(taken)  # all or nothing
        assert self.holder is not None  # set by acquire
        live = _live(read_locks(self.client, names), self.clock())
        return {name: holder for name, holder in live.items()
                if name not in taken and holder.run != self.holder.run}

    def _body(self, name: str, rev: str | None, *, free: bool = False) -> dict[str, Any]:
        assert self.holder is not None  # set by acquire
        body: dict[str, Any] = {"_id": lock_id(name), "database": name,
                                "holder": None if free else self.holder.to_body()}
        if free:
            body["last"] = self.holder.to_body()
        if rev:
            body["_rev"] = rev
        return body

    def _confirm(self, taken: dict[str, str]) -> dict[str, str]:
        """Of the locks written (``202``), those whose revision won with no conflict."""
        if not taken:
            return taken
        rows = self.client.database(LOCK_DB).all_docs(
            keys=[lock_id(name) for name in taken], include_docs=True, conflicts=True)
        mine = {}
        for (name, rev), row in zip(taken.items(), rows, strict=True):
            doc = row.get("doc") or {}
            if doc.get("_rev") == rev and not doc.get("_conflicts"):
                mine[name] = rev
            else:  # delete our losing revision, so that it cannot become the winner
                with contextlib.suppress(CouchError):  # the winner's heartbeat outranks it
                    self.client.database(LOCK_DB).delete(lock_id(name), rev=rev)
        return mine

    def _give_back(self, taken: Mapping[str, str]) -> None:
        if taken:
            self.client.database(LOCK_DB).bulk_docs(
                [self._body(name, rev, free=True) for name, rev in taken.items()])

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            # A lost server is apply's to report; the lock simply ages.
            with contextlib.suppress(CouchError):
                self._renew()

    def _renew(self) -> None:
        assert self.holder is not None
        with self._guard:
            if self._lost is not None or not self._revs:
                return
            self.holder = self.holder.renewed(self.ttl)
            answers = self.client.database(LOCK_DB).bulk_docs(
                [self._body(name, rev) for name, rev in self._revs.items()])
            renewed = {database_of(doc_id): rev for doc_id, rev in answers.revs().items()}
            missed = set(self._revs) - renewed.keys()  # our own writes, answers lost?
            for name, lock in read_locks(self.client, missed).items():
                if (lock.rev is not None and lock.holder is not None
                        and lock.holder.run == self.holder.run):
                    renewed[name] = lock.rev
            if answers.accepted:  # 202: a racing takeover on another node? as in acquire
                renewed = self._confirm(renewed)
            self._revs.update(renewed)
            lost = sorted(set(self._revs) - renewed.keys())
            if lost:
                self._lost = f"the lock on {lost[0]} was taken over"
                for name in lost:
                    del self._revs[name]
            else:
                self._renewed = time.monotonic()

    def check(self) -> None:
        """Raise LockLost when a lock was taken from this apply, or could not be renewed
        for long enough that another apply may take it over (called between writes)."""
        if self._lost is None and time.monotonic() - self._renewed > self.ttl * 2 / 3:
            self._lost = (f"the lock could not be renewed for {self.ttl * 2 / 3:.0f} s "
                          "(another apply may take it over)")
        if self._lost is not None:
            raise LockLost(self._lost + "; stopped before writing more")

    def release(self) -> None:
        """Free every lock this apply holds. Best effort: those a lost server kept are listed
        in ``unreleased`` (they expire after the TTL, or ``couchsync force-unlock``)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        with self._guard:
            revs, self._revs = self._revs, {}
            try:
                self._give_back(revs)
            except CouchError:
                self.unreleased = sorted(revs)

    def __enter__(self) -> LockSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(client: Client, databases: Iterable[str]) -> dict[str, LockHolder | None]:
    """Free the locks of ``databases`` whoever holds them; the holder each had (or None).
    A pattern (``*``) frees every lock it matches. A holder renewing meanwhile makes the
    write conflict: read and free again (a few times; then the conflict is raised)."""
    freed: dict[str, LockHolder | None] = {}
    db = client.database(LOCK_DB)
    pending = _lock_names(client, databases)
    for attempt in range(4):
        locks = read_locks(client, pending)
        bodies = []
        for name in pending:
            lock = locks[name]
            freed.setdefault(name, lock.holder)
            if lock.holder is not None:
                bodies.append({"_id": lock_id(name), "_rev": lock.rev, "database": name,
                               "holder": None, "last": lock.holder.to_body(),
                               "forced": _iso(time.time())})
        answers = db.bulk_docs(bodies) if bodies else BulkResults()
        for doc_id in answers.revs():
            with contextlib.suppress(NotFound):
                for rev in db.get(doc_id, conflicts=True).get("_conflicts", []):
                    with contextlib.suppress(CouchError):
                        db.delete(doc_id, rev=rev)
        errors = answers.errors()
        pending = [database_of(doc_id) for doc_id, answer in errors.items()
                   if answer["error"] == "conflict"]
        for doc_id, answer in errors.items():
            if answer["error"] != "conflict" or attempt == 3:
                raise CouchError(f"could not free the lock {doc_id}: "
                                 f"{answer['error']}: {answer.get('reason', '')}",
                                 error=answer["error"], reason=answer.get("reason"))
        if not pending:
            break
    return freed


def unreleased_note(databases: list[str], ttl: float) -> str:
    """What to do about locks a lost server kept at the end of an apply."""
    return (f"Its lock could not be freed: the next apply takes it over after {ttl:.0f} s, "
            "or run: couchsync force-unlock " + " ".join(databases[:3])
            + (f" … ({len(databases):,} databases; a pattern such as 'tenant-*' names many)"
               if len(databases) > 3 else ""))


def _lock_names(client: Client, databases: Iterable[str]) -> list[str]:
    """``databases`` with each pattern replaced by the locked databases it matches."""
    given = set(databases)
    patterns = [name for name in given if is_pattern(name)]
    names = given.difference(patterns)
    if patterns:
        try:
            locked = [database_of(row["id"]) for row in client.database(LOCK_DB).iter_all_docs(
                start_key=lock_id(""), end_key=lock_id("\ufff0"))]  # not the plans' hints
        except NotFound:  # no apply ever ran here
            locked = []
        names.update(name for name in locked if any(matches(p, name) for p in patterns))
    return sorted(names)


def _live(locks: Mapping[str, _Lock], now: float) -> dict[str, LockHolder]:
    """The holders of ``locks`` that are alive (neither expired nor gone)."""
    return {name: lock.holder for name, lock in locks.items()
            if lock.holder is not None and not lock.holder.abandoned(now)}


def _number(value: Any, kind: type[_N]) -> _N:
    """A number from a lock document someone may have edited by hand (0 if it is none)."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        return kind(0)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_namespace() -> str:
    """This process's PID namespace on Linux (its inode), "host" where there is none."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "host"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container without passwd entry
        return str(os.getuid())

