"""couchsync killed, raced and cut off from its server: what it wrote stays known to it.

Each test runs the real ``couchsync`` command in processes of its own, against
the test server (any server: ``COUCHSYNC_TEST_URL``), and ends the same way: the
server converged, and a manifest that prunes everything leaves no document
behind (no orphan the ownership record failed to learn). The test that stops
the server mid-apply needs a server of its own to stop: the bundled Apache
CouchDB (``../shared/couchdb`` or ``$COUCHDB_DIST``), skipped without it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from couchsync.lock import LOCK_DB, lock_id

ROOT = Path(__file__).resolve().parents[2]
COUCHSYNC = str(Path(sys.executable).parent / "couchsync")


def _manifest(path: Path, db: str, docs: range | list[str], *, prune: bool = False,
              prefix: str = "d") -> str:
    """A manifest of ``db`` seeding ``docs`` from a JSON Lines file (fast to load)."""
    data = path.with_suffix(".jsonl")
    data.write_text("".join(json.dumps({"_id": f"{prefix}-{i:06d}" if isinstance(i, int) else i,
                                        "n": str(i)}) + "\n" for i in docs))
    path.write_text(json.dumps({"version": 1, "databases": {db: {
        "prune": prune, "documents_from": [data.name]}}}))
    return str(path)


def _couchsync(url: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "COUCHDB_URL": url, "NO_COLOR": "1"}
    return subprocess.Popen([COUCHSYNC, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _run(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = _couchsync(url, *args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _doc_count(url: str, db: str) -> int:
    """Documents in ``db`` (design docs excluded), read with every copy answering."""
    rows = httpx.get(f"{url}/{db}/_all_docs", timeout=60).json()["rows"]
    return sum(not row["id"].startswith("_design/") for row in rows)


def _lock_holder(url: str, db: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{url}/{LOCK_DB}/{lock_id(db)}", timeout=10)
    return answer.json().get("holder") if answer.status_code == 200 else None


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 180,
              proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"couchsync ended (exit {proc.returncode}) before {what}: "
                                 f"{out[-1000:]} {err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _prune_everything(url: str, tmp_path: Path, db: str) -> None:
    """Apply a manifest of ``db`` that lists nothing and prunes; then nothing is left."""
    path = _manifest(tmp_path / "prune-all.yaml", db, [], prune=True)
    done = _run(url, "apply", path, "--yes", "--lock-timeout", "60")
    assert done.returncode == 0, done.stderr
    assert _doc_count(url, db) == 0, "prune left documents the ownership record did not know"


def _pending_entries(url: str, db: str) -> int:
    head = httpx.get(f"{url}/{db}/_local/couchsync", timeout=10).json()
    bodies = [head] + [httpx.get(f"{url}/{db}/_local/couchsync.{i}", timeout=10).json()
                       for i in range(head.get("shards", 1)) if head.get("shards", 1) > 1]
    return sum(not entry[0] for body in bodies for entry in body.get("managed", {}).values())


def test_two_applies_racing_on_one_database_both_land_and_prune_leaves_nothing(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    for round_ in range(3):
        first = _manifest(tmp_path / f"a{round_}.yaml", db_name, range(1500), prefix="a")
        second = _manifest(tmp_path / f"b{round_}.yaml", db_name, range(1500), prefix="b")
        racers = [_couchsync(couch_url, "apply", path, "--yes", "--batch-size", "250",
                             "--lock-timeout", "120") for path in (first, second)]
        for racer in racers:
            _out, err = racer.communicate(timeout=300)
            assert racer.returncode == 0, err
        assert _doc_count(couch_url, db_name) == 3000
        for path in (first, second):
            again = _run(couch_url, "plan", path, "--detailed-exitcode")
            assert again.returncode == 0, again.stdout + again.stderr
        _prune_everything(couch_url, tmp_path, db_name)


def test_a_second_apply_is_refused_naming_the_holder_and_plan_tells_of_the_lock(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    big = _manifest(tmp_path / "big.yaml", db_name, range(20000))
    holder = _couchsync(couch_url, "apply", big, "--yes", "--batch-size", "100")
    try:
        _wait_for(lambda: _lock_holder(couch_url, db_name) is not None, "the lock to be taken",
                  proc=holder)
        small = _manifest(tmp_path / "small.yaml", db_name, ["other"])

        refused = _run(couch_url, "apply", small, "--yes")
        assert refused.returncode == 1
        assert f"{db_name}: " in refused.stderr and f"(pid {holder.pid})" in refused.stderr
        assert "couchsync force-unlock" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.splitlines()) <= 5

        planned = _run(couch_url, "plan", small)
        assert planned.returncode == 0, planned.stderr
        assert f"Note: {db_name} is locked by an apply" in planned.stderr
        assert f"(pid {holder.pid})" in planned.stderr
    finally:
        _out, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err
    assert _lock_holder(couch_url, db_name) is None  # released at the end


def test_applies_killed_at_random_instants_then_finished_leave_no_orphan(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seed = _manifest(tmp_path / "seed.yaml", db_name, range(12000))
    rng = random.Random(int(os.environ.get("COUCHSYNC_TEST_SEED", "9")))
    for _kill in range(4):
        victim = _couchsync(couch_url, "apply", seed, "--yes", "--batch-size", "200",
                            "--lock-ttl", "5", "--lock-timeout", "60")
        time.sleep(rng.uniform(0.3, 2.5))
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
    # The last victim's lock expires after its TTL; this run takes it over and finishes.
    finished = _run(couch_url, "apply", seed, "--yes", "--lock-timeout", "60")
    assert finished.returncode == 0, finished.stderr
    assert _doc_count(couch_url, db_name) == 12000
    clean = _run(couch_url, "plan", seed, "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert _pending_entries(couch_url, db_name) == 0
    _prune_everything(couch_url, tmp_path, db_name)


def test_force_unlock_frees_a_lock_left_by_a_killed_apply(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seed = _manifest(tmp_path / "seed.yaml", db_name, range(20000))
    victim = _couchsync(couch_url, "apply", seed, "--yes", "--batch-size", "100")
    _wait_for(lambda: _lock_holder(couch_url, db_name) is not None, "the lock to be taken",
              proc=victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)

    refused = _run(couch_url, "apply", seed, "--yes")
    assert refused.returncode == 1 and f"(pid {victim.pid})" in refused.stderr

    freed = _run(couch_url, "force-unlock", db_name)
    assert freed.returncode == 0, freed.stderr
    assert f"{db_name}: lock freed (was held by" in freed.stdout
    assert _lock_holder(couch_url, db_name) is None

    finished = _run(couch_url, "apply", seed, "--yes")
    assert finished.returncode == 0, finished.stderr
    _prune_everything(couch_url, tmp_path, db_name)


# -- a server of the test's own, stopped mid-apply


def _couchdb_dist() -> Path | None:
    candidates = [os.environ.get("COUCHDB_DIST"), str(ROOT.parent / "shared" / "couchdb")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "start").is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OwnCouchDB:
    def __init__(self, dist: Path, directory: Path) -> None:
        self.dist = dist
        self.dir = directory
        self.port = _free_port()
        self.url = ""

    def start(self) -> str:
        started = subprocess.run(
            [str(self.dist / "start"), "--dir", str(self.dir), "--port", str(self.port),
             "--admin", "admin:own-server-pw"],
            capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr[-2000:]
        self.url = started.stdout.strip()
        return self.url

    def stop(self) -> None:
        subprocess.run([str(self.dist / "stop"), str(self.dir)], capture_output=True,
                       timeout=60)


@pytest.fixture
def own_couchdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_OwnCouchDB]:
    dist = _couchdb_dist()
    if dist is None:
        pytest.skip("needs the bundled Apache CouchDB (../shared/couchdb or COUCHDB_DIST) "
                    "to start and stop a server of its own")
    server = _OwnCouchDB(dist, tmp_path_factory.mktemp("own-couchdb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_stopped_mid_apply_stops_it_with_a_short_report_and_a_rerun_converges(
    own_couchdb: _OwnCouchDB, tmp_path: Path
) -> None:
    url = own_couchdb.url
    seed = _manifest(tmp_path / "seed.yaml", "faulty", range(40000))
    victim = _couchsync(url, "apply", seed, "--yes", "--batch-size", "500")
    _wait_for(lambda: _lock_holder(url, "faulty") is not None
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
    assert _run(url, "force-unlock", "faulty").returncode == 0
    finished = _run(url, "apply", seed, "--yes")
    assert finished.returncode == 0, finished.stderr
    assert _doc_count(url, "faulty") == 40000
    assert _pending_entries(url, "faulty") == 0
    _prune_everything(url, tmp_path, "faulty")


def test_n_above_the_node_count_is_a_clear_error(
    couch_url: str, db_name: str, tmp_path: Path, is_couchdb: bool
) -> None:
    if not is_couchdb:
        pytest.skip("PouchDB Server has no /_membership and ignores n")
    nodes = len(httpx.get(f"{couch_url}/_membership", timeout=10).json()["cluster_nodes"])
    path = tmp_path / "n.yaml"
    path.write_text(json.dumps({"version": 1, "databases": {db_name: {"n": nodes + 2}}}))
    refused = _run(couch_url, "apply", str(path), "--yes")
    assert refused.returncode == 1
    assert (f"db:{db_name}: n: {nodes + 2} is more than the {nodes} node" in refused.stderr)
    assert "Traceback" not in refused.stderr
    assert httpx.get(f"{couch_url}/{db_name}", timeout=10).status_code == 404


def test_a_cluster_with_a_node_down_reports_writes_short_of_every_copy(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dist = _couchdb_dist()
    if dist is None:
        pytest.skip("needs the bundled Apache CouchDB (../shared/couchdb or COUCHDB_DIST) "
                    "to start a cluster of its own and stop one of its nodes")
    directory = tmp_path_factory.mktemp("own-cluster")
    port = _free_port()
    started = subprocess.run(
        [str(dist / "start"), "--nodes", "3", "--dir", str(directory), "--port", str(port),
         "--admin", "admin:own-cluster-pw"], capture_output=True, text=True, timeout=180)
    if started.returncode != 0 and "taken" in started.stderr:
        pytest.skip(f"ports {port}..{port + 2} not free: {started.stderr[-300:]}")
    assert started.returncode == 0, started.stderr[-2000:]
    url = started.stdout.strip()
    try:
        seed = _manifest(tmp_path / "seed.yaml", "degraded", range(300))
        third = int((directory / "pids").read_text().split()[2])
        os.kill(third, signal.SIGKILL)
        applied = _run(url, "apply", seed, "--yes", "--batch-size", "100")
        assert applied.returncode == 0, applied.stderr
        assert "Apply complete: 301 created" in applied.stdout
        assert "Warning: db:degraded: " in applied.stderr
        assert "stored on fewer than all 3 copies (202 Accepted" in applied.stderr
        assert _doc_count(url, "degraded") == 300
    finally:
        subprocess.run([str(dist / "stop"), str(directory)], capture_output=True, timeout=60)
