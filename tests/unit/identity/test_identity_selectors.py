"""Selector choice: stable naming labels, never version-like, never another group's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.identity import (
    choose_selectors,
    is_valid_label_key,
    is_valid_label_value,
    is_version_like,
    is_volatile,
)


def _choose(groups: dict[str, dict[str, str]], namespace: str = "ns"):
    return choose_selectors({k: (namespace, v) for k, v in groups.items()})


def test_prefers_app_kubernetes_io_name_over_app():
    got = _choose({"g": {"app": "web", "app.kubernetes.io/name": "shop-web", "tier": "fe"}})
    assert got["g"].selector == {"app.kubernetes.io/name": "shop-web"}
    assert got["g"].unique


def test_app_wins_when_it_carries_the_same_name():
    got = _choose({"g": {"app": "web", "app.kubernetes.io/name": "web"}})
    assert got["g"].selector == {"app": "web"}


def test_never_version_even_when_it_would_distinguish():
    got = _choose({"v1": {"app": "web", "version": "v1"}, "v2": {"app": "web", "version": "v2"}})
    for choice in got.values():
        assert "version" not in choice.selector
        assert not choice.unique
    assert got["v1"].collides_with == ("v2",)
    assert any("indistinguishable" in n for n in got["v1"].notes)


def test_seed_backend_and_primary_are_distinct():
    got = _choose(
        {
            "backend": {"app": "backend"},
            "primary": {"app": "backend-primary"},
            "frontend": {"app": "frontend", "tier": "web"},
        }
    )
    assert got["backend"].selector == {"app": "backend"}
    assert got["primary"].selector == {"app": "backend-primary"}
    assert got["frontend"].selector == {"app": "frontend"}
    assert all(c.unique for c in got.values())


def test_adds_labels_until_unique():
    got = _choose(
        {
            "api": {"app": "shop", "component": "api"},
            "db": {"app": "shop", "component": "db"},
        }
    )
    assert got["api"].selector == {"app": "shop", "component": "api"}
    assert got["db"].selector == {"app": "shop", "component": "db"}


def test_two_versions_of_one_workload_may_share_a_selector():
    groups = {
        "v1": ("ns", {"app": "web", "version": "v1"}),
        "v2": ("ns", {"app": "web", "version": "v2"}),
        "db": ("ns", {"app": "db"}),
    }
    got = choose_selectors(groups, workloads={"v1": ["web"], "v2": ["web"], "db": ["db"]})
    assert got["v1"].selector == {"app": "web"} and got["v1"].unique
    assert any("same workload" in n for n in got["v1"].notes)
    # without workload knowledge they are indistinguishable
    assert not choose_selectors(groups)["v1"].unique


def test_subset_group_is_indistinguishable():
    got = _choose({"plain": {"app": "web"}, "canary": {"app": "web", "track": "canary"}})
    assert got["canary"].selector == {"app": "web", "track": "canary"}
    assert got["canary"].unique
    assert not got["plain"].unique
    assert got["plain"].collides_with == ("canary",)


def test_other_namespaces_do_not_collide():
    got = choose_selectors({"a": ("one", {"app": "web"}), "b": ("two", {"app": "web"})})
    assert got["a"].unique and got["b"].unique


def test_hostile_labels_are_never_chosen():
    hostile = {
        "app": "web\nkind: Secret",
        "name": "x" * 64,
        "evil key": "v",
        "k8s-app": "<script>alert(1)</script>",
        "tier": "frontend",
    }
    got = _choose({"g": hostile})
    assert got["g"].selector == {"tier": "frontend"}
    assert any("invalid" in n for n in got["g"].notes)


def test_no_usable_label_gives_empty_selector_and_a_note():
    got = _choose({"g": {"version": "1.0", "pod-template-hash": "abc"}, "h": {"app": "x"}})
    assert got["g"].selector == {}
    assert not got["g"].unique
    assert any("no stable" in n for n in got["g"].notes)


_keys = st.sampled_from(
    [
        "app",
        "app.kubernetes.io/name",
        "k8s-app",
        "tier",
        "component",
        "version",
        "track",
        "pod-template-hash",
        "bad key",
        "role",
    ]
)
_values = st.sampled_from(["web", "api", "db", "v1", "v2", "1.2.3", "a,b", "", "x" * 70, "canary"])
_labels = st.dictionaries(_keys, _values, max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(_labels, min_size=1, max_size=8, unique_by=lambda d: tuple(sorted(d.items()))))
def test_property_selector_selects_exactly_its_group(label_sets):
    groups = {f"g{i}": labels for i, labels in enumerate(label_sets)}
    chosen = _choose(groups)
    for key, choice in chosen.items():
        for k, v in choice.selector.items():
            assert is_valid_label_key(k) and is_valid_label_value(v)
            assert not is_version_like(k, v) and not is_volatile(k)
            assert groups[key].get(k) == v
        selected = {
            g
            for g, labels in groups.items()
            if all(labels.get(k) == v for k, v in choice.selector.items())
        }
        if choice.unique:
            assert selected == {key}
        else:
            assert selected - {key} == set(choice.collides_with)
            assert choice.collides_with
