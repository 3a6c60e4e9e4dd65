"""export --users / --replications / --config: the server sections, adopted into manifests.

Each test exports through the real ``couchsync`` command, checks that no
credential reached stdout or stderr, then validates the manifest and plans it
with the variables export named set to the real values: the plan must be empty.
Entries are unique per test and deleted afterwards (the server is shared); the
plans cover only this test's entries, as other tests may add or delete theirs
meanwhile.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import run

#: A header's Basic credentials (base64 of user:password, as CouchDB requires).
HEADER_PASSWORD = "tok-5Rv2"
HEADER_BASIC = base64.b64encode(f"exporter:{HEADER_PASSWORD}".encode()).decode()
SECRETS = ("pw-Xq7", f"Basic {HEADER_BASIC}", "signing-9z")


@pytest.fixture
def http(couch_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=couch_url, timeout=30) as client:
        yield client


@pytest.fixture
def unique() -> str:
    return f"cstest-{uuid.uuid4().hex[:10]}"


def put_doc(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    answer = http.put(path, json=body)
    assert answer.status_code in (201, 202), answer.text


def delete_doc(http: httpx.Client, path: str) -> None:
    found = http.get(path)
    if found.status_code == 200:
        http.delete(path, params={"rev": found.json()["_rev"]})


Export = Callable[..., tuple[dict[str, Any], str, str]]


@pytest.fixture
def export(couch_url: str, admin_password: str) -> Export:
    """``couchsync export ARGS``: the manifest, its text and stderr; no secret anywhere in
    either: neither the test's nor the server's admin password (in the URL export reads
    with, and in replications that name the server with it)."""

    def export(*args: str) -> tuple[dict[str, Any], str, str]:
        done = run(couch_url, "export", *args)
        assert done.returncode == 0, done.stderr
        for secret in (*SECRETS, HEADER_BASIC, HEADER_PASSWORD, admin_password):
            assert secret not in done.stdout + done.stderr, f"a secret in export {args[0]}"
        return yaml.safe_load(done.stdout), done.stdout, done.stderr

    return export


def plan_is_empty(couch_url: str, manifest: dict[str, Any], tmp_path: Path,
                  variables: dict[str, str]) -> None:
    """``manifest`` validates, and plans empty, with ``variables``."""
    path = tmp_path / f"adopted-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assigned = [f"--var={key}={value}" for key, value in variables.items()]
    valid = run(couch_url, "validate", str(path), *assigned)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    planned = run(couch_url, "plan", str(path), "--detailed-exitcode", *assigned)
    assert planned.returncode == 0, planned.stdout + planned.stderr


def needed(stderr: str) -> set[str]:
    """The variables export said the manifest needs."""
    line = next(line for line in stderr.splitlines() if "needs these variables" in line)
    return set(line.rsplit(": ", 1)[1].split(", "))


def test_users_export_with_a_password_placeholder_and_keep_it(
    couch_url: str, http: httpx.Client, unique: str, tmp_path: Path, export: Export,
) -> None:
    name = unique
    path = f"/_users/org.couchdb.user:{name}"
    put_doc(http, path, {"name": name, "type": "user", "roles": ["staff"],
                         "password": SECRETS[0], "email": "${not-a-var}"})
    variable = "COUCHDB_USER_" + re.sub("[^A-Z0-9]", "_", name.upper()) + "_PASSWORD"
    try:
        exported, text, stderr = export("--users")
        user = exported["users"][name]
        assert user == {"password": f"${{{variable}}}", "roles": ["staff"],
                        "email": "$${not-a-var}"}  # loads back as is
        assert "derived_key" not in text and "org.couchdb.user" not in text
        assert ("users' passwords cannot be read (the server keeps a hash): set "
                in stderr and variable in stderr)
        mine = {"version": 1, "users": {name: user}}
        plan_is_empty(couch_url, mine, tmp_path, {variable: SECRETS[0]})
        wrong = tmp_path / "wrong.yaml"
        wrong.write_text(yaml.safe_dump(mine))
        changed = run(couch_url, "plan", str(wrong), "--var", f"{variable}=not-it",
                      "--detailed-exitcode")
        assert changed.returncode == 2, changed.stdout + changed.stderr
        assert f"~ db:_users/doc:org.couchdb.user:{name}" in changed.stdout
        assert "not-it" not in changed.stdout + changed.stderr

        # Adopted: a role added in the manifest; the stored password must survive it.
        stored = http.get(path).json()
        mine["users"][name]["roles"].append("reports")
        path_file = tmp_path / "roles.yaml"
        path_file.write_text(yaml.safe_dump(mine))
        applied = run(couch_url, "apply", str(path_file), "--yes",
                      "--var", f"{variable}={SECRETS[0]}")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        after = http.get(path).json()
        assert after["roles"] == ["staff", "reports"]
        assert {key: after.get(key) for key in ("salt", "derived_key", "password_scheme")} \
            == {key: stored.get(key) for key in ("salt", "derived_key", "password_scheme")}
        plan_is_empty(couch_url, mine, tmp_path, {variable: SECRETS[0]})
    finally:
        delete_doc(http, path)


@pytest.fixture
def replications(http: httpx.Client, unique: str) -> Iterator[list[str]]:
    """Ids of replication documents this test writes; deleted afterwards."""
    ids: list[str] = []
    yield ids
    for doc_id in ids:
        delete_doc(http, f"/_replicator/{doc_id}")


def put_replication(http: httpx.Client, ids: list[str], doc_id: str,
                    body: dict[str, Any]) -> str:
    ids.append(doc_id)
    put_doc(http, f"/_replicator/{doc_id}", body)
    return "REPLICATION_" + re.sub("[^A-Z0-9]", "_", doc_id.upper())


def target_url(couch_url: str, unique: str) -> str:
    return f"{httpx.URL(couch_url).copy_with(username=None, password=None)}/{unique}-target"


def test_replication_url_password_becomes_a_variable(
    couch_url: str, http: httpx.Client, unique: str, replications: list[str],
    db_name_factory: Callable[[], str], tmp_path: Path, export: Export,
) -> None:
    # Databases that exist, reached with the admin's credentials: PouchDB Server's
    # replicator crashes the whole server on a replication that fails.
    source, target = (f"{couch_url}/{name}" for name in (db_name_factory(), db_name_factory()))
    for url in (source, target):
        assert httpx.put(url, timeout=30).status_code in (201, 202)
    stem = put_replication(http, replications, unique, {
        "source": source, "target": target, "note": "${literal}"})
    exported, _, stderr = export("--replications", f"--var=TARGET={target}")
    password = httpx.URL(couch_url).password
    assert exported["replications"][unique] == {
        "source": source.replace(f":{password}@", f":${{{stem}_SOURCE_PASSWORD}}@"),
        "target": "${TARGET}", "note": "$${literal}"}
    assert f"{stem}_SOURCE_PASSWORD" in needed(stderr)
    plan_is_empty(couch_url, {"version": 1, "replications": {
        unique: exported["replications"][unique]}}, tmp_path,
        {f"{stem}_SOURCE_PASSWORD": password, "TARGET": target})


@pytest.mark.couchdb_only("pouchdb-replicator takes source and target as URLs only: an "
                          "{url, auth, headers} endpoint crashes the whole server")
def test_replication_endpoint_credentials_become_variables(
    couch_url: str, http: httpx.Client, unique: str, replications: list[str], tmp_path: Path,
    export: Export,
) -> None:
    target = target_url(couch_url, unique)
    stem = put_replication(http, replications, unique, {
        "source": {"url": f"http://127.0.0.1:9/{unique}-source",
                   "headers": {"Authorization": SECRETS[1]}},
        "target": {"url": target, "auth": {"basic": {"username": "u",
                                                     "password": SECRETS[0]}}},
    })
    # The target's password is given as --var SHARED_PW: written as ${SHARED_PW}.
    exported, _, stderr = export("--replications", f"--var=SHARED_PW={SECRETS[0]}")
    assert exported["replications"][unique] == {
        "source": {"url": f"http://127.0.0.1:9/{unique}-source",
                   "headers": {"Authorization": f"${{{stem}_SOURCE_AUTHORIZATION}}"}},
        "target": {"url": target, "auth": {"basic": {
            "username": "u", "password": "${SHARED_PW}"}}},
    }
    variables = {f"{stem}_SOURCE_AUTHORIZATION": SECRETS[1], "SHARED_PW": SECRETS[0]}
    assert f"{stem}_SOURCE_AUTHORIZATION" in needed(stderr)
    assert not {name for name in needed(stderr) if name.startswith(f"{stem}_TARGET")}
    plan_is_empty(couch_url, {"version": 1, "replications": {
        unique: exported["replications"][unique]}}, tmp_path, variables)


@pytest.fixture
def nodes(couch_url: str, http: httpx.Client) -> list[str]:
    return sorted(http.get("/_membership").json()["cluster_nodes"])


@pytest.fixture
def section(http: httpx.Client, nodes: list[str]) -> Iterator[str]:
    """A config section of this test's own; its keys deleted on every node afterwards."""
    name = f"cstest_{uuid.uuid4().hex[:10]}"
    yield name
    for node in nodes:
        for key in http.get(f"/_node/{node}/_config/{name}").json():
            http.delete(f"/_node/{node}/_config/{name}/{key}")


def set_config(http: httpx.Client, node: str, section: str, key: str, value: str) -> None:
    answer = http.put(f"/_node/{node}/_config/{section}/{key}", json=value)
    assert answer.status_code == 200, answer.text


@pytest.mark.couchdb_only("no per-node config: /_node/{node}/_config answers 404")
def test_config_section_re_plans_empty(couch_url: str, http: httpx.Client, nodes: list[str],
                                       section: str, tmp_path: Path, export: Export) -> None:
    for node in nodes:
        set_config(http, node, section, "max_jobs", "8")
        set_config(http, node, section, "enabled", "true")
        set_config(http, node, section, "template", "${user}")
        set_config(http, node, section, "secret", SECRETS[2])
    exported, _, stderr = export("--config", section)
    variable = f"CONFIG_{section.upper()}_SECRET"
    assert exported["config"] == {section: {"enabled": "true", "max_jobs": "8",
                                            "secret": f"${{{variable}}}",
                                            "template": "$${user}"}}
    assert needed(stderr) == {variable}
    assert "warning" not in stderr
    plan_is_empty(couch_url, {"version": 1, **exported}, tmp_path, {variable: SECRETS[2]})


@pytest.mark.couchdb_only("no per-node config: /_node/{node}/_config answers 404")
def test_config_nodes_disagreeing_are_named(couch_url: str, http: httpx.Client,
                                            nodes: list[str], section: str,
                                            export: Export) -> None:
    if len(nodes) < 2:
        pytest.skip("one node: nothing to disagree with")
    first, *others = nodes
    set_config(http, first, section, "limit", "8")
    set_config(http, first, section, "secret", SECRETS[2])
    for node in others:
        set_config(http, node, section, "secret", SECRETS[2] + "-other")
    exported, _, stderr = export("--config", section)
    assert exported["config"][section]["limit"] == "8"
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    limit, secret = warnings
    assert f"{section}/limit" in limit and f'{first}: "8"' in limit and "unset" in limit
    assert f"{section}/secret" in secret and all(node in secret for node in others)


@pytest.mark.parametrize(("args", "message"), [
    ((), "nothing to export"),
    (("--config", "admins"), "config section 'admins' refused"),
])
def test_export_refuses(couch_url: str, args: tuple[str, ...], message: str) -> None:
    done = run(couch_url, "export", *args)
    assert done.returncode == 1
    assert message in done.stderr and not done.stdout
