"""Instructions a revision's client executes, counted by valgrind: a figure the machine's
load does not move (CPU time on the shared 2-core machine moves by ±20 %).

    python bench/count_instructions.py de96f0a HEAD [--gets 400]

Per revision (exported as ``compare_revs.py`` does) and for the raw ``httpx.Client``:

per GET   instructions of one ``Database.get`` (``client_reads.py``'s loop: 50 + gets
          GETs minus 50 + 50, divided by ``gets``), connection and start-up left out;
start     instructions of a whole ``couchsync plan`` of one database with one document,
          converged: start-up (imports, ``Client``) and its five requests.

``valgrind --tool=cachegrind --cache-sim=no``; a thread's instructions count too. The
server: ``COUCHSYNC_BENCH_URL`` or one started as ``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent / "testserver"), str(BENCH)]

import client_reads  # noqa: E402
from compare_revs import REVS_OUT, RUNNER, export  # noqa: E402
from run import PY, bench_server, default_server  # noqa: E402

MANIFEST = ('version: 1\ndatabases:\n  bench_instructions:\n    documents:\n'
            '      - {"_id": "a", "x": 1}\n')


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                           "--cachegrind-out-file=/dev/null", *cmd],
                          env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)[1].replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revs", nargs="+")
    parser.add_argument("--gets", type=int, default=400)
    parser.add_argument("--couchdb-port", type=int, default=None)
    args = parser.parse_args()
    copies = {rev: export(rev) for rev in args.revs}
    manifest = REVS_OUT / "bench_instructions.yaml"
    manifest.write_text(MANIFEST)
    with bench_server(default_server(), args.couchdb_port) as url:
        client_reads.seed(url, 50 + args.gets)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUCH")}
        env.update(COUCHDB_URL=url, COUCHSYNC_CACHE_DIR="")
        last = dict(env, PYTHONPATH=str(copies[args.revs[-1]]))
        subprocess.run([PY, "-P", "-c", RUNNER, "apply", str(manifest), "--yes"], env=last,
                       check=True, capture_output=True)
        print("| side | instructions per GET | start (plan of one document) |\n|---|---|---|")
        for side in ["httpx", *args.revs]:
            side_env = env if side == "httpx" else dict(env, PYTHONPATH=str(copies[side]))
            client = "httpx" if side == "httpx" else "couchsync"
            reads = [instructions([PY, "-P", str(BENCH / "client_reads.py"), url, client,
                                   str(count)], side_env) for count in (50, 50 + args.gets)]
            start = "" if side == "httpx" else "{:.0f} M".format(instructions(
                [PY, "-P", "-c", RUNNER, "plan", str(manifest)], side_env) / 1e6)
            label = side if side == "httpx" else copies[side].name
            print(f"| {label} | {(reads[1] - reads[0]) / args.gets / 1e3:.0f} k | {start} |",
                  flush=True)
        with client_reads.httpx.Client(base_url=url) as http:
            http.delete(f"/{client_reads.DB}")
            http.delete("/bench_instructions")


if __name__ == "__main__":
    main()
