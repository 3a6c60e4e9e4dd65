"""``couchsync._connect.open_client``: the command's connection settings, options first,
then the environment; what is wrong named without a secret.

The requests go to a loopback proxy that answers by itself (it records the headers a
server would not echo: which credentials came with a request); the password files
and the real server are in test_core_passwords.py.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import Answer, Fault, Proxy

from couchsync._connect import NO_URL, ConnectionSettingsError, open_client
from couchsync.client import InvalidURL, TransportError

WELCOME = json.dumps({"couchdb": "Welcome", "version": "3.5.2"}).encode()


class FakeServer:
    """Answers every request itself: a login with a cookie, a 503 when told to."""

    def __init__(self) -> None:
        self.unavailable = 0

    def __call__(self, method: str, path: str) -> Answer:
        if path == "/_session" and method == "POST":
            return 200, {"Set-Cookie": "AuthSession=abc; Path=/"}, b'{"ok":true}'
        if self.unavailable:
            self.unavailable -= 1
            return 503, {"Retry-After": "0"}, b'{"error":"unavailable","reason":"busy"}'
        return 200, {"Content-Type": "application/json"}, WELCOME


@pytest.fixture
def fake() -> Iterator[tuple[Proxy, FakeServer]]:
    server = FakeServer()
    with Proxy(("127.0.0.1", 9), server) as proxy:  # upstream never used
        yield proxy, server


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_options_come_first_then_the_environment(
    fake: tuple[Proxy, FakeServer], tmp_path: Path,
) -> None:
    proxy, _ = fake
    environ = {"COUCHDB_URL": "http://elsewhere.invalid:5984", "COUCHDB_USER": "env-user",
               "COUCHDB_PASSWORD": "env-pw"}
    with open_client(proxy.url, user="opt-user", environ=environ) as client:
        client.server.info()
    with open_client(environ={**environ, "COUCHDB_URL": proxy.url}) as client:
        client.server.info()
    with open_client(environ={"COUCH_URL": proxy.url, "COUCHDB_USER": "u"}) as client:
        client.server.info()  # COUCH_URL when COUCHDB_URL is not set; no password
    assert [seen.headers.get("Authorization") for seen in proxy.seen] == [
        _basic("opt-user", "env-pw"), _basic("env-user", "env-pw"), _basic("u", "")]


def test_no_url_is_refused_rather_than_localhost() -> None:
    # Issue 19: a forgotten COUCHDB_URL used to plan anonymously against localhost:5984.
    for environ in ({}, {"COUCHDB_URL": "", "COUCH_URL": ""}):
        with pytest.raises(ConnectionSettingsError) as caught:
            open_client(environ=environ)
        assert str(caught.value) == NO_URL
        assert "--url" in NO_URL and "COUCHDB_URL" in NO_URL


def test_a_password_file_wins_over_the_environment(
    fake: tuple[Proxy, FakeServer], tmp_path: Path,
) -> None:
    proxy, _ = fake
    path = tmp_path / "pw"
    path.write_text("from-file\n\n")
    with open_client(proxy.url, user="u", password_file=path,
                     environ={"COUCHDB_PASSWORD": "from-env"}) as client:
        client.server.info()
    assert proxy.seen[0].headers["Authorization"] == _basic("u", "from-file")


@pytest.mark.parametrize(("environ", "message"), [
    ({"COUCHDB_PASSWORD": "a", "COUCHDB_PASSWORD_FILE": "/x"},
     "both COUCHDB_PASSWORD and COUCHDB_PASSWORD_FILE are set"),
    ({"COUCHDB_PASSWORD_FILE": "/nonexistent/pw"},
     "cannot read COUCHDB_PASSWORD_FILE /nonexistent/pw: No such file or directory"),
    ({"COUCHDB_TOKEN": "t.t.t", "COUCHDB_PASSWORD": "pw-Secret"},
     "both a token and a password are set"),
    ({"COUCHDB_URL": "http://u:pw-Secret@h", "COUCHDB_TOKEN": "t.t.t"},
     "the server URL holds a password and a token is set"),
    ({"COUCHDB_AUTH": "kerberos"}, "unknown authentication mode 'kerberos'"),
    ({"COUCHDB_AUTH": "session", "COUCHDB_TOKEN": "t.t.t"}, "not a token"),
    ({"COUCHDB_AUTH": "session"}, "needs a user name"),
    ({"COUCHDB_CACERT": "/nonexistent/ca.pem", "COUCHDB_URL": "https://h"},
     "cannot read the CA bundle: No such file or directory: '/nonexistent/ca.pem'"),
    ({"COUCHDB_TIMEOUT": "soon"}, "COUCHDB_TIMEOUT must be a positive number of seconds"),
    ({"COUCHDB_TIMEOUT": "-1"}, "COUCHDB_TIMEOUT must be a positive number of seconds"),
    ({"COUCHDB_TIMEOUT": "nan"}, "COUCHDB_TIMEOUT must be a positive number of seconds"),
])
def test_settings_that_cannot_be_used_are_named(environ: dict[str, str],
                                                message: str) -> None:
    with pytest.raises(ConnectionSettingsError) as caught:
        open_client(environ={"COUCHDB_URL": "http://h", **environ})
    assert message in str(caught.value)
    assert "Secret" not in str(caught.value)


def test_an_empty_password_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("\n")
    with pytest.raises(ConnectionSettingsError, match=r"pw is empty: it should hold the password"):
        open_client(user="u", password_file=path, environ={})


def test_a_bad_url_is_invalid_url_without_the_url() -> None:
    with pytest.raises(InvalidURL) as caught:
        open_client("http://u:pa/ss@host", environ={})
    assert "pa/ss" not in str(caught.value)


def test_a_token_from_the_environment_or_a_file(
    fake: tuple[Proxy, FakeServer], tmp_path: Path,
) -> None:
    proxy, _ = fake
    with open_client(proxy.url, environ={"COUCHDB_TOKEN": "aa.bb.cc",
                                         "COUCHDB_USER": "ignored"}) as client:
        client.server.info()
    path = tmp_path / "token"
    path.write_text("dd.ee.ff\n")
    with open_client(proxy.url, token_file=path, environ={}) as client:
        client.server.info()
    assert [seen.headers["Authorization"] for seen in proxy.seen] == [
        "Bearer aa.bb.cc", "Bearer dd.ee.ff"]


def test_session_mode_from_the_option_or_the_environment(
    fake: tuple[Proxy, FakeServer],
) -> None:
    proxy, _ = fake
    environ = {"COUCHDB_USER": "u", "COUCHDB_PASSWORD": "pw"}
    with open_client(proxy.url, auth_mode="session", environ=environ) as client:
        client.server.info()
    with open_client(proxy.url, environ={**environ, "COUCHDB_AUTH": "SESSION"}) as client:
        client.server.info()
    assert [(s.method, s.target, s.headers.get("Cookie")) for s in proxy.seen] == [
        ("POST", "/_session", None), ("GET", "/", "AuthSession=abc")] * 2


def test_verbose_shows_retries_on_stderr_without_secrets(
    fake: tuple[Proxy, FakeServer], capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, server = fake
    server.unavailable = 1
    logger = logging.getLogger("couchsync.client")
    handlers, level = list(logger.handlers), logger.level
    try:
        with open_client(proxy.url, user="u", verbose=True,
                         environ={"COUCHDB_PASSWORD": "Verbose-Secret"}) as client:
            client.server.info()
    finally:
        logger.handlers[:], logger.level = handlers, level
    err = capsys.readouterr().err
    assert "couchsync: retrying GET / after 503 Service Unavailable (retry 1 of 3, in 0.00 s)" \
        in err
    assert "Verbose-Secret" not in err


@pytest.mark.parametrize("fault", [Fault("stall"), Fault("trickle", pieces=2, pause=2.0)],
                         ids=["no-answer", "answer-in-pieces-too-far-apart"])
def test_couchdb_timeout_bounds_the_wait_for_an_answer(
    fake: tuple[Proxy, FakeServer], fault: Fault,
) -> None:
    proxy, _ = fake
    proxy.faults.append(fault)
    with open_client(proxy.url, environ={"COUCHDB_TIMEOUT": "0.2"}) as client, (
            pytest.raises(TransportError, match=r"GET .*/: timed out")):
        client.server.info()
    assert fault.hits == 1  # not repeated: the server may still be at work on it
