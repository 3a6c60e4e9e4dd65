"""Fleets: one ``prefix*`` pattern over many databases, planned and applied for real.

Every test makes databases under a prefix of its own, so a pattern never
reaches another test's databases (nor anything else on a shared server).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.client import Client
from couchsync.lock import LockSet, read_locks
from couchsync.read import _planner, discover, load_and_plan

TEMPLATE: dict[str, Any] = {
    "security": {"admins": {"names": [], "roles": []},
                 "members": {"names": [], "roles": ["tenant"]}},
    "design_docs": {"app": {"views": {"by_type": {
        "map": "function (doc) { emit(doc.type, 1); }", "reduce": "_count"}}}},
    "indexes": {"by-type": {"fields": ["type"]},
                # Read off its design doc in a small database: the filter must round-trip.
                "notes": {"fields": ["type", "text"], "ddoc": "idx",
                          "partial_filter_selector": {"type": {"$eq": "note"}}}},
    "documents": [{"_id": "settings", "type": "settings", "theme": "dark"},
                  {"_id": "welcome", "type": "note", "text": "hello"}],
}


class Fleet:
    """Databases ``<prefix>NN`` on the test server, deleted afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"cstest_fleet_{uuid.uuid4().hex[:8]}-"
        self.pattern = self.prefix + "*"
        self.names: list[str] = []
        self.http = httpx.Client(base_url=url, timeout=60)

    def create(self, count: int) -> list[str]:
        made = [f"{self.prefix}{len(self.names) + i:02d}" for i in range(count)]
        for name in made:
            self.http.put(f"/{name}").raise_for_status()
        self.names += made
        return made

    def get(self, path: str) -> Any:
        return self.http.get(path).json()

    def close(self) -> None:
        for name in self.names:
            self.http.delete(f"/{name}")
        self.http.close()


@pytest.fixture
def fleet(couch_url: str) -> Iterator[Fleet]:
    made = Fleet(couch_url)
    yield made
    made.close()


@pytest.fixture
def cli(couch_url: str) -> Callable[..., Any]:
    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env={"COUCHDB_URL": couch_url,
                                                        "NO_COLOR": "1"})
    return invoke


def _every_copy(url: str, db: str) -> dict[str, str]:
    """The query parameters that put a test's own write on every shard copy (none off a
    cluster): a small database a pattern matched is read whole from one copy per shard
    range, which a quorum write may not have reached yet (docs/plan-and-apply.md)."""
    n = (httpx.get(f"{url}/{db}", timeout=30).json().get("cluster") or {}).get("n")
    return {"w": str(n)} if n else {}


def write(tmp_path: Path, databases: dict[str, Any]) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}))
    return str(path)


def plan_json(cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    result = cli("plan", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


def test_a_pattern_converges_a_fleet_and_finds_new_databases_next_time(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path, db_name: str
) -> None:
    fleet.create(12)
    httpx.put(f"{fleet.url}/{db_name}").raise_for_status()  # matched by no pattern
    untouched = fleet.get(f"/{db_name}/_security")
    path = write(tmp_path, {fleet.pattern: TEMPLATE})

    applied = cli("apply", path, "--yes", "--parallel", "4")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 60 created, 12 updated, 0 deleted." in applied.stdout
    for name in fleet.names:
        assert fleet.get(f"/{name}/_security") == TEMPLATE["security"]
        assert fleet.get(f"/{name}/settings")["theme"] == "dark"
        assert "by_type" in fleet.get(f"/{name}/_design/app")["views"]
        assert {"by-type", "notes"} <= {i["name"] for i in fleet.get(f"/{name}/_index")["indexes"]}
        record = fleet.get(f"/{name}/_local/couchsync")["managed"]
        assert sorted(record) == ["settings", "welcome"]  # each database's own record
    assert fleet.get(f"/{db_name}/_security") == untouched
    assert fleet.get(f"/{db_name}/_all_docs")["total_rows"] == 0

    again = cli("plan", path, "--detailed-exitcode", "--full")
    assert (again.exit_code, again.stdout) == (0, "No changes. The server matches the manifests.\n")

    new = fleet.create(2)
    plan = plan_json(cli, path)
    assert {step["database"] for step in plan["steps"]} == set(new)
    assert plan["summary"] == {"create": 10, "update": 2, "delete": 0}


def test_the_text_plan_shows_a_change_once_for_all_databases(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path
) -> None:
    fleet.create(5)
    path = write(tmp_path, {fleet.pattern: {"documents": TEMPLATE["documents"]}})
    text = cli("plan", path).stdout
    assert "  + doc:settings in 5 databases\n      # not on the server\n" in text
    assert text.count("doc:settings") == 1
    assert "# --list-databases names them" in text
    assert text.endswith("Plan: 10 to create, 0 to update, 0 to delete, in 5 databases.\n")
    listed = cli("plan", path, "--list-databases").stdout
    assert all(f"        db:{name}\n" in listed for name in fleet.names)
    # Different values are different blocks: one database drifted its own way.
    assert cli("apply", path, "--yes").exit_code == 0
    drifted = fleet.names[2]
    body = fleet.get(f"/{drifted}/settings")
    httpx.put(f"{fleet.url}/{drifted}/settings", json={**body, "theme": "pink"},
              params=_every_copy(fleet.url, drifted))  # a small database is read from one
    changed = write(tmp_path, {fleet.pattern: {"documents": [
        {**TEMPLATE["documents"][0], "theme": "light"}, TEMPLATE["documents"][1]]}})
    text = cli("plan", changed).stdout
    assert "  ~ doc:settings in 4 databases\n" in text
    assert f"  ~ db:{drifted}/doc:settings (rev 2-" in text
    assert '~ theme: "pink" → "light"' in text


def test_one_failing_database_does_not_stop_the_others(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path
) -> None:
    fleet.create(6)
    guarded = fleet.names[3]
    httpx.put(f"{fleet.url}/{guarded}/_design/guard", json={
        "validate_doc_update": "function () { throw({forbidden: 'read-only tenant'}); }"},
        params=_every_copy(fleet.url, guarded),  # in force on every copy before the apply
    ).raise_for_status()
    path = write(tmp_path, {fleet.pattern: {"documents": TEMPLATE["documents"]}})

    applied = cli("apply", path, "--yes", "--parallel", "3")
    assert applied.exit_code == 1
    assert f"db:{guarded}/doc:settings: forbidden: read-only tenant" in applied.stderr
    assert "Traceback" not in applied.output
    for name in fleet.names:
        rows = fleet.get(f"/{name}/_all_docs?keys=" + json.dumps(["settings", "welcome"]))
        exists = ["error" not in row and "value" in row for row in rows["rows"]]
        assert exists == ([False, False] if name == guarded else [True, True])
    plan = plan_json(cli, path)
    assert {step["database"] for step in plan["steps"]} == {guarded}


def test_an_unreadable_database_is_listed_and_the_others_planned(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path
) -> None:
    fleet.create(4)
    odd = fleet.names[1]
    httpx.put(f"{fleet.url}/{odd}/_local/couchsync", json={"format": 99}).raise_for_status()
    path = write(tmp_path, {fleet.pattern: {"prune": True,
                                            "documents": TEMPLATE["documents"][:1]}})
    result = cli("plan", path)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: could not read 1 database; nothing was planned for "
                                    f"it:\n  {odd}: _local/couchsync in {odd} has format 99")
    assert "Plan: 3 to create, 0 to update, 0 to delete, in 3 databases." in result.stdout
    plan = json.loads(cli("plan", path, "--format", "json").stdout)
    assert list(plan["errors"]) == [odd]


def test_only_accepts_patterns(fleet: Fleet, cli: Callable[..., Any], tmp_path: Path) -> None:
    fleet.create(12)
    path = write(tmp_path, {fleet.pattern: {"documents": TEMPLATE["documents"][:1]}})
    plan = plan_json(cli, path, "--only", fleet.prefix + "1*")
    assert sorted({s["database"] for s in plan["steps"]}) == [n for n in fleet.names
                                                            if n.startswith(fleet.prefix + "1")]
    missing = cli("plan", path, "--only", fleet.prefix + "9*")
    assert missing.exit_code == 1
    assert "matches no database that the manifests describe" in missing.stderr


def test_prune_and_the_ownership_record_work_per_database(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path
) -> None:
    fleet.create(5)
    path = write(tmp_path, {fleet.pattern: {"prune": True, "documents": TEMPLATE["documents"]}})
    assert cli("apply", path, "--yes").exit_code == 0
    # A database someone seeded by hand keeps what couchsync did not create.
    httpx.put(f"{fleet.url}/{fleet.names[0]}/mine", json={"x": 1}).raise_for_status()
    fewer = write(tmp_path, {fleet.pattern: {"prune": True,
                                             "documents": TEMPLATE["documents"][:1]}})
    plan = plan_json(cli, fewer)
    assert sorted((s["action"], s["database"], s["id"]) for s in plan["steps"]) == [
        ("-", name, "welcome") for name in fleet.names]
    assert cli("apply", fewer, "--yes").exit_code == 0
    assert fleet.get(f"/{fleet.names[0]}/mine")["x"] == 1
    assert plan_json(cli, fewer)["steps"] == []


def test_a_locked_database_of_the_fleet_refuses_the_apply_naming_it(
    fleet: Fleet, cli: Callable[..., Any], tmp_path: Path, couch_url: str
) -> None:
    fleet.create(4)
    path = write(tmp_path, {fleet.pattern: {"documents": TEMPLATE["documents"][:1]}})
    with Client(couch_url) as client:
        other = LockSet(client, [fleet.names[2]], read_locks(client, [fleet.names[2]]))
        other.acquire()
        try:
            refused = cli("apply", path, "--yes")
        finally:
            other.release()
    assert refused.exit_code == 1
    assert f"  {fleet.names[2]}: " in refused.stderr
    assert fleet.get(f"/{fleet.names[0]}/_all_docs")["total_rows"] == 0  # all or nothing
    assert cli("apply", path, "--yes").exit_code == 0


def test_discovery_reads_the_names_in_pages(
    fleet: Fleet, couch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.create(11)
    monkeypatch.setattr(_planner, "DISCOVERY_PAGE", 3)
    pages: list[int] = []
    with Client(couch_url) as client:
        listing = client.server.iter_database_names

        def counted(**options: Any) -> Iterator[str]:
            pages.append(options["page_size"])
            return listing(**options)

        monkeypatch.setattr(client.server, "iter_database_names", counted)
        path = write(tmp_path, {fleet.pattern: {"documents": TEMPLATE["documents"][:1]}})
        desired, plan = load_and_plan(client, [path], parallel=4)
        assert list(desired.databases) == fleet.names
        assert discover(client, desired) == []  # named now: nothing more to find
    assert pages == [3, 3]
    assert {step.database for step in plan.steps} == set(fleet.names)
