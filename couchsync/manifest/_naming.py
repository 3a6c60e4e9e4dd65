"""``--db-prefix`` / ``--db-suffix``: the manifests' database names mapped to the names
on the server, e.g. one set of databases per pull request (``pr-123-orders``).

System databases are shared by every prefix, so what the manifests declare in them is
isolated or refused: replications get mapped ids and their endpoints on this server
mapped (a pull request's replication copies its own databases, never production's);
users, config and pruning of replications are refused.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field, replace

from couchsync._canonical import canonical_json
from couchsync._names import REPLICATOR_DB, USERS_DB
from couchsync.manifest._problems import ManifestError, Problem
from couchsync.manifest.model import DatabaseSpec, DesiredState, DocumentSpec, SourcePos

__all__ = ["DatabaseNames"]

#: What CouchDB allows in a database name after its first letter.
_NAME_CHARS = re.compile(r"[a-z0-9_$()+/-]*\Z")
#: Host names that all mean "this machine" (as the server sees a replication endpoint).
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class DatabaseNames:
    """Declared database names mapped to real ones, ``prefix + name + suffix``; ``server``:
    the URL of the server planned (replication endpoints on it are mapped)."""

    prefix: str = ""
    suffix: str = ""
    server: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for option, value in (("--db-prefix", self.prefix), ("--db-suffix", self.suffix)):
            if not _NAME_CHARS.match(value):
                raise ValueError(f"{option} {value!r}: a database name may hold only "
                                 "lowercase letters, digits and _ $ ( ) + - /")
        if self.prefix and not self.prefix[0].isalpha():
            raise ValueError(f"--db-prefix {self.prefix!r}: a database name starts with a "
                             "lowercase letter")

    def __bool__(self) -> bool:
        return bool(self.prefix or self.suffix)

    def real(self, name: str) -> str:
        """The name on the server of the database the manifests call ``name``."""
        return name if name.startswith("_") else f"{self.prefix}{name}{self.suffix}"

    def selector(self, text: str) -> str:
        """An ``--only`` selector (``DB``, ``DB/DOCID``, a pattern) with its database mapped."""
        database, slash, rest = text.partition("/")
        if database == REPLICATOR_DB and rest:
            return f"{database}/{self.prefix}{rest}{self.suffix}"
        return self.real(database) + slash + rest

    def apply(self, state: DesiredState) -> DesiredState:
        """``state`` under the real names; ``ManifestError`` for what is refused."""
        if not self:
            return state
        self._refuse(state)

        def mapped(specs: dict[str, DatabaseSpec]) -> dict[str, DatabaseSpec]:
            return {self.real(name): self._mapped_spec(spec) for name, spec in specs.items()}

        return replace(state, databases=mapped(state.databases),
                       patterns=mapped(state.patterns))

    def _options(self) -> str:
        return " ".join(f"{option} {value}" for option, value in
                        (("--db-prefix", self.prefix), ("--db-suffix", self.suffix)) if value)

    def _refuse(self, state: DesiredState) -> None:
        problems = []
        users = state.databases.get(USERS_DB)
        if users is not None:
            where = next(iter(users.documents.values())).source if users.documents \
                else users.source
            problems.append(Problem(*where, f"users refused with {self._options()}: _users "
                                    "is shared by every prefix, and a prefixed run never "
                                    "edits production's accounts; plan users without the "
                                    "option, from a manifest of their own"))
        replications = state.databases.get(REPLICATOR_DB)
        if replications is not None and replications.prune:
            where = replications.sources.get("prune", replications.source)
            problems.append(Problem(*where, f"prune.replications refused with "
                                    f"{self._options()}: _replicator is shared by every "
                                    "prefix, so pruning it would judge production's "
                                    "replications too"))
        if state.config or state.prune_config:
            settings = [setting for keys in state.config.values() for setting in keys.values()]
            where = settings[0].source if settings else SourcePos(state.files[0], 0, 0)
            problems.append(Problem(*where, f"config refused with {self._options()}: the "
                                    "node config is shared by every prefix, and a prefixed "
                                    "run never edits production's; plan config without the "
                                    "option, from a manifest of its own"))
        if problems:
            raise ManifestError(problems)

    def _mapped_spec(self, spec: DatabaseSpec) -> DatabaseSpec:
        if spec.name != REPLICATOR_DB:
            return replace(spec, name=self.real(spec.name))
        documents = [self._replication(doc) for doc in spec.documents.values()]
        # Its documents differ by the names mapped: fingerprinted one by one, as mapped.
        return replace(spec, documents={doc.id: doc for doc in documents},
                       documents_digest=None)

    def _replication(self, doc: DocumentSpec) -> DocumentSpec:
        """Replication ``doc`` with its id and its endpoints on this server mapped."""
        body = doc.body
        body["_id"] = f"{self.prefix}{doc.id}{self.suffix}"
        for key in ("source", "target"):  # the fields that name a database
            endpoint = body.get(key)
            if isinstance(endpoint, str):
                body[key] = self._endpoint(endpoint)
            elif isinstance(endpoint, dict) and isinstance(endpoint.get("url"), str):
                endpoint["url"] = self._endpoint(endpoint["url"])
        return replace(doc, id=body["_id"], inline=canonical_json(body), digest=None,
                       offset=-1, length=0)

    def _endpoint(self, url: str) -> str:
        """``url`` with its database mapped when it is a database of this server."""
        server, endpoint = urllib.parse.urlsplit(self.server), urllib.parse.urlsplit(url)
        try:
            same = (_host(endpoint) == _host(server) and endpoint.port == server.port
                    and endpoint.scheme == server.scheme)
        except ValueError:  # a port that is no number: not this server's URL
            return url
        base = server.path.rstrip("/") + "/"
        if not same or not endpoint.path.startswith(base):
            return url
        database = urllib.parse.unquote(endpoint.path[len(base):].rstrip("/"))
        if not database or database.startswith("_"):
            return url
        path = base + urllib.parse.quote(self.real(database), safe="")
        return urllib.parse.urlunsplit(endpoint._replace(path=path))


def _host(url: urllib.parse.SplitResult) -> str | None:
    host = url.hostname
    return "localhost" if host in _LOOPBACK else host
