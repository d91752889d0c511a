"""Time tshark and otdpi on one synthetic HSMS capture in one run; print a table.

The capture comes from ``make_hsms_capture.py`` (cached under the temporary
directory by packet count and seed). Each tool runs as its own child process,
``--repeat`` times; the table gives the median wall time, packets per second
and the child's own peak resident memory (``os.wait4``). tshark runs with
Decode As on port 5000 and prints one field per HSMS message, so it dissects
every message in full, as ``otdpi dissect`` does.

Usage: ``python benchmarks/run_hsms.py --packets 200000 --repeat 3``; paste the
table into ``docs/protocols/hsms.md``.
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

GENERATOR = Path(__file__).resolve().parent / "make_hsms_capture.py"
CACHE = Path(tempfile.gettempdir()) / "otdpi-bench"


def ensure_capture(packets: int, seed: int) -> tuple[Path, dict]:
    path = CACHE / f"hsms-{packets}-{seed}.pcap"
    stats_path = path.with_name(path.name + ".stats.json")
    if path.exists() and stats_path.exists():
        return path, json.loads(stats_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"generating {packets:,} packets into {path} ...", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--packets", str(packets), "--out", str(path),
         "--seed", str(seed)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    stats = json.loads(done.stdout)
    stats["bytes"] = path.stat().st_size
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    return path, stats


def measure(command: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit status of one child run."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    with open(os.devnull, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.DEVNULL, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path, stats = ensure_capture(args.packets, args.seed)
    otdpi = shutil.which("otdpi") or sys.executable
    otdpi_cmd = [otdpi] if otdpi != sys.executable else [sys.executable, "-m", "otdpi"]
    tools = {
        "tshark (Decode As hsms, one field per message)": [
            "tshark", "-n", "-r", str(path), "-d", "tcp.port==5000,hsms",
            "-T", "fields", "-e", "hsms.header.system",
        ],
        "otdpi dissect (JSON Lines to /dev/null)": [
            *otdpi_cmd, "dissect", str(path), "-o", os.devnull,
        ],
        "otdpi inventory (JSON to /dev/null)": [
            *otdpi_cmd, "inventory", str(path), "--format", "json", "-o", os.devnull,
        ],
    }  # fmt: skip
    rows = []
    for name, command in tools.items():
        runs = []
        for attempt in range(args.repeat):
            print(f"{name}: run {attempt + 1}/{args.repeat}", file=sys.stderr)
            runs.append(measure(command))
        if any(run[2] for run in runs):
            rows.append((name, None, None, None))
            continue
        seconds = statistics.median(run[0] for run in runs)
        rows.append(
            (name, seconds, stats["packets"] / seconds, max(r[1] for r in runs))
        )

    tshark_rate = rows[0][2]
    print(
        f"capture: {stats['packets']:,} packets, {stats['messages']:,} HSMS messages, "
        f"{stats['connections']} connections, {stats['bytes'] / 1e6:.1f} MB; "
        f"{args.repeat} runs each, median\n"
    )
    print("| tool | seconds | packets/s | vs tshark | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, rate, peak in rows:
        if seconds is None:
            print(f"| {name} | failed | | | |")
            continue
        ratio = f"{rate / tshark_rate:.2f}x" if tshark_rate else ""
        print(f"| {name} | {seconds:.2f} | {rate:,.0f} | {ratio} | {peak:.0f} |")
    print(
        f"\ncommand: python benchmarks/run_hsms.py --packets {args.packets} "
        f"--seed {args.seed} --repeat {args.repeat}"
    )


if __name__ == "__main__":
    main()
