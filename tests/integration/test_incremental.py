"""Incremental plans on the real server: a database an apply found converged is skipped
while its sequences stay where they were, and every change by anyone else is read in
full and planned (docs/plan-and-apply.md, "Incremental plans").

On a cluster a copy's sequence is trusted only after a second read saw it (``plan/
_hints.py``), and which copy answers varies: there the tests assert that no database
anyone changed is ever skipped, and how many unchanged ones are skipped is what the
single node and PouchDB Server pin down (tests/unit/plan/test_hints.py pins the
cluster's rule on real sequences).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sync_helpers import counting_client
from typer.testing import CliRunner

import couchsync
from couchsync._names import LOCK_DB
from couchsync.cli import app
from couchsync.client import Client
from couchsync.manifest import Shard
from couchsync.operation import ApplyHooks, Progress, apply_manifests, plan_manifests
from couchsync.plan import Hint, Plan
from couchsync.plan._hints import EDITED, GONE, HINT_DOCS, MOVED, NEW, _copies
from couchsync.read import read_hints, record_hints
from couchsync.read._planner import CLUSTER_ASKS

TEMPLATE: dict[str, Any] = {
    "security": {"admins": {"names": [], "roles": []},
                 "members": {"names": [], "roles": ["tenant"]}},
    "design_docs": {"app": {"views": {"by_type": {
        "map": "function (doc) { emit(doc.type, 1); }"}}}},
    "indexes": {"by-type": {"fields": ["type"]}},
    "documents": [{"_id": "settings", "type": "settings", "theme": "dark"}],
}


class Setup:
    """A fleet ``<prefix>NN`` a pattern matches and one named database, on the server
    under test, deleted afterwards; ``plan``/``apply`` through the library."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url, self.tmp_path = url, tmp_path
        self.prefix = f"cstest_inc_{uuid.uuid4().hex[:8]}-"
        self.named = self.prefix.rstrip("-") + "_catalog"
        self.names: list[str] = []
        self.http = httpx.Client(base_url=url, timeout=60)
        self.client = Client(url)
        self.template = TEMPLATE
        cluster = self.http.get("/_users").json().get("cluster")
        n = (cluster or {}).get("n")
        self.w = {"w": str(n)} if n else {}  # a test's write reaches every copy read
        self.cluster = (n or 1) > 1
        self.couchdb = cluster is not None  # PouchDB Server: never skipped

    def create(self, count: int) -> list[str]:
        made = [f"{self.prefix}{len(self.names) + i:02d}" for i in range(count)]
        for name in made:
            self.http.put(f"/{name}").raise_for_status()
        self.names += made
        return made

    def manifest(self) -> str:
        path = self.tmp_path / "m.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "databases": {
            self.prefix + "*": self.template,
            self.named: {"documents": [{"_id": "a", "v": 1}, {"_id": "b", "v": 2}]}}}))
        return str(path)

    def plan(self, full: bool = False) -> Plan:
        return plan_manifests(self.client, [self.manifest()], full=full)[1]

    def apply(self) -> Plan:
        return apply_manifests(self.client, [self.manifest()]).plan

    def settle(self, rounds: int = 12) -> Plan:
        """Apply until the plan skips every database; the last plan. An apply records the
        databases its plan found converged: the second off a cluster, where a copy is
        trusted once read twice (and which copy answers varies)."""
        for _ in range(rounds if self.cluster else 2):
            self.apply()
            plan = self.plan()
            if plan.unchanged is not None and not plan.read_in_full:
                break
        return plan

    def put(self, path: str, body: dict[str, Any]) -> None:
        current = self.http.get(path)
        rev = {"_rev": current.json()["_rev"]} if current.status_code == 200 else {}
        self.http.put(path, json={**body, **rev}, params=self.w).raise_for_status()

    def everything(self) -> set[str]:
        return {*self.names, self.named}

    def close(self) -> None:
        for name in [*self.names, self.named]:
            self.http.delete(f"/{name}")
        self.http.close()
        self.client.close()


@pytest.fixture
def setup(couch_url: str, tmp_path: Path) -> Iterator[Setup]:
    made = Setup(couch_url, tmp_path)
    yield made
    made.close()


def skipped_at_most(plan: Plan, setup: Setup, unchanged: set[str]) -> None:
    """No database outside ``unchanged`` was skipped; on a single node, all of them were;
    on PouchDB Server none (no hint is ever recorded there)."""
    if not setup.couchdb:
        assert plan.unchanged is None
        return
    assert plan.unchanged is not None
    assert set(plan.unchanged) <= unchanged
    if not setup.cluster:
        assert set(plan.unchanged) == unchanged


def test_each_change_by_someone_else_is_read_in_full_and_the_rest_skipped(
        setup: Setup) -> None:
    docs, design, security, deleted, untouched = setup.create(5)
    settled = setup.settle()
    skipped_at_most(settled, setup, setup.everything())

    setup.put(f"/{docs}/settings", {"type": "settings", "theme": "light"})
    setup.put(f"/{design}/_design/app", {"views": {}})
    setup.http.put(f"/{security}/_security", json={"members": {"roles": ["x"]}}
                   ).raise_for_status()
    rev = setup.http.get(f"/{deleted}/settings").json()["_rev"]
    setup.http.delete(f"/{deleted}/settings", params={"rev": rev, **setup.w}
                      ).raise_for_status()
    (new,) = setup.create(1)
    setup.http.delete(f"/{setup.named}").raise_for_status()

    plan = setup.plan()

    changed = {docs, design, security, deleted}
    assert {(step.database, step.address.rpartition("/")[2]) for step in plan.steps} == {
        (docs, "doc:settings"), (design, "design:app"), (security, "security"),
        (deleted, "doc:settings"),
        (new, "security"), (new, "design:app"), (new, "index:by-type"), (new, "doc:settings"),
        (setup.named, f"db:{setup.named}"), (setup.named, "doc:a"), (setup.named, "doc:b")}
    reasons = plan.read_in_full
    if setup.couchdb:
        assert all(reasons[name] == MOVED for name in changed if not setup.cluster)
        assert reasons[new] == NEW and reasons[setup.named] == GONE
    skipped_at_most(plan, setup, {untouched})
    assert plan.to_dict()["steps"] == setup.plan(full=True).to_dict()["steps"]


def test_the_incremental_plan_equals_the_full_plan_whatever_others_write(
        setup: Setup) -> None:
    """A property over random writes by others: the plan that skips is the full plan."""
    setup.create(4)
    setup.settle()
    chance = random.Random(23)
    edits: list[Callable[[str], None]] = [
        lambda db: setup.put(f"/{db}/settings", {"type": "settings",
                                                 "theme": chance.choice(["dark", "light"])}),
        lambda db: setup.put(f"/{db}/other-{chance.randrange(3)}", {"type": "app"}),
        lambda db: setup.http.put(f"/{db}/_security", json=chance.choice(
            [TEMPLATE["security"], {"members": {"roles": ["y"]}}])).raise_for_status(),
        lambda db: setup.put(f"/{db}/_design/app", chance.choice(
            [TEMPLATE["design_docs"]["app"], {"views": {}}])),
    ]
    for _ in range(4):
        for db in chance.sample(setup.names, 2):
            chance.choice(edits)(db)
        incremental, full = setup.plan(), setup.plan(full=True)
        assert incremental.to_dict()["steps"] == full.to_dict()["steps"]
        assert full.unchanged is None and not full.read_in_full
        if chance.random() < 0.5:
            setup.apply()


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_a_template_change_reads_every_database_again(setup: Setup) -> None:
    setup.create(3)
    setup.settle()
    setup.template = {**TEMPLATE, "documents": [{"_id": "settings", "type": "settings",
                                                 "theme": "blue"}]}

    plan = setup.plan()

    skipped_at_most(plan, setup, {setup.named})  # its own spec did not change
    assert {name for name, why in plan.read_in_full.items() if why == EDITED} == set(setup.names)
    assert {step.database for step in plan.steps} == set(setup.names)
    setup.apply()
    skipped_at_most(setup.settle(), setup, setup.everything())


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_a_lost_hint_costs_a_full_read_and_nothing_else(setup: Setup) -> None:
    setup.create(2)
    setup.settle()
    db = setup.client.database(LOCK_DB)
    mine = {f"hints:{zlib.crc32(name.encode()) % HINT_DOCS}" for name in setup.everything()}
    for row in db.all_docs(keys=sorted(mine)):
        if "value" in row:  # from every copy: a cluster reads from whichever answers
            setup.http.delete(f"/{LOCK_DB}/{row['id']}",
                              params={"rev": row["value"]["rev"], **setup.w}
                              ).raise_for_status()

    plan = setup.plan()

    assert plan.is_empty and not plan.errors
    assert {name for name, why in plan.read_in_full.items() if why == NEW} == (
        setup.everything())


class WritesAtTheEnd(ApplyHooks):
    """An application writing a seed document the moment apply's last step is done."""

    def __init__(self, write: Callable[[], None]) -> None:
        self.write = write

    def progress(self, verb: str) -> AbstractContextManager[Progress]:
        hooks = self

        class Last(Progress):
            def steps(self, done: int, total: int) -> None:
                if verb == "Applying" and done == total:
                    hooks.write()

            def databases(self, done: int, total: int, failed: int) -> None:
                if verb == "Applying" and done == total:
                    hooks.write()

        return contextlib.nullcontext(Last())


def test_an_application_write_racing_the_end_of_an_apply_is_planned_next_time(
        setup: Setup) -> None:
    (db,) = setup.create(1)
    written = threading.Event()

    def app_write() -> None:
        if not written.is_set():
            written.set()
            setup.put(f"/{db}/settings", {"type": "settings", "theme": "app's"})

    apply_manifests(setup.client, [setup.manifest()], hooks=WritesAtTheEnd(app_write))
    assert written.is_set()

    plan = setup.plan()

    assert [step.address for step in plan.steps] == [f"db:{db}/doc:settings"]
    assert plan.steps[0].before == {"type": "settings", "theme": "app's"}


def test_full_reads_every_database(setup: Setup) -> None:
    setup.create(2)
    setup.settle()

    plan = setup.plan(full=True)

    assert plan.is_empty and plan.unchanged is None and plan.read_in_full == {}


def test_runs_recording_hints_at_once_keep_each_other_s(couch_url: str) -> None:
    """Two runs (``--shard`` runners) write hints into the same documents: each merges."""
    names = [f"cstest_h_{uuid.uuid4().hex[:8]}_{i}" for i in range(400)]
    by_doc: dict[int, list[str]] = {}
    for name in names:
        by_doc.setdefault(zlib.crc32(name.encode()) % HINT_DOCS, []).append(name)
    shared = [group for group in by_doc.values() if len(group) >= 2][:20]
    first = {group[0]: Hint("f1", frozenset({"a"})) for group in shared}
    second = {group[1]: Hint("f2", frozenset({"b"})) for group in shared}
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def record(hints: dict[str, Hint]) -> None:
        try:
            with Client(couch_url) as client:
                start.wait()
                record_hints(client, hints)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(hints,)) for hints in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with Client(couch_url) as client:
        stored = read_hints(client).hints
        assert {name: stored.get(name) for name in {**first, **second}} == {**first, **second}
        record_hints(client, dict.fromkeys({**first, **second}))  # None: forgotten
        assert not {**first, **second}.keys() & read_hints(client).hints.keys()


def test_a_database_deleted_and_made_again_to_the_same_sequences_is_read_in_full(
        setup: Setup) -> None:
    """The sequences a hint names are the same numbers in a database deleted and written
    again as often (here: the same two documents, one with other content); each shard
    file's uuid in the packed sequence tells them apart."""
    setup.settle()

    def sequences() -> set[tuple[str, Any]]:
        info = setup.http.post("/_dbs_info", json={"keys": [setup.named]}).json()[0]["info"]
        return {(copy, at[0]) for copy, at in _copies(info["update_seq"]) or []}

    # Asked of a single node only: which copy answers a cluster's ask varies, and
    # PouchDB Server neither packs sequences nor has _dbs_info.
    single = setup.couchdb and not setup.cluster
    before = sequences() if single else None
    setup.http.delete(f"/{setup.named}").raise_for_status()
    setup.http.put(f"/{setup.named}").raise_for_status()
    setup.put(f"/{setup.named}/a", {"v": 9})
    setup.put(f"/{setup.named}/b", {"v": 2})
    if single:
        assert sequences() == before  # the same numbers: only the files differ

    plan = setup.plan()

    assert [step.address for step in plan.steps] == [f"db:{setup.named}/doc:a"]
    assert plan.unchanged is None or setup.named not in plan.unchanged


def test_a_shard_runner_reads_and_writes_its_shard_s_hints_and_keeps_the_others(
        couch_url: str) -> None:
    names = [f"cstest_hs_{uuid.uuid4().hex[:8]}_{i}" for i in range(64)]
    first = {name: Hint(f"f-{name}", frozenset({"a"})) for name in names}
    with Client(couch_url) as client:
        record_hints(client, first)  # every shard's, as a run without --shard writes them
        try:
            for n in (4, 3):
                for k in range(1, n + 1):
                    stored = read_hints(client, Shard(k, n)).hints
                    read = {name for name in names if stored.get(name) is not None}
                    mine = {name for name in names if Shard(k, n).keeps(name)}
                    # 4 divides the 256 hint documents: only the shard's are read; 3 does
                    # not: every document is.
                    assert read == (mine if n == 4 else set(names))
                    assert all(stored.get(name) == first[name] for name in read)
            shard = Shard(2, 4)
            mine = {name for name in names if shard.keeps(name)}
            record_hints(client, {name: Hint("f-new", frozenset({"b"})) for name in mine},
                         shard)
            stored = read_hints(client).hints
            assert {name: stored.get(name) for name in names} == {
                name: Hint("f-new", frozenset({"b"})) if name in mine else first[name]
                for name in names}
        finally:
            record_hints(client, dict.fromkeys(names))


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_other_couchsync_code_at_the_same_version_reads_every_database_again(
        setup: Setup, couch_url: str, tmp_path: Path) -> None:
    """Hints recorded by this code; plans by a copy of it (skips as this code does) and by
    an edited copy (an install from a later commit: the version number is the same)."""
    setup.create(2)
    setup.settle()
    package = Path(couchsync.__file__).parent
    same, edited = tmp_path / "same", tmp_path / "edited"
    for root in (same, edited):
        shutil.copytree(package, root / "couchsync",
                        ignore=shutil.ignore_patterns("__pycache__"))
    planner = edited / "couchsync" / "plan" / "_diff.py"
    planner.write_text(planner.read_text() + "\n# a fix, the version number unchanged\n")

    def incremental(root: Path) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from couchsync.cli import main; main()",
             "plan", setup.manifest(), "--format", "json"],
            env={**os.environ, "PYTHONPATH": str(root), "COUCHDB_URL": couch_url},
            cwd=root, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)["incremental"]
        return result

    assert incremental(same)["read_in_full"].get(EDITED) is None  # found in the copy
    assert set(incremental(edited)["read_in_full"][EDITED]) == setup.everything()


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_the_text_plan_says_what_it_did_not_read_and_why(
        setup: Setup, couch_url: str) -> None:
    setup.create(3)
    setup.settle()
    changed = setup.names[0]
    setup.put(f"/{changed}/settings", {"type": "settings", "theme": "light"})

    result = CliRunner().invoke(app, ["plan", setup.manifest()],
                                env={"COUCHDB_URL": couch_url, "NO_COLOR": "1"})

    assert result.exit_code == 0, result.output
    assert f"~ db:{changed}/doc:settings" in result.stdout
    if not setup.cluster:
        assert result.stdout.endswith(
            "\nIncremental plan: 3 of 4 databases not read, unchanged since an apply found "
            "them converged (--full reads them).\n"
            f"  read in full, {MOVED}: {changed}\n")


def test_on_a_cluster_applies_settle_to_a_plan_that_reads_nothing_in_full(
        setup: Setup) -> None:
    """A cluster's copy is trusted once two converged reads saw it at one sequence: a few
    applies of databases nobody writes lead to a plan that skips them all, whichever
    copies answer (the skips that make incremental plans worth having there)."""
    if not setup.cluster:
        pytest.skip("one copy of each shard range: skipped after one converged read, "
                    "as the tests above assert")
    setup.create(4)
    plan = setup.settle()
    assert not plan.read_in_full
    assert sorted(plan.unchanged or ()) == sorted(setup.everything())


def test_only_an_apply_s_plan_asks_a_cluster_s_converged_databases_again(
        setup: Setup) -> None:
    """The other copies' sequences serve the hints an apply records; a plan only shown
    does not ask for them (it cost a cluster's incremental plan more than ``--full``)."""
    if not setup.cluster:
        pytest.skip("one copy of each shard range: no database is asked again")
    setup.create(3)
    setup.apply()
    counted, engine = counting_client(setup.url)
    with counted:
        def infos_asked(find_converged: bool) -> int:
            engine.requests.clear()
            plan = plan_manifests(counted, [setup.manifest()],
                                  find_converged=find_converged)[1]
            assert plan.is_empty and not plan.unchanged  # no apply found them converged yet
            return sum(1 for method, path, _ in engine.requests if path == "/_dbs_info")

        assert infos_asked(find_converged=False) == 1  # the four databases in one ask
        # Again until each copy answered once: n - 1 more asks at the least (one copy of
        # each range answers an ask), CLUSTER_ASKS more at the most.
        copies = int(setup.w["w"])
        assert copies <= infos_asked(find_converged=True) <= 1 + CLUSTER_ASKS


@pytest.mark.couchdb_only("what CouchDB's sequences do is the point")
def test_a_record_written_by_someone_else_does_not_move_the_sequence_but_a_document_does(
        setup: Setup) -> None:
    """What the design relies on, checked on the real server: ``_local`` writes do not
    move ``update_seq``, ``_security`` writes do."""
    if setup.cluster:
        pytest.skip("a cluster answers each ask from any copy: two asks may name two copies")
    (db,) = setup.create(1)
    before = setup.http.get(f"/{db}").json()["update_seq"]
    setup.http.put(f"/{db}/_local/x", json={"a": 1}).raise_for_status()
    assert setup.http.get(f"/{db}").json()["update_seq"] == before
    setup.http.put(f"/{db}/_security", json={"members": {"roles": ["z"]}}).raise_for_status()
    assert setup.http.get(f"/{db}").json()["update_seq"] != before


@pytest.mark.couchdb_only("PouchDB Server has no max_dbs_open")
def test_a_fleet_larger_than_the_databases_the_server_keeps_open_is_warned_of(
        setup: Setup, couch_url: str) -> None:
    from couchsync.read._limits import FLEET

    setup.create(FLEET)
    path = "/_node/_local/_config/couchdb/max_dbs_open"
    before = setup.http.get(path)
    setup.http.put(path, json=str(FLEET - 10)).raise_for_status()
    try:
        result = CliRunner().invoke(app, ["plan", setup.manifest()],
                                    env={"COUCHDB_URL": couch_url, "NO_COLOR": "1"})
    finally:
        if before.status_code == 200:
            setup.http.put(path, json=before.json()).raise_for_status()
        else:
            setup.http.delete(path).raise_for_status()

    assert result.exit_code == 0, result.output
    assert (f"{FLEET + 1:,} databases to plan, more than the server keeps open ([couchdb] "
            f"max_dbs_open = {FLEET - 10:,})") in result.stderr
    quiet = CliRunner().invoke(app, ["plan", setup.manifest()],
                               env={"COUCHDB_URL": couch_url, "NO_COLOR": "1"})
    assert "max_dbs_open" not in quiet.stderr


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_a_seed_database_proved_unchanged_is_planned_without_loading_its_documents(
        setup: Setup, tmp_path: Path) -> None:
    from couchsync.manifest import ManifestError

    data = tmp_path / "seed.jsonl"
    data.write_text("".join(f'{{"_id": "d{i}", "v": {i}}}\n' for i in range(200)))
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {setup.named: {
        "documents_from": ["seed.jsonl"], "documents": [{"_id": "inline", "v": 0}]}}}))

    def plan(lazy: bool = True) -> tuple[Any, Plan]:
        desired, made, _ = plan_manifests(setup.client, [path], lazy=lazy)
        return desired.databases[setup.named], made

    for _ in range(12 if setup.cluster else 2):  # as Setup.settle
        apply_manifests(setup.client, [path])
        spec, made = plan()
        if made.unchanged:
            break
    assert made.is_empty and made.unchanged == [setup.named]
    assert spec.documents_unread and spec.documents == {}
    assert plan(lazy=False)[0].documents_unread is False  # a plan to save lists them all

    with data.open("a") as handle:
        handle.write('{"_id": "d200", "v": 200}\n')
    spec, made = plan()
    assert not spec.documents_unread and len(spec.documents) == 202
    assert made.read_in_full == {setup.named: EDITED}
    assert [step.address for step in made.steps] == [f"db:{setup.named}/doc:d200"]

    with data.open("a") as handle:
        handle.write('{"_id": "d201", "v": }\n')
    with pytest.raises(ManifestError, match=r"seed\.jsonl:202"):
        plan()


@pytest.mark.couchdb_only("PouchDB Server moves no sequence when _security is written: "
                          "couchsync records no hint there, and skips nothing")
def test_the_hint_of_a_fleet_database_deleted_since_is_forgotten_by_the_next_apply(
        setup: Setup) -> None:
    kept, dropped = setup.create(2)
    setup.settle()
    assert {kept, dropped} <= read_hints(setup.client).hints.keys()
    setup.http.delete(f"/{dropped}").raise_for_status()

    assert dropped not in setup.plan().read_in_full  # not matched: not planned at all
    setup.apply()

    stored = read_hints(setup.client).hints
    assert dropped not in set(stored.databases()) and kept in stored
