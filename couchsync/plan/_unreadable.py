"""Documents on the server whose values couchsync cannot represent (too deep, a lone
surrogate): named in ``Plan.errors``, their database not planned (docs/design-notes.md)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from couchsync.manifest.model import DatabaseSpec
from couchsync.plan._diff import plan_database
from couchsync.plan._model import DatabasePlan, PlanError
from couchsync.plan._select import Scope
from couchsync.plan._state import LiveDatabase

#: The deepest live value couchsync compares, shows and saves in a plan: each of those
#: recurses once or more per level, within Python's limit of 1,000 frames.
MAX_DEPTH = 200
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep (objects and arrays)"
TOO_DEEP_TO_DECODE = ("nested too deep for Python's JSON decoder to read (it stops near "
                      "1,000 levels of objects and arrays)")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnreadableDocument(PlanError):
    """A document the server holds that couchsync cannot represent, and why."""

    def __init__(self, doc_id: str, problem: str, database: str | None = None) -> None:
        self.doc_id = doc_id
        self.problem = problem
        where = "" if database is None else f"db:{database}/"
        super().__init__(f"{where}{_address(doc_id)}: the server holds a value couchsync "
                         f"cannot represent: {problem}")

    def naming(self, spec: DatabaseSpec) -> str:
        """The reason ``Plan.errors`` gives, with where the manifests declare it."""
        name = self.doc_id.removeprefix("_design/")
        declared = (spec.design_docs.get(name) if self.doc_id.startswith("_design/")
                    else spec.documents.get(self.doc_id))
        where = f" (declared at {declared.source})" if declared is not None else ""
        return (f"{_address(self.doc_id)}{where}: the server holds a value couchsync cannot "
                f"represent: {self.problem}; change or delete it on the server")


def _address(doc_id: str) -> str:
    if doc_id.startswith("_design/"):
        return f"design:{doc_id.removeprefix('_design/')}"
    return f"doc:{doc_id}"


def value_problem(value: Any) -> str | None:
    """What about a decoded JSON value couchsync cannot represent, or None. Walked
    without recursion: the value may be as deep as Python could decode."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
        elif isinstance(item, str) and not item.isascii() and (
                found := _SURROGATE.search(item)) is not None:
            return (f"{found.group()!r} is a lone UTF-16 surrogate, not a character (UTF-8 "
                    "text cannot hold it)")
    return None


def check_bodies(bodies: Iterable[tuple[str, Any]]) -> None:
    """Raise ``UnreadableDocument`` for the first ``(id, body)`` couchsync cannot represent."""
    for doc_id, body in bodies:
        problem = value_problem(body)
        if problem is not None:
            raise UnreadableDocument(doc_id, problem)


def fetch_decodable(fetch: Callable[[Sequence[str]], dict[str, Any]],
                    ids: Sequence[str]) -> dict[str, Any]:
    """``fetch(ids)``, or, when its answer is too deep to decode, each half by itself,
    down to the one document to blame (``UnreadableDocument``)."""
    try:
        return fetch(ids)
    except RecursionError:
        if len(ids) <= 1:
            raise UnreadableDocument(ids[0] if ids else "", TOO_DEEP_TO_DECODE) from None
    half = len(ids) // 2
    return {**fetch_decodable(fetch, ids[:half]), **fetch_decodable(fetch, ids[half:])}


def plan_checked(spec: DatabaseSpec, live: LiveDatabase, scope: Scope) -> DatabasePlan:
    """``plan_database``, with ``UnreadableDocument`` for a live value it cannot compare
    (canonical JSON refuses it) or a plan could not show."""
    try:
        part = plan_database(spec, live, scope)
    except (UnicodeEncodeError, RecursionError):
        check_bodies([*((doc_id, doc.body) for doc_id, doc in live.documents.items()),
                      *((f"_design/{name}", doc.body) for name, doc in live.design_docs.items())])
        raise
    # The live values the plan shows (``before``) must be ones it can show and save.
    check_bodies((step.id, step.before) for step in part.steps
                 if step.id is not None and isinstance(step.before, dict))
    return part
