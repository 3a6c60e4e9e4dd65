"""IBM Cloud IAM (Cloudant): an API key traded at the IAM endpoint for a bearer token,
renewed before it expires (docs/client.md, "Authentication"). Neither the key nor a
token appears in a repr, a log record or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from ._auth import Renewing, bearer_header
from ._retry import log

__all__ = ["IAM_URL", "IamToken"]

#: IBM Cloud's token endpoint (``iam_url=``, ``COUCHDB_IAM_URL`` to change it).
IAM_URL = "https://iam.cloud.ibm.com/identity/token"
_GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
#: A token is renewed once this share of its life has passed, as IBM's SDKs do.
RENEW_AT = 0.8
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json"}


class IamToken(Renewing):
    """The API key, where to trade it (``url``) and the token it gave."""

    __slots__ = ("api_key", "url")

    def __init__(self, api_key: str, url: str = IAM_URL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("the IAM API key must be a non-empty string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError("the IAM URL must be an http:// or https:// URL without "
                             "credentials")
        super().__init__(clock)
        self.api_key = api_key
        self.url = url

    def form(self) -> bytes:
        """The body of the token request."""
        return urlencode({"grant_type": _GRANT_TYPE, "apikey": self.api_key}).encode()

    def _accept(self, response: Any) -> Any:
        status = response.status_code
        if status == 200:
            try:
                body = response.json()
                # expires_in rather than the absolute "expiration": immune to a clock that
                # differs from IBM's.
                life = float(body["expires_in"])
                header = bearer_header(body["access_token"])
                if not life > 0:
                    raise ValueError(life)
            except (ValueError, KeyError, TypeError):
                return self._failed(502, "answered 200 without a usable access_token and "
                                         "expires_in")
            self._use({"Authorization": header}, life * RENEW_AT, life)
            return None
        if status in (400, 401, 403):  # a wrong, deleted or disabled key: not passing
            return self._failed(401, f"refused the API key: {status}{self._said(response)}")
        return self._failed(status, f"answered {status}{self._said(response)}: no token")

    def _failed(self, status: int, what: str) -> httpx.Response:
        """The answer a request gets instead of the server's when no token came."""
        log.info("no IAM token: %s %s", self.url, what)
        return httpx.Response(status, json={"error": "iam_token",
                                            "reason": f"the IAM endpoint {self.url} {what}"})

    def _said(self, response: Any) -> str:
        """The IAM error's code and message (IBM's ``errorCode``, ``errorMessage``), the
        key masked should an endpoint echo it."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        said = " ".join(str(body[name]) for name in ("errorCode", "errorMessage")
                        if body.get(name))[:300].replace(self.api_key, "***")
        return f" {said}" if said else ""

    def __repr__(self) -> str:
        return f"<IamToken {self.url}>"
