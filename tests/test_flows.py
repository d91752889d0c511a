"""Flow table and TCP reassembly, driven with hand-made packets and a toy protocol."""

from __future__ import annotations

import pytest

from otdpi.decode import Packet
from otdpi.dissector import Dissector
from otdpi.flows import ACK, FIN, SYN, FlowConfig, FlowTable
from otdpi.framing import Framer, Skipped
from otdpi.message import Message, malformed
from otdpi.registry import Selector

CLIENT = ("10.0.0.9", 40000)
SERVER = ("10.0.0.2", 7777)


def _measure(buf: bytes, pos: int) -> int:
    # Toy protocol: 0x7e, one length byte, then that many payload bytes.
    if len(buf) - pos < 2:
        return 0
    if buf[pos] != 0x7E:
        return -1
    return 2 + buf[pos + 1]


class ToyDissector(Dissector):
    """Turns every toy unit into a message whose fields hold its payload."""

    name = "toy"
    transports = ("tcp", "udp")
    default_ports = (7777,)
    probe_min_bytes = 2

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return data[:1] == b"\x7e"

    def __init__(self, flow) -> None:
        super().__init__(flow)
        self.framers = {True: Framer(_measure), False: Framer(_measure)}
        self.gaps: list[bool] = []

    def feed(self, data, to_server, ts, frame):
        out = []
        src, dst = self.endpoints(to_server)
        for unit in self.framers[to_server].feed(data):
            if isinstance(unit, Skipped):
                out.append(Message(ts, frame, self.flow.flow_id, src, dst, "toy", "event",
                                   "junk", None, "other", status=malformed(unit.reason)))
                continue
            kind = "request" if to_server else "response"
            out.append(Message(ts, frame, self.flow.flow_id, src, dst, "toy", kind, "unit",
                               None, "data", fields={"payload": unit[2:].decode()}))
        return out

    def gap(self, to_server, ts, frame):
        self.gaps.append(to_server)
        self.framers[to_server].reset()
        return []


def unit(text: str) -> bytes:
    return bytes([0x7E, len(text)]) + text.encode()


def packet(payload: bytes = b"", seq: int = 0, ack: int = 0, flags: int = ACK,
           to_server: bool = True, proto: int = 6) -> Packet:
    (sip, sport), (dip, dport) = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
    return Packet(None, None, (), 0x0800, sip, dip, proto, sport, dport, flags, seq, ack,
                  payload)


def make_table(**config) -> FlowTable:
    return FlowTable(Selector(plugins=[ToyDissector]), FlowConfig(**config))


def run(table: FlowTable, packets: list[Packet]) -> list[Message]:
    out: list[Message] = []
    for frame, pkt in enumerate(packets, start=1):
        out.extend(table.process(pkt, float(frame), frame))
    out.extend(table.flush())
    return out


def payloads(messages: list[Message]) -> list[str]:
    return [m.fields["payload"] for m in messages if m.status.state == "ok"]


def test_in_order_stream_with_handshake_names_client_and_server():
    data = unit("read") + unit("more")
    msgs = run(make_table(), [
        packet(seq=99, flags=SYN),
        packet(seq=499, ack=100, flags=SYN | ACK, to_server=False),
        packet(data, seq=100, ack=500),
        packet(unit("answer"), seq=500, ack=100 + len(data), to_server=False),
    ])
    assert payloads(msgs) == ["read", "more", "answer"]
    assert msgs[0].src.ip == CLIENT[0] and msgs[0].kind == "request"
    assert msgs[2].src.ip == SERVER[0] and msgs[2].kind == "response"
    assert [m.frame for m in msgs] == [3, 3, 4]


def test_mid_stream_capture_uses_the_service_port_for_direction():
    # The first packet seen is the server's answer; no SYN anywhere.
    msgs = run(make_table(), [
        packet(unit("late"), seq=5000, to_server=False),
        packet(unit("next"), seq=100),
    ])
    assert [(m.fields["payload"], m.kind) for m in msgs] == [("late", "response"),
                                                              ("next", "request")]


def test_out_of_order_segments_are_reassembled_at_the_completing_frame():
    stream = unit("alpha") + unit("beta") + unit("gamma")
    a, b, c = stream[:5], stream[5:12], stream[12:]
    msgs = run(make_table(), [
        packet(seq=0, flags=SYN),
        packet(c, seq=1 + len(a) + len(b)),
        packet(a, seq=1),
        packet(b, seq=1 + len(a)),
    ])
    assert payloads(msgs) == ["alpha", "beta", "gamma"]
    assert msgs[0].frame == 4  # alpha completes only when b arrives


def test_retransmissions_and_overlaps_never_deliver_bytes_twice():
    stream = unit("one") + unit("two") + unit("three")
    table = make_table()
    msgs = run(table, [
        packet(seq=0, flags=SYN),
        packet(stream[:6], seq=1),
        packet(stream[:6], seq=1),           # exact retransmission
        packet(stream[3:12], seq=4),         # overlaps three old bytes
        packet(stream, seq=1),               # everything again, with the tail new
    ])
    assert payloads(msgs) == ["one", "two", "three"]
    assert table.counters["tcp_retransmitted_bytes"] == 6
    assert table.counters["tcp_overlap_bytes"] == 3 + 12


def test_lost_segment_is_a_gap_and_the_stream_resynchronises():
    first, lost, after = unit("first"), unit("lost!"), unit("after")
    table = make_table()
    msgs = run(table, [
        packet(seq=0, flags=SYN),
        packet(first, seq=1),
        # `lost` never reaches the capture, but the server acknowledges it.
        packet(unit("ok"), seq=1000, ack=1 + len(first) + len(lost), to_server=False),
        packet(after, seq=1 + len(first) + len(lost)),
    ])
    assert payloads(msgs) == ["first", "ok", "after"]
    assert msgs[-1].frame == 4
    assert table.counters["tcp_gaps"] == 1
    assert table.counters["tcp_gap_bytes"] == len(lost)


def test_segments_held_behind_a_lost_one_are_delivered_when_a_later_one_jumps_it():
    # Lost bytes, then two segments held behind the hole; the next segment
    # arrives once the peer has acknowledged past everything. The held ones
    # must come out (at their own frames), not be taken for retransmissions.
    first, lost, held1, held2, last = (unit(t) for t in ("first", "lost!", "held1",
                                                          "held2", "last"))
    s_held1 = 1 + len(first) + len(lost)
    s_held2 = s_held1 + len(held1)
    s_last = s_held2 + len(held2)
    table = make_table()
    msgs = run(table, [
        packet(seq=0, flags=SYN),
        packet(first, seq=1),
        packet(held1, seq=s_held1),
        packet(held2, seq=s_held2),
        packet(unit("ok"), seq=1000, ack=s_last + len(last), to_server=False),
        packet(last, seq=s_last),
    ])
    assert payloads(msgs) == ["first", "ok", "held1", "held2", "last"]
    assert [m.frame for m in msgs if m.kind == "request"] == [2, 3, 4, 6]
    assert table.counters["tcp_retransmitted_bytes"] == 0
    assert table.counters["tcp_gap_bytes"] == len(lost)


def test_gap_in_the_middle_of_a_unit_loses_only_that_unit():
    stream = unit("keep1") + unit("spoilt-unit") + unit("keep2")
    cut = 7 + 4  # lose bytes inside the second unit
    table = make_table(max_flow_buffer=8)
    msgs = run(table, [
        packet(seq=0, flags=SYN),
        packet(stream[:cut], seq=1),
        packet(stream[cut + 3:], seq=1 + cut + 3),
    ])
    assert payloads(msgs) == ["keep1", "keep2"]
    assert table.counters["tcp_buffer_cap_hits"] == 1
    assert any(m.status.state == "malformed" for m in msgs)


def test_sequence_numbers_wrap_around():
    near_end = (1 << 32) - 3
    stream = unit("wrap") + unit("around")
    msgs = run(make_table(), [
        packet(seq=near_end - 1, flags=SYN),
        packet(stream[4:], seq=(near_end + 4) % (1 << 32)),
        packet(stream[:4], seq=near_end),
    ])
    assert payloads(msgs) == ["wrap", "around"]


def test_fin_from_both_sides_retires_the_flow():
    table = make_table()
    for frame, pkt in enumerate([
        packet(seq=0, flags=SYN),
        packet(unit("x"), seq=1),
        packet(seq=3, flags=FIN | ACK),
        packet(seq=10, flags=FIN | ACK, to_server=False),
    ], start=1):
        table.process(pkt, float(frame), frame)
    assert len(table) == 0


def test_idle_flows_expire_and_the_table_cap_evicts_the_oldest():
    table = make_table(idle_timeout=10.0, max_flows=2)
    for port in (1, 2, 3):
        pkt = packet(unit("p"), seq=1)._replace(src_port=port)
        table.process(pkt, 0.0, port)
    assert len(table) == 2
    assert table.counters["flows_evicted_table_full"] == 1
    table.expire(100.0)
    assert len(table) == 0
    assert table.counters["flows_expired_idle"] == 2


def test_unknown_protocol_on_the_service_port_is_not_claimed():
    table = make_table()
    msgs = run(table, [packet(b"GET / HTTP/1.1\r\n\r\n", seq=1)])
    assert msgs == []
    assert table.counters["flows_unknown_protocol"] == 1


def test_protocol_found_by_probe_on_another_port():
    table = make_table()
    pkt = packet(unit("odd port"), seq=1)._replace(dst_port=5020)
    msgs = run(table, [pkt])
    assert payloads(msgs) == ["odd port"]


def test_udp_datagrams_are_fed_whole():
    msgs = run(make_table(), [packet(unit("dgram"), proto=17, flags=0)])
    assert payloads(msgs) == ["dgram"]


@pytest.mark.parametrize("segment_size", [1, 2, 3, 5, 8])
def test_any_segmentation_gives_the_same_messages(segment_size):
    stream = b"".join(unit(f"unit{i}") for i in range(10))
    packets = [packet(seq=0, flags=SYN)]
    for start in range(0, len(stream), segment_size):
        packets.append(packet(stream[start:start + segment_size], seq=1 + start))
    assert payloads(run(make_table(), packets)) == [f"unit{i}" for i in range(10)]


class AskingToyDissector(ToyDissector):
    """The toy protocol where a unit starting with '?' is a question (a request)."""

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        if data[2:3] == b"?":
            return True
        if data[2:3] == b"!":
            return False
        return None


def asking_table() -> FlowTable:
    return FlowTable(Selector(plugins=[AskingToyDissector]), FlowConfig())


def test_content_overrules_the_port_guess_for_a_mid_stream_flow():
    # Neither port is a known service port: the higher port would be the
    # client, but the side on the higher port sends the answers.
    low, high = ("10.0.0.1", 503), ("10.0.0.5", 1000)

    def between(payload: bytes, from_low: bool, seq: int) -> Packet:
        (sip, sport), (dip, dport) = (low, high) if from_low else (high, low)
        return Packet(None, None, (), 0x0800, sip, dip, 6, sport, dport, ACK, seq, 0,
                      payload)

    table = asking_table()
    out: list[Message] = []
    for frame, pkt in enumerate([between(unit("!late"), False, 10),
                                 between(unit("?next"), True, 50),
                                 between(unit("!answer"), False, 17)], start=1):
        out.extend(table.process(pkt, float(frame), frame))
    out.extend(table.flush())
    assert [(m.fields["payload"], m.kind, m.src.ip) for m in out] == [
        ("!late", "response", high[0]),
        ("?next", "request", low[0]),
        ("!answer", "response", high[0]),
    ]
    assert table.counters["flows_direction_from_content"] == 1


def test_content_overrules_the_syn_when_the_opener_only_answers():
    msgs = run(asking_table(), [
        packet(seq=99, flags=SYN),
        packet(seq=499, ack=100, flags=SYN | ACK, to_server=False),
        packet(unit("!unasked"), seq=100, ack=500),
        packet(unit("!again"), seq=110, ack=500),
    ])
    assert [(m.kind, m.src.ip) for m in msgs] == [("response", CLIENT[0])] * 2


def test_sides_that_cancel_out_keep_the_syn_direction():
    msgs = run(asking_table(), [
        packet(seq=99, flags=SYN),
        packet(seq=499, ack=100, flags=SYN | ACK, to_server=False),
        packet(unit("?q"), seq=100, ack=500),
        packet(unit("?q2"), seq=500, ack=104, to_server=False),
    ])
    assert [m.kind for m in msgs] == ["request", "response"]


class ToyGooseDissector(Dissector):
    """A layer-2 toy: every frame of ethertype 0x88b8 is one message."""

    name = "toygoose"
    transports = ("ethernet",)
    ethertypes = (0x88B8,)

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return len(data) >= 2

    def feed(self, data, to_server, ts, frame):
        src, dst = self.endpoints(to_server)
        return [Message(ts, frame, self.flow.flow_id, src, dst, "toygoose", "unsolicited",
                        "publish", None, "data", fields={"payload": data.hex()})]


def layer2(ethertype: int, payload: bytes, src_mac: str = "00:80:f4:00:00:02") -> Packet:
    return Packet(src_mac, "01:0c:cd:01:00:01", (5,), ethertype, None, None, -1, 0, 0, 0,
                  0, 0, payload)


def test_layer2_frames_reach_the_dissector_of_their_ethertype_only():
    table = FlowTable(Selector(plugins=[ToyDissector, ToyGooseDissector]), FlowConfig())
    out = run(table, [layer2(0x88B8, b"\x00\x01ab"), layer2(0x88CC, b"lldp"),
                      layer2(0x88B8, b"\x00\x01cd"),
                      layer2(0x88B8, b"\x00\x01ef", src_mac="00:80:f4:00:00:03")])
    assert [m.fields["payload"] for m in out] == ["0001" + "ab".encode().hex(),
                                                  "0001" + "cd".encode().hex(),
                                                  "0001" + "ef".encode().hex()]
    assert out[0].src.mac == "00:80:f4:00:00:02" and out[0].src.ip is None
    assert out[0].dst.mac == "01:0c:cd:01:00:01"
    assert out[0].flow == out[1].flow != out[2].flow
    assert table.counters["flows"] == 2


def test_layer2_frames_open_nothing_without_a_layer2_dissector():
    table = make_table()
    assert run(table, [layer2(0x88B8, b"\x00\x01ab")]) == []
    assert table.counters["flows"] == 0
