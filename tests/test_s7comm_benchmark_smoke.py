"""The S7comm benchmark generator writes valid S7comm that tshark and otdpi agree on."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import otdpi

GENERATOR = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "make_s7comm_capture.py"
)


def _load_generator():
    # benchmarks/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("make_s7comm_capture", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generator_is_deterministic_and_counts_packets(tmp_path: Path) -> None:
    generator = _load_generator()
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    stats = generator.write_capture(str(first), 800, seed=5)
    generator.write_capture(str(second), 800, seed=5)
    assert stats["packets"] == 800
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_and_otdpi_see_the_same_pdus(tmp_path: Path) -> None:
    path = tmp_path / "s7.pcap"
    _load_generator().write_capture(str(path), 3000, seed=9)
    rows = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            "s7comm",
            "-T",
            "fields",
            "-e",
            "s7comm.header.pduref",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    theirs = sum(len(row.split(",")) for row in rows)
    malformed = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "_ws.malformed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = [m for m in otdpi.read(path, protocols=["s7comm"]) if "rosctr" in m.fields]
    assert not malformed.strip()
    assert all(m.status.state == "ok" for m in ours)
    assert len(ours) == theirs > 1000
