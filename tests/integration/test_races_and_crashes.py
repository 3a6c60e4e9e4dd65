"""couchsync killed, raced and cut off from its server: what it wrote stays known to it.

Each test runs the real ``couchsync`` command in processes of its own, against
the test server (any server: ``COUCHSYNC_TEST_URL``), and ends the same way: the
server converged, and a manifest that prunes everything leaves no document
behind (no orphan the ownership record failed to learn). The test that stops
the server mid-apply needs a server of its own to stop: the bundled Apache
CouchDB (``../shared/couchdb`` or ``$COUCHDB_DIST``), skipped without it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_helpers import (
    OwnCouchDB,
    apply_holding_the_lock,
    couchdb_of_its_own,
    couchsync,
    doc_count,
    killed_at_request,
    lock_holder,
    loopback_fault,
    pending_entries,
    prune_everything,
    run,
    seed_manifest,
    through_proxy,
    wait_for,
)

from couchsync.lock import LOCK_DB, lock_id


def test_two_applies_racing_on_one_database_both_land_and_prune_leaves_nothing(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    for round_ in range(3):
        first = seed_manifest(tmp_path / f"a{round_}.yaml", db_name, range(1500), prefix="a")
        second = seed_manifest(tmp_path / f"b{round_}.yaml", db_name, range(1500), prefix="b")
        racers = [couchsync(couch_url, "apply", path, "--yes", "--batch-size", "250",
                             "--lock-timeout", "120") for path in (first, second)]
        for racer in racers:
            _out, err = racer.communicate(timeout=300)
            assert racer.returncode == 0, err
        assert doc_count(couch_url, db_name) == 3000
        for path in (first, second):
            again = run(couch_url, "plan", path, "--detailed-exitcode")
            assert again.returncode == 0, again.stdout + again.stderr
        prune_everything(couch_url, tmp_path, db_name)


def test_a_second_apply_is_refused_naming_the_holder_and_plan_tells_of_the_lock(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    big = seed_manifest(tmp_path / "big.yaml", db_name, range(2000))
    # Its 2nd _bulk_docs to the database is held by a proxy until the test has seen what
    # it checks: the apply holds its lock all the while, however fast the machine.
    release = threading.Event()
    held = loopback_fault("stall", method="POST", path=f"/{db_name}/_bulk_docs", nth=2,
                          times=1, until=release)
    with through_proxy(couch_url, [held]) as through:
        holder = apply_holding_the_lock(through, db_name, big, "--batch-size", "100")
        try:
            wait_for(lambda: held.hits > 0, "its 2nd _bulk_docs held", proc=holder)
            _second_apply_refused(couch_url, db_name, tmp_path, holder.pid)
        finally:
            release.set()
            _out, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err
    assert lock_holder(couch_url, db_name) is None  # released at the end


def _second_apply_refused(couch_url: str, db_name: str, tmp_path: Path, pid: int) -> None:
    """Another apply is refused naming the holder, and plan notes the lock."""
    small = seed_manifest(tmp_path / "small.yaml", db_name, ["other"])

    refused = run(couch_url, "apply", small, "--yes")
    assert refused.returncode == 1
    assert f"{db_name}: " in refused.stderr and f"(pid {pid})" in refused.stderr
    assert "couchsync force-unlock" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.splitlines()) <= 5

    planned = run(couch_url, "plan", small)
    assert planned.returncode == 0, planned.stderr
    assert f"Note: {db_name} is locked by an apply" in planned.stderr
    assert f"(pid {pid})" in planned.stderr


def test_applies_killed_at_chosen_writes_then_finished_leave_no_orphan(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seed = seed_manifest(tmp_path / "seed.yaml", db_name, range(12000))
    # Killed at chosen writes (the record written ahead, then batches further on),
    # each held unanswered by a proxy: every kill lands mid-write.
    written = 0
    for nth in (1, 2, 9, 17):
        killed_at_request(couch_url, "POST", "/_bulk_docs", nth, "apply", seed, "--yes",
                          "--batch-size", "200", "--lock-ttl", "5", "--lock-timeout", "60")
        exists = httpx.get(f"{couch_url}/{db_name}", timeout=10).status_code == 200
        now = doc_count(couch_url, db_name) if exists else 0
        assert written <= now < 12000  # mid-write, not finished
        written = now
    # The last victim's lock expires after its TTL; this run takes it over and finishes.
    finished = run(couch_url, "apply", seed, "--yes", "--lock-timeout", "60")
    assert finished.returncode == 0, finished.stderr
    assert doc_count(couch_url, db_name) == 12000
    clean = run(couch_url, "plan", seed, "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert pending_entries(couch_url, db_name) == 0
    prune_everything(couch_url, tmp_path, db_name)


def test_force_unlock_frees_a_lock_left_by_a_killed_apply(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seed = seed_manifest(tmp_path / "seed.yaml", db_name, range(20000))
    victim = apply_holding_the_lock(couch_url, db_name, seed, "--batch-size", "100")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    # Killed on another machine: no process there to look for, so its lock holds until
    # its TTL (a lock left on this host is taken over at once: test_lock.py).
    lock_url = f"{couch_url}/{LOCK_DB}/{lock_id(db_name)}"
    lock = httpx.get(lock_url, timeout=10).json()
    lock["holder"]["host"] = "build-agent-7"
    assert httpx.put(lock_url, json=lock, timeout=10).status_code == 201

    refused = run(couch_url, "apply", seed, "--yes")
    assert refused.returncode == 1 and f"(pid {victim.pid})" in refused.stderr

    freed = run(couch_url, "force-unlock", db_name)
    assert freed.returncode == 0, freed.stderr
    assert f"{db_name}: lock freed (was held by" in freed.stdout
    assert lock_holder(couch_url, db_name) is None

    finished = run(couch_url, "apply", seed, "--yes")
    assert finished.returncode == 0, finished.stderr
    prune_everything(couch_url, tmp_path, db_name)


# -- a server of the test's own, stopped mid-apply


@pytest.fixture
def own_couchdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCouchDB]:
    server = couchdb_of_its_own(tmp_path_factory, "to start and stop a server of its own")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_stopped_mid_apply_stops_it_with_a_short_report_and_a_rerun_converges(
    own_couchdb: OwnCouchDB, tmp_path: Path
) -> None:
    url = own_couchdb.url
    seed = seed_manifest(tmp_path / "seed.yaml", "faulty", range(40000))
    victim = couchsync(url, "apply", seed, "--yes", "--batch-size", "500")
    wait_for(lambda: lock_holder(url, "faulty") is not None
              and httpx.get(f"{url}/faulty", timeout=10).json().get("doc_count", 0) > 2000,
              "the apply to be seeding", proc=victim)
    own_couchdb.stop()
    out, err = victim.communicate(timeout=120)

    assert victim.returncode == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) <= 7, err[:3000]
    assert lines[0].startswith("Error: apply stopped: lost the server:")
    assert "not done:" in err and "Run the same apply again" in err
    assert "own-server-pw" not in out + err

    own_couchdb.start()
    # The lock of the apply that lost its server is still there: free it, as its note says.
    assert run(url, "force-unlock", "faulty").returncode == 0
    finished = run(url, "apply", seed, "--yes")
    assert finished.returncode == 0, finished.stderr
    assert doc_count(url, "faulty") == 40000
    assert pending_entries(url, "faulty") == 0
    prune_everything(url, tmp_path, "faulty")


def test_an_apply_whose_lock_is_taken_stops_before_writing_more(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seed = seed_manifest(tmp_path / "seed.yaml", db_name, range(20000))
    # Each _bulk_docs answer trickles in over 0.4 s (a proxy: the victim's 400 batches
    # take minutes whatever the machine), so the loss of the lock, which the heartbeat
    # sees within its 1.7 s, comes while the apply still has most of its writes to do.
    slow = loopback_fault("trickle", method="POST", path="/_bulk_docs", pieces=9,
                          pause=0.05)
    with through_proxy(couch_url, [slow]) as through:
        victim = apply_holding_the_lock(through, db_name, seed, "--batch-size", "50",
                                        "--lock-ttl", "5")
        freed = run(couch_url, "force-unlock", db_name)
        assert freed.returncode == 0, freed.stderr
        out, err = victim.communicate(timeout=300)
    assert doc_count(couch_url, db_name) < 20000  # stopped before writing more
    assert victim.returncode == 1, out[-500:] + err
    assert f"Error: apply stopped: the lock on {db_name} was taken over" in err
    assert "not done:" in err and "Traceback" not in err
    finished = run(couch_url, "apply", seed, "--yes", "--lock-timeout", "60")
    assert finished.returncode == 0, finished.stderr
    assert doc_count(couch_url, db_name) == 20000
    prune_everything(couch_url, tmp_path, db_name)


def test_a_server_stopped_mid_fleet_apply_stops_every_database_and_a_rerun_converges(
    own_couchdb: OwnCouchDB, tmp_path: Path
) -> None:
    url = own_couchdb.url
    names = [f"fleet-{i:03d}" for i in range(120)]
    with httpx.Client(base_url=url, timeout=30) as http:
        for name in names:
            http.put(f"/{name}").raise_for_status()
    data = tmp_path / "template.jsonl"
    data.write_text("".join(f'{{"_id": "t-{i:04d}", "n": {i}}}\n' for i in range(300)))
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text('version: 1\ndatabases:\n  "fleet-*":\n    prune: true\n'
                        '    documents_from: [template.jsonl]\n')
    victim = couchsync(url, "apply", str(manifest), "--yes", "--parallel", "8",
                       "--batch-size", "50")
    wait_for(lambda: sum(httpx.get(f"{url}/{name}", timeout=10).json().get("doc_count", 0)
                         > 0 for name in names[:12]) >= 4,
             "the apply to be writing several databases", proc=victim)
    own_couchdb.stop()
    out, err = victim.communicate(timeout=180)

    assert victim.returncode == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) <= 7, err[:3000]
    assert lines[0].startswith("Error: apply stopped: lost the server:")
    assert "own-server-pw" not in out + err

    own_couchdb.start()
    freed = run(url, "force-unlock", "fleet-*")  # every database's lock, by pattern
    assert freed.returncode == 0, freed.stderr
    assert "fleet-000: " in freed.stdout
    finished = run(url, "apply", str(manifest), "--yes")
    assert finished.returncode == 0, finished.stderr
    for name in names:
        assert doc_count(url, name) == 300
        assert pending_entries(url, name) == 0
    # Nothing orphaned in any database: pruning the whole template leaves each empty.
    manifest.write_text('version: 1\ndatabases:\n  "fleet-*":\n    prune: true\n')
    assert run(url, "apply", str(manifest), "--yes").returncode == 0
    assert all(doc_count(url, name) == 0 for name in names)
