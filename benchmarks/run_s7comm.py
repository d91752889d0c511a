"""Time tshark and otdpi on one synthetic S7comm capture, in one run; print packets/s.

The capture comes from ``make_s7comm_capture.py`` (cached in the temp folder by
packet count and seed). Each tool runs as its own child process, timed around
the child:

* ``tshark -n -r CAP -Y s7comm -T fields -e s7comm.header.pduref``: tshark must
  dissect every S7comm PDU to filter and print it;
* ``otdpi dissect -p s7comm CAP``: every message as a JSON line, to /dev/null;
* ``python -c 'for m in otdpi.read(CAP, ["s7comm"]): pass'``: the library alone,
  messages built and dropped.

Usage: ``python benchmarks/run_s7comm.py [--packets N] [--repeat R]``. The
figures go into ``docs/protocols/s7comm.md`` by hand, with the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "make_s7comm_capture.py"
CACHE = Path(tempfile.gettempdir()) / "otdpi-bench"


def ensure_capture(packets: int, seed: int) -> tuple[Path, dict]:
    path = CACHE / f"s7comm-{packets}-{seed}.pcap"
    stats_path = path.with_name(path.name + ".json")
    if path.exists() and stats_path.exists():
        return path, json.loads(stats_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--packets",
            str(packets),
            "--out",
            str(path),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    stats_path.write_text(done.stdout)
    return path, json.loads(done.stdout)


def timed(command: list[str]) -> float:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path, stats = ensure_capture(args.packets, args.seed)
    otdpi_cli = shutil.which("otdpi") or "otdpi"
    commands = {
        "tshark 4.0 (-Y s7comm, one field)": [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            "s7comm",
            "-T",
            "fields",
            "-e",
            "s7comm.header.pduref",
        ],
        "otdpi dissect -p s7comm (JSON lines)": [
            otdpi_cli,
            "dissect",
            "-p",
            "s7comm",
            str(path),
        ],
        "otdpi.read, library only": [
            sys.executable,
            "-c",
            "import sys, otdpi\nfor _ in otdpi.read(sys.argv[1], ['s7comm']): pass",
            str(path),
        ],
    }
    if shutil.which("tshark") is None:
        del commands["tshark 4.0 (-Y s7comm, one field)"]
    print(
        f"capture: {path} ({stats['packets']:,} packets, about "
        f"{stats['approximate_pdus']:,} S7comm PDUs)"
    )
    results = {}
    for name, command in commands.items():
        seconds = statistics.median(timed(command) for _ in range(args.repeat))
        results[name] = seconds
        print(
            f"{name:40s} {seconds:7.2f} s"
            f"  {stats['packets'] / seconds:>10,.0f} packets/s"
        )
    tshark = results.get("tshark 4.0 (-Y s7comm, one field)")
    if tshark:
        for name, seconds in results.items():
            print(f"{name:40s} {tshark / seconds:5.2f} x tshark's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
