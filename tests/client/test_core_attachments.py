"""Attachments through the client: bytes and files streamed, names that are paths, names
and ids URL normalization would change (``..``, empty parts), conflicts and deletes."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchsync.client import Conflict, Database, FileChunks, NotFound

ODD_NAMES = ["css/app.css", "../x", "/etc/passwd", "a//b", ".", "x y?#%", "ünï.txt"]


def test_bytes_and_a_streamed_file_are_stored_and_read_back(db: Database, tmp_path: Path) -> None:
    _, rev = db.add({"_id": "doc", "v": 1})
    rev = db.put_attachment("doc", "a.txt", b"hello", rev=rev, content_type="text/plain")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 9000)  # several chunks of FileChunks
    chunks = FileChunks(str(big))
    assert list(chunks) == list(chunks)  # iterated again (a retry), it reads the file again
    rev = db.put_attachment("doc", "big.bin", chunks, rev=rev,
                            content_type="application/octet-stream", length=big.stat().st_size)
    stubs = db.get("doc")["_attachments"]
    assert {name: stub["length"] for name, stub in stubs.items()} == {
        "a.txt": 5, "big.bin": big.stat().st_size}
    assert db.get_attachment("doc", "big.bin") == big.read_bytes()
    assert db.get("doc")["v"] == 1  # the body stays as it was
    assert db.get("doc")["_rev"] == rev


@pytest.mark.parametrize("doc_id", ["plain", ".", "..", "_design/app"])
def test_odd_names_and_ids_reach_their_attachment(db: Database, doc_id: str) -> None:
    _, rev = db.add({"_id": doc_id})
    for name in ODD_NAMES:
        rev = db.put_attachment(doc_id, name, name.encode(), rev=rev, content_type="text/plain")
    assert sorted(db.get(doc_id)["_attachments"]) == sorted(ODD_NAMES)
    for name in ODD_NAMES:
        assert db.get_attachment(doc_id, name) == name.encode()
    rev = db.delete_attachment(doc_id, "../x", rev=rev)
    assert "../x" not in db.get(doc_id)["_attachments"]
    with pytest.raises(NotFound):
        db.get_attachment(doc_id, "../x")


def test_a_stale_revision_is_a_conflict(db: Database, copies: int) -> None:
    # Each write on every copy of a cluster's shard before the stale one reaches one.
    _, first = db.update("doc", {}, w=copies)
    db.put_attachment("doc", "a.txt", b"one", rev=first, content_type="text/plain", w=copies)
    with pytest.raises(Conflict):
        db.put_attachment("doc", "a.txt", b"two", rev=first, content_type="text/plain")
    assert db.get_attachment("doc", "a.txt") == b"one"
