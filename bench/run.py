"""couchsync benchmarks: every scenario timed against its baseline in the same run.

Machines here are noisy, so absolute times say little: each scenario runs its
couchsync side (A) and its baseline (B) interleaved, A B A B ..., and reports
the median, min and max of each and the ratio of the medians. Whole-process
scenarios are timed as separate processes, with their peak memory taken from
the OS (``os.wait4`` rusage). Benchmarks are not tests: nothing here asserts.

    python bench/run.py                    # start the bundled CouchDB, run all
    python bench/run.py --server pouchdb   # a local PouchDB Server instead
    COUCHSYNC_BENCH_URL=http://u:p@127.0.0.1:5984 python bench/run.py
    python bench/run.py --only seed,noop --pairs 7 --docs 10000 --scale 10000,100000

The reference server is Apache CouchDB 3.5.2, single node, started from the
dist in ``$COUCHDB_DIST`` or ``../shared/couchdb`` (``bench/couchdb_server.py``);
``COUCHSYNC_BENCH_URL``, when set, wins over ``--server``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
COUCHSYNC = [str(Path(PY).parent / "couchsync")]  # the installed console script
sys.path.insert(0, str(ROOT / "testserver"))
sys.path.insert(0, str(ROOT / "bench"))

#: Row-name suffix: with the data-file cache warm (the usual re-run), or turned off.
COLD = {False: "", True: ", cold cache"}

# Scale runs last: a server that just held a million documents is slower for a while.
SCENARIOS = ("seed", "noop", "drift", "startup", "reads", "scale")


@dataclass
class Row:
    scenario: str
    a_name: str
    b_name: str
    a: list[float]
    b: list[float]
    target: str
    note: str = ""
    unit: str = "s"  # "s": times, lower is better; "docs/s": throughput, higher is better

    @property
    def ratio(self) -> float:
        return statistics.median(self.a) / statistics.median(self.b)


def _fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    if unit == "s":
        return f"{med:.3f} s ({min(values):.3f}–{max(values):.3f})"
    return f"{med:,.0f} {unit} ({min(values):,.0f}–{max(values):,.0f})"


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd`` to completion; return (wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 2):  # 2: plan --detailed-exitcode with changes
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    if proc.stderr:
        proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def interleave(pairs: int, a: Callable[[], float], b: Callable[[], float],
               setup: Callable[[], None] | None = None) -> tuple[list[float], list[float]]:
    """A B A B ...: ``pairs`` measurements of each, ``setup`` (untimed) before every run."""
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(pairs):
        for fn, times in ((a, times_a), (b, times_b)):
            if setup:
                setup()
            times.append(fn())
    return times_a, times_b


# ---------------------------------------------------------------- data and server


def make_jsonl(path: Path, count: int, seed: int = 1) -> Path:
    """``count`` documents of about 300 bytes each, one per line."""
    if path.exists() and path.stat().st_size and sum(1 for _ in path.open()) == count:
        return path
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(500)]
    with path.open("w") as fh:
        for i in range(count):
            doc = {
                "_id": f"user-{i:08d}",
                "type": "user",
                "name": " ".join(rng.choices(words, k=2)).title(),
                "email": f"user{i}@example.com",
                "age": rng.randint(18, 90),
                "active": rng.random() < 0.8,
                "tags": rng.choices(words, k=3),
                "bio": " ".join(rng.choices(words, k=22)),
            }
            fh.write(json.dumps(doc) + "\n")
    return path


def write_manifest(path: Path, db: str, data: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(data, path.parent)
    path.write_text(f"version: 1\ndatabases:\n  {db}:\n    documents_from: [{rel}]\n")
    return path


def edit_docs(http: httpx.Client, db: str, count: int) -> int:
    """Change ``count`` of ``db``'s documents (the same ones each time) as someone else would."""
    rows = http.get(f"/{db}/_all_docs").json()["rows"]
    picked = random.Random(7).sample(rows, count)
    docs = http.post(f"/{db}/_all_docs", params={"include_docs": "true"},
                     json={"keys": [r["id"] for r in picked]}).json()["rows"]
    edited = [dict(r["doc"], edited_by="someone-else") for r in docs]
    result = http.post(f"/{db}/_bulk_docs", json={"docs": edited}).json()
    return sum(1 for item in result if item.get("ok"))


@contextlib.contextmanager
def bench_server(kind: str, port: int | None = None) -> Iterator[str]:
    """``COUCHSYNC_BENCH_URL`` if set, else a fresh local CouchDB or PouchDB Server."""
    url = os.environ.get("COUCHSYNC_BENCH_URL")
    if url:
        yield url.rstrip("/")
    elif kind == "couchdb":
        import couchdb_server

        with couchdb_server.running_server(port) as started:
            yield started
    else:
        import pouchdb

        with pouchdb.running_server() as started:
            yield started


def default_server() -> str:
    import couchdb_server

    return "couchdb" if couchdb_server.find_dist() else "pouchdb"


def server_name(url: str) -> str:
    welcome = httpx.get(url + "/").json()
    return ("Apache CouchDB " + welcome.get("version", "?") if "couchdb" in welcome
            else "PouchDB Server " + welcome.get("version", "?"))


class Bench:
    def __init__(self, url: str, pairs: int, docs: int) -> None:
        self.url = url
        self.server = server_name(url)
        # Issue 9: CouchDB, faster than PouchDB Server, is the reference, with tighter
        # targets for the whole-process seed and no-op plan.
        couch = self.server.startswith("Apache CouchDB")
        self.seed_target = "≤ 1.2×" if couch else "≤ 1.3×"
        self.noop_target = "≤ 1.4×" if couch else "≤ 1.5×"
        self.pairs = pairs
        self.docs = docs
        self.http = httpx.Client(base_url=url, timeout=600)
        # The data-file cache starts empty and lives here; "cold" rows turn it off.
        cache = OUT / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        self.env = dict(os.environ, COUCHDB_URL=url, COUCHSYNC_CACHE_DIR=str(cache))
        self.env.pop("COUCH_URL", None)
        self.cold_env = dict(self.env, COUCHSYNC_CACHE_DIR="")
        # Bytecode, as `pip install` compiles it for a regular install (scripts/bench
        # makes one): run from an editable install, on a machine that sets
        # PYTHONDONTWRITEBYTECODE, every run would compile couchsync from source (~50 ms)
        # while the baselines' httpx is compiled.
        import couchsync

        package = Path(couchsync.__file__).parent
        subprocess.run([PY, "-m", "compileall", "-q", str(package)], check=True)
        self.install = ("editable install (scripts/bench measures a regular one)"
                        if package == ROOT / "couchsync" else "regular install")
        OUT.mkdir(parents=True, exist_ok=True)
        self.data = make_jsonl(OUT / f"docs-{docs}.jsonl", docs)
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def drop(self, db: str) -> None:
        self.http.delete(f"/{db}")

    def couchsync(self, *args: str, cold: bool = False) -> float:
        """One couchsync run; ``cold``: without the cache of loaded data files."""
        return run_process([*COUCHSYNC, *args], self.cold_env if cold else self.env)[0]

    def raw(self, script: str, *args: str) -> float:
        return run_process([PY, str(ROOT / "bench" / script), self.url, *args])[0]

    # ------------------------------------------------------------ scenarios

    def seed(self) -> None:
        manifest = write_manifest(OUT / "seed" / "manifest.yaml", "bench_seed", self.data)

        def setup() -> None:
            self.drop("bench_seed")
            self.drop("bench_raw")

        for cold in (False, True):
            a, b = interleave(
                self.pairs,
                lambda cold=cold: self.couchsync("apply", str(manifest), "--yes", cold=cold),
                lambda: self.raw("raw_seed.py", "bench_raw", str(self.data)),
                setup,
            )
            self.rows.append(Row("1 seed" + COLD[cold], f"couchsync apply ({self.docs:,} new "
                                 "docs)", "raw httpx _bulk_docs ×1000", a, b, self.seed_target))

    def noop(self) -> None:
        manifest = write_manifest(OUT / "seed" / "manifest.yaml", "bench_seed", self.data)
        self.drop("bench_seed")
        self.couchsync("apply", str(manifest), "--yes")
        read = bytes_read_by_plan(self.url, manifest)
        for cold in (False, True):
            a, b = interleave(
                self.pairs,
                lambda cold=cold: self.couchsync("plan", str(manifest), "--full", cold=cold),
                lambda: self.raw("raw_scan.py", "bench_seed"),
            )
            self.rows.append(Row(
                "2 no-op plan" + COLD[cold], f"couchsync plan --full ({self.docs:,} unchanged)",
                "raw revs-only _all_docs scan", a, b, self.noop_target,
                note=f"{read['bytes']:,} bytes read in {read['requests']} requests"
                f" ({read['bodies']} bodies); data file {self.data.stat().st_size:,} bytes"))
        # Issue 23: an apply records the databases its plan found converged (the one above
        # wrote them all), so a second, no-op apply records this one; nothing moves after.
        self.couchsync("apply", str(manifest), "--yes")
        incremental = bytes_read_by_plan(self.url, manifest, full=False)
        a, b = interleave(
            self.pairs,
            lambda: self.couchsync("plan", str(manifest), cold=True),
            lambda: self.raw("raw_scan.py", "bench_seed"),
        )
        self.rows.append(Row(
            "2 incremental no-op plan, cold cache", f"couchsync plan ({self.docs:,} unchanged)",
            "raw revs-only _all_docs scan", a, b, "≤ 0.5× (issue 23)",
            note=f"{incremental['bytes']:,} bytes read in {incremental['requests']} requests"))

    def drift(self) -> None:
        seed = write_manifest(OUT / "seed" / "manifest.yaml", "bench_seed", self.data)
        manifest = write_manifest(OUT / "drift" / "manifest.yaml", "bench_drift", self.data)
        for db, path in (("bench_seed", seed), ("bench_drift", manifest)):
            self.drop(db)
            self.couchsync("apply", str(path), "--yes")
        changed = edit_docs(self.http, "bench_drift", 100)
        a, b = interleave(
            self.pairs,
            lambda: self.couchsync("plan", str(manifest), "--full"),
            lambda: self.couchsync("plan", str(seed), "--full"),
        )
        read = bytes_read_by_plan(self.url, manifest)
        self.rows.append(Row("3 drift", f"couchsync plan ({changed} of {self.docs:,} changed)",
                             "couchsync no-op plan", a, b, "≤ 2×",
                             note=f"{read['bodies']} bodies read, {read['bytes']:,} bytes"))

    def scale(self, sizes: list[int]) -> None:
        for size in sizes:
            data = make_jsonl(OUT / f"docs-{size}.jsonl", size)
            manifest = write_manifest(OUT / f"scale-{size}" / "manifest.yaml", "bench_scale", data)
            self.drop("bench_scale")
            seconds, peak = run_process([*COUCHSYNC, "apply", str(manifest), "--yes"], self.env)
            self.drop("bench_raw")
            raw_seconds, raw_peak = run_process(
                [PY, str(ROOT / "bench" / "raw_seed.py"), self.url, "bench_raw", str(data)])
            self.drop("bench_scale")
            self.drop("bench_raw")
            self.rows.append(Row(
                "4 scale", f"couchsync apply {size:,} docs", "raw _bulk_docs", [seconds],
                [raw_seconds], "≤ 300 MB @100k, ≤ 1 GB @1M",
                note=f"peak RSS {peak:,.0f} MB (raw script {raw_peak:,.0f} MB); "
                f"{seconds / size * 10_000:.2f} s per 10k docs"))

    def startup(self) -> None:
        manifest = ROOT / "bench" / "small-manifest.yaml"
        a, b = interleave(
            max(self.pairs, 10),
            lambda: self.couchsync("validate", str(manifest)),
            lambda: run_process([PY, "-c", "import httpx"])[0],
        )
        self.rows.append(Row("5 start-up", "couchsync validate (small manifest)",
                             "python -c 'import httpx'", a, b, "≤ 1.5×"))

    def reads(self, count: int = 2000) -> None:
        import client_reads

        results = client_reads.compare(self.url, count=count, pairs=max(self.pairs, 9))
        ours = results["couchsync"]
        for name, target in (("couchdb-python", "≥ 0.9×"), ("http.client", "≥ 0.8×")):
            self.rows.append(Row("6 client reads", "couchsync Database.get", name, ours,
                                 results[name], target, unit="docs/s"))


def bytes_read_by_plan(url: str, manifest: Path, *, full: bool = True) -> dict[str, int]:
    """Run a plan in-process, counting the response bytes and document bodies it reads
    (``full``: every database read, as ``plan --full``)."""
    import client_reads

    return client_reads.count_plan_reads(url, manifest, full=full)


def print_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | couchsync (A) | baseline (B) | A median (min–max) | B median (min–max) "
        "| ratio | target | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kind = " throughput" if r.unit == "docs/s" else ""
        lines.append(f"| {r.scenario} | {r.a_name} | {r.b_name} | {_fmt(r.a, r.unit)} | "
                     f"{_fmt(r.b, r.unit)} | {r.ratio:.2f}×{kind} | {r.target} | {r.note} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs per scenario (≥ 5)")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--scale", default="10000,100000",
                        help="comma-separated sizes for the scale scenario (add 1000000)")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--server", choices=("couchdb", "pouchdb"), default=None,
                        help="server to start when COUCHSYNC_BENCH_URL is not set (default: "
                        "couchdb when its dist is found, else pouchdb)")
    parser.add_argument("--couchdb-port", type=int, default=None,
                        help="port for the started CouchDB (default: a free one)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    with bench_server(args.server or default_server(), args.couchdb_port) as url:
        bench = Bench(url, max(args.pairs, 5), args.docs)
        print(f"server: {bench.server}", file=sys.stderr, flush=True)
        for name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            if name == "scale":
                bench.scale([int(s) for s in args.scale.split(",")])
            else:
                getattr(bench, name)()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()} · {bench.server} · "
          f"couchsync: {bench.install}\n")
    print(print_table(bench.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
