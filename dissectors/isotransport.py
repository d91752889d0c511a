"""ISO transport on TCP: TPKT framing, COTP TPDUs, DT reassembly and TSAPs, for reuse.

Standards: RFC 1006 (TPKT, ISO transport service on top of TCP, version 3)
and ISO/IEC 8073 / ITU-T X.224 (the connection-oriented transport protocol,
COTP), class 0 as used on port 102 by Siemens S7 (S7comm, S7comm-plus) and
by ISO 9506 MMS. Left out: classes 1 to 4 (their extra DT fields, AK, RJ,
EA and checksums are read as far as the common header and kept raw).

This is a library module, not a plugin: the S7comm, S7comm-plus and MMS
dissectors import it. Its API is small:

:class:`IsoTransport`
    one per direction of a flow. ``feed(bytes)`` returns, in stream order,
    ``(Tpdu, user_data)`` pairs and :class:`~otdpi.framing.Skipped` runs.
    ``user_data`` is the complete reassembled payload when a DT with the EOT
    bit closes a run of DT segments, else None (a CR, a DT segment that is
    not the last, a DR...).
:func:`parse_tpdu`
    decode one COTP TPDU (the bytes after a TPKT header) into a :class:`Tpdu`.
:func:`interpret_tsap`
    what an S7 TSAP says: connection type (PG, OP, S7 basic), rack and slot.
:func:`classify_start`
    the one decision shared by every port-102 probe: from the first bytes one
    side sent, whether the flow is ``s7comm``, ``s7commplus`` or ``mms``.

>>> transport = IsoTransport()
>>> [(tpdu.type_name, data) for tpdu, data in transport.feed(
...     bytes.fromhex("0300000802f08032"))]
[('DT', b'2')]
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from otdpi.dissector import Dissector, FlowContext
from otdpi.framing import Framer, Skipped
from otdpi.message import Message, malformed

TPKT_VERSION = 3
TPKT_HEADER_SIZE = 4
# The least TPKT: its header, a COTP length indicator and a TPDU code.
MIN_TPKT = TPKT_HEADER_SIZE + 2
# Bound on one reassembled run of DT segments (S7 PDUs are at most 960 bytes,
# MMS PDUs are negotiated, rarely above 64 KiB).
MAX_USER_DATA = 1 << 20
# Bound on how many DT segments one user data unit may be cut into.
MAX_SEGMENTS = 4096


class TpduCode(IntEnum):
    """COTP TPDU codes (high nibble of the second octet), X.224 table 8."""

    ED = 0x1  # expedited data
    EA = 0x2  # expedited data acknowledgement
    AK = 0x6  # data acknowledgement
    RJ = 0x5  # reject
    ER = 0x7  # TPDU error
    DR = 0x8  # disconnect request
    DC = 0xC  # disconnect confirm
    CC = 0xD  # connection confirm
    CR = 0xE  # connection request
    DT = 0xF  # data


class ParameterCode(IntEnum):
    """Variable-part parameter codes of CR/CC/DR/ER, X.224 13.3.4 and 13.5.3."""

    TPDU_SIZE = 0xC0
    CALLING_TSAP = 0xC1  # the source TSAP in the standard's wording
    CALLED_TSAP = 0xC2
    CHECKSUM = 0xC3
    VERSION = 0xC4
    PROTECTION = 0xC5
    ADDITIONAL_OPTIONS = 0xC6
    ALTERNATIVE_CLASSES = 0xC7
    PREFERRED_MAX_TPDU_SIZE = 0xF0
    INACTIVITY_TIMER = 0xF2
    ADDITIONAL_INFORMATION = 0xE0


class S7ConnectionType(IntEnum):
    """The high octet of an S7 TSAP: what kind of client connects."""

    PG = 0x01  # programming device, engineering station
    OP = 0x02  # operator panel, HMI
    S7_BASIC = 0x03  # S7 basic communication, another controller or a PC


_TYPE_NAMES = {code.value: code.name for code in TpduCode}


class Tpdu(NamedTuple):
    """One COTP TPDU as read from the wire.

    ``fields`` holds the decoded header in snake_case (``tpdu_code``,
    ``destination_reference``, ``source_reference``, ``class``, ``eot``,
    ``tpdu_number``, ``tpdu_size``, ``calling_tsap`` and ``called_tsap`` as
    hex, ``parameters``...). ``error`` is None or the reason the TPDU could
    not be read fully. ``tpkt_length`` is the TPKT length field.
    """

    code: int
    type_name: str
    fields: dict[str, Any]
    payload: bytes
    tpkt_length: int
    error: str | None = None


def measure_tpkt(buf: bytes, pos: int) -> int:
    """The framer's test for a TPKT at ``pos``: its size, 0 for too few bytes, -1.

    Version 3, reserved octet 0, a length holding at least a COTP length
    indicator and code, and (when visible) a COTP length indicator that fits
    inside the TPKT and a known TPDU code.
    """
    available = len(buf) - pos
    if available < 1:
        return 0
    if buf[pos] != TPKT_VERSION:
        return -1
    if available < 4:
        return 0 if available < 2 or buf[pos + 1] == 0 else -1
    if buf[pos + 1] != 0:
        return -1
    length = buf[pos + 2] << 8 | buf[pos + 3]
    if length < MIN_TPKT:
        return -1
    if available >= 6:
        li = buf[pos + 4]
        if li + 5 > length or (buf[pos + 5] >> 4) not in _TYPE_NAMES:
            return -1
    return length


def _parameters(
    data: bytes, start: int, end: int, fields: dict[str, Any]
) -> str | None:
    """Read the variable part of CR/CC/DR/ER into ``fields``; an error or None."""
    pos = start
    parameters = []
    while pos < end:
        if pos + 2 > end:
            return f"parameter header cut short at offset {pos}"
        code, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if pos + 2 + size > end:
            return f"parameter 0x{code:02x} of {size} bytes overruns the header"
        pos += 2 + size
        parameters.append({"code": code, "value": value.hex()})
        if code == ParameterCode.TPDU_SIZE and size == 1:
            fields["tpdu_size"] = 1 << value[0] if value[0] < 32 else None
        elif code == ParameterCode.CALLING_TSAP:
            fields["calling_tsap"] = value.hex()
        elif code == ParameterCode.CALLED_TSAP:
            fields["called_tsap"] = value.hex()
        elif code == ParameterCode.PREFERRED_MAX_TPDU_SIZE and size <= 4:
            fields["preferred_max_tpdu_size"] = int.from_bytes(value, "big") * 128
    fields["parameters"] = parameters
    return None


def parse_tpdu(data: bytes, tpkt_length: int = 0) -> Tpdu:
    """Decode one COTP TPDU (the bytes after the TPKT header); never raises.

    Parameters
    ----------
    data
        the TPDU: length indicator, code, fixed and variable part, user data.
    tpkt_length
        the TPKT length field, kept for the caller.

    Returns
    -------
    Tpdu
        with ``error`` set when the bytes contradict X.224.
    """
    if len(data) < 2:
        return Tpdu(0, "unknown", {}, b"", tpkt_length, "COTP header cut short")
    li = data[0]
    code = data[1] >> 4
    name = _TYPE_NAMES.get(code, f"0x{code:x}")
    fields: dict[str, Any] = {"length_indicator": li, "tpdu_code": code}
    header_end = 1 + li
    if header_end > len(data):
        return Tpdu(
            code,
            name,
            fields,
            b"",
            tpkt_length,
            f"length indicator {li} runs past the {len(data)}-byte TPDU",
        )
    payload = data[header_end:]
    error = None
    if code == TpduCode.DT:
        if li < 2:
            error = f"DT length indicator {li} is below 2"
        elif li == 2:  # class 0 and 1: no destination reference
            fields["eot"] = bool(data[2] & 0x80)
            fields["tpdu_number"] = data[2] & 0x7F
        else:  # classes 2 to 4 carry the destination reference
            fields["destination_reference"] = int.from_bytes(data[2:4], "big")
            fields["eot"] = bool(data[4] & 0x80) if li >= 4 else False
            fields["tpdu_number"] = data[4] & 0x7F if li >= 4 else 0
    elif code in (TpduCode.CR, TpduCode.CC, TpduCode.DR, TpduCode.DC):
        least = 5 if code == TpduCode.DC else 6  # DC has no class or reason octet
        if li < least:
            error = f"{name} length indicator {li} is below {least}"
        else:
            fields["credit"] = data[1] & 0x0F
            fields["destination_reference"] = int.from_bytes(data[2:4], "big")
            fields["source_reference"] = int.from_bytes(data[4:6], "big")
            if code in (TpduCode.CR, TpduCode.CC):
                fields["class"] = data[6] >> 4
                fields["options"] = data[6] & 0x0F
                error = _parameters(data, 7, header_end, fields)
            elif code == TpduCode.DR:
                fields["reason"] = data[6]
                error = _parameters(data, 7, header_end, fields)
    elif code == TpduCode.ER:
        if li < 4:
            error = f"ER length indicator {li} is below 4"
        else:
            fields["destination_reference"] = int.from_bytes(data[2:4], "big")
            fields["reject_cause"] = data[4]
            error = _parameters(data, 5, header_end, fields)
    elif code in _TYPE_NAMES:
        # Limitation: ED, EA, AK and RJ (classes 1 to 4, never seen on port
        # 102) keep their fixed part as raw hex. Decoding X.224 13.8 to 13.12
        # would lift it.
        fields["header"] = data[2:header_end].hex()
    else:
        error = f"unknown TPDU code 0x{code:x}"
    return Tpdu(code, name, fields, payload, tpkt_length, error)


class IsoTransport:
    """TPKT framing and COTP DT reassembly for one direction of a flow.

    Parameters
    ----------
    max_user_data
        the largest reassembled user data unit; beyond it the run is dropped
        and the closing DT is reported with ``user_data`` None and an error.

    Notes
    -----
    A DT without the EOT bit is a segment: its payload is held until a DT
    with EOT arrives, and only that one returns the joined user data. A
    non-DT TPDU in between (a DR, an ER) does not break the run, as X.224
    class 0 has nothing between segments but the same rule keeps junk from
    costing more than its own bytes.
    """

    __slots__ = ("framer", "segments", "segment_bytes", "max_user_data")

    def __init__(self, max_user_data: int = MAX_USER_DATA) -> None:
        self.framer = Framer(measure_tpkt, max_unit=65535)
        self.segments: list[bytes] = []
        self.segment_bytes = 0
        self.max_user_data = max_user_data

    def reset(self) -> int:
        """Forget partial TPKTs and DT runs (after a gap); bytes dropped."""
        dropped = self.framer.reset() + self.segment_bytes
        self.segments = []
        self.segment_bytes = 0
        return dropped

    @property
    def buffered(self) -> int:
        """Bytes held: a partial TPKT and DT segments waiting for EOT."""
        return self.framer.buffered + self.segment_bytes

    def feed(self, data: bytes) -> list[tuple[Tpdu, bytes | None] | Skipped]:
        """Take bytes of this direction; return TPDUs with completed user data."""
        out: list[tuple[Tpdu, bytes | None] | Skipped] = []
        for unit in self.framer.feed(data):
            if type(unit) is Skipped:
                out.append(unit)
                continue
            tpkt_length = unit[2] << 8 | unit[3]
            # The hot path: a class 0 DT with EOT and nothing held.
            if (
                unit[4] == 2
                and unit[5] == 0xF0
                and unit[6] & 0x80
                and not self.segments
            ):
                tpdu = Tpdu(
                    0xF,
                    "DT",
                    {
                        "length_indicator": 2,
                        "tpdu_code": 0xF,
                        "eot": True,
                        "tpdu_number": unit[6] & 0x7F,
                    },
                    unit[7:],
                    tpkt_length,
                )
                out.append((tpdu, tpdu.payload))
                continue
            tpdu = parse_tpdu(unit[4:], tpkt_length)
            out.append((tpdu, self._reassemble(tpdu)))
        return out

    def _reassemble(self, tpdu: Tpdu) -> bytes | None:
        if tpdu.code != TpduCode.DT or tpdu.error is not None:
            return None
        self.segments.append(tpdu.payload)
        self.segment_bytes += len(tpdu.payload)
        too_big = (
            self.segment_bytes > self.max_user_data or len(self.segments) > MAX_SEGMENTS
        )
        if too_big:
            self.segments = []
            self.segment_bytes = 0
            tpdu.fields["reassembly_error"] = "user data unit exceeds the bound"
            return None
        if not tpdu.fields.get("eot"):
            return None
        tpdu.fields["segments"] = len(self.segments)
        joined = (
            self.segments[0] if len(self.segments) == 1 else b"".join(self.segments)
        )
        self.segments = []
        self.segment_bytes = 0
        return joined


def interpret_tsap(tsap_hex: str | None) -> dict[str, Any]:
    """What a TSAP says, S7 style: a 2-octet TSAP is connection type, rack, slot.

    >>> interpret_tsap("0102")
    {'tsap': '0102', 'connection_type': 'PG', 'rack': 0, 'slot': 2}
    >>> interpret_tsap("53494d415449432d524f4f542d4553")["tsap_text"]
    'SIMATIC-ROOT-ES'
    """
    if not tsap_hex:
        return {}
    try:
        raw = bytes.fromhex(tsap_hex)
    except ValueError:
        return {"tsap": tsap_hex}
    found: dict[str, Any] = {"tsap": tsap_hex}
    if len(raw) == 2:
        kind = raw[0]
        try:
            found["connection_type"] = S7ConnectionType(kind).name
        except ValueError:
            found["connection_type"] = f"0x{kind:02x}"
        found["rack"] = raw[1] >> 5
        found["slot"] = raw[1] & 0x1F
    elif len(raw) >= 4 and all(32 <= b < 127 for b in raw):
        found["tsap_text"] = raw.decode("ascii")
    return found


# --- the shared port-102 decision ---------------------------------------------

S7COMM_PROTOCOL_ID = 0x32
S7COMMPLUS_PROTOCOL_ID = 0x72
# First octets of an ISO 8327 session SPDU that opens MMS user data: CN, AC,
# RF, FN, DN, AB, AA, GT (give tokens, followed by DT).
_SESSION_SPDU_CODES = frozenset({0x0D, 0x0E, 0x0C, 0x09, 0x0A, 0x19, 0x1A, 0x01})
_TLS_RECORD_TYPES = frozenset({0x14, 0x15, 0x16, 0x17})
# First octets of an MMS PDU sent straight on COTP with no session or
# presentation layer (some test tools and embedded stacks do): initiate
# request/response/error, confirmed request/response, conclude request.
_BARE_MMS_TAGS = frozenset({0xA0, 0xA1, 0xA8, 0xA9, 0xAA, 0x8B})


def _is_s7_tsap(tsap_hex: str | None) -> bool:
    # Two octets, a known S7 connection type, and a slot: MMS TSAPs seen on
    # port 102 (0001, 0200...) name no slot.
    if not tsap_hex or len(tsap_hex) != 4:
        return False
    raw = bytes.fromhex(tsap_hex)
    return raw[0] in (1, 2, 3) and raw[1] & 0x1F != 0


def _is_simatic_tsap(tsap_hex: str | None) -> bool:
    return bool(tsap_hex) and tsap_hex.startswith("53494d41544943")  # "SIMATIC"


def classify_start(data: bytes) -> str | None:
    """Which port-102 protocol the first bytes one side sent belong to.

    The first DT that carries user data decides by its first octet: 0x32 is
    S7comm, 0x72 S7comm-plus, an ISO session SPDU code MMS (an MMS stack
    always runs ISO session and presentation over COTP). A TLS record right
    after a SIMATIC TSAP is S7comm-plus protected by TLS. When the bytes end
    before any DT, the CR or CC decides from its TSAPs: a "SIMATIC-..." TSAP
    is S7comm-plus, a two-octet S7 TSAP naming a slot S7comm, and nothing
    else is decided (None). None also when the bytes are not TPKT/COTP.

    Parameters
    ----------
    data
        the first bytes one side sent on the flow (any number of TPKTs).

    Returns
    -------
    str or None
        ``"s7comm"``, ``"s7commplus"``, ``"mms"`` or None.
    """
    pos = 0
    end = len(data)
    tsap_guess = None
    simatic = False
    for _ in range(16):
        size = measure_tpkt(data, pos)
        if size <= 0:
            break
        unit = data[pos : pos + size]
        if len(unit) < MIN_TPKT:
            break
        code = unit[5] >> 4
        li = unit[4]
        if code == TpduCode.DT:
            payload = unit[5 + li :]
            if payload:
                first = payload[0]
                if first == S7COMM_PROTOCOL_ID:
                    return "s7comm"
                if first == S7COMMPLUS_PROTOCOL_ID:
                    return "s7commplus"
                if first in _TLS_RECORD_TYPES and payload[1:2] == b"\x03":
                    return "s7commplus" if simatic else None
                if first in _SESSION_SPDU_CODES or first in _BARE_MMS_TAGS:
                    return "mms"
                return None
        elif code in (TpduCode.CR, TpduCode.CC):
            tpdu = parse_tpdu(unit[4:])
            calling = tpdu.fields.get("calling_tsap")
            called = tpdu.fields.get("called_tsap")
            if _is_simatic_tsap(called) or _is_simatic_tsap(calling):
                simatic = True
                tsap_guess = "s7commplus"
            elif _is_s7_tsap(called):
                tsap_guess = "s7comm"
            else:
                tsap_guess = None
        pos += size
        if pos >= end:
            break
    return tsap_guess


def looks_like_tpkt(data: bytes) -> bool:
    """Whether ``data`` opens with a plausible TPKT header (cheap pre-check)."""
    return len(data) >= MIN_TPKT and measure_tpkt(data, 0) > 0


class IsoTransportDissector(Dissector):
    """What every port-102 plugin does alike: TPKT/COTP per direction, junk and leftovers.

    A subclass (S7comm, S7comm-plus, MMS) gives :meth:`_pdu`, called with each
    complete user data unit, and :meth:`_cotp`, called with each TPDU worth a
    message of its own (CR, CC, DR, ER, a DT that failed reassembly). Bytes that
    are not TPKT, and bytes left in a partial unit when the flow ends, become
    ``malformed`` messages here, the same for every protocol on the stack.
    """

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.transports = {True: IsoTransport(), False: IsoTransport()}

    def feed(self, data: bytes, to_server: bool, ts: float, frame: int) -> list[Message]:
        out: list[Message] = []
        for unit in self.transports[to_server].feed(data):
            if type(unit) is Skipped:
                out.append(self._transport_problem(
                    to_server, ts, frame, "junk", {"skipped_bytes": unit.size},
                    f"{unit.size} bytes are not TPKT: {unit.reason}"))
                continue
            tpdu, user_data = unit
            if user_data is not None:
                out.append(self._pdu(tpdu, user_data, to_server, ts, frame))
            elif (
                tpdu.code != TpduCode.DT
                or tpdu.error
                or "reassembly_error" in tpdu.fields
            ):
                out.append(self._cotp(tpdu, to_server, ts, frame))
        return out

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        self.transports[to_server].reset()
        return []

    def close(self, ts: float, frame: int) -> list[Message]:
        out = []
        for to_server, transport in self.transports.items():
            left = transport.buffered
            if left:
                transport.reset()
                out.append(self._transport_problem(
                    to_server, ts, frame, "truncated", {"buffered_bytes": left},
                    f"{left} bytes left in a partial unit"))
        return out

    def _pdu(self, tpdu: Tpdu, user_data: bytes, to_server: bool, ts: float,
             frame: int) -> Message:
        raise NotImplementedError

    def _cotp(self, tpdu: Tpdu, to_server: bool, ts: float, frame: int) -> Message:
        raise NotImplementedError

    def _transport_problem(self, to_server: bool, ts: float, frame: int, service: str,
                           fields: dict[str, Any], reason: str) -> Message:
        src, dst = self.endpoints(to_server)
        return Message(ts, frame, self.flow.flow_id, src, dst, self.name,
                       "request" if to_server else "response", service, None, "other",
                       fields=fields, status=malformed(reason))
