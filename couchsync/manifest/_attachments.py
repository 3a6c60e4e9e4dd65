"""Attachments declared from files: ``_attachments`` (name → file) and ``_attachments_from``
(every file under a directory, ``.couchsyncignore`` leaving some out), read into
``AttachmentSpec``s with each file's length and MD5.

A file's digest is kept in a cache by its path and ``stat`` (size, mtime, inode): a plan of
a thousand unchanged files then reads none of them. As git does for its index, an entry is
not trusted when the file was modified within ``_RACY`` seconds of being hashed (a write
in the same clock tick could leave the same size and time).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from couchsync.manifest.model import AttachmentSpec, SourcePos

#: ``_attachments_from``'s ignore file, in gitignore syntax; never sent itself.
IGNORE_FILE = ".couchsyncignore"
_CACHE_FORMAT = 1
_RACY = 2.0  # seconds
_CHUNK = 1 << 20
#: Types by extension: couchsync's own table, not ``mimetypes``, whose answers differ with
#: the machine (/etc/mime.types) and the Python version (3.12 made .js text/javascript):
#: a plan must not change with either. The web's usual files; anything else is
#: application/octet-stream unless the manifest gives ``content_type``.
CONTENT_TYPES = {
    "html": "text/html", "htm": "text/html", "css": "text/css", "txt": "text/plain",
    "md": "text/markdown", "csv": "text/csv", "xml": "application/xml",
    "js": "application/javascript", "mjs": "application/javascript",
    "json": "application/json", "map": "application/json",
    "webmanifest": "application/manifest+json", "yaml": "application/yaml",
    "yml": "application/yaml", "svg": "image/svg+xml", "png": "image/png",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "avif": "image/avif", "ico": "image/vnd.microsoft.icon", "bmp": "image/bmp",
    "tif": "image/tiff", "tiff": "image/tiff", "woff": "font/woff", "woff2": "font/woff2",
    "ttf": "font/ttf", "otf": "font/otf", "eot": "application/vnd.ms-fontobject",
    "pdf": "application/pdf", "zip": "application/zip", "wasm": "application/wasm",
    "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "mp4": "video/mp4",
    "webm": "video/webm",
}

#: (path within the entry, message, on the key rather than the value)
Found = tuple[tuple[str, ...], str]


def content_type_of(name: str) -> str:
    """The type CouchDB is told for a file named ``name``: by its extension."""
    base = name.rpartition("/")[2]
    extension = base.rpartition(".")[2].lower() if "." in base.lstrip(".") else ""
    return CONTENT_TYPES.get(extension, "application/octet-stream")


class FileDigests:
    """Files' MD5 digests by path and ``stat``, kept in ``directory`` between runs (None:
    every file is read)."""

    def __init__(self, directory: Path | None) -> None:
        self._file = None if directory is None else directory / f"attachments-{_CACHE_FORMAT}.json"
        self._known: dict[str, list[Any]] | None = None
        self._changed = False

    def digest(self, path: str, status: os.stat_result) -> str:
        """``md5-`` and the base64 MD5 of the file at ``path`` (``status``: its stat)."""
        key = [status.st_size, status.st_mtime_ns, status.st_ino]
        known = self._entries()
        entry = known.get(path)
        if entry is not None and entry[:3] == key:
            return str(entry[3])
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                md5.update(chunk)
        digest = "md5-" + base64.b64encode(md5.digest()).decode()
        if time.time() - status.st_mtime > _RACY:
            known[path] = [*key, digest]
            self._changed = True
        return digest

    def _entries(self) -> dict[str, list[Any]]:
        if self._known is None:
            self._known = {}
            if self._file is not None:
                with contextlib.suppress(OSError, ValueError):
                    stored = json.loads(self._file.read_bytes())
                    if isinstance(stored, dict):
                        self._known = stored
        return self._known

    def save(self) -> None:
        """Keep what was hashed, for the next run; a cache that cannot be written is
        skipped (it changes only speed)."""
        if self._file is None or not self._changed or self._known is None:
            return
        import tempfile

        with contextlib.suppress(OSError):
            self._file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written aside and renamed: a concurrent reader sees the whole file or none.
            with tempfile.NamedTemporaryFile("w", dir=self._file.parent, suffix=".tmp",
                                             delete=False) as tmp:
                json.dump(self._known, tmp)
            os.replace(tmp.name, self._file)
        self._changed = False


def read_attachments(body: dict[str, Any], base: str, at: Callable[..., SourcePos],
                     digests: FileDigests) -> tuple[tuple[AttachmentSpec, ...], list[Found]]:
    """The attachments ``body`` declares (its ``_attachments`` and ``_attachments_from``,
    which the caller removes), sorted by name, and the problems found (each with the path
    below the entry it is at). Paths are relative to ``base``, the manifest's directory
    (absolute)."""
    found: dict[str, AttachmentSpec] = {}
    problems: list[Found] = []

    def add(name: str, file: str, content_type: str | None, within: tuple[str, ...],
            directory: str | None = None) -> None:
        where = at(*within)
        if name.startswith("_"):
            problems.append((within, f"attachment {name!r}: CouchDB refuses attachment names "
                                     "that start with '_'"))
            return
        if name in found:
            problems.append((within, f"attachment {name!r} is declared twice (first at "
                                     f"{found[name].source})"))
            return
        if "\0" in file:  # os.stat would raise ValueError: no file can be named so
            problems.append((within, f"attachment {name!r}: a file name cannot hold a NUL "
                                     "character"))
            return
        try:
            status = os.stat(file)
            if not stat.S_ISREG(status.st_mode):
                raise IsADirectoryError(21, "not a regular file")
            digest = digests.digest(file, status)
        except OSError as exc:
            problems.append((within, f"attachment {name!r}: cannot read {file}: "
                                     f"{exc.strerror or exc}"))
            return
        found[name] = AttachmentSpec(name, file, content_type or content_type_of(name),
                                     status.st_size, digest, where, directory)

    for name, value in (body.get("_attachments") or {}).items():
        relative, content_type = (value, None) if isinstance(value, str) else (
            value["file"], value.get("content_type"))
        add(name, os.path.join(base, relative), content_type, ("_attachments", name))
    directory = body.get("_attachments_from")
    if directory is not None:
        root = os.path.join(base, directory)
        if "\0" in root:
            problems.append((("_attachments_from",), f"_attachments_from {directory!r}: a "
                                                     "directory name cannot hold a NUL character"))
        elif not os.path.isdir(root):
            problems.append((("_attachments_from",), f"_attachments_from {directory!r}: "
                                                     f"no such directory ({root})"))
        else:
            try:
                for name in sorted(directory_files(root)):
                    add(name, os.path.join(root, *name.split("/")), None,
                        ("_attachments_from",), root)
            except OSError as exc:
                problems.append((("_attachments_from",), f"_attachments_from {directory!r}: "
                                                         f"{exc.strerror or exc}"))
    return tuple(found[name] for name in sorted(found)), problems


def directory_files(root: str) -> Iterator[str]:
    """The files under ``root``, as '/'-separated paths relative to it, that its
    ``.couchsyncignore`` (gitignore syntax, as git reads it) does not leave out."""
    import pathspec

    ignore_file = os.path.join(root, IGNORE_FILE)
    lines = Path(ignore_file).read_text("utf-8").splitlines() if os.path.isfile(
        ignore_file) else []
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    for name in spec.match_tree_files(root, negate=True):
        name = name.replace(os.sep, "/")
        if name != IGNORE_FILE:
            yield name
