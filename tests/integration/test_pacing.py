"""Pacing on a real server: a fleet apply through the fault proxy (tests/client/loopback.py),
which makes the server answer 503 and then answer slowly for a while, still converges; the
adaptive limit backed off and climbed back (read from its log records, not from times).
A fleet apply with ``--max-rate`` (no proxy) sends no more than that in any second.

The command runs in this process (typer's CliRunner) so that the ``couchsync.client``
logger's records, every change of the limit among them, can be read.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import loopback_fault, through_proxy
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.client import _transport

TEMPLATE: dict[str, Any] = {
    "security": {"admins": {"names": [], "roles": []},
                 "members": {"names": [], "roles": ["tenant"]}},
    "design_docs": {"app": {"views": {"by_type": {
        "map": "function (doc) { emit(doc.type, 1); }"}}}},
    "documents": [{"_id": "settings", "type": "settings", "theme": "dark"},
                  {"_id": "welcome", "type": "note", "text": "hello"}],
}


@pytest.fixture
def fleet(couch_url: str) -> Iterator[tuple[str, list[str]]]:
    """The pattern of 30 new empty databases, and their names; deleted afterwards."""
    prefix = f"cstest_pacing_{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i:02d}" for i in range(30)]
    with httpx.Client(base_url=couch_url, timeout=60) as http:
        for name in names:
            http.put(f"/{name}").raise_for_status()
        yield prefix + "*", names
        for name in names:
            http.delete(f"/{name}")


def apply(url: str, tmp_path: Path, pattern: str, *args: str) -> Any:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {pattern: TEMPLATE}}))
    return CliRunner().invoke(app, ["apply", str(path), "--yes", *args],
                              env={"COUCHDB_URL": url, "NO_COLOR": "1"})


def converged(url: str, names: list[str]) -> bool:
    with httpx.Client(base_url=url, timeout=60) as http:
        return all(http.get(f"/{name}/_security").json() == TEMPLATE["security"]
                   and http.get(f"/{name}/settings").json().get("theme") == "dark"
                   and http.get(f"/{name}/_design/app").status_code == 200 for name in names)


def test_a_fleet_apply_backs_off_when_the_server_is_in_trouble_and_climbs_back(
    couch_url: str, fleet: tuple[str, list[str]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the fault proxy: three reads answered 503 (each retried: fewer than a
    request's retries, which one request could meet them all), then forty answers held
    0.4 s each; then the server is itself again."""
    pattern, names = fleet
    caplog.set_level(logging.DEBUG, logger="couchsync.client")
    unavailable = loopback_fault("answer", method="GET", status=503, nth=30, times=3)
    slow = loopback_fault("trickle", nth=120, times=40, pieces=2, pause=0.4)
    with through_proxy(couch_url, [unavailable, slow]) as through:
        done = apply(through, tmp_path, pattern)
    assert done.exit_code == 0, done.output
    assert (unavailable.hits, slow.hits) == (3, 40)
    assert converged(couch_url, names)

    changes = [(record.getMessage(), record.limit) for record in caplog.records
               if hasattr(record, "limit")]
    limits = [limit for _message, limit in changes]
    assert any("after 503 Service Unavailable on GET" in message for message, _ in changes)
    assert any("after 3 slow answers, the last in 0." in message for message, _ in changes)
    # Halved from what was in flight (8 databases at a time: 4 or fewer), then one more
    # after each round of good answers (to the ceiling of 18 if the run lasts long enough).
    lowest = limits.index(min(limits))
    assert limits[lowest] <= 4 and max(limits[lowest:]) >= limits[lowest] + 4


def test_no_second_carries_more_requests_than_max_rate(
    couch_url: str, fleet: tuple[str, list[str]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted as they leave the engine (its ``httpx.Client.send``, after pacing; at a
    proxy, on a loaded machine, its threads' delays bunched them up). A thread may be
    held between its turn and that point: one request of slack in any second (the unit
    tests check the window exactly, on a fake clock); over the whole run, none."""
    pattern, names = fleet
    sent: list[float] = []
    send = _transport._Client.send

    def counted(self: httpx.Client, request: httpx.Request, **options: Any) -> httpx.Response:
        sent.append(time.monotonic())
        return send(self, request, **options)

    monkeypatch.setattr(_transport._Client, "send", counted)
    done = apply(couch_url, tmp_path, pattern, "--max-rate", "40")
    assert done.exit_code == 0, done.output
    assert converged(couch_url, names)
    assert len(sent) > 200
    assert len(sent) - 1 <= 40 * (sent[-1] - sent[0])
    assert max(bisect.bisect_left(sent, start + 1) - i for i, start in enumerate(sent)) <= 41
