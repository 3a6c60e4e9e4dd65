"""One malformed manifest per error class: the exact place reported and what is said."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from conftest import Collect, Write

V = "version: 1\n"


@dataclass
class Case:
    id: str
    files: dict[str, str | bytes]
    #: (file, line, col, message fragment); every problem reported must be listed.
    expected: list[tuple[str, int, int, str]]
    environ: dict[str, str] = field(default_factory=dict)


CASES = [
    # --- YAML itself ------------------------------------------------------
    Case("yaml-syntax", {"m.yaml": V + "databases:\n  users: {q: 1\n"},
         [("m.yaml", 4, 1, "invalid YAML: expected ',' or '}'")]),
    Case("yaml-tab-indent", {"m.yaml": V + "databases:\n\tusers: {}\n"},
         [("m.yaml", 3, 1, "tab character here: YAML indentation must use spaces")]),
    Case("empty-file", {"m.yaml": ""}, [("m.yaml", 1, 1, "empty manifest")]),
    Case("comments-only", {"m.yaml": "# nothing yet\n"}, [("m.yaml", 1, 1, "empty manifest")]),
    Case("not-a-mapping", {"m.yaml": "- version: 1\n"},
         [("m.yaml", 1, 1, "a manifest must be a mapping with 'version' and 'databases', "
                           "got list")]),
    Case("two-documents", {"m.yaml": V + "databases: {}\n---\n" + V},
         [("m.yaml", 3, 1, "a manifest file holds one YAML document")]),
    Case("duplicate-top-key", {"m.yaml": V + "databases: {}\n" + V},
         [("m.yaml", 3, 1, "duplicate key 'version' (first defined at line 1, col 1)")]),
    Case("duplicate-nested-key", {"m.yaml": V + "databases:\n  users: {}\n  users: {q: 1}\n"},
         [("m.yaml", 4, 3, "duplicate key 'users' under databases (first defined at line 3")]),
    Case("duplicate-key-in-document",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - {_id: a, x: 1, x: 2}\n"},
         [("m.yaml", 5, 24, "duplicate key 'x' under databases.s.documents[0]")]),
    Case("non-string-key", {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a, true: 1}]\n"},
         [("m.yaml", 4, 26, "key 'true' is read as boolean; quote it")]),
    Case("unsafe-tag", {"m.yaml": V + "databases: !!python/object:os.system {}\n"},
         [("m.yaml", 2, 12, "unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'")]),
    Case("binary-value",
         {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a, b: !!binary aGk=}]\n"},
         [("m.yaml", 4, 29, "unsupported YAML tag 'tag:yaml.org,2002:binary'")]),
    Case("nan-value", {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a, n: .nan}]\n"},
         [("m.yaml", 4, 29, "'.nan' is not a number JSON can hold")]),
    Case("recursive-alias", {"m.yaml": V + "databases:\n  s:\n    documents: &d [*d]\n"},
         [("m.yaml", 4, 16, "recursive YAML alias")]),
    Case("not-utf8", {"m.yaml": b"version: 1\ndatabases:\n  caf\xe9: {}\n"},
         [("m.yaml", 3, 6, "not valid UTF-8 text")]),
    # --- schema: unknown keys, types, values --------------------------------
    Case("unknown-top-key", {"m.yaml": V + "databses: {}\n"},
         [("m.yaml", 1, 1, "a manifest must declare at least one of databases, config, users, "
                           "replications"),
          ("m.yaml", 2, 1, "unknown key 'databses' at the top level (did you mean 'databases'?)")]),
    Case("unknown-db-key", {"m.yaml": V + "databases:\n  users:\n    indxes: {}\n"},
         [("m.yaml", 4, 5,
           "unknown key 'indxes' under databases.users (did you mean 'indexes'?)")]),
    Case("unknown-index-key",
         {"m.yaml": V + "databases:\n  users:\n    indexes:\n      by-email: {field: [email]}\n"},
         [("m.yaml", 5, 17, "missing required key 'fields' under databases.users.indexes.by-email"),
          ("m.yaml", 5, 18, "unknown key 'field' under databases.users.indexes.by-email "
                            "(did you mean 'fields'?)")]),
    Case("unknown-security-group",
         {"m.yaml": V + "databases:\n  users:\n    security:\n      readers: {names: []}\n"},
         [("m.yaml", 5, 7, "unknown key 'readers' under databases.users.security")]),
    Case("wrong-type-string-for-int", {"m.yaml": V + "databases:\n  users: {q: '8'}\n"},
         [("m.yaml", 3, 14, "expected an integer, got string")]),
    Case("wrong-type-int-for-bool", {"m.yaml": V + "databases:\n  users:\n    prune: 1\n"},
         [("m.yaml", 4, 12, "expected a boolean (true or false), got integer")]),
    Case("wrong-type-list", {"m.yaml": V + "databases:\n  users:\n    security:\n"
                                           "      admins: {names: alice}\n"},
         [("m.yaml", 5, 23, "expected a list, got string")]),
    Case("indexes-not-mapping", {"m.yaml": V + "databases:\n  users:\n    indexes: [by-email]\n"},
         [("m.yaml", 4, 14, "expected a mapping, got list")]),
    Case("databases-null", {"m.yaml": V + "databases:\n"},
         [("m.yaml", 2, 11, "expected a mapping, got null")]),
    Case("bad-state", {"m.yaml": V + "databases:\n  users: {state: absnet}\n"},
         [("m.yaml", 3, 18, "expected one of 'present', 'absent', got 'absnet' "
                            "(did you mean 'absent'?)")]),
    Case("bad-version", {"m.yaml": "version: 2\ndatabases: {}\n"},
         [("m.yaml", 1, 10, "version must be 1")]),
    Case("q-below-one", {"m.yaml": V + "databases:\n  users: {q: 0}\n"},
         [("m.yaml", 3, 14, "must be at least 1, got 0")]),
    # --- names -----------------------------------------------------------------
    Case("db-name-uppercase", {"m.yaml": V + "databases:\n  Users: {}\n"},
         [("m.yaml", 3, 3, "invalid database name: CouchDB names start with a lowercase letter")]),
    Case("db-name-too-long", {"m.yaml": V + "databases:\n  " + "a" * 239 + ": {}\n"},
         [("m.yaml", 3, 3, "is too long: 239 characters, at most 238")]),
    Case("design-doc-name-prefixed",
         {"m.yaml": V + "databases:\n  users:\n    design_docs:\n      _design/reports: {}\n"},
         [("m.yaml", 5, 7, "write design document names without the '_design/' prefix")]),
    Case("index-ddoc-prefixed",
         {"m.yaml": V + "databases:\n  users:\n    indexes:\n"
                        "      by-email: {fields: [email], ddoc: _design/idx}\n"},
         [("m.yaml", 5, 41, "without the '_design/' prefix (got '_design/idx')")]),
    # --- documents ---------------------------------------------------------------
    Case("document-without-id",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - {x: 1}\n"},
         [("m.yaml", 5, 9, "missing required key '_id' under databases.s.documents[0]")]),
    Case("document-id-not-string",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - _id: 42\n"},
         [("m.yaml", 5, 14, "expected a string, got integer")]),
    Case("document-reserved-key",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - {_id: a, _rev: 1-abc}\n"},
         [("m.yaml", 5, 18, "reserved key")]),
    Case("design-doc-deleted-with-content",
         {"m.yaml": V + "databases:\n  s:\n    design_docs:\n"
                        "      old: {_deleted: true, views: {}}\n"},
         [("m.yaml", 5, 12, "a design doc marked _deleted: true is deleted, so it cannot "
                            "declare anything else")]),
    Case("design-doc-deleted-false",
         {"m.yaml": V + "databases:\n  s:\n    design_docs:\n      old: {_deleted: false}\n"},
         [("m.yaml", 5, 23, "_deleted in a design doc can only be true")]),
    Case("design-id-in-documents",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - _id: _design/x\n"},
         [("m.yaml", 5, 14, "_id: design documents go under design_docs, not documents "
                            "(got '_design/x')")]),
    Case("local-id-in-documents",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - _id: _local/x\n"},
         [("m.yaml", 5, 14, "_id: _local/ documents are not replicated")]),
    Case("underscore-id", {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: _x}]\n"},
         [("m.yaml", 4, 23, "_id: CouchDB reserves ids that start with '_' (got '_x')")]),
    Case("empty-id", {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: ''}]\n"},
         [("m.yaml", 4, 23, "_id must not be empty")]),
    Case("duplicate-id-same-file",
         {"m.yaml": V + "databases:\n  s:\n    documents:\n      - _id: a\n      - _id: a\n"},
         [("m.yaml", 6, 9, "duplicate _id 'a' in database 's' (first at ")]),
    Case("duplicate-id-across-files",
         {"a.yaml": V + "databases:\n  s:\n    documents: [{_id: a}]\n",
          "b.yaml": V + "databases:\n  s:\n    documents: [{_id: a, v: 2}]\n"},
         [("b.yaml", 4, 17, "duplicate _id 'a' in database 's' (first at ")]),
    Case("duplicate-id-documents-from",
         {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a}]\n"
                        "    documents_from: [d.jsonl]\n",
          "d.jsonl": '{"_id": "b"}\n{"_id": "a"}\n'},
         [("d.jsonl", 2, 1, "duplicate _id 'a' in database 's' (first at ")]),
    Case("partitioned-needs-partition-ids",
         {"m.yaml": V + "databases:\n  p:\n    partitioned: true\n"
                        "    documents: [{_id: 'sensor:1'}, {_id: plain}]\n"},
         [("m.yaml", 5, 36, "database 'p' is partitioned, so ids must look like 'partition:id'")]),
    # --- indexes and views -------------------------------------------------------
    Case("index-fields-empty",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n      by-x: {fields: []}\n"},
         [("m.yaml", 5, 22, "must not be empty")]),
    Case("index-field-bad-direction",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n      by-x: {fields: [{x: up}]}\n"},
         [("m.yaml", 5, 27, "expected one of 'asc', 'desc', got 'up'")]),
    Case("index-field-wrong-type",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n      by-x: {fields: [x, 3]}\n"},
         [("m.yaml", 5, 26, "expected a string or a mapping, got integer")]),
    Case("index-mixed-directions",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n"
                        "      by-x: {fields: [{a: asc}, {b: desc}]}\n"},
         [("m.yaml", 5, 22, "all fields of an index to use one direction")]),
    Case("view-without-map",
         {"m.yaml": V + "databases:\n  u:\n    design_docs:\n      r:\n        views:\n"
                        "          v: {reduce: _count}\n"},
         [("m.yaml", 7, 14, "missing required key 'map' under databases.u.design_docs.r.views.v")]),
    Case("view-lib-module-not-a-string",
         {"m.yaml": V + "databases:\n  u:\n    design_docs:\n      r:\n        views:\n"
                        "          lib: {util: 'exports.a = 1;', d: {e: 2}}\n"
                        "          v: {map: 'function (doc) {}'}\n"},
         [("m.yaml", 7, 48, "expected a string or a mapping, got integer")]),
    Case("index-desc-then-bare-name",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n"
                        "      by-x: {fields: [{a: desc}, b]}\n"},
         [("m.yaml", 5, 22, "all fields of an index to use one direction")]),
    Case("index-in-design-doc-of-design-docs",
         {"m.yaml": V + "databases:\n  u:\n    indexes:\n      by-x: {fields: [x], ddoc: r}\n"
                        "    design_docs:\n      r: {}\n"},
         [("m.yaml", 5, 7, "both would overwrite _design/r")]),
    # --- documents_from ------------------------------------------------------------
    Case("documents-from-missing",
         {"m.yaml": V + "databases:\n  s:\n    documents_from:\n      - seeds/none.jsonl\n"},
         [("m.yaml", 5, 9, "cannot read documents_from file 'seeds/none.jsonl'")]),
    Case("documents-from-extension",
         {"m.yaml": V + "databases:\n  s:\n    documents_from: [seeds.csv]\n"},
         [("m.yaml", 4, 22, "documents_from files must end in .jsonl, .ndjson")]),
    Case("documents-from-bad-jsonl",
         {"m.yaml": V + "databases:\n  s:\n    documents_from: [d.jsonl]\n",
          "d.jsonl": '{"_id": "a"}\n\n{"_id": "b",}\n[1]\n{"_id": "c", "_rev": "1-x"}\n'},
         [("d.jsonl", 3, 13, "invalid JSON: Expecting property name"),
          ("d.jsonl", 4, 1, "expected a mapping, got list"),
          ("d.jsonl", 5, 1, "reserved key")]),
    Case("documents-from-bad-json-array",
         {"m.yaml": V + "databases:\n  s:\n    documents_from: [d.json]\n",
          "d.json": '[\n  {"_id": "a"},\n  {"_id": "b" "x": 1}\n]\n'},
         [("d.json", 3, 15, "invalid JSON: Expecting ',' delimiter")]),
    Case("documents-from-not-array",
         {"m.yaml": V + "databases:\n  s:\n    documents_from: [d.json]\n",
          "d.json": b'\n  {"_id": "a"}\n'},  # bytes: written without dedent
         [("d.json", 2, 3, "expected a JSON array of documents")]),
    # --- environment -------------------------------------------------------------------
    Case("env-missing",
         {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a, k: '${API_KEY}'}]\n"},
         [("m.yaml", 4, 29, "variable API_KEY is not set")]),
    Case("env-invalid-reference",
         {"m.yaml": V + "databases:\n  s:\n    documents: [{_id: a, k: 'x${a.b}'}]\n"},
         [("m.yaml", 4, 29, "invalid variable reference '${a.b}'")]),
    Case("env-gives-string", {"m.yaml": V + "databases:\n  s: {q: '${Q:-8}'}\n"},
         [("m.yaml", 3, 10, "expected an integer, got string (a ${...} reference always "
                            "gives a string)")]),
    # --- merging -------------------------------------------------------------------------
    Case("conflicting-scalar",
         {"a.yaml": V + "databases:\n  s: {q: 8}\n", "b.yaml": V + "databases:\n  s: {q: 16}\n"},
         [("b.yaml", 3, 10, "conflicting q for database 's': 16 here, 8 at ")]),
    Case("conflicting-security",
         {"a.yaml": V + "databases:\n  s: {security: {members: {roles: [a]}}}\n",
          "b.yaml": V + "databases:\n  s: {security: {members: {roles: [b]}}}\n"},
         [("b.yaml", 3, 17, "conflicting security for database 's': differs from the one at ")]),
    Case("index-twice",
         {"a.yaml": V + "databases:\n  s: {indexes: {i: {fields: [x]}}}\n",
          "b.yaml": V + "databases:\n  s: {indexes: {i: {fields: [x]}}}\n"},
         [("b.yaml", 3, 17, "index 'i' of database 's' is already defined at ")]),
    Case("design-doc-twice",
         {"a.yaml": V + "databases:\n  s: {design_docs: {r: {}}}\n",
          "b.yaml": V + "databases:\n  s: {design_docs: {r: {}}}\n"},
         [("b.yaml", 3, 21, "design doc 'r' of database 's' is already defined at ")]),
    Case("absent-with-documents",
         {"a.yaml": V + "databases:\n  old: {state: absent}\n",
          "b.yaml": V + "databases:\n  old:\n    documents: [{_id: x}]\n"},
         [("b.yaml", 4, 17, "database 'old' is declared absent (at ")]),
    # --- the whole server: config, users, replications, prune ---------------------------
    Case("config-admins-refused", {"m.yaml": V + "config:\n  admins:\n    root: x\n"},
         [("m.yaml", 3, 3, "the admins section is refused")]),
    Case("config-value-not-scalar", {"m.yaml": V + "config:\n  cors:\n    origins: [a]\n"},
         [("m.yaml", 4, 14, "a config value is a string, a boolean or a number")]),
    Case("config-key-with-slash", {"m.yaml": V + "config:\n  cors:\n    a/b: x\n"},
         [("m.yaml", 4, 5, "invalid config key: it may not hold '/'")]),
    Case("conflicting-config",
         {"a.yaml": V + "config:\n  cors: {origins: x}\n",
          "b.yaml": V + "config:\n  cors: {origins: y}\n"},
         [("b.yaml", 3, 19, 'conflicting config cors/origins: "y" here, "x" at ')]),
    Case("user-reserved-key", {"m.yaml": V + "users:\n  bob:\n    derived_key: x\n"},
         [("m.yaml", 4, 5, "reserved key: couchsync writes name and type")]),
    Case("user-password-twice",
         {"m.yaml": V + "users:\n  bob: {password: a, password_file: f}\n"},
         [("m.yaml", 3, 3, "give password or password_file, not both")]),
    Case("user-password-file-missing",
         {"m.yaml": V + "users:\n  bob: {password_file: nowhere.txt}\n"},
         [("m.yaml", 3, 3, "cannot read password_file 'nowhere.txt' of user 'bob'")]),
    Case("user-password-file-empty",
         {"m.yaml": V + "users:\n  bob: {password_file: empty.txt}\n", "empty.txt": "\n"},
         [("m.yaml", 3, 3, "password_file 'empty.txt' of user 'bob' is empty")]),
    Case("user-twice",
         {"a.yaml": V + "users:\n  bob: {}\n", "b.yaml": V + "users:\n  bob: {roles: [x]}\n"},
         [("b.yaml", 3, 3, "duplicate _id 'org.couchdb.user:bob' in database '_users' "
                           "(first at ")]),
    Case("replication-without-target",
         {"m.yaml": V + "replications:\n  r1:\n    source: http://h/a\n"},
         [("m.yaml", 4, 5, "missing required key 'target' under replications.r1")]),
    Case("replication-server-field",
         {"m.yaml": V + "replications:\n  r1: {source: a, target: b, owner: me}\n"},
         [("m.yaml", 3, 30, "reserved key: the server writes owner")]),
    Case("conflicting-prune",
         {"a.yaml": V + "users: {}\nprune: {users: true}\n",
          "b.yaml": V + "users: {}\nprune: {users: false}\n"},
         [("b.yaml", 3, 16, "conflicting prune.users: false here, true at ")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reports_exact_place(case: Case, write: Write, collect: Collect) -> None:
    for name, text in case.files.items():
        write(name, text)
    manifests = [n for n in case.files if n.endswith((".yaml", ".yml"))]
    problems = collect(*manifests, environ=case.environ)
    assert len(problems) == len(case.expected), problems
    for (file, line, col, message), (e_file, e_line, e_col, fragment) in zip(
        problems, case.expected, strict=True
    ):
        assert (file, line, col) == (e_file, e_line, e_col), (problems, fragment)
        assert fragment in message


def test_conflicts_name_both_places(write: Write, collect: Collect) -> None:
    write("a.yaml", V + "databases:\n  s: {q: 8}\n")
    write("b.yaml", V + "databases:\n  s: {q: 16}\n")
    [(_, _, _, message)] = collect("a.yaml", "b.yaml")
    assert message.endswith("a.yaml:3:10")


def test_duplicate_ids_name_both_places(write: Write, collect: Collect) -> None:
    write("m.yaml", V + "databases:\n  s:\n    documents_from: [d.jsonl]\n")
    write("d.jsonl", '{"_id": "a"}\n{"_id": "a"}\n')
    [(file, line, _, message)] = collect("m.yaml")
    assert (file, line) == ("d.jsonl", 2)
    assert message.endswith("d.jsonl:1:1)")


def test_missing_path(collect: Collect) -> None:
    assert collect("nope.yaml") == [("nope.yaml", 0, 0, "no such file or directory")]


def test_directory_without_manifests(write: Write, collect: Collect) -> None:
    write("dir/readme.txt", "nothing\n")
    assert collect("dir") == [("dir", 0, 0, "no *.yaml or *.yml files in this directory")]


def test_every_problem_is_reported_not_only_the_first(write: Write, collect: Collect) -> None:
    write("a.yaml", V + "databases:\n  Bad: {}\n  good: {q: x}\n")
    write("b.yaml", V + "databases:\n  s:\n    documents: [{_id: a}, {_id: a}]\n")
    write("c.yaml", "version: [\n")
    assert [(f, line) for f, line, _, _ in collect("a.yaml", "b.yaml", "c.yaml")] == [
        ("a.yaml", 3), ("a.yaml", 4), ("b.yaml", 4), ("c.yaml", 2)]


def test_a_database_with_a_schema_problem_still_reports_its_other_problems(
    write: Write, collect: Collect
) -> None:
    write("m.yaml", V + "databases:\n  s:\n    q: many\n    indexes: {i: {fields: []}}\n"
                        "    documents: [{_id: a}, {_id: a, _rev: x}, {_id: a}]\n"
                        "    documents_from: [missing.jsonl]\n")
    assert [(line, message.split(" (")[0].split(":")[0]) for _, line, _, message
            in collect("m.yaml")] == [
        (4, "expected an integer, got string"),
        (5, "must not be empty"),
        (6, "reserved key"),
        (6, "duplicate _id 'a' in database 's'"),  # the third; the second is not built
        (7, "cannot read documents_from file 'missing.jsonl'"),
    ]


def test_huge_numbers_of_bad_lines_are_capped(write: Write, collect: Collect) -> None:
    write("m.yaml", V + "databases:\n  s:\n    documents_from: [d.jsonl]\n")
    write("d.jsonl", "x\n" * 500)
    problems = collect("m.yaml")
    assert len(problems) == 51
    assert problems[-1] == ("d.jsonl", 0, 0, "450 more problems in this file not shown")


def test_billion_laughs_is_refused(write: Write, collect: Collect) -> None:
    lines = [V, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)]
    write("m.yaml", "".join(lines) + "databases: {}\n")
    [(_, line, _, message)] = collect("m.yaml")
    assert line == 1  # where the document starts
    assert "aliases expand to far more data" in message
