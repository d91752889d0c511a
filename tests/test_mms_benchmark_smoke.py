"""The MMS benchmark capture generator writes MMS that tshark and otdpi agree on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import test_mms_tshark
import tshark_oracle

import otdpi

GENERATOR = Path(__file__).resolve().parents[1] / "benchmarks" / "make_mms_capture.py"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_mms_capture", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("bench") / "mms.pcap"
    return path, module.write_capture(str(path), 2_000, seed=3)


def test_every_mms_packet_is_decoded_without_fault(capture) -> None:
    path, stats = capture
    messages = [m for m in otdpi.read(path, protocols=["mms"])
                if not m.service.startswith("cotp")]
    assert len(messages) == stats["mms_packets"]
    assert all(m.status.state == "ok" for m in messages)


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark not installed")
def test_tshark_agrees_on_the_generated_capture(capture) -> None:
    path, stats = capture
    seen, agreed, differing, only_ours = test_mms_tshark.mms_agreement(path)
    assert seen == stats["mms_packets"] and agreed == seen, differing
    assert only_ours == 0
