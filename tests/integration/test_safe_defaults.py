"""Safe defaults (issue 19), through the real ``couchsync`` command: no server is assumed
when none is named, and a database open to anyone is said so before anything is sent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cli_helpers import COUCHSYNC


def test_no_server_url_is_refused_naming_the_setting(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ndatabases:\n  orders: {}\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("COUCHDB_URL", "COUCH_URL")}
    for command in (["plan", str(manifest)], ["apply", str(manifest), "--yes"],
                    ["export", "--db", "orders"]):
        done = subprocess.run([COUCHSYNC, *command], env=env, text=True,
                              capture_output=True, timeout=60)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert done.stderr == ("Error: no server given: pass --url URL or set COUCHDB_URL "
                               "(e.g. http://localhost:5984)\n"), command
        assert done.stdout == ""
