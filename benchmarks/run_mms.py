"""Time otdpi and tshark on one synthetic MMS capture; print packets per second.

Usage: ``python benchmarks/run_mms.py [--packets 120000] [--repeat 3]``. The
capture comes from ``make_mms_capture.py`` (cached in the temp directory by
size and seed). Each tool runs as its own child process, one after the
other, ``--repeat`` times; the best wall time counts. Measured:

* ``otdpi dissect -p mms`` writing JSON Lines to /dev/null (every message);
* ``otdpi inventory -p mms`` (decoding without writing messages);
* in-process ``otdpi.read`` over the capture (no JSON), the decoder alone;
* ``tshark -r CAPTURE -Y mms -T fields -e mms.invokeID`` (tshark decodes
  every layer to filter, printing one field).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(tempfile.gettempdir()) / "otdpi-bench"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_mms_capture", HERE / "make_mms_capture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    capture = CACHE / f"mms-{args.packets}-{args.seed}.pcap"
    stats = _generator().write_capture(str(capture), args.packets, args.seed)
    packets, mms = stats["packets"], stats["mms_packets"]
    python = sys.executable
    commands = {
        "otdpi dissect -p mms": [
            python,
            "-m",
            "otdpi",
            "dissect",
            "-p",
            "mms",
            str(capture),
        ],
        "otdpi inventory -p mms": [
            python,
            "-m",
            "otdpi",
            "inventory",
            "-p",
            "mms",
            str(capture),
        ],
        "otdpi.read (in process)": [
            python,
            "-c",
            "import sys, otdpi\nfor _ in otdpi.read(sys.argv[1], ['mms']): pass",
            str(capture),
        ],
    }
    if shutil.which("tshark"):
        commands["tshark -Y mms -T fields"] = [
            "tshark",
            "-n",
            "-r",
            str(capture),
            "-Y",
            "mms",
            "-T",
            "fields",
            "-e",
            "mms.invokeID",
        ]
    print(
        f"capture: {capture} ({packets} packets, {mms} carrying MMS, "
        f"{os.path.getsize(capture) / 1e6:.1f} MB)"
    )
    print(f"{'tool':28} {'seconds':>8} {'packets/s':>11} {'MMS packets/s':>14}")
    for name, command in commands.items():
        seconds = best_of(command, args.repeat)
        print(
            f"{name:28} {seconds:8.2f} {packets / seconds:11,.0f} "
            f"{mms / seconds:14,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
