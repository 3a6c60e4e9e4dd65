"""Mango indexes as CouchDB stores them (issue 19, items 3, 4 and 5).

An index couchsync creates is stored exactly as CouchDB's own ``POST /_index``
stores the same definition; its ``partitioned`` setting is modelled, applied,
exported and compared; export writes each index as it was created (a legacy
``selector`` as the partial filter, no ddoc name CouchDB generated) and names
what a manifest cannot hold; and export → apply → re-plan is empty and
byte-exact over the indexes of CouchDB's own tests and docs
(``tests/data/real-world/mango``).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from cli_helpers import run
from sync_helpers import plan, sync

if str(Path(__file__).parents[1] / "client") not in sys.path:
    sys.path.insert(0, str(Path(__file__).parents[1] / "client"))
from loopback import Proxy, upstream_of  # tests/client/loopback.py

from couchsync._canonical import canonical_json
from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import DesiredState, expand_patterns, load_manifests
from couchsync.plan import Action
from couchsync.read import discover

REAL_WORLD = Path(__file__).parents[1] / "data" / "real-world" / "mango" / "couchdb-3.5.2.json"

#: Definitions in every form the manifest format takes, as a team would write them.
FORMS: dict[str, dict[str, Any]] = {
    "names": {"fields": ["location"]},
    "asc": {"fields": [{"location": "asc"}, {"x": "asc"}]},
    "desc": {"fields": [{"location": "desc"}, {"x": "desc"}]},
    "dotted": {"fields": ["location.city", "n"]},
    "short-filter": {"fields": ["location"], "partial_filter_selector": {"type": "x"}},
    "long-filter": {"fields": ["location"],
                    "partial_filter_selector": {"type": {"$eq": "x"}}},
    "empty-filter": {"fields": ["location"], "partial_filter_selector": {}},
    "mixed": {"fields": ["a", {"b": "asc"}],
              "partial_filter_selector": {"$or": [{"t": 1}, {"u": {"$gt": 2}}],
                                          "v": {"$exists": True}, "w": {"$ne": None}}},
}

OLD_SCHOOL = {  # src/mango/test/16-index-selectors-test.py (apache/couchdb 3.5.2)
    "language": "query",
    "views": {"oldschool": {
        "map": {"fields": {"location": "asc"}, "selector": {"location": {"$gte": "FRA"}}},
        "reduce": "_count", "options": {"def": {"fields": ["location"]}}}},
}
TEXT_INDEX = {  # the same file's oldschoolddoctext: a text (Clouseau) index
    "language": "query",
    "indexes": {"oldschooltext": {
        "index": {"default_analyzer": "keyword", "default_field": {},
                  "selector": {"location": {"$gte": "FRA"}},
                  "fields": [{"name": "location", "type": "string"}],
                  "index_array_lengths": True},
        "analyzer": {"name": "perfield", "default": "keyword",
                     "fields": {"$default": "standard"}}}},
}


def _copies(client: Client, db: str) -> int:
    return int((client.database(db).info().get("cluster") or {}).get("n") or 1)


def _create(client: Client, db: str, *, partitioned: bool = False) -> None:
    client.create(db, partitioned=partitioned or None)


def _post_index(url: str, client: Client, db: str, body: dict[str, Any]) -> str:
    """``POST /{db}/_index`` as an application sends it (every copy written); the
    design doc's id."""
    body = {**body, "w": _copies(client, db)}
    answer = httpx.post(f"{url}/{db}/_index", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def _put_design(url: str, client: Client, db: str, doc_id: str, body: dict[str, Any]) -> None:
    answer = httpx.put(f"{url}/{db}/{doc_id}", params={"w": _copies(client, db)}, json=body,
                       timeout=60)
    assert answer.status_code in (201, 202), answer.text


def _stored(client: Client, db: str, name: str) -> bytes:
    """The canonical body (without _id and _rev) of the design doc holding index ``name``."""
    ddoc = next(index["ddoc"] for index in client.database(db).get_indexes()["indexes"]
                if index["name"] == name)
    return canonical_json(client.database(db).get(ddoc), drop=("_id", "_rev"))


def _load(tmp_path: Path, text: str, name: str = "exported.yaml") -> DesiredState:
    path = tmp_path / name
    path.write_text(text)
    return load_manifests([path], environ={})


def _renamed(text: str, names: dict[str, str]) -> str:
    """Exported YAML with its databases renamed (key order kept: CouchDB stores a
    partial filter's conditions in the order written)."""
    data = yaml.safe_load(text)
    data["databases"] = {names.get(db, db): spec for db, spec in data["databases"].items()}
    return yaml.safe_dump(data, sort_keys=False)


# -- item 5: stored as POST /_index stores it


def test_an_index_couchsync_creates_is_stored_as_post_index_stores_the_same_definition(
    client: Client, couch_url: str, db_name_factory: Callable[[], str],
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    theirs, ours = db_name_factory(), db_name_factory()
    _create(client, theirs)
    for name, definition in FORMS.items():
        _post_index(couch_url, client, theirs, {"index": definition, "name": name,
                                                "ddoc": name, "type": "json"})
    indexes = {name: {**definition, "ddoc": name} for name, definition in FORMS.items()}
    sync(client, manifest({ours: {"indexes": indexes}}))

    for name in FORMS:
        assert _stored(client, ours, name) == _stored(client, theirs, name), name
    assert plan(client, manifest({ours: {"indexes": indexes},
                                  theirs: {"indexes": indexes}})).is_empty


def test_equivalent_forms_of_a_definition_are_not_drift(
    client: Client, couch_url: str, db_name: str,
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    _create(client, db_name)
    _post_index(couch_url, client, db_name, {
        "index": {"fields": [{"location": "asc"}],
                  "partial_filter_selector": {"type": {"$eq": "x"}, "n": {"$gt": 1}}},
        "name": "i", "ddoc": "i"})
    assert plan(client, manifest({db_name: {"indexes": {"i": {
        "fields": ["location"], "ddoc": "i",
        "partial_filter_selector": {"n": {"$gt": 1}, "type": "x"}}}}})).is_empty


def test_apply_returns_only_once_index_lists_each_index_as_written(
    client: Client, couch_url: str, db_name: str,
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    """CouchDB answers ``_index`` from a cache of the design docs that it refreshes only
    after it has answered the write (couch_db_updater replies, then calls
    ``ddoc_cache:refresh``): a read right after an index replaced in place may list the
    old definition under the same name, and a re-plan would then show the change again.
    A proxy plays that cache here: it answers the first three reads of ``_index`` after
    the index is written with the listing from before. Apply must read on until one
    lists the index as written."""
    _create(client, db_name)
    _post_index(couch_url, client, db_name, {"index": {"fields": ["old"]}, "name": "i",
                                             "ddoc": "i"})
    before = httpx.get(f"{couch_url}/{db_name}/_index", timeout=30).content
    stale = {"left": 3, "reads_after_write": 0}
    written: list[str] = []

    def cache(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path != f"/{db_name}/_index":
            return None
        if method == "POST":
            written.append(path)
        elif method == "GET" and written:
            stale["reads_after_write"] += 1
            if stale["left"]:
                stale["left"] -= 1
                return 200, {"Content-Type": "application/json"}, before
        return None

    parts = urlsplit(couch_url)
    with Proxy(upstream_of(couch_url), script=cache) as proxy:
        through = f"http://{parts.username}:{parts.password}@127.0.0.1:{proxy.port}" \
            if parts.username else proxy.url
        with Client(through) as proxied:
            made, result = sync(proxied, manifest({db_name: {"indexes": {"i": {
                "fields": ["new"], "ddoc": "i"}}}}))
    assert [(step.action, step.reason) for step in made.steps] == [
        (Action.REPLACE, "fields changed")]
    assert result.ok, result.failures
    assert written, "the index was written through the proxy"
    # Every stale listing was read, and one more that shows the index as written.
    assert stale == {"left": 0, "reads_after_write": 4}
    assert plan(client, manifest({db_name: {"indexes": {"i": {
        "fields": ["new"], "ddoc": "i"}}}})).is_empty


# -- item 3: partitioned and global indexes


@pytest.mark.couchdb_only("partitioned databases")
def test_a_global_index_in_a_partitioned_database_is_stored_as_one(
    client: Client, couch_url: str, db_name_factory: Callable[[], str],
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    theirs, ours = db_name_factory(), db_name_factory()
    _create(client, theirs, partitioned=True)
    _post_index(couch_url, client, theirs, {"index": {"fields": ["some"]}, "name": "global",
                                            "ddoc": "global", "partitioned": False})
    _post_index(couch_url, client, theirs, {"index": {"fields": ["some"]}, "name": "local",
                                            "ddoc": "local"})
    indexes = {"global": {"fields": ["some"], "ddoc": "global", "partitioned": False},
               "local": {"fields": ["some"], "ddoc": "local"}}
    sync(client, manifest({ours: {"partitioned": True, "indexes": indexes}}))

    listed = {index["name"]: index["partitioned"]
              for index in client.database(ours).get_indexes()["indexes"] if index["ddoc"]}
    assert listed == {"global": False, "local": True}
    for name in indexes:
        assert _stored(client, ours, name) == _stored(client, theirs, name), name
    assert plan(client, manifest({ours: {"partitioned": True, "indexes": indexes}})).is_empty


@pytest.mark.couchdb_only("partitioned databases")
@pytest.mark.parametrize(("on_server", "declared"), [(None, False), (False, None), (True, False)])
def test_drift_in_an_index_partitioned_setting_shows_and_apply_mends_it(
    client: Client, couch_url: str, db_name: str,
    manifest: Callable[[dict[str, Any]], DesiredState],
    on_server: bool | None, declared: bool | None,
) -> None:
    _create(client, db_name, partitioned=True)
    made = {"index": {"fields": ["some"]}, "name": "i", "ddoc": "i"}
    _post_index(couch_url, client, db_name,
                made if on_server is None else {**made, "partitioned": on_server})
    index: dict[str, Any] = {"fields": ["some"], "ddoc": "i"}
    if declared is not None:
        index["partitioned"] = declared
    desired = manifest({db_name: {"partitioned": True, "indexes": {"i": index}}})

    made_plan, result = sync(client, desired)
    assert [(step.action, step.reason) for step in made_plan.steps] == [
        (Action.REPLACE, "partitioned changed")]
    assert result.ok, result.failures
    listed = [index for index in client.database(db_name).get_indexes()["indexes"]
              if index["name"] == "i"]
    assert [index["partitioned"] for index in listed] == [declared is not False]
    assert plan(client, desired).is_empty


@pytest.mark.couchdb_only("partitioned databases and legacy selectors are CouchDB's")
def test_a_small_database_matched_by_a_pattern_reads_its_indexes_off_their_design_docs(
    client: Client, couch_url: str, db_name_factory: Callable[[], str],
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    # A fleet's small databases are read whole: their indexes come from the design docs
    # (not _index), where the partitioned setting and a legacy selector must be read too.
    name = db_name_factory()
    _create(client, name, partitioned=True)
    _post_index(couch_url, client, name, {"index": {"fields": ["some"]}, "name": "global",
                                          "ddoc": "global"})
    _put_design(couch_url, client, name, "_design/oldschool", OLD_SCHOOL)
    indexes = {"global": {"fields": ["some"], "ddoc": "global", "partitioned": False},
               "oldschool": {"fields": ["location"], "ddoc": "oldschool", "partitioned": True,
                             "partial_filter_selector": {"location": {"$gte": "FRA"}}}}
    fleet = manifest({name[:-3] + "*": {"indexes": indexes}})
    desired = expand_patterns(fleet, discover(client, fleet))
    assert desired.databases[name].matched_by is not None

    made_plan, result = sync(client, desired)
    assert [(step.id, step.reason) for step in made_plan.steps] == [
        ("global", "partitioned changed")]
    assert result.ok, result.failures
    assert plan(client, desired).is_empty


# -- items 3 and 4: export


def test_export_writes_indexes_as_created_and_apply_stores_them_byte_for_byte(
    client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
) -> None:
    source, copied = db_name_factory(), db_name_factory()
    _create(client, source)
    for name, definition in FORMS.items():
        _post_index(couch_url, client, source, {"index": definition, "name": name,
                                                "ddoc": name})
    _post_index(couch_url, client, source, {"index": {"fields": ["generated"]},
                                            "name": "named-only"})
    unnamed = _post_index(couch_url, client, source, {"index": {"fields": ["anonymous"]}})

    text = export_manifest(client, [source])
    exported = yaml.safe_load(text)["databases"][source]["indexes"]
    for name, definition in FORMS.items():
        assert exported[name] == {**definition, "ddoc": name}, name
    # CouchDB (or PouchDB Server) named these design docs: no ddoc pinned.
    assert exported["named-only"] == {"fields": ["generated"]}
    assert exported[unnamed.removeprefix("_design/")] == {"fields": ["anonymous"]}
    assert plan(client, _load(tmp_path, text)).is_empty

    applied = _load(tmp_path, _renamed(text, {source: copied}), "copied.yaml")
    sync(client, applied)
    for name in exported:
        assert _stored(client, copied, name) == _stored(client, source, name), name
    assert plan(client, applied).is_empty


@pytest.mark.couchdb_only("partitioned databases")
def test_export_writes_an_index_partitioned_setting(
    client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
) -> None:
    source, copied = db_name_factory(), db_name_factory()
    _create(client, source, partitioned=True)
    _post_index(couch_url, client, source, {"index": {"fields": ["some"]}, "name": "global",
                                            "ddoc": "global", "partitioned": False})
    _post_index(couch_url, client, source, {"index": {"fields": ["some"]}, "name": "local",
                                            "ddoc": "local", "partitioned": True})
    _post_index(couch_url, client, source, {"index": {"fields": ["some"]}, "name": "default",
                                            "ddoc": "default"})

    text = export_manifest(client, [source])
    exported = yaml.safe_load(text)["databases"][source]["indexes"]
    assert exported == {
        "default": {"fields": ["some"], "ddoc": "default"},
        "global": {"fields": ["some"], "ddoc": "global", "partitioned": False},
        "local": {"fields": ["some"], "ddoc": "local", "partitioned": True}}
    applied = _load(tmp_path, _renamed(text, {source: copied}), "copied.yaml")
    sync(client, applied)
    for name in exported:
        assert _stored(client, copied, name) == _stored(client, source, name), name
    assert plan(client, applied).is_empty


@pytest.mark.couchdb_only("a legacy selector is CouchDB's (mango_idx:get_legacy_selector)")
def test_a_legacy_selector_is_exported_as_the_partial_filter_and_its_drift_shows(
    client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
    manifest: Callable[[dict[str, Any]], DesiredState],
) -> None:
    source, copied = db_name_factory(), db_name_factory()
    _create(client, source)
    _put_design(couch_url, client, source, "_design/oldschool", OLD_SCHOOL)

    done = run(couch_url, "export", "--db", source)
    assert done.returncode == 0, done.stderr
    assert "index 'oldschool' of _design/oldschool is stored in a form" in done.stderr
    exported = yaml.safe_load(done.stdout)["databases"][source]["indexes"]
    assert exported == {"oldschool": {"fields": ["location"], "ddoc": "oldschool",
                                      "partial_filter_selector": {"location": {"$gte": "FRA"}}}}
    assert plan(client, _load(tmp_path, done.stdout)).is_empty

    # The same index without its filter is another index: the plan says so.
    unfiltered = manifest({source: {"indexes": {"oldschool": {"fields": ["location"],
                                                              "ddoc": "oldschool"}}}})
    assert [(step.action, step.reason) for step in plan(client, unfiltered).steps] == [
        (Action.REPLACE, "partial filter changed")]

    applied = _load(tmp_path, _renamed(done.stdout, {source: copied}), "copied.yaml")
    sync(client, applied)
    assert plan(client, applied).is_empty
    stored = json.loads(_stored(client, copied, "oldschool"))
    assert stored["views"]["oldschool"]["map"]["partial_filter_selector"] == {
        "location": {"$gte": "FRA"}}


def test_export_names_what_a_manifest_cannot_hold_and_fails_unless_told_to_skip(
    client: Client, couch_url: str, db_name: str, tmp_path: Path,
) -> None:
    _create(client, db_name)
    _put_design(couch_url, client, db_name, "_design/oldschooltext", TEXT_INDEX)
    _put_design(couch_url, client, db_name, "_design/mixed", {
        "language": "query", "owner": "team-a",
        "views": {"by-x": {"map": {"fields": {"x": "asc"}, "partial_filter_selector": {}},
                           "reduce": "_count", "options": {"def": {"fields": ["x"]}}}}})

    refused = run(couch_url, "export", "--db", db_name)
    assert refused.returncode == 1
    assert refused.stdout == ""
    for named in ("_design/oldschooltext: its text indexes (oldschooltext)",
                  "_design/mixed: its field 'owner'", "--skip-unsupported"):
        assert named in refused.stderr, named
    assert "Traceback" not in refused.stderr

    skipped = run(couch_url, "export", "--db", db_name, "--skip-unsupported")
    assert skipped.returncode == 0, skipped.stderr
    assert "not exported: database" in skipped.stderr
    assert "oldschooltext" in skipped.stderr and "oldschooltext" not in skipped.stdout
    exported = yaml.safe_load(skipped.stdout)["databases"][db_name]
    assert exported["indexes"] == {"by-x": {"fields": ["x"], "ddoc": "mixed"}}


# -- the real world: CouchDB's own tests and docs


def _real_world() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(REAL_WORLD.read_text())["indexes"]
    return entries


@pytest.mark.couchdb_only("partitioned databases and legacy selectors are CouchDB's")
def test_real_world_indexes_export_apply_and_re_plan_empty_and_byte_exact(
    client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
) -> None:
    sources = {"global": db_name_factory(), "partitioned": db_name_factory()}
    copies = {sources["global"]: db_name_factory(), sources["partitioned"]: db_name_factory()}
    _create(client, sources["global"])
    _create(client, sources["partitioned"], partitioned=True)
    post_made: set[str] = set()
    for entry in _real_world():
        db = sources[entry["database"]]
        if "post" in entry:
            body = copy.deepcopy(entry["post"])
            ddoc = _post_index(couch_url, client, db, body)
            post_made.add(body.get("name") or ddoc.removeprefix("_design/"))
        else:
            design = {k: v for k, v in entry["design_doc"].items() if k != "_id"}
            _put_design(couch_url, client, db, entry["design_doc"]["_id"], design)

    refused = run(couch_url, "export", "--db", sources["global"], "--db", sources["partitioned"])
    assert refused.returncode == 1 and "_design/oldschooltext: its text indexes" in refused.stderr
    done = run(couch_url, "export", "--db", sources["global"], "--db", sources["partitioned"],
               "--skip-unsupported")
    assert done.returncode == 0, done.stderr
    assert plan(client, _load(tmp_path, done.stdout)).is_empty

    copied = tmp_path / "copied.yaml"
    copied.write_text(_renamed(done.stdout, copies))
    applied = run(couch_url, "apply", str(copied), "--yes")
    assert applied.returncode == 0, applied.stderr
    replanned = run(couch_url, "plan", str(copied))
    assert replanned.returncode == 0 and "No changes" in replanned.stdout, replanned.stdout

    exported = yaml.safe_load(done.stdout)["databases"]
    names = {(source, name) for source, spec in exported.items() for name in spec["indexes"]}
    assert len(names) == 24  # every json index of the 25 entries (not the text index)
    for source, name in sorted(names):
        target = copies[source]
        if name in post_made:  # made by POST /_index: stored again byte for byte
            assert _stored(client, target, name) == _stored(client, source, name), name
        else:  # written by hand: stored as POST /_index stores the exported definition
            reference = db_name_factory()
            _create(client, reference)
            definition = exported[source]["indexes"][name]
            _post_index(couch_url, client, reference, {
                "index": {k: v for k, v in definition.items() if k in ("fields",
                                                                        "partial_filter_selector")},
                "name": name, "ddoc": definition["ddoc"]})
            assert _stored(client, target, name) == _stored(client, reference, name), name
