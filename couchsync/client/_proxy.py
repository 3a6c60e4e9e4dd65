"""Which proxy, if any, the default engine goes through: ``proxy=`` or the environment
(docs/client.md, "Proxies"). The choice is couchsync's, not httpx's, so that errors can
name the proxy and the variable it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from ._errors import InvalidURL

__all__ = ["Proxy", "environment_proxy", "parse_proxy"]


@dataclass(frozen=True)
class Proxy:
    """A proxy: its URL without credentials, and the credentials (never in a repr)."""

    url: str  # scheme://host:port
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "proxy="  # the option or variable it came from, for messages

    @property
    def masked(self) -> str:
        """The proxy's URL with ``***`` for any password: safe to show."""
        if self.user is None:
            return self.url
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{quote(self.user, safe='')}:***@{rest}"


def parse_proxy(value: str, source: str = "proxy=") -> Proxy:
    """A proxy URL (``http://[user:pass@]host[:port]``; no scheme means ``http://``); an
    InvalidURL names ``source``, never the value (it may hold a password)."""
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidURL(f"the proxy URL in {source} cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"the proxy URL in {source} has the unsupported scheme "
                         f"{scheme!r}: couchsync uses http:// and https:// proxies")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"the proxy URL in {source} has no host")
    if ":" in host:
        host = f"[{host}]"
    port = port or (443 if scheme == "https" else 80)
    return Proxy(
        url=f"{scheme}://{host}:{port}",
        user=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        source=source,
    )


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for key in (name.lower(), name.upper()):
        value = env.get(key, "").strip()
        if value:
            return key, value
    return None


def environment_proxy(scheme: str, host: str, port: int,
                      env: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the environment names for a server at ``scheme://host:port``, or None
    (none set, the host in ``NO_PROXY``, or a loopback host)."""
    env = os.environ if env is None else env
    found = _variable(env, f"{scheme}_proxy") or _variable(env, "all_proxy")
    if found is None:
        return None
    host = host.lower().strip("[]")
    if _is_loopback(host):
        return None
    no_proxy = _variable(env, "no_proxy")
    if no_proxy is not None and bypassed(host, port, no_proxy[1]):
        return None
    name, value = found
    return parse_proxy(value, name)


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s value lists ``host`` (lowercase, IPv6 without brackets)."""
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [v6]:port or [v6]
            address, _, rest = entry[1:].partition("]")
            entry = address
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:  # name:port or v4:port (a bare v6 has several)
            name, _, number = entry.partition(":")
            if number.isdigit():
                entry, entry_port = name, int(number)
        if entry_port is not None and entry_port != port:
            continue
        in_network = _in_network(host, entry)
        if in_network is not None:
            if in_network:
                return True
            continue
        entry = entry.removeprefix("*").removeprefix(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _in_network(host: str, entry: str) -> bool | None:
    """Whether ``host`` is in the address or network ``entry``; None if ``entry`` is none."""
    import ipaddress  # only for a NO_PROXY entry that may be one

    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:  # a host name
        return False


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if not (host[:1].isdigit() or ":" in host):
        return False
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
