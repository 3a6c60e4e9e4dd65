"""Connection engines: the interface the client talks HTTP through, and its httpx engine.

An engine knows nothing of CouchDB; the client core calls ``send()``, which turns failures
and 4xx/5xx answers into the errors of ``_errors``.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpcore
import httpx

from ._auth import Session, credentials
from ._errors import (
    ClientClosedError,
    CouchError,
    HTTPStatusError,
    TransportError,
    _phrase,
    _what,
    error_for_status,
    map_httpx_error,
    rescope,
    scoped,
)
from ._iam import FORM_HEADERS, IAM_URL, IamToken
from ._pacing import Pacing
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
    may_repeat_after,
    repeatable,
    retry_after,
)
from ._tls import tls_context
from ._url import parse_server_url

__all__ = ["ConnectionEngine", "HttpxConnection", "Reply", "Response", "encode_json", "send"]


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
    """The interface between the client core and HTTP (docs/client.md, "Engines"): ``url`` is
    the server's base URL, password masked; ``request`` returns the response whatever its
    status, raises TransportError when none arrives and ClientClosedError after ``close()``.
    """

    @property
    def url(self) -> str: ...

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                json: Any = None, content: Content | None = None,
                headers: Mapping[str, str] | None = None) -> Response: ...

    def close(self) -> None: ...


#: A request body: bytes, or chunks (a file streamed; one that can be iterated again, as
#: ``FileChunks``, is sent again on a retry).
Content = bytes | Iterable[bytes]
_JSON_CONTENT = {"Content-Type": "application/json"}
_ENCODER = jsonlib.JSONEncoder(separators=(",", ":"))
# (method, path, params, json, content, headers) of one request, as sent again.
_Call = tuple[str, str, "Mapping[str, str] | None", Any, "Content | None",
              "Mapping[str, str] | None"]


def _has_expired_locked(connection: httpcore.HTTP11Connection) -> bool:
    """httpcore's ``has_expired``, its two reads of the connection taken under the
    connection's own state lock.

    httpcore 1.0.9 (encode/httpcore#1110, open; no release mends it) reads "idle",
    then "its socket is readable": a thread that starts a request on the connection
    between the two, and gets its answer, has the socket closed under it by the pool
    ("Bad file descriptor", or a hang to the read timeout, which no retry repeats).
    Under the lock the connection is either idle with nothing sent (readable: the
    server closed it) or active.
    """
    lock = getattr(connection, "_state_lock", None)
    if lock is None:  # an httpcore whose connections have no such lock
        return _has_expired(connection)
    with lock:
        return _has_expired(connection)


_has_expired = httpcore.HTTP11Connection.has_expired
setattr(httpcore.HTTP11Connection, "has_expired", _has_expired_locked)  # noqa: B010


class _NoCookies(httpx.Cookies):
    """Cookies that take none from an answer: the session's is kept by ``_auth``, one for
    all threads, and httpx reads every answer for cookies through a ``urllib`` copy of
    its request, a large share of a GET's work (bench/RESULTS.md)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.Client):
    """``httpx.Client`` whose ``cookies`` (what it reads answers into) take none."""

    _no_cookies = _NoCookies()

    @property  # type: ignore[misc]  # read-only: nothing here sets it
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON bytes: the one encoder for request bodies."""
    return _ENCODER.encode(value).encode()


class HttpxConnection:
    """The default engine: one ``httpx.Client`` (keep-alive pool), JSON in and out; its
    options are docs/client.md's table. Safe to use from many threads.
    """

    def __init__(self, url: str = "http://localhost:5984", *, user: str | None = None,
                 password: str | None = None, auth: tuple[str, str] | None = None,
                 session: bool = False, token: str | None = None,
                 iam_api_key: str | None = None, iam_url: str = IAM_URL,
                 timeout: float | httpx.Timeout = 30.0, verify: bool | str | ssl.SSLContext = True,
                 cert: str | None = None, key: str | None = None, proxy: str | None = None,
                 trust_env: bool = True, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, retry_budget: float = DEFAULT_RETRY_BUDGET,
                 transport: httpx.BaseTransport | None = None, max_connections: int = 16,
                 max_rate: float | None = None, adaptive: bool = False) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if retries < 0 or backoff < 0 or retry_budget < 0:
            raise ValueError("retries, backoff and retry_budget must not be negative")
        if auth is not None:
            user, password = auth
        address = parse_server_url(url, user=user, password=password)
        headers = {"Accept": "application/json", "User-Agent": "couchsync"}
        iam = None if iam_api_key is None else IamToken(iam_api_key, iam_url)
        authorization, self._session = credentials(address.user, address.password, session,
                                                   token, iam)
        if authorization is not None:
            headers["Authorization"] = authorization
        self._base = address.base
        self._url = address.masked
        self._retries = retries
        self._backoff = backoff
        self._retry_budget = retry_budget
        self._closed = False
        #: The rate ceiling and adaptive limit every request passes (None: neither).
        self.pacing = None if max_rate is None and not adaptive else Pacing(
            max_rate=max_rate, max_concurrency=max_connections if adaptive else None)
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
                                    max_keepalive_connections=max_connections),
                proxy=None if self._proxy is None else self._httpx_proxy(
                    self._proxy, context if scheme == "https" else None))
        self._transport = transport
        self._client = _Client(transport=transport, timeout=timeout, trust_env=False)
        # Exactly these headers (httpx's defaults would add Accept-Encoding and Connection);
        # each request is built with them and sent as it is, without the client's merging.
        self._headers = httpx.Headers(headers)

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

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                json: Any = None, content: Content | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """Send one request and return the response (body read), whatever its status."""
        self._check_open()
        call = (method, path, params, json, content, headers)
        if self._session is None:
            return self._exchange(call)
        response: Response = self._session.send(
            lambda cookie: self._exchange(call, cookie), self._login)
        return response

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"the client for {self._url} is closed")

    def _send(self, call: _Call, cookie: Mapping[str, str],
              base: str | None = None) -> httpx.Response:
        """Send ``call`` once to the server (or to ``base``, the IAM endpoint)."""
        method, path, params, json, content, headers = call
        if json is not None:
            content = encode_json(json)
            headers = {**_JSON_CONTENT, **(headers or {})}
        if cookie:
            headers = {**(headers or {}), **cookie}
        target = path + "?" + urlencode(params, quote_via=quote) if params else path
        sent = self._headers
        if headers:
            sent = httpx.Headers(sent)
            sent.update(headers)
        request = httpx.Request(method, (base or self._base) + target, content=content,
                                headers=sent)
        try:
            if self.pacing is not None and base is None:  # the server's pace, not IAM's
                return self.pacing.send(lambda: self._client.send(request), method, path)
            return self._client.send(request)
        except RuntimeError:  # httpx's "the client has been closed", from another thread
            self._check_open()
            raise
        finally:
            if self._closed:  # closed while this ran: no connection may outlive it
                self._transport.close()

    def _exchange(self, call: _Call, cookie: Mapping[str, str] | None = None) -> Response:
        """Send ``call`` (with the session's ``cookie``), repeating it where ``_retry`` allows."""
        method, path, params, json, content, _ = call
        attempt = 0
        waited = 0.0
        while True:
            try:
                response = self._send(call, cookie or {})
            except httpx.RequestError as exc:
                problem = f"{_what(exc)} ({type(exc).__name__})"
                wait = self._backoff * 2**attempt
                if self._refusal(attempt, waited, wait,
                                 may_repeat_after(exc, *call[:5])) is not None:
                    raise map_httpx_error(exc, method, self._url + path,
                                          proxy=self._proxy) from exc
            else:
                status = response.status_code
                if status not in RETRY_STATUSES:
                    return response
                problem = f"{status} {_phrase(status)}"
                asked = retry_after(response.headers.get("retry-after"))
                wait = STATUS_PAUSE * 2**attempt if asked is None else asked
                why = self._refusal(attempt, waited, wait,
                                    repeatable(method, path, params, json, content))
                if why is not None:
                    if why:
                        log_give_up(method, path, problem, why)
                    return response
                if asked is not None and self.pacing is not None:
                    self.pacing.hold(wait)  # the server's word: no thread sends meanwhile
            attempt += 1
            log_retry(method, path, problem, attempt, self._retries, wait)
            time.sleep(wait)
            waited += wait
            self._check_open()  # closed by another thread meanwhile: no new connection

    def _refusal(self, attempt: int, waited: float, wait: float, may_repeat: bool) -> str | None:
        """Why the request is not sent again (``""``: no retries at all), or None."""
        if attempt >= self._retries:
            return f"retried {attempt} time{'s' if attempt != 1 else ''}" if attempt else ""
        if not may_repeat:
            return "a repeat could do it twice"
        if waited + wait > self._retry_budget:
            return (f"waiting {wait:g} s more would pass the retry budget "
                    f"({self._retry_budget:g} s)")
        return None

    def _login(self, expired: bool) -> Response:
        """``POST /_session``, or the token request to the IAM endpoint (for
        ``Renewing.send``, which holds its lock)."""
        session = self._session
        self._check_open()
        if isinstance(session, IamToken):
            log.info("%s: POST %s", "the server refused the token, asking for a new one"
                     if expired else "asking for an IAM token", session.url,
                     extra={"method": "POST", "path": session.url})
            try:  # once: a failure fails the request that renews (the next one retries)
                return self._send(("POST", "", None, None, session.form(), FORM_HEADERS), {},
                                  base=session.url)
            except httpx.RequestError as exc:
                raise map_httpx_error(exc, "POST", session.url, proxy=self._proxy) from exc
        assert isinstance(session, Session)
        log.info("%s: POST /_session as %r", "session expired, logging in again"
                 if expired else "logging in", session.user,
                 extra={"method": "POST", "path": "/_session"})
        return self._exchange(("POST", "/_session", None,
                               {"name": session.user, "password": session.password}, None,
                               None))

    def close(self) -> None:
        """Close the pooled connections; later requests raise ClientClosedError."""
        self._closed = True
        self._client.close()

    def __repr__(self) -> str:
        return f"<HttpxConnection {self._url}>"


class Reply:
    """A successful (2xx) answer; ``json()`` turns a body that is not JSON (a proxy's HTML
    page) into the scoped error users catch."""

    __slots__ = ("_method", "_response", "_scope", "_url", "content", "headers", "status_code")

    def __init__(self, response: Response, scope: type[CouchError], method: str, url: str) -> None:
        self._response = response
        self._scope = scope
        self._method = method
        self._url = url
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = response.content

    def json_object(self) -> dict[str, Any]:
        """``json()`` where the answer is a JSON object."""
        found: dict[str, Any] = self.json()
        return found

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


def send(engine: ConnectionEngine, scope: type[CouchError], method: str, path: str, *,
         params: Mapping[str, str] | None = None, json: Any = None,
         json_bytes: bytes | None = None, content: Content | None = None,
         headers: Mapping[str, str] | None = None) -> Reply:
    """Send through ``engine`` (``json_bytes``: a body already encoded; ``content`` and
    ``headers``: a body of another type); raise the ``scope``d error for a failure or a
    non-2xx answer, 3xx too (CouchDB never redirects)."""
    try:
        if json_bytes is not None:
            response = engine.request(method, path, params=params, content=json_bytes,
                                      headers=_JSON_CONTENT)
        elif content is not None:
            response = engine.request(method, path, params=params, content=content,
                                      headers=headers)
        else:
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
