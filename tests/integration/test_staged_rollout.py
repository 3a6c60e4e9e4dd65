"""Staged design-doc rollouts (``design_deploy: staged``) on the real server.

The claim: queries of the live view keep answering from the old index while the
new one builds under a staging id, and the live design doc, once swapped in,
finds its index already built. "Already built" is checked the way CouchDB tells
it, not by timing: right after apply, a query that may not build anything
(``update=false``) already answers with the new view's results, and ``_info``
shows no changes left to index.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from cli_helpers import couchsync, run, wait_for
from sync_helpers import plan, sync

from couchsync.apply._rollout import NOT_REUSED
from couchsync.client import Client
from couchsync.manifest import DesiredState
from couchsync.plan._staging import COPIES_FIELD

STAGED_APP = "_design/couchsync-staged.app"


def view(factor: int) -> dict[str, Any]:
    return {"views": {"total": {"map": f"function (doc) {{ emit(doc.g, doc.v * {factor}); }}",
                                "reduce": "_sum"}}}


def seed(url: str, db: str, count: int) -> None:
    """``count`` documents {g, v}, written straight to the server (not by couchsync)."""
    with httpx.Client(timeout=120) as http:
        assert http.put(f"{url}/{db}").status_code in (201, 202)
        for start in range(0, count, 5_000):
            docs = [{"_id": f"d{i:06d}", "g": i % 10, "v": i}
                    for i in range(start, min(count, start + 5_000))]
            http.post(f"{url}/{db}/_bulk_docs", json={"docs": docs}).raise_for_status()


def total(url: str, db: str, **params: str) -> int:
    answer = httpx.get(f"{url}/{db}/_design/app/_view/total", params=params, timeout=120)
    answer.raise_for_status()
    return int(answer.json()["rows"][0]["value"])


def staging_ids(url: str, db: str) -> list[str]:
    rows = httpx.get(f"{url}/{db}/_all_docs", params={
        "startkey": json.dumps("_design/couchsync-staged"),
        "endkey": json.dumps("_design/couchsync-staged\ufff0")}, timeout=30).json()["rows"]
    return [row["id"] for row in rows]


def left_staged(url: str, db: str) -> list[str]:
    """The staging copy left behind, then the copies in other shard ranges it lists
    (on CouchDB, for a server admin); [] when none is there."""
    first = httpx.get(f"{url}/{db}/{STAGED_APP}", timeout=30)
    if first.status_code == 404:
        return []
    return [STAGED_APP, *sorted(first.json().get(COPIES_FIELD, []))]


def every_copy_built(url: str, db: str, design_id: str) -> dict[str, int]:
    """Changes left to index, per shard copy, for the index of ``design_id``: asked of
    each copy itself, through a probe design doc of the same signature stored in that
    copy's range (a copy answers only about design docs stored in it)."""
    live = httpx.get(f"{url}/{db}/{design_id}", timeout=30).json()
    body = {key: live[key] for key in ("language", "views", "options") if key in live}
    shard_map = httpx.get(f"{url}/_node/_local/_dbs/{db}", timeout=30).json()
    suffix = bytes(shard_map["shard_suffix"]).decode()
    pending: dict[str, int] = {}
    number = 0
    for range_, nodes in sorted(shard_map["by_range"].items()):
        while True:
            probe = f"_design/probe.{number}"
            number += 1
            held = httpx.get(f"{url}/{db}/_shards/{quote(probe, safe='')}", timeout=30)
            if held.json()["range"] == range_:
                break
        written = httpx.put(f"{url}/{db}/{probe}", json=body, params={"w": str(len(nodes))},
                            timeout=30)
        assert written.status_code == 201, written.text  # on every copy
        for node in nodes:
            info = httpx.get(f"{url}/_node/{node}/{quote(f'shards/{range_}/{db}{suffix}', safe='')}"
                             f"/{probe}/_info", timeout=30).json()
            pending[f"{range_} on {node}"] = info["view_index"]["pending_updates"]
    return pending


def write_manifest(path: Path, db: str, factor: int, **settings: Any) -> str:
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {
        **settings, "design_docs": {"app": view(factor)}}}}))
    return str(path)


def at_v1(url: str, db: str, tmp_path: Path, count: int) -> tuple[str, str]:
    """``count`` documents and the first view applied; the live design doc's revision,
    and a manifest of the second view."""
    seed(url, db, count)
    assert run(url, "apply", write_manifest(tmp_path / "v1.yaml", db, 1), "--yes").returncode == 0
    live_rev = httpx.get(f"{url}/{db}/_design/app", timeout=30).json()["_rev"]
    return live_rev, write_manifest(tmp_path / "v2.yaml", db, 2)


def test_a_staged_rollout_keeps_the_view_answering_and_swaps_in_a_built_index(
        couch_url: str, client: Client, db_name: str, is_couchdb: bool,
        manifest: Callable[[dict[str, Any]], DesiredState]) -> None:
    # On CouchDB, enough that the build outlasts the rest of the apply and the checks
    # below: an index swapped in unbuilt is still building when they ask.
    count = 30_000 if is_couchdb else 3_000
    seed(couch_url, db_name, count)
    sync(client, manifest({db_name: {"design_docs": {"app": view(1)}}}))
    old = total(couch_url, db_name)  # builds the old index
    new = 2 * old
    answers: list[int | str] = []
    done = threading.Event()

    def query_all_along() -> None:
        while not done.is_set():
            try:
                answers.append(total(couch_url, db_name))
            except httpx.HTTPError as exc:
                answers.append(f"{type(exc).__name__}: {exc}")

    querier = threading.Thread(target=query_all_along)
    querier.start()
    try:
        desired = manifest({db_name: {"design_deploy": "staged",
                                      "design_docs": {"app": view(2)}}})
        made, result = sync(client, desired)
        # No query after this one builds anything: the live view's first default query
        # after an unbuilt swap starts its build, which the checks must not wait for.
        done.set()
        if is_couchdb:
            # Built before the swap: a query that may not build answers with the new
            # view, and no shard copy that answers has changes left to index.
            assert total(couch_url, db_name, update="false") == new
            info = httpx.get(f"{couch_url}/{db_name}/_design/app/_info", timeout=30).json()
            assert info["view_index"]["updates_pending"]["total"] <= 100
            pending = every_copy_built(couch_url, db_name, "_design/app")
            assert max(pending.values()) <= 100, pending
        else:
            # The index built under the staging id is the live one's now: a query that
            # does not update it (stale=ok) answers from it. PouchDB Server files an
            # index under the design doc that first queried it, so a _view_cleanup once
            # the staging copy is gone destroyed it (a rebuild, under live queries).
            assert total(couch_url, db_name, stale="ok") == new
    finally:
        done.set()
        querier.join()
    [step] = made.steps
    assert step.rebuild is not None and step.rebuild["staged"]
    assert step.rebuild["documents"] == count + 1  # the design doc is one of them
    assert result.ok and len(result.staged) == 1
    assert result.staged[0].startswith(f"db:{db_name}/design:app: built under {STAGED_APP}")
    # The build was reused (a 202 on a busy cluster may be warned of, though).
    assert not [text for text in result.warnings if NOT_REUSED in text]
    assert answers and set(answers) <= {old, new}, answers  # always answered, never an error
    assert total(couch_url, db_name) == new
    assert staging_ids(couch_url, db_name) == []
    assert plan(client, desired).is_empty


@pytest.mark.couchdb_only("Mango indexes are views CouchDB builds; PouchDB's _find has "
                          "no update=false")
def test_a_staged_mango_index_change_is_built_before_it_is_in_place(
        couch_url: str, client: Client, db_name: str,
        manifest: Callable[[dict[str, Any]], DesiredState]) -> None:
    seed(couch_url, db_name, 30_000)  # a build that outlasts the rest of the apply
    sync(client, manifest({db_name: {"indexes": {"by-g": {"fields": ["g"], "ddoc": "idx"}}}}))
    desired = manifest({db_name: {"design_deploy": "staged", "indexes": {
        "by-g": {"fields": ["g", "v"], "ddoc": "idx"}}}})
    made, result = sync(client, desired)
    assert [(s.action.value, s.address) for s in made.steps] == [
        ("-/+", f"db:{db_name}/index:by-g")]
    assert result.ok and len(result.staged) == 1
    assert not [text for text in result.warnings if NOT_REUSED in text]
    [index] = [i for i in client.database(db_name).get_indexes()["indexes"]
               if i["name"] == "by-g"]
    assert (index["ddoc"], index["def"]["fields"]) == ("_design/idx", [{"g": "asc"}, {"v": "asc"}])
    # Built already: a query that may not build finds every match.
    found = httpx.post(f"{couch_url}/{db_name}/_find", timeout=60, json={
        "selector": {"g": 3, "v": {"$gt": 0}}, "use_index": ["idx", "by-g"], "update": False,
        "limit": 30_000}).json()
    assert len(found["docs"]) == 3_000
    # Every shard copy, not only those a query reaches first (a cluster's other
    # copies serve queries too, when one is slow or down).
    pending = every_copy_built(couch_url, db_name, "_design/idx")
    assert max(pending.values()) <= 100, pending
    assert staging_ids(couch_url, db_name) == []
    assert plan(client, desired).is_empty


@pytest.mark.couchdb_only("PouchDB Server builds a view only when it is queried: there is "
                          "no build to time out")
def test_a_timed_out_staged_build_leaves_the_live_design_doc_and_a_rerun_completes(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    live_rev, v2 = at_v1(couch_url, db_name, tmp_path, 20_000)
    old = total(couch_url, db_name)

    timed_out = run(couch_url, "apply", v2, "--yes", "--design-deploy", "staged",
                    "--wait-timeout", "0")
    assert timed_out.returncode == 1
    assert "Traceback" not in timed_out.stderr
    assert "the staged build was not done after 0 s" in timed_out.stderr
    assert "Run apply again to wait for it" in timed_out.stderr
    after = httpx.get(f"{couch_url}/{db_name}/_design/app", timeout=30).json()
    assert after["_rev"] == live_rev  # the live design doc as it was
    # The staging copy, and one per other shard range that it names.
    assert staging_ids(couch_url, db_name) == left_staged(couch_url, db_name)
    assert STAGED_APP in staging_ids(couch_url, db_name)

    again = run(couch_url, "apply", v2, "--yes", "--design-deploy", "staged")
    assert again.returncode == 0, again.stderr
    assert f"Staged: db:{db_name}/design:app: built under {STAGED_APP}" in again.stdout
    assert staging_ids(couch_url, db_name) == []
    assert total(couch_url, db_name, update="false") == 2 * old
    replan = run(couch_url, "plan", v2, "--design-deploy", "staged")
    assert "No changes." in replan.stdout


@pytest.mark.couchdb_only("PouchDB Server builds a view only when it is queried: an apply "
                          "cannot be caught waiting for a build")
def test_an_interrupted_staged_apply_leaves_the_live_design_doc_and_in_place_cleans_up(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    live_rev, v2 = at_v1(couch_url, db_name, tmp_path, 30_000)

    proc = couchsync(couch_url, "apply", v2, "--yes", "--design-deploy", "staged")
    wait_for(lambda: staging_ids(couch_url, db_name) == left_staged(couch_url, db_name) != [],
             "the staging copies to be written", proc=proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, while it waits for the build
    _, err = proc.communicate(timeout=60)
    # Exit 0 is the failure this test exists for: the interrupt did not stop the swap.
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "apply interrupted" in err
    after = httpx.get(f"{couch_url}/{db_name}/_design/app", timeout=30).json()
    assert after["_rev"] == live_rev

    # Written in place instead: the plan says the staging copy goes, and it does.
    shown = run(couch_url, "plan", v2, "--design-deploy", "in_place")
    for doc_id in left_staged(couch_url, db_name):  # each copy, in every shard range
        assert f"- db:{db_name}/design:{doc_id.removeprefix('_design/')} (rev " in shown.stdout
    assert "staging copy left by an interrupted staged apply" in shown.stdout
    done = run(couch_url, "apply", v2, "--yes", "--design-deploy", "in_place")
    assert done.returncode == 0, done.stderr
    assert staging_ids(couch_url, db_name) == []
    assert "No changes." in run(couch_url, "plan", v2).stdout


@pytest.mark.couchdb_only("PouchDB Server builds a view only when it is queried: an apply "
                          "cannot be caught waiting for a build")
def test_a_fleet_staged_by_its_pattern_stops_everywhere_on_ctrl_c_and_then_completes(
        couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path) -> None:
    prefix = db_name_factory()
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        seed(couch_url, name, 15_000)
    pattern = f"{prefix}-*"
    try:
        v1 = tmp_path / "v1.yaml"
        v1.write_text(yaml.safe_dump({"version": 1, "databases": {
            pattern: {"design_docs": {"app": view(1)}}}}))
        assert run(couch_url, "apply", str(v1), "--yes").returncode == 0
        revs = {name: httpx.get(f"{couch_url}/{name}/_design/app", timeout=30).json()["_rev"]
                for name in names}
        v2 = tmp_path / "v2.yaml"
        v2.write_text(yaml.safe_dump({"version": 1, "databases": {
            pattern: {"design_deploy": "staged", "design_docs": {"app": view(2)}}}}))

        proc = couchsync(couch_url, "apply", str(v2), "--yes", "--parallel", "3")
        wait_for(lambda: all(staging_ids(couch_url, name) for name in names),
                 "every database's staging copy to be written", proc=proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # Exit 0 is the failure this test exists for: the interrupt did not stop the swaps.
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        for name in names:  # not one swapped in after the interrupt
            live = httpx.get(f"{couch_url}/{name}/_design/app", timeout=30).json()
            assert live["_rev"] == revs[name]

        done = run(couch_url, "apply", str(v2), "--yes")
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("Staged: ") == 3
        for name in names:
            assert staging_ids(couch_url, name) == []
            assert total(couch_url, name, update="false") == 2 * sum(range(15_000))
        assert "No changes." in run(couch_url, "plan", str(v2)).stdout
    finally:
        for name in names:
            httpx.delete(f"{couch_url}/{name}", timeout=30)
