"""Attachments killed mid-apply and cut off: the next run converges, sends what is still
missing, and still knows which attachments are couchsync's.

The real ``couchsync`` command runs in processes of its own; each kill is placed by the
fault proxy (tests/client/loopback.py), which holds a chosen write unanswered while the
process is SIGKILLed, or passes a write on and cuts its answer: what no server does by
itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from cli_helpers import killed_at_request, loopback_fault, run, through_proxy

from couchsync.client import Client
from couchsync.lock import force_unlock
from couchsync.plan import ATTACHMENTS_DDOC
from couchsync.read._limits import INLINE_ATTACHMENT

LARGE = os.urandom(INLINE_ATTACHMENT + 4096)  # streamed by a PUT of its own
CSS = b"p { margin: 0; }\n" * 100


def manifest(tmp_path: Path, db: str, *, attached: bool = True) -> str:
    (tmp_path / "large.bin").write_bytes(LARGE)
    (tmp_path / "site.css").write_bytes(CSS)
    attachments = {"site.css": "site.css", "large.bin": "large.bin"} if attached else {}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {db: {"documents": [
        {"_id": "page", "title": "Page", "_attachments": attachments}]}}}))
    return str(path)


def converges(couch_url: str, db: str, path: str) -> None:
    with Client(couch_url) as client:
        force_unlock(client, [db])  # what an operator does after a crash
    done = run(couch_url, "apply", path, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    clean = run(couch_url, "plan", path, "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with Client(couch_url) as client:
        db_ = client.database(db)
        assert db_.get_attachment("page", "large.bin") == LARGE
        assert db_.get_attachment("page", "site.css") == CSS


def still_owned(couch_url: str, db: str, tmp_path: Path) -> None:
    """couchsync still knows both attachments are its own (also one the run after the
    crash did not send again): dropped from the manifest, they are removed."""
    path = manifest(tmp_path, db, attached=False)
    shown = run(couch_url, "plan", path)
    removed = sorted(line.strip() for line in shown.stdout.splitlines()
                     if line.strip().startswith("- attachment"))
    assert removed == ["- attachment large.bin (1.0 MB)", "- attachment site.css (1.7 KB)"], (
        shown.stdout + shown.stderr)


@pytest.mark.parametrize(("method", "suffix", "nth"), [
    ("PUT", f"/{ATTACHMENTS_DDOC}", 1),  # the ledger written ahead
    ("POST", "/_bulk_docs", 1),  # the document and its small attachment
    ("PUT", "/page/large.bin", 1),  # the large one, streamed
    ("PUT", f"/{ATTACHMENTS_DDOC}", 2),  # the ledger with the server's digests
], ids=["ledger-ahead", "bulk-docs", "streamed", "ledger-after"])
def test_killed_at_each_write_the_next_apply_converges_and_owns_what_it_wrote(
    couch_url: str, db_name: str, tmp_path: Path, method: str, suffix: str, nth: int
) -> None:
    path = manifest(tmp_path, db_name)
    with Client(couch_url) as client:
        client.create(db_name)
    killed_at_request(couch_url, method, suffix, nth, "apply", path, "--yes")
    converges(couch_url, db_name, path)
    still_owned(couch_url, db_name, tmp_path)


def test_a_streamed_upload_whose_answer_is_lost_converges(
    couch_url: str, db_name: str, tmp_path: Path
) -> None:
    path = manifest(tmp_path, db_name)
    # The server stores the attachment; its answer is cut, and the server is lost.
    cut = loopback_fault("cut", method="PUT", path="/page/large.bin", times=1, sticky=True)
    with through_proxy(couch_url, [cut]) as through:
        lost = run(through, "apply", path, "--yes")
    assert cut.hits >= 1 and lost.returncode == 1, lost.stdout + lost.stderr
    assert "Traceback" not in lost.stderr
    converges(couch_url, db_name, path)
    still_owned(couch_url, db_name, tmp_path)
