"""Helpers for tests that run the real ``couchsync`` command in processes of its own."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from couchsync.lock import LOCK_DB, lock_id

ROOT = Path(__file__).resolve().parents[2]
COUCHSYNC = str(Path(sys.executable).parent / "couchsync")


def seed_manifest(path: Path, db: str, docs: range | list[str], *, prune: bool = False,
              prefix: str = "d") -> str:
    """A manifest of ``db`` seeding ``docs`` from a JSON Lines file (fast to load)."""
    data = path.with_suffix(".jsonl")
    data.write_text("".join(json.dumps({"_id": f"{prefix}-{i:06d}" if isinstance(i, int) else i,
                                        "n": str(i)}) + "\n" for i in docs))
    path.write_text(json.dumps({"version": 1, "databases": {db: {
        "prune": prune, "documents_from": [data.name]}}}))
    return str(path)


def couchsync(url: str, *args: str, env: dict[str, str] | None = None,
              **popen: Any) -> subprocess.Popen[str]:
    """``couchsync ARGS`` started on ``url``, with ``env`` added to the environment."""
    env = {**os.environ, "COUCHDB_URL": url, "NO_COLOR": "1", **(env or {})}
    return subprocess.Popen([COUCHSYNC, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def run(url: str, *args: str, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = couchsync(url, *args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def doc_count(url: str, db: str) -> int:
    """Documents in ``db`` (design docs excluded), read with every copy answering."""
    rows = httpx.get(f"{url}/{db}/_all_docs", timeout=60).json()["rows"]
    return sum(not row["id"].startswith("_design/") for row in rows)


def lock_holder(url: str, db: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{url}/{LOCK_DB}/{lock_id(db)}", timeout=10)
    return answer.json().get("holder") if answer.status_code == 200 else None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 180,
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


def apply_holding_the_lock(url: str, db: str, path: str, *args: str) -> subprocess.Popen[str]:
    """``couchsync apply PATH --yes ARGS`` started, once it holds the lock of ``db``."""
    proc = couchsync(url, "apply", path, "--yes", *args)
    wait_for(lambda: lock_holder(url, db) is not None, "the lock to be taken", proc=proc)
    return proc


def prune_everything(url: str, tmp_path: Path, db: str) -> None:
    """Apply a manifest of ``db`` that lists nothing and prunes; then nothing is left."""
    path = seed_manifest(tmp_path / "prune-all.yaml", db, [], prune=True)
    done = run(url, "apply", path, "--yes", "--lock-timeout", "60")
    assert done.returncode == 0, done.stderr
    assert doc_count(url, db) == 0, "prune left documents the ownership record did not know"


def pending_entries(url: str, db: str) -> int:
    """Entries of ``db``'s ownership record still pending (written ahead, not confirmed)."""
    head = httpx.get(f"{url}/{db}/_local/couchsync", timeout=10).json()
    shards = head.get("shards", 1)
    bodies = [head] + [httpx.get(f"{url}/{db}/_local/couchsync.{i}", timeout=10).json()
                       for i in range(shards) if shards > 1]
    return len(head.get("creating_ids", ())) + int(head.get("creating", 0)) + sum(
        not entry[0] for body in bodies for entry in body.get("managed", {}).values())


def couchdb_dist() -> Path | None:
    """The bundled CouchDB release, as ``scripts/couchdb-dist`` finds it; None without."""
    found = subprocess.run([str(ROOT / "scripts" / "couchdb-dist")], capture_output=True,
                           text=True)
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def free_ports(count: int) -> int:
    """A port P such that P … P+count-1 are all free on loopback now."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = int(sock.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


def couchdb_of_its_own(factory: Any, why: str, nodes: int = 1) -> OwnCouchDB:
    """A CouchDB of the test's own (not started); the test is skipped, saying ``why`` it
    needs one, where the bundled release is missing. ``factory``: tmp_path_factory."""
    dist = couchdb_dist()
    if dist is None:
        import pytest

        pytest.skip(f"needs the bundled Apache CouchDB (../shared/couchdb or COUCHDB_DIST) {why}")
    return OwnCouchDB(dist, factory.mktemp("own-couchdb"), nodes=nodes)


class OwnCouchDB:
    """A CouchDB of the test's own (``nodes`` nodes) from the bundled release."""

    def __init__(self, dist: Path, directory: Path, nodes: int = 1) -> None:
        self.dist = dist
        self.dir = directory
        self.nodes = nodes
        self.port = 0
        self.url = ""

    def start(self) -> str:
        """Start it (again: same directory and port, same data)."""
        for _attempt in range(5):  # a port found free may be taken before start binds it
            port = self.port or free_ports(self.nodes)
            started = subprocess.run(
                [str(self.dist / "start"), "--nodes", str(self.nodes), "--dir", str(self.dir),
                 "--port", str(port), "--admin", "admin:own-server-pw"],
                capture_output=True, text=True, timeout=180)
            if started.returncode == 0:
                self.port, self.url = port, started.stdout.strip()
                return self.url
            if self.port or "in use" not in started.stderr:
                break
        raise AssertionError(f"could not start CouchDB: {started.stderr[-2000:]}")

    def pids(self) -> list[int]:
        return [int(pid) for pid in (self.dir / "pids").read_text().split()]

    def stop(self) -> None:
        subprocess.run([str(self.dist / "stop"), str(self.dir)], capture_output=True,
                       timeout=60)


@contextlib.contextmanager
def through_proxy(url: str, faults: list[Any]) -> Iterator[str]:
    """The URL, credentials kept, of a loopback proxy (tests/client/loopback.py) to
    ``url`` that acts out ``faults`` (``loopback.Fault``: ``loopback_fault`` makes one)."""
    loopback = _loopback()
    parts = urlsplit(url)
    with loopback.Proxy(loopback.upstream_of(url), faults=faults) as proxy:
        yield (f"http://{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
               if parts.username else proxy.url)


def loopback_fault(*args: Any, **kwargs: Any) -> Any:
    """``loopback.Fault(*args, **kwargs)``."""
    return _loopback().Fault(*args, **kwargs)


def _loopback() -> Any:
    """tests/client/loopback.py, the fault proxy (it lives beside the client tests)."""
    if str(ROOT / "tests" / "client") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / "client"))
    import loopback

    return loopback


def killed_at_request(url: str, method: str, path: str, nth: int, *args: str) -> None:
    """``couchsync ARGS`` on ``url`` through a loopback proxy that holds, unanswered, its
    ``nth`` ``method`` request whose path ends with ``path``, SIGKILLed once that request
    is held: a kill at a chosen point of its writes, not at a random instant. Fails when
    it ended before that request."""
    held = loopback_fault("stall", method=method, path=path, nth=nth, times=1)
    with through_proxy(url, [held]) as through:
        proc = couchsync(through, *args)
        wait_for(lambda: held.hits > 0, f"its {method} {path} number {nth}", proc=proc)
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -9, "killed while its chosen request was held"
