"""Saved plans: ``plan --out FILE`` writes a plan that ``apply --plan FILE`` applies exactly,
or refuses, writing nothing, when what it was made from moved (docs/plan-and-apply.md,
"Saved plans"). A plan holding a secret variable's value is not saved.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from couchsync._canonical import canonical_json
from couchsync._names import REPLICATOR_DB
from couchsync._version import __version__
from couchsync.errors import CouchsyncError
from couchsync.manifest import is_secret_variable
from couchsync.manifest.model import DatabaseSpec, DesiredState
from couchsync.plan import Plan, StepKind, shown, shown_config, shown_secrets

if TYPE_CHECKING:
    from couchsync.client import Client

__all__ = ["ReadVariables", "SavedPlan", "SavedPlanError", "fingerprint", "plan_moves",
           "server_of"]

KIND = "couchsync-saved-plan"
FORMAT_VERSION = 2  # 2: variables, and what the manifests declare item by item
#: Shorter values are not looked for (they would be found everywhere by chance).
SECRET_MIN_LENGTH = 4
#: Moves listed one by one in the refusal; the rest are counted.
SHOWN_MOVES = 20
#: Hex digits kept of each declared item's digest (a saved plan of 10^5 documents
#: stays a few MB; 64 bits tell a changed item from an unchanged one).
PART_DIGITS = 16


class SavedPlanError(CouchsyncError):
    """A saved plan cannot be written, read, or applied (its text says why)."""


class ReadVariables(Mapping[str, str]):
    """``environ`` as the manifests read it: remembers each name asked for and the value
    it gave (None: unset), for the saved plan to carry."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.read: dict[str, str | None] = {}

    def __getitem__(self, name: str) -> str:
        try:
            value = self._environ[name]
        except KeyError:
            self.read.setdefault(name, None)
            raise
        self.read[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


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
    #: What the manifests declared, item by item (``declared``), and the manifest files'
    #: SHA-256: a refusal names what changed.
    declared: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    #: The variables read, but secrets: name → value (None: it was unset).
    variables: dict[str, str | None] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # secret variables read (names only)
    #: Set by ``environ``: variables given at apply with another value than the plan's.
    overridden: dict[str, str] = field(default_factory=dict, repr=False)

    def to_json(self, environ: Mapping[str, str] | None = None) -> str:
        """The file's text; refuses (``SavedPlanError``) when it would hold a secret
        variable's value (of those in ``environ``)."""
        text = json.dumps({
            "kind": KIND, "format_version": FORMAT_VERSION,
            "couchsync_version": self.couchsync_version, "created": self.created,
            "server": {"url": self.server_url, "uuid": self.server_uuid},
            "manifests": {"paths": self.paths, "fingerprint": self.fingerprint,
                          "files": self.files, "declared": self.declared},
            "variables": {"values": self.variables, "secrets": self.secrets},
            "settings": self.settings, "plan": self.plan,
        }, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, value in sorted((environ or {}).items()):
            if (is_secret_variable(name) and len(value) >= SECRET_MIN_LENGTH
                    and value in text):
                raise SavedPlanError(
                    f"the plan holds the value of ${{{name}}}, which its name says is a "
                    "secret: it is not saved. Keep secrets out of what couchsync writes, "
                    "or plan and apply in one step (couchsync apply)")
        return text

    def write(self, path: Path, environ: Mapping[str, str] | None = None) -> None:
        """Write the file whole or not at all (a new file renamed over ``path``)."""
        text = self.to_json(environ)
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise SavedPlanError(f"cannot write the plan to {path}: "
                                 f"{exc.strerror or exc}") from None

    @classmethod
    def read(cls, path: Path) -> SavedPlan:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SavedPlanError(f"cannot read the plan {path}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
        return cls.from_json(text, str(path))

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
                                 f"{FORMAT_VERSION} (make the plan again)")
        try:
            manifests, variables = data["manifests"], data["variables"]
            return cls(plan=data["plan"], server_url=data["server"]["url"],
                       server_uuid=data["server"]["uuid"], paths=manifests["paths"],
                       fingerprint=manifests["fingerprint"], settings=data["settings"],
                       created=data["created"], couchsync_version=data["couchsync_version"],
                       declared=manifests["declared"], files=manifests["files"],
                       variables=variables["values"], secrets=variables["secrets"])
        except (KeyError, TypeError) as exc:
            raise SavedPlanError(f"{source}: a saved plan with a part missing "
                                 f"({exc})") from None

    @classmethod
    def of(cls, plan: Plan, desired: DesiredState, *, server_url: str,
           server_uuid: str | None, paths: Sequence[str], settings: Mapping[str, Any],
           read: Mapping[str, str | None] | None = None) -> SavedPlan:
        """The saved plan of ``plan``; ``read``: the variables the manifests read
        (``ReadVariables.read``)."""
        read = read or {}
        declared = declared_items(desired)
        return cls(plan=plan.to_dict(), server_url=server_url, server_uuid=server_uuid,
                   paths=list(paths), fingerprint=fingerprint(desired, declared),
                   settings=dict(settings),
                   created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"),
                   declared=declared, files=_file_digests(desired.files),
                   variables={name: value for name, value in sorted(read.items())
                              if value is None or not is_secret_variable(name)},
                   secrets=sorted(name for name, value in read.items()
                                  if value is not None and is_secret_variable(name)))

    def environ(self, given: Mapping[str, str], environ: Mapping[str, str]
                ) -> dict[str, str]:
        """What ``${VAR}`` reads at apply: the values the plan was made with, secrets from
        ``environ``; ``given`` (``--var``, ``--var-file``) over both (a value that differs
        from the plan's makes the refusal name it). Raises ``SavedPlanError`` naming the
        secret variables that are set nowhere."""
        values = dict(environ)
        for name, value in self.variables.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        values.update(given)
        missing = [name for name in self.secrets if name not in values]
        if missing:
            many = len(missing) > 1
            raise SavedPlanError(
                f"the saved plan needs the secret variable{'s' if many else ''} "
                f"{', '.join(missing)}, which {'are' if many else 'is'} not set: a saved "
                "plan keeps every variable but secrets; set "
                f"{'them' if many else 'it'} in the environment (or --var NAME=VALUE)")
        self.overridden = {name: value for name, value in given.items()
                       if name in self.variables and self.variables[name] != value}
        return values

    def settings_with(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The plan's settings; a setting given again must be the same."""
        settings = dict(self.settings)
        for name, value in given.items():
            if value not in (None, "", []) and value != settings.get(name):
                raise SavedPlanError(
                    f"--{name.replace('_', '-')} differs from the saved plan's "
                    f"({settings.get(name)!r}): a saved plan is applied as it was made")
        return settings

    def check(self, fresh: Plan, desired: DesiredState, client: Client) -> None:
        """Raise SavedPlanError when ``refusal`` gives a reason against ``client``'s server."""
        url, uuid = server_of(client)
        refusal = self.refusal(fresh, desired, server_url=url, server_uuid=uuid)
        if refusal is not None:
            raise SavedPlanError(f"refusing the saved plan: {refusal}")

    def refusal(self, fresh: Plan, desired: DesiredState, *, server_url: str,
                server_uuid: str | None) -> str | None:
        """Why this saved plan must not be applied now (None: it may), given the plan
        made again from the same manifests against the server."""
        if (self.server_uuid or server_uuid) and self.server_uuid != server_uuid:
            return (f"the plan was made against another server (uuid {self.server_uuid}, "
                    f"at {self.server_url}); this one is {server_uuid} ({server_url})")
        if not (self.server_uuid or server_uuid) and self.server_url != server_url:
            return f"the plan was made against {self.server_url}, not {server_url}"
        declared = declared_items(desired)
        if fingerprint(desired, declared) != self.fingerprint:
            return _listed("the manifests, or their variables, declare something else than "
                           "when the plan was made", self._declaration_moves(declared, desired))
        moves = plan_moves(self.plan, fresh.to_dict())
        if moves:
            return _listed(f"the server moved since the plan was made ({len(moves):,} "
                           f"change{'s' if len(moves) != 1 else ''})", moves)
        return None

    def _declaration_moves(self, declared: Mapping[str, str], desired: DesiredState
                           ) -> list[str]:
        """What the manifests declare differently now, one line each: files, variables,
        then items (in address order)."""
        files = _file_digests(desired.files)
        moves = [f"manifest file {path}: " + ("changed since the plan was made"
                                              if path in self.files and path in files
                                              else "read now, not when the plan was made"
                                              if path in files else "no longer read")
                 for path in sorted(self.files.keys() | files.keys())
                 if self.files.get(path) != files.get(path)]
        moves += [f"variable {name}: {self.variables[name]!r} in the plan, given "
                  f"{value!r} now" for name, value in sorted(self.overridden.items())]
        moves += [f"{address}: {_changed(self.declared.get(address), declared.get(address))}"
                  for address in sorted(self.declared.keys() | declared.keys())
                  if self.declared.get(address) != declared.get(address)]
        return moves


def server_of(client: Client) -> tuple[str, str | None]:
    """The server's URL (password masked) and ``uuid`` (None when it tells none)."""
    uuid = client.server.info().get("uuid")
    return client.url, uuid if isinstance(uuid, str) else None


def _changed(before: str | None, now: str | None) -> str:
    if before is None:
        return "declared now, not when the plan was made"
    if now is None:
        return "no longer declared (it was when the plan was made)"
    return "declared differently since the plan was made"


def _listed(headline: str, moves: list[str]) -> str:
    lines = [f"{headline}; nothing was written:"]
    lines += [f"  {move}" for move in moves[:SHOWN_MOVES]]
    if len(moves) > SHOWN_MOVES:
        lines.append(f"  … and {len(moves) - SHOWN_MOVES:,} more")
    lines.append("Make a new plan and review it.")
    return "\n".join(lines)


def _file_digests(files: Sequence[str]) -> dict[str, str]:
    digests = {}
    for path in files:
        try:
            with open(path, "rb") as handle:
                digests[path] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            continue  # gone: the load names it
    return digests


def fingerprint(desired: DesiredState, declared: Mapping[str, str] | None = None) -> str:
    """A digest of everything ``desired`` declares (``declared_items``)."""
    items = declared_items(desired) if declared is None else declared
    return hashlib.sha256(canonical_json(sorted(items.items()), drop=())).hexdigest()


def declared_items(desired: DesiredState) -> dict[str, str]:
    """Plan address → a short digest of what ``desired`` declares there (documents by
    their manifest hash; a database's own settings under ``db:NAME``)."""
    items = {address: _digest(value) for name in sorted(desired.databases)
             for address, value in _declared(desired.databases[name], desired.secrets)}
    for section, keys in desired.config.items():
        for key, setting in keys.items():
            items[f"config:{section}/{key}"] = _digest(
                shown_config(f"{section}/{key}", {"": setting.value}))
    if desired.prune_config:
        items["prune:config"] = "true"
    return items


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value, drop=())).hexdigest()[:PART_DIGITS]


def _declared(spec: DatabaseSpec, secrets: frozenset[str]) -> Iterator[tuple[str, Any]]:
    base = f"db:{spec.name}"
    yield base, [spec.state, spec.partitioned, spec.q, spec.n, spec.placement, spec.prune,
                 spec.design_deploy, spec.create_only, list(spec.ignore)]
    for name, index in spec.indexes.items():
        yield f"{base}/index:{name}", [index.ddoc, index.fields,
                                       index.partial_filter_selector, index.type,
                                       index.partitioned]
    # (address, body, what stands for it): a document by its hash, which covers its seed
    # rule (create_only, ignore) too.
    items = [(f"{base}/security", spec.security, spec.security),
             *((f"{base}/design:{name}", design.body, design.body)
               for name, design in spec.design_docs.items()),
             *((f"{base}/doc:{doc_id}", doc.body, spec.record_hash(doc) if spec.name !=
                REPLICATOR_DB else shown(REPLICATOR_DB, doc.body))
               for doc_id, doc in spec.documents.items())]
    for address, body, value in items:
        # Secrets never go into the file, not even hashed (a guessable password would be
        # found by hashing guesses): an item holding one, or a replication, is taken as
        # plans show it, masked.
        masked = shown_secrets(body, None, secrets, after=False) if secrets else body
        if body is not None:
            yield address, value if masked == body else masked


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
        elif step["kind"] == StepKind.MIGRATION.value:
            # Pinned: its definition. What it matches moves with the application's writes.
            if (step["after"] or {}).get("checksum") != (current["after"] or {}).get("checksum"):
                moves.append(f"{address}: its definition changed since the plan")
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
