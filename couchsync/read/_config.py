"""``config:``'s read: every node's values of the declared sections and of the keys
couchsync recorded there (planned, with no I/O, by ``couchsync.plan``'s ``plan_config``)."""

from __future__ import annotations

from couchsync.client import Client, NotFound
from couchsync.manifest.model import DesiredState
from couchsync.plan import RECORD_KEY, RECORD_SECTION, LiveConfig, PlanError, config_entries


def read_config(client: Client, desired: DesiredState) -> LiveConfig | None:
    """Every node's values of the declared sections and of the recorded keys; None when
    the manifests declare no config (and do not prune it)."""
    if not desired.config and not desired.prune_config:
        return None
    server = client.server
    try:
        live = LiveConfig(nodes=sorted(server.membership()["cluster_nodes"]))
        records = {node: server.config_section(node, RECORD_SECTION) for node in live.nodes}
    except NotFound as exc:
        raise PlanError("config: this server has no per-node configuration API "
                        f"(/_membership, /_node/{{node}}/_config: {exc.brief}); the config "
                        "section needs Apache CouchDB") from None
    for node in live.nodes:
        record = records[node].get(RECORD_KEY)
        live.managed[node] = set(config_entries(record))
        sections = set(desired.config) | {entry.split("/", 1)[0]
                                          for entry in live.managed[node]}
        live.values[node] = {section: server.config_section(node, section)
                             for section in sorted(sections)}
    return live
