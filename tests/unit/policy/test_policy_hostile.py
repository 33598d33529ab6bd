"""Hostile and faulty policy files (issue 16 items 9-12, issue 13 item 7): one-line errors,
unknown fields with a suggestion, the API server's checks on ipBlock and names, and no silent
"0 policies". Every input is built here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzer.errors import PolicyError
from analyzer.k8s.yaml_io import MAX_DEPTH, SafeDumper, SafeLoader
from analyzer.policy.load import LoadResult, load_policies, parse_documents, require_policies


def _np(spec: dict[str, Any], name: str = "p", ns: str = "shop", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": spec, **extra}


def _load(*docs: dict[str, Any]) -> LoadResult:
    result = LoadResult()
    parse_documents(list(docs), "test.yaml", result)
    return result


# --- item 9: nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [500, 999, 5000])
def test_deep_yaml_is_one_line_error(tmp_path: Path, levels: int) -> None:
    # A policy whose port list is nested `levels` deep (block style), as in the issue.
    lines = ["apiVersion: networking.k8s.io/v1", "kind: NetworkPolicy",
             "metadata: {name: deep, namespace: shop}", "spec:", "  podSelector: {}",
             "  ingress:", "  - ports:"]
    lines += [" " * (4 + i) + "-" for i in range(levels)] + [" " * (5 + levels) + "- 80"]
    path = tmp_path / "deep.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "nested" in message or "YAML" in message


@pytest.mark.parametrize("levels", [500, 100_000])
def test_deep_json_is_one_line_error(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"kind": "List", "items": ' + "[" * levels + "]" * levels + "}")
    with pytest.raises(PolicyError, match=f"nested more than {MAX_DEPTH} levels deep"):
        load_policies(path)


def test_nesting_within_the_limit_still_loads(tmp_path: Path) -> None:
    # kind: List of lists of lists: deep, but far from the limit, as some tools write it.
    doc = [[[_np({"podSelector": {}}, name=f"p{i}")]] for i in range(3)]
    path = tmp_path / "nested.json"
    path.write_text(json.dumps(doc))
    assert len(load_policies(path).policies) == 3


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyError, match="expand"):
        load_policies(path)


def test_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("kind: List\nitems: &x [*x]\n")
    with pytest.raises(PolicyError, match="nested"):
        load_policies(path)


def test_c_yaml_classes_are_used_when_available() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml: the pure classes are the right fallback")
    assert SafeLoader is yaml.CSafeLoader and SafeDumper is yaml.CSafeDumper


# --- item 10: unknown fields --------------------------------------------------------------------


def test_unknown_spec_field_is_reported_with_a_suggestion() -> None:
    result = _load(_np({"podSelector": {}, "ingres": [{"from": [{"podSelector": {}}]}]}))
    assert result.policies == []  # not loaded as a deny-all
    [problem] = result.problems
    assert problem.field_path == "spec.ingres"
    assert "unknown field 'ingres'" in problem.message
    assert "did you mean 'ingress'?" in problem.message


@pytest.mark.parametrize(
    ("doc", "path", "suggestion"),
    [
        (_np({"podSelector": {}}, specs=1), "specs", "spec"),
        (_np({"podSelector": {}, "policyType": ["Ingress"]}), "spec.policyType", "policyTypes"),
        (_np({"podselector": {}}), "spec.podselector", "podSelector"),
        (_np({"podSelector": {}, "ingress": [{"form": []}]}), "spec.ingress[0].form", "from"),
        (_np({"podSelector": {}, "ingress": [{"from": [{"podSelectr": {}}]}]}),
         "spec.ingress[0].from[0].podSelectr", "podSelector"),
        (_np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
            "cidr": "0.0.0.0/0", "excpt": ["169.254.169.254/32"]}}]}]}),
         "spec.egress[0].to[0].ipBlock.excpt", "except"),
        (_np({"podSelector": {"matchLabel": {"app": "x"}}}), "spec.podSelector.matchLabel",
         "matchLabels"),
        (_np({"podSelector": {"matchExpressions": [
            {"key": "app", "operater": "In", "values": ["a"]}]}}),
         "spec.podSelector.matchExpressions[0].operater", "operator"),
        (_np({"podSelector": {}, "ingress": [{"ports": [{"prot": 80}]}]}),
         "spec.ingress[0].ports[0].prot", "port"),
    ],
)
def test_unknown_fields_everywhere(doc: dict[str, Any], path: str, suggestion: str) -> None:
    result = _load(doc)
    assert result.policies == []
    found = {p.field_path: p.message for p in result.problems}
    assert path in found, found
    assert f"did you mean {suggestion!r}?" in found[path]


def test_unknown_metadata_field_and_known_ones() -> None:
    known = _np({"podSelector": {}})
    known["metadata"].update(
        {"uid": "1", "resourceVersion": "2", "generation": 1, "labels": {"a": "b"},
         "annotations": {}, "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": []}
    )
    assert len(_load(known).policies) == 1
    bad = _np({"podSelector": {}})
    bad["metadata"]["lables"] = {"a": "b"}
    result = _load(bad)
    assert result.policies == []
    assert "did you mean 'labels'?" in result.problems[0].message


def test_cilium_rule_typo_is_a_problem_not_an_allow_all() -> None:
    doc = {
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "c", "namespace": "shop"},
        "spec": {"endpointSelector": {}, "ingress": [{
            "fromEndpoint": [{"matchLabels": {"app": "web"}}],
            "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
        }]},
    }
    result = _load(doc)
    assert result.policies == []
    assert "did you mean 'fromEndpoints'?" in result.problems[0].message
    # recognised but unsupported Cilium fields are still warnings, not problems
    doc["spec"]["ingress"][0] = {"fromEndpoints": [{}], "icmps": [{"fields": []}]}
    result = _load(doc)
    assert len(result.policies) == 1 and not result.problems
    assert any(u.feature == "icmps" for u in result.unsupported)


# --- item 11: ipBlock.except strictly inside cidr -------------------------------------------


def test_except_equal_to_cidr_is_rejected() -> None:
    result = _load(_np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]}))
    assert result.policies == []
    [problem] = result.problems
    assert problem.field_path == "spec.egress[0].to[0].ipBlock.except[0]"
    assert "strict subset" in problem.message


def test_except_equal_after_normalising_host_bits_is_rejected() -> None:
    result = _load(_np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.1.2.3/8", "except": ["10.0.0.0/8"]}}]}]}))
    assert result.policies == [] and "strict subset" in result.problems[0].message


def test_strict_subset_except_still_loads() -> None:
    result = _load(_np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["10.0.0.0/9", "10.128.0.0/9"]}}]}]}))
    assert len(result.policies) == 1 and not result.problems


# --- item 12: names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [
        ("</script><script>alert(1)</script>", "shop", "metadata.name"),
        ("ok", "</script><script>alert(1)</script>", "metadata.namespace"),
        ("Upper", "shop", "metadata.name"),
        ("a" * 254, "shop", "metadata.name"),
        ("ok", "a" * 64, "metadata.namespace"),
        ("ok", "dotted.ns", "metadata.namespace"),
        ("evil\n\x1b[31m", "shop", "metadata.name"),
        (42, "shop", "metadata.name"),
    ],
)
def test_invalid_names_are_rejected(name: Any, namespace: str, field: str) -> None:
    result = _load(_np({"podSelector": {}}, name=name, ns=namespace))
    assert result.policies == []
    problem = next(p for p in result.problems if p.field_path == field)
    # the hostile text never becomes the policy's label in messages
    assert "<script>" not in problem.policy and "\x1b" not in problem.policy
    assert "\x1b" not in str(problem) and "\n" not in str(problem)


def test_valid_names_load() -> None:
    result = _load(_np({"podSelector": {}}, name="allow.dns-egress", ns="kube-system"))
    assert [p.key for p in result.policies] == ["kube-system/allow.dns-egress"]


# --- issue 13 item 7: no policy loaded --------------------------------------------------------


def test_a_deployment_is_not_a_policy_set(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                                    "metadata": {"name": "web"}, "spec": {}}))
    loaded = load_policies(path)
    with pytest.raises(PolicyError, match=r"no policy loaded from .*deploy.yaml.*Deployment"):
        require_policies(loaded, path)


def test_only_invalid_policies_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_np({"podSelector": {}, "ingres": []})))
    with pytest.raises(PolicyError, match="1 invalid policy"):
        require_policies(load_policies(path), path)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a policy")
    with pytest.raises(PolicyError, match="no \\*.yaml"):
        require_policies(load_policies(tmp_path), tmp_path)


def test_empty_kubectl_list_is_a_cluster_without_policies(tmp_path: Path) -> None:
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": []}))
    loaded = load_policies(path)
    require_policies(loaded, path)  # no error: that is what kubectl prints for none
    assert loaded.policies == [] and loaded.empty_lists == 1


def test_warnings_have_no_doubled_prefix(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump_all([
        _np({"podSelector": {}}),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
    ]))
    lines = load_policies(path).warnings()
    assert lines and not any(line.startswith(("warning", "policy warning")) for line in lines)


def test_hostile_kind_is_quoted_in_messages() -> None:
    result = _load({"apiVersion": "v1\x1b[2J", "kind": "Evil\x1b]0;pwned\x07<script>",
                    "metadata": {"name": "x"}})
    lines = [str(u) for u in result.unsupported]
    assert lines and not any("\x1b" in line or "\x07" in line for line in lines)
    assert "\\x1b" in lines[0]


def test_a_large_file_without_aliases_is_not_a_bomb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 50 MB of real policies hold more values than the alias limit: size alone is no bomb.
    import analyzer.k8s.yaml_io as yaml_io

    monkeypatch.setattr(yaml_io, "MAX_EXPANDED_NODES", 500)
    docs = [_np({"podSelector": {"matchLabels": {"app": f"a{i}"}}}, name=f"p{i}")
            for i in range(200)]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"kind": "List", "items": docs}))
    assert len(load_policies(path).policies) == 200
    # while a small document that aliases make large is refused at the same limit
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c]\n")
    with pytest.raises(PolicyError, match="aliases expand"):
        load_policies(bomb)
