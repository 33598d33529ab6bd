"""Merging selectors and peers, names, label validation at the YAML boundary."""

from __future__ import annotations

import pytest
import yaml
from recommend_fixtures import conn, frame, groups_of, pod, validate_manifest

from analyzer.errors import VerificationError
from analyzer.recommend.merge import merge_peers, merge_selectors
from analyzer.recommend.render import (
    label_error,
    name_error,
    policy_name,
    render,
    render_policy,
    to_yaml,
)
from analyzer.recommend.synthesize import AllowedPeer, PolicySpec, Selector, synthesize


def sel(**labels: str) -> Selector:
    return Selector.of(labels)


def test_selectors_differing_in_one_value_merge_into_in() -> None:
    merged = merge_selectors([(sel(app="backend"), "a"), (sel(app="backend-primary"), "b")])
    assert merged == [(Selector(match_in=(("app", ("backend", "backend-primary")),)), ("a", "b"))]


def test_selectors_differing_in_two_values_or_keys_do_not_merge() -> None:
    items = [(sel(app="a", tier="x"), 1), (sel(app="b", tier="y"), 2), (sel(app="a"), 3)]
    merged = merge_selectors(items)
    assert sorted(p for _, ps in merged for p in ps) == [1, 2, 3]
    assert all(not s.match_in for s, _ in merged)


def test_merge_keeps_other_labels_fixed() -> None:
    merged = merge_selectors([(sel(app="a", tier="web"), 1), (sel(app="b", tier="web"), 2),
                              (sel(app="c", tier="db"), 3)])
    assert (Selector(match_labels=(("tier", "web"),), match_in=(("app", ("a", "b")),)),
            (1, 2)) in merged
    assert (sel(app="c", tier="db"), (3,)) in merged


def test_peers_merge_by_label_then_by_namespace() -> None:
    peers = [AllowedPeer("pod", ("a",), sel(app="x")), AllowedPeer("pod", ("a",), sel(app="y")),
             AllowedPeer("pod", ("b",), sel(app="x")), AllowedPeer("pod", ("b",), sel(app="y")),
             AllowedPeer("cidr", cidr="192.0.2.1/32")]
    merged = merge_peers(peers)
    assert merged == [
        AllowedPeer("pod", ("a", "b"), Selector(match_in=(("app", ("x", "y")),))),
        AllowedPeer("cidr", cidr="192.0.2.1/32"),
    ]


def test_policy_names_are_dns_labels_and_unique() -> None:
    taken: set[str] = set()
    long = "x" * 80
    first = policy_name(long, "ingress", taken)
    second = policy_name(long, "ingress", taken)
    assert first != second
    for name in (first, second, policy_name("Weird_Name.v2", "egress", taken)):
        assert name_error(name) is None and len(name) <= 63
    assert name_error("develop\n") is not None


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("app", "backend", True),
        ("app.kubernetes.io/name", "coredns", True),
        ("app", "", True),
        ("app", "x\n- evil: true", False),
        ("app", "a" * 64, False),
        ("app", "-leading", False),
        ("bad key", "v", False),
        ("UPPER.example.com/x", "v", False),
        ("app", "'; rm -rf /", False),
        ("app", "backend\n", False),
        ("app\n", "backend", False),
    ],
)
def test_label_validation(key: str, value: str, ok: bool) -> None:
    assert (label_error(key, value) is None) is ok


def test_hostile_labels_are_refused_and_never_reach_yaml() -> None:
    hostile = "x\n- kind: ClusterRoleBinding"
    good = pod("develop", app="web")
    evil = pod("develop", app=hostile)
    evil_ns = pod("evil ns\n", app="api")
    rows = [conn(evil, good, 80), conn(good, evil, 81), conn(evil_ns, good, 82),
            conn(pod("develop", app="ok"), good, 83)]
    result = synthesize(frame(rows), groups_of([good, evil, evil_ns]), ["develop"])
    text = to_yaml(render(result.policies))
    assert "ClusterRoleBinding" not in text and "evil" not in text
    assert any("refused" in n.message for n in result.notes)
    assert all("\n" not in n.message for n in result.notes)
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        validate_manifest(doc)
    assert "allow-web-ingress" in {d["metadata"]["name"] for d in docs}


def test_render_refuses_an_invalid_selector_even_if_synthesis_let_it_through() -> None:
    bad = PolicySpec("allow-x-ingress", "develop", "allow", ("ingress",),
                     Selector(match_labels=(("app", "a b"),)))
    with pytest.raises(VerificationError, match="invalid manifest"):
        render_policy(bad)


@pytest.mark.parametrize("flavor", ["kubernetes", "cilium", "calico"])
def test_every_flavour_renders_valid_manifests(flavor: str) -> None:
    a, b = pod("shop", app="a"), pod("shop", app="b")
    rows = [conn(a, b, 8080), conn(pod("other", app="c"), b, 8080)]
    result = synthesize(frame(rows), groups_of([a, b, pod("other", app="c")]), ["shop"])
    docs = list(yaml.safe_load_all(to_yaml(render(result.policies, flavor))))  # type: ignore[arg-type]
    kinds = {d["kind"] for d in docs}
    expected = {"kubernetes": {"NetworkPolicy"}, "cilium": {"CiliumNetworkPolicy"},
                "calico": {"StagedKubernetesNetworkPolicy"}}[flavor]
    assert kinds == expected
    for doc in docs:
        validate_manifest(doc)


def test_cilium_dns_guardrail_enables_the_dns_proxy() -> None:
    result = synthesize(frame([conn(pod("a", app="x"), pod("a", app="y"), 80)]),
                        groups_of([pod("a", app="x"), pod("a", app="y")]), ["a"])
    dns = render(result.policies, "cilium")[0]
    (rule,) = dns["spec"]["egress"]
    assert rule["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}
    assert {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                            "k8s:k8s-app": "kube-dns"}} in rule["toEndpoints"]
    deny = render(result.policies, "cilium")[-1]
    assert deny["spec"] == {"endpointSelector": {}, "ingress": [{}], "egress": [{}]}
