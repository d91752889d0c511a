"""The learner on the public Lemay & Fernandez Modbus attack captures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "evaluate_attacks.py"
CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"

pytestmark = pytest.mark.skipif(
    not (CAPTURES / "attacks" / "lemay_send_fake_command_modbus_6rtu.pcap").exists(),
    reason="shared attack captures not present",
)


def _evaluation():
    spec = importlib.util.spec_from_file_location("evaluate_attacks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    return _evaluation().evaluate(CAPTURES)


def test_every_attack_is_detected(rows, capsys):
    assert len(rows) == 5
    with capsys.disabled():
        print()
        for row in rows:
            print(
                f"{Path(row['capture']).name}: detected={row['detected']} "
                f"true={row['true']} false={row['false']} {row['models']}"
            )
    assert all(row["detected"] for row in rows)


def test_false_alerts_stay_few(rows):
    # The figures are reported in docs/learner.md; this guards against drift.
    # The two of the covert-channel capture are ot/cadence-change: its master
    # pauses polling for 6 s at every cycle, which 6 s of learning never saw.
    assert sum(row["false"] for row in rows) <= 4


def test_the_fake_command_is_a_first_write_by_a_new_client(rows):
    [row] = [r for r in rows if "fake_command" in r["capture"]]
    assert "ot/first-write" in row["models"]
    assert row["first"]["evidence"]["client"] == "192.168.1.101"


COVERT = CAPTURES / "attacks" / "lemay_covert_channel_4d_12s.pcap"
# The first read answered with carried data comes 6.46 s after the first
# Modbus message; before it the master only sets the RTU up (two register
# writes, a coil).
FIRST_CARRIED_READ = 6.46


def _covert_alerts(learn_for: float) -> tuple[list[dict], float]:
    """The alerts, and the time of the first message (where learning starts)."""
    from otdpi.learner import Detector, feed_captures

    detector = Detector(learn_for=learn_for)
    feed_captures(detector, [COVERT])
    return detector.alerts, detector.learn_until - learn_for


@pytest.mark.skipif(not COVERT.exists(), reason="covert-channel capture not present")
def test_the_covert_channel_is_found_in_its_first_window():
    # Learning on the part of the capture before its first attack packet.
    alerts, start = _covert_alerts(learn_for=6.4)
    [alert] = [a for a in alerts if a["model"] == "ot/covert-channel"]
    assert alert["score"] == 75
    assert [t["id"] for t in alert["techniques"]] == ["T0869", "T1001.002"]
    assert alert["evidence"]["client"] == "192.168.43.148"
    assert alert["evidence"]["targets"] == [["holding_registers", 9, 12]]
    assert alert["evidence"]["data_like"] == 12
    # One window, from the second read of the block: 33 polls of about 0.23 s.
    assert alert["ts"] - (start + FIRST_CARRIED_READ) < 33 * 0.25
    others = sorted(a["model"] for a in alerts if a is not alert)
    assert others == ["ot/cadence-change", "ot/cadence-change"]  # reported in docs


@pytest.mark.skipif(not COVERT.exists(), reason="covert-channel capture not present")
def test_a_covert_channel_running_while_learning_is_still_reported():
    alerts, _ = _covert_alerts(learn_for=150.0)
    assert [(a["model"], a["score"]) for a in alerts] == [("ot/covert-channel", 55)]
