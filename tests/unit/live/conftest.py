"""Generated captures for the live-source tests (small, deterministic)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_helpers import make_capture  # noqa: E402


@pytest.fixture(scope="session")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 generated Hubble flows (`hubble observe -o jsonpb` lines)."""
    return make_capture(tmp_path_factory.mktemp("cap"))


@pytest.fixture(scope="session")
def capture_lines(capture: Path) -> list[bytes]:
    return capture.read_bytes().splitlines(keepends=True)
