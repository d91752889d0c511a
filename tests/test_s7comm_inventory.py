"""The inventory of the S7 captures names each PLC with its SZL identification.

tshark is the oracle: wherever a capture holds an SZL 0x0011 answer (module
identification) or an SZL 0x001C answer (component identification), the
address that sent it must be an asset whose role is PLC, whose vendor is
Siemens, and whose order number, firmware, station name, module name and
serial number are the values tshark decodes. The S7comm-plus captures are
checked the same way for the CreateObject answers that carry a PLC's order
number and firmware in clear.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import otdpi
from dissectors.s7commplus import plc_identity

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"
S7_CAPTURES = sorted((SHARED / "s7comm").glob("*.pcap*")) if SHARED.is_dir() else []
PLUS_CAPTURES = (
    sorted((SHARED / "s7commplus").glob("*.pcap*")) if SHARED.is_dir() else []
)
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="no tshark")

# tshark field of SZL 0x001C texts -> our identity attribute.
COMPONENT_FIELDS = {
    "s7comm.szl.001c.0001.name": "station_name",
    "s7comm.szl.001c.0002.name": "module_name",
    "s7comm.szl.001c.0005.serialn": "serial_number",
}


def _tshark(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    command = [
        "tshark",
        "-r",
        str(path),
        "-Y",
        display_filter,
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def expected_identity(path: Path) -> dict[str, dict[str, set[str]]]:
    found: dict[str, dict[str, set[str]]] = {}
    rows = _tshark(
        path,
        "s7comm.szl.xy11.0001.index",
        "ip.src",
        "s7comm.szl.xy11.0001.index",
        "s7comm.szl.xy11.0001.anz",
        "s7comm.szl.xy11.0001.ausbg",
        "s7comm.szl.xy11.0001.ausbe",
    )
    for src, indexes, orders, versions, releases in rows:
        for index, order, version, release in zip(
            indexes.split("|"),
            orders.split("|"),
            versions.split("|"),
            releases.split("|"),
        ):
            entry = found.setdefault(src, {})
            if int(index, 16) == 1 and order.strip():
                entry.setdefault("order_number", set()).add(order.strip())
            if int(index, 16) == 7 and int(version) >> 8 == ord("V"):
                release_number = int(release)
                firmware = (
                    f"V{int(version) & 0xFF}.{release_number >> 8}."
                    f"{release_number & 0xFF}"
                )
                entry.setdefault("firmware", set()).add(firmware)
    names = list(COMPONENT_FIELDS)
    rows = _tshark(path, "s7comm.szl.001c.000x.index", "ip.src", *names)
    for src, *values in rows:
        for name, value in zip(names, values):
            if value.strip():
                attribute = COMPONENT_FIELDS[name]
                found.setdefault(src, {}).setdefault(attribute, set()).add(
                    value.strip()
                )
    return found


def _by_ip(path: Path) -> dict[str, dict]:
    assets = otdpi.build_inventory([path]).assets()
    return {ip: asset for asset in assets for ip in asset["ips"]}


@needs_tshark
@pytest.mark.skipif(not S7_CAPTURES, reason="../shared/captures/s7comm is not present")
@pytest.mark.parametrize("path", S7_CAPTURES, ids=[p.name for p in S7_CAPTURES])
def test_every_plc_answering_szl_is_named_with_its_identity(path: Path) -> None:
    expected = expected_identity(path)
    if not expected:
        pytest.skip(f"{path.name} holds no SZL 0x0011/0x001C answer")
    by_ip = _by_ip(path)
    for ip, attributes in expected.items():
        asset = by_ip.get(ip)
        assert asset is not None, f"{path.name}: no asset for {ip}"
        assert asset["role"] == "PLC", f"{path.name}: {ip} is {asset['role']}"
        identity = asset["identity"]
        assert {c["value"] for c in identity["vendor"]} == {"Siemens"}
        for attribute, values in attributes.items():
            ours = {c["value"] for c in identity.get(attribute, ())}
            assert values <= ours, (
                f"{path.name}: {ip} {attribute}: tshark {values}, ours {ours}"
            )
        if "order_number" in attributes:
            assert identity.get("product_family"), f"{path.name}: {ip} has no family"


@pytest.mark.skipif(not PLUS_CAPTURES, reason="../shared/captures/s7commplus absent")
def test_s7commplus_servers_report_order_number_and_firmware() -> None:
    """Every CreateObject answer carrying "n;<MLFB>;V<x>" names its sender."""
    seen = 0
    for path in PLUS_CAPTURES:
        expected: dict[str, set] = {}
        for message in otdpi.read(path, protocols=["s7commplus"]):
            found = plc_identity(message.fields.get("strings", []))
            if found and message.kind == "response":
                expected.setdefault(message.src.ip, set()).add(
                    (found["order_number"], found["firmware"])
                )
        by_ip = _by_ip(path)
        for ip, pairs in expected.items():
            seen += 1
            identity = by_ip[ip]["identity"]
            orders = {c["value"] for c in identity.get("order_number", ())}
            firmware = {c["value"] for c in identity.get("firmware", ())}
            assert {p[0] for p in pairs} <= orders
            assert {p[1] for p in pairs} <= firmware
            assert by_ip[ip]["role"] == "PLC"
    assert seen, "no S7comm-plus capture named a PLC"


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "s7comm_snap7.pcap"


@pytest.mark.skipif(not FIXTURE.exists(), reason="fixture missing")
def test_snap7_fixture_names_the_emulated_plc_and_the_engineering_station() -> None:
    """python-snap7's server reports a fixed S7-300 identity in a short SZL record."""
    by_ip = _by_ip(FIXTURE)
    plc, station = by_ip["127.0.0.4"], by_ip["127.0.0.5"]
    assert plc["role"] == "PLC"
    assert {c["value"] for c in plc["identity"]["order_number"]} == {
        "6ES7 315-2EH14-0AB0"
    }
    assert {c["value"] for c in plc["identity"]["product_family"]} == {"S7-300"}
    assert station["role"] == "engineering station"
    # The second connection is an OP's: its messages claim HMI.
    assert "HMI" in {c["value"] for c in station["identity"]["role"]}
