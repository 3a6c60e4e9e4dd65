"""Databases open to anyone: a ``security`` naming no members lets every client, logged in
or not, read and write the database (CouchDB 3 creates databases admin-only). Plan and
apply warn, before anything is sent, of each database declared so, or already so and left
so, unless its manifest says ``public: true``; a pattern's databases once, by the pattern.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from couchsync.manifest.model import DatabaseSpec, DesiredState
from couchsync.plan._model import Plan


def is_open_to_anyone(security: dict[str, Any]) -> bool:
    members = security.get("members") or {}
    return not (members.get("names") or members.get("roles"))


def _unmeant(spec: DatabaseSpec) -> bool:
    return spec.security is not None and not spec.public and is_open_to_anyone(spec.security)


def public_warnings(desired: DesiredState, plan: Plan) -> list[str]:
    """One line per database (or pattern) the manifests make readable and writable by
    anyone without saying they mean it, and per declared database ``plan`` found
    already so and leaves so (``Plan.open_to_anyone``)."""
    named = [spec for spec in desired.databases.values()
             if spec.matched_by is None and spec.state == "present"]
    matched = Counter(spec.matched_by for spec in desired.databases.values()
                      if spec.matched_by is not None and _unmeant(spec))
    where = {spec.matched_by: spec.sources.get("security", spec.source)
             for spec in desired.databases.values() if spec.matched_by in matched}
    lines = [f"database {spec.name!r} will be readable and writable by anyone: its "
             f"security (at {spec.sources.get('security', spec.source)}) names no members; "
             "add members, or public: true if that is meant" for spec in named if _unmeant(spec)]
    lines += [f"{count:,} database{'s' if count != 1 else ''} matched by {pattern!r} will be "
              f"readable and writable by anyone: the security (at {where[pattern]}) names "
              "no members; add members, or public: true if that is meant"
              for pattern, count in matched.items()]
    lines += [f"{'pattern' if spec.name in desired.patterns else 'database'} {spec.name!r} says "
              f"public: true (at {spec.sources.get('public', spec.source)}), but its "
              f"security (at {spec.sources.get('security', spec.source)}) names members: "
              "it is not open to anyone; drop one of them"
              for spec in [*named, *desired.patterns.values()]
              if spec.public and spec.security is not None
              and not is_open_to_anyone(spec.security)]
    lines += [f"database {name!r} is readable and writable by anyone: its security on the "
              f"server names no members, and the manifests (at "
              f"{desired.databases[name].source}) declare none; add security with members, "
              "or public: true if that is meant" for name in plan.open_to_anyone]
    return lines
