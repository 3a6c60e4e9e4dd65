"""Databases open to anyone (issue 19), as warned of: each line with its place; this
file checks the rules without a server (test_safe_defaults.py checks them on one)."""

from __future__ import annotations

from pathlib import Path

from couchsync.manifest import load_manifests
from couchsync.plan._model import Plan
from couchsync.plan._public import public_warnings


def _warnings(tmp_path: Path, text: str, plan: Plan | None = None) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return [line.replace(str(path), "m.yaml")
            for line in public_warnings(load_manifests([path], environ={}), plan or Plan())]


def test_public_true_beside_members_is_a_contradiction_named_where_written(
    tmp_path: Path,
) -> None:
    assert _warnings(tmp_path, """\
version: 1
databases:
  website:
    public: true
    security: {members: {roles: [staff]}}
  "tenant-*":
    public: true
    security: {members: {names: [bob]}}
  shop:
    public: true
    security: {}
  orders:
    security: {members: {roles: [staff]}}
""") == [
        "database 'website' says public: true (at m.yaml:4:13), but its security (at "
        "m.yaml:5:15) names members: it is not open to anyone; drop one of them",
        "pattern 'tenant-*' says public: true (at m.yaml:7:13), but its security (at "
        "m.yaml:8:15) names members: it is not open to anyone; drop one of them"]


def test_a_database_the_plan_found_open_is_named_with_its_declaration(tmp_path: Path) -> None:
    plan = Plan(open_to_anyone=["notes"])
    assert _warnings(tmp_path, "version: 1\ndatabases:\n  notes: {}\n", plan) == [
        "database 'notes' is readable and writable by anyone: its security on the server "
        "names no members, and the manifests (at m.yaml:3:3) declare none; add security "
        "with members, or public: true if that is meant"]
    assert Plan.from_dict(plan.to_dict()).open_to_anyone == ["notes"]  # saved plans too
