"""Two or more couchsync revisions and the raw baselines, interleaved in one run.

    python bench/compare_revs.py all de96f0a HEAD --rounds 5
    python bench/compare_revs.py noop,drift e6e9168 HEAD --rounds 21 [--warm]

Kinds (``all``: every one, in this order), each against a plain ``httpx.Client``
script:

seed   ``couchsync apply`` of ``--docs`` new documents; ``raw_seed.py``
       (``_bulk_docs`` of 1,000). The database is dropped before every run.
noop   ``couchsync plan`` of those documents, applied; ``raw_scan.py`` (a
       revisions-only ``_all_docs``).
drift  the same plan after 1 % of the documents were edited on the server, once
       (every round plans the same drift); ``raw_scan.py`` with the revisions as
       written and the data file: it reads the moved documents and compares them.
fleet  ``couchsync plan`` of a template over ``--fleet`` databases ``userdb-*``
       (``fleet.py``'s manifest and set-up); ``fleet_raw.py read``.
reads  ``--reads`` single-document GETs, ``Database.get`` against ``httpx.Client.get``
       (``client_reads.py``: the loop times itself, start-up left out).

Each revision's ``couchsync`` package is exported (``git archive``: committed
code only) into ``bench/out/revs/REV``, compiled, and run as a whole process
with that copy first on ``PYTHONPATH``. The set-up (seeding, converging, by the
last revision) is untimed; every side runs once untimed before the rounds
(but seed's). Each round runs every side once, starting at another side each
round. Plans run with ``--detailed-exitcode``, so a no-op that finds changes,
or a drift that finds none, stops the run. The table: per kind and side, the
wall-time median (min–max), its ratio to the raw baseline and to the first
revision, and the process's CPU time (user + system, from ``os.wait4``): on a
machine shared with other jobs, CPU time moves far less than wall time, so it
shows what a change did to couchsync's own work. The data-file cache is off
unless ``--warm``. The server: ``COUCHSYNC_BENCH_URL`` or one started as
``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT / "testserver"), str(BENCH)]

import client_reads  # noqa: E402
import fleet  # noqa: E402
from run import (  # noqa: E402
    OUT,
    PY,
    bench_server,
    default_server,
    edit_docs,
    make_jsonl,
    server_name,
    write_manifest,
)

REVS_OUT = OUT / "revs"
KINDS = ("seed", "noop", "drift", "fleet", "reads")
FLEET_PREFIX = "userdb-"
# -P: without it, "-c" puts the working directory (this checkout) first on sys.path.
RUNNER = "import sys; from couchsync.cli import main; sys.exit(main())"


def export(rev: str) -> Path:
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    target = REVS_OUT / commit
    if not (target / "couchsync").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit, "couchsync"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        subprocess.run([PY, "-m", "compileall", "-q", str(target)], check=True)
    return target


def timed(label: str, cmd: list[str], env: dict[str, str], expected: int = 0,
          self_timed: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of ``cmd``; a ``self_timed`` process prints its own two."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must know
        if proc.returncode != expected:
            err.seek(0)
            # The label, not the command: the baselines' arguments hold the password.
            said = err.read().decode(errors="replace")[-2000:]
            password = httpx.URL(env["COUCHDB_URL"]).password
            raise RuntimeError(f"{label} exited {proc.returncode}, not {expected}:\n"
                               + (said.replace(password, "***") if password else said))
        if self_timed:
            out.seek(0)
            wall, cpu = map(float, out.read().split())
            return wall, cpu
    return wall, usage.ru_utime + usage.ru_stime


@dataclass
class Kind:
    """One kind's two commands; the couchsync one runs once per revision."""

    raw: list[str]
    couchsync: list[str]
    exit_code: int = 0  # couchsync's: 2 where the plan must find changes
    before_each: Callable[[], None] = lambda: None
    warm_up: bool = True
    self_timed: bool = False


@dataclass
class Bench:
    url: str
    args: argparse.Namespace
    copies: dict[str, Path]
    http: httpx.Client = field(init=False)
    env: dict[str, str] = field(init=False)
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=600)
        cache = REVS_OUT / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        # No other server, user or token of the caller's may leak in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COUCH")}
        self.env.update(COUCHDB_URL=self.url,
                        COUCHSYNC_CACHE_DIR=str(cache) if self.args.warm else "")
        self.data = make_jsonl(OUT / f"docs-{self.args.docs}.jsonl", self.args.docs)

    def env_of(self, rev: str) -> dict[str, str]:
        return dict(self.env, PYTHONPATH=str(self.copies[rev]))

    def cli(self, *args: object) -> list[str]:
        return [PY, "-P", "-c", RUNNER, *map(str, args)]

    def script(self, name: str, *args: object) -> list[str]:
        return [PY, str(BENCH / name), *map(str, args)]

    def drop(self, db: str) -> None:
        self.http.delete(f"/{db}")

    def converge(self, manifest: Path) -> None:
        """Apply ``manifest`` with the last revision (the result), untimed."""
        timed(f"the set-up's apply of {manifest.name}", self.cli("apply", manifest, "--yes"),
              self.env_of(self.args.revs[-1]))

    def seeded(self, db: str) -> Path:
        """``db`` holding ``--docs`` documents, applied; its manifest."""
        manifest = write_manifest(REVS_OUT / f"{db}.yaml", db, self.data)
        self.drop(db)
        self.converge(manifest)
        return manifest


@contextlib.contextmanager
def seed_kind(b: Bench) -> Iterator[Kind]:
    manifest = write_manifest(REVS_OUT / "bench_seed.yaml", "bench_seed", b.data)
    yield Kind(b.script("raw_seed.py", b.url, "bench_seed", b.data),
               b.cli("apply", manifest, "--yes"), before_each=lambda: b.drop("bench_seed"),
               warm_up=False)
    b.drop("bench_seed")


@contextlib.contextmanager
def noop_kind(b: Bench) -> Iterator[Kind]:
    manifest = b.seeded("bench_noop")
    yield Kind(b.script("raw_scan.py", b.url, "bench_noop"),
               b.cli("plan", manifest, "--detailed-exitcode"))
    b.drop("bench_noop")


@contextlib.contextmanager
def drift_kind(b: Bench) -> Iterator[Kind]:
    manifest = b.seeded("bench_drift")
    rows = b.http.get("/bench_drift/_all_docs").raise_for_status().json()["rows"]
    revs = REVS_OUT / "bench_drift-revs.json"
    revs.write_text(json.dumps({row["id"]: row["value"]["rev"] for row in rows}))
    edit_docs(b.http, "bench_drift", max(1, b.args.docs // 100))
    yield Kind(b.script("raw_scan.py", b.url, "bench_drift", revs, b.data),
               b.cli("plan", manifest, "--detailed-exitcode"), exit_code=2)
    b.drop("bench_drift")


@contextlib.contextmanager
def fleet_kind(b: Bench) -> Iterator[Kind]:
    server = fleet.Server(b.url, workers=8)
    names = fleet.db_names(FLEET_PREFIX, 0, b.args.fleet)
    manifest = fleet.write_manifest(FLEET_PREFIX)
    with server.http:
        server.create(names)
        b.converge(manifest)
        # A run must not share the cores with index builds (the apply's, the last run's).
        server.settle()
        yield Kind(b.script("fleet_raw.py", "read", b.url, FLEET_PREFIX),
                   b.cli("plan", manifest, "--detailed-exitcode"), before_each=server.settle)
        server.drop(names)


@contextlib.contextmanager
def reads_kind(b: Bench) -> Iterator[Kind]:
    client_reads.seed(b.url, b.args.reads)
    yield Kind(b.script("client_reads.py", b.url, "httpx", b.args.reads),
               b.script("client_reads.py", b.url, "couchsync", b.args.reads), self_timed=True)
    b.drop(client_reads.DB)


SET_UP = {"seed": seed_kind, "noop": noop_kind, "drift": drift_kind, "fleet": fleet_kind,
          "reads": reads_kind}


def measure(b: Bench, name: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per side, (wall, CPU) seconds of each round."""
    print(f"{name}: setting up ...", file=sys.stderr, flush=True)
    with SET_UP[name](b) as kind:
        sides = {"raw": (kind.raw, b.env, 0)}
        sides.update({rev: (kind.couchsync, b.env_of(rev), kind.exit_code) for rev in b.copies})
        if kind.warm_up:  # the server's files and the page cache, as every round finds them
            for side, (cmd, env, code) in sides.items():
                kind.before_each()
                timed(f"{name} {side}", cmd, env, code, kind.self_timed)
        times: dict[str, tuple[list[float], list[float]]] = {s: ([], []) for s in sides}
        order = list(sides)
        for round_ in range(b.args.rounds):
            print(f"{name}: round {round_ + 1} of {b.args.rounds}", file=sys.stderr, flush=True)
            # Each round starts at another side, so that none always runs first.
            for side in order[round_ % len(order):] + order[:round_ % len(order)]:
                cmd, env, code = sides[side]
                kind.before_each()
                wall, cpu = timed(f"{name} {side}", cmd, env, code, kind.self_timed)
                times[side][0].append(wall)
                times[side][1].append(cpu)
    return times


def table(results: dict[str, dict[str, tuple[list[float], list[float]]]],
          first: str) -> str:
    lines = [f"| kind | side | wall median (min–max) | × raw | × {first} | CPU | CPU × {first} |",
             "|---|---|---|---|---|---|---|"]
    for name, times in results.items():
        base = statistics.median(times["raw"][0])
        old_wall, old_cpu = (statistics.median(t) for t in times[first])
        for side, (wall, cpu) in times.items():
            med, cpu_med = statistics.median(wall), statistics.median(cpu)
            to_old = "" if side == "raw" else f"{med / old_wall:.2f}×"
            cpu_to_old = "" if side == "raw" else f"{cpu_med / old_cpu:.2f}×"
            lines.append(f"| {name} | {side} | {med * 1000:.0f} ms ({min(wall) * 1000:.0f}–"
                         f"{max(wall) * 1000:.0f}) | {med / base:.2f}× | {to_old} | "
                         f"{cpu_med * 1000:.0f} ms | {cpu_to_old} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kinds", help=f"all, or some of {','.join(KINDS)} (comma-separated)")
    parser.add_argument("revs", nargs="+")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--docs", type=int, default=10_000, help="seed, noop, drift")
    parser.add_argument("--fleet", type=int, default=1000, help="databases of the fleet")
    parser.add_argument("--reads", type=int, default=2000, help="GETs per reads run")
    parser.add_argument("--warm", action="store_true", help="data-file cache on (warm)")
    parser.add_argument("--server", choices=("couchdb", "pouchdb"), default=None)
    parser.add_argument("--couchdb-port", type=int, default=None)
    args = parser.parse_args()
    kinds = list(KINDS) if args.kinds == "all" else args.kinds.split(",")
    if set(kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(set(kinds) - set(KINDS)))}")
    copies = {rev: export(rev) for rev in args.revs}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with bench_server(args.server or default_server(), args.couchdb_port) as url:
        b = Bench(url, args, copies)
        server = server_name(url)
        results = {name: measure(b, name) for name in kinds}
    print(f"{', '.join(kinds)}; {'warm' if args.warm else 'cold'} cache; {args.rounds} rounds; "
          f"{server}; {args.docs:,} documents, {args.fleet:,} fleet databases, {args.reads:,} "
          f"reads; load average {load:.1f} → {os.getloadavg()[0]:.1f}; "
          f"{(time.perf_counter() - started) / 60:.1f} min\n")
    print(table(results, args.revs[0]))


if __name__ == "__main__":
    main()
