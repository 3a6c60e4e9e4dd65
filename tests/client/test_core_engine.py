"""The engine interface: another engine plugs in without touching Database."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from couchsync.client import (
    Client,
    ConnectionEngine,
    DatabaseError,
    HTTPStatusError,
    NotFound,
    ServerError,
)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeResponse:
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = json.dumps(body).encode()

    def json(self) -> Any:
        return json.loads(self.content)


class DictEngine:
    """An in-memory 'server' holding one database's documents by raw path."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[tuple[str, str]] = []
        self.docs: dict[str, Any] = {"/db/a%2Fb": {"_id": "a/b", "_rev": "1-x"}}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FakeResponse:
        self.calls.append((method, path))
        if path in self.docs:
            return FakeResponse(200, self.docs[path])
        return FakeResponse(404, {"error": "not_found", "reason": "missing"})

    def close(self) -> None:
        self.calls.append(("CLOSE", ""))


def test_custom_engine_plugs_in() -> None:
    engines: list[DictEngine] = []

    def factory(url: str) -> DictEngine:  # pycouchdb's Callable[[str], Connection] shape
        engines.append(DictEngine(url))
        return engines[-1]

    with Client("mem://server", connection_engine=factory) as cli:
        engine: ConnectionEngine = engines[0]
        assert engine.url == "mem://server"
        db = cli.database("db")
        assert db.get("a/b") == {"_id": "a/b", "_rev": "1-x"}
        with pytest.raises(NotFound, match=r"GET mem://server/db/nope"):
            db.get("nope")
    assert engines[0].calls == [("GET", "/db/a%2Fb"), ("GET", "/db/nope"), ("CLOSE", "")]


# httpx.MockTransport: a real CouchDB never answers like this, a proxy in front of it may.
def test_a_2xx_body_that_is_not_json_is_a_scoped_couch_error(
    handler_client: Callable[[Handler], Client],
) -> None:
    client = handler_client(lambda request: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(DatabaseError) as caught:
        client.database("db").get("doc")
    assert isinstance(caught.value, HTTPStatusError)
    assert caught.value.status == 200
    assert "not JSON" in str(caught.value) and "GET" in str(caught.value)


def test_a_redirect_is_an_error_not_a_result(
    handler_client: Callable[[Handler], Client],
) -> None:
    client = handler_client(
        lambda request: httpx.Response(302, headers={"location": "/login"}, text=""))
    with pytest.raises(ServerError) as caught:
        client.list_database_names()
    assert isinstance(caught.value, HTTPStatusError)
    assert caught.value.status == 302


# -- the default engine on the network: a scripted HTTP/1.1 server on a loopback socket
# shows what reaches the wire.

import gzip  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402

from couchsync.client import ClientClosedError, HttpxConnection, TransportError  # noqa: E402


def _answer(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """Answers the n-th request with ``script[n]``: bytes to send, ``"drop"`` (close the
    connection without answering) or ``"hang"`` (never answer). Records each raw request
    and counts the connections accepted."""

    def __init__(self, script: list[bytes | str], tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = threading.Event()
        self._arrived = threading.Condition()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except ssl.SSLError:  # the client refused the certificate
                conn.close()
                return
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except ConnectionResetError:  # closed with an answer left unread
                        data = b""
                    if not data:
                        self.closed.set()
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                with self._arrived:
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    self._arrived.notify_all()
                buf = buf[length:]
                action = self.script[len(self.requests) - 1]
                if action == "drop":
                    return
                if action == "hang":
                    self.closed.wait(5)
                    return
                assert isinstance(action, bytes)
                conn.sendall(action)

    def wait_for_requests(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` requests have arrived; fail the test, saying so, if they
        have not within ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                pytest.fail(f"the scripted server got {len(self.requests)} of the {count} "
                            f"requests expected within {timeout} s")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def scripted() -> Any:
    servers: list[ScriptedServer] = []

    def make(*script: bytes | str) -> ScriptedServer:
        servers.append(ScriptedServer(list(script)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_default_engine_wire_format_and_keep_alive(scripted: Any) -> None:
    doc = json.dumps({"_id": "a/b", "_rev": "1-x"}).encode()
    server = scripted(
        _answer(200, doc, "ETag: \"1-x\"", "Content-Type: application/json",
                "Set-Cookie: AuthSession=abc; Path=/"),
        _answer(201, b'{"ok":true,"id":"c","rev":"1-y"}'),
        _answer(404, b'{"error":"not_found","reason":"missing"}'),
    )
    with Client(f"http://u%40x:p%40ss@127.0.0.1:{server.port}/pre/") as cli:
        db = cli.database("db")
        assert db.get("a/b", rev="1-x") == {"_id": "a/b", "_rev": "1-x"}
        assert db.add({"_id": "c", "n": 1}) == ("c", "1-y")
        with pytest.raises(NotFound, match=r"GET http://u%40x:\*\*\*@127\.0\.0\.1:\d+/pre/db/d\)"):
            db.get("d")
    get, put, missing = server.requests
    assert get.startswith(b"GET /pre/db/a%2Fb?rev=1-x HTTP/1.1\r\n")
    headers = {line.split(b": ")[0].lower(): line.split(b": ")[1]
               for line in get.split(b"\r\n")[1:] if line}
    assert headers == {
        b"host": f"127.0.0.1:{server.port}".encode(),
        b"accept": b"application/json",
        b"user-agent": b"couchsync",
        b"authorization": b"Basic dUB4OnBAc3M=",  # u@x:p@ss
    }
    assert put.startswith(b"PUT /pre/db/c HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in put
    assert b"\r\nContent-Length: 17\r\n" in put and put.endswith(b'\r\n\r\n{"_id":"c","n":1}')
    assert missing.startswith(b"GET /pre/db/d HTTP/1.1\r\n")
    assert b"\r\nCookie:" not in put + missing  # httpx takes no cookie (sessions are _auth's)
    assert server.connections == 1  # one keep-alive connection for all three
    assert server.closed.wait(5)  # closing the client closes it


def test_default_engine_response_headers_are_case_insensitive(scripted: Any) -> None:
    server = scripted(_answer(200, b"", 'ETag: "3-abc"'))
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}")
    response = conn.request("HEAD", "/db/doc")
    assert response.headers["etag"] == response.headers.get("ETag") == '"3-abc"'
    assert response.status_code == 200 and response.content == b""
    conn.close()


def test_default_engine_quotes_like_httpx_what_is_not_plain(scripted: Any) -> None:
    server = scripted(_answer(200, b"{}"), _answer(200, b"{}"))
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}")
    conn.request("GET", "/db/a b\u00e9")
    conn.request("GET", "/db/x", params={"key": '"a b"'})
    assert server.requests[0].startswith(b"GET /db/a%20b%C3%A9 HTTP/1.1\r\n")
    assert server.requests[1].startswith(b"GET /db/x?key=%22a%20b%22 HTTP/1.1\r\n")
    conn.close()


def test_default_engine_decodes_an_unasked_for_compressed_body(scripted: Any) -> None:
    server = scripted(_answer(200, gzip.compress(b'{"a":1}'), "Content-Encoding: gzip"))
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}")
    assert conn.request("GET", "/db/doc").json() == {"a": 1}
    conn.close()


def test_default_engine_reconnects_after_the_server_closed_the_connection(
    scripted: Any,
) -> None:
    server = scripted(_answer(200, b"{}", "Connection: close"), _answer(200, b"[]"))
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}")
    assert conn.request("GET", "/a").json() == {}
    assert conn.request("GET", "/b").json() == []
    assert server.connections == 2
    conn.close()


def test_default_engine_retries_a_dropped_get_but_not_a_post(scripted: Any) -> None:
    server = scripted("drop", _answer(200, b"{}"), "drop")
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}", backoff=0.001)
    assert conn.request("GET", "/db/doc").json() == {}
    with pytest.raises(TransportError, match=r"POST http://127\.0\.0\.1:\d+/db: HTTP protocol"):
        conn.request("POST", "/db", json={})
    assert len(server.requests) == 3
    conn.close()


def test_default_engine_timeouts_and_refused_connections_are_transport_errors(
    scripted: Any,
) -> None:
    server = scripted("hang")
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}", timeout=0.2, retries=0)
    with pytest.raises(TransportError, match=r"GET http://127\.0\.0\.1:\d+/x: timed out"):
        conn.request("GET", "/x")
    conn.close()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    conn = HttpxConnection(f"http://admin:pw-secret@127.0.0.1:{port}", backoff=0.001)
    with pytest.raises(TransportError, match="could not connect") as caught:
        conn.request("GET", "/x")
    assert "pw-secret" not in str(caught.value) and "admin:***@" in str(caught.value)
    conn.close()
    with pytest.raises(ClientClosedError):
        conn.request("GET", "/x")


def test_a_request_waits_for_a_free_connection_at_most_its_pool_timeout(
    scripted: Any,
) -> None:
    server = scripted("hang", _answer(200, b"{}"))
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}", max_connections=1, retries=0,
                           timeout=httpx.Timeout(2.0, pool=0.2))
    first: list[BaseException] = []

    def hanging() -> None:
        try:
            conn.request("GET", "/hangs")
        except TransportError as exc:
            first.append(exc)

    thread = threading.Thread(target=hanging)
    thread.start()
    server.wait_for_requests(1)  # the only connection is busy now
    with pytest.raises(TransportError, match=r"GET http://127\.0\.0\.1:\d+/x: timed out"):
        conn.request("GET", "/x")
    assert len(server.requests) == 1
    conn.close()
    thread.join(10)
    assert first  # the hanging request failed too (closed, or its read timed out)


def test_default_engine_reads_a_chunked_answer(scripted: Any) -> None:
    server = scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    conn = HttpxConnection(f"http://127.0.0.1:{server.port}")
    assert conn.request("GET", "/a").json() == {"a": 1}
    conn.close()


# -- reading ahead: the next page asked for while the caller works through this one


def _page(*ids: str) -> bytes:
    return _answer(200, json.dumps({"rows": [{"id": i, "key": i, "value": {}}
                                             for i in ids]}).encode())


def test_read_ahead_asks_for_each_page_before_it_is_wanted(scripted: Any) -> None:
    server = scripted(_page("a", "b"), _page("b"))
    with Client(f"http://u:p@127.0.0.1:{server.port}/pre") as cli:
        rows = cli.database("db").iter_all_docs(page_size=1, read_ahead=True)
        server.wait_for_requests(1)  # asked before any row is
        assert next(rows)["id"] == "a"
        server.wait_for_requests(2)  # the next page asked for before its row is wanted
        assert [row["id"] for row in rows] == ["b"]
    first, second = server.requests
    assert first.startswith(b'GET /pre/db/_all_docs?limit=2 HTTP/1.1\r\n')
    assert second.startswith(b'GET /pre/db/_all_docs?limit=2&startkey=%22b%22 HTTP/1.1\r\n')
    assert b"\r\nAuthorization: Basic dTpw\r\n" in first


def test_a_page_read_ahead_is_checked_and_repeated_as_any_request(scripted: Any) -> None:
    server = scripted("drop", _page("a"), _answer(404, b'{"error":"not_found","reason":"missing"}'))
    with Client(f"http://127.0.0.1:{server.port}", backoff=0.001) as cli:
        assert [r["id"] for r in cli.database("db").iter_all_docs(read_ahead=True)] == ["a"]
        rows = cli.database("db").iter_all_docs(read_ahead=True)
        with pytest.raises(NotFound, match="missing"):
            next(rows)
    assert len(server.requests) == 3


def test_read_ahead_works_with_any_transport() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json={"rows": [{"id": "a", "key": "a", "value": {}}]})

    with Client("http://couch.test", transport=httpx.MockTransport(handler)) as cli:
        rows = cli.database("db").iter_all_docs(read_ahead=True)
        assert [r["id"] for r in rows] == ["a"] and asked == ["/db/_all_docs"]


def test_a_closed_read_ahead_asks_for_no_more_pages(scripted: Any) -> None:
    server = scripted(_page("a", "b"), _page("b", "c"), _answer(200, b'{"couchdb":"Welcome"}'))
    with Client(f"http://127.0.0.1:{server.port}") as cli:
        rows = cli.database("db").iter_all_docs(page_size=1, read_ahead=True)
        assert next(rows)["id"] == "a"
        server.wait_for_requests(2)  # the second page was asked for at once
        rows.close()
        assert list(rows) == []
        assert cli.server.info() == {"couchdb": "Welcome"}  # no third page asked for
    assert len(server.requests) == 3 and b"_all_docs" not in server.requests[2]
    assert server.closed.wait(5)  # closing the client closed the connections
