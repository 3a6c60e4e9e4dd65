"""The whole server's pure parts: config strings and steps, the password check against
stored hashes, secrets masked in shown values, and the _users/_replicator comparison."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from couchsync._names import CONFIG, REPLICATOR_DB, USERS_DB
from couchsync.manifest import load_manifests
from couchsync.manifest._server import USER_PREFIX, config_string
from couchsync.manifest.model import ConfigSetting, DesiredState, SourcePos
from couchsync.plan import Action, Step, StepKind
from couchsync.plan._config import LiveConfig, plan_config
from couchsync.plan._diff import content_step
from couchsync.plan._state import LiveDoc
from couchsync.plan._system import CHANGED, MASK, password_matches, shown

HERE = SourcePos("m.yaml", 1, 1)
NODES = ["n1@h", "n2@h", "n3@h"]


@pytest.mark.parametrize(("value", "stored"), [
    ("https://a", "https://a"), (True, "true"), (False, "false"), (8, "8"), (8.0, "8"),
    (0.5, "0.5"), ("", ""),
])
def test_config_values_become_the_strings_the_docs_promise(value: object, stored: str) -> None:
    assert config_string(value) == stored  # type: ignore[arg-type]


def _desired(**sections: dict[str, str]) -> DesiredState:
    return DesiredState(config={section: {key: ConfigSetting(value, HERE)
                                          for key, value in keys.items()}
                                for section, keys in sections.items()})


def _live(values: dict[str, dict[str, dict[str, str]]],
          managed: set[str] = frozenset()) -> LiveConfig:  # type: ignore[assignment]
    return LiveConfig(NODES, {node: values.get(node, {}) for node in NODES},
                      {node: set(managed) for node in NODES})


def test_a_key_set_nowhere_is_created_on_every_node() -> None:
    [step] = plan_config(_desired(cors={"origins": "x"}), _live({}))
    assert (step.action, step.kind, step.database, step.address) == (
        Action.CREATE, StepKind.CONFIG, CONFIG, "config:cors/origins")
    assert step.before is None and step.after == dict.fromkeys(NODES, "x")


def test_drift_on_one_node_is_an_update_showing_every_node() -> None:
    live = _live({"n1@h": {"cors": {"origins": "x"}}, "n2@h": {"cors": {"origins": "x"}},
                  "n3@h": {"cors": {"origins": "*"}}})
    [step] = plan_config(_desired(cors={"origins": "x"}), live)
    assert step.action is Action.UPDATE
    assert step.before == {"n1@h": "x", "n2@h": "x", "n3@h": "*"}
    assert step.reason == "differs on 1 of 3 nodes"
    assert plan_config(_desired(cors={"origins": "*"}), live)[0].reason == \
        "differs on 2 of 3 nodes"


def test_the_same_value_everywhere_plans_nothing() -> None:
    live = _live({node: {"cors": {"origins": "x"}} for node in NODES})
    assert plan_config(_desired(cors={"origins": "x"}), live) == []
    assert plan_config(_desired(), None) == []


def test_prune_deletes_only_recorded_keys_the_manifests_dropped() -> None:
    live = _live({node: {"cors": {"origins": "x", "headers": "h", "methods": "GET"}}
                  for node in NODES}, managed={"cors/origins", "cors/headers", "log/level"})
    desired = _desired(cors={"origins": "x"})
    assert plan_config(desired, live) == []  # without prune: nothing deleted
    desired.prune_config = True
    [step] = plan_config(desired, live)  # methods: not couchsync's; log/level: gone already
    assert (step.action, step.id, step.before) == (
        Action.DELETE, "cors/headers", dict.fromkeys(NODES, "h"))


def _pbkdf2(password: str, prf: str, salt: str, iterations: int, size: int) -> dict[str, object]:
    key = hashlib.pbkdf2_hmac(prf, password.encode(), salt.encode(), iterations, size).hex()
    return {"password_scheme": "pbkdf2", "pbkdf2_prf": prf, "salt": salt,
            "iterations": iterations, "derived_key": key}


def test_passwords_are_checked_against_each_stored_scheme() -> None:
    sha256 = _pbkdf2("pw", "sha256", "a1b2", 1000, 32)  # CouchDB 3.4+
    sha1 = {k: v for k, v in _pbkdf2("pw", "sha1", "c3d4", 10, 20).items() if k != "pbkdf2_prf"}
    simple = {"password_scheme": "simple", "salt": "e5",
              "password_sha": hashlib.sha1(b"pwe5").hexdigest()}
    for stored in (sha256, sha1, simple):
        assert password_matches("pw", stored)
        assert not password_matches("pW", stored)
    assert not password_matches("pw", {})  # no hash stored
    assert not password_matches("pw", {**sha256, "iterations": "many"})  # malformed
    assert not password_matches("pw", {"password_scheme": "bcrypt", "hash": "x"})


def _user(body: dict[str, object], rev: str = "1-a") -> LiveDoc:
    return LiveDoc(rev, {"_id": USER_PREFIX + "bob", "_rev": rev, "name": "bob",
                         "type": "user", **body})


def test_a_user_whose_password_matches_the_stored_hash_plans_nothing() -> None:
    live = _user({"roles": ["a"], **_pbkdf2("pw", "sha256", "s", 1000, 32)})
    desired = {"_id": USER_PREFIX + "bob", "name": "bob", "type": "user", "roles": ["a"],
               "password": "pw"}
    assert content_step(StepKind.DOCUMENT, USERS_DB, desired["_id"], desired, live,
                        "r") is None


def test_a_roles_change_keeps_the_stored_hash_and_never_sends_the_password() -> None:
    stored = _pbkdf2("pw", "sha256", "s", 1000, 32)
    live = _user({"roles": ["a"], **stored})
    for desired in ({"name": "bob", "type": "user", "roles": ["a", "b"], "password": "pw"},
                    {"name": "bob", "type": "user", "roles": ["a", "b"]}):  # undeclared
        step = content_step(StepKind.DOCUMENT, USERS_DB, USER_PREFIX + "bob", desired, live,
                            "differs from the manifests")
        assert step is not None and step.reason == "differs from the manifests"
        assert "password" not in step.after
        assert {k: step.after[k] for k in stored} == stored


def test_a_changed_password_is_written_and_shown_only_as_changed() -> None:
    live = _user({"roles": [], **_pbkdf2("old", "sha256", "s", 1000, 32)})
    desired = {"name": "bob", "type": "user", "roles": [], "password": "new-secret"}
    step = content_step(StepKind.DOCUMENT, USERS_DB, USER_PREFIX + "bob", desired, live, "r")
    assert step is not None and step.reason == "the password differs"
    assert step.after["password"] == "new-secret" and "derived_key" not in step.after
    view = step.to_dict()
    assert view["after"]["password"] == CHANGED and "new-secret" not in repr(step)
    assert "new-secret" not in str(view)


def test_fields_the_replicator_writes_are_not_drift() -> None:
    body = {"source": "http://h/a", "target": "http://h/b"}
    live = LiveDoc("3-x", {"_id": "r", "_rev": "3-x", **body, "owner": "admin",
                           "_replication_state": "completed",
                           "_replication_stats": {"docs_written": 4},
                           "_replication_state_time": "2026-12-05T23:47:23Z"})
    assert content_step(StepKind.DOCUMENT, REPLICATOR_DB, "r", body, live, "r") is None
    changed = content_step(StepKind.DOCUMENT, REPLICATOR_DB, "r",
                           {**body, "continuous": True}, live, "r")
    assert changed is not None and changed.action is Action.UPDATE
    assert "owner" not in changed.after and "_replication_state" not in changed.before


def test_secrets_in_replications_are_masked_and_a_changed_one_says_so() -> None:
    before = {"source": {"url": "http://u:old@h/a", "auth": {"basic": {"password": "p1"}}},
              "target": {"url": "http://h/b", "headers": {"Authorization": "Basic eA=="}}}
    after = {"source": {"url": "http://u:new@h/a", "auth": {"basic": {"password": "p1"}}},
             "target": {"url": "http://h/b", "headers": {"Authorization": "Basic eA=="}}}
    step = Step(Action.UPDATE, StepKind.DOCUMENT, REPLICATOR_DB, "r", before=before,
                after=after, rev="1-a")
    view = step.to_dict()
    assert view["before"]["source"]["url"] == f"http://u:{MASK}@h/a"
    assert view["after"]["source"]["url"] == f"http://u:{CHANGED}@h/a"
    assert view["after"]["source"]["auth"]["basic"]["password"] == MASK
    assert view["after"]["target"]["headers"]["Authorization"] == MASK
    assert step.after["source"]["auth"]["basic"]["password"] == "p1"  # apply writes it
    seeded = {"password": "a user's data"}
    assert shown("orders", seeded) == seeded  # other databases are shown as they are


def test_users_and_replications_load_as_system_database_documents(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-a-file\nsecond line ignored\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nusers:\n  bob: {password: '${BOB_PW}', email: b@x}\n"
                        "  carol: {password_file: pw.txt, roles: [ops]}\n  dave: {}\n"
                        "replications:\n  r1: {source: http://h/a, target: http://h/b}\n"
                        "prune: {users: true}\n")
    state = load_manifests([manifest], environ={"BOB_PW": "bob-secret"})
    users = state.databases[USERS_DB]
    assert users.prune and not state.databases[REPLICATOR_DB].prune
    bob = users.documents[USER_PREFIX + "bob"]
    assert bob.body == {"_id": USER_PREFIX + "bob", "name": "bob", "type": "user",
                        "roles": [], "email": "b@x", "password": "bob-secret"}
    assert bob.secret and users.documents[USER_PREFIX + "carol"].body["password"] == \
        "from-a-file"
    dave = users.documents[USER_PREFIX + "dave"]
    assert not dave.secret and "password" not in dave.body
    # The record's content hash leaves the password out: it changes with other fields only.
    other = load_manifests([manifest], environ={"BOB_PW": "another"})
    assert other.databases[USERS_DB].documents[bob.id].hash == bob.hash
    assert state.databases[REPLICATOR_DB].documents["r1"].body == {
        "_id": "r1", "source": "http://h/a", "target": "http://h/b"}


def test_secret_looking_config_keys_are_masked_in_plans() -> None:
    step = Step(Action.UPDATE, StepKind.CONFIG, CONFIG, "chttpd_auth/secret",
                before={"n1@h": "s2", "n2@h": "s1"}, after={"n1@h": "s1", "n2@h": "s1"})
    assert step.to_dict()["before"] == {"n1@h": MASK, "n2@h": MASK}
    assert step.to_dict()["after"] == {"n1@h": CHANGED, "n2@h": MASK}
    assert "s1" not in repr(step) and "s2" not in repr(step)
    plain = Step(Action.UPDATE, StepKind.CONFIG, CONFIG, "cors/origins",
                 before={"n1@h": "a"}, after={"n1@h": "b"})
    assert plain.to_dict()["after"] == {"n1@h": "b"}


def test_a_markdown_plan_names_the_node_config_as_such() -> None:
    from couchsync.plan import Plan, render_markdown

    step = Step(Action.UPDATE, StepKind.CONFIG, CONFIG, "cors/origins",
                before={"n1@h": "*"}, after={"n1@h": "x"}, reason="differs on 1 of 1 nodes")
    text = render_markdown(Plan([step]).view())
    assert "| node config (every node) | 0 | 1 | 0 |" in text
    assert "#### node config (every node)" in text and "db:_config" not in text


def test_passwords_checked_ahead_in_parallel_are_remembered_for_the_planner() -> None:
    from couchsync.plan._system import _matches, check_passwords

    stored = [_pbkdf2(f"pw-{i}", "sha256", f"salt-{i}", 2000, 32) for i in range(6)]
    check_passwords([(f"pw-{i}", doc) for i, doc in enumerate(stored)], parallel=3)
    before = _matches.cache_info()
    assert all(password_matches(f"pw-{i}", doc) for i, doc in enumerate(stored))
    after = _matches.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (6, 0)
