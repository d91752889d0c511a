"""Time tshark and otdpi on synthetic DICOM and HL7/MLLP captures; print packets/second.

One run of each command per protocol, on the same generated capture
(:mod:`make_health_capture`), each in its own child process, wall time taken
around it. tshark decodes the protocol's fields to text (``-T fields``);
otdpi runs ``dissect`` (JSON Lines to /dev/null) and ``inventory``. The
figures go to docs/protocols/dicom.md and hl7.md by hand.

    python benchmarks/run_health.py --packets 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_health_capture import write_capture  # noqa: E402

TSHARK_FIELDS = {
    "dicom": [
        "dicom.pdu.type",
        "dicom.pdu.len",
        "dicom.assoc.ae.calling",
        "dicom.pdv.ctx",
        "dicom.pdv.flags",
    ],
    "hl7": ["hl7.message.type", "hl7.event.type", "hl7.segment"],
}
TSHARK_OPTIONS = {
    "dicom": ["-d", "tcp.port==104,dicom"],
    "hl7": ["-d", "tcp.port==2575,hl7"],
}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--protocol", choices=("dicom", "hl7"), action="append")
    args = parser.parse_args()
    otdpi = [sys.executable, "-m", "otdpi"]
    folder = Path(tempfile.mkdtemp(prefix="otdpi-health-bench-"))
    for protocol in args.protocol or ("dicom", "hl7"):
        capture = folder / f"{protocol}.pcap"
        packets = write_capture(str(capture), protocol, args.packets)
        commands = {
            "otdpi dissect": [
                *otdpi,
                "dissect",
                "-p",
                protocol,
                str(capture),
                "-o",
                os.devnull,
            ],
            "otdpi inventory": [
                *otdpi,
                "inventory",
                "-p",
                protocol,
                str(capture),
                "-o",
                str(folder / "inventory.json"),
            ],
        }
        if shutil.which("tshark"):
            fields = [a for f in TSHARK_FIELDS[protocol] for a in ("-e", f)]
            commands = {
                "tshark -T fields": [
                    "tshark",
                    "-n",
                    "-r",
                    str(capture),
                    *TSHARK_OPTIONS[protocol],
                    "-T",
                    "fields",
                    *fields,
                ],
                **commands,
            }
        print(f"{protocol}: {packets:,} packets, {capture.stat().st_size:,} bytes")
        rates = {}
        for name, command in commands.items():
            seconds = timed(command)
            rates[name] = packets / seconds
            print(f"  {name:<18} {seconds:7.2f} s {rates[name]:>10,.0f} packets/s")
        if "tshark -T fields" in rates:
            for name in ("otdpi dissect", "otdpi inventory"):
                print(
                    f"  {name} / tshark: {rates[name] / rates['tshark -T fields']:.2f}x"
                )
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
