"""How soon a cluster's incremental plans skip a fleet nobody else writes.

    python bench/cluster_trust.py --url http://admin:pw@127.0.0.1:48984 [--rev REV]

Creates ``--dbs`` empty databases ``<prefix>NNNNN``, then ``--rounds`` times: ``couchsync
apply`` of ``fleet.py``'s template to them, and a ``couchsync plan`` whose machine format
says how many it skipped and how many it read in full. The first apply writes every
database (an apply records only those its plan found converged); a cluster trusts a
shard copy's sequence once two converged reads saw it (docs/plan-and-apply.md,
"Clusters"), so skipping starts after the third. ``--rev``: that commit's couchsync
(exported as ``compare_revs.py`` does) instead of this checkout's. The databases are
dropped at the end. Nothing is timed: it counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import fleet  # noqa: E402
from compare_revs import RUNNER, export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a CouchDB cluster, admin credentials")
    parser.add_argument("--dbs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rev", default=None, help="a commit's couchsync, not the checkout's")
    args = parser.parse_args()
    package = export(args.rev) if args.rev else BENCH.parent
    prefix = f"trust-{uuid.uuid4().hex[:6]}-"
    names = [f"{prefix}{i:05d}" for i in range(args.dbs)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUCH")}
    env.update(COUCHDB_URL=args.url, PYTHONPATH=str(package))
    couchsync = [sys.executable, "-P", "-c", RUNNER]
    manifest = str(fleet.write_manifest(prefix))
    with httpx.Client(base_url=args.url, timeout=120) as http, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: http.put(f"/{name}").raise_for_status(), names))
        try:
            for round_ in range(1, args.rounds + 1):
                subprocess.run([*couchsync, "apply", manifest, "--yes"], env=env,
                               check=True, capture_output=True)
                shown = subprocess.run([*couchsync, "plan", manifest, "--format", "json"],
                                       env=env, check=True, capture_output=True, text=True)
                found = json.loads(shown.stdout).get("incremental", {})
                read = sum(map(len, found.get("read_in_full", {}).values()))
                print(f"after apply {round_}: {found.get('unchanged', 0)} of {args.dbs} "
                      f"skipped, {read} read in full", flush=True)
        finally:
            list(pool.map(lambda name: http.delete(f"/{name}"), names))


if __name__ == "__main__":
    main()
