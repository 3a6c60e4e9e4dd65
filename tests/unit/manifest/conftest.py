"""Helpers for manifest tests: write files into tmp_path, collect problems relative to it."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from couchsync.manifest import iter_problems

Write = Callable[[str, str | bytes], str]
Collect = Callable[..., list[tuple[str, int, int, str]]]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write ``text`` (dedented) to ``tmp_path/name``; returns the path as a string."""

    def write(name: str, text: str | bytes) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def collect(tmp_path: Path) -> Collect:
    """Problems for ``paths`` (relative to tmp_path) as (file, line, col, message) tuples."""

    def collect(*paths: str, environ: Mapping[str, str] | None = None) -> list[
            tuple[str, int, int, str]]:
        found = iter_problems([tmp_path / p for p in paths or ("",)], environ=environ or {})
        return [(os.path.relpath(p.file, tmp_path), p.line, p.col, p.message) for p in found]

    return collect
