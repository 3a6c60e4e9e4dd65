"""Opening a client the way the ``couchsync`` command does: options, then the environment.

``open_client()`` is the one place the command's connection settings meet the
environment, so that every command connects alike and the library stays free of
environment lookups. What it reads, each only when the option is not given:

=========================  =====================================================
``COUCHDB_URL``            the server (also ``COUCH_URL``); required when ``--url`` is not
                           given (no default: a forgotten setting must not act on
                           whatever server answers on localhost)
``COUCHDB_USER``           the user name (a name in the URL counts too)
``COUCHDB_PASSWORD``       the password
``COUCHDB_PASSWORD_FILE``  a file holding the password (trailing newline dropped)
``COUCHDB_TOKEN``          a bearer token (JWT), instead of a user and password
``COUCHDB_TOKEN_FILE``     a file holding the token
``COUCHDB_CACERT``         a CA bundle to trust for an ``https://`` server
``COUCHDB_AUTH``           ``basic`` (default) or ``session``
``COUCHDB_TIMEOUT``        seconds to wait to connect, and for each read and write
                           (default 30)
=========================  =====================================================

Plus what the engine itself reads: ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``.
Passwords and tokens are taken from the environment or files only, never from a
command-line option (other users of the machine can read those), and appear in no
output, log record or error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from couchsync._stderr import StderrHandler
from couchsync.errors import CouchsyncError

if TYPE_CHECKING:
    from couchsync.client import Client

__all__ = ["AUTH_MODES", "NO_URL", "ConnectionSettingsError", "open_client"]

#: There is no default server: a forgotten setting must not plan or apply against
#: whatever answers on localhost.
NO_URL = "no server given: pass --url URL or set COUCHDB_URL (e.g. http://localhost:5984)"
AUTH_MODES = ("basic", "session")
AuthMode = Literal["basic", "session"]


class ConnectionSettingsError(CouchsyncError, ValueError):
    """The connection settings cannot be used (a file that cannot be read, settings that
    exclude each other); the message names the setting, never a secret."""


def open_client(
    url: str | None = None,
    *,
    user: str | None = None,
    password_file: str | os.PathLike[str] | None = None,
    token_file: str | os.PathLike[str] | None = None,
    auth_mode: str | None = None,
    cacert: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    max_connections: int = 16,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> Client:
    """A Client for ``url`` (else ``COUCHDB_URL``, else ``COUCH_URL``; one is required).

    Credentials: ``user`` (else ``COUCHDB_USER``, else the URL's) with the password of
    ``password_file``, else ``COUCHDB_PASSWORD``, else ``COUCHDB_PASSWORD_FILE``, else
    the URL's; or a bearer token from ``token_file``, ``COUCHDB_TOKEN`` or
    ``COUCHDB_TOKEN_FILE``. ``auth_mode`` (else ``COUCHDB_AUTH``): ``"basic"`` sends the
    credentials with every request, ``"session"`` logs in once and sends a cookie.
    ``cacert`` (else ``COUCHDB_CACERT``): the CA bundle to trust; ``cert`` and ``key``:
    a client certificate (PEM) and its key, if not in the same file. ``timeout`` (else
    ``COUCHDB_TIMEOUT``, else 30): seconds to wait to connect, and for each read and
    write of a request. ``verbose``: log retries, logins and the proxy used on stderr
    (the ``couchsync.client`` logger).

    Raises ConnectionSettingsError for settings that cannot be used (no URL at all among
    them), InvalidURL for a URL that cannot be (neither repeats a secret); nothing is
    sent to the server here.
    """
    from couchsync.client import Client

    env = os.environ if environ is None else environ
    url = url or env.get("COUCHDB_URL") or env.get("COUCH_URL")
    user = user or env.get("COUCHDB_USER") or None
    mode = (auth_mode or env.get("COUCHDB_AUTH") or "basic").lower()
    if mode not in AUTH_MODES:
        raise ConnectionSettingsError(
            f"unknown authentication mode {mode!r}: use {' or '.join(AUTH_MODES)}")
    password = _secret("password", password_file, env, "COUCHDB_PASSWORD")
    token = _secret("token", token_file, env, "COUCHDB_TOKEN")
    if token is not None and password is not None:
        raise ConnectionSettingsError(
            "both a token and a password are set: give one (COUCHDB_TOKEN[_FILE] or "
            "COUCHDB_PASSWORD[_FILE])")
    if token is not None and mode == "session":
        raise ConnectionSettingsError("session authentication logs in with a user and "
                                      "password, not a token")
    cacert = cacert or env.get("COUCHDB_CACERT") or None
    if key is not None and cert is None:
        raise ConnectionSettingsError("--key is the private key of a client certificate: "
                                      "give --cert too")
    if not url:
        raise ConnectionSettingsError(NO_URL)
    if verbose:
        _log_to_stderr()
    options: dict[str, Any] = {"max_connections": max_connections}
    if timeout is None and env.get("COUCHDB_TIMEOUT"):
        timeout = _seconds("COUCHDB_TIMEOUT", env["COUCHDB_TIMEOUT"])
    if timeout is not None:
        options["timeout"] = timeout
    if cacert is not None:
        options["verify"] = os.fspath(cacert)
    if cert is not None:
        options["cert"] = os.fspath(cert)
        options["key"] = None if key is None else os.fspath(key)
    if token is not None:
        url, url_password = _without_credentials(url)
        if url_password:
            raise ConnectionSettingsError("the server URL holds a password and a token is "
                                          "set: give one")
    try:
        if token is not None:
            # A user name in the URL or COUCHDB_USER means nothing to a bearer token.
            return Client(url, token=token, **options)
        return Client(url, user=user, password=password, session=mode == "session",
                      **options)
    except (OSError, ValueError) as exc:
        if type(exc).__module__.startswith("couchsync."):  # InvalidURL: already clear
            raise
        raise ConnectionSettingsError(str(exc)) from None


def _seconds(variable: str, text: str) -> float:
    """A positive number of seconds from ``$variable``."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConnectionSettingsError(f"{variable} must be a positive number of seconds, "
                                      f"not {text!r}")
    return value


def _secret(what: str, path: str | os.PathLike[str] | None, env: Mapping[str, str],
            variable: str) -> str | None:
    """The secret from the file at ``path``, else ``$VARIABLE``, else ``$VARIABLE_FILE``."""
    if path is not None:
        return _read_secret(what, Path(path), f"the {what} file")
    value = env.get(variable)
    file_value = env.get(variable + "_FILE")
    if value and file_value:
        raise ConnectionSettingsError(f"both {variable} and {variable}_FILE are set: "
                                      "give one")
    if value:
        return value
    if file_value:
        return _read_secret(what, Path(file_value), f"{variable}_FILE")
    return None


def _read_secret(what: str, path: Path, source: str) -> str:
    """The file's text without its trailing line break(s); an error names the file, not
    its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConnectionSettingsError(f"{source} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConnectionSettingsError(
            f"cannot read {source} {path}: {exc.strerror or type(exc).__name__}") from None
    text = text.rstrip("\r\n")
    if not text:
        raise ConnectionSettingsError(f"{source} {path} is empty: it should hold the {what}")
    return text


def _without_credentials(url: str) -> tuple[str, bool]:
    """``url`` without a user name or password, and whether it held a password."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url, False  # the Client reports it (InvalidURL), without repeating it
    if "@" not in parts.netloc:
        return url, False
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=host)), ":" in userinfo


def _log_to_stderr() -> None:
    """Show the client's INFO records (retries, logins, the proxy) on stderr, once."""
    logger = logging.getLogger("couchsync.client")
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, StderrHandler) for handler in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("couchsync: %(message)s"))
        logger.addHandler(handler)
