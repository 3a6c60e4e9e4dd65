"""Data migrations killed, cut off and raced: each document is changed exactly once,
even by a transform that is not idempotent (``count += 1``).

The real ``couchsync`` command runs in processes of its own. Some crashes are placed
by the fault proxy (tests/client/loopback.py), for what no server does by itself: an
answer lost after the server wrote the batch (``cut``), a request held unanswered while
the process is killed (``stall``); others are SIGKILLs at random instants.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from cli_helpers import couchsync, loopback_fault, run, through_proxy, wait_for

from couchsync.client import Client
from couchsync.lock import force_unlock

DOCS = 1500
TRANSFORM = """\
def bump(doc):
    doc["count"] += 1
    return doc
"""


def bump_manifest(tmp_path: Path, db: str) -> str:
    (tmp_path / "bump.py").write_text(TRANSFORM)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {"migrations": [
        {"id": "bump", "transform": "bump.py:bump"}]}}}))
    return str(path)


def seeded(couch_url: str, db: str) -> None:
    with Client(couch_url) as client:
        client.create(db)
        docs = [{"_id": f"d{i:05}", "count": i} for i in range(DOCS)]
        for start in range(0, DOCS, 500):
            assert not client.database(db).bulk_docs(docs[start:start + 500]).errors()


def counts(couch_url: str, db: str) -> dict[str, Any]:
    rows = httpx.get(f"{couch_url}/{db}/_all_docs", params={"include_docs": "true"},
                     timeout=60).json()["rows"]
    return {row["id"]: row["doc"]["count"] for row in rows if not row["id"].startswith("_")}


def exactly_once(couch_url: str, db: str) -> None:
    wrong = {doc_id: count for doc_id, count in counts(couch_url, db).items()
             if count != int(doc_id[1:]) + 1}
    assert not wrong, f"{len(wrong)} documents not changed exactly once: {list(wrong)[:5]}"


def finish(couch_url: str, db: str, path: str) -> None:
    with Client(couch_url) as client:
        force_unlock(client, [db])  # what an operator does after a crash
    done = run(couch_url, "apply", path, "--yes", "--batch-size", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    clean = run(couch_url, "plan", path, "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_answers_lost_after_the_server_wrote_the_batch_change_nothing_twice(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seeded(couch_url, db_name)
    path = bump_manifest(tmp_path, db_name)
    # The n-th _bulk_docs reaches the server, which writes it; its answer is cut and the
    # server is lost from then on: the journal holds a batch whose outcome is unknown.
    for nth in (3, 5, 8):
        cut = loopback_fault("cut", method="POST", path="/_bulk_docs", nth=nth, times=1,
                             sticky=True)
        with through_proxy(couch_url, [cut]) as through:
            lost = run(through, "apply", path, "--yes", "--batch-size", "100")
        assert cut.hits >= 1 and lost.returncode == 1, lost.stdout + lost.stderr
        with Client(couch_url) as client:
            force_unlock(client, [db_name])
    finish(couch_url, db_name, path)
    exactly_once(couch_url, db_name)


def test_killed_at_random_instants_and_run_again_each_document_changes_once(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seeded(couch_url, db_name)
    path = bump_manifest(tmp_path, db_name)
    chance = random.Random()
    seed = chance.randrange(2**32)
    chance.seed(seed)
    for round_ in range(6):
        if round_ % 2 == 0:  # held at a chosen write, killed while it is held
            held = loopback_fault("stall", method="POST", path="/_bulk_docs",
                                  nth=chance.randrange(2, 16), times=1)
            with through_proxy(couch_url, [held]) as through:
                racer = couchsync(through, "apply", path, "--yes", "--batch-size", "100")
                wait_for(lambda: held.hits > 0 or racer.poll() is not None,  # noqa: B023
                         "the held write")
                racer.kill()
                racer.communicate(timeout=60)
        else:  # at a random instant
            proc = couchsync(couch_url, "apply", path, "--yes", "--batch-size", "100")
            time.sleep(chance.uniform(0.2, 2.5))
            proc.kill()
            proc.communicate(timeout=60)
        with Client(couch_url) as client:
            force_unlock(client, [db_name])
    finish(couch_url, db_name, path)
    try:
        exactly_once(couch_url, db_name)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (random seed {seed})") from None


def test_two_applies_at_once_migrate_each_document_once(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    seeded(couch_url, db_name)
    path = bump_manifest(tmp_path, db_name)
    racers = [couchsync(couch_url, "apply", path, "--yes", "--batch-size", "100",
                        "--lock-timeout", "120") for _ in range(2)]
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, out + err
    exactly_once(couch_url, db_name)
