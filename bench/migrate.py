"""Data migrations (issue 21): ``couchsync apply`` of a migration against plain-httpx scripts.

    python bench/migrate.py                           # bundled CouchDB on port 47984, all four
    python bench/migrate.py --only one,fleet --rounds 5 --url http://u:p@127.0.0.1:5984
    python bench/migrate.py --only memory --memory-docs 1000000

Scenarios (issue targets); every migration is the same ``set`` + ``rename`` of the
documents ``{"type": "user"}`` selects (every other document):

one     ``--docs`` documents in one database, half of them matching, ≤ 1.3× the raw
        script: ``_find`` pages of ``--batch-size`` following bookmarks, each page's
        changes written by one ``_bulk_docs``. Both sides find the Mango index
        ``by-type`` (``{"fields": ["type"]}``), created and built with the seeding.
        Every run gets the database seeded afresh (untimed).
memory  peak RSS of ``couchsync apply`` migrating ``--memory-docs`` documents ≤ 200 MB,
        run once (GNU time's ``%M``).
fleet   a pattern's migration over ``--dbs`` databases of 20 documents ≤ 0.6× the raw
        sequential script (per database: the same ``_find``, one ``_bulk_docs``).
        Every run gets a fresh set of databases (prefix ``mig-f<k>-``), seeded before
        and dropped after, untimed.
noop    ``couchsync plan`` of a fleet whose migration is applied ≤ 1.1× the same plan
        with no migration declared. Both manifests hold ``bench/fleet.py``'s template
        (security, design document, index, five documents); the databases also hold
        the 20 documents, migrated.

Rounds are interleaved, each starting at the other side; whole processes; the
medians' ratio is reported. ``--count-dbs N`` also counts the HTTP requests each
side of fleet and noop sends per database (in this process, ``httpx.Client.send``
wrapped) over N databases. The raw scripts are this file run as
``python bench/migrate.py raw URL DB BATCH`` and ``raw-fleet URL PREFIX BATCH``:
their start-up imports httpx and nothing of the benchmark. Results: a table on
stdout and ``bench/out/migrate/results.json``.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

SELECTOR: dict[str, Any] = {"type": "user"}
INDEX: dict[str, Any] = {"index": {"fields": ["type"]}, "name": "by-type", "ddoc": "by-type",
                         "type": "json"}


def migrated(doc: dict[str, Any]) -> dict[str, Any]:
    """The migration as a script writes it: ``set: {schema: 2}``, ``rename: {email:
    contact.email}``."""
    new = dict(doc, schema=2)
    if "email" in new:
        new["contact"] = dict(new.get("contact") or {}, email=new.pop("email"))
    return new


def raw_database(http: httpx.Client, db: str, batch: int) -> int:
    """Migrate ``db`` as a hand-written script does; the documents written."""
    body: dict[str, Any] = {"selector": SELECTOR, "limit": batch}
    written = 0
    while True:
        page = http.post(f"/{db}/_find", json=body).raise_for_status().json()
        changes = [new for doc in page["docs"] if (new := migrated(doc)) != doc]
        if changes:
            answers = http.post(f"/{db}/_bulk_docs", json={"docs": changes})
            failed = [row for row in answers.raise_for_status().json() if "error" in row]
            if failed:
                raise RuntimeError(f"{db}: _bulk_docs refused {failed[:3]}")
            written += len(changes)
        if len(page["docs"]) < batch:
            return written
        body["bookmark"] = page["bookmark"]


def raw_fleet(http: httpx.Client, prefix: str, batch: int) -> int:
    """Every ``prefix*`` database, one after the other."""
    params = {"start_key": f'"{prefix}"', "end_key": f'"{prefix}\ufff0"'}
    names = http.get("/_all_dbs", params=params).raise_for_status().json()
    return sum(raw_database(http, db, batch) for db in names)


def raw_main(argv: list[str]) -> int:
    mode, url, target, batch = argv
    with httpx.Client(base_url=url, timeout=600) as http:
        (raw_database if mode == "raw" else raw_fleet)(http, target, int(batch))
    return 0


if __name__ == "__main__" and sys.argv[1:2] in (["raw"], ["raw-fleet"]):
    sys.exit(raw_main(sys.argv[1:]))

# ---------------------------------------------------------------- the benchmark

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
import compare_revs  # noqa: E402
import fleet  # noqa: E402
import fleet_raw  # noqa: E402
from run import COUCHSYNC, OUT, PY, bench_server, server_name  # noqa: E402

MIG_OUT = OUT / "migrate"
PORT = 47984
SCENARIOS = ("one", "memory", "fleet", "noop")
SCRIPT = str(Path(__file__).resolve())
MIGRATION_ID = "2026-12-contact"
MIGRATION: dict[str, Any] = {"id": MIGRATION_ID, "selector": SELECTOR,
                             "set": {"schema": 2}, "rename": {"email": "contact.email"}}
SEED_BATCH = 10_000  # documents per _bulk_docs while seeding
FLEET_DOCS = 20
ONE_DB = "mig-one"
MEMORY_DB = "mig-million"
NOOP_PREFIX = "mig-noop-"
TARGETS = {"one": "≤ 1.3×", "memory": "≤ 200 MB", "fleet": "≤ 0.6×", "noop": "≤ 1.1×"}


def document(i: int) -> dict[str, Any]:
    """About 250 bytes; even numbers are users (matched), odd ones orders."""
    user = i % 2 == 0
    return {"_id": f"doc-{i:08d}", "type": "user" if user else "order",
            "name": f"Person {i}", "email": f"person{i}@example.com",
            "age": 18 + i % 70, "city": ("Lyon", "Oslo", "Quito", "Pune")[i % 4],
            "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
            "note": "x" * (40 + i % 60), "created": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"}


@dataclass
class Result:
    kind: str  # a key of TARGETS
    scenario: str
    a_name: str
    b_name: str
    size: str
    command: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    a_rss: list[float] = field(default_factory=list)
    b_rss: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not (self.a and self.b):
            return None
        return statistics.median(self.a) / statistics.median(self.b)

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio,
                "ratios_per_round": [a / b for a, b in zip(self.a, self.b, strict=False)]}


class Bench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.server = fleet.Server(url, args.setup_workers)
        self.http = self.server.http
        self.env = dict(os.environ, COUCHSYNC_CACHE_DIR=str(MIG_OUT / "cache"))
        for name in ("COUCHDB_URL", "COUCH_URL", "COUCHDB_USER"):
            self.env.pop(name, None)  # --url is passed: no other server or user may leak in
        # --rev: that commit's package (compare_revs.py's export) before the checkout's.
        self.cli = COUCHSYNC
        if args.copy:
            self.cli = [PY, "-P", "-c", compare_revs.RUNNER]
            self.env["PYTHONPATH"] = str(args.copy)
        self.results: list[Result] = []
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)

    def log(self, message: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------ processes

    def couchsync(self, command: str, manifest: Path, *extra: str) -> tuple[float, float]:
        return fleet.run_process([*self.cli, command, str(manifest), "--url", self.url,
                                  *extra], self.env)

    def apply(self, manifest: Path) -> tuple[float, float]:
        return self.couchsync("apply", manifest, "--yes", "--batch-size",
                              str(self.args.batch_size), "--parallel", str(self.args.parallel))

    def raw(self, mode: str, target: str) -> tuple[float, float]:
        return fleet.run_process([PY, SCRIPT, mode, self.url, target, str(self.args.batch_size)])

    def interleave(self, result: Result, a: Callable[[], tuple[float, float]],
                   b: Callable[[], tuple[float, float]], before: Callable[[str], None],
                   after: Callable[[str], None]) -> None:
        """``--rounds`` runs of each side, alternating which goes first."""
        sides = [("A", a, result.a, result.a_rss), ("B", b, result.b, result.b_rss)]
        for round_ in range(self.args.rounds):
            for side, run, times, rss in sides[round_ % 2:] + sides[:round_ % 2]:
                before(side)
                seconds, peak = run()
                times.append(seconds)
                rss.append(peak)
                self.log(f"{result.scenario} round {round_ + 1} {side}: {seconds:.2f} s, "
                         f"{peak:.0f} MB")
                after(side)

    # ------------------------------------------------------------ set-up (untimed)

    def seed_one(self, db: str, count: int, reuse: bool = False) -> None:
        """``db`` afresh with ``count`` documents and the index, built; with ``reuse``, a
        ``db`` this seeded and nothing wrote since (a run stopped before its migration)
        is kept: seeding a million documents takes minutes."""
        if not (reuse and self.untouched(db, count)):
            if self.http.delete(f"/{db}").status_code not in (200, 202, 404):
                raise RuntimeError(f"cannot drop {db}")
            self.http.put(f"/{db}").raise_for_status()
            for start in range(0, count, SEED_BATCH):
                docs = [document(i) for i in range(start, min(count, start + SEED_BATCH))]
                answer = self.http.post(f"/{db}/_bulk_docs", json={"docs": docs})
                if any("error" in row for row in answer.raise_for_status().json()):
                    raise RuntimeError(f"seeding {db} failed")
            self.http.post(f"/{db}/_index", json=INDEX).raise_for_status()
        # A query builds the index, which both sides then find up to date. Over a million
        # documents it outlasts the server's request timeout (a 500), the build going on.
        query = {"selector": SELECTOR, "limit": 1, "use_index": INDEX["ddoc"]}
        while (answer := self.http.post(f"/{db}/_find", json=query)).status_code == 500:
            self.log(f"building the index of {db}: {answer.text[:80]}")
            self.server.settle(600)
        answer.raise_for_status()
        self.server.settle()

    def untouched(self, db: str, count: int) -> bool:
        """``db`` holds ``count`` documents and the index, and had no other write (its
        sequence counts the updates)."""
        info = self.http.get(f"/{db}")
        return (info.status_code == 200 and info.json()["doc_count"] == count + 1
                and str(info.json()["update_seq"]).split("-")[0] == str(count + 1))

    def check_one(self, db: str, count: int, side: str) -> None:
        """The first and last matching documents migrated, an unmatched one left."""
        last_user = (count - 1) // 2 * 2
        for i, want in ((0, True), (last_user, True), (1, False)):
            doc = self.http.get(f"/{db}/doc-{i:08d}").raise_for_status().json()
            expected = migrated(document(i)) if want else document(i)
            if {k: v for k, v in doc.items() if k != "_rev"} != expected:
                self.warn(f"{side}: {db}/doc-{i:08d} is {doc}, not {expected}")

    def seed_fleet(self, prefix: str, size: int) -> list[str]:
        names = fleet.db_names(prefix, 0, size)
        self.server.create(names)
        docs = [document(i) for i in range(FLEET_DOCS)]

        def write(db: str) -> None:
            answer = self.http.post(f"/{db}/_bulk_docs", json={"docs": docs})
            if any("error" in row for row in answer.raise_for_status().json()):
                raise RuntimeError(f"seeding {db} failed")

        fleet.concurrently(write, names, self.server.workers)
        self.server.settle()
        return names

    def check_fleet(self, names: list[str], side: str) -> None:
        for db in (names[0], names[-1]):
            self.check_one(db, FLEET_DOCS, f"{side} {db}")

    def manifest(self, name: str, pattern: str, template: bool, migrations: bool) -> Path:
        """A manifest for ``pattern``: ``bench/fleet.py``'s template and/or the migration,
        written as JSON flow collections (valid YAML)."""
        path = MIG_OUT / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["version: 1", "databases:", f"  {json.dumps(pattern)}:"]
        if template:
            lines += [f"    security: {json.dumps(fleet_raw.SECURITY)}",
                      f"    design_docs:\n      {fleet_raw.DESIGN_NAME}: "
                      f"{json.dumps(fleet_raw.DESIGN)}",
                      f"    indexes:\n      {fleet_raw.INDEX_NAME}: "
                      f"{json.dumps({'fields': fleet_raw.INDEX_FIELDS})}",
                      "    documents:",
                      *(f"      - {json.dumps(doc)}" for doc in fleet_raw.DOCUMENTS)]
        if migrations:
            lines.append(f"    migrations:\n      - {json.dumps(MIGRATION)}")
        path.write_text("\n".join(lines) + "\n")
        return path

    # ------------------------------------------------------------ scenarios

    def one(self) -> None:
        count, batch = self.args.docs, self.args.batch_size
        manifest = self.manifest("one", ONE_DB, template=False, migrations=True)
        result = Result("one", "1 one database", f"couchsync apply --batch-size {batch}",
                        f"raw _find by bookmark + _bulk_docs of {batch}",
                        f"{count:,} docs, {count // 2 + count % 2:,} match",
                        f"couchsync apply {manifest.name} --yes --batch-size {batch} "
                        f"--parallel {self.args.parallel}")
        self.interleave(result, lambda: self.apply(manifest), lambda: self.raw("raw", ONE_DB),
                        lambda side: self.seed_one(ONE_DB, count),
                        lambda side: self.check_one(ONE_DB, count, side))
        self.http.delete(f"/{ONE_DB}")
        self.results.append(result)

    def memory(self) -> None:
        count = self.args.memory_docs
        manifest = self.manifest("memory", MEMORY_DB, template=False, migrations=True)
        self.log(f"seeding {count:,} documents")
        started = time.perf_counter()
        self.seed_one(MEMORY_DB, count, reuse=True)
        self.log(f"seeded in {time.perf_counter() - started:.0f} s")
        result = Result("memory", "2 memory",
                        f"couchsync apply --batch-size {self.args.batch_size}", "—",
                        f"{count:,} docs, {count // 2 + count % 2:,} match",
                        f"/usr/bin/time -f %M couchsync apply {manifest.name} --yes "
                        f"--batch-size {self.args.batch_size}")
        seconds, peak = self.apply(manifest)
        result.a.append(seconds)
        result.a_rss.append(peak)
        self.log(f"memory: {seconds:.1f} s, {peak:.0f} MB")
        self.check_one(MEMORY_DB, count, "A")
        self.http.delete(f"/{MEMORY_DB}")
        self.results.append(result)

    def fleet(self) -> None:
        size = self.args.dbs
        sets = {"n": 0, "names": [], "prefix": ""}

        def fresh(side: str) -> None:
            sets["n"] += 1
            sets["prefix"] = prefix = f"mig-f{sets['n']}-"
            sets["names"] = self.seed_fleet(prefix, size)

        def drop(side: str) -> None:
            self.check_fleet(sets["names"], side)
            self.server.drop(sets["names"])

        def manifest() -> Path:
            return self.manifest("fleet", f"{sets['prefix']}*", template=False, migrations=True)

        result = Result("fleet", "3 fleet", f"couchsync apply --parallel {self.args.parallel}",
                        "raw sequential (_find + _bulk_docs per db)",
                        f"{size:,} dbs × {FLEET_DOCS} docs, {FLEET_DOCS // 2} match",
                        f"couchsync apply fleet.yaml --yes --parallel {self.args.parallel}")
        self.interleave(result, lambda: self.apply(manifest()),
                        lambda: self.raw("raw-fleet", sets["prefix"]), fresh, drop)
        self.results.append(result)

    def noop_fleet(self, size: int) -> tuple[Path, Path]:
        """``mig-noop-*``: the template and the migration applied; the two manifests."""
        with_mig = self.manifest("noop-migrations", f"{NOOP_PREFIX}*", True, True)
        without = self.manifest("noop-none", f"{NOOP_PREFIX}*", True, False)
        self.seed_fleet(NOOP_PREFIX, size)
        self.apply(with_mig)
        self.server.settle()
        for manifest in (with_mig, without):
            shown = subprocess.run([*self.cli, "plan", str(manifest), "--url", self.url],
                                   capture_output=True, text=True, env=self.env)
            if shown.returncode != 0 or "No changes." not in shown.stdout:
                self.warn(f"{manifest.name}: the plan is not a no-op "
                          f"(exit {shown.returncode}): {(shown.stdout + shown.stderr)[:500]}")
        return with_mig, without

    def noop(self) -> None:
        size = self.args.dbs
        with_mig, without = self.noop_fleet(size)
        result = Result("noop", "4 no-op plan", "plan, migration applied",
                        "plan, no migration declared",
                        f"{size:,} dbs × {FLEET_DOCS + len(fleet_raw.DOCUMENTS)} docs",
                        f"couchsync plan {with_mig.name} vs {without.name} --parallel "
                        f"{self.args.parallel}")
        self.interleave(
            result,
            lambda: self.couchsync("plan", with_mig, "--parallel", str(self.args.parallel)),
            lambda: self.couchsync("plan", without, "--parallel", str(self.args.parallel)),
            lambda side: self.server.settle(), lambda side: None)
        self.server.drop(fleet.db_names(NOOP_PREFIX, 0, size))
        self.results.append(result)

    # ------------------------------------------------------------ request counts

    def count(self) -> dict[str, dict[str, float]]:
        """Requests per database of each side of fleet and noop, over ``--count-dbs``."""
        size = self.args.count_dbs
        counted: dict[str, dict[str, float]] = {}
        with counting() as tally:
            prefix = "mig-c1-"
            names = self.seed_fleet(prefix, size)
            with tally.of("fleet: couchsync apply", size):
                run_cli("apply", self.manifest("count", f"{prefix}*", False, True), self.url,
                        "--yes", "--parallel", str(self.args.parallel))
            self.check_fleet(names, "A (counted)")
            self.server.drop(names)
            prefix = "mig-c2-"
            names = self.seed_fleet(prefix, size)
            with tally.of("fleet: raw", size), httpx.Client(base_url=self.url) as http:
                raw_fleet(http, prefix, self.args.batch_size)
            self.server.drop(names)
            with_mig, without = self.noop_fleet(size)
            for label, manifest in (("noop: plan, migration applied", with_mig),
                                    ("noop: plan, none declared", without)):
                with tally.of(label, size):
                    run_cli("plan", manifest, self.url, "--parallel", str(self.args.parallel))
            self.server.drop(fleet.db_names(NOOP_PREFIX, 0, size))
            counted = tally.results
        return counted


class Tally:
    """Requests by label and by ``METHOD /{db}/path`` (a database's name made ``{db}``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: Counter[str] | None = None
        self.results: dict[str, dict[str, float]] = {}

    def add(self, method: str, path: str) -> None:
        key = re.sub(r"^/mig-[a-z0-9]+-\d+", "/{db}", path)
        key = re.sub(r"(couchsync-migration\.[^/]*?)\.[0-9a-f]{12}\.\d+", r"\1.*", key)
        with self.lock:
            if self.current is not None:
                self.current[f"{method} {key}"] += 1

    @contextlib.contextmanager
    def of(self, label: str, dbs: int) -> Iterator[None]:
        self.current = Counter()
        try:
            yield
        finally:
            counts, self.current = self.current, None
            per_db = {k: v / dbs for k, v in sorted(counts.items()) if "{db}" in k}
            once = {k: v for k, v in sorted(counts.items()) if "{db}" not in k}
            self.results[label] = {"per database": sum(per_db.values()), **per_db,
                                   **{f"(once) {k}": v for k, v in once.items()}}


@contextlib.contextmanager
def counting() -> Iterator[Tally]:
    """Every request any ``httpx.Client`` in this process sends, tallied."""
    tally = Tally()
    send = httpx.Client.send

    def counted(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        tally.add(request.method, request.url.path)
        return send(self, request, **kwargs)

    httpx.Client.send = counted  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        httpx.Client.send = send  # type: ignore[method-assign]


def run_cli(command: str, manifest: Path, url: str, *extra: str) -> None:
    """``couchsync COMMAND`` in this process (so its requests are counted)."""
    from couchsync.cli import main

    argv, sys.argv = sys.argv, ["couchsync", command, str(manifest), "--url", url, *extra]
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            main()
    except SystemExit as exit_:
        if exit_.code not in (0, 2, None):
            raise RuntimeError(f"couchsync {command} exited {exit_.code}") from None
    finally:
        sys.argv = argv


# ---------------------------------------------------------------- report


def fmt(times: list[float]) -> str:
    if not times:
        return "—"
    return f"{statistics.median(times):.2f} s ({min(times):.2f}–{max(times):.2f})"


def table(results: list[Result]) -> str:
    lines = ["| scenario | size | A | B | A median (min–max) | B median (min–max) | ratio "
             "| target | peak RSS A / B |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        rss = " / ".join(f"{max(x):.0f} MB" for x in (r.a_rss, r.b_rss) if x)
        lines.append(f"| {r.scenario} | {r.size} | {r.a_name} | {r.b_name} | {fmt(r.a)} "
                     f"| {fmt(r.b)} | {ratio} | {TARGETS[r.kind]} | {rss} |")
    return "\n".join(lines)


def count_table(counts: dict[str, dict[str, float]]) -> str:
    lines = []
    for label, rows in counts.items():
        lines.append(f"\n{label}: {rows['per database']:.2f} requests per database")
        lines += [f"    {v:8.2f}  {k}" for k, v in rows.items() if k != "per database"]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side")
    parser.add_argument("--docs", type=int, default=100_000, help="one: documents")
    parser.add_argument("--memory-docs", type=int, default=1_000_000)
    parser.add_argument("--dbs", type=int, default=1000, help="fleet, noop: databases")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="couchsync --batch-size; the raw scripts' _find limit and batch")
    parser.add_argument("--parallel", type=int, default=8, help="couchsync --parallel")
    parser.add_argument("--setup-workers", type=int, default=8)
    parser.add_argument("--count-dbs", type=int, default=0,
                        help="count requests per database over this many (0: do not)")
    parser.add_argument("--rev", default=None,
                        help="measure this commit's couchsync (exported as compare_revs.py "
                        "does), not the checkout's working tree")
    parser.add_argument("--url", default=None,
                        help="server to use (default: $COUCHSYNC_BENCH_URL, else the bundled "
                        f"CouchDB started on port {PORT})")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(args.only) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(set(args.only) - set(SCENARIOS)))}")
    return args


def main() -> int:
    args = parse_args()
    load_before = os.getloadavg()
    args.copy = compare_revs.export(args.rev) if args.rev else None
    if args.copy:  # the request counts import it in this process
        sys.path.insert(0, str(args.copy))
        install = f"{args.copy.name} (git archive, compiled)"
    else:
        install = f"{fleet.git_head()}, {fleet.compile_couchsync()}"
    given = contextlib.nullcontext(args.url.rstrip("/")) if args.url else None
    with given or bench_server("couchdb", PORT) as url:
        bench = Bench(url, args)
        server = server_name(url)
        print(f"server: {server}", file=sys.stderr, flush=True)
        with bench.http:
            for name in SCENARIOS:
                if name in args.only:
                    print(f"running {name} ...", file=sys.stderr, flush=True)
                    getattr(bench, name)()
            counts = bench.count() if args.count_dbs else {}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} cores", "server": server,
            "couchsync": install,
            "load_average": [load_before[0], os.getloadavg()[0]], "options": vars(args),
            "warnings": bench.warnings}
    MIG_OUT.mkdir(parents=True, exist_ok=True)
    (MIG_OUT / "results.json").write_text(json.dumps(
        {"meta": meta, "results": [r.as_json() for r in bench.results], "requests": counts},
        indent=2, default=str) + "\n")
    print(f"\n{meta['date']} · {meta['machine']} · {server} · couchsync {meta['couchsync']} "
          f"· {args.rounds} rounds · load {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(table(bench.results))
    for r in bench.results:
        print(f"\n{r.scenario}: {r.command}; ratios per round: "
              + ", ".join(f"{a / b:.2f}" for a, b in zip(r.a, r.b, strict=False)))
    if counts:
        print(count_table(counts))
    for message in bench.warnings:
        print(f"\nwarning: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
