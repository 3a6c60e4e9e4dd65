"""What the loader reports: ``Problem`` values, raised together as ``ManifestError``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from couchsync.errors import CouchsyncError

#: A location inside a manifest's data: mapping keys and list indexes, outermost first.
Path = tuple[str | int, ...]

#: The deepest nesting of mappings and lists (objects and arrays) the loader reads, in a
#: manifest or in a data file's document. Every later step (YAML composing, the schema
#: check, canonical JSON, plan diffs) recurses once or more per level and Python's stack
#: is finite: 10^5 levels of "[" must be a problem, not a RecursionError. Real manifests
#: and documents stay far below it.
MAX_DEPTH = 64
TOO_DEEP = (f"nested more than {MAX_DEPTH} levels deep (couchsync reads at most {MAX_DEPTH} "
            "levels of mappings and lists)")

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
               dict: "mapping", type(None): "null"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the manifests, with the place it was written.

    ``line`` and ``col`` count from 1; both are 0 when the problem concerns a
    whole file (for example a path that does not exist).
    """

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
    """What is wrong with ``text`` if it holds a lone UTF-16 surrogate, else None.

    A ``"\\ud800"`` escape (YAML or JSON) or an environment value that is not UTF-8
    (Python decodes its bytes to surrogates) gives one; UTF-8, and so JSON sent to
    CouchDB, cannot encode it, and canonical JSON would fail later without a place.
    """
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (f"{found.group()!r} is a lone UTF-16 surrogate, not a character: "
            "UTF-8 text (and so CouchDB) cannot hold it")
