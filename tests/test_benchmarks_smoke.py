"""The benchmark capture generator writes valid Modbus/TCP that tshark and otdpi agree on."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import otdpi

GENERATOR = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "make_modbus_capture.py"
)
PACKETS = 2_000


def _load_generator():
    # benchmarks/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("make_modbus_capture", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["random", "polling"])
def capture(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / f"modbus_{request.param}.pcap"
    stats = _load_generator().write_capture(
        str(path), PACKETS, seed=7, traffic=request.param
    )
    return path, stats


def test_generator_writes_the_requested_count(capture):
    _, stats = capture
    assert stats.packets == PACKETS
    assert stats.requests == stats.responses > 0
    assert stats.connections > 1


@pytest.mark.parametrize("traffic", ["random", "polling"])
def test_generator_is_deterministic(tmp_path, traffic):
    generator = _load_generator()
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    generator.write_capture(str(first), 500, seed=3, traffic=traffic)
    generator.write_capture(str(second), 500, seed=3, traffic=traffic)
    assert first.read_bytes() == second.read_bytes()


def test_polling_is_periodic_and_learned_without_alerts(tmp_path):
    # The polling model is what a learner meets on a plant: after learning the
    # first 130 s (every poll cycle and two of the minutely setpoint writes), the
    # last minute raises nothing, and each poll repeats on its cycle.
    from otdpi.learner import Detector, feed_captures

    path = tmp_path / "polling.pcap"
    _load_generator().write_capture(str(path), 40_000, seed=2, traffic="polling")
    detector = Detector(learn_for=130.0)
    feed_captures(detector, [path])
    assert detector.alerts == []
    periods = sorted(
        round(period)
        for rel in detector.baseline.relations.values()
        for stats in rel.services.values()
        if (period := stats.period()) is not None
    )
    assert {1, 2, 10} <= set(periods)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decodes_modbus_on_every_data_packet(capture):
    path, stats = capture
    rows = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-e",
            "frame.number",
            "-e",
            "tcp.len",
            "-e",
            "mbtcp.trans_id",
            "-e",
            "tcp.analysis.retransmission",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(rows) == PACKETS

    adus = data_packets = 0
    for row in rows:
        number, tcp_len, transaction_ids, retransmission, malformed = row.split("\t")
        assert not malformed, f"frame {number}: tshark found it malformed"
        if int(tcp_len) == 0:
            continue
        data_packets += 1
        # tshark leaves retransmitted copies to TCP; every other segment is Modbus.
        if retransmission:
            assert not transaction_ids, f"frame {number}"
            continue
        assert transaction_ids, f"frame {number}: data segment not decoded as Modbus"
        adus += len(transaction_ids.split(","))
    assert data_packets == stats.data_segments
    assert adus == stats.adus


def test_otdpi_reads_every_adu_once_and_none_malformed(capture):
    path, stats = capture
    messages = list(otdpi.read(path))

    assert len(messages) == stats.adus
    assert [m for m in messages if m.status.state == "malformed"] == []
    assert {m.protocol for m in messages} == {"modbus"}
    assert sum(m.kind == "request" for m in messages) == stats.requests
    assert sum(m.status.state == "exception" for m in messages) == stats.exceptions
