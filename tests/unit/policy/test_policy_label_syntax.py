"""Label and port-name syntax checks must reject values `re.match` with `$` would let through."""

from __future__ import annotations

import pytest

from analyzer.policy.validate import label_key_error, label_value_error


@pytest.mark.parametrize("value", ["backend\n", "a" * 64, "-backend", "back end", "x/y"])
def test_invalid_label_values_are_rejected(value: str) -> None:
    assert label_value_error(value) is not None


@pytest.mark.parametrize("key", ["app\n", "example.com\n/app", "/app", "a" * 64, "app!"])
def test_invalid_label_keys_are_rejected(key: str) -> None:
    assert label_key_error(key) is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [("app", "backend"), ("app.kubernetes.io/name", "web-1.2_x"), ("k8s-app", "")],
)
def test_valid_labels_pass(key: str, value: str) -> None:
    assert label_key_error(key) is None
    assert label_value_error(value) is None
