"""Staged rollouts, the pure part: which changes rebuild an index, and the staging ids
(why staging works: docs/design-notes.md; apply's ``_rollout`` does the I/O)."""

from __future__ import annotations

from typing import Any

from couchsync._canonical import canonical_json
from couchsync.plan._model import Step, StepKind

#: Every staging design doc's id starts with this; nothing else of couchsync's does.
STAGING_PREFIX = "_design/couchsync-staged"
#: The field of a staging copy listing its copies in other shard ranges (same body, ids
#: ``STAGING_ID.N``), so that a plan finds them through it.
COPIES_FIELD = "couchsync_shard_copies"
#: Design-doc fields of the view index's signature; holding search indexes (Clouseau,
#: Nouveau: not staged); left out of a staging copy (not in the signature, and harmful
#: there: a second validate_doc_update in force, another document's attachment stubs).
VIEW_FIELDS = ("views", "language", "options")
SEARCH_FIELDS = ("indexes", "nouveau")
UNSTAGED_FIELDS = ("validate_doc_update", "_attachments", "_id", "_rev")


def design_staging_id(name: str) -> str:
    return f"{STAGING_PREFIX}.{name}"


def index_staging_id(name: str) -> str:
    return f"{STAGING_PREFIX}-index.{name}"


def staging_id(step: Step) -> str:
    """The staging design doc of a staged design doc or index step."""
    if step.kind is StepKind.INDEX:
        return index_staging_id(step.id or "")
    return design_staging_id((step.id or "").removeprefix("_design/"))


def shard_copy_ids(body: dict[str, Any]) -> list[str]:
    """The ids of the copies in other shard ranges a staging copy lists."""
    listed = body.get(COPIES_FIELD)
    return [doc_id for doc_id in listed if isinstance(doc_id, str) and is_staging_id(doc_id)
            ] if isinstance(listed, list) else []


def is_staging_id(doc_id: str) -> bool:
    return doc_id.startswith(STAGING_PREFIX)


def _differs(before: dict[str, Any] | None, after: dict[str, Any], fields: tuple[str, ...]
             ) -> bool:
    before = before or {}
    return any(canonical_json(before.get(key), drop=()) != canonical_json(after.get(key), drop=())
               for key in fields)


def rebuilds_views(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether writing ``after`` over ``before`` (None: a new design doc) builds a view
    index: the new body has views (``lib`` alone is none), and its signature changed."""
    views = after.get("views")
    return (isinstance(views, dict) and any(name != "lib" for name in views)
            and _differs(before, after, VIEW_FIELDS))


def rebuilds_search(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    return _differs(before, after, SEARCH_FIELDS) and any(after.get(key) for key in SEARCH_FIELDS)


def changes_validation(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    return _differs(before, after, ("validate_doc_update",))


def staging_body(body: dict[str, Any]) -> dict[str, Any]:
    """What a staging copy of ``body`` holds: all that the index signature reads."""
    return {key: value for key, value in body.items() if key not in UNSTAGED_FIELDS}
