"""Server: calls about the whole server rather than one database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._errors import NotFound, ServerError, TransportError
from ._transport import ConnectionEngine, EngineOwner, HttpxConnection, Reply, send
from ._url import db_path

__all__ = ["EngineFactory", "Server"]

#: Called as ``factory(url, **engine_options)``; HttpxConnection is one.
EngineFactory = Callable[..., ConnectionEngine]

#: CouchDB's default ``[chttpd] max_db_number_for_dbs_info_req``: more keys in one
#: ``POST /_dbs_info`` are refused (400 ``too_many_keys``).
DBS_INFO_BATCH = 100


class Server(EngineOwner):
    """The server-wide API; every method raises ServerError (plus the status class)."""

    def __init__(
        self,
        url: str = "http://localhost:5984",
        connection_engine: EngineFactory = HttpxConnection,
        **engine_options: Any,
    ) -> None:
        self._conn: ConnectionEngine = connection_engine(url, **engine_options)

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
        result: dict[str, Any] = self._send("GET", "/").json()
        return result

    def is_up(self) -> bool:
        """Whether the server is up and ready: ``GET /_up``.

        False when unreachable or when CouchDB reports maintenance mode (404 with a
        ``status``). Servers without ``_up`` (PouchDB Server: 404 ``not_found``) count
        as up when ``GET /`` succeeds. Other errors (e.g. Unauthorized) are raised.
        """
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
        """Info on the named databases: ``[{"key", "info"}]`` or ``{"key", "error": "not_found"}``.

        No names → ``[]`` without a request. Uses ``POST /_dbs_info`` with at most
        DBS_INFO_BATCH names per request (CouchDB's default limit); where the server lacks
        it (PouchDB Server, CouchDB < 2.2) one ``GET /{db}`` per name, same shape.
        """
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
        """``GET /_all_dbs``: every database name, system databases included."""
        result: list[str] = self._send("GET", "/_all_dbs").json()
        return result

    def membership(self) -> dict[str, Any]:
        """``GET /_membership``: ``all_nodes`` and ``cluster_nodes``."""
        result: dict[str, Any] = self._send("GET", "/_membership").json()
        return result
