"""Column names this package reads from `Connections.frame` and adds to its own frames.

The input names follow the connection contract in docs/architecture.md; they are repeated here
so that the detector does not depend on the module that derives connections, only on its frame.
"""

from __future__ import annotations

__all__ = [
    "REQUIRED_COLUMNS",
    "EDGE_KEYS",
]

# --- connection frame (input contract) ---------------------------------------------------------
SRC_KEY = "src_key"
DST_KEY = "dst_key"
SRC_NAMESPACE = "src_namespace"
DST_NAMESPACE = "dst_namespace"
SRC_POD = "src_pod"
DST_POD = "dst_pod"
SRC_WORKLOAD = "src_workload"
DST_WORKLOAD = "dst_workload"
SRC_ENTITY = "src_entity"
DST_ENTITY = "dst_entity"
SRC_GROUP = "src_group"
DST_GROUP = "dst_group"
PROTOCOL = "protocol"
DST_PORT = "dst_port"
OUTCOME = "outcome"
CONNECTIONS = "connections"
EVENTS = "events"
FIRST_SEEN = "first_seen"
LAST_SEEN = "last_seen"

OUTCOME_DENIED = "denied"

REQUIRED_COLUMNS: tuple[str, ...] = (
    SRC_KEY,
    DST_KEY,
    SRC_NAMESPACE,
    DST_NAMESPACE,
    SRC_ENTITY,
    DST_ENTITY,
    SRC_GROUP,
    DST_GROUP,
    PROTOCOL,
    DST_PORT,
    OUTCOME,
    CONNECTIONS,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
)

# --- output columns added to flagged connection rows ---------------------------------------------
SCORE = "score"
REASONS = "reasons"
RULE = "rule"

# An edge is what a policy rule would allow: source identity -> destination identity on a port.
EDGE_KEYS: tuple[str, ...] = (SRC_GROUP, DST_GROUP, PROTOCOL, DST_PORT)
