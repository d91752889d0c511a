"""FlowTable.process_ethernet gives exactly what decoding and process() give."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdpi.engine import Engine
from otdpi.flows import FlowTable
from tests.conftest import shared_captures
from tests.helpers import REPO, Frame, ethernet, ipv4, pcap_file, tcp

FIXTURES = sorted((REPO / "fixtures").glob("*.pcap"))
PUBLIC = [
    path
    for folder in ("modbus", "dnp3", "s7comm", "s7commplus", "mms", "mixed-it",
                   "attacks", "hl7", "dicom")
    for path in shared_captures(folder)
]


def _slow_path(monkeypatch) -> None:
    monkeypatch.setattr(FlowTable, "process_ethernet", lambda self, *args: None)


def _run(paths, shard=None):
    flows = []

    def ended(flow):
        flows.append((flow.id, flow.protocol, flow.client, flow.server, flow.packets,
                      flow.payload_bytes, flow.first_ts, flow.last_ts,
                      flow.last_frame))

    engine = Engine(shard=shard, on_flow_end=ended)
    messages = [message for path in paths for message in engine.messages(path)]
    return messages, dict(engine.counters), flows


def _both_ways(monkeypatch, paths, shard=None):
    fast = _run(paths, shard)
    with monkeypatch.context() as patch:
        _slow_path(patch)
        slow = _run(paths, shard)
    return fast, slow


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("shard", [None, (0, 2), (1, 2)])
def test_fixtures_give_the_same_messages_and_counters(monkeypatch, path, shard):
    fast, slow = _both_ways(monkeypatch, [path], shard)
    assert fast == slow


@pytest.mark.skipif(not PUBLIC, reason="../shared/captures is not present")
def test_public_captures_give_the_same_messages_and_counters(monkeypatch):
    # One engine over all of them, as `otdpi inventory A B C` reads them.
    fast, slow = _both_ways(monkeypatch, PUBLIC)
    assert fast[1] == slow[1]
    assert len(fast[0]) == len(slow[0])
    assert fast[0] == slow[0]
    assert fast[2] == slow[2]


def test_the_common_frames_do_take_it(monkeypatch):
    calls = {"decoded": 0}
    from otdpi import decode

    real = decode.Decoder.decode

    def counting(self, *args):
        calls["decoded"] += 1
        return real(self, *args)

    monkeypatch.setattr(decode.Decoder, "decode", counting)
    path = REPO / "fixtures" / "modbus_pymodbus.pcap"
    engine = Engine()
    list(engine.messages(path))
    # Handshakes, FINs and first segments decode; the rest go the short way.
    assert calls["decoded"] < engine.counters["packets"] / 2


# -- damaged and reordered streams ---------------------------------------------


def _modbus_request(tid: int) -> bytes:
    return struct.pack("!HHHBBHH", tid, 0, 6, 1, 3, tid % 100, 2)


def _modbus_response(tid: int) -> bytes:
    return struct.pack("!HHHBBBHH", tid, 0, 7, 1, 3, 4, tid, tid + 1)


def _conversation(exchanges: int) -> list[bytes]:
    """Ethernet frames of one Modbus/TCP connection with a handshake."""
    client, server = ("10.0.0.9", 40000, "aa:aa:aa:aa:aa:01"), ("10.0.0.2", 502,
                                                                 "bb:bb:bb:bb:bb:02")

    def frame(src, dst, payload, seq, ack, flags):
        segment = tcp(src[1], dst[1], payload, seq=seq, ack=ack, flags=flags)
        return ethernet(dst[2], src[2], 0x0800, ipv4(src[0], dst[0], 6, segment))

    c_seq, s_seq = 1000, 5000
    frames = [
        frame(client, server, b"", c_seq, 0, 0x02),
        frame(server, client, b"", s_seq, c_seq + 1, 0x12),
        frame(client, server, b"", c_seq + 1, s_seq + 1, 0x10),
    ]
    c_seq += 1
    s_seq += 1
    for tid in range(exchanges):
        request, response = _modbus_request(tid), _modbus_response(tid)
        frames.append(frame(client, server, request, c_seq, s_seq, 0x18))
        c_seq += len(request)
        frames.append(frame(server, client, response, s_seq, c_seq, 0x18))
        s_seq += len(response)
        frames.append(frame(client, server, b"", c_seq, s_seq, 0x10))
    frames.append(frame(client, server, b"", c_seq, s_seq, 0x11))
    frames.append(frame(server, client, b"", s_seq, c_seq + 1, 0x11))
    return frames


@settings(max_examples=60)
@given(
    exchanges=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    damage=st.sampled_from(["drop", "duplicate", "swap", "truncate", "all"]),
)
def test_damaged_streams_give_the_same_messages(tmp_path_factory, exchanges, seed,
                                                damage):
    rng = random.Random(seed)
    frames = _conversation(exchanges)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(frames))
        kind = damage if damage != "all" else rng.choice(
            ["drop", "duplicate", "swap", "truncate"])
        if kind == "drop":
            del frames[i]
        elif kind == "duplicate":
            frames.insert(i, frames[i])
        elif kind == "swap" and i + 1 < len(frames):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        elif kind == "truncate":
            frames[i] = frames[i][: rng.randrange(len(frames[i]) + 1)]
        if not frames:
            return
    path = tmp_path_factory.mktemp("damaged") / "capture.pcap"
    path.write_bytes(pcap_file([Frame(1, n, data) for n, data in enumerate(frames)]))
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = _both_ways(monkeypatch, [path])
    assert fast == slow
