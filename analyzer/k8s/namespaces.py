"""Namespaces a command may be asked about: the known ones, and the system ones.

A namespace given with ``--namespace`` must be known: seen in the flows (either end of any
flow) or in the inventory, or named by the policies given. An unknown one is a typo far more
often than a namespace without traffic, and answering for it (an empty report, a default-deny
for a namespace that does not exist) would be a silent surprise: it is a usage error, with
the closest known name.

System namespaces run the cluster itself (DNS, the CNI's agents and operators, node leases):
a default-deny there can take every workload down with it, so ``recommend`` writes policies
for them only on explicit request.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import polars as pl

from analyzer.errors import UsageError

__all__ = [
    "SYSTEM_NAMESPACES",
    "SYSTEM_PREFIXES",
    "is_system_namespace",
    "namespaces_in",
    "require_known",
]

# Kubernetes' own, then the CNIs' (Cilium in its own namespace, Calico's operator install,
# Flannel). Documented in docs/recommend.md.
SYSTEM_NAMESPACES: tuple[str, ...] = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "cilium",
    "cilium-system",
    "cilium-secrets",
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "kube-flannel",
)
# Calico Enterprise puts each component in its own tigera-* namespace (tigera-compliance,
# tigera-intrusion-detection, tigera-manager, ...); calico-* are Calico's own as well.
SYSTEM_PREFIXES: tuple[str, ...] = ("tigera-", "calico-")
MAX_SHOWN = 8


def is_system_namespace(namespace: str) -> bool:
    return namespace in SYSTEM_NAMESPACES or namespace.startswith(SYSTEM_PREFIXES)


def namespaces_in(frame: pl.LazyFrame | pl.DataFrame) -> set[str]:
    """Every namespace at either end of the rows of a flow or connection frame."""
    lf = frame.lazy()
    found = pl.concat(
        [
            lf.select(pl.col(f"{side}_namespace").alias("ns")).drop_nulls().unique()
            for side in ("src", "dst")
        ]
    ).unique()
    return {ns for ns in found.collect()["ns"].to_list() if ns}


def require_known(
    asked: Sequence[str] | None, known: Iterable[str], *, where: str = "the flows"
) -> None:
    """Raise a usage error (exit 2) for the first namespace of ``asked`` not in ``known``.

    Parameters
    ----------
    asked
        The ``--namespace`` values (None or empty: nothing to check).
    known
        Every namespace the inputs know.
    where
        What ``known`` was gathered from, for the message (``"the flow store or the
        inventory"``).
    """
    if not asked:
        return
    names = sorted(set(known))
    for ns in asked:
        if ns in names:
            continue
        close = difflib.get_close_matches(ns, names, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {close[0]}?"
        elif names:
            shown = ", ".join(names[:MAX_SHOWN]) + (", ..." if len(names) > MAX_SHOWN else "")
            hint = f"known namespaces: {shown}"
        else:
            hint = "no namespace is known at all (ingest flows first?)"
        printable = "".join(c if c.isprintable() else "?" for c in ns)[:80]
        raise UsageError(f"unknown namespace {printable!r}: not in {where}; {hint}")
