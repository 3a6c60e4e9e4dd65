"""Server: calls about the whole server rather than one database."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Iterator, Mapping
from itertools import pairwise
from typing import Any, TypeVar
from urllib.parse import quote

from ._errors import NotFound, ServerError, TransportError
from ._transport import ConnectionEngine, HttpxConnection, Reply, send
from ._url import db_path

__all__ = ["EngineFactory", "EngineOwner", "Server"]

#: Called as ``factory(url, **engine_options)``; HttpxConnection is one.
EngineFactory = Callable[..., ConnectionEngine]

#: CouchDB's default ``[chttpd] max_db_number_for_dbs_info_req``: more keys in one
#: ``POST /_dbs_info`` are refused (400 ``too_many_keys``).
DBS_INFO_BATCH = 100


_Owner = TypeVar("_Owner", bound="EngineOwner")


class EngineOwner:
    """What Client and Server share: one engine, a repr without password, and closing."""

    def __init__(self, url: str = "http://localhost:5984",
                 connection_engine: EngineFactory = HttpxConnection, **engine_options: Any) -> None:
        self._conn: ConnectionEngine = connection_engine(url, **engine_options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._conn.url}>"

    @property
    def url(self) -> str:
        """The server's URL, any password masked."""
        return self._conn.url

    def __enter__(self: _Owner) -> _Owner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection engine (shared with the Databases and Server it made)."""
        self._conn.close()


class Server(EngineOwner):
    """The server-wide API; every method raises ServerError (plus the status class)."""

    @classmethod
    def _sharing(cls, connection: ConnectionEngine) -> Server:
        """A Server that uses an existing engine (the one a Client holds)."""
        server = cls.__new__(cls)
        server._conn = connection
        return server

    def _send(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> Reply:
        return send(self._conn, ServerError, method, path, params=params, json=json)

    def info(self) -> dict[str, Any]:
        """``GET /``: the welcome object with version, vendor and features."""
        return self._send("GET", "/").json_object()

    def is_up(self) -> bool:
        """Whether ``GET /_up`` answers (else ``GET /``, where there is no ``_up``); False when
        unreachable or in maintenance mode. Other errors (e.g. Unauthorized) are raised."""
        try:
            self._send("GET", "/_up")
        except NotFound as exc:
            if exc.error != "not_found":
                return False
            self._send("GET", "/")
        except TransportError:
            return False
        return True

    def active_tasks(self) -> list[dict[str, Any]]:
        """``GET /_active_tasks``: running compactions, replications, indexers."""
        result: list[dict[str, Any]] = self._send("GET", "/_active_tasks").json()
        return result

    def dbs_info(self, *keys: str) -> list[dict[str, Any]]:
        """Info on the named databases: ``[{"key", "info"}]`` or ``{"key", "error": "not_found"}``,
        by ``POST /_dbs_info`` in batches, else one ``GET /{db}`` per name."""
        result: list[dict[str, Any]] = []
        for start in range(0, len(keys), DBS_INFO_BATCH):
            batch = list(keys[start : start + DBS_INFO_BATCH])
            try:
                result += self._send("POST", "/_dbs_info", json={"keys": batch}).json()
            except NotFound:
                return result + [self._db_info_row(key) for key in keys[start:]]
        return result

    def _db_info_row(self, key: str) -> dict[str, Any]:
        try:
            return {"key": key, "info": self._send("GET", db_path(key)).json()}
        except NotFound:
            return {"key": key, "error": "not_found"}

    def list_database_names(self) -> list[str]:
        """``GET /_all_dbs``: every database name, system databases included, in one answer."""
        result: list[str] = self._send("GET", "/_all_dbs").json()
        return result

    def iter_database_names(self, *, start_key: str | None = None, end_key: str | None = None,
                            page_size: int = 1000) -> Iterator[str]:
        """The database names from ``start_key`` to ``end_key`` (both included; None: no
        bound) in name order, ``page_size`` (at least 1) per ``GET /_all_dbs``; from a server
        that does not page (``_is_page``) the range is selected from its one answer."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        return self._database_name_pages(start_key, end_key, page_size)

    def _database_name_pages(
        self, start_key: str | None, end_key: str | None, page_size: int
    ) -> Iterator[str]:
        if start_key is not None and end_key is not None and start_key > end_key:
            return  # an empty range: nothing to ask for
        # One name more than a page: it starts the next page (start_key is inclusive),
        # so no skip is needed, and a database deleted meanwhile loses no other name.
        limit = page_size + 1
        params = {"limit": str(limit)}
        if end_key is not None:
            params["end_key"] = jsonlib.dumps(end_key)
        low = start_key
        while True:
            if low is not None:
                params["start_key"] = jsonlib.dumps(low)
            names: list[str] = self._send("GET", "/_all_dbs", params=params).json()
            if not _is_page(names, low, end_key, limit):  # every name: select here
                yield from sorted(name for name in names if (low is None or name >= low)
                                  and (end_key is None or name <= end_key))
                return
            if len(names) <= page_size:
                yield from names
                return
            low = names[page_size]
            yield from names[:page_size]

    def config(self) -> dict[str, dict[str, str]]:
        """``GET /_node/_local/_config`` (else ``GET /_config``): ``{section: {key: value}}``,
        keys left at their built-in default not listed (server admins only)."""
        try:
            result: dict[str, dict[str, str]] = self._send("GET", "/_node/_local/_config").json()
        except NotFound:
            result = self._send("GET", "/_config").json()
        return result

    def membership(self) -> dict[str, Any]:
        """``GET /_membership``: ``all_nodes`` and ``cluster_nodes``."""
        return self._send("GET", "/_membership").json_object()

    def scheduler_docs(self, database: str = "_replicator") -> dict[str, dict[str, Any]]:
        """``GET /_scheduler/docs/{database}``: each replication document's scheduler state
        by document id; ``{}`` on a server without a scheduler."""
        try:
            result = self._send("GET", f"/_scheduler/docs/{quote(database, safe='')}").json()
        except NotFound:
            return {}
        return {row["doc_id"]: row for row in result.get("docs", []) if "doc_id" in row}

    def config_section(self, node: str, section: str) -> dict[str, str]:
        """``GET /_node/{node}/_config/{section}`` (``_local``: the node answering); ``{}``
        when it has none."""
        result: dict[str, str] = self._send(
            "GET", f"/_node/{quote(node, safe='')}/_config/{quote(section, safe='')}").json()
        return result

    def set_config(self, node: str, section: str, key: str, value: str) -> str | None:
        """``PUT /_node/{node}/_config/{section}/{key}``; the old value (None: it was new)."""
        old: str = self._send("PUT", _config_path(node, section, key), json=value).json()
        return old or None

    def delete_config(self, node: str, section: str, key: str) -> str | None:
        """``DELETE /_node/{node}/_config/{section}/{key}``; returns the old value
        (None: there was no such key)."""
        try:
            old: str = self._send("DELETE", _config_path(node, section, key)).json()
        except NotFound:
            return None
        return old


def _config_path(node: str, section: str, key: str) -> str:
    return "/_node/{}/_config/{}/{}".format(*(quote(part, safe="") for part in
                                             (node, section, key)))


def _is_page(names: list[str], low: str | None, high: str | None, limit: int) -> bool:
    """Whether ``names`` is what a server that pages ``_all_dbs`` answers: at most
    ``limit`` names, strictly ascending, from ``low`` to ``high`` (both included)."""
    if len(names) > limit or any(a >= b for a, b in pairwise(names)):
        return False
    return not names or (
        (low is None or names[0] >= low) and (high is None or names[-1] <= high))
