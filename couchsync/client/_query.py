"""Mango query builders: IndexQuery for ``_index`` and FindQuery for ``_find``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FindQuery", "IndexQuery"]

_DESIGN = "_design/"


@dataclass
class IndexQuery:
    """A Mango index definition; ``to_dict()`` is the ``POST /{db}/_index`` body. ``fields``
    are names or ``{name: "asc"|"desc"}`` objects."""

    fields: list[Any] = field(default_factory=list)
    name: str = ""
    type: str = "json"
    ddoc: str | None = None
    partial_filter_selector: dict[str, Any] | None = None
    #: In a partitioned database, a partitioned (True) or global (False) index; None:
    #: the database's kind. CouchDB keeps it as its design doc's ``options.partitioned``.
    partitioned: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The request body; ``ddoc`` is sent without its ``_design/`` prefix."""
        index: dict[str, Any] = {"fields": list(self.fields)}
        if self.partial_filter_selector is not None:
            index["partial_filter_selector"] = self.partial_filter_selector
        body: dict[str, Any] = {"index": index, "type": self.type}
        if self.name:
            body["name"] = self.name
        if self.ddoc:
            body["ddoc"] = self.ddoc.removeprefix(_DESIGN)
        if self.partitioned is not None:
            body["partitioned"] = self.partitioned
        return body


@dataclass
class FindQuery:
    """A Mango query; ``to_dict()`` is the ``POST /{db}/_find`` body (unset options left out).
    An empty ``selector`` matches every document."""

    selector: dict[str, Any] = field(default_factory=dict)
    fields: list[str] | None = None
    sort: list[Any] | None = None
    limit: int | None = None
    skip: int | None = None
    use_index: str | list[str] | None = None
    bookmark: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The request body."""
        body: dict[str, Any] = {"selector": self.selector}
        for key in ("fields", "sort", "limit", "skip", "use_index", "bookmark"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body
