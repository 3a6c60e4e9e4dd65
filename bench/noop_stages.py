"""Where a no-op plan's time goes: stage by stage, in one process, after a real apply.

    python bench/noop_stages.py [DOCS] [--server couchdb|pouchdb] [--couchdb-port P]

(default 10,000 documents; starts a local server as bench/run.py does, or uses
``COUCHSYNC_BENCH_URL``.)

Prints the median of 5 runs of: loading the manifests without and with the
data-file cache, one revisions-only ``_all_docs`` scan on its own (what the
raw baseline does), reading the live state after loading (sequential), loading
and reading together as ``plan`` does (``load_and_read``: the server works
while the data files load), and planning. Process start-up and imports are
measured by ``python -X importtime`` and bench/run.py, not here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "testserver"), str(ROOT / "bench")]

from run import OUT, bench_server, default_server, make_jsonl, write_manifest  # noqa: E402

from couchsync import (  # noqa: E402
    Client,
    load_and_read,
    load_manifests,
    plan_changes,
    read_live_state,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("docs", type=int, nargs="?", default=10_000)
    parser.add_argument("--server", choices=("couchdb", "pouchdb"), default=None)
    parser.add_argument("--couchdb-port", type=int, default=None)
    args = parser.parse_args()
    count = args.docs
    OUT.mkdir(parents=True, exist_ok=True)
    data = make_jsonl(OUT / f"docs-{count}.jsonl", count)
    manifest = write_manifest(OUT / f"stages-{count}" / "manifest.yaml", "bench_stages", data)
    cache = tempfile.mkdtemp(prefix="couchsync-stages-cache-")
    stages = ("load, no cache", "load, cached", "scan alone", "live read after load",
              "load_and_read, no cache", "load_and_read, cached", "plan")
    times: dict[str, list[float]] = {name: [] for name in stages}
    with bench_server(args.server or default_server(), args.couchdb_port) as url:
        subprocess.run([str(Path(sys.executable).parent / "couchsync"), "apply", str(manifest),
                        "--yes"], env=dict(os.environ, COUCHDB_URL=url,
                                           COUCHSYNC_CACHE_DIR=cache),
                       check=True, stdout=subprocess.DEVNULL)
        with Client(url) as client:
            for _ in range(5):
                marks = [time.perf_counter()]
                os.environ["COUCHSYNC_CACHE_DIR"] = ""
                load_manifests([manifest])
                marks.append(time.perf_counter())
                os.environ["COUCHSYNC_CACHE_DIR"] = cache
                desired = load_manifests([manifest])
                marks.append(time.perf_counter())
                sum(1 for _ in client.database("bench_stages").iter_all_docs(page_size=count))
                marks.append(time.perf_counter())
                live = read_live_state(client, desired)
                marks.append(time.perf_counter())
                os.environ["COUCHSYNC_CACHE_DIR"] = ""
                load_and_read(client, [manifest])
                marks.append(time.perf_counter())
                os.environ["COUCHSYNC_CACHE_DIR"] = cache
                desired, live = load_and_read(client, [manifest])
                marks.append(time.perf_counter())
                plan = plan_changes(desired, live)
                marks.append(time.perf_counter())
                assert plan.is_empty and live.bodies_read() == 0
                for name, start, end in zip(stages, marks[:-1], marks[1:], strict=True):
                    times[name].append(end - start)
    for name, values in times.items():
        print(f"{name:>24}: {statistics.median(values) * 1000:7.1f} ms  "
              f"({min(values) * 1000:.1f}–{max(values) * 1000:.1f})")


if __name__ == "__main__":
    main()
