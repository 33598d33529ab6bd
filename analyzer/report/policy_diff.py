"""The semantic diff of the existing policies against the recommended set, for the report.

The diff (``analyzer.diff``) compares two sets on every observed connection and, with probes,
on every pair of known identities and port classes. Probes grow with the square of the
identities: at ~2,000 identities they took minutes and gigabytes, so above
`PROBE_IDENTITY_LIMIT` the report compares observed connections only and says so (the
verdict then speaks of "observed edges").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from analyzer.diff import Change, PolicyDiff, PolicySetInfo, diff_policies
from analyzer.policy.load import STAGED_KUBERNETES_KIND, LoadResult, parse_documents
from analyzer.report.model import DiffRow, DiffView

if TYPE_CHECKING:
    from analyzer.analysis import Analysis
    from analyzer.policy.model import NetworkPolicy
    from analyzer.recommend import Recommendation

__all__ = ["PROBE_IDENTITY_LIMIT", "MAX_DIFF_ROWS", "recommended_diff", "diff_view"]

# Above this many identities (pod label sets, plus outside peers) the report's diff compares
# observed connections only; `analyzer diff` still enumerates every pair when asked.
PROBE_IDENTITY_LIMIT = 300
MAX_DIFF_ROWS = 200


def applied_set(
    existing: Sequence[NetworkPolicy], rec: Recommendation
) -> tuple[list[NetworkPolicy], list[str]]:
    """The policies in force after applying ``rec``: its manifests replace the existing
    policies of its namespaces; the other namespaces keep theirs. Returns the set and the
    problems of parsing the recommended manifests (none expected)."""
    replaced = set(rec.namespaces)
    kept = [p for p in existing if p.namespace not in replaced]
    if rec.parsed is not None:
        # the verification's parse (it loaded without problems, or it raised): staged
        # policies are not in force, as the loader's default says
        return kept + [p for p in rec.parsed if p.kind != STAGED_KUBERNETES_KIND], []
    loaded = LoadResult()
    parse_documents([dict(m) for m in rec.manifests], "recommended", loaded)
    return kept + list(loaded.policies), [str(p) for p in loaded.problems]


def recommended_diff(
    analysis: Analysis, rec: Recommendation, identities: int
) -> tuple[PolicyDiff, bool]:
    """Diff the Analysis' existing policies against them with ``rec`` applied; probes only
    up to `PROBE_IDENTITY_LIMIT` identities. Returns the diff and whether probes ran."""
    assert analysis.policies is not None
    old = list(analysis.policies.policies)
    new, _ = applied_set(old, rec)
    probes = identities <= PROBE_IDENTITY_LIMIT
    result = diff_policies(
        old,
        new,
        analysis.connections if analysis.source is not None else None,
        inventory=analysis.inventory,
        namespaces=list(rec.namespaces) or None,
        ipblock_mode=analysis.options.ipblock_mode,
        old_info=PolicySetInfo("existing", (), len(old)),
        new_info=PolicySetInfo("recommended", (), len(new)),
        probes=probes,
        # the existing policies' verdicts on these connections: the Analysis' own, not again
        old_evaluated=analysis.verdicts if analysis.source is not None else None,
    )
    return result, probes


def _row(change: Change) -> DiffRow:
    observed = change.observed
    return DiffRow(
        kind=change.kind,
        src=change.src_display,
        dst=change.dst_display,
        ports=", ".join(change.ports),
        observed=observed.connections if observed is not None else 0,
        working=bool(observed is not None and observed.working_edges),
        old=change.old.summary(),
        new=change.new.summary(),
    )


def diff_view(diff: PolicyDiff, probes: bool, identities: int) -> DiffView:
    """The report's view of ``diff``: counts, and the changes observed traffic falls in
    first (working traffic newly denied at the top), then probe-only ones."""
    c = diff.counts
    changes = sorted(
        (*diff.newly_denied, *diff.newly_allowed),
        key=lambda ch: (
            ch.kind != "newly_denied",
            ch.observed is None,
            -(ch.observed.working_edges if ch.observed else 0),
            -(ch.observed.connections if ch.observed else 0),
            ch.src_display,
            ch.dst_display,
            ch.ports,
        ),
    )
    note = (
        "Compared on every observed connection and on every pair of known identities on every "
        "port a rule of either set names."
        if probes
        else f"{identities:,} identities: above {PROBE_IDENTITY_LIMIT} the report compares "
        "observed connections only (pairs nobody used are not enumerated); run "
        "`analyzer diff` for the full comparison."
    )
    return DiffView(
        probes=probes,
        note=note,
        newly_denied_observed_edges=c.observed_newly_denied_edges,
        newly_denied_observed_connections=c.observed_newly_denied_connections,
        newly_denied_working_edges=c.observed_newly_denied_working,
        newly_allowed_observed_edges=c.observed_newly_allowed_edges,
        unchanged_observed_edges=c.observed_unchanged_edges,
        probes_newly_denied=c.probes_newly_denied,
        probes_newly_allowed=c.probes_newly_allowed,
        rows=tuple(_row(ch) for ch in changes[:MAX_DIFF_ROWS]),
        more=max(0, len(changes) - MAX_DIFF_ROWS),
    )
