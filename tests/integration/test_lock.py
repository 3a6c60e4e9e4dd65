"""The apply lock (couchsync.lock) against the real server, two holders in one process."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from couchsync.client import Client
from couchsync.lock import (
    LOCK_DB,
    LockHeld,
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
    gone = LockSet(client, names, read_locks(client, names), ttl=0.3)
    gone.acquire()
    gone._stop.set()  # a killed process renews nothing
    time.sleep(0.5)
    notices: list[str] = []
    taker = LockSet(client, names, read_locks(client, names), on_notice=notices.append)
    taker.acquire(timeout=0)
    try:
        assert len(notices) == 2 and all("took over the expired lock" in n for n in notices)
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
    holder = LockSet(client, names, read_locks(client, names), ttl=0.6)
    holder.acquire()
    try:
        holder._stop.set()  # no heartbeat from here on
        holder.check()  # just taken: fine
        time.sleep(0.5)
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
