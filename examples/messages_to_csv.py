"""Streams every message of a capture into CSV rows (frame, time, endpoints, service, status)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import otdpi

capture = sys.argv[1] if len(sys.argv) > 1 else str(
    Path(__file__).resolve().parents[1] / "fixtures" / "modbus_pymodbus.pcap")

writer = csv.writer(sys.stdout)
writer.writerow(["frame", "ts", "src", "dst", "protocol", "kind", "service", "action",
                 "status"])
for message in otdpi.read(capture):  # a generator: one message in memory at a time
    writer.writerow([message.frame, f"{message.ts:.6f}", message.src.ip, message.dst.ip,
                     message.protocol, message.kind, message.service, message.action,
                     message.status.state])
