"""The CouchDB client core: a typed, pycouchdb-compatible client over a pluggable engine."""

from . import _httpx  # noqa: F401  (first: see its docstring)
from ._client import Client
from ._database import BulkResults, Database, FileChunks
from ._document import Document
from ._errors import (
    BadRequest,
    ClientClosedError,
    Conflict,
    CouchError,
    DatabaseError,
    DocumentError,
    Forbidden,
    HTTPStatusError,
    InvalidDatabaseName,
    InvalidURL,
    NotFound,
    PreconditionFailed,
    ServerError,
    TransportError,
    Unauthorized,
)
from ._query import FindQuery, IndexQuery
from ._server import Server
from ._transport import ConnectionEngine, HttpxConnection, encode_json

__all__ = [
    "BadRequest", "BulkResults", "Client", "ClientClosedError", "Conflict", "ConnectionEngine",
    "CouchError", "Database", "DatabaseError", "Document", "DocumentError", "FileChunks",
    "FindQuery",
    "Forbidden", "HTTPStatusError", "HttpxConnection", "IndexQuery", "InvalidDatabaseName",
    "InvalidURL", "NotFound", "PreconditionFailed", "Server", "ServerError", "TransportError",
    "Unauthorized", "encode_json",
]
