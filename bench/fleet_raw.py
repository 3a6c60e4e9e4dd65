"""Baselines for the fleet benchmark: what a hand-written script does, with plain httpx.

    python bench/fleet_raw.py read URL PREFIX    # read every PREFIX* database's state
    python bench/fleet_raw.py apply URL PREFIX   # write the template into every PREFIX*

Both list the databases through ``_all_dbs`` first, as ``couchsync`` must to expand
a pattern, then work through them one after the other on one keep-alive
connection. ``read`` is what a no-op check needs (``_security``, ``_index`` and
a revisions-only ``_all_docs``); ``apply`` writes the template once, without
reading anything first (``PUT _security``, ``PUT`` the design document, ``POST
_index``, one ``_bulk_docs`` of the five documents).

``bench/fleet.py`` imports the template from here, so the manifest couchsync
applies and the bodies this script sends cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx

SECURITY: dict[str, Any] = {
    "admins": {"names": [], "roles": []},
    "members": {"names": [], "roles": ["fleet-user"]},
}
DESIGN_NAME = "app"
DESIGN: dict[str, Any] = {
    "views": {"by_type": {"map": "function (doc) { emit(doc.type, 1); }", "reduce": "_count"}},
}
INDEX_NAME = "by-type"
INDEX_FIELDS = ["type"]
DOCUMENTS: list[dict[str, Any]] = [
    {"_id": "settings", "type": "settings", "theme": "dark"},
    {"_id": "profile", "type": "profile", "display_name": "Fleet user", "locale": "en"},
    {"_id": "quota", "type": "limits", "max_docs": 10000, "max_bytes": 104857600},
    {"_id": "welcome", "type": "message", "title": "Welcome", "read": False},
    {"_id": "feature-flags", "type": "flags", "beta": False, "sync": True},
]


def list_databases(http: httpx.Client, prefix: str) -> list[str]:
    """The databases named ``prefix...``: a key range of ``_all_dbs``, as a script would ask."""
    params = {"start_key": json.dumps(prefix), "end_key": json.dumps(prefix + "\ufff0")}
    return list(http.get("/_all_dbs", params=params).raise_for_status().json())


def read_state(http: httpx.Client, db: str) -> tuple[Any, Any, dict[str, str]]:
    """What a no-op check needs of one database: security, indexes, document revisions."""
    security = http.get(f"/{db}/_security").raise_for_status().json()
    indexes = http.get(f"/{db}/_index").raise_for_status().json()["indexes"]
    rows = http.get(f"/{db}/_all_docs").raise_for_status().json()["rows"]
    return security, indexes, {row["id"]: row["value"]["rev"] for row in rows}


def write_template(http: httpx.Client, db: str) -> None:
    """The template's four writes into one empty database."""
    http.put(f"/{db}/_security", json=SECURITY).raise_for_status()
    http.put(f"/{db}/_design/{DESIGN_NAME}", json=DESIGN).raise_for_status()
    index = {"index": {"fields": INDEX_FIELDS}, "name": INDEX_NAME, "type": "json"}
    http.post(f"/{db}/_index", json=index).raise_for_status()
    answer = http.post(f"/{db}/_bulk_docs", json={"docs": DOCUMENTS}).raise_for_status().json()
    failed = [item for item in answer if "error" in item]
    if failed:
        raise RuntimeError(f"{db}: _bulk_docs refused {failed}")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("read", "apply"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, url, prefix = argv
    with httpx.Client(base_url=url, timeout=600) as http:
        for db in list_databases(http, prefix):
            if mode == "read":
                read_state(http, db)
            else:
                write_template(http, db)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
