"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
from report_samples import hostile_model

from analyzer.report.model import ReportModel


@pytest.fixture()
def hostile() -> ReportModel:
    return hostile_model()
