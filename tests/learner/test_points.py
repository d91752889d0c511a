"""Written values scored against what the server was seen holding (item_values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dissectors.s7comm.session import _item_values
from otdpi.learner import Baseline, Detector
from otdpi.learner.points import POINT_MIN_OBSERVATIONS
from otdpi.message import Endpoint, Message, Target

PLC, HMI, NEW = "10.10.10.10", "10.10.10.20", "10.10.10.66"
CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"


def _m(ts, src, dst, kind, action, targets, values, service="x"):
    return Message(
        ts,
        1,
        1,
        Endpoint(src, 40000 if kind != "response" else 102),
        Endpoint(dst, 102 if kind != "response" else 40000),
        "s7comm",
        kind,
        service,
        None,
        action,
        tuple(Target(*t) for t in targets),
        {"item_values": values},
    )


def _polls(n, value=0x41F00000):
    out = []
    for i in range(n):
        out.append(
            _m(i, HMI, PLC, "request", "read", [("M", 12, 1), ("M", 4, 1)], None)
        )
        out.append(
            _m(
                i + 0.01,
                PLC,
                HMI,
                "response",
                "read",
                [("M", 12, 1), ("M", 4, 1)],
                [value, 0x200000 + i],
            )
        )
    return out


def _run(stream, learn_for=50.0):
    detector = Detector(learn_for=learn_for)
    for message in stream:
        detector.feed(message)
    return detector


def test_a_write_of_another_value_to_a_polled_setpoint_is_out_of_range():
    write = _m(100, NEW, PLC, "request", "write", [("M", 12, 4)], [0x41C80000])
    detector = _run(_polls(60) + [write])
    [alert] = [a for a in detector.alerts if a["model"] == "ot/value-out-of-range"]
    assert alert["evidence"]["value"] == 0x41C80000
    assert alert["evidence"]["learned"][:2] == [0x41F00000, 0x41F00000]
    assert alert["techniques"][0]["id"] == "T0836"


def test_writes_within_the_band_or_to_rarely_seen_addresses_are_not():
    inside = _m(100, HMI, PLC, "request", "write", [("M", 4, 4)], [0x200010])
    rare = _m(101, HMI, PLC, "request", "write", [("M", 99, 4)], [7])
    few = _run(_polls(POINT_MIN_OBSERVATIONS - 1, 5), learn_for=0.5)
    detector = _run(_polls(60) + [inside, rare])
    assert [a for a in detector.alerts if a["model"] == "ot/value-out-of-range"] == []
    late = _m(100, NEW, PLC, "request", "write", [("M", 12, 4)], [500])
    few.feed(late)
    assert [a for a in few.alerts if a["model"] == "ot/value-out-of-range"] == []


def test_points_go_through_json_and_merge():
    base = _run(_polls(10)).baseline
    assert base.points[PLC][("M", 12)] == [10, 0x41F00000, 0x41F00000]
    again = Baseline.from_json(json.loads(json.dumps(base.to_json())))
    assert again.points == base.points
    other = Baseline()
    other.points = {PLC: {("M", 12): [2, 1, 2]}}
    base.merge(other)
    assert base.points[PLC][("M", 12)] == [12, 1, 0x41F00000]


def test_s7_item_values_are_words_dwords_and_reals_only():
    items = [
        {"return_code": 0xFF, "transport_size": 7, "length": 32, "data": "41f00000"},
        {"return_code": 0xFF, "transport_size": 3, "length": 1, "data": "01"},
        {"return_code": 0x0A},
        {"return_code": 0x00, "transport_size": 4, "length": 16, "data": "00ff"},
    ]
    assert _item_values(items) == [0x41F00000, None, None, 0x00FF]
    assert _item_values(items[1:3]) is None


THRESHOLD = CAPTURES / "attacks" / "qut_s7_changelowerthreshold_master.pcap"


@pytest.mark.skipif(not THRESHOLD.exists(), reason="shared QUT capture not present")
def test_s7_messages_carry_the_written_and_read_values():
    from otdpi.engine import Engine

    messages = list(Engine().messages(THRESHOLD))
    [write] = [m for m in messages if m.service == "write_var" and m.kind == "request"]
    assert write.targets == (Target("M", 12, 4),)
    assert write.fields["item_values"] == [0x41C80000]  # 25.0
    polled = [
        v
        for m in messages
        if m.kind == "response" and m.service == "read_var"
        for t, v in zip(m.targets, m.fields.get("item_values", ()))
        if (t.space, t.start) == ("M", 12)
    ]
    assert set(polled) == {0x41F00000}  # 30.0
