"""Databases open to anyone: a ``security`` that names no members (no ``members`` names
or roles, or an empty object) lets every client, logged in or not, read and write the
database (CouchDB 3 creates databases admin-only; writing such a security opens them).

Plan and apply warn of every database whose declared security is so, before anything
is sent, unless its manifest says ``public: true``. Databases that the same pattern
matches are warned of once, by the pattern.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from couchsync.manifest.model import DatabaseSpec, DesiredState

__all__ = ["is_open_to_anyone", "public_warnings"]


def is_open_to_anyone(security: dict[str, Any]) -> bool:
    members = security.get("members") or {}
    return not (members.get("names") or members.get("roles"))


def _unmeant(spec: DatabaseSpec) -> bool:
    return spec.security is not None and not spec.public and is_open_to_anyone(spec.security)


def public_warnings(desired: DesiredState) -> list[str]:
    """One line per database (or pattern) the manifests make readable and writable by
    anyone without saying they mean it."""
    named = [spec for spec in desired.databases.values()
             if spec.matched_by is None and spec.state == "present" and _unmeant(spec)]
    matched = Counter(spec.matched_by for spec in desired.databases.values()
                      if spec.matched_by is not None and _unmeant(spec))
    where = {spec.matched_by: spec.sources.get("security", spec.source)
             for spec in desired.databases.values() if spec.matched_by in matched}
    lines = [f"database {spec.name!r} will be readable and writable by anyone: its "
             f"security (at {spec.sources.get('security', spec.source)}) names no members; "
             "add members, or public: true if that is meant" for spec in named]
    lines += [f"{count:,} database{'s' if count != 1 else ''} matched by {pattern!r} will be "
              f"readable and writable by anyone: the security (at {where[pattern]}) names "
              "no members; add members, or public: true if that is meant"
              for pattern, count in matched.items()]
    return lines
