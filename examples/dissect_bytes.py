"""Decodes single Modbus/TCP PDUs from bytes, good and bad, without any capture."""

from __future__ import annotations

import otdpi

samples = {
    "read holding registers 0-1 of unit 1": "000100000006010300000002",
    "its answer, two registers": "000100000007010304000a0014",
    "an exception: illegal data address": "000200000003018302",
    "cut short mid-header": "0001000000",
}

for label, hex_bytes in samples.items():
    to_server = "answer" not in label and "exception" not in label
    for message in otdpi.dissect(bytes.fromhex(hex_bytes), "modbus", to_server=to_server):
        status = message.status
        detail = status.reason or status.name or ""
        print(f"{label}: {message.kind} {message.service} -> {status.state} {detail}".rstrip())
        if message.targets:
            print(f"    targets: {[tuple(t) for t in message.targets]}")
