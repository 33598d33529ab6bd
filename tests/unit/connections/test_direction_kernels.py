"""The per-row expressions of the classification, rewritten for speed (issue 11), against
their rules spelled out row by row: TCP flag membership and endpoint keys."""

from __future__ import annotations

import itertools
import random
import re

import polars as pl

from analyzer import schema as S
from analyzer.connections._direction import _flag, _side_key

_TOKENS = ["SYN", "ACK", "FIN", "RST", "PSH", "XSYN", "SYNX", "SY", "ACKS", "", "syn"]


def _flag_strings() -> list[str | None]:
    rng = random.Random(11)
    joined = [",".join(c) for n in range(4) for c in itertools.permutations(_TOKENS, n)]
    odd = ["SYN", ",SYN", "SYN,", ",SYN,", "SYNACK", "ACK,SYN", "SYN,ACK", ",,SYN,,", " SYN"]
    sample = rng.sample(joined, min(len(joined), 1000))
    return [None, *odd, *sample]


def test_flag_membership_is_the_comma_separated_token_rule() -> None:
    values = _flag_strings()
    frame = pl.DataFrame({S.TCP_FLAGS: values}, schema={S.TCP_FLAGS: pl.String()})
    for name in ("SYN", "ACK"):
        got = frame.select(_flag(name)).to_series().to_list()
        rule = re.compile(rf"(^|,){name}(,|$)")
        want = [bool(rule.search(v or "")) for v in values]
        assert got == want, name


def _key_rule(row: dict[str, object]) -> str:
    """ns/pod, else ip#identity for a labelled pod identity at a non-pod address, else the IP,
    else reserved:<entity> (docstring of ``_side_key``)."""
    ns, pod, ip = row["src_namespace"], row["src_pod"], row["src_ip"]
    identity, labels = row["src_identity"], row["src_labels"]
    if ns not in (None, "") and pod not in (None, ""):
        return f"{ns}/{pod}"
    proxied = ns is not None and bool(labels) and identity is not None
    if ip not in (None, "") and proxied:
        return f"{ip}#{identity}"
    if ip not in (None, ""):
        return str(ip)
    return f"reserved:{row['src_entity'] or 'unknown'}"


def test_endpoint_key_follows_its_rule_for_every_combination_of_missing_fields() -> None:
    choices = {
        "src_namespace": [None, "", "shop"],
        "src_pod": [None, "", "web-1"],
        "src_ip": [None, "", "10.0.0.7"],
        "src_identity": [None, 4242],
        "src_labels": [None, [], ["app=web"]],
        "src_entity": [None, "pod", "world"],
    }
    rows = [dict(zip(choices, combo, strict=True))
            for combo in itertools.product(*choices.values())]
    frame = pl.DataFrame(
        rows,
        schema={
            "src_namespace": pl.String(), "src_pod": pl.String(), "src_ip": pl.String(),
            "src_identity": pl.Int64(), "src_labels": pl.List(pl.String()),
            "src_entity": pl.String(),
        },
    )
    got = frame.select(_side_key("src")).to_series().to_list()
    assert got == [_key_rule(r) for r in rows]
