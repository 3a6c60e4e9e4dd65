"""Apply's retries of refusals that a cluster gives for a moment, with a fake server.

An httpx ``MockTransport`` stands in for a CouchDB cluster here: a shard copy not yet
told of a revision (``missing_stub``, a whole ``_bulk_docs`` refused with 412 although
the other copies stored it) cannot be produced on demand by a real server; the
integration suite meets it only by chance.
"""

from __future__ import annotations

from typing import Any

import httpx

from couchsync.apply._documents import write_batch as _write_batch
from couchsync.client import Client
from couchsync.plan import Action, Step, StepKind

STUB = {"hello.txt": {"content_type": "text/plain", "stub": True, "length": 5, "revpos": 1,
                      "digest": "md5-XUFAKrxLKna5cZ2REBfFkg=="}}
UPDATE = Step(Action.UPDATE, StepKind.DOCUMENT, "shop", "a", before={"v": 0, "_attachments": STUB},
              after={"v": 1, "_attachments": STUB}, rev="1-a")
MISSING_STUB = httpx.Response(412, json={"error": "missing_stub",
                                         "reason": "Invalid attachment stub in a for hello.txt"})


def server(writes: list[httpx.Response], live: list[dict[str, Any]]) -> tuple[
        httpx.MockTransport, list[str]]:
    """Answers ``_bulk_docs`` with ``writes`` in turn, reads of ``a`` with ``live`` in turn."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/shop/_bulk_docs":
            return writes.pop(0)
        if request.url.path == "/shop/_all_docs":
            doc = live.pop(0)
            return httpx.Response(200, json={"rows": [
                {"id": "a", "key": "a", "value": {"rev": doc["_rev"]}, "doc": doc}]})
        return httpx.Response(404, json={"error": "not_found", "reason": "missing"})

    return httpx.MockTransport(handler), seen


def test_a_missing_stub_refusal_is_retried_once_the_copy_has_caught_up() -> None:
    transport, seen = server(
        [MISSING_STUB, httpx.Response(201, json=[{"ok": True, "id": "a", "rev": "2-b"}])],
        [{"_id": "a", "_rev": "1-a", "v": 0, "_attachments": STUB}])  # read off a lagging copy
    with Client("http://couch.test", transport=transport) as client:
        [result] = _write_batch(client.database("shop"), [UPDATE], w=3)
    assert (result.ok, result.rev, result.step) == (True, "2-b", UPDATE)
    assert seen == ["POST /shop/_bulk_docs", "POST /shop/_all_docs", "POST /shop/_bulk_docs"]


def test_a_missing_stub_refusal_whose_update_was_stored_is_done() -> None:
    transport, seen = server(
        [MISSING_STUB], [{"_id": "a", "_rev": "2-b", "v": 1, "_attachments": STUB}])
    with Client("http://couch.test", transport=transport) as client:
        [result] = _write_batch(client.database("shop"), [UPDATE], w=3)
    assert (result.ok, result.rev) == (True, "2-b")
    assert seen == ["POST /shop/_bulk_docs", "POST /shop/_all_docs"]


def test_a_missing_stub_that_stays_fails_with_the_reason_after_the_retries() -> None:
    lagging = {"_id": "a", "_rev": "1-a", "v": 0, "_attachments": STUB}
    transport, _ = server([MISSING_STUB] * 4, [dict(lagging) for _ in range(3)])
    with Client("http://couch.test", transport=transport) as client:
        [result] = _write_batch(client.database("shop"), [UPDATE], w=3)
    assert not result.ok
    assert result.error == ("missing_stub: Invalid attachment stub in a for hello.txt "
                            "(still so after 3 retries)")


def test_other_whole_request_refusals_are_not_retried() -> None:
    transport, seen = server(
        [httpx.Response(403, json={"error": "forbidden", "reason": "no"})], [])
    with Client("http://couch.test", transport=transport) as client:
        [result] = _write_batch(client.database("shop"), [UPDATE], w=3)
    assert (result.ok, result.error) == (False, "forbidden: no")
    assert seen == ["POST /shop/_bulk_docs"]
