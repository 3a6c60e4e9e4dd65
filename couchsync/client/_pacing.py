"""Pacing (docs/client.md, "Pacing"): how many requests the default engine sends a second,
and how many at a time, so that a run over thousands of databases stays gentle on the server.

Two independent parts, both optional, shared by every thread of one engine:

- a rate ceiling, ``max_rate`` requests per second: admissions at least ``1/max_rate``
  apart (a token bucket of one token), so no 1-second window holds more than ``max_rate``;
- an adaptive limit of requests in flight (AIMD, as TCP's congestion window): it starts at
  ``max_concurrency``, halves when the server answers 429 or 503, times out, or answers
  well above its recent latency three times, and climbs by one after each run of as many
  good answers as the limit (one "round" of requests), never below 1 nor above
  ``max_concurrency``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from ._errors import _phrase
from ._retry import RETRY_STATUSES, log

__all__ = ["Pacing"]

_NS = 1_000_000_000
#: Weight of a new answer in its kind's latency baseline (about the last 20 answers); one
#: above it weighs a fifth: the baseline falls fast and rises slowly, so a server slowing
#: by degrees (more load, more latency) is not followed up unnoticed, and a slowness
#: becomes the usual only after about 30 answers of it (not 6).
_ALPHA = 0.05
#: Answers of one kind before any of that kind is judged slow (the baseline is unknown).
_WARM_UP = 5
#: Slow answers within a round (as many answers as the limit) that halve it: one is noise
#: (a pause of the client's own machine, a large answer), a few together are the server.
_SLOW_ANSWERS = 3

_Answer = TypeVar("_Answer", bound=httpx.Response)


class Pacing:
    """The pacing of one engine. ``max_rate``: requests a second at most (None: no
    ceiling); ``max_concurrency``: the adaptive limit's ceiling and start (None: not
    adaptive). An answer is slow when it took more than ``slow_factor`` times its kind's
    baseline (the moving mean of the latencies of that method and path shape, e.g.
    ``PUT /*/_security``), the baseline taken as at least ``slow_floor`` seconds (on
    loopback a few milliseconds more are noise, not trouble). ``clock`` (monotonic
    nanoseconds) and ``sleep`` (seconds) are there for tests.

    Observable, for logs and tests: ``limit`` (None when not adaptive), ``lowest`` (the
    lowest limit so far), ``backoffs`` and ``climbs`` (changes so far), ``in_flight``.
    Every change is a record on the ``couchsync.client`` logger (a back-off and the
    return to the ceiling at INFO, each step up at DEBUG) whose ``limit`` attribute is
    the new limit.
    """

    def __init__(self, *, max_rate: float | None = None, max_concurrency: int | None = None,
                 slow_factor: float = 4.0, slow_floor: float = 0.05,
                 clock: Callable[[], int] = time.monotonic_ns,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if max_rate is not None and not 0 < max_rate < math.inf:
            raise ValueError(f"max_rate must be a positive number, not {max_rate}")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.max_rate = max_rate
        self.max_concurrency = max_concurrency
        # Whole nanoseconds, rounded up: max_rate intervals always span a full second.
        self._interval = 0 if max_rate is None else math.ceil(_NS / max_rate)
        self._slow_factor = slow_factor
        self._slow_floor = slow_floor
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # a request may start: in_flight < limit
        self._next = 0  # no admission before (clock ns): the rate ceiling
        self._hold = 0  # nor before this: a Retry-After, for every thread
        self._epoch = 0  # one more at each back-off: requests sent before cannot halve again
        self._good = 0  # good answers since the limit last changed
        self._slow_answers = 0  # slow ones since the last round of good ones
        self._baselines: dict[str, tuple[float, int]] = {}  # kind: (mean seconds, answers)
        self.limit = max_concurrency
        self.lowest = max_concurrency
        self.backoffs = 0
        self.climbs = 0
        self.in_flight = 0

    def send(self, exchange: Callable[[], _Answer], method: str, path: str) -> _Answer:
        """``exchange()`` (one request, its answer read) once the limit and the rate allow;
        its answer, or its latency, then moves the limit."""
        epoch = self._enter()
        try:
            self._wait_turn()
            started = self._clock()
            response = exchange()
        except httpx.TimeoutException:
            self._leave(epoch, "a timeout", method, path)
            raise
        except BaseException:
            self._leave(epoch, None, method, path)
            raise
        status = response.status_code
        trouble = f"{status} {_phrase(status)}" if status in RETRY_STATUSES else None
        self._leave(epoch, trouble, method, path, (self._clock() - started) / _NS)
        return response

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds``, from any thread: the server's ``Retry-After``,
        which the request that got it waits out anyway (``_transport``)."""
        with self._lock:
            self._hold = max(self._hold, self._clock() + math.ceil(seconds * _NS))

    def _enter(self) -> int:
        """A place among the requests in flight (waited for); the epoch it was given in."""
        with self._room:
            while self.limit is not None and self.in_flight >= self.limit:
                self._room.wait()
            self.in_flight += 1
            return self._epoch

    def _wait_turn(self) -> None:
        """Wait for the rate and any hold: checked against the clock, slept outside the
        lock (after the place in flight: the request leaves as soon as it is admitted)."""
        while True:
            with self._lock:
                now = self._clock()
                start = max(self._next, self._hold)
                if now >= start:
                    # From the admission itself, not its slot: a late thread starts no burst.
                    self._next = now + self._interval
                    return
            self._sleep((start - now) / _NS)

    def _leave(self, epoch: int, trouble: str | None, method: str, path: str,
               latency: float | None = None) -> None:
        with self._room:
            self.in_flight -= 1
            freed = 1
            if self.limit is not None:
                slow = trouble is None and latency is not None and self._slow(
                    _kind(method, path), latency)
                if slow and epoch == self._epoch:
                    self._slow_answers += 1
                    if self._slow_answers == _SLOW_ANSWERS:
                        trouble = f"{_SLOW_ANSWERS} slow answers, the last in {latency:.2f} s"
                if trouble is not None:
                    self._back_off(epoch, trouble, method, path)
                elif latency is not None and not slow and epoch == self._epoch:
                    freed += self._climb()  # (answers to requests sent before a back-off: not)
            self._room.notify(freed)

    def _slow(self, kind: str, latency: float) -> bool:
        mean, answers = self._baselines.get(kind, (latency, 0))
        slow = answers >= _WARM_UP and latency > self._slow_factor * max(mean, self._slow_floor)
        self._baselines[kind] = (mean + (latency - mean) * _ALPHA / (5 if latency > mean else 1),
                                 answers + 1)
        return slow

    def _back_off(self, epoch: int, trouble: str, method: str, path: str) -> None:
        assert self.limit is not None
        self._good = self._slow_answers = 0
        # Halved from what was in flight: a ceiling above what the run uses halves in vain.
        limit = max(1, min(self.limit, self.in_flight + 1) // 2)
        if epoch != self._epoch or limit == self.limit:
            return  # sent before the last back-off (it answered that trouble), or at 1
        self._epoch += 1
        was, self.limit = self.limit, limit
        self.lowest = min(self.lowest or limit, limit)
        self.backoffs += 1
        path = path.split("?", 1)[0]
        log.info("slowing down after %s on %s %s: %s at a time (was %d)",
                 trouble, method, path, _requests(limit), was,
                 extra={"limit": limit, "was": was, "problem": trouble, "method": method,
                        "path": path})

    def _climb(self) -> int:
        """One more good answer; 1 when it raised the limit (a waiting thread may go). A
        round of them also clears the slow answers: only a few close together halve."""
        assert self.limit is not None and self.max_concurrency is not None
        self._good += 1
        if self._good < self.limit:
            return 0
        self._good = self._slow_answers = 0
        if self.limit >= self.max_concurrency:
            return 0
        was = self.limit
        self.limit += 1
        self.climbs += 1
        back = self.limit == self.max_concurrency
        log.log(logging.INFO if back else logging.DEBUG, "the server answers well%s: %s at a "
                "time", " again" if back else "", _requests(self.limit),
                extra={"limit": self.limit, "was": was})
        return 1


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def _kind(method: str, path: str) -> str:
    """The method and the path's shape, names starred: ``PUT /*/_security``."""
    segments = path.split("?", 1)[0].split("/")
    return method + " " + "/".join(s if s.startswith("_") or not s else "*" for s in segments)
