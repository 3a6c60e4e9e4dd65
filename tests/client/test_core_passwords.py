"""Passwords with any character work in every place a password can come from: the URL
(percent-encoded), the ``user``/``password`` options, a password file (through
``open_client``), and a cookie session's login.

Against the real server under test, each with a user created in ``_users`` for the
test (and deleted after). Every login here has the right password: CouchDB locks an
account after 5 failed logins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from couchsync._connect import open_client
from couchsync.client import Client

PASSWORDS = [
    "p@ss:w/o%rd",             # what breaks a URL: @ : / %
    "with spaces ?#&+=;,",     # and what a query or a form would mangle
    "ünïcødé ☃ пароль 密码",    # beyond ASCII (UTF-8 in Basic and in the login's JSON)
    "%41%zz\\\"'`$(x)",        # percent signs that look like escapes, quotes, a shell's $
]


def _who(client: Client) -> str | None:
    """The user name the server sees for this client's requests."""
    name: str | None = client._conn.request("GET", "/_session").json()["userCtx"]["name"]
    return name


def _server(couch_url: str) -> str:
    parts = urlsplit(couch_url)
    return f"http://{parts.hostname}:{parts.port}"


@pytest.fixture(params=PASSWORDS, ids=["url-breakers", "spaces-query", "unicode", "escapes"])
def user(request: pytest.FixtureRequest, user_factory: Callable[[str], str]) -> tuple[str, str]:
    password: str = request.param
    return user_factory(password), password


def test_in_the_url_percent_encoded(couch_url: str, user: tuple[str, str]) -> None:
    name, password = user
    parts = urlsplit(couch_url)
    url = f"http://{quote(name, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    with Client(url) as client:
        assert _who(client) == name
        assert quote(password, safe="") not in repr(client) and password not in repr(client)


def test_in_the_user_and_password_options(couch_url: str, user: tuple[str, str]) -> None:
    name, password = user
    with Client(_server(couch_url), user=name, password=password) as client:
        assert _who(client) == name
    with Client(_server(couch_url), auth=(name, password)) as client:
        assert _who(client) == name


def test_in_a_password_file(couch_url: str, user: tuple[str, str], tmp_path: Path) -> None:
    name, password = user
    path = tmp_path / "password"
    path.write_text(password + "\n", encoding="utf-8")
    with open_client(_server(couch_url), user=name, password_file=path, environ={}) as client:
        assert _who(client) == name
    path.write_text(password + "\r\n", encoding="utf-8")  # written on Windows
    environ = {"COUCHDB_URL": _server(couch_url), "COUCHDB_USER": name,
               "COUCHDB_PASSWORD_FILE": str(path)}
    with open_client(environ=environ) as client:
        assert _who(client) == name


def test_in_a_session_login(couch_url: str, user: tuple[str, str]) -> None:
    name, password = user
    with Client(_server(couch_url), user=name, password=password, session=True) as client:
        assert _who(client) == name


def test_a_password_with_spaces_at_its_ends_keeps_them(
    couch_url: str, user_factory: Callable[[str], str], tmp_path: Path,
) -> None:
    """Only the trailing line break of a password file is dropped."""
    password = "  padded password  "
    name = user_factory(password)
    path = tmp_path / "password"
    path.write_text(password + "\n", encoding="utf-8")
    with open_client(_server(couch_url), user=name, password_file=path, environ={}) as client:
        assert _who(client) == name
