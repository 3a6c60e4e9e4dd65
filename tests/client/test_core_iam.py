"""IBM Cloud IAM authentication (``iam_api_key=``, ``couchsync --auth iam``): a token
from the IAM endpoint, sent as a bearer token, renewed at about 80% of its life by one
thread for all, renewed once and the request sent again on a 401; neither the key nor a
token in any output.

The IAM endpoint is a stand-in on loopback (``IamStandIn``) that answers as IBM's
does (``access_token``, ``expires_in``, ``expiration``; a 400 ``BXNIM0415E`` for an
unknown key) with HS256 JWTs signed with the key the real CouchDB under test takes
(the ``jwt_secret`` fixture, jwt_node.py): those tests run on Apache CouchDB and are
skipped with the reason on PouchDB Server, which has no JWT authentication; the ones
that never get as far as the server run everywhere. The token's life is the client's
fake clock (``FakeClock``), never waited for; the server judges a token's own
``exp``, which the stand-in sets in the past for a token the server must refuse.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from jwt_node import bare_url, make_token
from loopback import Proxy, upstream_of

from couchsync._connect import ConnectionSettingsError, open_client
from couchsync.client import Client, TransportError, Unauthorized

API_KEY = "ApiKey-5b0e-Secret"
GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
COUCHSYNC = str(Path(sys.executable).parent / "couchsync")


class IamStandIn:
    """IBM's token endpoint on loopback: ``POST /identity/token`` with the form
    ``grant_type=...&apikey=KEY`` gets a JWT for ``sub`` signed with ``secret`` (an
    opaque string without one), which the answer says lives ``life`` seconds; the next
    ``stale`` tokens carry an ``exp`` already past. With ``gate`` set to an Event the
    answers wait for it; ``asked`` is set at each request. ``forms`` lists the forms
    received, ``issued`` the tokens given."""

    def __init__(self, secret: bytes | None = None, key: str = API_KEY) -> None:
        self.secret = secret
        self.key = key
        self.life = 3600
        self.stale = 0
        self.gate: threading.Event | None = None
        self.asked = threading.Event()
        self.forms: list[dict[str, list[str]]] = []
        self.accepts: list[str | None] = []
        self.issued: list[str] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = stand_in.answer(self.path, body.decode(),
                                                 self.headers.get("Accept"))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/identity/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, path: str, body: str, accept: str | None) -> tuple[int, Any]:
        form = parse_qs(body)
        with self.lock:
            self.forms.append(form)
            self.accepts.append(accept)
        self.asked.set()
        if self.gate is not None:
            self.gate.wait(60)
        if path != "/identity/token" or form.get("grant_type") != [GRANT_TYPE]:
            return 400, {"errorCode": "BXNIM0109E", "errorMessage": "Property missing or empty."}
        if form.get("apikey") != [self.key]:
            return 400, {"errorCode": "BXNIM0415E",
                         "errorMessage": "Provided API key could not be found."}
        now = int(time.time())
        with self.lock:
            serial = len(self.issued) + 1
            exp = now - 60 if self.stale else now + 3600
            self.stale = max(0, self.stale - 1)
            claims = {"sub": "iam-ServiceId-couchsync", "iat": now, "exp": exp,
                      "jti": f"token-{serial}", "_couchdb.roles": ["_admin"]}
            token = (f"opaque-token-{serial}" if self.secret is None
                     else make_token(self.secret, claims))
            self.issued.append(token)
        return 200, {"access_token": token, "refresh_token": "not_supported",
                     "token_type": "Bearer", "expires_in": self.life,
                     "expiration": now + self.life, "scope": "ibm openid"}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeClock:
    """The client's clock for token lives: ``now`` seconds, moved by the test; ``calls``
    counts the reads (a ``Condition`` tells of each)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = 0
        self.read = threading.Condition()

    def __call__(self) -> float:
        with self.read:
            self.calls += 1
            self.read.notify_all()
        return self.now

    def wait_for_calls(self, count: int) -> None:
        with self.read:
            assert self.read.wait_for(lambda: self.calls >= count, timeout=60)


@pytest.fixture
def iam(jwt_secret: bytes) -> Iterator[IamStandIn]:
    """An IAM stand-in whose tokens the CouchDB under test takes."""
    stand_in = IamStandIn(jwt_secret)
    yield stand_in
    stand_in.close()


@pytest.fixture
def refusing_iam() -> Iterator[IamStandIn]:
    """An IAM stand-in that knows no key the tests give (runs with any server)."""
    stand_in = IamStandIn(key="some-other-key")
    yield stand_in
    stand_in.close()


def _tokens_sent(proxy: Proxy, path: str) -> list[str]:
    return [seen.headers.get("Authorization", "").removeprefix("Bearer ")
            for seen in proxy.seen if seen.target == path]


def _texts(exc: BaseException) -> str:
    """Every text of ``exc`` and the exceptions it chains."""
    texts: list[str] = []
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        texts += [str(cause), repr(cause), repr(cause.args),
                  repr(getattr(cause, "__dict__", {}))]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(texts)


# -- the IAM stand-in and the real CouchDB


def test_the_first_token_authenticates(couch_url: str, iam: IamStandIn) -> None:
    with Client(bare_url(couch_url), iam_api_key=API_KEY, iam_url=iam.url) as client:
        session = client._conn.request("GET", "/_session").json()
        assert session["userCtx"] == {"name": "iam-ServiceId-couchsync", "roles": ["_admin"]}
        assert session["info"]["authenticated"] == "jwt"
        assert "_users" in client.list_database_names()  # admin only
        assert API_KEY not in repr(client) + repr(client._conn) + repr(client._conn._session)
    assert iam.forms == [{"grant_type": [GRANT_TYPE], "apikey": [API_KEY]}]  # one token
    assert iam.accepts == ["application/json"]


def test_a_token_is_renewed_at_80_percent_of_its_life(couch_url: str, iam: IamStandIn) -> None:
    clock = FakeClock()
    iam.life = 1000
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(proxy.url, iam_api_key=API_KEY, iam_url=iam.url) as client:
        client._conn._session.clock = clock  # type: ignore[attr-defined]
        client.list_database_names()
        clock.now = 790.0
        client.list_database_names()
        assert len(iam.issued) == 1
        clock.now = 810.0
        client.list_database_names()
        assert len(iam.issued) == 2
        clock.now = 1500.0  # 80% of the second token's life is at 810 + 800
        client.list_database_names()
        assert len(iam.issued) == 2
    assert _tokens_sent(proxy, "/_all_dbs") == [iam.issued[0], iam.issued[0], iam.issued[1],
                                                iam.issued[1]]


def test_one_thread_renews_while_the_others_use_the_valid_token(
    couch_url: str, iam: IamStandIn,
) -> None:
    clock = FakeClock()
    iam.life = 1000
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(proxy.url, iam_api_key=API_KEY, iam_url=iam.url) as client:
        engine: Any = client._conn
        engine._session.clock = clock
        engine.request("GET", "/_session")
        clock.now = 850.0  # past 80%, not past the end
        iam.asked.clear()
        iam.gate = threading.Event()  # the renewal is held at the IAM endpoint
        finished = threading.Semaphore(0)
        statuses: list[int] = []

        def work() -> None:
            statuses.append(engine.request("GET", "/_all_dbs").status_code)
            finished.release()

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        try:
            assert iam.asked.wait(60)
            for _ in range(5):  # all but the renewing thread finish while it is held
                assert finished.acquire(timeout=60), "a thread waited for the renewal"
            assert len(iam.forms) == 2
        finally:
            iam.gate.set()
            for thread in threads:
                thread.join()
    assert statuses == [200] * 6
    assert len(iam.issued) == 2
    assert sorted(_tokens_sent(proxy, "/_all_dbs")) == sorted([iam.issued[0]] * 5
                                                              + [iam.issued[1]])


def test_every_thread_waits_for_the_renewal_of_a_lapsed_token(
    couch_url: str, iam: IamStandIn,
) -> None:
    clock = FakeClock()
    iam.life = 1000
    with Proxy(upstream_of(couch_url)) as proxy, \
            Client(proxy.url, iam_api_key=API_KEY, iam_url=iam.url) as client:
        engine: Any = client._conn
        engine._session.clock = clock
        engine.request("GET", "/_session")
        clock.now = 1001.0  # lapsed (the server would still take it: its exp is real)
        iam.gate = threading.Event()
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(
            engine.request("GET", "/_all_dbs").status_code)) for _ in range(6)]
        seen = clock.calls
        for thread in threads:
            thread.start()
        try:
            clock.wait_for_calls(seen + 6)  # every thread has found the token lapsed
        finally:
            iam.gate.set()
            for thread in threads:
                thread.join()
    assert statuses == [200] * 6
    assert len(iam.issued) == 2
    assert _tokens_sent(proxy, "/_all_dbs") == [iam.issued[1]] * 6


def test_a_token_the_server_refuses_is_renewed_once_and_the_request_sent_again(
    couch_url: str, iam: IamStandIn,
) -> None:
    iam.stale = 1  # the first token has expired for the server, not for the client
    with Proxy(upstream_of(couch_url)) as proxy:
        with Client(proxy.url, iam_api_key=API_KEY, iam_url=iam.url) as client:
            assert "_users" in client.list_database_names()
        assert _tokens_sent(proxy, "/_all_dbs") == iam.issued
        assert len(iam.issued) == 2
        iam.stale = 10  # the server refuses every token from now on: no loop
        with Client(proxy.url, iam_api_key=API_KEY, iam_url=iam.url) as client, \
                pytest.raises(Unauthorized) as caught:
            client.list_database_names()
        assert len(iam.issued) == 4  # a token, refused; one renewal, refused: it stands
        assert _tokens_sent(proxy, "/_all_dbs")[2:] == iam.issued[2:]
    for token in iam.issued:
        assert token not in _texts(caught.value)


def test_couchsync_plan_with_iam_shows_no_key_or_token(
    couch_url: str, iam: IamStandIn, tmp_path: Path, db_name: str,
) -> None:
    manifest = tmp_path / "iam.yaml"
    manifest.write_text(f"version: 1\ndatabases:\n  {db_name}:\n    documents:\n"
                        "      - {_id: a, n: 1}\n")
    iam.stale = 1  # a renewal too, to be told by --verbose
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("COUCHDB_", "COUCH_", "CLOUDANT_"))}
    env.update(COUCHDB_URL=bare_url(couch_url), NO_COLOR="1", COUCHDB_IAM_API_KEY=API_KEY,
               COUCHDB_IAM_URL=iam.url)
    planned = subprocess.run([COUCHSYNC, "plan", str(manifest), "--auth", "iam", "--verbose"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0, planned.stderr
    assert db_name in planned.stdout
    assert f"asking for an IAM token: POST {iam.url}" in planned.stderr
    assert "the server refused the token, asking for a new one" in planned.stderr
    refused = subprocess.run([COUCHSYNC, "plan", str(manifest), "--auth", "iam", "-v"],
                             env={**env, "COUCHDB_IAM_API_KEY": "",
                                  "CLOUDANT_APIKEY": "Wrong-Key-77a1"},
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert "refused the API key: 400 BXNIM0415E" in refused.stderr
    assert len(iam.issued) >= 2
    for output in (planned.stdout, planned.stderr, refused.stdout, refused.stderr):
        for secret in (API_KEY, "Wrong-Key-77a1", *iam.issued):
            assert secret not in output


# -- the IAM stand-in alone: the server is never reached


def test_a_key_iam_refuses_is_a_clear_error_naming_no_secret(
    couch_url: str, refusing_iam: IamStandIn,
) -> None:
    with Client(bare_url(couch_url), iam_api_key=API_KEY, iam_url=refusing_iam.url) as client:
        with pytest.raises(Unauthorized) as caught:
            client.list_database_names()
        message = str(caught.value)
        assert f"the IAM endpoint {refusing_iam.url} refused the API key: 400 BXNIM0415E" \
            in message
        with pytest.raises(Unauthorized):  # the key is not offered again
            client.list_database_names()
    assert refusing_iam.forms == [{"grant_type": [GRANT_TYPE], "apikey": [API_KEY]}]
    assert API_KEY not in _texts(caught.value)


def test_an_unreachable_iam_endpoint_is_a_transport_error_naming_no_secret(
    couch_url: str,
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/identity/token"
    with Client(bare_url(couch_url), iam_api_key=API_KEY, iam_url=url, retries=0) as client, \
            pytest.raises(TransportError) as caught:
        client.list_database_names()
    assert str(caught.value).startswith(f"POST {url}: could not connect")
    assert API_KEY not in _texts(caught.value)


@pytest.mark.parametrize(("environ", "sent"), [
    ({"COUCHDB_IAM_API_KEY": API_KEY}, API_KEY),
    ({"CLOUDANT_APIKEY": "Sdk-Key-Secret"}, "Sdk-Key-Secret"),
    ({"COUCHDB_IAM_API_KEY": API_KEY, "CLOUDANT_APIKEY": "Sdk-Key-Secret"}, API_KEY),
    ({"COUCHDB_USER": "ignored", "COUCHDB_IAM_API_KEY_FILE": "FILE"}, API_KEY),
])
def test_the_command_takes_the_key_from_the_environment(
    couch_url: str, refusing_iam: IamStandIn, tmp_path: Path, environ: dict[str, str],
    sent: str,
) -> None:
    key_file = tmp_path / "iam-key"
    key_file.write_text(API_KEY + "\n")
    environ = {name: str(key_file) if value == "FILE" else value
               for name, value in environ.items()}
    environ.update(COUCHDB_AUTH="iam", COUCHDB_IAM_URL=refusing_iam.url)
    with open_client(bare_url(couch_url), environ=environ) as client, \
            pytest.raises(Unauthorized):
        client.list_database_names()
    assert refusing_iam.forms == [{"grant_type": [GRANT_TYPE], "apikey": [sent]}]


@pytest.mark.parametrize(("environ", "message"), [
    ({}, "--auth iam needs an API key: set COUCHDB_IAM_API_KEY[_FILE] or CLOUDANT_APIKEY"),
    ({"COUCHDB_IAM_API_KEY": API_KEY, "COUCHDB_PASSWORD": "Pw-Secret"},
     "IAM authentication uses the API key alone"),
    ({"COUCHDB_IAM_API_KEY": API_KEY, "COUCHDB_IAM_API_KEY_FILE": "/nowhere"},
     "both COUCHDB_IAM_API_KEY and COUCHDB_IAM_API_KEY_FILE are set"),
    ({"COUCHDB_IAM_API_KEY_FILE": "/nowhere/iam-key"},
     "cannot read COUCHDB_IAM_API_KEY_FILE /nowhere/iam-key"),
    ({"COUCHDB_IAM_API_KEY": API_KEY, "COUCHDB_URL": "http://u:Url-Pw-Secret@127.0.0.1:9"},
     "the server URL holds a password and an IAM API key is set"),
    ({"COUCHDB_IAM_API_KEY": API_KEY, "COUCHDB_IAM_URL": "ftp://iam.example/token"},
     "the IAM URL must be an http:// or https:// URL"),
])
def test_iam_settings_that_cannot_be_used_are_named(environ: dict[str, str],
                                                    message: str) -> None:
    environ = {"COUCHDB_URL": "http://127.0.0.1:9", "COUCHDB_AUTH": "iam", **environ}
    with pytest.raises(ConnectionSettingsError) as caught:
        open_client(environ=environ)
    assert message in str(caught.value)
    for secret in (API_KEY, "Pw-Secret", "Url-Pw-Secret"):
        assert secret not in _texts(caught.value)
