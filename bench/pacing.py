"""Pacing benchmark: ``--max-rate`` counted at the client, and the adaptive limit against a
server made busy by the fault proxy (tests/client/loopback.py). Nothing asserts: it measures.

    python bench/pacing.py                              # both parts, a fresh bundled CouchDB
    python bench/pacing.py --only rate --dbs 1000 --rate 200
    python bench/pacing.py --only adaptive --busy-dbs 300 --capacity 3
    COUCHSYNC_BENCH_URL=http://u:p@127.0.0.1:5984 python bench/pacing.py   # a running server

``rate``: a first ``couchsync apply`` of bench/fleet.py's template to ``--dbs`` empty
databases with ``--max-rate R``, and one without (to show the ceiling binds), each on a
fresh set. The command runs in this process (typer's CliRunner) with the engine's
``httpx.Client.send`` wrapped to note when each request leaves: after pacing, so what
the server is sent. Reported: requests, seconds, the most requests in any 1-second window
(target: ≤ R) and the mean rate.

``adaptive``: a first apply to ``--busy-dbs`` empty databases through the fault proxy,
which plays a server that is busy from ``--busy-from`` to ``--busy-until`` seconds into
the run: there every answer waits ``--cost`` seconds times the requests it is served
with (a queue: more at once is no faster, only slower). Two such servers: one that past
``--capacity`` requests at once answers 503 (as a shedding load balancer, or CouchDB's
``all_dbs_active``), one that is only slow. Once with the adaptive limit (the default),
once with ``--no-adaptive``, each on a fresh set, ``--pairs`` times interleaved.
Reported: seconds, exit code, 503s served, the mean number of requests the busy server
served at once, retries, databases left unconverged, and the adaptive run's limit over
time (from its log records: each change of the limit is one, with its new ``limit``).

Results: tables on stdout and ``bench/out/pacing/results.json``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests" / "client")]  # bench/: no package
import fleet  # noqa: E402
import loopback  # noqa: E402
from run import OUT, bench_server, server_name  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from couchsync.cli import app  # noqa: E402
from couchsync.client import _transport  # noqa: E402

PACING_OUT = OUT / "pacing"


@contextlib.contextmanager
def counting_sends() -> Iterator[list[float]]:
    """When each request leaves the engine (after pacing), while the block runs."""
    sent: list[float] = []
    original = _transport._Client.send

    def send(self: httpx.Client, request: httpx.Request, **options: Any) -> httpx.Response:
        sent.append(time.monotonic())
        return original(self, request, **options)

    _transport._Client.send = send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        _transport._Client.send = original  # type: ignore[method-assign]


def most_in_a_second(times: list[float]) -> int:
    """The most of ``times`` (sorted) in any half-open window of one second."""
    return max((bisect.bisect_left(times, start + 1) - i for i, start in enumerate(times)),
               default=0)


class LimitLog(logging.Handler):
    """The pacing's changes of the limit: (seconds since ``start``, new limit)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.start = time.time()
        self.changes: list[tuple[float, int]] = []
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "limit"):
            self.changes.append((record.created - self.start, record.limit))
        elif record.getMessage().startswith("retrying"):
            self.retries += 1

    @contextlib.contextmanager
    def attached(self) -> Iterator[LimitLog]:
        logger = logging.getLogger("couchsync.client")
        level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        self.start = time.time()
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


class Busy:
    """The fault proxy's script: a server busy from ``begin`` to ``end`` seconds after
    ``start()``: answers queue (``cost`` × those served at once), and past ``capacity`` at
    once (None: never) it answers 503. ``served`` adds up the seconds of every answer's
    wait: over the busy time, the mean number of requests it was serving at once."""

    def __init__(self, begin: float, end: float, cost: float, capacity: int | None) -> None:
        self.begin, self.end, self.cost, self.capacity = begin, end, cost, capacity
        self.lock = threading.Lock()
        self.serving = 0
        self.t0 = time.monotonic()
        self.refused = 0
        self.served = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.refused = 0
        self.served = 0.0

    def __call__(self, method: str, path: str) -> loopback.Answer | None:
        if not self.begin <= time.monotonic() - self.t0 < self.end:
            return None
        with self.lock:
            if self.capacity is not None and self.serving >= self.capacity:
                self.refused += 1
                return 503, {"Content-Type": "application/json"}, (
                    b'{"error":"service_unavailable","reason":"busy (bench/pacing.py)"}\n')
            self.serving += 1
            waiting = self.cost * self.serving
        try:
            time.sleep(waiting)
        finally:
            with self.lock:
                self.serving -= 1
                self.served += waiting
        return None


class PacingBench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.server = fleet.Server(url, args.setup_workers)
        self.sets = 0

    def fresh(self, size: int) -> tuple[str, Path, list[str]]:
        """A new set of ``size`` empty databases and its manifest (set-up, untimed)."""
        self.sets += 1
        prefix = f"pace-{os.getpid()}-{self.sets}-"
        names = fleet.db_names(prefix, 0, size)
        self.server.create(names)
        return prefix, fleet.write_manifest(prefix), names

    def apply(self, url: str, manifest: Path, *extra: str) -> tuple[int, float, str]:
        """``couchsync apply`` in this process: (exit code, seconds, output's last line)."""
        start = time.perf_counter()
        result = CliRunner().invoke(app, ["apply", str(manifest), "--yes", "--parallel",
                                          str(self.args.parallel), *extra],
                                    env={"COUCHDB_URL": url, "NO_COLOR": "1"})
        elapsed = time.perf_counter() - start
        lines = result.output.strip().splitlines()
        return result.exit_code, elapsed, lines[-1] if lines else ""

    def unconverged(self, names: list[str]) -> int:
        return sum(self.server.doc_count(name) < fleet.TEMPLATE_DOC_COUNT for name in names)

    def rate(self) -> list[dict[str, Any]]:
        rows = []
        for limit in (self.args.rate, None):
            _prefix, manifest, names = self.fresh(self.args.dbs)
            extra = () if limit is None else ("--max-rate", str(limit))
            with counting_sends() as sent:
                code, elapsed, last = self.apply(self.url, manifest, *extra)
            span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
            rows.append({"max_rate": limit, "dbs": self.args.dbs, "exit": code,
                         "seconds": round(elapsed, 2), "requests": len(sent),
                         "most_in_any_second": most_in_a_second(sent),
                         "mean_per_second": round((len(sent) - 1) / span, 1) if span else None,
                         "unconverged": self.unconverged(names), "last_line": last})
            self.server.drop(names)
        return rows

    def adaptive(self) -> list[dict[str, Any]]:
        """Both servers (503 past ``--capacity``; only slow), each run ``--pairs`` times."""
        return [row for capacity in (self.args.capacity, None)
                for row in self.busy_runs(capacity)]

    def busy_runs(self, capacity: int | None) -> list[dict[str, Any]]:
        a = self.args
        busy = Busy(a.busy_from, a.busy_until, a.cost, capacity)
        rows = []
        with loopback.Proxy(loopback.upstream_of(self.url), script=busy) as proxy:
            parts = urlsplit(self.url)
            through = proxy.url if not parts.username else (
                f"http://{parts.username}:{parts.password}@127.0.0.1:{proxy.port}")
            for _pair in range(a.pairs):
                for adaptive in (True, False):
                    _prefix, manifest, names = self.fresh(a.busy_dbs)
                    busy.start()
                    with LimitLog().attached() as log:
                        code, elapsed, last = self.apply(
                            through, manifest, "--adaptive" if adaptive else "--no-adaptive")
                    rows.append({"server": f"busy, 503 past {capacity} at once"
                                 if capacity else "busy, slow only",
                                 "adaptive": adaptive, "dbs": a.busy_dbs, "exit": code,
                                 "seconds": round(elapsed, 2), "503s": busy.refused,
                                 "busy_mean_in_flight": round(
                                     busy.served / (a.busy_until - a.busy_from), 1),
                                 "retries": log.retries,
                                 "unconverged": self.unconverged(names),
                                 "limit_changes": len(log.changes),
                                 "limit_over_time": timeline(log.changes, elapsed,
                                                             max(16, 2 * a.parallel + 2)),
                                 "last_line": last})
                    self.server.drop(names)
        return rows


def timeline(changes: list[tuple[float, int]], seconds: float, start: int) -> list[float]:
    """The limit's mean over each second of the run, weighted by time (it may change many
    times a second); ``start`` before any change: the command's pool size."""
    means = []
    for second in range(int(seconds) + 1):
        at = [(when, limit) for when, limit in changes if second < when < second + 1]
        before = [limit for when, limit in changes if when <= second]
        points = [(float(second), before[-1] if before else start), *at, (second + 1.0, 0)]
        means.append(round(sum(limit * (after[0] - when) for (when, limit), after
                               in itertools.pairwise(points)), 1))
    return means


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", default="rate,adaptive", help="rate, adaptive or both")
    parser.add_argument("--server", default="couchdb", choices=["couchdb", "pouchdb"])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--setup-workers", type=int, default=16)
    parser.add_argument("--dbs", type=int, default=1000, help="databases of the rate part")
    parser.add_argument("--rate", type=int, default=200, help="--max-rate of the rate part")
    parser.add_argument("--busy-dbs", type=int, default=300)
    parser.add_argument("--busy-from", type=float, default=2.0)
    parser.add_argument("--busy-until", type=float, default=12.0)
    parser.add_argument("--cost", type=float, default=0.05)
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    only = set(args.only.split(","))
    PACING_OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"args": vars(args), "revision": fleet.git_head()}
    with bench_server(args.server) as url:
        results["server"] = server_name(url)
        bench = PacingBench(url, args)
        if "rate" in only:
            results["rate"] = bench.rate()
            for row in results["rate"]:
                print(f"rate: --max-rate {row['max_rate']}: {row['requests']} requests in "
                      f"{row['seconds']} s, most in any second {row['most_in_any_second']}, "
                      f"mean {row['mean_per_second']}/s, exit {row['exit']}, "
                      f"unconverged {row['unconverged']}")
        if "adaptive" in only:
            results["adaptive"] = bench.adaptive()
            for row in results["adaptive"]:
                print(f"{row['server']}: adaptive={row['adaptive']}: {row['seconds']} s, exit "
                      f"{row['exit']}, 503s {row['503s']}, served at once while busy "
                      f"{row['busy_mean_in_flight']}, retries {row['retries']}, unconverged "
                      f"{row['unconverged']} of {row['dbs']}; {row['last_line']}")
                if row["adaptive"]:
                    print(f"  the limit's mean in each second: {row['limit_over_time']}")
    (PACING_OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {PACING_OUT / 'results.json'}")


if __name__ == "__main__":
    main()
