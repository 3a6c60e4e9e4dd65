"""The errors the client core raises.

Every error a server (or the network to it) causes is one ``CouchError``; it
says *what* happened (its kind) and *where* (its scope)::

    CouchError                    .status .error .reason .method .url (password masked)
     ├── TransportError           no HTTP response at all: refused, timeout, TLS, protocol
     ├── HTTPStatusError          the server answered 4xx/5xx
     │    ├── BadRequest          400
     │    ├── Unauthorized        401
     │    ├── Forbidden           403
     │    ├── NotFound            404
     │    ├── Conflict            409
     │    └── PreconditionFailed  412
     │
     ├── ServerError              scope: raised by Client and Server methods
     │    ├── InvalidDatabaseName (also ValueError) rejected before anything is sent
     │    └── InvalidURL      (also ValueError) the server URL is unusable; never repeats it
     ├── DatabaseError            scope: raised by Database methods
     └── DocumentError            scope: raised by Document methods

    ClientClosedError (RuntimeError, not a CouchError)   the client was closed: misuse

What is raised is always a kind combined with a scope, e.g. ``db.get("missing")``
raises ``DatabaseNotFound(NotFound, DatabaseError)``; those combined classes are
built from the two tables below, never written out by hand. So ``except NotFound``
and ``except DatabaseError`` both catch it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx

from ._tls import tls_problem

if TYPE_CHECKING:
    from ._proxy import Proxy

__all__ = [
    "HTTPX_ERRORS", "BadRequest", "ClientClosedError", "Conflict", "CouchError", "DatabaseError",
    "DocumentError", "Forbidden", "HTTPStatusError", "InvalidDatabaseName", "InvalidURL",
    "NotFound", "PreconditionFailed", "ServerError", "TransportError", "Unauthorized",
    "error_for_status", "map_httpx_error", "rescope", "scoped"
]


class CouchError(Exception):
    """Base of every error caused by the server or the connection to it."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None,
                 status: int | None = None, error: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.status = status
        self.error = error
        self.reason = reason

    @property
    def brief(self) -> str:
        """The server's ``error: reason`` when it gave one, else the whole message."""
        return f"{self.error}: {self.reason}" if self.error and self.reason else self.message


class TransportError(CouchError):
    """No HTTP response arrived: connection refused, timeout, TLS or protocol failure."""


class HTTPStatusError(CouchError):
    """The server answered with a 4xx or 5xx status."""


class BadRequest(HTTPStatusError):
    """400: the request was malformed (bad JSON, bad parameter, illegal name)."""


class Unauthorized(HTTPStatusError):
    """401: missing or wrong credentials."""


class Forbidden(HTTPStatusError):
    """403: authenticated, but not allowed to do this."""


class NotFound(HTTPStatusError):
    """404: no such database, document, index or endpoint."""


class Conflict(HTTPStatusError):
    """409: the revision given is not the current one."""


class PreconditionFailed(HTTPStatusError):
    """412: for example, the database already exists."""


class ServerError(CouchError):
    """Scope: raised by a Client or Server method."""


class DatabaseError(CouchError):
    """Scope: raised by a Database method."""


class DocumentError(CouchError):
    """Scope: raised by a Document method (also when the Document has no database)."""


class InvalidDatabaseName(ServerError, ValueError):
    """The name breaks CouchDB's rule ``^[a-z][a-z0-9_$()+/-]*$`` (system databases such as
    ``_users`` excepted) or would address a server endpoint; nothing was sent."""


class InvalidURL(ServerError, ValueError):
    """The server URL cannot be used (not http/https, no host, a bad port, unparsable);
    raised by the Client or Server constructor. The message never repeats the URL, which
    may hold a password."""


class ClientClosedError(RuntimeError):
    """The client (or the connection engine it shares) was closed; this is misuse."""


#: The one map from HTTP status to error kind; other 4xx/5xx are HTTPStatusError.
STATUS_KINDS: dict[int, type[HTTPStatusError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    412: PreconditionFailed}

_KINDS: tuple[type[CouchError], ...] = (TransportError, HTTPStatusError, *STATUS_KINDS.values())
_SCOPES: tuple[type[CouchError], ...] = (ServerError, DatabaseError, DocumentError)


def _combine(kind: type[CouchError], scope: type[CouchError]) -> type[CouchError]:
    name = scope.__name__.removesuffix("Error") + kind.__name__
    doc = f"{kind.__name__} raised by a {scope.__name__.removesuffix('Error')} method."
    return type(name, (kind, scope), {"__module__": __name__, "__doc__": doc})


_COMBINED: dict[tuple[type[CouchError], type[CouchError]], type[CouchError]] = {
    (kind, scope): _combine(kind, scope) for kind in _KINDS for scope in _SCOPES
}


def scoped(kind: type[CouchError], scope: type[CouchError]) -> type[CouchError]:
    """The class that is both ``kind`` (e.g. NotFound) and ``scope`` (e.g. DatabaseError)."""
    return _COMBINED[(kind, scope)]


def rescope(exc: CouchError, scope: type[CouchError]) -> CouchError:
    """The same error, re-issued in another scope (a Database error seen by a Document)."""
    # _KINDS lists general kinds first, so the last match is the most specific one.
    kind = [k for k in _KINDS if isinstance(exc, k)][-1]
    return scoped(kind, scope)(exc.message, method=exc.method, url=exc.url, status=exc.status,
                               error=exc.error, reason=exc.reason)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def error_for_status(
    status: int, body: Any, *, method: str, url: str, scope: type[CouchError]
) -> CouchError:
    """Build the error for a 4xx/5xx answer; ``body`` is the decoded JSON, if any."""
    error = reason = None
    if isinstance(body, dict):
        error = body.get("error")
        reason = body.get("reason")
    kind = STATUS_KINDS.get(status, HTTPStatusError)
    detail = f"{error}: {reason}" if error else _phrase(status)
    return scoped(kind, scope)(
        f"{status} {detail} ({method} {url})", method=method, url=url, status=status,
        error=None if error is None else str(error), reason=None if reason is None else str(reason))


#: The one place foreign exceptions are translated: httpx error → what went wrong
#: (looked up along the exception's MRO: every httpx.RequestError has an entry).
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


def _what(exc: httpx.RequestError) -> str:
    return next(HTTPX_ERRORS[cls] for cls in type(exc).__mro__ if cls in HTTPX_ERRORS)


def map_httpx_error(exc: httpx.RequestError, method: str, url: str, *,
                    proxy: Proxy | None = None) -> TransportError:
    """The TransportError for ``exc``, naming the method, the masked URL and the proxy."""
    tls = tls_problem(exc)
    detail = tls or f"{_what(exc)} ({str(exc) or type(exc).__name__})"
    message = f"{method} {url}: {detail}"
    if proxy is not None:
        message += f" [through the proxy {proxy.masked}, from {proxy.source}]"
    return TransportError(message, method=method, url=url)
