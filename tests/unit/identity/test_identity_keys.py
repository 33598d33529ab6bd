"""Group keys, volatile labels and Kubernetes label syntax."""

from __future__ import annotations

import polars as pl
import pytest

from analyzer.identity import (
    drop_volatile_expr,
    group_key,
    group_key_expr,
    is_valid_label_key,
    is_valid_label_value,
    is_version_like,
    is_volatile,
    parse_labels,
    stable_labels,
)


@pytest.mark.parametrize(
    "key",
    [
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
        "controller-uid",
        "job-name",
        "io.cilium.k8s.policy.serviceaccount",
    ],
)
def test_volatile_keys(key):
    assert is_volatile(key)


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "version", "tier"])
def test_stable_keys(key):
    assert not is_volatile(key)


def test_group_keys():
    assert group_key("shop", ["pod-template-hash=x", "tier=b", "app=web"], "pod", "10.0.0.1") == (
        "pod:shop:app=web,tier=b"
    )
    assert group_key(None, [], "world", "1.2.3.4") == "ip:1.2.3.4"
    assert group_key(None, [], "world", None) == "entity:world"
    assert group_key(None, [], "kube-apiserver", "172.18.0.2") == "entity:kube-apiserver"
    assert group_key(None, None, None, None) == "entity:unknown"


def test_hostile_label_cannot_forge_another_group_key():
    # one label whose value contains ',' must not equal two labels
    forged = group_key("ns", ["a=b,c=d"], "pod", None)
    honest = group_key("ns", ["a=b", "c=d"], "pod", None)
    assert forged != honest
    assert honest == "pod:ns:a=b,c=d"
    # nor a namespace with ':' another namespace's labels
    assert group_key("a:b=c", [], "pod", None) != group_key("a", ["b=c"], "pod", None)


def test_group_key_expr_agrees_with_function():
    rows = [
        ("shop", ["app=web", "pod-template-hash=x"], "pod", "10.0.0.1"),
        ("shop", ["z=1", "a=b,c", "p%=q"], "pod", None),
        (None, [], "world", "1.2.3.4"),
        (None, [], "host", "10.0.0.9"),
        (None, None, None, None),
        ("ns", [], "pod", None),
        ("a:b%", ["x=y"], "pod", None),
    ]
    df = pl.DataFrame(rows, schema=["ns", "labels", "entity", "ip"], orient="row").with_columns(
        drop_volatile_expr("labels").alias("labels")
    )
    got = df.select(group_key_expr("ns", "labels", "entity", "ip")).to_series().to_list()
    assert got == [group_key(*row) for row in rows]


def test_stable_labels_sorted_and_deduplicated():
    assert stable_labels(["b=1", "a=2", "b=1", "pod-template-hash=z"]) == ["a=2", "b=1"]
    assert parse_labels(["a=b=c", "e=", "=x"]) == {"a": "b=c", "e": ""}


@pytest.mark.parametrize(
    "key,ok",
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("example.com/a_b.c-d", True),
        ("A", True),
        ("", False),
        ("-app", False),
        ("app-", False),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Example.com/app", False),
        ("/app", False),
        ("a/b/c", False),
        ("app name", False),
        ("app\n", False),
        ("app;rm", False),
    ],
)
def test_label_key_syntax(key, ok):
    assert is_valid_label_key(key) is ok


@pytest.mark.parametrize(
    "value,ok",
    [
        ("", True),
        ("web", True),
        ("Web_1.x-y", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-web", False),
        ("web ", False),
        ("<script>", False),
        ("a,b", False),
        ('x"y', False),
        ("ünïcode", False),
    ],
)
def test_label_value_syntax(value, ok):
    assert is_valid_label_value(value) is ok


@pytest.mark.parametrize(
    "key,value,versiony",
    [
        ("version", "anything", True),
        ("app.kubernetes.io/version", "1.2", True),
        ("helm.sh/chart", "web-1.2.3", True),
        ("chart", "web", True),
        ("service.istio.io/canonical-revision", "v1", True),
        ("track", "v2", True),
        ("track", "1.25.3", True),
        ("release", "7d9c8b6f5", True),
        ("git", "3f2a9c1d0b", True),
        ("app", "web", False),
        ("app", "frontend1", False),
        ("app", "backend-primary", False),
        ("tier", "db", False),
    ],
)
def test_version_like(key, value, versiony):
    assert is_version_like(key, value) is versiony
