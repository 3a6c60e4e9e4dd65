"""Incremental plans' rules with no server (``plan/_hints.py``, ``plan/_erlang.py``): the
sequences CouchDB 3.5.2 gave, read copy by copy; when a hint proves a database
unchanged; how a cluster's copies come to be trusted; what the fingerprint covers."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import couchsync
from couchsync._version import code_identity
from couchsync.manifest import Shard, load_manifests
from couchsync.manifest.model import DatabaseSpec
from couchsync.plan import (
    Hint,
    converged,
    every_copy_seen,
    fingerprint,
    full_reason,
    hint_bodies,
    parse_hints,
)
from couchsync.plan._erlang import decode_term
from couchsync.plan._hints import (
    EDITED,
    GONE,
    HINT_DOCS,
    HINT_PREFIX,
    MOVED,
    NEW,
    OTHER_COPY,
    UNCONFIRMED,
    hint_doc_id,
    seq_tokens,
    shard_hint_doc_ids,
)

# Taken from Apache CouchDB 3.5.2 (`GET /{db}`): a 3-node cluster's database (q=2, n=3)
# answered by two sets of copies, unchanged in between; a single node's database before
# and after one write.
CLUSTER_SEQ = ("5-g1AAAACfeJzLYWBgYMpgTmEQSs4vTc5ISTJyMDQy1zMAQsMckFweC5BkaABS_4EgK4M5kSUX"
               "KMCeZGSSZphsiFUjPvMSGZLqoQYxgg1KTjRMS0s2w6ojCwCLqCmk")
CLUSTER_OTHER_COPIES = ("5-g1AAAACfeJzLYWBgYMpgTmEQSs4vTc5ISTJ2MDQy1zMAQsMckFweC5BkaABS_4Eg"
                        "K4M5kSUXKMBubpZknJpogFUjPvMSGZLqoQYxgg1KTkwzTzS3xKojCwCKxSmF")
CLUSTER_PURGE = ("0-g1AAAABZeJzLYWBgYMpgTmEQSs4vTc5ISTJyMDQy1zMAQsMckFweC5BkaABS_4EgK5EBn-J"
                 "EhqR6iKosAN1FGKo")
SINGLE_SEQ = ("0-g1AAAACfeJzLYWBgYMpgTmEQSs4vTc5ISTJ0MDQy1zMAQsMckFweC5BkaABS_4EgK4M5kSEXK"
              "MCelppilpKWglUjPvMSGZLqUQwyT7Y0sTRKxKojCwC4OCm0")
SINGLE_WRITTEN = ("1-g1AAAACfeJzLYWBgYMpgTmEQSs4vTc5ISTJ0MDQy1zMAQsMckFweC5BkaABS_4EgK4M5kT"
                  "EXKMCelppilpKWglUjPvMSGZLqoQYxgA0yT7Y0sTRKxKojCwC4pCm1")


def test_a_packed_sequence_reads_as_its_copies() -> None:
    copies = decode_term(CLUSTER_SEQ.split("-", 1)[1])

    assert [(node, tuple(bounds)) for node, bounds, _ in copies] == [
        ("couchdb2@127.0.0.1", (2147483648, 4294967295)),
        ("couchdb2@127.0.0.1", (0, 2147483647))]
    # Each copy's own sequence, its shard file's uuid prefix and epoch node; they add up.
    assert sum(at[0] for _, _, at in copies) == int(CLUSTER_SEQ.split("-")[0])
    assert all(isinstance(at[1], bytes) for _, _, at in copies)


def test_tokens_are_one_per_copy_and_a_number_is_one() -> None:
    info = {"update_seq": CLUSTER_SEQ, "purge_seq": CLUSTER_PURGE}
    assert len(seq_tokens(info)) == 4  # two ranges, each of update_seq and purge_seq
    assert seq_tokens(info) == seq_tokens(dict(info))
    assert seq_tokens({**info, "update_seq": SINGLE_SEQ}) != seq_tokens(info)
    assert len(seq_tokens({"update_seq": 17, "purge_seq": 0})) == 2  # PouchDB Server
    assert seq_tokens({"update_seq": "not-packed!"}) == seq_tokens({"update_seq": "not-packed!"})


INFO = {"update_seq": SINGLE_SEQ, "purge_seq": CLUSTER_PURGE}


def test_a_hint_proves_a_database_unchanged_only_at_its_sequences() -> None:
    hint = converged(None, "fp", INFO, copies=1)
    assert hint.pending == frozenset()
    assert full_reason(hint, "fp", INFO) is None
    assert full_reason(hint, "other", INFO) == EDITED
    assert full_reason(hint, "fp", None) == GONE
    assert full_reason(None, "fp", INFO) == NEW
    assert full_reason(hint, None, INFO) == NEW  # a database holding a secret
    assert full_reason(hint, "fp", {**INFO, "update_seq": SINGLE_WRITTEN}) == MOVED
    assert full_reason(hint, "fp", {**INFO, "update_seq": CLUSTER_SEQ}) == OTHER_COPY


def test_a_cluster_trusts_a_copy_once_a_second_read_saw_it_at_the_same_sequence() -> None:
    a = {"update_seq": CLUSTER_SEQ, "purge_seq": CLUSTER_PURGE}
    b = {**a, "update_seq": CLUSTER_OTHER_COPIES}  # the same state, other copies answered
    first = converged(None, "fp", a, copies=3)
    assert full_reason(first, "fp", a) == UNCONFIRMED
    second = converged(first, "fp", a, copies=3)
    assert full_reason(second, "fp", a) is None
    # Another copy answered: read in full, then pending, while the first stays trusted.
    assert full_reason(second, "fp", b) == OTHER_COPY
    third = converged(second, "fp", b, copies=3)
    assert full_reason(third, "fp", a) is None
    assert full_reason(third, "fp", b) == UNCONFIRMED
    # A new fingerprint trusts nothing it saw before.
    assert full_reason(converged(third, "new", a, copies=3), "new", a) == UNCONFIRMED


def test_hints_round_trip_and_only_changed_documents_are_written() -> None:
    hints = {f"db{i}": Hint(f"fp{i}", frozenset({"t1", "t2"}), frozenset({"p"}))
             for i in range(40)}
    bodies = hint_bodies(hints, {})
    assert parse_hints(bodies) == hints
    stored = {doc_id: {**body, "_rev": "1-x"} for doc_id, body in bodies.items()}
    assert hint_bodies(hints, stored) == {}
    changed = hint_bodies({"db3": Hint("new", frozenset())}, stored)
    assert len(changed) == 1 and parse_hints(changed)["db3"] == Hint("new", frozenset())
    forgotten = hint_bodies({"db3": None}, stored)
    assert "db3" not in parse_hints(forgotten)
    assert parse_hints({"x": {"format": 99, "hints": {"db": ["a", "b", "c"]}}}) == {}


def spec_of(tmp_path: Path, body: dict[str, object], name: str = "db") -> DatabaseSpec:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": {name: body}}))
    return load_manifests([path], environ={}).databases[name]


#: The planning code's identity, as ``code_identity`` gives it.
CODE = "0.1.0+test"

BASE: dict[str, object] = {
    "security": {"members": {"roles": ["r"]}},
    "indexes": {"by-type": {"fields": ["type"]}},
    "design_docs": {"app": {"views": {"v": {"map": "function (doc) { emit(doc._id); }"}}}},
    "documents": [{"_id": "a", "v": 1}, {"_id": "b", "v": 2}],
}


@pytest.mark.parametrize("change", [
    {"security": {"members": {"roles": ["s"]}}},
    {"indexes": {"by-type": {"fields": ["kind"]}}},
    {"design_docs": {"app": {"views": {"v": {"map": "function (doc) { emit(1); }"}}}}},
    {"documents": [{"_id": "a", "v": 1}, {"_id": "b", "v": 3}]},
    {"documents": [{"_id": "a", "v": 1}]},
    {"prune": True},
    {"create_only": True},
    {"ignore": ["v"]},
    {"document_rules": {"a": {"create_only": True}}},
    {"public": True, "security": {"members": {"roles": []}}},
    {"migrations": [{"id": "m1", "set": {"x": 1}}]},
])
def test_the_fingerprint_moves_with_every_setting(tmp_path: Path,
                                                  change: dict[str, object]) -> None:
    assert fingerprint(spec_of(tmp_path, {**BASE, **change}), CODE) != fingerprint(
        spec_of(tmp_path, BASE), CODE)


def test_the_fingerprint_moves_with_the_code_and_the_code_s_identity_with_its_source(
        tmp_path: Path) -> None:
    spec = spec_of(tmp_path, BASE)
    assert fingerprint(spec, CODE) != fingerprint(spec, CODE + "-edited")
    package = Path(couchsync.__file__).parent
    copy = tmp_path / "couchsync"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_identity(copy) == code_identity(package)
    assert code_identity(package).startswith(couchsync.__version__ + "+")
    edited = tmp_path / "edited" / "couchsync"
    shutil.copytree(copy, edited)
    planner = edited / "plan" / "_diff.py"
    planner.write_text(planner.read_text() + "\n# a fix, the version number unchanged\n")
    assert code_identity(edited) != code_identity(package)


def test_the_fingerprint_is_the_same_in_another_checkout_and_none_with_a_secret(
        tmp_path: Path) -> None:
    here, there = tmp_path / "a", tmp_path / "b"
    here.mkdir()
    there.mkdir()
    spec = spec_of(here, BASE)
    assert fingerprint(spec, CODE) == fingerprint(spec_of(there, BASE), CODE)
    assert fingerprint(dataclasses.replace(spec, name="other"), CODE) == fingerprint(spec, CODE)
    assert fingerprint(dataclasses.replace(spec, state="absent"), CODE) is None
    secret = spec.documents["a"]
    secret.secret = True
    assert fingerprint(spec, CODE) is None


@given(st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 5)),
                min_size=1, max_size=12))
def test_a_trusted_copy_is_one_seen_twice_at_one_sequence(
        reads: list[tuple[str, int]]) -> None:
    """Property: after any run of converged reads (a copy answering at a sequence), a
    token is trusted only if two reads saw that copy at that sequence, the newest only."""
    hint: Hint | None = None
    seen: dict[tuple[str, int], int] = {}
    for copy, seq in reads:
        info = {"update_seq": f"{copy}/{seq}"}  # not packed: one token per value
        hint = converged(hint, "fp", {**info, "purge_seq": copy}, copies=3)
        seen[copy, seq] = seen.get((copy, seq), 0) + 1
    assert hint is not None
    for (copy, seq), count in seen.items():
        trusted = full_reason(hint, "fp", {"update_seq": f"{copy}/{seq}",
                                           "purge_seq": copy}) is None
        if trusted:
            assert count >= 2


def test_a_cluster_s_other_copies_seen_after_the_read_are_trusted_by_the_next_read() -> None:
    """Each ask names one copy per range; the asks after a read name the others, so the
    second converged read trusts every copy it sees again, whichever answers after."""
    a = {"update_seq": CLUSTER_SEQ, "purge_seq": CLUSTER_PURGE}
    b = {**a, "update_seq": CLUSTER_OTHER_COPIES}
    first = converged(None, "fp", a, copies=3, seen=[b])
    assert full_reason(first, "fp", b) == UNCONFIRMED  # seen once: pending
    second = converged(first, "fp", a, copies=3, seen=[b])
    assert full_reason(second, "fp", a) is None and full_reason(second, "fp", b) is None
    # A copy seen after the read at another sequence than before stays pending.
    moved = {**a, "update_seq": SINGLE_WRITTEN}
    third = converged(None, "fp", a, copies=3, seen=[moved])
    assert full_reason(converged(third, "fp", a, copies=3), "fp", moved) == UNCONFIRMED


def test_every_copy_is_seen_once_the_asks_named_each_copy_of_each_range() -> None:
    """What the asks after a converged read wait for: n copies of each of the q ranges
    (the three sequences name couchdb2's, couchdb3's and couchdb1's copies of both)."""
    asks = [{"update_seq": seq} for seq in (CLUSTER_SEQ, CLUSTER_OTHER_COPIES, SINGLE_SEQ)]
    assert not every_copy_seen(asks[:1], copies=3)
    assert not every_copy_seen(asks[:2], copies=3)
    assert every_copy_seen(asks[:2], copies=2)
    assert every_copy_seen(asks, copies=3)
    assert every_copy_seen([asks[0], asks[0]], copies=1)
    assert not every_copy_seen([asks[0], asks[0]], copies=2)  # the same copies twice


@given(st.text(min_size=1, max_size=40), st.sampled_from([2, 4, 8, 16, 64, 256]),
       st.integers(1, 256))
def test_a_shard_s_hint_documents_hold_its_databases_and_no_other_s(
        name: str, n: int, k: int) -> None:
    shard = Shard(min(k, n), n)
    ids = shard_hint_doc_ids(shard.k, shard.n)
    assert ids is not None
    assert (hint_doc_id(name) in ids) == shard.keeps(name)


def test_shards_that_do_not_divide_the_hint_documents_read_them_all() -> None:
    assert shard_hint_doc_ids(1, 1) is None
    assert shard_hint_doc_ids(2, 3) is None
    assert shard_hint_doc_ids(1, 512) is None
    assert sorted(id for k in range(1, 5) for id in shard_hint_doc_ids(k, 4) or []) == sorted(
        f"{HINT_PREFIX}{number}" for number in range(HINT_DOCS))
