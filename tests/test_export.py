"""CycloneDX export: a schema-valid BOM with each device and its firmware."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otdpi.cli import main
from otdpi.export import cyclonedx_json

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "modbus_pymodbus.pcap"

PLC = {
    "key": "mac:00:1b:1b:00:00:02", "ips": ["10.0.0.2"], "macs": ["00:1b:1b:00:00:02"],
    "mac_vendor": "Siemens AG", "role": "PLC",
    "protocols": {"s7comm": {"roles": ["server"], "messages": 10}},
    "summary": {"vendor": "Siemens", "order_number": "6ES7 315-2EH14-0AB0",
                "module_type": "CPU 315-2 PN/DP", "firmware": "V3.2.6",
                "hardware_version": "4"},
}


def _validate(document: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document) is None


def test_a_device_carries_manufacturer_model_and_its_firmware():
    pytest.importorskip("jsonschema")
    document = cyclonedx_json([PLC], "0.1.0")
    _validate(document)
    device = json.loads(document)["components"][0]
    assert (device["type"], device["name"], device["version"]) == (
        "device", "CPU 315-2 PN/DP", "4")
    assert device["manufacturer"]["name"] == "Siemens"
    firmware = device["components"][0]
    assert (firmware["type"], firmware["version"]) == ("firmware", "V3.2.6")
    properties = {p["name"]: p["value"] for p in device["properties"]}
    assert properties["otdpi:ip"] == "10.0.0.2"
    assert properties["otdpi:identity:order_number"] == "6ES7 315-2EH14-0AB0"


def test_inventory_writes_a_bom_from_the_suffix(tmp_path, capsys):
    pytest.importorskip("jsonschema")
    output = tmp_path / "plant.cdx.json"
    assert main(["inventory", str(FIXTURE), "-o", str(output)]) == 0
    capsys.readouterr()
    _validate(output.read_text())
    devices = json.loads(output.read_text())["components"]
    server = next(d for d in devices if "127.0.0.2" in d["description"])
    assert server["manufacturer"]["name"] == "otdpi test bench"
    assert server["components"][0]["version"] == "3.16.1"
    assert len(devices) == 2
