"""``couchsync apply --watch`` in a process of its own against the real server: the first
round, a saved change, a broken manifest reported and then fixed, Ctrl-C while it waits
and while it writes, and what it refuses."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_helpers import (
    couchsync,
    doc_count,
    lock_holder,
    loopback_fault,
    pending_entries,
    run,
    through_proxy,
    wait_for,
)

from couchsync.client import Client
from couchsync.operation import ApplyOutcome
from couchsync.watch import WatchHooks, watch_manifests


def save(path: Path, text: str) -> None:
    """Save ``path`` whole, as editors that write a new file and rename it do: a watcher
    never sees it half written (the name written first is no file a plan reads)."""
    saving = path.with_name(f".{path.name}.saving")
    saving.write_text(text)
    os.replace(saving, path)


def view(version: int) -> dict[str, Any]:
    return {"views": {"by_n": {"map": f"function (doc) {{ emit(doc.n, {version}); }}"}}}


def write(path: Path, db: str, version: int, docs: int = 3) -> None:
    """The manifest of ``db``: the design doc ``app`` at ``version``, ``docs`` documents
    from the data file beside it."""
    data = path.with_suffix(".jsonl")
    save(data, "".join(json.dumps({"_id": f"d-{i:03d}", "n": i}) + "\n"
                       for i in range(docs)))
    save(path, yaml.safe_dump({"version": 1, "databases": {db: {
        "design_docs": {"app": view(version)}, "documents_from": [data.name]}}}))


def save_view(path: Path, version: int) -> None:
    """Save the manifest ``write`` wrote with the view at ``version`` (its data file
    left alone)."""
    save(path, re.sub(r"emit\(doc\.n, \d+\)", f"emit(doc.n, {version})", path.read_text()))


def version_on_server(url: str, db: str) -> int | None:
    """The version of the design doc ``app`` the server holds (None: none)."""
    answer = httpx.get(f"{url}/{db}/_design/app", timeout=30)
    if answer.status_code != 200:
        return None
    return int(answer.json()["views"]["by_n"]["map"].split(", ")[1].split(")")[0])


class Watching:
    """``couchsync apply --watch ARGS`` running: its output read as it comes."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = couchsync(url, "apply", "--watch", *args)
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.proc.stdout, self.out),
                                              (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        lines.extend(stream)  # a line at a time, until the process ends

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def until(self, condition: Any, what: str) -> None:
        """Wait (generously) for ``condition()``; fails, with the output, if it ends first."""
        try:
            wait_for(condition, what, proc=self.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstdout: {self.stdout}\nstderr: {self.stderr}"
                                 ) from None

    def interrupt(self) -> int:
        """Ctrl-C; its exit code, once it ended."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self.close()
        return code

    def close(self) -> None:
        """Killed if still running; its output read to the end."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        for reader in self.readers:
            reader.join(timeout=60)
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            stream.close()


@pytest.fixture
def watching() -> Iterator[list[Watching]]:
    """Watch processes a test starts, killed at its end if still running."""
    started: list[Watching] = []
    yield started
    for watch in started:
        watch.close()


def test_the_first_round_applies_and_a_saved_view_change_reaches_the_server(
        couch_url: str, db_name: str, tmp_path: Path, watching: list[Watching]) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, db_name, 1)
    watch = Watching(couch_url, str(manifest))
    watching.append(watch)
    watch.until(lambda: "Apply complete: 5 created" in watch.stdout, "the first round")
    assert version_on_server(couch_url, db_name) == 1 and doc_count(couch_url, db_name) == 3
    watch.until(lambda: "Watching " in watch.stderr, "the watch to start waiting")
    assert "app.jsonl" in watch.stderr  # the data file it reads is watched too

    save_view(manifest, 2)
    watch.until(lambda: version_on_server(couch_url, db_name) == 2, "the new view")
    watch.until(lambda: "Apply complete: 0 created, 1 updated" in watch.stdout,
                "the second round's result")
    assert "Changed: " in watch.stdout and "app.yaml" in watch.stdout
    assert '~ views.by_n.map: "function (doc) { emit(doc.n, 1); }"' in watch.stdout

    # A data file the manifest reads starts a round, here written in place (appended to);
    # files no plan reads do not.
    (tmp_path / ".app.yaml.swp").write_text("an editor's swap file")
    (tmp_path / "notes.yaml").write_text("not a manifest given")
    with manifest.with_suffix(".jsonl").open("a") as data:
        data.write(json.dumps({"_id": "d-new", "n": 99}) + "\n")
    watch.until(lambda: doc_count(couch_url, db_name) == 4, "the added document")
    watch.until(lambda: "Apply complete: 1 created" in watch.stdout, "the third round")
    assert watch.interrupt() == 0, watch.stderr
    changed = {name for line in watch.stdout.splitlines() if "] Changed: " in line
               for name in line.split("] Changed: ")[1].split(", ")}
    assert changed == {str(manifest), str(manifest.with_suffix(".jsonl"))}
    assert "Traceback" not in watch.stderr


def test_an_attachment_file_saved_or_added_is_uploaded(
        couch_url: str, db_name: str, tmp_path: Path, watching: list[Watching]) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www/index.html").write_text("<p>v1</p>")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {db_name: {
        "design_docs": {"web": {"_attachments_from": "www"}}}}}))
    watch = Watching(couch_url, str(manifest))
    watching.append(watch)
    watch.until(lambda: "Watching " in watch.stderr, "the first round")

    def attachment(name: str) -> str | None:
        answer = httpx.get(f"{couch_url}/{db_name}/_design/web/{name}", timeout=30)
        return answer.text if answer.status_code == 200 else None

    assert attachment("index.html") == "<p>v1</p>"
    save(tmp_path / "www/index.html", "<p>v2</p>")
    watch.until(lambda: attachment("index.html") == "<p>v2</p>", "the saved attachment")
    (tmp_path / "www/js").mkdir()
    (tmp_path / "www/js/app.js").write_text("// new")  # in a directory made since
    watch.until(lambda: attachment("js/app.js") == "// new", "the added attachment")
    watch.until(lambda: watch.stdout.count("Apply complete:") == 3, "the third result")
    assert watch.interrupt() == 0, watch.stderr


def test_a_broken_manifest_is_reported_and_the_fixed_one_applied(
        couch_url: str, db_name: str, tmp_path: Path, watching: list[Watching]) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, db_name, 1)
    watch = Watching(couch_url, str(tmp_path))  # a directory: every manifest in it
    watching.append(watch)
    watch.until(lambda: "Watching " in watch.stderr, "the first round")
    assert version_on_server(couch_url, db_name) == 1

    good = manifest.read_text()
    save(manifest, good + "  broken: [\n")  # the list is never closed
    watch.until(lambda: "Waiting for the next change." in watch.stderr, "the error")
    lines = watch.stderr.splitlines()
    problem = next(line for line in lines if line.startswith(str(manifest) + ":"))
    assert lines[lines.index(problem) + 1:lines.index(problem) + 3] == [
        "Error: 1 problem in manifests", "Waiting for the next change."]
    assert problem.split(":")[1].isdigit(), problem  # file:line:col: message
    assert "invalid YAML" in problem
    assert watch.proc.poll() is None  # still running

    write(manifest, db_name, 2)
    watch.until(lambda: "Apply complete: 0 created, 1 updated" in watch.stdout,
                "the fixed manifest applied")
    assert version_on_server(couch_url, db_name) == 2
    assert watch.interrupt() == 0, watch.stderr
    assert "Traceback" not in watch.stderr


def test_a_server_error_is_reported_and_the_next_change_applied(
        couch_url: str, db_name: str, tmp_path: Path, watching: list[Watching]) -> None:
    httpx.put(f"{couch_url}/{db_name}", timeout=30).raise_for_status()
    manifest = tmp_path / "app.yaml"
    # A pattern: each round lists the databases (GET /_all_dbs) to find what it matches.
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        f"{db_name}*": {"design_docs": {"app": view(1)}}}}))
    # The second round's listing answered 500 by the proxy (the server never sees it): an
    # error the server cannot be made to give on cue.
    failing = loopback_fault("answer", method="GET", path="/_all_dbs", nth=2, times=1,
                             status=500)
    with through_proxy(couch_url, [failing]) as through:
        watch = Watching(through, str(manifest))
        watching.append(watch)
        watch.until(lambda: "Watching " in watch.stderr, "the first round")
        assert version_on_server(couch_url, db_name) == 1
        save_view(manifest, 2)
        watch.until(lambda: "Waiting for the next change." in watch.stderr, "the error")
        assert failing.hits == 1
        error = next(line for line in watch.stderr.splitlines() if line.startswith("Error:"))
        assert "_all_dbs" in error and "500" in error, error
        assert version_on_server(couch_url, db_name) == 1

        save_view(manifest, 3)
        watch.until(lambda: watch.stdout.count("Apply complete: 0 created, 1 updated") == 1,
                    "the next change applied")
        assert version_on_server(couch_url, db_name) == 3
        assert watch.interrupt() == 0, watch.stderr
    assert "Traceback" not in watch.stderr


def test_ctrl_c_while_waiting_exits_0_with_nothing_half_written(
        couch_url: str, db_name: str, tmp_path: Path, watching: list[Watching]) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, db_name, 1, docs=50)
    watch = Watching(couch_url, str(manifest))
    watching.append(watch)
    watch.until(lambda: "Watching " in watch.stderr, "the first round")

    assert watch.interrupt() == 0, watch.stderr
    assert watch.stdout.splitlines()[-1] == "Stopped watching: nothing was being written."
    assert "Traceback" not in watch.stderr
    assert lock_holder(couch_url, db_name) is None
    assert pending_entries(couch_url, db_name) == 0
    assert doc_count(couch_url, db_name) == 50
    assert "No changes." in run(couch_url, "plan", str(manifest)).stdout


def test_ctrl_c_during_a_rounds_apply_stops_it_as_apply_does(
        couch_url: str, db_name_factory: Callable[[], str], tmp_path: Path,
        watching: list[Watching]) -> None:
    first, second = db_name_factory(), db_name_factory()
    manifest = tmp_path / "app.yaml"
    write(manifest, first, 1)
    # The second round seeds a database the first did not declare; its documents are held
    # unanswered at the proxy (never passed on) while the test presses Ctrl-C: a fault a
    # server cannot be made to give.
    held = loopback_fault("stall", method="POST", path=f"{second}/_bulk_docs", times=1)
    with through_proxy(couch_url, [held]) as through:
        watch = Watching(through, str(manifest))
        watching.append(watch)
        watch.until(lambda: "Watching " in watch.stderr, "the first round")
        declared = yaml.safe_load(manifest.read_text())
        declared["databases"][second] = {"documents_from": ["app.jsonl"]}
        save(manifest, yaml.safe_dump(declared))
        watch.until(lambda: held.hits > 0, "the second round's documents to be sent")
        code = watch.interrupt()
    assert code == 130, watch.stderr
    assert "Error: apply interrupted: what was written stays" in watch.stderr
    assert "Stopped watching" not in watch.stdout and "Traceback" not in watch.stderr
    assert lock_holder(couch_url, second) is None  # released on the way out
    assert doc_count(couch_url, second) == 0  # the held batch never reached the server

    again = run(couch_url, "apply", str(manifest), "--yes")  # finishes what it began
    assert again.returncode == 0, again.stderr
    assert doc_count(couch_url, second) == 3 and pending_entries(couch_url, second) == 0
    assert "No changes." in run(couch_url, "plan", str(manifest)).stdout


def test_the_library_call_tells_its_hooks_and_returns_when_stopped(
        couch_url: str, db_name: str, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, db_name, 1)
    stop = threading.Event()
    told: list[Any] = []

    class Hooks(WatchHooks):
        def round(self, changed: Sequence[str]) -> None:
            told.append(("round", list(changed)))

        def applied(self, outcome: ApplyOutcome) -> None:
            told.append(("applied", outcome.result and outcome.result.summary()))

        def watching(self, files: Sequence[str]) -> None:
            told.append(("watching", len(files)))
            stop.set()  # before the first wait: it returns instead of waiting

    with Client(couch_url) as client:
        watcher = threading.Thread(target=watch_manifests, args=(client, [manifest]),
                                   kwargs={"hooks": Hooks(), "stop": stop}, daemon=True)
        watcher.start()
        watcher.join(timeout=120)
        assert not watcher.is_alive(), "still watching after stop was set"
    assert told == [("round", []),
                    ("applied", "Apply complete: 5 created, 0 updated, 0 deleted."),
                    ("watching", 2)]  # app.yaml and app.jsonl
    assert version_on_server(couch_url, db_name) == 1


@pytest.mark.parametrize("option", [["--plan", "saved.json"], ["--format", "json"]])
def test_watch_refuses_a_saved_plan_and_json(couch_url: str, tmp_path: Path,
                                             option: list[str]) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, "never_created", 1)
    refused = run(couch_url, "apply", "--watch", str(manifest), *option)
    assert refused.returncode == 1
    assert refused.stderr == ("Error: --watch applies the manifests each time they are "
                              "saved and prints each round as text: it takes neither --plan "
                              "nor --format json\n")


def test_watch_refuses_a_server_not_on_loopback_without_a_terminal_or_yes(
        tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, "never_created", 1)
    # TEST-NET-1 (RFC 5737): never routed; the refusal comes before any request.
    refused = run("http://192.0.2.1:5984", "apply", "--watch", str(manifest), timeout=60)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: refusing to watch a server not on loopback "
                                     "without confirmation: no terminal to ask on; pass --yes")
    assert refused.stdout == ""


def test_watch_refuses_a_path_that_does_not_exist(couch_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    refused = run(couch_url, "apply", "--watch", str(missing))
    assert refused.returncode == 1
    assert refused.stderr == (f"{missing}: no such file or directory\n"
                              "Error: 1 problem in manifests\n")  # as validate says it
    assert refused.stderr == run(couch_url, "validate", str(missing)).stderr


def test_no_watch_without_paths(couch_url: str) -> None:
    refused = run(couch_url, "apply", "--watch")
    assert refused.returncode == 1
    assert "give the manifests to apply" in refused.stderr
