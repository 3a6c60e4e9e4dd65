"""Start and stop the bundled Apache CouchDB for the benchmarks.

The dist (``start``, ``stop`` and the release tarball) is looked for in
``$COUCHDB_DIST``, else in ``../shared/couchdb`` next to the repository. Each
run gets a fresh working directory (an empty single-node server), removed
after ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin:couchsync-bench-pw"


def find_dist() -> Path | None:
    """The directory holding CouchDB's ``start`` and ``stop`` scripts, if there is one."""
    env = os.environ.get("COUCHDB_DIST")
    candidates = [Path(env)] if env else [ROOT.parent / "shared" / "couchdb"]
    for path in candidates:
        if (path / "start").is_file() and (path / "stop").is_file():
            return path.resolve()
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(port: int | None = None, dist: Path | None = None, *,
                   nodes: int = 1) -> Iterator[str]:
    """Yield the URL (with admin credentials) of a fresh CouchDB of ``nodes`` nodes
    (ports ``port`` … ``port + nodes - 1``), stopped and removed afterwards."""
    dist = dist or find_dist()
    if dist is None:
        raise RuntimeError("CouchDB dist not found: set COUCHDB_DIST or use --server pouchdb")
    workdir = tempfile.mkdtemp(prefix="couchsync-bench-couchdb-")
    try:
        url = subprocess.run(
            [str(dist / "start"), "--dir", workdir, "--port", str(port or _free_port()),
             "--nodes", str(nodes), "--admin", ADMIN],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout.strip()
        try:
            yield url.rstrip("/")
        finally:
            subprocess.run([str(dist / "stop"), workdir], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
