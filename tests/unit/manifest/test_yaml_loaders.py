"""The two YAML loaders agree: libyaml's parser under PyYAML's composer (``_FastLoader``,
used first) and the pure one (``_Loader``) give the same values, positions and problems
for the project's manifests, for generated texts (but a tab YAML allows, which only
libyaml reads), and for texts only the pure one's messages explain (which it then
reads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couchsync.manifest import _yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted(p for pattern in ("manifests/*.yaml", "docs/examples/*.yaml",
                                      "tests/cases/*/manifest.yaml", "tests/data/**/*.yaml")
                   for p in ROOT.glob(pattern))

pytestmark = pytest.mark.skipif(len(_yaml._LOADERS) < 2, reason="PyYAML built without libyaml")


def _parsed(text: str, *, pure: bool) -> tuple[object, ...]:
    """What parsing ``text`` gives: value, positions, problems, failed paths, warnings."""
    both, warn = _yaml._LOADERS, _yaml.warn
    warned: list[str] = []
    _yaml._LOADERS = (_yaml._Loader,) if pure else both
    _yaml.warn = lambda problem: warned.append(str(problem))  # type: ignore[assignment]
    try:
        found = _yaml.parse_yaml(text, "m.yaml")
    finally:
        _yaml._LOADERS, _yaml.warn = both, warn
    return (found.value, found.positions.values, found.positions.keys,
            [str(problem) for problem in found.problems], found.failed, warned)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_projects_manifests_parse_alike(path: Path) -> None:
    text = path.read_text("utf-8")
    assert _parsed(text, pure=False) == _parsed(
        text, pure=True)


SCALARS = st.sampled_from(["1", "1.5", "1.10", "1e5", "true", "NO", "on", "~", "null", "'q'",
                           '"d\\u00e9"', "2026-12-07", "0x1F", "012", "a: b", "|\n  x\n",
                           "-", "&a x", "*a", "!!str 3", "[1, {a: 2}]", "{x: [y]}", "\t"])


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "'a'", "1", "? x"]), SCALARS,
                                st.integers(0, 2)), max_size=8))
def test_generated_texts_parse_alike(lines: list[tuple[str, str, int]]) -> None:
    text = "".join(f"{'  ' * indent}{key}: {value}\n" for key, value, indent in lines)
    fast, pure = _parsed(text, pure=False), _parsed(text, pure=True)
    # The only difference: libyaml, YAML's reference parser, reads a tab where YAML allows
    # one as white space ("a: <tab>"), which PyYAML's scanner refuses.
    if "\t" in text and "tab character here" in " ".join(pure[3]):
        return
    assert fast == pure


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a:\n\t- b\n", "a: 1\n---\nb: 2\n",
                                  "[" * 5000 + "]" * 5000, "a: \x07\n", "a: *nowhere\n"])
def test_a_text_the_fast_loader_refuses_gets_the_pure_loaders_message(text: str) -> None:
    fast = _parsed(text, pure=False)
    assert fast[3]  # a problem
    assert fast == _parsed(text, pure=True)
