"""Warnings about manifests that load but may not mean what they look like (``$NAME``
left unexpanded, ``1.10`` read as the number 1.1): each a ``Problem`` logged on the
``couchsync.manifest`` logger, so that the library stays quiet unless asked and the
command prints each on stderr once (apply loads the manifests twice)."""

from __future__ import annotations

import logging

from couchsync._stderr import StderrHandler
from couchsync.manifest._problems import Problem

logger = logging.getLogger("couchsync.manifest")


def warn(problem: Problem) -> None:
    logger.warning("%s", problem)


class _Once(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def show_warnings_on_stderr() -> None:
    """``Warning: FILE:LINE:COL: message`` on stderr, each once per process."""
    if any(isinstance(handler, StderrHandler) for handler in logger.handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("Warning: %(message)s"))
    handler.addFilter(_Once())
    logger.addHandler(handler)
    logger.propagate = False  # not a second time through the root logger's last resort
