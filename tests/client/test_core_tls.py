"""TLS: a private CA (``verify=`` a CA bundle, the CLI's ``--cacert``) and client
certificates (``cert=``, ``key=``), against the real server under test behind a
loopback TLS terminator with certificates made by the test (``openssl`` command).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from loopback import CertificateAuthority, Issued, TLSTerminator, upstream_of

from couchsync.client import Client, TransportError


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("localhost")


def _tls_server(upstream: tuple[str, int], cert: Issued,
                client_ca: Path | None = None) -> TLSTerminator:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return TLSTerminator(upstream, context)


@pytest.fixture
def tls_url(couch_url: str, server_cert: Issued) -> Iterator[str]:
    """The server under test over TLS (its credentials kept), at https://localhost:PORT."""
    with _tls_server(upstream_of(couch_url), server_cert) as terminator:
        yield _https(couch_url, terminator)


def _https(couch_url: str, terminator: TLSTerminator) -> str:
    parts = urlsplit(couch_url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return f"https://{credentials}localhost:{terminator.port}"


def test_the_right_ca_is_trusted(tls_url: str, ca: CertificateAuthority,
                                 db_name: str) -> None:
    with Client(tls_url, verify=str(ca.cert)) as client:
        assert "version" in client.server.info()
        client.create(db_name)
        db = client.database(db_name)
        db.add({"_id": "over-tls"})
        assert [row["id"] for row in db.iter_all_docs(read_ahead=True)] == ["over-tls"]
        client.delete(db_name)


def test_another_ca_is_refused_with_a_clear_error(
    tls_url: str, tmp_path: Path,
) -> None:
    other = CertificateAuthority(tmp_path / "other", "some other CA")
    for verify in (str(other.cert), True):  # another CA; the system's CAs
        with Client(tls_url, verify=verify) as client, \
                pytest.raises(TransportError) as caught:
            client.server.info()
        message = str(caught.value)
        assert "TLS certificate was not accepted" in message
        assert "CA bundle" in message  # and OpenSSL's reason, which varies


def test_a_client_certificate_is_presented_when_the_server_requires_one(
    couch_url: str, ca: CertificateAuthority, server_cert: Issued, tmp_path: Path,
) -> None:
    client_cert = ca.issue("couchsync-client", client=True)
    combined = tmp_path / "client-combined.pem"
    combined.write_bytes(client_cert.cert.read_bytes() + client_cert.key.read_bytes())
    with _tls_server(upstream_of(couch_url), server_cert, client_ca=ca.cert) as terminator:
        url = _https(couch_url, terminator)
        with Client(url, verify=str(ca.cert), cert=str(client_cert.cert),
                    key=str(client_cert.key)) as client:
            assert "version" in client.server.info()
        with Client(url, verify=str(ca.cert), cert=str(combined)) as client:
            assert "version" in client.server.info()  # key and certificate in one file
        subjects = [dict(item[0] for item in cert["subject"]) for cert in terminator.peer_certs]
        assert subjects == [{"commonName": "couchsync-client"}] * 2
        with Client(url, verify=str(ca.cert), retries=3) as client, \
                pytest.raises(TransportError) as caught:
            client.server.info()
        assert "refused the TLS connection" in str(caught.value)
        assert "client certificate" in str(caught.value)
    # Counted once the terminator has joined its threads: with TLS 1.3 the client can
    # read the server's alert before the server's thread has recorded the failure.
    assert len(terminator.failures) == 1  # not retried


def test_certificate_files_that_cannot_be_used_are_named(
    tmp_path: Path, ca: CertificateAuthority,
) -> None:
    with pytest.raises(FileNotFoundError, match="CA bundle") as caught:
        Client("https://localhost", verify=str(tmp_path / "missing.pem"))
    assert "missing.pem" in str(caught.value)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(ValueError, match=r"client certificate from .*not\.pem"):
        Client("https://localhost", verify=str(ca.cert), cert=str(not_pem))
    with pytest.raises(ValueError, match="give cert= too"):
        Client("https://localhost", key=str(not_pem))
