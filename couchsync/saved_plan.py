"""Saved plans: ``plan --out FILE`` writes a plan that ``apply --plan FILE`` applies exactly.

A reviewer approves a plan; what is applied must be that plan. So a saved plan
holds, besides the plan, what it was made from: the server (its ``uuid``), the
manifests (their paths and a fingerprint of what they declare) and the
settings (``--only``, ``--db-prefix``, ``--db-suffix``, ``--design-deploy``).
Applying it, couchsync loads the same manifests and plans again; it refuses,
before writing anything, when

- the server is another one,
- the manifests (or their variables) declare something else,
- or the server moved: any step differs from the saved one (a document's
  revision or body, a security object, an index, a design doc, a database's
  existence or document count), or a step appeared or went away.

The comparison is of the objects the plan read, not of a state serial: what
moved is named. The fresh plan, being equal, is the one applied.

Secrets: a saved plan holds the values it writes. A plan holding the value
of a variable whose name says it is a secret (``*PASSWORD*``, ``*SECRET*``,
``*TOKEN*``, ``*KEY*``, ``*CREDENTIAL*``) is not saved (``SavedPlanError``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from couchsync import __version__
from couchsync._canonical import canonical_json
from couchsync.manifest._server import REPLICATOR_DB
from couchsync.manifest.model import DatabaseSpec, DesiredState
from couchsync.plan._model import Plan
from couchsync.plan._system import shown, shown_config

__all__ = ["SavedPlan", "SavedPlanError", "fingerprint", "plan_moves"]

KIND = "couchsync-saved-plan"
FORMAT_VERSION = 1
#: Variable names whose values must never be written to a file.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
#: Shorter values are not looked for (they would be found everywhere by chance).
SECRET_MIN_LENGTH = 4
#: Moves listed one by one in the refusal; the rest are counted.
SHOWN_MOVES = 20


class SavedPlanError(Exception):
    """A saved plan cannot be written, read, or applied (its text says why)."""


@dataclass(slots=True)
class SavedPlan:
    """A plan and what it was made from (see the module docstring)."""

    plan: dict[str, Any]  # Plan.to_dict()
    server_url: str  # password masked
    server_uuid: str | None
    paths: list[str]
    fingerprint: str
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    couchsync_version: str = __version__

    def to_json(self, environ: Mapping[str, str] | None = None) -> str:
        """The file's text; refuses (``SavedPlanError``) when it would hold a secret
        variable's value (of those in ``environ``)."""
        text = json.dumps({
            "kind": KIND, "format_version": FORMAT_VERSION,
            "couchsync_version": self.couchsync_version, "created": self.created,
            "server": {"url": self.server_url, "uuid": self.server_uuid},
            "manifests": {"paths": self.paths, "fingerprint": self.fingerprint},
            "settings": self.settings, "plan": self.plan,
        }, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, value in sorted((environ or {}).items()):
            if (SECRET_NAME.search(name) and len(value) >= SECRET_MIN_LENGTH
                    and value in text):
                raise SavedPlanError(
                    f"the plan holds the value of ${{{name}}}, which its name says is a "
                    "secret: it is not saved. Keep secrets out of what couchsync writes, "
                    "or plan and apply in one step (couchsync apply)")
        return text

    @classmethod
    def from_json(cls, text: str, source: str) -> SavedPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SavedPlanError(f"{source}: not a saved plan (not JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise SavedPlanError(f"{source}: not a saved plan (couchsync plan --out writes "
                                 "them)")
        if data.get("format_version") != FORMAT_VERSION:
            raise SavedPlanError(f"{source}: a saved plan of format "
                                 f"{data.get('format_version')!r}; this couchsync reads "
                                 f"{FORMAT_VERSION}")
        try:
            return cls(plan=data["plan"], server_url=data["server"]["url"],
                       server_uuid=data["server"]["uuid"], paths=data["manifests"]["paths"],
                       fingerprint=data["manifests"]["fingerprint"],
                       settings=data["settings"], created=data["created"],
                       couchsync_version=data["couchsync_version"])
        except (KeyError, TypeError) as exc:
            raise SavedPlanError(f"{source}: a saved plan with a part missing "
                                 f"({exc})") from None

    @classmethod
    def of(cls, plan: Plan, desired: DesiredState, *, server_url: str,
           server_uuid: str | None, paths: Sequence[str], settings: Mapping[str, Any]
           ) -> SavedPlan:
        return cls(plan=plan.to_dict(), server_url=server_url, server_uuid=server_uuid,
                   paths=list(paths), fingerprint=fingerprint(desired),
                   settings=dict(settings),
                   created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"))

    def refusal(self, fresh: Plan, desired: DesiredState, *, server_url: str,
                server_uuid: str | None) -> str | None:
        """Why this saved plan must not be applied now (None: it may), given the plan
        made again from the same manifests against the server."""
        if (self.server_uuid or server_uuid) and self.server_uuid != server_uuid:
            return (f"the plan was made against another server (uuid {self.server_uuid}, "
                    f"at {self.server_url}); this one is {server_uuid} ({server_url})")
        if not (self.server_uuid or server_uuid) and self.server_url != server_url:
            return f"the plan was made against {self.server_url}, not {server_url}"
        if fingerprint(desired) != self.fingerprint:
            return ("the manifests, or their variables, declare something else than when "
                    "the plan was made: make a new plan")
        moves = plan_moves(self.plan, fresh.to_dict())
        if moves:
            lines = [f"the server moved since the plan was made ({len(moves):,} "
                     f"change{'s' if len(moves) != 1 else ''}); nothing was written:"]
            lines += [f"  {move}" for move in moves[:SHOWN_MOVES]]
            if len(moves) > SHOWN_MOVES:
                lines.append(f"  … and {len(moves) - SHOWN_MOVES:,} more")
            lines.append("Make a new plan and review it.")
            return "\n".join(lines)
        return None


def fingerprint(desired: DesiredState) -> str:
    """A digest of everything ``desired`` declares (documents by their manifest hash)."""
    digest = hashlib.sha256()
    for name in sorted(desired.databases):
        digest.update(canonical_json([name, _declared(desired.databases[name])], drop=()))
    if desired.config or desired.prune_config:  # so a saved plan of databases only keeps
        digest.update(canonical_json(["config", desired.prune_config, {  # its fingerprint
            section: {key: shown_config(f"{section}/{key}", {"": setting.value})
                      for key, setting in keys.items()}
            for section, keys in desired.config.items()}], drop=()))
    return digest.hexdigest()


def _declared(spec: DatabaseSpec) -> dict[str, Any]:
    return {
        "settings": [spec.state, spec.partitioned, spec.q, spec.n, spec.placement,
                     spec.security, spec.prune, spec.design_deploy],
        "indexes": {name: [index.ddoc, index.fields, index.partial_filter_selector, index.type]
                    for name, index in spec.indexes.items()},
        "design_docs": {name: design.body for name, design in spec.design_docs.items()},
        # Secrets never go into the file, not even hashed (a guessable password would be
        # found by hashing guesses): a replication is taken as plans show it, masked.
        "documents": {doc_id: doc.hash if spec.name != REPLICATOR_DB else shown(
            REPLICATOR_DB, doc.body) for doc_id, doc in spec.documents.items()},
    }


#: Step keys that say what a step does (``rebuild`` only informs: a document count).
_COMPARED = ("action", "before", "after", "rev")


def plan_moves(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """What differs between a saved plan and the same plan made now, one line each,
    in the saved plan's order (``Plan.to_dict()`` forms)."""
    before = {step["address"]: step for step in saved["steps"]}
    now = {step["address"]: step for step in fresh["steps"]}
    moves = []
    for address, step in before.items():
        current = now.get(address)
        if current is None:
            moves.append(f"{address}: planned ({step['action']}), now nothing to do")
        elif current["action"] != step["action"]:
            moves.append(f"{address}: planned {step['action']}, now {current['action']}")
        elif current.get("rev") != step.get("rev"):
            moves.append(f"{address}: planned at rev {step.get('rev')}, now at rev "
                         f"{current.get('rev')}")
        elif any(_differ(step.get(key), current.get(key)) for key in _COMPARED):
            moves.append(f"{address}: changed on the server since the plan")
    moves += [f"{address}: now needs {step['action']}, which the plan lacks"
              for address, step in now.items() if address not in before]
    for name in sorted(set(saved.get("errors", {})) ^ set(fresh.get("errors", {}))):
        state = "could" if name in saved.get("errors", {}) else "could not"
        moves.append(f"db:{name}: {state} be read now")
    if saved.get("record_updates") != fresh.get("record_updates"):
        moves.append("the ownership records changed since the plan (an apply ran)")
    return moves


def _differ(a: Any, b: Any) -> bool:
    return canonical_json(a, drop=()) != canonical_json(b, drop=())
