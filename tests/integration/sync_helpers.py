"""plan / apply in one call each, the way the CLI chains them."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from couchsync.apply import ApplyResult, apply_plan
from couchsync.client import Client, ConnectionEngine, HttpxConnection
from couchsync.client._database import READ_AHEAD_THREAD
from couchsync.manifest import DesiredState
from couchsync.plan import Plan, plan_changes
from couchsync.read import read_live_state


def plan(client: Client, desired: DesiredState, only: Sequence[str] | None = None) -> Plan:
    return plan_changes(desired, read_live_state(client, desired, only=only), only=only)


def sync(client: Client, desired: DesiredState, only: Sequence[str] | None = None,
         **options: Any) -> tuple[Plan, ApplyResult]:
    made = plan(client, desired, only)
    return made, apply_plan(client, made, desired, **options)


def addresses(made: Plan) -> list[str]:
    return [f"{step.action.value} {step.address}" for step in made.steps]


class CountingEngine:
    """An engine that records every request (method, path, params) and the bytes received;
    a request a read-ahead thread sent (``iter_all_docs(read_ahead=True)``) is marked
    ``"early"`` in its params."""

    def __init__(self, url: str, **options: Any) -> None:
        self._inner = HttpxConnection(url, **options)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bytes_received = 0

    @property
    def url(self) -> str:
        return self._inner.url

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                json: Any = None, content: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Any:
        early = threading.current_thread().name.startswith(READ_AHEAD_THREAD)
        marked = {"early": "yes"} if early else {}
        self.requests.append((method, path, {**(params or {}), **marked}))
        response = self._inner.request(method, path, params=params, json=json, content=content,
                                       headers=headers)
        self.bytes_received += len(response.content)
        return response

    @property
    def document_reads(self) -> list[tuple[str, str, dict[str, str]]]:
        """``requests`` less the ``_security`` read of a named database that declares
        none (on CouchDB, to warn if it is open to anyone: test_safe_defaults): what the
        tests of how documents are read count."""
        return [request for request in self.requests if not request[1].endswith("/_security")]

    def close(self) -> None:
        self._inner.close()


def counting_client(url: str) -> tuple[Client, CountingEngine]:
    engines: list[CountingEngine] = []

    def factory(base: str, **options: Any) -> ConnectionEngine:
        engines.append(CountingEngine(base, **options))
        return engines[-1]

    return Client(url, connection_engine=factory), engines[0]
