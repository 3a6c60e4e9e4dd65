"""What a cookie session saves per request against Basic authentication, on CouchDB.

    .venv/bin/python bench/auth.py [--url URL] [-n 2000] [--rounds 5] [--uncached-n 10]

Without ``--url`` a fresh single-node CouchDB is started (bench/couchdb_server.py, on
a free port) and stopped afterwards; with it, the server named (admin credentials in
the URL) is used and left as it was.

Prints the server's password settings (``[chttpd_auth]``, ``[couch_passwords_cache]``:
the defaults where unset), then, for a user created in ``_users`` for the run (and
for the server admin of the URL):

- the first request of each mode, when the server must check the password against
  its stored PBKDF2 hash (a fresh user per mode: the servers' cache is shared);
- ``n`` sequential GETs of a small document with Basic and with a session, in
  ``rounds`` interleaved rounds (so that drift on a shared machine hits both), as the
  median microseconds per request and the ratio session / basic;
- with the password cache switched off (only on a server this run started, or with
  ``--toggle-cache``): ``uncached-n`` requests each, which shows what the cache
  saves Basic authentication, i.e. what a session would save without it.

Each request goes through couchsync's client (``HttpxConnection``), as ``plan`` and
``apply`` send them.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from couchsync.client import Client, HttpxConnection

DB = "bench_auth"
DEFAULTS = {  # CouchDB 3.5.2's defaults (rel/overlay/etc/default.ini)
    ("chttpd_auth", "iterations"): "600000",
    ("chttpd_auth", "pbkdf2_prf"): "sha256",
    ("chttpd_auth", "password_scheme"): "pbkdf2",
    ("chttpd_auth", "timeout"): "600",
    ("couch_passwords_cache", "enable"): "true",
    ("couch_passwords_cache", "max_idle"): "600000",
}


def _config(admin: Client, section: str) -> dict[str, str]:
    result: dict[str, str] = admin._conn.request(
        "GET", f"/_node/_local/_config/{section}").json()
    return result


def _set_config(admin: Client, section: str, key: str, value: str | None) -> None:
    path = f"/_node/_local/_config/{section}/{key}"
    if value is None:
        admin._conn.request("DELETE", path)
    else:
        admin._conn.request("PUT", path, json=value)


def _per_request(engine: HttpxConnection, path: str, count: int) -> float:
    """Seconds per request, ``count`` sequential GETs."""
    started = time.perf_counter()
    for _ in range(count):
        response = engine.request("GET", path)
        assert response.status_code == 200, response.status_code
    return (time.perf_counter() - started) / count


def _first(engine: HttpxConnection, path: str) -> float:
    return _per_request(engine, path, 1)


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, bool]]:
    if url is not None:
        yield url.rstrip("/"), False
        return
    from couchdb_server import running_server

    with running_server() as started:
        yield started, True


def _user(admin: Client, password: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin.database("_users").add({"_id": f"org.couchdb.user:{name}", "name": name,
                                  "password": password, "roles": [], "type": "user"})
    return name


def _compare(base: str, user: str, password: str, path: str, count: int,
             rounds: int) -> tuple[float, float]:
    """Median seconds per request, Basic and session, interleaved rounds."""
    basic = HttpxConnection(base, user=user, password=password)
    session = HttpxConnection(base, user=user, password=password, session=True)
    try:
        for engine in (basic, session):  # warm up: connections, login, password cache
            _per_request(engine, path, min(20, count))
        times: dict[str, list[float]] = {"basic": [], "session": []}
        for _ in range(rounds):
            times["basic"].append(_per_request(basic, path, count // rounds))
            times["session"].append(_per_request(session, path, count // rounds))
        return statistics.median(times["basic"]), statistics.median(times["session"])
    finally:
        basic.close()
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a CouchDB with admin credentials (default: start one)")
    parser.add_argument("-n", type=int, default=2000, help="GETs per mode (default 2000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uncached-n", type=int, default=10,
                        help="GETs per mode with the password cache off (default 10)")
    parser.add_argument("--toggle-cache", action="store_true",
                        help="switch the password cache off on --url's server too")
    args = parser.parse_args()

    with _server(args.url) as (url, own):
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        admin_user, admin_password = parts.username or "", parts.password or ""
        with Client(url) as admin:
            info = admin.server.info()
            print(f"server: {info.get('vendor', {}).get('name', '?')} {info.get('version')}"
                  f" at {base} ({'started for this run' if own else 'given'})")
            settings = {**{s: _config(admin, s) for s in ("chttpd_auth",
                                                           "couch_passwords_cache")}}
            for (section, key), default in DEFAULTS.items():
                value = settings[section].get(key)
                shown = value if value is not None else f"{default} (default)"
                print(f"  [{section}] {key} = {shown}")
            if DB in admin:
                admin.delete(DB)
            admin.create(DB)
            db = admin.database(DB)
            db.add({"_id": "small", "kind": "setting", "value": 42})
            password = "bench-" + uuid.uuid4().hex
            users = [_user(admin, password) for _ in range(3)]
            db.set_security({"admins": {"names": [], "roles": []},
                             "members": {"names": users, "roles": []}})
            path = f"/{DB}/small"
            try:
                print("\nfirst request (the password checked against its stored hash):")
                for mode, name in (("basic", users[0]), ("session", users[1])):
                    engine = HttpxConnection(base, user=name, password=password,
                                             session=mode == "session")
                    with contextlib.closing(engine):
                        first = _first(engine, path)
                        then = _per_request(engine, path, 20)
                    print(f"  {mode:8} {first * 1e3:8.1f} ms  (then {then * 1e6:6.0f} us)")

                print(f"\n{args.n} sequential GETs of one small document, median of "
                      f"{args.rounds} interleaved rounds:")
                for who, name, secret in (("_users user", users[2], password),
                                          ("server admin", admin_user, admin_password)):
                    basic, session = _compare(base, name, secret, path, args.n, args.rounds)
                    print(f"  {who:13} basic {basic * 1e6:7.0f} us   session "
                          f"{session * 1e6:7.0f} us   session/basic {session / basic:5.2f}")

                if own or args.toggle_cache:
                    before = settings["couch_passwords_cache"].get("enable")
                    _set_config(admin, "couch_passwords_cache", "enable", "false")
                    try:
                        basic, session = _compare(base, users[2], password, path,
                                                  args.uncached_n, 1)
                    finally:
                        _set_config(admin, "couch_passwords_cache", "enable", before)
                    print(f"\nwith [couch_passwords_cache] enable = false, {args.uncached_n} "
                          f"GETs each:\n  _users user    basic {basic * 1e3:7.1f} ms   "
                          f"session {session * 1e3:7.3f} ms   basic/session "
                          f"{basic / session:6.0f}x")
            finally:
                for name in users:
                    admin.database("_users").delete(f"org.couchdb.user:{name}")
                admin.delete(DB)


if __name__ == "__main__":
    main()
