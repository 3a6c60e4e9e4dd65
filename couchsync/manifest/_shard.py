"""``--shard K/N``: N runners converge one fleet together, each planning and applying the
databases whose stable hash falls in its shard (docs/plan-and-apply.md, "Runs split
across runners"). The hash is CRC-32 of the real name, the same on every machine and
Python; the node config, which is no database, belongs to shard 1."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

from couchsync.manifest.model import DesiredState

__all__ = ["Shard"]


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``k`` (1-based) of ``n``."""

    k: int = 1
    n: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"--shard {self.k}/{self.n}: K must be from 1 to N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"``; ValueError naming what is wrong."""
        k, slash, n = text.partition("/")
        if not (slash and k.strip().isdigit() and n.strip().isdigit()):
            raise ValueError(f"--shard {text!r}: write K/N, e.g. 2/8 (this runner's shard K "
                             "of N runners)")
        return cls(int(k), int(n))

    def __bool__(self) -> bool:
        return self.n > 1

    def keeps(self, database: str) -> bool:
        return zlib.crc32(database.encode("utf-8")) % self.n == self.k - 1

    def apply(self, desired: DesiredState) -> DesiredState:
        """``desired`` with only this shard's databases (patterns stay: what they match is
        filtered once expanded), and the config only in shard 1."""
        if not self:
            return desired
        databases = {name: spec for name, spec in desired.databases.items()
                     if self.keeps(name)}
        if self.k == 1:
            return replace(desired, databases=databases)
        return replace(desired, databases=databases, config={}, prune_config=False)
