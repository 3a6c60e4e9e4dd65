"""Staged design-doc rollout benchmark (issue 11): a changed view over N documents.

One database of ``--docs`` documents (``{"_id", "g": i % 100, "v": i}``) holds the
design doc ``app`` with the view ``by_g`` (``emit(doc.g, doc.v)``, ``_sum``), built.
Version 2 of the manifest changes the map to ``emit(doc.g, doc.v * 2)``. While
``couchsync apply`` rolls v2 out, a querier thread asks the live view
``GET /DB/_design/app/_view/by_g?group=true`` (default ``update=true``) in a loop,
one query at a time, and records each query's latency and whether it answered
with v1's sums, v2's (double) or anything else.

in-place  ``couchsync apply DIR --yes`` (today's default): the live design doc is
          rewritten at once, and queries wait for CouchDB to rebuild the view.
staged    ``couchsync apply DIR --yes --design-deploy staged`` (or the manifest's
          ``design_deploy: staged``, ``--staged-by manifest``): built under a
          staging id first, swapped in once built.

Each round gets a fresh database (created, seeded through ``_bulk_docs``, v1
applied by couchsync and its view built, the server left to settle: all
untimed). Rounds run interleaved, in-place staged in-place staged ...
(``--repeat`` pairs), and the ratios are of the medians of the same run.

Measured from the start of the apply (t0):
  apply         the apply process's wall time;
  new served    until the first query that answers with v2's sums returns; for
                in-place this is the rollout's full rebuild time (the
                denominator of both ratios);
  slowest       the slowest single query overlapping [t0, new served]; for
                in-place it is about the rebuild, for staged it should stay
                short (target < 0.5 s).
Targets: staged slowest query < 0.5 s (the worst of all staged rounds is
judged), and staged apply ≤ 1.3× the in-place rebuild (medians).

    python bench/staged.py                        # its own CouchDB on 7984, 100,000 docs
    python bench/staged.py --docs 20000 --repeat 1 --only in-place   # a quick look
    python bench/staged.py --nodes 3              # a 3-node cluster on 7984-7986
    python bench/staged.py --url http://admin:admin@127.0.0.1:5984   # another server

The server: ``--url``, else ``$COUCHSYNC_BENCH_URL``, else ``$COUCHDB_URL``, else
the bundled Apache CouchDB 3.5.2 started on ``--port`` (default 7984, loopback)
in a fresh directory and stopped at the end. Nothing asserts: it measures.
Results: a table on stdout and ``bench/out/staged/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
import couchdb_server
from run import COUCHSYNC, OUT, ROOT, server_name

STAGED_OUT = OUT / "staged"
PORT = 7984  # the benchmarks' port: other servers on this machine belong to test suites
DESIGN = "app"
VIEW = "by_g"
GROUPS = 100
MAPS = {
    1: "function (doc) { if (typeof doc.v === 'number') { emit(doc.g, doc.v); } }",
    2: "function (doc) { if (typeof doc.v === 'number') { emit(doc.g, doc.v * 2); } }",
}
MODES = ("in-place", "staged")
TARGET_LATENCY_S = 0.5
TARGET_APPLY_RATIO = 1.3


# ---------------------------------------------------------------- server


def own_server(nodes: int, port: int) -> contextlib.AbstractContextManager[str]:
    """A fresh bundled CouchDB (``nodes`` nodes from ``port``), stopped and removed after."""
    print(f"starting CouchDB ({nodes} node(s), port {port}) ...", file=sys.stderr, flush=True)
    return couchdb_server.running_server(port, nodes=nodes)


# ---------------------------------------------------------------- data


def expected(docs: int, factor: int) -> dict[int, int]:
    """The view's ``group=true`` answer: the sum of ``factor * i`` per ``i % 100``."""
    sums = dict.fromkeys(range(min(GROUPS, docs)), 0)
    for i in range(docs):
        sums[i % GROUPS] += factor * i
    return sums


def write_manifest(path: Path, db: str, version: int, staged_setting: bool) -> Path:
    design = {"views": {VIEW: {"map": MAPS[version], "reduce": "_sum"}}}
    setting = "    design_deploy: staged\n" if staged_setting else ""
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.yaml").write_text(
        "version: 1\ndatabases:\n"
        f"  {db}:\n{setting}"
        f"    design_docs:\n      {DESIGN}: {json.dumps(design)}\n"
    )
    return path


# ---------------------------------------------------------------- querier


@dataclass
class Query:
    start: float  # perf_counter
    end: float
    kind: str  # "v1", "v2", "other" (an answer neither version gives) or "error"
    detail: str = ""

    @property
    def latency(self) -> float:
        return self.end - self.start


class Querier(threading.Thread):
    """Queries the live view, one at a time, until stopped; every query recorded."""

    def __init__(self, url: str, db: str, docs: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=3600)
        self.path = f"/{db}/_design/{DESIGN}/_view/{VIEW}"
        self.old, self.new = expected(docs, 1), expected(docs, 2)
        self.pause = pause
        self.queries: list[Query] = []
        self.stopping = threading.Event()
        self.saw_new = threading.Event()

    def classify(self, answer: httpx.Response) -> tuple[str, str]:
        if answer.status_code != 200:
            return "error", f"{answer.status_code} {answer.text[:200]}"
        sums = {row["key"]: row["value"] for row in answer.json()["rows"]}
        if sums == self.old:
            return "v1", ""
        if sums == self.new:
            return "v2", ""
        return "other", json.dumps(sorted(sums.items())[:3])

    def run(self) -> None:
        with self.http:
            while not self.stopping.is_set():
                start = time.perf_counter()
                try:
                    answer = self.http.get(self.path, params={"group": "true"})
                    kind, detail = self.classify(answer)
                except httpx.HTTPError as exc:
                    kind, detail = "error", repr(exc)
                self.queries.append(Query(start, time.perf_counter(), kind, detail))
                if kind == "v2":
                    self.saw_new.set()
                if self.pause:
                    time.sleep(self.pause)


# ---------------------------------------------------------------- rounds


@dataclass
class Round:
    mode: str
    db: str
    docs: int
    apply_s: float = 0.0
    apply_exit: int = 0
    new_served_s: float | None = None  # first v2 answer returned, from t0
    slowest_s: float = 0.0  # slowest query overlapping [t0, new served]
    slowest_started_s: float = 0.0  # when it started, from t0
    slowest_until_apply_end_s: float = 0.0  # same, over [t0, max(new served, apply end)]
    queries: int = 0  # in [t0, new served]
    median_query_s: float = 0.0
    v1_after_v2: int = 0  # old answers after the first new one
    other: int = 0
    errors: list[str] = field(default_factory=list)
    leftover_design_docs: list[str] = field(default_factory=list)
    initial_build_s: float = 0.0  # v1's build at set-up, nothing else running (reference)
    load: tuple[float, float] = (0.0, 0.0)
    apply_output: str = ""
    # every query from 1 s before t0 on: [start from t0, latency, kind] (results.json only)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)


class StagedBench:
    def __init__(self, url: str, args: argparse.Namespace, env: dict[str, str],
                 tmp: Path) -> None:
        self.url = url
        self.args = args
        self.http = httpx.Client(base_url=url, timeout=3600)
        self.env = env
        self.tmp = tmp
        self.rounds: list[Round] = []
        self.warnings: list[str] = []
        self.count = 0

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)

    # ------------------------------------------------------------ set-up (untimed)

    def seed(self, db: str) -> None:
        answer = self.http.delete(f"/{db}")
        if answer.status_code not in (200, 202, 404):
            answer.raise_for_status()
        self.http.put(f"/{db}").raise_for_status()
        batch = 10_000
        for first in range(0, self.args.docs, batch):
            docs = [{"_id": f"d{i:07d}", "g": i % GROUPS, "v": i}
                    for i in range(first, min(first + batch, self.args.docs))]
            answer = self.http.post(f"/{db}/_bulk_docs", json={"docs": docs})
            answer.raise_for_status()
            failed = [row for row in answer.json() if "error" in row]
            if failed:
                raise RuntimeError(f"_bulk_docs into {db}: {failed[:3]}")

    def couchsync_apply(self, manifest_dir: Path, *extra: str, log: Path) -> tuple[float, int]:
        """One whole ``couchsync apply`` process: (wall seconds, exit code); output to ``log``."""
        cmd = [*COUCHSYNC, "apply", str(manifest_dir), "--url", self.url, "--yes", *extra]
        with log.open("wb") as out:
            start = time.perf_counter()
            code = subprocess.run(cmd, env=self.env, stdout=out,
                                  stderr=subprocess.STDOUT).returncode
            elapsed = time.perf_counter() - start
        return elapsed, code

    def settle(self, timeout: float = 600) -> None:
        """Wait until the server runs no background task (index builds, compactions)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            busy = self.http.get("/_active_tasks").raise_for_status().json()
            quiet = 0 if busy else quiet + 1
            time.sleep(0.3)
        if quiet < 3:
            self.warn(f"the server was still busy after {timeout:.0f} s of settling")

    def prepare(self, mode: str) -> tuple[Round, Path]:
        self.count += 1
        db = f"staged-bench-{self.count}-{mode}"
        rnd = Round(mode, db, self.args.docs)
        print(f"round {self.count} ({mode}): seeding {db} ...", file=sys.stderr, flush=True)
        self.seed(db)
        v1 = write_manifest(self.tmp / db / "v1", db, 1, False)
        staged_setting = mode == "staged" and self.args.staged_by == "manifest"
        v2 = write_manifest(self.tmp / db / "v2", db, 2, staged_setting)
        _, code = self.couchsync_apply(v1, log=STAGED_OUT / f"{db}-v1.log")
        if code != 0:
            raise RuntimeError(f"apply of v1 to {db} failed ({code}): "
                               f"{(STAGED_OUT / f'{db}-v1.log').read_text()[-2000:]}")
        start = time.perf_counter()
        answer = self.http.get(f"/{db}/_design/{DESIGN}/_view/{VIEW}", params={"group": "true"})
        answer.raise_for_status()
        rnd.initial_build_s = time.perf_counter() - start
        self.settle()
        return rnd, v2

    # ------------------------------------------------------------ one timed round

    def round(self, mode: str) -> Round:
        rnd, v2 = self.prepare(mode)
        querier = Querier(self.url, rnd.db, self.args.docs, self.args.pause)
        load_before = os.getloadavg()[0]
        querier.start()
        time.sleep(1.0)  # the live view answers v1 before the apply starts
        before = [q for q in querier.queries if q.kind != "v1"]
        if before:
            self.warn(f"{rnd.db}: before the apply the view answered {before[0].kind} "
                      f"{before[0].detail}")
        extra = ["--design-deploy", "staged"] if mode == "staged" and \
            self.args.staged_by == "flag" else []
        log = STAGED_OUT / f"{rnd.db}-v2.log"
        print(f"round {self.count} ({mode}): applying v2 ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rnd.apply_s, rnd.apply_exit = self.couchsync_apply(v2, *extra, log=log)
        apply_end = t0 + rnd.apply_s
        rnd.apply_output = log.read_text(errors="replace")[-3000:]
        if rnd.apply_exit != 0:
            self.warn(f"{rnd.db}: apply of v2 exited {rnd.apply_exit}: {rnd.apply_output[-800:]}")
        if not querier.saw_new.wait(self.args.timeout):
            self.warn(f"{rnd.db}: no v2 answer {self.args.timeout:.0f} s after the apply ended")
        time.sleep(0.5)  # a few more answers: do old ones come back?
        querier.stopping.set()
        querier.join()
        rnd.load = (load_before, os.getloadavg()[0])
        self.measure(rnd, querier.queries, t0, apply_end)
        rnd.leftover_design_docs = self.design_docs(rnd.db, exclude=f"_design/{DESIGN}")
        if rnd.leftover_design_docs:
            self.warn(f"{rnd.db}: design docs besides _design/{DESIGN} after the apply: "
                      f"{rnd.leftover_design_docs}")
        self.http.delete(f"/{rnd.db}")
        self.settle()
        print(f"round {self.count} ({mode}): apply {rnd.apply_s:.2f} s, new served "
              f"{fmt(rnd.new_served_s)}, slowest query {rnd.slowest_s:.3f} s (from "
              f"{rnd.slowest_started_s:+.2f} s) over {rnd.queries} queries, "
              f"load {rnd.load[0]:.1f} → {rnd.load[1]:.1f}",
              file=sys.stderr, flush=True)
        return rnd

    @staticmethod
    def measure(rnd: Round, queries: list[Query], t0: float, apply_end: float) -> None:
        first_new = next((q for q in queries if q.kind == "v2" and q.start >= t0), None)
        window_end = first_new.end if first_new else queries[-1].end
        if first_new:
            rnd.new_served_s = first_new.end - t0
        window = [q for q in queries if q.end >= t0 and q.start <= window_end]
        longer = [q for q in queries if q.end >= t0 and q.start <= max(window_end, apply_end)]
        rnd.queries = len(window)
        if window:
            slowest = max(window, key=lambda q: q.latency)
            rnd.slowest_s, rnd.slowest_started_s = slowest.latency, slowest.start - t0
        rnd.slowest_until_apply_end_s = max((q.latency for q in longer), default=0.0)
        rnd.median_query_s = statistics.median(q.latency for q in window) if window else 0.0
        if first_new:
            rnd.v1_after_v2 = sum(1 for q in queries if q.start > first_new.end and q.kind == "v1")
        rnd.other = sum(1 for q in queries if q.end >= t0 and q.kind == "other")
        rnd.errors = [q.detail for q in queries if q.end >= t0 and q.kind == "error"][:5]
        rnd.timeline = [(round(q.start - t0, 3), round(q.latency, 3), q.kind)
                        for q in queries if q.end >= t0 - 1]

    def design_docs(self, db: str, exclude: str) -> list[str]:
        answer = self.http.get(f"/{db}/_all_docs",
                               params={"startkey": '"_design/"', "endkey": '"_design0"'})
        return [row["id"] for row in answer.json()["rows"] if row["id"] != exclude]

    def run(self) -> None:
        for _ in range(self.args.repeat):
            for mode in self.args.only:
                self.rounds.append(self.round(mode))


# ---------------------------------------------------------------- report


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3f} s"


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f} s"
    return f"{statistics.median(values):.3f} s ({min(values):.3f}–{max(values):.3f})"


def of(rounds: list[Round], mode: str) -> list[Round]:
    return [r for r in rounds if r.mode == mode]


def table(rounds: list[Round]) -> str:
    lines = [
        "| rollout | rounds | apply | new results served | slowest query until then "
        "| median query | queries | v1 first build at set-up | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        rs = of(rounds, mode)
        if not rs:
            continue
        served = [r.new_served_s for r in rs if r.new_served_s is not None]
        lines.append(
            f"| {mode} | {len(rs)} | {spread([r.apply_s for r in rs])} | {spread(served)} "
            f"| {spread([r.slowest_s for r in rs])} | {spread([r.median_query_s for r in rs])} "
            f"| {'/'.join(str(r.queries) for r in rs)} "
            f"| {spread([r.initial_build_s for r in rs])} "
            f"| {', '.join(f'{r.load[0]:.1f}→{r.load[1]:.1f}' for r in rs)} |")
    return "\n".join(lines)


def verdicts(rounds: list[Round]) -> list[str]:
    inplace = [r.new_served_s for r in of(rounds, "in-place") if r.new_served_s is not None]
    staged = of(rounds, "staged")
    if not (inplace and staged):
        return ["(ratios need both an in-place and a staged round)"]
    rebuild = statistics.median(inplace)
    worst = max(r.slowest_s for r in staged)
    median_slowest = statistics.median(r.slowest_s for r in staged)
    apply = statistics.median(r.apply_s for r in staged)
    ok_latency = worst < TARGET_LATENCY_S and all(r.new_served_s is not None for r in staged)
    ok_apply = apply / rebuild <= TARGET_APPLY_RATIO
    return [
        f"in-place rebuild (apply start → new results served), median: {rebuild:.3f} s",
        f"staged slowest query: worst {worst:.3f} s, median {median_slowest:.3f} s "
        f"(target < {TARGET_LATENCY_S} s: {'met' if ok_latency else 'NOT met'}); "
        f"{worst / rebuild:.3f}× the in-place rebuild",
        f"staged apply / in-place rebuild: {apply:.3f} s / {rebuild:.3f} s = "
        f"{apply / rebuild:.2f}× (target ≤ {TARGET_APPLY_RATIO}×: "
        f"{'met' if ok_apply else 'NOT met'})",
    ]


def couchsync_env(tmp: Path) -> dict[str, str]:
    """The environment of every ``couchsync`` run: a snapshot of the package, taken now.

    The checkout may be edited while the benchmark runs (rounds take minutes): every
    round runs the same code, copied to ``tmp`` and put first on ``PYTHONPATH``.
    """
    shutil.copytree(ROOT / "couchsync", tmp / "code" / "couchsync",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, COUCHSYNC_CACHE_DIR=str(STAGED_OUT / "cache"),
               PYTHONPATH=str(tmp / "code"))
    for name in ("COUCHDB_URL", "COUCH_URL", "COUCHDB_USER", "COUCHDB_PASSWORD"):
        env.pop(name, None)  # --url is passed: no other server or user may leak in
    return env


def design_deploy_supported(env: dict[str, str]) -> bool:
    shown = subprocess.run([*COUCHSYNC, "apply", "--help"], capture_output=True, text=True,
                           env=dict(env, COLUMNS="200"))
    if shown.returncode != 0:
        sys.exit(f"couchsync does not start: {shown.stderr[-2000:]}")
    return "--design-deploy" in shown.stdout


def git_head() -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "couchsync"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + uncommitted changes in couchsync/" if dirty else "")


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the database")
    parser.add_argument("--repeat", type=int, default=1,
                        help="in-place/staged pairs, interleaved")
    parser.add_argument("--only", default=",".join(MODES), help="in-place, staged or both")
    parser.add_argument("--staged-by", choices=("flag", "manifest"), default="flag",
                        help="choose staged with apply --design-deploy staged (flag) or the "
                        "database's design_deploy: staged (manifest)")
    parser.add_argument("--pause", type=float, default=0.02,
                        help="seconds the querier waits between two queries")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds to wait for the new results after the apply ends")
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1,
                        help="nodes of the bundled CouchDB started")
    parser.add_argument("--port", type=int, default=PORT, help="its (first) port")
    parser.add_argument("--url", default=None,
                        help="server to use instead (default: $COUCHSYNC_BENCH_URL, else "
                        "$COUCHDB_URL, else the bundled CouchDB)")
    args = parser.parse_args()
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.only) - set(MODES)
    if unknown:
        parser.error(f"unknown rollouts: {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="couchsync-bench-staged-run-"))
    env = couchsync_env(tmp)
    code = git_head()  # when the snapshot was taken
    if "staged" in args.only and not design_deploy_supported(env):
        print("warning: couchsync apply has no --design-deploy yet: in-place only",
              file=sys.stderr)
        args.only = [m for m in args.only if m != "staged"] or ["in-place"]
    STAGED_OUT.mkdir(parents=True, exist_ok=True)
    given = args.url or os.environ.get("COUCHSYNC_BENCH_URL") or os.environ.get("COUCHDB_URL")
    load_before = os.getloadavg()
    started = time.gmtime()
    with (contextlib.nullcontext(given.rstrip("/")) if given
          else own_server(args.nodes, args.port)) as url:
        bench = StagedBench(url, args, env, tmp)
        server = server_name(url)
        nodes = len(bench.http.get("/_membership").json().get("cluster_nodes", []))
        print(f"server: {server}, {nodes} node(s)", file=sys.stderr, flush=True)
        try:
            bench.run()
        finally:
            bench.http.close()
            shutil.rmtree(bench.tmp, ignore_errors=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", started),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "server": f"{server}, {nodes} node(s)",
        "couchsync": f"{code} (a snapshot of the package, taken at the start)",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "options": vars(args),
        "warnings": bench.warnings,
    }
    lines = verdicts(bench.rounds)
    report = {"meta": meta, "rounds": [asdict(r) for r in bench.rounds], "verdicts": lines}
    (STAGED_OUT / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{meta['date']} · {meta['machine']}, Python {meta['python']} · {meta['server']} · "
          f"couchsync {meta['couchsync']} · {args.docs:,} documents · "
          f"load {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(table(bench.rounds))
    print()
    for line in lines:
        print(line)
    for r in bench.rounds:
        notes = []
        if r.apply_exit:
            notes.append(f"apply exited {r.apply_exit}")
        if r.new_served_s is None:
            notes.append("never served the new results")
        if r.v1_after_v2:
            notes.append(f"{r.v1_after_v2} v1 answers after the first v2 one")
        if r.other:
            notes.append(f"{r.other} answers neither v1 nor v2")
        if r.errors:
            notes.append(f"errors: {r.errors}")
        if r.leftover_design_docs:
            notes.append(f"left behind: {r.leftover_design_docs}")
        if r.slowest_until_apply_end_s > r.slowest_s:
            notes.append(f"slowest until the apply ended {r.slowest_until_apply_end_s:.3f} s")
        if notes:
            print(f"{r.db}: {'; '.join(notes)}")
    for message in bench.warnings:
        print(f"\nwarning: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
