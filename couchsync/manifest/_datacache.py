"""A cache of what loading a JSON Lines data file found: each document's id, place and hash.

Seed files rarely change between runs, and parsing them is most of a load. What loading
finds depends only on the file's bytes and couchsync's rules, so it is kept under the
SHA-256 of both: an edited file is another key, never a stale answer. Only files without
problems are stored (a bad one is parsed again, to report them all). A cache that cannot
be read or written is skipped silently: it changes only speed, never what is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO

from couchsync.manifest.model import DocumentSpec

#: Bump when what an entry means changes (the content hash, the document rules).
CACHE_FORMAT = 1
# Past either limit, adding an entry removes the least recently used ones.
KEEP_ENTRIES = 1_000
KEEP_BYTES = 256 << 20
_HASH_CHUNK = 1 << 20


def cache_directory(environ: Mapping[str, str]) -> Path | None:
    """``$COUCHSYNC_CACHE_DIR`` (empty: off, None), else ``$XDG_CACHE_HOME/couchsync``,
    else ``~/.cache/couchsync``."""
    if "COUCHSYNC_CACHE_DIR" in environ:
        chosen = environ["COUCHSYNC_CACHE_DIR"]
        return Path(chosen) if chosen else None
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "couchsync"


class DataFileCache:
    """Loaded JSON Lines files by content; ``directory`` None is a cache that keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = None if directory is None else directory / f"datafiles-{CACHE_FORMAT}"

    def hasher(self) -> Any:
        """A fresh SHA-256 for a key (fed the file's bytes); None when the cache is off."""
        if self.directory is None:
            return None
        import hashlib  # only when caching: `validate` of a small manifest never needs it

        from couchsync._version import code_identity

        # The code's identity, not its version alone: a loader changed at one version
        # number (an install from a later commit) must not take the last one's entries.
        return hashlib.sha256(f"couchsync {code_identity()} {CACHE_FORMAT}\n".encode())

    def key(self, handle: BinaryIO) -> str | None:
        """The key of the file open as ``handle`` (read to its end, then rewound)."""
        digest = self.hasher()
        if digest is None:
            return None
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
        handle.seek(0)
        return str(digest.hexdigest())

    def load(self, key: str | None, path: str) -> list[DocumentSpec] | None:
        """The documents stored under ``key`` as documents of ``path``; None on a miss."""
        if self.directory is None or key is None:
            return None
        entry = self.directory / f"{key}.json"
        try:
            stored = json.loads(entry.read_bytes())
            ids, lines, offsets, lengths = (stored[k] for k in ("ids", "lines", "offsets",
                                                                "lengths"))
            digests, deleted = stored["digests"], frozenset(stored["deleted"])
            if not len(ids) == len(lines) == len(offsets) == len(lengths) == len(digests) / 22:
                return None
            specs = [
                DocumentSpec(doc_id, path, line, 1, digests[22 * i: 22 * i + 22], i in deleted,
                             offset=offset, length=length)
                for i, (doc_id, line, offset, length) in enumerate(
                    zip(ids, lines, offsets, lengths, strict=True))
            ]
        except (OSError, ValueError, TypeError, KeyError):
            return None  # missing, unreadable or damaged: parse the file instead
        with contextlib.suppress(OSError):  # a read-only cache still answers
            os.utime(entry)  # last used: what eviction goes by
        return specs

    def store(self, key: str | None, specs: list[DocumentSpec]) -> None:
        """Keep ``specs`` (every document of one file, none with a problem) under ``key``."""
        if self.directory is None or key is None:
            return
        import tempfile

        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written aside and renamed: a concurrent reader sees the whole entry or none.
            with tempfile.NamedTemporaryFile("wb", dir=self.directory, suffix=".tmp",
                                             delete=False) as tmp:
                try:
                    _write_entry(tmp, specs)
                    tmp.close()
                    os.replace(tmp.name, self.directory / f"{key}.json")
                except BaseException:
                    os.unlink(tmp.name)
                    raise
            self._evict()
        except OSError:
            return

    def _evict(self) -> None:
        """Keep the most recently used entries within the limits; remove what a killed
        process left half-written."""
        assert self.directory is not None
        now = time.time()
        for partial in self.directory.glob("*.tmp"):
            if now - partial.stat().st_mtime > 3600:
                partial.unlink(missing_ok=True)
        entries = sorted(((p.stat(), p) for p in self.directory.glob("*.json")),
                         key=lambda item: item[0].st_mtime_ns, reverse=True)
        total = 0
        for count, (status, entry) in enumerate(entries, start=1):
            total += status.st_size
            if count > KEEP_ENTRIES or (total > KEEP_BYTES and count > 1):
                entry.unlink(missing_ok=True)


NO_CACHE = DataFileCache(None)


def _write_entry(out: IO[bytes], specs: list[DocumentSpec]) -> None:
    # Written a slice at a time: for a million documents the whole text would be 60 MB.
    def array(name: str, values: Iterable[object]) -> None:
        out.write(f'"{name}":['.encode())
        items = list(values)
        for start in range(0, len(items), 10_000):
            out.write(b"," if start else b"")
            out.write(json.dumps(items[start:start + 10_000], ensure_ascii=False)[1:-1].encode())
        out.write(b"],")

    out.write(b"{")
    for field in ("id", "line", "offset", "length"):
        array(field + "s", (getattr(s, field) for s in specs))
    array("deleted", (i for i, s in enumerate(specs) if s.deleted))
    out.write(b'"digests":"')
    for start in range(0, len(specs), 10_000):
        out.write("".join(s.hash for s in specs[start:start + 10_000]).encode())
    out.write(b'"}')
