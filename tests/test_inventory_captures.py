"""The inventory of every public Modbus capture names the devices tshark sees, in their roles.

tshark is the oracle for who is a Modbus server (the side on the Modbus port)
and who a client, and for the Read Device Identification objects a device
returned. For each capture under ``../shared/captures/modbus`` the inventory
built from it must hold an asset for every such IP address, with that role, and
vendor / product code / revision equal to the objects tshark decodes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import otdpi

SHARED_MODBUS = Path(__file__).resolve().parents[2] / "shared" / "captures" / "modbus"
CAPTURES = sorted(SHARED_MODBUS.glob("*.pcap*")) if SHARED_MODBUS.is_dir() else []
# Captures with Modbus servers on ports other than 502; tshark takes one at a time.
SERVER_PORTS = {"agentcarter_mixed_ot_1.pcapng": (503, 505)}
# Read Device Identification object ids and the inventory attributes they feed.
OBJECT_ATTRIBUTES = {"0": "vendor", "1": "product_code", "2": "revision"}

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def _tshark(path: Path, port: int, display_filter: str, *fields: str) -> list[list[str]]:
    command = ["tshark", "-r", str(path), "-o", f"mbtcp.tcp.port:{port}",
               "-Y", display_filter, "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def _roles_by_tshark(path: Path) -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}
    for port in SERVER_PORTS.get(path.name, (502,)):
        rows = _tshark(path, port, f"mbtcp && tcp.port == {port}", "ip.src", "ipv6.src",
                       "ip.dst", "ipv6.dst", "tcp.srcport")
        for src4, src6, dst4, dst6, src_port in rows:
            server_sent = int(src_port.split(",")[0]) == port
            src, dst = src4 or src6, dst4 or dst6
            roles.setdefault(src, set()).add("server" if server_sent else "client")
            roles.setdefault(dst, set()).add("client" if server_sent else "server")
    return roles


def _identity_by_tshark(path: Path) -> dict[str, dict[str, set[str]]]:
    found: dict[str, dict[str, set[str]]] = {}
    for port in SERVER_PORTS.get(path.name, (502,)):
        rows = _tshark(path, port, "modbus.mei == 14 && modbus.conformity_level",
                       "ip.src", "modbus.object_id", "modbus.object_str_value")
        for src, ids, values in rows:
            # Object values are comma-joined by tshark; ids say how many.
            id_list = ids.split(",")
            value_list = values.split(",", len(id_list) - 1)
            for object_id, value in zip(id_list, value_list):
                attribute = OBJECT_ATTRIBUTES.get(object_id)
                if attribute:
                    found.setdefault(src, {}).setdefault(attribute, set()).add(value)
    return found


@needs_tshark
@pytest.mark.skipif(not CAPTURES, reason="../shared/captures/modbus is not present")
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_every_modbus_device_is_listed_with_its_role_and_identity(path: Path) -> None:
    expected_roles = _roles_by_tshark(path)
    assert expected_roles, f"tshark sees no Modbus in {path.name}"
    assets = otdpi.build_inventory([path], protocols=["modbus"]).assets()

    by_ip = {ip: asset for asset in assets for ip in asset["ips"]}
    missing = sorted(set(expected_roles) - set(by_ip))
    assert not missing, f"{path.name}: no asset for {missing}"
    for ip, roles in expected_roles.items():
        ours = set(by_ip[ip]["protocols"]["modbus"]["roles"])
        assert roles <= ours, f"{path.name}: {ip} is {sorted(roles)} to tshark, {sorted(ours)} to us"

    for ip, attributes in _identity_by_tshark(path).items():
        identity = by_ip[ip]["identity"]
        for attribute, values in attributes.items():
            ours = {claim["value"] for claim in identity.get(attribute, ())}
            assert values <= ours, f"{path.name}: {ip} {attribute}: tshark {values}, ours {ours}"
