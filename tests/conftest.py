"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    candidates = [os.environ.get("ANALYZER_SHARED"), str(REPO_ROOT.parent / "shared")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "DESIGN.md").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared directory beside the checkout (samples, oracle); skip when absent."""
    found = _shared_dir()
    if found is None:
        pytest.skip("../shared is not beside this checkout (samples and oracle live there)")
    return found
