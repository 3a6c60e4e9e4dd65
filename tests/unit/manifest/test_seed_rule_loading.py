"""Seed rules (issue 19): create_only, ignore and document_rules are loaded, merged and
checked, each mistake named at its file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Collect, Write

from couchsync.manifest import load_manifests
from couchsync.manifest.model import DEFAULT_RULE

V = "version: 1\n"


def relative(problems: list[tuple[str, int, int, str]], tmp_path: Path
             ) -> list[tuple[str, int, int, str]]:
    """``problems`` in place order, the places inside messages relative to ``tmp_path``."""
    return sorted((file, line, col, message.replace(f"{tmp_path}/", ""))
                  for file, line, col, message in problems)


def test_each_mistake_in_seed_rules_is_named_at_its_place(write: Write, collect: Collect,
                                                          tmp_path: Path) -> None:
    write("m.yaml", V + """\
databases:
  crm:
    ignore: [seats]
    document_rules:
      gone: {ignore: [x]}
      nope: {create_only: true}
      both: {create_only: true, ignore: [y]}
    documents:
      - {_id: gone, _deleted: true}
      - {_id: both, a: 1}
  bad:
    ignore: [_rev, "a..b", seats]
    document_rules: {empty: {}}
    documents: [{_id: empty, a: 1}]
  shop:
    create_only: true
    ignore: [stock]
""")
    assert relative(collect("m.yaml"), tmp_path) == [
        ("m.yaml", 6, 7, "document 'gone' is marked _deleted: true (at m.yaml:10:9): couchsync "
                         "deletes it, so create_only and ignore cannot apply to it"),
        ("m.yaml", 7, 7, "document_rules names 'nope', which no manifest lists among the "
                         "documents of database 'crm'"),
        ("m.yaml", 8, 7, "ignore has no effect: document 'both' is create_only, never updated"),
        ("m.yaml", 13, 14, "ignore: fields starting with '_' (_id, _rev, _deleted, "
                           "_attachments) are CouchDB's: couchsync never compares them as "
                           "content (got '_rev')"),
        ("m.yaml", 13, 20, "ignore: a field, or a dotted path of fields (profile.last_login), "
                           "with no empty part (got 'a..b')"),
        ("m.yaml", 14, 29, "a document rule sets create_only, ignore or both"),
        ("m.yaml", 18, 13, "ignore has no effect: every seed document of database 'shop' is "
                           "create_only (at m.yaml:17:18), never updated"),
    ]


def test_a_document_rule_overrides_the_database_and_a_pattern_brings_its_own(
        tmp_path: Path) -> None:
    (tmp_path / "seats.jsonl").write_text('{"_id": "acme", "seats": 1}\n'
                                          '{"_id": "beta", "seats": 2}\n')
    (tmp_path / "a.yaml").write_text(V + """\
databases:
  crm:
    ignore: [seats, last_login, seats]
    document_rules:
      beta: {ignore: []}
      settings: {create_only: true}
    documents_from: [seats.jsonl]
    documents:
      - {_id: settings, theme: dark}
  "tenant-*":
    create_only: true
    documents:
      - {_id: welcome, text: hi}
  tenant-a: {}
""")
    desired = load_manifests([tmp_path / "a.yaml"], environ={})
    crm = desired.databases["crm"]
    assert crm.rule("acme").ignore == ("last_login", "seats")  # sorted, once each
    assert crm.rule("beta") is DEFAULT_RULE  # ignore: [] here undoes the database's
    assert crm.rule("settings").create_only
    assert crm.rule("settings").ignore == ("last_login", "seats")  # moot: never updated
    assert desired.databases["tenant-a"].rule("welcome").create_only
    # The record's hash tells rules apart: a new rule is a change of the manifests.
    acme = crm.documents["acme"]
    assert crm.record_hash(acme) != acme.hash
    assert crm.record_hash(crm.documents["beta"]) == crm.documents["beta"].hash


def test_two_files_that_disagree_on_a_rule_are_both_named(write: Write, collect: Collect,
                                                          tmp_path: Path) -> None:
    write("a.yaml", V + "databases:\n  crm:\n    ignore: [seats]\n"
          "    document_rules: {acme: {create_only: true}}\n"
          "    documents: [{_id: acme}]\n")
    write("b.yaml", V + "databases:\n  crm:\n    ignore: [last_login]\n"
          "    document_rules: {acme: {create_only: false}}\n")
    assert relative(collect("a.yaml", "b.yaml"), tmp_path) == [
        ("b.yaml", 4, 13, "conflicting ignore for database 'crm': [\"last_login\"] here, "
                          "[\"seats\"] at a.yaml:4:13"),
        ("b.yaml", 5, 22, "document rule 'acme' of database 'crm' differs from the one at "
                          "a.yaml:5:22"),
    ]


def test_a_rule_written_on_the_document_itself_is_kept_as_data_and_warned_of(
    write: Write, caplog: pytest.LogCaptureFixture,
) -> None:
    path = write("m.yaml", V + """\
databases:
  crm:
    documents:
      - {_id: settings, theme: dark, create_only: true}
      - _id: acme
        ignore: [seats]
      - {_id: flags, create_only: "yes", ignore: none}
""")
    caplog.set_level("WARNING", logger="couchsync.manifest")
    state = load_manifests([path], environ={})
    documents = state.databases["crm"].documents
    assert documents["settings"].body["create_only"] is True  # data, as written
    assert state.databases["crm"].rule("settings") == DEFAULT_RULE
    where = path
    assert [record.getMessage() for record in caplog.records] == [
        f"{where}:5:38: document 'settings' has a field create_only: it is stored as the "
        "document's data, not a seed rule; for the rule write document_rules: {settings: "
        "{create_only: true}} in the database",
        f"{where}:7:9: document 'acme' has a field ignore: it is stored as the document's "
        "data, not a seed rule; for the rule write document_rules: {acme: {ignore: "
        "[\"seats\"]}} in the database"]  # flags: values no rule takes, plainly data
