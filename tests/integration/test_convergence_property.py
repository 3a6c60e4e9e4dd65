"""Any valid manifest converges: one apply, then an empty plan (hypothesis, real server).

Generated documents mix the JSON values people seed with — unicode text and
ids, nested objects and lists, integers up to and past 2**53, floats, -0.0 —
and generated indexes and security objects; a second apply of a changed
manifest must converge too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import plan, sync

from couchsync._canonical import canonical_json
from couchsync.client import Client
from couchsync.manifest import DesiredState

# "$" is left out: "${" in a manifest string is variable expansion, tested elsewhere.
CHARS = st.characters(codec="utf-8", exclude_characters="\x00$")
KEYS = st.text(CHARS, min_size=1,
               max_size=6).filter(lambda k: not k.startswith("_"))
SCALARS = (st.none() | st.booleans() | st.integers(-(2**64), 2**64)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(CHARS, max_size=8)
           | st.sampled_from([2**60 + 1, -(2**63), 1152921504606847000, -0.0, 1e300]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)
IDS = st.text(CHARS, min_size=1,
              max_size=8).filter(lambda i: not i.startswith("_"))
DOCUMENTS = st.dictionaries(IDS, st.dictionaries(KEYS, VALUES, max_size=4), max_size=6)
SECURITY = st.fixed_dictionaries({
    "admins": st.fixed_dictionaries({"names": st.lists(st.sampled_from(["ann", "bob"]),
                                                       unique=True),
                                     "roles": st.just(["_admin"])}),
    "members": st.fixed_dictionaries({"names": st.just([]),
                                      "roles": st.lists(st.sampled_from(["staff", "ops"]),
                                                        unique=True)}),
})
INDEXES = st.dictionaries(
    st.sampled_from(["by-a", "by-b"]),
    st.fixed_dictionaries({"fields": st.sampled_from([["a"], [{"b": "desc"}], ["a", "b"]])}),
    max_size=2,
)


def database(docs: dict[str, dict[str, Any]], security: Any, indexes: Any) -> dict[str, Any]:
    return {"security": security, "indexes": indexes, "prune": True,
            "documents": [{"_id": doc_id, **body} for doc_id, body in docs.items()]}


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=DOCUMENTS, second=DOCUMENTS, security=SECURITY, indexes=INDEXES)
def test_any_valid_manifest_converges_in_one_apply(
    client: Client, db_name_factory: Callable[[], str],
    manifest: Callable[[dict[str, Any]], DesiredState],
    first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]],
    security: Any, indexes: Any,
) -> None:
    name = db_name_factory()
    for docs in (first, second):  # a fresh database, then a changed manifest (prune on)
        desired = manifest({name: database(docs, security, indexes)})
        _, result = sync(client, desired)
        assert result.ok, result.failures
        again = plan(client, desired)
        assert again.is_empty, [(s.address, s.reason, s.before, s.after) for s in again.steps]
        # The server holds what the manifest says, read back (not only proven by revisions):
        spec = desired.databases[name]
        rows = client.database(name).all_docs(keys=list(spec.documents), include_docs=True)
        assert {row["id"]: canonical_json(row["doc"]) for row in rows} == {
            doc.id: doc.canonical for doc in spec.documents.values()}
