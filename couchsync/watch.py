"""``couchsync apply --watch``: the safe apply (``apply_manifests``) again each time a file
a plan reads is saved, until stopped (docs/plan-and-apply.md, "Watch").

A round's error (a bad manifest, a server error, a failed apply) is told to the hooks and
the loop waits for the next change; Ctrl-C raises ``KeyboardInterrupt`` out of it, as out
of ``apply_manifests``. Like ``operation``, it never prints and never asks: its
``WatchHooks`` do. ``watchfiles`` is imported inside ``watch_manifests`` (``couchsync.cli``
imports this module at start).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from couchsync._parallel import DEFAULT_PARALLEL
from couchsync.errors import CouchsyncError
from couchsync.operation import ApplyCancelled, ApplyHooks, ApplyOutcome, DesignDeploy

if TYPE_CHECKING:
    from watchfiles.main import FileChange

    from couchsync.client import Client
    from couchsync.manifest import DesiredState, Shard

__all__ = ["WatchError", "WatchHooks", "Watched", "on_loopback", "watch_manifests"]

#: A round starts once no change came for STEP_MS (an editor's save is several events a
#: few milliseconds apart), or at the latest DEBOUNCE_MS after the first change.
STEP_MS = 50
DEBOUNCE_MS = 400
#: How long the file watcher waits before it answers "nothing yet": it must be running
#: before a round starts, or a file saved during the round would go unseen.
_STARTED_MS = 100
_MANIFEST_SUFFIXES = (".yaml", ".yml")  # what the loader takes from a directory


class WatchError(CouchsyncError):
    """The file watcher could not watch a directory (gone since, or the system's limit of
    watches reached); the watch ends."""


class WatchHooks(ApplyHooks):
    """What ``watch_manifests`` tells its caller and asks it, beside an apply's hooks
    (``confirm`` is asked at every round that has changes: the CLI shows the plan and
    answers yes). These defaults tell nothing and watch without asking."""

    def start(self, url: str) -> bool:
        """Whether to watch at all: asked once, before the first round, when the server
        at ``url`` is not on loopback (each round then applies without asking)."""
        return True

    def watching(self, files: Sequence[str]) -> None:
        """The files watched, whenever they change (before the first wait too): the
        manifests given (a directory: every *.yaml/*.yml below) and the files they read."""

    def round(self, changed: Sequence[str]) -> None:
        """A round starts because the files ``changed`` were saved (sorted, as users
        name them, like ``watching``'s; the first round: none)."""

    def applied(self, outcome: ApplyOutcome) -> None:
        """A round's apply ended (with nothing to apply, ``outcome.result`` is None)."""

    def failed(self, error: Exception) -> None:
        """A round failed (``CouchsyncError``: a bad manifest, a held lock, a failed or
        interrupted apply; ``CouchError``: the server); the loop waits for the next
        change."""


@dataclass(frozen=True)
class Watched:
    """Which saved files start a round: those a plan reads (``files``; a directory among
    them counts with everything under it), and any *.yaml/*.yml under a manifest
    directory given (a new manifest there). All real paths."""

    files: frozenset[str]
    manifest_dirs: frozenset[str]

    @classmethod
    def of(cls, paths: Sequence[str | os.PathLike[str]],
           desired: DesiredState | None = None) -> Watched:
        """What to watch for ``paths``, and for what ``desired`` (loaded from them) reads;
        with no ``desired`` (a first load failed), the manifests given alone."""
        from couchsync.manifest import referenced_files

        given = [os.path.realpath(path) for path in paths]
        read = set() if desired is None else referenced_files(desired)
        return cls(frozenset({*(path for path in given if not os.path.isdir(path)),
                              *(os.path.realpath(path) for path in read)}),
                   frozenset(path for path in given if os.path.isdir(path)))

    def wants(self, path: str) -> bool:
        """Whether a change to ``path`` (a real path) starts a round."""
        return (path in self.files or self._in_manifest_dir(path)
                or any(parent in self.files for parent in _parents(path)))

    def _in_manifest_dir(self, path: str) -> bool:
        return path.endswith(_MANIFEST_SUFFIXES) and any(
            parent in self.manifest_dirs for parent in _parents(path))

    @property
    def roots(self) -> list[str]:
        """The directories to watch (recursively): each manifest directory and the
        directory of each file, none below another."""
        dirs = {*self.manifest_dirs,
                *(path if os.path.isdir(path) else os.path.dirname(path)
                  for path in self.files)}
        return sorted(path for path in dirs
                      if not any(parent in dirs for parent in _parents(path)))

    def shown(self) -> list[str]:
        """What is watched, as users name it, sorted: each manifest directory (``DIR/``:
        its manifests) and the files and directories read outside them."""
        return sorted([*(path + os.sep for path in _shown(sorted(self.manifest_dirs))),
                       *_shown([path for path in self.files
                                if not self._in_manifest_dir(path)])])


def _shown(paths: Sequence[str]) -> list[str]:
    """``paths`` as users name them: relative to the current directory when below it."""
    here = os.getcwd()
    return [os.path.relpath(path) if path == here or path.startswith(here + os.sep) else path
            for path in paths]


def _parents(path: str) -> Iterator[str]:
    while (parent := os.path.dirname(path)) != path:
        yield parent
        path = parent


def on_loopback(url: str) -> bool:
    """Whether the server at ``url`` is this machine: every address its host resolves to
    is a loopback one (127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname
    if not host:
        return False
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):  # no such name: not this machine's
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(info[4][0]).partition("%")[0]).is_loopback for info in found)


def watch_manifests(
    client: Client, paths: Sequence[str | os.PathLike[str]], *,
    only: Sequence[str] | None = None, db_prefix: str = "", db_suffix: str = "",
    design_deploy: DesignDeploy | None = None,
    variables: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None,
    parallel: int = DEFAULT_PARALLEL, batch_size: int = 1000,
    lock_timeout: float = 0.0, lock_ttl: float | None = None,
    wait_timeout: float | None = None, hooks: WatchHooks | None = None,
    stop: threading.Event | None = None, full: bool = False, shard: Shard | None = None,
) -> None:
    """Apply the manifests at ``paths`` (``apply_manifests``, the same options), then again
    after each saved change to them or to a file they read, until ``stop`` is set (or
    Ctrl-C: ``KeyboardInterrupt``, during an apply as ``apply_manifests`` raises it).

    Raises ``ManifestError`` when a path given does not exist, ``ApplyCancelled`` when
    ``hooks.start`` answers no (a server not on loopback), ``WatchError``; a round's errors
    go to ``hooks.failed``.
    """
    from couchsync.client import CouchError
    from couchsync.manifest import ManifestError, Problem
    from couchsync.operation import apply_manifests

    hooks = hooks or WatchHooks()
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:  # nothing to wait for: a mistyped path, not an edit in progress
        raise ManifestError([Problem(str(path), 0, 0, "no such file or directory")
                             for path in missing])
    if not on_loopback(client.url) and not hooks.start(client.url):
        raise ApplyCancelled("watch cancelled")
    watched = Watched.of(paths)
    changes = _Changes(watched, stop)
    shown: Watched | None = None  # what the hooks were last told
    changed: list[str] = []
    try:
        while True:
            hooks.round(changed)
            try:
                outcome = apply_manifests(
                    client, paths, only=only, db_prefix=db_prefix, db_suffix=db_suffix,
                    design_deploy=design_deploy, variables=variables, environ=environ,
                    parallel=parallel, batch_size=batch_size, lock_timeout=lock_timeout,
                    lock_ttl=lock_ttl, wait_timeout=wait_timeout, hooks=hooks, full=full,
                    shard=shard)
            except (CouchsyncError, CouchError) as exc:
                hooks.failed(exc)
            else:
                hooks.applied(outcome)
                # A manifest may now read another file (or no longer): watch what it reads.
                watched = Watched.of(paths, outcome.desired)
                changes.watch(watched)
            if watched != shown:
                hooks.watching(watched.shown())
                shown = watched
            found = changes.next()
            if found is None:
                return
            changed = found
    finally:
        changes.close()


class _Changes:
    """The saved files ``Watched`` wants, batch by batch, from a file watcher that runs
    between waits too: what is saved while a round runs starts the next one."""

    def __init__(self, watched: Watched, stop: threading.Event | None) -> None:
        self.stop = stop
        self.watched = watched
        self.roots: list[str] = []
        self.batches: Generator[set[FileChange], None, None] | None = None
        self.pending: set[str] = set()
        self.watch(watched)

    def watch(self, watched: Watched) -> None:
        """Keep the files ``watched`` wants from now on. When its directories differ, a
        new watcher is running before the old one is closed, and what the old one saw
        since its last batch is kept."""
        import watchfiles

        self.watched = watched
        if self.batches is not None and watched.roots == self.roots:
            return
        old, self.roots = self.batches, watched.roots
        self.batches = watchfiles.watch(
            *self.roots, watch_filter=None, debounce=DEBOUNCE_MS, step=STEP_MS,
            stop_event=self.stop, rust_timeout=_STARTED_MS, yield_on_timeout=True)
        try:
            self._take(self.batches)  # returns once the watcher runs (after a timeout at most)
        except OSError as exc:
            raise WatchError(f"cannot watch {', '.join(self.roots)}: {exc}") from None
        if old is not None:
            self._take(old)
            old.close()

    def _take(self, batches: Generator[set[FileChange], None, None]) -> bool:
        """One batch (a timeout's is empty) into ``pending``; False once stopped."""
        batch = next(batches, None)
        if batch is None:
            return False
        self.pending.update(path for _, path in batch if self.watched.wants(path))
        return True

    def next(self) -> list[str] | None:
        """The files saved since the last call (waits for one); None once stopped."""
        assert self.batches is not None  # __init__ started it
        while not self.pending:
            if not self._take(self.batches):
                return None
        found, self.pending = _shown(sorted(self.pending)), set()
        return found

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()
