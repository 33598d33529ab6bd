"""The careful attacker's signals and rules, and escalation that keeps steady traffic, on
hand-built connection frames (a 60-minute window, see anomaly_toy)."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from anomaly_toy import SCHEMA, conn

from analyzer.anomaly import detect_anomalies
from analyzer.anomaly.stealth import controller_kind, namespace_environments, workload_from_pod


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    labels = {f"{side}_namespace_labels": pl.List(pl.String) for side in ("src", "dst")}
    return pl.DataFrame(rows, schema={**SCHEMA, **labels})


ENVS = {"dev": ["env=dev"], "prod": ["env=production"], "shop": ["env=production"]}


def _env(row: dict[str, Any]) -> dict[str, Any]:
    for side in ("src", "dst"):
        ns = row[f"{side}_namespace"]
        row[f"{side}_namespace_labels"] = [f"kubernetes.io/metadata.name={ns}", *ENVS.get(ns, [])]
    return row


def _deploy(row: dict[str, Any], side: str = "src") -> dict[str, Any]:
    """Give the pod a Deployment-shaped name, as controllers generate them."""
    workload = row[f"{side}_workload"]
    if workload:
        pod = f"{workload}-7d9fbb5c4d-x2k9q"
        row[f"{side}_pod"] = pod
        row[f"{side}_key"] = f"{row[f'{side}_namespace']}/{pod}"
    return row


def _bare(row: dict[str, Any], name: str) -> dict[str, Any]:
    ns = row["src_namespace"]
    row.update(src_pod=name, src_workload=None, src_key=f"{ns}/{name}",
               src_labels=[f"run={name}"], src_group=f"pod:{ns}:run={name}")  # fmt: skip
    return row


def c(*args: Any, **kw: Any) -> dict[str, Any]:
    return _env(_deploy(_deploy(conn(*args, **kw)), "dst"))


def shop() -> list[dict[str, Any]]:
    """prod: web -> api -> db (steady); dev: app -> devdb; DNS; a monitor; an operator."""
    rows = []
    for app in ("shop/web", "shop/api", "shop/worker", "shop/db", "dev/app", "dev/devdb"):
        rows.append(c(app, "kube-system/coredns", 53, protocol="UDP"))
        rows.append(c("monitoring/prom", app, 9090, connections=60))
    rows += [
        c("ingress/nginx", "shop/web", 8080, connections=300),
        c("shop/web", "shop/api", 8080, connections=200),
        c("shop/api", "shop/db", 5432, connections=150),
        c("shop/worker", "shop/db", 5432, connections=90),
        c("dev/app", "dev/devdb", 5432, connections=80),
        c("ops/operator", "kube-apiserver", 6443, connections=40),
        c("monitoring/prom", "kube-apiserver", 6443, connections=40),
    ]
    return rows


def _rules(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], str | None]:
    edges = detect_anomalies(frame(rows)).edges
    return {
        (r["src_name"], r["dst_name"], r["dst_port"]): r["rule"]
        for r in edges.filter(pl.col("flagged")).iter_rows(named=True)
    }


def test_quiet_shop_flags_nothing() -> None:
    assert detect_anomalies(frame(shop())).flagged.height == 0


def test_environment_from_labels_then_names() -> None:
    rows = frame(shop() + [c("payments-prd/x", "web-stg/y", 80)])
    envs = dict(namespace_environments(rows).iter_rows())
    assert envs["shop"] == "prod" and envs["dev"] == "dev"  # env=production, env=dev
    assert envs["payments-prd"] == "prod" and envs["web-stg"] == "staging"  # names only
    assert envs["monitoring"] is None  # unknown: never a crossing


@pytest.mark.parametrize(
    ("pod", "workload", "kind"),
    [
        ("web-7d9fbb5c4d-x2k9q", None, "replicaset"),
        ("db-0", None, "statefulset"),
        ("agent-x2k9q", None, "generated"),
        ("report-29001440-q8x7z", None, "cronjob"),
        ("web-7d9fbb5c4d-*", None, "replicaset"),
        ("debug", None, "none"),
        ("tiefighter", "", "none"),
        ("debug", "debug", "none"),  # a workload name equal to the pod's is no controller
        ("odd-name", "web", "controller"),
        (None, None, None),  # unknown is never bare
    ],
)
def test_controller_kind_from_workload_and_name_shape(
    pod: str | None, workload: str | None, kind: str | None
) -> None:
    df = pl.DataFrame({"src_pod": [pod], "src_workload": [workload], "src_entity": ["pod"]},
                      schema={"src_pod": pl.String, "src_workload": pl.String,
                              "src_entity": pl.String})  # fmt: skip
    assert df.select(controller_kind("src")).item() == kind
    if pod:
        name = df.select(workload_from_pod(pl.col("src_pod"))).item()
        assert name == {"replicaset": "web", "statefulset": "db", "generated": "agent",
                        "cronjob": "report"}.get(kind or "", pod)  # fmt: skip


def test_bare_pod_crossing_into_production_is_caught() -> None:
    rows = shop() + [_bare(c("dev/app", "shop/api", 8080, connections=2, first=40, last=41),
                           "debug")]  # fmt: skip
    assert _rules(rows)[("dev/debug", "shop/api", 8080)] == "environment_crossing"


def test_stolen_token_new_api_access() -> None:
    rows = shop() + [c("shop/web", "kube-apiserver", 6443, connections=6, first=45, last=47)]
    assert _rules(rows) == {("shop/web", "kube-apiserver", 6443): "new_api_access"}


def test_api_access_from_the_start_is_routine() -> None:
    rows = shop() + [c("shop/web", "kube-apiserver", 6443, connections=6, first=1, last=59)]
    assert _rules(rows) == {}


def test_exfiltration_to_a_new_address() -> None:
    exfil = c("shop/worker", "world", 443, connections=5, first=50, last=52)
    exfil.update(dst_key="185.1.2.3", dst_ip="185.1.2.3", dst_group="ip:185.1.2.3")
    assert _rules(shop() + [exfil]) == {("shop/worker", "185.1.2.3", 443): "new_external"}


def test_bare_pod_on_the_shared_database_port() -> None:
    rows = shop() + [_bare(c("shop/web", "shop/db", 5432, connections=1, first=30, last=30),
                           "psql")]  # fmt: skip
    assert _rules(rows) == {("shop/psql", "shop/db", 5432): "unlike_client"}


def test_harmful_escalation_keeps_established_edges() -> None:
    """dev/app makes one connection to the production database: that edge is flagged, its
    steady edges (its own database, DNS) stay allowed and the workload is named."""
    rows = shop() + [c("dev/app", "shop/db", 5432, connections=1, first=50, last=50)]
    result = detect_anomalies(frame(rows))
    flagged = result.edges.filter(pl.col("flagged"))
    assert flagged.select("src_name", "dst_name").rows() == [("dev/app", "shop/db")]
    assert set(result.edges.filter(pl.col("kept"))["dst_name"]) == {
        "dev/devdb", "kube-system/coredns"
    }  # fmt: skip
    (suspect,) = result.summary.suspects
    assert suspect.name == "dev/app" and suspect.kept_edges == 2
    assert "looks compromised" in suspect.message()
    assert "2 established edges stay allowed" in suspect.message()


def test_escalation_holds_the_new_edges_of_a_caught_source() -> None:
    rows = shop() + [
        c("dev/app", "shop/db", 5432, connections=1, first=50, last=50),
        c("dev/app", "shop/api", 8080, connections=2, first=51, last=52),  # new since then
    ]
    result = detect_anomalies(frame(rows))
    rules = {r["dst_name"]: r["rule"] for r in result.edges.filter(pl.col("flagged"))
             .iter_rows(named=True)}  # fmt: skip
    assert rules["shop/api"] in ("compromised_source", "environment_crossing")
    assert result.summary.suspects[0].kept_edges == 2


def test_legitimate_newcomers_stay_allowed() -> None:
    """A Deployment rolled out late calling a shared port like its peers (scraped from its
    start), and a CronJob's pod on its database."""
    rows = shop()
    rows.append(c("shop/cart", "shop/api", 8080, connections=40, first=40, last=60))
    rows.append(c("shop/cart", "kube-system/coredns", 53, protocol="UDP", first=40, last=60))
    rows.append(c("monitoring/prom", "shop/cart", 9090, connections=20, first=41, last=60))
    job = c("shop/report", "shop/db", 5432, connections=3, first=45, last=45.5)
    job.update(src_pod="report-29001440-q8x7z", src_key="shop/report-29001440-q8x7z",
               src_workload="report-29001440")  # fmt: skip
    rows.append(job)
    assert _rules(rows) == {}
