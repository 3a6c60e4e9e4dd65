"""What the loader reports: ``Problem`` values, raised together as ``ManifestError``, and
warnings (a manifest that loads but may not mean what it looks like: ``$NAME`` left
unexpanded, ``1.10`` read as 1.1), logged on the ``couchsync.manifest`` logger so that the
library stays quiet unless asked and the command prints each once (apply loads twice)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from couchsync._stderr import StderrHandler
from couchsync.errors import CouchsyncError

#: A location inside a manifest's data: mapping keys and list indexes, outermost first.
Path = tuple[str | int, ...]

#: The deepest nesting of mappings and lists the loader reads (manifests and data files):
#: every later step recurses per level, and 10^5 "[" must be a problem, not a RecursionError.
MAX_DEPTH = 64
TOO_DEEP = (f"nested more than {MAX_DEPTH} levels deep (couchsync reads at most {MAX_DEPTH} "
            "levels of mappings and lists)")

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
               dict: "mapping", type(None): "null"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the manifests, where it was written; ``line`` and ``col`` count
    from 1, both 0 for a whole file (a path that does not exist)."""

    file: str
    line: int
    col: int
    message: str
    json_path: str = ""

    def __str__(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ManifestError(CouchsyncError):
    """Raised by ``load_manifests`` when the manifests have problems; ``.problems`` lists all."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def summary(self) -> str:
        """``"N problems in manifests"`` with the right plural."""
        count = len(self.problems)
        return f"{count:,} problem{'' if count == 1 else 's'} in manifests"


def format_path(path: Path) -> str:
    """``databases.users.indexes["by email"].fields[0]``: how messages name a place."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def type_name(value: Any) -> str:
    """How messages name the type of a loaded value: the words a YAML author knows."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def surrogate_problem(text: str) -> str | None:
    """What is wrong with ``text`` if it holds a lone UTF-16 surrogate (a ``"\\ud800"``
    escape, an environment value that is not UTF-8), which UTF-8 cannot encode."""
    found = None if text.isascii() else _SURROGATE.search(text)  # the cheap test first
    if found is None:
        return None
    return (f"{found.group()!r} is a lone UTF-16 surrogate, not a character: "
            "UTF-8 text (and so CouchDB) cannot hold it")


def conflict(value: object, old: object, first: object) -> str:
    """How a clash of two settings names both: ``1 here, 2 at FILE:LINE:COL``."""
    if isinstance(value, dict):
        return f"differs from the one at {first}"
    return f"{json.dumps(value)} here, {json.dumps(old)} at {first}"


logger = logging.getLogger("couchsync.manifest")


def warn(problem: Problem) -> None:
    logger.warning("%s", problem)


def show_warnings_on_stderr() -> None:
    """``Warning: FILE:LINE:COL: message`` on stderr, each once per process."""
    if any(isinstance(handler, StderrHandler) for handler in logger.handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("Warning: %(message)s"))
    seen: set[str] = set()

    def once(record: logging.LogRecord) -> bool:
        new = record.getMessage() not in seen
        seen.add(record.getMessage())
        return new

    handler.addFilter(once)
    logger.addHandler(handler)
    logger.propagate = False  # not a second time through the root logger's last resort
