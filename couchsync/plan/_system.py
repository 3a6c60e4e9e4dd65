"""How documents of ``_users`` and ``_replicator`` compare (why by hash: docs/design-notes.md),
and how secrets never show: ``shown`` masks passwords, URL credentials and
``Authorization``/``Cookie`` headers, ``shown_secrets`` the values secret variables gave."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from couchsync._names import REPLICATOR_DB, USERS_DB

_HASH_KEYS = ("password_scheme", "pbkdf2_prf", "salt", "iterations", "derived_key",
              "password_sha")
#: What the server writes into documents of each system database.
SERVER_WRITTEN = {
    USERS_DB: frozenset(_HASH_KEYS),
    REPLICATOR_DB: frozenset({"owner", "_replication_state", "_replication_state_time",
                              "_replication_state_reason", "_replication_stats",
                              "_replication_id", "_replication_start_time"}),
}

MASK = "***"
CHANGED = "(changed)"
#: Keys (any letter case) whose string values are secrets: masked here, taken out by export.
SECRET_KEYS = frozenset({"password", "authorization", "cookie", "token", "secret"})
#: A URL with a password in its userinfo: group 1 up to the ':', group 2 the password.
URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):([^/@]*)@", re.IGNORECASE)


#: A config ``section/key`` whose value is a credential: the words above, JWT signing keys.
CONFIG_SECRET = re.compile("|".join((*sorted(SECRET_KEYS), "jwt_keys/", "private")),
                           re.IGNORECASE)


def shown_config(section_key: str, value: Any, other: Any = None) -> Any:
    """A config step's ``before``/``after`` (node → value) as a plan may print or save
    it: the values of a secret-looking key (``chttpd_auth/secret``, ``jwt_keys/…``)
    masked, as ``shown`` masks document secrets."""
    if not isinstance(value, dict) or not CONFIG_SECRET.search(section_key):
        return value
    return {node: None if item is None else _mark(item, _at(other, node))
            for node, item in value.items()}


def password_matches(password: str, stored: dict[str, Any]) -> bool:
    """Whether ``password`` is the one whose hash the user document ``stored`` holds.

    False when it holds none, or one of a scheme couchsync does not know (then the
    password is written again). Each answer is remembered for the process: a hash is
    costly by design, and apply's re-plan under the lock asks again.
    """
    return _matches(password, *(str(stored.get(key, "")) for key in _HASH_KEYS))


def check_passwords(pairs: Iterable[tuple[str, dict[str, Any]]], parallel: int) -> None:
    """Check (``password_matches``) the (password, stored user document) pairs,
    ``parallel`` at a time (hashlib gives up the GIL while it hashes), so that the planner
    finds every answer remembered."""
    with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="couchsync-pbkdf2") as pool:
        list(pool.map(lambda pair: password_matches(*pair), pairs))


@functools.lru_cache(maxsize=4096)
def _matches(password: str, scheme: str, prf: str, salt: str, iterations: str, derived: str,
             sha: str) -> bool:
    try:
        if scheme == "pbkdf2":
            digest = hashlib.pbkdf2_hmac(prf or "sha1", password.encode(), salt.encode(),
                                         int(iterations), len(derived) // 2)
            return hmac.compare_digest(digest.hex(), derived.lower())
        if scheme == "simple":
            digest_text = hashlib.sha1((password + salt).encode()).hexdigest()
            return hmac.compare_digest(digest_text, sha.lower())
    except (TypeError, ValueError):
        return False  # a malformed hash: written again
    return False


def shown(database: str, value: Any, other: Any = None) -> Any:
    """``value`` (a step's ``before`` or ``after``) as a plan may print or save it: in
    ``_users`` and ``_replicator``, secrets become ``***``, or ``(changed)`` where
    ``other`` (the step's other side) differs, and a user's hash fields are left out.
    Other databases' values, the user's own data, are shown in full."""
    if database not in SERVER_WRITTEN or not isinstance(value, dict):
        return value
    if database == USERS_DB:
        value = {key: item for key, item in value.items() if key not in SERVER_WRITTEN[USERS_DB]}
        if "password" in value:  # an update writes it only when it changed
            value["password"] = MASK if other is None else CHANGED
    return _masked(value, other)


def _masked(value: Any, other: Any, secret: bool = False) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item, _at(other, key), key.lower() in SECRET_KEYS)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, _at(other, i)) for i, item in enumerate(value)]
    if isinstance(value, str) and (secret or URL_PASSWORD.match(value)):
        if secret:
            return value if value in (MASK, CHANGED) else _mark(value, other)
        return URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{_mark(value, other)}@", value)
    return value


def _mark(value: str, other: Any) -> str:
    return MASK if other is None or other == value else CHANGED


def _at(other: Any, key: str | int) -> Any:
    """What ``other`` (the step's other side) holds at ``key``, if anything."""
    if isinstance(other, dict):
        return other.get(key)
    return other[key] if isinstance(other, list) and isinstance(key, int) \
        and key < len(other) else None


def shown_secrets(value: Any, other: Any, secrets: frozenset[str], after: bool) -> Any:
    """``value`` (a step's ``before``, or its ``after`` when ``after``) with each of
    ``secrets`` inside its strings replaced by ``***``. A ``before`` string whose
    counterpart in ``after`` (``other``, same path) holds a secret is ``***`` whole: it
    may hold the old value of that secret, which couchsync cannot know; an ``after``
    string that would then read the same as its ``before`` is ``(changed)``."""
    if isinstance(value, dict):
        return {key: shown_secrets(item, _at(other, key), secrets, after)
                for key, item in value.items()}
    if isinstance(value, list):
        return [shown_secrets(item, _at(other, i), secrets, after)
                for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    if not after:
        return (_replaced(value, secrets) if _holds(value, secrets)
                else MASK if isinstance(other, str) and _holds(other, secrets) else value)
    if not _holds(value, secrets):
        return value
    masked = _replaced(value, secrets)
    if isinstance(other, str) and other != value and masked == shown_secrets(
            other, value, secrets, after=False):
        return CHANGED
    return masked


def _replaced(text: str, secrets: frozenset[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # the longest first
        text = text.replace(secret, MASK)
    return text


def _holds(text: str, secrets: frozenset[str]) -> bool:
    return any(secret in text for secret in secrets)
