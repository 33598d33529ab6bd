"""Fixtures for the audit tests (helpers live in audit_shop.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from audit_shop import FIXTURES, shop_connections

from analyzer.connections import Connections
from analyzer.policy.load import load_policies


@pytest.fixture(scope="session")
def shop_policies() -> list[Any]:
    loaded = load_policies(FIXTURES / "shop-policies.yaml")
    assert not loaded.problems
    return list(loaded.policies)


@pytest.fixture(scope="session")
def shop_conns() -> Connections:
    return shop_connections()


@pytest.fixture(scope="session")
def shop_truth() -> dict[str, Any]:
    return json.loads((FIXTURES / "shop-truth.json").read_text())
