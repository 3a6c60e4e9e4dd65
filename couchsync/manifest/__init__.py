"""Manifests → validated, merged ``DesiredState`` (``load_manifests``; docs/manifest.md)."""

from couchsync.manifest._attachments import content_type_of
from couchsync.manifest._env import is_secret_variable, variables
from couchsync.manifest._load import iter_problems, load_manifests
from couchsync.manifest._migrations import load_transform
from couchsync.manifest._naming import DatabaseNames
from couchsync.manifest._patterns import expand_patterns, is_pattern, literal_prefix, matches
from couchsync.manifest._problems import ManifestError, Problem, show_warnings_on_stderr
from couchsync.manifest._schema import schema_text
from couchsync.manifest._shard import Shard
from couchsync.manifest._yaml import looks_like_a_number
from couchsync.manifest.model import (
    AttachmentSpec,
    DatabaseSpec,
    DesignDocSpec,
    DesiredState,
    DocumentSpec,
    IndexSpec,
    MigrationSpec,
    SourcePos,
    referenced_files,
    summarize,
)

__all__ = [
    "AttachmentSpec", "DatabaseNames", "DatabaseSpec", "DesignDocSpec", "DesiredState",
    "DocumentSpec", "IndexSpec", "ManifestError", "MigrationSpec", "Problem", "Shard", "SourcePos",
    "content_type_of", "expand_patterns", "is_pattern", "is_secret_variable", "iter_problems",
    "literal_prefix", "load_manifests", "load_transform", "looks_like_a_number", "matches",
    "referenced_files", "schema_text", "show_warnings_on_stderr", "summarize", "variables",
]
