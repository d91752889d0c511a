"""The HL7 plugin: lenient MLLP framing, MSH/SFT/MSA decoding, patient data redaction.

Strategy
--------
Each direction keeps a bounded buffer and a scan position. A message starts
at a start block (0x0B), or at a bare ``MSH|`` where a sender forgot MLLP,
and ends at the end block (0x1C), normally followed by a carriage return;
a start block met before the end block closes the previous message early.
So messages split across segments, several in one segment, and frames that
lack their end bytes all come out, the deviations as findings. A message
that grows past :data:`MAX_MESSAGE` without an end block is dropped as
malformed and the stream resumes at the next start block.

Each message is split into segments at CR, LF or CR LF and its control
segments are parsed with the ``hl7`` library. Segments outside
:data:`~dissectors.hl7.definitions.CONTROL_SEGMENTS` (PID, NK1, PV1, OBX...)
are counted, and their contents are left out of every output unless patient
data is kept: set ``OTDPI_KEEP_PATIENT_DATA=1`` in the environment, or
``Hl7Dissector.keep_patient_data = True``, before dissectors are created.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import hl7

from dissectors.hl7.definitions import (
    ACKNOWLEDGMENT_CODES,
    CONTROL_SEGMENTS,
    END_BLOCK,
    FAMILIES,
    FAMILY_ACTIONS,
    FREE_TEXT_FIELDS,
    NEGATIVE_ACKNOWLEDGMENTS,
    START_BLOCK,
)
from otdpi.dissector import Dissector, FlowContext
from otdpi.message import STATUS_OK, Finding, Message, Status, malformed

PROTOCOL = "hl7"
MAX_MESSAGE = 1 << 20
MAX_SEGMENTS = 10_000
MAX_PENDING = 1024
_BARE_START = b"MSH|"
_STARTS = (b"MSH", b"FHS", b"BHS")


def looks_like_hl7(data: bytes) -> bool:
    """The probe: a start block then MSH, FHS or BHS (as far as seen), or ``MSH|``."""
    stripped = data.lstrip(b"\r\n \t")
    if not stripped:
        return False
    if stripped[0] == START_BLOCK:
        head = stripped[1:4]
        return (
            bool(head)
            and any(s.startswith(head) for s in _STARTS)
            and (len(stripped) < 5 or len(head) < 3 or 33 <= stripped[4] <= 126)
        )
    return stripped.startswith(_BARE_START)


def sender_is_client(data: bytes) -> bool | None:
    """A side whose first message acknowledges (MSA) is the receiver, else a sender."""
    if not looks_like_hl7(data):
        return None
    head = data[:4096]
    if b"\rMSA" in head or b"\nMSA" in head:
        return False
    return True


def keep_patient_data_from_environment() -> bool:
    """``OTDPI_KEEP_PATIENT_DATA=1`` asks to keep patient segments in the output."""
    return os.environ.get("OTDPI_KEEP_PATIENT_DATA", "") == "1"


def _text(raw: bytes) -> str:
    # Limitation: MSH-18 (character set) is not used to decode the message;
    # text is read as UTF-8 and, where that fails, as latin-1, so an ISO IR
    # 100 message whose bytes also happen to be valid UTF-8 reads wrongly.
    # Decoding by MSH-18 (found in the ASCII MSH first) would lift it.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _field(segment: list[str], index: int) -> str:
    return segment[index] if index < len(segment) else ""


def split_fields_fast(lines: list[str], separator: str) -> list[list[str]] | None:
    """Each segment as its field strings, as the ``hl7`` library splits them.

    For MSH the list is ``["MSH", separator, encoding characters, ...]``, so
    that index n is MSH-n, as in the library. Returns None, leaving the
    work to the library, when a line carries the escape character outside
    MSH-2 or MSH-2 is too short to name the separators: there the library's
    own rules decide. Tests hold this equal to the library.
    """
    if not lines or not lines[0].startswith("MSH"):
        return None
    # The library strips white space at the end of the message.
    lines = [*lines[:-1], lines[-1].rstrip()]
    msh = lines[0].split(separator)
    encoding = msh[1] if len(msh) > 1 else ""
    if len(encoding) < 3 or msh[2:] == [""]:
        # The library drops a lone empty MSH-3; let it say so itself.
        return None
    escape = encoding[2]
    if escape in lines[0][4 + len(encoding) :] or any(
        escape in line for line in lines[1:]
    ):
        return None
    out = [["MSH", separator, *msh[1:]]]
    out += [line.split(separator) for line in lines[1:]]
    return out


def split_fields_with_library(lines: list[str]) -> list[list[str]]:
    """The same lists as :func:`split_fields_fast`, through ``hl7.parse``."""
    return [
        [str(field) for field in segment] for segment in hl7.parse("\r".join(lines))
    ]


def _component(segment: Any, index: int, component: int, encoding: str) -> str:
    """One component of the first repetition of a field, by the MSH-2 separators."""
    value = _field(segment, index)
    component_separator = encoding[0] if encoding else "^"
    repetition_separator = encoding[1] if len(encoding) > 1 else "~"
    parts = value.split(repetition_separator)[0].split(component_separator)
    return parts[component] if component < len(parts) else ""


def _framing_findings(start_block: bool, end_block: str) -> list[Finding]:
    found = []
    if not start_block:
        found.append(
            Finding("mllp_start_block_missing", "message sent without 0x0b start block")
        )
    if end_block == "missing":
        found.append(
            Finding("mllp_end_block_missing", "message not closed by 0x1c 0x0d")
        )
    elif end_block == "1c":
        found.append(
            Finding("mllp_end_block_without_cr", "end block 0x1c without a CR after it")
        )
    return found


def _segment_terminator(text: str) -> str:
    """``CR``, ``LF``, ``CRLF``, ``mixed`` or ``none`` (a single segment)."""
    bare = text.replace("\r\n", "")
    kinds = [
        name
        for name, present in (
            ("CRLF", "\r\n" in text),
            ("CR", "\r" in bare),
            ("LF", "\n" in bare),
        )
        if present
    ]
    if not kinds:
        return "none"
    return kinds[0] if len(kinds) == 1 else "mixed"


def _header_fields(fields: dict[str, Any], msh: list[str], separator: str) -> None:
    """MSH into ``fields``: separators, routing, type, control id, version."""
    encoding = _field(msh, 2)
    fields["field_separator"] = separator
    fields["encoding_characters"] = encoding
    # MSH-2 names, in order, the component, repetition, escape and
    # subcomponent separators, and from v2.7 the truncation character.
    names = ("component", "repetition", "escape", "subcomponent", "truncation")
    fields["separators"] = {"field": separator, **dict(zip(names, encoding[:5]))}
    for key, index in (
        ("sending_application", 3),
        ("sending_facility", 4),
        ("receiving_application", 5),
        ("receiving_facility", 6),
        ("date_time_of_message", 7),
        ("message_control_id", 10),
        ("processing_id", 11),
        ("version_id", 12),
        ("character_set", 18),
    ):
        fields[key] = _field(msh, index)
    fields["message_type"] = _component(msh, 9, 0, encoding)
    fields["trigger_event"] = _component(msh, 9, 1, encoding)
    fields["message_structure"] = _component(msh, 9, 2, encoding)
    fields["message_family"] = FAMILIES.get(fields["message_type"], "other")


def _software(segments: list[list[str]], encoding: str) -> list[dict[str, str]]:
    """Each SFT segment's vendor, version, product and binary id."""
    return [
        {
            "software_vendor_organization": _component(sft, 1, 0, encoding),
            "software_certified_version_or_release_number": _field(sft, 2),
            "software_product_name": _field(sft, 3),
            "software_binary_id": _field(sft, 4),
        }
        for sft in segments
    ]


def _identity(
    fields: dict[str, Any], software: list[dict[str, str]], is_ack: bool
) -> dict[str, Any]:
    """What the message says of its sender."""
    identity = {
        "role": "HL7 receiver" if is_ack else "HL7 sender",
        "application": fields["sending_application"],
        "facility": fields["sending_facility"],
        "hl7_version": fields["version_id"],
    }
    if software:
        first = software[0]
        identity["software_vendor"] = first["software_vendor_organization"]
        identity["software_product"] = first["software_product_name"]
        identity["software_version"] = first[
            "software_certified_version_or_release_number"
        ]
        # The generic name every protocol's inventory column reads.
        identity["vendor"] = identity["software_vendor"]
    return {k: v for k, v in identity.items() if v}


class _Direction:
    __slots__ = ("buf", "start", "scan", "skipped")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.start = -1  # offset of the message being collected, -1 if none
        self.scan = 0
        self.skipped = 0


class Hl7Dissector(Dissector):
    """HL7 v2 over MLLP dissector plugin, one instance per flow.

    Attributes
    ----------
    keep_patient_data
        None (the default) reads ``OTDPI_KEEP_PATIENT_DATA`` when a flow
        starts; True or False overrides the environment.
    """

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    default_ports: ClassVar[tuple[int, ...]] = (2575,)
    probe_min_bytes: ClassVar[int] = 5
    state: ClassVar[str] = (
        "a bounded buffer per direction and unacknowledged control ids"
    )
    keep_patient_data: ClassVar[bool | None] = None

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._directions = {True: _Direction(), False: _Direction()}
        self._flow_id = flow.flow_id
        keep = type(self).keep_patient_data
        self._keep = keep_patient_data_from_environment() if keep is None else keep
        self._pending: dict[str, str] = {}

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Whether ``data`` starts an HL7 message; see :func:`looks_like_hl7`."""
        return looks_like_hl7(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """Acknowledgements come from the server; see :func:`sender_is_client`."""
        return sender_is_client(data)

    # -- framing ------------------------------------------------------------

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        """Frame and decode the next bytes of one direction."""
        d = self._directions[to_server]
        out: list[Message] = []
        try:
            d.buf += data
            self._frame(d, to_server, ts, frame, out, closing=False)
        except Exception as exc:  # noqa: BLE001
            d.buf = bytearray()
            d.start, d.scan = -1, 0
            out.append(
                self._unframed(
                    to_server,
                    ts,
                    frame,
                    {},
                    f"internal dissector error: {type(exc).__name__}",
                    (Finding("dissector_error", repr(exc)),),
                )
            )
        return out

    def _frame(
        self,
        d: _Direction,
        to_server: bool,
        ts: float,
        frame: int,
        out: list[Message],
        closing: bool,
    ) -> None:
        buf = d.buf
        pos = 0
        while True:
            if d.start < 0:
                # Between messages: CR/LF/space are keep-alive padding, a start
                # block or a bare MSH opens a message, anything else is junk.
                end = len(buf)
                while pos < end and buf[pos] in b"\r\n \t\x00":
                    pos += 1
                if pos >= end:
                    break
                if buf[pos] == START_BLOCK:
                    d.start, d.scan = pos, pos + 1
                elif buf.startswith(_BARE_START, pos):
                    d.start, d.scan = pos, pos
                elif end - pos < 4 and _BARE_START.startswith(bytes(buf[pos:])):
                    break
                else:
                    found = buf.find(START_BLOCK, pos)
                    stop = found if found >= 0 else end
                    d.skipped += stop - pos
                    pos = stop
                    if found < 0:
                        break
                    continue
            if d.skipped:
                out.append(self._skipped(d, to_server, ts, frame))
            start = d.start
            bare = buf[start] != START_BLOCK
            body_start = start if bare else start + 1
            stop = buf.find(END_BLOCK, d.scan)
            # Only bytes not yet looked at are searched, so a long message
            # arriving in small pieces costs linear time.
            next_start = buf.find(
                START_BLOCK, max(d.scan, body_start), stop if stop >= 0 else len(buf)
            )
            if next_start >= 0:
                # A start block inside a message: the previous one lost its end.
                out.append(
                    self._message(
                        bytes(buf[body_start:next_start]),
                        to_server,
                        ts,
                        frame,
                        not bare,
                        "missing",
                    )
                )
                d.start, d.scan = next_start, next_start + 1
                pos = next_start
                continue
            if stop < 0:
                if len(buf) - start > MAX_MESSAGE:
                    out.append(
                        self._unframed(
                            to_server,
                            ts,
                            frame,
                            {"buffered_bytes": len(buf) - start},
                            f"message exceeds {MAX_MESSAGE} bytes without an end "
                            "block; dropped up to the next start block",
                        )
                    )
                    d.start = -1
                    d.skipped = 0
                    pos = len(buf)
                d.scan = len(buf)
                break
            if stop + 1 >= len(buf) and not closing:
                d.scan = stop  # the carriage return may come in the next segment
                break
            has_cr = stop + 1 < len(buf) and buf[stop + 1] == 0x0D
            out.append(
                self._message(
                    bytes(buf[body_start:stop]),
                    to_server,
                    ts,
                    frame,
                    not bare,
                    "1c0d" if has_cr else "1c",
                )
            )
            pos = stop + (2 if has_cr else 1)
            d.start, d.scan = -1, 0
        # Keep only what is unread; offsets move with it.
        if d.start >= 0:
            shift = d.start
            del buf[:shift]
            d.start = 0
            d.scan -= shift
        else:
            del buf[:pos]
            d.scan = 0

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Bytes were lost: drop the partial message, resume at the next start block."""
        d = self._directions[to_server]
        dropped = len(d.buf) if d.start >= 0 else 0
        d.buf = bytearray()
        d.start, d.scan, d.skipped = -1, 0, 0
        if not dropped:
            return []
        return [
            self._unframed(
                to_server,
                ts,
                frame,
                {"dropped_bytes": dropped},
                f"capture gap: dropped {dropped} bytes of an unfinished message",
            )
        ]

    def close(self, ts: float, frame: int) -> list[Message]:
        """Decode what each direction left unfinished, marked malformed."""
        out: list[Message] = []
        for to_server in (True, False):
            d = self._directions[to_server]
            self._frame(d, to_server, ts, frame, out, closing=True)
            if d.start < 0:
                # A few bytes held back as the possible start of a bare "MSH|".
                d.skipped += len(d.buf.strip(b"\r\n \t\x00"))
            if d.skipped:
                out.append(self._skipped(d, to_server, ts, frame))
            if d.start >= 0:
                bare = d.buf[d.start] != START_BLOCK
                body = bytes(d.buf[d.start + (0 if bare else 1) :])
                message = self._message(body, to_server, ts, frame, not bare, "missing")
                if message.status.state != "malformed":
                    message = message._replace(
                        status=malformed("flow ended before the end block (0x1c 0x0d)")
                    )
                out.append(message)
            d.buf = bytearray()
            d.start, d.scan = -1, 0
        self._pending.clear()
        return out

    # -- one message ----------------------------------------------------------

    def _message(
        self,
        raw: bytes,
        to_server: bool,
        ts: float,
        frame: int,
        start_block: bool,
        end_block: str,
    ) -> Message:
        """Decode the bytes between the MLLP blocks of one message."""
        findings = _framing_findings(start_block, end_block)
        text = _text(raw)
        terminator = _segment_terminator(text)
        lines = [
            line
            for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
            if line.strip()
        ]
        fields: dict[str, Any] = {
            "mllp": {"start_block": start_block, "end_block": end_block},
            "size": len(raw),
            "segment_terminator": terminator,
        }
        if terminator not in ("CR", "none"):
            findings.append(
                Finding("segment_terminator_not_cr", f"segments end with {terminator}")
            )
        if len(lines) > MAX_SEGMENTS:
            lines = lines[:MAX_SEGMENTS]
            findings.append(
                Finding("segments_truncated", f"only {MAX_SEGMENTS} segments are read")
            )
        fields["segments"] = [line[:3] for line in lines]
        default_kind = "request" if to_server else "response"

        # Limitation: a batch (FHS/BHS with several MSH in one frame) gives one
        # message, decoded from its first MSH; the later messages show only
        # in the segment list. Cutting the batch at each MSH would lift it.
        msh_index = next(
            (i for i, line in enumerate(lines) if line.startswith("MSH")), -1
        )
        if msh_index < 0 or len(lines[msh_index]) < 8:
            return self._build(
                to_server, ts, frame, default_kind, "unknown", "other", fields, {},
                malformed("no MSH segment"), findings,
            )  # fmt: skip

        counts: dict[str, int] = {}
        for segment_id in fields["segments"]:
            counts[segment_id] = counts.get(segment_id, 0) + 1
        fields["segment_counts"] = counts
        separator = lines[msh_index][3]
        try:
            by_id, detail = self._segments(lines, msh_index, separator)
        except Exception as exc:  # noqa: BLE001  (the library on hostile text)
            reason = f"hl7 could not parse the message: {type(exc).__name__}"
            return self._build(
                to_server, ts, frame, default_kind, "unknown", "other", fields, {},
                malformed(reason), findings,
            )  # fmt: skip
        fields["segment_fields"] = detail
        fields["redacted_segments"] = sum(1 for item in detail if item.get("redacted"))

        _header_fields(fields, by_id["MSH"][0], separator)
        software = _software(by_id.get("SFT", []), fields["encoding_characters"])
        if software:
            fields["software"] = software
        action = FAMILY_ACTIONS.get(fields["message_family"], "other")
        status = STATUS_OK
        msa = by_id.get("MSA", [None])[0]
        if msa is not None:
            action, status = self._acknowledgement(fields, msa, action)
        else:
            pending = self._pending
            if len(pending) >= MAX_PENDING:
                del pending[next(iter(pending))]
            pending[fields["message_control_id"]] = action
        is_ack = msa is not None or fields["message_type"] in ("ACK", "MCF")
        parts = (fields["message_type"], fields["trigger_event"])
        service = "_".join(p for p in parts if p).lower() or "unknown"
        identity = _identity(fields, software, is_ack)
        kind = "response" if is_ack else "request"
        return self._build(
            to_server, ts, frame, kind, service, action, fields, identity, status,
            findings,
        )  # fmt: skip

    def _segments(
        self, lines: list[str], msh_index: int, separator: str
    ) -> tuple[dict[str, list[list[str]]], list[dict[str, Any]]]:
        """Decoded segments by id, and the per-segment detail with redactions."""
        decoded_lines = [
            line
            for line in lines[msh_index:]
            if self._keep or line[:3] in CONTROL_SEGMENTS
        ]
        split = split_fields_fast(decoded_lines, separator)
        if split is None:
            split = split_fields_with_library(decoded_lines)
        by_id: dict[str, list[list[str]]] = {}
        detail: list[dict[str, Any]] = []
        decoded = iter(split)
        for index, line in enumerate(lines):
            segment_id = line[:3]
            if not (self._keep or segment_id in CONTROL_SEGMENTS):
                field_count = line.count(separator)
                detail.append(
                    {
                        "segment": segment_id,
                        "redacted": True,
                        "field_count": field_count,
                    }
                )
                continue
            if index < msh_index:
                # Batch headers before the MSH: split by hand, same separator.
                detail.append(
                    {"segment": segment_id, "fields": line.split(separator)[1:]}
                )
                continue
            segment = next(decoded, None)
            if segment is None:
                continue
            item: dict[str, Any] = {"segment": segment_id}
            blanked = [
                n
                for n in FREE_TEXT_FIELDS.get(segment_id, ())
                if not self._keep and n < len(segment) and segment[n]
            ]
            if blanked:
                segment = [
                    "" if n in blanked else value for n, value in enumerate(segment)
                ]
                item["redacted_fields"] = blanked
            item["fields"] = segment[1:]
            by_id.setdefault(segment_id, []).append(segment)
            detail.append(item)
        return by_id, detail

    def _acknowledgement(
        self, fields: dict[str, Any], msa: list[str], action: str
    ) -> tuple[str, Status]:
        """Read MSA into ``fields``; the action of the acknowledged message, status."""
        code = _field(msa, 1)
        acknowledged = _field(msa, 2)
        fields["acknowledgment_code"] = code
        fields["acknowledgment_name"] = ACKNOWLEDGMENT_CODES.get(code, "unknown")
        fields["acknowledged_control_id"] = acknowledged
        asked = self._pending.pop(acknowledged, None)
        fields["matched"] = asked is not None
        status = STATUS_OK
        if code in NEGATIVE_ACKNOWLEDGMENTS:
            status = Status("exception", None, ACKNOWLEDGMENT_CODES[code])
        return (asked if asked is not None else action), status

    def _build(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        kind: str,
        service: str,
        action: str,
        fields: dict[str, Any],
        identity: dict[str, Any],
        status: Status,
        findings: list[Finding],
    ) -> Message:
        src, dst = self.endpoints(to_server)
        return Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, kind, service, None, action,
            (), fields, identity, status, tuple(findings),
        )  # fmt: skip

    def _skipped(
        self, d: _Direction, to_server: bool, ts: float, frame: int
    ) -> Message:
        size = d.skipped
        d.skipped = 0
        return self._unframed(
            to_server,
            ts,
            frame,
            {"skipped_bytes": size},
            f"skipped {size} bytes outside any MLLP frame",
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
        src, dst = self.endpoints(to_server)
        return Message(
            ts,
            frame,
            self._flow_id,
            src,
            dst,
            PROTOCOL,
            "request" if to_server else "response",
            "unknown",
            None,
            "other",
            (),
            fields,
            {},
            malformed(reason),
            findings,
        )
