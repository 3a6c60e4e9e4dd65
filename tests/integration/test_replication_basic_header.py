"""A replication endpoint's ``Authorization: Basic ...`` header that is not base64 of
``user:password`` is a validate error (issue 19): the rule held against CouchDB's own
answers. CouchDB refuses some such documents (``forbidden: {error,badarg}``) and accepts
others but drops their credentials (couch_replicator_utils:decode_basic_creds), so the
replication runs without them; couchsync refuses both."""

from __future__ import annotations

import uuid

import httpx
import pytest

from couchsync.manifest._server import basic_header_problem


@pytest.mark.couchdb_only("the rule is CouchDB 3's _replicator validation; PouchDB Server "
                          "has none")
@pytest.mark.parametrize(("authorization", "server_refuses", "refused"), [
    ("Basic repl-pw-1234", True, True), ("Basic ab!c", True, True), ("Basic ab=c", True, True),
    ("Basic YQ===", True, True), ("Basic x-_y", True, True),
    # Accepted by CouchDB, but its credentials are dropped (missing padding, no ":")
    # and the replication runs without them: couchsync refuses these too.
    ("Basic YTpiYw", False, True), ("basic x!", False, True), ("Basic dG9rZW4=", False, True),
    ("Basic ", False, True),
    # Base64 of user:password, or not Basic: fine.
    ("Basic YTpiYw==", False, False), ("BASIC YTpi", False, False),
    ("Basic YT pi", False, False), ("Bearer repl-pw-1234", False, False), ("Basic", False, False),
])
def test_the_basic_header_rule_refuses_what_the_server_refuses(
    couch_url: str, authorization: str, server_refuses: bool, refused: bool,
) -> None:
    doc_id = f"cstest-{uuid.uuid4().hex[:12]}"
    endpoint = {"url": "http://127.0.0.1:9/nowhere", "headers": {"Authorization": authorization}}
    answer = httpx.put(f"{couch_url}/_replicator/{doc_id}", timeout=30, json={
        "source": "http://127.0.0.1:9/orders", "target": endpoint})
    if answer.status_code in (201, 202):
        httpx.delete(f"{couch_url}/_replicator/{doc_id}",
                     params={"rev": answer.json()["rev"]}, timeout=30)
    else:
        assert answer.status_code == 403, answer.text
    assert (answer.status_code == 403) == server_refuses, answer.text
    assert (basic_header_problem("target", endpoint) is not None) == refused
