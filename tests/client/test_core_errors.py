"""The error tree, status mapping, transport failures, auth failures and password masking."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import couchsync.client as cc
from couchsync.client import (
    BadRequest,
    Client,
    ClientClosedError,
    Conflict,
    CouchError,
    DatabaseError,
    Document,
    DocumentError,
    Forbidden,
    HTTPStatusError,
    HttpxConnection,
    InvalidDatabaseName,
    InvalidURL,
    NotFound,
    PreconditionFailed,
    ServerError,
    TransportError,
    Unauthorized,
    _transport,
)
from couchsync.client._errors import HTTPX_ERRORS, map_httpx_error

PUBLIC = [
    "BadRequest",
    "BulkResults",
    "Client",
    "ClientClosedError",
    "Conflict",
    "ConnectionEngine",
    "CouchError",
    "Database",
    "DatabaseError",
    "Document",
    "DocumentError",
    "FileChunks",
    "FindQuery",
    "Forbidden",
    "HTTPStatusError",
    "HttpxConnection",
    "IndexQuery",
    "InvalidDatabaseName",
    "InvalidURL",
    "NotFound",
    "PreconditionFailed",
    "Server",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "encode_json",
]


def test_public_names() -> None:
    assert cc.__all__ == PUBLIC == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(cc, name).__name__ == name


def test_tree_shape() -> None:
    for kind in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed):
        assert issubclass(kind, HTTPStatusError)
    for cls in (TransportError, HTTPStatusError, ServerError, DatabaseError, DocumentError):
        assert issubclass(cls, CouchError)
    assert issubclass(InvalidDatabaseName, ValueError)
    assert issubclass(InvalidDatabaseName, ServerError)
    assert issubclass(InvalidURL, ValueError)
    assert issubclass(InvalidURL, ServerError)
    assert not issubclass(ClientClosedError, CouchError)


def _status_client(status: int, body: Any) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return Client("http://admin:s3cret-pw@couch.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (412, PreconditionFailed),
        (415, HTTPStatusError),
        (500, HTTPStatusError),
        (503, HTTPStatusError),
    ],
)
def test_status_maps_to_kind_in_every_scope(status: int, kind: type[CouchError]) -> None:
    cli = _status_client(status, {"error": "some_error", "reason": "some reason"})
    calls: list[tuple[type[CouchError], Callable[[], object]]] = [
        (ServerError, cli.list_database_names),
        (ServerError, cli.server.membership),
        (DatabaseError, lambda: cli.database("db").get("doc")),
        (DocumentError, lambda: Document().load_from_database(cli.database("db"), "doc")),
    ]
    for scope, call in calls:
        with pytest.raises(kind) as info:
            call()
        err = info.value
        assert isinstance(err, scope)
        assert (err.status, err.error, err.reason) == (status, "some_error", "some reason")
        assert err.method == "GET"
        assert err.url is not None and err.url.startswith("http://admin:***@couch.test:5984/")
        if kind is HTTPStatusError:  # not one of the specific classes
            assert type(err).__mro__[1] is HTTPStatusError


def test_error_without_json_body_uses_the_status_phrase() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    cli = Client("http://couch.test", transport=httpx.MockTransport(handler))
    with pytest.raises(HTTPStatusError, match="502 Bad Gateway") as info:
        cli.server.info()
    assert info.value.error is None


def test_missing_doc_is_notfound_and_databaseerror(db: cc.Database) -> None:
    with pytest.raises(NotFound) as info:
        db.get("missing")
    assert isinstance(info.value, DatabaseError)
    assert (info.value.status, info.value.error) == (404, "not_found")


def _password(url: str) -> str:
    return url.split("@")[0].rsplit(":", 1)[1]


def _assert_masked(url: str, text: str) -> None:
    """``text`` shows ``url``'s credentials as ``user:***@``, never its password. Only the
    password as it stands in a URL is looked for: the bare string may well occur in other
    words (admin:admin has its password in the user name)."""
    user, password = url.split("://", 1)[1].split("@")[0].split(":", 1)
    assert f":{password}@" not in text, text
    assert f"{user}:***@" in text, text


def test_wrong_password_is_unauthorized_and_never_shown(couch_url: str) -> None:
    password = _password(couch_url)
    # Another user name: CouchDB >= 3.4 locks a user out (per user and address) after
    # repeated authentication failures, which would lock the suite's admin out.
    user = couch_url.split("://", 1)[1].split(":", 1)[0]
    bad = couch_url.replace(f"{user}:{password}@", "cstest-nobody:not-the-pw-4711@")
    assert bad != couch_url
    cli = Client(bad)
    with pytest.raises(Unauthorized) as info:
        cli.list_database_names()
    err = info.value
    assert isinstance(err, ServerError) and err.status == 401
    for text in (
        str(err),
        repr(err),
        err.url or "",
        repr(cli),
        str(cli),
        repr(cli.server),
        repr(cli.database("x")),
        repr(cli._conn),
    ):
        assert "not-the-pw-4711" not in text
        assert f":{password}@" not in text
    with pytest.raises(Unauthorized):  # a wrong-password PUT is answered 401, not a crash
        cli.create("cstest_never_created")
    cli.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_transport_error() -> None:
    url = f"http://admin:hunter2@127.0.0.1:{_free_port()}"
    cli = Client(url, retries=1, backoff=0.01)
    with pytest.raises(TransportError) as info:
        cli.list_database_names()
    err = info.value
    assert isinstance(err, ServerError) and err.status is None
    assert err.method == "GET" and "could not connect" in str(err)
    assert f"GET http://admin:***@127.0.0.1:{url.rsplit(':', 1)[1]}/_all_dbs" in str(err)
    assert "hunter2" not in str(err) + repr(err)
    with pytest.raises(TransportError) as db_info:
        cli.database("x").info()
    assert isinstance(db_info.value, DatabaseError)


def test_timeout_is_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    cli = Client("http://couch.test", transport=httpx.MockTransport(handler), retries=0)
    with pytest.raises(TransportError, match=r"GET http://couch.test:5984/db/x: timed out"):
        cli.database("db").get("x")


def test_every_httpx_request_error_is_mapped() -> None:
    request = httpx.Request("GET", "http://x")

    def subclasses(cls: type[httpx.RequestError]) -> list[type[httpx.RequestError]]:
        found = [cls]
        for sub in cls.__subclasses__():
            found += subclasses(sub)
        return found

    for cls in subclasses(httpx.RequestError):
        exc = cls("boom", request=request)
        err = map_httpx_error(exc, "GET", "http://x:5984")
        assert isinstance(err, TransportError)
        mapped = next(c for c in cls.__mro__ if c in HTTPX_ERRORS)
        assert HTTPX_ERRORS[mapped] in str(err)
    assert "could not connect" in str(map_httpx_error(httpx.ConnectError("x"), "GET", "u"))


def _flaky(failures: int, exc: type[httpx.TransportError]) -> tuple[list[str], Any]:
    """A handler failing ``failures`` times with ``exc``, then answering 404; and its log."""
    answered: list[str] = []
    failed: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if len(failed) < failures:
            failed.append(request.method)
            raise exc("flaky", request=request)
        answered.append(request.method)
        return httpx.Response(404, json={"error": "not_found"})

    return answered, handler


def test_idempotent_requests_are_retried_on_connection_errors() -> None:
    answered, handler = _flaky(2, httpx.ConnectError)
    conn = HttpxConnection("http://h", transport=httpx.MockTransport(handler), backoff=0.001)
    assert conn.request("GET", "/x").status_code == 404
    assert answered == ["GET"]


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """retries=2: three attempts in all, with exponential backoff between them, then the
    error. The pauses are recorded, not slept."""
    sent: list[str] = []
    pauses: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        raise httpx.ConnectError("refused", request=request)

    monkeypatch.setattr(_transport.time, "sleep", pauses.append)
    conn = HttpxConnection(
        "http://h", transport=httpx.MockTransport(handler), retries=2, backoff=0.5
    )
    with pytest.raises(TransportError):
        conn.request("HEAD", "/x")
    assert sent == ["HEAD", "HEAD", "HEAD"]
    assert pauses == [0.5, 1.0]


@pytest.mark.parametrize(
    ("method", "exc"),
    # A reset connection (ReadError) is retried for a GET now (test_core_retries.py); a
    # read timeout is not: the server may still be at work on the request.
    [("POST", httpx.ConnectError), ("PUT", httpx.RemoteProtocolError), ("GET", httpx.ReadTimeout)],
)
def test_no_retry_for_unsafe_methods_or_other_errors(
    method: str, exc: type[httpx.TransportError]
) -> None:
    answered, handler = _flaky(1, exc)
    conn = HttpxConnection("http://h", transport=httpx.MockTransport(handler), backoff=0.001)
    with pytest.raises(TransportError):
        conn.request(method, "/x", json={})
    assert answered == []


def test_closed_client_is_misuse_not_a_server_error(couch_url: str) -> None:
    cli = Client(couch_url)
    db = cli.database("anything")
    cli.close()
    for call in (cli.list_database_names, cli.server.info, db.info):
        with pytest.raises(ClientClosedError, match="closed") as info:
            call()
        assert not isinstance(info.value, CouchError)
        _assert_masked(couch_url, str(info.value))


def test_context_manager_closes(couch_url: str) -> None:
    with Client(couch_url) as cli:
        assert isinstance(cli.list_database_names(), list)
    with pytest.raises(ClientClosedError):
        cli.list_database_names()


# A password that is percent-encoded in the URL: neither form may show anywhere.
_TRICKY_PASSWORD = "p@ss/w:rd%?#é"
_TRICKY_URL = "http://admin:p%40ss%2Fw%3Ard%25%3F%23%C3%A9@couch.test/prefix/"


def _assert_hidden(*texts: str) -> None:
    for text in texts:
        for secret in (_TRICKY_PASSWORD, "p%40ss", "p@ss", "w:rd"):
            assert secret not in text, text


def test_percent_encoded_password_never_shown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/prefix/")
        if request.url.path.endswith("/refuse"):
            # an engine whose failure message quotes the URL it was sent to
            raise httpx.ConnectError(f"cannot reach {request.url}", request=request)
        return httpx.Response(401, json={"error": "unauthorized", "reason": "bad password"})

    cli = Client(_TRICKY_URL, transport=httpx.MockTransport(handler), retries=0)
    database = cli.database("a/b")
    errors: list[BaseException] = []
    for call in (
        cli.list_database_names,
        lambda: cli.create("Bad"),
        lambda: database.get("refuse"),
        lambda: database.get("_all_docs"),
        lambda: database.get_many([{"id": "x"}]),
        lambda: Document().load_from_database(database, "d"),
    ):
        with pytest.raises(CouchError) as info:
            call()
        errors.append(info.value)
    assert [type(e).__mro__[1] for e in errors] == [
        Unauthorized,
        ServerError,  # InvalidDatabaseName
        TransportError,
        BadRequest,
        Unauthorized,
        Unauthorized,
    ]
    for err in errors:
        assert isinstance(err, CouchError)
        _assert_hidden(str(err), repr(err), err.url or "", str(err.args))
        assert (err.url or "").startswith("http://admin:***@couch.test:5984/prefix")
    _assert_hidden(repr(cli), repr(cli.server), repr(database), repr(cli._conn))
    cli.close()
    with pytest.raises(ClientClosedError) as closed:
        cli.list_database_names()
    _assert_hidden(str(closed.value))
