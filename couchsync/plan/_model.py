"""The plan: plain data describing what apply would change, and its machine format
(``Plan.to_dict()``: docs/plan-and-apply.md, "The JSON plan"). Apply never reads a step's
``reason``, which is for users."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

from couchsync._names import CONFIG
from couchsync._version import __version__
from couchsync.errors import CouchsyncError
from couchsync.manifest.model import DocumentSpec
from couchsync.plan._hints import Hint
from couchsync.plan._state import ManagedDoc
from couchsync.plan._system import SERVER_WRITTEN, shown, shown_config, shown_secrets

FORMAT_VERSION = 1


class PlanError(CouchsyncError, ValueError):
    """A plan cannot be made or read: an ``only`` selector naming no manifest database,
    an ownership record of an unknown format, a saved plan of another format version."""


class Action(str, Enum):
    """What a step does; the value is the symbol shown to users."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    REPLACE = "-/+"  # delete, then create (an index whose definition changed)


class StepKind(str, Enum):
    """What a step acts on."""

    DATABASE = "database"
    SECURITY = "security"
    DESIGN_DOC = "design_doc"
    INDEX = "index"
    DOCUMENT = "document"
    CONFIG = "config"  # a node config key, on every node (database: "_config")
    MIGRATION = "migration"  # a data migration: ``after`` holds its preview


_ADDRESS_PART = {StepKind.DESIGN_DOC: "design", StepKind.INDEX: "index", StepKind.DOCUMENT: "doc",
                 StepKind.MIGRATION: "migration"}


class Rebuild(TypedDict):
    """What a design doc or index step costs in index building (``Step.rebuild``)."""

    documents: int  # the database's documents, all of which the new index reads
    index_bytes: int | None  # the current index's size on disk; None: no index yet
    staged: bool  # built under a staging id first, then swapped in (design_deploy)


class Step:
    """One change to one target. ``after`` may be the manifest's ``DocumentSpec``, decoded
    only when read: a plan creating a million documents then holds no million dicts, and
    apply sends the spec's canonical bytes as they are."""

    __slots__ = ("_after", "action", "before", "database", "id", "kind", "reason", "rebuild",
                 "rev")

    def __init__(self, action: Action, kind: StepKind, database: str, id: str | None = None,
                 before: Any = None, after: Any = None, rev: str | None = None,
                 reason: str = "", rebuild: Rebuild | None = None) -> None:
        self.action, self.kind, self.database, self.id = action, kind, database, id
        self.before, self._after, self.rev = before, after, rev
        self.reason, self.rebuild = reason, rebuild

    @property
    def after(self) -> Any:
        """The desired value (for a document: its body without ``_id``)."""
        if isinstance(self._after, DocumentSpec):
            return {k: v for k, v in self._after.body.items() if k != "_id"}
        return self._after

    @after.setter
    def after(self, value: Any) -> None:
        self._after = value

    @property
    def spec(self) -> DocumentSpec | None:
        """The manifest document this step writes unchanged, when it was given as one."""
        return self._after if isinstance(self._after, DocumentSpec) else None

    def _key(self) -> tuple[Any, ...]:
        return (self.action, self.kind, self.database, self.id, self.before, self.after,
                self.rev, self.reason, self.rebuild)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable values inside: not hashable

    def __repr__(self) -> str:
        view = StepView(self)  # secrets masked
        return (f"Step({self.action!r}, {self.kind!r}, {self.database!r}, id={self.id!r}, "
                f"before={view['before']!r}, after={view['after']!r}, rev={self.rev!r}, "
                f"reason={self.reason!r}, rebuild={self.rebuild!r})")

    @property
    def address(self) -> str:
        """``db:NAME``, ``db:NAME/security``, ``db:NAME/{doc|design|index|migration}:ID``
        or ``config:SECTION/KEY``."""
        if self.kind is StepKind.CONFIG:
            return f"config:{self.id}"
        base = f"db:{self.database}"
        if self.kind is StepKind.DATABASE:
            return base
        if self.kind is StepKind.SECURITY:
            return f"{base}/security"
        target = self.id or ""
        if self.kind is StepKind.DESIGN_DOC:
            target = target.removeprefix("_design/")
        return f"{base}/{_ADDRESS_PART[self.kind]}:{target}"

    def to_dict(self) -> dict[str, Any]:
        return dict(StepView(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(Action(data["action"]), StepKind(data["kind"]), data["database"],
                   data.get("id"), data.get("before"), data.get("after"), data.get("rev"),
                   data.get("reason", ""), data.get("rebuild"))


#: ``Plan.unread`` keys: documents left unread, by why.
CREATE_ONLY_EXISTING = "create_only_existing"
IGNORING_UNREAD = "ignoring_unread"


@dataclass(slots=True)
class DatabasePlan:
    """The plan of one database (``plan_database``): its steps and record updates."""

    database: str
    steps: list[Step]
    confirm: dict[str, ManagedDoc]
    forget: set[str]
    copies: int | None = None  # the database's n, as read
    ignored: dict[str, tuple[str, ...]] = field(default_factory=dict)  # see Plan.ignored
    unread: dict[str, int] = field(default_factory=dict)  # see Plan.unread
    open_to_anyone: bool = False  # see Plan.open_to_anyone


@dataclass(slots=True)
class Plan:
    """The steps that bring the server to the desired state, in phase order per database."""

    steps: list[Step] = field(default_factory=list)
    #: By database, ownership entries an interrupted apply wrote ahead whose documents do
    #: hold what the manifests say: not steps (the data is right), apply records them.
    confirm: dict[str, dict[str, ManagedDoc]] = field(default_factory=dict)
    #: By database, pending entries whose documents were never created and are no longer
    #: wanted (dropped with ``prune``, or ``_deleted: true``).
    forget: dict[str, set[str]] = field(default_factory=dict)
    #: Databases that could not be read, with the reason: nothing is planned for them.
    errors: dict[str, str] = field(default_factory=dict)
    #: Each planned database's ``n`` as read, so apply writes with ``w`` = n without
    #: asking again. Not part of the machine format.
    copies: dict[str, int] = field(default_factory=dict)
    #: Values secret variables gave the manifests: masked in every form a plan is shown
    #: or saved in.
    secrets: frozenset[str] = frozenset()
    #: For ``-v``, not steps: by database, the ignored fields whose values differ, per
    #: document read, and how many documents were not read (``CREATE_ONLY_EXISTING``,
    #: ``IGNORING_UNREAD``: ignored fields the record proved unchanged).
    ignored: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    unread: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Declared databases already open to anyone (their ``_security`` names no members)
    #: that the plan leaves so, with no ``public: true``: warned of, not steps.
    open_to_anyone: list[str] = field(default_factory=list)
    #: Incremental plans (``plan/_hints.py``): the databases not read, which a hint proves
    #: unchanged since a run found them converged (None: no hint was looked at), and why
    #: each other one was read in full.
    unchanged: list[str] | None = None
    read_in_full: dict[str, str] = field(default_factory=dict)
    #: The hints a run may record: databases read in full and found converged (their
    #: info asked before the read); None: a database gone from the server, its hint to
    #: be forgotten. Not part of the machine format.
    converged: dict[str, Hint | None] = field(default_factory=dict)
    #: What the server's settings cost this plan (``apply``/``plan`` show them before it).
    warnings: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.steps

    def add(self, part: DatabasePlan) -> None:
        """Append one database's plan."""
        self.steps.extend(part.steps)
        if part.copies is not None and (part.steps or part.confirm or part.forget):
            self.copies[part.database] = part.copies
        for name in ("confirm", "forget", "ignored", "unread"):
            if value := getattr(part, name):
                getattr(self, name)[part.database] = value
        if part.open_to_anyone:
            self.open_to_anyone.append(part.database)

    def ignored_dict(self) -> dict[str, Any]:
        """``ignored`` and ``unread`` as the machine format's ``"ignored"`` value."""
        return {database: {**({"fields": {doc_id: list(paths) for doc_id, paths
                                          in self.ignored[database].items()}}
                              if database in self.ignored else {}),
                           **self.unread.get(database, {})}
                for database in dict.fromkeys([*self.ignored, *self.unread])}

    def databases(self) -> list[str]:
        """The databases with steps or record updates, in plan order."""
        return list(dict.fromkeys([*(step.database for step in self.steps), *self.confirm,
                                   *self.forget]))

    def record_updates(self) -> int:
        """How many ownership-record entries ``confirm`` and ``forget`` change."""
        return (sum(len(entries) for entries in self.confirm.values())
                + sum(len(ids) for ids in self.forget.values()))

    def counts(self) -> dict[str, int]:
        """``{"create", "update", "delete"}``; a replace counts as one delete and one create."""
        actions = Counter(step.action for step in self.steps)
        replaces = actions[Action.REPLACE]
        return {"create": actions[Action.CREATE] + replaces, "update": actions[Action.UPDATE],
                "delete": actions[Action.DELETE] + replaces}

    def to_dict(self) -> dict[str, Any]:
        """The machine format (see the module docstring)."""
        view = self.view()
        return {**view, "steps": [dict(step) for step in view["steps"]]}

    def view(self) -> dict[str, Any]:
        """``to_dict()``'s structure with each step a read-only view, its values computed
        when read: the text renderer reads only the steps it shows in full."""
        return {
            "format_version": FORMAT_VERSION,
            "couchsync_version": __version__,
            "steps": [StepView(step, self.secrets) for step in self.steps],
            "summary": self.counts(),
            "record_updates": self.record_updates(),
            "errors": dict(self.errors),
            **({"ignored": self.ignored_dict()} if self.ignored or self.unread else {}),
            **({"open_to_anyone": list(self.open_to_anyone)} if self.open_to_anyone else {}),
            **({"incremental": self.incremental_dict()} if self.unchanged is not None else {}),
        }

    def incremental_dict(self) -> dict[str, Any]:
        """``unchanged`` and ``read_in_full`` as the machine format's ``"incremental"``:
        how many databases were not read, and the ones read in full by reason."""
        by_reason: dict[str, list[str]] = {}
        for database, reason in self.read_in_full.items():
            by_reason.setdefault(reason, []).append(database)
        return {"unchanged": len(self.unchanged or ()), "read_in_full": by_reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise PlanError(f"unsupported plan format_version {version!r} (expected 1)")
        return cls([Step.from_dict(step) for step in data["steps"]],
                   errors=dict(data.get("errors", {})),
                   open_to_anyone=list(data.get("open_to_anyone", [])))


_STEP_KEYS = ("action", "kind", "address", "database", "id", "before", "after", "rev", "reason",
              "rebuild")
_ENUM_KEYS = frozenset({"action", "kind"})
_SIDES = frozenset({"before", "after"})
#: Where values may hold secrets: _users, _replicator, and the node config.
_SECRETS_SHOWN = frozenset({*SERVER_WRITTEN, CONFIG})


class StepView(Mapping[str, Any]):
    """A step as the mapping ``Step.to_dict()`` returns, computed key by key; secrets
    masked (those of the system databases and config, and the values of ``secrets``)."""

    __slots__ = ("_secrets", "_step")

    def __init__(self, step: Step, secrets: frozenset[str] = frozenset()) -> None:
        self._step = step
        self._secrets = secrets

    def __getitem__(self, key: str) -> Any:
        # Read three times per step by the text renderer's counts: kept cheap.
        if key in _ENUM_KEYS:
            return getattr(self._step, key).value
        if key not in _STEP_KEYS:
            raise KeyError(key)
        value = getattr(self._step, key)
        if key not in _SIDES:
            return value
        if self._secrets:
            other = self._step.after if key == "before" else self._step.before
            value = shown_secrets(value, other, self._secrets, key == "after")
        if self._step.database not in _SECRETS_SHOWN:
            return value
        # A secret shows as "***" before and as "(changed)" after, when it changes.
        other = self._step.before if key == "after" else None
        if self._step.kind is StepKind.CONFIG:
            return shown_config(self._step.id or "", value, other)
        return shown(self._step.database, value, other)

    def __iter__(self) -> Iterator[str]:
        return iter(_STEP_KEYS)

    def __len__(self) -> int:
        return len(_STEP_KEYS)
