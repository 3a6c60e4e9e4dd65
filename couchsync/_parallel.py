"""Per-database work, a bounded number at a time: what ``--parallel N`` sets.

Threads, not asyncio: the work is the client core's blocking calls over a pool made
for threads, and each worker mostly waits on the server, seldom on the GIL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["DEFAULT_PARALLEL", "DatabaseProgress", "ordered_map"]

#: Databases worked on at once by default (bench/RESULTS.md, fleets).
DEFAULT_PARALLEL = 8

#: ``on_database(done, total, failed)``: called as databases are planned or applied.
DatabaseProgress = Callable[[int, int, int], None]

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def ordered_map(fn: Callable[[_Item], _Result], items: Sequence[_Item], parallel: int,
                *, on_interrupt: Callable[[], None] | None = None) -> Iterator[_Result]:
    """``fn(item)`` for each item, ``parallel`` at a time, results in ``items``' order.

    At most ``2 × parallel`` items run ahead of the one yielded, so memory stays flat.
    The first exception (in item order) is raised once running items finish; the rest
    never start. ``on_interrupt`` is called on ``KeyboardInterrupt``, before waiting for
    the running items: it should make them stop soon.
    """
    if parallel <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor  # not on `couchsync validate`'s path

    with ThreadPoolExecutor(min(parallel, len(items)),
                            thread_name_prefix="couchsync-database") as pool:
        window: deque[Future[_Result]] = deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 2 * parallel:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            raise
        finally:
            for future in window:
                future.cancel()
