"""``--shard K/N`` on the real server: the N shard plans are disjoint and together the
full plan, and N runners applying at once (each with its own locks) converge the fleet."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.client import Client
from couchsync.manifest import Shard
from couchsync.operation import apply_manifests, plan_manifests

TEMPLATE: dict[str, Any] = {
    "security": {"members": {"roles": ["tenant"]}},
    "indexes": {"by-type": {"fields": ["type"]}},
    "documents": [{"_id": "settings", "theme": "dark"}, {"_id": "welcome", "text": "hi"}],
}


@pytest.fixture
def fleet(couch_url: str, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A manifest over a pattern matching 12 databases and 3 named ones; their names."""
    prefix = f"cstest_shard_{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i:02d}" for i in range(12)]
    named = [f"{prefix.rstrip('-')}_n{i}" for i in range(3)]
    with httpx.Client(base_url=couch_url, timeout=60) as http:
        for name in names:
            http.put(f"/{name}").raise_for_status()
        path = tmp_path / "m.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "databases": {
            prefix + "*": TEMPLATE,
            **{name: {"documents": [{"_id": "a", "v": i}]} for i, name in enumerate(named)}}}))
        yield str(path), [*names, *named]
        for name in [*names, *named]:
            http.delete(f"/{name}")


def steps_of(couch_url: str, path: str, shard: Shard | None) -> dict[str, Any]:
    with Client(couch_url) as client:
        plan = plan_manifests(client, [path], shard=shard, full=True)[1]
    return {step["address"]: step for step in plan.to_dict()["steps"]}


@pytest.mark.parametrize("runners", [2, 3, 5])
def test_the_shard_plans_are_disjoint_and_together_the_full_plan(
        couch_url: str, fleet: tuple[str, list[str]], runners: int) -> None:
    path, names = fleet
    full = steps_of(couch_url, path, None)
    parts = [steps_of(couch_url, path, Shard(k, runners)) for k in range(1, runners + 1)]

    assert sum(len(part) for part in parts) == len(full)
    assert {address: step for part in parts for address, step in part.items()} == full
    planned = [{step["database"] for step in part.values()} for part in parts]
    assert set().union(*planned) == set(names)
    assert all(not a & b for i, a in enumerate(planned) for b in planned[i + 1:])


def test_runners_applying_their_shards_at_once_converge_the_fleet(
        couch_url: str, fleet: tuple[str, list[str]]) -> None:
    path, _ = fleet
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def runner(k: int) -> None:
        try:
            with Client(couch_url) as client:
                start.wait()
                apply_manifests(client, [path], shard=Shard(k, 3))  # no waiting for locks
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(k,)) for k in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert steps_of(couch_url, path, None) == {}


def test_a_shard_that_cannot_be_is_a_clear_error(fleet: tuple[str, list[str]],
                                                 couch_url: str) -> None:
    path, _ = fleet
    for given, message in (("3/2", "--shard 3/2: K must be from 1 to N"),
                           ("two", "--shard 'two': write K/N")):
        result = CliRunner().invoke(app, ["plan", path, "--shard", given],
                                    env={"COUCHDB_URL": couch_url})
        assert result.exit_code == 1
        assert message in result.stderr and "Traceback" not in result.output
