"""Attachments from files (issue 22): ``couchsync`` against its baselines, on a real server.

    python bench/attachments.py                       # bundled CouchDB on port 43984, all three
    python bench/attachments.py --only noop,upload --rounds 5 --url http://u:p@127.0.0.1:5984
    python bench/attachments.py --only memory --big-mb 1000 --rev HEAD

The data set: ``--count`` files (default 1,000) of ``--total-mb`` MB in all (100), sizes
log-normal (median about 30 kB, a few over the 1 MiB that apply sends inline); every
third a compressible type (.js, .css, .json: generated text, which CouchDB stores
gzipped), the rest random bytes (.png, .bin). Generated once under
``bench/out/attachments/files`` (seeded) and kept. ``--forms``: noop and upload hold them
as ``docs`` (a document each, ``_attachments: {name: file}``) and as ``ddoc`` (all on the
design doc ``app``, ``_attachments_from: files``, as a couchapp).

Scenarios (issue targets):

noop    ``couchsync plan`` of a database holding the attachments, declared, ≤ 1.2× the
        same plan of a database with the same documents and attachments, not declared
        (``noop_databases``). Also run once through a counting HTTP proxy on loopback
        (this process, in front of the server): the attachment bytes each plan
        downloads, which must be 0 (responses to ``GET /db/doc/name`` and to anything
        asked with ``attachments=true`` or ``atts_since``), all bytes and the requests by
        kind. Rows with the cache warm (``COUCHSYNC_CACHE_DIR`` kept: file digests known
        by stat) and cold (turned off: every file read and hashed); then, for ``docs``,
        the plans' stages in this process (``noop_stages``).
upload  first ``couchsync apply`` of those attachments into an empty database ≤ 1.2× a raw
        script (this file run as ``raw-upload``: one plain ``httpx.Client``, ``PUT /db``,
        then a sequential ``PUT /db/doc/name`` per file, which creates the document; for
        ``ddoc``, one ``PUT`` of the design doc with every file inline, as ``couchapp
        push`` does). Each round starts with both databases dropped; after it, the stubs
        (count, types, lengths) are checked against the files. Requests counted once
        through the proxy.
memory  peak RSS (GNU time's ``%M``) of ``couchsync apply`` uploading one ``--big-mb`` MB
        attachment (random bytes, a file in ``/tmp``, deleted afterwards) ≤ 100 MB, and
        of the same apply with a 1 MB attachment, for reference; run once each.

Rounds (``--rounds``) are interleaved, each starting at the other side; whole processes;
the medians' ratio is reported. ``--rev``: that commit's couchsync, exported as
``compare_revs.py`` does. Results: a table on stdout and
``bench/out/attachments/results.json``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import httpx


def raw_upload(url: str, db: str, listing: str, design: str = "") -> int:
    """What a hand-written script does: each file PUT as the attachment of a new document
    (its listed id); with ``design``, as ``couchapp push`` does, one PUT of that design doc
    with every file inline (base64)."""
    files = json.loads(Path(listing).read_text())
    with httpx.Client(base_url=url, timeout=600) as http:
        http.put(f"/{db}").raise_for_status()
        if design:
            inline = {entry["name"]: {"content_type": entry["content_type"], "data":
                                      base64.b64encode(Path(entry["file"]).read_bytes()).decode()}
                      for entry in files}
            doc = {"language": "javascript", "_attachments": inline}
            http.put(f"/{db}/{design}", json=doc).raise_for_status()
        for entry in [] if design else files:
            http.put(f"/{db}/{entry['id']}/{entry['name']}",
                     content=Path(entry["file"]).read_bytes(),
                     headers={"Content-Type": entry["content_type"]}).raise_for_status()
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["raw-upload"]:
    sys.exit(raw_upload(*sys.argv[2:]))

# ---------------------------------------------------------------- the benchmark

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs, urlsplit, urlunsplit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
import compare_revs  # noqa: E402
import fleet  # noqa: E402
from migrate import Result  # noqa: E402  (the same table row)
from run import COUCHSYNC, OUT, PY, bench_server, server_name  # noqa: E402

ATT_OUT = OUT / "attachments"
FILES = ATT_OUT / "files"
PORT = 43984
SCENARIOS = ("noop", "upload", "memory")
SCRIPT = str(Path(__file__).resolve())
TARGETS = {"noop": "≤ 1.2×, 0 attachment bytes read", "upload": "≤ 1.2×",
           "memory": "≤ 100 MB"}
#: Extensions, the content type couchsync gives each (its own table), and
#: whether CouchDB's default ``compressible_types`` gzips it.
TYPES = {".js": ("application/javascript", True), ".css": ("text/css", True),
         ".json": ("application/json", True), ".png": ("image/png", False),
         ".bin": ("application/octet-stream", False)}
#: The two shapes the attachments take: ``docs``, one document each (``_attachments:
#: {name: file}``); ``ddoc``, all on one design doc (``_attachments_from: files``), as a
#: couchapp's.
FORMS = {"docs": "a document each", "ddoc": "all on 1 design doc (_attachments_from)"}
DESIGN_ID = "_design/app"
MEMORY_DB = "att-memory"
MB = 1_000_000


# ---------------------------------------------------------------- the data set


def sizes(count: int, total: int, rng: random.Random) -> list[int]:
    """``count`` log-normal sizes (median ~30 kB before scaling) summing to ``total``."""
    drawn = [rng.lognormvariate(math.log(30_000), 1.5) for _ in range(count)]
    scale = total / sum(drawn)
    out = [max(1, round(x * scale)) for x in drawn]
    out[out.index(max(out))] += total - sum(out)  # exact total, on the largest
    return out


def text(size: int, rng: random.Random, words: list[str]) -> bytes:
    """Source-like text: words and punctuation, compressible as code is (gzip ~3-4×)."""
    return " ".join(rng.choices(words, k=size // 5 + 1)).encode()[:size]


def make_files(count: int, total: int, seed: int = 22) -> list[dict[str, Any]]:
    """The data set's files (made once, kept while the parameters stay) and their listing:
    ``{id, name, file, content_type, length}`` each, in document order."""
    listing_path = ATT_OUT / f"listing-{count}-{total}-{seed}.json"
    if listing_path.exists():
        listing = json.loads(listing_path.read_text())
        if all(os.path.exists(e["file"]) and os.path.getsize(e["file"]) == e["length"]
               for e in listing):
            return listing  # type: ignore[no-any-return]
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz_.(){};=", k=rng.randint(2, 10)))
             for _ in range(2000)]
    FILES.mkdir(parents=True, exist_ok=True)
    for old in FILES.iterdir():
        old.unlink()
    listing = []
    extensions = list(TYPES)
    for i, size in enumerate(sizes(count, total, rng)):
        compressible = i % 3 == 0
        ext = extensions[(i // 3) % 3] if compressible else extensions[3 + i % 2]
        name = f"asset-{i:04d}{ext}"
        path = FILES / name
        path.write_bytes(text(size, rng, words) if compressible else rng.randbytes(size))
        listing.append({"id": f"asset-{i:04d}", "name": name, "file": str(path),
                        "content_type": TYPES[ext][0], "length": size})
    listing_path.write_text(json.dumps(listing, indent=1) + "\n")
    return listing


def write_manifest(name: str, db: str, listing: list[dict[str, Any]],
                   declared: str | None, form: str = "docs") -> Path:
    """``docs``: one document per file, ``{"_id", "kind", "size"}``, and under the key
    ``declared`` (None: none) ``{name: file}``: ``_attachments`` declares the attachment,
    another key is the same text as a field. ``ddoc``: the design doc ``app``, with
    ``_attachments_from`` the files' directory when ``declared``. JSON flow collections
    (valid YAML)."""
    path = ATT_OUT / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "databases:", f"  {db}:"]
    if form == "ddoc":
        design: dict[str, Any] = {"language": "javascript"}
        if declared:
            design["_attachments_from"] = os.path.relpath(FILES, path.parent)
        path.write_text("\n".join([*lines, "    design_docs:",
                                   f"      {DESIGN_ID.split('/')[1]}: {json.dumps(design)}"])
                        + "\n")
        return path
    lines.append("    documents:")
    for entry in listing:
        doc: dict[str, Any] = {"_id": entry["id"], "kind": "asset", "size": entry["length"]}
        if declared:
            doc[declared] = {entry["name"]: os.path.relpath(entry["file"], path.parent)}
        lines.append(f"      - {json.dumps(doc)}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- counting proxy


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    bytes_down: int = 0  # response bodies
    bytes_up: int = 0  # request bodies
    attachment_bytes_down: int = 0
    attachment_requests: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"requests": sum(self.requests.values()), "by_kind": dict(self.requests),
                "bytes_down": self.bytes_down, "bytes_up": self.bytes_up,
                "attachment_bytes_down": self.attachment_bytes_down,
                "attachment_requests": self.attachment_requests}


def reads_attachment(method: str, path: str, query: dict[str, list[str]]) -> bool:
    """Whether a response may carry attachment bytes: ``GET /db/doc/name`` (a design or
    local document's too), or anything asked with ``attachments=true`` / ``atts_since``."""
    if query.get("attachments") == ["true"] or "atts_since" in query:
        return True
    parts = path.lstrip("/").split("/")
    rest = parts[3:] if len(parts) > 2 and parts[1] in ("_design", "_local") else parts[2:]
    return method in ("GET", "HEAD") and bool(rest) and not rest[0].startswith("_")


def request_kind(method: str, path: str) -> str:
    """``METHOD /{db}/...`` with document ids and attachment names made generic."""
    key = re.sub(r"^/att-[a-z-]+", "/{db}", path)
    key = re.sub(r"/asset-\d{4}(/asset-\d{4}\.\w+)?$",
                 lambda m: "/{doc}" + ("/{attachment}" if m.group(1) else ""), key)
    key = re.sub(r"^(/\{db\}/_design/[^/]+)/[^_/][^/]*$", r"\1/{attachment}", key)
    return f"{method} {key}"


class CountingProxy:
    """An HTTP/1.1 proxy on loopback in front of ``upstream``, tallying what passes. It
    reads each body whole (fine for the data set's files, not for ``memory``)."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self.tally = Tally()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream_conn: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    raise RuntimeError("the counting proxy takes no chunked request bodies")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.upstream_conn is None:
                    self.upstream_conn = http.client.HTTPConnection(
                        split.hostname, split.port, timeout=600)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "host")}
                self.upstream_conn.request(self.command, self.path, body=body, headers=headers)
                answer = self.upstream_conn.getresponse()
                data = answer.read()
                target = urlsplit(self.path)
                with proxy.lock:
                    t = proxy.tally
                    t.requests[request_kind(self.command, target.path)] += 1
                    t.bytes_up += len(body)
                    t.bytes_down += len(data)
                    if reads_attachment(self.command, target.path, parse_qs(target.query)):
                        t.attachment_requests += 1
                        t.attachment_bytes_down += len(data)
                self.send_response_only(answer.status, answer.reason)
                # A HEAD answer keeps the server's Content-Length (of the body not sent).
                dropped = ("transfer-encoding", "connection", "keep-alive") + (
                    () if self.command == "HEAD" else ("content-length",))
                for key, value in answer.getheaders():
                    if key.lower() not in dropped:
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_COPY = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        netloc = (split.netloc.rsplit("@", 1)[0] + "@" if "@" in split.netloc else "")
        self.url = urlunsplit((split.scheme, f"{netloc}127.0.0.1:{port}", split.path, "", ""))

    @contextlib.contextmanager
    def counting(self) -> Iterator[Tally]:
        with self.lock:
            self.tally = Tally()
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.tally
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.server = fleet.Server(url, 4)
        self.http = self.server.http
        self.env = dict(os.environ, COUCHSYNC_CACHE_DIR=str(ATT_OUT / "cache"))
        for name in ("COUCHDB_URL", "COUCH_URL", "COUCHDB_USER"):
            self.env.pop(name, None)  # --url is passed: no other server or user may leak in
        # --rev: that commit's package (compare_revs.py's export) before the checkout's.
        self.cli = COUCHSYNC
        if args.copy:
            self.cli = [PY, "-P", "-c", compare_revs.RUNNER]
            self.env["PYTHONPATH"] = str(args.copy)
        self.cold_env = dict(self.env, COUCHSYNC_CACHE_DIR="")
        self.results: list[Result] = []
        self.counts: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.listing: list[dict[str, Any]] = []
        self.stages: dict[str, list[float]] = {}

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)

    def log(self, message: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    def files(self) -> list[dict[str, Any]]:
        if not self.listing:
            started = time.perf_counter()
            self.listing = make_files(self.args.count, int(self.args.total_mb * MB))
            self.log(f"data set: {len(self.listing):,} files, "
                     f"{sum(e['length'] for e in self.listing):,} bytes "
                     f"({time.perf_counter() - started:.1f} s)")
        return self.listing

    # ------------------------------------------------------------ processes

    def couchsync(self, command: str, manifest: Path, *extra: str, url: str | None = None,
                  cold: bool = False) -> tuple[float, float]:
        return fleet.run_process([*self.cli, command, str(manifest), "--url", url or self.url,
                                  *extra], self.cold_env if cold else self.env)

    def raw_upload(self, db: str, listing: Path, form: str,
                   url: str | None = None) -> tuple[float, float]:
        return fleet.run_process([PY, SCRIPT, "raw-upload", url or self.url, db, str(listing),
                                  *([DESIGN_ID] if form == "ddoc" else [])])

    def interleave(self, result: Result, a: Callable[[], tuple[float, float]],
                   b: Callable[[], tuple[float, float]], before: Callable[[str], None],
                   after: Callable[[str], None]) -> None:
        """``--rounds`` runs of each side, alternating which goes first."""
        sides = [("A", a, result.a, result.a_rss), ("B", b, result.b, result.b_rss)]
        for round_ in range(self.args.rounds):
            for side, run, times, rss in sides[round_ % 2:] + sides[:round_ % 2]:
                before(side)
                seconds, peak = run()
                times.append(seconds)
                rss.append(peak)
                self.log(f"{result.scenario} round {round_ + 1} {side}: {seconds:.2f} s, "
                         f"{peak:.0f} MB")
                after(side)

    @contextlib.contextmanager
    def proxied(self, label: str) -> Iterator[str]:
        """A counting proxy's URL while the block runs; its tally kept under ``label``."""
        proxy = CountingProxy(self.url)
        with proxy.counting() as tally:
            yield proxy.url
        self.counts[label] = tally.as_json()
        self.log(f"{label}: {sum(tally.requests.values())} requests, "
                 f"{tally.bytes_down:,} bytes down ({tally.attachment_bytes_down:,} of "
                 f"attachments), {tally.bytes_up:,} up")

    # ------------------------------------------------------------ set-up and checks

    def drop(self, *dbs: str) -> None:
        for db in dbs:
            if self.http.delete(f"/{db}").status_code not in (200, 202, 404):
                raise RuntimeError(f"cannot drop {db}")

    def check_stubs(self, db: str, side: str, form: str) -> None:
        """Every file is its document's attachment (the design doc's), type and length."""
        rows = self.http.get(f"/{db}/_all_docs", params={"include_docs": "true"}
                             ).raise_for_status().json()["rows"]
        found = {(row["id"], name): (stub["content_type"], stub["length"])
                 for row in rows for name, stub in (row["doc"].get("_attachments") or {}).items()}
        wrong = [e["name"] for e in self.files()
                 if found.pop((DESIGN_ID if form == "ddoc" else e["id"], e["name"]), None)
                 != (e["content_type"], e["length"])]
        if wrong or found:
            self.warn(f"{side} {db}: attachments missing or different: {wrong[:5]}, "
                      f"unexpected: {list(found)[:5]}")

    def check_noop(self, manifest: Path) -> None:
        shown = subprocess.run([*self.cli, "plan", str(manifest), "--url", self.url],
                               capture_output=True, text=True, env=self.env)
        if shown.returncode != 0 or "No changes." not in shown.stdout:
            self.warn(f"{manifest.name}: the plan is not a no-op (exit {shown.returncode}): "
                      f"{(shown.stdout + shown.stderr)[:500]}")

    def noop_databases(self, form: str) -> tuple[Path, Path]:
        """Two databases holding the same documents and attachments, each converged by
        ``couchsync apply`` of the declared manifest; in the second, the attachment ledger
        is then deleted (the attachments are no longer couchsync's to remove) and the
        manifest without them applied (its record notes the documents as they are)."""
        listing = self.files()
        a_db, b_db = f"att-noop-{form}-declared", f"att-noop-{form}-undeclared"
        declared = write_manifest(f"noop-{form}-declared", a_db, listing, "_attachments", form)
        b_setup = write_manifest(f"noop-{form}-setup", b_db, listing, "_attachments", form)
        undeclared = write_manifest(f"noop-{form}-undeclared", b_db, listing, None, form)
        from couchsync.plan import ATTACHMENTS_DDOC

        self.drop(a_db, b_db)
        self.couchsync("apply", declared, "--yes")
        self.couchsync("apply", b_setup, "--yes")
        ledger = f"/{b_db}/{ATTACHMENTS_DDOC}"
        rev = self.http.get(ledger).raise_for_status().json()["_rev"]
        self.http.delete(ledger, params={"rev": rev}).raise_for_status()
        self.couchsync("apply", undeclared, "--yes")
        for db, manifest in ((a_db, declared), (b_db, undeclared)):
            self.check_stubs(db, manifest.name, form)
            self.check_noop(manifest)
            # An apply records the databases its plan finds converged (issue 23): this
            # no-op one lets the next plans of both skip reading what cannot have changed.
            self.couchsync("apply", manifest, "--yes")
        self.server.settle()
        return declared, undeclared

    # ------------------------------------------------------------ scenarios

    def noop(self) -> None:
        for form in self.args.forms:
            declared, undeclared = self.noop_databases(form)
            for extra in ("", " --full"):
                for side, manifest in (("declared", declared), ("not declared", undeclared)):
                    with self.proxied(f"noop {form}: plan{extra}, {side}") as url:
                        self.couchsync("plan", manifest, *extra.split(), url=url)
            down = sum(self.counts[f"noop {form}: plan{extra}, declared"]["attachment_bytes_down"]
                       for extra in ("", " --full"))
            # Incremental (the default: both databases are known converged), read in full
            # (--full), and incremental with every attachment file read and hashed.
            for cold, extra in ((False, ()), (False, ("--full",)), (True, ())):
                result = Result("noop", f"1 no-op plan{' --full' if extra else ''}, "
                                f"{FORMS[form]}" + (", cold cache" if cold else ""),
                                "plan, attachments declared",
                                "plan, not declared (same docs on the server)", self.size(),
                                f"couchsync plan {' '.join(extra)}{' ' if extra else ''}"
                                f"{declared.name} vs {undeclared.name}"
                                + (" (COUCHSYNC_CACHE_DIR='')" if cold else ""))
                self.interleave(
                    result,
                    lambda c=cold, m=declared, e=extra: self.couchsync("plan", m, *e, cold=c),
                    lambda c=cold, m=undeclared, e=extra: self.couchsync("plan", m, *e, cold=c),
                    lambda side: None, lambda side: None)
                result.notes.append(f"attachment bytes downloaded by the declared plan: "
                                    f"{down:,}")
                self.results.append(result)
            if form == "docs":
                self.stages = noop_stages(self.url, self.files(), declared, undeclared,
                                          self.args.rounds)
            self.drop(f"att-noop-{form}-declared", f"att-noop-{form}-undeclared")

    def size(self) -> str:
        return f"{len(self.files()):,} attachments, {self.args.total_mb:g} MB"

    def upload(self) -> None:
        listing = self.files()
        listing_file = ATT_OUT / "upload-listing.json"
        listing_file.write_text(json.dumps(listing))
        a_db, b_db = "att-upload", "att-upload-raw"
        for form in self.args.forms:
            manifest = write_manifest(f"upload-{form}", a_db, listing, "_attachments", form)
            result = Result("upload", f"2 first upload, {FORMS[form]}",
                            "couchsync apply (empty database)",
                            "raw PUT of the design doc, attachments inline (couchapp push)"
                            if form == "ddoc" else "raw sequential PUT /db/doc/name (httpx)",
                            self.size(), f"couchsync apply {manifest.name} --yes vs python "
                            f"bench/attachments.py raw-upload URL {b_db} {listing_file.name}"
                            + (f" {DESIGN_ID}" if form == "ddoc" else ""))

            def fresh(side: str) -> None:
                self.drop(a_db, b_db)
                self.server.settle()

            def check(side: str, form: str = form) -> None:
                self.check_stubs(a_db if side == "A" else b_db, side, form)

            self.interleave(result, lambda m=manifest: self.couchsync("apply", m, "--yes"),
                            lambda f=form: self.raw_upload(b_db, listing_file, f), fresh, check)
            fresh("")
            with self.proxied(f"upload {form}: couchsync apply") as url:
                self.couchsync("apply", manifest, "--yes", url=url)
            with self.proxied(f"upload {form}: raw") as url:
                self.raw_upload(b_db, listing_file, form, url=url)
            fresh("")
            self.results.append(result)

    def memory(self) -> None:
        big = Path(self.args.big_file)
        for size_mb in (1, self.args.big_mb):
            path = big if size_mb != 1 else ATT_OUT / "memory-1mb.bin"
            try:
                with path.open("wb") as handle:
                    for start in range(0, size_mb * MB, 16 * MB):
                        handle.write(os.urandom(min(16 * MB, size_mb * MB - start)))
                manifest = ATT_OUT / f"memory-{size_mb}.yaml"
                manifest.write_text(
                    f"version: 1\ndatabases:\n  {MEMORY_DB}:\n    documents:\n"
                    f'      - {{"_id": "big", "_attachments": {{"data.bin": "{path}"}}}}\n')
                self.drop(MEMORY_DB)
                self.server.settle()
                result = Result("memory", f"3 memory, {size_mb:,} MB attachment",
                                "couchsync apply", "—", f"1 attachment of {size_mb:,} MB",
                                f"/usr/bin/time -f %M couchsync apply {manifest.name} --yes")
                seconds, peak = self.couchsync("apply", manifest, "--yes")
                result.a.append(seconds)
                result.a_rss.append(peak)
                self.log(f"{result.scenario}: {seconds:.1f} s, {peak:.0f} MB")
                stub = self.http.get(f"/{MEMORY_DB}/big").raise_for_status().json()[
                    "_attachments"]["data.bin"]
                if stub["length"] != size_mb * MB:
                    self.warn(f"memory: the stub says {stub['length']:,} bytes, "
                              f"not {size_mb * MB:,}")
                self.results.append(result)
            finally:
                path.unlink(missing_ok=True)
                self.drop(MEMORY_DB)


def noop_stages(url: str, listing: list[dict[str, Any]], declared: Path, undeclared: Path,
                rounds: int) -> dict[str, list[float]]:
    """Where the no-op plans' time goes, in this process (``rounds`` times each, imports
    done): loading each manifest; reading the live state and planning. ``control`` is the
    declared manifest with ``_attachments`` renamed ``files``: the same YAML text, a field
    of each document, so that load(declared) - load(control) is the attachments' own work
    (files stat'ed, digests looked up) and load(control) - load(not declared) the longer
    text's."""
    from couchsync import Client, load_manifests, plan_changes, read_live_state

    control = write_manifest("noop-control", "att-noop-control", listing, "files")
    cache = str(ATT_OUT / "cache")
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        times.setdefault(name, []).append(time.perf_counter() - start)
        return value

    saved = os.environ.get("COUCHSYNC_CACHE_DIR")
    with Client(url) as client:
        for _ in range(rounds):
            os.environ["COUCHSYNC_CACHE_DIR"] = cache
            for label, manifest in (("declared", declared), ("not declared", undeclared)):
                desired = timed(f"load, {label}", lambda m=manifest: load_manifests([m]))
                plan = timed(f"read + plan, {label}",
                             lambda d=desired: plan_changes(d, read_live_state(client, d)))
                if not plan.is_empty:
                    raise RuntimeError(f"{manifest.name}: the plan is not a no-op")
            timed("load, control (same text, no attachments)",
                  lambda: load_manifests([control]))
            os.environ["COUCHSYNC_CACHE_DIR"] = ""
            timed("load, declared, digests not cached", lambda: load_manifests([declared]))
    if saved is None:
        del os.environ["COUCHSYNC_CACHE_DIR"]
    else:
        os.environ["COUCHSYNC_CACHE_DIR"] = saved
    return times


# ---------------------------------------------------------------- report


def fmt(times: list[float]) -> str:
    if not times:
        return "—"
    return f"{statistics.median(times):.2f} s ({min(times):.2f}–{max(times):.2f})"


def table(results: list[Result]) -> str:
    lines = ["| scenario | size | A | B | A median (min–max) | B median (min–max) | ratio "
             "| target | peak RSS A / B |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        rss = " / ".join(f"{max(x):.0f} MB" for x in (r.a_rss, r.b_rss) if x)
        lines.append(f"| {r.scenario} | {r.size} | {r.a_name} | {r.b_name} | {fmt(r.a)} "
                     f"| {fmt(r.b)} | {ratio} | {TARGETS[r.kind]} | {rss} |")
    return "\n".join(lines)


def count_table(counts: dict[str, dict[str, Any]]) -> str:
    lines = []
    for label, c in counts.items():
        lines.append(f"\n{label}: {c['requests']} requests, {c['bytes_down']:,} bytes down "
                     f"({c['attachment_bytes_down']:,} in {c['attachment_requests']} "
                     f"attachment reads), {c['bytes_up']:,} bytes up")
        lines += [f"    {n:6d}  {kind}" for kind, n in sorted(c["by_kind"].items())]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side")
    parser.add_argument("--count", type=int, default=1000, help="attachments (files)")
    parser.add_argument("--total-mb", type=float, default=100, help="their total size")
    parser.add_argument("--forms", default=",".join(FORMS),
                        help="noop, upload: how the attachments are held (docs, ddoc)")
    parser.add_argument("--big-mb", type=int, default=1000, help="memory: the large attachment")
    parser.add_argument("--big-file", default="/tmp/couchsync-bench-big-attachment.bin",
                        help="memory: where the large file is written (deleted after)")
    parser.add_argument("--rev", default=None,
                        help="measure this commit's couchsync (exported as compare_revs.py "
                        "does), not the checkout's working tree")
    parser.add_argument("--url", default=None,
                        help="server to use (default: $COUCHSYNC_BENCH_URL, else the bundled "
                        f"CouchDB started on port {PORT})")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.forms = [s.strip() for s in args.forms.split(",") if s.strip()]
    if set(args.forms) - set(FORMS):
        parser.error(f"unknown forms: {', '.join(sorted(set(args.forms) - set(FORMS)))}")
    if set(args.only) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(set(args.only) - set(SCENARIOS)))}")
    return args


def main() -> int:
    args = parse_args()
    load_before = os.getloadavg()
    args.copy = compare_revs.export(args.rev) if args.rev else None
    if args.copy:  # the stages import it in this process
        sys.path.insert(0, str(args.copy))
        install = f"{args.copy.name} (git archive, compiled)"
    else:
        install = f"{fleet.git_head()}, {fleet.compile_couchsync()}"
    given = contextlib.nullcontext(args.url.rstrip("/")) if args.url else None
    with given or bench_server("couchdb", PORT) as url:
        bench = Bench(url, args)
        server = server_name(url)
        print(f"server: {server}", file=sys.stderr, flush=True)
        with bench.http:
            for name in SCENARIOS:
                if name in args.only:
                    print(f"running {name} ...", file=sys.stderr, flush=True)
                    getattr(bench, name)()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} cores", "server": server, "couchsync": install,
            "load_average": [load_before[0], os.getloadavg()[0]], "options": vars(args),
            "peak_rss_from": "GNU time (%M)" if fleet.GNU_TIME else "os.wait4",
            "warnings": bench.warnings}
    ATT_OUT.mkdir(parents=True, exist_ok=True)
    (ATT_OUT / "results.json").write_text(json.dumps(
        {"meta": meta, "results": [r.as_json() for r in bench.results],
         "requests": bench.counts, "noop_stages": bench.stages}, indent=2, default=str) + "\n")
    print(f"\n{meta['date']} · {meta['machine']} · {server} · couchsync {install} "
          f"· {args.rounds} rounds · load {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(table(bench.results))
    for r in bench.results:
        ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(r.a, r.b, strict=False))
        print(f"\n{r.scenario}: {r.command}" + (f"; ratios per round: {ratios}" if ratios else "")
              + "".join(f"; {note}" for note in r.notes))
    print(count_table(bench.counts))
    if bench.stages:
        print("\nno-op plan stages, in one process (median, min–max):")
        for name, values in bench.stages.items():
            print(f"    {statistics.median(values) * 1000:7.1f} ms ({min(values) * 1000:.1f}–"
                  f"{max(values) * 1000:.1f})  {name}")
    for message in bench.warnings:
        print(f"\nwarning: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
