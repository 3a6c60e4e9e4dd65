"""``migrations:`` entries: schema-valid data into ``MigrationSpec``, with the rules the
schema cannot express (docs/manifest.md#migrations), the checksum, and the transform
functions, each file imported once per content so that its code is the code checksummed.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any, cast

from couchsync._canonical import NotJSONNumber, canonical_json
from couchsync.manifest._problems import ManifestError, Path, Problem, type_name
from couchsync.manifest.model import MigrationSpec, SourcePos

Transform = Callable[[dict[str, Any]], dict[str, Any] | None]
#: A problem inside one entry: where (relative to it), message, and whether at the key.
EntryProblem = tuple[Path, str, bool]

_OPERATIONS = ("rename", "copy", "set_default", "set", "unset", "transform", "delete")

# --------------------------------------------------------------------------- one entry


def read_migration(entry: dict[str, Any], manifest: str,
                   source: SourcePos) -> tuple[MigrationSpec, list[EntryProblem]]:
    """The spec of schema-valid ``entry`` written in file ``manifest`` at ``source``, and
    its problems (the transform file is read and imported here). With problems, the spec
    has no checksum: it only takes part in the checks of ids and reverts."""
    problems = [*_operation_problems(entry), *_selector_problems(entry.get("selector"))]
    code, transform_file = b"", None
    if "transform" in entry:
        relative, _, function = entry["transform"].rpartition(":")
        written = os.path.join(os.path.dirname(manifest), relative)
        transform_file = os.path.abspath(written)  # the same file if the process moves
        try:
            code, module = _imported(written, relative)
            _function(module, function, relative)
        except _TransformError as exc:
            problems.append((("transform",), str(exc), False))
    spec = MigrationSpec(
        id=entry["id"], source=source, checksum="", selector=entry.get("selector"),
        rename=entry.get("rename", {}), copy=entry.get("copy", {}),
        set_default=entry.get("set_default", {}), set=entry.get("set", {}),
        unset=tuple(entry.get("unset", ())), transform=entry.get("transform"),
        transform_file=transform_file, delete=entry.get("delete", False),
        description=entry.get("description", ""),
        rerun_on_change=entry.get("rerun_on_change", False),
        keep_originals=entry.get("keep_originals", False), revert=entry.get("revert"))
    if problems:
        return spec, problems
    try:
        return replace(spec, checksum=checksum(spec, code)), []
    except NotJSONNumber as exc:
        return spec, [((), str(exc), False)]


def checksum(spec: MigrationSpec, code: bytes = b"") -> str:
    """The digest of what ``spec`` does (not its id, description or rerun_on_change), its
    transform file's bytes ``code`` included: line ends as ``\\n``, so that a checkout
    with CRLF line ends (git on Windows) has the same checksum."""
    definition = {"selector": spec.selector, "rename": spec.rename, "copy": spec.copy,
                  "set_default": spec.set_default, "set": spec.set, "unset": list(spec.unset),
                  "transform": spec.transform, "delete": spec.delete, "revert": spec.revert,
                  "keep_originals": spec.keep_originals}
    digest = hashlib.sha256(canonical_json(definition, drop=()))  # an object: self-delimiting
    digest.update(code.replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:32]


def _given(entry: dict[str, Any], key: str) -> bool:
    # An empty mapping or list, or delete: false, does nothing: as if left out.
    return key in entry and entry[key] not in ({}, [], False)


def _operation_problems(entry: dict[str, Any]) -> Iterator[EntryProblem]:
    name = entry["id"]
    given = [key for key in _OPERATIONS if _given(entry, key)]
    if "revert" in entry:
        extra = [key for key in entry if key not in ("id", "description", "revert")]
        if extra:
            yield (("revert",), f"migration {name!r} reverts {entry['revert']!r}: it restores "
                   f"that migration's originals and takes nothing beside id and description "
                   f"(it has {', '.join(extra)})", True)
        return
    if not given:
        yield ((), f"migration {name!r} does nothing: give it one of "
               f"{', '.join(_OPERATIONS)} (or revert)", False)
    if entry.get("delete") and len(given) > 1:
        others = ", ".join(key for key in given if key != "delete")
        yield (("delete",), f"migration {name!r} deletes the documents it selects, so it "
               f"cannot also {others} them: make that a migration of its own", True)
    for op in ("rename", "copy", "set_default", "set"):
        yield from _overlaps(op, entry.get(op, {}))


def _overlaps(op: str, entries: dict[str, Any]) -> Iterator[EntryProblem]:
    """Paths of one operation that meet (one is the other or inside it) make the result
    depend on the order they are written in: refused, so that order means nothing (and
    the checksum may sort them)."""
    def inside(a: str, b: str) -> bool:
        return a == b or b.startswith(a + ".") or a.startswith(b + ".")

    def touched(key: str) -> tuple[list[str], list[str]]:  # (written, read)
        if op == "rename":
            return [key, entries[key]], []
        if op == "copy":
            return [entries[key]], [key]
        return [key], []

    seen: list[str] = []
    for key in entries:
        written, read = touched(key)
        if op in ("rename", "copy") and inside(key, entries[key]):
            yield ((op, key), f"{op} {key!r} -> {entries[key]!r}: one path is the other or "
                   "inside it", True)
        for earlier in seen:
            their_written, their_read = touched(earlier)
            if (any(inside(a, b) for a in written for b in their_written + their_read)
                    or any(inside(a, b) for a in their_written for b in read)):
                yield ((op, key), f"{op} {key!r} and {earlier!r} touch the same field (one "
                       "path is the other or inside it), so the result would depend on "
                       "their order: make them two migrations", True)
                break
        seen.append(key)


# ------------------------------------------------------------------------------ selectors

_SELECTOR_OPERAND = ("$not", "$elemMatch", "$allMatch", "$keyMapMatch")
_TYPES = ("null", "boolean", "number", "string", "array", "object")


def _operand_problem(operator: str, operand: Any) -> str | None:
    """What is wrong with ``operand`` of a field operator (None: it is fine)."""
    def wrong(wanted: str) -> str:
        return f"{operator} takes {wanted}, got {type_name(operand)}"

    if operator in ("$in", "$nin", "$all"):
        return None if isinstance(operand, list) else wrong("a list")
    if operator == "$exists":
        return None if isinstance(operand, bool) else wrong("true or false")
    if operator == "$type":
        return (None if operand in _TYPES
                else f"$type takes one of {', '.join(_TYPES)}, got {operand!r}")
    if operator == "$size":
        return (None if type(operand) is int and operand >= 0
                else wrong("a whole number, 0 or more"))
    if operator == "$mod":
        good = (isinstance(operand, list) and len(operand) == 2
                and all(type(n) is int for n in operand) and operand[0] != 0)
        return None if good else wrong("[divisor, remainder]: two whole numbers, the "
                                       "divisor not 0")
    if operator in ("$regex", "$beginsWith") and not isinstance(operand, str):
        return wrong("a string")
    if operator == "$regex":
        try:
            re.compile(operand)
        except (re.error, RecursionError, OverflowError) as exc:  # deep nesting: Recursion
            return f"$regex {operand!r} is not a regular expression: {exc}"
    return None  # $eq $ne $lt $lte $gt $gte: any value


_FIELD_OPERATORS = frozenset(("$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$exists", "$type",
                              "$in", "$nin", "$size", "$mod", "$regex", "$all", "$beginsWith"))
_OPERATORS = frozenset(("$and", "$or", "$nor", *_SELECTOR_OPERAND, *_FIELD_OPERATORS))


def _selector_problems(selector: Any, path: Path = ("selector",)) -> Iterator[EntryProblem]:
    """What CouchDB would refuse in Mango ``selector``: unknown operators, operands of the
    wrong type, regular expressions that do not compile (checked with Python's ``re``)."""
    if selector is None:
        return
    if not isinstance(selector, dict):
        yield (path, f"expected a selector (a mapping), got {type_name(selector)}", False)
        return
    for key, operand in selector.items():
        here = (*path, key)
        if not key.startswith("$"):
            if isinstance(operand, dict):  # operators on the field, or its subfields
                yield from _selector_problems(operand, here)
        elif key not in _OPERATORS:
            close = difflib.get_close_matches(key, sorted(_OPERATORS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield (here, f"unknown selector operator {key!r}{hint}", True)
        elif key in ("$and", "$or", "$nor"):
            if not isinstance(operand, list):
                yield (here, f"{key} takes a list of selectors, got {type_name(operand)}",
                       False)
            for i, item in enumerate(operand if isinstance(operand, list) else ()):
                yield from _selector_problems(item, (*here, i))
        elif key in _SELECTOR_OPERAND:
            yield from _selector_problems(operand, here)
        elif (problem := _operand_problem(key, operand)) is not None:
            yield (here, problem, False)


# ------------------------------------------------------------------------ a database's list

def list_problems(migrations: list[MigrationSpec]) -> Iterator[tuple[SourcePos, str]]:
    """A ``revert`` names a migration earlier in the list that keeps its originals."""
    earlier: dict[str, MigrationSpec] = {}
    later = {migration.id: migration for migration in migrations}
    for migration in migrations:
        target = migration.revert
        if target is not None:
            undone = earlier.get(target)
            if undone is None and target in later:
                yield (migration.source, f"revert {target!r} names a migration declared "
                       f"after it (at {later[target].source}): a revert comes after the "
                       "migration it undoes")
            elif undone is None:
                yield (migration.source, f"revert {target!r} names no migration declared "
                       "before it in this database")
            elif not undone.keep_originals:
                yield (migration.source, f"revert {target!r}: that migration (at "
                       f"{undone.source}) is not declared keep_originals: true, so there is "
                       "nothing to restore")
        earlier.setdefault(migration.id, migration)


# ---------------------------------------------------------------------------- transforms

class _TransformError(Exception):
    """A transform file that cannot be read or imported, or lacks its function."""


_lock = threading.Lock()  # databases migrate in parallel: one import per content
#: By resolved path: the content last imported, and its module.
_modules: dict[str, tuple[bytes, ModuleType]] = {}


def _imported(path: str, relative: str) -> tuple[bytes, ModuleType]:
    """The bytes of transform file ``path`` (``relative`` as written) and the module they
    make, imported (their module-level code run) once per process and content."""
    shown = repr(relative)
    if "\0" in path:  # os.path would raise ValueError: no file can be named so
        raise _TransformError(f"transform file {shown}: a file name cannot hold a NUL character")
    real = os.path.realpath(path)
    try:
        with open(real, "rb") as file:
            code = file.read()
    except OSError as exc:
        raise _TransformError(f"cannot read transform file {shown} ({path}): "
                              f"{exc.strerror or exc}") from None
    with _lock:
        known = _modules.get(real)
        if known is not None and known[0] == code:
            return known
        name = "couchsync_transform_" + hashlib.sha256(real.encode()).hexdigest()[:16]
        spec = importlib.util.spec_from_file_location(name, real)
        assert spec is not None  # a .py file path always has one
        module = importlib.util.module_from_spec(spec)
        try:
            compiled = compile(code, real, "exec")
        except SyntaxError as exc:  # no line: a NUL byte
            at = f" has a syntax error at line {exc.lineno}" if exc.lineno else ""
            raise _TransformError(f"transform file {shown}{at}: {exc.msg}") from None
        sys.modules[name] = module  # as importlib does: dataclasses and pickle look there
        try:
            exec(compiled, module.__dict__)
        except (Exception, SystemExit) as exc:
            del sys.modules[name]
            lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
                     if frame.filename == real]
            at = f" at line {lines[-1]}" if lines else ""
            raise _TransformError(f"transform file {shown} failed when imported{at}: "
                                  f"{type(exc).__name__}: {exc}") from None
        _modules[real] = (code, module)
        return code, module


def _function(module: ModuleType, name: str, relative: str) -> Transform:
    function = getattr(module, name, None)
    if function is None:
        raise _TransformError(f"transform file {relative!r} defines no {name!r}")
    if not callable(function):
        raise _TransformError(f"{name!r} in transform file {relative!r} is "
                              f"{type_name(function)}, not a function")
    return cast(Transform, function)


def load_transform(spec: MigrationSpec) -> Transform:
    """The function ``spec.transform`` names, from its file imported once per process (the
    module as validation imported it). ``ManifestError`` when the file no longer holds the
    code ``spec.checksum`` was taken of, or cannot be imported any more."""
    if spec.transform is None or spec.transform_file is None:
        raise ValueError(f"migration {spec.id!r} has no transform")
    relative, _, name = spec.transform.rpartition(":")
    try:
        code, module = _imported(spec.transform_file, relative)
        if checksum(spec, code) != spec.checksum:
            raise _TransformError(f"transform file {relative!r} changed since the manifests "
                                  "were loaded")
        return _function(module, name, relative)
    except _TransformError as exc:
        raise ManifestError([Problem(*spec.source, f"migration {spec.id!r}: {exc}")]) from None
