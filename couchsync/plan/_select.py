"""``only`` selectors (docs/plan-and-apply.md, "--only"): ``DB``, a pattern or ``DB/DOCID``,
matched against the declared names longest first (docs/design-notes.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from couchsync.manifest import is_pattern, matches
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
    """The selected databases, in manifest order, each with its scope; ``PlanError`` for a
    selector naming no database or (without ``prune: true``) no listed document."""
    if not only:
        return {name: Scope(whole=True) for name in desired.databases}
    whole: set[str] = set()
    ids: dict[str, set[str]] = {}
    by_length = sorted(desired.databases, key=len, reverse=True)
    for selector in only:
        if selector in desired.databases:
            whole.add(selector)
            continue
        if is_pattern(selector):
            found = [name for name in desired.databases if matches(selector, name)]
            if not found:
                raise PlanError(f"only: {selector!r} matches no database that the manifests "
                                "describe or their patterns match on the server")
            whole.update(found)
            continue
        name = next((n for n in by_length if selector.startswith(n + "/")), None)
        if name is None:
            raise PlanError(f"only: {selector!r} names no database that the manifests describe"
                            + (" (nor one their patterns match on the server)"
                               if desired.patterns else ""))
        doc_id = selector[len(name) + 1 :]
        if doc_id:
            spec = desired.databases[name]
            listed = doc_id in spec.documents or (
                doc_id.startswith("_design/") and doc_id[len("_design/"):] in spec.design_docs)
            if not listed and not spec.prune:
                hint = (f" (a design doc is selected as {name}/_design/{doc_id})"
                        if doc_id in spec.design_docs else "")
                raise PlanError(f"only: {selector!r} names no document that the manifests "
                                f"list for {name}{hint}")
            ids.setdefault(name, set()).add(doc_id)
        else:
            whole.add(name)
    return {name: Scope(whole=True) if name in whole else Scope(False, frozenset(ids[name]))
            for name in desired.databases if name in whole or name in ids}
