"""``apply --watch`` benchmark (issue 22): how long from saving a view change to the server
holding it.

One database of ``--docs`` documents (a JSON Lines data file) and the design doc ``app``
with the view ``by_n``; ``couchsync apply --watch DIR`` runs on it in a process of its own
(loopback: it applies each round without asking). Each of ``--changes`` rounds rewrites
the manifest with the next version of the map (``emit(doc.n, K)``), in place as an editor
saves, and polls ``GET /DB/_design/app`` every ``--poll`` seconds until it holds version K:
the time from just before the write to the first answer holding K is the round's figure
("view"). "round" is until the watch printed the round's result (its ownership record
written and its lock released, after the view); the next change waits for it (rounds never
overlap) and ``--pause`` seconds more. Target: the median "view" ≤ 1 s on a quiet machine.

    python bench/watch.py                                   # its own CouchDB on 7984
    python bench/watch.py --url http://admin:admin@127.0.0.1:41984 --changes 20

The server: ``--url``, else ``$COUCHSYNC_BENCH_URL``, else ``$COUCHDB_URL``, else the
bundled Apache CouchDB 3.5.2 started on ``--port`` (loopback) in a fresh directory and
stopped at the end. Nothing asserts: it measures. Results: a line per round and a summary
on stdout, and ``bench/out/watch/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
import couchdb_server
from run import COUCHSYNC, OUT, server_name

WATCH_OUT = OUT / "watch"
PORT = 7984  # the benchmarks' port: other servers on this machine belong to test suites
TARGET_S = 1.0


def write_manifest(directory: Path, db: str, version: int) -> None:
    """The manifest at ``version`` of the map; its data file is written once, beside it."""
    design = {"views": {"by_n": {"map": f"function (doc) {{ emit(doc.n, {version}); }}"}}}
    (directory / "app.yaml").write_text(
        "version: 1\ndatabases:\n"
        f"  {db}:\n    documents_from: [docs.jsonl]\n"
        f"    design_docs:\n      app: {json.dumps(design)}\n")


def holds(http: httpx.Client, db: str, version: int) -> bool:
    answer = http.get(f"/{db}/_design/app")
    return (answer.status_code == 200
            and f"emit(doc.n, {version});" in answer.json()["views"]["by_n"]["map"])


class Output(threading.Thread):
    """The watch process's stdout, read as it comes: rounds whose result it printed."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []
        self.results = 0

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(("Apply complete:", "No changes.")):
                self.results += 1


def wait(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str],
         timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise SystemExit(f"the watch ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)


def measure(url: str, args: argparse.Namespace, tmp: Path) -> tuple[list[float], list[float]]:
    """Each change's "view" and "round" figures, in seconds."""
    db = f"watch-bench-{os.getpid()}"
    (tmp / "docs.jsonl").write_text("".join(json.dumps({"_id": f"d-{i:06d}", "n": i}) + "\n"
                                            for i in range(args.docs)))
    write_manifest(tmp, db, 0)
    env = {**os.environ, "COUCHDB_URL": url, "NO_COLOR": "1"}
    http = httpx.Client(base_url=url, timeout=60)
    proc = subprocess.Popen([*COUCHSYNC, "apply", "--watch", str(tmp)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    output = Output(proc)
    output.start()
    figures: list[float] = []
    rounds: list[float] = []
    try:
        wait(lambda: output.results == 1, "the first round", proc, 600, 0.05)
        for version in range(1, args.changes + 1):
            time.sleep(args.pause)
            start = time.perf_counter()
            write_manifest(tmp, db, version)
            wait(lambda v=version: holds(http, db, v), f"version {version}", proc, 60,
                 args.poll)
            figures.append(time.perf_counter() - start)
            wait(lambda v=version: output.results == v + 1, f"round {version}'s result", proc,
                 60, 0.01)
            rounds.append(time.perf_counter() - start)
            print(f"change {version:>3}: view {figures[-1] * 1000:6.1f} ms, round "
                  f"{rounds[-1] * 1000:6.1f} ms", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C while it waits: it exits 0
        proc.wait(timeout=60)
        output.join(timeout=10)
        with contextlib.suppress(httpx.HTTPError):
            http.delete(f"/{db}")
        http.close()
    return figures, rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the server, with admin credentials")
    parser.add_argument("--port", type=int, default=PORT, help="its own CouchDB's port")
    parser.add_argument("--changes", type=int, default=20, help="saved changes timed")
    parser.add_argument("--docs", type=int, default=100, help="documents in the database")
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between polls")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds between a round's result and the next change")
    args = parser.parse_args()
    given = args.url or os.environ.get("COUCHSYNC_BENCH_URL") or os.environ.get("COUCHDB_URL")
    with contextlib.ExitStack() as stack:
        url = given.rstrip("/") if given else stack.enter_context(
            couchdb_server.running_server(args.port))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="watch-bench-")))
        load_before = os.getloadavg()
        figures, rounds = measure(url, args, tmp)
        load_after = os.getloadavg()
        server = server_name(url)
    median = statistics.median(figures)
    summary = {
        "server": server, "python": platform.python_version(), "changes": len(figures),
        "docs": args.docs, "poll_s": args.poll,
        "median_s": median, "min_s": min(figures), "max_s": max(figures),
        "p90_s": statistics.quantiles(figures, n=10)[-1] if len(figures) > 1 else median,
        "target_s": TARGET_S, "met": median <= TARGET_S,
        "round_median_s": statistics.median(rounds), "rounds_s": rounds,
        "load": [round(load_before[0], 2), round(load_after[0], 2)], "figures_s": figures,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    WATCH_OUT.mkdir(parents=True, exist_ok=True)
    (WATCH_OUT / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{server}, {len(figures)} changes, {args.docs} documents, load "
          f"{summary['load'][0]} → {summary['load'][1]}")
    print(f"save → view on the server: median {median * 1000:.0f} ms (min "
          f"{summary['min_s'] * 1000:.0f}, p90 {summary['p90_s'] * 1000:.0f}, max "
          f"{summary['max_s'] * 1000:.0f}); target ≤ {TARGET_S:g} s: "
          f"{'met' if summary['met'] else 'missed'}")
    print(f"save → round's result printed: median {summary['round_median_s'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
