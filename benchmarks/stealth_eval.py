"""Precision and recall per attack class on both scenario families, with the baseline.

* **generator family** (calibration path): `analyzer.generate` captures with careful attacks and
  legitimate newcomers planted by `stealth_inject.py`;
* **held-out family** (`heldout/`): written separately, never used to choose a threshold.

Edge level, as in `bench_anomaly.py`: an edge is an attack edge of class C when one of its
connections belongs to a planted path of class C. The baseline is a plain
``IsolationForest(contamination="auto")`` over the same edge features. On the held-out family
the policies that `recommend` writes are also replayed through the policy engine: how many of
the five stealthy paths they deny, and whether every legitimate newcomer and established path
stays allowed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import polars as pl
from sklearn.ensemble import IsolationForest

from analyzer.anomaly import MODEL_FEATURES, detect_anomalies
from analyzer.anomaly.evaluate import attack_rows
from analyzer.anomaly.rules import RuleThresholds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout import ATTACK_CLASSES, VARIANTS, build  # noqa: E402

KEYS = ["src_group", "dst_group", "protocol", "dst_port"]
LEGIT_NEW = ("newcomer", "scrape_newcomer", "cronjob_db")


def _naive(edges: pl.DataFrame, seed: int) -> pl.Series:
    x = edges.select(pl.col(list(MODEL_FEATURES)).cast(pl.Float64).fill_null(0.0).fill_nan(0.0))
    forest = IsolationForest(contamination="auto", random_state=seed).fit(x.to_numpy())
    return pl.Series("naive", forest.predict(x.to_numpy()) == -1)


class Tally:
    """Flagged/total edges per class, for the detector and the baseline."""

    def __init__(self) -> None:
        self.hit: Counter[str] = Counter()
        self.base: Counter[str] = Counter()
        self.total: Counter[str] = Counter()

    def add(self, edges: pl.DataFrame, labels: pl.DataFrame, seed: int) -> None:
        edges = edges.with_columns(_naive(edges, seed)).join(
            labels, on=KEYS, how="left", nulls_equal=True
        )
        for row in (
            edges.group_by(pl.col("class").fill_null("legit"))
            .agg(pl.col("flagged").sum(), pl.col("naive").sum(), pl.len())
            .iter_rows(named=True)
        ):
            self.hit[row["class"]] += int(row["flagged"])
            self.base[row["class"]] += int(row["naive"])
            self.total[row["class"]] += int(row["len"])

    def report(self, attacks: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"by_class": {}}
        for name, counts in (("detector", self.hit), ("baseline", self.base)):
            tp = sum(counts[k] for k in attacks)
            n = sum(self.total[k] for k in attacks)
            fp = sum(counts[k] for k in self.total if k not in attacks)
            out[name] = {
                "attack_edges": n, "true_positives": tp, "false_positives": fp,
                "legit_edges": sum(self.total[k] for k in self.total if k not in attacks),
                "newcomer_edges_flagged": sum(counts[k] for k in LEGIT_NEW),
                "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
                "recall": round(tp / n, 4) if n else 1.0,
            }  # fmt: skip
        for k in (*attacks, *LEGIT_NEW):
            out["by_class"][k] = {"edges": self.total[k], "detector": self.hit[k],
                                  "baseline": self.base[k]}  # fmt: skip
        return out


def generator_family(seeds: tuple[int, ...]) -> dict[str, Any]:
    import calibrate_anomaly
    from calibrate_anomaly import population

    calibrate_anomaly.SEEDS = seeds
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        runs = population(Path(tmp), quick=False)
    for run in runs:
        result = detect_anomalies(run["frame"], random_state=run["seed"])
        tally.add(result.edges, run["labels"], run["seed"])
    from stealth_inject import CLASSES

    return {"runs": len(runs), "seeds": list(seeds), **tally.report((*CLASSES, "loud"))}


def _labels(conns: pl.DataFrame, paths: list[dict[str, Any]]) -> pl.DataFrame:
    parts = [
        conns.filter(attack_rows(conns, [p])).select(KEYS).unique()
        .with_columns(pl.lit(p["class"]).alias("class"))
        for p in paths
    ]  # fmt: skip
    return pl.concat(parts).unique(subset=KEYS, keep="first")


def heldout_family(
    seeds: tuple[int, ...],
    replay: bool = True,
    variant: str | None = None,
    thresholds: RuleThresholds | None = None,
) -> dict[str, Any]:
    from analyzer.connections import derive_connections
    from analyzer.recommend import recommend

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/unit/anomaly"))
    from test_anomaly_heldout import _replay  # the test's engine replay, one truth

    tally = Tally()
    denied_counts: Counter[int] = Counter()
    denied_by_class: Counter[str] = Counter()
    broken: list[str] = []
    seconds = []
    for seed in seeds:
        held = build(seed, variant=variant)
        conns = derive_connections(held.flows).frame
        t0 = time.perf_counter()
        result = detect_anomalies(conns, random_state=seed, thresholds=thresholds)
        seconds.append(time.perf_counter() - t0)
        tally.add(result.edges, _labels(conns, held.attack_paths + held.newcomer_paths), seed)
        if not replay:
            continue
        # recommend runs the detector itself; only other thresholds need their result passed.
        rec = recommend(held.flows, anomalies=result) if thresholds else recommend(held.flows)
        paths = held.attack_paths + held.newcomer_paths + held.established_paths
        allowed = _replay(list(rec.manifests), paths)
        stealthy = [p for p in held.attack_paths if not p.get("support")]
        denied = [p["class"] for p in stealthy if not allowed[p["id"]]]
        denied_counts[len(denied)] += 1
        denied_by_class.update(denied)
        broken += [f"{held.name}: {p['id']}" for p in held.newcomer_paths + held.established_paths
                   if not allowed[p["id"]]]  # fmt: skip
        print(f"held-out {held.name}: {len(denied)}/5 stealthy paths denied", file=sys.stderr)
    out = {"scenarios": len(seeds), "seeds": [seeds[0], seeds[-1]], "variant": variant,
           "thresholds": asdict(thresholds or RuleThresholds()),
           **tally.report(ATTACK_CLASSES),
           "median_detect_seconds": round(sorted(seconds)[len(seconds) // 2], 3)}  # fmt: skip
    if replay:
        out["policy_replay"] = {
            "stealthy_paths_denied_per_scenario": {
                str(k): v for k, v in sorted(denied_counts.items())
            },
            "denied_by_class": {k: f"{denied_by_class[k]}/{len(seeds)}" for k in ATTACK_CLASSES},
            "legitimate_paths_broken": broken,
        }  # fmt: skip
    return out


CLASS_NAMES = {
    "bare_cross_env": "bare pod crosses into production (with its DNS lookup)",
    "exfil": "exfiltration to a new address",
    "api_token": "stolen token: new API-server access",
    "bare_db": "bare pod on the shared database port",
    "escalation_probe": "harmful escalation: one cross-environment database connection",
    "loud": "loud attacker (scan, sweep, lateral)",
}
# Sections of anomaly-stealth.json in table order, with their column titles.
SECTIONS = (
    ("generator_family", "generator family"),
    ("heldout_family", "held-out"),
    ("fresh_heldout", "held-out, fresh seeds"),
    ("sparse_replicas", "sparse replicated clients"),
)


def _n(v: int) -> str:
    return f"{v:,}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The per-class table and policy-replay lines of docs/anomalies.md, from the results."""
    cols = [(key, title, doc[key]) for key, title in SECTIONS if key in doc]
    head = ["class"]
    for _key, title, sec in cols:
        lo, hi = sec["seeds"][0], sec["seeds"][-1]
        size = f"{sec['runs']} captures" if "runs" in sec else f"{sec['scenarios']} scenarios"
        head.append(f"{title} ({size}, seeds {lo}-{hi})")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for cls, name in CLASS_NAMES.items():
        cells = []
        for _, _, sec in cols:
            row = sec["by_class"].get(cls)
            cells.append(
                f"{_n(row['detector'])}/{_n(row['edges'])} / {_n(row['baseline'])}/"
                f"{_n(row['edges'])}" if row else "—"
            )  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    newcomer = []
    for _, _, sec in cols:
        edges = sum(sec["by_class"][k]["edges"] for k in LEGIT_NEW)
        det, base = sec["detector"], sec["baseline"]
        newcomer.append(f"{det['newcomer_edges_flagged']}/{_n(edges)} / "
                        f"{base['newcomer_edges_flagged']}/{_n(edges)}")  # fmt: skip
    lines.append("| legitimate newcomers flagged (Deployment, its scrape, CronJob) | "
                 + " | ".join(newcomer) + " |")  # fmt: skip
    for metric in ("precision", "recall"):
        lines.append(f"| **{metric}** | " + " | ".join(
            f"**{sec['detector'][metric]:.3f}** / {sec['baseline'][metric]:.3f}"
            for _, _, sec in cols) + " |")  # fmt: skip
    lines.append("| false positives (legitimate edges) | " + " | ".join(
        f"{_n(sec['detector']['false_positives'])} of {_n(sec['detector']['legit_edges'])} / "
        f"{_n(sec['baseline']['false_positives'])}" for _, _, sec in cols) + " |")  # fmt: skip
    lines.append("")
    for _key, title, sec in cols:
        replay = sec.get("policy_replay")
        if not replay:
            continue
        per = {int(k): v for k, v in replay["stealthy_paths_denied_per_scenario"].items()}
        good = sum(v for k, v in per.items() if k >= 4)
        spread = ", ".join(f"{k} of 5 in {v}" for k, v in sorted(per.items(), reverse=True))
        classes = ", ".join(f"{k} {v}" for k, v in replay["denied_by_class"].items())
        lines.append(
            f"- {title} (seeds {sec['seeds'][0]}-{sec['seeds'][-1]}): at least 4 of 5 stealthy "
            f"paths denied in {good} of {sec['scenarios']} scenarios ({spread}); denied by "
            f"class: {classes}; legitimate paths broken: {len(replay['legitimate_paths_broken'])}."
        )
    off = doc.get("sparse_replicas_without_lone")
    if off and "sparse_replicas" in doc:
        on = doc["sparse_replicas"]["detector"]
        lines.append(
            f"- sparse replicated clients, false positives with the lone-replica signal / "
            f"without it (`--lone-replica-p 0`): {on['false_positives']} / "
            f"{off['detector']['false_positives']} of {_n(on['legit_edges'])} legitimate edges; "
            f"attack edges found {on['true_positives']} / {off['detector']['true_positives']} "
            f"of {on['attack_edges']}."
        )
    return "\n".join(lines) + "\n"


def _seeds(text: str) -> tuple[int, ...]:
    lo, _, hi = text.partition("-")
    return tuple(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Careful-attacker evaluation: one section of anomaly-stealth.json per run."
    )
    parser.add_argument(
        "section",
        help="key to write, e.g. heldout_family, fresh_heldout, sparse_replicas, "
        "sparse_replicas_without_lone, generator_family",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="only print the docs tables from --out"
    )
    parser.add_argument("--family", choices=("heldout", "generator"), default="heldout")
    parser.add_argument("--seeds", default="100-159", help="LO-HI, inclusive")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help="held-out variation")
    parser.add_argument("--no-replay", action="store_true", help="detector only, no policies")
    parser.add_argument(
        "--lone-replica-p",
        type=float,
        default=None,
        help="override RuleThresholds.lone_replica_p (0 turns the signal off)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results/anomaly-stealth.json"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(render_markdown(json.loads(args.out.read_text())), end="")
        return 0
    seeds = _seeds(args.seeds)
    thresholds = None
    if args.lone_replica_p is not None:
        thresholds = replace(RuleThresholds(), lone_replica_p=args.lone_replica_p)
    if args.family == "generator":
        section = generator_family(seeds)
    else:
        section = heldout_family(seeds, replay=not args.no_replay, variant=args.variant,
                                 thresholds=thresholds)  # fmt: skip
    # Several sections may run at once: read-modify-write under a lock.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(args.out.read_text()) if args.out.exists() else {}
        doc.update(benchmark="anomaly-stealth", python=platform.python_version())
        doc[args.section] = section
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
