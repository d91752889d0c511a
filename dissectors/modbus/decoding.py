"""Turns one framed Modbus/TCP ADU into message fields through the construct definitions.

This is the general path: it serves every function code, and the slow but
exact account of any ADU the hand-written fast path declines (a rare code, a
length that disagrees with the PDU, a truncated body). It also holds the
checks both paths share, so that a finding reads the same whichever path
found it.

Every decoder here and in :mod:`dissectors.modbus.fastpath` returns the same
triple ``(fields, findings, problem)``: the message fields, a tuple of
:class:`~otdpi.message.Finding`, and None or the reason the ADU is malformed.
A malformed ADU still carries its header fields.
"""

from __future__ import annotations

import io
from typing import Any

import construct as cs

from dissectors.modbus.definitions import (
    COIL_OFF,
    COIL_ON,
    EXCEPTION_BIT,
    MAX_QUANTITY,
    MAX_READ_WRITE_READ_QUANTITY,
    MAX_READ_WRITE_WRITE_QUANTITY,
    MBAP_HEADER,
    MBAP_SIZE,
    FunctionCode,
    MeiType,
    compiled_pdu,
    device_object_name,
    exception_name,
    function_name,
    pdu_definition,
    sub_function_name,
)
from otdpi.message import Finding

Decoded = tuple[dict[str, Any], tuple[Finding, ...], str | None]
NO_FINDINGS: tuple[Finding, ...] = ()

F = FunctionCode


# --- Checks shared by both decoding paths ------------------------------------


def quantity_finding(
    function_code: int, name: str, quantity: int, limit: int
) -> Finding:
    """The finding for a quantity outside 1..limit (callers test the range)."""
    return Finding(
        "quantity_out_of_range",
        f"{function_name(function_code)} asks for {name} {quantity}; "
        f"the standard allows 1 to {limit}",
    )


def coil_finding(value: int) -> Finding:
    """The finding for a coil written with neither 0xFF00 (ON) nor 0x0000 (OFF)."""
    return Finding(
        "coil_value_invalid",
        f"coil written with 0x{value:04x}; the standard allows only 0xff00 (on) "
        "and 0x0000 (off), so a strict server refuses it and a lax one guesses",
    )


def byte_count_finding(byte_count: int, expected: int, because: str) -> Finding:
    """The finding for a byte count that disagrees with what it counts."""
    return Finding(
        "byte_count_mismatch",
        f"byte_count is {byte_count} but {because} make {expected}",
    )


def length_finding(length: int, used: int, function_code: int) -> Finding:
    """The finding for an MBAP length longer than the PDU's own structure."""
    return Finding(
        "length_mismatch",
        f"MBAP length {length} announces {length - 1} PDU bytes but the "
        f"{function_name(function_code)} PDU structure takes {used}; "
        f"{length - 1 - used} trailing bytes ignored",
    )


def _request_findings(code: int, fields: dict[str, Any]) -> list[Finding]:
    found = []
    if code in MAX_QUANTITY:
        limit = MAX_QUANTITY[code]
        if not 1 <= fields["quantity"] <= limit:
            found.append(quantity_finding(code, "quantity", fields["quantity"], limit))
    if code == F.WRITE_SINGLE_COIL and fields["value"] not in (COIL_ON, COIL_OFF):
        found.append(coil_finding(fields["value"]))
    elif code == F.WRITE_MULTIPLE_COILS:
        expected = (fields["quantity"] + 7) // 8
        if fields["byte_count"] != expected:
            found.append(
                byte_count_finding(
                    fields["byte_count"], expected, "the quantity's coils"
                )
            )
    elif code == F.WRITE_MULTIPLE_REGISTERS:
        expected = fields["quantity"] * 2
        if fields["byte_count"] != expected:
            found.append(
                byte_count_finding(
                    fields["byte_count"], expected, "the quantity's registers"
                )
            )
    elif code == F.READ_WRITE_MULTIPLE_REGISTERS:
        found += read_write_findings(
            fields["read_quantity"], fields["write_quantity"], fields["byte_count"]
        )
    elif code == F.READ_FILE_RECORD and fields["byte_count"] % 7:
        expected = fields["byte_count"] // 7 * 7
        found.append(
            byte_count_finding(
                fields["byte_count"], expected, "seven-byte sub-requests"
            )
        )
    elif code == F.WRITE_FILE_RECORD:
        found += _file_write_findings(fields)
    return found


def read_write_findings(
    read_quantity: int, write_quantity: int, byte_count: int
) -> list[Finding]:
    """Quantity and byte count checks of a Read/Write Multiple Registers request."""
    code = F.READ_WRITE_MULTIPLE_REGISTERS
    found = []
    if not 1 <= read_quantity <= MAX_READ_WRITE_READ_QUANTITY:
        found.append(
            quantity_finding(
                code, "read_quantity", read_quantity, MAX_READ_WRITE_READ_QUANTITY
            )
        )
    if not 1 <= write_quantity <= MAX_READ_WRITE_WRITE_QUANTITY:
        found.append(
            quantity_finding(
                code, "write_quantity", write_quantity, MAX_READ_WRITE_WRITE_QUANTITY
            )
        )
    if byte_count != write_quantity * 2:
        found.append(
            byte_count_finding(
                byte_count, write_quantity * 2, "the write_quantity's registers"
            )
        )
    return found


def odd_register_bytes_finding(byte_count: int) -> Finding:
    """The finding for a register byte count that is not a whole number of registers."""
    return byte_count_finding(byte_count, byte_count - 1, "whole two-byte registers")


def _file_write_findings(fields: dict[str, Any]) -> list[Finding]:
    used = sum(7 + 2 * sub["record_length"] for sub in fields["sub_requests"])
    if used != fields["byte_count"]:
        return [byte_count_finding(fields["byte_count"], used, "the sub-requests")]
    return []


def _response_findings(code: int, fields: dict[str, Any]) -> list[Finding]:
    found = []
    if code in (F.READ_HOLDING_REGISTERS, F.READ_INPUT_REGISTERS):
        if fields["byte_count"] & 1:
            found.append(odd_register_bytes_finding(fields["byte_count"]))
    elif code == F.READ_WRITE_MULTIPLE_REGISTERS and fields["byte_count"] & 1:
        found.append(odd_register_bytes_finding(fields["byte_count"]))
    elif code == F.WRITE_SINGLE_COIL and fields["value"] not in (COIL_ON, COIL_OFF):
        found.append(coil_finding(fields["value"]))
    elif code == F.READ_FILE_RECORD:
        used = sum(1 + sub["file_response_length"] for sub in fields["sub_requests"])
        if used != fields["byte_count"]:
            found.append(
                byte_count_finding(fields["byte_count"], used, "the sub-responses")
            )
    elif code == F.WRITE_FILE_RECORD:
        found += _file_write_findings(fields)
    elif code == F.READ_FIFO_QUEUE:
        expected = 2 + 2 * fields["fifo_count"]
        if fields["byte_count"] != expected:
            found.append(
                byte_count_finding(
                    fields["byte_count"], expected, "fifo_count's registers"
                )
            )
    return found


# --- The construct path --------------------------------------------------------

_MBAP_PARSER = MBAP_HEADER.compile()


def header_fields(adu: bytes) -> dict[str, Any]:
    """The MBAP header and function code of an ADU of at least eight bytes."""
    header = _MBAP_PARSER.parse(adu)
    return {
        "transaction_id": header.transaction_id,
        "protocol_id": header.protocol_id,
        "length": header.length,
        "unit_id": header.unit_id,
        "function_code": adu[MBAP_SIZE],
    }


def _plain(value: Any) -> Any:
    # construct's Containers and ListContainers carry bookkeeping ("_io") and
    # print oddly; message fields are plain dicts and lists.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _add_derived_fields(code: int, is_request: bool, fields: dict[str, Any]) -> None:
    # Values the message carries beside the wire fields: names for codes,
    # decoded coil state, cut bit lists, named device objects.
    if not is_request and code >= EXCEPTION_BIT:
        fields["exception_name"] = exception_name(fields["exception_code"])
    elif code == F.WRITE_SINGLE_COIL:
        fields["coil"] = fields["value"] == COIL_ON
    elif code == F.DIAGNOSTICS:
        fields["sub_function_name"] = sub_function_name(fields["sub_function"])
        fields["data"] = fields.pop("data")  # keep data last, after the name
    elif code == F.WRITE_MULTIPLE_COILS and is_request:
        fields["bits"] = fields["bits"][: fields["quantity"]]
    elif (
        code == F.ENCAPSULATED_INTERFACE_TRANSPORT
        and not is_request
        and fields["mei_type"] == MeiType.READ_DEVICE_IDENTIFICATION
    ):
        fields["objects"] = [
            {"id": o["id"], "name": device_object_name(o["id"]), "value": o["value"]}
            for o in fields["objects"]
        ]


class _TrackingStream(io.BytesIO):
    """A BytesIO that remembers where the last read started and how it fared."""

    last_start = 0
    last_wanted = 0
    last_got = 0

    def read(self, size: int | None = -1) -> bytes:
        self.last_start = self.tell()
        data = super().read(size)
        self.last_wanted = -1 if size is None else size
        self.last_got = len(data)
        return data


def _describe_failure(pdu: bytes, is_request: bool, code: int) -> str:
    """Why the PDU does not parse: the field, its ADU offset and what was missing."""
    stream = _TrackingStream(pdu)
    what = f"{function_name(code)} ({code}) {'request' if is_request else 'response'}"
    try:
        pdu_definition(is_request).parse_stream(stream)
    except cs.ConstructError as exc:
        parts = [
            p
            for p in (exc.path or "").split(" -> ")
            if p not in ("(parsing)", "body", "mei")
        ]
        field = ".".join(parts) or "pdu"
        if stream.last_wanted > stream.last_got:
            offset = MBAP_SIZE + stream.last_start
            wanted = stream.last_wanted
            return (
                f"{what}: field {field!r} at ADU offset {offset} needs {wanted} "
                f"byte{'s' if wanted != 1 else ''}, {stream.last_got} left"
            )
        offset = MBAP_SIZE + stream.tell()
        detail = str(exc).splitlines()[-1]
        return f"{what}: field {field!r} at ADU offset {offset}: {detail}"
    # The compiled parser failed where the plain one did not: report both facts
    # rather than invent a position.
    return f"{what}: compiled definition failed to parse a PDU the plain one accepts"


def decode_with_construct(adu: bytes, is_request: bool) -> Decoded:
    """Decode one framed ADU (at least eight bytes) through the construct definitions.

    Parameters
    ----------
    adu
        one whole ADU, MBAP header included, as the framer cut it.
    is_request
        True for client to server.

    Returns
    -------
    tuple
        ``(fields, findings, problem)`` as described in the module docstring.
    """
    fields = header_fields(adu)
    code = fields["function_code"]
    pdu = adu[MBAP_SIZE:]
    stream = io.BytesIO(pdu)
    try:
        parsed = compiled_pdu(is_request).parse_stream(stream)
    # Compiled parsers raise struct.error and the like instead of ConstructError;
    # whatever it was, the plain definitions parse again and say what is wrong.
    except Exception:  # noqa: BLE001
        return fields, NO_FINDINGS, _describe_failure(pdu, is_request, code)

    # Function 43 nests the fields its MEI type selects; messages keep them flat.
    body = _plain(parsed.body)
    mei = body.pop("mei", None)
    fields.update(body)
    if mei:
        fields.update(mei)
    _add_derived_fields(code, is_request, fields)

    findings = []
    used = stream.tell()
    if used < len(pdu):
        findings.append(length_finding(fields["length"], used, code))
    if is_request:
        findings += _request_findings(code, fields)
    else:
        findings += _response_findings(code, fields)
    return fields, tuple(findings), None
