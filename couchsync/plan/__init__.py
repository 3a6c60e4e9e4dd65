"""Planning, with no I/O: the plan model, the diff of the manifests against a live state
read beforehand (``couchsync.read`` reads it), the renderers, and what apply shares with
them (the ownership record's format, staging ids, ``phases``: the order apply runs in).
"""

from couchsync.plan._batch import batched, batched_within
from couchsync.plan._config import RECORD_KEY, RECORD_SECTION, LiveConfig, plan_config, record_value
from couchsync.plan._config import entries as config_entries
from couchsync.plan._diff import content_step, index_differences, plan_changes, plan_database
from couchsync.plan._index_ddocs import GENERATED_DDOC, read_index_ddoc
from couchsync.plan._migrate import (
    DELETED,
    MIGRATIONS_DDOC,
    Outcome,
    Transform,
    body_hash,
    migrate,
    migration_steps,
    pending_migrations,
)
from couchsync.plan._model import (
    FORMAT_VERSION,
    Action,
    DatabasePlan,
    Plan,
    PlanError,
    Step,
    StepKind,
)
from couchsync.plan._ownership import (
    RECORD_FORMAT,
    RECORD_ID,
    Record,
    creating_doc_id,
    digest_if_current,
    expected_entry,
    is_unchanged,
    record_bodies,
    shard_count,
    shard_doc_id,
)
from couchsync.plan._public import public_warnings
from couchsync.plan._render import render_ignored, render_json, render_markdown, render_text
from couchsync.plan._select import Scope, resolve_only
from couchsync.plan._staging import (
    COPIES_FIELD,
    design_staging_id,
    index_staging_id,
    is_staging_id,
    rebuilds_views,
    shard_copy_ids,
    staging_body,
    staging_id,
)
from couchsync.plan._state import (
    LiveDatabase,
    LiveDoc,
    LiveIndex,
    LiveState,
    ManagedDoc,
    MigrationPreview,
)
from couchsync.plan._system import (
    CONFIG_SECRET,
    SECRET_KEYS,
    SERVER_WRITTEN,
    URL_PASSWORD,
    check_passwords,
    shown,
    shown_config,
    shown_secrets,
)
from couchsync.plan._unreadable import (
    UnreadableDocument,
    check_bodies,
    fetch_decodable,
    plan_checked,
)

__all__ = [
    "CONFIG_SECRET",
    "COPIES_FIELD",
    "DELETED",
    "FORMAT_VERSION",
    "GENERATED_DDOC",
    "MIGRATIONS_DDOC",
    "RECORD_FORMAT",
    "RECORD_ID",
    "RECORD_KEY",
    "RECORD_SECTION",
    "SECRET_KEYS",
    "SERVER_WRITTEN",
    "URL_PASSWORD",
    "Action",
    "DatabasePlan",
    "LiveConfig",
    "LiveDatabase",
    "LiveDoc",
    "LiveIndex",
    "LiveState",
    "ManagedDoc",
    "MigrationPreview",
    "Outcome",
    "Plan",
    "PlanError",
    "Record",
    "Scope",
    "Step",
    "StepKind",
    "Transform",
    "UnreadableDocument",
    "batched",
    "batched_within",
    "body_hash",
    "check_bodies",
    "check_passwords",
    "config_entries",
    "content_step",
    "creating_doc_id",
    "design_staging_id",
    "digest_if_current",
    "expected_entry",
    "fetch_decodable",
    "index_differences",
    "index_staging_id",
    "is_staging_id",
    "is_unchanged",
    "migrate",
    "migration_steps",
    "pending_migrations",
    "plan_changes",
    "plan_checked",
    "plan_config",
    "plan_database",
    "public_warnings",
    "read_index_ddoc",
    "rebuilds_views",
    "record_bodies",
    "record_value",
    "render_ignored",
    "render_json",
    "render_markdown",
    "render_text",
    "resolve_only",
    "shard_copy_ids",
    "shard_count",
    "shard_doc_id",
    "shown",
    "shown_config",
    "shown_secrets",
    "staging_body",
    "staging_id",
]
