"""Verification with the policy engine fails loudly; the bundle is complete and ordered."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from recommend_fixtures import seed_scenario

from analyzer.errors import VerificationError
from analyzer.policy.load import load_policies
from analyzer.recommend import Recommendation
from analyzer.recommend.bundle import SNAPSHOT, write_bundle
from analyzer.recommend.probes import make_probes
from analyzer.recommend.render import render
from analyzer.recommend.synthesize import synthesize
from analyzer.recommend.verify import Verification, rows_in_scope, rows_to_verify, verify


@pytest.fixture(scope="module")
def seed() -> tuple:
    conns, groups = seed_scenario()
    result = synthesize(conns, groups, ["develop"])
    rows, excluded = rows_to_verify(conns, ["develop"], result.uncovered)
    return conns, result, rows, excluded


def test_observed_connections_all_pass(seed: tuple) -> None:
    conns, result, rows, excluded = seed
    assert excluded == 3  # the three kubelet probe edges get no rule ...
    scope = rows_in_scope(conns, ["develop"])
    v = verify(render(result.policies), scope, uncovered=result.uncovered)
    # ... and still count: the engine allows them (traffic from the pod's own node)
    assert v.checked == v.allowed == scope.height == rows.height + 3
    assert v.ok and v.summary().startswith("verified: ")


def test_a_missing_rule_fails_loudly_naming_the_connection(seed: tuple) -> None:
    _, result, rows, _ = seed
    manifests = copy.deepcopy(render(result.policies))
    backend = next(m for m in manifests if m["metadata"]["name"] == "allow-backend-ingress")
    backend["spec"]["ingress"] = backend["spec"]["ingress"][:1]  # drop the Prometheus scrape
    with pytest.raises(VerificationError, match=r"would deny 2 .*monitoring/prometheus.*9090"):
        verify(manifests, rows)


def test_given_policies_take_part_and_same_names_are_replaced(tmp_path: Path, seed: tuple) -> None:
    _, result, rows, _ = seed
    deny_egress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "lockdown", "namespace": "monitoring"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
    }
    path = tmp_path / "given.yaml"
    path.write_text(yaml.safe_dump(deny_egress))
    given = load_policies(path).policies
    with pytest.raises(VerificationError, match="prometheus"):
        verify(render(result.policies), rows, given=given)
    # a given policy with the name of a recommended one is what the rollout replaces
    deny_egress["metadata"] = {"name": "default-deny", "namespace": "develop"}
    deny_egress["spec"]["podSelector"] = {}
    path.write_text(yaml.safe_dump(deny_egress))
    verify(render(result.policies), rows, given=load_policies(path).policies)


def test_cilium_manifests_fall_back_to_the_kubernetes_equivalent(seed: tuple) -> None:
    from analyzer.recommend.synthesize import SynthesisOptions

    conns, _, rows, _ = seed
    _, groups = seed_scenario()
    cil = synthesize(conns, groups, ["develop"], SynthesisOptions(cilium=True))
    plain = synthesize(conns, groups, ["develop"])
    v = verify(render(cil.policies, "cilium"), rows, ipblock_mode="cilium",
               fallback=render(plain.policies))
    assert v.allowed == rows.height


def test_probes_follow_the_seed(seed: tuple) -> None:
    conns, _, rows, _ = seed
    probes = make_probes(rows, conns, ["develop"])
    ok = [p.command for p in probes if p.expect == "succeed"]
    assert "kubectl -n develop exec deploy/frontend -- nc -zv -w 3 backend 8080" in ok
    blocked = [p.command for p in probes if p.expect == "time out"]
    assert "kubectl -n develop exec deploy/frontend -- nc -zv -w 3 production-db.production 5432" \
        in blocked
    # and one path inside the namespace that was never used (a scanner's ports are no target)
    assert any(c.startswith("kubectl -n develop exec deploy/frontend -- nc -zv -w 3 backend")
               and not c.endswith("8080") for c in blocked)


def _recommendation(flavor: str, seed: tuple) -> Recommendation:
    conns, result, rows, excluded = seed
    manifests = render(result.policies, flavor)  # type: ignore[arg-type]
    return Recommendation(
        flavor=flavor, namespaces=("develop",), policies=result.policies,
        manifests=tuple(manifests), notes=result.notes,
        verification=Verification(rows.height, rows.height, 42, "test", excluded),
        probes=tuple(make_probes(rows, conns, ["develop"])),
        denied=({"src_group": "a", "dst_group": "b", "protocol": "TCP", "dst_port": 5432,
                 "connections": 3},),
        anomalies=(),
    )


@pytest.mark.parametrize("flavor", ["kubernetes", "cilium", "calico"])
def test_bundle_contents_and_order(tmp_path: Path, seed: tuple, flavor: str) -> None:
    rec = _recommendation(flavor, seed)
    write_bundle(rec, tmp_path / "out")
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    policy_files = [n for n in names if n[:2].isdigit()]
    assert policy_files[0].endswith("-allow-dns-egress.yaml")
    assert policy_files[-1].endswith("-default-deny.yaml")
    assert len(policy_files) == len(rec.manifests)
    for f in policy_files:
        (doc,) = list(yaml.safe_load_all((out / f).read_text()))
        assert f.endswith(f"-{doc['metadata']['name']}.yaml")
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert kustomization["resources"] == policy_files
    rollout = (out / "ROLLOUT.md").read_text()
    assert SNAPSHOT in rollout and "kubectl get networkpolicy" in rollout
    assert rollout.index("allow-dns-egress.yaml") < rollout.index("default-deny.yaml")
    assert "production-db.production 5432   # expect: time out" in rollout
    if flavor == "cilium":
        assert "policy-audit-mode" in rollout and "--verdict AUDIT" in rollout
    if flavor == "calico":
        assert "staged" in rollout.lower()
    else:
        assert "hubble observe --namespace develop --verdict DROPPED" in rollout
    rollback = (out / "rollback.sh").read_text().splitlines()
    deletes = [line for line in rollback if " delete " in line]
    assert "default-deny" in deletes[0] and "allow-dns-egress" in deletes[-1]
    assert any(SNAPSHOT in line and "apply" in line for line in rollback)
    assert os.access(out / "rollback.sh", os.X_OK) and os.access(out / "probes.sh", os.X_OK)
    assert (out / "recommendation.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".bundle-")]


# --- every observed request counts (issue 13 case 2) -------------------------------------------


def _verified(rows: list[dict], ends: list, namespaces: list[str]) -> Verification:
    from recommend_fixtures import frame, groups_of

    conns = frame(rows)
    result = synthesize(conns, groups_of(ends), namespaces)
    return verify(render(result.policies), rows_in_scope(conns, namespaces),
                  uncovered=result.uncovered, allow_breaking=True)


def test_requests_without_a_rule_break_and_are_never_verified() -> None:
    from recommend_fixtures import conn, frame, pod

    a, b = pod("ns1", app="a"), pod("ns1", app="b")
    v = _verified([conn(a, b, 8080), conn(a, b, None, "ICMPv4")], [a, b], ["ns1"])
    assert (v.checked, v.allowed, v.ok) == (2, 1, False)
    (broken,) = v.breaking
    assert broken.protocol == "ICMPv4" and "no port a policy can name" in broken.reason
    assert v.summary().startswith("NOT verified: 1/2 observed request edges allowed")
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "ns1"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    with pytest.raises(VerificationError, match="would deny 1 observed"):
        verify([deny], rows_in_scope(frame([conn(a, b, 8080)]), ["ns1"]))


def test_aggregated_addresses_are_counted_as_unreplayable_not_broken() -> None:
    from recommend_fixtures import conn, entity, pod

    app = pod("develop", app="app")
    rows = [conn(app, entity("public-network"), 443), conn(entity("private-network"), app, 8080),
            conn(app, pod("develop", app="db"), 5432)]
    v = _verified(rows, [app, pod("develop", app="db")], ["develop"])
    assert (v.checked, v.allowed, v.unreplayable, v.ok) == (3, 1, 2, True)
    assert v.summary() == ("verified: 1/3 observed request edges allowed, 2 without an address "
                           "to replay (see notes)")


def test_a_pod_without_labels_gets_namespace_wide_rules_on_the_observed_port() -> None:
    from recommend_fixtures import conn, frame, groups_of, pod

    web, bare = pod("shop", app="web"), pod("shop")
    other = pod("other", app="client")
    rows = [conn(web, bare, 9080), conn(bare, web, 8080), conn(other, bare, 9080)]
    result = synthesize(frame(rows), groups_of([web, bare, other]), ["shop"])
    docs = {m["metadata"]["name"]: m["spec"] for m in render(result.policies)}
    assert docs["allow-unlabelled-pods-ingress"] == {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}},
             "podSelector": {"matchLabels": {"app": "client"}}},
            {"podSelector": {"matchLabels": {"app": "web"}}}],
            "ports": [{"protocol": "TCP", "port": 9080}]}],
    }
    assert docs["allow-unlabelled-pods-egress"]["egress"] == [
        {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert docs["allow-web-egress"]["egress"] == [
        {"to": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 9080}]}]
    assert not any("refused" in n.message for n in result.notes)
    v = _verified(rows, [web, bare, other], ["shop"])
    assert v.ok and v.checked == v.allowed == 3
