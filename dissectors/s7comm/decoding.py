"""S7comm PDU decoder: header, parameters and data of every ROSCTR, by hand for speed.

The layouts are those of :mod:`dissectors.s7comm.definitions`; tests hold
this decoder equal to the construct Structs. Every length and count is
bounded by the bytes present: a field that would run past the end stops the
decoding there with an error naming it, and the fields read so far are kept.
"""

from __future__ import annotations

from typing import Any

from dissectors.s7comm.definitions import (
    BIT_LENGTH_SIZES,
    PI_SERVICES,
    PROTOCOL_ID,
    SUBFUNCTIONS,
    Function,
    Rosctr,
    SyntaxId,
)
from dissectors.s7comm.szl import decode_szl
from otdpi.message import Finding

# Bound on items decoded from one PDU (a 960-byte PDU holds at most ~80).
MAX_ITEMS = 256

FUNCTION_NAMES = {f.value: f.name.lower() for f in Function}
ROSCTR_NAMES = {r.value: r.name.lower() for r in Rosctr}
GROUP_NAMES = {
    0x0: "mode_transition", 0x1: "programmer_commands", 0x2: "cyclic_data",
    0x3: "block_functions", 0x4: "cpu_functions", 0x5: "security",
    0x6: "pbc_bsend_brecv", 0x7: "time_functions", 0xF: "nc_programming",
}  # fmt: skip
BLOCK_TYPE_NAMES = {
    "08": "OB", "09": "CMOD", "0A": "DB", "0B": "SDB", "0C": "FC", "0D": "SFC",
    "0E": "FB", "0F": "SFB",
}  # fmt: skip


# Areas whose items address a timer or counter number, not a byte and bit.
_NUMBERED_AREAS = frozenset({0x1C, 0x1D, 0x1E, 0x1F})


class DecodeError(Exception):
    """Raised inside this module only; the caller turns it into ``malformed``."""


def _u16(data: bytes, pos: int) -> int:
    return data[pos] << 8 | data[pos + 1]


def decode_header(pdu: bytes, fields: dict[str, Any]) -> int:
    """Read the header into ``fields``; return its size. Raises DecodeError."""
    if len(pdu) < 10:
        raise DecodeError(f"header needs 10 bytes, {len(pdu)} present")
    if pdu[0] != PROTOCOL_ID:
        raise DecodeError(f"protocol id 0x{pdu[0]:02x} is not 0x32")
    rosctr = pdu[1]
    fields["rosctr"] = rosctr
    fields["redundancy_id"] = _u16(pdu, 2)
    fields["pdu_reference"] = _u16(pdu, 4)
    fields["parameter_length"] = _u16(pdu, 6)
    fields["data_length"] = _u16(pdu, 8)
    if rosctr == Rosctr.ACK or rosctr == Rosctr.ACK_DATA:
        if len(pdu) < 12:
            raise DecodeError("ack header needs 12 bytes")
        fields["error_class"] = pdu[10]
        fields["error_code"] = pdu[11]
        return 12
    return 10


# --- job and ack-data ------------------------------------------------------------


def _request_items(param: bytes, count: int, pos: int = 2) -> list[dict[str, Any]]:
    items = []
    for number in range(min(count, MAX_ITEMS)):
        if pos + 2 > len(param):
            raise DecodeError(f"item {number + 1} header past the parameter end")
        spec, size = param[pos], param[pos + 1]
        body = param[pos + 2 : pos + 2 + size]
        if len(body) < size or size < 1:
            raise DecodeError(f"item {number + 1} address of {size} bytes cut short")
        item: dict[str, Any] = {"variable_specification": spec, "syntax_id": body[0]}
        syntax = body[0]
        if syntax == SyntaxId.S7ANY and size >= 10:
            address = body[7] << 16 | body[8] << 8 | body[9]
            item["transport_size"] = body[1]
            item["length"] = body[2] << 8 | body[3]
            item["db_number"] = body[4] << 8 | body[5]
            item["area"] = body[6]
            if body[6] in _NUMBERED_AREAS:
                item["number"] = address  # timers and counters are numbered
            else:
                item["byte_address"] = address >> 3
                item["bit_address"] = address & 7
        elif syntax == SyntaxId.DBREAD and size >= 2:
            areas = []
            at = 2
            for _ in range(body[1]):
                if at + 5 > size:
                    break
                areas.append(
                    {
                        "length": body[at],
                        "db_number": _u16(body, at + 1),
                        "start": _u16(body, at + 3),
                    }
                )
                at += 5
            item["areas"] = areas
        else:
            item["address"] = body[1:].hex()
        items.append(item)
        pos += 2 + size
    return items


def _data_items(data: bytes, count: int, with_header: bool = True) -> list[dict]:
    items = []
    pos = 0
    end = len(data)
    for number in range(min(count, MAX_ITEMS)):
        if pos >= end:
            raise DecodeError(f"data item {number + 1} missing")
        if pos + 4 > end:
            if end - pos == 1:  # an error item may be its return code alone
                items.append({"return_code": data[pos]})
                pos += 1
                continue
            raise DecodeError(f"data item {number + 1} header cut short")
        ts = data[pos + 1]
        length = data[pos + 2] << 8 | data[pos + 3]
        size = (length + 7) >> 3 if ts in BIT_LENGTH_SIZES else length
        if pos + 4 + size > end:
            raise DecodeError(
                f"data item {number + 1} of {size} bytes runs past the data end"
            )
        items.append(
            {
                "return_code": data[pos],
                "transport_size": ts,
                "length": length,
                "data": data[pos + 4 : pos + 4 + size].hex(),
            }
        )
        pos += 4 + size
        # A fill byte follows an odd-sized item unless it is the last one.
        if size & 1 and number + 1 < count:
            pos += 1
    return items


def _filename(param: bytes, at: int, fields: dict[str, Any]) -> int:
    if at >= len(param):
        return at
    size = param[at]
    name = param[at + 1 : at + 1 + size]
    text = name.decode("latin-1")
    fields["filename"] = text
    if len(text) >= 9:
        fields["file_identifier"] = text[0]
        fields["block_type"] = text[1:3]
        fields["block_type_name"] = BLOCK_TYPE_NAMES.get(text[1:3].upper())
        fields["block_number"] = int(text[3:8]) if text[3:8].isdigit() else text[3:8]
        fields["destination_filesystem"] = text[8]
    return at + 1 + size


def _length_string(param: bytes, at: int, fields: dict[str, Any], key: str) -> None:
    if at < len(param):
        size = param[at]
        fields[key] = param[at + 1 : at + 1 + size].decode("latin-1")


def decode_job_parameters(
    rosctr: int, param: bytes, data: bytes, fields: dict[str, Any]
) -> None:
    """Read the parameter and data parts of a job or ack-data PDU."""
    if not param:
        return
    function = param[0]
    fields["function"] = function
    request = rosctr == Rosctr.JOB
    if function == Function.SETUP_COMMUNICATION:
        if len(param) < 8:
            raise DecodeError("setup communication parameter cut short")
        fields["max_amq_calling"] = _u16(param, 2)
        fields["max_amq_called"] = _u16(param, 4)
        fields["pdu_length"] = _u16(param, 6)
    elif function in (Function.READ_VAR, Function.WRITE_VAR):
        if len(param) < 2:
            raise DecodeError("item count missing")
        count = param[1]
        fields["item_count"] = count
        if request:
            fields["items"] = _request_items(param, count)
            if function == Function.WRITE_VAR:
                fields["data_items"] = _data_items(data, count)
        elif function == Function.READ_VAR:
            fields["data_items"] = _data_items(data, count)
        else:
            codes = data[: min(count, MAX_ITEMS)]
            if len(codes) < min(count, MAX_ITEMS):
                raise DecodeError(f"{count} return codes, {len(data)} bytes of data")
            fields["data_items"] = [{"return_code": c} for c in codes]
    elif function in (
        Function.REQUEST_DOWNLOAD,
        Function.DOWNLOAD_BLOCK,
        Function.DOWNLOAD_ENDED,
        Function.START_UPLOAD,
        Function.UPLOAD,
        Function.END_UPLOAD,
    ):
        _block_control(function, request, param, data, fields)
    elif function == Function.PI_SERVICE:
        if request and len(param) >= 11:
            block_size = _u16(param, 8)
            block = param[10 : 10 + block_size]
            fields["parameter_block"] = block.decode("latin-1")
            at = 10 + block_size
            if at < len(param):
                size = param[at]
                name = param[at + 1 : at + 1 + size].decode("latin-1")
                fields["pi_service"] = name
                fields["pi_service_meaning"] = PI_SERVICES.get(name)
    elif function == Function.PLC_STOP:
        if request and len(param) >= 7:
            size = param[6]
            fields["pi_service"] = param[7 : 7 + size].decode("latin-1")
    elif len(param) > 1:
        fields["parameter_raw"] = param[1:].hex()


def _block_control(
    function: int, request: bool, param: bytes, data: bytes, fields: dict[str, Any]
) -> None:
    if len(param) >= 2:
        fields["function_status"] = param[1]
    if function in (Function.UPLOAD, Function.END_UPLOAD, Function.START_UPLOAD):
        if len(param) >= 8:
            fields["upload_id"] = int.from_bytes(param[4:8], "big")
    if function == Function.DOWNLOAD_ENDED or function == Function.END_UPLOAD:
        if len(param) >= 4 and request:
            fields["block_error_code"] = _u16(param, 2)
    if request and function not in (Function.UPLOAD, Function.END_UPLOAD):
        at = _filename(param, 8, fields)
        if function == Function.REQUEST_DOWNLOAD:
            _length_string(param, at, fields, "length_string")
    elif not request and function == Function.START_UPLOAD:
        _length_string(param, 8, fields, "block_length_string")
    if not request and function in (Function.UPLOAD, Function.DOWNLOAD_BLOCK) and data:
        if len(data) >= 4:
            size = _u16(data, 0)
            fields["block_data_length"] = size
            fields["block_data"] = data[4 : 4 + size].hex()


# --- userdata ----------------------------------------------------------------------


def decode_userdata(param: bytes, data: bytes, fields: dict[str, Any]) -> None:
    """Read a userdata PDU's parameter and the head of its data part."""
    if len(param) < 8:
        raise DecodeError(f"userdata parameter of {len(param)} bytes, 8 needed")
    fields["parameter_head"] = param[0:3].hex()
    fields["userdata_parameter_length"] = param[3]
    fields["method"] = param[4]
    fields["type"] = param[5] >> 4
    group = param[5] & 0x0F
    fields["function_group"] = group
    fields["subfunction"] = param[6]
    fields["sequence_number"] = param[7]
    if param[3] >= 8 and len(param) >= 12:
        fields["data_unit_reference"] = param[8]
        fields["last_data_unit"] = param[9]
        fields["userdata_error_code"] = _u16(param, 10)
    if len(data) >= 4:
        fields["return_code"] = data[0]
        fields["transport_size"] = data[1]
        fields["userdata_length"] = _u16(data, 2)


def userdata_service(group: int, subfunction: int) -> str:
    """A userdata PDU's service name: sub-function name or group and code."""
    name = SUBFUNCTIONS.get(group, {}).get(subfunction)
    if name:
        return name
    return f"{GROUP_NAMES.get(group, f'group_{group}')}_{subfunction}"


def decode_userdata_payload(
    fields: dict[str, Any], payload: bytes, request: bool
) -> tuple[dict[str, Any], list[Finding]]:
    """Decode the data of a complete userdata unit (fragments joined); identity."""
    group = fields.get("function_group")
    sub = fields.get("subfunction")
    identity: dict[str, Any] = {}
    findings: list[Finding] = []
    if group == 0x4 and sub == 0x01:
        if request:
            if len(payload) >= 4:
                fields["szl_id"] = _u16(payload, 0)
                fields["szl_index"] = _u16(payload, 2)
        elif len(payload) >= 4:
            szl, identity, findings = decode_szl(payload)
            fields["szl"] = szl
            fields["szl_id"] = szl.get("szl_id")
            fields["szl_index"] = szl.get("szl_index")
    elif group == 0x3 and sub == 0x01 and not request:
        blocks = []
        for at in range(0, min(len(payload), 4 * MAX_ITEMS) - 3, 4):
            # The block type is two ASCII hex digits ("08" is an OB).
            block_type = payload[at : at + 2].decode("latin-1")
            blocks.append(
                {
                    "block_type": block_type,
                    "block_type_name": BLOCK_TYPE_NAMES.get(block_type.upper()),
                    "block_count": _u16(payload, at + 2),
                }
            )
        fields["blocks"] = blocks
    elif group == 0x3 and sub in (0x02, 0x03) and request and payload:
        if sub == 0x03 and len(payload) >= 8:
            text = payload[:8].decode("latin-1")
            fields["block_type"] = text[0:2]
            fields["block_number"] = text[2:7]
            fields["destination_filesystem"] = text[7]
        elif len(payload) >= 2:
            fields["block_type"] = payload[:2].decode("latin-1")
    elif group == 0x2 and sub in (0x01, 0x05) and payload:
        # Cyclic data: a subscription lists request items after a count and
        # the interval; each answer or push carries data items after a count.
        try:
            if request and len(payload) >= 4:
                fields["item_count"] = _u16(payload, 0)
                fields["interval_timebase"] = payload[2]
                fields["interval_time"] = payload[3]
                fields["items"] = _request_items(payload, _u16(payload, 0), 4)
            elif not request and len(payload) >= 2:
                fields["item_count"] = _u16(payload, 0)
                fields["data_items"] = _data_items(payload[2:], _u16(payload, 0))
        except DecodeError as exc:
            findings.append(Finding("cyclic_data_cut_short", str(exc)))
    elif group == 0x7 and len(payload) >= 10:
        fields["timestamp"] = payload[-8:].hex() if len(payload) >= 8 else None
    # Limitation: the items inside variable table, alarm and diagnostic
    # payloads are not decoded; they come out as raw hex in "payload" (at
    # most 512 bytes). Decoding their per-sub-function item lists (as done
    # for cyclic data) would lift it.
    if payload and "szl" not in fields and "blocks" not in fields:
        fields["payload"] = payload[:512].hex()
    return identity, findings
