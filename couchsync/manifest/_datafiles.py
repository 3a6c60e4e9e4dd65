"""Reading seed documents back from their JSON Lines files, by position: a file whose size
or modification time changed since the loader read it (``remember``) is an error, never
another document written under the old one's hash.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import BinaryIO

from couchsync.manifest._problems import ManifestError, Problem

_MAX_OPEN = 8
_open: dict[str, BinaryIO] = {}  # path → handle, oldest first
_seen: dict[str, tuple[int, int]] = {}  # path → (size, mtime_ns) when loaded
#: Databases are planned and applied in threads (a fleet shares one template file):
#: opening, evicting and reading one handle are one step.
_lock = threading.Lock()


def _stamp(handle: BinaryIO) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_size, status.st_mtime_ns


def remember(path: str, handle: BinaryIO) -> None:
    """Note the state of ``path`` as the loader reads it through ``handle``."""
    with _lock:
        stale = _open.pop(path, None)
        if stale is not None:
            stale.close()
        _seen[path] = _stamp(handle)


def read_span(path: str, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of ``path``, a data file the loader read."""
    with _lock:
        handle = _open.get(path)
        if handle is None:
            handle = open(path, "rb")  # noqa: SIM115 - kept open, closed on eviction or exit
            if _stamp(handle) != _seen.get(path):
                handle.close()
                raise ManifestError([Problem(path, 0, 0, "changed since the manifests were "
                                                         "loaded; run couchsync again")])
            if len(_open) >= _MAX_OPEN:
                _open.pop(next(iter(_open))).close()
            _open[path] = handle
        handle.seek(offset)
        return handle.read(length)


@atexit.register
def _close_all() -> None:
    with _lock:
        while _open:
            _open.popitem()[1].close()
