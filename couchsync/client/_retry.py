"""Which requests the default engine may send again, how long it waits, and how it says so
(docs/client.md, "Retries that are safe"): only where a repeat cannot do anything twice.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._tls import tls_problem

__all__ = [
    "DEFAULT_BACKOFF", "DEFAULT_RETRIES", "DEFAULT_RETRY_BUDGET", "RETRY_STATUSES", "STATUS_PAUSE",
    "log", "log_retry", "may_repeat_after", "repeatable", "retry_after"
]

#: The logger every retry, session login and proxy choice is reported on.
log = logging.getLogger("couchsync.client")

#: Repeats of one request, at most (failed connections, 429 and 503 alike).
DEFAULT_RETRIES = 3
#: First pause after a failed connection, in seconds; it doubles each time.
DEFAULT_BACKOFF = 0.1
#: First pause after a 429 or 503 without ``Retry-After``; it doubles each time.
STATUS_PAUSE = 1.0
#: Seconds of pauses, in all, that one request may spend between its attempts. A
#: ``Retry-After`` asking for more than is left is not waited for: the answer stands.
DEFAULT_RETRY_BUDGET = 30.0
#: Answers that mean "not now": the request is repeated (if ``repeatable``).
RETRY_STATUSES = frozenset({429, 503})

# POSTs that only read (or, for _index and _session, create nothing new on a repeat):
# the last segment of the path.
_READING_POSTS = frozenset({
    "_all_docs", "_design_docs", "_local_docs", "_find", "_explain", "_bulk_get",
    "_revs_diff", "_missing_revs", "_dbs_info", "_all_dbs", "_changes", "_index",
    "_session", "_search_analyze",
})


def repeatable(method: str, path: str, params: Mapping[str, str] | None, json: Any,
               content: bytes | Iterable[bytes] | None) -> bool:
    """Whether sending this request twice cannot do anything twice (docs/client.md's list:
    a repeated write with a revision or an ``_id`` is a Conflict, which callers re-diff)."""
    if method in ("GET", "HEAD"):
        return True
    segments = path.split("?", 1)[0].rstrip("/").split("/")
    last = segments[-1]
    if method == "POST":
        if last in _READING_POSTS or "_view" in segments[-2:-1]:
            return True
        if last == "_bulk_docs":
            body = _body(json, content)
            docs = body.get("docs") if isinstance(body, dict) else None
            return isinstance(docs, list) and all(
                isinstance(doc, dict) and isinstance(doc.get("_id"), str) for doc in docs)
        return False
    if method == "PUT" and last == "_security":
        return True
    if method in ("PUT", "DELETE") and len(segments) >= 3:  # /db/doc, /db/_design/x
        if params and params.get("rev"):
            return True
        if method == "PUT":
            body = _body(json, content)
            return isinstance(body, dict) and bool(body.get("_rev"))
    return False


# The connection broke before (or instead of) an answer. A timeout is not one: the
# server may still be at work on the request.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
              httpx.ReadError, httpx.WriteError)


def may_repeat_after(exc: httpx.RequestError, method: str, path: str,
                     params: Mapping[str, str] | None, json: Any,
                     content: bytes | Iterable[bytes] | None) -> bool:
    """Whether a request that failed with ``exc`` may be sent again."""
    if not isinstance(exc, _RETRYABLE) or tls_problem(exc) is not None:
        return False
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) and method != "POST":
        return True  # nothing reached the server
    return repeatable(method, path, params, json, content)


def _body(json: Any, content: bytes | Iterable[bytes] | None) -> Any:
    if json is not None:
        return json
    if not isinstance(content, bytes):  # none, or chunks: an attachment, not JSON
        return None
    try:
        return jsonlib.loads(content)
    except ValueError:
        return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date);
    None when it is missing or unreadable. A date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # only ever for a date

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as RFC 9110 dates are
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def log_retry(method: str, path: str, problem: str, attempt: int, retries: int,
              wait: float) -> None:
    """One INFO record for one repeat (the path without its query string)."""
    path = path.split("?", 1)[0]
    log.info("retrying %s %s after %s (retry %d of %d, in %.2f s)",
             method, path, problem, attempt, retries, wait,
             extra={"method": method, "path": path, "problem": problem,
                    "attempt": attempt, "wait": wait})


def log_give_up(method: str, path: str, problem: str, why: str) -> None:
    """One INFO record when a request that could be repeated is not."""
    path = path.split("?", 1)[0]
    log.info("not retrying %s %s after %s: %s", method, path, problem, why,
             extra={"method": method, "path": path, "problem": problem})
