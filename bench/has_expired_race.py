"""httpcore's ``has_expired`` race (encode/httpcore#1110) under couchsync's engine.

    python bench/has_expired_race.py RETRIES [--unpatched] [--trace] [--url URL]

16 threads share one ``HttpxConnection`` (``max_connections=4``) and send 8,000 GETs
of 64 documents, each answer's ``_id`` checked; printed: how many failed, by message.
``--unpatched`` puts httpcore's own ``has_expired`` back (before the mend in
``couchsync/client/_transport.py``); ``--trace`` counts the closes of a connection that
was active, and whether ``has_expired`` decided them while it went from idle to active.
Without ``--url``: a fresh PouchDB Server (testserver/). Figures: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpcore
import httpcore._sync.http11 as http11

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testserver")]

from couchsync.client import (  # noqa: E402
    HttpxConnection,
    TransportError,
    _transport,
)

THREADS, CONNECTIONS, GETS, DOCS = 16, 4, 8000, 64


def traced_closes() -> collections.Counter[str]:
    """Count closes of an active connection, telling those has_expired decided."""
    closes: collections.Counter[str] = collections.Counter()
    seen_expired: set[int] = set()
    close, has_expired = http11.HTTP11Connection.close, http11.HTTP11Connection.has_expired

    def traced_has_expired(self: Any) -> bool:
        found = bool(has_expired(self))
        if found and self._state != http11.HTTPConnectionState.IDLE:
            seen_expired.add(id(self))  # idle at the first read, active by the second
        return found

    def traced_close(self: Any) -> None:
        if self._state == http11.HTTPConnectionState.ACTIVE:
            closes["by has_expired, idle then active" if id(self) in seen_expired
                   else "other"] += 1
        close(self)

    http11.HTTP11Connection.close = traced_close  # type: ignore[method-assign]
    http11.HTTP11Connection.has_expired = traced_has_expired  # type: ignore[method-assign]
    return closes


def stress(url: str, retries: int) -> tuple[collections.Counter[str], float]:
    engine = HttpxConnection(url, retries=retries, max_connections=CONNECTIONS)
    engine.request("PUT", "/race")
    for i in range(DOCS):
        engine.request("PUT", f"/race/d{i}", json={"x": i})
    errors: collections.Counter[str] = collections.Counter()

    def get(n: int) -> None:
        doc_id = f"d{n % DOCS}"
        try:
            reply = engine.request("GET", f"/race/{doc_id}")
            if reply.status_code != 200 or reply.json()["_id"] != doc_id:
                errors[f"wrong answer {reply.status_code} for {doc_id}"] += 1
        except TransportError as exc:
            errors[str(exc).split(": ", 1)[-1][:90]] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(get, range(GETS)))
    took = time.monotonic() - started
    engine.request("DELETE", "/race")
    engine.close()
    return errors, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("retries", type=int)
    parser.add_argument("--unpatched", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.unpatched:
        httpcore.HTTP11Connection.has_expired = _transport._has_expired  # type: ignore[attr-defined,method-assign]
    closes = traced_closes() if args.trace else None
    if args.url:
        errors, took = stress(args.url, args.retries)
    else:
        import pouchdb

        with pouchdb.running_server() as url:
            errors, took = stress(url, args.retries)
    print(f"{'unmended' if args.unpatched else 'mended'} retries={args.retries}: "
          f"{sum(errors.values())} of {GETS} GETs failed in {took:.1f} s "
          f"({THREADS} threads, max_connections={CONNECTIONS})")
    for message, count in errors.items():
        print(f"  {count} × {message}")
    if closes is not None:
        print(f"  closes of an active connection: {dict(closes)}")


if __name__ == "__main__":
    main()
