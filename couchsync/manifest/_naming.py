"""``--db-prefix`` / ``--db-suffix``: the manifests' database names mapped to the names
on the server, e.g. one set of databases per pull request (``pr-123-orders``).

Every declared name and pattern is mapped (``orders`` → ``pr-123-orders``,
``tenant-*`` → ``pr-123-tenant-*``), and ``--only`` selectors the same way, so a plan
shows the real names. System databases (``_users``) are never mapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from couchsync.manifest.model import DatabaseSpec, DesiredState

__all__ = ["NO_MAPPING", "DatabaseNames"]

#: What CouchDB allows in a database name after its first letter.
_NAME_CHARS = re.compile(r"[a-z0-9_$()+/-]*\Z")


@dataclass(frozen=True, slots=True)
class DatabaseNames:
    """A mapping of declared database names to real ones: ``prefix + name + suffix``."""

    prefix: str = ""
    suffix: str = ""

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
        return self.real(database) + slash + rest

    def apply(self, state: DesiredState) -> DesiredState:
        """``state`` with every database and pattern under its real name."""
        if not self:
            return state

        def mapped(specs: dict[str, DatabaseSpec]) -> dict[str, DatabaseSpec]:
            return {self.real(name): replace(spec, name=self.real(name))
                    for name, spec in specs.items()}

        return replace(state, databases=mapped(state.databases),
                       patterns=mapped(state.patterns))


#: The identity: every database under its declared name.
NO_MAPPING = DatabaseNames()
