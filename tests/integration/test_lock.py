"""The apply lock (couchsync.lock) against the real server: holders in this process, and in
processes of their own (killed, or holding while an apply waits)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cli_helpers import COUCHSYNC, lock_holder, run

from couchsync.client import Client
from couchsync.lock import (
    LOCK_DB,
    LockHeld,
    LockHolder,
    LockLost,
    LockSet,
    force_unlock,
    lock_id,
    read_locks,
)


@pytest.fixture
def names(db_name_factory: Callable[[], str]) -> list[str]:
    return sorted([db_name_factory(), db_name_factory()])


@pytest.fixture
def client(couch_url: str) -> Iterator[Client]:
    with Client(couch_url) as opened:
        yield opened


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(
    client: Client, names: list[str]
) -> None:
    first = LockSet(client, names, read_locks(client, names))
    first.acquire()
    try:
        second = LockSet(client, names[1:], read_locks(client, names[1:]))
        with pytest.raises(LockHeld) as refused:
            second.acquire(timeout=0)
        text = str(refused.value)
        assert f"  {names[1]}: " in text
        assert f"@{socket.gethostname()} (pid {os.getpid()}) since " in text
        assert list(refused.value.held) == [names[1]]
        # All or nothing: the lock of names[0] was not left taken by the refused attempt.
        assert read_locks(client, names)[names[0]].holder == first.holder
    finally:
        first.release()
    assert all(lock.holder is None for lock in read_locks(client, names).values())


def test_a_lock_freed_while_waiting_is_taken_and_the_plan_marked_stale(
    client: Client, names: list[str]
) -> None:
    seen = read_locks(client, names)  # as a plan reads them, before another apply runs
    other = LockSet(client, names, seen)
    other.acquire()
    other.release()
    mine = LockSet(client, names, seen)
    mine.acquire(timeout=5)
    try:
        assert mine.stale  # the other apply ran after "plan" read the locks
    finally:
        mine.release()
    fresh = LockSet(client, names, read_locks(client, names))
    fresh.acquire()
    fresh.release()
    assert not fresh.stale


def test_an_expired_lock_is_taken_over_and_its_holder_named(
    client: Client, names: list[str]
) -> None:
    gone = LockSet(client, names, read_locks(client, names), ttl=60)
    gone.acquire()
    gone._stop.set()  # a killed process renews nothing
    notices: list[str] = []
    later = LockSet(client, names, read_locks(client, names), on_notice=notices.append,
                    clock=lambda: time.time() + 61)  # its TTL has passed (a fake clock)
    now = LockSet(client, names, read_locks(client, names))
    with pytest.raises(LockHeld):  # but not before: this process is alive
        now.acquire(timeout=0)
    taker = later
    taker.acquire(timeout=0)
    try:
        assert len(notices) == 2
        assert all(": it expired (not renewed for its TTL)" in n for n in notices), notices
        with pytest.raises(LockLost, match="taken over"):
            gone._renew()
            gone.check()
    finally:
        taker.release()


def test_force_unlock_frees_whoever_holds_the_lock(client: Client, names: list[str]) -> None:
    holder = LockSet(client, names, read_locks(client, names))
    holder.acquire()
    freed = force_unlock(client, names)
    assert holder.holder is not None
    assert {name: h.run for name, h in freed.items() if h} == {
        name: holder.holder.run for name in names}
    assert all(lock.holder is None for lock in read_locks(client, names).values())
    assert force_unlock(client, names) == {name: None for name in names}
    holder.release()  # its give-back conflicts: harmless


def test_lock_documents_live_in_their_own_database(client: Client, names: list[str]) -> None:
    with LockSet(client, names[:1], read_locks(client, names[:1])) as held:
        held.acquire()
        assert client.database(LOCK_DB).get(lock_id(names[0]))["database"] == names[0]
    assert client.database(LOCK_DB).get(lock_id(names[0]))["holder"] is None


def test_a_lock_not_renewed_for_two_thirds_of_its_ttl_stops_the_apply(
    client: Client, names: list[str]
) -> None:
    """Suspended, or cut off from the server: another apply may take it over by now."""
    holder = LockSet(client, names, read_locks(client, names), ttl=60)
    holder.acquire()
    try:
        holder._stop.set()  # no heartbeat from here on
        holder.check()  # just taken: fine
        holder._renewed -= 39  # last renewed 39 s ago: still within 2/3 of the TTL
        holder.check()
        holder._renewed -= 2  # 41 s ago (no sleeping: a loaded machine could not tell)
        with pytest.raises(LockLost, match="could not be renewed"):
            holder.check()
    finally:
        holder.release()


def test_a_renewal_whose_answer_was_lost_is_recognised_as_its_own(
    client: Client, names: list[str]
) -> None:
    holder = LockSet(client, names[:1], read_locks(client, names[:1]))
    holder.acquire()
    try:
        assert holder.holder is not None
        # The renewal reached the server but its answer did not reach us:
        doc = client.database(LOCK_DB).get(lock_id(names[0]))
        client.database(LOCK_DB).update(lock_id(names[0]), doc)
        holder._renew()
        holder.check()  # still ours, not "taken over"
        assert read_locks(client, names[:1])[names[0]].rev == holder._revs[names[0]]
    finally:
        holder.release()
    assert read_locks(client, names[:1])[names[0]].holder is None


# A process of its own that takes the locks of argv[2:] on argv[1], says "locked", and
# frees them when a line comes on stdin (unless it is killed first).
_HOLDER = """
import sys
from couchsync.client import Client
from couchsync.lock import LockSet, read_locks
names = sys.argv[2:]
with Client(sys.argv[1]) as client:
    locks = LockSet(client, names, read_locks(client, names))
    locks.acquire()
    print("locked", flush=True)
    sys.stdin.readline()
    locks.release()
"""


def _holder(url: str, names: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, url, *names], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def _manifest(path: Path, db: str) -> str:
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {"documents": [
        {"_id": "settings", "theme": "dark"}]}}}))
    return str(path)


def test_a_lock_left_by_a_killed_process_on_this_host_is_taken_over_at_once(
    couch_url: str, client: Client, db_name: str, tmp_path: Path
) -> None:
    holder = _holder(couch_url, [db_name])
    with pytest.raises(LockHeld):  # alive: its lock holds
        LockSet(client, [db_name], read_locks(client, [db_name])).acquire(timeout=0)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert holder.returncode == -signal.SIGKILL
    assert read_locks(client, [db_name])[db_name].holder is not None  # left behind

    done = run(couch_url, "apply", _manifest(tmp_path / "m.yaml", db_name), "--yes")
    assert done.returncode == 0, done.stderr  # at once: the TTL is 600 s
    assert (f"Note: took over the lock on {db_name} left by " in done.stderr
            and f"(pid {holder.pid})" in done.stderr
            and f": its process {holder.pid} on this host is gone" in done.stderr), done.stderr
    assert read_locks(client, [db_name])[db_name].holder is None


def test_a_locked_apply_says_so_before_planning_and_plans_once_the_lock_is_free(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path / "m.yaml", db_name)
    holder = _holder(couch_url, [db_name])
    try:
        refused = run(couch_url, "apply", manifest, "--yes")
        assert refused.returncode == 1
        assert f"{db_name}: " in refused.stderr and f"(pid {holder.pid})" in refused.stderr
        assert refused.stdout == ""  # no plan shown: nothing was planned

        waiting = subprocess.Popen(  # stderr with stdout: the order of the lines shows
            [COUCHSYNC, "apply", manifest, "--yes", "--lock-timeout", "600"], text=True,
            env={**os.environ, "COUCHDB_URL": couch_url, "NO_COLOR": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert waiting.stdout is not None
        lines = []
        for line in waiting.stdout:  # the events of the run, in order
            lines.append(line)
            if "waiting for the lock" in line:
                break
        assert lines[-1].startswith(
            f"Note: waiting for the lock held by {socket.gethostname()}/{holder.pid} ("), lines
        assert f"since {_since(couch_url, db_name)} on {db_name}" in lines[-1]
        assert not any(f"db:{db_name}" in line for line in lines)  # planned nothing yet
    finally:
        holder.communicate("free\n")
    rest, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, rest
    assert f"+ db:{db_name}/doc:settings" in rest  # planned once the lock was free
    assert "Apply complete: 2 created" in rest


def _since(url: str, db: str) -> str:
    holder = lock_holder(url, db)
    assert holder is not None
    return str(holder["since"])


def test_a_dead_pid_of_another_pid_namespace_keeps_its_lock_until_the_ttl(
    client: Client, db_name: str
) -> None:
    """Containers may share a host name without seeing each other's processes: only a PID
    of this process's namespace is known to be gone."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(ended.stdout)  # a PID that no longer exists (reaped)
    own = LockHolder.this_process(600)
    for pid_ns, taken in (("4026531836-elsewhere", False), (own.pid_ns, True)):
        locks = read_locks(client, [db_name])
        holder = replace(own, pid=dead, run=os.urandom(16).hex(), pid_ns=pid_ns)
        body: dict[str, object] = {"_id": lock_id(db_name), "database": db_name,
                                   "holder": holder.to_body()}
        if locks[db_name].rev:
            body["_rev"] = locks[db_name].rev
        client.database(LOCK_DB).bulk_docs([body])
        taker = LockSet(client, [db_name], read_locks(client, [db_name]))
        if taken:
            taker.acquire(timeout=0)
            taker.release()
        else:
            with pytest.raises(LockHeld):
                taker.acquire(timeout=0)
