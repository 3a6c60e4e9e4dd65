"""What a data migration does to one document, with no I/O: the same function previews a
migration in a plan and runs it in apply, so the plan's counts are apply's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from couchsync._canonical import canonical_json, hash_canonical
from couchsync.manifest.model import DatabaseSpec, MigrationSpec
from couchsync.plan._model import Action, PlanError, Step, StepKind
from couchsync.plan._state import KeptOutcomes, MigrationPreview

#: ``def upgrade(doc) -> dict | None``: the new body, or None to leave the document.
Transform = Callable[[dict[str, Any]], dict[str, Any] | None]
#: The design doc that records, in each database, which migrations ran (design, not
#: ``_local``: it replicates with the documents it vouches for, and is read in the same
#: request as the manifests' design docs, so a no-op plan asks nothing more).
MIGRATIONS_DDOC = "_design/couchsync-migrations"
#: What the journal stores as the new body's hash of a document the migration deletes.
DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A migration's effect on one document: ``body`` is what to write (``_id`` and
    ``_rev`` kept; a tombstone when ``deleted``), None when it is left as it was;
    ``error`` when it cannot be migrated."""

    body: dict[str, Any] | None = None
    deleted: bool = False
    error: str | None = None

    @property
    def changes(self) -> bool:
        return self.body is not None


LEFT = Outcome()


class MigrationChanged(PlanError):
    """A migration that ran was edited since (Flyway's ``validate``): not about one
    database, so the whole plan stops."""


def pending_migrations(spec: DatabaseSpec, record: Mapping[str, Any]
                       ) -> Iterator[MigrationSpec]:
    """The migrations of ``spec`` still to run, in order (``record``: the migrations
    design doc's ``migrations``, each one that ran to the end). One that ran with another
    definition is ``MigrationChanged``, unless it says ``rerun_on_change``."""
    for migration in spec.migrations:
        entry = record.get(migration.id)
        if entry is None:
            yield migration
        elif entry.get("checksum") != migration.checksum:
            if not migration.rerun_on_change:
                raise MigrationChanged(
                    f"migration {migration.id} ({migration.source}) was applied in "
                    f"{spec.name} with another definition, and has been edited since "
                    f"(checksum {entry.get('checksum')}, now {migration.checksum}): put it "
                    "back as it was and add a new migration, or set rerun_on_change: true "
                    "to run it again")
            yield migration


class _Previewed(dict[str, Any]):
    """A migration step's ``after`` holding, besides, the outcomes its preview kept for the
    apply of this very plan (``kept_outcomes``): the machine format, saved plans and
    equality see the dict alone, so a plan read back or made again has none."""

    __slots__ = ("kept",)

    def __init__(self, items: Mapping[str, Any], kept: KeptOutcomes | None) -> None:
        super().__init__(items)
        self.kept = kept


def kept_outcomes(step: Step) -> KeptOutcomes | None:
    """What the preview of migration ``step`` kept for its run, handed over once (None:
    nothing kept; the run reads the documents)."""
    after = step.after
    if not isinstance(after, _Previewed):
        return None
    kept, after.kept = after.kept, None
    return kept


def migration_steps(spec: DatabaseSpec, record: Mapping[str, Any],
                    previews: Mapping[str, MigrationPreview]) -> Iterator[Step]:
    """One step per migration to run, its ``after`` the preview and the checksum (a
    saved plan pins the definition it previewed)."""
    for migration in pending_migrations(spec, record):
        found = previews.get(migration.id, MigrationPreview())
        after = {"checksum": migration.checksum, "matched": found.matched,
                 "changed": found.changed, "deleted": found.deleted, "failed": found.failed,
                 **({"resumed": found.done} if found.done else {}),
                 **({"since": found.since} if found.since is not None else {}),
                 **({"errors": found.errors} if found.errors else {}),
                 **({"unindexed": selector_fields(migration.selector or {})}
                    if found.unindexed else {}),
                 "samples": [{"id": before["_id"], "before": _shown(before),
                              "after": _shown(after)} for before, after in found.samples]}
        reason = migration.description or ("resume the interrupted run" if found.done else "")
        yield Step(Action.UPDATE, StepKind.MIGRATION, spec.name, migration.id,
                   after=after if found.kept is None else _Previewed(after, found.kept),
                   reason=reason)


def selector_fields(selector: Mapping[str, Any]) -> list[str]:
    """The fields a Mango selector tests, in order: what an index serving it would hold."""
    fields: dict[str, None] = {}
    for key, value in selector.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for part in value:
                if isinstance(part, Mapping):
                    fields.update(dict.fromkeys(selector_fields(part)))
        elif key == "$not" and isinstance(value, Mapping):
            fields.update(dict.fromkeys(selector_fields(value)))
        elif not key.startswith("$"):
            fields[key] = None
    return list(fields)


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("_id", "_rev")}


def body_hash(body: dict[str, Any] | None) -> str:
    """The hash the journal keeps of a body a batch is about to write (``_rev`` aside)."""
    if body is None:
        return DELETED
    return hash_canonical(canonical_json({k: v for k, v in body.items() if k != "_rev"},
                                         drop=()))


def migrate(spec: MigrationSpec, doc: dict[str, Any], transform: Transform | None) -> Outcome:
    """``spec`` applied to ``doc`` (not modified): rename, copy, set_default, set, unset,
    then ``transform`` (given the result; its None leaves the document as it was); or a
    delete."""
    if spec.delete:
        return _deleted(doc)
    new = _copy(doc)
    try:
        for source, target in spec.rename.items():
            found, value = _pop(new, source)
            if found:
                _put(new, target, value)
        for source, target in spec.copy.items():
            found, value = _get(new, source)
            if found:
                _put(new, target, _copy(value))
        for path, value in spec.set_default.items():
            if not _get(new, path)[0]:
                _put(new, path, _copy(value))
        for path, value in spec.set.items():
            _put(new, path, _copy(value))
        for path in spec.unset:
            _pop(new, path)
        if transform is not None:
            returned = transform(new)
            if returned is None:  # "leave it": the operations before it are not written
                return LEFT
            if not isinstance(returned, dict):
                return Outcome(error=f"{spec.transform} returned {type(returned).__name__}, "
                                     "not a dict or None")
            new = returned
    except _NotAnObject as exc:
        return Outcome(error=str(exc))
    except Exception as exc:  # the user's function: its error names the document
        return Outcome(error=f"{spec.transform} raised {type(exc).__name__}: {exc}")
    return _changed(doc, new)


def idempotent(spec: MigrationSpec) -> bool:
    """Whether running ``spec`` on what it wrote changes nothing more: no transform, and
    no two of its paths meet (one path twice, or one inside another: a rename from what a
    set writes moves it again). Such a run needs no journal to change each document
    once: a document it reads again is left as it is (``test_plan_migrate``)."""
    if spec.transform is not None:
        return False
    paths = [*spec.rename, *spec.rename.values(), *spec.copy, *spec.copy.values(),
             *spec.set_default, *spec.set, *spec.unset]
    return not any(_meet(a, b) for i, a in enumerate(paths) for b in paths[i + 1:])


def journaled(spec: MigrationSpec) -> bool:
    """Whether a run of ``spec`` writes each batch ahead into its journal: it keeps the
    originals, or running it again on what it wrote would change a document twice."""
    return spec.keep_originals or not idempotent(spec)


def _meet(a: str, b: str) -> bool:
    """Whether dotted paths ``a`` and ``b`` are one, or one lies inside the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _copy(value: Any) -> Any:
    """A copy of decoded JSON (dicts and lists copied, the rest shared): three times
    cheaper than ``copy.deepcopy`` on documents, and run once per document matched."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _changed(doc: dict[str, Any], new: dict[str, Any]) -> Outcome:
    if new.get("_id", doc["_id"]) != doc["_id"]:
        return Outcome(error=f"the new body's _id is {new['_id']!r}, not {doc['_id']!r}")
    new = {**new, "_id": doc["_id"], **({"_rev": doc["_rev"]} if "_rev" in doc else {})}
    if new.get("_deleted") is True:
        return _deleted(doc)
    return LEFT if new == doc else Outcome(body=new)


def _deleted(doc: dict[str, Any]) -> Outcome:
    tombstone = {"_id": doc["_id"], **({"_rev": doc["_rev"]} if "_rev" in doc else {}),
                 "_deleted": True}
    return Outcome(body=tombstone, deleted=True)


class _NotAnObject(Exception):
    pass


def _parent(doc: dict[str, Any], path: str, create: bool) -> tuple[dict[str, Any] | None, str]:
    """The object holding ``path``'s last segment, and that segment; None when a part of
    the path is missing (and not ``create``d)."""
    *parents, last = path.split(".")
    node = doc
    walked = []
    for part in parents:
        walked.append(part)
        child = node.get(part)
        if child is None and part not in node:
            if not create:
                return None, last
            child = node[part] = {}
        if not isinstance(child, dict):
            if not create:
                return None, last
            raise _NotAnObject(f"{'.'.join(walked)} is {_kind(child)}, not an object, "
                               f"so {path} cannot be set")
        node = child
    return node, last


def _get(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    node, last = _parent(doc, path, create=False)
    return (False, None) if node is None or last not in node else (True, node[last])


def _pop(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    node, last = _parent(doc, path, create=False)
    return (False, None) if node is None or last not in node else (True, node.pop(last))


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    node, last = _parent(doc, path, create=True)
    assert node is not None  # created
    node[last] = value


def _kind(value: Any) -> str:
    return "null" if value is None else {list: "an array", str: "a string", bool: "a boolean"
                                         }.get(type(value), "a number")
