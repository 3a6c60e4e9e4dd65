"""What the loader reports: ``Problem`` values, raised together as ``ManifestError``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: A location inside a manifest's data: mapping keys and list indexes, outermost first.
Path = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
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


class ManifestError(Exception):
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
