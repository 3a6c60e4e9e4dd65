"""httpx without its command-line client; the package imports this module first.

httpx's ``__init__`` imports ``httpx._main`` for its ``httpx`` command, and with it
click, rich and pygments when they are installed (they are, for couchsync's CLI):
about 50 ms of CPU in every process that imports the client, which never runs that
command (bench/PROFILE.md). A ``None`` in ``sys.modules`` fails that one import, as
if they were missing; the entry is removed afterwards, so ``import httpx._main``
still works. Only ``httpx.main`` in this process is httpx's stub for that case (the
``httpx`` command runs in a process of its own).
"""

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]
