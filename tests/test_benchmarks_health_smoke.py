"""The DICOM and HL7 benchmark captures are valid: tshark and otdpi agree on them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import test_dicom_tshark
import test_hl7_tshark
import tshark_oracle

import otdpi

GENERATOR = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "make_health_capture.py"
)
PACKETS = 3_000


def _generator():
    spec = importlib.util.spec_from_file_location("make_health_capture", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_generated_dicom_agrees_with_tshark(tmp_path) -> None:
    path = tmp_path / "dicom.pcap"
    assert _generator().write_capture(str(path), "dicom", PACKETS) >= PACKETS
    theirs = tshark_oracle.decode(
        tshark_oracle.request(path, test_dicom_tshark.LAYERS, "dicom")
    )
    ours = list(otdpi.read(path, protocols=["dicom"]))
    tally = test_dicom_tshark.compare_capture(path.name, ours, theirs)
    print("\n" + tally.summary())

    assert tally.compared > 1000 and not tally.tshark_only and not tally.ours_only
    assert tally.agreement == 1.0, test_dicom_tshark.describe(tally)
    assert tally.values_compared["manufacturer"] >= 600


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_generated_hl7_agrees_with_tshark(tmp_path) -> None:
    path = tmp_path / "hl7.pcap"
    assert _generator().write_capture(str(path), "hl7", PACKETS) >= PACKETS
    frames = tshark_oracle.decode(
        tshark_oracle.request(path, test_hl7_tshark.LAYERS, "hl7")
    )
    ours = list(otdpi.read(path, protocols=["hl7"]))
    tally = test_hl7_tshark.compare_capture(ours, frames)
    print(
        f"\n{path.name}: compared {tally['compared']}, agreeing {tally['agreeing']}, "
        f"ours-only {len(tally['ours_only'])}, tshark-only {len(tally['tshark_only'])}"
    )

    assert tally["compared"] > 1000 and not tally["tshark_only"]
    assert tally["agreeing"] == tally["compared"], tally["differences"][:10]
