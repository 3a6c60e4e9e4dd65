"""validate's JavaScript check agrees with CouchDB: CouchDB compiles a view's map and
reduce when it saves the design doc, and refuses it when one does not compile. Each
source below is sent raw (PUT, no couchsync) and checked by couchsync; the verdicts
must be the same.

One difference is meant: CouchDB takes a reduce by its prefix (``_countx`` runs as
``_count``), validate wants the exact name (``test_javascript.py``)."""

from __future__ import annotations

import httpx
import pytest

from couchsync.manifest._javascript import javascript_problems

MAP = "function (doc) { emit(doc.type, 1); }"
MAPS = [
    MAP,
    "(function (doc) { emit(doc._id, 1); })",
    "// leading comment\nfunction (doc) {\n\temit(doc._id, null);\n}\n",
    "var x = 1; function (doc) { emit(x, 1); }",
    "function f(doc) { emit(doc._id, 1); } f",
    "function map(doc) { emit(doc._id, 1); }",
    "async function (doc) { emit(doc._id, 1); }",
    "function (doc) { emit(`${doc.a}`, [1].map((v) => v * 2)); }",
    "1 + 1",
    "function (doc) { emit(doc._id, 1);",
    "function (doc) { emit(doc._id, 1); }}",
    "(doc) => emit(doc._id, 1)",
    "",
    "   ",
    "var x = 1;",
    "function (doc) { emit(doc._id, undefinedName); }",
    "(function () { var n = 2; return function (doc) { emit(doc._id, n); }; })()",
]
REDUCES = ["_count", "_sum", "_stats", "_approx_count_distinct", "_first", "_last",
           "_top_3", "_bottom_100", "count", "sum", "_top_101", "_top_0",
           "function (keys, values, rereduce) { return sum(values); }",
           "function (keys, values) { return values.length", "_"]


def _server_refuses(couch_url: str, db: str, view: dict[str, str]) -> bool:
    answer = httpx.put(f"{couch_url}/{db}/_design/check", json={"views": {"v": view}},
                       timeout=30)
    if answer.status_code in (200, 201, 202):
        rev = answer.json()["rev"]
        httpx.delete(f"{couch_url}/{db}/_design/check", params={"rev": rev}, timeout=30)
        return False
    assert answer.status_code in (400, 404), answer.text  # 404: "missing function" ("")
    return True


@pytest.mark.couchdb_only("CouchDB compiles map and reduce functions when it saves them")
@pytest.mark.parametrize("view", [{"map": source} for source in MAPS]
                         + [{"map": MAP, "reduce": source} for source in REDUCES],
                         ids=lambda view: repr(view.get("reduce", view["map"]))[:40])
def test_validate_refuses_what_couchdb_refuses(couch_url: str, db_name: str,
                                               view: dict[str, str]) -> None:
    httpx.put(f"{couch_url}/{db_name}", timeout=30).raise_for_status()
    ours = list(javascript_problems({"views": {"v": view}}))
    assert bool(ours) == _server_refuses(couch_url, db_name, view), ours
