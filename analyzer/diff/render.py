"""Render a :class:`PolicyDiff` for people (a table) and for scripts (JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from analyzer.diff.model import OUTSIDE, Change, Decision, DiffCounts, PolicyDiff

__all__ = ["render_json", "render_table"]

_PORTS_SHOWN = 8


def render_json(diff: PolicyDiff) -> str:
    """The ``-o json`` document (see :func:`iter_json`)."""
    return "".join(iter_json(diff))


def iter_json(diff: PolicyDiff) -> Iterator[str]:
    """The ``-o json`` document in pieces; byte-identical for the same inputs.

    One top-level key per line and one change per line: a diff between an open cluster and a
    default-deny bundle lists ~N^2 changes, which ``indent=2`` (the pure-Python encoder)
    would make several times larger and slower; this stays greppable and line-diffable, and
    is written as it is encoded.
    """
    yield "{"
    for n, (key, value) in enumerate(diff.to_dict(changes=False).items()):
        yield ("," if n else "") + f"\n  {json.dumps(key)}: "
        if key in ("newly_denied", "newly_allowed"):
            changes = diff.newly_denied if key == "newly_denied" else diff.newly_allowed
            yield "[" if changes else "[]"
            for k, change in enumerate(changes):
                yield (
                    ("," if k else "") + "\n    " + json.dumps(change.to_dict(), ensure_ascii=False)
                )
            yield "\n  ]" if changes else ""
        else:
            yield json.dumps(value, ensure_ascii=False)
    yield "\n}"


def render_table(diff: PolicyDiff, *, limit: int = 20) -> str:
    """For people: totals; every change with observed traffic; then the changes only probes
    show, summed per namespace pair, with the first ``limit`` pairs and the first ``limit``
    changes of each kind listed (0: all). ``-o json`` always has everything."""
    lines = _header(diff)
    observed = [g for g in diff.groups if any(c.observed for c in g.newly_denied + g.newly_allowed)]
    lines += ["", "CHANGES WITH OBSERVED TRAFFIC" + ("" if observed else ": none")]
    for group in observed:
        lines += ["", f"== {group.title}"]
        for title, changes in (
            ("NEWLY DENIED", group.newly_denied),
            ("NEWLY ALLOWED", group.newly_allowed),
        ):
            for change in changes:
                if change.observed is not None:
                    lines += _change(title, change)
    lines += _probe_only(diff, limit)
    if not diff.counts.changed:
        lines += ["", "no connection changes verdict"]
    return "\n".join(lines) + "\n"


def _probe_only(diff: PolicyDiff, limit: int) -> list[str]:
    """Changes without observed traffic: per namespace pair counts, then examples."""
    pairs = []
    for g in diff.groups:
        denied = [c for c in g.newly_denied if c.observed is None]
        allowed = [c for c in g.newly_allowed if c.observed is None]
        if denied or allowed:
            pairs.append((g, denied, allowed))
    if not pairs:
        return []
    total_denied = sum(len(d) for _, d, _ in pairs)
    total_allowed = sum(len(a) for _, _, a in pairs)
    lines = [
        "",
        f"CHANGES ONLY PROBES SHOW: {total_denied:,} newly denied and {total_allowed:,} newly "
        f"allowed identity pairs in {len(pairs):,} namespace pairs",
    ]
    rows = [("NAMESPACE PAIR", "NEWLY DENIED (PROBES)", "NEWLY ALLOWED (PROBES)")]
    ranked = sorted(pairs, key=lambda p: (-(len(p[1]) + len(p[2])), p[0].title))
    shown = ranked if not limit else ranked[:limit]
    for g, denied, allowed in shown:
        rows.append(
            (
                g.title,
                f"{len(denied):,} ({sum(c.probes for c in denied):,})",
                f"{len(allowed):,} ({sum(c.probes for c in allowed):,})",
            )
        )
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines += [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    if len(shown) < len(ranked):
        lines.append(f"  ... {len(ranked) - len(shown):,} more namespace pairs")
    quiet = {
        "NEWLY DENIED": [c for _, denied, _ in pairs for c in denied],
        "NEWLY ALLOWED": [c for _, _, allowed in pairs for c in allowed],
    }
    for title, changes in quiet.items():
        listed = changes if not limit else changes[:limit]
        if listed:
            lines.append("")
        for change in listed:
            lines += _change(title, change)
        if len(listed) < len(changes):
            lines.append(
                f"  ... {len(changes) - len(listed):,} more {title.lower()} changes "
                "(--limit 0 or -o json lists them all)"
            )
    return lines


def _header(diff: PolicyDiff) -> list[str]:
    u, c = diff.universe, diff.counts
    lines = [
        f"OLD: {', '.join(diff.old.paths) or diff.old.label} ({diff.old.policies} policies)",
        f"NEW: {', '.join(diff.new.paths) or diff.new.label} ({diff.new.policies} policies)",
        (
            f"probes: {u.probes:,} = identity pairs with a pod end x {u.port_classes} port "
            f"classes ({', '.join(u.protocols)}); identities: {u.pod_identities} pod, "
            f"{u.entities} entity, {u.address_classes} address classes"
            if u.enumerated
            else "probes: not enumerated (--no-probes): observed connections only"
        ),
        f"ipBlock semantics: {diff.ipblock_mode}",
    ]
    if diff.namespaces is not None:
        lines.append(f"namespaces: {', '.join(diff.namespaces)}")
    rows = [
        ("", "NEWLY DENIED", "NEWLY ALLOWED", "UNCHANGED"),
        _count_row("observed edges", c, "edges"),
        _count_row("observed connections", c, "connections"),
        (
            "probes",
            f"{c.probes_newly_denied:,}",
            f"{c.probes_newly_allowed:,}",
            f"{c.probes_unchanged_allowed + c.probes_unchanged_denied:,}",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines.append("")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    if c.observed_newly_denied_working:
        lines += [
            "",
            f"{c.observed_newly_denied_working:,} observed edge(s) the flow logs show as allowed "
            "would be denied by NEW (applying it would break them)",
        ]
    return lines


def _count_row(label: str, c: DiffCounts, unit: str) -> tuple[str, str, str, str]:
    return (
        label,
        f"{getattr(c, f'observed_newly_denied_{unit}'):,}",
        f"{getattr(c, f'observed_newly_allowed_{unit}'):,}",
        f"{getattr(c, f'observed_unchanged_{unit}'):,}",
    )


def _change(title: str, change: Change) -> list[str]:
    where = f"{change.src_namespace or OUTSIDE} -> {change.dst_namespace or OUTSIDE}"
    lines = [
        f"{title}  {change.src_display} -> {change.dst_display}  [{where}]",
        f"  ports     {', '.join(change.ports)}"
        + (f"  ({change.probes:,} probes)" if change.probes else "  (observed only)"),
    ]
    if change.observed is not None:
        o = change.observed
        ports = list(o.ports[:_PORTS_SHOWN])
        if len(o.ports) > _PORTS_SHOWN:
            ports.append(f"{len(o.ports) - _PORTS_SHOWN} more")
        window = ""
        if o.first_seen is not None and o.last_seen is not None:
            window = f"; seen {_time(o.first_seen)} .. {_time(o.last_seen)}"
        lines.append(
            f"  observed  {o.edges:,} edges, {o.connections:,} connections on "
            f"{', '.join(ports)}{window}"
        )
    lines += _decision("old", change.old)
    lines += _decision("new", change.new)
    return lines


def _decision(label: str, decision: Decision) -> list[str]:
    lines = [f"  {label}       {decision.summary()}"]
    if not decision.allowed:
        lines.append(f"            {decision.reason}")
    return lines


def _time(value: object) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")
