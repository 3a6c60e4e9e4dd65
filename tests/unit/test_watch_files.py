"""Which saved files start a round of ``apply --watch`` (``couchsync.watch.Watched``), and
which servers it counts as on loopback; no server, no file watcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from couchsync.manifest import load_manifests
from couchsync.watch import Watched, WatchError, _Changes, on_loopback


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """manifests/app.yaml (a pattern too) reading data/seed.jsonl, manifests/more.jsonl,
    the transform migrations/up.py, the attachment logo.png and the attachments under www/;
    an editor's swap file and a .git beside them."""
    for name, text in {
        "data/seed.jsonl": '{"_id": "a"}\n',
        "manifests/more.jsonl": '{"_id": "b"}\n',
        "manifests/empty.jsonl": "",
        "migrations/up.py": "def up(doc):\n    return doc\n",
        "logo.png": "not really a PNG",
        "www/index.html": "<p>hello</p>",
        "www/css/site.css": "p {}",
        "manifests/.app.yaml.swp": "",
        "manifests/.git/HEAD": "ref: refs/heads/main\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "manifests/app.yaml").write_text(json.dumps({"version": 1, "databases": {
        "orders": {"documents_from": ["../data/seed.jsonl"],
                   "documents": [{"_id": "c", "_attachments": {"logo.png": "../logo.png"}}],
                   "design_docs": {"web": {"_attachments_from": "../www"}}},
        "tenant-*": {"documents_from": ["more.jsonl", "empty.jsonl"],
                     "migrations": [{"id": "m1", "transform": "../migrations/up.py:up"}]},
    }}))
    return tmp_path


def test_a_manifest_directory_watches_its_manifests_and_the_files_they_read(
        project: Path) -> None:
    watched = Watched.of([project / "manifests"],
                         load_manifests([project / "manifests"], environ={}))
    for name in ("manifests/app.yaml", "data/seed.jsonl", "manifests/more.jsonl",
                 "migrations/up.py", "logo.png", "www/index.html", "www/css/site.css",
                 "www/js/added.js",  # an attachment to come
                 "manifests/new.yml", "manifests/sub/new.yaml"):  # manifests to come
        assert watched.wants(str(project / name)), name
    for name in ("manifests/.app.yaml.swp", "manifests/.git/HEAD", "manifests/notes.txt",
                 "manifests/__pycache__/x.pyc", "data/other.jsonl", "data/new.yaml",
                 "migrations/up.py~", "manifests", "other.png"):
        assert not watched.wants(str(project / name)), name
    # Each directory once: logo.png's holds all the others.
    assert watched.roots == [str(project)]


def test_what_is_watched_is_shown_as_users_name_it(project: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "manifests")
    watched = Watched.of(["."], load_manifests(["."], environ={}))
    # The directory once for its manifests; outside the current directory, real paths.
    # An empty data file too: a document written into it later is a change.
    assert watched.shown() == ["./", *(str(project / name) for name in (
        "data/seed.jsonl", "logo.png", "migrations/up.py", "www")), "empty.jsonl",
        "more.jsonl"]


def test_a_manifest_file_given_is_watched_alone_until_it_loads(project: Path) -> None:
    manifest = project / "manifests/app.yaml"
    before = Watched.of([manifest])
    assert before.wants(str(manifest))
    assert not before.wants(str(project / "manifests/other.yaml"))  # not given
    assert not before.wants(str(project / "data/seed.jsonl"))  # not known yet
    assert before.roots == [str(project / "manifests")]

    after = Watched.of([manifest], load_manifests([manifest], environ={}))
    assert after.wants(str(project / "data/seed.jsonl"))
    assert not after.wants(str(project / "manifests/other.yaml"))
    assert after != before and after.roots == [str(project)]


def test_a_directory_among_the_files_read_counts_with_everything_under_it(
        tmp_path: Path) -> None:
    # As an _attachments_from DIR will be: a file added in it changes what a plan reads.
    (tmp_path / "www/js").mkdir(parents=True)
    watched = Watched(frozenset({str(tmp_path / "app.yaml"), str(tmp_path / "www")}),
                      frozenset())
    assert watched.wants(str(tmp_path / "www/js/new.js"))
    assert not watched.wants(str(tmp_path / "wwwx/a.js"))
    assert watched.roots == [str(tmp_path)]  # www is below app.yaml's directory


def test_paths_are_compared_by_their_real_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real/app.yaml").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    watched = Watched.of([tmp_path / "link/app.yaml"])
    assert watched.wants(str(tmp_path / "real/app.yaml"))  # as the watcher reports it
    assert watched.roots == [str(tmp_path / "real")]


def test_a_directory_that_cannot_be_watched_is_one_clean_error(tmp_path: Path) -> None:
    gone = tmp_path / "gone"  # removed between the load and the watcher's start
    with pytest.raises(WatchError, match=f"^cannot watch {gone}: "):
        _Changes(Watched(frozenset({str(gone / "app.yaml")}), frozenset()), None)


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:5984", True),
    ("http://admin:pw@127.0.0.2:5984/", True),
    ("http://localhost:5984", True),
    ("http://[::1]:5984", True),
    ("http://192.0.2.1:5984", False),  # TEST-NET-1: numeric, resolved without a lookup
    ("http://[2001:db8::1]:5984", False),
])
def test_on_loopback(url: str, loopback: bool) -> None:
    assert on_loopback(url) is loopback
