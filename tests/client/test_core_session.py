"""Cookie sessions (``session=True``): one login, the AuthSession cookie instead of the
credentials, renewed once when it expires, whatever the number of threads.

Against the real server under test, through a loopback proxy that records what the
client sends. An expired session is a cookie the server itself judges expired (signed
an hour ago): the server then takes the request as anonymous and answers 401. The
httpx.MockTransport tests script what no test server does on demand: a server that
refuses the renewed cookie too, a refreshed cookie, a Max-Age of a second, a login
that sets no cookie.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from loopback import Proxy, upstream_of

from couchsync.client import Client, HttpxConnection, Unauthorized


def _credentials(couch_url: str) -> tuple[str, str]:
    parts = urlsplit(couch_url)
    assert parts.username is not None and parts.password is not None
    return parts.username, parts.password


def _at(proxy: Proxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


def _admin_only_path(server_kind: str) -> str:
    """A GET that the server refuses to anonymous requests with 401."""
    return "/_all_dbs" if server_kind == "couchdb" else "/_config"


def test_a_session_logs_in_once_and_sends_the_cookie_not_the_password(
    couch_url: str, server_kind: str,
) -> None:
    user, password = _credentials(couch_url)
    path = _admin_only_path(server_kind)
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(_at(proxy), user=user, password=password, session=True) as client:
        engine = client._conn

        def work() -> None:
            for _ in range(5):
                assert engine.request("GET", path).status_code == 200

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen = list(proxy.seen)
    assert [s.target for s in seen].count("/_session") == 1
    assert seen[0].method == "POST" and seen[0].target == "/_session"
    assert "Authorization" not in seen[0].headers  # the password is in the body only
    for request in seen[1:]:
        assert request.target == path
        assert "Authorization" not in request.headers
        assert request.headers["Cookie"].startswith("AuthSession=")


def test_an_expired_session_is_renewed_once_for_all_threads(
    couch_url: str, server_kind: str,
) -> None:
    user, password = _credentials(couch_url)
    path = _admin_only_path(server_kind)
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(_at(proxy), user=user, password=password, session=True) as client:
        engine: Any = client._conn
        assert engine.request("GET", path).status_code == 200
        # What the server sent an hour ago: a cookie it now judges expired (its time
        # stamp is checked before its signature), so it takes the request as anonymous.
        stamp = f"{int(time.time()) - 3600:X}"
        expired = base64.urlsafe_b64encode(f"{user}:{stamp}:{'x' * 20}".encode())
        engine._session._use_cookie(expired.decode().rstrip("="), None)
        barrier = threading.Barrier(6)
        statuses: list[int] = []

        def work() -> None:
            barrier.wait()
            statuses.append(engine.request("GET", path).status_code)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logins = [s.target for s in proxy.seen].count("/_session")
        refused = [s for s in proxy.seen if s.target == path and expired.decode().rstrip("=")
                   in s.headers.get("Cookie", "")]
    assert statuses == [200] * 6
    assert logins == 2  # the first login, and one renewal for the six threads
    assert 1 <= len(refused) <= 6  # each thread that sent the old cookie sent it once


def test_a_refused_login_is_not_repeated(couch_url: str) -> None:
    """A wrong password fails as Unauthorized, and no later request logs in again: a
    client cannot lock an account by repeating a refused login (a user that does not
    exist, so that no real account counts failures)."""
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(_at(proxy), user="nobody-here", password="wrong", session=True) as client:
        for _ in range(3):
            with pytest.raises(Unauthorized) as caught:
                client.server.info()
        logins = [s.target for s in proxy.seen].count("/_session")
    assert logins == 1 and len(proxy.seen) == 1
    assert "GET" in str(caught.value) and "wrong" not in str(caught.value)


def test_read_ahead_pages_go_with_the_session_cookie(couch_url: str, db_name: str) -> None:
    user, password = _credentials(couch_url)
    with Client(couch_url) as admin:
        admin.create(db_name)
        admin.database(db_name).bulk_docs([{"_id": f"d{i:03}"} for i in range(25)])
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(_at(proxy), user=user, password=password, session=True) as client:
        rows = list(client.database(db_name).iter_all_docs(page_size=10, read_ahead=True))
        seen = list(proxy.seen)
    assert len(rows) == 25
    assert all("Authorization" not in s.headers for s in seen)


# -- httpx.MockTransport: a server scripted to do what test servers do not on demand


class FakeSessionServer:
    """Answers POST /_session with a new cookie (``Max-Age`` if set), and any other
    request 200 if it carries the current cookie, else 401. Counts logins."""

    def __init__(self, max_age: int | None = None, cookie_on_login: bool = True) -> None:
        self.logins = 0
        self.requests: list[httpx.Request] = []
        self.max_age = max_age
        self.cookie_on_login = cookie_on_login
        self.valid: set[str] = set()
        self.refresh_with: str | None = None
        self.refuse_all = False
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/_session" and request.method == "POST":
            with self.lock:
                self.logins += 1
                cookie = f"c{self.logins}"
            self.valid = {cookie}
            headers = {}
            if self.cookie_on_login:
                age = "" if self.max_age is None else f"; Max-Age={self.max_age}"
                headers["Set-Cookie"] = f"AuthSession={cookie}; Version=1{age}; Path=/; HttpOnly"
            return httpx.Response(200, headers=headers, json={"ok": True, "name": "admin"})
        cookie = request.headers.get("Cookie", "").removeprefix("AuthSession=")
        if cookie not in self.valid or self.refuse_all:
            return httpx.Response(401, json={"error": "unauthorized", "reason": "no"})
        headers = {}
        if self.refresh_with is not None:
            headers["Set-Cookie"] = f"AuthSession={self.refresh_with}; Version=1; Path=/"
            self.valid.add(self.refresh_with)
            self.refresh_with = None
        return httpx.Response(200, headers=headers, json={"ok": True})


def _session_client(server: Callable[[httpx.Request], httpx.Response]) -> HttpxConnection:
    return HttpxConnection("http://admin:Sess-Secret@couch.test:5984", session=True,
                           transport=httpx.MockTransport(server))


def test_a_cookie_refused_after_a_fresh_login_is_not_renewed_again() -> None:
    server = FakeSessionServer()
    engine = _session_client(server)
    assert engine.request("GET", "/x").status_code == 200
    server.refuse_all = True  # the server refuses every cookie from now on
    assert engine.request("GET", "/x").status_code == 401
    assert server.logins == 2  # one renewal, then the 401 stands: no loop
    assert [r.url.path for r in server.requests] == [
        "/_session", "/x", "/x", "/_session", "/x"]


def test_a_refreshed_cookie_is_taken_up() -> None:
    server = FakeSessionServer()
    engine = _session_client(server)
    engine.request("GET", "/x")
    server.refresh_with = "refreshed"
    engine.request("GET", "/x")
    engine.request("GET", "/x")
    assert server.requests[-1].headers["Cookie"] == "AuthSession=refreshed"
    assert server.logins == 1


def test_a_cookie_past_its_max_age_is_renewed_before_it_is_refused() -> None:
    server = FakeSessionServer(max_age=1)
    engine = _session_client(server)
    engine.request("GET", "/x")
    time.sleep(1.0)
    assert engine.request("GET", "/x").status_code == 200
    assert server.logins == 2
    assert [r.url.path for r in server.requests] == ["/_session", "/x", "/_session", "/x"]


def test_a_login_that_sets_no_cookie_is_a_clear_unauthorized() -> None:
    server = FakeSessionServer(cookie_on_login=False)
    client = Client("http://admin:Sess-Secret@couch.test:5984", session=True,
                    transport=httpx.MockTransport(server))
    with pytest.raises(Unauthorized, match="set no AuthSession cookie"):
        client.list_database_names()


def test_session_needs_a_user_and_excludes_a_token() -> None:
    with pytest.raises(ValueError, match="needs a user name"):
        HttpxConnection("http://couch.test", session=True)
    with pytest.raises(ValueError, match="not a token"):
        HttpxConnection("http://couch.test", session=True, token="a.b.c")
