"""A ``$NAME`` without braces is kept as written; it is warned about, with its place and
never with a secret (issue 19: ``password: $WORKER_PASSWORD`` was stored literally)."""

from __future__ import annotations

import pytest
from conftest import Write

from couchsync.manifest import load_manifests
from couchsync.manifest._env import bare_references


def test_a_dollar_name_without_braces_is_warned_about_never_showing_a_secret(
    write: Write, caplog: pytest.LogCaptureFixture,
) -> None:
    path = write("m.yaml", "version: 1\nusers:\n  worker:\n    password: a$WORKER_PASSWORD\n"
                           "databases:\n  orders:\n    documents:\n"
                           "      - _id: cfg\n        dir: $HOME/data\n        home: ${HOME}\n"
                           "        price: $5\n        sel: {$eq: $x}\n"
                           "        literal: $${HOME}\n        two: $$HOME\n")
    caplog.set_level("WARNING", logger="couchsync.manifest")
    state = load_manifests([path], environ={"HOME": "/root"})
    assert state.databases["orders"].documents["cfg"].body["dir"] == "$HOME/data"
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        f"{path}:4:15: a $NAME in this secret value (not shown) is kept as written, not "
        "expanded: write ${NAME} to use a variable",
        f"{path}:9:14: $HOME is not a variable reference and is kept as written; "
        "write ${HOME} to use the variable"]
    assert "WORKER" not in "\n".join(warnings)


@pytest.mark.parametrize(("text", "names"), [
    ("$WORKER_PASSWORD", ["$WORKER_PASSWORD"]), ("a $HOME/b", ["$HOME"]),
    ("$A1 and $B", ["$A1", "$B"]), ("${A}$B", ["$B"]),
    ("${HOME}", []), ("$${HOME}", []), ("$$HOME", []), ("pa$$word", []), ("$eq", []),
    ("$5", []), ("x$_", []), ("ab$CDe", []), ("jQuery $(x)", []),
])
def test_what_looks_like_a_variable(text: str, names: list[str]) -> None:
    assert [message.split()[0] for message in bare_references(text)] == names
