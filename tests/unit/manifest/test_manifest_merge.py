"""Several files, one desired state: merging, ordering and directory loading."""

from __future__ import annotations

from pathlib import Path

from conftest import Write

from couchsync.manifest import SourcePos, load_manifests

V = "version: 1\n"


def test_one_database_split_over_files(write: Write, tmp_path: Path) -> None:
    write("a.yaml", V + "databases:\n  app:\n    q: 8\n    indexes: {by-x: {fields: [x]}}\n")
    write("b.yaml", V + "databases:\n  app:\n    q: 8\n    prune: true\n"
                        "    design_docs: {r: {views: {v: {map: 'function (doc) {}'}}}}\n"
                        "    documents: [{_id: d1}]\n")
    desired = load_manifests([tmp_path], environ={})
    app = desired.databases["app"]
    assert (app.q, app.prune, list(app.indexes), list(app.design_docs), list(app.documents)) == (
        8, True, ["by-x"], ["r"], ["d1"])
    # the first place wins for a repeated, agreeing setting and for the database itself
    assert app.sources["q"] == SourcePos(str(tmp_path / "a.yaml"), 4, 8)
    assert app.sources["prune"] == SourcePos(str(tmp_path / "b.yaml"), 5, 12)
    assert app.source == SourcePos(str(tmp_path / "a.yaml"), 3, 3)
    assert app.indexes["by-x"].source == SourcePos(str(tmp_path / "a.yaml"), 5, 15)
    assert app.design_docs["r"].source == SourcePos(str(tmp_path / "b.yaml"), 6, 19)
    assert app.documents["d1"].source == SourcePos(str(tmp_path / "b.yaml"), 7, 17)


def test_directory_loads_yaml_and_yml_recursively_in_sorted_order(write: Write,
                                                                  tmp_path: Path) -> None:
    write("m/b.yml", V + "databases: {b: {}}\n")
    write("m/a.yaml", V + "databases: {a: {}}\n")
    write("m/sub/c.yaml", V + "databases: {c: {}}\n")
    write("m/notes.txt", "not a manifest\n")
    write("m/seeds/d.jsonl", '{"_id": "x"}\n')
    desired = load_manifests([tmp_path / "m"], environ={})
    assert [Path(f).relative_to(tmp_path).as_posix() for f in desired.files] == [
        "m/a.yaml", "m/b.yml", "m/sub/c.yaml"]
    assert list(desired.databases) == ["a", "b", "c"]


def test_a_file_named_twice_is_loaded_once(write: Write, tmp_path: Path) -> None:
    path = write("m/a.yaml", V + "databases:\n  app:\n    documents: [{_id: x}]\n")
    desired = load_manifests([tmp_path / "m", path], environ={})
    assert len(desired.files) == 1


def test_documents_keep_manifest_order_inline_first(write: Write) -> None:
    write("d.jsonl", '{"_id": "from-file-1"}\n{"_id": "from-file-2"}\n')
    path = write("m.yaml", V + "databases:\n  app:\n    documents_from: [d.jsonl]\n"
                               "    documents: [{_id: z}, {_id: a}]\n")
    assert list(load_manifests([path], environ={}).databases["app"].documents) == [
        "z", "a", "from-file-1", "from-file-2"]


def test_model_normalisation(write: Write) -> None:
    path = write("m.yaml", V + """\
databases:
  app:
    q: 4.0
    indexes:
      plain: {fields: [a, b.c]}
      sorted: {fields: [{a: desc}, {b: desc}], ddoc: idx, partial_filter_selector: {t: 1}}
      empty-selector: {fields: [a], partial_filter_selector: {}}
    documents:
      - {_id: d, n: 1.0, nested: {b: 2, a: [1.5, "x"]}, when: 2024-01-02}
""")
    app = load_manifests([path], environ={}).databases["app"]
    assert app.q == 4 and isinstance(app.q, int)
    # Index definitions are kept as written (CouchDB stores them so); sort_fields is
    # what they mean.
    assert app.indexes["plain"].fields == ["a", "b.c"]
    assert app.indexes["plain"].sort_fields == [{"a": "asc"}, {"b.c": "asc"}]
    assert app.indexes["plain"].ddoc is None and app.indexes["plain"].type == "json"
    assert app.indexes["plain"].partitioned is None
    assert app.indexes["sorted"].sort_fields == [{"a": "desc"}, {"b": "desc"}]
    assert app.indexes["sorted"].ddoc == "idx"
    assert app.indexes["sorted"].partial_filter_selector == {"t": 1}
    assert app.indexes["empty-selector"].partial_filter_selector == {}
    # canonical bytes: sorted keys, integral floats as ints, dates kept as written
    assert app.documents["d"].canonical == (
        b'{"_id":"d","n":1,"nested":{"a":[1.5,"x"],"b":2},"when":"2024-01-02"}')


def test_yaml_merge_keys_and_anchors_are_supported(write: Write) -> None:
    path = write("m.yaml", V + """\
defaults: &security
  members: {names: [], roles: [staff]}
databases:
  a: {security: *security}
  b:
    security:
      <<: *security
      admins: {names: [], roles: [admins]}
""")
    # "defaults" is not a key of the format: anchors must live inside it
    assert "unknown key 'defaults'" in str(_problems(path))
    path = write("m.yaml", V + """\
databases:
  a:
    security: &security
      members: {names: [], roles: [staff]}
  b:
    security:
      <<: *security
      admins: {names: [], roles: [admins]}
""")
    desired = load_manifests([path], environ={})
    assert desired.databases["a"].security == {"members": {"names": [], "roles": ["staff"]}}
    assert desired.databases["b"].security == {"members": {"names": [], "roles": ["staff"]},
                                               "admins": {"names": [], "roles": ["admins"]}}


def _problems(path: str) -> list[str]:
    from couchsync.manifest import iter_problems
    return [str(p) for p in iter_problems([path], environ={})]


def test_design_doc_body_is_kept_as_written(write: Write) -> None:
    path = write("m.yaml", V + """\
databases:
  app:
    design_docs:
      reports:
        language: javascript
        views: {by_age: {map: "function (doc) { emit(doc.age); }", reduce: _count}}
        validate_doc_update: "function (n, o, u) {}"
        options: {partitioned: false}
""")
    ddoc = load_manifests([path], environ={}).databases["app"].design_docs["reports"]
    assert ddoc.id == "_design/reports"
    assert ddoc.body == {
        "language": "javascript",
        "views": {"by_age": {"map": "function (doc) { emit(doc.age); }", "reduce": "_count"}},
        "validate_doc_update": "function (n, o, u) {}",
        "options": {"partitioned": False},
    }
