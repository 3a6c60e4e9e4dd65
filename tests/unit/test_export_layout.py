"""Where export writes attachment files (``couchsync.export``'s layout): each name and id
made one safe file name, nothing leaving the attachments directory, no two files that a
case-insensitive file system would take for one."""

from __future__ import annotations

import posixpath

import pytest

from couchsync.export import _Dir, _file_name, _file_path


@pytest.mark.parametrize(("text", "name"), [
    ("..", "%2E%2E"), (".", "%2E"), ("...", "%2E%2E%2E"), ("", "%"),
    ("a/b", "a%2Fb"), ("..\\x", "..%5Cx"), ("100%", "100%25"), ("my picture.png",
                                                                 "my picture.png"),
    ("tab\there", "tab%09here"), ("é.txt", "é.txt"), (".htaccess", ".htaccess"),
])
def test_file_names(text: str, name: str) -> None:
    assert _file_name(text) == name


def test_a_long_name_is_cut_and_told_apart() -> None:
    first, second = _file_name("é" * 200 + "a"), _file_name("é" * 200 + "b")
    assert first != second
    assert len(first.encode()) <= 200 and len(second.encode()) <= 200


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a//b", "a/", "..",
                                  "./x", "x/../../y", "a/./b", "C:\\x", "\\\\server\\share"])
def test_no_attachment_name_leaves_its_document_directory(name: str) -> None:
    path = _file_path(_Dir("db/doc/"), name)
    assert path.startswith("db/doc/")
    parts = path.removeprefix("db/doc/").split("/")
    assert all(part not in ("", ".", "..") and "\\" not in part for part in parts)
    assert posixpath.normpath(path) == path


def test_names_differing_only_in_case_and_a_file_beside_a_directory() -> None:
    folder = _Dir("")
    assert [_file_path(folder, name) for name in ("css", "css/app.css", "CSS/x.css",
                                                   "Logo.png", "logo.png")] == [
        "css", "css~2/app.css", "css~2/x.css", "Logo.png", "logo~2.png"]
    db = _Dir("").directory("db")
    # Documents' directories are their own, even where ids differ only in case.
    assert [db.directory(doc_id, own=True).path for doc_id in ("Logo", "logo", "logo")] == [
        "db/Logo/", "db/logo~2/", "db/logo~3/"]
