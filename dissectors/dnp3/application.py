"""DNP3 application layer (IEEE 1815-2012 clause 4.2.2): headers, function codes, IIN.

A request fragment opens with application control (FIR, FIN, CON, UNS and a
4-bit sequence number) and a function code; a response adds two octets of
internal indications (IIN). Object headers follow (:mod:`.objects`). Which
requests carry object data and which carry headers only is decided here, by
function code, as clause 4.4 describes each function.
"""

from __future__ import annotations

import enum
from typing import Any

import construct as cs

from dissectors.dnp3.objects import (
    CLASS_DATA_GROUP,
    TIME_GROUP,
    decode_objects,
)

# Application control octet (clause 4.2.2.4).
FIR = 0x80
FIN = 0x40
CON = 0x20
UNS = 0x10
SEQUENCE_MASK = 0x0F


class FunctionCode(enum.IntEnum):
    """Application function codes, table 4-1 of IEEE 1815-2012."""

    CONFIRM = 0
    READ = 1
    WRITE = 2
    SELECT = 3
    OPERATE = 4
    DIRECT_OPERATE = 5
    DIRECT_OPERATE_NR = 6
    IMMED_FREEZE = 7
    IMMED_FREEZE_NR = 8
    FREEZE_CLEAR = 9
    FREEZE_CLEAR_NR = 10
    FREEZE_AT_TIME = 11
    FREEZE_AT_TIME_NR = 12
    COLD_RESTART = 13
    WARM_RESTART = 14
    INITIALIZE_DATA = 15
    INITIALIZE_APPL = 16
    START_APPL = 17
    STOP_APPL = 18
    SAVE_CONFIG = 19
    ENABLE_UNSOLICITED = 20
    DISABLE_UNSOLICITED = 21
    ASSIGN_CLASS = 22
    DELAY_MEASURE = 23
    RECORD_CURRENT_TIME = 24
    OPEN_FILE = 25
    CLOSE_FILE = 26
    DELETE_FILE = 27
    GET_FILE_INFO = 28
    AUTHENTICATE_FILE = 29
    ABORT_FILE = 30
    ACTIVATE_CONFIG = 31
    AUTHENTICATE_REQ = 32
    AUTH_REQ_NO_ACK = 33
    RESPONSE = 129
    UNSOLICITED_RESPONSE = 130
    AUTHENTICATE_RESP = 131


RESPONSE_FUNCTIONS = frozenset({129, 130, 131})

# IIN bits by position in the 16-bit value IIN1 << 8 | IIN2 (clause 4.2.2.7.2).
IIN_BITS = {
    15: "device_restart", 14: "device_trouble", 13: "local_control",
    12: "need_time", 11: "class_3_events", 10: "class_2_events",
    9: "class_1_events", 8: "broadcast",
    7: "reserved_1", 6: "reserved_2", 5: "config_corrupt", 4: "already_executing",
    3: "event_buffer_overflow", 2: "parameter_error", 1: "object_unknown",
    0: "no_func_code_support",
}  # fmt: skip

APPLICATION_CONTROL = cs.BitStruct(
    "fir" / cs.Flag,
    "fin" / cs.Flag,
    "con" / cs.Flag,
    "uns" / cs.Flag,
    "sequence" / cs.BitsInteger(4),
)

REQUEST_HEADER = cs.Struct(
    "control" / APPLICATION_CONTROL,
    "function_code" / cs.Int8ul,
)

RESPONSE_HEADER = cs.Struct(
    "control" / APPLICATION_CONTROL,
    "function_code" / cs.Int8ul,
    "iin" / cs.Int16ub,  # IIN1 then IIN2: IIN1 is the high octet here
)


def function_name(code: int) -> str:
    try:
        return FunctionCode(code).name.lower()
    except ValueError:
        return f"unknown_function_{code}"


_NAMES = [function_name(code) for code in range(256)]

# Requests whose object headers name points but carry no object data.
_HEADERS_ONLY = frozenset({1, 7, 8, 9, 10, 20, 21, 22})
_FREEZE_AT_TIME = frozenset({11, 12})


def _request_carries(function_code: int):
    if function_code in _HEADERS_ONLY:
        return _headers_only
    if function_code in _FREEZE_AT_TIME:
        return _time_only
    return _all_but_class


def _headers_only(group: int, variation: int) -> bool:
    return False


def _time_only(group: int, variation: int) -> bool:
    return group == TIME_GROUP


def _all_but_class(group: int, variation: int) -> bool:
    return group != CLASS_DATA_GROUP


def iin_flags(iin: int) -> list[str]:
    """The names of the IIN bits set in ``iin`` (IIN1 << 8 | IIN2)."""
    return [name for bit, name in IIN_BITS.items() if iin >> bit & 1]


def decode_fragment(
    fragment: bytes, fields: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str | None]:
    """Decode one whole application fragment.

    Returns its fields (added to ``fields`` when given) and None, or the
    fields read so far and the reason the fragment is malformed. Response
    function codes (129 to 131) decide the response header, whatever the
    direction the frame says.
    """
    if fields is None:
        fields = {}
    size = len(fragment)
    if size < 2:
        fields["fragment_size"] = size
        return fields, "application fragment shorter than 2 octets"
    control = fragment[0]
    code = fragment[1]
    fields["application_control"] = control
    fields["fir"] = bool(control & FIR)
    fields["fin"] = bool(control & FIN)
    fields["con"] = bool(control & CON)
    fields["uns"] = bool(control & UNS)
    fields["application_sequence"] = control & SEQUENCE_MASK
    fields["function_code"] = code
    if code in RESPONSE_FUNCTIONS:
        if size < 4:
            return fields, "response fragment without its two IIN octets"
        iin = fragment[2] << 8 | fragment[3]
        fields["iin"] = iin
        if iin:
            fields["iin_flags"] = iin_flags(iin)
        start = 4
        carries = _all_but_class
    else:
        start = 2
        carries = _request_carries(code)
    objects, problem = decode_objects(fragment, start, carries)
    fields["objects"] = objects
    return fields, problem


def service_name(code: int) -> str:
    return _NAMES[code]
