"""HSMS and SECS-II wire formats as construct definitions: the source of truth.

Standards: SEMI E37 (HSMS, the 4-byte length and 10-byte message header, the
control message types and their status codes) and SEMI E5 (SECS-II message
text: items, format codes, 1 to 3 length bytes). The hand-written decoder in
:mod:`dissectors.hsms.items` is held equal to :data:`ITEM` by tests; these
definitions also build messages for tests and the benchmark generator.
"""

from __future__ import annotations

import enum
from typing import Any

import construct as cs
from construct import this

# The length field counts the header and the message text. E37 allows any
# 32-bit value; otdpi accepts 16 MiB less a byte, so the top byte is always 0,
# which is also what keeps TLS, TPKT and DNP3 from framing as HSMS.
MAX_LENGTH = 0x00FFFFFF
HEADER_SIZE = 10
LENGTH_SIZE = 4
# Nesting deeper than this is reported as malformed rather than followed.
MAX_DEPTH = 64


class PType(enum.IntEnum):
    """Presentation type (E37, header byte 4): only SECS-II is defined."""

    SECS_II = 0


class SType(enum.IntEnum):
    """Session type (E37 table "SType values"): 0 is a data message."""

    DATA_MESSAGE = 0
    SELECT_REQ = 1
    SELECT_RSP = 2
    DESELECT_REQ = 3
    DESELECT_RSP = 4
    LINKTEST_REQ = 5
    LINKTEST_RSP = 6
    REJECT_REQ = 7
    SEPARATE_REQ = 9


class SelectStatus(enum.IntEnum):
    """Select.rsp status, header byte 3."""

    COMMUNICATION_ESTABLISHED = 0
    COMMUNICATION_ALREADY_ACTIVE = 1
    CONNECTION_NOT_READY = 2
    CONNECT_EXHAUST = 3


class DeselectStatus(enum.IntEnum):
    """Deselect.rsp status, header byte 3."""

    COMMUNICATION_ENDED = 0
    COMMUNICATION_NOT_ESTABLISHED = 1
    COMMUNICATION_BUSY = 2


class RejectReason(enum.IntEnum):
    """Reject.req reason code, header byte 3."""

    STYPE_NOT_SUPPORTED = 1
    PTYPE_NOT_SUPPORTED = 2
    TRANSACTION_NOT_OPEN = 3
    ENTITY_NOT_SELECTED = 4


class FormatCode(enum.IntEnum):
    """SECS-II item format codes (E5 table "Item format codes"), octal as written."""

    L = 0o00  # list: the length counts items, not bytes
    B = 0o10  # binary
    BOOLEAN = 0o11
    A = 0o20  # ASCII
    J = 0o21  # JIS-8
    C2 = 0o22  # 2-byte character: a 2-byte encoding code, then the text
    I8 = 0o30
    I1 = 0o31
    I2 = 0o32
    I4 = 0o34
    F8 = 0o40
    F4 = 0o44
    U8 = 0o50
    U1 = 0o51
    U2 = 0o52
    U4 = 0o54


# Element size of each array format; the length must be a multiple of it.
ELEMENT_SIZE = {
    FormatCode.B: 1, FormatCode.BOOLEAN: 1, FormatCode.A: 1, FormatCode.J: 1,
    FormatCode.C2: 1, FormatCode.I8: 8, FormatCode.I1: 1, FormatCode.I2: 2,
    FormatCode.I4: 4, FormatCode.F8: 8, FormatCode.F4: 4, FormatCode.U8: 8,
    FormatCode.U1: 1, FormatCode.U2: 2, FormatCode.U4: 4,
}  # fmt: skip

_NUMBER = {
    FormatCode.I8: cs.Int64sb, FormatCode.I1: cs.Int8sb, FormatCode.I2: cs.Int16sb,
    FormatCode.I4: cs.Int32sb, FormatCode.F8: cs.Float64b, FormatCode.F4: cs.Float32b,
    FormatCode.U8: cs.Int64ub, FormatCode.U1: cs.Int8ub, FormatCode.U2: cs.Int16ub,
    FormatCode.U4: cs.Int32ub,
}  # fmt: skip


def _numbers(code: FormatCode) -> cs.Construct:
    size = ELEMENT_SIZE[code]
    return cs.Sequence(
        cs.Check(this._.length % size == 0),
        cs.Array(this._.length // size, _NUMBER[code]),
    )


# E5 item: format byte (6-bit code, 2-bit count of length bytes), length, data.
ITEM = cs.Struct(
    "format_byte"
    / cs.BitStruct(
        "format_code" / cs.BitsInteger(6), "length_bytes" / cs.BitsInteger(2)
    ),
    cs.Check(this.format_byte.length_bytes > 0),  # 0 length bytes is not allowed
    "length"
    / cs.Switch(
        this.format_byte.length_bytes, {1: cs.Int8ub, 2: cs.Int16ub, 3: cs.Int24ub}
    ),
    "value"
    / cs.Switch(
        this.format_byte.format_code,
        {
            FormatCode.L: cs.Array(this.length, cs.LazyBound(lambda: ITEM)),
            FormatCode.B: cs.Bytes(this.length),
            FormatCode.BOOLEAN: cs.Bytes(this.length),
            FormatCode.A: cs.Bytes(this.length),
            FormatCode.J: cs.Bytes(this.length),
            FormatCode.C2: cs.Bytes(this.length),
            **{code: _numbers(code) for code in _NUMBER},
        },
        default=cs.Error,  # an unknown format code cannot be skipped safely
    ),
)

# E37 message header, after the 4-byte length.
HEADER = cs.Struct(
    "session_id" / cs.Int16ub,
    "header_byte_2" / cs.BitStruct("w_bit" / cs.Flag, "stream" / cs.BitsInteger(7)),
    "header_byte_3" / cs.Int8ub,  # function, or a control message's status
    "p_type" / cs.Int8ub,
    "s_type" / cs.Int8ub,
    "system_bytes" / cs.Int32ub,
)

MESSAGE = cs.Struct(
    "length" / cs.Int32ub,
    cs.Check(this.length >= HEADER_SIZE),
    "header" / HEADER,
    "text" / cs.Bytes(this.length - HEADER_SIZE),
)


# --- Building (tests, benchmark generator) -------------------------------------


def item_container(item: dict[str, Any], length_bytes: int | None = None) -> dict:
    """The construct input for a plain item ``{"type": "U4", "value": [1]}``.

    ``length_bytes`` forces a length field size; by default the least that holds
    the length. Nested items take the least size.
    """
    code = FormatCode[item["type"]]
    value = item["value"]
    if code == FormatCode.L:
        data: Any = [item_container(child) for child in value]
        length = len(value)
    elif code == FormatCode.B:
        data = bytes.fromhex(value)
        length = len(data)
    elif code == FormatCode.BOOLEAN:
        data = bytes(1 if v else 0 for v in value)
        length = len(data)
    elif code in (FormatCode.A, FormatCode.J):
        data = value.encode("latin-1")
        length = len(data)
    elif code == FormatCode.C2:
        data = bytes.fromhex(value)
        length = len(data)
    else:
        data = [None, list(value)]
        length = len(value) * ELEMENT_SIZE[code]
    if length_bytes is None:
        length_bytes = 1 if length < 0x100 else 2 if length < 0x10000 else 3
    return {
        "format_byte": {"format_code": int(code), "length_bytes": length_bytes},
        "length": length,
        "value": data,
    }


def build_item(item: dict[str, Any], length_bytes: int | None = None) -> bytes:
    """Encode a plain item through :data:`ITEM`."""
    return ITEM.build(item_container(item, length_bytes))


def build_message(
    *,
    session_id: int = 0,
    stream: int = 0,
    function: int = 0,
    w_bit: bool = False,
    p_type: int = 0,
    s_type: int = 0,
    system_bytes: int = 0,
    text: bytes = b"",
) -> bytes:
    """Encode one HSMS message (length, header, text) through :data:`MESSAGE`."""
    header = {
        "session_id": session_id,
        "header_byte_2": {"w_bit": w_bit, "stream": stream},
        "header_byte_3": function,
        "p_type": p_type,
        "s_type": s_type,
        "system_bytes": system_bytes,
    }
    return MESSAGE.build(
        {"length": HEADER_SIZE + len(text), "header": header, "text": text}
    )


def control_message(
    s_type: SType,
    system_bytes: int,
    status: int = 0,
    session_id: int = 0xFFFF,
    byte_2: int = 0,
) -> bytes:
    """A control message; ``status`` goes in header byte 3, ``byte_2`` in byte 2."""
    return build_message(
        session_id=session_id,
        stream=byte_2 & 0x7F,
        w_bit=bool(byte_2 & 0x80),
        function=status,
        s_type=int(s_type),
        system_bytes=system_bytes,
    )
