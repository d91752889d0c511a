"""The DNP3 plugin: probing, link framing, transport reassembly, Messages, identity.

Strategy
--------
Each direction has a :class:`~otdpi.framing.Framer` that cuts the bytes at
link frames, accepting a position only where 0x05 0x64 and a right header
CRC stand, so several frames in one segment, a frame split over segments and
junk all come out alike; a frame whose header CRC is wrong is passed over as
junk up to the next good header, a frame with a wrong data-block CRC is one
``malformed`` message. User-data frames go to the transport reassembler,
keyed by (DIR bit, source, destination) so that several masters, and the
two directions, never mix; each finished application fragment is one
Message, reported with the frame that finished it. Link-only frames (reset,
link status, ACK...) are Messages of their own.

Requests are remembered by (master, outstation, application sequence) so
that a response takes its request's action (a response to a read is a
read). The sender's role (master or outstation, from the DIR bit) and its
link address are claimed once per address and direction per flow, and group
0 device attributes in responses become identity claims.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from dissectors.dnp3.application import (
    RESPONSE_FUNCTIONS,
    FunctionCode,
    decode_fragment,
    service_name,
)
from dissectors.dnp3.link import (
    DIR,
    FCB,
    FCV,
    FUNCTION_MASK,
    HEADER_SIZE,
    MAX_FRAME,
    PRM,
    crc_dnp,
    frame_size,
    link_function_name,
    measure_frame,
    user_data,
)
from dissectors.dnp3.objects import DEVICE_ATTRIBUTES_GROUP, FILE_CONTROL_GROUP
from dissectors.dnp3.transport import Reassembler
from otdpi.dissector import Dissector, FlowContext
from otdpi.framing import Framer, Skipped, end_reports, gap_report
from otdpi.message import STATUS_OK, Finding, Message, Target, malformed

PROTOCOL = "dnp3"
DEFAULT_PORT = 20000

_new = tuple.__new__  # see dissectors.modbus.session: skips NamedTuple.__new__

_F = FunctionCode
# Plain ints for the hot path: comparing with an IntEnum member costs an
# attribute look-up through the enum class on every fragment.
_CONFIRM = int(_F.CONFIRM)
_RESPONSE = int(_F.RESPONSE)
_UNSOLICITED = int(_F.UNSOLICITED_RESPONSE)
_AUTHENTICATE_RESP = int(_F.AUTHENTICATE_RESP)

# --- actions -----------------------------------------------------------------

_REQUEST_ACTIONS: dict[int, str] = {
    _F.CONFIRM: "session",
    _F.READ: "read",
    _F.WRITE: "write",
    **dict.fromkeys(range(3, 19), "control"),  # select/operate, freezes, restarts
    _F.SAVE_CONFIG: "program",
    _F.ENABLE_UNSOLICITED: "session",
    _F.DISABLE_UNSOLICITED: "session",
    _F.ASSIGN_CLASS: "write",
    _F.DELAY_MEASURE: "session",
    _F.RECORD_CURRENT_TIME: "session",
    _F.OPEN_FILE: "program",
    _F.CLOSE_FILE: "program",
    _F.DELETE_FILE: "program",
    _F.GET_FILE_INFO: "read",
    _F.AUTHENTICATE_FILE: "session",
    _F.ABORT_FILE: "program",
    _F.ACTIVATE_CONFIG: "program",
    _F.AUTHENTICATE_REQ: "session",
    _F.AUTH_REQ_NO_ACK: "session",
    _F.AUTHENTICATE_RESP: "session",
}

_PLAIN_REQUEST_ACTIONS = [_REQUEST_ACTIONS.get(code, "other") for code in range(256)]

_LINK_ACTIONS = {
    # (PRM, function): action
    (True, 0): "session",  # reset link states
    (True, 1): "session",
    (True, 2): "diagnose",  # test link states
    (True, 9): "diagnose",  # request link status
    (False, 0): "session",  # ACK
    (False, 1): "session",  # NACK
    (False, 11): "diagnose",  # link status
}

# File command operational modes (group 70 variation 3).
_FILE_MODE_READ = 1

# Group 0 device attributes that name the device, as inventory attributes.
DEVICE_ATTRIBUTE_IDENTITY = {
    242: "firmware",  # device manufacturer's software version
    243: "hardware_version",
    245: "location",  # user-assigned location name
    246: "user_assigned_id",
    247: "name",  # user-assigned device name
    248: "serial",
    250: "model",  # device manufacturer's product name and model
    252: "vendor",  # device manufacturer's name
}

# Transport events that lose octets, as the reasons of their malformed messages.
_DROPPED = {
    "out_of_sequence": "transport segment out of sequence: dropped the {} octets "
                       "of the unfinished fragment",
    "no_first": "transport segment without FIR and no fragment under way: "
                "dropped its {} octets",
    "too_large": "fragment over 64 KiB: dropped its {} octets",
}

MAX_PENDING_REQUESTS = 1024
MAX_CLAIMED_ADDRESSES = 256


def looks_like_dnp3(data: bytes) -> bool:
    """Whether ``data`` starts with a DNP3 link header: 0x05 0x64 and a right CRC."""
    return (
        len(data) >= HEADER_SIZE
        and data[0] == 0x05
        and data[1] == 0x64
        and data[2] >= 5
        and crc_dnp(data[:8]) == (data[8] | data[9] << 8)
    )


def _request_action(code: int, objects: list[dict[str, Any]]) -> str:
    action = _PLAIN_REQUEST_ACTIONS[code]
    if code == 2 and any(o["group"] == FILE_CONTROL_GROUP for o in objects):
        return "program"  # a write of file objects: a file put on the device
    if code == 25:  # open file
        for obj in objects:
            for point in obj.get("points", ()):
                if point.get("operational_mode") == _FILE_MODE_READ:
                    return "read"
    return action


_SPACES: dict[tuple[int, int], str] = {}  # at most 65536 names, made once


def _targets(objects: list[dict[str, Any]]) -> tuple[Target, ...]:
    """One (g<group>v<variation>, first index, count) per object header.

    "All objects" (range code 6) is start 0, count 0; headers with index
    prefixes give their first index and the number of objects.
    """
    out = []
    for obj in objects:
        key = (obj["group"], obj["variation"])
        space = _SPACES.get(key)
        if space is None:
            space = _SPACES[key] = f"g{key[0]}v{key[1]}"
        if "start" in obj:
            count = obj["stop"] - obj["start"] + 1
            out.append(_new(Target, (space, obj["start"], count)))
        elif "count" in obj:
            points = obj.get("points")
            first = points[0].get("index", 0) if points else 0
            out.append(_new(Target, (space, first, obj["count"])))
        else:
            out.append(_new(Target, (space, 0, 0)))
    return tuple(out)


# Device kinds a device's own name or model can state (as a whole word).
_ROLE_WORDS = re.compile(r"\b(RTU|IED)\b", re.IGNORECASE)


def role_from_attributes(attributes: dict[str, Any]) -> str | None:
    """``RTU`` or ``IED`` when the device's model or name says so, else None."""
    for name in ("model", "name", "user_assigned_id"):
        value = attributes.get(name)
        if isinstance(value, str):
            found = _ROLE_WORDS.search(value)
            if found:
                return found.group(1).upper()
    return None


def _device_identity(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for obj in objects:
        if obj["group"] != DEVICE_ATTRIBUTES_GROUP:
            continue
        name = DEVICE_ATTRIBUTE_IDENTITY.get(obj["variation"])
        if name is None:
            continue
        for point in obj.get("points", ()):
            value = point.get("value")
            if isinstance(value, str):
                value = value.strip(" \t\r\n\x00")
            if value not in (None, ""):
                found[name] = value
    return found


class Dnp3Dissector(Dissector):
    """DNP3 (IEEE 1815) over TCP or UDP, one instance per flow."""

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("tcp", "udp")
    default_ports: ClassVar[tuple[int, ...]] = (DEFAULT_PORT,)
    probe_min_bytes: ClassVar[int] = HEADER_SIZE
    state: ClassVar[str] = (
        "a link framer per direction, transport reassembly per (DIR, source, "
        "destination), unanswered requests by (master, outstation, sequence)"
    )

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._framers = {True: Framer(measure_frame, MAX_FRAME),
                         False: Framer(measure_frame, MAX_FRAME)}
        self._reassembler = Reassembler()
        self._requests: dict[tuple[int, int, int], str] = {}
        self._claimed: set[tuple[int, int]] = set()
        # Limitation: a role that device attributes name (RTU, IED) is used for
        # later claims on this flow only; other flows of the same device claim
        # "outstation", so its inventory entry holds both claims. An
        # inventory-level rule preferring a device's own word would lift it.
        self._roles: dict[int, str] = {}
        self._udp = flow.transport == "udp"

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Whether ``data`` opens with a DNP3 link header (:func:`looks_like_dnp3`)."""
        return looks_like_dnp3(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """The DIR bit of the first frame: set on frames a master sends."""
        if not looks_like_dnp3(data):
            return None
        return bool(data[3] & DIR)

    # -- bytes in ------------------------------------------------------------

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        """Frame, reassemble and decode the next bytes (or datagram) of a direction."""
        framer = self._framers[to_server]
        # Most segments hold exactly one frame: skip the framer's bookkeeping.
        size = len(data)
        if (
            not framer.pending
            and size >= HEADER_SIZE
            and data[0] == 0x05
            and data[1] == 0x64
            and data[2] >= 5
            and frame_size(data[2]) == size
            and crc_dnp(data[:8]) == (data[8] | data[9] << 8)
        ):
            message = self._frame(data, to_server, ts, frame)
            return [message] if message is not None else []
        out = []
        for unit in framer.feed(data):
            if unit.__class__ is Skipped:
                out.append(self._junk(unit.size, to_server, ts, frame,
                                      "no DNP3 link header with a right CRC here"))
            else:
                message = self._frame(unit, to_server, ts, frame)
                if message is not None:
                    out.append(message)
        if self._udp and framer.pending:
            left = framer.reset()
            out.append(self._junk(left, to_server, ts, frame,
                                  "datagram ends inside a link frame"))
        return out

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Drop the partial frame of a direction that lost bytes; report it if any."""
        report = gap_report(self._framers[to_server], "frame")
        if report is None:
            return []
        return [self._junk(report[0], to_server, ts, frame, report[1])]

    def close(self, ts: float, frame: int) -> list[Message]:
        """Report bytes left in unfinished frames, one message per direction."""
        out = [
            self._junk(left, to_server, ts, frame, reason)
            for to_server, left, reason in end_reports(self._framers, "frame")
        ]
        self._reassembler.reset()
        self._requests.clear()
        return out

    # -- one link frame ------------------------------------------------------

    def _frame(self, unit: bytes, to_server: bool, ts: float, frame: int
               ) -> Message | None:
        try:
            return self._decode_frame(unit, to_server, ts, frame)
        except Exception as exc:  # noqa: BLE001 - bad input must not escape feed()
            return self._junk(len(unit), to_server, ts, frame,
                              f"undecodable frame ({exc.__class__.__name__}: {exc})")

    def _link_fields(self, unit: bytes) -> dict[str, Any]:
        control = unit[3]
        return {
            "length": unit[2],
            "link_control": control,
            "dir": bool(control & DIR),
            "prm": bool(control & PRM),
            # FCB and FCV on primary frames; on secondary ones DFC (and a
            # reserved bit), named as the construct definition names them.
            "fcb": bool(control & FCB),
            "fcv_dfc": bool(control & FCV),
            "link_function": control & FUNCTION_MASK,
            "destination": unit[4] | unit[5] << 8,
            "source": unit[6] | unit[7] << 8,
        }

    def _decode_frame(self, unit: bytes, to_server: bool, ts: float, frame: int
                      ) -> Message | None:
        control = unit[3]
        prm = bool(control & PRM)
        function = control & FUNCTION_MASK
        data, bad_blocks = user_data(unit)
        src, dst = self.endpoints(to_server)

        if bad_blocks:
            fields = self._link_fields(unit)
            fields["bad_crc_blocks"] = bad_blocks
            return _new(Message, (
                ts, frame, self.flow.flow_id, src, dst, PROTOCOL,
                "request" if prm else "response", link_function_name(control),
                function, "other", (), fields, {},
                malformed(f"CRC of data block {bad_blocks[0]} is wrong"), ()))

        if not (prm and function in (3, 4)):
            fields = self._link_fields(unit)
            if data:
                fields["user_data"] = data.hex()
            return _new(Message, (
                ts, frame, self.flow.flow_id, src, dst, PROTOCOL,
                "request" if prm else "response", link_function_name(control),
                function, _LINK_ACTIONS.get((prm, function), "other"), (), fields,
                self._role_claim(unit), STATUS_OK, ()))

        if not data:
            fields = self._link_fields(unit)
            return _new(Message, (
                ts, frame, self.flow.flow_id, src, dst, PROTOCOL,
                "request", link_function_name(control), function, "other", (), fields,
                {}, malformed("user data frame without a transport octet"), ()))

        source = unit[6] | unit[7] << 8
        destination = unit[4] | unit[5] << 8
        segment = self._reassembler.take((control & DIR, source, destination), data)
        if segment.fragment is None:
            reason = _DROPPED.get(segment.event)
            if reason is None:  # a segment taken, or a duplicate ignored
                return None
            fields = self._link_fields(unit)
            fields["transport_sequence"] = data[0] & 0x3F
            fields["dropped_octets"] = segment.dropped
            return _new(Message, (
                ts, frame, self.flow.flow_id, src, dst, PROTOCOL,
                "request" if control & DIR else "response", "transport_segment",
                function, "other", (), fields, {},
                malformed(reason.format(segment.dropped)), ()))
        return self._fragment(unit, segment, src, dst, ts, frame)

    def _fragment(self, unit, segment, src, dst, ts, frame) -> Message:
        fields = self._link_fields(unit)
        fields["transport_segments"] = segment.segments
        fields["transport_sequence"] = unit[10] & 0x3F
        app, problem = decode_fragment(segment.fragment, fields)
        code = app.get("function_code")
        objects = app.get("objects", ())
        master_sent = bool(unit[3] & DIR)
        findings: tuple[Finding, ...] = ()
        if segment.event == "restarted":
            findings = (Finding("dnp3_fragment_restarted",
                                f"a first segment dropped {segment.dropped} octets of "
                                "an unfinished fragment"),)

        identity = self._role_claim(unit)
        if code is None:
            kind, service, action = "request" if master_sent else "response", \
                "application_fragment", "other"
        elif code in RESPONSE_FUNCTIONS:
            kind = "unsolicited" if code == _UNSOLICITED else "response"
            service = service_name(code)
            if code == _RESPONSE:
                key = (fields["destination"], fields["source"],
                       app["application_sequence"])
                action = self._requests.pop(key, "data")
            elif code == _AUTHENTICATE_RESP:
                action = "session"
            else:
                action = "data"
            attributes = _device_identity(objects)
            if attributes:
                identity = {**identity, **attributes}
                role = role_from_attributes(attributes)
                if role is not None:
                    # Said by the device itself: it names this address's
                    # role from now on, in this message and later claims.
                    identity["role"] = role
                    identity["dnp3_address"] = fields["source"]
                    self._roles[fields["source"]] = role
        else:
            kind = "request"
            service = service_name(code)
            action = _request_action(code, objects)
            if code != _CONFIRM:
                requests = self._requests
                if len(requests) >= MAX_PENDING_REQUESTS:
                    del requests[next(iter(requests))]
                requests[fields["source"], fields["destination"],
                         app["application_sequence"]] = action

        status = STATUS_OK if problem is None else malformed(problem)
        return _new(Message, (
            ts, frame, self.flow.flow_id, src, dst, PROTOCOL, kind, service, code,
            action, _targets(objects), fields, identity, status, findings))

    def _role_claim(self, unit: bytes) -> dict[str, Any]:
        """The sender's role and link address, once per address and DIR per flow."""
        control = unit[3]
        source = unit[6] | unit[7] << 8
        key = (control & DIR, source)
        claimed = self._claimed
        if key in claimed or len(claimed) >= MAX_CLAIMED_ADDRESSES:
            return {}
        claimed.add(key)
        if control & DIR:
            return {"role": "master", "dnp3_address": source}
        return {"role": self._roles.get(source, "outstation"), "dnp3_address": source}

    def _junk(self, size: int, to_server: bool, ts: float, frame: int, reason: str
              ) -> Message:
        src, dst = self.endpoints(to_server)
        return _new(Message, (
            ts, frame, self.flow.flow_id, src, dst, PROTOCOL,
            "request" if to_server else "response", "unframed_bytes", None, "other",
            (), {"skipped_bytes": size}, {}, malformed(reason), ()))
