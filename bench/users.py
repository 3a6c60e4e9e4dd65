"""What a no-op plan of ``users:`` costs, against hashing each password once in a row.

    .venv/bin/python bench/users.py [--url URL] [--users 20] [--pairs 5] [--parallel N]

Without ``--url`` a fresh single-node CouchDB is started (bench/couchdb_server.py, on
a free port) and stopped afterwards; with it, the server named (admin credentials in
the URL) is used, and the bench's users are deleted afterwards.

couchsync checks each declared password against the hash stored in ``_users``
(PBKDF2, 600,000 iterations on CouchDB 3.5), never by a login. The bench applies
``--users`` users once, then times, interleaved (A B A B ...), ``pairs`` times:

- A, the baseline: the same PBKDF2 hashes computed one after the other in this
  process (what a plan that checks users one by one cannot beat);
- B: ``couchsync plan`` of the manifest (a process of its own, start-up included),
  which must find no change; ``--parallel N`` is passed on (1: users checked one by
  one).

It prints the medians and B / A: below 1.0 means the plan's parallel checks
(``check_passwords``) beat hashing in a row, start-up and reading included.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from couchdb_server import running_server

COUCHSYNC = str(Path(sys.executable).parent / "couchsync")


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
    else:
        with running_server() as started:
            yield started


def _run(url: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COUCHSYNC, *args], capture_output=True, text=True,
                          env={**os.environ, "COUCHDB_URL": url, "NO_COLOR": "1", **env},
                          check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=None)
    options = parser.parse_args()
    run_id = uuid.uuid4().hex[:6]
    names = [f"bench-{run_id}-{i:03d}" for i in range(options.users)]
    env = {f"PW_{i}": f"pw-{run_id}-{i}" for i in range(options.users)}
    with _server(options.url) as url, tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "users.yaml"
        manifest.write_text(json.dumps({"version": 1, "users": {
            name: {"password": f"${{PW_{i}}}", "roles": ["bench"]}
            for i, name in enumerate(names)}}))
        try:
            applied = _run(url, "apply", str(manifest), "--yes", env=env)
            if applied.returncode != 0:
                sys.exit(f"apply failed: {applied.stderr}")
            stored = [httpx.get(f"{url}/_users/org.couchdb.user:{name}", timeout=30).json()
                      for name in names]
            print(f"{options.users} users; stored hash: {stored[0]['password_scheme']} "
                  f"{stored[0].get('pbkdf2_prf', 'sha1')}, {stored[0]['iterations']:,} "
                  f"iterations; {os.cpu_count()} CPUs")
            baseline, plans = [], []
            for _ in range(options.pairs):
                started = time.perf_counter()
                for i, doc in enumerate(stored):
                    hashlib.pbkdf2_hmac(doc.get("pbkdf2_prf", "sha1"), env[f"PW_{i}"].encode(),
                                        doc["salt"].encode(), int(doc["iterations"]),
                                        len(doc["derived_key"]) // 2)
                baseline.append(time.perf_counter() - started)
                started = time.perf_counter()
                parallel = [] if options.parallel is None else ["--parallel",
                                                                str(options.parallel)]
                planned = _run(url, "plan", str(manifest), "--detailed-exitcode", *parallel,
                               env=env)
                plans.append(time.perf_counter() - started)
                if planned.returncode != 0:
                    sys.exit(f"the plan is not empty (exit {planned.returncode}): "
                             f"{planned.stdout}{planned.stderr}")
            a, b = statistics.median(baseline), statistics.median(plans)
            print(f"A  hashing in a row:   {a:.3f} s (median of {options.pairs})")
            print(f"B  couchsync plan {' '.join(parallel)}: {b:.3f} s "
                  f"(median of {options.pairs})")
            print(f"B / A = {b / a:.2f}")
        finally:
            for name in names:
                doc = httpx.get(f"{url}/_users/org.couchdb.user:{name}", timeout=30)
                if doc.status_code == 200:
                    httpx.delete(f"{url}/_users/org.couchdb.user:{name}",
                                 params={"rev": doc.json()["_rev"]}, timeout=30)


if __name__ == "__main__":
    main()
