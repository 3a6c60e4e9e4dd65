"""Document: a dict-like document that knows its database and stores itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from ._database import Database
from ._errors import CouchError, DocumentError, rescope

__all__ = ["Document"]


class Document(MutableMapping[str, Any]):
    """A mutable mapping of the document's fields, plus ``db``, ``id``, ``rev`` and ``store()``;
    its methods raise DocumentError (plus the status class)."""

    def __init__(self, _dict: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        # ``_dict`` may be passed by keyword as in pycouchdb; CouchDB rejects a field of
        # that name anyway (fields starting with "_" are reserved).
        self._data: dict[str, Any] = {**(_dict or {}), **kwargs}
        self.db: Database | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Document({self._data!r})"

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the most recently set ``(key, value)``; KeyError if empty."""
        return self._data.popitem()

    @property
    def id(self) -> str:
        """The ``_id`` ('' until stored or set)."""
        return str(self._data.get("_id", ""))

    @property
    def rev(self) -> str:
        """The ``_rev`` ('' until stored or loaded)."""
        return str(self._data.get("_rev", ""))

    @property
    def json(self) -> str:
        """The document serialised with ``json.dumps``."""
        return json.dumps(self._data)

    def load_from_database(self, db: Database, doc_id: str, doc_rev: str = "") -> None:
        """Replace the contents with document ``doc_id`` (at ``doc_rev``) from ``db``."""
        try:
            self._data = db.get(doc_id, rev=doc_rev)
        except CouchError as exc:
            raise rescope(exc, DocumentError) from exc
        self.db = db

    def store(self) -> None:
        """Create the document (no ``_rev`` yet) or update it, then take the new ``_id``/``_rev``.

        Raises DocumentError if no database is set, Conflict if ``_rev`` is stale.
        """
        db = self.db
        if db is None:
            raise DocumentError("the document has no database: set .db or use store_to_database()")
        try:
            if self.rev:
                doc_id, rev = db.update(self.id, self._data, self.rev)
            else:
                doc_id, rev = db.add(self._data)
        except CouchError as exc:
            raise rescope(exc, DocumentError) from exc
        self._data["_id"] = doc_id
        self._data["_rev"] = rev

    def store_to_database(self, db: Database) -> None:
        """Set ``db`` as this document's database and store the document there."""
        self.db = db
        self.store()

    #: The historical pycouchdb spelling.
    store_to_databse = store_to_database
