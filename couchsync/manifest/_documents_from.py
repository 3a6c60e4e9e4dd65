"""Stream seed documents out of ``documents_from`` data files.

JSON Lines (``.jsonl``/``.ndjson``) a line at a time, a JSON array (``.json``) an element
at a time over fixed-size chunks: a file's text is never held whole. ``${VAR}`` is not
expanded: the content is data (often an export, where ``${`` is ordinary text).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from couchsync._canonical import NotJSONNumber, canonical_decoder, canonical_json, hash_canonical
from couchsync.manifest._datacache import NO_CACHE, DataFileCache
from couchsync.manifest._datafiles import remember
from couchsync.manifest._problems import (
    MAX_DEPTH,
    TOO_DEEP,
    Problem,
    format_path,
    surrogate_problem,
)
from couchsync.manifest._schema import document_issues, plainly_valid
from couchsync.manifest.model import DocumentSpec, SourcePos

_CHUNK = 1 << 16
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _Refused(ValueError):
    """Valid JSON the loader refuses: a duplicate key, or nesting past ``MAX_DEPTH``."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys; like the YAML loader, refuse instead.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key!r} in a JSON object")
            seen.add(key)
    return result


_DECODER = canonical_decoder(object_pairs_hook=_no_duplicate_keys)


def read_documents(path: str, cache: DataFileCache = NO_CACHE) -> Iterator[DocumentSpec | Problem]:
    """Documents of one data file, in file order, with a ``Problem`` for each bad one; a
    JSON Lines file through ``cache``. Raises ``OSError`` when the file cannot be opened
    (the caller names the manifest line)."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            try:
                for item in _json_array(handle):
                    yield item if isinstance(item, Problem) else _document(path, *item)
            except UnicodeDecodeError as exc:
                yield Problem(path, *_utf8_error_at(path), f"not valid UTF-8 text ({exc.reason})")
        return
    with open(path, "rb") as binary:
        remember(path, binary)
        key = cache.key(binary)
        cached = cache.load(key, path)
        if cached is not None:
            yield from cached
            return
        found: list[DocumentSpec] = []
        clean = True
        parsed = cache.hasher()  # the key of the bytes parsed: stored only if it is `key`
        for read in _json_lines(path, binary, parsed.update if parsed else None):
            if isinstance(read, Problem):
                clean = False
            else:
                found.append(read)
            yield read
        if clean and parsed is not None and parsed.hexdigest() == key:
            cache.store(key, found)


def _document(path: str, body: Any, line: int, col: int,
              span: tuple[int, int] | None = None) -> DocumentSpec | Problem:
    issues = document_issues(body)
    if issues:
        issue = issues[0]  # one problem per document keeps a bad file's report readable
        return Problem(path, line, col, issue.message, format_path(issue.path))
    if "_attachments" in body or "_attachments_from" in body:
        return Problem(path, line, col, "attachments are declared in a manifest's documents, "
                       "not in a data file (paths there are relative to the manifest)")
    try:
        return DocumentSpec.from_body(body, SourcePos(path, line, col), line=span,
                                      numbers_canonical=True)
    except NotJSONNumber as exc:
        return Problem(path, line, col, str(exc))
    except UnicodeEncodeError as exc:
        return Problem(path, line, col, _unencodable(exc))


def _json_lines(
    path: str, handle: IO[bytes], seen: Callable[[bytes], object] | None = None
) -> Iterator[DocumentSpec | Problem]:
    """Each line's document (line number, offset and length in the file) or problem;
    ``seen`` is given every line's bytes. The hot loop of a cold load: the usual valid
    document is made inline (what ``DocumentSpec.from_body`` does); anything else goes
    through ``_document``."""
    offset = 0
    spec = DocumentSpec
    for number, raw in enumerate(handle, start=1):
        if seen is not None:
            seen(raw)
        start, offset = offset, offset + len(raw)
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw, start = raw[len(codecs.BOM_UTF8):], start + len(codecs.BOM_UTF8)
        raw = raw.rstrip(b"\r\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            col = len(raw[: exc.start].decode("utf-8", "replace")) + 1
            yield Problem(path, number, col, f"not valid UTF-8 text ({exc.reason})")
            continue
        if not text.strip():
            continue
        try:
            body = _decode_line(text)
        except json.JSONDecodeError as exc:
            yield Problem(path, number, exc.colno, _json_message(exc))
            continue
        except (_Refused, NotJSONNumber) as exc:
            yield Problem(path, number, 1, str(exc))
            continue
        try:
            canonical = (canonical_json(body, numbers_canonical=True)
                         if plainly_valid(body) else None)
        except (NotJSONNumber, UnicodeEncodeError):
            canonical = None  # _document words the problem
        if canonical is None:
            yield _document(path, body, number, 1, (start, len(raw)))
            continue
        yield spec(body["_id"], path, number, 1, hash_canonical(canonical),
                   body.get("_deleted", False), offset=start, length=len(raw))


def _decode_line(text: str) -> Any:
    try:
        try:  # the usual line, one value and nothing around it: one call into the C scanner
            value, end = _DECODER.raw_decode(text)
        except json.JSONDecodeError:
            end = -1
        if end != len(text):  # whitespace around the value, or the error as decode words it
            value = _DECODER.decode(text)
    except RecursionError:  # json's answer to 10^5 "[": far deeper than MAX_DEPTH
        raise _Refused(TOO_DEEP) from None
    _check_depth(value, text)
    return value


def _check_depth(value: Any, text: str, start: int = 0, end: int | None = None) -> None:
    """Raise ``_Refused`` when ``value``, decoded from ``text[start:end]``, nests deeper
    than ``MAX_DEPTH``. Counting brackets (in C) first settles the usual document."""
    if text.count("[", start, end) + text.count("{", start, end) <= MAX_DEPTH:
        return
    level = [value] if type(value) in (dict, list) else []
    for _ in range(MAX_DEPTH):  # breadth first, a level at a time: no recursion
        level = [child for item in level for child in (item.values() if type(item) is dict
                                                         else item)
                 if type(child) in (dict, list)]
    if level:
        raise _Refused(TOO_DEEP)


def _unencodable(exc: UnicodeEncodeError) -> str:
    # A lone surrogate from a "\ud800" escape: canonical JSON cannot encode it as UTF-8.
    return surrogate_problem(exc.object) or f"not encodable as UTF-8 ({exc.reason})"


def _utf8_error_at(path: str) -> tuple[int, int]:
    """Line and column of the first bytes of ``path`` that are not UTF-8 (the text
    reader's error does not say where)."""
    with open(path, "rb") as binary:
        for number, line in enumerate(binary, start=1):  # no character spans a line break
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                begin = len(codecs.BOM_UTF8) if number == 1 and line.startswith(
                    codecs.BOM_UTF8) else 0
                return number, len(line[begin:exc.start].decode("utf-8", "replace")) + 1
    return 1, 1  # changed since it failed to decode: the file, at its start


def _json_message(exc: json.JSONDecodeError) -> str:
    # json's messages end in " at" when a position follows ("Extra data at"); ours is separate.
    return f"invalid JSON: {exc.msg.removesuffix(' at')}"


class _Chunks:
    """A sliding window over a text stream that knows the line and column of its position."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.col = 1
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk, dropping what was consumed; False at end of file."""
        # As large as what is kept: a document of 10^6 characters is decoded again a
        # few times, not 10^6 / _CHUNK times (quadratic).
        chunk = "" if self.eof else self.handle.read(max(_CHUNK, len(self.buf) - self.pos))
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def where(self, index: int) -> tuple[int, int]:
        newlines = self.buf.count("\n", self.pos, index)
        if not newlines:
            return self.line, self.col + index - self.pos
        return self.line + newlines, index - self.buf.rfind("\n", self.pos, index)

    def advance(self, index: int) -> None:
        self.line, self.col = self.where(index)
        self.pos = index

    def peek(self) -> str | None:
        """The next character that is not whitespace, or None at end of file."""
        while True:
            self.advance(_WHITESPACE.match(self.buf, self.pos).end())  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return None

    def decode(self) -> Any:
        """Decode the JSON value at the position and move past it."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                # A number cut by the chunk boundary decodes as a shorter number:
                # only a value followed by more text (or the end of file) is whole.
                if end < len(self.buf) or self.eof:
                    _check_depth(value, self.buf, self.pos, end)
                    self.advance(end)
                    return value
            except json.JSONDecodeError:
                if self.eof:
                    raise
            except RecursionError:
                raise _Refused(TOO_DEEP) from None
            self.more()


def _json_array(handle: IO[str]) -> Iterator[tuple[Any, int, int] | Problem]:
    chunks = _Chunks(handle)

    def problem(message: str, index: int | None = None) -> Problem:
        line, col = chunks.where(chunks.pos if index is None else index)
        return Problem(handle.name, line, col, message)

    if chunks.peek() != "[":
        yield problem("expected a JSON array of documents ('[')")
        return
    chunks.advance(chunks.pos + 1)
    following = chunks.peek()
    while following != "]":
        if following is None:
            yield problem("the JSON array is not closed (missing ']')")
            return
        line, col = chunks.line, chunks.col
        try:
            yield chunks.decode(), line, col
        except json.JSONDecodeError as exc:
            yield problem(_json_message(exc), exc.pos)
            return
        except (_Refused, NotJSONNumber) as exc:
            yield Problem(handle.name, line, col, str(exc))
            return
        following = chunks.peek()
        if following == ",":
            chunks.advance(chunks.pos + 1)
            following = chunks.peek()
            if following == "]":
                yield problem("trailing comma before ']'")
                return
        elif following != "]":
            yield problem("expected ',' or ']' after a document")
            return
    chunks.advance(chunks.pos + 1)
    if chunks.peek() is not None:
        yield problem("unexpected text after the JSON array")
