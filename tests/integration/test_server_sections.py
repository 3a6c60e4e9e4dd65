"""The whole server in git (issue 12): ``config``, ``users``, ``replications`` and
``prune``, applied through the real ``couchsync`` command against the real server.

Config is per node (``/_node/{node}/_config``): Apache CouchDB only. Users never try
a wrong password against an account: CouchDB locks one out after 5 refused logins.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cli_helpers import couchdb_of_its_own, doc_count, killed_at_request, run, wait_for

from couchsync.client import Client
from couchsync.manifest import load_manifests
from couchsync.manifest._server import USER_PREFIX
from couchsync.read import plan_server


def _write(path: Path, manifest: dict[str, Any]) -> str:
    path.write_text(json.dumps({"version": 1, **manifest}, indent=1))
    return str(path)


def _bare(url: str) -> str:
    """The server's URL without credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


def _nodes(url: str) -> list[str]:
    return sorted(httpx.get(f"{url}/_membership", timeout=10).json()["cluster_nodes"])


def _section(url: str, node: str, section: str) -> dict[str, str]:
    answer: dict[str, str] = httpx.get(f"{url}/_node/{node}/_config/{section}",
                                       timeout=10).json()
    return answer


def _login(url: str, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{_bare(url)}/_session", json={"name": name, "password": password},
                      timeout=30)


def _wait_for_copies(url: str, db: str, count: int) -> None:
    """Until the replication target ``db`` holds ``count`` documents (2 minutes at most)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/{db}", timeout=10).status_code == 200 \
                and doc_count(url, db) == count:
            return
        time.sleep(0.5)
    assert doc_count(url, db) == count


def _delete(url: str, db: str, doc_id: str) -> None:
    doc = httpx.get(f"{url}/{db}/{doc_id}", timeout=10)
    if doc.status_code == 200:
        httpx.delete(f"{url}/{db}/{doc_id}", params={"rev": doc.json()["_rev"]}, timeout=10)


@pytest.fixture
def section(couch_url: str) -> Iterator[str]:
    """A config section of the test's own, removed from every node afterwards."""
    name = f"couchsync_test_{uuid.uuid4().hex[:8]}"
    yield name
    for node in _nodes(couch_url):
        for key in _section(couch_url, node, name):
            httpx.delete(f"{couch_url}/_node/{node}/_config/{name}/{key}", timeout=10)


@pytest.fixture
def user_name(couch_url: str) -> Iterator[str]:
    name = f"couchsync-test-{uuid.uuid4().hex[:8]}"
    yield name
    _delete(couch_url, "_users", USER_PREFIX + name)


@pytest.mark.couchdb_only("node config is per node (/_node/{node}/_config); PouchDB Server "
                          "has no _membership")
def test_config_is_set_compared_and_pruned_on_every_node(
    couch_url: str, section: str, tmp_path: Path,
) -> None:
    manifest = _write(tmp_path / "config.yaml", {
        "config": {section: {"flag": True, "limit": 8, "half": 0.5, "name": "first"}},
        "prune": {"config": True}})
    applied = run(couch_url, "apply", manifest, "--yes")
    assert applied.returncode == 0, applied.stderr
    nodes = _nodes(couch_url)
    for node in nodes:  # YAML scalars written as the documented strings, on every node
        assert _section(couch_url, node, section) == {
            "flag": "true", "limit": "8", "half": "0.5", "name": "first"}
    assert run(couch_url, "plan", manifest, "--detailed-exitcode").returncode == 0

    # Drift on one node shows as such, and only that node is written.
    drifted = nodes[-1]
    httpx.put(f"{couch_url}/_node/{drifted}/_config/{section}/name", json="changed by hand",
              timeout=10).raise_for_status()
    planned = run(couch_url, "plan", manifest, "--detailed-exitcode")
    assert planned.returncode == 2, planned.stderr
    assert f"~ config:{section}/name" in planned.stdout
    assert f"differs on 1 of {len(nodes)} nodes" in planned.stdout
    assert f'["{drifted}"]: "changed by hand" → "first"' in planned.stdout
    assert all(f'["{node}"]' not in planned.stdout for node in nodes[:-1])
    assert run(couch_url, "apply", manifest, "--yes").returncode == 0
    assert _section(couch_url, drifted, section)["name"] == "first"

    # A key dropped from the manifests is deleted (prune: config) on every node.
    smaller = _write(tmp_path / "config.yaml", {
        "config": {section: {"flag": True, "half": 0.5, "name": "first"}},
        "prune": {"config": True}})
    planned = run(couch_url, "plan", smaller)
    assert f"- config:{section}/limit" in planned.stdout
    assert "no longer in the manifests (prune: config)" in planned.stdout
    assert run(couch_url, "apply", smaller, "--yes").returncode == 0
    for node in nodes:
        assert "limit" not in _section(couch_url, node, section)
        managed = json.loads(_section(couch_url, node, "couchsync")["managed"])
        assert f"{section}/name" in managed and f"{section}/limit" not in managed
    assert run(couch_url, "plan", smaller, "--detailed-exitcode").returncode == 0


@pytest.mark.couchdb_only("node config is per node (/_node/{node}/_config); PouchDB Server "
                          "has no _membership")
def test_a_config_apply_killed_midway_leaves_every_key_it_set_known(
    couch_url: str, section: str, tmp_path: Path,
) -> None:
    keys = {f"k{i:03d}": f"v{i}" for i in range(300)}
    manifest = _write(tmp_path / "config.yaml", {"config": {section: keys}})
    nodes = _nodes(couch_url)
    # Killed while its 10th record write is held: a key whose value went before its
    # record (the order this test exists to catch) is then set and unrecorded.
    killed_at_request(couch_url, "PUT", "/_config/couchsync/managed", 10,
                      "apply", manifest, "--yes", "--lock-ttl", "5", "--lock-timeout", "60")
    for node in nodes:  # written ahead: every key set there is recorded there
        recorded = set(json.loads(_section(couch_url, node, "couchsync")["managed"]))
        assert {f"{section}/{key}" for key in _section(couch_url, node, section)} <= recorded
    # Mid-write: the 9 keys recorded before the held write are set, no other.
    assert sum(len(_section(couch_url, node, section)) for node in nodes) == 9
    # The next apply waits out the killed one's lock and converges.
    again = run(couch_url, "apply", manifest, "--yes", "--lock-timeout", "60")
    assert again.returncode == 0, again.stderr
    assert run(couch_url, "plan", manifest, "--detailed-exitcode").returncode == 0
    for node in nodes:
        assert _section(couch_url, node, section) == keys
    # And every key it set is its to prune.
    pruned = _write(tmp_path / "config.yaml", {"config": {}, "prune": {"config": True}})
    assert run(couch_url, "apply", pruned, "--yes").returncode == 0
    assert all(_section(couch_url, node, section) == {} for node in nodes)


def test_config_on_a_server_without_per_node_config_is_one_clear_error(
    couch_url: str, is_couchdb: bool, tmp_path: Path,
) -> None:
    if is_couchdb:
        pytest.skip("Apache CouchDB has the per-node config API; PouchDB Server lacks it")
    manifest = _write(tmp_path / "config.yaml", {"config": {"cors": {"origins": "x"}}})
    for args in (["plan", manifest], ["apply", manifest, "--yes"]):
        done = run(couch_url, *args)
        assert done.returncode == 1
        assert done.stderr.startswith("Error: config: this server has no per-node "
                                      "configuration API"), done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_the_admins_section_and_bad_values_are_refused_with_their_place(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "admins.yaml"
    manifest.write_text("version: 1\nconfig:\n  admins:\n    root: secret\n"
                        "  cors:\n    origins: [a, b]\n")
    checked = run("http://127.0.0.1:9", "validate", str(manifest))
    assert checked.returncode == 1
    assert f"{manifest}:3:" in checked.stderr and "admins section is refused" in checked.stderr
    assert f"{manifest}:6:" in checked.stderr and "config value" in checked.stderr
    assert "secret" not in checked.stderr.replace("admins section is refused", "")
    assert "Traceback" not in checked.stderr


def test_a_user_logs_in_replans_empty_and_gets_a_new_password_never_printed(
    couch_url: str, user_name: str, tmp_path: Path,
) -> None:
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    manifest = _write(tmp_path / "users.yaml", {"users": {user_name: {
        "password": "${TEST_USER_PASSWORD}", "roles": ["staff"], "team": "blue"}}})

    def couchsync(password: str, *args: str) -> Any:
        done = run(couch_url, *args, env={"TEST_USER_PASSWORD": password})
        assert first not in done.stdout + done.stderr
        assert second not in done.stdout + done.stderr
        return done

    applied = couchsync(first, "apply", manifest, "--yes")
    assert applied.returncode == 0, applied.stderr
    login = _login(couch_url, user_name, first)
    assert login.status_code == 200, login.text
    assert login.json()["roles"] == ["staff"]
    assert couchsync(first, "plan", manifest, "--detailed-exitcode").returncode == 0

    planned = couchsync(second, "plan", manifest, "--detailed-exitcode")
    assert planned.returncode == 2
    assert f"~ db:_users/doc:{USER_PREFIX}{user_name}" in planned.stdout
    assert "# the password differs" in planned.stdout
    assert '+ password: "(changed)"' in planned.stdout
    as_json = json.loads(couchsync(second, "plan", manifest, "--format", "json").stdout)
    [step] = as_json["steps"]
    assert step["after"]["password"] == "(changed)"
    assert not {"derived_key", "salt"} & (set(step["after"]) | set(step["before"]))
    assert couchsync(second, "apply", manifest, "--yes").returncode == 0
    # CouchDB checks a login against a cache of the users it has seen (chttpd_auth_cache),
    # from which it drops a changed user only once its _users changes listener sees the
    # write, after the write was answered: a login right after may still be checked
    # against the old password (4 of 29, measured on a 3-node 3.5.2). While the old one
    # is still accepted, the server has not dropped it; once it is refused (the one
    # refused login of this test), the new one must be accepted.
    wait_for(lambda: _login(couch_url, user_name, first).status_code == 401,
             "the old password to be refused", timeout=60)
    assert _login(couch_url, user_name, second).status_code == 200

    # Roles change, the password stays: the stored hash is kept.
    more = _write(tmp_path / "users.yaml", {"users": {user_name: {
        "password": "${TEST_USER_PASSWORD}", "roles": ["staff", "ops"], "team": "blue"}}})
    planned = couchsync(second, "plan", more)
    assert "password" not in planned.stdout and '"ops"' in planned.stdout
    assert couchsync(second, "apply", more, "--yes").returncode == 0
    # The cached user keeps its old roles for a moment too (logins that succeed).
    wait_for(lambda: _login(couch_url, user_name, second).json().get("roles")
             == ["staff", "ops"], "a login to show the new roles", timeout=60)
    assert couchsync(second, "plan", more, "--detailed-exitcode").returncode == 0


@pytest.mark.couchdb_only("PouchDB Server has no _scheduler and runs no _replicator jobs")
def test_a_replication_copies_its_source_after_the_databases_and_replans_empty(
    couch_url: str, db_name_factory: Any, tmp_path: Path,
) -> None:
    source, target = db_name_factory(), db_name_factory()
    rep_id = f"couchsync-test-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(couch_url)
    secret = parts.password or ""
    endpoint = {"auth": {"basic": {"username": parts.username,
                                   "password": "${TEST_REPLICATION_PASSWORD}"}}}
    manifest = _write(tmp_path / "replication.yaml", {
        "databases": {source: {"documents": [{"_id": f"d{i}", "n": i} for i in range(5)]}},
        "replications": {rep_id: {
            "source": {"url": f"{_bare(couch_url)}/{source}", **endpoint},
            "target": {"url": f"{_bare(couch_url)}/{target}", **endpoint},
            "create_target": True}}})
    env = {"TEST_REPLICATION_PASSWORD": secret}
    try:
        planned = run(couch_url, "plan", manifest, env=env)
        assert '"password": "***"' in planned.stdout
        # One apply: the source is created and seeded before the job is written.
        applied = run(couch_url, "apply", manifest, "--yes", env=env)
        assert applied.returncode == 0, applied.stderr
        _wait_for_copies(couch_url, target, 5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the server writes the job's end into the doc
            stored = httpx.get(f"{couch_url}/_replicator/{rep_id}", timeout=10).json()
            if stored.get("_replication_state") == "completed":
                break
            time.sleep(0.5)
        # Fields the server writes, none of them drift:
        assert stored.get("_replication_state") == "completed", stored
        assert {"owner", "_replication_state", "_replication_stats"} <= set(stored)
        replanned = run(couch_url, "plan", manifest, "--detailed-exitcode", env=env)
        assert replanned.returncode == 0, replanned.stdout

        # A changed job is an update that says what the job is doing now.
        changed = json.loads(Path(manifest).read_text())
        changed["replications"][rep_id]["continuous"] = True
        Path(manifest).write_text(json.dumps(changed))
        planned = run(couch_url, "plan", manifest, env=env)
        assert f"~ db:_replicator/doc:{rep_id}" in planned.stdout
        # The job's end, written into one copy of the document, is read on a cluster
        # too, where the scheduler has forgotten the job and a quorum may lag.
        assert "its job is completed" in planned.stdout
    finally:
        _delete(couch_url, "_replicator", rep_id)


@pytest.mark.couchdb_only("PouchDB Server has no _scheduler and runs no _replicator jobs")
def test_a_finished_jobs_state_shows_in_a_plan_made_the_moment_it_ends(
    couch_url: str, db_name: str, tmp_path: Path,
) -> None:
    """On a cluster the scheduler forgets a finished job at once, and the end the server
    writes into the job's document reaches one copy first: a quorum read right after
    missed it in 22 of 125 plans (measured on 3.5.2). Each plan here is made as soon as
    one read shows the end, in process, to land in that moment; on a single node it
    is a plain check of the state shown."""
    httpx.put(f"{couch_url}/{db_name}", timeout=10)
    httpx.put(f"{couch_url}/{db_name}/d", json={}, timeout=10)
    endpoint = {"auth": {"basic": {"username": urlsplit(couch_url).username,
                                   "password": urlsplit(couch_url).password}}}
    jobs = [f"couchsync-ended-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    stored = {job: {"source": {"url": f"{_bare(couch_url)}/{db_name}", **endpoint},
                    "target": {"url": f"{_bare(couch_url)}/{db_name}-{job}", **endpoint},
                    "create_target": True} for job in jobs}
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(json.dumps({"version": 1, "replications": {
        job: {**body, "continuous": True} for job, body in stored.items()}}))
    desired = load_manifests([manifest], environ={})
    try:
        with Client(couch_url) as client:
            for job in jobs:
                httpx.put(f"{couch_url}/_replicator/{job}", json=stored[job], timeout=10)
                wait_for(lambda job=job: httpx.get(f"{couch_url}/_replicator/{job}", timeout=10)
                         .json().get("_replication_state") == "completed", f"{job} to end")
                for _ in range(3):
                    step, = [step for step in plan_server(client, desired, only=["_replicator"])
                             .steps if step.id == job]
                    assert step.reason.endswith("; its job is completed"), step.reason
    finally:
        for job in jobs:
            _delete(couch_url, "_replicator", job)
            httpx.delete(f"{couch_url}/{db_name}-{job}", timeout=10)


#: Passwords of every length up to 13, from letters and digits (fit for a URL's userinfo):
#: users' (given by secret variables, so also masked wherever they occur) and
#: replications' (written in the manifest), none inside another's.
USER_PASSWORDS = ["Zq7Xw9Vk3Jm5R"[:length] for length in range(1, 14)]
REPLICATION_PASSWORDS = ["Kp4Yt8Hn2Wc6G"[:length] for length in range(1, 14)]


def _leaks(password: str, user: str) -> list[str]:
    """What shows a password in any output, for passwords too short to look for alone:
    the password in its places (quoted, a URL's userinfo, a YAML value, an assignment)
    and the Basic credentials of ``user:password`` (long enough to look for alone)."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [f'"{password}"', f"'{password}'", f":{password}@", f": {password}\n",
            f"={password}", basic]


def test_no_secret_reaches_any_output(
    couch_url: str, db_name: str, user_name: str, tmp_path: Path, is_couchdb: bool,
    admin_password: str,
) -> None:
    """Every command, with secrets in the manifests, variables and URL, exits as it should
    (a command that crashed would print no secret either) and prints none: distinctive
    ones anywhere, and passwords of every length 1-13 (users' and, on CouchDB,
    replications' URL and Basic header) in every place one could show."""
    user_secret = f"user-pw-{uuid.uuid4().hex}"
    replication_secret = f"repl-pw-{uuid.uuid4().hex}"
    url_secret = f"url-pw-{uuid.uuid4().hex}"  # in the URL of a server that is not there
    header = base64.b64encode(f"someone:{replication_secret}".encode()).decode()
    secrets = [user_secret, replication_secret, url_secret, header, admin_password]
    users = {user_name: "${TEST_USER_PASSWORD}"}
    env = {"TEST_USER_PASSWORD": user_secret}
    leaks: list[str] = []
    for password in USER_PASSWORDS:
        name = f"{user_name}-{len(password)}"
        users[name] = f"${{TEST_USER_PASSWORD_{len(password)}}}"
        env[f"TEST_USER_PASSWORD_{len(password)}"] = password
        leaks += _leaks(password, name)
    rep_ids = [f"couchsync-secret-{uuid.uuid4().hex[:8]}"]
    sections: dict[str, Any] = {
        "databases": {db_name: {"documents": [{"_id": "a"}]}},
        "users": {name: {"password": value, "roles": []} for name, value in users.items()},
    }
    if is_couchdb:  # PouchDB Server's replicator crashes the server on an unreachable source
        replications = {rep_ids[0]: {
            "source": f"http://someone:{replication_secret}@127.0.0.1:9/nowhere",
            "target": {"url": "http://127.0.0.1:9/elsewhere",
                       "headers": {"Authorization": f"Basic {header}"}}}}
        for password in REPLICATION_PASSWORDS:
            rep_ids.append(f"{rep_ids[0]}-{len(password)}")
            user = f"someone{len(password)}"
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            replications[rep_ids[-1]] = {
                "source": f"http://{user}:{password}@127.0.0.1:9/nowhere",
                "target": {"url": "http://127.0.0.1:9/elsewhere",
                           "headers": {"Authorization": f"Basic {basic}"}}}
            leaks += _leaks(password, user)
        sections["replications"] = replications
    manifest = _write(tmp_path / "secrets.yaml", sections)
    saved = tmp_path / "saved.json"
    unreachable = f"http://admin:{url_secret}@127.0.0.1:9"

    def no_secret_in(text: str, where: str) -> None:
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {where}"
        for leak in leaks:
            assert leak not in text, f"{leak!r} in {where}"

    try:
        for expected, args in (
                (0, ["validate", manifest]),
                (0, ["plan", manifest]),
                (0, ["plan", manifest, "--format", "json"]),
                (0, ["plan", manifest, "--format", "markdown"]),
                (2, ["plan", manifest, "--detailed-exitcode"]),  # changes to make
                (0, ["plan", manifest, "--out", str(saved)]),
                (1, ["apply", manifest]),  # refused: no terminal to confirm on
                (1, ["apply", manifest, "--yes", "--url", unreachable,
                     "--wait-for-server", "0.5"]),
                (0, ["apply", "--plan", str(saved), "-v"]),
                (0, ["plan", manifest, "--detailed-exitcode"]),  # applied: no changes
                (0, ["apply", manifest, "--yes", "--format", "json"]),
                (0, ["export", "--users", "--replications", "--db", db_name])):
            done = run(couch_url, *args, env=env)
            no_secret_in(done.stdout + done.stderr, f"the output of {args}")
            assert done.returncode == expected, (args, done.stdout[-2000:], done.stderr)
        assert saved.exists()
        no_secret_in(saved.read_text(), "the saved plan")
        for name, value in users.items():  # set as given, not as masked
            password = env[value[2:-1]]
            assert _login(couch_url, name, password).status_code == 200, name
    finally:
        for rep_id in rep_ids:
            _delete(couch_url, "_replicator", rep_id)
        for name in users:
            if name != user_name:  # the fixture deletes that one
                _delete(couch_url, "_users", USER_PREFIX + name)


def test_a_brand_new_cluster_is_set_up_in_one_apply(tmp_path: Path,
                                                    tmp_path_factory: pytest.TempPathFactory,
                                                    ) -> None:
    """config → system databases → databases → security → documents → users →
    replications, on a cluster that lacks _users and _replicator, in one apply."""
    cluster = couchdb_of_its_own(tmp_path_factory, "to start a brand-new cluster of its own",
                                 nodes=3)
    url = cluster.start()
    try:
        for system in ("_users", "_replicator"):
            httpx.delete(f"{url}/{system}", timeout=30).raise_for_status()
        manifest = _write(tmp_path / "server.yaml", {
            "config": {"couch_peruser": {"enable": False},
                       "cors": {"origins": "https://app.example.com"}},
            "databases": {"orders": {
                "security": {"members": {"names": ["app"], "roles": []}},
                "documents": [{"_id": f"o{i}"} for i in range(3)]}},
            "users": {"app": {"password": "${APP_PASSWORD}", "roles": ["app"]}},
            "replications": {"orders-copy": {
                "source": {"url": f"{_bare(url)}/orders", "auth": {"basic": {
                    "username": "admin", "password": "${ADMIN_PASSWORD}"}}},
                "target": {"url": f"{_bare(url)}/orders-copy", "auth": {"basic": {
                    "username": "admin", "password": "${ADMIN_PASSWORD}"}}},
                "create_target": True}}})
        env = {"APP_PASSWORD": "app-pw-123", "ADMIN_PASSWORD": "own-server-pw"}
        applied = run(url, "apply", manifest, "--yes", "--wait-for-server", "60", env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "+ db:_users" in applied.stdout and "+ db:_replicator" in applied.stdout
        for node in _nodes(url):
            assert _section(url, node, "cors")["origins"] == "https://app.example.com"
        assert _login(url, "app", "app-pw-123").status_code == 200
        _wait_for_copies(url, "orders-copy", 3)
        replanned = run(url, "plan", manifest, "--detailed-exitcode", env=env)
        assert replanned.returncode == 0, replanned.stdout
    finally:
        cluster.stop()
