"""Server URLs: parsing, credentials, masking, and quoting of names and ids; default ports
and path prefixes as docs/client.md, "Connecting", says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from ._errors import InvalidDatabaseName, InvalidURL

__all__ = [
    "ServerAddress", "check_db_name", "db_path", "doc_id_problem", "doc_path", "parse_server_url"
]

DEFAULT_PORTS = {"http": 5984, "https": 443}
# fullmatch, not match: with match, "$" also matches before a trailing newline.
_DB_NAME = re.compile(r"[a-z][a-z0-9_$()+/-]*")
#: The system databases CouchDB lets an admin create although they break the rule
#: (a fresh single-node CouchDB 3.x needs ``_users`` and ``_replicator`` created).
SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
_PREFIXES = ("_design/", "_local/")


@dataclass(frozen=True)
class ServerAddress:
    """Where the server is, without credentials in ``base``; ``masked`` is safe to show."""

    base: str  # scheme://host:port[/prefix], no trailing slash, no credentials
    user: str | None
    password: str | None = field(repr=False)  # never in a repr

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
    InvalidURL if it is unusable, never repeating any part of it (it may hold a password)."""
    if not isinstance(url, str):
        raise InvalidURL(f"the server URL must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        port = parts.port  # urllib's own errors quote the netloc or the "port" (the password)
    except ValueError as exc:
        if str(exc).startswith("Port out of range"):
            raise InvalidURL("invalid server URL: its port is out of range (0-65535)") from None
        raise InvalidURL(
            "invalid server URL: it cannot be parsed (is a password with '/', '?', '#' or "
            "'@' not percent-encoded?)"
        ) from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise InvalidURL("invalid server URL: expected http://HOST[:PORT] or https://...")
    if scheme not in DEFAULT_PORTS:
        # Only the scheme's kind is named: "user:password@host" parses with scheme "user".
        raise InvalidURL("invalid server URL: unsupported scheme, use http or https")
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        # "http://u:pa/ss@host" splits at the "/": the host would be "u", the password
        # the port and "/ss@host" the path, so the password would end up in every URL shown.
        raise InvalidURL(
            "invalid server URL: it has an '@' after its host: percent-encode any '/', '?', "
            "'#' or '@' in the user name or password"
        )
    host = parts.hostname
    if not host:
        raise InvalidURL("invalid server URL: it has no host")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = port or DEFAULT_PORTS[scheme]
    prefix = parts.path.rstrip("/")
    url_user = unquote(parts.username) if parts.username is not None else None
    url_password = unquote(parts.password) if parts.password is not None else None
    return ServerAddress(
        base=f"{scheme}://{host}:{port}{prefix}",
        user=user if user is not None else url_user,
        password=password if password is not None else url_password,
    )


def check_db_name(name: str, *, url: str, method: str = "PUT") -> None:
    """Raise InvalidDatabaseName unless ``name`` follows CouchDB's rule or is in SYSTEM_DBS;
    ``url`` is the masked server URL, for the error."""
    if not (_DB_NAME.fullmatch(name) or name in SYSTEM_DBS):
        raise InvalidDatabaseName(
            f"illegal database name {name!r}: it must start with a lowercase letter and "
            "contain only a-z, 0-9 and _ $ ( ) + - /",
            method=method,
            url=url + db_path(name),
            error="illegal_database_name",
            reason="Name must match ^[a-z][a-z0-9_$()+/-]*$",
        )


def db_path(name: str) -> str:
    """``/{db}`` with the name as one encoded segment (``/`` becomes ``%2F``)."""
    return "/" + quote(name, safe="")


def doc_id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` cannot name a document (empty, or ``_`` other than ``_design/x`` and
    ``_local/x``: in a path it would address an endpoint), or None if it can."""
    if not isinstance(doc_id, str):
        return f"a document id must be a string, not {type(doc_id).__name__}"
    if not doc_id:
        return "Document id must not be empty"
    if doc_id.startswith("_"):
        prefix = next((p for p in _PREFIXES if doc_id.startswith(p)), None)
        if prefix is None:
            return "Only reserved document ids may start with underscore."
        if len(doc_id) == len(prefix):
            return f"Document id must not be empty after {prefix!r}"
    return None


def doc_path(doc_id: str) -> str:
    """The id as a path: ``_design/`` and ``_local/`` keep their slash, the rest is one segment."""
    for prefix in _PREFIXES:
        if doc_id.startswith(prefix):
            return prefix + segment(doc_id[len(prefix) :])
    return segment(doc_id)


def segment(text: str) -> str:
    """``text`` as one path segment: percent-encoded, ``.`` and ``..`` too (URL
    normalization, httpx's included, would drop them or climb a level)."""
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def attachment_path(name: str) -> str:
    """An attachment name as a path: a name made of path-like parts (``css/app.css``)
    keeps its slashes, which CouchDB reads back as the name; one with an empty, ``.`` or
    ``..`` part is one segment (``%2F``), which URL normalization leaves alone."""
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return segment(name).replace(".", "%2E")
    return "/".join(quote(part, safe="") for part in parts)
