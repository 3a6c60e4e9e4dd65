"""Replication endpoints CouchDB 3 refuses are validate errors at their place (issue 19):
a bare database name (``local_endpoints_not_supported``) or anything but an ``http://`` or
``https://`` URL. The integration test ``test_safe_defaults`` holds the rule against the
real server's answers."""

from __future__ import annotations

from conftest import Collect, Write

LOCAL = ("is a database name, and CouchDB 3 refuses local endpoints "
         "(local_endpoints_not_supported): give its URL, e.g. http://HOST:5984/")
NOT_HTTP = ("is not an http:// or https:// URL (written so, in lower case): CouchDB "
            "refuses it (local_endpoints_not_supported)")


def test_endpoints_couchdb_refuses_are_named_at_their_place(
    write: Write, collect: Collect,
) -> None:
    write("m.yaml", """\
        version: 1
        replications:
          backup:
            source: orders
            target: https://backup.example.com/orders
          pull:
            source: {url: "HTTP://admin:Secret@h/a"}
            target: ${TARGET}
          fine:
            source: {url: "http://h:5984/a", auth: {basic: {username: u, password: p}}}
            target: http://h:5984/b
        """)
    assert collect("m.yaml", environ={"TARGET": "copy"}) == [
        ("m.yaml", 4, 13, f"replication 'backup': source 'orders' {LOCAL}orders"),
        ("m.yaml", 7, 19, f"replication 'pull': source {NOT_HTTP}"),
        ("m.yaml", 8, 13, f"replication 'pull': target 'copy' {LOCAL}copy"),
    ]


BASIC = ("header is not Basic base64 of user:password: CouchDB refuses the document "
         "(forbidden: {error,badarg}) or replicates without the credentials; write base64 "
         "of user:password, or auth: {basic: {username, password}}")


def test_a_basic_authorization_header_must_be_base64_of_user_and_password(
    write: Write, collect: Collect,
) -> None:
    """CouchDB refuses ``Basic <not base64>`` (``forbidden: {error,badarg}``), and drops
    credentials without padding or ``:`` (the replication runs without them). The value
    is never shown: it is a credential."""
    write("m.yaml", """\
        version: 1
        replications:
          plain:
            source: http://h:5984/a
            target: {url: "http://h:5984/b", headers: {Authorization: "Basic s3cret-pw"}}
          unpadded:
            source: {url: "http://h:5984/a", headers: {authorization: "basic YTpiYw"}}
            target: http://h:5984/b
          no-colon:
            source: {url: "http://h:5984/a", headers: {Authorization: "Basic ${TOKEN}"}}
            target: http://h:5984/b
          fine:
            source: {url: "http://h:5984/a", headers: {Authorization: "BASIC YTpiYw=="}}
            target: {url: "http://h:5984/b", headers: {Authorization: "Bearer s3cret-pw",
                                                        X-Other: "Basic !!"}}
          spaced:
            source: {url: "http://h:5984/a", headers: {Authorization: "Basic YTpi YWM="}}
            target: {url: "http://h:5984/b", headers: {Authorization: "Basic"}}
        """)
    found = collect("m.yaml", environ={"TOKEN": "dG9rZW4="})  # "token"
    assert found == [
        ("m.yaml", 5, 63, f"replication 'plain': target's Authorization {BASIC}"),
        ("m.yaml", 7, 63, f"replication 'unpadded': source's authorization {BASIC}"),
        ("m.yaml", 10, 63, f"replication 'no-colon': source's Authorization {BASIC}"),
    ]
    assert not any("s3cret" in message or "dG9r" in message for *_, message in found)
