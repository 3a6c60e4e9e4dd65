"""The whole-server sections of a manifest: ``config``, ``users``, ``replications``, ``prune``.

Users and replications become documents of ``_users`` and ``_replicator`` (planned, owned
and pruned like any seed document); ``config`` stays in ``DesiredState.config``. A user's
password is in the document's JSON but not its ``hash``: the ownership record holds
nothing derived from it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator, Set
from typing import Any

from couchsync._canonical import NotJSONNumber, canonical_json, hash_canonical
from couchsync._names import REPLICATOR_DB, USER_PREFIX, USERS_DB
from couchsync.manifest._problems import Path, conflict
from couchsync.manifest._yaml import Positions
from couchsync.manifest.model import (
    ConfigSetting,
    DatabaseSpec,
    DesiredState,
    DocumentSpec,
    SourcePos,
)

#: What CouchDB accepts as a database name (shown in a message: it cannot be a password).
_DATABASE_NAME = re.compile(r"[a-z][a-z0-9_$()+/-]*")
#: The top-level sections this module builds (the loader hands them over).
SERVER_SECTIONS = ("config", "users", "replications", "prune")


def config_string(value: str | bool | int | float) -> str:
    """The string the server stores for a manifest's config value: strings as written,
    ``true``/``false`` for booleans, numbers as JSON writes them (``8``, ``0.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def endpoint_problem(side: str, endpoint: object) -> str | None:
    """Why CouchDB 3 would refuse a replication's ``source`` or ``target``: it takes only
    ``http://`` and ``https://`` URLs (so written), as a string or ``{url: ...}``."""
    url = endpoint.get("url") if isinstance(endpoint, dict) else endpoint
    if not isinstance(url, str) or url.startswith(("http://", "https://")):
        return None  # not a string: the schema says so
    if _DATABASE_NAME.fullmatch(url):
        return (f"{side} {url!r} is a database name, and CouchDB 3 refuses local "
                f"endpoints (local_endpoints_not_supported): give its URL, "
                f"e.g. http://HOST:5984/{url}")
    # Not shown: a URL written wrong may still hold a password.
    return (f"{side} is not an http:// or https:// URL (written so, in lower case): "
            "CouchDB refuses it (local_endpoints_not_supported)")


#: Standard base64, padded (what CouchDB's ``base64:decode`` reads; it skips whitespace).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def basic_header_problem(side: str, endpoint: object) -> tuple[str, str] | None:
    """The header name and why, when an endpoint's ``Authorization: Basic ...`` header is
    not base64 of ``user:password``: CouchDB 3 then refuses the document or replicates
    without the credentials."""
    headers = endpoint.get("headers") if isinstance(endpoint, dict) else None
    if not isinstance(headers, dict):
        return None
    for name, value in headers.items():
        if not (isinstance(name, str) and name.lower() == "authorization"
                and isinstance(value, str)):
            continue
        scheme, space, credentials = value.partition(" ")
        if scheme.lower() != "basic" or not space:
            continue  # another scheme (Bearer ...): the server passes it on as written
        token = re.sub(r"[ \t\r\n]", "", credentials)
        decoded = base64.b64decode(token) if _BASE64.fullmatch(token) else b""
        if b":" not in decoded:
            # Not shown: it is a credential.
            return name, (f"{side}'s {name} header is not Basic base64 of user:password: "
                          "CouchDB refuses the document (forbidden: {error,badarg}) or "
                          "replicates without the credentials; write base64 of "
                          "user:password, or auth: {basic: {username, password}}")
    return None


def _endpoint_problems(path: Path, body: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """Where and why CouchDB 3 would refuse the endpoints of replication ``body``."""
    for side in ("source", "target"):
        endpoint = body.get(side)
        if (message := endpoint_problem(side, endpoint)) is not None:
            yield (*path, side, *(("url",) if isinstance(endpoint, dict) else ())), message
        if (header := basic_header_problem(side, endpoint)) is not None:
            yield (*path, side, "headers", header[0]), header[1]


class ServerSections:
    """Builds the server sections of each manifest file into ``state``, merging files:
    one key, user or replication is defined once; ``prune`` flags must agree."""

    def __init__(self, state: DesiredState, problem: Callable[[SourcePos, str, Path], None],
                 add_document: Callable[[DatabaseSpec, DocumentSpec, Path], None]) -> None:
        self.state = state
        self._problem = problem  # the builder's: one list of problems
        self._add_document = add_document  # documents go in once every file is declared
        self._prune: dict[str, tuple[bool, SourcePos]] = {}

    def add(self, file: str, data: dict[str, Any], positions: Positions,
            broken: Set[Path]) -> None:
        """Merge one schema-valid file's server sections, leaving out every entry with a
        problem (a path of ``broken`` inside it)."""

        def at(path: Path, key: bool = False) -> SourcePos:
            return SourcePos(file, *(positions.key(path) if key else positions.value(path)))

        def entries(*path: str) -> list[tuple[str, Any]]:
            """The entries of the mapping at ``path``, but those holding a problem."""
            value: Any = data
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, dict) or any(path[:len(part)] == part
                                                  for part in broken):
                return []
            return [(key, entry) for key, entry in value.items()
                    if not any(part[:len(path) + 1] == (*path, key) for part in broken)]

        for section, _keys in entries("config"):
            for key, value in entries("config", section):
                path = ("config", section, key)
                self._add_config(section, key, config_string(value), at(path), path)
        for name, fields in entries("users"):
            self._add_user(file, name, fields, at(("users", name), key=True))
        for doc_id, body in entries("replications"):
            where, base = at(("replications", doc_id), key=True), ("replications", doc_id)
            refused = list(_endpoint_problems(base, body))
            for place, message in refused:
                self._problem(at(place), f"replication {doc_id!r}: {message}", place)
            spec = None if refused else self._spec({**body, "_id": doc_id}, where, base)
            if spec is not None:
                self._add_document(self._database(REPLICATOR_DB, where), spec, base)
        for section, value in entries("prune"):
            self._set_prune(section, value, at(("prune", section)))

    def _add_config(self, section: str, key: str, value: str, where: SourcePos,
                    path: Path) -> None:
        first = self.state.config.setdefault(section, {}).setdefault(
            key, ConfigSetting(value, where))
        if first.value != value:
            self._problem(where, f"conflicting config {section}/{key}: "
                          f"{conflict(value, first.value, first.source)}", path)

    def _add_user(self, file: str, name: str, fields: dict[str, Any],
                  where: SourcePos) -> None:
        body: dict[str, Any] = {"roles": [], **fields, "_id": USER_PREFIX + name,
                                "name": name, "type": "user"}
        password_file = body.pop("password_file", None)
        if password_file is not None and "\0" in password_file:  # open() would raise ValueError
            self._problem(where, f"password_file {password_file!r} of user {name!r}: a file "
                          "name cannot hold a NUL character", ("users", name))
            return
        if password_file is not None:
            path = os.path.join(os.path.dirname(file), password_file)
            try:
                with open(path, encoding="utf-8") as handle:
                    body["password"] = handle.readline().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                self._problem(where, f"cannot read password_file {password_file!r} of user "
                              f"{name!r} ({path}): {reason or exc}", ("users", name))
                return
            if not body["password"]:
                self._problem(where, f"password_file {password_file!r} of user {name!r} "
                              "is empty", ("users", name))
                return
        spec = self._spec(body, where, ("users", name))
        if spec is None:
            return
        if "password" in body:
            without = {key: value for key, value in body.items() if key != "password"}
            spec.digest, spec.secret = hash_canonical(canonical_json(without)), True
        self._add_document(self._database(USERS_DB, where), spec, ("users", name))

    def _spec(self, body: dict[str, Any], where: SourcePos, path: Path) -> DocumentSpec | None:
        try:
            return DocumentSpec.from_body(body, where)
        except NotJSONNumber as exc:  # an integer past a double's range: the schema allows it
            self._problem(where, str(exc), path)
            return None

    def _set_prune(self, section: str, value: bool, where: SourcePos) -> None:
        first = self._prune.get(section)
        if first is not None and first[0] != value:
            self._problem(where, f"conflicting prune.{section}: "
                          f"{conflict(value, *first)}", ("prune", section))
            return
        self._prune[section] = (value, where)
        if section == "config":
            self.state.prune_config = value
        else:
            db = self._database(USERS_DB if section == "users" else REPLICATOR_DB, where)
            db.prune = value
            db.sources.setdefault("prune", where)

    def _database(self, name: str, where: SourcePos) -> DatabaseSpec:
        return self.state.databases.setdefault(name, DatabaseSpec(name=name, source=where))
