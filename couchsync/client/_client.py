"""Client: create, delete, list and open databases (the pycouchdb entry point)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._database import Database
from ._errors import NotFound, ServerError
from ._server import EngineFactory, EngineOwner, Server
from ._transport import HttpxConnection, send
from ._url import SYSTEM_DBS, check_db_name, db_path

__all__ = ["Client"]


class Client(EngineOwner):
    """Entry point: ``Client(url, connection_engine=HttpxConnection, **engine_options)``
    (the options: docs/client.md). Methods raise ServerError (plus the status class); a
    closed client raises ClientClosedError. Safe from many threads with the default engine.
    """

    def __init__(self, url: str = "http://localhost:5984",
                 connection_engine: EngineFactory = HttpxConnection, **engine_options: Any) -> None:
        super().__init__(url, connection_engine, **engine_options)
        #: Server-wide calls over the same connection.
        self.server = Server._sharing(self._conn)

    def create(self, name: str, *, partitioned: bool | None = None, q: int | None = None,
               n: int | None = None, placement: str | None = None) -> dict[str, Any]:
        """Create database ``name`` (``q`` shards, ``n`` copies, their ``placement``); returns
        ``{"ok": true}``. InvalidDatabaseName (nothing sent), PreconditionFailed if it exists.
        """
        check_db_name(name, url=self._conn.url)
        options = {"partitioned": None if partitioned is None else str(partitioned).lower(),
                   "q": q, "n": n, "placement": placement}
        params = {key: str(value) for key, value in options.items() if value is not None}
        return send(self._conn, ServerError, "PUT", db_path(name), params=params).json_object()

    def _existing_db_path(self, name: str, method: str) -> str:
        """``/{db}``; InvalidDatabaseName (nothing sent) for a name that would address the
        server itself (``""``) or one of its endpoints (``_all_dbs``, ``_session``...)."""
        if _addresses_an_endpoint(name):
            check_db_name(name, url=self._conn.url, method=method)
        return db_path(name)

    def delete(self, name: str) -> dict[str, Any]:
        """Delete database ``name``; returns ``{"ok": true}``. NotFound if it does not exist
        (checked first: PouchDB Server answers 200 for a missing database)."""
        path = self._existing_db_path(name, "DELETE")
        send(self._conn, ServerError, "HEAD", path)
        return send(self._conn, ServerError, "DELETE", path).json_object()

    def get_db(self, name: str) -> Database:
        """The Database ``name``, after checking it exists (NotFound if not)."""
        send(self._conn, ServerError, "HEAD", self._existing_db_path(name, "HEAD"))
        return Database(name, self._conn)

    def database(self, name: str) -> Database:
        """A Database handle without any request (the database may not exist)."""
        return Database(name, self._conn)

    def list_database_names(self) -> list[str]:
        """Every database name (``GET /_all_dbs``)."""
        return self.server.list_database_names()

    def iter_database_names(self, *, start_key: str | None = None, end_key: str | None = None,
                            page_size: int = 1000) -> Iterator[str]:
        """``Server.iter_database_names``."""
        return self.server.iter_database_names(
            start_key=start_key, end_key=end_key, page_size=page_size)

    def __contains__(self, name: str) -> bool:
        """Whether database ``name`` exists (False, unasked, for ``""`` and ``_``-endpoints)."""
        if _addresses_an_endpoint(name):
            return False
        try:
            send(self._conn, ServerError, "HEAD", db_path(name))
        except NotFound:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        """Iterate over the database names (one ``_all_dbs`` request)."""
        return iter(self.list_database_names())


def _addresses_an_endpoint(name: str) -> bool:
    """True for names that in ``/{name}`` would be the server root or a server endpoint."""
    return not name or (name.startswith("_") and name not in SYSTEM_DBS)
