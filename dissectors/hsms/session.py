"""The HSMS plugin: probing, framing, SECS-II decoding, request/reply pairing, Messages.

Strategy
--------
Each direction of a flow has its own :class:`~otdpi.framing.Framer`, cut at
the HSMS length field, so several messages in a segment and a message split
over many segments come out the same way. A message's header is read with one
``struct`` call and its text by :mod:`dissectors.hsms.items`. Either side may
send primary messages (the equipment sends alarms and event reports), so the
kind of a message comes from its function (odd: primary, even: reply) and its
SType, not from the direction. Primaries with the W-bit and control requests
are remembered by (direction, system bytes) until the other side answers; one
still unanswered when the flow ends is reported as a ``reply_timeout`` finding.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from dissectors.hsms.catalogue import (
    EVENT_MESSAGES,
    STREAM_NAMES,
    action,
    function_name,
)
from dissectors.hsms.definitions import (
    HEADER_SIZE,
    LENGTH_SIZE,
    MAX_LENGTH,
    DeselectStatus,
    FormatCode,
    RejectReason,
    SelectStatus,
    SType,
)
from dissectors.hsms.items import ItemError, decode_text, to_sml
from otdpi.dissector import Dissector, FlowContext
from otdpi.errors import MalformedError, TruncatedError
from otdpi.framing import Framer, Skipped, end_reports, gap_report
from otdpi.message import (
    STATUS_OK,
    Endpoint,
    Finding,
    Message,
    Status,
    Target,
    malformed,
)

PROTOCOL = "hsms"
UNIT_HEADER = LENGTH_SIZE + HEADER_SIZE  # 14 bytes before the message text
MAX_UNIT = LENGTH_SIZE + MAX_LENGTH
_HEADER = struct.Struct(">IHBBBBI")

_VALID_STYPES = frozenset(int(s) for s in SType)
_CONTROL_NAMES = {int(s): s.name.lower() for s in SType if s != SType.DATA_MESSAGE}
_CONTROL_REQUESTS = frozenset(
    {SType.SELECT_REQ, SType.DESELECT_REQ, SType.LINKTEST_REQ}
)
_CONTROL_REPLY_TO = {
    SType.SELECT_RSP: SType.SELECT_REQ,
    SType.DESELECT_RSP: SType.DESELECT_REQ,
    SType.LINKTEST_RSP: SType.LINKTEST_REQ,
}
# The E5 format codes (the top 6 bits of an item's format byte), for the
# probe's and the framer's look at a message's first item.
_FORMAT_CODES = frozenset(int(code) for code in FormatCode)

# E30 T3, the reply timeout most equipment uses: a reply later than this is
# reported, since the sender will have given up on it.
REPLY_TIMEOUT = 45.0


# --- Probing and framing -------------------------------------------------------


def measure_message(buf: bytes, pos: int) -> int:
    """The framer's test: the size of the HSMS message starting at ``pos``, 0 or -1.

    A position starts a message when its length is 10 to 16 MiB, its PType is
    SECS-II (0), its SType is defined, a control message is exactly 10 bytes
    and a data message's text starts with a known item format byte; see
    :mod:`otdpi.framing` for what 0 and -1 mean.
    """
    available = len(buf) - pos
    if available >= 15 or (
        available >= 14
        and buf[pos + 3] == 10
        and not buf[pos + 2]
        and not buf[pos + 1]
        and not buf[pos]
    ):
        length = buf[pos] << 24 | buf[pos + 1] << 16 | buf[pos + 2] << 8 | buf[pos + 3]
        if length < HEADER_SIZE or length > MAX_LENGTH or buf[pos + 8]:
            return -1
        s_type = buf[pos + 9]
        if s_type:
            if length != HEADER_SIZE or s_type not in _VALID_STYPES:
                return -1
        elif length > HEADER_SIZE:
            format_byte = buf[pos + 14]
            if not format_byte & 3 or format_byte >> 2 not in _FORMAT_CODES:
                return -1
        return length + LENGTH_SIZE
    # Too short to be sure; rule out what the bytes present already contradict.
    if available >= 1 and buf[pos]:
        return -1
    if available >= 4:
        length = int.from_bytes(buf[pos : pos + 4], "big")
        if length < HEADER_SIZE:
            return -1
        if available >= 9 and buf[pos + 8]:
            return -1
        if available >= 10 and buf[pos + 9]:
            if length != HEADER_SIZE or buf[pos + 9] not in _VALID_STYPES:
                return -1
    return 0


def _plausible_control(buf: bytes, pos: int) -> bool:
    """Header bytes 2 and 3 of a control message hold what E37 allows."""
    s_type = buf[pos + 9]
    byte_2 = buf[pos + 6]
    byte_3 = buf[pos + 7]
    if s_type == SType.REJECT_REQ:
        return byte_3 in (1, 2, 3, 4)
    if byte_2:
        return False
    if s_type == SType.SELECT_RSP:
        return byte_3 <= 3
    if s_type == SType.DESELECT_RSP:
        return byte_3 <= 2
    return byte_3 == 0


def looks_like_hsms(data: bytes) -> bool:
    """Whether the first bytes a side sent are HSMS messages (the probe).

    Each message present must pass :func:`measure_message`, a control message
    must carry the status bytes E37 allows, a data message must name a stream
    other than 0 and carry the W-bit only on a primary (odd function), and a
    message present whole must hold exactly one well-formed SECS-II item (or
    none). A first message cut short must show at least its first item's
    header: an array must fill the declared text exactly, a list must have
    room for its items and start with a known format byte. Up to 8 messages are
    checked. This turns away TLS, TPKT (S7, MMS), DNP3, HTTP and Modbus/TCP,
    whose first four bytes are not a big-endian length of 10 to 16 MiB, or
    whose following bytes break the header rules.
    """
    size = len(data)
    if size < UNIT_HEADER:
        return False
    pos = 0
    for index in range(8):
        unit = measure_message(data, pos)
        # Limitation: a peer that writes a first data message's header and its
        # text in separate segments shows the probe 14 bytes that cannot be
        # told from other protocols, so the flow stays unknown (control
        # messages, which open every HSMS session, are not affected). Probing
        # again once more bytes arrive, which the engine does not do, would
        # lift it.
        if unit < 0 or (unit == 0 and index == 0):
            return False
        if unit == 0:
            return True
        if data[pos + 9]:
            if not _plausible_control(data, pos):
                return False
        else:
            stream_byte = data[pos + 6]
            stream = stream_byte & 0x7F
            if not stream or (stream_byte & 0x80 and not data[pos + 7] & 1):
                return False
        end = pos + unit
        if end > size:
            return index > 0 or _plausible_partial_text(data, pos + UNIT_HEADER, end)
        if unit > UNIT_HEADER:
            try:
                decode_text(data[pos + UNIT_HEADER : end])
            except ItemError:
                return False
        pos = end
        if pos == size:
            return True
    return True


def _plausible_partial_text(data: bytes, start: int, end: int) -> bool:
    # The text is one item, so a top item that is not a list must fill the
    # declared text exactly; a list must have room for its items, and its
    # first item (if present) must start with a known format byte.
    if len(data) <= start:
        return False
    length_bytes = data[start] & 3
    header_end = start + 1 + length_bytes
    if len(data) < header_end:
        return False
    length = int.from_bytes(data[start + 1 : header_end], "big")
    if data[start] >> 2:
        return header_end + length == end
    if not length or length * 2 > end - header_end:
        return False
    if len(data) > header_end:
        first = data[header_end]
        return bool(first & 3) and first >> 2 in _FORMAT_CODES
    return True


def sender_is_client(data: bytes) -> bool | None:
    """The side that sends Select.req is the one that opened the connection."""
    if len(data) < UNIT_HEADER or measure_message(data, 0) <= 0:
        return None
    if data[9] == SType.SELECT_REQ:
        return True
    if data[9] == SType.SELECT_RSP:
        return False
    return None


# --- What a message's item says ------------------------------------------------


def _scalar(item: dict[str, Any] | None) -> Any:
    """An item as one plain value: text, a number, a byte, or a list."""
    if item is None:
        return None
    kind = item["type"]
    value = item["value"]
    if kind in ("A", "J"):
        return value
    if kind == "L":
        return [_scalar(child) for child in value]
    if kind == "B":
        return int(value, 16) if len(value) == 2 else value
    if kind == "C2":
        return item.get("text", value)
    return value[0] if len(value) == 1 else value


def _children(item: dict[str, Any] | None) -> list[dict[str, Any]]:
    if item is None or item["type"] != "L":
        raise TypeError("a list item was expected")
    return item["value"]


def _model_revision(item: dict[str, Any] | None) -> dict[str, Any]:
    """MDLN and SOFTREV from ``L[MDLN, SOFTREV]`` (an empty list from a host)."""
    children = _children(item)
    if not children:
        return {}
    mdln, softrev = children
    return {"mdln": _scalar(mdln), "softrev": _scalar(softrev)}


def _ids(item: dict[str, Any] | None) -> list[Any]:
    return [_scalar(child) for child in _children(item)]


def _s1f14(item):
    commack, names = _children(item)
    return {"commack": _scalar(commack), **_model_revision(names)}


def _s2f15(item):
    return {
        "ecs": [
            {"ecid": _scalar(ecid), "ecv": _scalar(ecv)}
            for ecid, ecv in (_children(pair) for pair in _children(item))
        ]
    }


def _parameters(item) -> list[dict[str, Any]]:
    return [
        {"cpname": _scalar(name), "cpval": _scalar(value)}
        for name, value in (_children(pair) for pair in _children(item))
    ]


def _s2f41(item):
    rcmd, parameters = _children(item)
    return {"rcmd": _scalar(rcmd), "parameters": _parameters(parameters)}


def _s2f49(item):
    dataid, objspec, rcmd, parameters = _children(item)
    return {
        "dataid": _scalar(dataid),
        "objspec": _scalar(objspec),
        "rcmd": _scalar(rcmd),
        "parameters": _parameters(parameters),
    }


def _s2f42(item):
    hcack, parameters = _children(item)
    return {"hcack": _scalar(hcack)}


def _s5f1(item):
    alcd, alid, altx = _children(item)
    code = _scalar(alcd)
    fields = {"alcd": code, "alid": _scalar(alid), "altx": _scalar(altx)}
    if isinstance(code, int):
        # Bit 8 says set or cleared; bits 1 to 7 the alarm category.
        fields["alarm_set"] = bool(code & 0x80)
        fields["alarm_category"] = code & 0x7F
    return fields


def _s5f3(item):
    aled, alid = _children(item)
    return {"aled": _scalar(aled), "alid": _scalar(alid)}


def _s6f11(item):
    dataid, ceid, reports = _children(item)
    return {
        "dataid": _scalar(dataid),
        "ceid": _scalar(ceid),
        "reports": [
            {"rptid": _scalar(rptid), "values": _scalar(values)}
            for rptid, values in (_children(report) for report in _children(reports))
        ],
    }


def _program(item):
    ppid, body = _children(item)
    value = body["value"]
    size = len(value) // 2 if body["type"] == "B" else len(value)
    return {"ppid": _scalar(ppid), "ppbody_size": size}


def _s9(item):
    # Every S9 error but F13 carries MHEAD, the 10-byte header of the message
    # that caused it.
    fields: dict[str, Any] = {}
    if item is not None and item["type"] == "B" and len(item["value"]) == 20:
        head = bytes.fromhex(item["value"])
        fields["mhead"] = {
            "session_id": head[0] << 8 | head[1],
            "w_bit": bool(head[2] & 0x80),
            "stream": head[2] & 0x7F,
            "function": head[3],
            "system_bytes": int.from_bytes(head[6:10], "big"),
        }
    return fields


def _terminal(item):
    tid, text = _children(item)
    return {"tid": _scalar(tid), "text": _scalar(text)}


def _ack(name: str):
    def extract(item):
        return {name: _scalar(item)}

    return extract


_EXTRACTORS = {
    (1, 2): _model_revision,
    (1, 3): lambda item: {"svids": _ids(item)},
    (1, 11): lambda item: {"svids": _ids(item)},
    (1, 13): _model_revision,
    (1, 14): _s1f14,
    (2, 13): lambda item: {"ecids": _ids(item)},
    (2, 15): _s2f15,
    (2, 16): _ack("eac"),
    (2, 41): _s2f41,
    (2, 42): _s2f42,
    (2, 49): _s2f49,
    (2, 50): _s2f42,
    (5, 1): _s5f1,
    (5, 2): _ack("ackc5"),
    (5, 3): _s5f3,
    (5, 4): _ack("ackc5"),
    (6, 11): _s6f11,
    (6, 12): _ack("ackc6"),
    (7, 3): _program,
    (7, 4): _ack("ackc7"),
    (7, 5): lambda item: {"ppid": _scalar(item)},
    (7, 6): _program,
    (7, 17): lambda item: {"ppids": _ids(item)},
    (7, 18): _ack("ackc7"),
    (7, 20): lambda item: {"ppids": _ids(item)},
    (10, 3): _terminal,
    (10, 4): _ack("ackc10"),
    **{(9, f): _s9 for f in (1, 3, 5, 7, 9, 11)},
}

# Acknowledge codes that say the request was refused, and their meaning
# (E5 data item dictionary). Codes not listed are refusals without a name.
_HCACK = {
    1: "invalid command", 2: "cannot perform now", 3: "at least one parameter invalid",
    5: "rejected, already in desired condition", 6: "no such object exists",
}  # fmt: skip
_REFUSALS = {
    "commack": ({0}, {1: "denied, try again"}),
    "eac": ({0}, {1: "denied, at least one constant does not exist",
                  2: "denied, busy", 3: "denied, at least one constant out of range"}),
    "hcack": ({0, 4}, _HCACK),
    "ackc5": ({0}, {}),
    "ackc6": ({0}, {}),
    "ackc7": ({0}, {1: "permission not granted", 2: "length error",
                    3: "matrix overflow", 4: "ppid not found", 5: "mode unsupported",
                    6: "performed later"}),
    "ackc10": ({0}, {1: "message will not be displayed", 2: "terminal not available"}),
}  # fmt: skip

# Replies whose item carries one of those codes.
_ACKNOWLEDGES = frozenset(
    {(1, 14), (2, 16), (2, 42), (2, 50), (5, 2), (5, 4), (6, 12), (7, 4), (7, 18),
     (10, 4)}
)  # fmt: skip

_TARGET_SPACES = {
    (1, 3): ("svids", "status_variables"),
    (1, 11): ("svids", "status_variables"),
    (2, 13): ("ecids", "equipment_constants"),
}


def _targets(stream: int, function: int, fields: dict[str, Any]) -> tuple[Target, ...]:
    """Addressed objects with integer ids: variables, constants, alarms, events."""
    found: list[Any] = []
    space = _TARGET_SPACES.get((stream, function))
    if space is not None:
        found = [(space[1], i) for i in fields.get(space[0], ())]
    elif (stream, function) == (2, 15):
        found = [("equipment_constants", ec["ecid"]) for ec in fields.get("ecs", ())]
    elif (stream, function) in ((5, 1), (5, 3)):
        found = [("alarms", fields.get("alid"))]
    elif (stream, function) == (6, 11):
        found = [("collection_events", fields.get("ceid"))]
    return tuple(
        Target(space, ident, 1)
        for space, ident in found
        if isinstance(ident, int) and not isinstance(ident, bool)
    )


def _identity(stream: int, function: int, fields: dict[str, Any], session_id: int):
    """Who the sender is, from MDLN and SOFTREV or a host's empty answer."""
    if (stream, function) not in ((1, 2), (1, 13), (1, 14)):
        return {}
    if "mdln" in fields:
        return {
            "role": "equipment",
            "model": fields["mdln"],
            "software_revision": fields["softrev"],
            "hsms_address": session_id,
        }
    return {"role": "host"}


# --- The plugin --------------------------------------------------------------------


class HsmsDissector(Dissector):
    """HSMS (SEMI E37) with SECS-II message text (SEMI E5), one instance per flow.

    Attributes
    ----------
    max_pending
        how many unanswered requests a flow remembers; beyond it the oldest is
        reported as unanswered and forgotten, so memory stays bounded.
    """

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    # Fab tools listen on whatever port the host is configured with (5000,
    # 6000, 5555...), so no port is a hint: the probe alone decides.
    default_ports: ClassVar[tuple[int, ...]] = ()
    probe_min_bytes: ClassVar[int] = UNIT_HEADER
    state: ClassVar[str] = (
        "a framer per direction and unanswered requests by (direction, system bytes)"
    )
    max_pending: ClassVar[int] = 4096

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._framers = {
            True: Framer(measure_message, MAX_UNIT),
            False: Framer(measure_message, MAX_UNIT),
        }
        self._pending: dict[tuple[bool, int], tuple[Any, ...]] = {}
        self._flow_id = flow.flow_id

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Whether ``data`` starts with HSMS messages; see :func:`looks_like_hsms`."""
        return looks_like_hsms(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """Select.req comes from the connecting side; see :func:`sender_is_client`."""
        return sender_is_client(data)

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        """Frame and decode the next bytes of one direction."""
        framer = self._framers[to_server]
        if (
            not framer.pending
            and len(data) >= UNIT_HEADER
            and (int.from_bytes(data[:4], "big") + LENGTH_SIZE == len(data))
            and measure_message(data, 0) == len(data)
        ):
            return self._decode(data, to_server, ts, frame)
        out: list[Message] = []
        for unit in framer.feed(data):
            if unit.__class__ is Skipped:
                out.append(self._skipped(unit, to_server, ts, frame))
            else:
                out.extend(self._decode(unit, to_server, ts, frame))
        return out

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Drop the partial message of a direction that lost bytes; report it."""
        report = gap_report(self._framers[to_server], "message")
        if report is None:
            return []
        dropped, reason = report
        return [
            self._unframed(to_server, ts, frame, {"dropped_bytes": dropped}, reason)
        ]

    def close(self, ts: float, frame: int) -> list[Message]:
        """Report unfinished messages and requests that were never answered."""
        # Limitation: a W-bit request left unanswered is reported when its flow
        # ends (FIN, RST, idle expiry or the end of the capture), not T3
        # seconds after it, because feed() is only called when bytes arrive.
        # A clock tick from the engine to each dissector would lift it.
        out = [
            self._unframed(to_server, ts, frame, {"buffered_bytes": left}, reason)
            for to_server, left, reason in end_reports(self._framers, "message")
        ]
        for key, entry in self._pending.items():
            if entry[5]:  # the W-bit: a reply was asked for
                out.append(self._unanswered(key, entry, ts, frame))
        self._pending.clear()
        return out

    # -- one framed message -----------------------------------------------------

    def _decode(
        self, unit: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        try:
            length, session_id, byte_2, byte_3, p_type, s_type, system = (
                _HEADER.unpack_from(unit, 0)
            )
            if s_type:
                return self._control(
                    length, session_id, byte_2, byte_3, p_type, s_type, system,
                    to_server, ts, frame,
                )  # fmt: skip
            return self._data(
                unit, length, session_id, byte_2, byte_3, system, to_server, ts, frame
            )
        except Exception as exc:  # noqa: BLE001
            # A safety net for our own bugs: one bad message must not end the
            # capture. Tests assert this finding never appears.
            return [
                self._unframed(
                    to_server, ts, frame, {"data": bytes(unit[:64]).hex()},
                    f"internal dissector error: {type(exc).__name__}: {exc}",
                    (Finding("dissector_error", repr(exc)),),
                )
            ]  # fmt: skip

    def _data(
        self, unit: bytes, length: int, session_id: int, byte_2: int,
        function: int, system: int, to_server: bool, ts: float, frame: int,
    ) -> list[Message]:  # fmt: skip
        stream = byte_2 & 0x7F
        w_bit = byte_2 > 0x7F
        fields: dict[str, Any] = {
            "length": length,
            "session_id": session_id,
            "w_bit": w_bit,
            "stream": stream,
            "function": function,
            "p_type": 0,
            "s_type": 0,
            "system_bytes": system,
            "name": function_name(stream, function),
        }
        stream_name = STREAM_NAMES.get(stream)
        if stream_name is not None:
            fields["stream_name"] = stream_name
        service = f"S{stream}F{function}"
        code = stream << 8 | function
        act = action(stream, function)
        findings: tuple[Finding, ...] = ()
        src, dst = self.endpoints(to_server)
        if function & 1:
            kind = (
                "event"
                if stream == 9 or (stream, function) in EVENT_MESSAGES
                else "request"
            )
        else:
            kind = "response"

        try:
            item = decode_text(unit[UNIT_HEADER:])
        except ItemError as exc:
            fields["text_size"] = len(unit) - UNIT_HEADER
            return [Message(
                ts, frame, self._flow_id, src, dst, PROTOCOL, kind, service, code,
                act, (), fields, {}, malformed(f"SECS-II: {exc}"), findings,
            )]  # fmt: skip
        fields["item"] = item
        fields["sml"] = _sml(service, w_bit, item)

        # Request/reply pairing by system bytes. Primaries without the W-bit
        # are remembered too, since peers such as secsgem answer some of them
        # (S5F3, S10F3) anyway; only W-bit ones count as unanswered at the end.
        if function & 1:
            findings += self._remember(
                (to_server, system), (stream, function, frame, ts, 0, w_bit)
            )
        elif not function & 1:
            findings += self._pair(to_server, system, stream, function, fields, ts)

        status = STATUS_OK
        identity: dict[str, Any] = {}
        extract = _EXTRACTORS.get((stream, function))
        if extract is not None:
            try:
                fields.update(extract(item))
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                findings += (
                    Finding(
                        "unexpected_item_structure",
                        f"{service} does not have the item structure E5 gives it",
                    ),
                )
            else:
                if (stream, function) in _ACKNOWLEDGES:
                    status = _refusal(fields)
                identity = _identity(stream, function, fields, session_id)
        if stream == 9 and function & 1:
            findings += (Finding("secs_error", f"{service}: {fields['name']}"),)
        if w_bit and not function & 1:
            findings += (
                Finding("w_bit_on_reply", f"{service} is a reply but asks for one"),
            )
        targets = _targets(stream, function, fields)
        return [Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, kind, service, code, act,
            targets, fields, identity, status, findings,
        )]  # fmt: skip

    def _control(
        self, length: int, session_id: int, byte_2: int, byte_3: int, p_type: int,
        s_type: int, system: int, to_server: bool, ts: float, frame: int,
    ) -> list[Message]:  # fmt: skip
        name = _CONTROL_NAMES.get(s_type, f"stype_{s_type}")
        fields: dict[str, Any] = {
            "length": length,
            "session_id": session_id,
            "header_byte_2": byte_2,
            "header_byte_3": byte_3,
            "p_type": p_type,
            "s_type": s_type,
            "system_bytes": system,
            "name": name.replace("_", "."),
        }
        src, dst = self.endpoints(to_server)
        status = STATUS_OK
        findings: tuple[Finding, ...] = ()
        identity: dict[str, Any] = {}
        kind = "request"
        if s_type in _CONTROL_REQUESTS:
            findings += self._remember(
                (to_server, system), (0, 0, frame, ts, s_type, True)
            )
            if s_type == SType.SELECT_REQ and to_server:
                # The side that opens the TCP connection and selects is the
                # active entity, in GEM practice the host.
                identity = {"role": "host"}
        elif s_type in _CONTROL_REPLY_TO:
            kind = "response"
            findings += self._pair(to_server, system, 0, 0, fields, ts, s_type)
            if s_type == SType.SELECT_RSP:
                status = _status(SelectStatus, "select_status", byte_3, fields)
            elif s_type == SType.DESELECT_RSP:
                status = _status(DeselectStatus, "deselect_status", byte_3, fields)
        elif s_type == SType.REJECT_REQ:
            kind = "response"
            fields["rejected_type"] = byte_2
            status = _status(RejectReason, "reason", byte_3, fields, every_code=True)
            rejected = self._pending.pop((not to_server, system), None)
            if rejected is not None:
                fields["response_to_frame"] = rejected[2]
        return [Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, kind, name, s_type, "session",
            (), fields, identity, status, findings,
        )]  # fmt: skip

    # -- pairing ----------------------------------------------------------------

    def _remember(self, key: tuple[bool, int], entry: tuple) -> tuple[Finding, ...]:
        pending = self._pending
        findings: tuple[Finding, ...] = ()
        if key in pending:
            findings = (
                Finding(
                    "system_bytes_reused",
                    f"system bytes {key[1]:#010x} reused while frame "
                    f"{pending[key][2]} is still unanswered",
                ),
            )
        elif len(pending) >= self.max_pending:
            # Limitation: the oldest unanswered request is forgotten without a
            # reply_timeout message of its own; when it asked for a reply, this
            # message carries a finding instead. A reply it gets later shows as
            # unmatched. A larger max_pending lifts it, at a memory cost.
            oldest = next(iter(pending))
            if pending.pop(oldest)[5]:
                findings = (
                    Finding(
                        "pending_requests_evicted",
                        f"over {self.max_pending} requests unanswered; the oldest "
                        "is no longer followed",
                    ),
                )
        pending[key] = entry
        return findings

    def _pair(
        self, to_server: bool, system: int, stream: int, function: int,
        fields: dict[str, Any], ts: float, s_type: int = 0,
    ) -> tuple[Finding, ...]:  # fmt: skip
        request = self._pending.pop((not to_server, system), None)
        if request is None:
            fields["matched"] = False
            return ()
        r_stream, r_function, r_frame, r_ts, r_stype, _ = request
        findings: tuple[Finding, ...] = ()
        if s_type:
            ok = _CONTROL_REPLY_TO.get(SType(s_type)) == r_stype
        else:
            ok = r_stype == 0 and (
                function == 0 or (stream == r_stream and function == r_function + 1)
            )
        if not ok:
            fields["matched"] = False
            return (
                Finding(
                    "reply_mismatch",
                    f"reply carries the system bytes of frame {r_frame}'s request, "
                    "which it does not answer",
                ),
            )
        fields["matched"] = True
        fields["response_to_frame"] = r_frame
        elapsed = round(ts - r_ts, 9)
        fields["response_time"] = elapsed
        if elapsed > REPLY_TIMEOUT:
            findings += (
                Finding(
                    "late_reply",
                    f"reply {elapsed:.1f} s after its request (T3 is usually "
                    f"{REPLY_TIMEOUT:.0f} s)",
                ),
            )
        return findings

    def _unanswered(self, key, entry, ts: float, frame: int) -> Message:
        to_server, system = key
        stream, function, r_frame, r_ts, s_type, _ = entry
        if s_type:
            service = _CONTROL_NAMES[s_type]
            what = service.replace("_", ".")
        else:
            service = f"S{stream}F{function}"
            what = f"{service} W"
        fields = {
            "system_bytes": system,
            "request_frame": r_frame,
            "waited": round(ts - r_ts, 9),
        }
        if not s_type:
            fields["stream"] = stream
            fields["function"] = function
        src, dst = self.endpoints(to_server)
        finding = Finding(
            "reply_timeout",
            f"{what} of frame {r_frame} was never answered before the flow ended",
        )
        return Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, "event", service,
            stream << 8 | function if not s_type else s_type, "other", (), fields,
            {}, STATUS_OK, (finding,),
        )  # fmt: skip

    # -- bytes that are not a whole message -------------------------------------

    def _skipped(
        self, skipped: Skipped, to_server: bool, ts: float, frame: int
    ) -> Message:
        reason = (
            f"skipped {skipped.size} bytes that start no HSMS header (length 10 to "
            f"{MAX_LENGTH}, PType 0, a defined SType, a known item format)"
        )
        return self._unframed(
            to_server, ts, frame, {"skipped_bytes": skipped.size}, reason
        )

    def _unframed(
        self, to_server: bool, ts: float, frame: int, fields: dict[str, Any],
        reason: str, findings: tuple[Finding, ...] = (),
    ) -> Message:  # fmt: skip
        src, dst = self.endpoints(to_server)
        return Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, "event", "unknown", None,
            "other", (), fields, {}, malformed(reason), findings,
        )  # fmt: skip


def _sml(service: str, w_bit: bool, item: dict[str, Any] | None) -> str:
    head = f"{service} W" if w_bit else service
    body = to_sml(item, 1)
    return f"{head}\n{body}\n." if body else f"{head}\n."


def _status(enum_type, field: str, code: int, fields: dict[str, Any], every_code=False):
    try:
        name = enum_type(code).name.lower()
    except ValueError:
        name = f"unknown_{code}"
    fields[field] = name
    if code or every_code:
        return Status("exception", code, name)
    return STATUS_OK


def _refusal(fields: dict[str, Any]) -> Status:
    for name, (accepted, names) in _REFUSALS.items():
        code = fields.get(name)
        if code is not None and isinstance(code, int) and code not in accepted:
            return Status("exception", code, names.get(code, f"{name} {code}"))
    return STATUS_OK


_NOWHERE = Endpoint("0.0.0.0")
_LONE_FLOW = FlowContext(0, _NOWHERE, _NOWHERE, "tcp")


def dissect_message(
    unit: bytes, to_server: bool = True, ts: float = 0.0, frame: int = 0
) -> Message:
    """Decode one whole HSMS message (length field included) without a flow.

    Raises
    ------
    TruncatedError
        ``unit`` ends before the length its header declares.
    MalformedError
        ``unit`` does not start with an HSMS header, or has bytes after it.
    """
    unit = bytes(unit)
    size = measure_message(unit, 0)
    if size == 0 or size > len(unit):
        wanted = f"{size} bytes" if size > 0 else f"at least {UNIT_HEADER} bytes"
        raise TruncatedError(f"hsms: message needs {wanted}, got {len(unit)}")
    if size < 0:
        raise MalformedError(f"hsms: no HSMS header at offset 0: {unit[:15].hex()}")
    if size < len(unit):
        raise MalformedError(f"hsms: {len(unit) - size} bytes follow the message")
    return HsmsDissector(_LONE_FLOW).feed(unit, to_server, ts, frame)[0]
