"""Checks that our DICOM dissector agrees with tshark on every frame both decode.

tshark (see :mod:`tshark_oracle`) and ``otdpi.read`` decode the same capture.
tshark shows one ``dicom`` layer per PDU on the frame that completes it; our
dissector gives one Message per association-control PDU and, for P-DATA-TF,
one per completed command set and one per completed data set. Each tshark
frame is therefore turned into a list of *events*: every control PDU, and
every PDV that carries a last fragment (flag bit 1), a command or a data set
by flag bit 0. The events of a frame are paired in order with our messages
of that frame and compared field by field. A frame agrees when it has as
many events as messages and every compared field is equal; the test fails
below 99.9 % and lists the differing frames.

What is compared and how tshark 4.0 shows it
--------------------------------------------
* every event: PDU type and PDU length (``dicom.pdu.type``, ``dicom.pdu.len``;
  for a P-DATA event, the PDU holding its last fragment);
* A-ASSOCIATE-RQ/AC: protocol version, called and calling AE titles (tshark
  keeps the space padding; both are stripped), application context, the
  presentation context ids, abstract syntaxes (RQ), transfer syntaxes and
  results (AC); maximum length, implementation class UID and version name;
  user identity type, field lengths and user name; SCP/SCU role selection.
  tshark writes UIDs as "name (uid)"; the UID in the last parentheses is
  compared;
* A-ASSOCIATE-RJ result, source, reason; A-ABORT source and reason;
* PDV presentation context id of each event;
* command sets: every element tshark lists as a text line
  ``(0000,eeee) length name value`` that our fields name, the command field
  by its name (``C-ECHO-RQ``), the status by the code in its parentheses,
  UIDs by their first word, numbers as numbers;
* C-STORE data sets: the device elements (modality, manufacturer, model,
  serial number, software versions, station name) where our message has
  them; nothing else of a data set is decoded on our side.

Frames left out, each counted with its reason: frames tshark marks
malformed; frames whose only PDUs are P-DATA-TF carrying non-final
fragments (we report a fragmented message once, when it completes).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle

from otdpi.message import Message

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED = REPO.parent / "shared" / "captures" / "dicom"

MIN_AGREEMENT = 0.999
MAX_LISTED = 60
LAYERS = ("dicom", "_ws.malformed")

_TAG_LINE = re.compile(
    r"^\(([0-9a-f]{4}),([0-9a-f]{4})\)\s+(\d+)\s+(.+?)\s{2,}(?:\[[A-Z]{2}\] )?(.*)$"
)
_UID_AT_END = re.compile(r"\(([0-9.]+)\)\s*$")
_DEVICE = {
    (0x0008, 0x0060): "modality",
    (0x0008, 0x0070): "manufacturer",
    (0x0008, 0x1010): "station_name",
    (0x0008, 0x1090): "model",
    (0x0018, 0x1000): "serial_number",
    (0x0018, 0x1020): "software_versions",
}


def _uid(text: str) -> str:
    found = _UID_AT_END.search(text)
    return found.group(1) if found else text.strip()


def _int(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


@dataclass
class Event:
    """A control PDU, or a PDV with a last fragment, as tshark shows it."""

    kind: str  # "control", "command" or "data"
    pdu: dict[str, list[str]]
    context_id: int | None = None
    tags: dict[tuple[int, int], str] = field(default_factory=dict)


def tshark_events(frame: tshark_oracle.Frame) -> tuple[list[Event], bool, bool]:
    """(events, malformed, has P-DATA) of one tshark frame."""
    events: list[Event] = []
    malformed = has_pdata = False
    for layer in frame.layers:
        if layer.name == "_ws.malformed":
            malformed = True
            continue
        pdu_type = _int(layer.first("dicom.pdu.type") or "0")
        if pdu_type != 4:
            events.append(Event("control", layer.fields))
            continue
        has_pdata = True
        tags: dict[tuple[int, int], str] = {}
        for key in layer.fields:
            found = _TAG_LINE.match(key)
            if found:
                tag = (int(found.group(1), 16), int(found.group(2), 16))
                tags[tag] = found.group(5).strip()
        contexts = layer.fields.get("dicom.pdv.ctx", [])
        flags = layer.fields.get("dicom.pdv.flags", [])
        for ctx, flag in zip(contexts, flags):
            bits = _int(flag)
            if not bits & 2:
                continue
            is_command = bool(bits & 1)
            chosen = {t: v for t, v in tags.items() if (t[0] == 0) == is_command}
            events.append(
                Event(
                    "command" if is_command else "data", layer.fields, int(ctx), chosen
                )
            )
    return events, malformed, has_pdata


# --- comparing one event with one message -----------------------------------------


def _compare_control(event: Event, fields: dict[str, Any], check) -> None:
    pdu = event.pdu

    def first(name: str) -> str | None:
        values = pdu.get(name)
        return values[0] if values else None

    pdu_type = _int(first("dicom.pdu.type"))
    if pdu_type in (1, 2):
        check(
            "protocol_version",
            fields.get("protocol_version"),
            _int(first("dicom.assoc.version"))
            if first("dicom.assoc.version")
            else None,
        )
        for ours, theirs in (
            ("called_ae_title", "dicom.assoc.ae.called"),
            ("calling_ae_title", "dicom.assoc.ae.calling"),
        ):
            if first(theirs) is not None:
                check(ours, fields.get(ours), first(theirs).strip())
        if first("dicom.actx"):
            check(
                "application_context_name",
                fields.get("application_context_name"),
                _uid(first("dicom.actx")),
            )
        contexts = fields.get("presentation_contexts", [])
        check(
            "presentation_context_ids",
            [c["presentation_context_id"] for c in contexts],
            [_int(v) for v in pdu.get("dicom.pctx.id", [])],
        )
        if pdu_type == 1:
            check(
                "abstract_syntaxes",
                [c.get("abstract_syntax") for c in contexts],
                [_uid(v) for v in pdu.get("dicom.pctx.abss.syntax", [])],
            )
            check(
                "transfer_syntaxes",
                [t for c in contexts for t in c.get("transfer_syntaxes", [])],
                [_uid(v) for v in pdu.get("dicom.pctx.xfer.syntax", [])],
            )
        else:
            check(
                "results",
                [c.get("result") for c in contexts],
                [_int(v) for v in pdu.get("dicom.pctx.result", [])],
            )
            check(
                "transfer_syntaxes",
                [c["transfer_syntax"] for c in contexts if c.get("transfer_syntax")],
                [_uid(v) for v in pdu.get("dicom.pctx.xfer.syntax", [])],
            )
        info = fields.get("user_information", {})
        for ours, theirs, convert in (
            ("maximum_length", "dicom.max_pdu_len", int),
            ("implementation_class_uid", "dicom.userinfo.uid", str.strip),
            ("implementation_version_name", "dicom.userinfo.version", str.strip),
        ):
            if first(theirs) is not None:
                check(ours, info.get(ours), convert(first(theirs)))
        identity = info.get("user_identity", {})
        prefix = "dicom.userinfo.user_identify."
        for ours, theirs in (
            ("user_identity_type", "type"),
            ("primary_field_length", "primary_field_length"),
            ("secondary_field_length", "secondary_field_length"),
        ):
            if first(prefix + theirs) is not None:
                check(ours, identity.get(ours), int(first(prefix + theirs)))
        if first(prefix + "primary_field") is not None and "username" in identity:
            check("username", identity["username"], first(prefix + "primary_field"))
        roles = info.get("scp_scu_role_selection", [])
        if pdu.get("dicom.userinfo.rolesel.sopclassuid"):
            check(
                "role_selection",
                [(r["sop_class_uid"], r["scu_role"], r["scp_role"]) for r in roles],
                [
                    (_uid(u), _int(a), _int(b))
                    for u, a, b in zip(
                        pdu["dicom.userinfo.rolesel.sopclassuid"],
                        pdu["dicom.userinfo.rolesel.scurole"],
                        pdu["dicom.userinfo.rolesel.scprole"],
                    )
                ],
            )
    elif pdu_type == 3:
        for ours, theirs in (
            ("result", "result"),
            ("source", "source"),
            ("reason_diag", "reason"),
        ):
            check(ours, fields.get(ours), int(first(f"dicom.assoc.reject.{theirs}")))
    elif pdu_type == 7:
        for ours, theirs in (("source", "source"), ("reason_diag", "reason")):
            check(ours, fields.get(ours), int(first(f"dicom.assoc.abort.{theirs}")))


_COMMAND_TAGS = {
    0x0000: "command_group_length",
    0x0002: "affected_sop_class_uid",
    0x0003: "requested_sop_class_uid",
    0x0100: "command_name",
    0x0110: "message_id",
    0x0120: "message_id_being_responded_to",
    0x0600: "move_destination",
    0x0700: "priority",
    0x0800: "command_data_set_type",
    0x0900: "status",
    0x1000: "affected_sop_instance_uid",
    0x1001: "requested_sop_instance_uid",
    0x1020: "number_of_remaining_sub_operations",
    0x1021: "number_of_completed_sub_operations",
    0x1022: "number_of_failed_sub_operations",
    0x1023: "number_of_warning_sub_operations",
    0x1030: "move_originator_application_entity_title",
    0x1031: "move_originator_message_id",
}


def _compare_command(event: Event, fields: dict[str, Any], check) -> None:
    for (group, element), text in event.tags.items():
        name = _COMMAND_TAGS.get(element)
        if name is None or name not in fields:
            continue
        ours = fields[name]
        if name == "status":
            found = re.search(r"\((0x[0-9a-fA-F]+)\)", text)
            theirs: Any = int(found.group(1), 16) if found else text
        elif isinstance(ours, int):
            theirs = int(text.split()[0])
        elif name == "command_name":
            theirs = text.split()[0]
        else:
            theirs = text.split(" (")[0].strip()
            ours = str(ours).strip()
        check(name, ours, theirs)


def _compare_data(event: Event, fields: dict[str, Any], check) -> None:
    device = fields.get("device", {})
    for tag, name in _DEVICE.items():
        if tag in event.tags and name in device:
            check(name, device[name], event.tags[tag].strip())


def compare_event(event: Event, message: Message, counts: Counter) -> list[tuple]:
    """Differences between one tshark event and our message: (field, ours, theirs)."""
    found = []
    fields = message.fields

    def check(name: str, ours: Any, theirs: Any) -> None:
        counts[name] += 1
        if ours != theirs:
            found.append((name, ours, theirs))

    check("pdu_type", fields.get("pdu_type"), _int(event.pdu["dicom.pdu.type"][0]))
    pdu_lengths = [int(v) for v in event.pdu.get("dicom.pdu.len", [])]
    if pdu_lengths:
        check("pdu_length", fields.get("pdu_length"), pdu_lengths[0])
    if message.status.state == "malformed":
        return found
    if event.kind == "control":
        _compare_control(event, fields, check)
        return found
    check("event", "command" if "command_field" in fields else "data", event.kind)
    check(
        "presentation_context_id",
        fields.get("presentation_context_id"),
        event.context_id,
    )
    if event.kind == "command":
        _compare_command(event, fields, check)
    else:
        _compare_data(event, fields, check)
    return found


@dataclass
class Tally:
    name: str
    tshark_frames: int = 0
    ours_frames: int = 0
    excluded: Counter = field(default_factory=Counter)
    tshark_only: list[int] = field(default_factory=list)
    ours_only: list[int] = field(default_factory=list)
    compared: int = 0
    agreeing: int = 0
    values_compared: Counter = field(default_factory=Counter)
    differences: list[tuple] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agreeing / self.compared if self.compared else 0.0

    def summary(self) -> str:
        excluded = ", ".join(f"{k}: {v}" for k, v in sorted(self.excluded.items()))
        values = ", ".join(f"{k} {v}" for k, v in sorted(self.values_compared.items()))
        return (
            f"{self.name}: tshark {self.tshark_frames} frames, "
            f"ours {self.ours_frames}; "
            f"excluded {sum(self.excluded.values())} ({excluded or 'none'}); "
            f"tshark-only {self.tshark_only}, ours-only {self.ours_only}; "
            f"compared {self.compared}, agreeing {self.agreeing} "
            f"({100 * self.agreement:.3f} %)\n    values compared: {values}"
        )


def compare_capture(
    name: str, ours: list[Message], theirs: list[tshark_oracle.Frame]
) -> Tally:
    tally = Tally(name, tshark_frames=len(theirs))
    by_frame: dict[int, list[Message]] = {}
    for message in ours:
        if message.protocol == "dicom":
            by_frame.setdefault(message.frame, []).append(message)
    tally.ours_frames = len(by_frame)
    seen = set()
    for frame in theirs:
        seen.add(frame.number)
        events, malformed, has_pdata = tshark_events(frame)
        mine = by_frame.get(frame.number, [])
        if malformed:
            tally.excluded["tshark: malformed packet"] += 1
            continue
        if not events and has_pdata:
            tally.excluded["only non-final PDV fragments"] += 1
            if mine:
                tally.ours_only.append(frame.number)
            continue
        if not mine:
            tally.tshark_only.append(frame.number)
            continue
        differences = []
        if len(events) != len(mine):
            differences.append(
                (
                    frame.number,
                    -1,
                    "message_count",
                    [m.service for m in mine],
                    [e.kind for e in events],
                )
            )
        for index, (event, message) in enumerate(zip(events, mine)):
            for item in compare_event(event, message, tally.values_compared):
                differences.append((frame.number, index, *item))
        tally.compared += 1
        if differences:
            tally.differences += differences
        else:
            tally.agreeing += 1
    tally.ours_only += sorted(set(by_frame) - seen)
    return tally


def describe(tally: Tally) -> str:
    lines = [
        f"  {tally.name} frame {f} event {i}: {name}: ours {o!r} vs tshark {t!r}"
        for f, i, name, o, t in tally.differences[:MAX_LISTED]
    ]
    return "\n".join(lines)


def _captures() -> list:
    params = [pytest.param(p, id=p.name) for p in sorted(FIXTURES.glob("dicom*.pcap*"))]
    shared = sorted(SHARED.glob("*.pcap*")) if SHARED.is_dir() else []
    params += [pytest.param(p, id=p.name) for p in shared]
    if not shared:
        params.append(
            pytest.param(
                None,
                id="shared-captures",
                marks=pytest.mark.skip(reason=f"{SHARED} is absent"),
            )
        )
    return params


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
@pytest.mark.parametrize("path", _captures())
def test_agrees_with_tshark(path: Path) -> None:
    import otdpi

    theirs = tshark_oracle.decode(tshark_oracle.request(path, LAYERS, "dicom"))
    ours = list(otdpi.read(path, protocols=["dicom"]))
    tally = compare_capture(path.name, ours, theirs)
    print("\n" + tally.summary())

    assert tally.compared > 0, tally.summary()
    assert not tally.tshark_only, f"frames only tshark decodes\n{tally.summary()}"
    assert not [m for m in ours if m.status.state == "malformed"], (
        "malformed on a clean capture"
    )
    assert tally.agreement >= MIN_AGREEMENT, (
        f"agreement {100 * tally.agreement:.3f} % is below {100 * MIN_AGREEMENT} %\n"
        f"{tally.summary()}\n{describe(tally)}"
    )


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_planted_difference_is_reported() -> None:
    import otdpi

    path = FIXTURES / "dicom_pynetdicom.pcap"
    theirs = tshark_oracle.decode(tshark_oracle.request(path, LAYERS, "dicom"))
    ours = list(otdpi.read(path, protocols=["dicom"]))
    echo = next(i for i, m in enumerate(ours) if m.service == "c_echo_rq")
    ours[echo] = ours[echo]._replace(fields={**ours[echo].fields, "message_id": 99})

    tally = compare_capture("planted", ours, theirs)

    assert [(d[2], d[3], d[4]) for d in tally.differences] == [("message_id", 99, 1)]
    assert "message_id: ours 99 vs tshark 1" in describe(tally)
