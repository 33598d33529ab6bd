"""``analyzer diff`` end to end on a generated cluster: the existing policies the generator
writes against the bundle ``analyzer recommend --out`` writes, read from an ingested store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app

runner = CliRunner()
DEBUG = "pod:develop:app=debug"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diff")
    gen, store, bundle = root / "gen", root / "store", root / "bundle"
    for args in (
        ["generate", "--out", str(gen), "--flows", "12000", "--seed", "5"],
        ["ingest", "--store", str(store), str(gen / "flows.jsonl")],
        ["recommend", "--store", str(store), "--out", str(bundle)],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    return {
        "store": store,
        "bundle": bundle,
        "existing": gen / "existing-policies.yaml",
        "inventory": gen / "inventory.json",
    }


def _diff(c: dict[str, Path], *args: str, old: str = "existing", new: str = "bundle") -> Any:
    return runner.invoke(
        app,
        [
            "diff",
            str(c[old]),
            str(c[new]),
            "--store",
            str(c["store"]),
            "--inventory",
            str(c["inventory"]),
            *args,
        ],
    )


def _doc(c: dict[str, Path], *args: str) -> dict[str, Any]:
    res = _diff(c, "-o", "json", *args)
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.stdout))


def test_json_is_byte_identical_and_its_counts_add_up(cluster: dict[str, Path]) -> None:
    first, second = _diff(cluster, "-o", "json"), _diff(cluster, "-o", "json")
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    counts, unchanged = doc["counts"], doc["unchanged"]
    assert set(doc) >= {"newly_denied", "newly_allowed", "unchanged", "counts", "universe"}
    total = counts["probes_newly_denied"] + counts["probes_newly_allowed"]
    assert (
        total + unchanged["probes_allowed"] + unchanged["probes_denied"]
        == doc["universe"]["probes"]
    )
    assert sum(c["probes"] for c in doc["newly_denied"]) == counts["probes_newly_denied"]
    assert sum(c["probes"] for c in doc["newly_allowed"]) == counts["probes_newly_allowed"]
    observed = [c["observed"] for c in doc["newly_denied"] if c["observed"]]
    assert sum(o["edges"] for o in observed) == counts["observed_newly_denied_edges"]
    assert sum(o["connections"] for o in observed) == counts["observed_newly_denied_connections"]
    for change in doc["newly_denied"]:
        assert change["old"]["allowed"] and not change["new"]["allowed"]
        assert change["new"]["denied_by"]
    for pair in doc["namespace_pairs"]:
        assert set(pair["counts"]) == set(counts)


def _simulate(c: dict[str, Path], policies: str) -> pl.DataFrame:
    res = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(c[policies]),
            "--store",
            str(c["store"]),
            "--inventory",
            str(c["inventory"]),
            "-o",
            "jsonl",
        ],
    )
    assert res.exit_code == 0, res.output
    return pl.DataFrame([json.loads(line) for line in res.stdout.splitlines() if line])


def test_observed_changes_equal_two_simulate_runs(cluster: dict[str, Path]) -> None:
    """The baseline a person would script: simulate OLD, simulate NEW, join per connection."""
    keys = ["src", "dst", "port", "protocol"]
    old = _simulate(cluster, "existing").select(
        *keys, "allowed", "connections", "src_group", "dst_group", "observed"
    )
    new = _simulate(cluster, "bundle").select(*keys, pl.col("allowed").alias("after"))
    joined = old.join(new, on=keys, how="inner", nulls_equal=True)
    assert joined.height == old.height == new.height
    denied = joined.filter(pl.col("allowed") & ~pl.col("after"))
    allowed = joined.filter(~pl.col("allowed") & pl.col("after"))
    same = joined.filter(pl.col("allowed") == pl.col("after"))
    counts = _doc(cluster)["counts"]
    assert counts["observed_newly_denied_edges"] == denied.height > 0
    assert counts["observed_newly_denied_connections"] == denied["connections"].sum()
    assert counts["observed_newly_allowed_edges"] == allowed.height
    assert counts["observed_newly_allowed_connections"] == allowed["connections"].sum()
    assert counts["observed_unchanged_edges"] == same.height
    working = denied.filter(pl.col("observed").list.contains("allowed")).height
    assert counts["observed_newly_denied_working"] == working
    # Per identity pair too (external addresses are grouped as "addresses" by the diff).
    doc = _doc(cluster)

    def pair(src: str, dst: str) -> tuple[str, str]:
        return tuple(g if not g.startswith("ip:") else "addresses" for g in (src, dst))  # type: ignore[return-value]

    expected = Counter(pair(s, d) for s, d in denied.select("src_group", "dst_group").iter_rows())
    got: Counter[tuple[str, str]] = Counter()
    for c in doc["newly_denied"]:
        if c["observed"]:
            got[(c["src"], c["dst"])] += c["observed"]["edges"]
    assert got == expected


def test_recommended_bundle_breaks_only_the_compromised_pod(cluster: dict[str, Path]) -> None:
    """Ground truth of the generator: every legitimate path stays allowed; what the bundle
    newly denies among observed, working traffic all comes from develop/debug."""
    doc = _doc(cluster)
    breaking = [c for c in doc["newly_denied"] if c["observed"] and c["observed"]["working_edges"]]
    assert breaking and {c["src"] for c in breaking} == {DEBUG}
    for change in breaking:
        assert change["old"]["allowed"] and change["old"]["reason"]
        assert change["new"]["denied_by"] and change["new"]["reason"]
        isolating = change["new"]["egress_isolated_by"] + change["new"]["ingress_isolated_by"]
        assert any(p.endswith("/default-deny") for p in isolating)


def test_fail_on_gates_ci(cluster: dict[str, Path]) -> None:
    res = _diff(cluster, "--fail-on", "newly-denied-observed")
    assert res.exit_code == 3, res.output
    assert "would be denied by NEW" in res.stdout
    same = _diff(cluster, "--fail-on", "any-change", new="existing")
    assert same.exit_code == 0, same.output
    assert "no connection changes verdict" in same.stdout
    # The bundle fixes traffic the existing policies deny: newly allowed, never newly denied.
    back = _diff(cluster, "--fail-on", "newly-denied-observed", old="bundle", new="bundle")
    assert back.exit_code == 0


def test_namespace_filter_keeps_only_its_connections(cluster: dict[str, Path]) -> None:
    full, prod = _doc(cluster), _doc(cluster, "--namespace", "production")
    assert prod["namespaces"] == ["production"]
    assert 0 < prod["universe"]["probes"] < full["universe"]["probes"]
    for change in prod["newly_denied"] + prod["newly_allowed"]:
        assert "production" in (change["src_namespace"], change["dst_namespace"])
    for pair in prod["namespace_pairs"]:
        assert "production" in (pair["src_namespace"], pair["dst_namespace"])


def test_no_probes_compares_observed_connections_only(cluster: dict[str, Path]) -> None:
    full, observed = _doc(cluster), _doc(cluster, "--no-probes")
    assert observed["universe"]["enumerated"] is False and observed["universe"]["probes"] == 0
    for key, value in observed["counts"].items():
        assert value == (full["counts"][key] if key.startswith("observed_") else 0), key
    assert all(c["observed"] for c in observed["newly_denied"] + observed["newly_allowed"])


def test_table_for_people(cluster: dict[str, Path]) -> None:
    res = _diff(cluster, "--limit", "1")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.startswith("OLD: ") and "NEW: " in out
    observed, _, probes_only = out.partition("CHANGES ONLY PROBES SHOW: ")
    assert "CHANGES WITH OBSERVED TRAFFIC\n" in observed and "\n== develop -> develop\n" in observed
    assert "NEWLY DENIED  develop:{app=debug} -> " in observed
    assert "new       denied: " in observed and "isolated for" in observed
    # Probe-only changes: one namespace pair and one change of each kind listed at --limit 1.
    assert "more namespace pairs" in probes_only
    assert "more newly denied changes (--limit 0 or -o json lists them all)" in probes_only
    assert probes_only.count("\nNEWLY DENIED  ") == 1
    assert len(_diff(cluster, "--limit", "0").stdout) > len(out)


def test_bad_input_gets_one_line(cluster: dict[str, Path], tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "diff",
            str(tmp_path / "nope.yaml"),
            str(cluster["bundle"]),
            "--store",
            str(cluster["store"]),
        ],
    )
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "nope.yaml" in res.output
    res = _diff(cluster, "--namespace", "a/b")
    assert res.exit_code == 2 and "invalid namespace" in res.output
    res = runner.invoke(
        app,
        [
            "diff",
            str(cluster["existing"]),
            str(cluster["bundle"]),
            "--store",
            str(tmp_path / "none"),
        ],
    )
    assert res.exit_code == 1 and "no flow store" in res.output
    # Without a store an inventory still gives the identities (warning on stderr).
    res = runner.invoke(
        app,
        [
            "diff",
            str(cluster["existing"]),
            str(cluster["bundle"]),
            "--store",
            str(tmp_path / "none"),
            "--inventory",
            str(cluster["inventory"]),
            "-o",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["universe"]["pod_identities"] > 0


def test_observed_verdicts_equal_their_probe_classes(cluster: dict[str, Path]) -> None:
    """Every observed connection the universe places (endpoints and port class) gets the same
    verdict from the probe tables as from evaluate_connections, under both sets."""
    from analyzer.connections import derive_connections
    from analyzer.diff.observed import judge_observed
    from analyzer.diff.semantic import _tables
    from analyzer.diff.universe import build_universe
    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.load import load_policies
    from analyzer.policy.simulate import distinct_connections
    from analyzer.store import FlowStore

    inventory = load_inventory(cluster["inventory"])
    sets = [compile_policies(load_policies([cluster[k]]).policies) for k in ("existing", "bundle")]
    edges = distinct_connections(derive_connections(FlowStore.open(cluster["store"]).scan()).frame)
    universe = build_universe(edges, inventory, sets)
    judged = judge_observed(edges, sets[0], sets[1], inventory, universe, None)
    placed = judged.filter(
        pl.col("i").is_not_null() & pl.col("j").is_not_null() & pl.col("c").is_not_null()
    )
    assert placed.height >= judged.height * 0.95
    i, j, c = (placed[k].to_numpy() for k in ("i", "j", "c"))
    for prefix, compiled in zip(("old_", "new_"), sets, strict=True):
        tables = _tables(compiled, universe)
        ok = tables.verdicts.allowed()
        eg = np.array(
            [
                tables.egress[a].verdicts[tables.egress[a].others[b], k]
                for a, b, k in zip(i, j, c, strict=True)
            ]
        )
        ing = np.array(
            [
                tables.ingress[b].verdicts[tables.ingress[b].others[a], k]
                for a, b, k in zip(i, j, c, strict=True)
            ]
        )
        assert (ok[eg] & ok[ing]).tolist() == placed[f"{prefix}allowed"].to_list()
