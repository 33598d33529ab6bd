"""docs/anomalies.md shows the careful-attacker numbers exactly as the results JSON has them:
the per-class table and the policy-replay lines are rendered from
benchmarks/results/anomaly-stealth.json (`stealth_eval.py --markdown`), never typed by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))
from stealth_eval import render_markdown  # noqa: E402


def test_docs_tables_match_the_results_json() -> None:
    doc = json.loads((ROOT / "benchmarks/results/anomaly-stealth.json").read_text())
    rendered = render_markdown(doc)
    assert "| class |" in rendered and "at least 4 of 5" in rendered
    assert rendered in (ROOT / "docs/anomalies.md").read_text()
