"""Attachments compared with no I/O: a declared file (``AttachmentSpec.declared``) against
the stub the server returns with a document, by digest and length, never by content.

CouchDB stores compressible types (``[attachments] compressible_types``) gzipped, and its
stub's digest is then the gzip's MD5, not the file's: the ledger (``ATTACHMENTS_DDOC``)
remembers, for each attachment couchsync wrote, the stub digest the server gave it and
the file digest it came from, so that such a stub is matched without reading a byte.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from couchsync.plan._model import Action, Step

#: The ledger: ``{"written": {doc id: {name: [stub digest, file digest]}}}``, a stub digest
#: "" while written ahead (the attachment may have been written: it is couchsync's).
#: A design doc, as the migrations' record: read with the manifests' design docs (a plan
#: asks nothing more), and it replicates with the stubs it explains.
ATTACHMENTS_DDOC = "_design/couchsync-attachments"


def same_attachment(wanted: Mapping[str, Any], stub: Mapping[str, Any],
                    identity: Mapping[str, str]) -> bool:
    """Whether the server's ``stub`` holds the declared ``wanted`` (``identity``: file
    digests of stub digests, from the ledger or read)."""
    digest = stub.get("digest")
    return bool(stub.get("content_type") == wanted["content_type"]
                and stub.get("length") == wanted["length"]
                and (digest == wanted["digest"]
                     or identity.get(str(digest)) == wanted["digest"]))


def merged_attachments(wanted: Mapping[str, Any], stubs: Mapping[str, Any],
                       owned: Collection[str], identity: Mapping[str, str]
                       ) -> tuple[dict[str, Any], bool]:
    """The ``_attachments`` a write of the document sends, and whether it changes any:
    each declared file not on the server as declared (its ``declared`` entry: apply
    sends it), the server's stub for the rest; an undeclared stub couchsync wrote
    (``owned``) is left out (removed), others' are kept. An entry of ``wanted`` without
    ``file`` is a stub an earlier plan kept: the server's current one is kept."""
    written: dict[str, Any] = {}
    changed = False
    for name, want in wanted.items():
        stub = stubs.get(name)
        if "file" not in want:
            if stub is not None:
                written[name] = stub
        elif stub is not None and same_attachment(want, stub, identity):
            written[name] = stub
        else:
            written[name] = dict(want)
            changed = True
    for name, stub in stubs.items():
        if name in wanted:
            continue
        if name in owned:
            changed = True
        else:
            written[name] = stub
    return written, changed


def identity_digests(ledger: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{stub digest: file digest}`` of every attachment the ledger knows."""
    return {digest: file_digest for entry in ledger.values()
            for digest, file_digest in entry.values() if digest}


def unresolved(wanted: Mapping[str, Any], stubs: Mapping[str, Any],
               identity: Mapping[str, str]) -> Iterator[str]:
    """The declared attachments whose stub could hold the file and whose digest nothing
    explains (the ledger was lost, or another tool uploaded the same file): the reader
    reads those, the only attachment bytes a plan ever reads."""
    for name, want in wanted.items():
        stub = stubs.get(name)
        if ("file" in want and stub is not None
                and stub.get("content_type") == want["content_type"]
                and stub.get("length") == want["length"]
                and stub.get("digest") != want["digest"]
                and str(stub.get("digest")) not in identity):
            yield name


def file_attachments(step: Step) -> list[tuple[str, dict[str, Any]]]:
    """The attachments ``step`` sends from files, by name; none for a step that writes a
    manifest document as loaded (``Step.spec``): one with attachments is planned as a
    dict, and decoding each seed document again here cost a 10,000-document apply
    ~0.5 s of CPU (bench/RESULTS.md, issue 20's table, 826ed08)."""
    if step.action is Action.DELETE or step.spec is not None:
        return []
    after = step.after
    if not isinstance(after, dict):
        return []
    return [(name, att) for name, att in (after.get("_attachments") or {}).items()
            if "file" in att]


def sent_files(step: Step) -> dict[str, str]:
    """``{name: file digest}`` of the attachments ``step`` sends from files."""
    return {name: att["digest"] for name, att in file_attachments(step)}


def dropped(step: Step) -> set[str]:
    """The attachments ``step`` removes (stubs it had, left out of what it writes)."""
    before = (step.before or {}).get("_attachments") or {}
    if not before or step.action is Action.DELETE or not isinstance(after := step.after, dict):
        return set()
    return set(before) - set(after.get("_attachments") or {})
