"""The DICOM plugin: PDU streaming, PDV reassembly, association state, Messages.

Strategy
--------
A P-DATA-TF PDU may be up to 2^32 - 1 bytes long, so PDUs are not framed
whole: each direction runs a small state machine over the byte stream
(:class:`_Direction`). Association-control PDUs, whose length PS3.8 bounds
in practice, are buffered whole up to :data:`MAX_CONTROL_PDU` and decoded
through the construct definitions. A P-DATA-TF is walked PDV item by PDV
item as its bytes arrive: command fragments are collected (they are small,
at most :data:`MAX_COMMAND_SET` bytes), data set fragments are only counted,
except the first :data:`DATA_SET_PREFIX` bytes of a C-STORE data set, which
are kept to read the device elements. Nothing is ever allocated from a
length field: a declared length only says how many of the arriving bytes
belong where. A header that cannot start a PDU is passed over byte by byte
until one can, and the bytes passed over come out as one ``malformed``
message, as does a PDV item that overruns its PDU.

One DIMSE message gives one Message when its command set completes and, if
a data set follows, a second one when the data set completes, so that each
sits on the frame tshark shows it on. Associations remember their
presentation contexts (for the data set transfer syntax) and AE titles (to
name the sender of every DIMSE message).
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from dissectors.dicom.definitions import (
    NO_DATA_SET,
    PDV_COMMAND,
    PDV_LAST,
    RESPONSE_BIT,
    PduType,
    implementation_of,
)
from dissectors.dicom.dimse import command_name, decode_command_set, device_tags
from dissectors.dicom.upper_layer import decode_associate, decode_fixed
from otdpi.dissector import Dissector, FlowContext
from otdpi.message import STATUS_OK, Finding, Message, Status, malformed

PROTOCOL = "dicom"

MAX_CONTROL_PDU = 1 << 20  # an A-ASSOCIATE beyond 1 MiB is taken for junk
MAX_COMMAND_SET = 1 << 16
DATA_SET_PREFIX = 1 << 16
ABSENT = "absent"

_U32 = struct.Struct(">I")
_HEADER = 0
_PDATA = 1
_PDV = 2
_SKIP = 3

# Service operation, Message action, by command field without the response bit.
_OPERATIONS = {
    0x0001: ("store", "write"),
    0x0010: ("retrieve", "read"),
    0x0020: ("query", "read"),
    0x0021: ("retrieve", "read"),
    0x0030: ("verify", "diagnose"),
    0x0100: ("event_report", "data"),
    0x0110: ("get", "read"),
    0x0120: ("set", "write"),
    0x0130: ("action", "control"),
    0x0140: ("create", "write"),
    0x0150: ("delete", "write"),
    0x0FFF: ("cancel", "control"),
}
_MODALITY_WORKLIST = "1.2.840.10008.5.1.4.31"
_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"

_PDU_SERVICES = {
    PduType.A_ASSOCIATE_RQ: ("a_associate_rq", "request"),
    PduType.A_ASSOCIATE_AC: ("a_associate_ac", "response"),
    PduType.A_ASSOCIATE_RJ: ("a_associate_rj", "response"),
    PduType.A_RELEASE_RQ: ("a_release_rq", "request"),
    PduType.A_RELEASE_RP: ("a_release_rp", "response"),
    PduType.A_ABORT: ("a_abort", None),
}


def plausible_header(buf: bytes | bytearray, pos: int) -> int:
    """Whether a PDU can start at ``pos``: 1 yes, 0 too few bytes, -1 no.

    The type must be 1 to 7 and the reserved byte 0; an A-ASSOCIATE must hold
    its 68-byte fixed part and stay under :data:`MAX_CONTROL_PDU`; the fixed
    PDUs (RJ, release, abort) are 4 bytes long; a P-DATA-TF holds at least
    one PDV item header, and its first item must fit in it.
    """
    available = len(buf) - pos
    if available < 1:
        return 0
    pdu_type = buf[pos]
    if not 1 <= pdu_type <= 7:
        return -1
    if available < 2:
        return 0
    if buf[pos + 1]:
        return -1
    if available < 6:
        return 0
    length = _U32.unpack_from(buf, pos + 2)[0]
    if pdu_type <= 2:
        if not 68 <= length <= MAX_CONTROL_PDU:
            return -1
        if available >= 8 and buf[pos + 6] != 0:
            return -1  # protocol version's high byte
        return 1
    if pdu_type == 4:
        if length < 6:
            return -1
        if available < 12:
            return 0
        pdv_length = _U32.unpack_from(buf, pos + 6)[0]
        if not 2 <= pdv_length <= length - 4 or buf[pos + 11] & 0xFC:
            return -1
        return 1
    return 1 if length == 4 else -1


def looks_like_dicom(data: bytes) -> bool:
    """The probe: the first bytes a side sent start a plausible PDU.

    Short flows (an A-RELEASE alone) are judged on what there is; a P-DATA-TF
    needs its first PDV header.
    """
    verdict = plausible_header(data, 0)
    if verdict == 1:
        return True
    return verdict == 0 and len(data) >= 6 and data[0] in (3, 5, 6, 7)


def sender_is_client(data: bytes) -> bool | None:
    """An A-ASSOCIATE-RQ comes from the client, an -AC or -RJ from the server."""
    if plausible_header(data, 0) != 1:
        return None
    return {1: True, 2: False, 3: False}.get(data[0])


class _Assembly:
    """The command set or data set being collected from PDV fragments."""

    __slots__ = (
        "context_id",
        "is_command",
        "buffer",
        "size",
        "fragments",
        "keep",
        "first_frame",
    )

    def __init__(
        self, context_id: int, is_command: bool, keep: int, frame: int
    ) -> None:
        self.context_id = context_id
        self.is_command = is_command
        self.buffer = bytearray()
        self.size = 0
        self.fragments = 0
        self.keep = keep  # how many bytes of the fragments to keep
        self.first_frame = frame


class _Direction:
    """Stream state of one direction."""

    __slots__ = (
        "buf",
        "state",
        "pdu_length",
        "pdu_remaining",
        "pdv_remaining",
        "skip_remaining",
        "control",
        "context_id",
        "skipped",
        "assembly",
        "awaiting",
    )

    def __init__(self) -> None:
        self.buf = bytearray()
        self.state = _HEADER
        self.pdu_length = 0
        self.pdu_remaining = 0
        self.pdv_remaining = 0
        self.skip_remaining = 0
        self.control = 0
        self.context_id = 0
        self.skipped = 0
        self.assembly: _Assembly | None = None
        # The command whose data set is expected: (fields, frame).
        self.awaiting: tuple[dict[str, Any], int] | None = None

    @property
    def unfinished(self) -> bool:
        """Whether a PDU or a reassembled message is under way."""
        return self.state != _HEADER or bool(self.buf) or self.assembly is not None

    def reset(self) -> int:
        """Forget the PDU and message under way; return the bytes held for them."""
        dropped = len(self.buf)
        if self.assembly is not None:
            dropped += self.assembly.size
        self.buf = bytearray()
        self.state = _HEADER
        self.assembly = None
        self.awaiting = None
        self.pdu_remaining = self.pdv_remaining = self.skip_remaining = 0
        return dropped


class DicomDissector(Dissector):
    """DICOM upper layer and DIMSE dissector plugin, one instance per flow."""

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    default_ports: ClassVar[tuple[int, ...]] = (104, 11112)
    probe_min_bytes: ClassVar[int] = 12
    state: ClassVar[str] = (
        "a PDU/PDV state machine per direction, the command or data set being "
        "reassembled, and the association's presentation contexts and AE titles"
    )

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._directions = {True: _Direction(), False: _Direction()}
        self._flow_id = flow.flow_id
        # Which direction sent the A-ASSOCIATE-RQ; the client until seen.
        self._requestor_to_server = True
        self._ae_titles: dict[bool, str] = {}
        self._proposed: dict[int, dict[str, Any]] = {}
        self._accepted: dict[int, str | None] = {}

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Whether ``data`` starts with a DICOM PDU; see :func:`looks_like_dicom`."""
        return looks_like_dicom(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """A-ASSOCIATE-RQ or -AC/-RJ; see :func:`sender_is_client`."""
        return sender_is_client(data)

    # -- feeding ------------------------------------------------------------

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        """Walk the next bytes of one direction; return the messages they complete."""
        direction = self._directions[to_server]
        out: list[Message] = []
        try:
            self._walk(direction, data, to_server, ts, frame, out)
        except Exception as exc:  # noqa: BLE001
            # A safety net for our own bugs: tests assert it never fires.
            direction.reset()
            out.append(
                self._unframed(
                    to_server,
                    ts,
                    frame,
                    {},
                    f"internal dissector error: {type(exc).__name__}: {exc}",
                    (Finding("dissector_error", repr(exc)),),
                )
            )
        return out

    def _walk(
        self,
        d: _Direction,
        data: bytes,
        to_server: bool,
        ts: float,
        frame: int,
        out: list[Message],
    ) -> None:
        buf = d.buf
        buf += data
        pos = 0
        end = len(buf)
        while pos < end:
            state = d.state
            if state == _PDV:
                take = min(end - pos, d.pdv_remaining)
                self._fragment_bytes(d, buf, pos, take)
                pos += take
                d.pdv_remaining -= take
                if d.pdv_remaining == 0:
                    d.state = _PDATA if d.pdu_remaining else _HEADER
                    self._fragment_done(d, to_server, ts, frame, out)
                continue
            if state == _PDATA:
                if d.pdu_remaining == 0:
                    d.state = _HEADER
                    continue
                if d.pdu_remaining < 6:
                    out.append(
                        self._unframed(
                            to_server,
                            ts,
                            frame,
                            {"pdu_type": 4},
                            f"P-DATA-TF ends with {d.pdu_remaining} bytes, too few for "
                            "a PDV item header (6 bytes)",
                        )
                    )
                    d.state = _SKIP
                    d.skip_remaining = d.pdu_remaining
                    continue
                if end - pos < 6:
                    break
                pdv_length = _U32.unpack_from(buf, pos)[0]
                if not 2 <= pdv_length <= d.pdu_remaining - 4:
                    out.append(
                        self._unframed(
                            to_server,
                            ts,
                            frame,
                            {"pdu_type": 4, "pdv_length": pdv_length},
                            f"PDV item length {pdv_length} does not fit the "
                            f"{d.pdu_remaining - 4} bytes its P-DATA-TF has left; "
                            "looking for the next PDU header",
                        )
                    )
                    self._drop_assembly(d, to_server, ts, frame, out)
                    d.state = _HEADER
                    continue
                d.context_id = buf[pos + 4]
                d.control = buf[pos + 5]
                d.pdu_remaining -= 4 + pdv_length
                d.pdv_remaining = pdv_length - 2
                pos += 6
                d.state = _PDV
                self._fragment_start(d, to_server, ts, frame, out)
                if d.pdv_remaining == 0:
                    d.state = _PDATA if d.pdu_remaining else _HEADER
                    self._fragment_done(d, to_server, ts, frame, out)
                continue
            if state == _SKIP:
                take = min(end - pos, d.skip_remaining)
                pos += take
                d.skip_remaining -= take
                if d.skip_remaining == 0:
                    d.state = _HEADER
                continue

            # _HEADER
            verdict = plausible_header(buf, pos)
            if verdict < 0:
                d.skipped += 1
                pos += 1
                continue
            if verdict == 0:
                break
            if d.skipped:
                out.append(self._skipped_message(d, to_server, ts, frame))
            length = _U32.unpack_from(buf, pos + 2)[0]
            if buf[pos] == PduType.P_DATA_TF:
                d.pdu_remaining = d.pdu_length = length
                d.state = _PDATA
                pos += 6
                continue
            if end - pos < 6 + length:
                break
            pdu = bytes(buf[pos : pos + 6 + length])
            pos += 6 + length
            out.append(self._control_pdu(pdu, to_server, ts, frame))
        del buf[:pos]

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Bytes were lost: forget the partial PDU and look for the next header."""
        direction = self._directions[to_server]
        if not direction.unfinished:
            direction.skipped = 0
            return []
        dropped = direction.reset()
        direction.skipped = 0
        return [
            self._unframed(
                to_server,
                ts,
                frame,
                {"dropped_bytes": dropped},
                f"capture gap: dropped {dropped} bytes of an unfinished PDU",
            )
        ]

    def close(self, ts: float, frame: int) -> list[Message]:
        """Report what each direction left unfinished."""
        out = []
        for to_server in (True, False):
            d = self._directions[to_server]
            if d.skipped:
                out.append(self._skipped_message(d, to_server, ts, frame))
            if d.unfinished:
                buffered = len(d.buf)
                if d.state == _HEADER and buffered >= 6:
                    missing = 6 + _U32.unpack_from(d.buf, 2)[0] - buffered
                elif d.state == _HEADER:
                    missing = 6 - buffered  # the rest of a PDU header at least
                else:
                    missing = d.pdv_remaining + d.pdu_remaining
                d.reset()
                out.append(
                    self._unframed(
                        to_server,
                        ts,
                        frame,
                        {"buffered_bytes": buffered},
                        f"flow ended inside a PDU ({buffered} bytes buffered, "
                        f"{missing} more bytes expected at least)",
                    )
                )
        return out

    # -- PDV fragments ------------------------------------------------------

    def _fragment_start(
        self, d: _Direction, to_server: bool, ts: float, frame: int, out: list[Message]
    ) -> None:
        is_command = bool(d.control & PDV_COMMAND)
        assembly = d.assembly
        if assembly is not None and (
            assembly.is_command != is_command or assembly.context_id != d.context_id
        ):
            self._drop_assembly(d, to_server, ts, frame, out)
            assembly = None
        if assembly is None:
            if is_command:
                keep = MAX_COMMAND_SET
            else:
                awaiting = d.awaiting
                wants = awaiting is None or awaiting[0].get("command_field") == 0x0001
                keep = DATA_SET_PREFIX if wants else 0
            d.assembly = _Assembly(d.context_id, is_command, keep, frame)
        d.assembly.fragments += 1

    def _fragment_bytes(
        self, d: _Direction, buf: bytearray, pos: int, take: int
    ) -> None:
        assembly = d.assembly
        room = assembly.keep - len(assembly.buffer)
        if room > 0:
            assembly.buffer += buf[pos : pos + min(take, room)]
        assembly.size += take

    def _fragment_done(
        self, d: _Direction, to_server: bool, ts: float, frame: int, out: list[Message]
    ) -> None:
        if not d.control & PDV_LAST:
            return
        assembly = d.assembly
        d.assembly = None
        if assembly.is_command:
            out.append(self._command(d, assembly, to_server, ts, frame))
        else:
            out.append(self._data_set(d, assembly, to_server, ts, frame))

    def _drop_assembly(
        self, d: _Direction, to_server: bool, ts: float, frame: int, out: list[Message]
    ) -> None:
        assembly = d.assembly
        d.assembly = None
        if assembly is None or not assembly.fragments:
            return
        what = "command set" if assembly.is_command else "data set"
        out.append(
            self._unframed(
                to_server,
                ts,
                frame,
                {
                    "presentation_context_id": assembly.context_id,
                    "fragments": assembly.fragments,
                    "size": assembly.size,
                },
                f"{what} on presentation context {assembly.context_id} was cut off "
                f"after {assembly.fragments} fragments without its last fragment",
            )
        )

    # -- DIMSE messages -----------------------------------------------------

    def _sender_identity(self, to_server: bool) -> dict[str, Any]:
        title = self._ae_titles.get(to_server)
        return {"ae_title": title} if title else {}

    def _command(
        self, d: _Direction, assembly: _Assembly, to_server: bool, ts: float, frame: int
    ) -> Message:
        base = {
            "pdu_type": 4,
            "pdu_length": d.pdu_length,
            "presentation_context_id": assembly.context_id,
            "fragments": assembly.fragments,
            "size": assembly.size,
        }
        if assembly.size > MAX_COMMAND_SET:
            reason = (
                f"command set of {assembly.size} bytes exceeds the "
                f"{MAX_COMMAND_SET}-byte limit"
            )
            return self._unframed(to_server, ts, frame, base, reason)
        fields, problem = decode_command_set(bytes(assembly.buffer))
        fields = {**base, **fields}
        code = fields.get("command_field")
        if problem is not None or not isinstance(code, int):
            d.awaiting = None
            reason = problem or "no command field"
            return self._unframed(to_server, ts, frame, fields, reason)
        is_response = bool(code & RESPONSE_BIT) and code != 0x0FFF
        kind = "response" if is_response else "request"
        operation, action = _OPERATIONS.get(code & ~RESPONSE_BIT, ("other", "other"))
        fields["dimse_operation"] = operation
        context = self._proposed.get(assembly.context_id)
        if context is not None:
            fields["abstract_syntax"] = context.get("abstract_syntax")
        if self._accepted.get(assembly.context_id):
            fields["transfer_syntax"] = self._accepted[assembly.context_id]
        follows = fields.get("command_data_set_type", NO_DATA_SET) != NO_DATA_SET
        fields["data_set_follows"] = follows
        d.awaiting = (fields, frame) if follows else None

        identity = self._sender_identity(to_server)
        if code == 0x0001 and "move_originator_application_entity_title" in fields:
            # A C-MOVE sub-operation: the sender forwards another's images.
            role = "PACS"
        else:
            role = self._role(code, to_server, fields)
        if role:
            identity["role"] = role
        status = STATUS_OK
        category = fields.get("status_category")
        if category in ("failure", "cancel"):
            status = Status("exception", fields["status"], fields["status_name"])
        return self._build(
            to_server, ts, frame, kind, command_name(code), code, action, fields,
            identity, status,
        )  # fmt: skip

    def _role(self, code: int, to_server: bool, fields: dict[str, Any]) -> str | None:
        from_requestor = to_server == self._requestor_to_server
        base = code & ~RESPONSE_BIT
        response = bool(code & RESPONSE_BIT)
        sop_class = (
            fields.get("affected_sop_class_uid")
            or fields.get("requested_sop_class_uid")
            or fields.get("abstract_syntax")
        )
        if base == 0x0001:  # storage: SCU sends the request
            if response:
                return "PACS" if not from_requestor else "workstation"
            return "modality" if from_requestor else "PACS"
        if base in (0x0010, 0x0020, 0x0021):
            if sop_class == _MODALITY_WORKLIST:
                return None if response else "modality"
            return "PACS" if response else "workstation"
        if sop_class == _PERFORMED_PROCEDURE_STEP and from_requestor and not response:
            return "modality"  # a modality reports the procedure steps it performs
        return None

    def _data_set(
        self, d: _Direction, assembly: _Assembly, to_server: bool, ts: float, frame: int
    ) -> Message:
        fields: dict[str, Any] = {
            "pdu_type": 4,
            "pdu_length": d.pdu_length,
            "presentation_context_id": assembly.context_id,
            "fragments": assembly.fragments,
            "size": assembly.size,
        }
        awaiting = d.awaiting
        d.awaiting = None
        findings: tuple[Finding, ...] = ()
        identity = self._sender_identity(to_server)
        if awaiting is None:
            code, kind, action = None, "request" if to_server else "response", "data"
            service = "data_set"
            findings = (
                Finding(
                    "data_set_without_command",
                    "a data set arrived with no command announcing it",
                ),
            )
        else:
            command, command_frame = awaiting
            code = command["command_field"]
            kind = "response" if code & RESPONSE_BIT and code != 0x0FFF else "request"
            service = command_name(code) + "_data_set"
            operation, action = _OPERATIONS.get(
                code & ~RESPONSE_BIT, ("other", "other")
            )
            fields["dimse_operation"] = operation
            fields["command_frame"] = command_frame
            for key in (
                "message_id",
                "message_id_being_responded_to",
                "affected_sop_class_uid",
            ):
                if key in command:
                    fields[key] = command[key]
            # Device elements describe the sender only when it made the image:
            # a C-STORE from the association requestor that is no C-MOVE or
            # C-GET sub-operation. Otherwise they stay in the fields.
            originates = (
                code == 0x0001
                and to_server == self._requestor_to_server
                and "move_originator_application_entity_title" not in command
            )
        if assembly.keep:
            transfer_syntax = self._accepted.get(assembly.context_id)
            found, problem = device_tags(bytes(assembly.buffer), transfer_syntax)
            if problem:
                findings += (Finding("device_elements_unreadable", problem),)
            if found:
                fields["device"] = found
                if awaiting is not None and originates:
                    identity.update(found)
                    identity["role"] = "modality"
                    # The generic names every protocol's inventory columns read.
                    if "manufacturer" in found:
                        identity["vendor"] = found["manufacturer"]
        return self._build(
            to_server, ts, frame, kind, service, code, action, fields, identity,
            STATUS_OK, findings,
        )  # fmt: skip

    # -- association-control PDUs --------------------------------------------

    def _control_pdu(
        self, pdu: bytes, to_server: bool, ts: float, frame: int
    ) -> Message:
        pdu_type = pdu[0]
        service, kind = _PDU_SERVICES[pdu_type]
        if kind is None:
            kind = "request" if to_server else "response"
        identity: dict[str, Any] = {}
        if pdu_type in (PduType.A_ASSOCIATE_RQ, PduType.A_ASSOCIATE_AC):
            is_rq = pdu_type == PduType.A_ASSOCIATE_RQ
            fields, findings, problem = decode_associate(pdu, is_rq)
            if "calling_ae_title" in fields:
                identity = self._learn_association(fields, to_server, is_rq)
        else:
            fields, findings, problem = decode_fixed(pdu)
        if problem is not None:
            status = malformed(problem)
        elif pdu_type == PduType.A_ASSOCIATE_RJ:
            status = Status("exception", fields["reason_diag"], fields["reason_name"])
        elif pdu_type == PduType.A_ABORT:
            status = Status("exception", fields["reason_diag"], fields["reason_name"])
        else:
            status = STATUS_OK
        return self._build(
            to_server, ts, frame, kind, service, pdu_type, "session", fields, identity,
            status, findings,
        )  # fmt: skip

    def _learn_association(
        self, fields: dict[str, Any], to_server: bool, is_rq: bool
    ) -> dict[str, Any]:
        if is_rq:
            self._requestor_to_server = to_server
            self._proposed = {
                c["presentation_context_id"]: c for c in fields["presentation_contexts"]
            }
            self._accepted = {}
            # The calling AE is the sender's own title; the called one its peer's.
            self._ae_titles = {
                to_server: fields["calling_ae_title"],
                not to_server: fields["called_ae_title"],
            }
            title = fields["calling_ae_title"]
        else:
            for context in fields["presentation_contexts"]:
                if context.get("result") == 0:
                    self._accepted[context["presentation_context_id"]] = context.get(
                        "transfer_syntax"
                    )
            title = fields["called_ae_title"]
            self._ae_titles[to_server] = title
        info = fields["user_information"]
        uid = info.get("implementation_class_uid")
        identity = {
            "ae_title": title,
            "implementation_class_uid": uid or ABSENT,
            "implementation_version_name": info.get("implementation_version_name")
            or ABSENT,
        }
        toolkit = implementation_of(uid) if uid else None
        if toolkit:
            identity["implementation"] = toolkit
        return {k: v for k, v in identity.items() if v}

    def _build(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        kind: str,
        service: str,
        code: int | None,
        action: str,
        fields: dict[str, Any],
        identity: dict[str, Any],
        status: Status,
        findings: tuple[Finding, ...] = (),
    ) -> Message:
        src, dst = self.endpoints(to_server)
        return Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, kind, service, code, action,
            (), fields, identity, status, findings,
        )  # fmt: skip

    # -- bytes that are not a PDU ------------------------------------------

    def _skipped_message(
        self, d: _Direction, to_server: bool, ts: float, frame: int
    ) -> Message:
        size = d.skipped
        d.skipped = 0
        return self._unframed(
            to_server,
            ts,
            frame,
            {"skipped_bytes": size},
            f"skipped {size} bytes that start no PDU (type 1 to 7, reserved byte 0, "
            "a length the type allows)",
        )

    def _unframed(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        fields: dict[str, Any],
        reason: str,
        findings: tuple[Finding, ...] = (),
    ) -> Message:
        kind = "request" if to_server else "response"
        return self._build(
            to_server, ts, frame, kind, "unknown", None, "other", fields, {},
            malformed(reason), findings,
        )  # fmt: skip
