"""Audit output: a table for people (grouped by severity, window stated) and JSON for scripts."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from typing import Any

from analyzer.audit.findings import SEVERITIES, AuditResult, Finding

__all__ = ["render_json", "render_table", "window_text"]

WIDTH = 100
# Control characters (ANSI escapes, newlines) can arrive in labels and names of flow files; a
# table for a terminal shows them escaped, never interpreted.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def window_text(window: tuple[datetime | None, datetime | None]) -> str:
    """``2026-11-20 10:00:00Z to 2026-11-20 11:59:59Z`` or ``no traffic observed``."""
    first, last = window
    if first is None or last is None:
        return "no traffic observed"
    return f"{_ts(first)} to {_ts(last)}"


def render_json(result: AuditResult) -> str:
    """The JSON document of docs/audit.md (``findings``, ``rules``, ``window``, ``summary``)."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False, default=_default)


def render_table(result: AuditResult, *, rules: bool = True) -> str:
    """Findings grouped by severity, then per-rule hits, then a one-line summary."""
    lines: list[str] = []
    scope = ", ".join(result.namespaces[:8]) + (
        f" and {len(result.namespaces) - 8} more" if len(result.namespaces) > 8 else ""
    )
    lines.append(
        f"Audit of {result.policies} polic{'y' if result.policies == 1 else 'ies'} "
        f"in {scope or '(no namespace)'}"
    )
    lines.append(
        f"against {result.connections} observed connection(s), window {window_text(result.window)}"
    )
    for sev in reversed(SEVERITIES):
        group = [f for f in result.findings if f.severity == sev]
        if not group:
            continue
        lines.append("")
        lines.append(f"{sev.upper()} ({len(group)})")
        for f in group:
            lines.extend(_finding_lines(f))
    if not result.findings:
        lines.append("")
        lines.append("No findings.")
    if rules and result.rule_stats:
        lines.append("")
        lines.append(f"Rules (hits = connections admitted, window {window_text(result.window)})")
        header = ("POLICY", "RULE", "HITS", "FIRST HIT", "LAST HIT")
        rows = [
            (
                s.policy,
                s.rule,
                str(s.hits),
                _ts(s.first_hit) if s.first_hit else "-",
                _ts(s.last_hit) if s.last_hit else "-",
            )
            for s in result.rule_stats
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append(
                "  " + "  ".join(c.rjust(w) if i == 2 else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            )
    summary = result.summary()
    counts = ", ".join(f"{n} {s}" for s, n in summary["by_severity"].items() if n)
    lines.append("")
    lines.append(f"{summary['findings']} finding(s)" + (f": {counts}" if counts else ""))
    return "\n".join(_clean(line) for line in lines) + "\n"


def _finding_lines(f: Finding) -> list[str]:
    where = f.policy or f"namespace {f.namespace}"
    head = f"  [{f.category}] {where}"
    if f.rule:
        head += f" {f.rule}"
    elif f.direction and f.category in ("no-default-deny", "unprotected-pods"):
        head += f" ({f.direction})"
    if f.hits is not None and f.category not in ("no-default-deny", "unprotected-pods"):
        head += f"  hits={f.hits}"
    out = [head]
    out += textwrap.wrap(
        f.explanation, WIDTH, initial_indent="      ", subsequent_indent="      "
    )
    if f.replacement is not None:
        r = f.replacement
        tail = " (manifest in -o json)" if r.manifest is not None else ""
        out += textwrap.wrap(
            f"fix: {r.action}: {r.note}{tail}", WIDTH,
            initial_indent="      ", subsequent_indent="        ",
        )
    return out


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)
