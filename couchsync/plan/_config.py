"""``config:``: node settings, planned per node; each node records the keys couchsync set
there in ``couchsync/managed``, so that prune deletes only those (docs/design-notes.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from couchsync._names import CONFIG
from couchsync.manifest.model import DesiredState
from couchsync.plan._model import Action, Step, StepKind

#: Where each node records the keys couchsync set there.
RECORD_SECTION, RECORD_KEY = "couchsync", "managed"


@dataclass(slots=True)
class LiveConfig:
    """What the nodes hold of the sections the manifests (and the records) name."""

    nodes: list[str]
    #: node → section → key → value, for the sections read
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    #: node → the ``section/key`` couchsync recorded there
    managed: dict[str, set[str]] = field(default_factory=dict)

    def value(self, node: str, section: str, key: str) -> str | None:
        return self.values.get(node, {}).get(section, {}).get(key)


def entries(record: str | None) -> list[str]:
    try:
        value = json.loads(record) if record else []
    except ValueError:
        return []  # not ours to read: nothing recorded
    return [entry for entry in value if isinstance(entry, str) and "/" in entry] \
        if isinstance(value, list) else []


def record_value(entries: set[str]) -> str:
    return json.dumps(sorted(entries), separators=(",", ":"))


def plan_config(desired: DesiredState, live: LiveConfig | None) -> list[Step]:
    """The config steps: a key set (``+``) or changed (``~``) on the nodes that differ,
    and with prune a recorded key no manifest declares deleted (``-``)."""
    return [] if live is None else list(_steps(desired, live))


def _steps(desired: DesiredState, live: LiveConfig) -> Iterator[Step]:
    for section, keys in desired.config.items():
        for key, setting in keys.items():
            held = {node: live.value(node, section, key) for node in live.nodes}
            wrong = sorted(node for node, value in held.items() if value != setting.value)
            if not wrong:
                continue
            unset = all(value is None for value in held.values())
            reason = "not set on any node" if unset else (
                f"differs on {len(wrong)} of {len(live.nodes)} nodes")
            yield Step(Action.CREATE if unset else Action.UPDATE, StepKind.CONFIG, CONFIG,
                       f"{section}/{key}", before=None if unset else held,
                       after=dict.fromkeys(live.nodes, setting.value), reason=reason)
    if not desired.prune_config:
        return
    recorded = sorted(set().union(*live.managed.values())) if live.managed else []
    for entry in recorded:
        section, key = entry.split("/", 1)
        if key in desired.config.get(section, {}):
            continue
        held = {node: live.value(node, section, key) for node in live.nodes}
        if any(value is not None for value in held.values()):
            yield Step(Action.DELETE, StepKind.CONFIG, CONFIG, entry, before=held,
                       reason="set by couchsync, no longer in the manifests (prune: config)")
