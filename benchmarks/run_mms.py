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


def best_of(command: list[str], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``repeat`` runs.

    CPU time comes from ``os.wait4`` for that one child, so it does not count
    other processes; on a shared machine it moves much less than wall time.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        child = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - start)
        if status != 0:
            raise SystemExit(f"{command[0]} failed with status {status}")
        cpus.append(usage.ru_utime + usage.ru_stime)
    return min(walls), min(cpus)


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
    print(
        f"{'tool':28} {'wall s':>7} {'packets/s':>10} {'MMS pkt/s':>10} "
        f"{'CPU s':>6} {'MMS pkt/CPU s':>14}"
    )
    for name, command in commands.items():
        wall, cpu = best_of(command, args.repeat)
        print(
            f"{name:28} {wall:7.2f} {packets / wall:10,.0f} {mms / wall:10,.0f} "
            f"{cpu:6.2f} {mms / cpu:14,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
