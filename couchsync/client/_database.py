"""Database: documents, bulk reads and writes, Mango queries and indexes, security."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from ._errors import BadRequest, DatabaseError, NotFound, error_for_status, scoped
from ._query import FindQuery, IndexQuery
from ._transport import ConnectionEngine, Content, Reply, encode_json, send
from ._url import attachment_path, db_path, doc_id_problem, doc_path

__all__ = ["BulkResults", "Database", "FileChunks"]

# A CouchDB document ETag is the quoted revision; PouchDB Server sends an Express
# ETag (W/"3a-...") instead, which this does not match.
_REV_ETAG = re.compile(r'^"(\d+-[0-9a-f]+)"$')
_FIND_PAGE_SIZE = 100
#: The name of the threads that read pages ahead (``iter_all_docs(read_ahead=True)``).
READ_AHEAD_THREAD = "couchsync-read-ahead"
# The status CouchDB gives each error name; for per-document errors inside a 200 answer.
_ERROR_STATUS = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
                 "conflict": 409}


class FileChunks:
    """A file's bytes as chunks, read as they are sent (``put_attachment``): iterated
    again, it reads the file again, so a request repeated after a lost answer resends it."""

    CHUNK = 1 << 20

    def __init__(self, path: str) -> None:
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            while chunk := handle.read(self.CHUNK):
                yield chunk


class BulkResults(list[dict[str, Any]]):
    """The per-document results of a ``_bulk_docs``, in the order sent; ``accepted``: the
    server answered 202 (stored on fewer shard copies than the write quorum asked for)."""

    accepted: bool = False

    def revs(self) -> dict[str, str]:
        """``{id: new rev}`` of the documents written."""
        return {answer["id"]: answer["rev"] for answer in self if "error" not in answer}

    def errors(self) -> dict[str, dict[str, Any]]:
        """``{id: {"id", "error", "reason"}}`` of the documents refused."""
        return {answer.get("id", ""): answer for answer in self if "error" in answer}


def _range_params(
    include_docs: bool, start_key: str | None, end_key: str | None, limit: int | None
) -> dict[str, str]:
    params = {"include_docs": "true"} if include_docs else {}
    for name, key in (("startkey", start_key), ("endkey", end_key)):
        if key is not None:
            params[name] = json.dumps(key)
    if limit is not None:
        params["limit"] = str(limit)
    return params


class Database:
    """One database on a server; every method raises DatabaseError (plus the status class)."""

    def __init__(self, name: str, connection: ConnectionEngine) -> None:
        self.name = name
        self._conn = connection
        self._path = db_path(name)

    def __repr__(self) -> str:
        return f"<Database {self.name!r} at {self._conn.url}>"

    def _send(self, method: str, path: str = "", *, params: Mapping[str, str] | None = None,
              json: Any = None, json_bytes: bytes | None = None, content: Content | None = None,
              headers: Mapping[str, str] | None = None) -> Reply:
        return send(self._conn, DatabaseError, method, self._path + path, params=params,
                    json=json, json_bytes=json_bytes, content=content, headers=headers)

    def _doc(self, doc_id: str, method: str) -> str:
        """``/{id}``; BadRequest (nothing sent) for an id that would address an endpoint."""
        problem = doc_id_problem(doc_id)
        if problem is None:
            return "/" + doc_path(doc_id)
        url = self._conn.url + self._path + "/" + quote(str(doc_id), safe="")
        raise scoped(BadRequest, DatabaseError)(
            f"illegal_docid: {problem} (not sent: {method} {url})", method=method, url=url,
            status=400, error="illegal_docid", reason=problem)

    def _head(self, doc_id: str) -> tuple[str, Reply]:
        """The current revision and the HEAD response (GET fallback where the ETag is no rev)."""
        path = self._doc(doc_id, "HEAD")
        head = self._send("HEAD", path)
        match = _REV_ETAG.match(head.headers.get("etag", ""))
        rev = match.group(1) if match else self._send("GET", path).json()["_rev"]
        return rev, head

    # -- the database itself

    def info(self) -> dict[str, Any]:
        """``GET /{db}``: document counts, sizes, update sequence. Raises NotFound if missing."""
        return self._send("GET").json_object()

    def exists(self) -> bool:
        """Whether the database exists (``HEAD /{db}``)."""
        try:
            self._send("HEAD")
        except NotFound:
            return False
        return True

    def get_security(self) -> dict[str, Any]:
        """The ``_security`` object (``{}`` when none was set)."""
        return self._send("GET", "/_security").json_object()

    def set_security(self, security: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the whole ``_security`` object; returns ``{"ok": true}``."""
        return self._send("PUT", "/_security", json=security).json_object()

    # -- single documents

    def __contains__(self, doc_id: str) -> bool:
        """Whether a live document with this id exists (False, unasked, for ``""``, ``_x``)."""
        if doc_id_problem(doc_id) is not None:
            return False
        try:
            self._send("HEAD", "/" + doc_path(doc_id))
        except NotFound:
            return False
        return True

    def add(self, doc: Mapping[str, Any]) -> tuple[str, str]:
        """Create a document (PUT with its ``_id``, else POST); ``(id, rev)``. ``doc`` is not
        modified. Raises Conflict if the id is taken."""
        if "_id" in doc:
            result = self._send("PUT", self._doc(doc["_id"], "PUT"), json=doc).json()
        else:
            result = self._send("POST", json=doc).json()
        return result["id"], result["rev"]

    def add_batch(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Create a document with ``?batch=ok`` (written later, not durable yet); server's dict."""
        return self._send("POST", params={"batch": "ok"}, json=doc).json_object()

    def update(self, doc_id: str, doc: Mapping[str, Any], rev: str = "", *,
               w: int | None = None) -> tuple[str, str]:
        """Replace the document's whole body (PUT) at ``rev``, else ``doc["_rev"]``, else the
        current one (a missing document is created); ``(id, new rev)``. Conflict if stale."""
        path = self._doc(doc_id, "PUT")
        body = {key: value for key, value in doc.items() if key != "_id"}
        rev = rev or body.get("_rev") or ""
        if not rev:
            try:
                rev, _ = self._head(doc_id)
            except NotFound:
                body.pop("_rev", None)
        if rev:
            body["_rev"] = rev
        params = None if w is None else {"w": str(w)}
        result = self._send("PUT", path, params=params, json=body).json()
        return result["id"], result["rev"]

    def delete(self, doc_id: str, rev: str = "", *, w: int | None = None) -> tuple[str, str]:
        """Delete the document at ``rev`` (default: the current one); ``(id, deletion rev)``.
        ``w`` as for ``bulk_docs``."""
        path = self._doc(doc_id, "DELETE")
        rev = rev or self._head(doc_id)[0]
        params = {"rev": rev} if w is None else {"rev": rev, "w": str(w)}
        result = self._send("DELETE", path, params=params).json()
        return result["id"], result["rev"]

    def get(self, doc_id: str, attachments: bool = False, att_encoding_info: bool = False,
            atts_since: Sequence[str] = (), conflicts: bool = False,
            deleted_conflicts: bool = False, latest: bool = False, rev: str = "",
            revs: bool = False, r: int | None = None) -> dict[str, Any]:
        """Fetch a document, sending every option given. Raises NotFound if missing or deleted.
        ``r``: how many of a cluster's copies answer (the newest wins)."""
        path = self._doc(doc_id, "GET")
        flags = {"attachments": attachments, "att_encoding_info": att_encoding_info,
                 "conflicts": conflicts, "deleted_conflicts": deleted_conflicts,
                 "latest": latest, "revs": revs}
        params = {name: "true" for name, on in flags.items() if on}
        if atts_since:
            params["atts_since"] = json.dumps(list(atts_since))
        if rev:
            params["rev"] = rev
        if r is not None:
            params["r"] = str(r)
        return self._send("GET", path, params=params).json_object()

    # -- attachments

    def put_attachment(self, doc_id: str, name: str, content: Content, *, rev: str = "",
                       content_type: str = "application/octet-stream",
                       length: int | None = None, w: int | None = None) -> str:
        """Store attachment ``name`` of the document at ``rev`` (none: a new document);
        the document's new revision. ``content``: bytes, or chunks (``FileChunks``: a
        file streamed, never held whole) of ``length`` bytes. Conflict if ``rev`` is stale."""
        headers = {"Content-Type": content_type}
        if length is not None:  # else httpx sends chunks of unknown total
            headers["Content-Length"] = str(length)
        params = {"rev": rev} if rev else {}
        if w is not None:
            params["w"] = str(w)
        answer = self._send("PUT", self._attachment(doc_id, name, "PUT"), params=params,
                            content=content, headers=headers).json()
        return str(answer["rev"])

    def get_attachment(self, doc_id: str, name: str, *, rev: str = "") -> bytes:
        """The bytes of attachment ``name`` (as stored: gzipped ones are decoded). Raises
        NotFound if the document or the attachment is missing."""
        return self._send("GET", self._attachment(doc_id, name, "GET"),
                          params={"rev": rev} if rev else None).content

    def delete_attachment(self, doc_id: str, name: str, *, rev: str) -> str:
        """Remove attachment ``name`` from the document at ``rev``; its new revision."""
        answer = self._send("DELETE", self._attachment(doc_id, name, "DELETE"),
                            params={"rev": rev}).json()
        return str(answer["rev"])

    def _attachment(self, doc_id: str, name: str, method: str) -> str:
        return self._doc(doc_id, method) + "/" + attachment_path(name)

    def doc_info(self, doc_id: str) -> dict[str, Any]:
        """``{"rev", "size", "date"}`` from a HEAD request: the true current rev on any server."""
        rev, head = self._head(doc_id)
        return {"rev": rev, "size": int(head.headers.get("content-length", 0)),
                "date": head.headers.get("date", "")}

    # -- many documents

    def get_many(self, ids: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
        """Fetch ``[{"id": ...}, ...]`` in one ``_bulk_get``; the documents in the order asked,
        ``None`` for a missing or deleted one. Other per-document errors raise by their status."""
        if not ids:
            return []
        path = "/_bulk_get"
        response = self._send("POST", path, json={"docs": list(ids)})
        docs: list[dict[str, Any] | None] = []
        for result in response.json()["results"]:
            entry = result["docs"][0]  # without open_revs there is one entry per id
            error = entry.get("error")
            if error and error.get("error") != "not_found":
                raise error_for_status(
                    _ERROR_STATUS.get(str(error.get("error")), 500),
                    {"error": error.get("error"),
                     "reason": f"{error.get('reason')} (document {result.get('id')!r})"},
                    method="POST", url=self._conn.url + self._path + path, scope=DatabaseError)
            doc = entry.get("ok")  # PouchDB Server answers {} for a missing id
            docs.append(None if doc is None or doc.get("_deleted") else doc)
        return docs

    def all_docs(self, keys: Sequence[str] | None = None, *, include_docs: bool = False,
                 start_key: str | None = None, end_key: str | None = None, limit: int | None = None,
                 conflicts: bool = False) -> list[dict[str, Any]]:
        """``_all_docs`` rows as the server returns them (one request, not paged); with
        ``keys`` (POST) in key order, a missing key as ``{"key", "error": "not_found"}``."""
        params = _range_params(include_docs, start_key, end_key, limit)
        if conflicts:
            params["conflicts"] = "true"
        if keys is None:
            response = self._send("GET", "/_all_docs", params=params)
        else:
            response = self._send("POST", "/_all_docs", params=params, json={"keys": list(keys)})
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    def iter_all_docs(self, *, include_docs: bool = False, start_key: str | None = None,
                      end_key: str | None = None, page_size: int = 1000,
                      read_ahead: bool = False) -> Iterator[dict[str, Any]]:
        """Every ``_all_docs`` row in id order, ``page_size`` (at least 1) rows per request;
        ``read_ahead``: each next page is asked for in a thread (docs/client.md). Iterate to
        the end or ``close()`` the iterator."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        # Ask for one row more than a page: its key starts the next page, no skip needed.
        params = _range_params(include_docs, start_key, end_key, page_size + 1)
        worker = ThreadPoolExecutor(1, thread_name_prefix=READ_AHEAD_THREAD) if read_ahead else None
        return _Pages(self._all_docs_page, params, page_size, worker)

    def _all_docs_page(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._send("GET", "/_all_docs", params=params).json()["rows"]
        return rows

    def changes(self, since: str = "0", *, limit: int | None = None) -> dict[str, Any]:
        """One page of ``_changes`` after ``since`` (a sequence as the server gave it):
        ``results`` (``id``, ``seq``, ``changes``, maybe ``deleted``) and ``last_seq``."""
        params = {"since": since, **({"limit": str(limit)} if limit is not None else {})}
        return self._send("GET", "/_changes", params=params).json_object()

    def list_documents(self) -> list[dict[str, Any]]:
        """All ``_all_docs`` rows (``id``, ``key``, ``value.rev``), fetched page by page."""
        return list(self.iter_all_docs())

    def get_all_docs(self) -> Iterator[dict[str, Any]]:
        """Every document (design documents included), fetched page by page with include_docs."""
        for row in self.iter_all_docs(include_docs=True):
            yield row["doc"]

    def bulk_docs(self, docs: Sequence[Mapping[str, Any] | bytes], *, new_edits: bool = True,
                  w: int | None = None) -> BulkResults:
        """Write many documents (dicts, or bytes of a JSON object, sent as they are) in one
        ``_bulk_docs``; per-document failures are in the results, never raised. ``w``: shard
        copies that must store each write before the answer (see ``BulkResults.accepted``)."""
        items = [doc if isinstance(doc, bytes) else encode_json(doc) for doc in docs]
        tail = b"]}" if new_edits else b'],"new_edits":false}'
        body = b'{"docs":[' + b",".join(items) + tail
        params = None if w is None else {"w": str(w)}
        reply = self._send("POST", "/_bulk_docs", params=params, json_bytes=body)
        results = BulkResults(reply.json())
        results.accepted = reply.status_code == 202
        return results

    def purge(self, docinfo: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """Purge ``{id: [leaf revs]}`` for good; ``{"purge_seq", "purged"}``. (CouchDB only.)"""
        body = {doc_id: list(revs) for doc_id, revs in docinfo.items()}
        return self._send("POST", "/_purge", json=body).json_object()

    # -- Mango

    def find(self, query: FindQuery | Mapping[str, Any]) -> dict[str, Any]:
        """Run one ``_find`` request; the server's response (``docs``, maybe ``bookmark``)."""
        body = query.to_dict() if isinstance(query, FindQuery) else dict(query)
        return self._send("POST", "/_find", json=body).json_object()

    def iter_find(self, query: FindQuery | Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every document matching ``query``, page by page (its ``limit`` is the page size),
        following the bookmark, or ``skip`` where the server gives none."""
        body = query.to_dict() if isinstance(query, FindQuery) else dict(query)
        page_size = body.setdefault("limit", _FIND_PAGE_SIZE)
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"the query's limit (the page size) must be at least 1: {page_size!r}")
        skip = body.get("skip", 0)
        while True:
            result = self._send("POST", "/_find", json=body).json()
            docs = result["docs"]
            yield from docs
            if len(docs) < page_size:
                return
            if result.get("bookmark"):
                body["bookmark"] = result["bookmark"]
                body.pop("skip", None)
            else:
                skip += len(docs)
                body["skip"] = skip

    def set_index(self, index: IndexQuery, *, w: int | None = None) -> dict[str, Any]:
        """Create a Mango index; ``{"result": "created"|"exists", "id", "name"}``. ``w``:
        shard copies its design doc is written to before the answer (CouchDB's default 2)."""
        body = index.to_dict() if w is None else {**index.to_dict(), "w": w}
        return self._send("POST", "/_index", json=body).json_object()

    def get_indexes(self) -> dict[str, Any]:
        """``{"total_rows", "indexes"}``, the special ``_all_docs`` index included."""
        return self._send("GET", "/_index").json_object()

    # -- design documents and views

    def design_info(self, design: str) -> dict[str, Any]:
        """``GET /{db}/_design/{design}/_info``: the view index's ``signature``, ``sizes``,
        ``update_seq``, ``updater_running`` (and on CouchDB 3 ``updates_pending``)."""
        path = self._doc("_design/" + design.removeprefix("_design/"), "GET") + "/_info"
        return self._send("GET", path).json_object()

    def query_view(self, design: str, view: str, **params: Any) -> dict[str, Any]:
        """``GET /{db}/_design/{design}/_view/{view}``: ``{"rows", ...}``. Parameters
        are sent JSON-encoded (``key="x"``, ``limit=0``, ``update="lazy"``)."""
        path = (self._doc("_design/" + design.removeprefix("_design/"), "GET")
                + "/_view/" + quote(view, safe=""))
        query = {key: json.dumps(value) if not isinstance(value, str) or key.endswith("key")
                 else value for key, value in params.items()}
        return self._send("GET", path, params=query).json_object()

    # -- shards (CouchDB)

    def shard_of(self, doc_id: str) -> str:
        """``GET /{db}/_shards/{doc_id}``: the shard range that holds (or would hold)
        ``doc_id``, such as ``"00000000-7fffffff"``."""
        range_: str = self._send("GET", "/_shards/" + quote(doc_id, safe="")).json()["range"]
        return range_

    def shard_copies(self) -> dict[str, dict[str, Database]]:
        """Every copy of every shard range, ``{range: {node: handle}}`` (server admins only);
        a handle addresses that one copy through ``/_node/{node}/``."""
        shard_map = send(self._conn, DatabaseError, "GET",
                         "/_node/_local/_dbs" + self._path).json()
        suffix = bytes(shard_map["shard_suffix"]).decode()
        copies: dict[str, dict[str, Database]] = {}
        for range_, nodes in shard_map["by_range"].items():
            for node in nodes:
                copy = Database(f"shards/{range_}/{self.name}{suffix}", self._conn)
                copy._path = f"/_node/{quote(node, safe='')}{copy._path}"
                copies.setdefault(range_, {})[node] = copy
        return copies

    def view_cleanup(self) -> dict[str, Any]:
        """``POST /{db}/_view_cleanup``: remove index files no design doc uses any more."""
        return self._send("POST", "/_view_cleanup", json={}).json_object()

    def delete_index(self, design: str, name: str, *, w: int | None = None) -> dict[str, Any]:
        """Delete the json index ``name`` of design doc ``design`` (with or without
        ``_design/``); its id travels as one encoded segment. ``w`` as for ``set_index``."""
        ddoc = quote("_design/" + design.removeprefix("_design/"), safe="")
        path = f"/_index/{ddoc}/json/{quote(name, safe='')}"
        params = None if w is None else {"w": str(w)}
        return self._send("DELETE", path, params=params).json_object()


class _Pages(Iterator[dict[str, Any]]):
    """``_all_docs`` rows page by page; a ``worker`` asks for each next page ahead."""

    def __init__(self, fetch: Callable[[Mapping[str, str]], list[dict[str, Any]]],
                 params: dict[str, str], page_size: int, worker: ThreadPoolExecutor | None,
                 ) -> None:
        self._fetch = fetch
        self._params = params
        self._page_size = page_size
        self._worker = worker
        self._next: Callable[[], list[dict[str, Any]]] | None = self._ask()
        self._rows: Iterator[dict[str, Any]] = iter(())

    def _ask(self) -> Callable[[], list[dict[str, Any]]]:
        params = dict(self._params)
        if self._worker is None:
            return lambda: self._fetch(params)
        return self._worker.submit(self._fetch, params).result

    def __next__(self) -> dict[str, Any]:
        for row in self._rows:
            return row
        if self._next is None:
            raise StopIteration
        try:
            rows = self._next()
        except BaseException:
            self.close()
            raise
        if len(rows) <= self._page_size:
            self.close()
        else:
            self._params["startkey"] = json.dumps(rows[self._page_size]["key"])
            self._next = self._ask()
            rows = rows[:self._page_size]
        self._rows = iter(rows)
        return next(self)

    def close(self) -> None:
        """Ask for no more pages; a worker ends once a page under way is answered."""
        self._next = None
        if self._worker is not None:
            self._worker.shutdown(wait=False)
