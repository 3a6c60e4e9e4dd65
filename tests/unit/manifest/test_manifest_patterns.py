"""Database patterns: matching, overlap, the schema's rules, merging and expansion."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from couchsync.manifest import ManifestError, expand_patterns, load_manifests, matches, summarize
from couchsync.manifest._patterns import patterns_overlap


def load(tmp_path: Path, databases: dict[str, object], name: str = "m.yaml"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "databases": databases}, sort_keys=False))
    return load_manifests([path], environ={})


def problems(tmp_path: Path, databases: dict[str, object]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, databases)
    return [str(problem) for problem in caught.value.problems]


def test_a_pattern_matches_any_run_of_characters_and_nothing_else_is_special() -> None:
    assert matches("userdb-*", "userdb-61")
    assert matches("userdb-*", "userdb-")
    assert matches("*-prod", "a/b-prod")
    assert matches("a*b*c", "a-x-b-y-c")
    assert not matches("userdb-*", "xuserdb-1")
    assert not matches("a$(b)+*", "a$b+")  # CouchDB's $ ( ) + are plain characters
    assert matches("a$(b)+*", "a$(b)+1")


def test_a_pattern_never_matches_system_databases_or_the_locks() -> None:
    for name in ("_users", "_replicator", "_global_changes", "couchsync-locks"):
        assert not matches("*", name)
    assert not matches("couchsync-*", "couchsync-locks")
    assert matches("couchsync-*", "couchsync-other")


def _brute_overlap(a: str, b: str, alphabet: str = "ab", longest: int = 7) -> bool:
    ra, rb = (re.compile(p.replace("*", ".*")) for p in (a, b))
    return any(ra.fullmatch(s) and rb.fullmatch(s)
               for n in range(longest + 1)
               for s in map("".join, itertools.product(alphabet, repeat=n)))


def test_overlap_agrees_with_brute_force_on_every_small_pattern() -> None:
    small = ["".join(p) for n in range(1, 4) for p in itertools.product("ab*", repeat=n)]
    for a, b in itertools.product(small, repeat=2):
        assert patterns_overlap(a, b) == _brute_overlap(a, b), (a, b)


def test_patterns_may_declare_content_but_not_creation_settings(tmp_path: Path) -> None:
    found = problems(tmp_path, {"userdb-*": {"q": 2, "state": "absent", "security": {}}})
    assert len(found) == 2
    assert all("a database pattern matches existing databases only: it cannot set" in p
               for p in found)
    assert any(p.startswith(f"{tmp_path / 'm.yaml'}:4:5: ") and "set q" in p for p in found)


def test_pattern_names_follow_couchdb_rules_plus_the_star(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, {"Userdb-*": {}})
    assert "invalid database name" in found and "a pattern may also hold '*'" in found
    desired = load(tmp_path, {"*-prod": {}, "a*b*": {}})
    assert list(desired.patterns) == ["*-prod", "a*b*"] and not desired.databases


def test_a_named_database_gets_what_matching_patterns_declare(tmp_path: Path) -> None:
    desired = load(tmp_path, {
        "userdb-*": {"security": {"members": {"roles": ["u"]}},
                     "documents": [{"_id": "settings", "theme": "dark"}]},
        "userdb-admin": {"q": 2, "documents": [{"_id": "extra"}]},
        "other": {},
        "userdb-gone": {"state": "absent"},
    })
    admin = desired.databases["userdb-admin"]
    assert admin.q == 2 and admin.security == {"members": {"roles": ["u"]}}
    assert list(admin.documents) == ["extra", "settings"]
    assert desired.databases["other"].security is None
    assert not desired.databases["userdb-gone"].documents  # deleted: patterns do not apply


def test_declaring_the_same_thing_twice_is_not_a_conflict(tmp_path: Path) -> None:
    same = {"security": {"members": {"roles": ["u"]}}, "indexes": {"i": {"fields": ["a"]}},
            "design_docs": {"app": {"views": {"v": {"map": "function(d){}"}}}},
            "documents": [{"_id": "s", "x": 1}]}
    desired = load(tmp_path, {"user*": same, "*db-*": same, "userdb-1": same})
    assert desired.databases["userdb-1"].indexes["i"].fields == ["a"]


def test_real_conflicts_name_both_places(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "userdb-*": {"security": {"members": {"roles": ["a"]}},
                     "documents": [{"_id": "s", "x": 1}]},
        "*-prod": {"security": {"members": {"roles": ["b"]}},
                   "documents": [{"_id": "s", "x": 2}]},
        "tenant-*-dev": {"security": {"members": {"roles": ["c"]}}},  # overlaps neither
    })
    file = tmp_path / "m.yaml"
    assert found == [
        f"{file}:13:7: conflicting security for pattern 'userdb-*' and pattern '*-prod': "
        f"differs from the one at {file}:5:7",
        f"{file}:17:7: document 's' of pattern 'userdb-*' and pattern '*-prod' is declared "
        f"differently at {file}:9:7",
    ]


def test_a_conflict_between_a_name_and_a_pattern_is_found_without_a_server(
        tmp_path: Path) -> None:
    (found,) = problems(tmp_path, {"userdb-*": {"prune": True}, "userdb-x": {"prune": False}})
    assert "conflicting prune for database 'userdb-x' and pattern 'userdb-*'" in found


def test_expansion_gives_each_match_the_template_without_copying_it(tmp_path: Path) -> None:
    desired = load(tmp_path, {
        "userdb-*": {"documents": [{"_id": "s"}]},
        "*-b": {"indexes": {"i": {"fields": ["a"]}}},
        "userdb-named": {},
    })
    expanded = expand_patterns(desired, ["userdb-a", "userdb-b", "userdb-named", "_users",
                                         "couchsync-locks", "x-b", "unmatched"])
    assert list(expanded.databases) == ["userdb-named", "userdb-a", "userdb-b", "x-b"]
    a, b, x = (expanded.databases[n] for n in ("userdb-a", "userdb-b", "x-b"))
    assert a.matched_by == "userdb-*" and b.matched_by == "userdb-*, *-b"
    assert expanded.databases["userdb-named"].matched_by is None
    assert a.documents is desired.patterns["userdb-*"].documents  # shared, not copied
    assert list(b.documents) == ["s"] and list(b.indexes) == ["i"] and not x.documents
    assert desired.databases.keys() == {"userdb-named"}  # the input is left as it was


def test_validate_summary_counts_patterns(tmp_path: Path) -> None:
    desired = load(tmp_path, {"userdb-*": {"documents": [{"_id": "s"}]}, "a": {}})
    assert summarize(desired) == "1 database, 1 pattern, 1 document, 0 indexes, 0 design docs"
