"""Checks that our HL7 dissector agrees with tshark on every frame both decode.

tshark shows one ``hl7`` layer per MLLP message, with each segment's raw text
(``hl7.segment``) and, per segment, the fields that are not empty
(``hl7.field``, segment id first; for MSH the field separator is not listed).
Messages of a frame are paired in order with ours and compared:

* the segment ids, in order, for every segment (patient segments included:
  their ids are counted, never their contents);
* for every segment we decode (the control segments: MSH, SFT, MSA, EVN...),
  its non-empty fields, which must equal tshark's list exactly.

Normalisations, each forced by how tshark 4.0 shows things: tshark's field
list is one flat list for the whole message once read as JSON, so it is cut
back into segments at each segment's id, in the order of ``hl7.segment``;
a last segment not closed by CR keeps the 0x1c end block in tshark's text,
which is stripped before comparing.

Frames left out: frames tshark marks malformed. tshark's heuristic finds
HL7 only on segments ending in CR, so messages with LF ends are ours-only
(counted, not compared); on the public capture, whose ADT^A01 the heuristic
misses, tshark is told the port (:data:`DECODE_AS`). Each capture is
compared twice: as shipped (patient segments redacted, only their ids
compared) and with patient data kept, where every segment's fields are.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import tshark_oracle

from otdpi.message import Message

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED = REPO.parent / "shared" / "captures" / "hl7"
MIN_AGREEMENT = 0.999
LAYERS = ("hl7", "_ws.malformed")

# Ports tshark is told to decode as HL7, where its heuristic misses messages
# (it takes the public capture's ADT^A01 on port 6661 for plain TCP).
DECODE_AS = {"ndpi_hl7_mllp_adt_a01.pcap": (6661,)}

# Frames where tshark, not we, misreads a deliberate real-world deviation of
# the fixture: they are left out of the agreement while they differ, and the
# test fails once one agrees, so that the list never goes stale.
TSHARK_MISREADS = {
    "hl7_mllp.pcap": {
        26: "CR LF segment ends: tshark drops the last segment (OBX), whose "
        "CR LF comes just before the end block",
        30: "second message has no trailing CR before the end block: tshark "
        "drops its last segment (EVN)",
    },
}


def tshark_messages(frame: tshark_oracle.Frame) -> tuple[list[dict], bool]:
    """Per message: {"segments": [id...], "fields": [[values of segment]...]}."""
    messages, malformed = [], False
    for layer in frame.layers:
        if layer.name == "_ws.malformed":
            malformed = True
            continue
        texts = layer.fields.get("hl7.segment", [])
        ids = [t[:3] for t in texts]
        values = [v.replace("\x1c", "") for v in layer.fields.get("hl7.field", [])]
        per_segment: list[list[str]] = []
        pos = 0
        for index, segment_id in enumerate(ids):
            if pos < len(values) and values[pos] == segment_id:
                pos += 1
            following = ids[index + 1] if index + 1 < len(ids) else None
            start = pos
            while pos < len(values) and values[pos] != following:
                pos += 1
            per_segment.append([v for v in values[start:pos] if v])
        messages.append({"segments": ids, "fields": per_segment})
    return messages, malformed


def compare_message(theirs: dict, ours: Message, counts: Counter) -> list[tuple]:
    found = []
    segments = ours.fields.get("segments")
    counts["segments"] += 1
    if segments != theirs["segments"]:
        found.append(("segments", segments, theirs["segments"]))
        return found
    for index, detail in enumerate(ours.fields.get("segment_fields", [])):
        if detail.get("redacted") or detail.get("redacted_fields"):
            continue  # contents left out on purpose: nothing to compare
        values = detail["fields"]
        if detail["segment"] == "MSH":
            values = values[1:]  # tshark does not list MSH-1, the separator
        mine = [v for v in values if v]
        counts[f"{detail['segment']} fields"] += 1
        if mine != theirs["fields"][index]:
            found.append((f"{detail['segment']} fields", mine, theirs["fields"][index]))
    return found


def compare_capture(
    ours: list[Message],
    frames: list[tshark_oracle.Frame],
    misreads: dict[int, str] | None = None,
) -> dict:
    by_frame: dict[int, list[Message]] = {}
    for message in ours:
        if message.protocol == "hl7" and message.status.state != "malformed":
            by_frame.setdefault(message.frame, []).append(message)
    tally = {
        "compared": 0,
        "agreeing": 0,
        "excluded": 0,
        "tshark_only": [],
        "differences": [],
        "values": Counter(),
        "misread": [],
        "misread_fixed": [],
    }
    misreads = misreads or {}
    seen = set()
    for frame in frames:
        seen.add(frame.number)
        theirs, malformed = tshark_messages(frame)
        if malformed:
            tally["excluded"] += 1
            continue
        mine = by_frame.get(frame.number, [])
        if not mine:
            tally["tshark_only"].append(frame.number)
            continue
        differences = []
        if len(mine) != len(theirs):
            differences.append((frame.number, "message_count", len(mine), len(theirs)))
        for message, their in zip(mine, theirs):
            differences += [
                (frame.number, *d)
                for d in compare_message(their, message, tally["values"])
            ]
        if frame.number in misreads:
            tally["misread" if differences else "misread_fixed"].append(frame.number)
            continue
        tally["compared"] += 1
        if differences:
            tally["differences"] += differences
        else:
            tally["agreeing"] += 1
    tally["ours_only"] = sorted(set(by_frame) - seen)
    return tally


def _captures() -> list:
    params = [pytest.param(p, id=p.name) for p in sorted(FIXTURES.glob("hl7*.pcap*"))]
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
@pytest.mark.parametrize("keep", [False, True], ids=["redacted", "patient-data-kept"])
@pytest.mark.parametrize("path", _captures())
def test_agrees_with_tshark(path: Path, keep: bool, monkeypatch) -> None:
    """With patient data kept, every segment's fields are compared, PID included."""
    import otdpi
    from dissectors.hl7 import Hl7Dissector

    monkeypatch.setattr(Hl7Dissector, "keep_patient_data", keep)

    rules = [f"tcp.port=={port},hl7" for port in DECODE_AS.get(path.name, ())]
    frames = tshark_oracle.decode(
        tshark_oracle.request(path, LAYERS, "hl7", decode_as=rules)
    )
    ours = list(otdpi.read(path, protocols=["hl7"]))
    tally = compare_capture(ours, frames, TSHARK_MISREADS.get(path.name))
    agreement = tally["agreeing"] / tally["compared"] if tally["compared"] else 0.0
    summary = (
        f"{path.name}: tshark {len(frames)} frames; excluded {tally['excluded']}; "
        f"tshark-only {tally['tshark_only']}, ours-only {tally['ours_only']}; "
        f"compared {tally['compared']}, agreeing {tally['agreeing']} "
        f"({100 * agreement:.3f} %); tshark misreads {tally['misread']}; "
        f"values {dict(tally['values'])}"
    )
    print("\n" + summary)
    listed = "\n".join(
        f"  frame {d[0]}: {d[1]}: ours {d[2]!r} vs tshark {d[3]!r}"
        for d in tally["differences"][:60]
    )
    assert tally["compared"] > 0, summary
    assert not tally["misread_fixed"], (
        f"remove {tally['misread_fixed']} from TSHARK_MISREADS"
    )
    assert not tally["tshark_only"], summary
    assert agreement >= MIN_AGREEMENT, f"{summary}\n{listed}"


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_planted_difference_is_reported() -> None:
    import otdpi

    path = FIXTURES / "hl7_mllp.pcap"
    frames = tshark_oracle.decode(tshark_oracle.request(path, LAYERS, "hl7"))
    ours = list(otdpi.read(path, protocols=["hl7"]))
    first = ours[0]
    detail = [dict(d) for d in first.fields["segment_fields"]]
    detail[0] = {
        **detail[0],
        "fields": [*detail[0]["fields"][:2], "PLANTED", *detail[0]["fields"][3:]],
    }
    ours[0] = first._replace(fields={**first.fields, "segment_fields": detail})

    tally = compare_capture(ours, frames)

    tally = compare_capture(ours, frames, TSHARK_MISREADS["hl7_mllp.pcap"])

    assert tally["agreeing"] == tally["compared"] - 1
    assert (first.frame, "MSH fields") in [d[:2] for d in tally["differences"]]
