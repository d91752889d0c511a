"""ISO 8327-1 session SPDUs as carried in COTP user data: type, parameters, user data.

Only the kernel and duplex units that MMS stacks use are interpreted:
CONNECT (CN), ACCEPT (AC), REFUSE (RF), FINISH (FN), DISCONNECT (DN),
NOT FINISHED (NF), ABORT (AB), ABORT ACCEPT (AA), and GIVE TOKENS (GT)
followed by DATA TRANSFER (DT), the concatenation every data unit uses.
Other SPDUs keep their code and raw parameters.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

# A CN SPDU is at most a few hundred bytes; parameters nest at most two deep
# (a PGI holding PIs), which the loop below enforces.
MAX_PARAMETERS = 64


class SpduType(IntEnum):
    """SPDU identifiers (SI), ISO 8327-1 table 4 (GT and DT share code 1)."""

    GIVE_TOKENS_OR_DATA_TRANSFER = 1
    PLEASE_TOKENS = 2
    NOT_FINISHED = 8
    FINISH = 9
    DISCONNECT = 10
    REFUSE = 12
    CONNECT = 13
    ACCEPT = 14
    ABORT = 25
    ABORT_ACCEPT = 26


SPDU_NAMES = {
    1: "DT", 2: "PT", 8: "NF", 9: "FN", 10: "DN", 12: "RF", 13: "CN", 14: "AC",
    25: "AB", 26: "AA", 5: "EX", 41: "TD", 21: "CD", 7: "AI", 34: "AD", 53: "GTC",
    33: "AS", 45: "AR", 29: "AE", 57: "MIP", 49: "MAP", 61: "CDA",
}  # fmt: skip


class ParameterType(IntEnum):
    """Parameter identifiers (PI/PGI) the decoder interprets."""

    CONNECT_ACCEPT_ITEM = 5
    TRANSPORT_DISCONNECT = 17
    PROTOCOL_OPTIONS = 19
    SESSION_REQUIREMENT = 20
    TSDU_MAXIMUM_SIZE = 21
    VERSION_NUMBER = 22
    REFLECT_PARAMETER = 49
    REASON_CODE = 50
    CALLING_SESSION_SELECTOR = 51
    CALLED_SESSION_SELECTOR = 52
    USER_DATA = 193
    EXTENDED_USER_DATA = 194


_PGI = frozenset({1, 5, 33, 9})  # connection identifier, connect/accept item...


class SessionPdu(NamedTuple):
    """The session layer of one COTP user data unit.

    ``types`` lists the SPDU codes in order (``[1, 1]`` for GT then DT),
    ``spdu`` is the code that names the unit (the last), ``fields`` the
    decoded parameters, ``user_data`` the presentation bytes or None,
    ``error`` None or why the SPDU could not be read.
    """

    types: list[int]
    spdu: int
    fields: dict[str, Any]
    user_data: bytes | None
    error: str | None = None


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise ValueError("length octet missing")
    first = data[pos]
    if first != 0xFF:
        return first, pos + 1
    if pos + 3 > end:
        raise ValueError("three-octet length cut short")
    return data[pos + 1] << 8 | data[pos + 2], pos + 3


def _parameters(
    data: bytes, pos: int, end: int, fields: dict[str, Any], depth: int = 0
) -> bytes | None:
    """Read PIs/PGIs into ``fields``; the user data parameter's bytes or None."""
    user_data = None
    for _ in range(MAX_PARAMETERS):
        if pos >= end:
            break
        code = data[pos]
        length, pos = _length(data, pos + 1, end)
        stop = pos + length
        if stop > end:
            raise ValueError(f"parameter {code} of {length} bytes overruns the SPDU")
        value = data[pos:stop]
        if code in _PGI and depth == 0:
            found = _parameters(data, pos, stop, fields, depth + 1)
            user_data = user_data if found is None else found
        elif code in (ParameterType.USER_DATA, ParameterType.EXTENDED_USER_DATA):
            user_data = value
        elif code == ParameterType.CALLING_SESSION_SELECTOR:
            fields["calling_session_selector"] = value.hex()
        elif code == ParameterType.CALLED_SESSION_SELECTOR:
            fields["called_session_selector"] = value.hex()
        elif code == ParameterType.SESSION_REQUIREMENT and length == 2:
            fields["session_requirement"] = value[0] << 8 | value[1]
        elif code == ParameterType.VERSION_NUMBER and length == 1:
            fields["version_number"] = value[0]
        elif code == ParameterType.PROTOCOL_OPTIONS and length == 1:
            fields["protocol_options"] = value[0]
        elif code == ParameterType.TRANSPORT_DISCONNECT and length == 1:
            fields["transport_disconnect"] = value[0]
        elif code == ParameterType.REASON_CODE and length >= 1:
            fields["reason_code"] = value[0]
            if length > 1:
                user_data = value[1:]
        elif code == ParameterType.TSDU_MAXIMUM_SIZE:
            fields["tsdu_maximum_size"] = value.hex()
        else:
            fields.setdefault("other_parameters", []).append(
                {"code": code, "value": value.hex()}
            )
        pos = stop
    else:
        raise ValueError(f"more than {MAX_PARAMETERS} session parameters")
    return user_data


def parse_session(data: bytes) -> SessionPdu:
    """Decode the SPDUs at the start of one COTP user data unit; never raises."""
    types: list[int] = []
    fields: dict[str, Any] = {}
    pos = 0
    end = len(data)
    try:
        # Category 0 SPDUs (GT, PT) come first and are followed by the SPDU
        # that carries the data; at most a handful in practice.
        for _ in range(4):
            if pos >= end:
                raise ValueError("SPDU header cut short")
            code = data[pos]
            length, body = _length(data, pos + 1, end)
            stop = body + length
            if stop > end:
                raise ValueError(f"SPDU length {length} runs past the {end}-byte unit")
            types.append(code)
            if (
                code == SpduType.GIVE_TOKENS_OR_DATA_TRANSFER
                and len(types) == 1
                and stop < end
                and data[stop] in (1, 2)
            ):
                _parameters(data, body, stop, fields)
                pos = stop
                continue  # GT (or PT) then the DT that follows
            if code == SpduType.PLEASE_TOKENS and len(types) == 1 and stop < end:
                pos = stop
                continue
            user = _parameters(data, body, stop, fields)
            if code == SpduType.GIVE_TOKENS_OR_DATA_TRANSFER:
                user = data[stop:]  # DT: the user information follows the header
            return SessionPdu(types, code, fields, user)
        raise ValueError("too many concatenated SPDUs")
    except ValueError as exc:
        return SessionPdu(types, types[-1] if types else -1, fields, None, str(exc))


def spdu_name(code: int) -> str:
    return SPDU_NAMES.get(code, f"spdu_{code}")
