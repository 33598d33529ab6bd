"""The fast dumper writes exactly the bytes PyYAML's own safe dumper writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.generate import ScenarioConfig, build_scenario
from analyzer.generate.policies import existing_policies
from analyzer.k8s.yaml_dump import FastSafeDumper, PlainSafeDumper
from analyzer.k8s.yaml_io import safe_dump, safe_dump_all

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"

OPTIONS: list[dict[str, Any]] = [
    {},
    {"sort_keys": False, "default_flow_style": False, "explicit_start": True},
    {"sort_keys": True, "default_flow_style": False},
    {"default_flow_style": None},
    {"default_flow_style": True, "width": 40},
    {"allow_unicode": True, "indent": 4},
    {"default_style": '"'},
]


def _both(documents: list[Any], **options: Any) -> tuple[str, str, str]:
    """(fast, PyYAML's C dumper, PyYAML's pure dumper). With a ``default_style`` libyaml and
    the pure emitter differ from each other (``! "1"`` vs ``!!int "1"``): there the fast
    dumper matches the C one it extends, and the pure output is reported as the C one."""
    fast = yaml.dump_all(documents, Dumper=FastSafeDumper, **options)
    plain = yaml.dump_all(documents, Dumper=PlainSafeDumper, **options)
    pure = (
        plain if "default_style" in options
        else yaml.dump_all(documents, Dumper=yaml.SafeDumper, **options)
    )
    return fast, plain, pure


@pytest.mark.parametrize("options", OPTIONS)
def test_generated_policies_dump_identically(options: dict[str, Any]) -> None:
    docs: list[Any] = []
    for seed in (1, 7, 11):
        scenario = build_scenario(ScenarioConfig(seed=seed, extra_namespaces=3))
        policies = existing_policies(scenario)
        docs.extend(policies["items"] if isinstance(policies, dict) else policies)
        docs.append(scenario.inventory())
    fast, plain, pure = _both(docs, **options)
    assert fast == plain == pure
    assert len(fast) > 1000


def test_the_sample_inventory_and_policies_dump_identically() -> None:
    if not SAMPLE.is_dir():
        pytest.skip("data/sample is not in this checkout")
    inventory = json.loads((SAMPLE / "inventory.json").read_text())
    policies = list(yaml.safe_load_all((SAMPLE / "existing-policies.yaml").read_text()))
    for options in OPTIONS[:3]:
        fast, plain, _ = _both([inventory, *policies], **options)
        assert fast == plain


def test_documents_the_direct_path_leaves_to_pyyaml() -> None:
    shared = ["a", "b"]
    docs = [
        {"x": shared, "y": shared},  # the same list twice: an anchor and an alias
        {"when": dt.date(2026, 1, 2), "ratio": 0.5, "t": (1, 2), "inf": float("inf")},
        {1: "int key", "b": None, "c": True, "d": False, "e": -3, "f": 10**30},
        {"weird": ["", "~", "null", "yes", "No", "1e3", "0x1F", "- a", "a: b", "#x", "é", "\n"]},
    ]
    for options in OPTIONS:
        fast, plain, pure = _both(docs, **options)
        assert fast == plain == pure
    assert "&id001" in safe_dump(docs[0])


def test_mixed_key_types_keep_pyyaml_order() -> None:
    doc = {"b": 1, 2: "two", "a": [{}, []]}
    for options in OPTIONS:
        fast, plain, _ = _both([doc], **options)
        assert fast == plain


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(max_size=12),
    st.sampled_from(["true", "False", "null", "~", "0o17", "1_000", "3.5", ".inf", "=", "<<"]),
)
trees = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 9)), kids, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(trees, min_size=1, max_size=3), st.sampled_from(OPTIONS))
def test_random_documents_dump_identically(docs: list[Any], options: dict[str, Any]) -> None:
    # libyaml ends a top-level scalar document without "...", the pure emitter with it: the
    # fast dumper is held to the C dumper it extends.
    fast, plain, _ = _both(docs, **options)
    assert fast == plain
    assert safe_dump_all(docs, **options) == plain
