"""Attachments from files against the real server: documents and design docs, the
directory form and its ignore file, compressible types CouchDB stores gzipped, changes
made on the server by someone else, removal of what couchsync wrote (others' kept), a
large file streamed, a no-op plan that reads no attachment bytes, and a couchapp's real
``_attachments`` directory (Sofa's)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import run

from couchsync import apply_manifests
from couchsync.client import Client
from couchsync.operation import plan_manifests
from couchsync.plan import ATTACHMENTS_DDOC, Plan, render_text
from couchsync.read import BATCH_BYTES
from couchsync.read._limits import INLINE_ATTACHMENT

SOFA = Path(__file__).resolve().parents[1] / "data" / "real-world" / "couchapp-sofa"
PNG = bytes(range(256)) * 12  # incompressible enough, and not a text type
CSS = b"body { color: #333; }\n" * 40  # text/css: CouchDB stores it gzipped
JS = b"function hello() { return 'hello'; }\n" * 20


def write(tmp_path: Path, databases: dict[str, Any]) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False))
    return str(path)


def files(root: Path, content: dict[str, bytes]) -> None:
    for name, data in content.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def lines(plan: Plan) -> list[str]:
    """The plan's attachment lines, without colour or indentation."""
    return [line.strip() for line in render_text(plan.to_dict(), color=False).splitlines()
            if " attachment " in line]


def stubs(client: Client, db: str, doc_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.database(db).get(doc_id).get("_attachments") or {}
    return found


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A design doc's attachment directory: nested names, and files its ignore file
    leaves out."""
    root = tmp_path / "app"
    files(root, {"index.html": b"<h1>app</h1>\n", "css/site.css": CSS, "js/app.js": JS,
                 "img/logo.png": PNG, "notes.tmp": b"scratch", "build/out.js": b"x",
                 ".couchsyncignore": b"*.tmp\nbuild/\n"})
    return root


def declare(tmp_path: Path, db: str, **document: Any) -> str:
    files(tmp_path, {"logo.png": PNG, "terms.css": CSS})
    return write(tmp_path, {db: {
        "design_docs": {"app": {"_attachments_from": "app",
                                "views": {"all": {"map": "function (doc) { emit(doc._id); }"}}}},
        "documents": [{"_id": "brand", "title": "Brand",
                       "_attachments": {"logo.png": "logo.png",
                                        "terms": {"file": "terms.css",
                                                  "content_type": "text/plain"}},
                       **document}]}})


def test_documents_and_design_docs_carry_their_files_and_replan_empty(
    client: Client, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    _, plan, _ = plan_manifests(client, [path])
    assert sorted(lines(plan)) == sorted([
        f"+ attachment css/site.css (text/css, {len(CSS):,} bytes)",
        "+ attachment img/logo.png (image/png, 3.0 KB)",
        "+ attachment index.html (text/html, 13 bytes)",
        f"+ attachment js/app.js (application/javascript, {len(JS):,} bytes)",
        "+ attachment logo.png (image/png, 3.0 KB)",
        f"+ attachment terms (text/plain, {len(CSS):,} bytes)"])
    apply_manifests(client, [path])

    db = client.database(db_name)
    # Named by their paths under the directory; the ignore file and what it ignores left out.
    assert sorted(stubs(client, db_name, "_design/app")) == [
        "css/site.css", "img/logo.png", "index.html", "js/app.js"]
    assert db.get_attachment("_design/app", "css/site.css") == CSS
    assert db.get_attachment("brand", "logo.png") == PNG
    assert stubs(client, db_name, "brand")["terms"]["content_type"] == "text/plain"
    assert db.get("brand")["title"] == "Brand"
    assert plan_manifests(client, [path])[1].is_empty


def test_a_file_changed_locally_updates_that_attachment_and_no_other(
    client: Client, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    apply_manifests(client, [path])
    before = stubs(client, db_name, "_design/app")

    (app / "css" / "site.css").write_bytes(CSS + b"a { color: red; }\n")
    _, plan, _ = plan_manifests(client, [path])
    assert lines(plan) == [
        f"~ attachment css/site.css ({len(CSS):,} bytes → {len(CSS) + 18:,} bytes)"]
    apply_manifests(client, [path])

    after = stubs(client, db_name, "_design/app")
    assert client.database(db_name).get_attachment("_design/app", "css/site.css").endswith(
        b"a { color: red; }\n")
    # The others were not sent again: each keeps the revision it was written in.
    assert {name: stub["revpos"] for name, stub in after.items() if name != "css/site.css"} == {
        name: stub["revpos"] for name, stub in before.items() if name != "css/site.css"}
    assert after["css/site.css"]["revpos"] > before["css/site.css"]["revpos"]
    assert plan_manifests(client, [path])[1].is_empty


@pytest.mark.couchdb_only("CouchDB gzips compressible types; PouchDB Server stores as sent")
def test_a_compressible_type_stored_gzipped_is_not_a_change_even_without_the_ledger(
    client: Client, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    apply_manifests(client, [path])
    db = client.database(db_name)
    stored = db.get("_design/app", att_encoding_info=True)["_attachments"]["css/site.css"]
    assert stored["encoding"] == "gzip"  # its digest is the gzip's, not the file's
    assert stored["digest"] != "md5-" + _b64md5(CSS)
    assert plan_manifests(client, [path])[1].is_empty

    # The ledger lost: the plan reads those attachments to tell, and still finds none changed.
    ledger = db.get(ATTACHMENTS_DDOC)
    db.delete(ATTACHMENTS_DDOC, ledger["_rev"])
    assert plan_manifests(client, [path])[1].is_empty
    # ... and a real change is still one.
    (app / "css" / "site.css").write_bytes(CSS.replace(b"#333", b"#444"))
    assert lines(plan_manifests(client, [path])[1]) == [
        f"~ attachment css/site.css ({len(CSS):,} bytes, content changed)"]


def test_changes_made_on_the_server_are_found_and_others_attachments_kept(
    client: Client, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    apply_manifests(client, [path])
    db = client.database(db_name)
    rev = db.get("brand")["_rev"]
    rev = db.put_attachment("brand", "logo.png", b"not a logo", rev=rev,
                            content_type="image/png")
    rev = db.delete_attachment("brand", "terms", rev=rev)
    db.put_attachment("brand", "theirs.txt", b"kept", rev=rev, content_type="text/plain")

    _, plan, _ = plan_manifests(client, [path])
    assert sorted(lines(plan)) == [
        f"+ attachment terms (text/plain, {len(CSS):,} bytes)",
        "~ attachment logo.png (10 bytes → 3.0 KB)"]
    apply_manifests(client, [path])
    assert db.get_attachment("brand", "logo.png") == PNG
    assert db.get_attachment("brand", "theirs.txt") == b"kept"
    assert plan_manifests(client, [path])[1].is_empty


def test_an_attachment_no_longer_declared_is_removed_only_if_couchsync_wrote_it(
    client: Client, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    apply_manifests(client, [path])
    db = client.database(db_name)
    db.put_attachment("brand", "theirs.txt", b"kept", rev=db.get("brand")["_rev"],
                      content_type="text/plain")
    (app / "js" / "app.js").unlink()
    path = declare(tmp_path, db_name, _attachments={"logo.png": "logo.png"})

    _, plan, _ = plan_manifests(client, [path])
    assert sorted(lines(plan)) == [f"- attachment js/app.js ({len(JS):,} bytes)",
                                   f"- attachment terms ({len(CSS):,} bytes)"]
    apply_manifests(client, [path])
    assert sorted(stubs(client, db_name, "brand")) == ["logo.png", "theirs.txt"]
    assert "js/app.js" not in stubs(client, db_name, "_design/app")
    assert plan_manifests(client, [path])[1].is_empty


def test_a_large_file_is_streamed_and_a_body_update_keeps_it(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    large = os.urandom(INLINE_ATTACHMENT + 123_457)
    (tmp_path / "large.bin").write_bytes(large)
    spec = {"_id": "archive", "v": 1, "_attachments": {"data.bin": "large.bin"}}
    path = write(tmp_path, {db_name: {"documents": [spec]}})
    apply_manifests(client, [path])
    db = client.database(db_name)
    assert db.get_attachment("archive", "data.bin") == large
    written = stubs(client, db_name, "archive")["data.bin"]

    path = write(tmp_path, {db_name: {"documents": [{**spec, "v": 2}]}})
    _, plan, _ = plan_manifests(client, [path])
    assert lines(plan) == []  # the body changes; the attachment is kept as it is
    apply_manifests(client, [path])
    assert db.get("archive")["v"] == 2
    assert stubs(client, db_name, "archive")["data.bin"]["revpos"] == written["revpos"]
    assert plan_manifests(client, [path])[1].is_empty


class _Recording(httpx.HTTPTransport):
    """The real transport, noting each request's method and path (no answer changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
        self.sizes: list[int] = []  # of each request body sent as bytes (not streamed)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if isinstance(request.stream, httpx.ByteStream):
            self.sizes.append(len(request.read()))
        return super().handle_request(request)


@pytest.fixture
def recording(couch_url: str) -> Iterator[tuple[Client, _Recording]]:
    transport = _Recording()
    with Client(couch_url, transport=transport) as opened:
        yield opened, transport


def test_a_no_op_plan_reads_no_attachment_and_no_document_body(
    client: Client, db_name: str, tmp_path: Path, app: Path,
    recording: tuple[Client, _Recording],
) -> None:
    path = declare(tmp_path, db_name)
    apply_manifests(client, [path])
    watched, transport = recording
    assert plan_manifests(watched, [path])[1].is_empty
    assert [path for method, path in transport.requests
            if method == "GET" and _is_attachment(path)] == []


def test_batches_with_inline_attachments_stay_within_the_byte_bound(
    client: Client, db_name: str, tmp_path: Path, recording: tuple[Client, _Recording],
) -> None:
    # 40 attachments of 1 MiB each: inline, so several _bulk_docs requests, none over the bound.
    blob = os.urandom(INLINE_ATTACHMENT)
    docs = []
    for i in range(40):
        (tmp_path / f"f{i}.bin").write_bytes(blob[i:] + blob[:i])
        docs.append({"_id": f"doc-{i:02d}", "_attachments": {"f.bin": f"f{i}.bin"}})
    path = write(tmp_path, {db_name: {"documents": docs}})
    watched, transport = recording
    apply_manifests(watched, [path])
    bulk = [path for method, path in transport.requests
            if method == "POST" and path.endswith("/_bulk_docs")]
    assert len(bulk) >= 40 * INLINE_ATTACHMENT * 4 // 3 // BATCH_BYTES + 1
    assert [m for m, p in transport.requests if m == "PUT" and "/doc-" in p] == []
    assert client.database(db_name).get_attachment("doc-07", "f.bin") == blob[7:] + blob[:7]
    assert plan_manifests(client, [path])[1].is_empty


def test_a_design_doc_of_many_files_is_not_one_huge_request(
    client: Client, db_name: str, tmp_path: Path, recording: tuple[Client, _Recording],
) -> None:
    # A couchapp of 24 files of half a MiB: all inline would be a 16 MiB request.
    site = tmp_path / "site"
    contents = {f"f{i:02d}.bin": os.urandom(INLINE_ATTACHMENT // 2) for i in range(24)}
    files(site, contents)
    path = write(tmp_path, {db_name: {"design_docs": {"app": {"_attachments_from": "site"}}}})
    watched, transport = recording
    apply_manifests(watched, [path])
    assert max(transport.sizes) <= BATCH_BYTES
    # Not a PUT per file (CouchDB pays for every attachment of the document at each):
    # the files in a few writes of the document, each of several.
    writes = [path for method, path in transport.requests
              if (method, path) in (("POST", f"/{db_name}/_bulk_docs"),
                                    ("PUT", f"/{db_name}/_design/app"))
              or (method == "PUT" and path.endswith(".bin"))]
    assert 1 < len(writes) <= len(contents) // 4
    for name, data in contents.items():
        assert client.database(db_name).get_attachment("_design/app", name) == data
    assert plan_manifests(client, [path])[1].is_empty

    # An update of many of them: the same writes, each file kept until it is replaced.
    for name in list(contents)[::2]:
        contents[name] = os.urandom(INLINE_ATTACHMENT // 2)
        (site / name).write_bytes(contents[name])
    apply_manifests(client, [path])
    for name, data in contents.items():
        assert client.database(db_name).get_attachment("_design/app", name) == data
    assert plan_manifests(client, [path])[1].is_empty


def test_a_real_couchapp_attachments_directory_round_trips(
    client: Client, db_name: str, tmp_path: Path
) -> None:
    shutil.copytree(SOFA / "_attachments", tmp_path / "_attachments")
    path = write(tmp_path, {db_name: {"design_docs": {"sofa": {
        "_attachments_from": "_attachments",
        "views": {"by_date": {"map": "function (doc) { if (doc.created_at) "
                                     "emit(doc.created_at); }"}}}}}})
    apply_manifests(client, [path])
    written = stubs(client, db_name, "_design/sofa")
    on_disk = sorted(str(p.relative_to(tmp_path / "_attachments")).replace(os.sep, "/")
                     for p in (tmp_path / "_attachments").rglob("*") if p.is_file())
    assert sorted(written) == on_disk
    assert written["style/screen.css"]["content_type"] == "text/css"
    assert client.database(db_name).get_attachment("_design/sofa", "images/icon.png") == (
        tmp_path / "_attachments" / "images" / "icon.png").read_bytes()
    assert plan_manifests(client, [path])[1].is_empty


def test_cli_plan_shows_attachment_lines_and_validate_names_a_missing_file(
    couch_url: str, db_name: str, tmp_path: Path, app: Path
) -> None:
    path = declare(tmp_path, db_name)
    shown = run(couch_url, "plan", path)
    assert shown.returncode == 0, shown.stderr
    assert "+ attachment img/logo.png (image/png, 3.0 KB)" in shown.stdout

    (tmp_path / "logo.png").unlink()
    checked = run(couch_url, "validate", path)
    assert checked.returncode == 1
    assert "Traceback" not in checked.stderr
    assert f"{path}:" in checked.stderr and "attachment 'logo.png': cannot read" in checked.stderr


def _is_attachment(path: str) -> bool:
    """Whether ``path`` (/db/doc/name, /db/_design/doc/name) addresses an attachment:
    attachment names never start with '_' (``_info``, ``_view`` are endpoints)."""
    rest = path.split("/")[2:]
    if rest[:1] in (["_design"], ["_local"]):
        rest = rest[1:]
    return len(rest) >= 2 and not rest[0].startswith("_") and not rest[1].startswith("_")


def _b64md5(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.mark.couchdb_only("[couchdb] max_attachment_size is CouchDB's")
def test_a_file_over_the_servers_attachment_limit_is_refused_at_plan(
    client: Client, couch_url: str, db_name: str, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    path = write(tmp_path, {db_name: {"documents": [
        {"_id": "d", "_attachments": {"big.bin": "big.bin"}}]}})
    before = client.server.set_config("_local", "couchdb", "max_attachment_size", "4096")
    try:
        planned = run(couch_url, "plan", path)
    finally:
        if before is None:
            client.server.delete_config("_local", "couchdb", "max_attachment_size")
        else:
            client.server.set_config("_local", "couchdb", "max_attachment_size", before)
    assert planned.returncode == 1
    assert "Traceback" not in planned.stderr
    shown = planned.stdout + planned.stderr
    assert f"has attachment 'big.bin' ({tmp_path / 'big.bin'}) of 5,000 bytes, over " \
           "[couchdb] max_attachment_size = 4,096" in shown
