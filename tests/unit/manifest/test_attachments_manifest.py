"""Attachments declared in manifests: what they load as, and the mistakes ``validate``
names at their place (a missing file or directory, a name declared twice, a name CouchDB
refuses), the ignore file, the content type table, and the digest cache."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

from conftest import Collect, Write

from couchsync.manifest import load_manifests, referenced_files
from couchsync.manifest._attachments import FileDigests, content_type_of


def _md5(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def test_declared_files_load_with_their_type_length_and_digest(
    write: Write, tmp_path: Path
) -> None:
    write("assets/logo.png", b"\x89PNG...")
    write("site/index.html", "<p>hi</p>")
    write("site/css/a.css", "p {}")
    write("site/.couchsyncignore", "*.swp\ndrafts/\n")
    write("site/index.html.swp", "x")
    write("site/drafts/new.html", "x")
    path = write("m.yaml", """\
        version: 1
        databases:
          app:
            design_docs:
              web:
                _attachments_from: site
            documents:
              - _id: brand
                name: Brand
                _attachments:
                  logo.png: assets/logo.png
                  raw: {file: site/index.html, content_type: text/plain}
        """)
    state = load_manifests([path], environ={})
    db = state.databases["app"]
    web = db.design_docs["web"]
    assert [att.name for att in web.attachments] == ["css/a.css", "index.html"]
    assert "_attachments_from" not in web.body
    brand = db.documents["brand"]
    assert brand.body == {"_id": "brand", "name": "Brand"}  # attachments are not fields
    logo, raw = brand.attachments
    assert (logo.name, logo.content_type, logo.length, logo.digest) == (
        "logo.png", "image/png", 7, _md5(b"\x89PNG..."))
    assert (raw.name, raw.content_type) == ("raw", "text/plain")
    assert raw.file == str(tmp_path / "site" / "index.html")
    assert referenced_files(state) >= {logo.file, raw.file, path, str(tmp_path / "site")}


def test_the_content_hash_follows_the_files_not_where_they_are(
    write: Write, tmp_path: Path
) -> None:
    def brand(directory: str, content: bytes) -> str:
        write(f"{directory}/logo.png", content)
        path = write(f"{directory}/m.yaml", """\
            version: 1
            databases:
              app:
                documents:
                  - {_id: brand, _attachments: {logo.png: logo.png}}
            """)
        return load_manifests([path], environ={}).databases["app"].documents["brand"].hash

    assert brand("one", b"A") == brand("two", b"A")  # another checkout: the same content
    assert brand("three", b"B") != brand("one", b"A")


def test_mistakes_are_named_at_their_place(write: Write, collect: Collect) -> None:
    write("site/_hidden.js", "x")
    write("site/ok.js", "x")
    write("a.png", "x")
    write("m.yaml", """\
        version: 1
        databases:
          app:
            design_docs:
              web:
                _attachments_from: site
                _attachments:
                  ok.js: a.png
            documents:
              - _id: one
                _attachments:
                  gone.png: missing.png
              - _id: two
                _attachments_from: nowhere
        """)
    found = collect("m.yaml")
    messages = [(line, message) for _, line, _, message in found]
    assert any(line == 12 and message.startswith("attachment 'gone.png': cannot read")
               for line, message in messages)
    assert any(line == 6 and "'_hidden.js': CouchDB refuses attachment names that start "
               "with '_'" in message for line, message in messages)
    assert any(line == 6 and "attachment 'ok.js' is declared twice" in message
               for line, message in messages)
    assert any(line == 14 and message.startswith("_attachments_from 'nowhere': no such "
                                                 "directory") for line, message in messages)


def test_a_data_file_cannot_declare_attachments(write: Write, collect: Collect) -> None:
    write("docs.jsonl", '{"_id": "a", "_attachments": {"x.png": "x.png"}}\n')
    write("m.yaml", """\
        version: 1
        databases:
          app:
            documents_from: [docs.jsonl]
        """)
    assert collect("m.yaml") == [("docs.jsonl", 1, 1, "attachments are declared in a "
                                  "manifest's documents, not in a data file (paths there are "
                                  "relative to the manifest)")]


def test_content_types_come_from_couchsyncs_own_table() -> None:
    assert content_type_of("css/site.css") == "text/css"
    # Python 3.12's mimetypes says text/javascript: a plan must not change with Python.
    assert content_type_of("app.js") == "application/javascript"
    assert content_type_of("APP.JS") == "application/javascript"
    assert content_type_of("fonts/a.woff2") == "font/woff2"  # unknown to 3.11's mimetypes
    assert content_type_of(".htaccess") == "application/octet-stream"  # a name, no extension
    assert content_type_of("logo.png") == "image/png"
    assert content_type_of("backup.tar.gz") == "application/octet-stream"  # gzip bytes
    assert content_type_of("LICENSE") == "application/octet-stream"


def test_the_digest_cache_trusts_a_file_only_while_its_stat_is_unchanged(
    tmp_path: Path
) -> None:
    file = tmp_path / "a.bin"
    file.write_bytes(b"one")
    old = time.time() - 60  # written a while ago: not racily clean
    os.utime(file, (old, old))
    first = FileDigests(tmp_path / "cache")
    assert first.digest(str(file), os.stat(file)) == _md5(b"one")
    first.save()

    file.write_bytes(b"two")  # same size, new mtime
    os.utime(file, (old + 1, old + 1))
    again = FileDigests(tmp_path / "cache")
    assert again.digest(str(file), os.stat(file)) == _md5(b"two")


def test_a_file_changed_as_it_was_hashed_is_not_cached(tmp_path: Path) -> None:
    file = tmp_path / "a.bin"
    file.write_bytes(b"one")  # modified just now: the same tick could hold another write
    cache = FileDigests(tmp_path / "cache")
    cache.digest(str(file), os.stat(file))
    cache.save()
    assert not (tmp_path / "cache").exists()
