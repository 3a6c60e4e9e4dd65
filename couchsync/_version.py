"""couchsync's version, in one place: the package root re-exports it, pyproject reads it
(``[tool.setuptools.dynamic]``), and plans, saved plans and the data-file cache record it;
and ``code_identity``, which names the code itself."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def code_identity(root: Path = Path(__file__).parent) -> str:
    """The version and a digest of the source of couchsync's modules under ``root``: what
    an incremental plan trusts an earlier run's word on (its hints) only from the same
    code. An install from a later commit, or an edited checkout, keeps the version
    number but not this. About 100 files, 700 kB: a few ms, once per process."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{__version__}+{digest.hexdigest()[:16]}"
