"""Mango json indexes read off their ``language: query`` design docs.

``POST /{db}/_index`` stores an index as a view, ``{"map": {"fields": ...,
"partial_filter_selector": ...}, "reduce": "_count", "options": {"def": <the index as
sent>}}``, and ``partitioned`` as the design doc's ``options.partitioned``. CouchDB
indexes by the ``map``; ``options.def`` is what a manifest (and export) writes. Older
hand-written design docs hold a ``selector`` in the ``map`` (still the partial filter);
PouchDB Server keeps the partial filter in ``options.def`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from couchsync.manifest.model import sort_fields
from couchsync.plan._mango import normalize_selector

#: A design doc name CouchDB chose (hex SHA-1 of the request's definition and options,
#: ``mango_idx:gen_name/2``) or PouchDB Server did (``idx-`` and an MD5).
GENERATED_DDOC = re.compile(r"(?:[0-9a-f]{40}|idx-[0-9a-f]{32})\Z")

_DDOC_FIELDS = {"language", "views", "options"}
_KINDS = {"indexes": "text indexes", "nouveau": "Nouveau indexes"}
_DIRECTIONS = ("asc", "desc")


@dataclass(frozen=True, slots=True)
class StoredIndex:
    """One json index as its design doc holds it."""

    name: str
    ddoc: str  # without "_design/"
    fields: list[dict[str, str]]  # as the view sorts by them
    partial_filter_selector: dict[str, Any] | None  # in effect; None: none
    partitioned: bool | None  # the design doc's setting; None: the database's kind
    definition: dict[str, Any]  # the "index" object of a POST /_index that recreates it
    #: Whether CouchDB stores that POST's index as this one is stored now (it was made
    #: by POST /_index, not by hand in an older form).
    exact: bool


def read_index_ddoc(body: dict[str, Any]) -> tuple[list[StoredIndex], list[str]]:
    """The json indexes of ``language: query`` design doc ``body``, and what else it
    holds that no json index describes (one phrase each)."""
    ddoc = str(body["_id"]).removeprefix("_design/")
    left = [f"its {_KINDS[key]} ({', '.join(map(str, value)) if isinstance(value, dict) else '?'})"
            if key in _KINDS else f"its field {key!r}"
            for key, value in body.items()
            if not key.startswith("_") and key not in _DDOC_FIELDS]
    options = body.get("options", {})
    partitioned = options.get("partitioned") if isinstance(options, dict) else None
    if not isinstance(options, dict) or set(options) - {"partitioned"} \
            or not isinstance(partitioned, (bool, type(None))):
        left.append(f"its options {options!r}")
    views = body.get("views", {})
    if not isinstance(views, dict):
        return [], [*left, "its views (not an object)"]
    found = []
    for name, view in views.items():
        index = _read_view(name, ddoc, view, partitioned if isinstance(partitioned, bool)
                           else None)
        if index is None:
            left.append(f"its view {name!r} (no Mango json index)")
        else:
            found.append(index)
    return found, left


def _read_view(name: str, ddoc: str, view: Any, partitioned: bool | None
               ) -> StoredIndex | None:
    mapping = view.get("map") if isinstance(view, dict) else None
    if not isinstance(mapping, dict):
        return None
    fields = mapping.get("fields")
    if not (isinstance(fields, dict) and fields
            and all(direction in _DIRECTIONS for direction in fields.values())):
        return None
    options = view.get("options")
    options = options if isinstance(options, dict) else {}
    written = options.get("def")
    written = written if isinstance(written, dict) else {}
    selector, legacy = _filter(mapping, written)
    if not isinstance(selector, (dict, type(None))):
        return None
    sorted_by = [{key: value} for key, value in fields.items()]
    definition = _definition(sorted_by, selector or None, written)
    exact = (definition == written and not legacy and view.get("reduce") == "_count"
             and set(view) == {"map", "reduce", "options"} and set(options) == {"def"}
             and set(mapping) <= {"fields", "partial_filter_selector"})
    return StoredIndex(name, ddoc, sorted_by, selector or None, partitioned, definition, exact)


def _filter(mapping: dict[str, Any], written: dict[str, Any]) -> tuple[Any, bool]:
    """The partial filter in effect, and whether it is a legacy ``selector``
    (``mango_idx:get_partial_filter_selector/1``; PouchDB Server: ``options.def``)."""
    if "partial_filter_selector" in mapping:
        return mapping["partial_filter_selector"], False
    if mapping.get("selector"):
        return mapping["selector"], True
    return written.get("partial_filter_selector"), False


def _definition(fields: list[dict[str, str]], selector: dict[str, Any] | None,
                written: dict[str, Any]) -> dict[str, Any]:
    """The ``index`` object of a ``POST /_index`` for the index: each part as ``written``
    when that means the same (CouchDB then stores it as it is), else as stored."""
    given = written.get("fields")
    if not (isinstance(given, list) and given
            and all(isinstance(field, str) or (isinstance(field, dict) and len(field) == 1)
                    for field in given)
            and sort_fields(given) == fields):
        given = fields
    definition: dict[str, Any] = {"fields": given}
    given_selector = written.get("partial_filter_selector")
    if isinstance(given_selector, dict) and \
            normalize_selector(given_selector) == normalize_selector(selector):
        definition["partial_filter_selector"] = given_selector
    elif selector:
        definition["partial_filter_selector"] = selector
    return definition
