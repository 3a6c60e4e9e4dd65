"""Opening a client the way the ``couchsync`` command does: options, then the environment.

``open_client()`` is the one place the command's connection settings meet the
environment, so that every command connects alike and the library stays free of
environment lookups; docs/client.md lists the variables it reads. There is no default
server (a forgotten setting must not act on whatever answers on localhost), and
passwords and tokens come from the environment or files only, never from a
command-line option (other users of the machine can read those).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from couchsync._stderr import StderrHandler
from couchsync.errors import CouchsyncError

if TYPE_CHECKING:
    from couchsync.client import Client

__all__ = ["AUTH_MODES", "NO_URL", "ConnectionSettingsError", "open_client"]

NO_URL = "no server given: pass --url URL or set COUCHDB_URL (e.g. http://localhost:5984)"
AUTH_MODES = ("basic", "session", "iam")


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
    max_rate: float | None = None,
    adaptive: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Client:
    """A Client for ``url`` and the options given, each one not given read from the
    environment (docs/client.md); ``cert`` and ``key``: a client certificate (PEM) and
    its key, if not in the same file; ``verbose``: log retries, logins, the proxy used and
    pacing's changes on stderr (the ``couchsync.client`` logger); ``max_rate`` and
    ``adaptive``: the client's pacing (docs/client.md, "Pacing"). Raises
    ConnectionSettingsError for settings that cannot be used (no URL at all among them),
    InvalidURL for a URL that cannot be (neither repeats a secret); nothing is sent to the
    server here.
    """
    from couchsync.client import Client

    env = os.environ if environ is None else environ
    url = url or env.get("COUCHDB_URL") or env.get("COUCH_URL")
    user = user or env.get("COUCHDB_USER") or None
    mode = (auth_mode or env.get("COUCHDB_AUTH") or "basic").lower()
    if mode not in AUTH_MODES:
        raise ConnectionSettingsError(
            f"unknown authentication mode {mode!r}: use {' or '.join(AUTH_MODES)}")
    password = _secret("password", password_file, env)
    token = _secret("token", token_file, env)
    iam_key = None
    if mode == "iam":
        # CLOUDANT_APIKEY: what the ibmcloudant SDK reads.
        iam_key = _secret("IAM API key", None, env) or env.get("CLOUDANT_APIKEY") or None
        if iam_key is None:
            raise ConnectionSettingsError("--auth iam needs an API key: set "
                                          "COUCHDB_IAM_API_KEY[_FILE] or CLOUDANT_APIKEY")
        if token is not None or password is not None:
            raise ConnectionSettingsError("IAM authentication uses the API key alone: unset "
                                          "the password or token (COUCHDB_PASSWORD[_FILE], "
                                          "COUCHDB_TOKEN[_FILE])")
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
    options: dict[str, Any] = {"max_connections": max_connections, "adaptive": adaptive,
                               "max_rate": max_rate or _positive("COUCHDB_MAX_RATE", env)}
    if timeout is None:
        timeout = _positive("COUCHDB_TIMEOUT", env, " of seconds")
    if timeout is not None:
        options["timeout"] = timeout
    if cacert is not None:
        options["verify"] = os.fspath(cacert)
    if cert is not None:
        options["cert"] = os.fspath(cert)
        options["key"] = None if key is None else os.fspath(key)
    if token is not None or iam_key is not None:
        url, url_password = _without_credentials(url)
        if url_password:
            raise ConnectionSettingsError("the server URL holds a password and "
                                          f"{'a token' if iam_key is None else 'an IAM API key'}"
                                          " is set: give one")
    try:
        # A user name in the URL or COUCHDB_USER means nothing to a bearer token.
        if iam_key is not None:
            iam_url = env.get("COUCHDB_IAM_URL")
            if iam_url:
                options["iam_url"] = iam_url
            return Client(url, iam_api_key=iam_key, **options)
        if token is not None:
            return Client(url, token=token, **options)
        return Client(url, user=user, password=password, session=mode == "session",
                      **options)
    except (OSError, ValueError) as exc:
        if type(exc).__module__.startswith("couchsync."):  # InvalidURL: already clear
            raise
        raise ConnectionSettingsError(str(exc)) from None


def _positive(variable: str, env: Mapping[str, str], unit: str = "") -> float | None:
    """The positive number in ``$variable``; None when it is unset or empty."""
    text = env.get(variable)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConnectionSettingsError(f"{variable} must be a positive number{unit}, "
                                      f"not {text!r}")
    return value


def _secret(what: str, given: str | os.PathLike[str] | None,
            env: Mapping[str, str]) -> str | None:
    """The secret from the file ``given``, else ``$COUCHDB_WHAT``, else the file
    ``$COUCHDB_WHAT_FILE``, without its trailing line break(s); an error names the file,
    never its content."""
    variable, source = "COUCHDB_" + what.upper().replace(" ", "_"), f"the {what} file"
    if given is None:
        value, given = env.get(variable), env.get(variable + "_FILE")
        if value and given:
            raise ConnectionSettingsError(f"both {variable} and {variable}_FILE are set: "
                                          "give one")
        if value or not given:
            return value or None
        source = f"{variable}_FILE"
    path = Path(given)
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
