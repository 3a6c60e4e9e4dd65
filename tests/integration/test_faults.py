"""``couchsync plan``, ``apply --yes`` and ``export`` through a hostile network.

Each command runs, in a process of its own, through a loopback proxy in front of the
server under test (any server: ``COUCHSYNC_TEST_URL``) that misbehaves on one chosen
request: the documents read (``GET /db/_all_docs``) of plan and export, the second
document batch (``POST /db/_bulk_docs``) of apply, so apply is hit mid-write. Every
fault ends one of two ways: the command succeeds after a bounded retry (where
``couchsync.client._retry`` makes a repeat safe) with the same result as without the
fault, or it fails with exit 1 and a few clean lines on stderr (no traceback, no
password). Then the same commands without the fault converge: apply succeeds, a
following ``plan --detailed-exitcode`` exits 0, and the server holds exactly the
declared documents, nothing lost, nothing left over (plan and export, which write
nothing, leave the server exactly as it was). Apply is also hit on its own
bookkeeping: taking the lock, writing the ownership record ahead and last, freeing
the lock.

``COUCHDB_TIMEOUT`` keeps the faulted runs' timeout short (a stalled answer costs
1 s, not 30).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cli_helpers import lock_holder, pending_entries, run

if str(Path(__file__).parents[1] / "client") not in sys.path:
    sys.path.insert(0, str(Path(__file__).parents[1] / "client"))
from loopback import Fault, Proxy, upstream_of  # tests/client/loopback.py

#: Seconds the faulted runs wait for a connection or a read (COUCHDB_TIMEOUT).
TIMEOUT = "1"
#: Documents per _bulk_docs in apply: the changes below make 6 batches.
BATCH = "10"

COMMANDS = ("plan", "apply", "export")


def _target(command: str, db: str) -> dict[str, Any]:
    """The request a fault picks: the second ``_all_docs`` read of export (the documents;
    the first reads the design docs), the revisions scan of plan, the second document
    batch of apply (its first ``_bulk_docs`` writes the ownership record ahead)."""
    if command == "apply":
        return {"method": "POST", "path": f"/{db}/_bulk_docs", "nth": 3}
    return {"method": "GET", "path": f"/{db}/_all_docs", "nth": 2 if command == "export" else 1}


@dataclass(frozen=True)
class Case:
    """A fault, and how each command ends under it: None when it succeeds, else a
    fragment of its error line per command."""

    name: str
    fault: Callable[[dict[str, Any]], Fault]
    errors: dict[str, str] | None

    def __str__(self) -> str:
        return self.name


def _all(fragment: str) -> dict[str, str]:
    return dict.fromkeys(COMMANDS, fragment)


CASES = [
    # Nothing listens any more: the request in flight and every later one is refused.
    Case("refuse", lambda at: Fault("refuse", **at), _all("could not connect")),
    # The request is read and never answered: the client gives up after its timeout
    # and does not repeat it (the server might still be at work on it).
    Case("stall", lambda at: Fault("stall", **at), _all("timed out")),
    # The answer is cut mid-body once: the request is repeated (it is safe to).
    Case("cut-once", lambda at: Fault("cut", times=1, **at), None),
    # ... every time: three repeats, then a clean error.
    Case("cut-always", lambda at: Fault("cut", **at), _all("HTTP protocol error")),
    # A server error, once: not repeated (a repeat could do it twice).
    Case("500", lambda at: Fault("answer", status=500, times=1, **at),
         _all("unknown_error")),
    # A proxy's HTML error page, once.
    Case("502", lambda at: Fault("answer", status=502, times=1, **at),
         _all("502 Bad Gateway")),
    # "Not now, try again at once", twice: repeated, and it goes through.
    Case("503-then-ok", lambda at: Fault("answer", status=503, retry_after="0", times=2,
                                         **at), None),
    # "Too many requests" for good: three repeats, then a clean error.
    Case("429-always", lambda at: Fault("answer", status=429, retry_after="0", **at),
         _all("too_many_requests")),
    # From that request on, every connection is closed before an answer.
    Case("drop", lambda at: Fault("drop", sticky=True, **at),
         _all("HTTP protocol error")),
    # Every answer of that kind in small pieces, well within the timeout: slow, but fine.
    # (Pieces further apart than the timeout are a stall: tests/client/test_connect.py.)
    Case("trickle", lambda at: Fault("trickle", pieces=4, pause=0.05,
                                     **{**at, "nth": 1}), None),
]


# -- the server's state


def _manifest(path: Path, db: str, docs: dict[str, dict[str, Any]]) -> str:
    data = path.with_suffix(".jsonl")
    data.write_text("".join(json.dumps({"_id": doc_id, **body}) + "\n"
                            for doc_id, body in docs.items()))
    path.write_text(json.dumps({"version": 1, "databases": {db: {
        "prune": True, "documents_from": [data.name]}}}))
    return str(path)


#: What apply starts from: 40 documents, written by a clean apply.
BEFORE = {f"d-{i:03d}": {"n": i, "v": 1} for i in range(40)}
#: What it is asked for: 20 updated, 10 kept, 10 pruned, 30 created (60 steps).
AFTER = {**{f"d-{i:03d}": {"n": i, "v": 2} for i in range(20)},
         **{f"d-{i:03d}": {"n": i, "v": 1} for i in range(20, 30)},
         **{f"d-{i:03d}": {"n": i, "v": 2} for i in range(40, 70)}}


def _documents(url: str, db: str) -> dict[str, dict[str, Any]]:
    """Every document of ``db`` (bodies without ``_id`` and ``_rev``), read directly."""
    rows = httpx.get(f"{url}/{db}/_all_docs", params={"include_docs": "true"},
                     timeout=60).json()["rows"]
    return {row["id"]: {key: value for key, value in row["doc"].items()
                        if key not in ("_id", "_rev")} for row in rows}


def _record(url: str, db: str) -> Any:
    return httpx.get(f"{url}/{db}/_local/couchsync", timeout=10).json()


@dataclass(frozen=True)
class Synced:
    """A database in the state its manifest declares (plan and export only read it)."""

    db: str
    manifest: str
    export: str  # what a clean export --with-docs prints
    plan: str  # what a clean plan prints
    record: Any  # its ownership record's head


@pytest.fixture(scope="module", autouse=True)
def _compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The commands' bytecode kept between runs, outside the checkout, as an installed
    couchsync has it (with PYTHONDONTWRITEBYTECODE each of this module's ~90 commands
    would compile couchsync again: a third of the module's time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        patch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.mktemp("pycache")))
        yield


@pytest.fixture(scope="module")
def token() -> str:
    """Names this module's databases (the server may be shared)."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def synced(couch_url: str, token: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    db = f"cstest_faults_read_{token}"
    manifest = _manifest(tmp_path_factory.mktemp("synced") / "synced.yaml", db, AFTER)
    try:
        done = run(couch_url, "apply", manifest, "--yes")
        assert done.returncode == 0, done.stderr
        exported = run(couch_url, "export", "--db", db, "--with-docs")
        planned = run(couch_url, "plan", manifest, "--detailed-exitcode", "--full")
        assert exported.returncode == 0 and planned.returncode == 0, (
            exported.stderr + planned.stdout + planned.stderr)
        yield Synced(db, manifest, exported.stdout, planned.stdout, _record(couch_url, db))
    finally:
        httpx.delete(f"{couch_url}/{db}", timeout=30)


@pytest.fixture(scope="module")
def before(couch_url: str, token: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A database in the state BEFORE, each time called: all made by one apply of a
    pattern (one command, not one per test)."""
    names = [f"cstest_faults_write_{token}_{i:02d}" for i in range(len(CASES) + len(WHERE))]
    path = tmp_path_factory.mktemp("before") / "before.yaml"
    _manifest(path, f"cstest_faults_write_{token}_*", BEFORE)
    try:
        with httpx.Client(timeout=30) as http:
            for name in names:
                http.put(f"{couch_url}/{name}").raise_for_status()
        done = run(couch_url, "apply", str(path), "--yes", "--parallel", "4")
        assert done.returncode == 0, done.stderr
        left = iter(names)
        yield lambda: next(left)
    finally:
        with httpx.Client(timeout=30) as http:
            for name in names:
                http.delete(f"{couch_url}/{name}")


# -- the faulted run


def _through(proxy: Proxy, url: str) -> str:
    """The proxy's URL with the credentials of ``url``."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return proxy.url.replace("http://", f"http://{userinfo}@" if userinfo else "http://")


def _args(command: str, db: str, manifest: str) -> list[str]:
    if command == "plan":  # --full: it reads the database, converged or not
        return ["plan", manifest, "--full"]
    if command == "apply":
        return ["apply", manifest, "--yes", "--batch-size", BATCH]
    return ["export", "--db", db, "--with-docs"]


def _faulted(couch_url: str, fault: Fault, command: str, db: str, manifest: str,
             error: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` through a proxy with ``fault``: it succeeds (``error`` None) or
    fails with a few clean lines holding ``error``; never a traceback or the password."""
    with Proxy(upstream_of(couch_url), faults=[fault]) as proxy:
        done = run(_through(proxy, couch_url), *_args(command, db, manifest),
                   env={"COUCHDB_TIMEOUT": TIMEOUT}, timeout=120)
    assert fault.hits, f"the fault never struck: {[s.target for s in proxy.seen]}"
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-3000:]
    password = urlsplit(couch_url).password
    if password and password not in (urlsplit(couch_url).username or ""):
        assert password not in output
    if error is None:
        assert done.returncode == 0, output[-3000:]
        assert "Error" not in done.stderr, done.stderr
    else:
        assert done.returncode == 1, output[-3000:]
        lines = done.stderr.strip().splitlines()
        assert lines and lines[0].startswith("Error: "), done.stderr
        assert len(lines) <= 8, done.stderr
        assert error in done.stderr, done.stderr
    return done


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("command", ["plan", "export"])
def test_a_read_under_a_fault_fails_cleanly_or_gets_the_same_answer(
    couch_url: str, synced: Synced, case: Case, command: str
) -> None:
    fault = case.fault(_target(command, synced.db))
    done = _faulted(couch_url, fault, command, synced.db, synced.manifest,
                    None if case.errors is None else case.errors[command])
    if case.errors is None:  # repeated where safe: the answer is whole
        assert done.stdout == (synced.plan if command == "plan" else synced.export)
    else:  # nothing, or a plan of what could be read: never "the server matches"
        assert "The server matches" not in done.stdout and "# Exported" not in done.stdout
    # A read writes nothing: the server is as it was (what a plan without the fault
    # would see), with no lock left behind.
    assert _documents(couch_url, synced.db) == AFTER
    assert _record(couch_url, synced.db) == synced.record
    assert lock_holder(couch_url, synced.db) is None


def _converges(couch_url: str, db: str, manifest: str,
               done: subprocess.CompletedProcess[str]) -> None:
    """Without the fault, the same apply finishes (freeing a lock left behind first, as
    the note says; not run again after a whole success) and leaves exactly AFTER, every
    record entry confirmed."""
    if "couchsync force-unlock" in done.stderr:
        freed = run(couch_url, "force-unlock", db)
        assert freed.returncode == 0, freed.stderr
    if done.returncode != 0 or "couchsync force-unlock" in done.stderr:
        again = run(couch_url, "apply", manifest, "--yes", "--batch-size", BATCH)
        assert again.returncode == 0, again.stdout + again.stderr
    settled = run(couch_url, "plan", manifest, "--detailed-exitcode")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert _documents(couch_url, db) == AFTER
    assert pending_entries(couch_url, db) == 0
    assert lock_holder(couch_url, db) is None


@pytest.mark.parametrize("case", CASES, ids=str)
def test_apply_under_a_fault_mid_write_then_again_converges_with_nothing_lost(
    couch_url: str, before: Callable[[], str], tmp_path: Path, case: Case
) -> None:
    db = before()
    manifest = _manifest(tmp_path / "after.yaml", db, AFTER)
    fault = case.fault(_target("apply", db))
    done = _faulted(couch_url, fault, "apply", db, manifest,
                    None if case.errors is None else case.errors["apply"])
    if case.errors is not None:
        assert done.stderr.startswith(("Error: apply stopped: lost the server: ",
                                       "Error: apply failed for ")), done.stderr
    if fault.kind in ("stall", "drop", "refuse"):  # the server never saw the request
        # What the report says was done is all that was: no batch went out after the
        # server was lost (the next one was already queued to the sender).
        reported = re.search(r"Done before it: (\d+) of", done.stderr)
        assert reported is not None, done.stderr
        now = _documents(couch_url, db)
        assert int(reported[1]) == sum(
            now.get(doc_id) == AFTER.get(doc_id) != BEFORE.get(doc_id)
            for doc_id in {*BEFORE, *AFTER})
    _converges(couch_url, db, manifest, done)


@dataclass(frozen=True)
class Where:
    """A fault on one of apply's own requests, and the error it ends in (None: none)."""

    name: str
    fault: Callable[[str], Fault]
    error: str | None

    def __str__(self) -> str:
        return self.name


WHERE = [
    # Taking the lock: refused once, so nothing is written.
    Where("lock-taken-500", lambda db: Fault(
        "answer", status=500, method="POST", path="/couchsync-locks/_bulk_docs", times=1),
        "could not take the apply lock of "),
    # Writing the ownership record ahead: done by the server, every answer lost.
    Where("record-ahead-cut", lambda db: Fault(
        "cut", method="POST", path=f"/{db}/_bulk_docs"), "HTTP protocol error"),
    # Writing the record last (1 ahead + 6 batches + 1): the server is lost from there.
    Where("record-last-drop", lambda db: Fault(
        "drop", method="POST", path=f"/{db}/_bulk_docs", nth=8, sticky=True),
        "HTTP protocol error"),
    # Freeing the lock: everything is written; the server is lost from there.
    Where("lock-freed-drop", lambda db: Fault(
        "drop", method="POST", path="/couchsync-locks/_bulk_docs", nth=2, sticky=True),
        None),
]


@pytest.mark.parametrize("where", WHERE, ids=str)
def test_apply_with_a_fault_on_its_own_bookkeeping_then_again_converges(
    couch_url: str, before: Callable[[], str], tmp_path: Path, where: Where
) -> None:
    db = before()
    manifest = _manifest(tmp_path / "after.yaml", db, AFTER)
    done = _faulted(couch_url, where.fault(db), "apply", db, manifest, where.error)
    _converges(couch_url, db, manifest, done)
