"""Server URLs: parsing, credentials, masking, and quoting of names and ids.

Default ports: ``http://host`` means CouchDB's own port 5984 (as pycouchdb's
``Client('http://admin:admin@localhost')`` expects). ``https://host`` keeps the
standard 443: a TLS URL without a port is almost always a proxy or a hosted
service (Cloudant); CouchDB's native TLS listener (6984) must be named explicitly.
A path prefix (CouchDB behind a proxy at ``/couchdb/``) is kept for every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ._errors import InvalidDatabaseName

__all__ = ["ServerAddress", "check_db_name", "db_path", "doc_path", "parse_server_url"]

DEFAULT_PORTS = {"http": 5984, "https": 443}
_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
_PREFIXES = ("_design/", "_local/")


@dataclass(frozen=True)
class ServerAddress:
    """Where the server is, without credentials in ``base``; ``masked`` is safe to show."""

    base: str  # scheme://host:port[/prefix], no trailing slash, no credentials
    user: str | None
    password: str | None

    @property
    def masked(self) -> str:
        """The URL with the user name and ``***`` in place of any password."""
        if self.user is None:
            return self.base
        scheme, rest = self.base.split("://", 1)
        secret = ":***" if self.password is not None else ""
        return f"{scheme}://{quote(self.user, safe='')}{secret}@{rest}"


def parse_server_url(
    url: str, *, user: str | None = None, password: str | None = None
) -> ServerAddress:
    """Split ``url`` into base and (percent-decoded) credentials; arguments win over the URL.

    Raises ValueError (never showing the URL, which may hold a password) if it is unusable.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme {scheme!r}: use http or https")
    host = parts.hostname
    if not host:
        raise ValueError("the server URL has no host")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port or DEFAULT_PORTS[scheme]
    prefix = parts.path.rstrip("/")
    url_user = unquote(parts.username) if parts.username is not None else None
    url_password = unquote(parts.password) if parts.password is not None else None
    return ServerAddress(
        base=f"{scheme}://{host}:{port}{prefix}",
        user=user if user is not None else url_user,
        password=password if password is not None else url_password,
    )


def check_db_name(name: str, *, url: str) -> None:
    """Raise InvalidDatabaseName unless ``name`` follows CouchDB's database name rule.

    ``url`` is the masked server URL, for the error.
    """
    if not _DB_NAME.match(name):
        raise InvalidDatabaseName(
            f"illegal database name {name!r}: it must start with a lowercase letter and "
            "contain only a-z, 0-9 and _ $ ( ) + - /",
            method="PUT",
            url=url + db_path(name),
            error="illegal_database_name",
            reason="Name must match ^[a-z][a-z0-9_$()+/-]*$",
        )


def db_path(name: str) -> str:
    """``/{db}`` with the name as one encoded segment (``/`` becomes ``%2F``)."""
    return "/" + quote(name, safe="")


def doc_path(doc_id: str) -> str:
    """The id as a path: ``_design/`` and ``_local/`` keep their slash, the rest is one segment."""
    for prefix in _PREFIXES:
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix) :], safe="")
    return quote(doc_id, safe="")
