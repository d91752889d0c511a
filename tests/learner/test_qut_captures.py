"""The learner on the public QUT 2017 DNP3 and S7comm attack captures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "evaluate_qut.py"
CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"
ATTACKS = CAPTURES / "attacks"

pytestmark = pytest.mark.skipif(
    not (ATTACKS / "qut_dnp3_mitm_testing_frequent.pcap").exists(),
    reason="shared QUT attack captures not present",
)

# False alerts measured (docs/learner.md); the tests guard against drift.
FALSE_AT_MOST = {
    "qut_dnp3_flooding_testing_infrequent.pcap": 0,
    "qut_dnp3_injection_testing_frequent.pcap": 0,
    "qut_dnp3_mitm_testing_frequent.pcap": 0,
    "qut_s7_changelowerthreshold_master.pcap": 0,
    "qut_s7_changeupperthreshold_master.pcap": 0,
    "qut_s7_watertankonmanu_flooding_master.pcap": 2,
    "qut_s7_conveyorbelton_flooding_hmi.pcap": 0,
}


def _evaluation():
    spec = importlib.util.spec_from_file_location("evaluate_qut", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    found = {Path(r["capture"]).name: r for r in _evaluation().evaluate(CAPTURES)}
    if len(found) < len(FALSE_AT_MOST):
        pytest.skip("some QUT captures are missing")
    return found


def test_false_alerts_stay_at_or_below_the_measured_counts(rows, capsys):
    with capsys.disabled():
        print()
        for name, row in rows.items():
            print(
                f"{name}: detected={row['detected']} true={row['true']} "
                f"false={row['false']} {row['models']}"
            )
    assert {n: r["false"] for n, r in rows.items()} == {
        n: min(r["false"], FALSE_AT_MOST[n]) for n, r in rows.items()
    }


def _specific(row, model):
    """Delay record of ``model``'s first true alert in ``row`` (fails if none)."""
    assert model in row["model_delays"], (model, row["models"])
    return row["model_delays"][model]


def test_dnp3_flooding_is_a_request_flood_within_seconds(rows):
    row = rows["qut_dnp3_flooding_testing_infrequent.pcap"]
    assert row["detected"]
    kinds = row["per_kind"]
    # Write and freeze floods by .66, unsolicited floods by the fake outstation.
    for kind in (
        "master_flooding",
        "master_flooding_freeze",
        "slave_masquerading_flooding",
    ):
        assert kinds[kind]["alerted"] == kinds[kind]["episodes"]
        # the flood starts about 9 s into the episode (ARP spoofing first)
        assert kinds[kind]["models"]["ot/request-flood"] < 15.0
    assert "T0814" in _specific(row, "ot/request-flood")["techniques"]
    # The scan that opens the day is seen 2 s after the first ARP probe.
    assert row["delay"] < 5.0


def test_dnp3_injection_is_a_restart_and_a_first_control(rows):
    row = rows["qut_dnp3_injection_testing_frequent.pcap"]
    restart = _specific(row, "ot/restart")
    assert restart["episode"] in ("injection_WarmRestart", "injection_ColdRestart")
    assert "T0816" in restart["techniques"]
    freeze = _specific(row, "ot/first-control")
    assert freeze["episode"] == "injection_FreezeObj"
    assert row["delay"] < 5.0


def test_dnp3_mitm_is_a_mac_change_at_the_first_spoofed_frame(rows):
    row = rows["qut_dnp3_mitm_testing_frequent.pcap"]
    change = _specific(row, "ot/mac-change")
    assert change["episode"].startswith("MITM_")
    assert change["into_episode"] < 5.0
    assert change["techniques"][:1] == ["T0830"]
    [alert] = [a for a in row["true_alerts"] if a["model"] == "ot/mac-change"][:1]
    assert alert["evidence"]["mac"] == "00:10:18:cb:8c:13"  # the attacker's NIC
    # Every MITM episode of the day has its own MAC-change alert, within 5 s.
    for kind, k in row["per_kind"].items():
        if kind.startswith("MITM_"):
            assert k["alerted"] == k["episodes"], kind
            assert k["models"]["ot/mac-change"] < 5.0, kind


@pytest.mark.parametrize(
    "name",
    [
        "qut_s7_changelowerthreshold_master.pcap",
        "qut_s7_changeupperthreshold_master.pcap",
    ],
)
def test_s7_threshold_change_is_a_first_write_by_a_new_client(rows, name):
    row = rows[name]
    write = _specific(row, "ot/first-write")
    assert write["delay"] == pytest.approx(0.0, abs=0.01)
    assert "T0836" in write["techniques"]
    assert row["first"]["evidence"]["client"] == "10.10.10.66"
    # The value written differs from the one the HMI polled there.
    value = _specific(row, "ot/value-out-of-range")
    assert value["delay"] == pytest.approx(0.0, abs=0.01)
    assert value["techniques"] == ["T0836"]


def test_s7_water_tank_flood_is_a_write_flood(rows):
    row = rows["qut_s7_watertankonmanu_flooding_master.pcap"]
    assert row["first"]["evidence"]["client"] == "10.10.10.66"
    flood = _specific(row, "ot/request-flood")
    assert flood["delay"] < 2.0
    assert flood["techniques"] == ["T0814", "T0806"]


@pytest.mark.xfail(
    strict=True,
    reason="the HMI-side capture of the conveyor-belt flood holds no attacker "
    "packet; the attack only shows as conveyor state bits changing inside "
    "19-item S7 read responses, and S7 bits carry no item_values (a target "
    "names the byte, not the bit) and polled values are not scored per server",
)
def test_s7_conveyor_belt_flood_seen_from_the_hmi(rows):
    assert rows["qut_s7_conveyorbelton_flooding_hmi.pcap"]["detected"]


@pytest.mark.xfail(
    strict=True,
    reason="the replay and hijack-replay floods are not in the attacker-side "
    "capture (a handful of reads and spoofed TCP segments per episode): only "
    "the new-peer alerts on .66 mark those episodes, never ot/request-flood",
)
def test_dnp3_replay_floods_are_request_floods(rows):
    kinds = rows["qut_dnp3_flooding_testing_infrequent.pcap"]["per_kind"]
    for kind in ("master_replay_flooding", "master_hijacking_replay_flooding"):
        assert "ot/request-flood" in kinds[kind]["models"]


@pytest.mark.xfail(
    strict=True,
    reason="altered DNP3 responses (MITM modification of binary inputs, "
    "counters, freeze replies) are only caught by the MAC change of the relay; "
    "with no benign DNP3 in the capture there are no learned values or "
    "response shapes to compare them with",
)
def test_dnp3_mitm_modified_responses_are_caught_by_their_content(rows):
    kinds = rows["qut_dnp3_mitm_testing_frequent.pcap"]["per_kind"]
    generic = {"ot/mac-change", "ot/new-peer", "ot/new-protocol"}
    assert set(kinds["MITM_modification_BinaryStatus"]["models"]) - generic
