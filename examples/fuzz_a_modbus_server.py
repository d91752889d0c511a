"""Fuzzes a pymodbus server that the harness starts on loopback, for a few hundred cases.

The same campaign the CLI runs (``otdpi fuzz run modbus --recipe pymodbus ...``):
valid and mutated requests built from the Modbus definitions, every reply judged
by otdpi's own dissector, findings kept in an SQLite file with their bytes.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

from otdpi.cli import main

with socket.socket() as probe:  # a free loopback port for the server
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]

cases = sys.argv[1] if len(sys.argv) > 1 else "300"
with tempfile.TemporaryDirectory() as folder:
    findings = Path(folder) / "findings.sqlite"
    status = main(["fuzz", "run", "modbus", "--target", f"127.0.0.1:{port}",
                   "--recipe", "pymodbus", "--max-cases", cases, "--max-time", "60",
                   "--post-time", "10", "--no-progress", "--db", str(findings)])
    main(["fuzz", "findings", "--db", str(findings)])
sys.exit(status)
