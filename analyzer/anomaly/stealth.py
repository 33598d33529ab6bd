"""Signals a careful attacker cannot avoid, as edge features (see docs/anomalies.md).

A careful attacker makes few connections, late, on ports that services really use, so the
shapes of `rules` (scans, sweeps) never appear. What it cannot avoid is *where* and *as whom*
it connects:

* **environment boundary**: the namespaces' environment (namespace labels ``env``,
  ``environment``, ``stage`` or ``tier``; else tokens of the namespace name such as ``-prod``)
  differs between source and destination, and the source never crossed into that environment
  before on any edge;
* **novelty**: the edge appeared long after both of its ends were present (a new behaviour of
  existing workloads, not a new workload), with a p-value: the chance that a routine edge with
  this many connections shows none of them in that gap;
* **no controller**: a bare pod (``kubectl run``) has no owning controller. Read from the flow's
  workload when the exporter gives it, else from the pod-name shape that controllers generate
  (``name-<hash>-<id>``, ``name-0``, ``name-<id>``, ``name-<time>-<id>``);
* **new external destination**: an address or DNS name outside the cluster that no other
  workload contacts and this one only starts to contact late;
* **API server**: access to the kube-apiserver;
* **unlike the other clients** of a server on its shared port: another namespace, another
  controller kind, no label in common.

Unknown is never evidence: a namespace whose environment cannot be read does not cross a
boundary, a pod whose name is missing is not bare, labels that are absent do not differ.
"""

from __future__ import annotations

import polars as pl

from analyzer import schema as c
from analyzer.anomaly.peers import with_unlike

__all__ = [
    "CONTROLLER_SHAPES",
    "ENV_LABEL_KEYS",
    "ENV_SYNONYMS",
    "EXTERNAL_ENTITIES",
    "STEALTH_MODEL_FEATURES",
    "controller_kind",
    "workload_from_pod",
    "namespace_environments",
    "stealth_features",
]

# Namespace label keys (the part after the last "/") that name an environment. `tier` is often
# used for other things (web/api), so for it only recognised environment values count.
ENV_LABEL_KEYS: tuple[str, ...] = ("env", "environment", "stage")
ENV_WEAK_KEYS: tuple[str, ...] = ("tier",)
ENV_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(("dev", "develop", "development", "devel", "sandbox"), "dev"),
    **dict.fromkeys(("test", "testing", "qa", "uat", "ci"), "test"),
    **dict.fromkeys(("stage", "staging", "stg", "preprod", "pre-prod", "preview"), "staging"),
    **dict.fromkeys(("prod", "production", "prd", "live"), "prod"),
}
EXTERNAL_ENTITIES: tuple[str, ...] = ("world", "public-network", "private-network", "unknown")

_HASH = "[bcdfghjklmnpqrstvwxz2456789]"  # the alphabet of Kubernetes' generated name suffixes
# Pod-name shapes that only a controller produces, most specific first.
CONTROLLER_SHAPES: tuple[tuple[str, str], ...] = (
    ("cronjob", rf"-\d{{8,}}-{_HASH}{{5}}$"),
    ("replicaset", rf"-{_HASH}{{6,10}}-{_HASH}{{5}}$"),
    ("replicaset", rf"-{_HASH}{{6,10}}-\*$"),  # Calico's aggregated name
    ("statefulset", r"-\d+$"),
    ("generated", rf"-{_HASH}{{5}}$"),  # DaemonSet, Job
    ("generated", r"-\*$"),
)
BARE = "none"
STEADY_SHARE = 0.5  # RuleThresholds.steady_active_share's default

STEALTH_MODEL_FEATURES: tuple[str, ...] = (
    "env_crossing",
    "first_env_crossing",
    "novelty",
    "novelty_surprise",
    "peer_lateness",
    "src_bare",
    "new_external",
    "to_apiserver",
    "unlike_score",
)


def workload_from_pod(pod: pl.Expr) -> pl.Expr:
    """The pod name without the suffix its controller generated (unchanged for bare pods)."""
    out = pod
    for _, pattern in reversed(CONTROLLER_SHAPES):  # the most specific shape wins
        out = pl.when(pod.str.contains(pattern)).then(pod.str.replace(pattern, "")).otherwise(out)
    return pl.when(out == "").then(pod).otherwise(out)


def controller_kind(side: str) -> pl.Expr:
    """Controller kind of each row's pod on `side`: a shape name, ``none`` (bare) or null.

    The exporter's workload name wins over the name shape when it is given; a pod without a
    name (or not a pod) is unknown (null), which is never read as bare.
    """
    pod = pl.col(f"{side}_pod")
    workload = pl.col(f"{side}_workload")
    has_workload = workload.is_not_null() & (workload != "") & (workload != pod)
    shape: pl.Expr = pl.lit(BARE)
    for kind, pattern in reversed(CONTROLLER_SHAPES):
        shape = pl.when(pod.str.contains(pattern)).then(pl.lit(kind)).otherwise(shape)
    return (
        pl.when(pl.col(f"{side}_entity") != "pod")
        .then(pl.lit(None, dtype=pl.String))
        .when(pod.is_null())
        .then(pl.when(has_workload).then(pl.lit("controller")))
        .when(shape != BARE)
        .then(shape)
        .when(has_workload)
        .then(pl.lit("controller"))
        .otherwise(pl.lit(BARE))
    )


def _optional(frame: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    return pl.col(name) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)


def namespace_environments(connections: pl.DataFrame) -> pl.DataFrame:
    """One row per namespace with its environment (``env``, null when it cannot be read)."""
    strings = pl.List(pl.String)
    sides = [
        connections.select(
            pl.col(f"{side}_namespace").alias("namespace"),
            _optional(connections, f"{side}_namespace_labels", strings).alias("labels"),
        )
        for side in ("src", "dst")
    ]
    namespaces = pl.concat(sides).filter(pl.col("namespace").is_not_null())
    if namespaces.height == 0:
        return pl.DataFrame(schema={"namespace": pl.String, "env": pl.String})
    labelled = (
        namespaces.explode("labels")
        .filter(pl.col("labels").is_not_null())
        .with_columns(
            pl.col("labels").str.split_exact("=", 1).struct.rename_fields(["key", "value"])
        )
        .unnest("labels")
        .with_columns(
            pl.col("key").str.split("/").list.last().str.to_lowercase().alias("key"),
            pl.col("value").str.to_lowercase().alias("raw"),
        )
        .with_columns(pl.col("raw").replace_strict(ENV_SYNONYMS, default=None).alias("known"))
        .with_columns(
            pl.when(pl.col("key").is_in(ENV_LABEL_KEYS))
            .then(pl.coalesce("known", "raw"))
            .when(pl.col("key").is_in(ENV_WEAK_KEYS))
            .then(pl.col("known"))
            .alias("env"),
            # env beats environment beats stage beats tier when a namespace has several.
            pl.col("key")
            .replace_strict(
                {k: i for i, k in enumerate((*ENV_LABEL_KEYS, *ENV_WEAK_KEYS))}, default=99
            )
            .alias("rank"),
        )
        .filter(pl.col("env").is_not_null() & (pl.col("env") != ""))
        .group_by("namespace")
        .agg(pl.col("env").sort_by("rank", "env").first().alias("label_env"))
    )
    named = (
        namespaces.select("namespace")
        .unique()
        .with_columns(
            pl.col("namespace")
            .str.to_lowercase()
            .str.replace_all(r"[_.]", "-")
            .str.split("-")
            .alias("tok")
        )
        .explode("tok")
        .with_columns(pl.col("tok").replace_strict(ENV_SYNONYMS, default=None).alias("tok_env"))
        .group_by("namespace")
        .agg(pl.col("tok_env").drop_nulls().unique().alias("envs"))
        # A name that mentions two environments ("dev-to-prod-sync") says nothing.
        .with_columns(
            pl.when(pl.col("envs").list.len() == 1)
            .then(pl.col("envs").list.first())
            .alias("name_env")
        )
        .select("namespace", "name_env")
    )
    return (
        named.join(labelled, on="namespace", how="left")
        .select("namespace", pl.coalesce("label_env", "name_env").alias("env"))
        .sort("namespace")
    )


def _group_facts(connections: pl.DataFrame) -> pl.DataFrame:
    """Per identity group: controller kind (most common among its pods), bare, labels."""
    strings = pl.List(pl.String)
    parts = []
    for side in ("src", "dst"):
        parts.append(
            connections.select(
                pl.col(f"{side}_group").fill_null(pl.col(f"{side}_key")).alias("group"),
                controller_kind(side).alias("kind"),
                _optional(connections, f"{side}_labels", strings).alias("labels"),
            )
        )
    rows = pl.concat(parts)
    return rows.group_by("group").agg(
        pl.col("kind").drop_nulls().mode().sort().first().alias("kind"),
        (
            (pl.col("kind").drop_nulls() == BARE).all() & (pl.col("kind").drop_nulls().len() > 0)
        ).alias("bare"),
        pl.col("labels").drop_nulls().first().alias("labels"),
    )


def _external_key(frame: pl.DataFrame) -> pl.Expr:
    """What an external destination is called: its first DNS name, else its address."""
    names = _optional(frame, "dst_names", pl.List(pl.String()))
    return pl.coalesce(
        names.list.sort().list.first(), _optional(frame, "dst_ip", pl.String()), pl.col(c.DST_KEY)
    )


def _edge_extras(connections: pl.DataFrame) -> pl.DataFrame:
    """Per edge: the external destination's name key and whether it carries a DNS name."""
    names = _optional(connections, "dst_names", pl.List(pl.String()))
    keyed = connections.with_columns(
        pl.col(c.SRC_GROUP).fill_null(pl.col(c.SRC_KEY)),
        pl.col(c.DST_GROUP).fill_null(pl.col(c.DST_KEY)),
        pl.col(c.DST_PORT).cast(pl.Int32, strict=False),
        _external_key(connections).alias("external_key"),
        (names.list.len().fill_null(0) > 0).alias("named"),
    )
    return keyed.group_by(list(c.EDGE_KEYS)).agg(
        pl.col("external_key").min(), pl.col("named").any()
    )


def stealth_features(
    connections: pl.DataFrame, edges: pl.DataFrame, steady_share: float = STEADY_SHARE
) -> pl.DataFrame:
    """Add the stealth signals to the edge frame of `features.compute_features`.

    Parameters
    ----------
    connections
        The connection frame the edges were built from (groups filled in, times in UTC).
    edges
        One row per edge with ``first_seen_at``, ``last_seen_at``, ``inactive_share``,
        ``denied_share`` and ``connections``.
    steady_share
        Share of the window an edge must span (answered) to be an established one.

    Returns
    -------
    pl.DataFrame
        `edges` with the columns of `STEALTH_MODEL_FEATURES` and the helpers the rules and
        explanations read (``src_env``, ``dst_env``, ``src_kind``, ``other_clients_on_port``,
        ``env_clients_on_port``, ``namespace_steady_clients_on_port``, ``steady``,
        ``unlike_namespace``, ``unlike_kind``, ``unlike_labels``,
        ``novelty_p``, ``named_external``, ``src_names_external``, ``used_since``).
    """
    keys = list(c.EDGE_KEYS)
    envs = namespace_environments(connections)
    facts = _group_facts(connections)
    edges = (
        edges.join(_edge_extras(connections), on=keys, how="left", nulls_equal=True)
        .join(
            envs.rename({"namespace": "src_namespace", "env": "src_env"}),
            on="src_namespace",
            how="left",
            nulls_equal=False,
        )
        .join(
            envs.rename({"namespace": "dst_namespace", "env": "dst_env"}),
            on="dst_namespace",
            how="left",
            nulls_equal=False,
        )
        .join(
            facts.rename({"group": c.SRC_GROUP, "kind": "src_kind", "bare": "bare_src"}).rename(
                {"labels": "src_labels"}
            ),
            on=c.SRC_GROUP,
            how="left",
        )
    )
    # When each identity first appeared anywhere in the window (as client or as server).
    presence = (
        pl.concat(
            [
                edges.select(pl.col(c.SRC_GROUP).alias("group"), "first_seen_at"),
                edges.select(pl.col(c.DST_GROUP).alias("group"), "first_seen_at"),
            ]
        )
        .group_by("group")
        .agg(pl.col("first_seen_at").min().alias("present_at"))
    )
    edges = edges.join(
        presence.rename({"group": c.SRC_GROUP, "present_at": "src_present_at"}),
        on=c.SRC_GROUP,
        how="left",
    ).join(
        presence.rename({"group": c.DST_GROUP, "present_at": "dst_present_at"}),
        on=c.DST_GROUP,
        how="left",
    )
    pod_pair = (pl.col("src_entity") == "pod") & (pl.col("dst_entity") == "pod")
    external = pl.col("dst_entity").is_in(list(EXTERNAL_ENTITIES)).fill_null(False) | pl.col(
        c.DST_GROUP
    ).str.starts_with("ip:")
    # A new server explains a new edge (monitoring scraping a new pod); an address outside the
    # cluster does not (its "presence" is this very edge).
    both_present = pl.max_horizontal(
        "src_present_at",
        pl.when(pl.col("dst_entity") == "pod")
        .then(pl.col("dst_present_at"))
        .otherwise(pl.col("src_present_at")),
    )
    crossing = (
        pod_pair
        & pl.col("src_env").is_not_null()
        & pl.col("dst_env").is_not_null()
        & (pl.col("src_env") != pl.col("dst_env"))
    ).fill_null(False)
    port = [c.DST_GROUP, c.PROTOCOL, c.DST_PORT]
    edges = edges.with_columns(
        (pl.col("first_seen_at") - both_present).clip(0.0, 1.0).alias("novelty"),
        (1.0 - both_present).clip(1e-9, 1.0).alias("pair_lifetime"),
        crossing.alias("_crossing"),
        external.fill_null(False).alias("_external"),
        pl.col("bare_src").fill_null(False).alias("_bare"),
        ((pl.col("inactive_share") <= 1.0 - steady_share) & (pl.col("denied_share") < 0.5)).alias(
            "steady"
        ),
        (pl.col("first_seen_at") - pl.col("first_seen_at").median().over(port))
        .clip(0.0, 1.0)
        .alias("peer_lateness"),
    )
    # p-value of novelty: n connections spread uniformly over the pair's lifetime all land
    # after the gap with probability (1 - gap / lifetime) ** n.
    edges = edges.with_columns(
        (1.0 - pl.col("novelty") / pl.col("pair_lifetime"))
        .clip(0.0, 1.0)
        .pow(pl.col("connections").cast(pl.Float64))
        .alias("novelty_p"),
    )
    crossing_col = pl.col("_crossing")
    env_first = pl.col("first_seen_at").filter(crossing_col).min().over([c.SRC_GROUP, "dst_env"])
    ext = pl.col("_external")
    unnamed = ext & ~pl.col("named").fill_null(False)
    # Another unnamed address on the same port that this source used earlier makes a pool
    # (upstream resolvers, a service behind rotating addresses), not a new destination.
    pool = unnamed & (
        pl.col("first_seen_at").filter(unnamed).min().over([c.SRC_GROUP, c.PROTOCOL, c.DST_PORT])
        < pl.col("first_seen_at") - 1e-9
    )
    edges = edges.with_columns(
        crossing_col.cast(pl.Float64).alias("env_crossing"),
        (crossing_col & (pl.col("first_seen_at") <= env_first + 0.05))
        .fill_null(False)
        .cast(pl.Float64)
        .alias("first_env_crossing"),
        (-pl.col("novelty_p").clip(1e-12, 1.0).log10()).alias("novelty_surprise"),
        pl.col("_bare").cast(pl.Float64).alias("src_bare"),
        (pl.col("dst_entity") == "kube-apiserver")
        .fill_null(False)
        .cast(pl.Float64)
        .alias("to_apiserver"),
        # An external name or address no other workload contacts, and that this source did not
        # contact before this edge (another address of a name it uses is not new).
        (
            ext
            & ~pool.fill_null(False)
            & (pl.col(c.SRC_GROUP).filter(ext).n_unique().over("external_key") == 1)
            & (
                pl.col("first_seen_at").filter(ext).min().over([c.SRC_GROUP, "external_key"])
                >= pl.col("first_seen_at") - 1e-9
            )
        )
        .fill_null(False)
        .cast(pl.Float64)
        .alias("new_external"),
        (ext & pl.col("named").fill_null(False)).alias("named_external"),
        # When this source first used the destination: for an external name, any address of it.
        pl.when(ext)
        .then(pl.col("first_seen_at").filter(ext).min().over([c.SRC_GROUP, "external_key"]))
        .otherwise(pl.col("first_seen_at"))
        .alias("used_since"),
        (ext & pl.col("named").fill_null(False))
        .sum()
        .over(c.SRC_GROUP)
        .alias("src_names_external"),
    )
    edges = with_unlike(edges, port)
    return edges.drop("_crossing", "_external", "_bare", "bare_src")
