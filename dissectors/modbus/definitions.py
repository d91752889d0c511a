"""Declarative construct definitions of Modbus/TCP ADUs: parse, build, and name codes.

These Structs are the source of truth for the wire format. They follow the
Modbus Application Protocol Specification V1.1b3 (function codes, section 6;
exception responses, section 7) and the Modbus Messaging on TCP/IP
Implementation Guide V1.0b (MBAP header, section 3.1.3). The hand-written
decoders in :mod:`dissectors.modbus.fastpath` must agree with them field by
field, and the fuzzing harness builds its messages from them through
:func:`build_adu`.

Field names are the keys the dissector's ``Message.fields`` use, so a parsed
PDU maps to message fields with little more than flattening. Byte strings come
out as lower-case hex text and build from hex text or bytes; counts that the
standard derives from the data (``byte_count``, ``quantity`` of a write,
``fifo_count``, ``number_of_objects``) default to the right value when
building but may be given explicitly, so that a fuzzer can make them lie.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import construct as cs

this = cs.this


class FunctionCode(enum.IntEnum):
    """Public function codes (V1.1b3 section 5.1) plus vendor codes we name."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    READ_EXCEPTION_STATUS = 7
    DIAGNOSTICS = 8
    GET_COMM_EVENT_COUNTER = 11
    GET_COMM_EVENT_LOG = 12
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16
    REPORT_SERVER_ID = 17
    READ_FILE_RECORD = 20
    WRITE_FILE_RECORD = 21
    MASK_WRITE_REGISTER = 22
    READ_WRITE_MULTIPLE_REGISTERS = 23
    READ_FIFO_QUEUE = 24
    ENCAPSULATED_INTERFACE_TRANSPORT = 43
    # Schneider Electric's proprietary "Unified Messaging Application
    # Services", seen wherever Unity/EcoStruxure software talks to a PLC.
    UMAS = 90


class ExceptionCode(enum.IntEnum):
    """Exception codes (V1.1b3 section 7); 7 comes from the older Modicon guide."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    SERVER_DEVICE_FAILURE = 4
    ACKNOWLEDGE = 5
    SERVER_DEVICE_BUSY = 6
    NEGATIVE_ACKNOWLEDGE = 7
    MEMORY_PARITY_ERROR = 8
    GATEWAY_PATH_UNAVAILABLE = 10
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 11


class DiagnosticSubFunction(enum.IntEnum):
    """Sub-function codes of Diagnostics, function 8 (V1.1b3 section 6.8.1)."""

    RETURN_QUERY_DATA = 0
    RESTART_COMMUNICATIONS_OPTION = 1
    RETURN_DIAGNOSTIC_REGISTER = 2
    CHANGE_ASCII_INPUT_DELIMITER = 3
    FORCE_LISTEN_ONLY_MODE = 4
    CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER = 10
    RETURN_BUS_MESSAGE_COUNT = 11
    RETURN_BUS_COMMUNICATION_ERROR_COUNT = 12
    RETURN_BUS_EXCEPTION_ERROR_COUNT = 13
    RETURN_SERVER_MESSAGE_COUNT = 14
    RETURN_SERVER_NO_RESPONSE_COUNT = 15
    RETURN_SERVER_NAK_COUNT = 16
    RETURN_SERVER_BUSY_COUNT = 17
    RETURN_BUS_CHARACTER_OVERRUN_COUNT = 18
    CLEAR_OVERRUN_COUNTER_AND_FLAG = 20


class MeiType(enum.IntEnum):
    """MEI types carried by function 43 (V1.1b3 sections 6.19 to 6.21)."""

    CANOPEN_GENERAL_REFERENCE = 13
    READ_DEVICE_IDENTIFICATION = 14


class ReadDeviceIdCode(enum.IntEnum):
    """What a Read Device Identification request asks for (section 6.21)."""

    BASIC = 1
    REGULAR = 2
    EXTENDED = 3
    SPECIFIC = 4  # one object, the one named by object_id


class DeviceObject(enum.IntEnum):
    """Standard device identification objects (section 6.21, object table)."""

    VENDOR_NAME = 0
    PRODUCT_CODE = 1
    MAJOR_MINOR_REVISION = 2
    VENDOR_URL = 3
    PRODUCT_NAME = 4
    MODEL_NAME = 5
    USER_APPLICATION_NAME = 6


EXCEPTION_BIT = 0x80

# Quantity limits a request may ask for (V1.1b3, each function's request table).
MAX_QUANTITY = {
    FunctionCode.READ_COILS: 2000,
    FunctionCode.READ_DISCRETE_INPUTS: 2000,
    FunctionCode.READ_HOLDING_REGISTERS: 125,
    FunctionCode.READ_INPUT_REGISTERS: 125,
    FunctionCode.WRITE_MULTIPLE_COILS: 1968,
    FunctionCode.WRITE_MULTIPLE_REGISTERS: 123,
}
MAX_READ_WRITE_READ_QUANTITY = 125
MAX_READ_WRITE_WRITE_QUANTITY = 121

COIL_ON = 0xFF00
COIL_OFF = 0x0000
FILE_REFERENCE_TYPE = 6  # the only reference type sections 6.14 and 6.15 allow


def function_name(function_code: int) -> str:
    """Snake-case name of a function code, exception bit ignored."""
    code = function_code & 0x7F if function_code & EXCEPTION_BIT else function_code
    try:
        return FunctionCode(code).name.lower()
    except ValueError:
        return f"unknown_function_{code}"


def exception_name(exception_code: int) -> str:
    """Snake-case name of an exception code; ``unknown`` outside the standard's table."""
    try:
        return ExceptionCode(exception_code).name.lower()
    except ValueError:
        return "unknown"


def sub_function_name(sub_function: int) -> str:
    """Snake-case name of a Diagnostics sub-function; ``unknown`` for others."""
    try:
        return DiagnosticSubFunction(sub_function).name.lower()
    except ValueError:
        return "unknown"


def device_object_name(object_id: int) -> str:
    """Name of a device identification object; private and reserved ids by number."""
    if object_id < len(DeviceObject):
        return DeviceObject(object_id).name.lower()
    if object_id >= 0x80:
        return f"private_0x{object_id:02x}"
    return f"reserved_0x{object_id:02x}"


# Coil and discrete-input states are packed eight to a byte with the first
# addressed bit in the least significant position (section 6.1). A lookup table
# of each byte's eight bits keeps unpacking to one indexing per byte.
BITS_OF_BYTE = tuple(
    tuple((byte >> shift) & 1 for shift in range(8)) for byte in range(256)
)


def unpack_bits(data: bytes) -> list[int]:
    """Bit states of packed coil bytes, first addressed bit first."""
    bits: list[int] = []
    for byte in data:
        bits += BITS_OF_BYTE[byte]
    return bits


def pack_bits(bits: list[int] | list[bool]) -> bytes:
    """Packed coil bytes for bit states, padding the last byte with zeros."""
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index >> 3] |= 1 << (index & 7)
    return bytes(packed)


class CoilBits(cs.Adapter):
    """Packed coil bytes seen as a list of 0/1 states (see :func:`unpack_bits`)."""

    def _decode(self, obj: bytes, context: Any, path: str) -> list[int]:
        return unpack_bits(obj)

    def _encode(self, obj: list[int], context: Any, path: str) -> bytes:
        return pack_bits(obj)


class HexBytes(cs.Adapter):
    """Raw bytes given as lower-case hex text, as ``Message.fields`` carries them.

    Builds from hex text or from bytes, so fuzzers can pass either.
    """

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.hex()

    def _encode(self, obj: str | bytes, context: Any, path: str) -> bytes:
        return bytes.fromhex(obj) if isinstance(obj, str) else bytes(obj)


class DefaultFrom(cs.Default):
    """A Default whose value a Python function computes from the context.

    construct cannot compile a plain function into its generated builder, so
    this says so and lets the compiled form call the ordinary builder here.
    """

    def _emitbuild(self, code: Any) -> str:
        raise NotImplementedError


def _size(value: str | bytes) -> int:
    """Byte size of a value a :class:`HexBytes` field will build from."""
    return len(value) // 2 if isinstance(value, str) else len(value)


class MoreFollows(cs.Adapter):
    """The Read Device Identification continuation flag: 0x00 no, 0xFF yes.

    Parses any non-zero byte as True; builds True as 0xFF and passes integers
    through untouched, so a fuzzer can still send 0x01.
    """

    def _decode(self, obj: int, context: Any, path: str) -> bool:
        return obj != 0

    def _encode(self, obj: bool | int, context: Any, path: str) -> int:
        if isinstance(obj, bool):
            return 0xFF if obj else 0x00
        return obj


# --- MBAP header (TCP implementation guide, section 3.1.3) -------------------

MBAP_HEADER = cs.Struct(
    "transaction_id" / cs.Int16ub,
    "protocol_id" / cs.Const(0, cs.Int16ub),  # 0 means Modbus
    "length" / cs.Int16ub,  # bytes that follow, unit_id included
    "unit_id" / cs.Int8ub,
)
MBAP_SIZE = 7
# The TCP guide keeps the serial line's 256-byte ADU limit for the PDU: at most
# 253 bytes, so a 260-byte ADU and a length field (unit id plus PDU) of at most
# 254. The least is a unit id and a bare function code: 2.
MIN_LENGTH = 2
MAX_LENGTH = 254


# --- Bodies shared by several function codes ---------------------------------

# Anything we do not decode: vendor codes, unknown MEI types, CANopen data.
RAW_BODY = cs.Struct("data" / HexBytes(cs.GreedyBytes))
EMPTY_BODY = cs.Struct()

# Exception response, section 7: function code | 0x80, then one byte.
EXCEPTION_BODY = cs.Struct("exception_code" / cs.Int8ub)

# Functions 1 to 4 request, sections 6.1 to 6.4.
READ_REQUEST = cs.Struct(
    "address" / cs.Int16ub,  # starting address, 0-based
    "quantity" / cs.Int16ub,
)

# Functions 1 and 2 response: coil or input states, packed.
READ_BITS_RESPONSE = cs.Struct(
    "byte_count" / cs.Default(cs.Int8ub, (cs.len_(this.bits) + 7) // 8),
    "bits" / CoilBits(cs.Bytes(this.byte_count)),
)

# Functions 3, 4 and 23 response: register values.
READ_REGISTERS_RESPONSE = cs.Struct(
    "byte_count" / cs.Default(cs.Int8ub, cs.len_(this.registers) * 2),
    "registers" / cs.Array(this.byte_count // 2, cs.Int16ub),
)

# Functions 5 and 6, request and echoed response, sections 6.5 and 6.6.
WRITE_SINGLE = cs.Struct(
    "address" / cs.Int16ub,
    "value" / cs.Int16ub,  # for a coil 0xFF00 is ON, 0x0000 OFF, all else illegal
)

# Functions 15 and 16 response, sections 6.11 and 6.12.
WRITE_MULTIPLE_RESPONSE = cs.Struct(
    "address" / cs.Int16ub,
    "quantity" / cs.Int16ub,
)


# --- One definition per remaining function, in the standard's order -----------

# Function 7 response, section 6.7: eight exception status outputs.
READ_EXCEPTION_STATUS_RESPONSE = cs.Struct("status" / cs.Int8ub)

# Function 8 request and normal (echoed) response, section 6.8.
DIAGNOSTICS = cs.Struct(
    "sub_function" / cs.Int16ub,
    "data" / HexBytes(cs.GreedyBytes),
)

# Function 11 response, section 6.9.
GET_COMM_EVENT_COUNTER_RESPONSE = cs.Struct(
    "status" / cs.Int16ub,  # 0xFFFF while a previous command is still busy
    "event_count" / cs.Int16ub,
)

# Function 12 response, section 6.10: the byte count covers status and counters.
GET_COMM_EVENT_LOG_RESPONSE = cs.Struct(
    "byte_count" / DefaultFrom(cs.Int8ub, lambda ctx: _size(ctx.events) + 6),
    "status" / cs.Int16ub,
    "event_count" / cs.Int16ub,
    "message_count" / cs.Int16ub,
    "events" / HexBytes(cs.Bytes(this.byte_count - 6)),
)

# Function 15 request, section 6.11.
WRITE_MULTIPLE_COILS_REQUEST = cs.Struct(
    "address" / cs.Int16ub,
    "quantity" / cs.Default(cs.Int16ub, cs.len_(this.bits)),
    "byte_count" / cs.Default(cs.Int8ub, (cs.len_(this.bits) + 7) // 8),
    "bits" / CoilBits(cs.Bytes(this.byte_count)),
)

# Function 16 request, section 6.12.
WRITE_MULTIPLE_REGISTERS_REQUEST = cs.Struct(
    "address" / cs.Int16ub,
    "quantity" / cs.Default(cs.Int16ub, cs.len_(this.registers)),
    "byte_count" / cs.Default(cs.Int8ub, cs.len_(this.registers) * 2),
    "registers" / cs.Array(this.byte_count // 2, cs.Int16ub),
)

# Function 17 response, section 6.13. The standard leaves the server id's size
# to the device; like the classic Modicon layout (and Wireshark) we read one
# byte of id, one of run indicator (0x00 OFF, 0xFF ON) and call the rest data.
REPORT_SERVER_ID_RESPONSE = cs.Struct(
    "byte_count" / DefaultFrom(cs.Int8ub, lambda ctx: _size(ctx.data) + 2),
    "server_id" / HexBytes(cs.Bytes(1)),
    "run_indicator" / cs.Int8ub,
    "data" / HexBytes(cs.Bytes(this.byte_count - 2)),
)

# Function 20 request, section 6.14: seven-byte sub-requests.
FILE_SUB_REQUEST = cs.Struct(
    "reference_type" / cs.Default(cs.Int8ub, FILE_REFERENCE_TYPE),
    "file_number" / cs.Int16ub,
    "record_number" / cs.Int16ub,
    "record_length" / cs.Int16ub,  # in registers
)
READ_FILE_RECORD_REQUEST = cs.Struct(
    "byte_count" / cs.Default(cs.Int8ub, cs.len_(this.sub_requests) * 7),
    "sub_requests" / cs.Array(this.byte_count // 7, FILE_SUB_REQUEST),
)

# Function 20 response: each sub-response counts its reference type byte.
FILE_SUB_RESPONSE = cs.Struct(
    "file_response_length" / cs.Default(cs.Int8ub, cs.len_(this.registers) * 2 + 1),
    "reference_type" / cs.Default(cs.Int8ub, FILE_REFERENCE_TYPE),
    "registers" / cs.Array((this.file_response_length - 1) // 2, cs.Int16ub),
)
READ_FILE_RECORD_RESPONSE = cs.Struct(
    "byte_count"
    / DefaultFrom(
        cs.Int8ub,
        lambda ctx: sum(2 + 2 * len(s["registers"]) for s in ctx.sub_requests),
    ),
    "sub_requests" / cs.FixedSized(this.byte_count, cs.GreedyRange(FILE_SUB_RESPONSE)),
)

# Function 21 request and echoed response, section 6.15.
FILE_SUB_WRITE = cs.Struct(
    "reference_type" / cs.Default(cs.Int8ub, FILE_REFERENCE_TYPE),
    "file_number" / cs.Int16ub,
    "record_number" / cs.Int16ub,
    "record_length" / cs.Default(cs.Int16ub, cs.len_(this.registers)),
    "registers" / cs.Array(this.record_length, cs.Int16ub),
)
WRITE_FILE_RECORD = cs.Struct(
    "byte_count"
    / DefaultFrom(
        cs.Int8ub,
        lambda ctx: sum(7 + 2 * len(s["registers"]) for s in ctx.sub_requests),
    ),
    "sub_requests" / cs.FixedSized(this.byte_count, cs.GreedyRange(FILE_SUB_WRITE)),
)

# Function 22 request and echoed response, section 6.16.
MASK_WRITE_REGISTER = cs.Struct(
    "address" / cs.Int16ub,
    "and_mask" / cs.Int16ub,
    "or_mask" / cs.Int16ub,
)

# Function 23 request, section 6.17 (its response is READ_REGISTERS_RESPONSE).
READ_WRITE_MULTIPLE_REGISTERS_REQUEST = cs.Struct(
    "read_address" / cs.Int16ub,
    "read_quantity" / cs.Int16ub,
    "write_address" / cs.Int16ub,
    "write_quantity" / cs.Default(cs.Int16ub, cs.len_(this.registers)),
    "byte_count" / cs.Default(cs.Int8ub, cs.len_(this.registers) * 2),
    "registers" / cs.Array(this.byte_count // 2, cs.Int16ub),
)

# Function 24, section 6.18: a 16-bit byte count, then up to 31 queued values.
READ_FIFO_QUEUE_REQUEST = cs.Struct("address" / cs.Int16ub)  # FIFO pointer address
READ_FIFO_QUEUE_RESPONSE = cs.Struct(
    "byte_count" / cs.Default(cs.Int16ub, cs.len_(this.registers) * 2 + 2),
    "fifo_count" / cs.Default(cs.Int16ub, cs.len_(this.registers)),
    "registers" / cs.Array(this.fifo_count, cs.Int16ub),
)

# Function 43, section 6.19: the MEI type picks the rest. Its fields sit in a
# nested "mei" Struct that the dissector flattens into the message fields.
READ_DEVICE_ID_REQUEST = cs.Struct(
    "read_device_id_code" / cs.Int8ub,
    "object_id" / cs.Int8ub,  # first object wanted, or the one for code 4
)
DEVICE_OBJECT = cs.Struct(
    "id" / cs.Int8ub,
    # Length-prefixed; the standard's objects are ASCII strings, and latin-1
    # maps every byte to one character, so any value survives a round trip.
    "value" / cs.PascalString(cs.Int8ub, "latin-1"),
)
READ_DEVICE_ID_RESPONSE = cs.Struct(
    "read_device_id_code" / cs.Int8ub,
    "conformity_level" / cs.Int8ub,
    "more_follows" / MoreFollows(cs.Int8ub),
    "next_object_id" / cs.Int8ub,
    "number_of_objects" / cs.Default(cs.Int8ub, cs.len_(this.objects)),
    "objects" / cs.Array(this.number_of_objects, DEVICE_OBJECT),
)
ENCAPSULATED_INTERFACE_REQUEST = cs.Struct(
    "mei_type" / cs.Int8ub,
    "mei"
    / cs.Switch(
        this.mei_type,
        {int(MeiType.READ_DEVICE_IDENTIFICATION): READ_DEVICE_ID_REQUEST},
        default=RAW_BODY,  # CANopen general reference (13) and unknown types
    ),
)
ENCAPSULATED_INTERFACE_RESPONSE = cs.Struct(
    "mei_type" / cs.Int8ub,
    "mei"
    / cs.Switch(
        this.mei_type,
        {int(MeiType.READ_DEVICE_IDENTIFICATION): READ_DEVICE_ID_RESPONSE},
        default=RAW_BODY,
    ),
)


# --- Dispatch on function code -----------------------------------------------

F = FunctionCode
REQUEST_BODIES = {
    int(F.READ_COILS): READ_REQUEST,
    int(F.READ_DISCRETE_INPUTS): READ_REQUEST,
    int(F.READ_HOLDING_REGISTERS): READ_REQUEST,
    int(F.READ_INPUT_REGISTERS): READ_REQUEST,
    int(F.WRITE_SINGLE_COIL): WRITE_SINGLE,
    int(F.WRITE_SINGLE_REGISTER): WRITE_SINGLE,
    int(F.READ_EXCEPTION_STATUS): EMPTY_BODY,
    int(F.DIAGNOSTICS): DIAGNOSTICS,
    int(F.GET_COMM_EVENT_COUNTER): EMPTY_BODY,
    int(F.GET_COMM_EVENT_LOG): EMPTY_BODY,
    int(F.WRITE_MULTIPLE_COILS): WRITE_MULTIPLE_COILS_REQUEST,
    int(F.WRITE_MULTIPLE_REGISTERS): WRITE_MULTIPLE_REGISTERS_REQUEST,
    int(F.REPORT_SERVER_ID): EMPTY_BODY,
    int(F.READ_FILE_RECORD): READ_FILE_RECORD_REQUEST,
    int(F.WRITE_FILE_RECORD): WRITE_FILE_RECORD,
    int(F.MASK_WRITE_REGISTER): MASK_WRITE_REGISTER,
    int(F.READ_WRITE_MULTIPLE_REGISTERS): READ_WRITE_MULTIPLE_REGISTERS_REQUEST,
    int(F.READ_FIFO_QUEUE): READ_FIFO_QUEUE_REQUEST,
    int(F.ENCAPSULATED_INTERFACE_TRANSPORT): ENCAPSULATED_INTERFACE_REQUEST,
}
RESPONSE_BODIES = {
    int(F.READ_COILS): READ_BITS_RESPONSE,
    int(F.READ_DISCRETE_INPUTS): READ_BITS_RESPONSE,
    int(F.READ_HOLDING_REGISTERS): READ_REGISTERS_RESPONSE,
    int(F.READ_INPUT_REGISTERS): READ_REGISTERS_RESPONSE,
    int(F.WRITE_SINGLE_COIL): WRITE_SINGLE,
    int(F.WRITE_SINGLE_REGISTER): WRITE_SINGLE,
    int(F.READ_EXCEPTION_STATUS): READ_EXCEPTION_STATUS_RESPONSE,
    int(F.DIAGNOSTICS): DIAGNOSTICS,
    int(F.GET_COMM_EVENT_COUNTER): GET_COMM_EVENT_COUNTER_RESPONSE,
    int(F.GET_COMM_EVENT_LOG): GET_COMM_EVENT_LOG_RESPONSE,
    int(F.WRITE_MULTIPLE_COILS): WRITE_MULTIPLE_RESPONSE,
    int(F.WRITE_MULTIPLE_REGISTERS): WRITE_MULTIPLE_RESPONSE,
    int(F.REPORT_SERVER_ID): REPORT_SERVER_ID_RESPONSE,
    int(F.READ_FILE_RECORD): READ_FILE_RECORD_RESPONSE,
    int(F.WRITE_FILE_RECORD): WRITE_FILE_RECORD,
    int(F.MASK_WRITE_REGISTER): MASK_WRITE_REGISTER,
    int(F.READ_WRITE_MULTIPLE_REGISTERS): READ_REGISTERS_RESPONSE,
    int(F.READ_FIFO_QUEUE): READ_FIFO_QUEUE_RESPONSE,
    int(F.ENCAPSULATED_INTERFACE_TRANSPORT): ENCAPSULATED_INTERFACE_RESPONSE,
    # Every function code 1 to 127 has an exception form.
    **{code | EXCEPTION_BIT: EXCEPTION_BODY for code in range(128)},
}
del F

# A PDU is a function code and a body chosen by it; codes we do not know, UMAS
# (90) among them, fall through to raw bytes instead of failing.
REQUEST_PDU = cs.Struct(
    "function_code" / cs.Int8ub,
    "body" / cs.Switch(this.function_code, REQUEST_BODIES, default=RAW_BODY),
)
RESPONSE_PDU = cs.Struct(
    "function_code" / cs.Int8ub,
    "body" / cs.Switch(this.function_code, RESPONSE_BODIES, default=RAW_BODY),
)


def pdu_definition(is_request: bool) -> cs.Struct:
    """The PDU Struct for one direction."""
    return REQUEST_PDU if is_request else RESPONSE_PDU


_COMPILED: dict[bool, cs.Compiled] = {}


def compiled_pdu(is_request: bool) -> cs.Compiled:
    """The compiled form of :func:`pdu_definition`, made on first use.

    Compiling takes tens of milliseconds, so a program that never meets a
    rare function code never pays for it.
    """
    compiled = _COMPILED.get(is_request)
    if compiled is None:
        compiled = _COMPILED[is_request] = pdu_definition(is_request).compile()
    return compiled


# The header is packed by hand, not through MBAP_HEADER, whose Const would
# refuse the non-zero protocol id a fuzzer may ask for.
_MBAP = struct.Struct(">HHHB")


def build_adu(
    transaction_id: int,
    unit_id: int,
    function_code: int,
    is_request: bool,
    *,
    length: int | None = None,
    protocol_id: int = 0,
    **fields: Any,
) -> bytes:
    """Build one Modbus/TCP ADU from message-style fields.

    Parameters
    ----------
    transaction_id, unit_id, function_code
        the MBAP and PDU header values.
    is_request
        True for a client request, False for a server response (the two
        directions share function codes but not layouts).
    length, protocol_id
        MBAP values; ``length`` defaults to the true size. Give them to make
        the header lie.
    **fields
        the body, named as in ``Message.fields`` (``address``, ``registers``,
        ``exception_code``...). Function 43's MEI fields go here flat too.

    Returns
    -------
    bytes
        the ADU, MBAP header included.

    Examples
    --------
    >>> build_adu(1, 17, 3, True, address=0x6B, quantity=3).hex()
    '0001000000061103006b0003'
    """
    body = dict(fields)
    if function_code == FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT:
        mei_type = body.pop("mei_type")
        body = {"mei_type": mei_type, "mei": body}
    pdu = pdu_definition(is_request).build(
        {"function_code": function_code, "body": body}
    )
    if length is None:
        length = len(pdu) + 1
    return _MBAP.pack(transaction_id, protocol_id, length, unit_id) + pdu
