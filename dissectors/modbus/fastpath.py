"""Hand-written decoders for the Modbus function codes that make up nearly all traffic.

Reading a typical ADU through the compiled construct definitions, and turning
the result into message fields, costs tens of microseconds; precompiled
:class:`struct.Struct` unpacking does it in under one, which is what lets the
engine pass a hundred thousand packets a second. These decoders cover functions 1 to 6, 15, 16 and 23, exception
responses and Read Device Identification (43/14), and only in their regular
shape: when the MBAP length, byte counts and object lengths all agree. Any
other ADU returns None and goes to
:func:`dissectors.modbus.decoding.decode_with_construct`, which explains what
is wrong with it. A property test holds both paths equal field by field.

Each decoder takes a whole framed ADU and returns ``(fields, findings, None)``
like the construct path, or None to decline.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from dissectors.modbus.decoding import (
    NO_FINDINGS,
    Decoded,
    byte_count_finding,
    coil_finding,
    quantity_finding,
    read_write_findings,
)
from dissectors.modbus.definitions import (
    COIL_ON,
    EXCEPTION_BIT,
    MAX_QUANTITY,
    device_object_name,
    exception_name,
    unpack_bits,
)

# MBAP header and function code, then what follows it in each regular shape.
_HEADER = struct.Struct(">HHHBB")
_HEADER_2WORDS = struct.Struct(">HHHBBHH")
_HEADER_2WORDS_COUNT = struct.Struct(">HHHBBHHB")
_HEADER_4WORDS_COUNT = struct.Struct(">HHHBBHHHHB")
_HEADER_6BYTES = struct.Struct(">HHHBBBBBBBB")
_HEADER_2BYTES = struct.Struct(">HHHBBBB")
_REGISTERS = tuple(struct.Struct(f">{n}H") for n in range(128))

_LIMIT = {int(code): limit for code, limit in MAX_QUANTITY.items()}
_EXCEPTION_NAMES = tuple(exception_name(code) for code in range(256))
_OBJECT_NAMES = tuple(device_object_name(code) for code in range(256))
_READ_DEVICE_IDENTIFICATION = 14


def _read_request(adu: bytes) -> Decoded | None:
    # Functions 1 to 4: starting address and quantity.
    if len(adu) != 12:
        return None
    tid, pid, length, unit, code, address, quantity = _HEADER_2WORDS.unpack_from(adu)
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "address": address,
        "quantity": quantity,
    }
    limit = _LIMIT[code]
    if 0 < quantity <= limit:
        return fields, NO_FINDINGS, None
    return fields, (quantity_finding(code, "quantity", quantity, limit),), None


def _write_single_coil(adu: bytes) -> Decoded | None:
    # Function 5, request and echoed response alike.
    if len(adu) != 12:
        return None
    tid, pid, length, unit, code, address, value = _HEADER_2WORDS.unpack_from(adu)
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "address": address,
        "value": value,
        "coil": value == COIL_ON,
    }
    if value == COIL_ON or value == 0:
        return fields, NO_FINDINGS, None
    return fields, (coil_finding(value),), None


def _address_and_word(name: str) -> Callable[[bytes], Decoded | None]:
    # Function 6 (address, value) and the 15/16 responses (address, quantity).
    def decode(adu: bytes) -> Decoded | None:
        if len(adu) != 12:
            return None
        tid, pid, length, unit, code, address, word = _HEADER_2WORDS.unpack_from(adu)
        fields = {
            "transaction_id": tid,
            "protocol_id": pid,
            "length": length,
            "unit_id": unit,
            "function_code": code,
            "address": address,
            name: word,
        }
        return fields, NO_FINDINGS, None

    return decode


def _write_multiple_coils_request(adu: bytes) -> Decoded | None:
    # Function 15: address, quantity, byte count, packed coil states.
    size = len(adu)
    if size < 13 or size != 13 + adu[12]:
        return None
    tid, pid, length, unit, code, address, quantity, byte_count = (
        _HEADER_2WORDS_COUNT.unpack_from(adu)
    )
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "address": address,
        "quantity": quantity,
        "byte_count": byte_count,
        "bits": unpack_bits(adu[13:])[:quantity],
    }
    limit = _LIMIT[code]
    expected = (quantity + 7) // 8
    if 0 < quantity <= limit and byte_count == expected:
        return fields, NO_FINDINGS, None
    findings = []
    if not 0 < quantity <= limit:
        findings.append(quantity_finding(code, "quantity", quantity, limit))
    if byte_count != expected:
        findings.append(
            byte_count_finding(byte_count, expected, "the quantity's coils")
        )
    return fields, tuple(findings), None


def _write_multiple_registers_request(adu: bytes) -> Decoded | None:
    # Function 16: address, quantity, byte count, register values.
    size = len(adu)
    if size < 13:
        return None
    byte_count = adu[12]
    if size != 13 + byte_count or byte_count & 1:
        return None
    tid, pid, length, unit, code, address, quantity, byte_count = (
        _HEADER_2WORDS_COUNT.unpack_from(adu)
    )
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "address": address,
        "quantity": quantity,
        "byte_count": byte_count,
        "registers": list(_REGISTERS[byte_count >> 1].unpack_from(adu, 13)),
    }
    limit = _LIMIT[code]
    if 0 < quantity <= limit and byte_count == quantity * 2:
        return fields, NO_FINDINGS, None
    findings = []
    if not 0 < quantity <= limit:
        findings.append(quantity_finding(code, "quantity", quantity, limit))
    if byte_count != quantity * 2:
        findings.append(
            byte_count_finding(byte_count, quantity * 2, "the quantity's registers")
        )
    return fields, tuple(findings), None


def _read_write_multiple_registers_request(adu: bytes) -> Decoded | None:
    # Function 23: a read range, a write range, byte count, values written.
    size = len(adu)
    if size < 17:
        return None
    byte_count = adu[16]
    if size != 17 + byte_count or byte_count & 1:
        return None
    (tid, pid, length, unit, code, read_address, read_quantity, write_address,
     write_quantity, byte_count) = _HEADER_4WORDS_COUNT.unpack_from(adu)  # fmt: skip
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "read_address": read_address,
        "read_quantity": read_quantity,
        "write_address": write_address,
        "write_quantity": write_quantity,
        "byte_count": byte_count,
        "registers": list(_REGISTERS[byte_count >> 1].unpack_from(adu, 17)),
    }
    findings = read_write_findings(read_quantity, write_quantity, byte_count)
    return fields, tuple(findings) if findings else NO_FINDINGS, None


def _read_bits_response(adu: bytes) -> Decoded | None:
    # Functions 1 and 2: byte count and packed states. The session cuts the
    # list to the request's quantity; the response alone does not know it.
    size = len(adu)
    if size < 9 or size != 9 + adu[8]:
        return None
    tid, pid, length, unit, code = _HEADER.unpack_from(adu)
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "byte_count": adu[8],
        "bits": unpack_bits(adu[9:]),
    }
    return fields, NO_FINDINGS, None


def _read_registers_response(adu: bytes) -> Decoded | None:
    # Functions 3, 4 and 23: byte count and register values.
    size = len(adu)
    if size < 9:
        return None
    byte_count = adu[8]
    if size != 9 + byte_count or byte_count & 1:
        return None
    tid, pid, length, unit, code = _HEADER.unpack_from(adu)
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "byte_count": byte_count,
        "registers": list(_REGISTERS[byte_count >> 1].unpack_from(adu, 9)),
    }
    return fields, NO_FINDINGS, None


def _exception_response(adu: bytes) -> Decoded | None:
    # Function code with the 0x80 bit set, then the exception code.
    if len(adu) != 9:
        return None
    tid, pid, length, unit, code = _HEADER.unpack_from(adu)
    exception_code = adu[8]
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "exception_code": exception_code,
        "exception_name": _EXCEPTION_NAMES[exception_code],
    }
    return fields, NO_FINDINGS, None


def _read_device_id_request(adu: bytes) -> Decoded | None:
    # Function 43, MEI type 14: read device id code and first object id.
    if len(adu) != 11 or adu[8] != _READ_DEVICE_IDENTIFICATION:
        return None
    tid, pid, length, unit, code, mei_type, id_code = _HEADER_2BYTES.unpack_from(adu)
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "mei_type": mei_type,
        "read_device_id_code": id_code,
        "object_id": adu[10],
    }
    return fields, NO_FINDINGS, None


def _read_device_id_response(adu: bytes) -> Decoded | None:
    # Function 43, MEI type 14: six header bytes, then (id, length, value) objects.
    size = len(adu)
    if size < 14 or adu[8] != _READ_DEVICE_IDENTIFICATION:
        return None
    (tid, pid, length, unit, code, mei_type, id_code, conformity, more_follows,
     next_object_id, count) = _HEADER_6BYTES.unpack_from(adu)  # fmt: skip
    objects = []
    pos = 14
    for _ in range(count):
        if pos + 2 > size:
            return None
        object_id = adu[pos]
        end = pos + 2 + adu[pos + 1]
        if end > size:
            return None
        objects.append(
            {
                "id": object_id,
                "name": _OBJECT_NAMES[object_id],
                "value": adu[pos + 2 : end].decode("latin-1"),
            }
        )
        pos = end
    if pos != size:
        return None
    fields = {
        "transaction_id": tid,
        "protocol_id": pid,
        "length": length,
        "unit_id": unit,
        "function_code": code,
        "mei_type": mei_type,
        "read_device_id_code": id_code,
        "conformity_level": conformity,
        "more_follows": more_follows != 0,
        "next_object_id": next_object_id,
        "number_of_objects": count,
        "objects": objects,
    }
    return fields, NO_FINDINGS, None


_Decoder = Callable[[bytes], "Decoded | None"]

REQUEST_DECODERS: dict[int, _Decoder] = {
    1: _read_request,
    2: _read_request,
    3: _read_request,
    4: _read_request,
    5: _write_single_coil,
    6: _address_and_word("value"),
    15: _write_multiple_coils_request,
    16: _write_multiple_registers_request,
    23: _read_write_multiple_registers_request,
    43: _read_device_id_request,
}
RESPONSE_DECODERS: dict[int, _Decoder] = {
    1: _read_bits_response,
    2: _read_bits_response,
    3: _read_registers_response,
    4: _read_registers_response,
    5: _write_single_coil,
    6: _address_and_word("value"),
    15: _address_and_word("quantity"),
    16: _address_and_word("quantity"),
    23: _read_registers_response,
    43: _read_device_id_response,
    **{code | EXCEPTION_BIT: _exception_response for code in range(128)},
}


def decode_fast(adu: bytes, is_request: bool) -> Decoded | None:
    """Decode a regular ADU of a common function code, or return None to decline.

    ``adu`` is one whole framed ADU of at least eight bytes.
    """
    decoder = (REQUEST_DECODERS if is_request else RESPONSE_DECODERS).get(adu[7])
    return decoder(adu) if decoder is not None else None
