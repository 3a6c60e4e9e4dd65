"""Seed documents the application edits later (issue 19): ignored fields and create_only
documents on the real server, through plan, apply, the conflict re-diff, the ownership
record, -v and saved plans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from cli_helpers import run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sync_helpers import addresses, plan, sync

from couchsync.apply import apply_plan
from couchsync.client import Client
from couchsync.manifest import DesiredState
from couchsync.read import read_live_state

Manifest = Callable[[dict[str, Any]], DesiredState]


def every_copy(url: str, db: str) -> dict[str, str]:
    """The query parameters that put a write on every shard copy (none off a cluster)."""
    n = (httpx.get(f"{url}/{db}", timeout=30).json().get("cluster") or {}).get("n")
    return {"w": str(n)} if n else {}


def app_edits(url: str, db: str, doc_id: str, **fields: Any) -> dict[str, Any]:
    """What the application does: read, change ``fields`` (None: remove), write back
    (on every copy: the plan's revisions scan reads one copy per shard range, which a
    quorum write may not have reached yet; docs/plan-and-apply.md, "Clusters")."""
    body = httpx.get(f"{url}/{db}/{doc_id}", timeout=30).json()
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    answer = httpx.put(f"{url}/{db}/{doc_id}", json=body, params=every_copy(url, db),
                       timeout=30)
    assert answer.status_code in (201, 202), answer.text
    return dict(httpx.get(f"{url}/{db}/{doc_id}", timeout=30).json())


def crm(db: str) -> dict[str, Any]:
    return {db: {
        "ignore": ["seats", "profile.last_login"],
        "document_rules": {"settings": {"create_only": True}},
        "documents": [
            {"_id": "acme", "plan": "gold", "seats": 10,
             "profile": {"name": "Acme", "last_login": None}},
            {"_id": "settings", "theme": "dark"},
        ]}}


def test_the_app_edits_an_ignored_field_and_plans_say_no_change_while_apply_keeps_it(
        client: Client, couch_url: str, db_name: str, manifest: Manifest) -> None:
    desired = manifest(crm(db_name))
    sync(client, desired)
    app_edits(couch_url, db_name, "acme", seats=12,
              profile={"name": "Acme", "last_login": "2026-12-01T10:00:00Z"})
    quiet = plan(client, desired)
    assert quiet.is_empty
    assert quiet.ignored == {db_name: {"acme": ("profile.last_login", "seats")}}

    # A field the manifests own changes too: updated, the app's ignored values kept.
    app_edits(couch_url, db_name, "acme", plan="silver")
    made, result = sync(client, desired)
    assert addresses(made) == [f"~ db:{db_name}/doc:acme"]
    [step] = made.steps
    assert step.before["seats"] == step.after["seats"] == 12  # shown as no change
    assert result.ok
    stored = httpx.get(f"{couch_url}/{db_name}/acme", timeout=30).json()
    assert (stored["plan"], stored["seats"], stored["profile"]) == (
        "gold", 12, {"name": "Acme", "last_login": "2026-12-01T10:00:00Z"})
    assert plan(client, desired).is_empty

    # The app goes on editing: the plan reads the body once, apply notes the new
    # revision, and the next plan is proven by the ownership record, no body read.
    app_edits(couch_url, db_name, "acme", seats=14)
    noted = plan(client, desired)
    assert noted.is_empty and noted.record_updates() == 1
    apply_plan(client, noted, desired)
    live = read_live_state(client, desired)
    assert live.bodies_read() == 0
    proven = plan(client, desired)
    assert proven.record_updates() == 0 and not proven.ignored
    assert proven.unread == {db_name: {"create_only_existing": 1, "ignoring_unread": 1}}


def test_a_create_only_document_is_the_apps_once_it_exists_and_is_recreated_when_deleted(
        client: Client, couch_url: str, db_name: str, manifest: Manifest) -> None:
    desired = manifest(crm(db_name))
    sync(client, desired)
    app_edits(couch_url, db_name, "settings", theme="light", beta=True)
    live = read_live_state(client, desired)
    assert live.bodies_read() == 0  # never compared: not even read
    quiet = plan(client, desired)
    assert quiet.is_empty and quiet.record_updates() == 0
    assert quiet.unread[db_name]["create_only_existing"] == 1

    # Deleted by the app: created again, as the manifests have it (Terraform recreates).
    rev = httpx.get(f"{couch_url}/{db_name}/settings", timeout=30).json()["_rev"]
    httpx.delete(f"{couch_url}/{db_name}/settings",
                 params={"rev": rev, **every_copy(couch_url, db_name)}, timeout=30)
    made, result = sync(client, desired)
    assert addresses(made) == [f"+ db:{db_name}/doc:settings"] and result.ok
    assert httpx.get(f"{couch_url}/{db_name}/settings", timeout=30).json()["theme"] == "dark"

    # Still couchsync's: dropped from the manifests with prune, it is deleted.
    app_edits(couch_url, db_name, "settings", theme="light")
    spec = crm(db_name)
    spec[db_name].update(prune=True, document_rules={})
    spec[db_name]["documents"] = spec[db_name]["documents"][:1]
    pruned, result = sync(client, manifest(spec))
    assert addresses(pruned) == [f"- db:{db_name}/doc:settings"] and result.ok


def test_a_conflict_retry_keeps_what_the_app_wrote_in_between(
        client: Client, couch_url: str, db_name: str, manifest: Manifest) -> None:
    desired = manifest(crm(db_name))
    sync(client, desired)
    app_edits(couch_url, db_name, "acme", plan="silver")
    made = plan(client, desired)  # updates acme over the revision it read
    app_edits(couch_url, db_name, "acme", seats=99)  # meanwhile: a conflict for apply
    assert apply_plan(client, made, desired).ok
    stored = httpx.get(f"{couch_url}/{db_name}/acme", timeout=30).json()
    assert (stored["plan"], stored["seats"]) == ("gold", 99)

    # A create_only document the app creates between plan and apply is left as it is.
    app_rev = httpx.get(f"{couch_url}/{db_name}/settings", timeout=30).json()["_rev"]
    httpx.delete(f"{couch_url}/{db_name}/settings", params={"rev": app_rev}, timeout=30)
    made = plan(client, desired)
    created = httpx.put(f"{couch_url}/{db_name}/settings", json={"theme": "app's own"},
                        timeout=30)  # a deleted document is created again without _rev
    assert created.status_code in (201, 202), created.text
    assert apply_plan(client, made, desired).ok
    assert httpx.get(f"{couch_url}/{db_name}/settings",
                     timeout=30).json()["theme"] == "app's own"


def test_plan_v_names_the_ignored_fields_and_a_saved_plan_carries_the_rules(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "databases": crm(db_name)}))
    assert run(couch_url, "apply", str(path), "--yes").returncode == 0
    app_edits(couch_url, db_name, "acme", seats=12)
    app_edits(couch_url, db_name, "settings", theme="light")

    plain = run(couch_url, "plan", str(path))
    assert plain.returncode == 0 and "Ignored" not in plain.stdout
    told = run(couch_url, "plan", str(path), "-v")
    assert told.returncode == 0, told.stderr
    assert ("Ignored (the server's values kept, not compared):\n"
            f"  db:{db_name}/doc:acme: seats\n"
            f"  db:{db_name}: 1 create_only document on the server, not compared\n"
            ) in told.stdout
    markdown = run(couch_url, "plan", str(path), "-v", "--format", "markdown").stdout
    assert (f"- `db:{db_name}/doc:acme`: `seats`\n"
            f"- `db:{db_name}`: 1 create_only document on the server, not compared") in markdown
    machine = json.loads(run(couch_url, "plan", str(path), "--format", "json").stdout)
    assert machine["ignored"] == {db_name: {"fields": {"acme": ["seats"]},
                                            "create_only_existing": 1}}

    app_edits(couch_url, db_name, "acme", plan="silver")
    saved = tmp_path / "plan.json"
    assert run(couch_url, "plan", str(path), "--out", str(saved)).returncode == 0
    done = run(couch_url, "apply", "--plan", str(saved))
    assert done.returncode == 0, done.stderr
    stored = httpx.get(f"{couch_url}/{db_name}/acme", timeout=30).json()
    assert (stored["plan"], stored["seats"]) == ("gold", 12)

    # A saved plan made under other rules is refused: the rules are part of what it says.
    app_edits(couch_url, db_name, "acme", plan="silver")
    assert run(couch_url, "plan", str(path), "--out", str(saved)).returncode == 0
    spec = crm(db_name)
    spec[db_name]["ignore"] = ["profile.last_login"]
    path.write_text(yaml.safe_dump({"version": 1, "databases": spec}))
    refused = run(couch_url, "apply", "--plan", str(saved))
    assert refused.returncode == 1, refused.stdout
    assert f"db:{db_name}" in refused.stderr
    assert httpx.get(f"{couch_url}/{db_name}/acme", timeout=30).json()["plan"] == "silver"


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from("abc"))
_keys = st.sampled_from(["a", "b", "c"])
_bodies = st.dictionaries(_keys, st.one_of(_values, st.dictionaries(_keys, _values,
                                                                    max_size=3)), max_size=3)
_paths = st.lists(st.sampled_from(["a", "b", "a.b", "a.c", "c.a"]), max_size=3)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(declared=_bodies, app=_bodies, ignore=_paths)
@example(declared={"c": None}, app={"c": {"a": False}}, ignore=["c.a"])  # a null parent
def test_whatever_the_app_writes_apply_then_replan_is_empty(
        client: Client, couch_url: str, db_name_factory: Callable[[], str],
        manifest: Manifest, declared: dict[str, Any], app: dict[str, Any],
        ignore: list[str]) -> None:
    db = db_name_factory()
    desired = manifest({db: {"ignore": ignore, "documents": [{"_id": "doc", **declared}]}})
    sync(client, desired)
    rev = httpx.get(f"{couch_url}/{db}/doc", timeout=30).json()["_rev"]
    httpx.put(f"{couch_url}/{db}/doc", json={**app, "_rev": rev},
              params=every_copy(couch_url, db), timeout=30)
    assert sync(client, desired)[1].ok
    assert plan(client, desired).is_empty
    stored = httpx.get(f"{couch_url}/{db}/doc", timeout=30).json()
    for path in ignore:  # the app's value (or absence) kept, unless the manifests make a
        parts = path.split(".")  # parent of the field something else than an object
        if _object_or_absent(declared, parts[:-1]):
            assert _at(stored, parts) == _at(app, parts), path
    declared_part = {key: value for key, value in declared.items() if key not in ignore}
    assert all(stored.get(key) == value for key, value in declared_part.items()
               if not any(path.startswith(f"{key}.") for path in ignore))


def _object_or_absent(body: dict[str, Any], parts: list[str]) -> bool:
    """Whether ``parts`` leads to an object in ``body``, or to nothing: a JSON null there is
    a value of the manifests', which then stands (``_at`` reads both as None)."""
    for part in parts:
        if part not in body:
            return True
        body = body[part]
        if not isinstance(body, dict):
            return False
    return True


def _at(body: Any, parts: list[str]) -> Any:
    """The value at ``parts``, None when there is none."""
    for part in parts:
        if not isinstance(body, dict) or part not in body:
            return None
        body = body[part]
    return body
