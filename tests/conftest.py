"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import S3Server, s3_server

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


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A local S3 API (moto's server) for object-store inputs; skip when moto is absent."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install '.[dev]'): no local S3 API")
    with s3_server() as server:
        yield server
