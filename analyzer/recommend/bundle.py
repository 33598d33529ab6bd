"""A reviewable rollout bundle: one file per policy, kustomization, ROLLOUT.md, rollback.sh.

Apply order is part of the safety story: the DNS guardrail and the allows go in before the
default-deny, so no pod is ever cut off between two ``kubectl apply`` calls. Rollback removes
in the reverse order (default-deny first) and restores the snapshot the rollout step took.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import ConfigError
from analyzer.k8s.yaml_io import safe_dump
from analyzer.present.text import port_text, printable
from analyzer.recommend.render import to_yaml

if TYPE_CHECKING:
    from analyzer.recommend import Recommendation
    from analyzer.recommend.verify import Verification

__all__ = ["SNAPSHOT", "apply_command", "bundle_files", "write_bundle"]

SNAPSHOT = "pre-change-networkpolicies.yaml"
_RESOURCE = {
    "NetworkPolicy": "networkpolicy",
    "CiliumNetworkPolicy": "ciliumnetworkpolicy",
    "StagedKubernetesNetworkPolicy": "stagedkubernetesnetworkpolicies.projectcalico.org",
}
_SNAPSHOT_KINDS = {
    "kubernetes": "networkpolicy",
    "cilium": "networkpolicy,ciliumnetworkpolicy",
    "calico": "networkpolicy,stagedkubernetesnetworkpolicies.projectcalico.org",
}


def _order(manifests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # DNS guardrail, then allows, then default-deny: never a window without DNS or allows.
    def rank(m: dict[str, Any]) -> int:
        name = m["metadata"]["name"]
        return 0 if name == "allow-dns-egress" else 2 if name == "default-deny" else 1

    return sorted(manifests, key=rank)


def _file_name(index: int, manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    return f"{index:02d}-{meta['namespace']}-{meta['name']}.yaml"


def bundle_files(rec: Recommendation) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The policy files of the bundle of ``rec``, per namespace in apply order:
    ``((namespace, (file, ...)), ...)``. Namespaces come in the order their first file is
    applied; within one, the DNS guardrail and the allows precede the default-deny, so one
    ``kubectl apply`` per namespace never leaves a pod cut off. The names are the ones
    `write_bundle` writes (the rollout steps of ROLLOUT.md and the report use this)."""
    manifests = _order(list(rec.manifests))
    per_ns: dict[str, list[str]] = {}
    for i, m in enumerate(manifests):
        per_ns.setdefault(str(m["metadata"]["namespace"]), []).append(_file_name(i, m))
    return tuple((ns, tuple(files)) for ns, files in per_ns.items())


def apply_command(files: Sequence[str]) -> str:
    """One ``kubectl apply`` of ``files`` (relative to the bundle directory)."""
    return "kubectl apply " + " ".join(f"-f {shlex.quote(f)}" for f in files)


def write_bundle(rec: Recommendation, out_dir: Path) -> list[Path]:
    """Write the bundle for ``rec`` into ``out_dir`` (created; existing bundle files replaced).

    Returns the written paths. Files are written to a temporary directory and moved in, so a
    failure leaves no half-written bundle.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    manifests = _order(list(rec.manifests))
    files: dict[str, str] = {}
    names = [_file_name(i, m) for i, m in enumerate(manifests)]
    for name, manifest in zip(names, manifests, strict=True):
        files[name] = to_yaml([manifest])
    files["kustomization.yaml"] = safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": names,
        },
        sort_keys=False,
    )
    files["ROLLOUT.md"] = _rollout(rec, manifests)
    files["rollback.sh"] = _rollback(rec, manifests)
    files["probes.sh"] = _probes(rec)
    files["recommendation.json"] = json.dumps(
        {k: v for k, v in rec.to_json().items() if k != "manifests"}, indent=2, default=str
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".bundle-") as tmp:
            for name, text in files.items():
                path = Path(tmp) / name
                path.write_text(text, encoding="utf-8")
                if name.endswith(".sh"):
                    path.chmod(0o755)
            for name in files:
                os.replace(Path(tmp) / name, out_dir / name)
                written.append(out_dir / name)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot write the bundle: {exc}") from exc
    return written


def _audit_steps(flavor: str, namespaces: str) -> list[str]:
    if flavor == "cilium":
        return [
            "Cilium supports an audit mode: policy verdicts are logged as AUDIT instead of "
            "dropping.",
            "",
            "```sh",
            "cilium config set policy-audit-mode true   # or per endpoint: "
            "cilium-dbg endpoint config <id> PolicyAuditMode=Enabled",
            "kubectl apply -k .",
            f"hubble observe {namespaces} --verdict AUDIT --last 1000   # would-be drops",
            "# when nothing legitimate shows up for a full business cycle:",
            "cilium config set policy-audit-mode false",
            "```",
        ]
    if flavor == "calico":
        return [
            "These are Calico *staged* policies (`StagedKubernetesNetworkPolicy`, "
            "`stagedAction: Set`): Calico evaluates and reports them but does not enforce them.",
            "",
            "```sh",
            "kubectl apply -k .",
            "# watch flow logs (Whisker / Goldmane): staged verdicts show in policies.pending;",
            "# a pending deny on legitimate traffic means a rule is missing.",
            "```",
            "",
            "To enforce, promote them (Calico Enterprise/Cloud UI), or apply the Kubernetes "
            "flavour of the same recommendation: `analyzer recommend --flavor kubernetes --out "
            "DIR` with the same inputs.",
        ]
    return [
        "Kubernetes NetworkPolicy has no audit mode. If the CNI is Cilium, render the Cilium "
        "flavour and use policy-audit-mode; if it is Calico, render the Calico flavour (staged "
        "policies). Otherwise roll out to a staging copy of the namespace first.",
    ]


def _verification_lines(v: Verification) -> list[str]:
    lines = [
        f"Replayed every observed request edge of the namespaces against {v.method}: {v.summary()}."
    ]
    if v.breaking:
        lines += ["", "**Written with --allow-breaking. Applying these policies denies:**", ""]
        lines += [f"- {b.describe()}" for b in v.breaking]
    return lines


def _rollout(rec: Recommendation, manifests: list[dict[str, Any]]) -> str:
    ns_flags = " ".join(f"--namespace {shlex.quote(ns)}" for ns in rec.namespaces)
    kinds = _SNAPSHOT_KINDS[rec.flavor]
    v = rec.verification
    lines = [
        f"# Rollout: {len(manifests)} {rec.flavor} policies for {', '.join(rec.namespaces)}",
        "",
        "Generated by `analyzer recommend` from observed flows"
        + (
            f" ({rec.window[0]:%Y-%m-%d %H:%M} to {rec.window[1]:%Y-%m-%d %H:%M} UTC)."
            if rec.window[0] and rec.window[1]
            else "."
        ),
        "Every allow rule carries its evidence in the `analyzer.io/evidence` annotation.",
        "",
        "## Verification before writing",
        "",
        *(_verification_lines(v) if v else ["Verification was skipped."]),
        "",
        "## 1. Snapshot the current policies",
        "",
        "```sh",
        f"kubectl get {kinds} -A -o yaml > {SNAPSHOT}",
        "```",
        "",
        "`rollback.sh` restores this snapshot.",
        "",
        "## 2. Audit first",
        "",
        *_audit_steps(rec.flavor, ns_flags),
        "",
        "## 3. Apply one namespace at a time",
        "",
        "One command per namespace; in each, the DNS guardrail and allow policies come before "
        "the default-deny, so nothing is cut off in between. Watch (step 4) before the next:",
        "",
        "```sh",
        *[f"{apply_command(files)}   # {ns}" for ns, files in bundle_files(rec)],
        "```",
        "",
        "(`kubectl apply -k .` applies the same set at once.)",
        "",
        "## 4. Watch",
        "",
        "```sh",
        f"hubble observe {ns_flags} --verdict DROPPED --follow"
        if rec.flavor != "calico"
        else "# Calico: flow logs with action=deny for these namespaces (Whisker, Goldmane)",
        "kubectl get events -A --field-selector reason=Unhealthy   # failing probes after apply",
        "```",
        "",
        "## 5. Try to break the rules",
        "",
        "Run `./probes.sh`: observed paths must connect, unobserved ones must time out.",
        "",
        "```sh",
        *[f"{p.command}   # expect: {p.expect}" for p in rec.probes],
        "```",
        "",
        "## 6. Roll back",
        "",
        "`./rollback.sh` deletes these policies in reverse order (default-deny first) and "
        f"re-applies `{SNAPSHOT}`.",
        "",
        "## Notes",
        "",
        *[
            f"- **{n.level}** {n.namespace + ': ' if n.namespace else ''}{n.message}"
            for n in rec.notes
        ],
    ]
    if rec.denied:
        lines += ["", "## Denied flows (stay denied)", ""]
        lines += [
            f"- {d.get('src_group')} -> {d.get('dst_group')} {d.get('protocol')}/"
            f"{d.get('dst_port')}: {d.get('connections')} connection(s)"
            for d in rec.denied
        ]
    if rec.anomalies:
        lines += [
            "",
            "## Anomalous edges"
            + (" (included)" if any("included" in n.message for n in rec.notes) else " (left out)"),
            "",
        ]
        lines += [
            f"- {a.get('src_name')} -> {a.get('dst_name')} "
            f"{port_text(a.get('protocol'), a.get('dst_port'))} ({a.get('rule') or 'model'}, "
            f"score {a.get('score')}): {a.get('connections')} connection(s)"
            for a in rec.anomalies
        ]
    return "\n".join(printable(line) for line in lines) + "\n"


def _rollback(rec: Recommendation, manifests: list[dict[str, Any]]) -> str:
    lines = [
        "#!/bin/sh",
        "# Remove the recommended policies in reverse apply order, then restore the snapshot.",
        "set -eu",
        'cd "$(dirname "$0")"',
    ]
    for m in reversed(manifests):
        meta = m["metadata"]
        resource = _RESOURCE[m["kind"]]
        lines.append(
            f"kubectl -n {shlex.quote(meta['namespace'])} delete --ignore-not-found "
            f"{resource}/{shlex.quote(meta['name'])}"
        )
    lines += [
        f"if [ -f {SNAPSHOT} ]; then",
        f"  kubectl apply -f {SNAPSHOT}",
        "else",
        f'  echo "no {SNAPSHOT}: nothing to restore" >&2',
        "fi",
    ]
    return "\n".join(lines) + "\n"


def _probes(rec: Recommendation) -> str:
    lines = [
        "#!/bin/sh",
        "# Observed paths must connect; unobserved ones must time out (exit 1 on a surprise).",
        "set -u",
        "fail=0",
    ]
    for p in rec.probes:
        if p.expect == "succeed":
            lines.append(
                f'{p.command} || {{ echo "FAIL (expected to connect): {_sh(p.reason)}"; fail=1; }}'
            )
        else:
            lines.append(
                f'{p.command} && {{ echo "FAIL (expected to time out): {_sh(p.reason)}"; fail=1; }}'
            )
    lines.append("exit $fail")
    return "\n".join(lines) + "\n"


def _sh(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in " ./:-_()")
