"""``analyzer demo``: the whole pipeline on a generated cluster, ending in the HTML report.

The demo cluster is the seed chapter's world (frontends, backends, a production database, DNS,
a traefik gateway) with a compromised ``debug`` pod in ``develop`` that scans and moves
laterally, plus a set of *existing* policies with planted problems. Everything is written under
one directory (default ``./reports`` relative to the current directory), so the demo depends on
nothing but the installed package:

    reports/
      report.html          the security review
      bundle/              recommended policies, kustomization, ROLLOUT.md, rollback.sh
      demo/cluster/        the generated capture: flows, inventory, existing policies, truth
      demo/store/          the flow store the capture was ingested into
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import ConfigError

__all__ = ["DEMO_FLOWS", "DemoResult", "run_demo"]

DEMO_FLOWS = 60_000
DEMO_LOST_EVENTS = 3


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Where the demo wrote its outputs, and a few counts to print."""

    out_dir: Path
    report: Path
    bundle: Path
    store: Path
    cluster: Path
    policies: Path
    flows: int
    recommended: int
    findings: int

    def paths(self) -> list[tuple[str, Path]]:
        """(label, path) pairs in the order a person wants them."""
        return [
            ("report", self.report),
            ("bundle", self.bundle),
            ("existing", self.policies),
            ("store", self.store),
            ("cluster", self.cluster),
        ]


def _fresh_store(store_dir: Path) -> None:
    """Start from an empty store, but never delete a directory we did not create."""
    if not store_dir.exists():
        return
    from analyzer.errors import StoreError
    from analyzer.store import FlowStore

    try:
        FlowStore.open(store_dir)
    except StoreError as exc:
        if any(store_dir.iterdir()):
            raise ConfigError(
                f"{store_dir} exists and is not a flow store; choose another --out"
            ) from exc
    shutil.rmtree(store_dir)


def run_demo(out_dir: Path | None = None, *, seed: int = 7, flows: int = DEMO_FLOWS) -> DemoResult:
    """Generate, ingest, recommend, audit and report on the demo cluster.

    Parameters
    ----------
    out_dir
        Directory for every output (created); default ``./reports``.
    seed
        Seed of the generated cluster; the same seed gives the same cluster and flows.
    flows
        Flow records to generate.

    Raises
    ------
    ConfigError
        ``out_dir`` cannot be written.
    """
    from analyzer.analysis import Analysis, load_inventory_file, load_policy_files, open_store
    from analyzer.generate import ScenarioConfig, build_scenario, generate
    from analyzer.recommend.bundle import write_bundle
    from analyzer.report import write_html
    from analyzer.report.build import build_report
    from analyzer.report.render import render_report
    from analyzer.store import ingest

    root = (Path(out_dir) if out_dir is not None else Path.cwd() / "reports").resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root}: exists and is not a directory")
    cluster = root / "demo" / "cluster"
    store_dir = root / "demo" / "store"
    bundle = root / "bundle"
    report = root / "report.html"
    try:
        cluster.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot create it: {exc.strerror or exc}") from exc

    _fresh_store(store_dir)  # before the slow steps: refuse a foreign directory at once
    scenario = build_scenario(ScenarioConfig(seed=seed, lost_events=DEMO_LOST_EVENTS))
    generated = generate(scenario, cluster, fmt="hubble", flows=flows)
    flow_file = generated.files[0]
    policies = cluster / "existing-policies.yaml"
    inventory = cluster / "inventory.json"

    ingest(store_dir, [str(flow_file)], progress=False)
    analysis = Analysis(
        open_store(store_dir),
        policies=load_policy_files([policies]),
        inventory=load_inventory_file(inventory),
    )
    rec = analysis.recommendation()
    write_bundle(rec, bundle)
    model = build_report(
        analysis,
        bundle_dir=bundle,
        recommendation=rec,
        title=f"Network policy review: demo cluster (seed {seed})",
        policies_source=str(policies),
        report_dir=root,
    )
    write_html(render_report(model), report)
    return DemoResult(
        out_dir=root,
        report=report,
        bundle=bundle,
        store=store_dir,
        cluster=cluster,
        policies=policies,
        flows=model.summary.flows,
        recommended=len(rec.manifests),
        findings=len(model.findings),
    )
