"""Fields CouchDB writes into design documents itself: Nouveau's ``lucene_version``, a floor
(docs/design-notes.md): a lower or missing one takes the server's, a higher one is planned."""

from __future__ import annotations

from typing import Any

LUCENE_VERSION = "lucene_version"


def with_server_fields(desired: dict[str, Any], live: dict[str, Any] | None
                       ) -> dict[str, Any]:
    """``desired`` (a design doc's body) with each Nouveau index's ``lucene_version``
    raised to ``live``'s where the manifest omits it or declares a lower one; a new
    dict where anything changed, ``desired`` itself otherwise."""
    wanted, held = desired.get("nouveau"), (live or {}).get("nouveau")
    if not isinstance(wanted, dict) or not isinstance(held, dict):
        return desired
    indexes = {name: _raised(index, held.get(name)) for name, index in wanted.items()}
    if all(indexes[name] is wanted[name] for name in wanted):
        return desired
    return {**desired, "nouveau": indexes}


def _raised(index: Any, stored: Any) -> Any:
    if not isinstance(index, dict) or not isinstance(stored, dict):
        return index
    server = stored.get(LUCENE_VERSION)
    if not isinstance(server, int) or isinstance(server, bool):
        return index
    declared = index.get(LUCENE_VERSION)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= server:
        return index
    return {**index, LUCENE_VERSION: server}


def added_unversioned(desired: dict[str, Any], live: dict[str, Any] | None) -> list[str]:
    """The Nouveau indexes an update of the design doc ``live`` adds without a
    ``lucene_version``: CouchDB stamps new design docs only, so it builds these with
    legacy Lucene (9) where a new design doc would get its current version (10 in 3.5)."""
    wanted = desired.get("nouveau")
    if live is None or not isinstance(wanted, dict):
        return []
    held = live.get("nouveau")
    held = held if isinstance(held, dict) else {}
    return [name for name, index in wanted.items()
            if name not in held and isinstance(index, dict) and LUCENE_VERSION not in index]
