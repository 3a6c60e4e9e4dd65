"""Golden plans: each ``tests/cases/NAME/`` holds a desired state and a live state, and
the plan expected from them, as text and as JSON, compared as whole strings.

Files per case:

- ``manifest.yaml``: the desired state (loaded with ``load_manifests``).
- ``live.json``: the live state, ``{db: {exists, doc_count, security, indexes,
  design_docs, managed, documents}}`` (every key but ``exists`` optional).
  ``documents`` and ``design_docs`` map ids (design docs: names) to bodies with
  ``_rev``; a body that is only ``{"_rev": ...}`` stands for a document whose
  revision was read but not its body. ``managed`` entries are
  ``{rev, created, body}``: the hash is computed from ``body``.
- ``only.json`` (optional): the ``only`` selectors.
- ``plan.txt`` and ``plan.json``: the expected renderings.

``COUCHSYNC_UPDATE_GOLDEN=1 pytest tests/cases`` rewrites the expected files;
review the diff before committing them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from couchsync.manifest import DocumentSpec, SourcePos, load_manifests
from couchsync.plan import (
    LiveDatabase,
    LiveDoc,
    LiveIndex,
    LiveState,
    ManagedDoc,
    plan_changes,
    render_json,
    render_markdown,
    render_text,
)

CASES = Path(__file__).parent
UPDATE = os.environ.get("COUCHSYNC_UPDATE_GOLDEN") == "1"


def live_doc(body: dict[str, Any]) -> LiveDoc:
    return LiveDoc(body["_rev"], None if body.keys() == {"_rev"} else body)


def managed(entry: dict[str, Any]) -> ManagedDoc:
    spec = DocumentSpec.from_body(entry["body"], SourcePos("live.json", 1, 1))
    return ManagedDoc(rev=entry["rev"], hash=spec.hash, created=entry["created"])


def load_live(path: Path) -> LiveState:
    databases = {}
    for name, db in json.loads(path.read_text()).items():
        databases[name] = LiveDatabase(
            name=name,
            exists=db["exists"],
            doc_count=db.get("doc_count", 0),
            security=db.get("security"),
            indexes=[LiveIndex(**index) for index in db.get("indexes", [])],
            design_docs={k: live_doc(v) for k, v in db.get("design_docs", {}).items()},
            managed={k: managed(v) for k, v in db.get("managed", {}).items()},
            documents={k: live_doc(v) for k, v in db.get("documents", {}).items()},
        )
    return LiveState(databases)


def check(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual)
    assert actual == path.read_text(), f"{path} differs (COUCHSYNC_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()
                                        and (p / "manifest.yaml").exists()))
def test_golden_plan(case: str) -> None:
    folder = CASES / case
    only_file = folder / "only.json"
    only = json.loads(only_file.read_text()) if only_file.exists() else None
    desired = load_manifests([folder / "manifest.yaml"], environ={})
    plan = plan_changes(desired, load_live(folder / "live.json"), only=only)
    check(folder / "plan.json", render_json(plan) + "\n")
    check(folder / "plan.txt", render_text(plan.to_dict()) + "\n")
    check(folder / "plan.md", render_markdown(plan.to_dict(), fold_over=3))
