"""Baseline: upload a JSONL file with plain httpx to _bulk_docs in batches of 1,000.

Usage: python bench/raw_seed.py URL DB FILE.jsonl
"""

import json
import sys

import httpx

url, db, path = sys.argv[1:4]
with httpx.Client(base_url=url, timeout=600) as http:
    http.put(f"/{db}").raise_for_status()
    batch: list[dict[str, object]] = []
    with open(path) as fh:
        for line in fh:
            batch.append(json.loads(line))
            if len(batch) == 1000:
                http.post(f"/{db}/_bulk_docs", json={"docs": batch}).raise_for_status()
                batch = []
    if batch:
        http.post(f"/{db}/_bulk_docs", json={"docs": batch}).raise_for_status()
