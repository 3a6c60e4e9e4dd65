"""Planning: read the live server, diff it against the manifests, render the plan."""

from couchsync.plan._diff import plan_changes, plan_database
from couchsync.plan._live import Prefetched, prefetch
from couchsync.plan._model import Action, DatabasePlan, Plan, PlanError, Step, StepKind
from couchsync.plan._planner import (
    discover,
    load_and_plan,
    load_and_read,
    plan_server,
    read_live_state,
)
from couchsync.plan._render import render_ignored, render_json, render_markdown, render_text
from couchsync.plan._select import resolve_only
from couchsync.plan._state import LiveDatabase, LiveDoc, LiveIndex, LiveState, ManagedDoc

__all__ = [
    "Action",
    "DatabasePlan",
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
    "discover",
    "load_and_plan",
    "load_and_read",
    "plan_changes",
    "plan_database",
    "plan_server",
    "prefetch",
    "read_live_state",
    "render_ignored",
    "render_json",
    "render_markdown",
    "render_text",
    "resolve_only",
]
