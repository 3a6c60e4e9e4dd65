"""Start and stop a throwaway PouchDB Server for tests, benchmarks and the demo.

PouchDB Server keeps ``config.json`` in its working directory, so every run
gets a fresh temporary directory; it runs in memory on a free loopback port
with an admin account so that authentication is always exercised.

As a command it runs another command against a fresh server::

    python testserver/pouchdb.py -- couchsync plan manifests/

with ``COUCHDB_URL`` (credentials included) exported for that command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINARY = HERE / "node_modules" / ".bin" / "pouchdb-server"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "couchsync-test-pw"


def ensure_installed() -> None:
    """Install the pinned PouchDB Server from the lockfile if it is missing."""
    if BINARY.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is required to install the test server (PouchDB Server)")
    cmd = [npm, "ci" if (HERE / "package-lock.json").exists() else "install"]
    subprocess.run([*cmd, "--no-audit", "--no-fund"], cwd=HERE, check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(method: str, url: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Yield the URL (with admin credentials) of a fresh in-memory server."""
    ensure_installed()
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="couchsync-pouchdb-")
    log = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BINARY), "--in-memory", "--port", str(port), "--host", "127.0.0.1", "-n"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"PouchDB Server exited early; see {workdir}/server.log")
            try:
                if _request("GET", base + "/") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("PouchDB Server did not start within 60 s")
            time.sleep(0.1)
        status = _request(
            "PUT", f"{base}/_config/admins/{ADMIN_USER}", f'"{ADMIN_PASSWORD}"'.encode()
        )
        if status != 200:
            raise RuntimeError(f"could not set the admin password (HTTP {status})")
        yield f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def server_from_env(variable: str) -> Iterator[str]:
    """The server named by environment ``variable`` if set, else a fresh local one."""
    url = os.environ.get(variable)
    if url:
        yield url.rstrip("/")
        return
    with running_server() as started:
        yield started


def main(argv: list[str]) -> int:
    # SIGTERM must unwind like Ctrl-C so that the server and the command are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    with running_server() as url:
        env = dict(os.environ, COUCHDB_URL=url)
        return subprocess.run(argv, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
