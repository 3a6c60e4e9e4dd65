"""Counts as users read them: ``1 document``, ``2 documents``, ``1,000 indexes``."""

from __future__ import annotations


def counted(count: int, one: str, many: str | None = None) -> str:
    """``count`` and its noun, singular for exactly one (``many``: the plural when it
    is not ``one`` + "s")."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"
