"""Shared test settings: hypothesis profiles and the location of public captures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_CAPTURES = REPO.parent / "shared" / "captures"
FIXTURES = REPO / "fixtures"

# CI runs derandomised so a red run is reproducible; locally, explore.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def shared_captures(folder: str, pattern: str = "*.pcap*") -> list[Path]:
    """Public captures under ../shared/captures/FOLDER, or [] when absent."""
    base = SHARED_CAPTURES / folder
    return sorted(base.glob(pattern)) if base.is_dir() else []


@pytest.fixture
def require_shared_captures():
    if not SHARED_CAPTURES.is_dir():
        pytest.skip("../shared/captures is not present beside the checkout")
