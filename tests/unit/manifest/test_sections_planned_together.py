"""Planning manifest files together equals the union of planning them apart (issue 19.1).

A file of database patterns beside a file of ``config:`` once lost the config: pattern
expansion rebuilt the desired state from the sections it knew. The property: for
generated manifest sets whose entries do not overlap (each database, pattern, config
section, user and replication is declared in one file), the steps planned from all the
files at once are exactly the steps planned from each file alone, put together, against
one fixed live state. Every section the format has is generated (checked against the
schema, so that a new section must be added here), and planning is done the way
``couchsync plan`` does it (load, ``--db-prefix``, expand patterns, plan), without I/O.

The same on a real server, through the command: tests/integration/test_sections_together.py.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couchsync._canonical import canonical_json
from couchsync.manifest import DatabaseNames, load_manifests
from couchsync.manifest._patterns import expand_patterns, matches
from couchsync.plan import LiveDatabase, LiveDoc, LiveState, ManagedDoc
from couchsync.plan._config import LiveConfig, plan_config
from couchsync.plan._diff import plan_changes

SCHEMA = json.loads((Path(__file__).parents[3] / "couchsync" / "schemas" /
                     "manifest.schema.json").read_text())
#: What a pattern may not declare (it never creates a database).
NOT_FOR_PATTERNS = {"state", "partitioned", "q", "n", "placement"}
MAP = "function (doc) { emit(doc._id, 1); }"
Fragment = dict[str, Any]


def _orphan(db: str) -> tuple[dict[str, LiveDoc], dict[str, ManagedDoc]]:
    """A document couchsync created that no manifest declares (prune deletes it)."""
    doc_id = "org.couchdb.user:orphan" if db == "_users" else "p:orphan"
    body = {"_id": doc_id, "_rev": "1-a", "v": 0}
    return {doc_id: LiveDoc("1-a", body)}, {doc_id: ManagedDoc("1-a", "0" * 22, True)}


def _live_database(name: str, exists: bool) -> LiveDatabase:
    if not exists:
        return LiveDatabase(name, exists=False)
    documents, managed = _orphan(name)
    return LiveDatabase(name, exists=True, security={}, documents=documents, managed=managed)


LIVE_CONFIG = LiveConfig(
    nodes=["couchdb@a", "couchdb@b"],
    values={"couchdb@a": {"sec0": {"k": "old"}, "gone": {"key": "x"}},
            "couchdb@b": {"gone": {"key": "x"}}},
    managed={"couchdb@a": {"gone/key"}, "couchdb@b": {"gone/key"}})


# -- the generated entries: each is one fragment of a manifest, in a file of its own choice

def _security(i: int) -> dict[str, Any]:
    return {"members": {"names": [f"reader{i}"], "roles": []},
            "admins": {"names": [], "roles": ["ops"]}}


@st.composite
def _content(draw: st.DrawFn, i: int, pattern: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A database's (or pattern's) declaration, with any of its sections, and the data
    files it reads (name → text)."""
    spec: dict[str, Any] = {}
    files: dict[str, str] = {}
    keys = sorted(key for key in SCHEMA["$defs"]["database"]["properties"]
                  if not (pattern and key in NOT_FOR_PATTERNS))
    chosen = draw(st.sets(st.sampled_from(keys)))
    if "document_rules" in chosen:  # a rule names a document the manifests list
        chosen.add("documents")
    for key in chosen:
        if key == "state":
            continue  # drawn below: "absent" excludes every other section
        if key == "documents_from":
            name = f"data{i}{'p' if pattern else ''}.jsonl"
            files[name] = "".join(json.dumps({"_id": f"p:f{n}", "n": n}) + "\n" for n in range(2))
            spec[key] = [name]
        else:
            spec[key] = copy.deepcopy(draw(_VALUES[key](i)))
        if key in ("design_docs", "documents"):  # each carries an attachment from a file
            name = f"{key}{i}{'p' if pattern else ''}.html"
            files[name] = f"<p>{key} {i}</p>"
            entry = spec[key][0] if key == "documents" else next(iter(spec[key].values()))
            entry["_attachments"] = {"page.html": name}
    if "ignore" in spec and spec.get("create_only"):
        spec["create_only"] = False  # ignore beside create_only everywhere is refused
    if not pattern and draw(st.integers(0, 5)) == 0:
        return {"state": "absent"}, {}
    return spec, files


_VALUES: dict[str, Any] = {
    "partitioned": lambda i: st.booleans(),
    "q": lambda i: st.integers(1, 8),
    "n": lambda i: st.integers(1, 3),
    "placement": lambda i: st.just("zone-a:1"),
    "security": lambda i: st.sampled_from([_security(i), {}]),
    "public": lambda i: st.booleans(),
    "prune": lambda i: st.booleans(),
    "design_deploy": lambda i: st.sampled_from(["in_place", "staged"]),
    "indexes": lambda i: st.just({f"by-v{i}": {"fields": ["v"]},
                                  f"by-w{i}": {"fields": [{"w": "desc"}], "ddoc": f"ix{i}"}}),
    "design_docs": lambda i: st.just({f"app{i}": {"views": {"all": {"map": MAP}}}}),
    "documents": lambda i: st.just([{"_id": f"p:doc{i}", "v": i}, {"_id": "p:shared", "v": 1}]),
    "create_only": lambda i: st.booleans(),
    "ignore": lambda i: st.just(["seen"]),
    "document_rules": lambda i: st.just({f"p:doc{i}": {"create_only": True}}),
    "migrations": lambda i: st.just([{"id": f"m{i}", "selector": {"v": {"$gt": 0}},
                                      "set": {"schema": 2}, "unset": ["legacy"]}]),
}


@st.composite
def _fragment(draw: st.DrawFn, kind: str, i: int) -> tuple[Fragment, dict[str, str]]:
    if kind == "database":
        spec, files = draw(_content(i, pattern=False))
        return {"databases": {f"db{i}": spec}}, files
    if kind == "pattern":
        spec, files = draw(_content(i, pattern=True))
        return {"databases": {f"pat{i}-*": spec}}, files
    if kind == "config":
        return {"config": {f"sec{i}": {"k": draw(st.sampled_from(["old", "new", True, 8]))}}}, {}
    if kind == "users":
        return {"users": {f"user{i}": {"password": f"pw-{i}", "roles": ["app"]}}}, {}
    return {"replications": {f"rep{i}": {"source": f"http://h:5984/a{i}",
                                         "target": f"http://h:5984/b{i}"}}}, {}


TOP_LEVEL = ("database", "pattern", "config", "users", "replications")
PRUNE_KEYS = sorted(SCHEMA["properties"]["prune"]["properties"])


@st.composite
def _manifest_set(draw: st.DrawFn) -> tuple[list[Fragment], dict[str, str], dict[str, Any]]:
    """Up to 3 files (each a manifest), their data files, and which live databases exist."""
    kinds = draw(st.lists(st.sampled_from(TOP_LEVEL), min_size=1, max_size=7))
    file_count = draw(st.integers(1, 3))
    manifests: list[Fragment] = [{} for _ in range(file_count)]
    data: dict[str, str] = {}
    for i, kind in enumerate(kinds):
        fragment, files = draw(_fragment(kind, i))
        data.update(files)
        target = manifests[draw(st.integers(0, file_count - 1))]
        for section, entries in fragment.items():
            target.setdefault(section, {}).update(entries)
    manifests = [m for m in manifests if m]
    prune = draw(st.fixed_dictionaries({}, optional=dict.fromkeys(PRUNE_KEYS, st.booleans())))
    if prune:  # the prune settings are server-wide: one file holds them
        manifests[draw(st.integers(0, len(manifests) - 1))]["prune"] = prune
    existing = {f"db{i}": draw(st.booleans()) for i in range(len(kinds))}
    return manifests, data, existing


def _steps(paths: list[Path], existing: dict[str, bool], names: DatabaseNames) -> list[str]:
    """The steps ``couchsync plan PATHS`` shows, against the fixed live state, with the
    databases under their declared names."""
    desired = names.apply(load_manifests(paths, environ={}))
    # The server: the named databases that exist, two matches of each pattern, the
    # system databases (what discover() would find, without I/O).
    on_server = {names.real(name) for name, there in existing.items() if there}
    on_server |= {names.real(f"pat{i}-{x}") for i in range(len(existing)) for x in "ab"}
    matched = sorted(name for name in on_server if name not in desired.databases
                     and any(matches(pattern, name) for pattern in desired.patterns))
    desired = expand_patterns(desired, matched)
    live = LiveState({name: _live_database(name, name in on_server or name.startswith("_"))
                      for name in desired.databases})
    steps = [*plan_config(desired, LIVE_CONFIG), *plan_changes(desired, live).steps]
    for step in steps:
        step.database = step.database.removeprefix(names.prefix)
    return sorted(canonical_json(step.to_dict()).decode() for step in steps)


def _write(directory: Path, manifests: list[Fragment], data: dict[str, str]) -> list[Path]:
    for name, text in data.items():
        (directory / name).write_text(text)
    paths = []
    for n, manifest in enumerate(manifests):
        path = directory / f"m{n}.yaml"
        path.write_text(json.dumps({"version": 1, **manifest}, indent=1))
        paths.append(path)
    return paths


@pytest.mark.parametrize("prefix", ["", "blue-"])
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(manifest_set=_manifest_set())
def test_planning_files_together_is_the_union_of_planning_them_apart(
    prefix: str, manifest_set: tuple[list[Fragment], dict[str, str], dict[str, bool]],
) -> None:
    manifests, data, existing = manifest_set
    names = DatabaseNames(prefix, "")
    if prefix and any(section in m or section in m.get("prune", {})
                      for m in manifests for section in ("users", "replications", "config")):
        names = DatabaseNames("", "")  # --db-prefix refuses users, config, pruned replications
    with tempfile.TemporaryDirectory(prefix="helperC-") as directory:
        paths = _write(Path(directory), manifests, data)
        together = _steps(paths, existing, names)
        apart = sorted(step for path in paths for step in _steps([path], existing, names))
        unprefixed = _steps(paths, existing, DatabaseNames("", ""))
    assert together == apart
    assert together == unprefixed  # --db-prefix renames databases, and drops nothing


def test_every_section_of_the_format_is_generated() -> None:
    """A section added to the schema must be added to the generator above."""
    top = set(SCHEMA["properties"]) - {"version"}
    generated = {"databases", "config", "users", "replications", "prune"}
    assert top == generated
    database = set(SCHEMA["$defs"]["database"]["properties"])
    assert database == {*_VALUES, "state", "documents_from"}
    assert set(PRUNE_KEYS) == {"config", "users", "replications"}
