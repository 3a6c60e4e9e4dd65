"""Connection engines: the small interface the client talks HTTP through, and its httpx engine.

An engine turns ``request(method, path, ...)`` into a response; it knows nothing
about CouchDB. Another engine plugs in by satisfying ``ConnectionEngine``; the
rest of the client core only ever calls ``send()`` below, which turns transport
failures and 4xx/5xx answers into the error tree of ``_errors``.

An engine factory (``Client(url, connection_engine=...)``) is called as
``factory(url, **engine_options)`` with the options the caller gave, so a
pycouchdb-style ``Callable[[str], Connection]`` still fits when none are given.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import time
from base64 import b64encode
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx

from ._errors import (
    ClientClosedError,
    CouchError,
    HTTPStatusError,
    TransportError,
    error_for_status,
    rescope,
    scoped,
)
from ._url import parse_server_url

__all__ = ["ConnectionEngine", "HttpxConnection", "Reply", "Response", "send"]


class Response(Protocol):
    """What an engine returns; ``httpx.Response`` satisfies it as it is."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    def json(self) -> Any: ...


class ConnectionEngine(Protocol):
    """The interface between the client core and HTTP.

    ``url`` is the server's base URL with any password masked (used in errors and
    reprs). ``request`` sends ``method`` to ``url + path`` (``path`` is already
    percent-encoded, starting with ``/``), with ``params`` as the query string and
    ``json`` (encoded by the engine) or raw ``content`` as the body; it returns
    the response whatever its status, raises TransportError when no response
    arrives, and ClientClosedError after ``close()``.
    """

    @property
    def url(self) -> str: ...

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response: ...

    def close(self) -> None: ...


#: The one place foreign exceptions are translated: httpx error → what went wrong.
#: Looked up along the exception's MRO, so every httpx.RequestError has an entry.
HTTPX_ERRORS: dict[type[httpx.RequestError], str] = {
    httpx.ConnectTimeout: "timed out while connecting",
    httpx.ConnectError: "could not connect",
    httpx.TimeoutException: "timed out",
    httpx.NetworkError: "network error",
    httpx.ProtocolError: "HTTP protocol error",
    httpx.ProxyError: "proxy error",
    httpx.UnsupportedProtocol: "unsupported protocol",
    httpx.DecodingError: "could not decode the response",
    httpx.TooManyRedirects: "too many redirects",
    httpx.RequestError: "request failed",
}

# Failures where the connection broke before (or instead of) an answer.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
# Only requests that are safe to repeat are retried; a DELETE only when it cannot
# have reached the server (a dropped connection may have deleted already).
_RETRY_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_encode_json = jsonlib.JSONEncoder(separators=(",", ":")).encode


def map_httpx_error(exc: httpx.RequestError, method: str, url: str) -> TransportError:
    """Translate an httpx exception into a TransportError naming the method and masked URL."""
    what = next(HTTPX_ERRORS[cls] for cls in type(exc).__mro__ if cls in HTTPX_ERRORS)
    detail = str(exc) or type(exc).__name__
    return TransportError(f"{method} {url}: {what} ({detail})", method=method, url=url)


class HttpxConnection:
    """The default engine: a pooled keep-alive httpx transport, JSON in and out.

    Credentials come from the URL (percent-decoded), ``user``/``password``, or
    ``auth=(user, password)``. ``verify`` is True, False or a CA bundle path;
    ``transport`` replaces the network (``httpx.MockTransport`` in tests). GET, HEAD
    and DELETE are retried up to ``retries`` times with exponential backoff when the
    connection fails; nothing is retried once the server has answered.

    Requests go straight to the transport rather than through ``httpx.Client``: the
    client's cookie, auth-flow and redirect layers cost more per request than a
    CouchDB call needs, and none of them is used (no cookies, no redirects, a
    ready Basic header).
    """

    def __init__(
        self,
        url: str = "http://localhost:5984",
        *,
        user: str | None = None,
        password: str | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        verify: bool | str | ssl.SSLContext = True,
        retries: int = 2,
        backoff: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if auth is not None:
            user, password = auth
        address = parse_server_url(url, user=user, password=password)
        headers = {"Accept": "application/json", "User-Agent": "couchsync"}
        if address.user is not None:
            token = f"{address.user}:{address.password or ''}".encode()
            headers["Authorization"] = "Basic " + b64encode(token).decode("ascii")
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._base = address.base
        self._url = address.masked
        self._headers = headers
        self._json_headers = {**headers, "Content-Type": "application/json"}
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._retries = retries
        self._backoff = backoff
        self._closed = False
        if transport is None:
            # Loading the CA bundle costs ~20 ms per process; plain http never uses it.
            tls = verify if address.base.startswith("https:") else False
            transport = httpx.HTTPTransport(verify=tls)
        self._transport = transport

    @property
    def url(self) -> str:
        """The server's base URL, password masked."""
        return self._url

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and return the response (body read), whatever its status."""
        if self._closed:
            raise ClientClosedError(f"the client for {self._url} is closed")
        url = self._base + path
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        all_headers = self._headers
        if json is not None:
            content = _encode_json(json).encode()
            all_headers = self._json_headers
        if headers:
            all_headers = {**all_headers, **headers}
        request = httpx.Request(
            method, url, headers=all_headers, content=content, extensions=self._extensions
        )
        attempt = 0
        while True:
            try:
                response = self._transport.handle_request(request)
                response.read()
                return response
            except _RETRYABLE as exc:
                if attempt >= self._retries or method not in _RETRY_METHODS or (
                    method == "DELETE" and isinstance(exc, httpx.RemoteProtocolError)
                ):
                    raise map_httpx_error(exc, method, self._url + path) from exc
            except httpx.RequestError as exc:
                raise map_httpx_error(exc, method, self._url + path) from exc
            time.sleep(self._backoff * 2**attempt)
            attempt += 1

    def close(self) -> None:
        """Close the pooled connections; later requests raise ClientClosedError."""
        self._closed = True
        self._transport.close()

    def __repr__(self) -> str:
        return f"<HttpxConnection {self._url}>"


class Reply:
    """A successful (2xx) answer; ``json()`` turns a body that is not JSON into a CouchError.

    A proxy's login page or a misrouted request can answer 200 with HTML; that
    must surface as the scoped error users catch, not as a bare JSONDecodeError.
    """

    __slots__ = ("_method", "_response", "_scope", "_url")

    def __init__(self, response: Response, scope: type[CouchError], method: str, url: str) -> None:
        self._response = response
        self._scope = scope
        self._method = method
        self._url = url

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def content(self) -> bytes:
        return self._response.content

    def json(self) -> Any:
        try:
            return self._response.json()
        except ValueError as exc:
            kind = scoped(HTTPStatusError, self._scope)
            raise kind(
                f"{self._method} {self._url}: the server answered {self.status_code} with a body "
                "that is not JSON (is the URL a CouchDB server?)",
                method=self._method, url=self._url, status=self.status_code,
            ) from exc


def send(
    engine: ConnectionEngine,
    scope: type[CouchError],
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    json: Any = None,
) -> Reply:
    """Send through ``engine``; raise the ``scope``d error for a failure or a non-2xx answer.

    CouchDB never redirects, so a 3xx (a proxy's login redirect, say) is an error too.
    """
    try:
        response = engine.request(method, path, params=params, json=json)
    except TransportError as exc:
        raise rescope(exc, scope) from exc
    status = response.status_code
    if 200 <= status < 300:
        return Reply(response, scope, method, engine.url + path)
    try:
        body = response.json() if response.content else None
    except ValueError:  # a proxy's HTML error page, for example
        body = None
    raise error_for_status(status, body, method=method, url=engine.url + path, scope=scope)
