"""S7comm wire format: codes as enums and the PDU parts as construct Structs.

S7comm (protocol id 0x32) is Siemens' proprietary S7 communication, carried
in COTP DT user data on port 102. There is no public standard; the layouts
here are the public facts of the protocol as documented by independent
analyses and shown by Wireshark's dissector, checked against real captures.
The Structs are the reference definition: the hand-written decoder in
:mod:`dissectors.s7comm.decoding` is held equal to them by tests, and they
build PDUs for tests and the benchmark.
"""

from __future__ import annotations

from enum import IntEnum

import construct as cs

PROTOCOL_ID = 0x32
HEADER_SIZE = 10  # job and userdata; ack and ack-data add error class and code
ACK_HEADER_SIZE = 12


class Rosctr(IntEnum):
    """Remote operating service control: the PDU type (header octet 1)."""

    JOB = 1
    ACK = 2
    ACK_DATA = 3
    USERDATA = 7


class Function(IntEnum):
    """Parameter function codes of job and ack-data PDUs."""

    CPU_SERVICES = 0x00
    SETUP_COMMUNICATION = 0xF0
    READ_VAR = 0x04
    WRITE_VAR = 0x05
    REQUEST_DOWNLOAD = 0x1A
    DOWNLOAD_BLOCK = 0x1B
    DOWNLOAD_ENDED = 0x1C
    START_UPLOAD = 0x1D
    UPLOAD = 0x1E
    END_UPLOAD = 0x1F
    PI_SERVICE = 0x28
    PLC_STOP = 0x29


class ErrorClass(IntEnum):
    """Header error class of ack and ack-data PDUs."""

    NO_ERROR = 0x00
    APPLICATION_RELATIONSHIP = 0x81
    OBJECT_DEFINITION = 0x82
    NO_RESOURCES_AVAILABLE = 0x83
    ERROR_ON_SERVICE_PROCESSING = 0x84
    ERROR_ON_SUPPLIES = 0x85
    ACCESS_ERROR = 0x87


class Area(IntEnum):
    """Memory areas addressed by S7ANY items."""

    SYSTEM_INFO_200 = 0x03
    SYSTEM_FLAGS_200 = 0x05
    ANALOG_INPUTS_200 = 0x06
    ANALOG_OUTPUTS_200 = 0x07
    COUNTER = 0x1C
    TIMER = 0x1D
    IEC_COUNTER = 0x1E
    IEC_TIMER = 0x1F
    PERIPHERAL = 0x80
    INPUTS = 0x81
    OUTPUTS = 0x82
    FLAGS = 0x83
    DB = 0x84
    DI = 0x85
    LOCAL = 0x86
    PREVIOUS_LOCAL = 0x87


# Short names of areas, as an S7 programmer writes them (DB12, M, I, Q...).
AREA_SHORT = {
    0x03: "SI200", 0x05: "SF200", 0x06: "AI200", 0x07: "AQ200", 0x1C: "C",
    0x1D: "T", 0x1E: "IEC_C", 0x1F: "IEC_T", 0x80: "P", 0x81: "I", 0x82: "Q",
    0x83: "M", 0x84: "DB", 0x85: "DI", 0x86: "L", 0x87: "V",
}  # fmt: skip


class SyntaxId(IntEnum):
    """Item address formats (the octet after the variable specification)."""

    S7ANY = 0x10
    PBC_ID = 0x13
    ALARM_LOCKFREE = 0x15
    ALARM_IND = 0x16
    ALARM_ACK = 0x19
    ALARM_QUERYREQ = 0x1A
    NOTIFY_IND = 0x1C
    DRIVEESANY = 0xA2
    S1200SYM = 0xB2
    DBREAD = 0xB0
    NCK = 0x82


class ItemTransportSize(IntEnum):
    """Transport size of a request item (what the address counts)."""

    BIT = 1
    BYTE = 2
    CHAR = 3
    WORD = 4
    INT = 5
    DWORD = 6
    DINT = 7
    REAL = 8
    DATE = 9
    TOD = 10
    TIME = 11
    S5TIME = 12
    DATE_AND_TIME = 15
    COUNTER = 28
    TIMER = 29
    IEC_COUNTER = 30
    IEC_TIMER = 31
    HS_COUNTER = 32


class DataTransportSize(IntEnum):
    """Transport size of a data item (how its length is counted)."""

    NULL = 0x00
    BIT = 0x03  # length in bits
    BYTE_WORD_DWORD = 0x04  # length in bits
    INTEGER = 0x05  # length in bits
    DINTEGER = 0x06
    REAL = 0x07  # length in bytes
    OCTET_STRING = 0x09  # length in bytes


# Data transport sizes whose length field counts bits.
BIT_LENGTH_SIZES = frozenset({0x03, 0x04, 0x05})


class ReturnCode(IntEnum):
    """Per-item return codes of read and write responses."""

    RESERVED = 0x00
    HARDWARE_FAULT = 0x01
    ACCESS_DENIED = 0x03
    ADDRESS_OUT_OF_RANGE = 0x05
    DATA_TYPE_NOT_SUPPORTED = 0x06
    DATA_TYPE_INCONSISTENT = 0x07
    OBJECT_DOES_NOT_EXIST = 0x0A
    SUCCESS = 0xFF


class UserdataGroup(IntEnum):
    """Function groups of userdata PDUs (low nibble of the type octet)."""

    MODE_TRANSITION = 0x0
    PROGRAMMER_COMMANDS = 0x1
    CYCLIC_DATA = 0x2
    BLOCK_FUNCTIONS = 0x3
    CPU_FUNCTIONS = 0x4
    SECURITY = 0x5
    PBC_BSEND_BRECV = 0x6
    TIME_FUNCTIONS = 0x7
    NC_PROGRAMMING = 0xF


class UserdataType(IntEnum):
    """High nibble of the userdata type octet."""

    PUSH = 0x0
    REQUEST = 0x4
    RESPONSE = 0x8


# Userdata sub-functions by function group.
SUBFUNCTIONS: dict[int, dict[int, str]] = {
    0x1: {
        0x01: "request_diag_data_type1", 0x02: "vartab", 0x0C: "erase",
        0x0E: "read_diag_data", 0x0F: "remove_diag_data", 0x10: "forces",
        0x13: "request_diag_data_type2",
    },
    0x2: {0x01: "memory", 0x04: "unsubscribe", 0x05: "memory2"},
    0x3: {0x01: "list_blocks", 0x02: "list_blocks_of_type", 0x03: "get_block_info"},
    0x4: {
        0x01: "read_szl", 0x02: "message_service", 0x03: "diagnostic_message",
        0x05: "alarm8_indication", 0x06: "notify_indication", 0x07: "alarm8_lock",
        0x08: "alarm8_unlock", 0x09: "scan_indication", 0x0B: "alarm_ack",
        0x0C: "alarm_ack_indication", 0x0D: "alarm8_lock_indication",
        0x0E: "alarm8_unlock_indication", 0x11: "alarmsq_indication",
        0x12: "alarms_indication", 0x13: "alarm_query", 0x16: "notify8_indication",
    },
    0x5: {0x01: "plc_password", 0x02: "clean_session_setup"},
    0x7: {0x01: "read_clock", 0x02: "set_clock", 0x03: "read_clock_following",
          0x04: "set_clock_2"},
}  # fmt: skip


class BlockType(IntEnum):
    """Block types as the two ASCII hex digits of a block file name."""

    OB = 0x08
    CMOD = 0x09
    DB = 0x0A
    SDB = 0x0B
    FC = 0x0C
    SFC = 0x0D
    FB = 0x0E
    SFB = 0x0F


# PI service names that start, stop or reset the CPU, and what they mean.
PI_SERVICES = {
    "_INSE": "activate_module", "_DELE": "delete_block", "P_PROGRAM": "plc_start_stop",
    "_MODU": "copy_ram_to_rom", "_GARB": "compress_memory", "_N_LOGIN_": "login",
    "_N_LOGOUT": "logout", "_N_CANCEL": "cancel_alarm", "_N_DASAVE": "save_data",
    "_N_DIGIOF": "digitizing_off", "_N_DIGION": "digitizing_on",
}  # fmt: skip


# --- Structs ------------------------------------------------------------------------

HEADER = cs.Struct(
    "protocol_id" / cs.Const(PROTOCOL_ID, cs.Int8ub),
    "rosctr" / cs.Int8ub,
    "redundancy_id" / cs.Int16ub,
    "pdu_reference" / cs.Int16ub,
    "parameter_length" / cs.Int16ub,
    "data_length" / cs.Int16ub,
    "error"
    / cs.If(
        lambda this: this.rosctr in (Rosctr.ACK, Rosctr.ACK_DATA),
        cs.Struct("error_class" / cs.Int8ub, "error_code" / cs.Int8ub),
    ),
)

SETUP_COMMUNICATION = cs.Struct(
    "function" / cs.Const(Function.SETUP_COMMUNICATION, cs.Int8ub),
    "reserved" / cs.Int8ub,
    "max_amq_calling" / cs.Int16ub,
    "max_amq_called" / cs.Int16ub,
    "pdu_length" / cs.Int16ub,
)

# An S7ANY item of a read or write request, after its 0x12 variable specification.
S7ANY_ITEM = cs.Struct(
    "variable_specification" / cs.Const(0x12, cs.Int8ub),
    "address_length" / cs.Const(10, cs.Int8ub),
    "syntax_id" / cs.Const(SyntaxId.S7ANY, cs.Int8ub),
    "transport_size" / cs.Int8ub,
    "length" / cs.Int16ub,
    "db_number" / cs.Int16ub,
    "area" / cs.Int8ub,
    "address" / cs.Int24ub,  # byte address << 3 | bit address
)

DATA_ITEM = cs.Struct(
    "return_code" / cs.Int8ub,
    "transport_size" / cs.Int8ub,
    "length" / cs.Int16ub,
    "data"
    / cs.Bytes(
        lambda this: (
            (this.length + 7) // 8
            if this.transport_size in BIT_LENGTH_SIZES
            else this.length
        )
    ),
)

USERDATA_PARAMETER = cs.Struct(
    "parameter_head" / cs.Const(b"\x00\x01\x12"),
    "parameter_length" / cs.Int8ub,
    "method" / cs.Int8ub,
    "type_and_group" / cs.Int8ub,
    "subfunction" / cs.Int8ub,
    "sequence_number" / cs.Int8ub,
    "continuation"
    / cs.If(
        lambda this: this.parameter_length >= 8,
        cs.Struct(
            "data_unit_reference" / cs.Int8ub,
            "last_data_unit" / cs.Int8ub,
            "error_code" / cs.Int16ub,
        ),
    ),
)

USERDATA_DATA_HEADER = cs.Struct(
    "return_code" / cs.Int8ub,
    "transport_size" / cs.Int8ub,
    "length" / cs.Int16ub,
)

SZL_HEADER = cs.Struct(
    "szl_id" / cs.Int16ub,
    "szl_index" / cs.Int16ub,
    "record_length" / cs.Int16ub,
    "record_count" / cs.Int16ub,
)

# SZL 0x0011 record: module identification.
SZL_0011_RECORD = cs.Struct(
    "index" / cs.Int16ub,
    "order_number" / cs.Bytes(20),  # ASCII, space padded
    "module_type_id" / cs.Int16ub,
    "version" / cs.Int16ub,
    "release" / cs.Int16ub,
)

# SZL 0x001C record: component identification (index, then 32 text octets).
SZL_001C_RECORD = cs.Struct(
    "index" / cs.Int16ub,
    "text" / cs.Bytes(32),
)
