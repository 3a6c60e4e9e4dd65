"""Fleet benchmark: one template applied to every database a pattern matches.

A manifest key such as ``"fleet-noop-*"`` is a pattern: couchsync plans and
applies the same ``_security``, design document, Mango index and five documents
into each matching database, ``--parallel N`` at a time. Each scenario is timed
against a sequential plain-httpx script (``bench/fleet_raw.py``), interleaved
A B A B ... in one run, as ``bench/run.py`` does; whole processes, peak RSS from
``os.wait4``. Nothing asserts: it measures.

    python bench/fleet.py                                 # bundled CouchDB on port 7984
    python bench/fleet.py --dbs 1000 --pairs 5 --memory-dbs 10000 --url http://u:p@host:5984
    python bench/fleet.py --only noop,apply --dbs 200 --pairs 3   # a quick check

Scenarios (issue targets):

noop   ``couchsync plan --full`` over ``--dbs`` converged databases ≤ 0.6×
       ``fleet_raw.py read``.
apply  first ``couchsync apply`` to ``--dbs`` empty databases ≤ 0.6× ``fleet_raw.py apply``;
       every run gets a fresh set (prefix ``fleet-a<k>-``, its own manifest), created
       before and dropped after, both untimed.
scale  the no-op at each of ``--sizes`` (default: dbs, 3×dbs, memory-dbs): time per
       database should stay flat; peak RSS at ``--memory-dbs`` ≤ 150 MB. The no-op fleet
       grows in place (``fleet-noop-00000`` ...), so each size reuses the last one's
       databases.
incremental  ``couchsync plan`` of the ``--memory-dbs`` fleet after ``--changed`` of its
       databases were written ≤ 0.05× ``couchsync plan --full`` (issue 23); it must read
       exactly those in full.

Set-up (creating and converging databases) runs concurrently, ``--setup-workers``
requests at a time, and is never timed. Until couchsync has fleets (no
``--parallel`` in ``couchsync plan --help``) only the baselines are measured and
the fleet is converged by this script instead of ``couchsync apply``.
Results: a table on stdout and ``bench/out/fleet/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
import fleet_raw
from run import COUCHSYNC, OUT, PY, ROOT, bench_server, server_name

FLEET_OUT = OUT / "fleet"
NOOP_PREFIX = "fleet-noop-"
PORT = 7984  # the benchmarks' port: other servers on this machine belong to test suites
SCENARIOS = ("noop", "apply", "scale", "incremental")
TARGET_RATIO = "≤ 0.6×"
TARGET_RSS_MB = 150
# A database holding the template: five documents, the design document, the index's.
TEMPLATE_DOC_COUNT = len(fleet_raw.DOCUMENTS) + 2
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


@dataclass
class Result:
    """One scenario's measurements; ``a`` (couchsync) is empty when fleets are missing."""

    scenario: str
    a_name: str
    b_name: str
    dbs: int
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    a_rss: list[float] = field(default_factory=list)
    b_rss: list[float] = field(default_factory=list)
    target: str = TARGET_RATIO
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not (self.a and self.b):
            return None
        return statistics.median(self.a) / statistics.median(self.b)

    def as_json(self) -> dict[str, object]:
        summary = {f"{side}_median": statistics.median(times)
                   for side, times in (("a", self.a), ("b", self.b)) if times}
        per_db = {f"{side}_ms_per_db": statistics.median(times) / self.dbs * 1000
                  for side, times in (("a", self.a), ("b", self.b)) if times}
        return {**asdict(self), **summary, **per_db, "ratio": self.ratio}


# ---------------------------------------------------------------- set-up (untimed)


def db_names(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(start, stop)]


def concurrently(fn: Callable[[str], object], items: Iterable[str], workers: int) -> None:
    """``fn`` over ``items``, ``workers`` at a time; the first failure is raised."""
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items):
            pass


class Server:
    """The set-up side: one httpx client shared by the set-up threads (it is thread-safe)."""

    def __init__(self, url: str, workers: int) -> None:
        self.url = url
        self.workers = workers
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        self.http = httpx.Client(base_url=url, timeout=600, limits=limits)

    def create(self, names: list[str]) -> None:
        def put(db: str) -> None:
            answer = self.http.put(f"/{db}")
            if answer.status_code != 412:  # already there: a grown fleet keeps its databases
                answer.raise_for_status()

        concurrently(put, names, self.workers)

    def drop(self, names: list[str]) -> None:
        def delete(db: str) -> None:
            answer = self.http.delete(f"/{db}")
            if answer.status_code != 404:
                answer.raise_for_status()

        concurrently(delete, names, self.workers)

    def write_template(self, names: list[str]) -> None:
        """Converge without couchsync: the baseline's writes, concurrently."""
        concurrently(lambda db: fleet_raw.write_template(self.http, db), names, self.workers)

    def doc_count(self, db: str) -> int:
        return int(self.http.get(f"/{db}").raise_for_status().json()["doc_count"])

    def settle(self, timeout: float = 120) -> None:
        """Wait until the server runs no background task (index builds, compactions).

        CouchDB builds the indexes of a new design document in the background (ken),
        1,000 databases at a time after an apply; a timed run must not share the
        cores with that.
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            busy = self.http.get("/_active_tasks").raise_for_status().json()
            quiet = 0 if busy else quiet + 1
            time.sleep(0.2)

    def config(self, section: str, key: str, default: str) -> str:
        """A server setting; CouchDB's built-in default when the config does not name it."""
        answer = self.http.get(f"/_node/_local/_config/{section}/{key}")
        return str(answer.json()) if answer.status_code == 200 else f"{default} (default)"

    def shards(self, db: str) -> int | None:
        answer = self.http.get(f"/{db}")
        return answer.json()["cluster"]["q"] if answer.status_code == 200 else None


def write_manifest(prefix: str) -> Path:
    """The template under the pattern ``prefix*``, one manifest file per pattern.

    Values are written as JSON flow collections (valid YAML) from ``fleet_raw``'s
    constants, so manifest and baseline send the same bodies.
    """
    path = FLEET_OUT / prefix.rstrip("-") / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    design = json.dumps(fleet_raw.DESIGN)
    index = json.dumps({"fields": fleet_raw.INDEX_FIELDS})
    docs = "".join(f"      - {json.dumps(doc)}\n" for doc in fleet_raw.DOCUMENTS)
    path.write_text(
        "version: 1\ndatabases:\n"
        f'  "{prefix}*":\n'
        f"    security: {json.dumps(fleet_raw.SECURITY)}\n"
        f"    design_docs:\n      {fleet_raw.DESIGN_NAME}: {design}\n"
        f"    indexes:\n      {fleet_raw.INDEX_NAME}: {index}\n"
        f"    documents:\n{docs}"
    )
    return path


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd`` to completion; return (wall seconds, peak RSS in MB).

    As run.py's ``run_process``, with two differences. stderr goes to a file: over
    thousands of databases a run's warnings could fill a pipe nobody reads before
    the exit, and the process would hang on it. The peak RSS is GNU time's (also
    ``wait4``'s ``ru_maxrss``, but of a child forked by time): Linux carries into a
    child's ``ru_maxrss`` the high-water mark of the memory it replaces at
    ``exec``, which for a child of this process is this process's own (about
    32 MB, httpx imported); started from here, any run that stays below would
    read as 32 MB.
    """
    with tempfile.TemporaryDirectory() as tmp:
        err_path, rss_path = Path(tmp, "stderr"), Path(tmp, "rss")
        wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd] if GNU_TIME else cmd
        with err_path.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
        code = proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must know
        if code not in (0, 2):  # 2: plan --detailed-exitcode with changes
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}): "
                               f"{err_path.read_text(errors='replace')[-2000:]}")
        # time writes "Command exited with non-zero status N" first when N is not 0.
        kib = int(rss_path.read_text().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return elapsed, kib / 1024


def fleets_supported() -> bool:
    """Whether this couchsync has fleets: its ``plan`` takes ``--parallel``."""
    shown = subprocess.run([*COUCHSYNC, "plan", "--help"], capture_output=True, text=True,
                           env=dict(os.environ, COLUMNS="200"))
    return "--parallel" in shown.stdout


def compile_couchsync() -> str:
    """Compile couchsync's bytecode as a regular install has it (see run.py's Bench)."""
    import couchsync

    package = Path(couchsync.__file__).parent
    subprocess.run([PY, "-m", "compileall", "-q", str(package)], check=True)
    return ("editable install (scripts/bench measures a regular one)"
            if package == ROOT / "couchsync" else "regular install")


# ---------------------------------------------------------------- the benchmark


class FleetBench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.pairs = args.pairs
        self.parallel = args.parallel
        self.server = Server(url, args.setup_workers)
        self.fleets = fleets_supported()
        self.env = dict(os.environ, COUCHSYNC_CACHE_DIR=str(FLEET_OUT / "cache"))
        for name in ("COUCHDB_URL", "COUCH_URL", "COUCHDB_USER"):
            self.env.pop(name, None)  # --url is passed: no other server or user may leak in
        self.noop_size = 0  # databases in the converged no-op fleet so far
        self.results: list[Result] = []
        self.warnings: list[str] = []

    # ------------------------------------------------------------ processes

    def couchsync(self, command: str, manifest: Path, *extra: str) -> tuple[float, float]:
        """One whole ``couchsync`` process: (seconds, peak RSS MB)."""
        return run_process([*COUCHSYNC, command, str(manifest), "--url", self.url,
                            "--parallel", str(self.parallel), *extra], self.env)

    def raw(self, mode: str, prefix: str) -> tuple[float, float]:
        return run_process([PY, str(ROOT / "bench" / "fleet_raw.py"), mode, self.url, prefix])

    def pair(self, result: Result, a: Callable[[], tuple[float, float]] | None,
             b: Callable[[], tuple[float, float]], setup: Callable[[], None]) -> None:
        """One A B pair into ``result`` (A left out without fleets), ``setup`` before each."""
        sides = [(a, result.a, result.a_rss)] if a else []
        for run, times, rss in [*sides, (b, result.b, result.b_rss)]:
            setup()
            seconds, peak = run()
            times.append(seconds)
            rss.append(peak)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)

    # ------------------------------------------------------------ the no-op fleet

    def grow_noop_fleet(self, size: int) -> Path:
        """Make ``fleet-noop-*`` ``size`` converged databases (grown, never shrunk)."""
        manifest = write_manifest(NOOP_PREFIX)
        if size <= self.noop_size:
            return manifest
        new = db_names(NOOP_PREFIX, self.noop_size, size)
        started = time.perf_counter()
        self.server.create(new)
        print(f"  created {len(new):,} databases in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        started = time.perf_counter()
        if self.fleets:
            # couchsync converges it, so that the plans measured are no-ops in its eyes
            # too (its ownership records included).
            self.couchsync("apply", manifest, "--yes")
            how = "couchsync apply"
        else:
            self.server.write_template(new)
            how = f"the baseline's writes, {self.server.workers} at a time"
        print(f"  converged by {how} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        self.noop_size = size
        self.server.settle()
        self.check_noop(manifest, size)
        return manifest

    def check_noop(self, manifest: Path, size: int) -> None:
        if not self.fleets:
            return
        shown = subprocess.run([*COUCHSYNC, "plan", str(manifest), "--url", self.url],
                               capture_output=True, text=True, env=self.env)
        if shown.returncode != 0 or "No changes." not in shown.stdout:
            self.warn(f"the plan over {size:,} converged databases is not a no-op "
                      f"(exit {shown.returncode}): {(shown.stdout + shown.stderr)[:500]}")

    def noop_at(self, size: int, pairs: int, scenario: str) -> Result:
        manifest = self.grow_noop_fleet(size)
        result = Result(scenario, f"couchsync plan --full --parallel {self.parallel}",
                        "raw sequential read (_security, _index, _all_docs)", size)
        a = (lambda: self.couchsync("plan", manifest, "--full")) if self.fleets else None
        for _ in range(pairs):
            self.pair(result, a, lambda: self.raw("read", NOOP_PREFIX), self.server.settle)
        return result

    def noop(self, size: int) -> None:
        self.results.append(self.noop_at(size, self.pairs, "1 no-op plan"))

    def scale(self, sizes: list[int], memory_dbs: int, pairs: int) -> None:
        measured = {r.dbs: r for r in self.results if r.scenario == "1 no-op plan"}
        for size in sorted(sizes):
            result = measured.get(size) or self.noop_at(size, pairs, "3 scale")
            row = Result("3 scale", result.a_name, result.b_name, size, result.a, result.b,
                         result.a_rss, result.b_rss, target="time per database flat")
            if size == memory_dbs:
                row.target = f"peak RSS ≤ {TARGET_RSS_MB} MB; time per database flat"
            self.results.append(row)

    def incremental(self, size: int, changed: int) -> None:
        """Issue 23: the plan after ``changed`` databases of a converged ``size`` fleet were
        written by an application, against the full plan of the same fleet. Before each
        pair (untimed): ``changed`` other databases get an application document, and a
        ``couchsync apply`` records the ones before converged again."""
        manifest = self.grow_noop_fleet(size)
        result = Result("4 incremental no-op plan", f"couchsync plan --parallel {self.parallel}",
                        f"couchsync plan --full --parallel {self.parallel}", size,
                        target="≤ 0.05×")
        names = db_names(NOOP_PREFIX, 0, size)
        rounds = iter(range(10**6))
        found: list[bool] = []
        others: list[int] = []
        missed: list[int] = []

        def setup() -> None:
            self.couchsync("apply", manifest, "--yes")
            picked = names[next(rounds) * changed % size:][:changed]
            for db in picked:
                self.server.http.put(f"/{db}/app-{time.monotonic_ns()}",
                                     json={"by": "the application"}).raise_for_status()
            shown = subprocess.run([*COUCHSYNC, "plan", str(manifest), "--url", self.url,
                                    "--format", "json"], capture_output=True, text=True,
                                   env=self.env, check=True)
            read = json.loads(shown.stdout).get("incremental", {}).get("read_in_full", {})
            found.append(sorted(db for dbs in read.values() for db in dbs) == sorted(picked))
            # A cluster also reads the few whose answering shard copy is not trusted yet.
            others.append(len({db for dbs in read.values() for db in dbs} - set(picked)))
            missed.append(len(set(picked) - {db for dbs in read.values() for db in dbs}))

        for _ in range(self.pairs):
            setup()
            for run, times, rss in ((lambda: self.couchsync("plan", manifest), result.a,
                                     result.a_rss),
                                    (lambda: self.couchsync("plan", manifest, "--full"),
                                     result.b, result.b_rss)):
                seconds, peak = run()
                times.append(seconds)
                rss.append(peak)
        result.notes.append(f"read in full exactly the {changed} changed: "
                            f"{sum(found)} of {len(found)} rounds (changed ones not read: "
                            f"{sum(missed)}; unchanged ones read: {', '.join(map(str, others))})")
        self.results.append(result)

    # ------------------------------------------------------------ first apply

    def first_apply(self, size: int) -> None:
        """Each run applies the template to a fresh set of empty databases."""
        result = Result("2 first apply", f"couchsync apply --parallel {self.parallel}",
                        "raw sequential writes (_security, ddoc, _index, _bulk_docs)", size)
        fresh = FreshSets(self, size)
        a = (lambda: self.couchsync("apply", fresh.manifest, "--yes")) if self.fleets else None
        for _ in range(self.pairs):
            self.pair(result, a, lambda: self.raw("apply", fresh.prefix), fresh.next)
        fresh.finish()
        self.results.append(result)


class FreshSets:
    """A new set of empty databases before each run; the last one checked and dropped.

    Fresh names per run (``fleet-a1-*``, ``fleet-a2-*``, ...) with a manifest each,
    rather than one set recreated, so a run never meets a database being deleted.
    """

    def __init__(self, bench: FleetBench, size: int) -> None:
        self.bench = bench
        self.size = size
        self.count = 0
        self.prefix = ""
        self.manifest = Path()
        self.names: list[str] = []

    def next(self) -> None:
        self.finish()
        self.count += 1
        self.prefix = f"fleet-a{self.count}-"
        self.manifest = write_manifest(self.prefix)
        self.names = db_names(self.prefix, 0, self.size)
        self.bench.server.create(self.names)
        self.bench.server.settle()

    def finish(self) -> None:
        """Check the last run wrote the template (first and last database), then drop it."""
        if not self.names:
            return
        for db in (self.names[0], self.names[-1]):
            count = self.bench.server.doc_count(db)
            if count != TEMPLATE_DOC_COUNT:
                self.bench.warn(f"{db} holds {count} documents after the apply, "
                                f"not {TEMPLATE_DOC_COUNT}")
        self.bench.server.drop(self.names)
        self.names = []


# ---------------------------------------------------------------- report


def fmt_times(times: list[float]) -> str:
    if not times:
        return "—"
    return f"{statistics.median(times):.3f} s ({min(times):.3f}–{max(times):.3f})"


def row_notes(r: Result) -> str:
    notes = []
    for side, times, rss in (("A", r.a, r.a_rss), ("B", r.b, r.b_rss)):
        if times:
            notes.append(f"{side} {statistics.median(times) / r.dbs * 1000:.2f} ms/db, "
                         f"peak RSS {max(rss):.0f} MB")
    return "; ".join(notes + r.notes)


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | dbs | couchsync (A) | baseline (B) | A median (min–max) "
        "| B median (min–max) | ratio | target | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        lines.append(f"| {r.scenario} | {r.dbs:,} | {r.a_name} | {r.b_name} | {fmt_times(r.a)} "
                     f"| {fmt_times(r.b)} | {ratio} | {r.target} | {row_notes(r)} |")
    return "\n".join(lines)


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def git_head() -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "couchsync"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + uncommitted changes in couchsync/" if dirty else "")


def metadata(bench: FleetBench, args: argparse.Namespace, install: str,
             load_before: tuple[float, ...]) -> dict[str, object]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "server": server_name(bench.url),
        "couchsync": f"{git_head()}, {install}",
        "fleets_supported": bench.fleets,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        # Both shape the server's work on thousands of databases: shards per database,
        # and how many database files stay open.
        "server_q": bench.server.shards(db_names(NOOP_PREFIX, 0, 1)[0]),
        "server_max_dbs_open": bench.server.config("couchdb", "max_dbs_open", "500"),
        "peak_rss_from": "GNU time (%M)" if GNU_TIME else
        f"os.wait4, floored at this process's {own_peak_mb():.0f} MB",
        "options": vars(args),
        "warnings": bench.warnings,
    }


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dbs", type=int, default=1000, help="databases in noop and apply")
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs for noop and apply")
    parser.add_argument("--memory-dbs", type=int, default=10_000,
                        help="the largest no-op fleet, where peak RSS is judged")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated fleet sizes for scale (default: dbs, 3×dbs, "
                        "memory-dbs)")
    parser.add_argument("--scale-pairs", type=int, default=3,
                        help="A/B pairs at each scale size other than --dbs")
    parser.add_argument("--changed", type=int, default=10,
                        help="databases written between incremental plans")
    parser.add_argument("--parallel", type=int, default=8, help="couchsync --parallel")
    parser.add_argument("--setup-workers", type=int, default=8,
                        help="concurrent requests while creating and converging databases")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--url", default=None,
                        help="server to use (default: $COUCHSYNC_BENCH_URL, else the bundled "
                        f"CouchDB started on port {PORT})")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.sizes:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    else:
        args.sizes = sorted({args.dbs, min(3 * args.dbs, args.memory_dbs), args.memory_dbs})
    return args


def run_scenarios(bench: FleetBench, args: argparse.Namespace) -> None:
    steps: dict[str, Callable[[], None]] = {
        "noop": lambda: bench.noop(args.dbs),
        "apply": lambda: bench.first_apply(args.dbs),
        "scale": lambda: bench.scale(args.sizes, args.memory_dbs, args.scale_pairs),
        "incremental": lambda: bench.incremental(args.memory_dbs, args.changed),
    }
    for name in SCENARIOS:  # scale last: it grows the no-op fleet to its largest
        if name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            steps[name]()


def main() -> int:
    args = parse_args()
    load_before = os.getloadavg()
    install = compile_couchsync()
    given = contextlib.nullcontext(args.url.rstrip("/")) if args.url else None
    with given or bench_server("couchdb", PORT) as url:
        bench = FleetBench(url, args)
        with bench.server.http:
            if not bench.fleets:
                bench.warn("couchsync has no fleets yet (no --parallel): "
                           "measuring the baselines only")
            print(f"server: {server_name(url)}", file=sys.stderr, flush=True)
            run_scenarios(bench, args)
            meta = metadata(bench, args, install, load_before)
    FLEET_OUT.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "results": [r.as_json() for r in bench.results]}
    (FLEET_OUT / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{meta['date']} · {meta['machine']}, Python {meta['python']} · {meta['server']} "
          f"(q={meta['server_q']}, max_dbs_open={meta['server_max_dbs_open']}) · couchsync "
          f"{meta['couchsync']} · load {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(table(bench.results))
    for message in bench.warnings:
        print(f"\nwarning: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
