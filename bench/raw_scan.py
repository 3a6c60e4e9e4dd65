"""Baseline: one revisions-only _all_docs scan of a database with plain httpx.

Usage: python bench/raw_scan.py URL DB [REVS.json DATA.jsonl]

With REVS (the revisions the data was written as, by id) and DATA, it also finds
the drift, as a plan must: the documents whose revision moved are read, and they
and the ids are compared with DATA.
"""

import json
import sys

import httpx

url, db, *known = sys.argv[1:]
with httpx.Client(base_url=url, timeout=600) as http:
    rows = http.get(f"/{db}/_all_docs").raise_for_status().json()["rows"]
    revs = {row["id"]: row["value"]["rev"] for row in rows}
    if known:
        with open(known[0]) as fh:
            written = json.load(fh)
        with open(known[1]) as fh:
            desired = {doc["_id"]: doc for doc in map(json.loads, fh)}
        moved = [doc_id for doc_id, rev in revs.items() if written.get(doc_id) != rev]
        read = http.post(f"/{db}/_all_docs", params={"include_docs": "true"},
                         json={"keys": moved}).raise_for_status().json()["rows"]
        changed = [row["id"] for row in read if desired.get(row["id"])
                   != {k: v for k, v in row["doc"].items() if k != "_rev"}]
        missing = desired.keys() - revs.keys()
