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

__all__ = ["Renewing", "Session", "basic_header", "bearer_header", "credentials", "session_cookie"]

# A header value must not hold control characters (a CR or LF would start a new header).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_AUTH_SESSION = re.compile(r"(?:^|[;,]\s*)AuthSession=([^;,\s]*)", re.IGNORECASE)
_MAX_AGE = re.compile(r";\s*Max-Age=(\d+)", re.IGNORECASE)


def credentials(user: str | None, password: str | None, session: bool, token: str | None,
                iam: Renewing | None = None) -> tuple[str | None, Renewing | None]:
    """The ``Authorization`` header to send, or the Session to log in with, or ``iam``
    (an IAM token to get)."""
    if iam is not None:
        if user is not None or password is not None or token is not None or session:
            raise ValueError("an IAM API key authenticates alone: give no user, password, "
                             "token or session=True with it")
        return None, iam
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


class Renewing:
    """A credential renewed for all threads at once (a cookie session, an IAM token): the
    headers it puts on a request and how many renewals gave them (replaced whole), when
    to renew them (``due``) and when they lapse (``lapses``), both on ``clock`` (seconds,
    ``time.monotonic``; a test gives a fake one), and the answer of a refused renewal;
    ``lock`` serialises renewals. A subclass reads a renewal's answer (``_accept``).
    """

    __slots__ = ("clock", "current", "due", "lapses", "lock", "refused")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.current: tuple[int, dict[str, str]] = (0, {})
        self.due: float | None = None
        self.lapses: float | None = None
        self.refused: Any = None  # the answer of a refused renewal, given to every request

    def send(self, exchange: Callable[[Mapping[str, str]], Any],
             renew: Callable[[bool], Any]) -> Any:
        """``exchange(headers)``, renewing them (``renew(expired)`` sends the request)
        first if there are none yet or they lapsed (every thread waits for the one that
        renews), or once they are due (one thread renews, the others go on with the
        headers still valid), and once more if the server no longer takes them (401)."""
        generation = self.current[0]
        now = self.clock()
        lapsed = generation == 0 or (self.lapses is not None and now >= self.lapses)
        if lapsed or (self.due is not None and now >= self.due):
            refused = self._renew(generation, renew, expired=False, wait=lapsed)
            if refused is not None:
                return refused
        generation, headers = self.current
        response = exchange(headers)
        self._taken(response)
        if response.status_code != 401:
            return response
        # Expired, or revoked (CouchDB then takes the request as anonymous): the request
        # was refused before anything was done, so sending it again is safe.
        refused = self._renew(generation, renew, expired=True, wait=True)
        if refused is not None:
            return refused
        response = exchange(self.current[1])
        self._taken(response)
        return response

    def _renew(self, seen: int, renew: Callable[[bool], Any], *, expired: bool,
               wait: bool) -> Any:
        """Renew unless another thread has since renewal ``seen`` (or, without ``wait``,
        is renewing now); None on success, else the answer that refused it."""
        if not self.lock.acquire(blocking=wait):
            return None
        try:
            if self.refused is not None:
                return self.refused
            if self.current[0] != seen:
                return None  # another thread renewed meanwhile
            answer = self._accept(renew(expired))
            if answer is not None and answer.status_code in (400, 401, 403):
                self.refused = answer  # a wrong password or key: not a passing failure
            return answer
        finally:
            self.lock.release()

    def _accept(self, response: Any) -> Any:
        """Take up the headers ``response`` (a renewal's answer) gives (``_use``) and
        return None, or return the answer to give the request instead."""
        raise NotImplementedError

    def _taken(self, response: Any) -> None:
        """Take up what an answer to a request renews (nothing here)."""

    def _use(self, headers: dict[str, str], due: float | None, lapses: float | None) -> None:
        """Send ``headers`` from now on, renewing them in ``due`` seconds; they lapse in
        ``lapses`` seconds (None: not known)."""
        now = self.clock()
        self.due = None if due is None else now + due
        self.lapses = None if lapses is None else now + lapses
        self.current = (self.current[0] + 1, headers)


class Session(Renewing):
    """A cookie session: who logs in, and the ``AuthSession`` cookie it got."""

    __slots__ = ("password", "user")

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self.user = user
        self.password = password

    def _accept(self, response: Any) -> Any:
        found = session_cookie(response) if response.status_code == 200 else None
        if found is None:
            if response.status_code == 200:  # no cookie: cookie auth is off there
                response = httpx.Response(401, json={
                    "error": "unauthorized",
                    "reason": "the server accepted the login but set no AuthSession "
                              "cookie: use Basic authentication (session=False)"})
            log.info("login as %r refused: %d", self.user, response.status_code)
            return response
        self._use_cookie(*found)
        return None

    def _taken(self, response: Any) -> None:
        """Take up a cookie the server refreshed (CouchDB sends one once a tenth of the
        session's time has passed): here, once for all threads; httpx's jar takes none."""
        found = session_cookie(response)
        if found is not None and found[0] != self.current[1].get("Cookie", "")[12:]:
            with self.lock:
                self._use_cookie(*found)

    def _use_cookie(self, cookie: str, max_age: int | None) -> None:
        # Renewed a little before it expires.
        self._use({"Cookie": "AuthSession=" + cookie},
                  None if max_age is None else max_age - min(30.0, max_age * 0.1), max_age)

    def __repr__(self) -> str:
        return f"<Session {self.user!r}>"
