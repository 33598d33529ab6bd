"""For random small graphs, the synthesized policies allow exactly the observed edges.

Every observed edge is allowed and every unobserved (source, destination, port, protocol)
between observed groups is denied, whenever one end is in a namespace we write policies for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "recommend"))
from recommend_fixtures import End, conn, frame, groups_of, world  # noqa: E402

from analyzer.policy.compile import compile_policies  # noqa: E402
from analyzer.policy.frame import evaluate_connections  # noqa: E402
from analyzer.policy.load import LoadResult, parse_documents  # noqa: E402
from analyzer.recommend.render import render  # noqa: E402
from analyzer.recommend.synthesize import synthesize  # noqa: E402

TARGETS = ["shop"]
PORTS = [(80, "TCP"), (443, "TCP"), (8080, "TCP"), (5353, "UDP")]


def _pod(ns: str, app: str, tier: str, index: int) -> End:
    labels = {"app": app, "tier": tier}
    return End(namespace=ns, labels=labels, workload=app, selector=labels,
               ip=f"10.{1 if ns == 'shop' else 2}.0.{index + 1}")


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[End], set[tuple[int, int, int]]]:
    specs = draw(st.lists(
        st.tuples(st.sampled_from(["shop", "shop", "other"]), st.sampled_from(["a", "b"]),
                  st.sampled_from(["x", "y"])),
        min_size=2, max_size=7, unique=True))
    ends = [_pod(ns, app, tier, i) for i, (ns, app, tier) in enumerate(specs)]
    ends += [world(f"203.0.113.{i}") for i in range(1, draw(st.integers(0, 2)) + 1)]
    pairs = [(s, d, p) for s in range(len(ends)) for d in range(len(ends)) for p in
             range(len(PORTS)) if ends[s].entity == "pod" and s != d]
    edges = draw(st.sets(st.sampled_from(pairs), min_size=1, max_size=12))
    return ends, edges


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
# Two crossing pairs whose groups differ in one label each: merging both directions loosely
# would open a/x -> b/y; exact egress keeps it closed.
@example((
    [_pod("shop", "a", "x", 0), _pod("shop", "b", "x", 1), _pod("shop", "a", "y", 2),
     _pod("shop", "b", "y", 3)],
    {(0, 2, 0), (1, 3, 0)},
))
def test_exactly_the_observed_edges_are_allowed(
    graph: tuple[list[End], set[tuple[int, int, int]]],
) -> None:
    ends, edges = graph
    observed = frame([conn(ends[s], ends[d], PORTS[p][0], PORTS[p][1]) for s, d, p in edges])
    result = synthesize(observed, groups_of(ends), TARGETS)
    loaded = LoadResult()
    parse_documents(render(result.policies), "<recommended>", loaded)
    assert not loaded.problems
    compiled = compile_policies(loaded.policies)

    candidates, expected = [], []
    for s, src in enumerate(ends):
        for d, dst in enumerate(ends):
            if s == d or src.entity != "pod":
                continue
            if src.namespace not in TARGETS and dst.namespace not in TARGETS:
                continue  # no policy of ours applies
            for p, (port, proto) in enumerate(PORTS):
                candidates.append(conn(src, dst, port, proto))
                expected.append((s, d, p) in edges)
    verdicts = evaluate_connections(compiled, frame(candidates))["allowed"].to_list()
    wrong = [
        (row["src_group"], row["dst_group"], row["protocol"], row["dst_port"], want)
        for row, got, want in zip(frame(candidates).iter_rows(named=True), verdicts, expected,
                                  strict=True)
        if got != want
    ]
    assert wrong == []
    assert isinstance(observed, pl.DataFrame)
