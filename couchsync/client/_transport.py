"""Connection engines: the small interface the client talks HTTP through, and its httpx engine.

An engine turns ``request(method, path, ...)`` into a response; it knows nothing
about CouchDB. Another engine plugs in by satisfying ``ConnectionEngine``; the
rest of the client core only ever calls ``send()`` below, which turns transport
failures and 4xx/5xx answers into the error tree of ``_errors``.

An engine factory (``Client(url, connection_engine=...)``) is called as
``factory(url, **engine_options)`` with the options the caller gave, so a
pycouchdb-style ``Callable[[str], Connection]`` still fits when none are given.

The default engine is one ``httpx.Client``: its pool, proxies, TLS and HTTP. What
couchsync adds is what httpx does not do: CouchDB's errors (``_errors``), which
requests may be repeated (``_retry``) and cookie sessions (``_auth``).
"""

from __future__ import annotations

import json as jsonlib
import ssl
import time
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlencode

import httpx

from ._auth import Session, basic_header, bearer_header, session_cookie
from ._errors import (
    ClientClosedError,
    CouchError,
    HTTPStatusError,
    TransportError,
    _phrase,
    error_for_status,
    rescope,
    scoped,
)
from ._proxy import Proxy, environment_proxy, parse_proxy
from ._retry import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BUDGET,
    RETRY_STATUSES,
    STATUS_PAUSE,
    log,
    log_give_up,
    log_retry,
    repeatable,
    retry_after,
)
from ._tls import tls_context, tls_problem
from ._url import parse_server_url

__all__ = [
    "HTTPX_ERRORS",
    "ConnectionEngine",
    "EngineOwner",
    "HttpxConnection",
    "Reply",
    "Response",
    "encode_json",
    "map_httpx_error",
    "send",
]


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
# Failures where the connection broke before (or instead of) an answer: refused, reset,
# closed. (A timeout is not one: the server may still be at work on it.)
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
              httpx.ReadError, httpx.WriteError)
_JSON_CONTENT = {"Content-Type": "application/json"}
_encode_json = jsonlib.JSONEncoder(separators=(",", ":")).encode
# How long an idle keep-alive connection is kept (httpx's default).
_KEEPALIVE_EXPIRY = 5.0
# (method, path, params, json, content, headers) of one request, as sent again.
_Call = tuple[str, str, "Mapping[str, str] | None", Any, "bytes | None",
              "Mapping[str, str] | None"]


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON bytes: the one encoder for request bodies."""
    return _encode_json(value).encode()


def _what(exc: httpx.RequestError) -> str:
    return next(HTTPX_ERRORS[cls] for cls in type(exc).__mro__ if cls in HTTPX_ERRORS)


def map_httpx_error(exc: httpx.RequestError, method: str, url: str, *,
                    proxy: Proxy | None = None) -> TransportError:
    """Translate an httpx exception into a TransportError naming the method and masked URL
    (and the proxy, masked, when the request went through one)."""
    message = f"{method} {url}: {_what(exc)} ({str(exc) or type(exc).__name__})"
    tls = tls_problem(exc)
    if tls is not None:
        message = f"{method} {url}: {tls}"
    if proxy is not None:
        message += f" [through the proxy {proxy.masked}, from {proxy.source}]"
    return TransportError(message, method=method, url=url)


class HttpxConnection:
    """The default engine: one ``httpx.Client`` (keep-alive pool), JSON in and out.

    Authentication (``_auth`` has the details): Basic with credentials from the URL
    (percent-decoded), ``user``/``password`` or ``auth=(user, password)``; with
    ``session=True`` the same credentials log in once (``POST /_session``) and the
    ``AuthSession`` cookie is sent instead, renewed when it expires; ``token`` sends
    ``Authorization: Bearer <token>`` (JWT) instead of any credentials.

    TLS: ``verify`` is True, False, a CA bundle path or an ``ssl.SSLContext``;
    ``cert`` (a PEM file, with the key unless ``key`` names it) is presented as the
    client certificate. Proxies: ``proxy`` (``http://[user:pass@]host:port``), else,
    with ``trust_env``, ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``
    (``_proxy`` has the rules). ``transport`` replaces the network (``httpx.MockTransport``
    in tests): ``verify``, ``cert``, ``proxy`` and ``max_connections`` are then unused.

    Retries (``_retry`` has the rules): a request is repeated at most ``retries``
    times when the connection fails or the server answers 429 or 503, and only when
    a repeat cannot do anything twice; pauses start at ``backoff`` after a failed
    connection and at 1 s after a 429/503 (or are its ``Retry-After``), double each
    time, and add up to at most ``retry_budget`` seconds. Each repeat is logged at
    INFO on the ``couchsync.client`` logger.

    Safe to use from many threads at once. ``max_connections`` (default 16) bounds
    the connections open to the server at a time: a request that finds them all busy
    waits for one to be free, at most the request ``timeout`` (then it fails with
    "timed out"). Idle keep-alive connections are kept for 5 s.
    """

    def __init__(
        self,
        url: str = "http://localhost:5984",
        *,
        user: str | None = None,
        password: str | None = None,
        auth: tuple[str, str] | None = None,
        session: bool = False,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        verify: bool | str | ssl.SSLContext = True,
        cert: str | None = None,
        key: str | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 16,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if retries < 0 or backoff < 0 or retry_budget < 0:
            raise ValueError("retries, backoff and retry_budget must not be negative")
        if auth is not None:
            user, password = auth
        address = parse_server_url(url, user=user, password=password)
        headers = {"Accept": "application/json", "User-Agent": "couchsync"}
        self._session: Session | None = None
        if token is not None:
            if address.user is not None or address.password is not None:
                raise ValueError("give either a token or a user and password, not both")
            if session:
                raise ValueError("session=True logs in with a user and password, not a token")
            headers["Authorization"] = bearer_header(token)
        elif session:
            if address.user is None:
                raise ValueError("session=True needs a user name and password to log in with")
            self._session = Session(address.user, address.password or "")
        elif address.user is not None:
            headers["Authorization"] = basic_header(address.user, address.password)
        self._base = address.base
        self._url = address.masked
        self._retries = retries
        self._backoff = backoff
        self._retry_budget = retry_budget
        self._closed = False
        #: The session's cookie header and how many logins gave it (replaced whole).
        self._cookie: tuple[int, dict[str, str]] = (0, {})
        self._proxy: Proxy | None = None
        if transport is None:
            scheme, rest = self._base.split("://", 1)
            host, _, port = rest.partition("/")[0].rpartition(":")
            if proxy is not None:
                self._proxy = parse_proxy(proxy)
            elif trust_env:
                self._proxy = environment_proxy(scheme, host, int(port))
            context = tls_context(scheme == "https", verify, cert, key)
            transport = httpx.HTTPTransport(
                verify=context,
                limits=httpx.Limits(max_connections=max_connections,
                                    max_keepalive_connections=max_connections,
                                    keepalive_expiry=_KEEPALIVE_EXPIRY),
                proxy=None if self._proxy is None else self._httpx_proxy(
                    self._proxy, context if scheme == "https" else None))
        self._transport = transport
        self._client = httpx.Client(
            transport=transport, timeout=timeout, trust_env=False,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))  # see _take_cookie
        # Exactly these headers (httpx would add Accept-Encoding and Connection).
        self._client.headers.clear()
        self._client.headers.update(headers)

    def _httpx_proxy(self, proxy: Proxy, context: ssl.SSLContext | None) -> httpx.Proxy:
        log.info("reaching %s through the proxy %s (%s)", self._url, proxy.masked, proxy.source)
        return httpx.Proxy(
            proxy.url, auth=None if proxy.user is None else (proxy.user, proxy.password or ""),
            # TLS to an https proxy trusts what the server is trusted by (else the default).
            ssl_context=context if proxy.url.startswith("https:") else None)

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
    ) -> Response:
        """Send one request and return the response (body read), whatever its status."""
        if self._closed:
            raise ClientClosedError(f"the client for {self._url} is closed")
        call = (method, path, params, json, content, headers)
        if self._session is None:
            return self._exchange(call)
        return self._session_exchange(call)

    def _send(self, call: _Call, cookie: Mapping[str, str]) -> httpx.Response:
        method, path, params, json, content, headers = call
        if json is not None:
            content = encode_json(json)
            headers = {**_JSON_CONTENT, **(headers or {})}
        if cookie:
            headers = {**(headers or {}), **cookie}
        target = path + "?" + urlencode(params, quote_via=quote) if params else path
        try:
            return self._client.request(method, self._base + target, content=content,
                                        headers=headers)
        except RuntimeError:  # httpx's "the client has been closed", from another thread
            if self._closed:
                raise ClientClosedError(f"the client for {self._url} is closed") from None
            raise
        finally:
            if self._closed:  # closed while this ran: no connection may outlive it
                self._transport.close()

    def _exchange(self, call: _Call, cookie: Mapping[str, str] | None = None) -> Response:
        """Send ``call`` (with the session's ``cookie``), repeating it where ``_retry``
        allows."""
        method, path, params, json, content, _ = call
        attempt = 0
        waited = 0.0
        while True:
            try:
                response = self._send(call, cookie or {})
            except httpx.RequestError as exc:
                problem = f"{_what(exc)} ({type(exc).__name__})"
                wait = self._backoff * 2**attempt
                if not self._may_repeat_after(exc, call) or attempt >= self._retries or (
                        waited + wait > self._retry_budget):
                    raise map_httpx_error(exc, method, self._url + path,
                                          proxy=self._proxy) from exc
            else:
                status = response.status_code
                if status not in RETRY_STATUSES:
                    return response
                problem = f"{status} {_phrase(status)}"
                asked = retry_after(response.headers.get("retry-after"))
                wait = STATUS_PAUSE * 2**attempt if asked is None else asked
                if attempt >= self._retries:
                    if self._retries:
                        log_give_up(method, path, problem, f"retried {self._retries} time"
                                    f"{'s' if self._retries != 1 else ''}")
                    return response
                if not repeatable(method, path, params, json, content):
                    log_give_up(method, path, problem, "a repeat could do it twice")
                    return response
                if waited + wait > self._retry_budget:
                    log_give_up(method, path, problem,
                                f"waiting {wait:g} s more would pass the retry budget "
                                f"({self._retry_budget:g} s)")
                    return response
            attempt += 1
            log_retry(method, path, problem, attempt, self._retries, wait)
            time.sleep(wait)
            waited += wait
            if self._closed:  # closed by another thread meanwhile: no new connection
                raise ClientClosedError(f"the client for {self._url} is closed")

    @staticmethod
    def _may_repeat_after(exc: httpx.RequestError, call: _Call) -> bool:
        """Whether ``call``, which failed with ``exc``, may be sent again."""
        if not isinstance(exc, _RETRYABLE) or tls_problem(exc) is not None:
            return False
        method, path, params, json, content, _ = call
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) and method != "POST":
            return True  # nothing reached the server
        return repeatable(method, path, params, json, content)

    # -- cookie sessions

    def _session_exchange(self, call: _Call) -> Response:
        """``_exchange`` with the session cookie: log in first if there is none yet (or it
        is about to expire); log in again, once, if the server no longer takes it (401)."""
        session = self._session
        assert session is not None
        generation, cookie = self._cookie
        if generation == 0 or session.expiring():
            refused = self._login(generation)
            if refused is not None:
                return refused
            generation, cookie = self._cookie
        response = self._exchange(call, cookie)
        self._take_cookie(response)
        if response.status_code != 401:
            return response
        # The cookie expired (CouchDB then takes the request as anonymous): the request
        # was refused before anything was done, so sending it again is safe.
        refused = self._login(generation, expired=True)
        if refused is not None:
            return refused
        response = self._exchange(call, self._cookie[1])
        self._take_cookie(response)
        return response

    def _login(self, seen: int, *, expired: bool = False) -> Response | None:
        """Log in unless another thread already has since login ``seen``; None on
        success, else the answer that refused it."""
        session = self._session
        assert session is not None
        with session.lock:
            if session.refused is not None:
                refused: Response = session.refused
                return refused
            if self._cookie[0] != seen:
                return None  # another thread logged in meanwhile
            if self._closed:
                raise ClientClosedError(f"the client for {self._url} is closed")
            log.info("%s: POST /_session as %r", "session expired, logging in again"
                     if expired else "logging in", session.user,
                     extra={"method": "POST", "path": "/_session"})
            response = self._exchange(
                ("POST", "/_session", None, session.login_body(), None, None))
            found = session_cookie(response) if response.status_code == 200 else None
            if found is None:
                if response.status_code == 200:  # no cookie: cookie auth is off there
                    response = httpx.Response(401, content=encode_json({
                        "error": "unauthorized",
                        "reason": "the server accepted the login but set no AuthSession "
                                  "cookie: use Basic authentication (session=False)"}))
                log.info("login as %r refused: %d", session.user, response.status_code)
                if response.status_code in (400, 401, 403):  # not a passing failure
                    session.refused = response
                return response
            self._use_cookie(*found)
            return None

    def _take_cookie(self, response: Response) -> None:
        """Take up a session cookie the server refreshed (CouchDB sends a new one once
        a tenth of the session's time has passed). httpx's own cookie jar takes none:
        the cookie is renewed here, once for all threads, and never sent with a login."""
        found = session_cookie(response)
        if found is not None and found[0] != self._cookie[1].get("Cookie", "")[12:]:
            assert self._session is not None
            with self._session.lock:
                self._use_cookie(*found)

    def _use_cookie(self, cookie: str, max_age: int | None) -> None:
        assert self._session is not None
        self._session.set_expiry(max_age)
        self._cookie = (self._cookie[0] + 1, {"Cookie": "AuthSession=" + cookie})

    def close(self) -> None:
        """Close the pooled connections; later requests raise ClientClosedError."""
        self._closed = True
        self._client.close()

    def __repr__(self) -> str:
        return f"<HttpxConnection {self._url}>"


_Owner = TypeVar("_Owner", bound="EngineOwner")


class EngineOwner:
    """What Client and Server share: one engine, a repr that shows no password,
    and closing (also as a context manager); later calls raise ClientClosedError."""

    _conn: ConnectionEngine

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._conn.url}>"

    @property
    def url(self) -> str:
        """The server's URL, any password masked."""
        return self._conn.url

    def __enter__(self: _Owner) -> _Owner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection engine (shared with the Databases and Server it made)."""
        self._conn.close()


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
    json_bytes: bytes | None = None,
) -> Reply:
    """Send through ``engine``; raise the ``scope``d error for a failure or a non-2xx answer.

    ``json_bytes`` is a body already encoded as JSON (instead of ``json``).
    CouchDB never redirects, so a 3xx (a proxy's login redirect, say) is an error too.
    """
    try:
        if json_bytes is None:
            response = engine.request(method, path, params=params, json=json)
        else:
            response = engine.request(method, path, params=params, content=json_bytes,
                                      headers=_JSON_CONTENT)
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
