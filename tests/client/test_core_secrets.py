"""Secrets never reach output: each way of authenticating is driven with a distinctive
password or token, through success and failure, and the secret must appear in no
exception (text, repr, arguments, chained causes), no log record (any logger, DEBUG
and up) and no repr of the objects involved.

Against the real server under test (users created in ``_users`` for the test; the
failing logins use user names that do not exist, so no account is locked), with a
loopback proxy in front of it for proxy credentials and a 503 that makes the client
retry (and log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from loopback import Answer, Proxy, upstream_of

from couchsync._connect import ConnectionSettingsError, open_client
from couchsync.client import Client, CouchError

PASSWORD = "Pw-8d1f-Secret"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.Tok-93c2-Secret"
PROXY_PASSWORD = "Px-4e7a-Secret"
SECRETS = (PASSWORD, TOKEN, PROXY_PASSWORD, quote(PASSWORD, safe=""), "8d1f", "93c2", "4e7a")


class Leaks:
    """Collects every text a secret could hide in, and checks them at the end."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def exception(self, exc: BaseException) -> None:
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            self.texts += [str(cause), repr(cause), repr(cause.args),
                           repr(getattr(cause, "__dict__", {}))]
            cause = cause.__cause__ or cause.__context__

    def objects(self, *objects: Any) -> None:
        self.texts += [repr(obj) for obj in objects]

    def check(self, records: list[logging.LogRecord]) -> None:
        for record in records:
            self.texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
        assert self.texts
        for text in self.texts:
            for secret in SECRETS:
                assert secret not in text, f"{secret!r} leaked: {text[:300]}"


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Iterator[Leaks]:
    caplog.set_level(logging.DEBUG)  # every logger: couchsync's, httpx's, httpcore's
    found = Leaks()
    yield found
    found.check(caplog.records)


def _parts(couch_url: str) -> tuple[str, int]:
    parts = urlsplit(couch_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _expect_failure(leaks: Leaks, call: Callable[[], object]) -> None:
    with pytest.raises((CouchError, ConnectionSettingsError, ValueError)) as caught:
        call()
    leaks.exception(caught.value)


def test_basic_credentials(couch_url: str, user_factory: Callable[[str], str],
                           leaks: Leaks) -> None:
    name = user_factory(PASSWORD)
    host, port = _parts(couch_url)
    for client in (Client(f"http://{name}:{quote(PASSWORD, safe='')}@{host}:{port}"),
                   Client(f"http://{host}:{port}", user=name, password=PASSWORD)):
        with client:
            db = client.database("cstest_never_created")
            client._conn.request("GET", "/_session")
            _expect_failure(leaks, db.info)  # 404 (or 403): the URL is in the error
            leaks.objects(client, client._conn, client.server, db)
    with Client(f"http://nobody-{name}:{quote(PASSWORD, safe='')}@{host}:{port}") as stranger:
        _expect_failure(leaks, stranger.list_database_names)  # 401
        leaks.objects(stranger, stranger._conn)
    # a server that is not there: a transport error
    with Client(f"http://{name}:{quote(PASSWORD, safe='')}@127.0.0.1:9", retries=0) as gone:
        _expect_failure(leaks, gone.server.info)


def test_a_session(couch_url: str, user_factory: Callable[[str], str], leaks: Leaks) -> None:
    name = user_factory(PASSWORD)
    host, port = _parts(couch_url)
    with Client(f"http://{host}:{port}", user=name, password=PASSWORD, session=True) as client:
        assert client._conn.request("GET", "/_session").json()["userCtx"]["name"] == name
        _expect_failure(leaks, client.database("cstest_never_created").info)
        leaks.objects(client, client._conn, client._conn._session)
    with Client(f"http://{host}:{port}", user=f"nobody-{name}", password=PASSWORD,
                session=True) as stranger:
        _expect_failure(leaks, stranger.server.info)  # the refused login
        _expect_failure(leaks, stranger.server.info)  # the refusal remembered
        leaks.objects(stranger, stranger._conn, stranger._conn._session)


def test_a_token(couch_url: str, leaks: Leaks) -> None:
    host, port = _parts(couch_url)
    with Client(f"http://{host}:{port}", token=TOKEN) as client:
        # Without a JWT handler the server ignores the token (anonymous) or refuses it:
        # an error either way for a user document (401, or 404 for an absent one).
        _expect_failure(leaks, lambda: client.database("_users").get(
            "org.couchdb.user:cstest-nobody"))
        leaks.objects(client, client._conn)
    _expect_failure(leaks, lambda: Client(f"http://u:{PASSWORD}@{host}:{port}", token=TOKEN))
    _expect_failure(leaks, lambda: Client(f"http://{host}:{port}", token=TOKEN + "\n"))


def test_password_and_token_files(couch_url: str, user_factory: Callable[[str], str],
                                  tmp_path: Path, leaks: Leaks) -> None:
    name = user_factory(PASSWORD)
    host, port = _parts(couch_url)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    with open_client(f"http://{host}:{port}", user=name, password_file=password_file,
                     environ={}) as client:
        _expect_failure(leaks, client.database("cstest_never_created").info)
        leaks.objects(client, client._conn)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    _expect_failure(leaks, lambda: open_client(
        f"http://{host}:{port}", token_file=token_file, password_file=password_file,
        environ={}))
    _expect_failure(leaks, lambda: open_client(environ={
        "COUCHDB_PASSWORD": PASSWORD, "COUCHDB_PASSWORD_FILE": str(password_file)}))
    _expect_failure(leaks, lambda: open_client(environ={
        "COUCHDB_URL": f"http://u:{PASSWORD}@{host}:{port}", "COUCHDB_TOKEN": TOKEN}))


def test_proxy_credentials_and_retries(couch_url: str, user_factory: Callable[[str], str],
                                       leaks: Leaks, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for the proxy and the server on requests that are retried (logged)
    and that fail."""
    name = user_factory(PASSWORD)
    answered: list[str] = []

    def unavailable_once(method: str, path: str) -> Answer | None:
        if path == "/_all_dbs" and not answered:
            answered.append(path)
            return 503, {"Retry-After": "0"}, json.dumps({"error": "busy"}).encode()
        return None

    _, port = _parts(couch_url)
    with Proxy(upstream_of(couch_url), unavailable_once) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://proxy-user:{PROXY_PASSWORD}@{proxy.url[7:]}")
        url = f"http://{name}:{quote(PASSWORD, safe='')}@couch.invalid:{port}"
        with Client(url) as client:
            client._conn.request("GET", "/_all_dbs")  # 503, retried, then the server's answer
            _expect_failure(leaks, client.database("cstest_never_created").info)
            leaks.objects(client, client._conn, client._conn._proxy)
    assert answered == ["/_all_dbs"]
    with Client(url, retries=1, backoff=0) as client:  # the proxy is gone now
        _expect_failure(leaks, client.server.info)
