"""Baseline: one revisions-only _all_docs scan of a database with plain httpx.

Usage: python bench/raw_scan.py URL DB
"""

import sys

import httpx

url, db = sys.argv[1:3]
with httpx.Client(base_url=url, timeout=600) as http:
    rows = http.get(f"/{db}/_all_docs").raise_for_status().json()["rows"]
    revs = {row["id"]: row["value"]["rev"] for row in rows}
