"""httpx without ``httpx._main``, its command-line client (click, rich, pygments): about
50 ms of CPU per process that the client never uses (bench/PROFILE.md). A None in
``sys.modules`` fails that one import, as if they were not installed (``httpx.main`` is
then httpx's stub); it is removed afterwards. The package imports this module first."""

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]
