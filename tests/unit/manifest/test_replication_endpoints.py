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
