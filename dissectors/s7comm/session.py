"""The S7comm plugin: probe, ISO transport, request matching, Messages and roles.

Strategy
--------
Each direction has an :class:`~dissectors.isotransport.IsoTransport` that
frames TPKTs and joins COTP DT segments; each complete user data unit is one
S7comm PDU. COTP connection set-up and release (CR, CC, DR, DC, ER) become
``session`` messages of their own, because their TSAPs tell what kind of
client connects (PG, OP, S7 basic) and to which rack and slot. Job requests
are remembered by PDU reference until their ack-data arrives, so that a
read response names the addresses it carries. Userdata answers split over
several PDUs (an SZL list longer than one PDU) are joined by their data
unit reference before the SZL records are decoded.

Identity: the server side of an S7comm flow is a PLC (role "PLC", vendor
Siemens) and its SZL answers add order number, family, versions, serial
number and names. The client's role comes from the connection type of the
CR's called TSAP (PG is an engineering station, OP an HMI) and from what it
does: block download, PLC control and PLC stop are the work of an
engineering station.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dissectors.isotransport import (
    IsoTransportDissector,
    TpduCode,
    Tpdu,
    classify_start,
    interpret_tsap,
)
from dissectors.s7comm.decoding import (
    FUNCTION_NAMES,
    ROSCTR_NAMES,
    DecodeError,
    decode_header,
    decode_job_parameters,
    decode_userdata,
    decode_userdata_payload,
    userdata_service,
)
from dissectors.s7comm.definitions import AREA_SHORT, Function, Rosctr
from otdpi.dissector import FlowContext
from otdpi.message import STATUS_OK, Finding, Message, Status, Target, malformed

PROTOCOL = "s7comm"
MAX_PENDING = 256
MAX_FRAGMENT_BYTES = 1 << 16

_ACTIONS = {
    Function.CPU_SERVICES: "other",
    Function.SETUP_COMMUNICATION: "session",
    Function.READ_VAR: "read",
    Function.WRITE_VAR: "write",
    Function.REQUEST_DOWNLOAD: "program",
    Function.DOWNLOAD_BLOCK: "program",
    Function.DOWNLOAD_ENDED: "program",
    Function.START_UPLOAD: "program",
    Function.UPLOAD: "program",
    Function.END_UPLOAD: "program",
    Function.PI_SERVICE: "control",
    Function.PLC_STOP: "control",
}
# Functions only an engineering station sends.
_ENGINEERING = frozenset(
    {
        Function.REQUEST_DOWNLOAD,
        Function.DOWNLOAD_BLOCK,
        Function.DOWNLOAD_ENDED,
        Function.PI_SERVICE,
        Function.PLC_STOP,
    }
)
# PI services that change the program rather than the CPU state.
_PROGRAM_PI = frozenset({"_INSE", "_DELE", "_MODU", "_GARB"})

_USERDATA_ACTIONS = {
    (0x4, 0x01): "identify",
    (0x7, 0x01): "read", (0x7, 0x03): "read",
    (0x7, 0x02): "write", (0x7, 0x04): "write",
    (0x5, 0x01): "session", (0x5, 0x02): "session",
    (0x1, 0x02): "read", (0x1, 0x10): "write",
    (0x1, 0x01): "diagnose", (0x1, 0x13): "diagnose", (0x1, 0x0E): "diagnose",
    (0x3, 0x01): "identify", (0x3, 0x02): "identify", (0x3, 0x03): "identify",
}  # fmt: skip
_USERDATA_GROUP_ACTIONS = {
    0x0: "control",
    0x1: "diagnose",
    0x2: "read",
    0x3: "identify",
    0x4: "data",
    0x6: "data",
    0xF: "other",
}

_CONNECTION_ROLES = {"PG": "engineering station", "OP": "HMI"}
_PLC_IDENTITY = {"role": "PLC", "vendor": "Siemens"}

_new = tuple.__new__


def looks_like_s7comm(data: bytes) -> bool:
    """The probe: the port-102 decision of :func:`classify_start` says S7comm."""
    return classify_start(data) == PROTOCOL


def _targets(items: list[dict[str, Any]]) -> tuple[Target, ...]:
    found = []
    for item in items:
        area = item.get("area")
        if area is None:
            for sub in item.get("areas", ()):
                found.append(
                    Target(f"DB{sub['db_number']}", sub["start"], sub["length"])
                )
            continue
        short = AREA_SHORT.get(area, f"area_0x{area:02x}")
        space = f"DB{item['db_number']}" if short in ("DB", "DI") else short
        start = item["number"] if "number" in item else item["byte_address"]
        found.append(Target(space, start, item["length"]))
    return tuple(found)


# Data item sizes (bytes) read as one number: words, double words, reals.
_VALUE_SIZES = frozenset({2, 4, 8})


def _item_values(data_items: list[dict[str, Any]]) -> list[int | None] | None:
    """The ``item_values`` field convention: one int per target, or None.

    A written (return code 0) or successfully read (0xFF) item of 2, 4 or 8
    bytes is its bytes as a big-endian unsigned integer (a REAL is its bit
    pattern, which orders like the number for values of one sign). Bits and
    bytes are left out (None): a target names the byte of a bit, so their
    values would mix. None when no item has a value.
    """
    values: list[int | None] = []
    for item in data_items:
        data = item.get("data")
        if (
            data is not None
            and item.get("return_code") in (0x00, 0xFF)
            and len(data) // 2 in _VALUE_SIZES
        ):
            values.append(int(data, 16))
        else:
            values.append(None)
    return values if any(v is not None for v in values) else None


class S7commDissector(IsoTransportDissector):
    """S7comm over ISO-on-TCP (TPKT/COTP), one instance per flow."""

    name: ClassVar[str] = PROTOCOL
    default_ports: ClassVar[tuple[int, ...]] = (102,)
    # A CR (22 bytes with S7 TSAPs) and the first DT's header and protocol id,
    # so that the first DT payload octet decides between S7comm, S7comm-plus
    # and MMS (see dissectors.isotransport.classify_start).
    probe_min_bytes: ClassVar[int] = 40
    state: ClassVar[str] = (
        "per direction TPKT framer and COTP DT segments; job requests by PDU "
        "reference; userdata fragments by data unit reference; connection type"
    )

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.pending: dict[int, dict[str, Any]] = {}
        self.fragments: dict[tuple, list[bytes]] = {}
        self.client_role: str | None = None

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return looks_like_s7comm(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        # A CR comes from the client, a CC from the server; a job is a
        # request, an ack-data a response.
        if len(data) < 8 or data[0] != 3:
            return None
        code = data[5] >> 4
        if code == TpduCode.CR:
            return True
        if code == TpduCode.CC:
            return False
        start = 5 + data[4]
        if code == TpduCode.DT and len(data) > start + 1 and data[start] == 0x32:
            rosctr = data[start + 1]
            if rosctr == Rosctr.JOB:
                return True
            if rosctr in (Rosctr.ACK, Rosctr.ACK_DATA):
                return False
        return None

    # -- feeding --------------------------------------------------------------

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        self.fragments.clear()
        return super().gap(to_server, ts, frame)

    # -- COTP -----------------------------------------------------------------

    def _cotp(self, tpdu: Tpdu, to_server: bool, ts: float, frame: int) -> Message:
        fields: dict[str, Any] = {"tpkt_length": tpdu.tpkt_length, "cotp": tpdu.fields}
        identity: dict[str, Any] = {}
        if tpdu.code in (TpduCode.CR, TpduCode.CC):
            calling = interpret_tsap(tpdu.fields.get("calling_tsap"))
            called = interpret_tsap(tpdu.fields.get("called_tsap"))
            fields["calling_tsap"] = calling
            fields["called_tsap"] = called
            kind = called.get("connection_type")
            if kind:
                fields["connection_type"] = kind
            if tpdu.code == TpduCode.CR:
                role = _CONNECTION_ROLES.get(kind)
                if (
                    kind == "S7_BASIC"
                    and calling.get("connection_type") == "S7_BASIC"
                    and calling.get("slot")
                ):
                    role = "PLC"  # a controller's own TSAP: S7 basic peer
                if role:
                    self.client_role = role
                    identity["role"] = role
            else:
                identity = dict(_PLC_IDENTITY)
        status = STATUS_OK if tpdu.error is None else malformed(tpdu.error)
        if "reassembly_error" in tpdu.fields:
            status = malformed(tpdu.fields["reassembly_error"])
        service = f"cotp_{tpdu.type_name.lower()}"
        return self._message(
            to_server,
            ts,
            frame,
            service,
            tpdu.code,
            "session",
            fields,
            identity,
            status,
        )

    # -- S7comm PDUs ----------------------------------------------------------------

    def _pdu(
        self, tpdu: Tpdu, pdu: bytes, to_server: bool, ts: float, frame: int
    ) -> Message:
        fields: dict[str, Any] = {"tpkt_length": tpdu.tpkt_length, "cotp": tpdu.fields}
        findings: list[Finding] = []
        try:
            size = decode_header(pdu, fields)
        except DecodeError as exc:
            return self._message(
                to_server,
                ts,
                frame,
                "unknown",
                None,
                "other",
                fields,
                status=malformed(str(exc)),
            )
        rosctr = fields["rosctr"]
        param_end = size + fields["parameter_length"]
        data_end = param_end + fields["data_length"]
        param = pdu[size:param_end]
        data = pdu[param_end:data_end]
        error = None
        if data_end > len(pdu):
            error = (
                f"parameter and data lengths ({fields['parameter_length']} + "
                f"{fields['data_length']}) run past the {len(pdu) - size}-byte body"
            )
        elif data_end < len(pdu):
            findings.append(
                Finding(
                    "trailing_bytes", f"{len(pdu) - data_end} bytes after the data part"
                )
            )
        if rosctr == Rosctr.USERDATA:
            return self._userdata(
                fields, param, data, error, findings, to_server, ts, frame
            )
        if rosctr not in ROSCTR_NAMES:
            return self._message(
                to_server,
                ts,
                frame,
                f"rosctr_{rosctr}",
                rosctr,
                "other",
                fields,
                status=malformed(f"unknown ROSCTR {rosctr}"),
            )
        try:
            decode_job_parameters(rosctr, param, data, fields)
        except DecodeError as exc:
            error = error or str(exc)
        function = fields.get("function")
        request = rosctr == Rosctr.JOB
        kind = "request" if request else "response"
        identity: dict[str, Any] = {}
        if request:
            if len(self.pending) >= MAX_PENDING:
                self.pending.pop(next(iter(self.pending)))
            self.pending[fields["pdu_reference"]] = fields
        if not to_server:
            # The PLC sends jobs too (it asks for each block of a download).
            identity = dict(_PLC_IDENTITY)
        elif function in _ENGINEERING:
            identity["role"] = "engineering station"
        elif self.client_role:
            identity["role"] = self.client_role
        if not request:
            asked = self.pending.pop(fields["pdu_reference"], None)
            if asked is not None and asked.get("function") == function:
                if "items" in asked:
                    fields["items"] = asked["items"]
                for key in ("filename", "block_type", "block_number", "pi_service"):
                    if key in asked:
                        fields.setdefault(key, asked[key])
        if function is None:
            service = ROSCTR_NAMES[rosctr] if rosctr == Rosctr.ACK else "unknown"
            action = "other"
        else:
            service = FUNCTION_NAMES.get(function, f"function_0x{function:02x}")
            action = _ACTIONS.get(function, "other")
            if (
                function == Function.PI_SERVICE
                and fields.get("pi_service") in _PROGRAM_PI
            ):
                action = "program"
        targets = _targets(fields["items"]) if "items" in fields else ()
        if targets and "data_items" in fields:
            values = _item_values(fields["data_items"])
            if values is not None and len(values) == len(targets):
                fields["item_values"] = values
        status = STATUS_OK
        if error:
            status = malformed(error)
        elif fields.get("error_class"):
            status = Status(
                "exception",
                fields["error_class"] << 8 | fields["error_code"],
                f"error_class_0x{fields['error_class']:02x}",
            )
        return self._message(
            to_server,
            ts,
            frame,
            service,
            function,
            action,
            fields,
            identity,
            status,
            targets,
            kind,
            findings,
        )

    def _userdata(self, fields, param, data, error, findings, to_server, ts, frame):
        try:
            decode_userdata(param, data, fields)
        except DecodeError as exc:
            return self._message(
                to_server,
                ts,
                frame,
                "userdata",
                None,
                "other",
                fields,
                status=malformed(error or str(exc)),
            )
        group = fields["function_group"]
        sub = fields["subfunction"]
        utype = fields["type"]
        request = utype == 0x4
        kind = "request" if request else "response" if utype == 0x8 else "unsolicited"
        payload = data[4:]
        # The server of the flow is the PLC, whatever the userdata type says.
        identity: dict[str, Any] = {} if to_server else dict(_PLC_IDENTITY)
        # Fragments of one answer share a data unit reference; join them.
        key = (group, sub, fields.get("data_unit_reference"), to_server)
        more = fields.get("last_data_unit") == 1 and fields.get("data_unit_reference")
        held = self.fragments.get(key)
        if more:
            if held is None:
                if len(self.fragments) >= 16:
                    self.fragments.clear()
                held = self.fragments[key] = []
            if sum(map(len, held)) + len(payload) <= MAX_FRAGMENT_BYTES:
                held.append(payload)
            fields["fragment"] = True
        else:
            if held is not None:
                held.append(payload)
                payload = b"".join(self.fragments.pop(key))
                fields["reassembled_fragments"] = len(held)
            if not error:
                found, more_findings = decode_userdata_payload(fields, payload, request)
                if not to_server:
                    identity.update(found)
                findings.extend(more_findings)
        if to_server and self.client_role:
            identity["role"] = self.client_role
        service = userdata_service(group, sub)
        action = _USERDATA_ACTIONS.get((group, sub)) or _USERDATA_GROUP_ACTIONS.get(
            group, "other"
        )
        status = STATUS_OK
        if error:
            status = malformed(error)
        elif fields.get("userdata_error_code"):
            code = fields["userdata_error_code"]
            status = Status("exception", code, f"error_0x{code:04x}")
        return self._message(
            to_server,
            ts,
            frame,
            service,
            group << 8 | sub,
            action,
            fields,
            identity,
            status,
            (),
            kind,
            findings,
        )

    def _message(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        service: str,
        code: int | None,
        action: str,
        fields: dict[str, Any],
        identity: dict[str, Any] | None = None,
        status: Status = STATUS_OK,
        targets: tuple = (),
        kind: str | None = None,
        findings: list[Finding] | None = None,
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
                targets,
                fields,
                identity or {},
                status,
                tuple(findings or ()),
            ),
        )
