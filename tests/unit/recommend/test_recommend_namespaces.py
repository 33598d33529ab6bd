"""Known and system namespaces (analyzer.k8s.namespaces)."""

from __future__ import annotations

import polars as pl
import pytest

from analyzer.errors import UsageError
from analyzer.k8s.namespaces import is_system_namespace, namespaces_in, require_known


@pytest.mark.parametrize(
    ("name", "system"),
    [("kube-system", True), ("kube-node-lease", True), ("cilium", True),
     ("calico-system", True), ("tigera-operator", True), ("tigera-compliance", True),
     ("kube-flannel", True), ("develop", False), ("kube-systems", False), ("my-tigera", False)],
)
def test_system_namespaces(name: str, system: bool) -> None:
    assert is_system_namespace(name) is system


def test_namespaces_in_reads_both_ends_and_skips_nulls() -> None:
    frame = pl.DataFrame({"src_namespace": ["a", None, "b"], "dst_namespace": [None, "c", ""]})
    assert namespaces_in(frame) == {"a", "b", "c"}


def test_require_known_suggests_the_closest_or_lists_them() -> None:
    require_known(None, ["develop"])
    require_known(["develop"], ["develop", "production"])
    with pytest.raises(UsageError, match=r"'devlop': not in the flows; did you mean develop\?$"):
        require_known(["devlop"], ["develop", "production"])
    with pytest.raises(UsageError, match=r"known namespaces: develop, production$"):
        require_known(["zzz"], ["develop", "production"])
    with pytest.raises(UsageError, match="no namespace is known at all"):
        require_known(["zzz"], [], where="the flow store")
    with pytest.raises(UsageError) as exc:
        require_known(["a\x1b[31mb"], ["ab"])
    assert "\x1b" not in str(exc.value)
