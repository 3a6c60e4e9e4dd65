"""The server's size limits: read once, checked at plan time, kept by apply's batches (why:
docs/design-notes.md, "Size limits"); a document is measured as CouchDB does."""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from couchsync.client import Client, CouchError, TransportError, encode_json
from couchsync.manifest.model import DatabaseSpec
from couchsync.plan import Action, Step, StepKind, batched_within, file_attachments

#: CouchDB 3.5's built-in defaults (``couch_doc.erl``, ``chttpd.erl``).
COUCHDB_MAX_DOCUMENT = 8_000_000
COUCHDB_MAX_REQUEST = 4_294_967_296
COUCHDB_MAX_ATTACHMENT = 1_073_741_824  # default.ini: "1 gibibyte"
COUCHDB_MAX_DBS_OPEN = 500  # default.ini
#: Attachments up to this size go inline (base64) in ``_bulk_docs`` (``inline_names``);
#: larger ones are streamed from their file by a PUT of their own after the document.
INLINE_ATTACHMENT = 1 << 20
#: A ``_bulk_docs`` request carries at most this many bytes (inline attachments make
#: large ones; apply holds two in memory, one sent and one being encoded).
BATCH_BYTES = 8 << 20
#: PouchDB Server's default body limit (express-pouchdb's ``maxDocumentSizeDefault``).
POUCHDB_MAX_REQUEST = 4 * 1024**3
#: ``{"docs":[`` and ``]}`` around a ``_bulk_docs`` request's documents.
BULK_ENVELOPE = len(b'{"docs":[]}')
#: Fields CouchDB takes out of a document before measuring it (``transfer_fields``).
_NOT_BODY = frozenset({"_id", "_rev", "_attachments", "_revisions", "_deleted", "_revs_info",
                       "_local_seq", "_conflicts", "_deleted_conflicts"})
SHOWN = 5  # documents a too_large message names


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """``document``: CouchDB's limit on one document's body (None: the server has none
    of its own: PouchDB Server); ``request``: on one request's body, in bytes."""

    document: int | None
    request: int
    document_setting: str = "[couchdb] max_document_size"
    request_setting: str = "[chttpd] max_http_request_size"
    attachment: int | None = None  # ``[couchdb] max_attachment_size`` (None: no limit)
    #: ``[couchdb] max_dbs_open``: databases CouchDB keeps open (None: not known).
    open_databases: int | None = None


def read_limits(client: Client) -> ServerLimits:
    """The limits of the node ``client`` talks to, or the defaults when its configuration
    cannot be read (a user who is not a server admin)."""
    couchdb = "couchdb" in client.server.info()
    try:
        config = client.server.config()
    except TransportError:
        raise
    except CouchError:
        config = {}
    if not couchdb:
        request = config.get("couchdb", {}).get("max_document_size")
        return ServerLimits(None, _integer(request, POUCHDB_MAX_REQUEST),
                            request_setting="[couchdb] max_document_size (PouchDB Server)")
    attachment = config.get("couchdb", {}).get("max_attachment_size")
    return ServerLimits(
        _integer(config.get("couchdb", {}).get("max_document_size"), COUCHDB_MAX_DOCUMENT),
        _integer(config.get("chttpd", {}).get("max_http_request_size"), COUCHDB_MAX_REQUEST),
        attachment=None if str(attachment).strip() == "infinity"
        else _integer(attachment, COUCHDB_MAX_ATTACHMENT),
        open_databases=_integer(config["couchdb"].get("max_dbs_open"), COUCHDB_MAX_DBS_OPEN)
        if "couchdb" in config else None)


def _integer(text: str | None, default: int) -> int:
    try:
        return int(str(text).split(";")[0].strip()) if text is not None else default
    except ValueError:  # CouchDB reads an unreadable setting as its default too
        return default


class LimitsReader:
    """``read_limits`` once, when first needed, for any number of threads: a plan that
    writes nothing asks nothing."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._limits: ServerLimits | None = None

    def __call__(self) -> ServerLimits:
        with self._lock:
            if self._limits is None:
                self._limits = read_limits(self._client)
            return self._limits


def bulk_body(step: Step) -> dict[str, Any] | bytes:
    """What apply sends to ``_bulk_docs`` for a document or design doc step: attachments
    to send inline (``inline_names``) are read from their files, base64; the others are
    ``streamed`` after it."""
    body = _written(step)
    if isinstance(body, dict) and body.get("_attachments"):
        import base64

        for name in inline_names(step):
            att = body["_attachments"][name]
            with open(att["file"], "rb") as handle:
                body["_attachments"][name] = {
                    "content_type": att["content_type"],
                    "data": base64.b64encode(handle.read()).decode("ascii")}
    return body


def _written(step: Step) -> dict[str, Any] | bytes:
    """``bulk_body`` with the attachments it sends inline as they are declared, and
    without those it streams (an update keeps the stub of one it replaces, so the
    document never lacks it meanwhile)."""
    if step.action is Action.DELETE:
        return {"_id": step.id, "_rev": step.rev, "_deleted": True}
    if step.spec is not None and not step.rev:  # a new document: its JSON as loaded
        return step.spec.json
    body = {**step.after, "_id": step.id}
    if step.rev:
        body["_rev"] = step.rev
    if body.get("_attachments"):
        kept = (step.before or {}).get("_attachments") or {}
        first = set(inline_names(step))
        later = {name for name, _ in file_attachments(step) if name not in first}
        body["_attachments"] = {name: kept[name] if name in later else att
                                for name, att in body["_attachments"].items()
                                if name not in later or name in kept}
    return body


def inline_names(step: Step) -> list[str]:
    """The attachments ``step`` sends inline: each of at most ``INLINE_ATTACHMENT`` bytes,
    by name, while the document's inline attachments stay within a quarter of
    ``BATCH_BYTES`` (a couchapp of a thousand files is not one huge request)."""
    names, total = [], 0
    for name, att in file_attachments(step):
        size = _base64_length(att)
        if att["length"] <= INLINE_ATTACHMENT and total + size <= BATCH_BYTES // 4:
            names.append(name)
            total += size
    return names


def _base64_length(att: dict[str, Any]) -> int:
    return 4 * math.ceil(int(att["length"]) / 3)


def follow_ups(step: Step) -> list[list[str]]:
    """The attachments of at most ``INLINE_ATTACHMENT`` bytes that the document's first
    write leaves out (``inline_names``), in groups each sent inline by a write of the
    document of its own, within half a request (a couchapp of a thousand files: a dozen
    writes, not a thousand ``PUT``s, each of which CouchDB pays for every attachment)."""
    first = set(inline_names(step))
    small = [(name, att) for name, att in file_attachments(step)
             if name not in first and att["length"] <= INLINE_ATTACHMENT]
    return [[name for name, _ in group] for group in batched_within(
        small, max(len(small), 1), BATCH_BYTES // 2, lambda item: _base64_length(item[1]))]


def follow_up_body(step: Step, sent: Collection[str], group: Sequence[str]) -> dict[str, Any]:
    """The document as a follow-up write sends it: the attachments of ``group`` inline,
    those ``sent`` before as stubs, the others as the first write left them (no
    ``_rev``: the caller gives the current one)."""
    import base64

    body = _written(step)
    assert isinstance(body, dict)  # a step with attachments is never a bare spec
    body.pop("_rev", None)
    attachments = body["_attachments"] = dict(body["_attachments"])
    files = dict(file_attachments(step))
    for name in sent:  # PouchDB Server finds a stub's data by its digest (CouchDB by name)
        att = files[name]
        attachments[name] = {"stub": True, "digest": att["digest"],
                             "content_type": att["content_type"], "length": att["length"]}
    for name in group:
        att = files[name]
        with open(att["file"], "rb") as handle:
            attachments[name] = {"content_type": att["content_type"],
                                 "data": base64.b64encode(handle.read()).decode("ascii")}
    return body


def streamed(step: Step) -> list[tuple[str, dict[str, Any]]]:
    """The attachments of ``step`` too large to go inline: each sent by a ``PUT`` of its
    own, streamed from its file, after the document's other writes."""
    return [(name, att) for name, att in file_attachments(step)
            if att["length"] > INLINE_ATTACHMENT]


def encoded(step: Step) -> bytes:
    """``bulk_body(step)`` as the bytes sent."""
    body = bulk_body(step)
    return body if isinstance(body, bytes) else encode_json(body)


def too_large(steps: Iterable[Step], spec: DatabaseSpec,
              limits: LimitsReader) -> str | None:
    """Why the server would refuse some document or design doc ``steps`` write (each
    named, with where the manifests declare it), or None. ``limits`` is asked only
    when there is something to write."""
    found: list[str] = []
    known: ServerLimits | None = None
    for step in steps:
        if step.kind not in (StepKind.DOCUMENT, StepKind.DESIGN_DOC) or step.action not in (
                Action.CREATE, Action.UPDATE):
            continue
        known = known or limits()
        if (reason := _refusal(step, known)) is not None:
            found.append(f"{_named(step, spec)} {reason}")
    if not found:
        return None
    more = f"; … and {len(found) - SHOWN:,} more" if len(found) > SHOWN else ""
    return (f"{len(found):,} document{'s' if len(found) != 1 else ''} larger than the server "
            f"accepts: " + "; ".join(found[:SHOWN]) + more)


def _refusal(step: Step, limits: ServerLimits) -> str | None:
    for name, att in file_attachments(step):
        if limits.attachment is not None and att["length"] > limits.attachment:
            return (f"has attachment {name!r} ({att['file']}) of {att['length']:,} bytes, "
                    f"over [couchdb] max_attachment_size = {limits.attachment:,}")
    spec = step.spec if not step.rev else None  # a new document: its length known unread
    size = _measured(step) if spec is None else (
        len(spec.inline) if spec.inline is not None else spec.length)
    if size + BULK_ENVELOPE > limits.request:
        return (f"is {size:,} bytes of JSON, more than one request may carry "
                f"({limits.request_setting} = {limits.request:,})")
    # The JSON sent is never shorter than CouchDB's estimate of the body in it (it holds
    # _id too); only a document longer than the limit is measured CouchDB's way.
    if limits.document is None or size <= limits.document:
        return None
    body = step.after if spec is None else spec.body
    measured = couchdb_size({k: v for k, v in body.items() if k not in _NOT_BODY})
    if measured <= limits.document:
        return None
    return (f"is {measured:,} bytes as CouchDB measures a document body, over "
            f"{limits.document_setting} = {limits.document:,}")


def _measured(step: Step) -> int:
    """``len(encoded(step))``, counted without reading the attachments' files."""
    body = _written(step)
    if isinstance(body, bytes):
        return len(body)
    inline = inline_names(step)
    for name in inline:
        body["_attachments"][name] = {"content_type": body["_attachments"][name]["content_type"],
                                      "data": ""}
    return len(encode_json(body)) + sum(_base64_length(att) for name, att in file_attachments(step)
                                        if name in inline)


def _named(step: Step, spec: DatabaseSpec) -> str:
    doc_id = step.id or ""
    declared = (spec.design_docs.get(doc_id.removeprefix("_design/"))
                if step.kind is StepKind.DESIGN_DOC else spec.documents.get(doc_id))
    return step.address + (f" ({declared.source})" if declared is not None else "")


def couchdb_size(value: Any) -> int:
    """The size CouchDB gives a decoded JSON value (``couch_ejson_size:encoded_size``),
    walked without recursion: a body may be nested thousands of levels deep."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            # {"k":v,...}: 1 + each pair's key, value, ':' and ','; {} is 2.
            total += 1 + sum(_string_size(key) + 2 for key in item) if item else 2
            stack.extend(item.values())
        elif isinstance(item, list):
            total += 1 + len(item) if item else 2
            stack.extend(item)
        elif isinstance(item, str):
            total += _string_size(item)
        elif item is None or item is True:
            total += 4
        elif item is False:
            total += 5
        elif isinstance(item, int):
            total += _integer_size(item)
        elif isinstance(item, float):
            total += _float_size(item)
        else:
            raise TypeError(f"not a JSON value: {type(item).__name__}")
    return total


def _string_size(text: str) -> int:
    return 2 + len(text.encode("utf-8", "surrogatepass"))


def _integer_size(number: int) -> int:
    if number < 0:
        return 1 + _integer_size(-number)
    if number < 10_000:
        return len(str(number))
    # CouchDB takes log10 of the integer as a double: 10^16 - 1 counts 17 digits.
    return math.trunc(math.log10(float(number))) + 1


def _float_size(number: float) -> int:
    if number < 0.0:
        return 1 + _float_size(-number)
    if number < 1.0:
        for bound, size in ((1e-300, 3), (1e-100, 6), (1e-10, 5), (0.01, 4)):
            if number <= bound:
                return size
        return 3
    return 5 if number >= 1e100 else 4 if number >= 1e10 else 3


#: Plans of fewer databases than this do not ask how many the server keeps open.
FLEET = 100


def fleet_warning(databases: int, limits: LimitsReader) -> str | None:
    """A warning when a plan covers more databases than CouchDB keeps open, and what that
    costs; None below ``FLEET`` or when the setting cannot be read (not an admin)."""
    if databases < FLEET:
        return None
    limit = limits().open_databases
    if limit is None or databases <= limit:
        return None
    return (f"{databases:,} databases to plan, more than the server keeps open ([couchdb] "
            f"max_dbs_open = {limit:,}): each one read opens its shard files again and closes "
            "another database's, the application's too, so a full plan costs more per "
            "database and slows the application meanwhile; an incremental plan reads only "
            f"the databases that changed, and max_dbs_open above {databases:,} (memory and "
            "file handles allowing) keeps them all open")
