"""An index's ``partitioned`` setting (issue 19.3): loaded, and refused where CouchDB
would refuse it, before the server, naming file:line:col."""

from __future__ import annotations

from conftest import Collect, Write

from couchsync.manifest import load_manifests


def test_the_setting_is_loaded_as_written_and_left_unset_when_not_given(write: Write) -> None:
    path = write("m.yaml", """\
        version: 1
        databases:
          orders:
            partitioned: true
            indexes:
              global: {fields: [created_at], ddoc: g, partitioned: false}
              local: {fields: [status], partitioned: true}
              default: {fields: [status], ddoc: d}
        """)
    indexes = load_manifests([path], environ={}).databases["orders"].indexes
    assert {name: index.partitioned for name, index in indexes.items()} == {
        "global": False, "local": True, "default": None}


def test_a_partitioned_index_needs_a_database_declared_partitioned(
    write: Write, collect: Collect,
) -> None:
    write("m.yaml", """\
        version: 1
        databases:
          orders:
            indexes:
              local: {fields: [status], partitioned: true}
              global: {fields: [status], partitioned: false}
        """)
    assert collect("m.yaml") == [
        ("m.yaml", 5, 7, "index 'local' is partitioned, but database 'orders' is not declared "
                         "partitioned: true (CouchDB refuses partitioned indexes in a global "
                         "database)")]


def test_the_indexes_of_one_design_doc_have_one_setting(write: Write, collect: Collect) -> None:
    write("m.yaml", """\
        version: 1
        databases:
          orders:
            partitioned: true
            indexes:
              a: {fields: [x], ddoc: shared, partitioned: false}
              b: {fields: [y], ddoc: shared}
              c: {fields: [z], ddoc: shared, partitioned: false}
        """)
    [(file, line, col, message)] = collect("m.yaml")
    assert (file, line, col) == ("m.yaml", 7, 7)
    assert message.startswith("index 'b' has partitioned: unset but index 'a' (at ")
    assert message.endswith("m.yaml:6:7) in the same design doc 'shared' has false; CouchDB "
                            "keeps one setting per design doc")


def test_the_setting_is_a_boolean(write: Write, collect: Collect) -> None:
    write("m.yaml", """\
        version: 1
        databases:
          orders:
            partitioned: true
            indexes:
              a: {fields: [x], partitioned: "no"}
        """)
    [(_, line, col, message)] = collect("m.yaml")
    assert (line, col) == (6, 37) and "boolean" in message
