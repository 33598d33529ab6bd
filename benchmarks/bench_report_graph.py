"""The report's graph at ~2,000 identities (issue 14): folded namespaces, labels off arrows.

One seeded capture of ``--workloads`` workloads (default 2,500: about 2,500 identities in 417
namespaces, 500k flows; made and ingested as ``bench_scale.py`` makes it, kept in ``--work``)
is reported twice, each run in its own process, as a user runs ``analyzer report`` (existing
policies + inventory): this checkout's code and the baseline (``--baseline-ref``, default the
commit before folding, via ``git archive``). Each run reports wall, CPU seconds and peak RSS,
and the HTML's size and what its graph draws (rows, arrows, folded namespaces, the overview's
size in SVG units). Results go to ``benchmarks/results/report-graph.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

from baseline_code import baseline_source  # sibling modules: benchmarks run as scripts
from bench_scale import ROOT, command_line, prepare, run

RESULTS = ROOT / "benchmarks" / "results" / "report-graph.json"


def _graph_stats(html: str) -> dict[str, Any]:
    """What the overview (the page's first SVG) draws, and how many folds the page has."""
    start = html.index("<svg")
    overview = html[start : html.index("</svg>", start)]
    size = re.search(r'width="(\d+)" height="(\d+)"', overview)
    assert size is not None
    return {
        "html_mb": round(len(html.encode()) / 1e6, 2),
        "overview_rows": overview.count('<g class="node'),
        "overview_arrows": overview.count('<g class="edge'),
        "overview_svg": f"{size.group(1)}x{size.group(2)}",
        "folded_namespaces": html.count('<details class="unfold"'),
        "arrows_in_page": html.count('<g class="edge'),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=2500)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "scale")
    parser.add_argument("--baseline-ref", default="39766c9")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    case = prepare(args.work, args.workloads)
    baseline = baseline_source(args.baseline_ref, args.work)
    entry: dict[str, Any] = {}
    for name, src in (("analyzer", ROOT), ("baseline", baseline)):
        out = args.work / "runs" / f"graph-{name}"
        shutil.rmtree(out, ignore_errors=True)
        cmd, written = command_line("report", case, out)
        entry[name] = run(src, cmd, out, None)
        entry[name].update(_graph_stats(written.read_text("utf-8")))
        print(f"{name:<9} {json.dumps(entry[name])}", flush=True)
    mine, base = entry["analyzer"], entry["baseline"]
    entry["cpu_ratio"] = round(mine["cpu_s"] / base["cpu_s"], 2)
    entry["rss_ratio"] = round(mine["peak_rss_mb"] / base["peak_rss_mb"], 2)
    results = {
        "note": (
            "shared 2-core machine (CPU seconds are the steadier comparison); each run its own "
            f"process; baseline = {args.baseline_ref} via git archive"
        ),
        "workloads": args.workloads,
        "report": entry,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"CPU {entry['cpu_ratio']}x, peak RSS {entry['rss_ratio']}x of the baseline")


if __name__ == "__main__":
    main()
