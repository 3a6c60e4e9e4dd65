"""A hostile world: the server's size limits, and values on it Python cannot round-trip.

The limits are lowered on the server under test for the test's duration (on every
node of a cluster) and put back afterwards. CouchDB measures ``[couchdb]
max_document_size`` against a document's body; PouchDB Server uses the same
setting as its limit on a whole request body.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import run

from couchsync.apply import apply_plan
from couchsync.client import Client
from couchsync.export import export_manifest
from couchsync.manifest import DesiredState
from couchsync.plan import Plan
from couchsync.plan._unreadable import UnreadableDocument
from couchsync.read import load_and_plan
from couchsync.read._limits import couchdb_size, read_limits


@contextmanager
def server_setting(url: str, section: str, key: str, value: int) -> Iterator[None]:
    """``[section] key = value`` on every node (PouchDB Server: its one config), then
    as it was."""
    with httpx.Client(base_url=url, timeout=30) as http:
        if "couchdb" in http.get("/").json():
            nodes = http.get("/_membership").json()["cluster_nodes"]
            paths = [f"/_node/{node}/_config/{section}/{key}" for node in nodes]
        else:
            paths = [f"/_config/{section}/{key}"]
        old = {path: http.get(path) for path in paths}
        for path in paths:
            http.put(path, json=str(value)).raise_for_status()
        try:
            yield
        finally:
            for path, before in old.items():
                if before.status_code == 200:
                    http.put(path, json=before.json()).raise_for_status()
                else:
                    http.delete(path)


def write_manifest(tmp_path: Path, databases: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False))
    return path


def plan_of(client: Client, path: Path) -> tuple[DesiredState, Plan]:
    return load_and_plan(client, [path], environ={})


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``couchsync ARGS`` run for real; whatever its exit code, it ends without a
    traceback (a refusal is a message, not a crash)."""
    done = run(url, *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def revisions(url: str, db: str, ids: Iterable[str]) -> dict[str, str | None]:
    """The revision of each of ``ids`` in ``db`` (None: there is none), read with every
    shard copy answering (r = n): on a cluster, a write just acknowledged by a quorum
    may not have reached every copy yet."""
    with httpx.Client(base_url=url, timeout=60) as http:
        copies = str((http.get(f"/{db}").json().get("cluster") or {}).get("n", 1))
        answers = {doc_id: http.head(f"/{db}/{doc_id}", params={"r": copies})
                   for doc_id in ids}  # the revision in its ETag: no body to decode
    assert all(answer.status_code in (200, 404) for answer in answers.values()), answers
    return {doc_id: answer.headers["ETag"].strip('"') if answer.status_code == 200 else None
            for doc_id, answer in answers.items()}


def put_raw(url: str, db: str, doc_id: str, body: bytes) -> httpx.Response:
    """Write a document from raw JSON bytes: values Python's json would never write.
    On every shard copy (w = n): a plan right after may read any copy."""
    with httpx.Client(base_url=url, timeout=60) as http:
        http.put(f"/{db}")
        copies = (http.get(f"/{db}").json().get("cluster") or {}).get("n", 1)
        return http.put(f"/{db}/{doc_id}", content=body, params={"w": str(copies)},
                        headers={"Content-Type": "application/json"})


# -- size limits


def test_limits_are_read_from_the_server(client: Client, couch_url: str,
                                         is_couchdb: bool) -> None:
    before = read_limits(client)
    with server_setting(couch_url, "couchdb", "max_document_size", 123_456):
        lowered = read_limits(client)
    if is_couchdb:
        assert (before.document, lowered.document) == (8_000_000, 123_456)
        assert before.request == lowered.request == 4_294_967_296
    else:  # PouchDB Server: the setting bounds the whole request
        assert (before.request, lowered.request) == (4 * 1024**3, 123_456)
        assert before.document is lowered.document is None


def test_batches_stay_within_the_request_limit(client: Client, couch_url: str,
                                               db_name: str, tmp_path: Path,
                                               is_couchdb: bool) -> None:
    # 40 documents of ~2 KB: one batch of 80 KB, over a 30 KB request limit.
    docs = [{"_id": f"d{i:02}", "text": "x" * 2000} for i in range(40)]
    path = write_manifest(tmp_path, {db_name: {"documents": docs}})
    section, key = (("chttpd", "max_http_request_size") if is_couchdb
                    else ("couchdb", "max_document_size"))
    with server_setting(couch_url, section, key, 30_000):
        desired, made = plan_of(client, path)
        assert not made.errors
        result = apply_plan(client, made, desired)
    assert result.ok and result.counts()["create"] == 41  # the database and 40 documents
    assert client.database(db_name).info()["doc_count"] == 40


def test_a_document_over_the_limit_is_a_plan_error_naming_it(
        client: Client, couch_url: str, db_name_factory: Callable[[], str],
        tmp_path: Path) -> None:
    too_big, fine = db_name_factory(), db_name_factory()
    path = write_manifest(tmp_path, {
        too_big: {"documents": [{"_id": "small", "v": 1}, {"_id": "big", "text": "x" * 3000}]},
        fine: {"documents": [{"_id": "small", "v": 1}]},
    })
    with server_setting(couch_url, "couchdb", "max_document_size", 2000):
        desired, made = plan_of(client, path)
        assert set(made.errors) == {too_big}
        reason = made.errors[too_big]
        assert f"db:{too_big}/doc:big ({path}:" in reason and "doc:small" not in reason
        assert "max_document_size" in reason
        assert [step.address for step in made.steps] == [f"db:{fine}",
                                                         f"db:{fine}/doc:small"]
        assert apply_plan(client, made, desired).ok
    assert client.database(fine).get("small")["v"] == 1
    with httpx.Client(timeout=30) as http:  # nothing was written to the refused database
        assert http.get(f"{couch_url}/{too_big}").status_code == 404


#: Document bodies (padded with "pad") whose size CouchDB counts its own way: strings
#: decoded (escapes count one byte, non-ASCII its UTF-8), integers by digits through a
#: double's log10, floats estimated, not printed. No float is integral: couchsync
#: sends those as the integers they equal (canonical JSON), and so measures them.
SHAPES: dict[str, dict[str, Any]] = {
    "ascii": {},
    "multibyte": {"é€😀": ["é", "€", "😀", "ü" * 10], "escapes": "\n\t\"\\\u0001/"},
    "numbers": {"i": [0, 7, -12, 9999, 10_000, 123_456_789, 10**16 - 1, 10**20, -10**18,
                      10**150],
                "f": [1.5, -0.5, 0.25, 1e-5, 1e-50, 1e-200, 1e-305, 12_345_678_901.5]},
    "structure": {"o": {}, "a": [], "n": None, "t": True, "f": False,
                  "deep": [[[{"k": [{}]}]]]},
}
LIMIT = 2000


def padded(extra: dict[str, Any], over: int = 0) -> dict[str, Any]:
    """``extra`` with a "pad" that makes it LIMIT + ``over`` bytes as couchsync
    measures a body the CouchDB way (``couchdb_size``)."""
    body = {**extra, "pad": ""}
    body["pad"] = "x" * (LIMIT - couchdb_size(body) + over)
    assert couchdb_size(body) == LIMIT + over
    return body


def design_doc(over: int = 0) -> dict[str, Any]:
    """A design doc of LIMIT + ``over`` bytes (``couchdb_size``): its map function
    padded with a comment."""
    def body(pad: int) -> dict[str, Any]:
        return {"views": {"v": {"map": f"function (doc) {{ /* {'x' * pad} */ "
                                       "emit(doc._id, null); }"}}}
    made = body(LIMIT + over - couchdb_size(body(0)))
    assert couchdb_size(made) == LIMIT + over
    return made


@pytest.mark.couchdb_only("PouchDB Server bounds the request, not the document body")
def test_the_size_check_is_couchdbs_own_to_the_byte(couch_url: str, db_name_factory:
                                                    Callable[[], str],
                                                    tmp_path: Path) -> None:
    """couchsync refuses at plan time exactly the documents CouchDB would refuse: what
    couchsync measures at the limit CouchDB stores, a byte more it refuses (413), for
    each kind of value; ``couchsync apply`` writes a database of documents at the limit,
    and a plan with any one byte over names each such document (id, file and line,
    size against the limit), exits 1, and ``apply`` writes nothing to that database."""
    probe, db = db_name_factory(), db_name_factory()
    with server_setting(couch_url, "couchdb", "max_document_size", LIMIT):
        # CouchDB's own answer at couchsync's measure of its limit, and a byte over.
        for name, extra in SHAPES.items():
            at_limit, over = padded(extra), padded(extra, over=1)
            assert put_raw(couch_url, probe, f"{name}-at", json.dumps(at_limit).encode()
                           ).status_code == 201, f"CouchDB refused {name} at the limit"
            assert put_raw(couch_url, probe, f"{name}-over", json.dumps(over).encode()
                           ).status_code == 413, f"CouchDB stored {name} over the limit"

        def manifest(over: int, extra_docs: list[dict[str, Any]]) -> Path:
            docs = [{"_id": name, **padded(extra, over)} for name, extra in SHAPES.items()]
            return write_manifest(tmp_path, {db: {"design_docs": {"pad": design_doc(over)},
                                                  "documents": docs + extra_docs}})

        path = manifest(0, [])
        applied = cli(couch_url, "apply", str(path), "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        ids = [*SHAPES, "_design/pad", "small"]
        stored = revisions(couch_url, db, ids)
        assert [doc_id for doc_id, rev in stored.items() if rev is None] == ["small"]
        replanned = cli(couch_url, "plan", str(path))
        assert (replanned.returncode, "No changes" in replanned.stdout) == (0, True), \
            replanned.stdout + replanned.stderr

        path = manifest(1, [{"_id": "small", "v": 1}])
        lines = path.read_text().splitlines()
        planned = cli(couch_url, "plan", str(path))
        assert planned.returncode == 1, planned.stdout + planned.stderr
        said = planned.stdout + planned.stderr
        assert "5 documents larger than the server accepts" in said, said
        for address, key in [*((f"doc:{name}", f"_id: {name}") for name in SHAPES),
                             ("design:pad", "pad:")]:
            line = next(i for i, text in enumerate(lines, 1) if text.strip(" -") == key)
            assert (f"db:{db}/{address} ({path}:{line}:" in said
                    and "is 2,001 bytes as CouchDB measures a document body, over "
                        "[couchdb] max_document_size = 2,000" in said), (address, said)
        assert "doc:small" not in said
        refused = cli(couch_url, "apply", str(path), "--yes")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "db:" + db + "/doc:ascii (" in refused.stdout + refused.stderr
    assert revisions(couch_url, db, ids) == stored  # nothing written: no update, no "small"


def test_an_update_keeps_attachments_larger_than_the_limit(
        client: Client, couch_url: str, db_name: str, tmp_path: Path) -> None:
    # Manifests declare no attachments; an update carries the live stubs, not the data.
    data = base64.b64encode(b"y" * 6000).decode()
    body = {"v": 1, "_attachments": {"y.txt": {"content_type": "text/plain", "data": data}}}
    assert put_raw(couch_url, db_name, "a", json.dumps(body).encode()).status_code == 201
    path = write_manifest(tmp_path, {db_name: {"documents": [{"_id": "a", "v": 2}]}})
    with server_setting(couch_url, "couchdb", "max_document_size", 2000):
        desired, made = plan_of(client, path)
        assert [step.address for step in made.steps] == [f"db:{db_name}/doc:a"]
        assert apply_plan(client, made, desired).ok
    doc = client.database(db_name).get("a")
    assert doc["v"] == 2 and doc["_attachments"]["y.txt"]["length"] == 6000


# -- values the server holds that Python cannot round-trip


def test_an_integer_beyond_a_double_compares_as_the_double(
        client: Client, couch_url: str, db_name: str, tmp_path: Path) -> None:
    assert put_raw(couch_url, db_name, "big",
                   b'{"n":123456789012345678901234567890}').status_code == 201
    path = write_manifest(tmp_path, {db_name: {"documents": [
        {"_id": "big", "n": 123456789012345678901234567890}]}})
    _, made = plan_of(client, path)
    assert made.is_empty and not made.errors
    path.write_text(path.read_text().replace("123456789012345678901234567890", "1"))
    _, made = plan_of(client, path)
    assert [step.address for step in made.steps] == [f"db:{db_name}/doc:big"]
    exported = export_manifest(client, [db_name], with_docs=True)
    (tmp_path / "exported.yaml").write_text(exported)
    _, again = plan_of(client, tmp_path / "exported.yaml")
    assert again.is_empty and not again.errors


def refused_before_the_server(url: str, tmp_path: Path, db: str, yaml_values: list[str],
                              json_values: list[str], why: tuple[str, str]) -> None:
    """A manifest whose documents hold ``yaml_values`` (YAML) and ``json_values`` (in a
    JSON Lines file it seeds from) among valid ones: ``couchsync plan`` and ``apply``
    exit 1 naming each by file, line and why (``why``: YAML's words, JSON's), and
    nothing reaches the server."""
    lines = ["version: 1", "databases:", f"  {db}:", "    documents_from: [seed.jsonl]",
             "    documents:", "      - {_id: fine, v: 1}"]
    lines += [f"      - {{_id: y{i}, v: {value}}}" for i, value in enumerate(yaml_values)]
    path = tmp_path / "refused.yaml"
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "seed.jsonl").write_text("".join(
        f'{{"_id": "j{i}", "v": {value}}}\n' for i, value in enumerate(["1", *json_values])))
    for command in (["plan"], ["apply", "--yes"]):
        done = cli(url, *command, str(path))
        assert done.returncode == 1, done.stdout + done.stderr
        named = dict(line.split(": ", 1) for line in done.stderr.splitlines()
                     if line.startswith(str(tmp_path)))
        column = len("      - {_id: yN, v: ") + 1
        expected = {**{f"{path}:{7 + i}:{column}": why[0] for i in range(len(yaml_values))},
                    **{f"{tmp_path / 'seed.jsonl'}:{2 + i}:1": why[1]
                       for i in range(len(json_values))}}
        assert set(named) == set(expected), done.stderr
        assert all(expected[where] in message for where, message in named.items()), \
            done.stderr
        assert f"{len(named)} problems in manifests" in done.stderr
    assert httpx.get(f"{url}/{db}", timeout=30).status_code == 404


def test_a_number_beyond_a_double_reaches_neither_couchsync_nor_the_server(
        client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        is_couchdb: bool) -> None:
    """From the server: CouchDB refuses one (400), PouchDB Server stores it as null,
    which couchsync plans as null. From a manifest: couchsync refuses it, naming where,
    before anything is sent (CouchDB would refuse it mid-apply, PouchDB Server would
    store a null)."""
    on_server, declared = db_name_factory(), db_name_factory()
    refused_before_the_server(couch_url, tmp_path, declared,
                              ["1.0e+400", "-.inf"], ["1e400", "-1e400"],
                              ("is not a number JSON can hold",
                               "NaN and Infinity are not valid JSON numbers"))
    answer = put_raw(couch_url, on_server, "inf", b'{"n":1e400}')
    if is_couchdb:  # refused: CouchDB never holds it
        assert answer.status_code == 400
        return
    assert answer.status_code == 201  # PouchDB Server stores it as null
    path = write_manifest(tmp_path, {on_server: {"documents": [{"_id": "inf", "n": 1}]}})
    _, made = plan_of(client, path)
    assert [step.before for step in made.steps] == [{"n": None}]


def test_a_lone_surrogate_is_refused_in_a_manifest_and_named_on_the_server(
        client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        is_couchdb: bool) -> None:
    """A manifest's lone surrogate (a "\\ud800" escape, YAML or JSON) is refused before
    the server, naming where; a pair of escapes is the one character it encodes, written
    as such. On the server: CouchDB refuses one ("invalid UTF-8 JSON"); PouchDB Server
    stores it, and couchsync names that document instead of crashing."""
    odd, fine, declared, pairs = (db_name_factory() for _ in range(4))
    refused_before_the_server(couch_url, tmp_path, declared,
                              ['"x\\ud800y"', '"\\udfff"'], ['"x\\ud800y"'],
                              ("is a lone UTF-16 surrogate",) * 2)
    path = tmp_path / "pairs.yaml"
    path.write_text(f'version: 1\ndatabases:\n  {pairs}:\n    documents_from: [pairs.jsonl]\n'
                    f'    documents:\n      - {{_id: y, v: "x\\ud83d\\ude00y"}}\n')
    (tmp_path / "pairs.jsonl").write_text('{"_id": "j", "v": "x\\ud83d\\ude00y"}\n')
    applied = cli(couch_url, "apply", "--yes", str(path))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for doc_id in ("y", "j"):
        stored = httpx.get(f"{couch_url}/{pairs}/{doc_id}", timeout=30)
        assert stored.json()["v"] == "x\U0001F600y"
    replanned = cli(couch_url, "plan", str(path))
    assert (replanned.returncode, "No changes" in replanned.stdout) == (0, True), \
        replanned.stdout + replanned.stderr

    answer = put_raw(couch_url, odd, "s", b'{"v":"x\\ud800y"}')
    if is_couchdb:  # refused: CouchDB never holds one
        assert answer.status_code == 400
        return
    assert answer.status_code == 201
    path = write_manifest(tmp_path, {odd: {"documents": [{"_id": "s", "v": "x"}]},
                                     fine: {"documents": [{"_id": "a"}]}})
    _named_and_alone(client, couch_url, path, odd, fine, "s", "lone UTF-16 surrogate")


@pytest.mark.parametrize("depth", [300, pytest.param(10_000, marks=pytest.mark.couchdb_only(
    "PouchDB Server refuses a body nested 10,000 deep (RangeError)"))])
def test_a_deeply_nested_document_on_the_server_is_named(
        client: Client, couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        depth: int) -> None:
    odd, fine = db_name_factory(), db_name_factory()
    body = b'{"v":' + b"[" * depth + b"]" * depth + b"}"
    assert put_raw(couch_url, odd, "deep", body).status_code == 201
    for i in range(20):  # neighbours in the same read, which must still be read
        assert put_raw(couch_url, odd, f"n{i}", b'{"v":1}').status_code == 201
    path = write_manifest(tmp_path, {
        odd: {"documents": [{"_id": f"n{i}", "v": 1} for i in range(20)]
              + [{"_id": "deep", "v": 1}]},
        fine: {"documents": [{"_id": "a"}]}})
    _named_and_alone(client, couch_url, path, odd, fine, "deep", "nested")


def _named_and_alone(client: Client, url: str, path: Path, odd: str, fine: str,
                     doc_id: str, why: str) -> None:
    """The plan names ``doc_id`` of ``odd`` (``why``) and still plans ``fine``; export
    names it too. So do the commands: exit 1 with that message, no traceback; apply
    writes ``fine`` and leaves ``odd`` as it was."""
    _, made = plan_of(client, path)
    assert set(made.errors) == {odd}
    assert made.errors[odd].startswith(f"doc:{doc_id} (declared at {path}:")
    assert why in made.errors[odd]
    assert f"db:{fine}/doc:a" in [step.address for step in made.steps]
    with pytest.raises(UnreadableDocument, match=f"db:{odd}/doc:{doc_id}: .*{why}"):
        export_manifest(client, [odd], with_docs=True)

    named = f"{odd}: doc:{doc_id} (declared at {path}:"
    planned = cli(url, "plan", str(path))
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert named in planned.stderr and why in planned.stderr, planned.stderr
    assert f"+ db:{fine}/doc:a" in planned.stdout, planned.stdout
    ids = [row["id"] for row in httpx.get(f"{url}/{odd}/_all_docs", timeout=60).json()["rows"]]
    assert doc_id in ids
    before = revisions(url, odd, ids)
    applied = cli(url, "apply", str(path), "--yes")
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert named in applied.stderr and why in applied.stderr, applied.stderr
    assert httpx.get(f"{url}/{fine}/a", timeout=30).status_code == 200
    assert revisions(url, odd, ids) == before
    exported = cli(url, "export", "--db", odd, "--with-docs")
    assert exported.returncode == 1, exported.stdout + exported.stderr
    assert f"db:{odd}/doc:{doc_id}: " in exported.stderr and why in exported.stderr, \
        exported.stderr
