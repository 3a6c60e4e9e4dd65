"""Two or more couchsync revisions and the raw baseline, interleaved in one run.

    python bench/compare_revs.py noop e6e9168 HEAD [--rounds 21] [--warm]
    python bench/compare_revs.py seed e6e9168 HEAD --rounds 9

Each revision's ``couchsync`` package is exported (``git archive``) into
``bench/out/revs/REV``, compiled, and run as a whole process with that copy
first on ``PYTHONPATH``; the baseline is ``raw_scan.py`` (noop) or
``raw_seed.py`` (seed). Rounds run raw, REV1, REV2, ... in turn. Printed per
side: wall-time median (min–max), the ratio of medians and of minimums to the
raw baseline, and the process's CPU time (user + system, from ``os.wait4``):
on a machine shared with other jobs, CPU time moves far less than wall time,
so it shows what a change did to couchsync's own work. The data-file cache is
off unless ``--warm``. The server: ``COUCHSYNC_BENCH_URL`` or one started as
``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "testserver"), str(ROOT / "bench")]

from run import OUT, PY, bench_server, default_server, make_jsonl, write_manifest  # noqa: E402

# -P: without it, "-c" puts the working directory (this checkout) first on sys.path.
RUNNER = "import sys; from couchsync.cli import main; sys.exit(main())"


def export(rev: str) -> Path:
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    target = OUT / "revs" / commit
    if not (target / "couchsync").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit, "couchsync"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        subprocess.run([PY, "-m", "compileall", "-q", str(target)], check=True)
    return target


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("noop", "seed"))
    parser.add_argument("revs", nargs="+")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--warm", action="store_true", help="data-file cache on (warm)")
    parser.add_argument("--server", choices=("couchdb", "pouchdb"), default=None)
    parser.add_argument("--couchdb-port", type=int, default=None)
    args = parser.parse_args()
    data = make_jsonl(OUT / f"docs-{args.docs}.jsonl", args.docs)
    manifest = write_manifest(OUT / "revs" / "manifest.yaml", "bench_revs", data)
    cache = OUT / "revs" / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    copies = {rev: export(rev) for rev in args.revs}
    with bench_server(args.server or default_server(), args.couchdb_port) as url:
        env = dict(os.environ, COUCHDB_URL=url,
                   COUCHSYNC_CACHE_DIR=str(cache) if args.warm else "")
        http = httpx.Client(base_url=url, timeout=600)
        command = ["apply", str(manifest), "--yes"] if args.kind == "seed" else [
            "plan", str(manifest)]
        sides: dict[str, tuple[list[str], dict[str, str]]] = {
            "raw": ([PY, str(ROOT / "bench" / "raw_scan.py"), url, "bench_revs"]
                    if args.kind == "noop" else
                    [PY, str(ROOT / "bench" / "raw_seed.py"), url, "bench_revs", str(data)],
                    env)}
        for rev, copy in copies.items():
            sides[rev] = ([PY, "-P", "-c", RUNNER, *command], dict(env, PYTHONPATH=str(copy)))
        if args.kind == "noop":  # a database couchsync manages, its record written
            http.delete("/bench_revs")
            timed([*sides[args.revs[-1]][0][:4], "apply", str(manifest), "--yes"],
                  sides[args.revs[-1]][1])
            for cmd, side_env in list(sides.values())[1:]:
                timed(cmd, side_env)  # warm the cache (when on) and the server's files
        wall: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, (cmd, side_env) in sides.items():
                if args.kind == "seed":
                    http.delete("/bench_revs")
                seconds, used = timed(cmd, side_env)
                wall[name].append(seconds)
                cpu[name].append(used)
        http.delete("/bench_revs")
    load = os.getloadavg()[0]
    print(f"{args.kind}, {'warm' if args.warm else 'cold'} cache, {args.rounds} rounds, "
          f"load average {load:.1f} at the end")
    base, base_min = statistics.median(wall["raw"]), min(wall["raw"])
    for name in sides:
        med = statistics.median(wall[name])
        print(f"{name:>10}: {med * 1000:7.1f} ms ({min(wall[name]) * 1000:.0f}–"
              f"{max(wall[name]) * 1000:.0f})  ratio {med / base:.2f}× "
              f"(of minimums {min(wall[name]) / base_min:.2f}×)  "
              f"CPU {statistics.median(cpu[name]) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
