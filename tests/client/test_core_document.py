"""Document: the mapping, its properties, load and store."""

from __future__ import annotations

import json
from collections.abc import MutableMapping

import pytest

from couchsync.client import (
    Conflict,
    Database,
    DatabaseError,
    Document,
    DocumentError,
    NotFound,
)


def test_is_a_mutable_mapping() -> None:
    doc = Document({"a": 1}, b=2)
    assert isinstance(doc, MutableMapping)
    doc["c"] = 3
    del doc["a"]
    assert dict(doc) == {"b": 2, "c": 3} and len(doc) == 2 and "b" in doc
    assert doc.pop("missing", "default") == "default"
    assert doc.pop("b") == 2
    with pytest.raises(KeyError):
        doc.pop("b")
    assert repr(doc) == "Document({'c': 3})"


def test_popitem_is_lifo() -> None:
    doc = Document(first=1, second=2)
    doc["third"] = 3
    assert doc.popitem() == ("third", 3)
    assert doc.popitem() == ("second", 2)
    assert doc.popitem() == ("first", 1)
    with pytest.raises(KeyError):
        doc.popitem()


def test_properties() -> None:
    doc = Document({"_id": "x", "_rev": "1-a", "n": [1, "é"]})
    assert (doc.id, doc.rev, doc.db) == ("x", "1-a", None)
    assert doc.json == json.dumps({"_id": "x", "_rev": "1-a", "n": [1, "é"]})
    assert (Document().id, Document().rev) == ("", "")


def test_store_without_db_is_document_error() -> None:
    with pytest.raises(DocumentError, match="no database"):
        Document(a=1).store()


def test_store_creates_then_updates(db: Database) -> None:
    doc = Document(name="john")
    doc.db = db
    doc.store()
    assert doc.id and doc.rev.startswith("1-")
    doc["email"] = "john@example.com"
    doc.store()
    assert doc.rev.startswith("2-")
    assert db.get(doc.id)["email"] == "john@example.com"


def test_store_with_id_and_awkward_id(db: Database) -> None:
    doc = Document({"_id": "a/b ?é", "n": 1})
    doc.store_to_database(db)
    assert doc.db is db and doc.rev.startswith("1-")
    assert db.get("a/b ?é")["n"] == 1


@pytest.mark.parametrize(
    "doc_id",
    ["a/b", "with space", "q?h#a&p+e=p%", "%2F", "é ü 漢字 🎉", "_design/a/b c", "_local/x/y z"],
)
def test_store_and_load_with_awkward_ids(db: Database, doc_id: str) -> None:
    doc = Document({"_id": doc_id, "n": 1})
    doc.store_to_database(db)
    first = doc.rev
    doc["n"] = 2
    doc.store()
    assert doc.id == doc_id and doc.rev != first
    loaded = Document()
    loaded.load_from_database(db, doc_id)
    assert (loaded.id, loaded.rev, loaded["n"]) == (doc_id, doc.rev, 2)
    if not doc_id.startswith("_local/"):  # _local docs keep no old revisions
        old = Document()
        old.load_from_database(db, doc_id, first)
        assert old["n"] == 1


def test_dict_by_keyword_as_in_pycouchdb() -> None:
    assert dict(Document(_dict={"a": 1}, b=2)) == {"a": 1, "b": 2}


def test_store_with_rev_but_no_id_is_refused(db: Database) -> None:
    """An empty id would make the update a PUT on the database itself."""
    with pytest.raises(DocumentError) as info:
        Document({"_rev": "1-a", "n": 1}).store_to_database(db)
    assert info.value.error == "illegal_docid"
    assert db.info()["doc_count"] == 0


def test_historical_alias(db: Database) -> None:
    doc = Document({"_id": "old"})
    doc.store_to_databse(db)
    assert "old" in db


def test_load_from_database(db: Database) -> None:
    _, rev1 = db.add({"_id": "d", "n": 1})
    db.update("d", {"n": 2})
    doc = Document()
    doc.load_from_database(db, "d")
    assert doc["n"] == 2 and doc.db is db
    doc.load_from_database(db, "d", rev1)
    assert doc["n"] == 1 and doc.rev == rev1


def test_errors_are_document_scoped(db: Database) -> None:
    with pytest.raises(NotFound) as info:
        Document().load_from_database(db, "missing")
    assert isinstance(info.value, DocumentError) and not isinstance(info.value, DatabaseError)
    assert info.value.status == 404 and info.value.error == "not_found"
    db.add({"_id": "c", "n": 1})
    stale = Document({"_id": "c", "_rev": "1-00000000000000000000000000000000"})
    with pytest.raises(Conflict) as conflict:
        stale.store_to_database(db)
    assert isinstance(conflict.value, DocumentError)
