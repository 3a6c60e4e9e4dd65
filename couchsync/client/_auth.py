"""How the default engine authenticates: Basic, a cookie session, or a bearer token
(docs/client.md, "Authentication"). Nothing here puts a secret in a repr, a log record or
an error message.
"""

from __future__ import annotations

import re
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ._retry import log

__all__ = ["Session", "basic_header", "bearer_header", "credentials", "session_cookie"]

# A header value must not hold control characters (a CR or LF would start a new header).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_AUTH_SESSION = re.compile(r"(?:^|[;,]\s*)AuthSession=([^;,\s]*)", re.IGNORECASE)
_MAX_AGE = re.compile(r";\s*Max-Age=(\d+)", re.IGNORECASE)


def credentials(user: str | None, password: str | None, session: bool,
                token: str | None) -> tuple[str | None, Session | None]:
    """The ``Authorization`` header to send, or the Session to log in with."""
    if token is not None:
        if user is not None or password is not None:
            raise ValueError("give either a token or a user and password, not both")
        if session:
            raise ValueError("session=True logs in with a user and password, not a token")
        return bearer_header(token), None
    if session:
        if user is None:
            raise ValueError("session=True needs a user name and password to log in with")
        return None, Session(user, password or "")
    return (None if user is None else basic_header(user, password)), None


def basic_header(user: str, password: str | None) -> str:
    """The ``Authorization`` value for Basic credentials (UTF-8, as CouchDB reads them)."""
    token = f"{user}:{password or ''}".encode()
    return "Basic " + b64encode(token).decode("ascii")


def bearer_header(token: str) -> str:
    """The ``Authorization`` value for a bearer token; ValueError (not naming the token)
    when it cannot travel in a header."""
    if not isinstance(token, str) or not _HEADER_SAFE.fullmatch(token):
        raise ValueError("the token must be a non-empty string of printable ASCII characters "
                         "without spaces (a JWT is)")
    return "Bearer " + token


def session_cookie(response: httpx.Response) -> tuple[str, int | None] | None:
    """The ``AuthSession`` cookie a response sets, and its ``Max-Age``; None if it sets
    none (or clears it)."""
    for header in response.headers.get_list("set-cookie"):
        match = _AUTH_SESSION.search(header)
        if match and match.group(1):
            age = _MAX_AGE.search(header)
            return match.group(1), None if age is None else int(age.group(1))
    return None


class Session:
    """A cookie session: who logs in, the cookie and how many logins gave it (replaced
    whole), its expiry, and the answer of a refused login; ``lock`` serialises logins.
    """

    __slots__ = ("cookie", "expires", "lock", "password", "refused", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.lock = threading.Lock()
        self.cookie: tuple[int, dict[str, str]] = (0, {})
        self.expires: float | None = None  # time.monotonic() when to log in again
        self.refused: Any = None  # the answer of a refused login, given to every request

    def send(self, exchange: Callable[[Mapping[str, str]], Any],
             login: Callable[[bool], Any]) -> Any:
        """``exchange(cookie header)``, logging in (``login(expired)`` sends the POST) first
        if there is no cookie yet or it is about to expire, and again, once, if the server
        no longer takes it (401)."""
        generation, cookie = self.cookie
        if generation == 0 or self.expiring():
            refused = self._login(generation, login, expired=False)
            if refused is not None:
                return refused
            generation, cookie = self.cookie
        response = exchange(cookie)
        self._take_cookie(response)
        if response.status_code != 401:
            return response
        # The cookie expired (CouchDB then takes the request as anonymous): the request
        # was refused before anything was done, so sending it again is safe.
        refused = self._login(generation, login, expired=True)
        if refused is not None:
            return refused
        response = exchange(self.cookie[1])
        self._take_cookie(response)
        return response

    def _login(self, seen: int, login: Callable[[bool], Any], *, expired: bool) -> Any:
        """Log in unless another thread has since login ``seen``; None on success, else
        the answer that refused it."""
        with self.lock:
            if self.refused is not None:
                return self.refused
            if self.cookie[0] != seen:
                return None  # another thread logged in meanwhile
            response = login(expired)
            found = session_cookie(response) if response.status_code == 200 else None
            if found is None:
                if response.status_code == 200:  # no cookie: cookie auth is off there
                    response = httpx.Response(401, json={
                        "error": "unauthorized",
                        "reason": "the server accepted the login but set no AuthSession "
                                  "cookie: use Basic authentication (session=False)"})
                log.info("login as %r refused: %d", self.user, response.status_code)
                if response.status_code in (400, 401, 403):  # not a passing failure
                    self.refused = response
                return response
            self._use_cookie(*found)
            return None

    def _take_cookie(self, response: Any) -> None:
        """Take up a cookie the server refreshed (CouchDB sends one once a tenth of the
        session's time has passed): here, once for all threads; httpx's jar takes none."""
        found = session_cookie(response)
        if found is not None and found[0] != self.cookie[1].get("Cookie", "")[12:]:
            with self.lock:
                self._use_cookie(*found)

    def _use_cookie(self, cookie: str, max_age: int | None) -> None:
        # Renewed a little before it expires.
        self.expires = None if max_age is None else (
            time.monotonic() + max_age - min(30.0, max_age * 0.1))
        self.cookie = (self.cookie[0] + 1, {"Cookie": "AuthSession=" + cookie})

    def expiring(self) -> bool:
        return self.expires is not None and time.monotonic() >= self.expires

    def __repr__(self) -> str:
        return f"<Session {self.user!r}>"
