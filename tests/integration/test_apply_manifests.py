"""couchsync.apply_manifests, the safe apply as one library call, against the real server:
the locks it takes, the plan made again under them, saved plans, and a caller saying no."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from couchsync import ApplyHooks, apply_manifests
from couchsync.client import Client
from couchsync.lock import LockSet, read_locks
from couchsync.operation import ApplyCancelled, Progress, plan_manifests
from couchsync.plan import Plan
from couchsync.saved_plan import ReadVariables, SavedPlan, SavedPlanError, server_of


def write(tmp_path: Path, databases: dict[str, Any]) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}))
    return str(path)


def other_apply(client: Client, name: str, doc_id: str, body: dict[str, Any]) -> None:
    """What another apply does between this one's plan and its locks: lock, write, free."""
    with LockSet(client, [name], read_locks(client, [name])) as locks:
        locks.acquire()
        client.database(name).update(doc_id, body)


class Recorder(ApplyHooks):
    def __init__(self, client: Client, names: list[str],
                 on_locking: Callable[[], None] = lambda: None) -> None:
        self.client, self.names, self.on_locking = client, names, on_locking
        self.replans: list[Plan] = []
        self.held_while_applying: dict[str, bool] = {}

    def locking(self, plan: Plan, locks: LockSet) -> None:
        self.on_locking()

    def replanned(self, plan: Plan) -> bool:
        self.replans.append(plan)
        return True

    def progress(self, verb: str) -> Any:
        if verb == "Applying":  # the locks are held now
            self.held_while_applying = {name: lock.holder is not None for name, lock
                                        in read_locks(self.client, self.names).items()}
        return super().progress(verb)


def test_the_locks_are_those_of_the_plan_s_databases_and_are_freed(
    client: Client, db_name_factory: Callable[[], str], tmp_path: Path
) -> None:
    unchanged, changed = db_name_factory(), db_name_factory()
    client.create(unchanged)
    path = write(tmp_path, {unchanged: {}, changed: {"documents": [{"_id": "a", "v": 1}]}})
    hooks = Recorder(client, [unchanged, changed])

    done = apply_manifests(client, [path], hooks=hooks)

    assert done.plan.databases() == [changed]
    assert hooks.held_while_applying == {unchanged: False, changed: True}
    assert done.result is not None and done.result.summary() == (
        "Apply complete: 2 created, 0 updated, 0 deleted.")
    assert done.unreleased == []
    assert all(lock.holder is None for lock in read_locks(client, [changed]).values())
    assert client.database(changed).get("a")["v"] == 1


def test_another_apply_between_plan_and_lock_makes_it_plan_again(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    client.create(db_name)
    client.database(db_name).update("a", {"v": 1})
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a", "v": 2}]}})
    hooks = Recorder(client, [db_name],
                     on_locking=lambda: other_apply(client, db_name, "b", {"v": 0}))

    done = apply_manifests(client, [path], hooks=hooks)

    # The other apply's lock revision moved: planned again, and that plan is the one applied
    # (the same step, at the same revision of a: not a changed plan, so not shown again).
    assert hooks.replans == []
    assert [step.address for step in done.plan.steps] == [f"db:{db_name}/doc:a"]
    assert client.database(db_name).get("a")["v"] == 2

    client.database(db_name).update("a", {"v": 1})  # drift: the plan updates a at rev 3
    hooks = Recorder(client, [db_name],  # this time the other apply writes a itself
                     on_locking=lambda: other_apply(client, db_name, "a", {"v": 3}))
    done = apply_manifests(client, [path], hooks=hooks)

    # The plan made under the lock differs (a's revision): the caller is told, and asked.
    assert [plan.steps[0].rev for plan in hooks.replans] == [done.plan.steps[0].rev]
    assert (done.plan.steps[0].rev or "").startswith("4-")
    assert client.database(db_name).get("a")["v"] == 2


def saved_plan(client: Client, path: str) -> SavedPlan:
    environ = ReadVariables(os.environ)
    desired, plan, _ = plan_manifests(client, [path], environ=environ)
    url, uuid = server_of(client)
    return SavedPlan.of(plan, desired, server_url=url, server_uuid=uuid, paths=[path],
                        settings={"only": None, "db_prefix": "", "db_suffix": "",
                                  "design_deploy": None}, read=environ.read)


def test_a_saved_plan_is_refused_when_the_server_moved_before_or_under_the_lock(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    client.create(db_name)
    client.database(db_name).update("a", {"v": 1})
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a", "v": 2}]}})

    saved = saved_plan(client, path)
    client.database(db_name).update("a", {"v": 5})
    with pytest.raises(SavedPlanError, match="refusing the saved plan: the server moved"):
        apply_manifests(client, saved=saved)
    assert client.database(db_name).get("a")["v"] == 5

    # Checked again when another apply ran between the plan and the lock.
    saved = saved_plan(client, path)
    hooks = Recorder(client, [db_name],
                     on_locking=lambda: other_apply(client, db_name, "a", {"v": 6}))
    with pytest.raises(SavedPlanError, match="refusing the saved plan: the server moved"):
        apply_manifests(client, saved=saved, hooks=hooks)
    assert client.database(db_name).get("a")["v"] == 6
    assert read_locks(client, [db_name])[db_name].holder is None  # freed on the way out

    with pytest.raises(SavedPlanError, match="--db-prefix differs from the saved plan's"):
        apply_manifests(client, saved=saved_plan(client, path), db_prefix="x-")


def test_a_caller_that_does_not_confirm_gets_nothing_written(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": "a"}]}})
    asked: list[Plan] = []

    class No(ApplyHooks):
        def confirm(self, plan: Plan) -> bool:
            asked.append(plan)
            return False

        def progress(self, verb: str) -> Any:
            assert verb == "Planning"
            return super().progress(verb)

    with pytest.raises(ApplyCancelled, match="apply cancelled"):
        apply_manifests(client, [path], hooks=No())
    assert [step.address for step in asked[0].steps] == [f"db:{db_name}",
                                                          f"db:{db_name}/doc:a"]
    assert db_name not in client
    assert read_locks(client, [db_name])[db_name].rev is None  # no lock was ever taken


def test_progress_hooks_see_the_steps(client: Client, db_name: str, tmp_path: Path) -> None:
    path = write(tmp_path, {db_name: {"documents": [{"_id": str(n)} for n in range(3)]}})
    seen: list[tuple[int, int]] = []

    class Steps(Progress):
        def steps(self, done: int, total: int) -> None:
            seen.append((done, total))

    class Hooks(ApplyHooks):
        def progress(self, verb: str) -> Any:
            import contextlib

            return contextlib.nullcontext(Steps())

    apply_manifests(client, [path], hooks=Hooks())
    assert seen and seen[-1][0] == seen[-1][1] > 0
