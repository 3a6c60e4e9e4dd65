"""The order apply runs a plan in, read by apply (which runs it) and by the renderers
(which list steps in that order); docs/plan-and-apply.md ("Steps and phase order") gives it."""

from __future__ import annotations

from typing import Any

from couchsync._names import CONFIG, REPLICATOR_DB, USERS_DB
from couchsync.plan._model import Action, StepKind

# A replace is in both index phases (its delete half, then its create half).
# Migrations run once the indexes their selectors use exist, and before the seed
# documents, which the manifests declare in the new shape.
CREATE_DB, DELETE_DB, SECURITY, DESIGN, INDEX_DELETE, INDEX_CREATE, MIGRATE, DOCS, STAGED = range(9)


def validates(kind: StepKind, action: Action, before: Any, after: Any) -> bool:
    """Whether a design-doc step sets, changes or drops a ``validate_doc_update`` (a
    delete reads no body: it may drop one)."""
    return kind is StepKind.DESIGN_DOC and (action is Action.DELETE or any(
        isinstance(body, dict) and "validate_doc_update" in body for body in (before, after)))


def phases(kind: StepKind, action: Action, staged: bool, validating: bool
           ) -> tuple[int, ...]:
    """The phases a step runs in; ``validating``: some design-doc step of its database
    ``validates`` (then design docs go before the indexes, else with the documents)."""
    if staged:
        return (STAGED,)
    if kind is StepKind.DATABASE:
        return (CREATE_DB,) if action is Action.CREATE else (DELETE_DB,)
    if kind is StepKind.INDEX:
        return {Action.CREATE: (INDEX_CREATE,), Action.DELETE: (INDEX_DELETE,),
                Action.REPLACE: (INDEX_DELETE, INDEX_CREATE)}[action]
    if kind is StepKind.SECURITY:
        return (SECURITY,)
    if kind is StepKind.MIGRATION:
        return (MIGRATE,)
    if kind is StepKind.DESIGN_DOC and validating:
        return (DESIGN,)
    return (DOCS,)


def run_order(databases: list[str]) -> list[list[str]]:
    """``databases`` in the groups apply runs one after the other."""
    last = (USERS_DB, REPLICATOR_DB)
    groups = [[name for name in databases if name == CONFIG],
              [name for name in databases if name not in (CONFIG, *last)],
              *([name] for name in last if name in databases)]
    return [group for group in groups if group]
