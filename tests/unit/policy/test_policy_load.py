"""Loading: formats, validation problems with field paths, unsupported features reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy.compile import compile_policies
from analyzer.policy.evaluate import Endpoint, evaluate
from analyzer.policy.load import load_policies
from analyzer.policy.model import EGRESS, INGRESS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "policies"


def _expected_paths(path: Path) -> dict[str, str]:
    """The `# <field path>` comment above each malformed document, keyed by policy name."""
    out: dict[str, str] = {}
    for doc in path.read_text().split("\n---\n"):
        comment = re.search(r"^# (\S+)$", doc, re.M)
        name = re.search(r"name: ([\w-]+)", doc)
        if comment and comment.group(1) != "valid":
            out[name.group(1) if name else ""] = comment.group(1)
    return out


def test_malformed_policies_report_file_name_and_field_path() -> None:
    result = load_policies(FIXTURES / "malformed.yaml")
    assert [p.key for p in result.policies] == ["shop/good"]
    found = {
        p.policy.split("/")[-1] if "/" in p.policy else "": p.field_path for p in result.problems
    }
    expected = _expected_paths(FIXTURES / "malformed.yaml")
    assert len(expected) == 11
    for name, path in expected.items():
        assert found.get(name) == path, (name, [str(p) for p in result.problems])
    for problem in result.problems:
        assert problem.file.endswith("malformed.yaml")
        assert str(problem).startswith(f"{problem.file}: ")


def test_problem_messages_are_specific() -> None:
    by_path = {p.field_path: p.message for p in load_policies(FIXTURES / "malformed.yaml").problems}
    assert "Equals" in by_path["spec.ingress[0].from[0].podSelector.matchExpressions[0].operator"]
    assert "10.300.0.0/16" in by_path["spec.ingress[0].from[1].ipBlock.cidr"]
    assert "70000" in by_path["spec.egress[0].ports[0].port"]
    assert "below port 8080" in by_path["spec.ingress[0].ports[0].endPort"]
    assert "ICMP" in by_path["spec.ingress[0].ports[1].protocol"]
    assert "not within" in by_path["spec.ingress[0].from[0].ipBlock.except[0]"]


def test_kubectl_list_json() -> None:
    result = load_policies(FIXTURES / "kubectl-list.json")
    assert not result.problems
    by_key = {p.key: p for p in result.policies}
    assert by_key["shop/default-deny"].policy_types == (INGRESS, EGRESS)
    assert by_key["shop/allow-dns"].policy_types == (EGRESS,)


def test_directory_is_searched_and_unparsable_file_raises(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.yml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: p, namespace: n}\nspec: {podSelector: {}}\n"
    )
    (tmp_path / "notes.txt").write_text("not a policy")
    assert [p.key for p in load_policies(tmp_path).policies] == ["n/p"]
    (tmp_path / "broken.yaml").write_text("kind: NetworkPolicy\nmetadata: {name: x\n  spec: [")
    with pytest.raises(PolicyError, match=r"broken.yaml: not valid YAML/JSON at line \d+"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="no such file"):
        load_policies(tmp_path / "missing.yaml")


def test_cilium_unsupported_features_are_reported_not_ignored() -> None:
    result = load_policies(FIXTURES / "cilium-unsupported.yaml")
    assert not result.problems
    features = {(u.policy, u.feature, u.field_path) for u in result.unsupported}
    assert ("shop/l7-and-fqdn", "L7 rules", "spec.ingress[0].toPorts[0].rules") in features
    assert ("shop/l7-and-fqdn", "deny rules", "spec.ingressDeny") in features
    assert ("shop/l7-and-fqdn", "toFQDNs", "spec.egress[0].toFQDNs") in features
    assert ("shop/staged-deny", "staged policy", "") in features
    assert ("shop/staged-calico", "staged policy", "") in features
    assert [p.key for p in result.policies] == ["shop/l7-and-fqdn"]
    compiled = compile_policies(result.policies)
    web = Endpoint(namespace="shop", labels={"app": "web"})
    lb = Endpoint(namespace="shop", labels={"app": "lb"})
    world = Endpoint(kind="ip", ip="93.184.216.34", entity="world")
    # L4 part of the L7 rule is evaluated: lb reaches web on 80.
    assert evaluate(compiled, lb, web, 80, "TCP").allowed
    # The toFQDNs rule is kept as a rule matching nothing: egress is not silently opened.
    assert not evaluate(compiled, web, world, 443, "TCP").allowed


def test_staged_kubernetes_policy_evaluated_when_asked() -> None:
    result = load_policies(FIXTURES / "cilium-unsupported.yaml", include_staged=True)
    keys = {p.key: p for p in result.policies}
    assert keys["shop/staged-deny"].kind == "StagedKubernetesNetworkPolicy"
    compiled = compile_policies([keys["shop/staged-deny"]])
    a = Endpoint(namespace="shop", labels={"app": "a"})
    b = Endpoint(namespace="shop", labels={"app": "b"})
    assert not evaluate(compiled, a, b, 80).allowed


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ("{podSelector: {}}", (INGRESS,)),
        ("{podSelector: {}, egress: [{}]}", (INGRESS, EGRESS)),
        ("{podSelector: {}, egress: []}", (INGRESS,)),
        ("{podSelector: {}, policyTypes: [Egress], ingress: [{}]}", (EGRESS,)),
        ("{podSelector: {}, policyTypes: [Egress, Ingress]}", (INGRESS, EGRESS)),
    ],
)
def test_policy_types_defaulting(tmp_path: Path, spec: str, types: tuple[str, ...]) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: p, namespace: n}}\nspec: {spec}\n"
    )
    assert load_policies(f).policies[0].policy_types == types


def test_noncanonical_cidr_is_its_network(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: p, namespace: n}\nspec:\n  podSelector: {}\n"
        "  ingress: [{from: [{ipBlock: {cidr: 192.168.242.213/24}}]}]\n"
    )
    policy = load_policies(f).policies[0]
    peers = policy.ingress[0].peers
    assert peers is not None and peers[0].ip_block is not None
    assert peers[0].ip_block.cidr == "192.168.242.0/24"


def test_malformed_cilium_policies_report_field_paths() -> None:
    path = FIXTURES / "cilium-malformed.yaml"
    result = load_policies(path)
    assert [p.key for p in result.policies] == ["shop/good"]
    found = {p.policy.split("/")[-1]: p.field_path for p in result.problems}
    assert found == _expected_paths(path)


def test_quoted_port_number_and_duplicates(tmp_path: Path) -> None:
    doc = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {{name: p, namespace: n}}\nspec:\n  podSelector: {{}}\n"
        "  ingress: [{{ports: [{{port: {port}}}]}}]\n"
    )
    (tmp_path / "a.yaml").write_text(doc.format(port='"80"'))
    result = load_policies(tmp_path / "a.yaml")
    assert not result.policies
    assert result.problems[0].field_path == "spec.ingress[0].ports[0].port"
    assert "without quotes" in result.problems[0].message
    (tmp_path / "a.yaml").write_text(doc.format(port="80"))
    (tmp_path / "b.yaml").write_text(doc.format(port="443"))
    result = load_policies(tmp_path)
    assert len(result.policies) == 1 and result.policies[0].source.endswith("a.yaml")
    assert [(p.field_path, p.file.endswith("b.yaml")) for p in result.problems] == [
        ("metadata.name", True)
    ]
