"""The HTML security-review report: a model assembled from the analysis, rendered to one page.

>>> from analyzer.analysis import Analysis, open_store             # doctest: +SKIP
>>> from analyzer.report import write_report                       # doctest: +SKIP
>>> analysis = Analysis(open_store(Path(".analyzer-store")))       # doctest: +SKIP
>>> write_report(analysis, out=Path("reports/report.html"))        # doctest: +SKIP

See docs/report.md for what each section means and how the page is protected against hostile
values from flow logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.errors import ConfigError
from analyzer.report.model import ReportModel, Summary
from analyzer.report.render import render_report
from analyzer.store.files import atomic_write

if TYPE_CHECKING:
    from analyzer.analysis import Analysis

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
        atomic_write(out, html.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the report: {exc.strerror or exc}") from exc
    return out.resolve()


def write_report(
    analysis: Analysis,
    *,
    out: Path = DEFAULT_REPORT,
    bundle_dir: Path | None = None,
    policies_source: str | None = None,
) -> ReportWritten:
    """Build the report of ``analysis`` and write it to ``out``.

    Raises
    ------
    UsageError, ConfigError
        A namespace nothing mentions, or an unwritable ``out``.
    """
    from analyzer.report.build import build_report

    if Path(out).is_dir():  # fail before the analysis, not after it
        raise ConfigError(f"--out {out}: is a directory; give a file name such as report.html")
    model = build_report(
        analysis,
        bundle_dir=bundle_dir,
        policies_source=policies_source,
        report_dir=Path(out).parent,
    )
    path = write_html(render_report(model), out)
    return ReportWritten(path, model.summary.warnings, len(model.findings), model.summary)
