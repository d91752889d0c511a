"""Self-fuzzing: the atheris targets' invariant under hypothesis, and the runner."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "fuzz"))
import targets  # noqa: E402

from otdpi.fuzzing import get_profile  # noqa: E402

MODBUS = get_profile("modbus")


@settings(max_examples=300)
@given(MODBUS.strategy())
def test_modbus_cases_dissect_or_end_malformed(case):
    targets.modbus(case.payload)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_modbus_random_bytes_dissect_or_end_malformed(data):
    targets.modbus(data)


def test_valid_modbus_cases_dissect_ok():
    """Valid cases from the profile are requests the dissector reads without fault."""
    from otdpi import dissect
    from otdpi.fuzzing.campaign import draw_cases

    for case in draw_cases(MODBUS.valid_strategy(), 200, seed=3):
        messages = dissect(case.payload, "modbus", to_server=True)
        assert len(messages) == 1, case
        assert messages[0].status.state == "ok", (case, messages[0].status)


def test_run_all_runs_each_target_for_a_bounded_time():
    pytest.importorskip("atheris")
    from otdpi.registry import available

    result = subprocess.run(
        [sys.executable, str(REPO / "fuzz" / "run_all.py"), "--seconds", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for name in available():
        assert f"{name}: exit 0" in result.stdout, name


@pytest.mark.parametrize("name", sorted(__import__("otdpi.registry").registry.available()))
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400))
def test_every_dissector_keeps_the_invariant_on_random_bytes(name, data):
    targets.target(name)(data)
