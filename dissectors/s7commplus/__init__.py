"""S7comm-plus dissector (protocol id 0x72): headers, session set-up, PLC identity.

S7comm-plus is the protocol of S7-1200/1500 CPUs and TIA Portal, carried in
COTP DT user data on port 102 (TPKT/COTP from
:mod:`dissectors.isotransport`). There is no public standard; the layout is
the public knowledge from independent analyses, checked on real captures:

* header: protocol id 0x72, protocol version (0x01 V1, 0x02 V2, 0x03 V3,
  0xFE and 0xFF for system and keep-alive frames), data length;
* V2 and V3: an integrity part (digest length 0x20 and a 32-byte digest)
  right after the header;
* data: opcode (0x31 request, 0x32 response, 0x33 notification, 0x02
  response), two reserved octets, function, two reserved octets, sequence
  number; a request then carries its session id (4 octets) and transport
  flags, a response its transport flags;
* trailer: 0x72, the version and two zero octets, when the PDU is not
  fragmented.

CreateObject, the session set-up, carries attributes as typed values; the
WString attributes are read, which is where the server reports its PLC
type and firmware ("1;6ES7 211-1BE31-0XB0 ;V3.0") and the client its
product and host names. Every other body is kept as raw hex.
TLS-protected sessions (TLS records inside COTP after InitSsl) are
recognised and counted, never parsed as S7comm-plus.

Limitation: attribute values other than WStrings, object trees and the
integrity id of V3 are not decoded; they stay raw in ``fields["body"]``.
Decoding the S7comm-plus value encodings (VLQ numbers, structs, blobs)
would lift it.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any, ClassVar

from dissectors.isotransport import (
    IsoTransportDissector,
    Tpdu,
    TpduCode,
    classify_start,
    interpret_tsap,
)
from otdpi.dissector import FlowContext
from otdpi.message import STATUS_OK, Message, Status, malformed

PROTOCOL = "s7commplus"
PROTOCOL_ID = 0x72
DIGEST_SIZE = 32


class Version(IntEnum):
    V1 = 0x01
    V2 = 0x02
    V3 = 0x03
    SYSTEM_EVENT = 0xFE
    KEEP_ALIVE = 0xFF


class Opcode(IntEnum):
    REQUEST = 0x31
    RESPONSE = 0x32
    NOTIFICATION = 0x33
    RESPONSE2 = 0x02


class FunctionCode(IntEnum):
    EXPLORE = 0x04BB
    CREATE_OBJECT = 0x04CA
    DELETE_OBJECT = 0x04D4
    SET_VARIABLE = 0x04E8
    GET_VARIABLE = 0x04F2
    ADD_LINK = 0x0524
    SET_MULTI_VARIABLES = 0x0542
    GET_MULTI_VARIABLES = 0x054C
    BEGIN_SEQUENCE = 0x0556
    END_SEQUENCE = 0x0560
    INVOKE = 0x056B
    SET_VAR_SUB_STREAMED = 0x057C
    GET_VAR_SUB_STREAMED = 0x0586
    GET_VARIABLES_ADDRESS = 0x0590
    ABORT = 0x059A
    ERROR = 0x05A9
    INIT_SSL = 0x05B3


_FUNCTION_NAMES = {f.value: f.name.lower() for f in FunctionCode}
_ACTIONS = {
    FunctionCode.EXPLORE: "read", FunctionCode.CREATE_OBJECT: "session",
    FunctionCode.DELETE_OBJECT: "session", FunctionCode.SET_VARIABLE: "write",
    FunctionCode.GET_VARIABLE: "read", FunctionCode.ADD_LINK: "other",
    FunctionCode.SET_MULTI_VARIABLES: "write", FunctionCode.GET_MULTI_VARIABLES: "read",
    FunctionCode.BEGIN_SEQUENCE: "program", FunctionCode.END_SEQUENCE: "program",
    FunctionCode.INVOKE: "control", FunctionCode.SET_VAR_SUB_STREAMED: "write",
    FunctionCode.GET_VAR_SUB_STREAMED: "read",
    FunctionCode.GET_VARIABLES_ADDRESS: "read",
    FunctionCode.ABORT: "session", FunctionCode.ERROR: "other",
    FunctionCode.INIT_SSL: "session",
}  # fmt: skip
_TLS_RECORD_TYPES = frozenset({0x14, 0x15, 0x16, 0x17})
_ROLES_BY_TSAP = {"SIMATIC-ROOT-ES": "engineering station", "SIMATIC-ROOT-HMI": "HMI"}
# A WString value: flags 0x00, datatype 0x15, a one-octet length below 0x80.
_WSTRING = re.compile(rb"\x00\x15([\x01-\x7f])")
_PLC_VERSION = re.compile(r"^\d+;(6[A-Z]{2}\d[ 0-9A-Z-]+?)\s*;\s*(V[\d.]+)")
MAX_STRINGS = 64

_new = tuple.__new__


def wstrings(body: bytes) -> list[str]:
    """The printable WString attribute values in ``body``, in order (bounded)."""
    found = []
    for match in _WSTRING.finditer(body):
        size = match.group(1)[0]
        raw = body[match.end() : match.end() + size]
        if len(raw) == size and all(32 <= b < 127 for b in raw):
            found.append(raw.decode("ascii"))
            if len(found) >= MAX_STRINGS:
                break
    return found


def plc_identity(strings: list[str]) -> dict[str, Any]:
    """Order number and firmware from a server's "n;<MLFB>;V<x.y>" string."""
    from dissectors.s7comm.szl import product_family

    for text in strings:
        match = _PLC_VERSION.match(text)
        if match:
            order_number = match.group(1).strip()
            identity = {"order_number": order_number, "firmware": match.group(2)}
            family = product_family(order_number)
            if family:
                identity["product_family"] = family
            return identity
    return {}


def decode_pdu(
    pdu: bytes, continuation: bool = False
) -> tuple[dict[str, Any], str | None]:
    """Decode an S7comm-plus PDU's header, integrity part and data header.

    ``continuation`` says the previous PDU of this direction had no trailer,
    so this one carries the rest of its data and no opcode of its own.
    Returns ``(fields, error)``; ``error`` is None or why the PDU is bad.
    """
    fields: dict[str, Any] = {}
    if len(pdu) < 4:
        return fields, f"header needs 4 bytes, {len(pdu)} present"
    if pdu[0] != PROTOCOL_ID:
        return fields, f"protocol id 0x{pdu[0]:02x} is not 0x72"
    version = pdu[1]
    fields["protocol_version"] = version
    length = pdu[2] << 8 | pdu[3]
    fields["data_length"] = length
    end = 4 + length
    if end > len(pdu):
        return (
            fields,
            f"data length {length} runs past the {len(pdu) - 4} bytes present",
        )
    trailer = pdu[end : end + 4]
    fields["has_trailer"] = len(trailer) == 4 and trailer[0] == PROTOCOL_ID
    pos = 4
    if (
        version in (Version.V2, Version.V3)
        and length >= 1 + DIGEST_SIZE
        and pdu[pos] == DIGEST_SIZE
    ):
        fields["integrity_digest"] = pdu[pos + 1 : pos + 1 + DIGEST_SIZE].hex()
        pos += 1 + DIGEST_SIZE
    if continuation:
        fields["continuation"] = True
    if version not in (Version.V1, Version.V2, Version.V3) or continuation:
        fields["body"] = pdu[pos:end].hex()
        return fields, None
    if end - pos < 9:
        fields["body"] = pdu[pos:end].hex()
        return fields, None
    opcode = pdu[pos]
    fields["opcode"] = opcode
    if opcode == Opcode.NOTIFICATION:
        # A notification names its subscription object, not a function.
        fields["subscription_object_id"] = int.from_bytes(pdu[pos + 1 : pos + 5], "big")
        fields["body"] = pdu[pos + 5 : min(end, pos + 1024)].hex()
        return fields, None
    if opcode not in (Opcode.REQUEST, Opcode.RESPONSE, Opcode.RESPONSE2):
        fields["body"] = pdu[pos + 1 : min(end, pos + 1024)].hex()
        return fields, None
    fields["function"] = pdu[pos + 3] << 8 | pdu[pos + 4]
    fields["sequence_number"] = pdu[pos + 7] << 8 | pdu[pos + 8]
    pos += 9
    if opcode == Opcode.REQUEST and end - pos >= 5:
        fields["session_id"] = int.from_bytes(pdu[pos : pos + 4], "big")
        fields["transport_flags"] = pdu[pos + 4]
        pos += 5
    elif opcode in (Opcode.RESPONSE, Opcode.RESPONSE2) and end - pos >= 1:
        fields["transport_flags"] = pdu[pos]
        pos += 1
    fields["body"] = pdu[pos : min(end, pos + 1024)].hex()
    if fields["function"] in (FunctionCode.CREATE_OBJECT,) or opcode == Opcode.RESPONSE:
        strings = wstrings(pdu[pos:end])
        if strings:
            fields["strings"] = strings
    return fields, None


class S7commPlusDissector(IsoTransportDissector):
    """S7comm-plus over ISO-on-TCP, one instance per flow."""

    name: ClassVar[str] = PROTOCOL
    default_ports: ClassVar[tuple[int, ...]] = (102,)
    probe_min_bytes: ClassVar[int] = 40  # see S7commDissector.probe_min_bytes
    state: ClassVar[str] = "per direction TPKT framer and COTP DT segments; TLS flag"

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.client_role: str | None = None
        self.tls = False
        # Per direction: the last PDU had no trailer, so the next continues it.
        self.continuing = {True: False, False: False}
        self.tls_records = 0

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return classify_start(data) == PROTOCOL

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        if len(data) < 8 or data[0] != 3:
            return None
        code = data[5] >> 4
        if code == TpduCode.CR:
            return True
        if code == TpduCode.CC:
            return False
        start = 5 + data[4]
        # A V1 to V3 PDU without integrity part: the opcode follows the header.
        if code == TpduCode.DT and data[start : start + 1] == b"\x72":
            opcode = data[start + 4 : start + 5]
            if data[start + 1 : start + 2] == b"\x01" and opcode == b"\x31":
                return True
            if data[start + 1 : start + 2] == b"\x01" and opcode == b"\x32":
                return False
        return None

    def _cotp(self, tpdu: Tpdu, to_server: bool, ts: float, frame: int) -> Message:
        fields: dict[str, Any] = {"tpkt_length": tpdu.tpkt_length, "cotp": tpdu.fields}
        identity: dict[str, Any] = {}
        if tpdu.code in (TpduCode.CR, TpduCode.CC):
            called = interpret_tsap(tpdu.fields.get("called_tsap"))
            fields["calling_tsap"] = interpret_tsap(tpdu.fields.get("calling_tsap"))
            fields["called_tsap"] = called
            if tpdu.code == TpduCode.CR:
                role = _ROLES_BY_TSAP.get(called.get("tsap_text", ""))
                if role:
                    self.client_role = role
                    identity["role"] = role
            else:
                identity = {"role": "PLC", "vendor": "Siemens"}
        status = STATUS_OK if tpdu.error is None else malformed(tpdu.error)
        return self._message(
            to_server,
            ts,
            frame,
            f"cotp_{tpdu.type_name.lower()}",
            tpdu.code,
            "session",
            fields,
            identity,
            status,
        )

    def _pdu(
        self, tpdu: Tpdu, pdu: bytes, to_server: bool, ts: float, frame: int
    ) -> Message:
        if pdu[:1] and pdu[0] in _TLS_RECORD_TYPES and pdu[1:2] == b"\x03":
            self.tls = True
            self.tls_records += 1
            fields = {
                "tls_record_type": pdu[0],
                "tls_records": self.tls_records,
                "length": len(pdu),
            }
            return self._message(
                to_server,
                ts,
                frame,
                "tls_record",
                None,
                "session",
                fields,
                self._sender_identity(to_server, {}),
            )
        fields, error = decode_pdu(pdu, self.continuing[to_server])
        version = fields.get("protocol_version")
        if version in (Version.V1, Version.V2, Version.V3) and error is None:
            self.continuing[to_server] = not fields.get("has_trailer")
        fields["tpkt_length"] = tpdu.tpkt_length
        function = fields.get("function")
        opcode = fields.get("opcode")
        if function is not None:
            service = _FUNCTION_NAMES.get(function, f"function_0x{function:04x}")
            action = _ACTIONS.get(function, "other")
        elif opcode == Opcode.NOTIFICATION:
            service, action = "notification", "data"
        elif fields.get("continuation"):
            service, action = "continuation", "data"
        elif "protocol_version" in fields:
            service = f"version_0x{fields['protocol_version']:02x}"
            action = "other"
        else:
            service, action = "unknown", "other"
        kind = None
        if opcode == Opcode.REQUEST:
            kind = "request"
        elif opcode in (Opcode.RESPONSE, Opcode.RESPONSE2):
            kind = "response"
        elif opcode == Opcode.NOTIFICATION:
            kind = "unsolicited"
        identity: dict[str, Any] = {}
        strings = fields.get("strings")
        if strings and not to_server:
            identity.update(plc_identity(strings))
        status = STATUS_OK if error is None else malformed(error)
        return self._message(
            to_server,
            ts,
            frame,
            service,
            function,
            action,
            fields,
            self._sender_identity(to_server, identity),
            status,
            kind,
        )

    def _sender_identity(self, to_server: bool, identity: dict[str, Any]) -> dict:
        if to_server:
            if self.client_role:
                identity["role"] = self.client_role
        else:
            identity.setdefault("role", "PLC")
            identity.setdefault("vendor", "Siemens")
        return identity

    def _message(
        self,
        to_server,
        ts,
        frame,
        service,
        code,
        action,
        fields,
        identity=None,
        status: Status = STATUS_OK,
        kind=None,
    ) -> Message:
        src, dst = self.endpoints(to_server)
        if kind is None:
            kind = "request" if to_server else "response"
        return _new(
            Message,
            (
                ts,
                frame,
                self.flow.flow_id,
                src,
                dst,
                PROTOCOL,
                kind,
                service,
                code,
                action,
                (),
                fields,
                identity or {},
                status,
                (),
            ),
        )
