"""Planning: read the live server, diff it against the manifests, render the plan."""

from couchsync.plan._diff import plan_changes
from couchsync.plan._live import Prefetched, load_and_read, prefetch, read_live_state
from couchsync.plan._model import Action, Plan, PlanError, Step, StepKind
from couchsync.plan._render import render_json, render_text
from couchsync.plan._select import resolve_only
from couchsync.plan._state import LiveDatabase, LiveDoc, LiveIndex, LiveState, ManagedDoc

__all__ = [
    "Action",
    "LiveDatabase",
    "LiveDoc",
    "LiveIndex",
    "LiveState",
    "ManagedDoc",
    "Plan",
    "PlanError",
    "Prefetched",
    "Step",
    "StepKind",
    "load_and_read",
    "plan_changes",
    "prefetch",
    "read_live_state",
    "render_json",
    "render_text",
    "resolve_only",
]
