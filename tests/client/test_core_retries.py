"""Retries that are safe: 429 and 503 waited out (Retry-After honoured), reset connections
of reads, writes only where a repeat cannot do anything twice; each retry logged.

The tests with httpx.MockTransport script what no test server can be made to answer
on demand (429, 503, a reset connection at a chosen request); their pauses are
recorded, not slept. The last tests put a loopback proxy that answers 503 in front of
the real server under test.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from loopback import Answer, Proxy, upstream_of

from couchsync.client import (
    Client,
    Database,
    HTTPStatusError,
    HttpxConnection,
    TransportError,
    _retry,
    _transport,
)
from couchsync.client._retry import repeatable, retry_after

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between attempts, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(_transport.time, "sleep", slept.append)
    return slept


def _scripted(*answers: int | type[Exception], headers: dict[str, str] | None = None,
              ) -> tuple[list[str], Handler]:
    """A handler answering each request with the next status (or raising the next
    exception); 200 ``{}`` once the script is done. Also the requests it saw."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        step = answers[len(seen) - 1] if len(seen) <= len(answers) else 200
        if isinstance(step, type):
            raise step("scripted failure", request=request)
        if step == 200:
            if request.url.path.endswith("/_bulk_docs"):
                return httpx.Response(201, json=[{"ok": True, "id": "a", "rev": "1-z"}])
            return httpx.Response(200, json={"ok": True, "id": "doc", "rev": "2-z"})
        return httpx.Response(step, headers=headers or {}, json={
            "error": "unavailable", "reason": "try later"})

    return seen, handler


def _engine(handler: Handler, **options: Any) -> HttpxConnection:
    return HttpxConnection("http://admin:pw@couch.test:5984",
                           transport=httpx.MockTransport(handler), **options)


@pytest.mark.parametrize("status", [429, 503])
def test_a_status_that_says_not_now_is_retried_after_its_retry_after(
    status: int, pauses: list[float],
) -> None:
    seen, handler = _scripted(status, status, headers={"Retry-After": "2"})
    assert _engine(handler).request("GET", "/db/doc").status_code == 200
    assert seen == ["GET /db/doc"] * 3
    assert pauses == [2.0, 2.0]


def test_retry_after_as_an_http_date(pauses: list[float],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000.25  # a fake clock: the date has whole seconds
    monkeypatch.setattr(_retry.time, "time", lambda: now)
    when = email.utils.formatdate(now + 3, usegmt=True)
    _seen, handler = _scripted(503, headers={"Retry-After": when})
    assert _engine(handler).request("GET", "/db/doc").status_code == 200
    assert pauses == [2.75]


def test_retry_after_values() -> None:
    now = 1_700_000_000.0
    assert retry_after("120") == 120.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0  # past
    for unreadable in (None, "", "soon", "-5", "1.5", "²"):
        assert retry_after(unreadable) is None


def test_without_retry_after_the_pauses_double_from_a_second(pauses: list[float]) -> None:
    _seen, handler = _scripted(503, 503, 503)
    assert _engine(handler).request("GET", "/db/doc").status_code == 200
    assert pauses == [1.0, 2.0, 4.0]


def test_retries_are_bounded_in_count_then_the_answer_stands(pauses: list[float]) -> None:
    seen, handler = _scripted(*[503] * 10)
    client = Client("http://couch.test", transport=httpx.MockTransport(handler), retries=2)
    with pytest.raises(HTTPStatusError) as caught:
        client.database("db").get("doc")
    assert caught.value.status == 503 and caught.value.reason == "try later"
    assert len(seen) == 3 and pauses == [1.0, 2.0]


def test_retries_are_bounded_in_time(pauses: list[float]) -> None:
    """A Retry-After longer than what is left of the budget is not waited for."""
    seen, handler = _scripted(*[503] * 10, headers={"Retry-After": "20"})
    response = _engine(handler, retries=5).request("GET", "/db/doc")  # budget: 30 s
    assert response.status_code == 503
    assert pauses == [20.0] and len(seen) == 2
    seen, handler = _scripted(503, headers={"Retry-After": "5"})
    assert _engine(handler, retry_budget=4).request("GET", "/x").status_code == 503
    assert len(seen) == 1


def test_a_reset_connection_of_a_read_is_retried(pauses: list[float]) -> None:
    seen, handler = _scripted(httpx.ReadError, httpx.RemoteProtocolError)
    assert _engine(handler).request("GET", "/db/doc").status_code == 200
    assert len(seen) == 3 and pauses == [0.1, 0.2]


def test_a_timeout_is_not_retried(pauses: list[float]) -> None:
    seen, handler = _scripted(httpx.ReadTimeout)
    with pytest.raises(TransportError, match="timed out"):
        _engine(handler).request("GET", "/db/doc")
    assert len(seen) == 1


@pytest.mark.parametrize(("method", "path", "kwargs", "expected"), [
    ("GET", "/db/doc", {}, True),
    ("HEAD", "/db", {}, True),
    ("PUT", "/db/doc", {"json": {"_rev": "1-a", "x": 1}}, True),
    ("PUT", "/db/_design/d", {"content": b'{"_rev":"2-b"}'}, True),
    ("PUT", "/db/doc", {"params": {"rev": "1-a"}, "content": b"{}"}, True),
    ("DELETE", "/db/doc", {"params": {"rev": "1-a"}}, True),
    ("PUT", "/db/_security", {"json": {"members": {}}}, True),
    ("POST", "/db/_bulk_docs", {"content": b'{"docs":[{"_id":"a"},{"_id":"b","_rev":"1-x"}]}'},
     True),
    ("POST", "/db/_all_docs", {"json": {"keys": ["a"]}}, True),
    ("POST", "/db/_find", {"json": {"selector": {}}}, True),
    ("POST", "/db/_design/d/_view/v", {"json": {"keys": [1]}}, True),
    # a repeat could do it twice, or turn a success into an error
    ("PUT", "/db/doc", {"json": {"x": 1}}, False),
    ("DELETE", "/db/doc", {}, False),
    ("PUT", "/db", {}, False),
    ("DELETE", "/db", {}, False),
    ("POST", "/db", {"json": {"x": 1}}, False),
    ("POST", "/db", {"json": {"_id": "a"}}, False),
    ("POST", "/db/_bulk_docs", {"content": b'{"docs":[{"_id":"a"},{"x":1}]}'}, False),
    ("POST", "/db/_bulk_docs", {"json": {"docs": [{"x": 1}]}}, False),
    ("POST", "/db/_purge", {"json": {"a": ["1-x"]}}, False),
    ("POST", "/db/_compact", {"json": {}}, False),
])
def test_which_requests_may_be_sent_twice(method: str, path: str, kwargs: dict[str, Any],
                                          expected: bool) -> None:
    assert repeatable(method, path, kwargs.get("params"), kwargs.get("json"),
                      kwargs.get("content")) is expected


@pytest.mark.parametrize("failure", [503, 429, httpx.RemoteProtocolError, httpx.ReadError])
def test_a_post_without_ids_is_never_retried(failure: Any, pauses: list[float]) -> None:
    seen, handler = _scripted(failure, failure)
    client = Client("http://couch.test", transport=httpx.MockTransport(handler))
    with pytest.raises((HTTPStatusError, TransportError)):
        client.database("db").add({"x": 1})  # POST /db: the server picks the id
    with pytest.raises((HTTPStatusError, TransportError)):
        client.database("db").bulk_docs([{"_id": "a"}, {"no": "id"}])
    assert seen == ["POST /db", "POST /db/_bulk_docs"] and pauses == []


def test_bulk_docs_with_ids_and_writes_with_a_rev_are_retried(pauses: list[float]) -> None:
    seen, handler = _scripted(503, httpx.RemoteProtocolError, 200, 503, 200, 429, 200)
    client = Client("http://couch.test", transport=httpx.MockTransport(handler))
    db = client.database("db")
    db.bulk_docs([{"_id": "a"}, {"_id": "b", "_rev": "1-x", "v": 2}])
    db.delete("doc", rev="1-x")
    db.update("doc", {"v": 1}, rev="2-y")
    assert seen == ["POST /db/_bulk_docs"] * 3 + ["DELETE /db/doc"] * 2 + ["PUT /db/doc"] * 2
    assert pauses == [1.0, 0.2, 1.0, 1.0]


def test_a_write_that_never_left_is_retried_whatever_it_is(pauses: list[float]) -> None:
    """A refused connection sent nothing: a PUT without a rev may go again (not a POST)."""
    seen, handler = _scripted(httpx.ConnectError)
    _engine(handler).request("PUT", "/newdb")
    assert seen == ["PUT /newdb"] * 2


def test_each_retry_is_logged_without_secrets(
    pauses: list[float], caplog: pytest.LogCaptureFixture,
) -> None:
    _seen, handler = _scripted(503, httpx.ReadError, headers={"Retry-After": "1"})
    caplog.set_level(logging.DEBUG)
    engine = HttpxConnection("http://admin:pw-Retry-Secret@couch.test:5984",
                             transport=httpx.MockTransport(handler))
    engine.request("GET", "/db/doc", params={"key": '"k"'})
    records = [r for r in caplog.records if r.name == "couchsync.client"]
    assert [r.getMessage() for r in records] == [
        "retrying GET /db/doc after 503 Service Unavailable (retry 1 of 3, in 1.00 s)",
        "retrying GET /db/doc after network error (ReadError) (retry 2 of 3, in 0.20 s)",
    ]
    first: Any = records[0]
    assert records[0].levelno == logging.INFO
    assert (first.method, first.path, first.attempt, first.wait) == ("GET", "/db/doc", 1, 1.0)
    assert "pw-Retry-Secret" not in caplog.text


def test_giving_up_is_logged(pauses: list[float], caplog: pytest.LogCaptureFixture) -> None:
    _seen, handler = _scripted(*[503] * 10)
    caplog.set_level(logging.INFO, logger="couchsync.client")
    _engine(handler, retries=1).request("GET", "/db/doc")
    _engine(handler).request("POST", "/db", json={})
    assert [r.getMessage() for r in caplog.records] == [
        "retrying GET /db/doc after 503 Service Unavailable (retry 1 of 1, in 1.00 s)",
        "not retrying GET /db/doc after 503 Service Unavailable: retried 1 time",
        "not retrying POST /db after 503 Service Unavailable: a repeat could do it twice",
    ]


def test_a_tls_failure_is_not_retried(pauses: list[float]) -> None:
    import ssl

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as exc:
            raise httpx.ConnectError("certificate verify failed", request=request) from exc

    with pytest.raises(TransportError, match="TLS certificate was not accepted"):
        _engine(handler).request("GET", "/x")
    assert pauses == []


# -- through a loopback proxy that answers 503 in front of the real server


def _unavailable_for(times: int, path: str, retry_after: str = "1") -> tuple[
        list[str], Callable[[str, str], Answer | None]]:
    answered: list[str] = []

    def script(method: str, request_path: str) -> Answer | None:
        if request_path == path and len(answered) < times:
            answered.append(method)
            return 503, {"Retry-After": retry_after, "Content-Type": "application/json"}, \
                json.dumps({"error": "service_unavailable", "reason": "busy"}).encode()
        return None

    return answered, script


@pytest.fixture
def real_db(couch_url: str, db_name: str) -> Iterator[str]:
    """A database on the real server: its name."""
    with Client(couch_url) as client:
        client.create(db_name)
    yield db_name


def _through(proxy: Proxy, couch_url: str) -> str:
    """The server URL with its credentials, at the proxy's address."""
    credentials = couch_url.split("://", 1)[1].rsplit("@", 1)[0]
    return f"http://{credentials}@127.0.0.1:{proxy.port}"


def test_a_503_from_a_proxy_is_waited_out_then_the_real_server_answers(
    couch_url: str, real_db: str, caplog: pytest.LogCaptureFixture, pauses: list[float],
) -> None:
    with Client(couch_url) as direct:
        direct.database(real_db).add({"_id": "doc", "v": 1})
    answered, script = _unavailable_for(2, f"/{real_db}/doc")
    caplog.set_level(logging.INFO, logger="couchsync.client")
    with Proxy(upstream_of(couch_url), script) as proxy, \
            Client(_through(proxy, couch_url)) as client:
        assert client.database(real_db).get("doc")["v"] == 1
        assert pauses == [1.0, 1.0]  # Retry-After: 1, twice
        assert [seen.method for seen in proxy.seen] == ["GET"] * 3
    assert answered == ["GET", "GET"]
    assert caplog.text.count(f"retrying GET /{real_db}/doc after 503") == 2


def test_writes_through_a_503_proxy_happen_once_or_not_at_all(
    couch_url: str, real_db: str, db_name_factory: Callable[[], str],
) -> None:
    """_bulk_docs with ids is retried and writes each document once; a POST that lets
    the server pick the id is not retried, and nothing is written."""
    answered, script = _unavailable_for(1, f"/{real_db}/_bulk_docs", retry_after="0")
    post_answered, post_script = _unavailable_for(1, f"/{real_db}", retry_after="0")

    def both(method: str, path: str) -> Answer | None:
        return script(method, path) or (post_script(method, path) if method == "POST"
                                        else None)

    with Proxy(upstream_of(couch_url), both) as proxy, \
            Client(_through(proxy, couch_url)) as client:
        db: Database = client.database(real_db)
        results = db.bulk_docs([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}])
        assert [row.get("ok") for row in results] == [True, True]
        with pytest.raises(HTTPStatusError) as caught:
            db.add({"v": 3})
        assert caught.value.status == 503
        posts = [seen.method for seen in proxy.seen if seen.target == f"/{real_db}"]
    assert answered == ["POST"] and post_answered == ["POST"] and posts == ["POST"]
    with Client(couch_url) as direct:
        assert direct.database(real_db).info()["doc_count"] == 2


def test_a_proxy_that_stays_unavailable_is_given_up_cleanly(
    couch_url: str, real_db: str,
) -> None:
    answered, script = _unavailable_for(100, f"/{real_db}/doc", retry_after="0")
    with Proxy(upstream_of(couch_url), script) as proxy, \
            Client(_through(proxy, couch_url), retries=2) as client, \
            pytest.raises(HTTPStatusError) as caught:
        client.database(real_db).get("doc")
    assert caught.value.status == 503 and caught.value.error == "service_unavailable"
    assert len(answered) == 3
    password = urlsplit(couch_url).password
    shown = str(caught.value) + repr(caught.value)
    assert password is None or (f":{password}@" not in shown and ":***@" in shown)
