"""``only`` selectors: limit a plan (and what is read) to databases or documents.

A selector is ``DB`` (the whole database) or ``DB/DOCID`` (one document;
``DB/_design/NAME`` selects a design doc). Database names may themselves
contain ``/``, so a selector is matched against the names the manifests
describe, longest first, rather than split at the first slash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from couchsync.manifest.model import DesiredState
from couchsync.plan._model import PlanError


@dataclass(frozen=True, slots=True)
class Scope:
    """What is selected in one database: all of it, or only some document ids."""

    whole: bool
    ids: frozenset[str] = frozenset()

    def covers(self, doc_id: str) -> bool:
        return self.whole or doc_id in self.ids


def resolve_only(desired: DesiredState, only: Sequence[str] | None) -> dict[str, Scope]:
    """The selected databases, in manifest order, each with its scope.

    Raises ``PlanError`` for a selector that names no database of ``desired``.
    """
    if not only:
        return {name: Scope(whole=True) for name in desired.databases}
    whole: set[str] = set()
    ids: dict[str, set[str]] = {}
    by_length = sorted(desired.databases, key=len, reverse=True)
    for selector in only:
        if selector in desired.databases:
            whole.add(selector)
            continue
        name = next((n for n in by_length if selector.startswith(n + "/")), None)
        if name is None:
            raise PlanError(f"only: {selector!r} names no database that the manifests describe")
        doc_id = selector[len(name) + 1 :]
        if doc_id:
            ids.setdefault(name, set()).add(doc_id)
        else:
            whole.add(name)
    return {
        name: Scope(whole=True) if name in whole else Scope(whole=False, ids=frozenset(ids[name]))
        for name in desired.databases
        if name in whole or name in ids
    }
