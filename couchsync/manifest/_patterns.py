"""Database patterns: a ``databases:`` key holding ``*`` (which no CouchDB name can hold)
applies to every existing database it matches (``"userdb-*"``), never a system database
nor couchsync's locks.

A database several patterns match gets them all merged (``merge_spec``), and every pair
of patterns some name could match both of is checked when loading (``patterns_overlap``):
a conflict is found by ``validate``, not when a matching database first appears.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from couchsync._canonical import canonical_json
from couchsync._names import LOCK_DB
from couchsync.manifest._problems import conflict
from couchsync.manifest.model import (
    DatabaseSpec,
    DesiredState,
    IndexSpec,
    MigrationSpec,
    SourcePos,
)

#: The settings a pattern may declare; the others (state, partitioned, q, n, placement)
#: are about creating a database, which a pattern never does.
PATTERN_SETTINGS = ("security", "public", "prune", "design_deploy", "create_only", "ignore")


def is_pattern(name: str) -> bool:
    return "*" in name


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches database ``name`` (never a system database or the locks)."""
    return (not name.startswith("_") and name != LOCK_DB
            and _regex(pattern).fullmatch(name) is not None)


def literal_prefix(pattern: str) -> str:
    """The part before the first ``*``: every match starts with it."""
    return pattern.split("*", 1)[0]


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some name matches both patterns (``*``: any run of characters)."""

    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(a):
            return all(c == "*" for c in b[j:])
        if j == len(b):
            return all(c == "*" for c in a[i:])
        if a[i] == "*" or b[j] == "*":
            # A star ends here, or takes the other side's next character (or star).
            return (a[i] == "*" and (meet(i + 1, j) or meet(i, j + 1))) or (
                b[j] == "*" and (meet(i, j + 1) or meet(i + 1, j)))
        return a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)


def merge_spec(target: DatabaseSpec, source: DatabaseSpec) -> Iterator[tuple[SourcePos, str]]:
    """Add what pattern ``source`` declares to ``target``; yields each real conflict
    (where, message), placed at ``source``'s declaration and naming ``target``'s."""
    what = (f"{'pattern' if is_pattern(target.name) else 'database'} {target.name!r} "
            f"and pattern {source.name!r}")
    for setting in PATTERN_SETTINGS:
        if setting not in source.sources:
            continue
        value, where = getattr(source, setting), source.sources[setting]
        first = target.sources.get(setting)
        if first is None:
            setattr(target, setting, value)
            target.sources[setting] = where
        elif canonical_json(getattr(target, setting)) != canonical_json(value):
            yield where, (f"conflicting {setting} for {what}: "
                          f"{conflict(value, getattr(target, setting), first)}")
    sections: tuple[tuple[str, str, Callable[[Any], object]], ...] = (
        ("indexes", "index", _index_definition),
        ("design_docs", "design doc", lambda design: canonical_json(design.body, drop=())),
        ("documents", "document", lambda doc: doc.hash),
        ("document_rules", "document rule", lambda rule: (rule.create_only, rule.ignore)))
    for section, kind, definition in sections:
        mine, theirs = getattr(target, section), getattr(source, section)
        for key, spec in theirs.items():
            first = mine.get(key)
            if first is None:
                mine[key] = spec
            elif definition(first) != definition(spec):
                yield (spec.source, f"{kind} {key!r} of {what} is declared differently at "
                       f"{first.source}")
    yield from add_migrations(target, source.migrations, what)


def add_migrations(target: DatabaseSpec, migrations: Iterable[MigrationSpec],
                   what: str) -> Iterator[tuple[SourcePos, str]]:
    """Append ``migrations`` to ``target``'s; yields each whose id is already there (the
    same id twice is refused even when declared alike: which one would run first?)."""
    first = {migration.id: migration for migration in target.migrations}
    for migration in migrations:
        known = first.setdefault(migration.id, migration)
        if known is migration:
            target.migrations.append(migration)
        else:
            yield (migration.source, f"migration {migration.id!r} of {what} is already "
                   f"declared at {known.source}")


def _index_definition(index: IndexSpec) -> bytes:
    return canonical_json([index.fields, index.ddoc, index.partial_filter_selector, index.type,
                           index.partitioned], drop=())


def combine(specs: list[DatabaseSpec]) -> tuple[DatabaseSpec, list[tuple[SourcePos, str]]]:
    """What patterns ``specs`` declare together, and the conflicts between them (each
    placed at a later pattern, naming the first)."""
    if len(specs) == 1:
        return specs[0], []
    combined = DatabaseSpec(name=specs[0].name, source=specs[0].source)
    return combined, [clash for spec in specs for clash in merge_spec(combined, spec)]


def expand_patterns(desired: DesiredState, names: Iterable[str]) -> DesiredState:
    """``desired`` with a database for each of ``names`` (the server's) that a pattern
    matches and no manifest names, in name order after the named ones. Databases the
    same patterns match share one spec's sections, not a copy each."""
    if not desired.patterns:
        return desired
    combined: dict[tuple[str, ...], DatabaseSpec] = {}
    databases = dict(desired.databases)
    for name in sorted(names):
        if name in databases:
            continue
        keys = tuple(pattern for pattern in desired.patterns if matches(pattern, name))
        if keys:
            if keys not in combined:
                combined[keys] = combine([desired.patterns[key] for key in keys])[0]
            databases[name] = replace(combined[keys], name=name, matched_by=", ".join(keys))
    # Every other section (config, prune_config, ...) is the manifests' as they are.
    return replace(desired, databases=databases)
