"""Tests of the shared ISO transport layer: TPKT framing, COTP TPDUs, DT reassembly.

Golden TPDUs are built by hand from RFC 1006 section 6 (TPKT) and X.224
section 13 (CR, CC, DT, DR, ER layouts); the S7 TSAP meaning (connection type
in the high octet, rack in the top three bits and slot in the low five of the
low octet) is the public convention of S7 stacks. The port-102 decision is
checked on every public S7comm, S7comm-plus and MMS capture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dissectors.isotransport import (
    IsoTransport,
    TpduCode,
    classify_start,
    interpret_tsap,
    measure_tpkt,
    parse_tpdu,
)
from otdpi.capture import open_capture
from otdpi.decode import Decoder
from otdpi.framing import Skipped

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"


def tpkt(tpdu: bytes) -> bytes:
    return bytes([3, 0]) + (len(tpdu) + 4).to_bytes(2, "big") + tpdu


def dt(payload: bytes, eot: bool = True, number: int = 0) -> bytes:
    return tpkt(bytes([2, 0xF0, (0x80 if eot else 0) | number]) + payload)


# CR from snap7's default PG connection to rack 0 slot 2: dst-ref 0, src-ref
# 0x0001, class 0, TPDU size 2^10, calling TSAP 0100, called TSAP 0102.
CR_S7 = tpkt(bytes.fromhex("11e00000000100c0010ac1020100c2020102"))
# The matching CC: dst-ref 0x0001, src-ref 0x4431.
CC_S7 = tpkt(bytes.fromhex("11d00001443100c0010ac1020100c2020102"))
# CR of a TIA Portal session to an S7-1200: called TSAP "SIMATIC-ROOT-ES".
CR_PLUS = tpkt(
    bytes.fromhex("1ee00000000100c1020600c20f53494d415449432d524f4f542d4553c0010a")
)
# CR of an MMS client: TSAPs 0001 / 0001.
CR_MMS = tpkt(bytes.fromhex("0ee00000000100c1020001c2020001"))
SETUP_COMMUNICATION = bytes.fromhex("32010000000000080000f0000001000101e0")
MMS_SESSION_CONNECT = bytes.fromhex("0db0050600130100160102")


def test_tpkt_measure_accepts_headers_and_refuses_junk() -> None:
    assert measure_tpkt(CR_S7, 0) == len(CR_S7)
    assert measure_tpkt(b"\x03\x00", 0) == 0  # too short to tell
    assert measure_tpkt(b"\x04\x00\x00\x10", 0) == -1  # not version 3
    assert measure_tpkt(b"\x03\x01\x00\x10", 0) == -1  # reserved octet set
    assert measure_tpkt(b"\x03\x00\x00\x05\x02\xf0", 0) == -1  # shorter than its TPDU
    assert measure_tpkt(b"\x03\x00\x00\x10\x30\xf0", 0) == -1  # LI past the TPKT
    assert measure_tpkt(b"\x03\x00\x00\x10\x02\x30", 0) == -1  # no TPDU code 3


def test_connection_request_fields_and_tsaps() -> None:
    tpdu = parse_tpdu(CR_S7[4:])
    assert tpdu.error is None and tpdu.code == TpduCode.CR and tpdu.type_name == "CR"
    f = tpdu.fields
    assert (f["destination_reference"], f["source_reference"], f["class"]) == (0, 1, 0)
    assert (f["tpdu_size"], f["calling_tsap"], f["called_tsap"]) == (
        1024,
        "0100",
        "0102",
    )
    assert interpret_tsap(f["called_tsap"]) == {
        "tsap": "0102",
        "connection_type": "PG",
        "rack": 0,
        "slot": 2,
    }
    assert interpret_tsap("0203")["connection_type"] == "OP"
    assert interpret_tsap("0323") == {
        "tsap": "0323",
        "connection_type": "S7_BASIC",
        "rack": 1,
        "slot": 3,
    }
    assert (
        interpret_tsap(parse_tpdu(CR_PLUS[4:]).fields["called_tsap"])["tsap_text"]
        == "SIMATIC-ROOT-ES"
    )


def test_disconnect_error_and_broken_parameters() -> None:
    dr = parse_tpdu(bytes.fromhex("06800001000280"))
    assert dr.code == TpduCode.DR and dr.fields["reason"] == 0x80 and dr.error is None
    er = parse_tpdu(bytes.fromhex("0470000101"))
    assert er.code == TpduCode.ER and er.fields["reject_cause"] == 1
    # A parameter claiming more bytes than the header holds.
    bad = parse_tpdu(bytes.fromhex("08e00000000100c105"))
    assert bad.error and "overruns" in bad.error
    assert parse_tpdu(b"\x09\xe0").error  # LI past the TPDU
    assert parse_tpdu(b"\x01").error


def test_several_tpkts_in_one_segment_and_one_split_across_many() -> None:
    stream = CR_S7 + dt(SETUP_COMMUNICATION) + dt(b"\x32\x07")
    transport = IsoTransport()
    whole = transport.feed(stream)
    assert [t.type_name for t, _ in whole] == ["CR", "DT", "DT"]
    assert whole[1][1] == SETUP_COMMUNICATION
    bytewise = IsoTransport()
    pieces = []
    for i in range(len(stream)):
        pieces.extend(bytewise.feed(stream[i : i + 1]))
    assert [(t.type_name, d) for t, d in pieces] == [(t.type_name, d) for t, d in whole]


def test_dt_segments_are_joined_at_eot() -> None:
    transport = IsoTransport()
    first = transport.feed(dt(b"\x32\x01\x00", eot=False))
    assert first[0][1] is None and transport.buffered == 3
    last = transport.feed(dt(b"\x00\x00", eot=True, number=1))
    assert last[0][1] == b"\x32\x01\x00\x00\x00"
    assert last[0][0].fields["segments"] == 2 and transport.buffered == 0


def test_reassembly_is_bounded() -> None:
    transport = IsoTransport(max_user_data=10)
    for _ in range(3):
        transport.feed(dt(b"x" * 4, eot=False))
    assert transport.buffered == 0  # the run passed 10 bytes and was dropped
    out = transport.feed(dt(b"y"))
    assert out[0][1] == b"y"


def test_junk_costs_only_its_bytes() -> None:
    out = IsoTransport().feed(b"\xff\xfe" + dt(b"\x32"))
    assert isinstance(out[0], Skipped) and out[0].size == 2
    assert out[1][1] == b"\x32"


def test_port_102_decision_on_handmade_starts() -> None:
    assert classify_start(CR_S7 + dt(SETUP_COMMUNICATION)) == "s7comm"
    assert classify_start(CR_S7) == "s7comm"  # TSAPs alone
    assert classify_start(CC_S7) == "s7comm"
    assert classify_start(dt(SETUP_COMMUNICATION)) == "s7comm"  # mid-stream
    assert classify_start(CR_PLUS) == "s7commplus"
    assert classify_start(CR_PLUS + dt(b"\x72\x01\x00\x20")) == "s7commplus"
    assert classify_start(CR_PLUS + dt(b"\x16\x03\x01\x00\x10")) == "s7commplus"  # TLS
    assert classify_start(CR_MMS) is None
    assert classify_start(CR_MMS + dt(MMS_SESSION_CONNECT)) == "mms"
    # An MMS CR whose called TSAP looks like an S7 one is decided by its data.
    mms_like_s7 = tpkt(bytes.fromhex("0ee00000000100c1020002c2020200"))
    assert classify_start(mms_like_s7 + dt(MMS_SESSION_CONNECT)) == "mms"
    assert classify_start(b"GET / HTTP/1.1\r\n") is None
    assert classify_start(b"") is None


def _first_bytes(path: Path) -> dict[tuple, bytes]:
    """The first 64 payload bytes each side of each TCP port-102 flow sent."""
    decoder = Decoder()
    first: dict[tuple, bytes] = {}
    with open_capture(path) as reader:
        for _, ts, linktype, data, _, _ in reader:
            pkt = decoder.decode(linktype, data, ts)
            if pkt is None or pkt.proto != 6 or not pkt.payload:
                continue
            if 102 not in (pkt.src_port, pkt.dst_port):
                continue
            key = (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port)
            if len(first.get(key, b"")) < 64:
                first[key] = first.get(key, b"") + pkt.payload
    return first


@pytest.mark.parametrize("folder", ["s7comm", "s7commplus", "mms"])
def test_port_102_decision_on_every_public_capture(folder: str) -> None:
    paths = sorted((CAPTURES / folder).glob("*.pcap*"))
    if not paths:
        pytest.skip(f"../shared/captures/{folder} is not present")
    wrong = []
    for path in paths:
        for key, data in _first_bytes(path).items():
            said = classify_start(data)
            # A mixed capture holds S7comm flows among S7comm-plus ones.
            allowed = {folder, "s7comm"} if folder == "s7commplus" else {folder}
            if said is not None and said not in allowed:
                wrong.append((path.name, key, said))
            if folder == "mms" and said != "mms" and data[:1] == b"\x03":
                tpdu = parse_tpdu(data[4:])
                if tpdu.code == TpduCode.DT and tpdu.payload:
                    wrong.append((path.name, key, said))
    assert not wrong, wrong[:10]


@given(st.binary(max_size=600))
def test_any_bytes_feed_without_raising_whole_or_byte_by_byte(data: bytes) -> None:
    whole = IsoTransport().feed(data)
    transport = IsoTransport()
    pieces = []
    for i in range(len(data)):
        pieces.extend(transport.feed(data[i : i + 1]))
    complete = [u[1] for u in whole if not isinstance(u, Skipped)]
    assert complete == [u[1] for u in pieces if not isinstance(u, Skipped)]
    classify_start(data)
