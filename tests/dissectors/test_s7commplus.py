"""Tests of the S7comm-plus dissector: hand-made PDUs, header checks on captures, fuzz.

tshark 4.0 has no S7comm-plus dissector, so the public captures under
``../shared/captures/s7commplus`` are checked for the header's own
consistency instead: every TPKT length agrees with tshark's ``tpkt.length``,
every PDU opens with 0x72 and a known version, its data length plus header
and trailer fill the COTP user data, requests and responses carry known
opcodes and function codes, and each response's sequence number answers a
request of the same function on its flow.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otdpi
from dissectors.s7commplus import (
    FunctionCode,
    S7commPlusDissector,
    decode_pdu,
    plc_identity,
    wstrings,
)
from otdpi.dissector import FlowContext
from otdpi.message import Endpoint

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"
PLUS = sorted((CAPTURES / "s7commplus").glob("*.pcap*"))
KNOWN_FUNCTIONS = {f.value for f in FunctionCode}


def new() -> S7commPlusDissector:
    return S7commPlusDissector(
        FlowContext(1, Endpoint("192.0.2.1", 50000), Endpoint("192.0.2.2", 102), "tcp")
    )


def tpkt_dt(payload: bytes) -> bytes:
    body = b"\x02\xf0\x80" + payload
    return bytes([3, 0]) + (len(body) + 4).to_bytes(2, "big") + body


def plus(version: int, data: bytes, trailer: bool = True, digest: bytes = b"") -> bytes:
    body = (bytes([len(digest)]) + digest if digest else b"") + data
    out = bytes([0x72, version]) + len(body).to_bytes(2, "big") + body
    return out + (bytes([0x72, version, 0, 0]) if trailer else b"")


def wstring(attribute: int, text: str) -> bytes:
    return bytes([0xA3, attribute]) + b"\x00\x15" + bytes([len(text)]) + text.encode()


# CreateObject request (opcode 0x31, function 0x04CA, sequence 1, session
# 0x120, transport flags 0x36) and its response carrying the server's
# "<n>;<order number>;<firmware>" string, both V1.
CREATE_REQUEST = plus(
    1, bytes.fromhex("31000004ca000000010000012036") + wstring(0x69, "HMI HOST")
)
CREATE_RESPONSE = plus(
    1,
    bytes.fromhex("32000004ca0000000136")
    + b"\x00"
    + wstring(0x3F, "1;6ES7 212-1BE40-0XB0 ;V4.4")
    + wstring(0x40, "2;288"),
)
GET_MULTI_V3 = plus(
    3,
    bytes.fromhex("310000054c000000070000012334") + b"\x00" * 6,
    digest=bytes(range(32)),
)


def test_create_object_names_the_plc_and_the_session() -> None:
    s = new()
    (request,) = s.feed(tpkt_dt(CREATE_REQUEST), True, 0.0, 1)
    f = request.fields
    assert (request.service, request.kind, request.action) == (
        "create_object",
        "request",
        "session",
    )
    assert (f["protocol_version"], f["opcode"], f["function"]) == (1, 0x31, 0x04CA)
    assert (f["sequence_number"], f["session_id"], f["transport_flags"]) == (
        1,
        0x120,
        0x36,
    )
    assert f["has_trailer"] and f["strings"] == ["HMI HOST"]
    (response,) = s.feed(tpkt_dt(CREATE_RESPONSE), False, 0.0, 2)
    assert response.kind == "response" and response.fields["sequence_number"] == 1
    assert response.identity == {
        "order_number": "6ES7 212-1BE40-0XB0",
        "firmware": "V4.4",
        "product_family": "S7-1200",
        "role": "PLC",
        "vendor": "Siemens",
    }


def test_v3_integrity_part_and_functions() -> None:
    fields, error = decode_pdu(GET_MULTI_V3)
    assert error is None
    assert fields["integrity_digest"] == bytes(range(32)).hex()
    assert (fields["function"], fields["sequence_number"], fields["session_id"]) == (
        0x054C,
        7,
        0x123,
    )


def test_a_pdu_without_trailer_is_continued_by_the_next() -> None:
    s = new()
    first = plus(3, bytes.fromhex("320000054c0000000700") + b"x" * 20, trailer=False)
    rest = plus(3, b"y" * 30)
    out = s.feed(tpkt_dt(first) + tpkt_dt(rest), False, 0.0, 1)
    assert [m.service for m in out] == ["get_multi_variables", "continuation"]
    (after,) = s.feed(tpkt_dt(CREATE_RESPONSE), False, 0.0, 2)
    assert after.service == "create_object"


def test_tls_records_are_counted_not_parsed() -> None:
    s = new()
    hello = bytes.fromhex("160303002a") + bytes(42)
    out = s.feed(
        tpkt_dt(hello) + tpkt_dt(bytes.fromhex("1703030010") + bytes(16)), True, 0.0, 1
    )
    assert [m.service for m in out] == ["tls_record", "tls_record"]
    assert s.tls and s.tls_records == 2 and out[1].fields["tls_records"] == 2


def test_role_from_the_simatic_tsap() -> None:
    tsap = b"SIMATIC-ROOT-HMI"
    params = bytes.fromhex("c1020600") + b"\xc2" + bytes([len(tsap)]) + tsap
    body = bytes([6 + len(params), 0xE0, 0, 0, 0, 1, 0]) + params
    s = new()
    (request,) = s.feed(
        bytes([3, 0]) + (len(body) + 4).to_bytes(2, "big") + body, True, 0.0, 1
    )
    assert request.identity == {"role": "HMI"}
    assert S7commPlusDissector.probe(
        bytes([3, 0]) + (len(body) + 4).to_bytes(2, "big") + body, True
    )


def test_wstrings_and_identity_helpers() -> None:
    assert wstrings(b"\x00\x15\x03abc\x00\x15\x05ab") == ["abc"]
    assert plc_identity(["1;6ES7 511-1AK00-0AB0 ;V1.0"])["product_family"] == "S7-1500"
    assert plc_identity(["HMI USER"]) == {}


def test_lying_lengths_are_malformed() -> None:
    fields, error = decode_pdu(b"\x72\x01\xff\xff\x31")
    assert error and "runs past" in error
    s = new()
    (m,) = s.feed(tpkt_dt(b"\x72\x01\xff\xff\x31"), True, 0.0, 1)
    assert m.status.state == "malformed"


@given(data=st.binary(max_size=400), to_server=st.booleans())
def test_any_bytes_never_raise(data: bytes, to_server: bool) -> None:
    s = new()
    s.feed(data, to_server, 0.0, 1)
    s.close(0.0, 1)
    s = new()
    s.feed(tpkt_dt(b"\x72" + data), to_server, 0.0, 1)


# --- header checks on the public captures -------------------------------------------


def _tshark_tpkt_lengths(path: Path) -> dict[int, list[int]]:
    done = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "tpkt && tcp.port == 102 && "
            "!tcp.analysis.retransmission && !tcp.analysis.fast_retransmission",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tpkt.length",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lengths = {}
    for line in done.stdout.splitlines():
        number, values = line.split("\t")
        # A 7-byte TPKT is a DT with no user data: no unit on our side.
        lengths[int(number)] = [int(v) for v in values.split(",") if v and v != "7"]
    return lengths


@pytest.mark.skipif(not PLUS, reason="../shared/captures/s7commplus is not present")
@pytest.mark.parametrize("path", PLUS, ids=[p.name for p in PLUS])
def test_headers_on_public_captures(path: Path) -> None:
    messages = [
        m
        for m in otdpi.read(path, protocols=["s7commplus"])
        if m.protocol == "s7commplus"
    ]
    pdus = [m for m in messages if "protocol_version" in m.fields]
    assert pdus, f"{path.name}: no S7comm-plus PDU"
    problems = Counter()
    requests: dict[tuple, set] = defaultdict(set)
    answered = unanswered = 0
    for m in pdus:
        f = m.fields
        if m.status.state != "ok":
            problems["malformed"] += 1
            continue
        if f["protocol_version"] not in (1, 2, 3, 0xFE, 0xFF):
            problems["version"] += 1
        if f.get("continuation") or f["protocol_version"] in (0xFE, 0xFF):
            continue
        if f.get("opcode") not in (0x31, 0x32, 0x33, 0x02):
            problems["opcode"] += 1
            continue
        if "function" in f:
            if f["function"] not in KNOWN_FUNCTIONS:
                problems["function"] += 1
            key = (m.flow, f["function"], f["sequence_number"])
            if f["opcode"] == 0x31:
                requests[key].add(m.frame)
            elif key in requests:
                answered += 1
            else:
                unanswered += 1
    total = len(pdus)
    assert sum(problems.values()) <= 0.01 * total, f"{path.name}: {problems} of {total}"
    if answered + unanswered:
        # A capture that starts mid-session misses a few requests.
        assert answered >= 0.95 * (answered + unanswered), (answered, unanswered)
    if shutil.which("tshark"):
        theirs = _tshark_tpkt_lengths(path)
        ours: dict[int, list[int]] = defaultdict(list)
        for m in messages:
            if "tpkt_length" in m.fields:
                ours[m.frame].append(m.fields["tpkt_length"])
        differing = [
            n
            for n, lengths in ours.items()
            if n in theirs and theirs[n][-len(lengths) :] != lengths
        ]
        assert len(differing) <= 0.001 * len(ours) + 0.5, differing[:20]


def test_header_layout_is_what_the_builder_makes() -> None:
    raw = plus(2, bytes.fromhex("31000004bb0000000200000009") + b"\x01")
    fields, _ = decode_pdu(raw)
    assert fields["data_length"] == len(raw) - 8
    assert struct.unpack(">H", raw[2:4])[0] == fields["data_length"]
