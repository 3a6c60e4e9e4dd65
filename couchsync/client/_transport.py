"""Connection engines: the small interface the client talks HTTP through, and its httpx engine.

An engine turns ``request(method, path, ...)`` into a response; it knows nothing
about CouchDB. Another engine plugs in by satisfying ``ConnectionEngine``; the
rest of the client core only ever calls ``send()`` below, which turns transport
failures and 4xx/5xx answers into the error tree of ``_errors``.

An engine factory (``Client(url, connection_engine=...)``) is called as
``factory(url, **engine_options)`` with the options the caller gave, so a
pycouchdb-style ``Callable[[str], Connection]`` still fits when none are given.

httpx itself is imported only when needed (a ``transport=``, an https or unusual
URL, a request to quote, an error, a compressed answer): a plan against a plain
http server sends everything through httpcore, and importing httpx would add
about a tenth to its whole run (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import quote, urlencode

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
from ._url import parse_server_url

if TYPE_CHECKING:
    import httpcore
    import httpx

__all__ = [
    "ConnectionEngine",
    "CoreResponse",
    "EarlyExchange",
    "EngineOwner",
    "HttpxConnection",
    "PendingReply",
    "Reply",
    "Response",
    "encode_json",
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


@functools.cache
def _httpx_errors() -> dict[type[httpx.RequestError], str]:
    import httpx

    return {
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


@functools.cache
def _retryable() -> tuple[type[Exception], ...]:
    """Failures where the connection broke before (or instead of) an answer: refused,
    reset, closed. (A timeout is not one: the server may still be at work on it.)"""
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
            httpx.ReadError, httpx.WriteError)


def _tls_problem(exc: BaseException) -> str | None:
    """What went wrong in TLS, in words, if ``exc`` comes from a TLS failure (a
    certificate refused either way): such a failure is not repeated."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ("the server's TLS certificate was not accepted "
                    f"({getattr(cause, 'verify_message', None) or cause}): give the CA "
                    "bundle that signed it (verify=, couchsync --cacert), or check the host "
                    "name")
        if isinstance(cause, ssl.SSLError) and not isinstance(
                cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            reason = str(getattr(cause, "reason", None) or cause).lower().replace("_", " ")
            if "certificate" in reason or "unknown ca" in reason or "handshake" in reason:
                return (f"the server refused the TLS connection ({reason}): it may want a "
                        "client certificate it trusts (cert=, couchsync --cert/--key)")
            return f"TLS error ({reason})"
        cause = cause.__cause__ or cause.__context__
    return None


def _describe(exc: Exception) -> str:
    """A failed connection in a few words, for a retry's log record."""
    errors = _httpx_errors()
    what = next(errors[cls] for cls in type(exc).__mro__ if cls in errors)
    return f"{what} ({type(exc).__name__})"


def __getattr__(name: str) -> Any:
    if name == "HTTPX_ERRORS":
        #: The one place foreign exceptions are translated: httpx error → what went wrong.
        #: Looked up along the exception's MRO, so every httpx.RequestError has an entry.
        #: (Made on first use: importing httpx costs time a plan does not need.)
        return _httpx_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# (method, path, params, target, json, content, headers) of one request, as sent again.
_Call = tuple[str, str, "Mapping[str, str] | None", str, Any, "bytes | None",
              "Mapping[str, str] | None"]
_encode_json = jsonlib.JSONEncoder(separators=(",", ":")).encode
_JSON_CONTENT = {"Content-Type": "application/json"}
_CORE_JSON_CONTENT = ((b"Content-Type", b"application/json"),)


def _httpx_timeout(timeout: Any) -> dict[str, float | None]:
    import httpx

    value: dict[str, float | None] = httpx.Timeout(timeout).as_dict()
    return value


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON bytes: the one encoder for request bodies."""
    return _encode_json(value).encode()


def map_httpx_error(exc: httpx.RequestError, method: str, url: str, *,
                    proxy: Proxy | None = None) -> TransportError:
    """Translate an httpx exception into a TransportError naming the method and masked URL
    (and the proxy, masked, when the request went through one)."""
    errors = _httpx_errors()
    what = next(errors[cls] for cls in type(exc).__mro__ if cls in errors)
    detail = str(exc) or type(exc).__name__
    message = f"{method} {url}: {what} ({detail})"
    tls = _tls_problem(exc)
    if tls is not None:
        message = f"{method} {url}: {tls}"
    if proxy is not None:
        message += f" [through the proxy {proxy.masked}, from {proxy.source}]"
    return TransportError(message, method=method, url=url)


# Targets the fast path sends as they are: nothing in them that httpx would re-quote
# (anything else goes through httpx.Request, exactly as before).
_PLAIN_TARGET = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Hosts httpx.URL takes as they are (lower case ASCII names and IPv4 addresses): for
# these the engine builds scheme, host, port and Host header itself, without httpx.
_PLAIN_HOST = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_EARLY_METHODS = frozenset({"GET", "HEAD"})
# How long an idle keep-alive connection is kept (httpx's default, httpx.Limits).
_KEEPALIVE_EXPIRY = 5.0
# Receive buffer of an early exchange's socket (the kernel caps it at net.core.rmem_max).
# CouchDB streams an answer row by row as the client reads it: with the default buffer
# (128 KiB, grown only while the application reads) a 1 MB revisions scan sent early
# stalled the server once the buffer was full, and most of it was served only when
# read. A buffer that holds the whole answer lets the server finish while we load.
_EARLY_RCVBUF = 16 << 20


class CoreResponse:
    """A response read straight from httpcore: the ``Response`` protocol and no more.

    ``headers`` (case-insensitive, ``RawHeaders``) is built only when asked for; a
    document GET never looks at them.
    """

    __slots__ = ("_headers", "_raw_headers", "content", "status_code")

    def __init__(
        self, status_code: int, raw_headers: list[tuple[bytes, bytes]], content: bytes
    ) -> None:
        self.status_code = status_code
        self.content = content
        self._raw_headers = raw_headers
        self._headers: RawHeaders | None = None

    @property
    def headers(self) -> RawHeaders:
        if self._headers is None:
            self._headers = RawHeaders(self._raw_headers)
        return self._headers

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<CoreResponse [{self.status_code}]>"


class RawHeaders(Mapping[str, str]):
    """Response headers as ``httpx.Headers`` reads them: names case-insensitive, values
    latin-1 (httpx's fallback), repeated headers joined with ``", "``."""

    __slots__ = ("_map",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        found: dict[str, list[str]] = {}
        for name, value in raw:
            found.setdefault(name.decode("latin-1").lower(), []).append(
                value.decode("latin-1"))
        self._map = {name: ", ".join(values) for name, values in found.items()}

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"RawHeaders({self._map!r})"


class _HeaderSet:
    """The request headers of one authentication state, prebuilt for every path a
    request may take; replaced whole (never changed) when a session cookie changes,
    so a thread that took one sends a consistent set. ``generation`` counts logins."""

    __slots__ = ("core", "core_no_body", "generation", "headers", "json_headers")

    def __init__(self, headers: dict[str, str], host: tuple[bytes, bytes] | None,
                 generation: int) -> None:
        self.headers = headers
        self.json_headers = {**headers, "Content-Type": "application/json"}
        self.generation = generation
        # The header list exactly as httpx.Request sends it on a request without a body.
        self.core: list[tuple[bytes, bytes]] = ([] if host is None else [host]) + [
            (name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
        # httpx gives a POST, PUT or PATCH without a body "Content-Length: 0" after Host.
        self.core_no_body = [*self.core[:1], (b"Content-Length", b"0"), *self.core[1:]]


class HttpxConnection:
    """The default engine: keep-alive connections of httpx's HTTP engine, JSON in and out.

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

    With ``transport``, requests are ``httpx.Request`` objects handed to it (which
    does its own pooling). Without, they go to httpcore's ``ConnectionPool`` (the
    pool and HTTP engine under httpx; its ``HTTPProxy`` through a proxy) directly:
    ``httpx.Client``'s cookie, auth-flow and redirect layers and the
    ``httpx.Request``/``httpx.Response`` wrapping cost more per request than a
    CouchDB call needs (see bench/PROFILE.md). Pooling, TLS, timeouts and HTTP
    parsing are httpcore's, and its errors become the httpx errors httpx would raise.
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
        if isinstance(verify, str):
            verify = _ca_context(verify)
        if cert is not None:
            verify = _with_client_cert(verify, cert, key)
        elif key is not None:
            raise ValueError("key= names the private key of a client certificate: give cert= too")
        self._base = address.base
        self._url = address.masked
        self._auth_headers = headers  # without a session cookie
        self._extensions = {"timeout": (
            dict.fromkeys(("connect", "read", "write", "pool"), float(timeout))
            if isinstance(timeout, (int, float))  # as httpx.Timeout(timeout).as_dict()
            else _httpx_timeout(timeout))}
        self._retries = retries
        self._backoff = backoff
        self._retry_budget = retry_budget
        self._closed = False
        self._transport = transport
        self._early: weakref.WeakSet[EarlyExchange] = weakref.WeakSet()  # sent, not yet read
        self._early_lock = threading.Lock()  # guards _early: threads may send early at once
        self._proxy: Proxy | None = None
        self._host_header: tuple[bytes, bytes] | None = None  # the core path's Host header
        if transport is None:
            self._init_core(verify, max_connections, proxy, trust_env)
        #: The headers every request gets (a session's cookie once logged in).
        self._hs = _HeaderSet(headers, self._host_header, 0)
        #: The headers of the login request: no credentials.
        self._login_hs = _HeaderSet(
            {"Accept": "application/json", "User-Agent": "couchsync"}, self._host_header, 0)

    def _init_core(self, verify: bool | ssl.SSLContext, max_connections: int,
                   proxy: str | None, trust_env: bool) -> None:
        import httpcore  # imported lazily, as httpx does: commands without a server skip it

        scheme, rest = self._base.split("://", 1)
        host_port, slash, prefix = rest.partition("/")
        host, _, port = host_port.rpartition(":")
        self._prefix = (slash + prefix).encode("ascii", "replace")
        if _PLAIN_HOST.fullmatch(host) and _PLAIN_TARGET.fullmatch(prefix):
            # What httpx.URL gives for such a URL, without importing httpx: the default
            # port is left out, as in the Host header.
            self._scheme, self._host = scheme.encode("ascii"), host.encode("ascii")
            self._port = None if int(port) == _DEFAULT_PORTS[self._scheme] else int(port)
            self._host_header = (
                b"Host", self._host + (b"" if self._port is None else b":%d" % self._port))
        else:  # IDNA, IPv6, a prefix to quote: as httpx sees it
            import httpx

            base = httpx.URL(self._base + "/")
            self._scheme, self._host, self._port = base.raw_scheme, base.raw_host, base.port
            self._prefix = base.raw_path[:-1]
            self._host_header = httpx.Request("GET", base).headers.raw[0]
        # Loading the CA bundle costs ~20 ms per process; plain http never uses a context.
        self._ssl_context: ssl.SSLContext | None = None
        if self._scheme == b"https":
            import httpx

            self._ssl_context = httpx.create_ssl_context(verify=verify)
        if proxy is not None:
            self._proxy = parse_proxy(proxy)
        elif trust_env:
            self._proxy = environment_proxy(scheme, host, int(port))
        self._core_request = httpcore.Request
        self._core_url = httpcore.URL
        # httpx.HTTPTransport's pool (see _pool_class); a request waits for a free
        # connection at most its "pool" timeout.
        if self._proxy is None:
            self._pool = _pool_class()(self._ssl_context, max_connections)
        else:
            log.info("reaching %s through the proxy %s (%s)", self._url, self._proxy.masked,
                     self._proxy.source)
            self._pool = _proxy_pool_class()(self._proxy, self._ssl_context, max_connections)
        self._core_errors: tuple[type[Exception], ...] = (
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.ProxyError,
            httpcore.UnsupportedProtocol,
        )

    @property
    def url(self) -> str:
        """The server's base URL, password masked."""
        return self._url

    def _plain_url(self, target: str) -> Any:
        """httpcore's URL of a target that needs no quoting (``_PLAIN_TARGET``)."""
        return self._core_url(scheme=self._scheme, host=self._host, port=self._port,
                              target=self._prefix + target.encode("ascii"))

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
        target = path + "?" + urlencode(params, quote_via=quote) if params else path
        call = (method, path, params, target, json, content, headers)
        if self._session is None:
            return self._exchange(self._hs, call)
        return self._session_exchange(call)

    def _build(self, hs: _HeaderSet, method: str, target: str, json: Any,
               content: bytes | None, headers: Mapping[str, str] | None) -> tuple[Any, Any]:
        """The request object for ``target`` with the headers of ``hs``, and how to send it."""
        if (
            self._transport is None
            and content is None
            and json is None
            and not headers
            and _PLAIN_TARGET.fullmatch(target)
        ):
            # No body, default headers, a target needing no quoting: all prebuilt.
            return self._core_request(
                method,
                self._plain_url(target),
                headers=hs.core_no_body if method in _BODY_METHODS else hs.core,
                extensions=self._extensions,
            ), self._send_core
        if (
            self._transport is None
            and (json is not None or content)
            and (not headers or headers == _JSON_CONTENT)
            and _PLAIN_TARGET.fullmatch(target)
        ):
            # A body with the default headers (JSON's Content-Type at most): the header
            # list httpx.Request builds, in its order (Content-Length last).
            if json is not None:
                content = encode_json(json)
                headers = _JSON_CONTENT
            assert content is not None
            return self._core_request(
                method,
                self._plain_url(target),
                headers=[*hs.core, *(_CORE_JSON_CONTENT if headers else ()),
                         (b"Content-Length", b"%d" % len(content))],
                content=content,
                extensions=self._extensions,
            ), self._send_core
        import httpx

        all_headers = hs.headers
        if json is not None:
            content = encode_json(json)
            all_headers = hs.json_headers
        if headers:
            all_headers = {**all_headers, **headers}
        request = httpx.Request(
            method,
            self._base + target,
            headers=all_headers,
            content=content,
            extensions=self._extensions,
        )
        if self._transport is not None:
            return request, self._send_transport
        # as httpx.HTTPTransport turns it into an httpcore request
        return self._core_request(
            request.method,
            self._core_url(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.content,
            extensions=self._extensions,
        ), self._send_core

    def _exchange(self, hs: _HeaderSet, call: _Call) -> Response:
        """Send ``call`` with the headers of ``hs``, repeating it where ``_retry`` allows."""
        method, path, params, target, json, content, headers = call
        attempt = 0
        waited = 0.0
        while True:
            request, send = self._build(hs, method, target, json, content, headers)
            try:
                response: Response = send(request)
            except Exception as exc:
                import httpx  # errors are httpx's (the core path maps httpcore's)

                if not isinstance(exc, httpx.RequestError):
                    raise
                problem = _describe(exc)
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
    def _may_repeat_after(exc: Exception, call: _Call) -> bool:
        """Whether ``call``, which failed with ``exc`` (an httpx error), may be sent again."""
        import httpx

        if not isinstance(exc, _retryable()) or _tls_problem(exc) is not None:
            return False
        method, path, params, _, json, content, _ = call
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) and method != "POST":
            return True  # nothing reached the server
        return repeatable(method, path, params, json, content)

    # -- cookie sessions

    def _session_exchange(self, call: _Call) -> Response:
        """``_exchange`` with the session cookie: log in first if there is none yet (or it
        is about to expire); log in again, once, if the server no longer takes it (401)."""
        session = self._session
        assert session is not None
        hs = self._hs
        if hs.generation == 0 or session.expiring():
            refused = self._login(hs.generation)
            if refused is not None:
                return refused
            hs = self._hs
        response = self._exchange(hs, call)
        self._take_cookie(response)
        if response.status_code != 401:
            return response
        # The cookie expired (CouchDB then takes the request as anonymous): the request
        # was refused before anything was done, so sending it again is safe.
        refused = self._login(hs.generation, expired=True)
        if refused is not None:
            return refused
        response = self._exchange(self._hs, call)
        self._take_cookie(response)
        return response

    def _login(self, seen: int, *, expired: bool = False) -> Response | None:
        """Log in unless another thread already has since ``seen`` (a generation of the
        headers); None on success, else the answer that refused it."""
        session = self._session
        assert session is not None
        with session.lock:
            if session.refused is not None:
                return cast(Response, session.refused)
            if self._hs.generation != seen:
                return None  # another thread logged in meanwhile
            if self._closed:
                raise ClientClosedError(f"the client for {self._url} is closed")
            log.info("%s: POST /_session as %r", "session expired, logging in again"
                     if expired else "logging in", session.user,
                     extra={"method": "POST", "path": "/_session"})
            call: _Call = ("POST", "/_session", None, "/_session", session.login_body(),
                           None, None)
            response = self._exchange(self._login_hs, call)
            found = session_cookie(response) if response.status_code == 200 else None
            if found is None:
                if response.status_code == 200:  # no cookie: cookie auth is off there
                    response = CoreResponse(401, [], encode_json({
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
        a tenth of the session's time has passed)."""
        found = session_cookie(response)
        if found is not None and found[0] != self._hs.headers.get("Cookie", "")[12:]:
            assert self._session is not None
            with self._session.lock:
                self._use_cookie(*found)

    def _use_cookie(self, cookie: str, max_age: int | None) -> None:
        assert self._session is not None
        self._session.set_expiry(max_age)
        headers = {**self._auth_headers, "Cookie": "AuthSession=" + cookie}
        self._hs = _HeaderSet(headers, self._host_header, self._hs.generation + 1)

    def _send_transport(self, request: httpx.Request) -> httpx.Response:
        assert self._transport is not None
        response = self._transport.handle_request(request)
        response.read()
        return response

    def _send_core(self, request: Any) -> Response:
        """One exchange on a connection of httpcore's pool; httpcore errors become httpx's."""
        try:
            response = self._pool.handle_request(request)
            stream: Any = response.stream  # a PoolByteStream (the sync pool's)
            try:
                body = b"".join(stream)
            finally:
                stream.close()  # hands the connection back to the pool
        except self._core_errors as exc:
            raise _httpx_error(exc) from exc
        finally:
            if self._closed:  # close() ran meanwhile: no connection may outlive it
                self._pool.close()
        return _core_response(response.status, response.headers, body)

    def send_early(self, method: str, path: str, *,
                   params: Mapping[str, str] | None = None) -> EarlyExchange | None:
        """Send a GET or HEAD now; read its answer later (``result()``).

        The request goes out on a connection of its own, so the server works on
        it while the caller does something else (loading manifests, say) in the
        same thread. None when the request cannot be sent this way (another
        method, a ``transport``, a proxy, a target to quote, a session not yet
        logged in): the caller then uses ``request``. ``close()`` closes the
        exchanges not yet read.
        """
        if self._closed:
            raise ClientClosedError(f"the client for {self._url} is closed")
        target = path + "?" + urlencode(params, quote_via=quote) if params else path
        if (method not in _EARLY_METHODS or self._transport is not None
                or self._proxy is not None or not _PLAIN_TARGET.fullmatch(target)
                or (self._session is not None
                    and (self._hs.generation == 0 or self._session.expiring()))):
            return None
        exchange = EarlyExchange(self, method, path, params,
                                 self._prefix + target.encode("ascii"))
        with self._early_lock:
            self._early.add(exchange)
        if self._closed:  # close() ran while it was being sent
            exchange.close()
        return exchange

    def close(self) -> None:
        """Close the pooled connections and the early exchanges not yet read; later
        requests raise ClientClosedError."""
        self._closed = True
        with self._early_lock:
            early = list(self._early)
        for exchange in early:
            exchange.close()
        if self._transport is not None:
            self._transport.close()
        else:
            self._pool.close()

    def __repr__(self) -> str:
        return f"<HttpxConnection {self._url}>"


def _ca_context(path: str) -> ssl.SSLContext:
    """A TLS context trusting the CA bundle at ``path`` (a file, or a directory of hashed
    certificates). A file that cannot be read raises its OSError, naming the path; one
    that holds no certificate a ValueError."""
    import os

    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot use the CA bundle {path}: {exc.reason or exc}") from None
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the CA bundle: {exc.strerror}",
                        path) from None


def _with_client_cert(verify: bool | ssl.SSLContext, cert: str,
                      key: str | None) -> ssl.SSLContext:
    """``verify`` as a TLS context that presents the client certificate ``cert`` (a PEM
    file; its private key in it or in ``key``); ValueError naming the files when they
    cannot be loaded. An ``ssl.SSLContext`` given is changed in place."""
    if isinstance(verify, ssl.SSLContext):
        context = verify
    else:
        import httpx

        context = httpx.create_ssl_context(verify=verify)
    files = cert if key is None else f"{cert} and {key}"
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot load the client certificate from {files}: "
                         f"{exc.reason or exc} (a PEM certificate and its unencrypted "
                         "private key)") from None
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the client certificate: {exc.strerror}",
                        files) from None
    return context


@functools.cache
def _proxy_pool_class() -> Callable[[Proxy, ssl.SSLContext | None, int],
                                    httpcore.ConnectionPool]:
    """httpcore's HTTPProxy (a ConnectionPool that forwards ``http://`` requests through
    the proxy and tunnels ``https://`` ones with CONNECT), with ``_pool_class``'s mend
    of ``has_expired``."""
    import httpcore
    from httpcore._sync.http_proxy import ForwardHTTPConnection, TunnelHTTPConnection

    class Forward(ForwardHTTPConnection):
        def has_expired(self) -> bool:
            return super().has_expired() and self.is_idle()

    class Tunnel(TunnelHTTPConnection):
        def has_expired(self) -> bool:
            return super().has_expired() and self.is_idle()

    class ProxyPool(httpcore.HTTPProxy):
        def __init__(self, proxy: Proxy, ssl_context: ssl.SSLContext | None,
                     max_connections: int) -> None:
            proxy_tls = None
            if proxy.url.startswith("https:"):  # TLS to the proxy too: the same trust
                proxy_tls = ssl_context or ssl.create_default_context()
            super().__init__(
                proxy_url=proxy.url,
                proxy_auth=None if proxy.user is None else (
                    proxy.user.encode(), (proxy.password or "").encode()),
                ssl_context=ssl_context, proxy_ssl_context=proxy_tls,
                max_connections=max_connections, max_keepalive_connections=max_connections,
                keepalive_expiry=_KEEPALIVE_EXPIRY)

        def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
            if origin.scheme == b"http":
                return Forward(
                    proxy_origin=self._proxy_url.origin, proxy_headers=self._proxy_headers,
                    remote_origin=origin, keepalive_expiry=self._keepalive_expiry,
                    network_backend=self._network_backend,
                    proxy_ssl_context=self._proxy_ssl_context)
            return Tunnel(
                proxy_origin=self._proxy_url.origin, proxy_headers=self._proxy_headers,
                remote_origin=origin, ssl_context=self._ssl_context,
                proxy_ssl_context=self._proxy_ssl_context,
                keepalive_expiry=self._keepalive_expiry, network_backend=self._network_backend)

    return ProxyPool


@functools.cache
def _pool_class() -> Callable[[ssl.SSLContext | None, int], httpcore.ConnectionPool]:
    """httpcore's ConnectionPool, with one race of its thread-safety mended.

    The pool decides under its lock which connections have expired, but a
    connection's ``has_expired()`` (httpcore 1.0.9) reads "idle" and then "is the
    socket readable" (a server disconnect) as two steps: when another thread starts
    a request on that connection in between and the answer arrives, it counts as
    disconnected, and the pool closes the socket under that thread's request ("Bad
    file descriptor", or a hang until the read timeout). Seen here with 16 threads
    on 4 connections; upstream: encode/httpcore#1110 (the same kind of race on the
    pool's other closing paths) and #928 (moves the readability check under the
    connection's lock). Here a connection has expired only if it is idle after
    the check too; one that another thread took meanwhile is left to it.

    Every connection may stay open as a keep-alive one (``max_keepalive_connections
    = max_connections``): the pool's surplus-idle path, racy in the same way
    (#1110), then never runs.
    """
    import httpcore

    class Connection(httpcore.HTTPConnection):
        def has_expired(self) -> bool:
            return super().has_expired() and self.is_idle()

    class Pool(httpcore.ConnectionPool):
        def __init__(self, ssl_context: ssl.SSLContext | None, max_connections: int) -> None:
            super().__init__(ssl_context=ssl_context, max_connections=max_connections,
                             max_keepalive_connections=max_connections,
                             keepalive_expiry=_KEEPALIVE_EXPIRY)
            self._tls = ssl_context

        def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
            return Connection(origin, ssl_context=self._tls, keepalive_expiry=_KEEPALIVE_EXPIRY)

    return Pool


def _core_response(status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    for name, value in raw_headers:
        if len(name) == 16 and name.lower() == b"content-encoding" and value != b"identity":
            # Compressed though nothing asked for it: httpx decodes it, so do that.
            import httpx

            decoded = httpx.Response(status, headers=raw_headers, content=body)
            decoded.read()
            return decoded
    return CoreResponse(status, raw_headers, body)


class EarlyExchange:
    """One request sent at once on a connection of its own, its answer read when asked for.

    httpcore sends a request and waits for the answer in one call; this splits
    the two with httpcore's network layer and h11 (httpcore's HTTP/1.1 parser).
    Anything that goes wrong, sending or reading, makes ``result()`` send the
    request again the ordinary way (with its retries and error reporting), so an
    early exchange never answers differently from ``request``: only sooner. That
    is why only GET and HEAD are sent early: they are safe to send twice.
    """

    def __init__(self, engine: HttpxConnection, method: str, path: str,
                 params: Mapping[str, str] | None, target: bytes) -> None:
        import h11
        import httpcore

        self._engine = engine
        self._request = (method, path, params)
        self._h11 = h11.Connection(h11.CLIENT)
        self._stream: Any = None
        timeouts = engine._extensions["timeout"]
        try:
            stream = httpcore.SyncBackend().connect_tcp(
                engine._host.decode("ascii"), engine._port or (443 if engine._scheme == b"https"
                                                               else 80),
                timeout=timeouts["connect"])
            sock = stream.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):  # only ever faster; never a failure
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _EARLY_RCVBUF)
            if engine._ssl_context is not None:  # https
                stream = stream.start_tls(engine._ssl_context,
                                          server_hostname=engine._host.decode("ascii"),
                                          timeout=timeouts["connect"])
            self._stream = stream
            head = self._h11.send(h11.Request(method=method, target=target,
                                              headers=engine._hs.core))
            stream.write(head + (self._h11.send(h11.EndOfMessage()) or b""),
                         timeout=timeouts["write"])
        except (OSError, httpcore.NetworkError, httpcore.TimeoutException, h11.ProtocolError):
            self.close()  # result() asks again, the ordinary way

    def result(self) -> Response:
        """The answer (read now, if it has not all arrived), whatever its status."""
        import h11
        import httpcore

        if self._engine._closed:
            self.close()
            raise ClientClosedError(f"the client for {self._engine.url} is closed")
        stream = self._stream  # close() from another thread sets it to None
        if stream is None:
            return self._engine.request(*self._request[:2], params=self._request[2])
        status, raw_headers, chunks = 0, [], []
        try:
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    self._h11.receive_data(stream.read(
                        1 << 18, timeout=self._engine._extensions["timeout"]["read"]))
                elif isinstance(event, h11.Response):
                    status, raw_headers = event.status_code, list(event.headers.raw_items())
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("the server closed the connection")
        except (OSError, httpcore.NetworkError, httpcore.TimeoutException, h11.ProtocolError):
            self.close()
            return self._engine.request(*self._request[:2], params=self._request[2])
        finally:
            self.close()
        response = _core_response(status, raw_headers, b"".join(chunks))
        if status in RETRY_STATUSES or (status == 401 and self._engine._session is not None):
            # Not now, or a session cookie that expired: the ordinary way waits and
            # repeats, or logs in again (a GET or HEAD may be sent twice).
            return self._engine.request(*self._request[:2], params=self._request[2])
        if self._engine._session is not None:
            self._engine._take_cookie(response)
        return response

    def close(self) -> None:
        """Drop the connection (an answer never asked for is simply not read)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    __del__ = close  # an iterator dropped before it started still lets its connection go


def _httpx_error(exc: Exception) -> httpx.RequestError:
    """The httpx exception httpx's transport raises for this httpcore one (most specific)."""
    import httpcore
    import httpx

    mapping: dict[type[Exception], type[httpx.RequestError]] = {
        httpcore.ConnectTimeout: httpx.ConnectTimeout,
        httpcore.ReadTimeout: httpx.ReadTimeout,
        httpcore.WriteTimeout: httpx.WriteTimeout,
        httpcore.PoolTimeout: httpx.PoolTimeout,
        httpcore.TimeoutException: httpx.TimeoutException,
        httpcore.ConnectError: httpx.ConnectError,
        httpcore.ReadError: httpx.ReadError,
        httpcore.WriteError: httpx.WriteError,
        httpcore.NetworkError: httpx.NetworkError,
        httpcore.ProxyError: httpx.ProxyError,
        httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
        httpcore.LocalProtocolError: httpx.LocalProtocolError,
        httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
        httpcore.ProtocolError: httpx.ProtocolError,
    }
    kind = next(mapping[cls] for cls in type(exc).__mro__ if cls in mapping)
    return kind(str(exc))



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
    return _checked(response, engine, scope, method, path)


class PendingReply:
    """A GET or HEAD sent early (``HttpxConnection.send_early``), its answer checked
    by ``result()`` exactly as ``send`` checks one. With an engine that cannot send
    early, the request is simply sent by ``result()``."""

    def __init__(self, engine: ConnectionEngine, scope: type[CouchError], method: str,
                 path: str, params: Mapping[str, str] | None = None) -> None:
        self._request = (engine, scope, method, path, params)
        send_early = getattr(engine, "send_early", None)  # optional in the engine interface
        self._exchange: EarlyExchange | None = (
            None if send_early is None else send_early(method, path, params=params))

    def result(self) -> Reply:
        engine, scope, method, path, params = self._request
        if self._exchange is None:
            return send(engine, scope, method, path, params=params)
        try:
            response = self._exchange.result()
        except TransportError as exc:
            raise rescope(exc, scope) from exc
        return _checked(response, engine, scope, method, path)

    def close(self) -> None:
        """Forget the answer (unless already read)."""
        if self._exchange is not None:
            self._exchange.close()


def _checked(response: Response, engine: ConnectionEngine, scope: type[CouchError],
             method: str, path: str) -> Reply:
    status = response.status_code
    if 200 <= status < 300:
        return Reply(response, scope, method, engine.url + path)
    try:
        body = response.json() if response.content else None
    except ValueError:  # a proxy's HTML error page, for example
        body = None
    raise error_for_status(status, body, method=method, url=engine.url + path, scope=scope)
