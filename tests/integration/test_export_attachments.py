"""``couchsync export --attachments-dir``: attachments written as files the manifest names,
so export → apply into another database → re-plan is empty (types CouchDB stores gzipped,
an image, nested names, names with spaces, a type the name does not give); names that
would leave the directory stay in it; couchsync's ledger is never exported; without the
option, one note says what was left out."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from cli_helpers import run
from sync_helpers import CountingEngine, counting_client, plan, sync

from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import load_manifests
from couchsync.plan import ATTACHMENTS_DDOC

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # image/png: stored as sent
CSS = b"body { color: #333; }\n" * 40  # text/css and application/javascript: CouchDB
JS = b"function hello() { return 'hello'; }\n" * 20  # stores them gzipped
APP = {"index.html": ("text/html", b"<h1>app</h1>\n"), "css/app.css": ("text/css", CSS),
       "js/app.js": ("application/javascript", JS), "img/logo.png": ("image/png", PNG)}
PHOTO = {"my picture.png": ("image/png", PNG[::-1]),
         "notes": ("text/plain", b"taken at noon\n")}  # no extension: the type is written


def attachment_reads(engine: CountingEngine) -> set[str]:
    """The attachments ``engine`` was asked for, as ``doc/name`` paths."""
    names = [*APP, *PHOTO]
    return {path.split("/", 2)[2] for method, path, _ in engine.requests
            if method == "GET" and any(path.endswith("/" + quote(name, safe="/"))
                                       for name in names)}


def inline(attachments: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    return {name: {"content_type": content_type, "data": base64.b64encode(data).decode()}
            for name, (content_type, data) in attachments.items()}


def seed(client: Client, db: str, docs: list[dict[str, Any]]) -> None:
    client.create(db)
    database = client.database(db)
    # On every copy of a cluster's shards: the export reads one copy of each at once (it
    # found none of them once, in CI, when a write had reached only most copies).
    copies = (database.info().get("cluster") or {}).get("n")
    assert not database.bulk_docs(docs, w=copies).errors()


def app_and_photo(client: Client, db: str) -> None:
    seed(client, db, [
        {"_id": "_design/app", "views": {"all": {"map": "function (doc) { emit(doc._id); }"}},
         "_attachments": inline(APP)},
        {"_id": "photo 1", "title": "Noon", "_attachments": inline(PHOTO)},
        {"_id": "plain", "n": 1}])


def test_export_apply_elsewhere_and_replan_empty(
    client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
    is_couchdb: bool,
) -> None:
    source, copy = db_name_factory(), db_name_factory()
    app_and_photo(client, source)
    if is_couchdb:  # what the round trip is to get past: a stub digest not the file's MD5
        stub = client.database(source).get("_design/app", att_encoding_info=True)[
            "_attachments"]["css/app.css"]
        assert stub["encoding"] == "gzip"

    done = run(couch_url, "export", "--db", source, "--with-docs",
               "--attachments-dir", str(tmp_path / "files"))
    assert done.returncode == 0, done.stderr
    total = sum(len(data) for _, data in [*APP.values(), *PHOTO.values()])
    assert done.stderr == (f"wrote 6 attachment files ({total:,} bytes) under "
                           f"{tmp_path / 'files'}; the manifest names them from {tmp_path}: "
                           "save it there\n")
    exported = yaml.safe_load(done.stdout)["databases"][source]
    at = f"files/{source}"
    assert exported["design_docs"]["app"]["_attachments"] == {
        name: f"{at}/_design/app/{name}" for name in sorted(APP)}
    assert exported["documents"] == [
        {"_id": "photo 1", "title": "Noon", "_attachments": {
            "my picture.png": f"{at}/photo 1/my picture.png",
            "notes": {"file": f"{at}/photo 1/notes", "content_type": "text/plain"}}},
        {"_id": "plain", "n": 1}]
    for name, (_, data) in APP.items():
        assert (tmp_path / at / "_design" / "app" / name).read_bytes() == data
    assert (tmp_path / at / "photo 1" / "my picture.png").read_bytes() == PHOTO[
        "my picture.png"][1]
    assert not list(tmp_path.rglob(".couchsync-*"))  # no file left aside

    manifest = tmp_path / "exported.yaml"
    manifest.write_text(done.stdout)
    counted, engine = counting_client(couch_url)
    with counted:
        assert plan(counted, load_manifests([manifest], environ={})).is_empty  # the source
        # Read to be compared: the types CouchDB gzipped, as nothing couchsync wrote
        # explains their digests.
        assert attachment_reads(engine) == ({
            "_design/app/css/app.css", "_design/app/index.html", "_design/app/js/app.js",
            "photo%201/notes"} if is_couchdb else set())

        exported_copy = tmp_path / "copy.yaml"
        exported_copy.write_text(yaml.safe_dump({"version": 1, "databases": {copy: exported}}))
        desired = load_manifests([exported_copy], environ={})
        sync(client, desired)
        engine.requests.clear()
        assert plan(counted, desired).is_empty
        assert attachment_reads(engine) == set()  # apply's ledger explains them
    target = client.database(copy)
    for name, (content_type, data) in APP.items():
        assert target.get_attachment("_design/app", name) == data
        assert target.get("_design/app")["_attachments"][name]["content_type"] == content_type
    assert target.get("photo 1")["_attachments"]["notes"]["content_type"] == "text/plain"

    # The copy holds couchsync's ledger now: never exported, as the migrations' record.
    assert target.get(ATTACHMENTS_DDOC)
    again = export_manifest(client, [copy], with_docs=True,
                            attachments_dir=tmp_path / "again")
    assert list(yaml.safe_load(again)["databases"][copy]["design_docs"]) == ["app"]
    assert sorted(path.name for path in (tmp_path / "again" / copy / "_design").iterdir()) \
        == ["app"]


def test_odd_names_each_get_a_file_of_their_own_in_the_directory(
    client: Client, db_name: str, tmp_path: Path,
) -> None:
    # ".." as a whole name or id, and names with an empty part ("/etc/passwd", "a//b"),
    # are test_export_layout's: the client's URL of such an attachment misses it.
    attachments = {"..\\..\\escape.txt": ("text/plain", b"1"),
                   "css": ("text/css", b"3"), "css/app.css": ("text/css", b"4"),
                   "Pic.png": ("image/png", b"5"), "pic.png": ("image/png", b"6"),
                   'what?:"*<>|\\.txt': ("text/plain", b"7"), "x" * 300: ("text/plain", b"8")}
    seed(client, db_name, [{"_id": doc_id, "_attachments": inline(attachments)}
                           for doc_id in ("...", "Logo", "logo", "a/b")])
    directory = tmp_path / "out" / "files"
    text = export_manifest(client, [db_name], with_docs=True, attachments_dir=directory)
    manifest = tmp_path / "out" / "exported.yaml"
    manifest.write_text(text)

    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert len(written) == 4 * len(attachments) + 1  # and the manifest
    assert all(path.resolve().is_relative_to(directory.resolve()) for path in written
               if path != manifest)
    documents = yaml.safe_load(text)["databases"][db_name]["documents"]
    for doc in documents:
        for name, path in doc["_attachments"].items():
            # Each name in a file of its own, none sharing a name that differs only in case.
            file = tmp_path / "out" / (path if isinstance(path, str) else path["file"])
            assert file.read_bytes() == attachments[name][1]
    paths = [path.relative_to(directory).as_posix() for path in written if path != manifest]
    assert len({path.casefold() for path in paths}) == len(paths)
    assert f"{db_name}/%2E%2E%2E/..%5C..%5Cescape.txt" in paths
    assert {f"{db_name}/a%2Fb/css", f"{db_name}/a%2Fb/css~2/app.css"} <= set(paths)
    assert {f"{db_name}/logo~2/Pic.png", f"{db_name}/logo~2/pic~2.png"} <= set(paths)
    assert plan(client, load_manifests([manifest], environ={})).is_empty


def test_without_the_option_one_note_says_what_was_left_out(
    client: Client, couch_url: str, db_name: str, tmp_path: Path,
) -> None:
    app_and_photo(client, db_name)
    for options, count in ((["--with-docs"], 6), ([], 4)):  # a design doc's are counted too
        done = run(couch_url, "export", "--db", db_name, *options)
        assert done.returncode == 0, done.stderr
        assert done.stderr == (f"left out: {count} attachments of the exported documents and "
                               "design docs (apply leaves them as the server has them); "
                               "--attachments-dir DIR exports them as files\n")
        assert "_attachments" not in done.stdout
        manifest = tmp_path / "exported.yaml"
        manifest.write_text(done.stdout)
        assert plan(client, load_manifests([manifest], environ={})).is_empty


def test_a_pattern_shares_a_design_doc_whose_attachments_are_the_same_everywhere(
    client: Client, db_name: str, tmp_path: Path,
) -> None:
    names = [f"{db_name}-{tail}" for tail in ("a", "b")]
    for name in names:
        app_and_photo(client, name)
        client.database(name).bulk_docs([{"_id": "own", "_attachments": inline(
            {"x.png": ("image/png", name.encode())})}])
    try:
        text = export_manifest(client, [f"{db_name}-*"], with_docs=True,
                               attachments_dir=tmp_path / "files")
        entry = yaml.safe_load(text)["databases"][f"{db_name}-*"]
        # The first database's files, written once; "own" differs, so it is left out.
        assert entry["design_docs"]["app"]["_attachments"]["img/logo.png"] \
            == f"files/{names[0]}/_design/app/img/logo.png"
        assert [doc["_id"] for doc in entry["documents"]] == ["photo 1", "plain"]
        assert sorted(path.relative_to(tmp_path / "files").parts[0] for path in
                      (tmp_path / "files").rglob("*") if path.is_file()) == [names[0]] * 6
        manifest = tmp_path / "exported.yaml"
        manifest.write_text(text)
        assert plan(client, load_manifests([manifest], environ={})).is_empty
    finally:
        for name in names:
            client.delete(name)


def test_a_content_type_that_is_no_media_type_is_named_and_left_out_only_when_asked(
    client: Client, couch_url: str, db_name: str, tmp_path: Path,
) -> None:
    seed(client, db_name, [{"_id": "page", "_attachments": inline({
        "index.html": ("html", b"<p>hi</p>"),
        "notes.txt": ("text/plain; charset=utf-8", b"kept"),
        "logo.png": ("image/png", PNG)})}])
    files = str(tmp_path / "files")
    refused = run(couch_url, "export", "--db", db_name, "--with-docs", "--attachments-dir", files)
    assert refused.returncode == 1 and not refused.stdout
    assert refused.stderr.splitlines()[0] == (
        f"not exported: database {db_name!r}: page: attachment 'index.html': its content type "
        "'html' is not a media type (type/subtype) a manifest holds")
    done = run(couch_url, "export", "--db", db_name, "--with-docs", "--attachments-dir", files,
               "--skip-unsupported")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["databases"][db_name]["documents"] == [
        {"_id": "page", "_attachments": {
            "logo.png": f"files/{db_name}/page/logo.png",
            "notes.txt": {"file": f"files/{db_name}/page/notes.txt",
                          "content_type": "text/plain; charset=utf-8"}}}]
    manifest = tmp_path / "exported.yaml"
    manifest.write_text(done.stdout)
    assert plan(client, load_manifests([manifest], environ={})).is_empty  # the page's kept
