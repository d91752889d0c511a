"""Tests of the Modbus/TCP dissector: golden ADUs, round trips, streams, matching, fuzz.

Golden PDUs follow the examples of the Modbus Application Protocol
Specification V1.1b3, section 6 (one per function code, request and response),
with an MBAP header of transaction 1 and unit 17 put in front; the expected
field values were worked out by hand from the standard's tables, not with the
code under test.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import struct
import subprocess
import timeit
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dissectors.modbus import ModbusDissector, build_adu, dissect_adu, looks_like_modbus
from dissectors.modbus.decoding import decode_with_construct
from dissectors.modbus.definitions import (
    ExceptionCode,
    compiled_pdu,
    pdu_definition,
)
from dissectors.modbus.fastpath import decode_fast
from otdpi import registry
from otdpi.dissector import FlowContext
from otdpi.errors import MalformedError, TruncatedError
from otdpi.message import Endpoint, Message, Target

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"
CLIENT = Endpoint("192.0.2.10", 49152)
SERVER = Endpoint("192.0.2.20", 502)
HEADER_KEYS = {"transaction_id", "protocol_id", "length", "unit_id", "function_code"}
MATCH_KEYS = {"matched", "response_to_frame", "response_time"}
TID, UNIT = 1, 17


def new_dissector() -> ModbusDissector:
    return ModbusDissector(FlowContext(7, CLIENT, SERVER, "tcp"))


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def mbap(
    pdu: bytes, tid: int = TID, unit: int = UNIT, length: int | None = None
) -> bytes:
    """An ADU: our own MBAP header (true length unless given) before ``pdu``."""
    size = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, 0, size, unit) + pdu


def body(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields a PDU itself carries: no header, no matching details."""
    return {k: v for k, v in fields.items() if k not in HEADER_KEYS | MATCH_KEYS}


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging when the block runs longer than ``seconds``."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"dissector took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- Golden cases: (decoded content, bytes) per function code ---------------------


class Golden(NamedTuple):
    name: str
    is_request: bool
    pdu: str  # hex, function code first
    fields: dict[str, Any]  # the PDU's own fields
    service: str
    action: str
    targets: tuple[Target, ...] = ()
    identity: dict[str, Any] | None = None


# 0xCD 0x6B 0x05, least significant bit first in each byte (section 6.1 example).
COILS_CD_6B_05 = (
    [1, 0, 1, 1, 0, 0, 1, 1] + [1, 1, 0, 1, 0, 1, 1, 0] + [1, 0, 1, 0, 0, 0, 0, 0]
)
# 0xAC 0xDB 0x35 (section 6.2 example).
INPUTS_AC_DB_35 = (
    [0, 0, 1, 1, 0, 1, 0, 1] + [1, 1, 0, 1, 1, 0, 1, 1] + [1, 0, 1, 0, 1, 1, 0, 0]
)
VENDOR, PRODUCT_CODE, REVISION = "Acme Automation", "AC-1000", "V2.11"
HR, COILS = "holding_registers", "coils"

GOLDEN = [
    # 6.1 Read Coils: 19 coils from address 19.
    Golden(
        "read_coils",
        True,
        "01 0013 0013",
        {"address": 19, "quantity": 19},
        "read_coils",
        "read",
        (Target(COILS, 19, 19),),
    ),
    Golden(
        "read_coils",
        False,
        "01 03 CD6B05",
        {"byte_count": 3, "bits": COILS_CD_6B_05},
        "read_coils",
        "read",
    ),
    # 6.2 Read Discrete Inputs: 22 inputs from 196.
    Golden(
        "read_discrete_inputs",
        True,
        "02 00C4 0016",
        {"address": 196, "quantity": 22},
        "read_discrete_inputs",
        "read",
        (Target("discrete_inputs", 196, 22),),
    ),
    Golden(
        "read_discrete_inputs",
        False,
        "02 03 ACDB35",
        {"byte_count": 3, "bits": INPUTS_AC_DB_35},
        "read_discrete_inputs",
        "read",
    ),
    # 6.3 Read Holding Registers 108 to 110 (address 107).
    Golden(
        "read_holding_registers",
        True,
        "03 006B 0003",
        {"address": 107, "quantity": 3},
        "read_holding_registers",
        "read",
        (Target(HR, 107, 3),),
    ),
    Golden(
        "read_holding_registers",
        False,
        "03 06 022B 0000 0064",
        {"byte_count": 6, "registers": [555, 0, 100]},
        "read_holding_registers",
        "read",
    ),
    # 6.4 Read Input Register 9 (address 8).
    Golden(
        "read_input_registers",
        True,
        "04 0008 0001",
        {"address": 8, "quantity": 1},
        "read_input_registers",
        "read",
        (Target("input_registers", 8, 1),),
    ),
    Golden(
        "read_input_registers",
        False,
        "04 02 000A",
        {"byte_count": 2, "registers": [10]},
        "read_input_registers",
        "read",
    ),
    # 6.5 Write Single Coil 173 (address 172) ON.
    Golden(
        "write_single_coil",
        True,
        "05 00AC FF00",
        {"address": 172, "value": 0xFF00, "coil": True},
        "write_single_coil",
        "write",
        (Target(COILS, 172, 1),),
    ),
    Golden(
        "write_single_coil",
        False,
        "05 00AC FF00",
        {"address": 172, "value": 0xFF00, "coil": True},
        "write_single_coil",
        "write",
        (Target(COILS, 172, 1),),
    ),
    # 6.6 Write Single Register 2 (address 1) to 3.
    Golden(
        "write_single_register",
        True,
        "06 0001 0003",
        {"address": 1, "value": 3},
        "write_single_register",
        "write",
        (Target(HR, 1, 1),),
    ),
    Golden(
        "write_single_register",
        False,
        "06 0001 0003",
        {"address": 1, "value": 3},
        "write_single_register",
        "write",
        (Target(HR, 1, 1),),
    ),
    # 6.7 Read Exception Status.
    Golden(
        "read_exception_status", True, "07", {}, "read_exception_status", "diagnose"
    ),
    Golden(
        "read_exception_status",
        False,
        "07 6D",
        {"status": 0x6D},
        "read_exception_status",
        "diagnose",
    ),
    # 6.8 Diagnostics: Return Query Data echoes A5 37.
    Golden(
        "diagnostics",
        True,
        "08 0000 A537",
        {"sub_function": 0, "sub_function_name": "return_query_data", "data": "a537"},
        "diagnostics",
        "diagnose",
    ),
    Golden(
        "diagnostics",
        False,
        "08 0000 A537",
        {"sub_function": 0, "sub_function_name": "return_query_data", "data": "a537"},
        "diagnostics",
        "diagnose",
    ),
    # 6.8.1 sub-functions 01 (restart) and 04 (listen only) change the device.
    Golden(
        "diagnostics_restart",
        True,
        "08 0001 FF00",
        {
            "sub_function": 1,
            "sub_function_name": "restart_communications_option",
            "data": "ff00",
        },
        "diagnostics",
        "control",
    ),
    Golden(
        "diagnostics_listen_only",
        True,
        "08 0004 0000",
        {
            "sub_function": 4,
            "sub_function_name": "force_listen_only_mode",
            "data": "0000",
        },
        "diagnostics",
        "control",
    ),
    Golden(
        "diagnostics_bus_messages",
        False,
        "08 000B 0102",
        {
            "sub_function": 11,
            "sub_function_name": "return_bus_message_count",
            "data": "0102",
        },
        "diagnostics",
        "diagnose",
    ),
    # 6.9 Get Comm Event Counter: busy, 264 events.
    Golden(
        "get_comm_event_counter", True, "0B", {}, "get_comm_event_counter", "diagnose"
    ),
    Golden(
        "get_comm_event_counter",
        False,
        "0B FFFF 0108",
        {"status": 0xFFFF, "event_count": 264},
        "get_comm_event_counter",
        "diagnose",
    ),
    # 6.10 Get Comm Event Log: two events, 20 and 00.
    Golden("get_comm_event_log", True, "0C", {}, "get_comm_event_log", "diagnose"),
    Golden(
        "get_comm_event_log",
        False,
        "0C 08 0000 0108 0121 2000",
        {
            "byte_count": 8,
            "status": 0,
            "event_count": 264,
            "message_count": 289,
            "events": "2000",
        },
        "get_comm_event_log",
        "diagnose",
    ),
    # 6.11 Write Multiple Coils: 10 coils from address 19, CD 01.
    Golden(
        "write_multiple_coils",
        True,
        "0F 0013 000A 02 CD01",
        {
            "address": 19,
            "quantity": 10,
            "byte_count": 2,
            "bits": [1, 0, 1, 1, 0, 0, 1, 1, 1, 0],
        },
        "write_multiple_coils",
        "write",
        (Target(COILS, 19, 10),),
    ),
    Golden(
        "write_multiple_coils",
        False,
        "0F 0013 000A",
        {"address": 19, "quantity": 10},
        "write_multiple_coils",
        "write",
        (Target(COILS, 19, 10),),
    ),
    # 6.12 Write Multiple Registers: 000A and 0102 from address 1.
    Golden(
        "write_multiple_registers",
        True,
        "10 0001 0002 04 000A 0102",
        {"address": 1, "quantity": 2, "byte_count": 4, "registers": [10, 258]},
        "write_multiple_registers",
        "write",
        (Target(HR, 1, 2),),
    ),
    Golden(
        "write_multiple_registers",
        False,
        "10 0001 0002",
        {"address": 1, "quantity": 2},
        "write_multiple_registers",
        "write",
        (Target(HR, 1, 2),),
    ),
    # 6.13 Report Server ID: id 2A, running, "ABC".
    Golden("report_server_id", True, "11", {}, "report_server_id", "identify"),
    Golden(
        "report_server_id",
        False,
        "11 05 2A FF 414243",
        {"byte_count": 5, "server_id": "2a", "run_indicator": 0xFF, "data": "414243"},
        "report_server_id",
        "identify",
        (),
        {"modbus_server_id": "2a"},
    ),
    # 6.14 Read File Record: file 4 record 1 and file 3 record 9, two registers each.
    Golden(
        "read_file_record",
        True,
        "14 0E 06 0004 0001 0002 06 0003 0009 0002",
        {
            "byte_count": 14,
            "sub_requests": [
                {
                    "reference_type": 6,
                    "file_number": 4,
                    "record_number": 1,
                    "record_length": 2,
                },
                {
                    "reference_type": 6,
                    "file_number": 3,
                    "record_number": 9,
                    "record_length": 2,
                },
            ],
        },
        "read_file_record",
        "read",
        (
            Target("file_records", 4 << 16 | 1, 2),
            Target("file_records", 3 << 16 | 9, 2),
        ),
    ),
    Golden(
        "read_file_record",
        False,
        "14 0C 05 06 0DFE 0020 05 06 33CD 0040",
        {
            "byte_count": 12,
            "sub_requests": [
                {
                    "file_response_length": 5,
                    "reference_type": 6,
                    "registers": [0x0DFE, 0x20],
                },
                {
                    "file_response_length": 5,
                    "reference_type": 6,
                    "registers": [0x33CD, 0x40],
                },
            ],
        },
        "read_file_record",
        "read",
    ),
    # 6.15 Write File Record: file 4 record 7, three registers.
    *[
        Golden(
            "write_file_record",
            is_request,
            "15 0D 06 0004 0007 0003 06AF 04BE 100D",
            {
                "byte_count": 13,
                "sub_requests": [
                    {
                        "reference_type": 6,
                        "file_number": 4,
                        "record_number": 7,
                        "record_length": 3,
                        "registers": [0x06AF, 0x04BE, 0x100D],
                    },
                ],
            },
            "write_file_record",
            "write",
            (Target("file_records", 4 << 16 | 7, 3),),
        )
        for is_request in (True, False)
    ],
    # 6.16 Mask Write Register 4: AND 00F2, OR 0025.
    *[
        Golden(
            "mask_write_register",
            is_request,
            "16 0004 00F2 0025",
            {"address": 4, "and_mask": 0xF2, "or_mask": 0x25},
            "mask_write_register",
            "write",
            (Target(HR, 4, 1),),
        )
        for is_request in (True, False)
    ],
    # 6.17 Read/Write Multiple Registers: read 6 from 3, write 3 from 14.
    Golden(
        "read_write_multiple_registers",
        True,
        "17 0003 0006 000E 0003 06 00FF00FF00FF",
        {
            "read_address": 3,
            "read_quantity": 6,
            "write_address": 14,
            "write_quantity": 3,
            "byte_count": 6,
            "registers": [255, 255, 255],
        },
        "read_write_multiple_registers",
        "write",
        (Target(HR, 3, 6), Target(HR, 14, 3)),
    ),
    Golden(
        "read_write_multiple_registers",
        False,
        "17 0C 00FE 0ACD 0001 0003 000D 00FF",
        {"byte_count": 12, "registers": [254, 2765, 1, 3, 13, 255]},
        "read_write_multiple_registers",
        "write",
    ),
    # 6.18 Read FIFO Queue at pointer 04DE: two values queued.
    Golden(
        "read_fifo_queue",
        True,
        "18 04DE",
        {"address": 1246},
        "read_fifo_queue",
        "read",
        (Target("fifo", 1246, 1),),
    ),
    Golden(
        "read_fifo_queue",
        False,
        "18 0006 0002 01B8 1284",
        {"byte_count": 6, "fifo_count": 2, "registers": [440, 4740]},
        "read_fifo_queue",
        "read",
    ),
    # 6.20 CANopen General Reference: opaque.
    Golden(
        "canopen_general_reference",
        True,
        "2B 0D 00010203",
        {"mei_type": 13, "data": "00010203"},
        "canopen_general_reference",
        "other",
    ),
    Golden(
        "canopen_general_reference",
        False,
        "2B 0D 0A0B",
        {"mei_type": 13, "data": "0a0b"},
        "canopen_general_reference",
        "other",
    ),
    # 6.21 Read Device Identification, basic stream from object 0.
    Golden(
        "read_device_identification",
        True,
        "2B 0E 01 00",
        {"mei_type": 14, "read_device_id_code": 1, "object_id": 0},
        "read_device_identification",
        "identify",
    ),
    Golden(
        "read_device_identification",
        False,
        "2B 0E 01 01 00 00 03"
        " 00 0F 41636D65204175746F6D6174696F6E 01 07 41432D31303030 02 05 56322E3131",
        {
            "mei_type": 14,
            "read_device_id_code": 1,
            "conformity_level": 1,
            "more_follows": False,
            "next_object_id": 0,
            "number_of_objects": 3,
            "objects": [
                {"id": 0, "name": "vendor_name", "value": VENDOR},
                {"id": 1, "name": "product_code", "value": PRODUCT_CODE},
                {"id": 2, "name": "major_minor_revision", "value": REVISION},
            ],
        },
        "read_device_identification",
        "identify",
        (),
        {"vendor": VENDOR, "product_code": PRODUCT_CODE, "revision": REVISION},
    ),
    # Section 7 example: Read Coils answered with Illegal Data Address.
    Golden(
        "exception",
        False,
        "81 02",
        {"exception_code": 2, "exception_name": "illegal_data_address"},
        "read_coils",
        "read",
    ),
    Golden(
        "exception_43",
        False,
        "AB 01",
        {"exception_code": 1, "exception_name": "illegal_function"},
        "encapsulated_interface_transport",
        "other",
    ),
    # Vendor and unknown codes: raw bytes.
    Golden("umas", True, "5A 00 02", {"data": "0002"}, "umas", "other"),
    Golden("umas", False, "5A 00 FE 0102", {"data": "00fe0102"}, "umas", "other"),
    Golden(
        "unknown_100",
        True,
        "64 0102",
        {"data": "0102"},
        "unknown_function_100",
        "other",
    ),
]
GOLDEN_IDS = [f"{g.name}-{'request' if g.is_request else 'response'}" for g in GOLDEN]


def golden_adu(case: Golden) -> bytes:
    return mbap(hexbytes(case.pdu))


def golden(name: str, is_request: bool) -> Golden:
    [case] = [g for g in GOLDEN if g.name == name and g.is_request == is_request]
    return case


@pytest.mark.parametrize("case", GOLDEN, ids=GOLDEN_IDS)
def test_golden_dissects_to_expected_message(case: Golden) -> None:
    adu = golden_adu(case)
    message = dissect_adu(adu, case.is_request, ts=5.0, frame=3)

    assert message.status.state in ("ok", "exception"), message.status
    assert body(message.fields) == case.fields
    assert message.fields["transaction_id"] == TID
    assert message.fields["protocol_id"] == 0
    assert message.fields["length"] == len(adu) - 6
    assert message.fields["unit_id"] == UNIT
    assert message.fields["function_code"] == adu[7]
    assert message.service == case.service
    assert message.service_code == adu[7] & 0x7F
    assert message.action == case.action
    assert message.kind == ("request" if case.is_request else "response")
    assert message.targets == case.targets
    assert message.identity == (case.identity or {})
    assert message.findings == ()
    assert (message.ts, message.frame, message.protocol) == (5.0, 3, "modbus")


@pytest.mark.parametrize("case", GOLDEN, ids=GOLDEN_IDS)
def test_golden_through_construct_definitions(case: Golden) -> None:
    fields, findings, problem = decode_with_construct(golden_adu(case), case.is_request)
    assert (body(fields), findings, problem) == (case.fields, (), None)


@pytest.mark.parametrize("case", GOLDEN, ids=GOLDEN_IDS)
def test_golden_round_trip_parse_build(case: Golden) -> None:
    pdu = hexbytes(case.pdu)
    for definition in (pdu_definition(case.is_request), compiled_pdu(case.is_request)):
        assert definition.build(definition.parse(pdu)) == pdu


@pytest.mark.parametrize("case", GOLDEN, ids=GOLDEN_IDS)
def test_golden_builds_from_message_fields(case: Golden) -> None:
    adu = golden_adu(case)
    fields = dissect_adu(adu, case.is_request).fields
    assert build_adu(TID, UNIT, adu[7], case.is_request, **body(fields)) == adu


def test_golden_covers_every_public_function_code_both_ways() -> None:
    covered = {(hexbytes(g.pdu)[0] & 0x7F, g.is_request) for g in GOLDEN}
    for code in (
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        11,
        12,
        15,
        16,
        17,
        20,
        21,
        22,
        23,
        24,
        43,
        90,
    ):
        assert (code, True) in covered and (code, False) in covered, code


def test_exception_names_follow_the_standard() -> None:
    names = {
        1: "illegal_function",
        2: "illegal_data_address",
        3: "illegal_data_value",
        4: "server_device_failure",
        5: "acknowledge",
        6: "server_device_busy",
        7: "negative_acknowledge",
        8: "memory_parity_error",
        9: "unknown",
        10: "gateway_path_unavailable",
        11: "gateway_target_device_failed_to_respond",
        12: "unknown",
    }
    assert {e.value for e in ExceptionCode} == set(names) - {9, 12}
    for code, name in names.items():
        message = dissect_adu(mbap(bytes([0x83, code])), False)
        assert message.fields["exception_name"] == name
        assert (message.status.state, message.status.code, message.status.name) == (
            "exception",
            code,
            name,
        )
        assert message.service == "read_holding_registers"
        assert message.action == "read"


def test_build_adu_example() -> None:
    assert build_adu(1, 17, 3, True, address=0x6B, quantity=3) == hexbytes(
        "0001 0000 0006 11 03 006B 0003"
    )
    # Counts can be made to lie, for fuzzing.
    lying = build_adu(
        1, 17, 16, True, address=0, quantity=5, byte_count=4, registers=[1, 2]
    )
    assert lying == hexbytes("0001 0000 000B 11 10 0000 0005 04 0001 0002")
    assert (
        build_adu(1, 17, 3, True, length=9, address=0, quantity=1)[4:6] == b"\x00\x09"
    )


# --- Fast path against the construct definitions -----------------------------------

u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
bit = st.integers(0, 1)
REQUEST_STRATEGIES = {
    "read": st.builds(dict, function_code=st.sampled_from([1, 2, 3, 4]), address=u16,
                      quantity=u16),
    "write_single": st.builds(dict, function_code=st.sampled_from([5, 6]), address=u16,
                              value=st.one_of(st.sampled_from([0, 0xFF00]), u16)),
    "write_coils": st.builds(dict, function_code=st.just(15), address=u16,
                             quantity=st.one_of(u16, st.integers(0, 1976)),
                             bits=st.lists(bit, max_size=1976)),
    "write_registers": st.builds(dict, function_code=st.just(16), address=u16,
                                 quantity=st.one_of(u16, st.integers(0, 123)),
                                 registers=st.lists(u16, max_size=123)),
    "read_write": st.builds(dict, function_code=st.just(23), read_address=u16,
                            read_quantity=u16, write_address=u16, write_quantity=u16,
                            registers=st.lists(u16, max_size=118)),
    "device_id": st.builds(dict, function_code=st.just(43), mei_type=st.just(14),
                           read_device_id_code=u8, object_id=u8),
}  # fmt: skip
latin1_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30)
RESPONSE_STRATEGIES = {
    "read_bits": st.builds(dict, function_code=st.sampled_from([1, 2]),
                           bits=st.lists(bit, max_size=2000)),
    "read_registers": st.builds(dict, function_code=st.sampled_from([3, 4, 23]),
                                registers=st.lists(u16, max_size=125)),
    "write_single": REQUEST_STRATEGIES["write_single"],
    "write_multiple": st.builds(dict, function_code=st.sampled_from([15, 16]), address=u16,
                                quantity=u16),
    "exception": st.builds(dict, function_code=st.integers(0x81, 0xFF), exception_code=u8),
    "device_id": st.builds(dict, function_code=st.just(43), mei_type=st.just(14),
                           read_device_id_code=u8, conformity_level=u8,
                           more_follows=st.booleans(), next_object_id=u8,
                           objects=st.lists(st.builds(dict, id=u8, value=latin1_text),
                                            max_size=7)),
}  # fmt: skip


def _make_counts_agree(fields: dict[str, Any]) -> dict[str, Any]:
    # The strategies draw quantities apart from the data, so they mostly
    # disagree (and must be flagged alike by both paths); real wires mostly
    # agree, so half the examples are made to.
    if "bits" in fields and "quantity" in fields:
        return dict(fields, quantity=len(fields["bits"]))
    if "registers" in fields and "quantity" in fields:
        return dict(fields, quantity=len(fields["registers"]))
    if "write_quantity" in fields:
        return dict(fields, write_quantity=len(fields["registers"]))
    return fields


@settings(max_examples=400, deadline=timedelta(milliseconds=500))
@given(
    is_request=st.booleans(),
    data=st.data(),
    tid=u16,
    unit=u8,
    counts_agree=st.booleans(),
)
def test_fast_path_equals_construct_definitions(
    is_request, data, tid, unit, counts_agree
) -> None:
    strategies = REQUEST_STRATEGIES if is_request else RESPONSE_STRATEGIES
    fields = data.draw(st.one_of(*strategies.values()))
    if counts_agree:
        fields = _make_counts_agree(fields)
    code = fields.pop("function_code")
    adu = build_adu(tid, unit, code, is_request, **fields)

    fast = decode_fast(adu, is_request)
    assert fast is not None, "the fast path declined a regular ADU"
    assert fast == decode_with_construct(adu, is_request)


@settings(max_examples=600, deadline=timedelta(milliseconds=500))
@given(
    is_request=st.booleans(),
    code=st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 23, 43, 0x83, 0xAB]),
    rest=st.binary(max_size=60),
)
@example(is_request=False, code=43, rest=hexbytes("0E 01 01 FF 05 02 00 01 41"))
def test_fast_path_equals_construct_on_any_pdu_it_accepts(
    is_request, code, rest
) -> None:
    adu = mbap(bytes([code]) + rest)
    fast = decode_fast(adu, is_request)
    if fast is not None:
        assert fast == decode_with_construct(adu, is_request)


def test_fast_path_serves_the_common_codes() -> None:
    for case in GOLDEN:
        code = hexbytes(case.pdu)[0]
        common = (
            code in (1, 2, 3, 4, 5, 6, 15, 16, 23)
            or code > 0x80
            or (code == 43 and "read_device_id_code" in case.fields)
        )
        accepted = decode_fast(golden_adu(case), case.is_request) is not None
        assert accepted == common, case.name


def test_decoding_speed_of_a_typical_read(capsys: pytest.CaptureFixture[str]) -> None:
    dissector = new_dissector()
    request = build_adu(1, 1, 3, True, address=100, quantity=10)
    response = build_adu(1, 1, 3, False, registers=list(range(10)))
    rounds = 20000

    def exchange() -> None:
        dissector.feed(request, True, 1.0, 1)
        dissector.feed(response, False, 1.001, 2)

    per_adu = min(timeit.repeat(exchange, number=rounds, repeat=3)) / rounds / 2 * 1e6
    construct_only = (
        min(
            timeit.repeat(
                lambda: decode_with_construct(response, False), number=500, repeat=3
            )
        )
        / 500
        * 1e6
    )
    with capsys.disabled():
        print(f"\nmodbus FC3 request+response: {per_adu:.2f} us/ADU through feed(); "
              f"construct path alone {construct_only:.1f} us/ADU")  # fmt: skip
    # Loose bound (shared CI machines vary); it still catches a fall to the
    # construct path, which costs several times more.
    assert per_adu < construct_only


# --- The plugin's declarations and probe -------------------------------------------


def test_plugin_declarations_and_entry_point() -> None:
    assert ModbusDissector.name == "modbus"
    assert ModbusDissector.transports == ("tcp",)
    assert ModbusDissector.default_ports == (502,)
    assert ModbusDissector.probe_min_bytes == 8
    assert registry.available()["modbus"] is ModbusDissector


def test_named_tuple_layouts_the_hot_path_relies_on() -> None:
    # The session builds Message and Target with tuple.__new__ in field order.
    assert Message._fields == (
        "ts", "frame", "flow", "src", "dst", "protocol", "kind", "service",
        "service_code", "action", "targets", "fields", "identity", "status", "findings",
    )  # fmt: skip
    assert Target._fields == ("space", "start", "count")


@pytest.mark.parametrize(
    "data",
    [
        hexbytes("0001 0000 0006 0A 01 0000 0001"),
        hexbytes("0001 0000 0003 0A 81 02"),
        hexbytes("0001 0000 0006 0A 01 0000 0001 0002 0000 0006 0A 03 0000 0001"),
        hexbytes("0001 0000 0006 0A 01 0000 0001 0002 00"),  # second header cut short
        hexbytes("0001 0000 0009 0A 10 0000 0001 02"),  # start of a longer ADU
        hexbytes("0001 0000 0004 FF 5A 00 02"),  # UMAS, any unit id
    ],
)
def test_probe_accepts_modbus(data: bytes) -> None:
    assert ModbusDissector.probe(data, True)
    assert looks_like_modbus(data)


@pytest.mark.parametrize(
    "data",
    [
        hexbytes("16 03 01 00 85 01 00 00 81 03 03"),  # TLS ClientHello
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        hexbytes("05 00 0B 03 10 00 00 00 48 00 00 00"),  # DCERPC bind
        hexbytes("80 00 00 28 7E 86 AB 4A 00 00 00 00"),  # NFS over TCP record mark
        hexbytes("03 00 00 2B 26 E0 00 00 00 00 00"),  # TPKT/COTP (RDP, S7)
        hexbytes("0001 0001 0006 0A 01 0000"),  # protocol id 1
        hexbytes("0001 0000 0006 0A 00 0000 0001"),  # function code 0
        hexbytes("0001 0000 0001 0A 01 0000 0001"),  # length 1
        hexbytes("0001 0000 00FF 0A 01 0000 0001"),  # length 255
        hexbytes("0001 0000 8804 0A 01 0000 0001"),  # length far too long
        hexbytes("0001 0000 0002 0A 05"),  # write single coil with no body
        hexbytes("0001 0000 0006 0A 01 0000 0001 4745 5420 2F20"),  # then not Modbus
        hexbytes("0001 0000 0006 0A"),  # fewer than 8 bytes
        bytes(8),
    ],
)
def test_probe_rejects_other_protocols(data: bytes) -> None:
    assert not ModbusDissector.probe(data, True)
    assert not ModbusDissector.probe(data, False)


def test_registry_selects_modbus_on_any_port_and_not_tls_on_502() -> None:
    selector = registry.Selector(only=["modbus"])
    adu = golden_adu(GOLDEN[0])
    assert selector.choose("tcp", 502, adu, True) is ModbusDissector
    assert selector.choose("tcp", 5020, adu, True) is ModbusDissector
    assert selector.choose("tcp", 502, hexbytes("1603010085010000810303"), True) is None


# --- Streams: framing, junk, gaps ---------------------------------------------------

REQUESTS = [
    build_adu(tid, 1, 3, True, address=tid * 10, quantity=2) for tid in range(1, 5)
] + [build_adu(9, 1, 16, True, address=7, registers=[1, 2, 3])]


def feed_all(
    dissector: ModbusDissector, chunks: list[bytes], to_server: bool
) -> list[Message]:
    out = []
    for chunk in chunks:
        out += dissector.feed(chunk, to_server, 1.0, 1)
    return out


def test_empty_feed_gives_nothing() -> None:
    dissector = new_dissector()
    assert dissector.feed(b"", True, 1.0, 1) == []
    assert dissector.feed(b"", False, 1.0, 1) == []


def test_several_adus_in_one_segment() -> None:
    messages = new_dissector().feed(b"".join(REQUESTS), True, 1.0, 1)
    assert [m.fields["transaction_id"] for m in messages] == [1, 2, 3, 4, 9]
    assert all(m.status.state == "ok" for m in messages)
    assert messages[-1].fields["registers"] == [1, 2, 3]


def test_split_at_every_offset_gives_the_same_messages() -> None:
    stream = b"".join(REQUESTS)
    whole = new_dissector().feed(stream, True, 1.0, 1)
    for cut in range(1, len(stream)):
        assert feed_all(new_dissector(), [stream[:cut], stream[cut:]], True) == whole, (
            cut
        )
    one_by_one = feed_all(
        new_dissector(), [stream[i : i + 1] for i in range(len(stream))], True
    )
    assert one_by_one == whole


def test_conversation_byte_by_byte_equals_whole() -> None:
    conversation = [(g.is_request, golden_adu(g)) for g in GOLDEN]
    whole, single = new_dissector(), new_dissector()
    expected, got = [], []
    for to_server, adu in conversation:
        expected += whole.feed(adu, to_server, 2.0, 9)
        for i in range(len(adu)):
            got += single.feed(adu[i : i + 1], to_server, 2.0, 9)
    assert got == expected
    assert len(got) == len(GOLDEN)


def test_junk_between_adus_is_skipped_and_reported() -> None:
    junk = hexbytes("DEADBEEF0102")
    dissector = new_dissector()
    messages = dissector.feed(REQUESTS[0] + junk + REQUESTS[1], True, 1.0, 1)
    assert [m.status.state for m in messages] == ["ok", "malformed", "ok"]
    skipped = messages[1]
    assert skipped.fields == {"skipped_bytes": 6}
    assert "skipped 6 bytes" in skipped.status.reason
    assert "MBAP header" in skipped.status.reason
    assert (skipped.kind, skipped.src, skipped.dst) == ("request", CLIENT, SERVER)


def test_gap_resets_the_direction_and_resynchronises() -> None:
    dissector = new_dissector()
    assert dissector.feed(REQUESTS[0][:5], True, 1.0, 1) == []
    [dropped] = dissector.gap(True, 1.5, 2)
    assert dropped.status.state == "malformed"
    assert dropped.fields == {"dropped_bytes": 5}
    assert dissector.gap(True, 1.5, 2) == []  # nothing buffered any more

    # After the gap the stream resumes in the middle of an ADU.
    messages = dissector.feed(REQUESTS[1][7:] + REQUESTS[2], True, 2.0, 3)
    assert [m.status.state for m in messages] == ["malformed", "ok"]
    assert messages[0].fields == {"skipped_bytes": len(REQUESTS[1]) - 7}
    assert messages[1].fields["transaction_id"] == 3


def test_close_reports_an_unfinished_adu() -> None:
    dissector = new_dissector()
    dissector.feed(REQUESTS[0] + REQUESTS[1][:9], True, 1.0, 1)
    dissector.feed(REQUESTS[0][:3], False, 1.0, 2)
    messages = dissector.close(3.0, 4)
    assert [(m.kind, m.status.state, m.fields) for m in messages] == [
        ("request", "malformed", {"buffered_bytes": 9}),
        ("response", "malformed", {"buffered_bytes": 3}),
    ]
    assert "9 bytes" in messages[0].status.reason
    assert new_dissector().close(1.0, 1) == []


# --- Request/response matching -----------------------------------------------------


def exchange(dissector: ModbusDissector, request: bytes, response: bytes) -> Message:
    [sent] = dissector.feed(request, True, 10.0, 4)
    assert sent.kind == "request"
    [answer] = dissector.feed(response, False, 10.25, 6)
    return answer


def test_read_coils_response_takes_request_range_and_cuts_bits() -> None:
    answer = exchange(  # 19 coils from 19
        new_dissector(),
        golden_adu(golden("read_coils", True)),
        golden_adu(golden("read_coils", False)),
    )
    fields = answer.fields
    assert fields["bits"] == COILS_CD_6B_05[:19]
    assert (fields["address"], fields["quantity"]) == (19, 19)
    assert answer.targets == (Target("coils", 19, 19),)
    assert fields["matched"] is True
    assert fields["response_to_frame"] == 4
    assert fields["response_time"] == 0.25
    assert answer.findings == ()


def test_read_registers_response_targets_and_byte_count_check() -> None:
    dissector = new_dissector()
    request = build_adu(5, 2, 4, True, address=300, quantity=2)
    answer = exchange(dissector, request, build_adu(5, 2, 4, False, registers=[7, 8]))
    assert answer.targets == (Target("input_registers", 300, 2),)
    assert (answer.fields["address"], answer.fields["quantity"]) == (300, 2)

    # The same request answered with three registers.
    answer = exchange(
        dissector, request, build_adu(5, 2, 4, False, registers=[7, 8, 9])
    )
    assert [f.code for f in answer.findings] == ["byte_count_mismatch"]
    assert answer.status.state == "ok"


def test_read_write_and_fifo_responses_learn_from_their_requests() -> None:
    dissector = new_dissector()
    answer = exchange(
        dissector,
        build_adu(1, 1, 23, True, read_address=3, read_quantity=2, write_address=9,
                  registers=[1]),
        build_adu(1, 1, 23, False, registers=[4, 5]),
    )  # fmt: skip
    assert (answer.fields["read_address"], answer.fields["read_quantity"]) == (3, 2)
    assert answer.targets == (Target("holding_registers", 3, 2),)
    answer = exchange(
        dissector,
        build_adu(2, 1, 24, True, address=0x4DE),
        build_adu(2, 1, 24, False, registers=[1, 2]),
    )
    assert answer.targets == (Target("fifo", 0x4DE, 1),)
    request = golden("read_file_record", True)
    answer = exchange(
        dissector, golden_adu(request), golden_adu(golden("read_file_record", False))
    )
    assert answer.fields["sub_requests"][1]["file_number"] == 3
    assert answer.targets == request.targets


def test_unmatched_response_is_flagged_in_fields_only() -> None:
    response = golden_adu(golden("read_holding_registers", False))
    [answer] = new_dissector().feed(response, False, 1.0, 1)
    assert answer.fields["matched"] is False
    assert "address" not in answer.fields
    assert answer.targets == ()
    assert answer.findings == ()


def test_matching_is_by_transaction_and_unit() -> None:
    dissector = new_dissector()
    dissector.feed(build_adu(1, 1, 3, True, address=10, quantity=1), True, 1.0, 1)
    dissector.feed(build_adu(1, 2, 3, True, address=20, quantity=1), True, 1.0, 2)
    [second] = dissector.feed(build_adu(1, 2, 3, False, registers=[0]), False, 1.1, 3)
    [first] = dissector.feed(build_adu(1, 1, 3, False, registers=[0]), False, 1.2, 4)
    assert (first.fields["address"], first.fields["response_to_frame"]) == (10, 1)
    assert (second.fields["address"], second.fields["response_to_frame"]) == (20, 2)


def test_exception_response_keeps_its_function_and_request() -> None:
    dissector = new_dissector()
    answer = exchange(
        dissector, mbap(hexbytes("01 04A1 0001")), mbap(hexbytes("81 02"))
    )
    assert answer.status.state == "exception"
    assert (answer.service, answer.action, answer.fields["matched"]) == (
        "read_coils",
        "read",
        True,
    )
    # 43/14 exceptions name the MEI service their request used.
    answer = exchange(dissector, mbap(hexbytes("2B 0E 01 00")), mbap(hexbytes("AB 01")))
    assert (answer.service, answer.action) == ("read_device_identification", "identify")
    answer = exchange(
        dissector, mbap(hexbytes("08 0001 0000")), mbap(hexbytes("88 0B"))
    )
    assert answer.action == "control"


def test_response_with_another_function_code_is_not_matched() -> None:
    answer = exchange(
        new_dissector(),
        build_adu(1, 1, 3, True, address=0, quantity=1),
        build_adu(1, 1, 4, False, registers=[1]),
    )
    assert answer.fields["matched"] is False
    assert [f.code for f in answer.findings] == ["function_code_mismatch"]


def test_pending_requests_are_bounded() -> None:
    dissector = new_dissector()
    dissector.max_pending = 3
    for tid in range(5):
        dissector.feed(
            build_adu(tid, 1, 3, True, address=tid, quantity=1), True, 1.0, tid
        )
    assert dissector.evicted_requests == 2
    [old] = dissector.feed(build_adu(0, 1, 3, False, registers=[0]), False, 2.0, 9)
    [kept] = dissector.feed(build_adu(4, 1, 3, False, registers=[0]), False, 2.0, 9)
    assert old.fields["matched"] is False
    assert kept.fields["matched"] is True


# --- Edge cases seen on real wires ----------------------------------------------------


def test_coil_written_with_0x0001() -> None:
    for to_server in (True, False):
        message = dissect_adu(mbap(hexbytes("05 0010 0001")), to_server)
        assert message.status.state == "ok"
        assert message.fields["coil"] is False
        assert [f.code for f in message.findings] == ["coil_value_invalid"]
        assert "0x0001" in message.findings[0].detail


def test_mbap_length_longer_than_the_pdu() -> None:
    message = dissect_adu(mbap(hexbytes("03 006B 0003 00")), True)
    assert message.status.state == "ok"
    assert (message.fields["address"], message.fields["quantity"]) == (107, 3)
    assert [f.code for f in message.findings] == ["length_mismatch"]
    assert "MBAP length 7" in message.findings[0].detail


def test_mbap_length_shorter_than_the_pdu_is_malformed() -> None:
    message = dissect_adu(mbap(hexbytes("03 006B 00")), True)
    assert message.status.state == "malformed"
    assert "read_holding_registers (3)" in message.status.reason
    assert "'quantity'" in message.status.reason
    assert "offset 10" in message.status.reason
    assert message.fields == {
        "transaction_id": TID,
        "protocol_id": 0,
        "length": 5,
        "unit_id": UNIT,
        "function_code": 3,
    }
    assert (message.service, message.action) == ("read_holding_registers", "read")


def test_truncated_response_body_names_field_and_offset() -> None:
    message = dissect_adu(mbap(hexbytes("03 06 022B 00")), False)
    assert message.status.state == "malformed"
    assert "'registers'" in message.status.reason
    assert "offset 11" in message.status.reason
    message = dissect_adu(mbap(hexbytes("2B 0E 01 00")), False)  # echoed request
    assert "'more_follows'" in message.status.reason


def test_exception_adu_one_byte_too_long() -> None:
    message = dissect_adu(mbap(hexbytes("81 02 00")), False)
    assert message.status.state == "exception"
    assert message.fields["length"] == 4
    assert message.fields["exception_code"] == 2
    assert [f.code for f in message.findings] == ["length_mismatch"]


def test_exception_adu_without_its_code_is_malformed() -> None:
    message = dissect_adu(mbap(hexbytes("81")), False)
    assert message.status.state == "malformed"
    assert message.service == "read_coils"


def test_byte_count_disagreeing_with_quantity() -> None:
    message = dissect_adu(mbap(hexbytes("10 0001 0003 04 000A 0102")), True)
    assert [f.code for f in message.findings] == ["byte_count_mismatch"]
    message = dissect_adu(mbap(hexbytes("0F 0013 000A 01 CD")), True)
    assert [f.code for f in message.findings] == ["byte_count_mismatch"]
    assert message.fields["bits"] == [1, 0, 1, 1, 0, 0, 1, 1]


def test_quantity_out_of_range() -> None:
    message = dissect_adu(mbap(hexbytes("03 0000 0000")), True)
    assert [f.code for f in message.findings] == ["quantity_out_of_range"]
    message = dissect_adu(mbap(hexbytes("01 0000 07D1")), True)  # 2001 coils
    assert [f.code for f in message.findings] == ["quantity_out_of_range"]
    assert dissect_adu(mbap(hexbytes("01 0000 07D0")), True).findings == ()


def test_unknown_function_90_is_umas_raw() -> None:
    message = dissect_adu(mbap(hexbytes("5A 00 58 02")), True)
    assert (message.service, message.service_code, message.action) == (
        "umas",
        90,
        "other",
    )
    assert message.fields["data"] == "005802"
    assert message.status.state == "ok"
    exception = dissect_adu(mbap(hexbytes("DA 01")), False)
    assert (exception.service, exception.status.name) == ("umas", "illegal_function")


@pytest.mark.xfail(
    strict=True,
    reason="Limitation: UMAS payloads (function 90) are kept raw; the UMAS "
    "function byte (program download, start/stop) is not decoded yet",
)
def test_umas_function_is_decoded() -> None:
    message = dissect_adu(mbap(hexbytes("5A 00 40 FF 00")), True)  # UMAS start PLC
    assert message.fields["umas_function"] == 0x40
    assert message.action == "control"


def device_id_response(
    code: int, more: int, next_id: int, objects: list[tuple[int, bytes]]
) -> bytes:
    pdu = bytes([0x2B, 0x0E, code, 0x83, more, next_id, len(objects)])
    for object_id, value in objects:
        pdu += bytes([object_id, len(value)]) + value
    return mbap(pdu)


def test_device_identification_continued_over_two_rounds() -> None:
    dissector = new_dissector()
    first = exchange(
        dissector,
        mbap(hexbytes("2B 0E 02 00")),
        device_id_response(2, 0xFF, 0x03, [(0, b"Acme"), (1, b"AC-1"), (2, b"1.0")]),
    )
    assert first.fields["more_follows"] is True
    assert first.fields["next_object_id"] == 3
    assert first.identity == {
        "vendor": "Acme",
        "product_code": "AC-1",
        "revision": "1.0",
    }

    second = exchange(
        dissector,
        mbap(hexbytes("2B 0E 02 03")),
        device_id_response(2, 0x00, 0x00, [(3, b"http://acme.example"), (4, b"Pump")]),
    )
    assert second.fields["more_follows"] is False
    assert second.fields["matched"] is True
    assert second.identity == {
        "vendor_url": "http://acme.example",
        "product_name": "Pump",
    }


def test_every_standard_device_object_and_private_ones() -> None:
    objects = [
        (0, b"Acme "), (1, b"AC-1"), (2, b"V1.2"), (3, b"acme.example"), (4, b"Pump"),
        (5, b"P-100"), (6, b"Station 4\x00"), (0x80, b"SN 12345"), (0xFF, b"\xe9t\xe9"),
        (0x07, b"reserved"),
    ]  # fmt: skip
    message = dissect_adu(device_id_response(3, 0, 0, objects), False)
    assert message.identity == {
        "vendor": "Acme",
        "product_code": "AC-1",
        "revision": "V1.2",
        "vendor_url": "acme.example",
        "product_name": "Pump",
        "model": "P-100",
        "application_name": "Station 4",
        "private_0x80": "SN 12345",
        "private_0xff": "été",
    }
    names = [o["name"] for o in message.fields["objects"]]
    assert names == [
        "vendor_name", "product_code", "major_minor_revision", "vendor_url",
        "product_name", "model_name", "user_application_name", "private_0x80",
        "private_0xff", "reserved_0x07",
    ]  # fmt: skip
    assert message.fields["conformity_level"] == 0x83


def test_single_object_request_code_4() -> None:
    answer = exchange(
        new_dissector(),
        mbap(hexbytes("2B 0E 04 05")),
        device_id_response(4, 0, 0, [(5, b"P-100")]),
    )
    request_fields = dissect_adu(mbap(hexbytes("2B 0E 04 05")), True).fields
    assert (request_fields["read_device_id_code"], request_fields["object_id"]) == (
        4,
        5,
    )
    assert answer.fields["number_of_objects"] == 1
    assert answer.identity == {"model": "P-100"}


def test_dissect_adu_refuses_what_is_not_one_adu() -> None:
    adu = golden_adu(GOLDEN[0])
    with pytest.raises(TruncatedError):
        dissect_adu(adu[:-1], True)
    with pytest.raises(TruncatedError):
        dissect_adu(adu[:5], True)
    with pytest.raises(MalformedError):
        dissect_adu(adu + b"\x00", True)
    with pytest.raises(MalformedError):
        dissect_adu(hexbytes("1603010085010000810303"), True)


# --- Robustness -----------------------------------------------------------------------

CONVERSATION = b"".join(golden_adu(g) for g in GOLDEN)


def run_stream(data: bytes, to_server: bool, pieces: int | None) -> list[Message]:
    """Feed ``data`` whole (pieces None) or in pieces of that size, then close."""
    dissector = new_dissector()
    out = []
    if pieces is None:
        out += dissector.feed(data, to_server, 1.0, 1)
    else:
        for i in range(0, len(data), pieces):
            out += dissector.feed(data[i : i + pieces], to_server, 1.0, 1)
    out += dissector.close(2.0, 2)
    return out


def check_robust(data: bytes, to_server: bool) -> None:
    with time_limit(10):
        whole = run_stream(data, to_server, None)
        single = run_stream(data, to_server, 1)
    for message in whole + single:
        assert isinstance(message, Message)
        assert message.protocol == "modbus"
        assert message.kind == ("request" if to_server else "response")
        assert all(f.code != "dissector_error" for f in message.findings), message
        assert message.status.state in ("ok", "exception", "malformed")

    # Byte at a time, junk may be reported in several runs, but every ADU and
    # every skipped byte is the same.
    def adus(messages: list[Message]) -> list[Message]:
        return [m for m in messages if "skipped_bytes" not in m.fields]

    def skipped(messages: list[Message]) -> int:
        return sum(m.fields.get("skipped_bytes", 0) for m in messages)

    assert adus(single) == adus(whole)
    assert skipped(single) == skipped(whole)


ROBUST = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


@ROBUST
@given(data=st.binary(max_size=700), to_server=st.booleans())
def test_random_bytes_never_raise(data: bytes, to_server: bool) -> None:
    check_robust(data, to_server)


@ROBUST
@given(
    code=u8,
    rest=st.binary(max_size=253),
    to_server=st.booleans(),
    extra=st.sampled_from([0, 0, 1, -1, 5]),
)
def test_random_pdus_behind_valid_headers_never_raise(
    code, rest, to_server, extra
) -> None:
    pdu = bytes([code]) + rest
    length = max(2, min(254, len(pdu) + 1 + extra))
    check_robust(mbap(pdu, length=length) + golden_adu(GOLDEN[0]), to_server)


@ROBUST
@given(
    flips=st.lists(st.tuples(st.integers(0, len(CONVERSATION) - 1), st.integers(0, 7)),
                   max_size=8),
    lengths=st.lists(st.tuples(st.integers(0, len(GOLDEN) - 1), u16), max_size=3),
    cut=st.integers(0, len(CONVERSATION)),
    to_server=st.booleans(),
)  # fmt: skip
def test_mutated_conversations_never_raise(flips, lengths, cut, to_server) -> None:
    data = bytearray(CONVERSATION)
    for index, bit_number in flips:
        data[index] ^= 1 << bit_number
    starts = []
    pos = 0
    for case in GOLDEN:
        starts.append(pos)
        pos += len(golden_adu(case))
    for which, length in lengths:  # make length fields lie
        data[starts[which] + 4 : starts[which] + 6] = length.to_bytes(2, "big")
    check_robust(bytes(data[:cut]), to_server)


def test_truncated_adus_of_every_golden_case() -> None:
    for case in GOLDEN:
        adu = golden_adu(case)
        for size in range(len(adu) + 1):
            check_robust(adu[:size], case.is_request)
            # The same PDU cut short, but with an MBAP length that fits it.
            if size > 8:
                check_robust(mbap(adu[7:size]), case.is_request)


def test_random_walk_of_lying_lengths_is_deterministic() -> None:
    rng = random.Random(20240611)
    for _ in range(200):
        data = bytearray(CONVERSATION)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        check_robust(bytes(data), rng.random() < 0.5)


# --- Real bytes -------------------------------------------------------------------------

REAL_CAPTURES = {
    # name: whether every ADU in it is expected to be well formed
    "modbus/icsnpp_modbus_example.pcap": True,
    "modbus/zeek_modbusSmall.pcap": True,
    "modbus/iti_modbus_test.pcap": True,
    "modbus/ndpi_modbus.pcap": True,
    "modbus/emre_modbus_rw_multiple_registers.pcap": True,
    "modbus/emre_modbus_mask_write_register.pcap": True,
    "modbus/digitalbond_modbus_test_data_part1.pcap": False,  # fuzzed lengths
    "modbus/zeek_fuzz-1011.pcap": False,
    "modbus/emre_modbus_encapsulated_transport.pcap": False,  # truncated 43/14 reply
    "mixed-it/zeek_modbus_and_non_modbus_p502.pcap": True,  # after the probe
}


def tcp_payloads(path: Path) -> list[tuple[int, int, int, int, bytes]]:
    """(frame, stream, source port, destination port, payload) of each TCP segment."""
    fields = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.payload"]
    command = [
        "tshark",
        "-r",
        str(path),
        "-Y",
        "tcp.len > 0 && tcp.port == 502",
        "-T",
        "fields",
    ]
    for name in fields:
        command += ["-e", name]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    out = []
    for line in lines.splitlines():
        frame, stream, sport, dport, payload = line.split("\t")
        out.append((int(frame), int(stream), int(sport), int(dport), hexbytes(payload)))
    return out


@pytest.mark.parametrize("name, all_well_formed", sorted(REAL_CAPTURES.items()))
def test_public_captures(name: str, all_well_formed: bool) -> None:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{path} is not present beside the checkout")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")

    flows: dict[int, ModbusDissector | None] = {}
    messages: list[Message] = []
    for frame, stream, sport, dport, payload in tcp_payloads(path):
        to_server = dport == 502
        if stream not in flows:
            probe = ModbusDissector.probe(payload, to_server)
            flows[stream] = new_dissector() if probe else None
        if flows[stream] is not None:
            messages += flows[stream].feed(payload, to_server, float(frame), frame)
    for dissector in flows.values():
        if dissector is not None:
            messages += dissector.close(0.0, 0)

    assert messages, "no Modbus found"
    if "non_modbus" in name:  # TLS, HTTP, NFS, DCERPC and RDP scanners on 502
        assert sum(d is None for d in flows.values()) >= 5
    assert not [
        m for m in messages if any(f.code == "dissector_error" for f in m.findings)
    ]
    broken = [m for m in messages if m.status.state == "malformed"]
    if all_well_formed:
        assert broken == []
        responses = [m for m in messages if m.kind == "response"]
        assert sum(m.fields.get("matched", False) for m in responses) >= 0.9 * len(
            responses
        )


# --- Which side is the client, from the bytes alone ----------------------------


@pytest.mark.parametrize(
    ("adu_hex", "shape"),
    [
        ("0001 0000 0006 01 03 0000 000a", True),  # FC3 request: 5-byte PDU
        ("0001 0000 0007 01 03 04 0001 0002", False),  # FC3 response: counted
        ("0001 0000 0006 01 01 03 a1b2c3", None),  # 3 coil bytes: both shapes fit
        ("0001 0000 000b 01 10 0000 0002 04 00010002", True),  # FC16 request
        ("0001 0000 0006 01 10 0000 0002", False),  # FC16 response echoes 5 bytes
        ("0001 0000 0003 01 83 02", False),  # any exception comes from a server
        ("0001 0000 0003 01 80 01", False),  # pymodbus's answer to an unknown code
        ("0001 0000 0006 0a 2b 0e 03 01 00", True),  # RDI request padded by a byte
        ("0001 0000 0006 01 06 0001 0003", None),  # FC6: request and echo alike
    ],
)
def test_request_or_response_by_shape(adu_hex, shape):
    from dissectors.modbus.session import request_or_response

    assert request_or_response(bytes.fromhex(adu_hex.replace(" ", ""))) is shape


def test_sender_is_client_votes_over_the_leading_adus():
    from dissectors.modbus.session import sender_is_client

    request = bytes.fromhex("000100000006010300000002")
    response = bytes.fromhex("00010000000701030400010002")
    echo = bytes.fromhex("000100000006010600010003")
    assert sender_is_client(request + echo) is True
    assert sender_is_client(response + echo + response) is False
    assert sender_is_client(echo) is None
    assert sender_is_client(request + response) is None  # a tie says nothing
    assert sender_is_client(b"\x00\x01junk") is None
