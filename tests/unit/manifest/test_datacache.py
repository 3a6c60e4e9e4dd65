"""The cache of loaded JSON Lines data files: keyed by content, never a stale or damaged answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Write

from couchsync.manifest import DocumentSpec, ManifestError, _datacache, _documents_from
from couchsync.manifest import load_manifests as _load_manifests
from couchsync.manifest._datacache import DataFileCache, cache_directory
from couchsync.manifest.model import DesiredState

MANIFEST = "version: 1\ndatabases:\n  app:\n    documents_from: [d.jsonl]\n"
DATA = ('\ufeff{"_id": "a", "n": 1.0}\r\n\n{"_id": "b", "_deleted": true}\n'
        '{"_id": "c", "big": 12345678901234567890, "s": "Zoë"}')


def load(manifest: str, cache: Path | None) -> DesiredState:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COUCHSYNC_CACHE_DIR", str(cache or ""))
        return _load_manifests([manifest])


def fields(state: DesiredState) -> list[tuple[object, ...]]:
    return [(d.id, d.file, d.line, d.col, d.hash, d.deleted, d.offset, d.length, d.json)
            for d in state.databases["app"].documents.values()]


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("datafiles-*/*.json"))


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the data file was parsed, not served from the cache")

    monkeypatch.setattr(_documents_from, "_json_lines", refuse)


def test_a_second_load_is_served_from_the_cache_and_equals_a_parse(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("d.jsonl", DATA.encode())
    manifest = write("m.yaml", MANIFEST)
    parsed = fields(load(manifest, None))
    assert fields(load(manifest, tmp_path / "c")) == parsed
    assert len(entries(tmp_path / "c")) == 1
    no_parsing(monkeypatch)
    assert fields(load(manifest, tmp_path / "c")) == parsed
    assert [d[0] for d in parsed] == ["a", "b", "c"] and parsed[1][5] is True


def test_an_edited_file_is_a_new_key_never_a_stale_answer(
    write: Write, tmp_path: Path
) -> None:
    data = write("d.jsonl", '{"_id": "a", "n": 1}\n')
    manifest = write("m.yaml", MANIFEST)
    load(manifest, tmp_path)
    Path(data).write_text('{"_id": "a", "n": 2}\n{"_id": "z"}\n')
    fresh = fields(load(manifest, tmp_path))
    assert fresh == fields(load(manifest, None))
    assert [f[0] for f in fresh] == ["a", "z"]
    assert len(entries(tmp_path)) == 2


def test_a_file_with_problems_is_not_stored_and_is_reported_every_time(
    write: Write, tmp_path: Path
) -> None:
    write("d.jsonl", '{"_id": "a"}\n{"_id": "a", oops}\n')
    manifest = write("m.yaml", MANIFEST)
    for _ in range(2):
        with pytest.raises(ManifestError) as caught:
            load(manifest, tmp_path)
        assert [p.line for p in caught.value.problems] == [2]
    assert entries(tmp_path) == []


@pytest.mark.parametrize("damage", [b"", b"{", b'{"ids": ["a"]}', b"[]",
                                    b'{"ids":["a"],"lines":[1],"offsets":[0],"lengths":[12],'
                                    b'"deleted":[],"digests":"short"}'])
def test_a_damaged_entry_is_ignored_and_replaced(
    write: Write, tmp_path: Path, damage: bytes
) -> None:
    write("d.jsonl", DATA.encode())
    manifest = write("m.yaml", MANIFEST)
    expected = fields(load(manifest, tmp_path))
    (entry,) = entries(tmp_path)
    entry.write_bytes(damage)
    assert fields(load(manifest, tmp_path)) == expected
    assert entry.read_bytes() != damage


def test_a_cache_that_cannot_be_written_changes_nothing(write: Write, tmp_path: Path) -> None:
    write("d.jsonl", DATA.encode())
    manifest = write("m.yaml", MANIFEST)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    assert fields(load(manifest, blocked)) == fields(load(manifest, None))


def test_an_empty_cache_dir_turns_it_off(write: Write, tmp_path: Path) -> None:
    write("d.jsonl", DATA.encode())
    manifest = write("m.yaml", MANIFEST)
    home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home))
        load(manifest, None)
    assert not home.exists()


def test_where_the_cache_lives() -> None:
    assert cache_directory({"COUCHSYNC_CACHE_DIR": "/x"}) == Path("/x")
    assert cache_directory({"COUCHSYNC_CACHE_DIR": ""}) is None
    assert cache_directory({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/couchsync")
    assert cache_directory({}) == Path(os.path.expanduser("~"), ".cache", "couchsync")


def test_the_cache_is_private_and_keeps_the_most_recently_used(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_datacache, "KEEP_ENTRIES", 2)
    manifest = write("m.yaml", MANIFEST)
    for n in range(3):
        write("d.jsonl", f'{{"_id": "doc-{n}"}}\n')
        load(manifest, tmp_path)
        if n == 0:
            first = entries(tmp_path)[0]
            os.utime(first, ns=(1, 1))  # long unused
    kept = entries(tmp_path)
    assert len(kept) == 2 and first not in kept
    assert (tmp_path / f"datafiles-{_datacache.CACHE_FORMAT}").stat().st_mode & 0o077 == 0


def test_a_file_changed_while_it_is_parsed_is_not_stored(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write("d.jsonl", '{"_id": "a"}\n')
    cache = DataFileCache(tmp_path)
    # As if the file had other bytes when it was hashed than when it was parsed.
    monkeypatch.setattr(cache, "key", lambda handle: "0" * 64)
    assert [d.id for d in _documents_from.read_documents(data, cache)
            if isinstance(d, DocumentSpec)] == ["a"]
    assert entries(tmp_path) == []


def test_eviction_keeps_the_recently_used_within_the_byte_budget_and_drops_old_partials(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write("m.yaml", MANIFEST)
    write("d.jsonl", '{"_id": "first"}\n')
    load(manifest, tmp_path)
    (first,) = entries(tmp_path)
    partial = first.with_name("left-by-a-killed-process.tmp")
    partial.write_text("{")
    os.utime(partial, (1, 1))
    fresh_partial = first.with_name("being-written.tmp")
    fresh_partial.write_text("{")
    monkeypatch.setattr(_datacache, "KEEP_BYTES", first.stat().st_size + 10)
    write("d.jsonl", '{"_id": "second"}\n')
    load(manifest, tmp_path)
    assert [e.name for e in entries(tmp_path)] != [first.name] and len(entries(tmp_path)) == 1
    assert not partial.exists() and fresh_partial.exists()


def test_without_a_cache_nothing_is_kept(write: Write) -> None:
    data = write("d.jsonl", '{"_id": "a"}\n')
    items = list(_documents_from.read_documents(data))
    assert [i.id for i in items if isinstance(i, DocumentSpec)] == ["a"]
