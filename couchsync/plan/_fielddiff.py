"""Field-level differences between two JSON values, so that a plan shows an update as the
paths that changed (``~ profile.email``, ``+ tags[2]``), leaves compared canonically as
documents are, and a changed multi-line string (a view's map) as a unified line diff.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from couchsync._canonical import canonical_json

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
#: Unchanged lines shown around each changed run of a line diff.
DIFF_CONTEXT = 3


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed path: ``op`` is ``+`` (added), ``-`` (removed) or ``~`` (changed)."""

    op: str
    path: str
    before: Any = None
    after: Any = None


def key_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["odd key"]`` when the key is not an identifier."""
    if _IDENTIFIER.match(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def field_changes(before: Any, after: Any, path: str = "") -> Iterator[FieldChange]:
    """Every path at which ``after`` differs from ``before``, in sorted key order."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths = {key: key_path(path, key) for key in sorted(before.keys() | after.keys())}
    elif isinstance(before, list) and isinstance(after, list):
        paths = {index: f"{path}[{index}]" for index in range(max(len(before), len(after)))}
        before, after = dict(enumerate(before)), dict(enumerate(after))
    else:
        if canonical_json(before, drop=()) != canonical_json(after, drop=()):
            yield FieldChange("~", path, before=before, after=after)
        return
    for key, sub in paths.items():
        if key not in after:
            yield FieldChange("-", sub, before=before[key])
        elif key not in before:
            yield FieldChange("+", sub, after=after[key])
        else:
            yield from field_changes(before[key], after[key], sub)


def line_diff(before: Any, after: Any) -> list[str]:
    """A unified diff (``@@`` hunks, lines starting with ``-``, ``+`` or a space) of two
    strings either of which spans several lines; empty for anything else."""
    if not (isinstance(before, str) and isinstance(after, str)
            and ("\n" in before or "\n" in after)):
        return []
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="",
                                      n=DIFF_CONTEXT))
    return lines[2:]  # past the "---"/"+++" file names
