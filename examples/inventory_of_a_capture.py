"""Builds the asset inventory of a capture from Python and prints who each device claims to be."""

from __future__ import annotations

import sys
from pathlib import Path

import otdpi

capture = sys.argv[1] if len(sys.argv) > 1 else str(
    Path(__file__).resolve().parents[1] / "fixtures" / "modbus_pymodbus.pcap")

for asset in otdpi.build_inventory(capture).assets():
    protocols = ", ".join(f"{name} {'/'.join(info['roles'])}"
                          for name, info in asset["protocols"].items())
    print(f"{', '.join(asset['ips']) or asset['key']}: {asset['role']} ({protocols})")
    for attribute, claims in asset["identity"].items():
        first = claims[0]
        print(f"    {attribute} = {first['value']!r}  "
              f"[{first['protocol']}, frame {first['frame']}, seen {first['seen']}x]")
