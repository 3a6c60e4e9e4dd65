"""Load manifest files into one ``DesiredState``: read, parse, expand, validate, merge."""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from itertools import groupby
from pathlib import Path as FsPath
from typing import Any

from couchsync.manifest._attachments import FileDigests
from couchsync.manifest._datacache import DataFileCache, cache_directory
from couchsync.manifest._env import expand
from couchsync.manifest._merge import ENTRY_SECTIONS, StateBuilder
from couchsync.manifest._problems import ManifestError, Path, Problem, format_path, type_name, warn
from couchsync.manifest._schema import schema_issues
from couchsync.manifest._server import SERVER_SECTIONS
from couchsync.manifest._yaml import parse_yaml
from couchsync.manifest.model import DesiredState

StrPath = str | os.PathLike[str]

_SUFFIXES = (".yaml", ".yml")
#: Past this many problems per file (a broken data file can hold 10^5) the rest are counted.
_PROBLEMS_PER_FILE = 50


OnDeclared = Callable[[DesiredState], Collection[str] | None]


def load_manifests(paths: Sequence[StrPath], *,
                   environ: Mapping[str, str] | None = None,
                   on_declared: OnDeclared | None = None) -> DesiredState:
    """Load, validate and merge manifest files and directories (each ``*.yaml``/``*.yml``
    below it, sorted) into one desired state; ``environ`` (default ``os.environ``)
    supplies ``${VAR}`` values. Raises ``ManifestError`` listing every problem found.

    ``on_declared(state)`` is called once every file has been read without a problem,
    before any document is added: reading data files is the slow part, and the caller
    (the planner) can ask the server for what it will need meanwhile. It may return
    databases whose documents it does not need (an incremental plan proved them
    unchanged from their ``documents_digest``): they are not loaded.
    """
    state, problems = _load(paths, os.environ if environ is None else environ, on_declared)
    if problems:
        raise ManifestError(problems)
    return state


def iter_problems(paths: Sequence[StrPath], *,
                  environ: Mapping[str, str] | None = None) -> Iterator[Problem]:
    """Every problem ``load_manifests`` would raise, in file and line order."""
    yield from _load(paths, os.environ if environ is None else environ)[1]


def _manifest_files(paths: Sequence[StrPath]) -> tuple[list[str], list[Problem]]:
    """The manifest files that ``paths`` name, each once, in order."""
    files: dict[FsPath, str] = {}  # each file once, by its resolved path
    problems: list[Problem] = []
    for given in paths:
        path = FsPath(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(str(path), 0, 0,
                                        "no *.yaml or *.yml files in this directory"))
        elif path.exists():
            found = [path]
        else:
            problems.append(Problem(str(path), 0, 0, "no such file or directory"))
            continue
        for file in found:
            files.setdefault(file.resolve(), str(file))
    return list(files.values()), problems


def _load(paths: Sequence[StrPath], environ: Mapping[str, str],
          on_declared: OnDeclared | None = None,
          ) -> tuple[DesiredState, list[Problem]]:
    if not paths:
        raise ValueError("load_manifests() needs at least one path")
    with _collector_paused():
        return _load_paths(paths, environ, on_declared)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """CPython's cyclic collector paused while a load runs: it builds 10^4-10^6 objects
    that all live on (YAML nodes, specs) and frees none in cycles, so each collection
    pass walks them for nothing. A manifest of 1,000 documents with attachments loads in
    83 ms instead of 106 (bench/RESULTS.md, issue 22)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load_paths(paths: Sequence[StrPath], environ: Mapping[str, str],
                on_declared: OnDeclared | None) -> tuple[DesiredState, list[Problem]]:
    files, problems = _manifest_files(paths)
    # The cache is the process's setting, not a manifest variable: os.environ, always.
    cached = cache_directory(os.environ)
    builder = StateBuilder(DataFileCache(cached), FileDigests(cached))
    secrets: set[str] = set()
    for file in files:
        problems.extend(_load_file(file, environ, builder, secrets))
    builder.state.files = files
    builder.digest_documents()
    unneeded: Collection[str] = ()
    if on_declared is not None and not problems and not builder.problems:
        unneeded = on_declared(builder.state) or ()
    builder.add_documents(unneeded)
    state = builder.finish()
    builder.digests.save()
    state.secrets = frozenset(secrets)
    return state, _limit(problems + builder.problems)


#: Seed-rule settings (``document_rules``) that a document may hold as data by mistake.
_RULE_FIELDS = {"create_only": bool, "ignore": list}


def _rules_written_as_fields(manifest: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """Seed documents holding ``create_only: true`` or ``ignore: [...]`` as fields: stored
    as data, where the writer most likely meant the seed rule (``document_rules``)."""
    databases = manifest.get("databases")
    for name, spec in (databases.items() if isinstance(databases, dict) else ()):
        documents = spec.get("documents") if isinstance(spec, dict) else None
        for i, doc in enumerate(documents if isinstance(documents, list) else ()):
            if not isinstance(doc, dict):
                continue
            for field, kind in _RULE_FIELDS.items():
                if isinstance(doc.get(field), kind) and isinstance(doc.get("_id"), str):
                    yield (("databases", name, "documents", i, field),
                           f"document {doc['_id']!r} has a field {field}: it is stored as "
                           "the document's data, not a seed rule; for the rule write "
                           f"document_rules: {{{doc['_id']}: {{{field}: "
                           f"{json.dumps(doc[field])}}}}} in the database")


def _load_file(file: str, environ: Mapping[str, str], builder: StateBuilder,
               secrets: set[str]) -> list[Problem]:
    """Load one file into ``builder``; ``secrets`` collects what secret variables gave."""
    try:
        data = FsPath(file).read_bytes()
    except OSError as exc:
        return [Problem(file, 0, 0, f"cannot read: {exc.strerror or exc}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return [Problem(file, line, col, "not valid UTF-8 text")]
    parsed = parse_yaml(text, file)
    problems, value, positions = parsed.problems, parsed.value, parsed.positions
    if value is None:
        if not problems:
            problems.append(Problem(file, 1, 1, "empty manifest: expected a mapping with "
                                    "'version: 1' and 'databases'"))
        return problems
    if not isinstance(value, dict):
        line, col = positions.value(())
        return [*problems, Problem(file, line, col, "a manifest must be a mapping with 'version'"
                                   f" and 'databases', got {type_name(value)}")]
    expansion = expand(value, environ)
    secrets |= expansion.secrets
    # Values that failed to parse are not schema-checked, and the parts with problems are
    # not built (_broken_part): only follow-on noise. The rest is built, for its own problems.
    broken: set[Path] = {_broken_part(path) for path in parsed.failed}
    for path, message in expansion.problems:
        problems.append(Problem(file, *positions.value(path), message, format_path(path)))
        broken.add(_broken_part(path))
    for path, message in expansion.warnings:
        warn(Problem(file, *positions.value(path), message, format_path(path)))
    for path, message in _rules_written_as_fields(expansion.value):
        warn(Problem(file, *positions.key(path), message, format_path(path)))
    for issue in schema_issues(expansion.value, expansion.expanded):
        if any(issue.path[: len(failed)] == failed for failed in parsed.failed):
            continue
        where = positions.key(issue.path) if issue.at_key else positions.value(issue.path)
        problems.append(Problem(file, *where, issue.message, format_path(issue.path)))
        broken.add(_broken_part(issue.path))
    databases = expansion.value.get("databases")
    # Broken itself: its value failed to convert (a second "databases:" stands in unchecked).
    if isinstance(databases, dict) and ("databases",) not in broken:
        for name, data in databases.items():
            skip = {part[2:] for part in broken if part[:2] == ("databases", name)}
            if () not in skip:
                builder.add_database(file, name, data, positions, skip)
    if any(isinstance(expansion.value.get(section), dict) for section in SERVER_SECTIONS):
        builder.server.add(file, expansion.value, positions, broken)
    return problems


def _broken_part(path: Path) -> Path:
    """What a problem at ``path`` keeps from being built: one entry of a section, else one
    setting or section, else (``databases.NAME`` itself) the whole database."""
    if len(path) > 3 and path[2] in ENTRY_SECTIONS:
        return path[:4]
    return path[:3]


def _limit(problems: list[Problem]) -> list[Problem]:
    problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.col, p.message))
    limited: list[Problem] = []
    for file, group in groupby(problems, key=lambda p: p.file):
        in_file = list(group)
        limited.extend(in_file[:_PROBLEMS_PER_FILE])
        if (more := len(in_file) - _PROBLEMS_PER_FILE) > 0:
            limited.append(Problem(file, 0, 0, f"{more} more problems in this file not shown"))
    return limited
