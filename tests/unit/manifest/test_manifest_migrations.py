"""``migrations:`` in manifests: what loads into ``MigrationSpec``, every problem validate
reports (file:line:col, exit 1, no traceback), the checksum, and ``load_transform``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from couchsync.cli import app
from couchsync.manifest import (
    DatabaseNames,
    ManifestError,
    MigrationSpec,
    expand_patterns,
    load_manifests,
    load_transform,
    schema_text,
    summarize,
)
from couchsync.manifest._fastcheck import conforms

runner = CliRunner()
HEAD = "version: 1\ndatabases:\n  users:\n    migrations:\n"


def _write(directory: Path, text: str, name: str = "m.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _migrations(directory: Path, entries: list[dict[str, Any]], db: str = "users",
                name: str = "m.yaml") -> list[MigrationSpec]:
    """Load one database's migrations written as ``entries`` (JSON is YAML)."""
    manifest = {"version": 1, "databases": {db: {"migrations": entries}}}
    desired = load_manifests([_write(directory, json.dumps(manifest), name)], environ={})
    return (desired.patterns if "*" in db else desired.databases)[db].migrations


# -------------------------------------------------------------------------------- loading


def test_an_entry_loads_as_written(tmp_path: Path) -> None:
    _write(tmp_path, "def upgrade(doc):\n    return doc\n", "migrations/phones.py")
    manifest = _write(tmp_path, HEAD + """\
      - id: 2026-12-split-name
        description: split the name
        selector: {type: user, name: {$exists: true}}
        rename: {email: contact.email}
        copy: {name: full_name}
        set_default: {tags: []}
        set: {schema: 2}
        unset: [legacy_flag, old.nested]
        keep_originals: true
        rerun_on_change: true
      - id: phones
        transform: migrations/phones.py:upgrade
      - id: drop
        selector: {type: session}
        delete: true
      - id: undo
        revert: 2026-12-split-name
""")
    first, phones, drop, undo = load_manifests([manifest], environ={}).databases[
        "users"].migrations
    assert first == MigrationSpec(
        id="2026-12-split-name", source=first.source, checksum=first.checksum,
        selector={"type": "user", "name": {"$exists": True}}, rename={"email": "contact.email"},
        copy={"name": "full_name"}, set_default={"tags": []}, set={"schema": 2},
        unset=("legacy_flag", "old.nested"), description="split the name",
        rerun_on_change=True, keep_originals=True)
    assert (first.source.file, first.source.line, first.source.col) == (str(manifest), 5, 9)
    assert len(first.checksum) == 32 and int(first.checksum, 16) >= 0
    assert phones.transform == "migrations/phones.py:upgrade"
    assert phones.transform_file == str(tmp_path / "migrations" / "phones.py")
    assert phones.transform_function == "upgrade"
    assert drop.delete and drop.selector == {"type": "session"}
    assert undo.revert == "2026-12-split-name"
    assert len({first.checksum, phones.checksum, drop.checksum, undo.checksum}) == 4


def test_validate_counts_migrations(tmp_path: Path) -> None:
    manifest = _write(tmp_path, HEAD + "      - {id: a, set: {x: 1}}\n      - {id: b, unset: [x]}\n"
                      "  \"userdb-*\":\n    migrations: [{id: c, set: {y: 1}}]\n")
    assert summarize(load_manifests([manifest], environ={})) == (
        "1 database, 1 pattern, 0 documents, 0 indexes, 0 design docs, 3 migrations")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(", 3 migrations\n")


def test_a_valid_manifest_takes_the_fast_path(tmp_path: Path) -> None:
    """jsonschema is imported only for a manifest with a problem."""
    _write(tmp_path, "def f(doc):\n    return None\n", "t.py")
    manifest = _write(tmp_path, HEAD + """\
      - id: a.b_c-1
        selector: {$or: [{type: a}, {n: {$gt: 1, $lt: 9}}], t: {$regex: '^x'}}
        rename: {a: b.c}
        set: {s: {deep: [1, 2]}}
        unset: [z]
        transform: t.py:f
        keep_originals: true
      - {id: r, revert: a.b_c-1}
""")
    assert conforms(yaml.safe_load(manifest.read_text()), json.loads(schema_text()))
    code = ("import sys; from couchsync.manifest import load_manifests; "
            f"load_manifests([{str(manifest)!r}], environ={{}}); "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "False\n"


# ------------------------------------------------------------------------------ problems

CASES = [
    # (the migrations, written under HEAD, line 5 on; the line:col and message expected)
    ("      - {id: a, sett: {x: 1}}\n", "5:17", "unknown key 'sett' under "
     "databases.users.migrations[0] (did you mean 'set'?)"),
    ("      - {set: {x: 1}}\n", "5:9", "missing required key 'id' under "
     "databases.users.migrations[0]"),
    ("      - {id: -a, set: {x: 1}}\n", "5:14", "a migration id is at most 100 letters, "
     "digits and . _ -, starting with a letter or digit"),
    (f"      - {{id: {'a' * 101}, set: {{x: 1}}}}\n", "5:14", "a migration id is at most 100"),
    ("      - {id: a, set: {_id: 1}}\n", "5:23", "the first not starting with '_' "
     "(_id, _rev, _attachments and the other special fields are never changed) (got '_id')"),
    ("      - {id: a, unset: [a..b]}\n", "5:25", "none of them empty, the first not starting "
     "with '_' (_id, _rev, _attachments and the other special fields are never changed) "
     "(got 'a..b')"),
    ("      - {id: a, rename: {x: b.}}\n", "5:29", "(got 'b.')"),
    ("      - {id: a, delete: yes}\n", "5:25", "expected a boolean (true or false), got "
     "string 'yes' (only true and false are booleans)"),
    ("      - {id: a, transform: phones.py}\n", "5:28", "transform is FILE.py:FUNCTION, the "
     "file relative to this manifest (migrations/phones.py:upgrade) (got 'phones.py')"),
    ("      - {id: a, selector: [x]}\n", "5:27", "expected a mapping, got list"),
    ("      - {id: a}\n", "5:9", "migration 'a' does nothing: give it one of rename, copy, "
     "set_default, set, unset, transform, delete (or revert)"),
    ("      - {id: a, set: {}, delete: false}\n", "5:9", "migration 'a' does nothing"),
    ("      - {id: a, delete: true, set: {x: 1}, unset: [y]}\n", "5:17", "migration 'a' "
     "deletes the documents it selects, so it cannot also set, unset them: make that a "
     "migration of its own"),
    ("      - {id: a, set: {x: 1}, keep_originals: true}\n"
     "      - {id: b, revert: a, selector: {x: 1}}\n", "6:17", "migration 'b' reverts 'a': it "
     "restores that migration's originals and takes nothing beside id and description "
     "(it has selector)"),
    ("      - {id: b, revert: a}\n      - {id: a, set: {x: 1}, keep_originals: true}\n",
     "5:9", "revert 'a' names a migration declared after it (at {m}:6:9): a revert comes "
     "after the migration it undoes"),
    ("      - {id: b, revert: nosuch}\n", "5:9",
     "revert 'nosuch' names no migration declared before it in this database"),
    ("      - {id: a, set: {x: 1}}\n      - {id: b, revert: a}\n", "6:9", "revert 'a': that "
     "migration (at {m}:5:9) is not declared keep_originals: true, so there is nothing to "
     "restore"),
    ("      - {id: a, set: {x: 1}}\n      - {id: a, unset: [x]}\n", "6:9",
     "migration 'a' of database 'users' is already declared at {m}:5:9"),
    ("      - {id: a, rename: {contact: contact.email}}\n", "5:26",
     "rename 'contact' -> 'contact.email': one path is the other or inside it"),
    ("      - {id: a, copy: {a.b: a}}\n", "5:24", "copy 'a.b' -> 'a': one path is the other"),
    ("      - {id: a, rename: {a: b, b: c}}\n", "5:32", "rename 'b' and 'a' touch the same "
     "field (one path is the other or inside it), so the result would depend on their order: "
     "make them two migrations"),
    ("      - {id: a, set: {x: 1, x.y: 2}}\n", "5:29", "set 'x.y' and 'x' touch the same"),
    ("      - {id: a, copy: {a: x, b: x.y}}\n", "5:30", "copy 'b' and 'a' touch the same"),
    ("      - {id: a, selector: {n: {$gtt: 1}}, set: {x: 1}}\n", "5:32",
     "unknown selector operator '$gtt' (did you mean '$gt'?)"),
    ("      - {id: a, selector: {$text: x}, set: {x: 1}}\n", "5:28",
     "unknown selector operator '$text'"),
    ("      - {id: a, selector: {$or: {x: 1}}, set: {x: 1}}\n", "5:33",
     "$or takes a list of selectors, got mapping"),
    ("      - {id: a, selector: {$and: [1]}, set: {x: 1}}\n", "5:35",
     "expected a selector (a mapping), got integer"),
    ("      - {id: a, selector: {x: {$not: 3}}, set: {x: 1}}\n", "5:38",
     "expected a selector (a mapping), got integer"),
    ("      - {id: a, selector: {x: {$in: 3}}, set: {x: 1}}\n", "5:37",
     "$in takes a list, got integer"),
    ("      - {id: a, selector: {x: {$exists: 'yes'}}, set: {x: 1}}\n", "5:41",
     "$exists takes true or false, got string"),
    ("      - {id: a, selector: {x: {$type: int}}, set: {x: 1}}\n", "5:39",
     "$type takes one of null, boolean, number, string, array, object, got 'int'"),
    ("      - {id: a, selector: {x: {$size: -1}}, set: {x: 1}}\n", "5:39",
     "$size takes a whole number, 0 or more, got integer"),
    ("      - {id: a, selector: {x: {$mod: [0, 1]}}, set: {x: 1}}\n", "5:38",
     "$mod takes [divisor, remainder]: two whole numbers, the divisor not 0, got list"),
    ("      - {id: a, selector: {x: {$regex: '(a'}}, set: {x: 1}}\n", "5:40",
     "$regex '(a' is not a regular expression: missing ), unterminated subpattern"),
    ("      - {id: a, selector: {x: {$beginsWith: 1}}, set: {x: 1}}\n", "5:45",
     "$beginsWith takes a string, got integer"),
    ("      - {id: a, selector: {x: {y: {$elemMatch: {$gtt: 1}}}}, set: {x: 1}}\n", "5:49",
     "unknown selector operator '$gtt'"),
    (f"      - {{id: a, set: {{n: 1{'0' * 400}}}}}\n", "5:9", "an integer too large for a "
     "JSON number"),
]


@pytest.mark.parametrize(("entries", "where", "message"), CASES,
                         ids=[case[2][:40] for case in CASES])
def test_validate_reports_each_problem_where_it_is(tmp_path: Path, entries: str, where: str,
                                                   message: str) -> None:
    manifest = _write(tmp_path, HEAD + entries)
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[-1] == "Error: 1 problem in manifests", result.stderr
    assert lines[0].startswith(f"{manifest}:{where}: "), result.stderr
    assert message.format(m=manifest) in lines[0]


TRANSFORM_CASES = [
    ("migrations/nosuch.py:f", None, "cannot read transform file 'migrations/nosuch.py' "
     "({d}/migrations/nosuch.py): No such file or directory"),
    ("migrations/t.py:f", "def f(:\n    pass\n", "transform file 'migrations/t.py' has a "
     "syntax error at line 1: invalid syntax"),
    ("migrations/t.py:f", "x = 1\n\ny = 1 / 0\n", "transform file 'migrations/t.py' failed "
     "when imported at line 3: ZeroDivisionError: division by zero"),
    ("migrations/t.py:f", "import sys\nsys.exit(3)\n", "transform file 'migrations/t.py' "
     "failed when imported at line 2: SystemExit: 3"),
    ("migrations/t.py:f", "def g(doc):\n    return doc\n",
     "transform file 'migrations/t.py' defines no 'f'"),
    ("migrations/t.py:f", "f = 3\n", "'f' in transform file 'migrations/t.py' is integer, "
     "not a function"),
    ("migrations/t.py:f", "x = '\0'\n", "transform file 'migrations/t.py': source code "
     "string cannot contain null bytes"),
]


@pytest.mark.parametrize(("transform", "code", "message"), TRANSFORM_CASES,
                         ids=[case[2][:40] for case in TRANSFORM_CASES])
def test_a_transform_that_cannot_run_is_a_problem_at_its_line(
        tmp_path: Path, transform: str, code: str | None, message: str) -> None:
    if code is not None:
        _write(tmp_path, code, transform.partition(":")[0])
    manifest = _write(tmp_path, HEAD + f"      - id: a\n        transform: {transform}\n")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"{manifest}:6:20: {message.format(d=tmp_path)}", "Error: 1 problem in manifests"]


# ------------------------------------------------------------------- files and patterns


def test_files_concatenate_in_order_and_an_id_is_one_per_database(tmp_path: Path) -> None:
    a = _write(tmp_path, HEAD + "      - {id: one, set: {x: 1}}\n", "a.yaml")
    b = _write(tmp_path, HEAD + "      - {id: two, set: {x: 2}}\n", "b.yaml")
    users = load_manifests([a, b], environ={}).databases["users"]
    assert [m.id for m in users.migrations] == ["one", "two"]
    assert [m.id for m in load_manifests([b, a], environ={}).databases["users"].migrations] \
        == ["two", "one"]
    c = _write(tmp_path, HEAD + "      - {id: one, set: {x: 1}}\n", "c.yaml")
    with pytest.raises(ManifestError) as error:
        load_manifests([a, c], environ={})
    assert [str(p) for p in error.value.problems] == [
        f"{c}:5:9: migration 'one' of database 'users' is already declared at {a}:5:9"]


PATTERNS = """\
version: 1
databases:
  userdb-admin:
    migrations:
      - {id: own, set: {admin: true}}
  "userdb-*":
    migrations:
      - {id: shared, set: {schema: 2}, keep_originals: true}
  "*-admin":
    migrations:
      - {id: admin, set: {kind: admin}}
"""


def test_a_patterns_migrations_run_before_the_databases_own(tmp_path: Path) -> None:
    desired = load_manifests([_write(tmp_path, PATTERNS)], environ={})
    assert [m.id for m in desired.databases["userdb-admin"].migrations] == [
        "shared", "admin", "own"]
    expanded = expand_patterns(desired, ["userdb-x", "b-admin", "userdb-x-admin", "other"])
    ids = {name: [m.id for m in db.migrations] for name, db in expanded.databases.items()}
    assert ids == {"userdb-admin": ["shared", "admin", "own"], "userdb-x": ["shared"],
                   "b-admin": ["admin"], "userdb-x-admin": ["shared", "admin"]}
    # --db-prefix renames the databases and keeps what they migrate
    prefixed = expand_patterns(DatabaseNames("pr-1-").apply(desired),
                               ["pr-1-userdb-x", "pr-1-userdb-admin"])
    assert prefixed.databases["pr-1-userdb-admin"].migrations == \
        desired.databases["userdb-admin"].migrations
    assert [m.id for m in prefixed.databases["pr-1-userdb-x"].migrations] == ["shared"]


def test_a_database_may_revert_a_patterns_migration(tmp_path: Path) -> None:
    text = PATTERNS.replace("{id: own, set: {admin: true}}", "{id: own, revert: shared}")
    users = load_manifests([_write(tmp_path, text)], environ={}).databases["userdb-admin"]
    assert [m.id for m in users.migrations] == ["shared", "admin", "own"]


@pytest.mark.parametrize(("own", "other", "messages"), [
    ("- {id: shared, set: {x: 1}}", "- {id: admin, set: {x: 1}}",
     ["5:9: migration 'shared' of database 'userdb-admin' is already declared at {m}:8:9"]),
    # in the database both patterns match, and in every one they could both match
    ("- {id: own, set: {x: 1}}", "- {id: shared, set: {x: 1}}",
     ["11:9: migration 'shared' of database 'userdb-admin' and pattern '*-admin' is already "
      "declared at {m}:8:9",
      "11:9: migration 'shared' of pattern 'userdb-*' and pattern '*-admin' is already "
      "declared at {m}:8:9"]),
])
def test_one_id_per_database_after_patterns_merge(tmp_path: Path, own: str, other: str,
                                                  messages: list[str]) -> None:
    text = PATTERNS.replace("- {id: own, set: {admin: true}}", own).replace(
        "- {id: admin, set: {kind: admin}}", other)
    manifest = _write(tmp_path, text)
    with pytest.raises(ManifestError) as error:
        load_manifests([manifest], environ={})
    assert [str(p) for p in error.value.problems] == [
        f"{manifest}:{message.format(m=manifest)}" for message in messages]


def test_an_absent_database_migrates_nothing(tmp_path: Path) -> None:
    manifest = _write(tmp_path, HEAD + "      - {id: a, set: {x: 1}}\n    state: absent\n")
    with pytest.raises(ManifestError, match=r"declared absent .* but also declares migrations"):
        load_manifests([manifest], environ={})


# ------------------------------------------------------------------------------ checksum

SPLIT = {"id": "split", "selector": {"type": "user"}, "rename": {"email": "contact.email"},
         "copy": {"a": "b"}, "set_default": {"tags": []}, "set": {"schema": 2},
         "unset": ["legacy"], "transform": "t.py:f", "keep_originals": True}
CODE = "def f(doc):\n    return doc\n"


def _checksum(directory: Path, entry: dict[str, Any], code: str | bytes = CODE) -> str:
    (directory / "t.py").write_bytes(code.encode() if isinstance(code, str) else code)
    return _migrations(directory, [entry])[0].checksum


def test_the_checksum_is_the_same_on_every_run_and_machine(tmp_path: Path) -> None:
    # A literal: a change of the definition's encoding would refuse every applied migration.
    assert _checksum(tmp_path, SPLIT) == "6d894f5f45a861fe7c48257510fcbbf1"
    elsewhere = tmp_path / "another" / "checkout"
    elsewhere.mkdir(parents=True)
    reordered = dict(reversed(list(SPLIT.items())))  # key order means nothing
    assert _checksum(elsewhere, reordered) == "6d894f5f45a861fe7c48257510fcbbf1"
    # git on Windows checks the transform out with CRLF line ends
    assert _checksum(elsewhere, SPLIT, CODE.replace("\n", "\r\n")) == \
        "6d894f5f45a861fe7c48257510fcbbf1"
    code = ("import sys; from couchsync.manifest import load_manifests; print(load_manifests("
            f"[{str(elsewhere / 'm.yaml')!r}], environ={{}}).databases['users']"
            ".migrations[0].checksum)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "6d894f5f45a861fe7c48257510fcbbf1\n"


@pytest.mark.parametrize("change", [
    {"selector": {"type": "admin"}}, {"selector": None}, {"rename": {"email": "mail"}},
    {"copy": {"a": "c"}}, {"set_default": {"tags": [1]}}, {"set": {"schema": 3}},
    {"unset": ["legacy", "old"]}, {"transform": "t.py:g"}, {"keep_originals": False},
    {"delete": True, "rename": None, "copy": None, "set_default": None, "set": None,
     "unset": None, "transform": None},
])
def test_the_checksum_changes_with_what_the_migration_does(tmp_path: Path,
                                                          change: dict[str, Any]) -> None:
    code = CODE + "g = f\n"
    changed = {k: v for k, v in {**SPLIT, **change}.items() if v is not None}
    assert _checksum(tmp_path, changed, code) != _checksum(tmp_path, SPLIT, code)


def test_the_checksum_changes_with_any_byte_of_the_transform_file(tmp_path: Path) -> None:
    before = _checksum(tmp_path, SPLIT)
    assert _checksum(tmp_path, SPLIT, CODE + "# a comment\n") != before
    assert _checksum(tmp_path, SPLIT, CODE.replace("return doc", "return  doc")) != before
    assert _checksum(tmp_path, SPLIT) == before


def test_a_revert_checksum_names_what_it_reverts(tmp_path: Path) -> None:
    first = {"id": "a", "set": {"x": 1}, "keep_originals": True}
    second = {"id": "b", "set": {"x": 2}, "keep_originals": True}
    one = _migrations(tmp_path, [first, second, {"id": "r", "revert": "a"}])[2]
    two = _migrations(tmp_path, [first, second, {"id": "r", "revert": "b"}])[2]
    assert one.checksum != two.checksum


@pytest.mark.parametrize("change", [{"description": "now described"},
                                    {"rerun_on_change": True}, {"rerun_on_change": False}])
def test_the_checksum_leaves_out_description_and_rerun_on_change(
        tmp_path: Path, change: dict[str, Any]) -> None:
    assert _checksum(tmp_path, {**SPLIT, **change}) == _checksum(tmp_path, SPLIT)


# ------------------------------------------------------------------------ load_transform

COUNTING = """\
import os
with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
    log.write("imported\\n")
def upgrade(doc):
    doc["n"] = doc.get("n", 0) + 1
    return doc
"""


def test_load_transform_gives_the_function_imported_once(tmp_path: Path) -> None:
    _write(tmp_path, COUNTING, "migrations/count.py")
    entry = {"id": "count", "transform": "migrations/count.py:upgrade"}
    spec = _migrations(tmp_path, [entry])[0]  # validating imports it
    upgrade = load_transform(spec)
    assert upgrade({"_id": "a", "n": 1}) == {"_id": "a", "n": 2}
    assert upgrade.__module__.startswith("couchsync_transform_")
    again = _migrations(tmp_path, [entry])[0]  # apply loads the manifests twice
    assert load_transform(again) is upgrade
    assert (tmp_path / "migrations" / "imports.log").read_text() == "imported\n"


def test_load_transform_refuses_a_file_changed_since_the_manifests_loaded(
        tmp_path: Path) -> None:
    path = _write(tmp_path, COUNTING, "migrations/count.py")
    spec = _migrations(tmp_path, [{"id": "count", "transform": "migrations/count.py:upgrade"}])[0]
    path.write_text(COUNTING.replace("+ 1", "+ 2"))
    with pytest.raises(ManifestError) as error:
        load_transform(spec)
    assert str(error.value) == (f"{spec.source}: migration 'count': transform file "
                                "'migrations/count.py' changed since the manifests were loaded")
    path.write_text(COUNTING)
    assert load_transform(spec)({"n": 0}) == {"n": 1}


def test_load_transform_needs_a_transform(tmp_path: Path) -> None:
    spec = _migrations(tmp_path, [{"id": "a", "set": {"x": 1}}])[0]
    with pytest.raises(ValueError, match="migration 'a' has no transform"):
        load_transform(spec)
