"""The one batching helper: reads and writes go to the server in bounded batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive lists of at most ``size`` items (``itertools.batched`` is Python 3.12+)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
