"""The HTML security-review report: a model assembled from the analysis, rendered to one page.

>>> from analyzer.report import write_report                      # doctest: +SKIP
>>> write_report(Path(".analyzer-store"), out=Path("reports/report.html"))  # doctest: +SKIP

See docs/report.md for what each section means and how the page is protected against hostile
values from flow logs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from analyzer.errors import ConfigError
from analyzer.report.model import ReportModel, Summary
from analyzer.report.render import render_report

__all__ = ["ReportModel", "ReportWritten", "render_report", "write_html", "write_report"]

DEFAULT_REPORT = Path("reports") / "report.html"


@dataclass(frozen=True, slots=True)
class ReportWritten:
    """Where the report went, and what a person should hear about on stderr."""

    path: Path
    warnings: tuple[str, ...]
    findings: int
    summary: Summary

    def to_json(self) -> dict[str, object]:
        """What scripts need: where the report is, its counts and warnings."""
        return {
            "report": str(self.path),
            "findings": self.findings,
            "warnings": list(self.warnings),
            "summary": asdict(self.summary),
        }


def write_html(html: str, out: Path) -> Path:
    """Write ``html`` to ``out`` atomically (parents created); returns the absolute path."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; give a file name such as report.html")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".report-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the report: {exc.strerror or exc}") from exc
    return out.resolve()


def write_report(
    store_dir: Path,
    *,
    out: Path = DEFAULT_REPORT,
    policies: Path | None = None,
    inventory: Path | None = None,
    namespaces: Sequence[str] | None = None,
    bundle_dir: Path | None = None,
) -> ReportWritten:
    """Analyse the store at ``store_dir`` and write the HTML report to ``out``.

    Raises
    ------
    StoreError
        No flow store at ``store_dir``.
    PolicyError, InventoryError, UsageError, ConfigError
        Unreadable inputs or an unwritable ``out``.
    """
    from analyzer.report.build import build_report as _build
    from analyzer.store import FlowStore

    if Path(out).is_dir():  # fail before the analysis, not after it
        raise ConfigError(f"--out {out}: is a directory; give a file name such as report.html")
    store = FlowStore.open(Path(store_dir))
    model = _build(
        store,
        policies=policies,
        inventory=inventory,
        namespaces=namespaces,
        bundle_dir=bundle_dir,
    )
    path = write_html(render_report(model), out)
    return ReportWritten(path, model.summary.warnings, len(model.findings), model.summary)
