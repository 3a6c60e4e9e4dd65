"""Reading the server for a plan (discovery, live state, node config, size limits, the
ownership record), and the drivers that read and plan database by database
(``load_and_plan``, ``plan_server``); the planning itself is ``couchsync.plan``'s, no I/O.
"""

from couchsync.read._hints import StoredHints, read_hints, record_hints
from couchsync.read._limits import (
    BATCH_BYTES,
    BULK_ENVELOPE,
    LimitsReader,
    bulk_body,
    encoded,
    follow_up_body,
    follow_ups,
    inline_names,
    streamed,
)
from couchsync.read._live import SCAN_PAGE_SIZE, Prefetched, prefetch, read_bodies, read_indexes
from couchsync.read._migrations import (
    PREVIEW,
    Matching,
    MigrationOptions,
    among,
    change,
    changed_since,
    current_revs,
    id_key,
    journal_id,
    next_run,
    read_journal,
    read_migrations_record,
    reverted,
    settle,
)
from couchsync.read._ownership import read_record, write_ahead, write_record
from couchsync.read._planner import (
    discover,
    load_and_plan,
    load_and_read,
    plan_server,
    read_live_state,
)

__all__ = [
    "BATCH_BYTES",
    "BULK_ENVELOPE",
    "PREVIEW",
    "SCAN_PAGE_SIZE",
    "LimitsReader",
    "Matching",
    "MigrationOptions",
    "Prefetched",
    "StoredHints",
    "among",
    "bulk_body",
    "change",
    "changed_since",
    "current_revs",
    "discover",
    "encoded",
    "follow_up_body",
    "follow_ups",
    "id_key",
    "inline_names",
    "journal_id",
    "load_and_plan",
    "load_and_read",
    "next_run",
    "plan_server",
    "prefetch",
    "read_bodies",
    "read_hints",
    "read_indexes",
    "read_journal",
    "read_live_state",
    "read_migrations_record",
    "read_record",
    "record_hints",
    "reverted",
    "settle",
    "streamed",
    "write_ahead",
    "write_record",
]
