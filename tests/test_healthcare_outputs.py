"""Patient data never leaves otdpi by default; the inventory names healthcare devices.

The patient values are taken from the captures themselves: every field and
component of every patient segment (PID, NK1, PV1, IN1, OBX...) of every
HL7 message in the fixtures and the public captures, read with patient data
kept, plus the synthetic patient of the DICOM fixture and its user identity
passcode. Values shorter than four characters, or found inside a control
segment's text (an assigning authority named like the sending application,
say), cannot identify anyone and are left out. Then ``otdpi dissect`` and
``otdpi inventory`` (table, JSON and CSV) run with the default settings, and
no value may appear in any of their output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dissectors.hl7 import Hl7Dissector
from dissectors.hl7.definitions import CONTROL_SEGMENTS
from otdpi import build_inventory, read
from otdpi.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED = REPO.parent / "shared" / "captures"
HL7_CAPTURES = sorted(FIXTURES.glob("hl7*.pcap")) + sorted(
    (SHARED / "hl7").glob("*.pcap*") if (SHARED / "hl7").is_dir() else []
)
DICOM_CAPTURES = sorted(FIXTURES.glob("dicom*.pcap")) + sorted(
    (SHARED / "dicom").glob("*.pcap*") if (SHARED / "dicom").is_dir() else []
)
DICOM_PATIENT = ["OTDPI^SYNTHETIC", "19700101", "synthetic-passcode-0001"]


def _patient_values(monkeypatch) -> set[str]:
    monkeypatch.setattr(Hl7Dissector, "keep_patient_data", True)
    values: set[str] = set()
    control_text = []
    for message in read(HL7_CAPTURES, protocols=["hl7"]):
        for segment in message.fields.get("segment_fields", []):
            if segment["segment"] in CONTROL_SEGMENTS:
                control_text.append("|".join(segment["fields"]))
                continue
            for field in segment["fields"]:
                for part in field.replace("~", "^").replace("&", "^").split("^"):
                    values.add(part.strip())
                values.add(field.strip())
    monkeypatch.setattr(Hl7Dissector, "keep_patient_data", None)
    joined = "\n".join(control_text)
    return {v for v in values if len(v) >= 4 and v not in joined} | set(DICOM_PATIENT)


def test_no_patient_value_reaches_any_output(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OTDPI_KEEP_PATIENT_DATA", raising=False)
    values = _patient_values(monkeypatch)
    assert "MOUSE^MICKEY^" in values or not (SHARED / "hl7").is_dir()
    assert {"1 Synthetic Way", "SYNTHETIC", "555-0100"} <= values

    captures = [str(p) for p in HL7_CAPTURES + DICOM_CAPTURES]
    outputs = [
        tmp_path / "messages.jsonl",
        tmp_path / "inventory.json",
        tmp_path / "inventory.csv",
    ]
    assert main(["dissect", *captures, "-o", str(outputs[0])]) == 0
    assert main(["inventory", *captures, "-o", str(outputs[1])]) == 0
    assert main(["inventory", *captures, "-o", str(outputs[2])]) == 0
    printed = capsys.readouterr()
    texts = [p.read_text(encoding="utf-8") for p in outputs]
    texts += [printed.out, printed.err]
    # JSON escapes backslashes and non-ASCII; compare on the decoded text too.
    texts += [
        json.dumps(json.loads(line), ensure_ascii=False)
        for line in texts[0].splitlines()
    ]

    leaks = sorted({v for v in values for text in texts if v in text})
    assert not leaks, f"patient values in the output: {leaks}"


def test_keeping_patient_data_is_an_explicit_setting(monkeypatch) -> None:
    monkeypatch.setenv("OTDPI_KEEP_PATIENT_DATA", "1")
    kept = [
        s
        for m in read(FIXTURES / "hl7_mllp.pcap", protocols=["hl7"])
        for s in m.fields.get("segment_fields", [])
        if s["segment"] == "PID"
    ]
    assert kept and all(not s.get("redacted") for s in kept)
    assert any("SYNTHETIC" in f for s in kept for f in s["fields"])

    monkeypatch.delenv("OTDPI_KEEP_PATIENT_DATA")
    redacted = [
        s
        for m in read(FIXTURES / "hl7_mllp.pcap", protocols=["hl7"])
        for s in m.fields.get("segment_fields", [])
        if s["segment"] == "PID"
    ]
    assert redacted and all(s.get("redacted") and "fields" not in s for s in redacted)


def _assets(path: Path) -> dict[str, dict]:
    return {
        a["ip"] if "ip" in a else a["key"]: a for a in build_inventory(path).assets()
    }


def _claims(asset: dict, attribute: str) -> set:
    return {c["value"] for c in asset.get("identity", {}).get(attribute, [])}


def test_inventory_names_modality_pacs_and_workstation() -> None:
    assets = {
        a["key"]: a
        for a in build_inventory(FIXTURES / "dicom_pynetdicom.pcap").assets()
    }
    ct, pacs, ws = (
        assets["ip:127.0.0.3"],
        assets["ip:127.0.0.2"],
        assets["ip:127.0.0.4"],
    )

    assert ct["role"] == "modality"
    assert _claims(ct, "ae_title") == {"OTDPI_CT"}
    assert _claims(ct, "model") == {"Synthetic CT"}
    assert _claims(ct, "manufacturer") == {"otdpi test bench"}
    assert _claims(ct, "serial_number") == {"OTDPI-SN-0001"}
    assert _claims(ct, "implementation_version_name") == {"PYNETDICOM_304"}
    assert _claims(ct, "implementation") == {"pynetdicom"}
    assert pacs["role"] == "PACS"
    assert _claims(pacs, "ae_title") == {"OTDPI_PACS"}
    assert not _claims(pacs, "model"), "forwarded images describe the modality"
    assert ws["role"] == "workstation"
    assert _claims(ws, "ae_title") == {"OTDPI_WS"}


def test_inventory_names_hl7_applications() -> None:
    assets = {a["key"]: a for a in build_inventory(FIXTURES / "hl7_mllp.pcap").assets()}
    sender, receiver = assets["ip:127.0.0.3"], assets["ip:127.0.0.2"]

    assert sender["role"] == "HL7 sender"
    assert _claims(sender, "application") == {"OTDPI_ADT"}
    assert _claims(sender, "facility") == {"OTDPI_HOSPITAL"}
    assert _claims(sender, "hl7_version") == {"2.5.1"}
    assert _claims(sender, "software_vendor") == {"otdpi test bench"}
    assert _claims(sender, "software_product") == {"otdpi fixture sender"}
    assert receiver["role"] == "HL7 receiver"
    assert _claims(receiver, "application") == {"OTDPI_RIS"}


@pytest.mark.skipif(not (SHARED / "dicom").is_dir(), reason="shared captures absent")
def test_inventory_of_public_dicom_capture_names_dcmtk() -> None:
    assets = build_inventory(DICOM_CAPTURES[-1]).assets()
    titles = {v for a in assets for v in _claims(a, "ae_title")}
    assert titles == {"ECHOSCU", "ANY-SCP"}
    assert {v for a in assets for v in _claims(a, "implementation")} == {"dcmtk"}
    assert {v for a in assets for v in _claims(a, "implementation_version_name")} == {
        "OFFIS_DCMTK_362"
    }
