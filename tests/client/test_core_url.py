"""URL parsing, credentials, masking and path quoting."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from couchsync.client import Client, HttpxConnection, InvalidURL, Server, ServerError
from couchsync.client._url import db_path, doc_path, parse_server_url


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://localhost", "http://localhost:5984"),
        ("http://localhost/", "http://localhost:5984"),
        ("http://couch.example:8080", "http://couch.example:8080"),
        ("https://couch.example", "https://couch.example:443"),
        ("https://couch.example:6984", "https://couch.example:6984"),
        ("http://proxy.example/couchdb/", "http://proxy.example:5984/couchdb"),
        ("HTTP://[::1]:5984", "http://[::1]:5984"),
    ],
)
def test_base_url_and_default_ports(url: str, base: str) -> None:
    assert parse_server_url(url).base == base


def test_credentials_are_percent_decoded_and_kept_out_of_base() -> None:
    address = parse_server_url("http://ad%3Amin:p%40ss%2Fw@host:5984")
    assert (address.user, address.password) == ("ad:min", "p@ss/w")
    assert "p@ss" not in address.base and "ad" not in address.base
    assert address.masked == "http://ad%3Amin:***@host:5984"


def test_arguments_override_url_credentials() -> None:
    address = parse_server_url("http://u:p@host", user="other", password="pw2")
    assert (address.user, address.password) == ("other", "pw2")


def test_masked_without_credentials_is_the_base() -> None:
    assert parse_server_url("http://host:1234").masked == "http://host:1234"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://u:secret@host",
        "http://u:secret@/path",
        "nonsense",
        # a password with an unencoded "/", "?" or "#": urllib takes part of it for the
        # port (and its error quotes it) or, if numeric, the whole thing for host and port
        "http://admin:sec/ret@host",
        "http://admin:sec?ret@host:5984",
        "http://admin:sec#ret@host",
        "http://admin:1234/secret@host",
        "http://admin:secret@host:99999",
        "http://admin:secret@[::1",
    ],
)
def test_unusable_url_is_rejected_without_echoing_it(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_server_url(url)
    text = str(info.value) + repr(info.value)
    assert "secret" not in text and "sec/ret" not in text and "sec" not in text
    assert "1234" not in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x", "invalid server URL: unsupported scheme, use http or https"),
        ("notaurl", "invalid server URL: expected http://HOST[:PORT] or https://..."),
        ("admin:secret@host:5984", "invalid server URL: expected http://HOST[:PORT] or https://..."),
        ("http://x:99999", "invalid server URL: its port is out of range (0-65535)"),
        ("http://", "invalid server URL: expected http://HOST[:PORT] or https://..."),
        ("http://:5984", "invalid server URL: it has no host"),
    ],
)
def test_client_and_server_refuse_a_bad_url_with_invalid_url(url: str, message: str) -> None:
    for make in (Client, Server):
        with pytest.raises(InvalidURL) as info:
            make(url)
        assert str(info.value) == message
        # Both a couchsync error (scope: the Client/Server) and, as before, a ValueError.
        assert isinstance(info.value, ServerError) and isinstance(info.value, ValueError)
        assert info.value.url is None and info.value.status is None


def test_server_address_repr_hides_the_password() -> None:
    address = parse_server_url("http://u:pw-secret@host")
    assert "pw-secret" not in repr(address) and "pw-secret" not in str(address)


@pytest.mark.parametrize(
    ("doc_id", "path"),
    [
        ("plain", "plain"),
        ("a/b", "a%2Fb"),
        ("sp ace?#&+=%", "sp%20ace%3F%23%26%2B%3D%25"),
        ("é", "%C3%A9"),
        ("_design/x/y", "_design/x%2Fy"),
        ("_local/a b", "_local/a%20b"),
        ("_designer", "_designer"),
    ],
)
def test_doc_path_encodes_everything_but_the_prefix(doc_id: str, path: str) -> None:
    assert doc_path(doc_id) == path


def test_db_path_is_one_segment() -> None:
    assert db_path("a/b+c$d(e)") == "/a%2Fb%2Bc%24d%28e%29"


def _auth_of(request: httpx.Request) -> str:
    return base64.b64decode(request.headers["authorization"].split()[1]).decode()


def test_prefix_port_and_credentials_reach_the_wire() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    conn = HttpxConnection(
        "http://u%40x:p%40ss@proxy.example/couchdb/", transport=httpx.MockTransport(handler)
    )
    Client("unused", connection_engine=lambda _url: conn).database("a/b").get("c d")
    assert str(seen[0].url) == "http://proxy.example:5984/couchdb/a%2Fb/c%20d"
    assert _auth_of(seen[0]) == "u@x:p@ss"


@pytest.mark.parametrize(
    "options",
    [{"user": "me", "password": "pw"}, {"auth": ("me", "pw")}],
)
def test_credentials_as_arguments(options: dict[str, Any]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    cli = Client("http://host", transport=httpx.MockTransport(handler), **options)
    cli.list_database_names()
    assert _auth_of(seen[0]) == "me:pw"
    assert repr(cli) == "<Client http://me:***@host:5984>"


def test_no_credentials_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    Client("http://host", transport=httpx.MockTransport(handler)).list_database_names()
    assert "authorization" not in seen[0].headers


def test_verify_accepts_a_ca_bundle_path() -> None:
    with pytest.raises(FileNotFoundError):  # the path is really used as a CA bundle
        HttpxConnection("https://host", verify="/nonexistent/ca.pem")
    HttpxConnection("https://host", verify=False).close()
