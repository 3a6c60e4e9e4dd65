"""Pacing: the rate ceiling (never more than N requests in any second) and the adaptive
limit of requests in flight (halved on 429, 503, a timeout or a slow answer; one more
after each round of good answers), on a fake clock: nothing here waits for real.

Nested ``send`` calls put several requests in flight from one thread (each answers once
those it holds answered). The engine tests answer 503 with ``Retry-After`` through
httpx.MockTransport, which no test server can be made to answer on demand; the last
tests wire pacing from ``Client`` and ``open_client`` to the real server under test.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couchsync._connect import ConnectionSettingsError, open_client
from couchsync.client import Client, HttpxConnection, _transport
from couchsync.client._pacing import Pacing

NS = 1_000_000_000


class FakeClock:
    """Monotonic nanoseconds that move only when slept on or advanced."""

    def __init__(self) -> None:
        self.now = 5 * NS
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += round(seconds * NS)


def paced(clock: FakeClock, **options: float | int | None) -> Pacing:
    return Pacing(clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def answer(status: int = 200) -> httpx.Response:
    return httpx.Response(status)


def nested(pacing: Pacing, statuses: list[int], clock: FakeClock | None = None,
           took: float = 0.0, path: str = "/db/doc") -> None:
    """``len(statuses)`` requests in flight at once: the first holds the second, and so
    on; the last answers first. Each answer takes ``took`` seconds on ``clock``."""
    if not statuses:
        return

    def exchange() -> httpx.Response:
        nested(pacing, statuses[1:], clock, took, path)
        if clock is not None:
            clock.now += round(took * NS)
        return answer(statuses[0])

    pacing.send(exchange, "GET", path)


def one(pacing: Pacing, status: int = 200, clock: FakeClock | None = None,
        took: float = 0.0, path: str = "/db/doc") -> None:
    nested(pacing, [status], clock, took, path)


# The rate ceiling


@settings(max_examples=300, deadline=None)
@given(rate=st.integers(1, 300),
       arrivals=st.lists(st.tuples(st.integers(1, 400), st.integers(0, 2 * NS),
                                   st.none() | st.floats(0, 3)), max_size=6))
def test_no_second_holds_more_than_max_rate_requests(
    rate: int, arrivals: list[tuple[int, int, float | None]],
) -> None:
    """Whatever the arrivals (bursts of any size, pauses, Retry-After holds): any
    half-open window of one second holds at most ``rate`` admissions, i.e. the
    (i+rate)-th comes a full second or more after the i-th."""
    clock = FakeClock()
    pacing = paced(clock, max_rate=rate)
    sent: list[int] = []
    for burst, gap, hold in arrivals:
        clock.now += gap
        if hold is not None:
            pacing.hold(hold)
        for _ in range(burst):
            pacing.send(lambda: (sent.append(clock.now), answer())[1], "GET", "/db")
    assert all(later - earlier >= NS for earlier, later in zip(sent, sent[rate:], strict=False))


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.2, 2000), gaps=st.lists(st.integers(0, NS), max_size=200))
def test_a_fractional_rate_spaces_requests_by_its_interval(rate: float,
                                                          gaps: list[int]) -> None:
    """Any k requests after a first span at least k / rate seconds."""
    clock = FakeClock()
    pacing = paced(clock, max_rate=rate)
    sent: list[int] = []
    for gap in gaps:
        clock.now += gap
        pacing.send(lambda: (sent.append(clock.now), answer())[1], "GET", "/db")
    assert all(later - earlier >= NS / rate for earlier, later in itertools.pairwise(sent))


def test_requests_below_the_rate_wait_for_nothing() -> None:
    clock = FakeClock()
    pacing = paced(clock, max_rate=10)
    for _ in range(5):
        one(pacing)
        clock.now += NS // 5
    assert clock.slept == []


def test_a_burst_is_spread_at_the_rate() -> None:
    clock = FakeClock()
    pacing = paced(clock, max_rate=4)
    start = clock.now
    sent: list[int] = []
    for _ in range(9):
        pacing.send(lambda: (sent.append(clock.now - start), answer())[1], "GET", "/db")
    assert sent == [i * NS // 4 for i in range(9)]


def test_a_hold_stops_every_request_until_it_ends() -> None:
    """A Retry-After seen by one request holds the others (no rate set)."""
    clock = FakeClock()
    pacing = paced(clock, max_concurrency=4)
    start = clock.now
    pacing.hold(2.5)
    sent: list[int] = []
    pacing.send(lambda: (sent.append(clock.now - start), answer())[1], "GET", "/db")
    assert sent == [5 * NS // 2]
    pacing.hold(0.5)
    pacing.hold(0.1)  # a shorter hold does not cut the longer one short
    pacing.send(lambda: (sent.append(clock.now - start), answer())[1], "GET", "/db")
    assert sent[1] == 3 * NS


def test_bad_settings_are_refused() -> None:
    for rate in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_rate"):
            Pacing(max_rate=rate)
    with pytest.raises(ValueError, match="max_concurrency"):
        Pacing(max_concurrency=0)


# The adaptive limit


@pytest.mark.parametrize("status", [429, 503])
def test_trouble_halves_the_limit_once_per_round_down_to_one(status: int) -> None:
    pacing = paced(FakeClock(), max_concurrency=8)
    nested(pacing, [200, 200, 200, 200, 200, status, status, status])
    assert (pacing.limit, pacing.backoffs) == (4, 1)  # three answers, one round: one halving
    nested(pacing, [200, 200, status, status])
    assert pacing.limit == 2
    nested(pacing, [200, status])
    assert pacing.limit == 1
    nested(pacing, [status])
    assert (pacing.limit, pacing.lowest, pacing.backoffs) == (1, 1, 3)  # never below 1


def test_the_limit_halves_from_what_is_in_flight() -> None:
    """A limit of 16 with 6 requests in flight goes to 3, not to 8 (which would change
    nothing)."""
    pacing = paced(FakeClock(), max_concurrency=16)
    nested(pacing, [200] * 5 + [503])
    assert pacing.limit == 3


def test_other_answers_are_no_trouble() -> None:
    pacing = paced(FakeClock(), max_concurrency=8)
    for status in (200, 201, 404, 409, 500, 502):
        nested(pacing, [status] * 8)
    assert (pacing.limit, pacing.backoffs) == (8, 0)


def test_a_timeout_halves_the_limit_and_is_raised() -> None:
    pacing = paced(FakeClock(), max_concurrency=8)

    def in_flight(depth: int) -> httpx.Response:
        """Four requests in flight, the last one timing out."""
        if depth == 4:
            raise httpx.ReadTimeout("timed out")
        pacing.send(lambda: in_flight(depth + 1), "GET", "/db/doc")
        return answer()

    with pytest.raises(httpx.ReadTimeout):
        in_flight(0)
    assert (pacing.limit, pacing.backoffs, pacing.in_flight) == (2, 1, 0)


def test_a_refused_connection_moves_nothing() -> None:
    pacing = paced(FakeClock(), max_concurrency=8)

    def refused() -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(httpx.ConnectError):
        pacing.send(refused, "GET", "/db")
    assert (pacing.limit, pacing.backoffs, pacing.in_flight) == (8, 0, 0)


def test_answers_well_above_their_kinds_baseline_halve_the_limit() -> None:
    clock = FakeClock()
    pacing = paced(clock, max_concurrency=8)
    for _ in range(10):
        one(pacing, clock=clock, took=0.08, path="/db1/doc")  # GET /*/*: 80 ms
        one(pacing, clock=clock, took=0.003, path="/db1/_security")
    one(pacing, clock=clock, took=0.3, path="/db2/x")  # under 4 × 80 ms: not slow
    one(pacing, clock=clock, took=0.15, path="/db2/_security")  # 4 × the 50 ms floor: not
    one(pacing, clock=clock, took=5.0, path="/db/_design/app")  # a kind not yet known
    for _ in range(2):  # slow, but one alone is noise: each followed by a round of good
        one(pacing, clock=clock, took=0.7, path="/db3/doc")
        for _ in range(8):
            one(pacing, clock=clock, took=0.003, path="/db1/_security")
    assert pacing.backoffs == 0
    nested(pacing, [200] * 6, clock=clock, took=0.7, path="/db3/doc")
    assert (pacing.limit, pacing.backoffs) == (2, 1)  # the third: 4 in flight then, 4 // 2


def test_a_server_slowing_by_degrees_is_noticed() -> None:
    """Each answer 10% slower than the one before: never 4 times the one before, but the
    baseline rises slowly, so the limit halves before the answers take 8 times as long
    as they did."""
    clock = FakeClock()
    pacing = paced(clock, max_concurrency=8)
    for _ in range(10):
        one(pacing, clock=clock, took=0.05)
    took = 0.05
    while pacing.backoffs == 0 and took < 0.05 * 8:
        took *= 1.1
        one(pacing, clock=clock, took=took)
    assert pacing.backoffs == 1


def test_a_slowness_that_lasts_becomes_the_baseline() -> None:
    """A server that stays slower is judged against its new latency: after a while (slow
    answers weigh less in the baseline) its answers are good again, and the limit climbs."""
    clock = FakeClock()
    pacing = paced(clock, max_concurrency=4)
    for _ in range(10):
        one(pacing, clock=clock, took=0.01)
    for _ in range(20):
        one(pacing, clock=clock, took=1.0)
    assert pacing.limit == 1
    for _ in range(20):
        one(pacing, clock=clock, took=1.0)
    assert pacing.lowest == 1 and pacing.limit == 4


def test_the_limit_climbs_by_one_after_each_round_of_good_answers() -> None:
    pacing = paced(FakeClock(), max_concurrency=4)
    nested(pacing, [200, 503])
    assert pacing.limit == 1
    limits = []
    for _ in range(8):
        one(pacing)
        limits.append(pacing.limit)
    assert limits == [2, 2, 3, 3, 3, 4, 4, 4]  # 1 answer at 1, 2 at 2, 3 at 3; never above 4
    assert pacing.climbs == 3


def test_answers_to_requests_sent_before_a_back_off_do_not_climb() -> None:
    pacing = paced(FakeClock(), max_concurrency=8)
    nested(pacing, [200] * 7 + [503])  # 7 good answers after the back-off, all sent before
    assert (pacing.limit, pacing.climbs) == (4, 0)


def test_no_more_requests_than_the_limit_are_in_flight() -> None:
    """With a limit of 1, a second thread's request starts only once the first answered."""
    pacing = Pacing(max_concurrency=1)
    started, release, second_ran = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> httpx.Response:
        started.set()
        release.wait(30)
        order.append("first answered")
        return answer()

    def second() -> httpx.Response:
        order.append("second sent")
        second_ran.set()
        return answer()

    threads = [threading.Thread(target=pacing.send, args=(first, "GET", "/a"))]
    threads[0].start()
    started.wait(30)
    threads.append(threading.Thread(target=pacing.send, args=(second, "GET", "/b")))
    threads[1].start()
    assert not second_ran.wait(0.2)  # held at the limit (it would run at once if not)
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["first answered", "second sent"]


def test_changes_are_logged_with_the_new_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="couchsync.client")
    pacing = paced(FakeClock(), max_concurrency=2)
    nested(pacing, [200, 503], path="/db/doc?rev=1-a")
    for _ in range(2):
        one(pacing)
    assert [(r.levelname, r.getMessage(), getattr(r, "limit", None))
            for r in caplog.records] == [
        ("INFO", "slowing down after 503 Service Unavailable on GET /db/doc: "
                 "1 request at a time (was 2)", 1),
        ("INFO", "the server answers well again: 2 requests at a time", 2)]


# The engine: every request passes, and a Retry-After is waited out once


def _engine(handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock,
            monkeypatch: pytest.MonkeyPatch, **options: float | bool) -> HttpxConnection:
    engine = HttpxConnection("http://couch.test:5984", transport=httpx.MockTransport(handler),
                             max_connections=8, **options)  # type: ignore[arg-type]
    assert engine.pacing is not None
    engine.pacing = Pacing(max_rate=engine.pacing.max_rate,
                           max_concurrency=engine.pacing.max_concurrency, clock=clock,
                           sleep=clock.sleep)
    monkeypatch.setattr(_transport.time, "sleep", clock.sleep)  # the retry loop's pauses
    return engine


def test_a_retry_after_holds_every_request_and_is_slept_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 503 with Retry-After: 2 halves the limit and holds every thread for 2 s; the
    request that got it sleeps those 2 s in the retry loop, and nothing more."""
    clock = FakeClock()
    seen: list[tuple[str, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, clock.now))
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"})
        return httpx.Response(200, json={})

    engine = _engine(handler, clock, monkeypatch, adaptive=True)
    pauses: list[float] = []

    def retry_pause(seconds: float) -> None:
        """The retry loop's pause, while another thread sends a request."""
        pauses.append(seconds)
        start = clock.now
        engine.request("GET", "/db/other")
        clock.now = max(clock.now, start + round(seconds * NS))

    monkeypatch.setattr(_transport.time, "sleep", retry_pause)
    assert engine.request("GET", "/db/doc").status_code == 200
    assert pauses == [2.0]
    assert engine.pacing is not None and engine.pacing.backoffs == 1
    start = seen[0][1]
    assert [(path, when - start) for path, when in seen] == [
        ("/db/doc", 0), ("/db/other", 2 * NS), ("/db/doc", 2 * NS)]


def test_every_attempt_is_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries count against the rate: three attempts at 2 a second are 0.5 s apart
    at least (the retry pauses of 0 s do not let them through sooner)."""
    clock = FakeClock()
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(503 if len(sent) < 3 else 200, headers={"Retry-After": "0"})

    engine = _engine(handler, clock, monkeypatch, max_rate=2)
    engine.request("GET", "/db/doc")
    assert [b - a for a, b in itertools.pairwise(sent)] == [NS // 2, NS // 2]


def test_no_pacing_unless_asked() -> None:
    assert HttpxConnection("http://couch.test").pacing is None
    engine = HttpxConnection("http://couch.test", max_connections=12, adaptive=True)
    assert engine.pacing is not None
    assert (engine.pacing.limit, engine.pacing.max_rate) == (12, None)


# Wiring, on the real server under test


def test_a_client_paces_its_requests_to_the_real_server(couch_url: str) -> None:
    with Client(couch_url, max_rate=1000, adaptive=True, max_connections=4) as client:
        assert client.server.info()
        pacing = client._conn.pacing  # type: ignore[attr-defined]
        assert (pacing.max_rate, pacing.limit, pacing.in_flight) == (1000, 4, 0)


def test_open_client_takes_the_rate_from_the_option_or_the_environment(couch_url: str) -> None:
    def pacing_of(**options: object) -> Pacing | None:
        with open_client(couch_url, **options) as client:  # type: ignore[arg-type]
            found: Pacing | None = client._conn.pacing  # type: ignore[attr-defined]
            return found

    by_env = pacing_of(environ={"COUCHDB_MAX_RATE": "50"})
    assert by_env is not None and (by_env.max_rate, by_env.limit) == (50, 16)
    given_too = pacing_of(max_rate=20, environ={"COUCHDB_MAX_RATE": "50"})
    assert given_too is not None and given_too.max_rate == 20
    fixed = pacing_of(adaptive=False, environ={})
    assert fixed is None
    for bad in ("0", "fast", "-3", "inf"):
        with pytest.raises(ConnectionSettingsError, match="COUCHDB_MAX_RATE"):
            pacing_of(environ={"COUCHDB_MAX_RATE": bad})
