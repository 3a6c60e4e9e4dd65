"""One Client from many threads at once: the default engine's connection pool
(httpx's), against the real test server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from couchsync.client import Client, ClientClosedError, Database, HttpxConnection

THREADS = 16
REQUESTS = 30  # per thread: a third each PUT, GET and POST


def _mixed_work(db: Database, thread: int) -> int:
    """PUT a document, GET it back, POST a ``_bulk_get`` of every document this thread
    wrote so far, ten times over; each answer checked. Returns the requests made."""
    ids: list[str] = []
    for n in range(REQUESTS):
        kind = n % 3
        if kind == 0:  # PUT
            doc_id = f"t{thread:02d}-{n:02d}"
            assert db.add({"_id": doc_id, "thread": thread, "n": n})[0] == doc_id
            ids.append(doc_id)
        elif kind == 1:  # GET
            doc = db.get(ids[-1])
            assert (doc["_id"], doc["thread"], doc["n"]) == (ids[-1], thread, n - 1)
        else:  # POST
            docs = db.get_many([{"id": doc_id} for doc_id in ids])
            assert [(d or {}).get("_id") for d in docs] == ids
            assert all(d is not None and d["thread"] == thread for d in docs)
    return REQUESTS


def _run_threads(db: Database) -> None:
    start = threading.Barrier(THREADS)

    def work(thread: int) -> int:
        start.wait(10)  # all threads begin together
        return _mixed_work(db, thread)

    with ThreadPoolExecutor(THREADS) as pool:
        done = list(pool.map(work, range(THREADS)))  # re-raises any thread's failure
    assert done == [REQUESTS] * THREADS
    ids = [f"t{t:02d}-{n:02d}" for t in range(THREADS) for n in range(0, REQUESTS, 3)]
    docs = db.get_many([{"id": doc_id} for doc_id in ids])
    assert [(doc or {}).get("_id") for doc in docs] == ids


class SocketCounter:
    """Wraps ``socket.create_connection`` (what httpcore's sync backend connects with)
    to keep every socket made, and the most of them open at one time (counted as each
    is made: only then can the count grow)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.most_open = 0
        self._lock = threading.Lock()
        self._create = socket.create_connection

    def create_connection(self, *args: Any, **kwargs: Any) -> socket.socket:
        sock = self._create(*args, **kwargs)
        with self._lock:
            self.sockets.append(sock)
            self.most_open = max(self.most_open, self._open())
        return sock

    def _open(self) -> int:
        return sum(1 for sock in self.sockets if sock.fileno() != -1)

    def open_now(self) -> int:
        with self._lock:
            return self._open()


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> SocketCounter:
    counter = SocketCounter()
    monkeypatch.setattr(socket, "create_connection", counter.create_connection)
    return counter


@pytest.fixture
def pooled_db(couch_url: str, db_name: str) -> Iterator[Callable[..., Database]]:
    """Make a Client with the given engine options and create the test database on it."""
    clients: list[Client] = []

    def make(**options: Any) -> Database:
        clients.append(Client(couch_url, **options))
        clients[-1].create(db_name)
        return clients[-1].database(db_name)

    yield make
    for client in clients:
        client.close()


def test_many_threads_share_one_client(pooled_db: Callable[..., Database]) -> None:
    _run_threads(pooled_db())


def test_a_small_pool_makes_threads_wait_for_a_connection_not_fail(
    pooled_db: Callable[..., Database], sockets: SocketCounter,
) -> None:
    db = pooled_db(max_connections=4)
    _run_threads(db)
    # And many short requests at once: each thread often finds the connection it is
    # given just taken, or just handed back, by another (httpcore 1.0.9's pool could
    # close such a connection under the request using it: encode/httpcore#1110).
    with ThreadPoolExecutor(THREADS) as pool:
        infos = list(pool.map(lambda _: [db.info()["db_name"] for _ in range(100)],
                              range(THREADS)))
    assert infos == [[db.name] * 100] * THREADS
    assert 1 <= sockets.most_open <= 4


def test_close_closes_every_pooled_connection(
    couch_url: str, sockets: SocketCounter,
) -> None:
    conn = HttpxConnection(couch_url, max_connections=4)
    barrier = threading.Barrier(4)

    def work(_: int) -> int:
        barrier.wait(10)
        return conn.request("GET", "/").status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(4))) == [200] * 4
    assert 1 <= sockets.open_now() <= 4
    conn.close()
    assert sockets.open_now() == 0
    with pytest.raises(ClientClosedError):
        conn.request("GET", "/")


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        HttpxConnection("http://127.0.0.1:5984", max_connections=0)


def test_the_pool_never_sees_a_connection_idle_with_an_answer_waiting() -> None:
    """encode/httpcore#1110: the pool's keep-alive check reads "idle", then "its socket
    is readable"; a request started and answered between the two made the pool close
    the socket under it. Here a request starts on the connection while the check polls:
    it must wait until the check is done, so the check sees an idle, quiet connection."""
    import httpcore

    import couchsync.client  # noqa: F401 - the client core mends has_expired on import

    sent = threading.Event()

    class Stream(httpcore.MockStream):
        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            sent.set()

        def get_extra_info(self, info: str) -> Any:
            if info != "is_readable":
                return super().get_extra_info(info)
            threading.Thread(target=start_request, daemon=True).start()
            return sent.wait(0.2)  # an answer is waiting once the request was sent

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    connection = httpcore.HTTP11Connection(
        origin=httpcore.Origin(b"http", b"couch.test", 5984), stream=Stream([answer, answer]))

    def start_request() -> None:
        connection.request("GET", "http://couch.test:5984/")

    start_request()  # the connection is now idle, kept alive
    sent.clear()
    assert not connection.has_expired()
    assert sent.wait(5)  # the request went out once the check was done
