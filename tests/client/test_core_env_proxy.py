"""Proxies from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, lowercase too) and ``proxy=``, with the default engine (httpx's proxy support).

A loopback proxy in front of the real server under test counts what it forwards.
The client names the server ``couch.invalid``, a name that does not resolve: an
answer proves the request went through the proxy, a "could not connect" that it
went straight (as NO_PROXY says). A loopback server name is never proxied from the
environment, so the server's own URL serves to show that.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from loopback import CertificateAuthority, Proxy, TLSTerminator, upstream_of

from couchsync.client import Client, InvalidURL, TransportError
from couchsync.client._proxy import bypassed, environment_proxy

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def proxy(couch_url: str) -> Iterator[Proxy]:
    with Proxy(upstream_of(couch_url)) as running:
        yield running


def _named(couch_url: str, host: str = "couch.invalid") -> str:
    """The server's URL (credentials kept) with ``host`` for its host name."""
    parts = urlsplit(couch_url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return f"http://{credentials}{host}:{parts.port}"


def test_http_proxy_is_honoured(couch_url: str, proxy: Proxy,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    port = urlsplit(couch_url).port
    with Client(_named(couch_url)) as client:
        assert "version" in client.server.info()
        assert isinstance(client.list_database_names(), list)
    assert [(s.method, s.target) for s in proxy.seen] == [
        ("GET", f"http://couch.invalid:{port}/"),
        ("GET", f"http://couch.invalid:{port}/_all_dbs"),
    ]
    assert proxy.seen[0].headers["Authorization"].startswith("Basic ")


def test_the_lowercase_variable_wins(couch_url: str, proxy: Proxy,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    with Client(_named(couch_url)) as client:
        client.server.info()
    assert len(proxy.seen) == 1


def test_all_proxy_serves_when_no_scheme_variable_is_set(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # for https:// only
    with Client(_named(couch_url)) as client:
        client.server.info()
    assert len(proxy.seen) == 1


@pytest.mark.parametrize("no_proxy", ["couch.invalid", ".invalid", "*.invalid", "*",
                                      "example.org, couch.invalid", "couch.invalid:{port}"])
def test_no_proxy_sends_the_request_straight(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=urlsplit(couch_url).port))
    with Client(_named(couch_url), retries=0) as client, \
            pytest.raises(TransportError, match="could not connect") as caught:
        client.server.info()
    assert proxy.seen == []
    assert "proxy" not in str(caught.value)


@pytest.mark.parametrize("no_proxy", ["example.org", "invalid.example", "couch.invalid:1",
                                      "10.0.0.0/8"])
def test_no_proxy_entries_for_other_hosts_leave_the_proxy_in_use(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", no_proxy)
    with Client(_named(couch_url)) as client:
        client.server.info()
    assert len(proxy.seen) == 1


def test_a_loopback_server_is_never_reached_through_an_environment_proxy(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    with Client(couch_url, retries=0) as client:
        client.server.info()
    with Client(_named(couch_url, "localhost"), retries=0) as client:
        client.server.info()


def test_an_explicit_proxy_is_used_and_trust_env_false_ignores_the_environment(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Client(couch_url, proxy=proxy.url) as client:  # even for a loopback server
        client.server.info()
    assert len(proxy.seen) == 1
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with Client(_named(couch_url), trust_env=False, retries=0) as client, \
            pytest.raises(TransportError, match="could not connect"):
        client.server.info()
    assert len(proxy.seen) == 1


def test_proxy_credentials_are_sent_to_the_proxy_and_masked_in_errors(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://puser:Proxy%40Secret@127.0.0.1:{proxy.port}")
    with Client(_named(couch_url)) as client:
        client.server.info()
    expected = base64.b64encode(b"puser:Proxy@Secret").decode()
    assert proxy.seen[0].headers["Proxy-Authorization"] == f"Basic {expected}"
    monkeypatch.setenv("HTTP_PROXY", "http://puser:Proxy%40Secret@127.0.0.1:9")
    with Client(_named(couch_url), retries=0) as client, \
            pytest.raises(TransportError) as caught:
        client.server.info()
    message = str(caught.value)
    assert "through the proxy http://puser:***@127.0.0.1:9, from HTTP_PROXY" in message
    assert "Secret" not in message + repr(caught.value)


def test_https_goes_through_the_proxy_in_a_tunnel(
    couch_url: str, proxy: Proxy, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """HTTPS_PROXY: CONNECT to the server, then TLS inside the tunnel, checked against
    the CA given (a loopback TLS terminator in front of the real server)."""
    ca = CertificateAuthority(tmp_path_factory.mktemp("proxy-ca"))
    issued = ca.issue("localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    with TLSTerminator(upstream_of(couch_url), context) as terminator:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        parts = urlsplit(couch_url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        # "localhost" is loopback: name it with the proxy given explicitly
        url = f"https://{credentials}localhost:{terminator.port}"
        with Client(url, verify=str(ca.cert), proxy=proxy.url) as client:
            assert "version" in client.server.info()
            client.list_database_names()
    assert [(s.method, s.target) for s in proxy.seen] == [
        ("CONNECT", f"localhost:{terminator.port}")]


def test_an_unsupported_proxy_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:Socks-Secret@proxy.example:1080")
    with pytest.raises(InvalidURL, match="ALL_PROXY has the unsupported scheme 'socks5'") \
            as caught:
        Client("http://couch.example:5984")
    assert "Socks-Secret" not in str(caught.value)


@pytest.mark.parametrize(("host", "port", "no_proxy", "expected"), [
    ("couch.example.com", 5984, "example.com", True),
    ("example.com", 5984, "example.com", True),
    ("badexample.com", 5984, "example.com", False),
    ("couch.example.com", 5984, ".example.com", True),
    ("couch.example.com", 5984, "*.example.com", True),
    ("couch.example.com", 5984, "EXAMPLE.COM", True),
    ("couch.example.com", 5984, "example.com:5984", True),
    ("couch.example.com", 6984, "example.com:5984", False),
    ("10.1.2.3", 5984, "10.0.0.0/8", True),
    ("10.1.2.3", 5984, "10.1.2.3", True),
    ("11.1.2.3", 5984, "10.0.0.0/8", False),
    ("fd00::1", 5984, "fd00::/8", True),
    ("fd00::1", 5984, "[fd00::1]:5984", True),
    ("couch.example.com", 5984, "", False),
    ("couch.example.com", 5984, " , ,", False),
    ("anything", 1, "a.b, *", True),
])
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_which_variable_serves_which_server() -> None:
    env = {"HTTP_PROXY": "proxy-a:3128", "https_proxy": "https://proxy-b",
           "ALL_PROXY": "http://proxy-c:1"}
    http = environment_proxy("http", "couch.example", 5984, env)
    https = environment_proxy("https", "couch.example", 443, env)
    assert http is not None and http.url == "http://proxy-a:3128"
    assert http.source == "HTTP_PROXY"
    assert https is not None and https.url == "https://proxy-b:443"
    assert environment_proxy("https", "[::1]", 443, env) is None  # loopback
    assert environment_proxy("http", "127.0.0.2", 80, env) is None
    assert environment_proxy("http", "couch.example", 80, {}) is None
