"""Client-side measurements: single-document GET throughput and what a plan reads.

``compare`` times ``Database.get`` loops of couchsync, CouchDB-Python and a bare
``http.client`` keep-alive connection, interleaved, on the same documents.
``count_plan_reads`` runs a plan in-process through a counting transport.

    python bench/client_reads.py URL CLIENT COUNT

times one client's loop over the ``COUNT`` documents ``seed`` wrote, in a process of
its own (``bench/compare_revs.py`` runs it with each revision's package first on
``PYTHONPATH``), and prints the loop's wall and CPU seconds: start-up is left out.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

DB = "bench_reads"


def doc_ids(count: int) -> list[str]:
    return [f"doc-{i:06d}" for i in range(count)]


def seed(url: str, count: int) -> list[str]:
    ids = doc_ids(count)
    with httpx.Client(base_url=url, timeout=120) as http:
        http.delete(f"/{DB}")
        http.put(f"/{DB}").raise_for_status()
        docs = [{"_id": i, "type": "reading", "value": n, "text": "x" * 200}
                for n, i in enumerate(ids)]
        http.post(f"/{DB}/_bulk_docs", json={"docs": docs}).raise_for_status()
    return ids


def _couchsync(url: str) -> Callable[[str], Any]:
    from couchsync import Client

    return Client(url).database(DB).get


def _httpx(url: str) -> Callable[[str], Any]:
    http = httpx.Client(base_url=url, timeout=120)
    return lambda doc_id: http.get(
        f"/{DB}/{urllib.parse.quote(doc_id, safe='')}").raise_for_status().json()


def _couchdb_python(url: str) -> Callable[[str], Any]:
    import couchdb

    db = couchdb.Server(url)[DB]
    return db.__getitem__


def _http_client(url: str) -> Callable[[str], Any]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 5984)
    token = base64.b64encode(
        f"{urllib.parse.unquote(parts.username or '')}:"
        f"{urllib.parse.unquote(parts.password or '')}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def get(doc_id: str) -> Any:
        path = f"/{DB}/{urllib.parse.quote(doc_id, safe='')}"
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection; reconnect as any client must.
            conn.close()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(resp.status)
        return json.loads(body)

    return get


GETTERS = {"couchsync": _couchsync, "httpx": _httpx, "couchdb-python": _couchdb_python,
           "http.client": _http_client}


def compare(url: str, *, count: int, pairs: int) -> dict[str, list[float]]:
    """Docs/s of each client over ``count`` GETs, ``pairs`` rounds, interleaved."""
    ids = seed(url, count)
    getters = {name: GETTERS[name](url) for name in ("couchsync", "couchdb-python",
                                                     "http.client")}
    for get in getters.values():  # warm up connections and caches
        for doc_id in ids[:50]:
            get(doc_id)
    results: dict[str, list[float]] = {name: [] for name in getters}
    names = list(getters)
    for round_ in range(pairs):
        # Each round starts with another client, so that none always runs first or last.
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            get = getters[name]
            start = time.perf_counter()
            for doc_id in ids:
                get(doc_id)
            results[name].append(count / (time.perf_counter() - start))
    with httpx.Client(base_url=url) as http:
        http.delete(f"/{DB}")
    return results


class _CountingTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests = 0
        self.bytes = 0
        self.bodies = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.requests += 1
        self.bytes += len(response.content)
        if request.url.params.get("include_docs") == "true":
            self.bodies += response.content.count(b'"doc":{')
        return response


def count_plan_reads(url: str, manifest: Path, *, full: bool = True) -> dict[str, int]:
    """What a plan reads: with ``full``, the live state of every database; else as
    ``couchsync plan`` does (incremental: databases a hint proves unchanged unread)."""
    from couchsync import Client, load_manifests, plan_changes, read_live_state
    from couchsync.client import HttpxConnection
    from couchsync.operation import plan_manifests

    transport = _CountingTransport()
    with Client(url, connection_engine=lambda base, **kw: HttpxConnection(
            base, transport=transport, **kw)) as client:
        if full:
            desired = load_manifests([manifest])
            plan_changes(desired, read_live_state(client, desired))
        else:
            plan_manifests(client, [manifest])
    return {"requests": transport.requests, "bytes": transport.bytes, "bodies": transport.bodies}


def main(url: str, client: str, count: str) -> None:
    get = GETTERS[client](url)
    ids = doc_ids(int(count))
    for doc_id in ids[:50]:  # the connection opened, as in ``compare``
        get(doc_id)
    wall, cpu = time.perf_counter(), time.process_time()
    for doc_id in ids:
        get(doc_id)
    print(time.perf_counter() - wall, time.process_time() - cpu)


if __name__ == "__main__":
    main(*sys.argv[1:])
