"""The one batching helper: reads and writes go to the server in bounded batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive lists of at most ``size`` items (``itertools.batched`` is Python 3.12+)."""
    return batched_within(items, size, 0, lambda _: 0)


def batched_within(items: Iterable[T], size: int, max_weight: int,
                   weight: Callable[[T], int]) -> Iterator[Sequence[T]]:
    """Consecutive lists of at most ``size`` items whose ``weight``s add up to at most
    ``max_weight``; an item heavier than that on its own makes a list by itself."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    batch: list[T] = []
    total = 0
    for item in items:
        heavy = weight(item)
        if batch and (len(batch) == size or total + heavy > max_weight):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += heavy
    if batch:
        yield batch
