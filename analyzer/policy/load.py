"""Load policies from files or directories of YAML/JSON into the policy model.

Accepts single or multi-document YAML, JSON, ``kind: List`` (``kubectl get ... -o yaml|json``)
and top-level lists. ``networking.k8s.io/v1`` NetworkPolicy is loaded in full; the L3/L4 part
of ``cilium.io/v2`` CiliumNetworkPolicy via :mod:`analyzer.policy.cilium`; Calico's
StagedKubernetesNetworkPolicy is evaluated as a NetworkPolicy when ``include_staged`` is set.
A malformed policy becomes a :class:`PolicyProblem` (file, name, field path) and the others
still load; a file that cannot be parsed at all raises :class:`PolicyError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analyzer.errors import PolicyError
from analyzer.k8s.syntax import dns_label_error, dns_subdomain_error
from analyzer.k8s.yaml_io import ShapeError, load_json, load_yaml_all
from analyzer.policy.model import (
    NetworkPolicy,
    PolicyProblem,
    Unsupported,
)
from analyzer.policy.parse import (
    _meta,
    parse_networkpolicy,
)
from analyzer.policy.validate import (
    Collector,
)

__all__ = [
    "STAGED_KUBERNETES_KIND",
    "LoadResult",
    "load_policies",
    "parse_documents",
    "parse_networkpolicy",
    "read_documents",
    "require_policies",
]

# evaluated as a NetworkPolicy only with ``include_staged`` (Calico does not enforce it)
STAGED_KUBERNETES_KIND = "StagedKubernetesNetworkPolicy"

_SUFFIXES = {".yaml", ".yml", ".json"}
K8S_API = "networking.k8s.io/v1"
_PLAIN = re.compile(r"[A-Za-z0-9./-]{0,100}")
CALICO_API = "projectcalico.org/v3"


@dataclass(slots=True)
class LoadResult:
    """Policies that loaded, problems that kept others out, and what is not evaluated.

    ``files`` counts the files read; ``empty_lists`` the ``kind: List`` documents without
    items (what ``kubectl get networkpolicy -A -o yaml`` prints for a cluster without any).
    """

    policies: list[NetworkPolicy] = field(default_factory=list)
    problems: list[PolicyProblem] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)
    files: int = 0
    empty_lists: int = 0
    # the decoded documents of every file, in file order (the report shows them as YAML)
    documents: list[Any] = field(default_factory=list)
    paths: tuple[str, ...] = ()  # the files and directories as given

    def warnings(self) -> list[str]:
        """One line per problem and per unsupported feature, for a person (the CLI prefixes
        ``warning: ``)."""
        return [f"policy not loaded: {p}" for p in self.problems] + [
            str(u) for u in self.unsupported
        ]


def load_policies(
    paths: str | Path | Sequence[str | Path], *, include_staged: bool = False
) -> LoadResult:
    """Load every policy under ``paths`` (files, or directories searched recursively).

    Parameters
    ----------
    paths
        Files or directories; in directories only ``*.yaml``, ``*.yml``, ``*.json`` are read.
    include_staged
        Evaluate Calico StagedKubernetesNetworkPolicy as if it were enforced.

    Raises
    ------
    PolicyError
        A path that does not exist or a file that is not valid YAML/JSON.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    result = LoadResult(paths=tuple(str(p) for p in paths))
    for file in _files(paths):
        docs = read_documents(file)
        result.documents.extend(docs)
        result.files += 1
        result.empty_lists += sum(
            1 for d in docs
            if isinstance(d, dict) and str(d.get("kind", "")).endswith("List")
            and not d.get("items")
        )
        parse_documents(docs, str(file), result, include_staged=include_staged)
    _drop_duplicates(result)
    return result


def require_policies(result: LoadResult, paths: str | Path | Sequence[str | Path]) -> None:
    """Refuse a ``--policies`` input from which no policy loaded.

    Auditing or simulating "0 policies" because the file held a Deployment, or only broken
    policies, would report everything as open or allowed. The one exception is an input that
    is nothing but empty ``kind: List`` documents: ``kubectl get networkpolicy -A -o yaml`` of
    a cluster that has no policy says exactly that, and auditing it is meaningful.

    Raises
    ------
    PolicyError
        No policy loaded (one line: what was found instead).
    """
    if result.policies or (result.empty_lists and not result.problems and not result.unsupported):
        return
    names = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
    where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    if result.files == 0:
        why = "no *.yaml, *.yml or *.json file found"
    elif result.problems:
        count = len({(p.file, p.policy) for p in result.problems})
        why = f"{count} invalid polic{'y' if count == 1 else 'ies'}, e.g. {result.problems[0]}"
    elif result.unsupported:
        why = f"nothing that can be evaluated ({result.unsupported[0]})"
    else:
        why = "the files hold no document"
    raise PolicyError(f"no policy loaded from {where}: {why}")


def _drop_duplicates(result: LoadResult) -> None:
    """One policy per kind and ``namespace/name``, as in a cluster; later copies are reported."""
    seen: dict[tuple[str, str], NetworkPolicy] = {}
    kept: list[NetworkPolicy] = []
    for policy in result.policies:
        key = (policy.kind, policy.key)
        first = seen.get(key)
        if first is None:
            seen[key] = policy
            kept.append(policy)
            continue
        result.problems.append(
            PolicyProblem(
                policy.source,
                policy.key,
                "metadata.name",
                f"duplicate {policy.kind} {policy.key} (first loaded from {first.source}); "
                "this copy is ignored",
            )
        )
    result.policies[:] = kept


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
        elif path.is_file():
            yield path
        else:
            raise PolicyError("no such file or directory", file=str(path))


def read_documents(file: Path) -> list[Any]:
    """The decoded documents of one policy file (YAML or JSON), shape-checked.

    Raises
    ------
    PolicyError
        Unreadable, not YAML/JSON, nested too deeply, or a YAML alias bomb (one line).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read: {exc}", file=str(file)) from exc
    stripped = text.lstrip()
    try:
        if stripped[:1] in ("{", "["):
            try:
                return [load_json(text)]
            except json.JSONDecodeError:
                pass  # YAML flow style also starts with { or [; let the YAML parser decide
        return load_yaml_all(text)
    except ShapeError as exc:
        raise PolicyError(f"not loaded: {exc}", file=str(file)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"not valid YAML/JSON{where}: {problem}", file=str(file)) from exc


def _flatten(docs: Iterable[Any]) -> Iterator[Any]:
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            yield from _flatten(doc)
        elif isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List"):
            yield from _flatten(doc.get("items") or [])
        else:
            yield doc


def parse_documents(
    docs: Iterable[Any], file: str, result: LoadResult, *, include_staged: bool = False
) -> None:
    """Parse already-decoded documents of ``file`` into ``result``."""
    from analyzer.policy.cilium import parse_cilium_policy

    for index, doc in enumerate(_flatten(docs)):
        if not isinstance(doc, dict):
            result.problems.append(
                PolicyProblem(file, "", f"document[{index}]", "not a Kubernetes object")
            )
            continue
        kind, api = str(doc.get("kind", "")), str(doc.get("apiVersion", ""))
        col = Collector(file, _label(doc) or f"{_shown(kind) or 'document'}[{index}]")
        policy: NetworkPolicy | None | list[NetworkPolicy] = None
        if kind == "NetworkPolicy" and api == K8S_API:
            policy = parse_networkpolicy(doc, col)
        elif kind in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"):
            policy = parse_cilium_policy(doc, col)
        elif kind == STAGED_KUBERNETES_KIND:
            if include_staged:
                policy = parse_networkpolicy(doc, col, kind=kind)
            else:
                col.skip(
                    "",
                    "staged policy",
                    "Calico staged policy is not enforced; "
                    "use --staged to evaluate it as a NetworkPolicy",
                )
        elif kind in ("StagedNetworkPolicy", "StagedGlobalNetworkPolicy"):
            col.skip("", "staged policy", f"Calico {kind} (Calico policy model) is not evaluated")
        elif api.startswith(("projectcalico.org/", "crd.projectcalico.org/")):
            col.skip("", "calico policy", f"Calico {_shown(kind)} is not evaluated")
        elif "Policy" in kind:
            col.skip("", "policy kind", f"{_shown(api)} {_shown(kind)} is not evaluated")
        else:
            col.skip("", "not a policy", f"{_shown(api) or '?'} {_shown(kind) or '?'} ignored")
        result.problems.extend(col.problems)
        result.unsupported.extend(col.unsupported)
        if col.problems:
            continue
        if isinstance(policy, list):
            result.policies.extend(policy)
        elif policy is not None:
            result.policies.append(policy)




def _shown(value: str) -> str:
    """A kind or apiVersion as it may appear in a message: as is when it looks like one,
    else quoted and cut (no terminal escapes or markup from a hostile file)."""
    return value if _PLAIN.fullmatch(value) else repr(value[:60])


def _label(doc: dict[str, Any]) -> str:
    """``namespace/name`` for messages, from valid names only (hostile ones are reported by
    field path, never echoed as the policy's name)."""
    meta = _meta(doc)
    name, namespace = meta.get("name"), meta.get("namespace")
    if dns_subdomain_error(name) is not None:
        return ""
    if namespace in (None, ""):
        return str(name)
    return f"{namespace}/{name}" if dns_label_error(namespace) is None else ""










