"""Time tshark and otdpi on one synthetic DNP3 capture; print packets/s side by side.

``python benchmarks/run_dnp3.py [--packets 200000] [--repeat 3]`` generates the
capture once (``benchmarks/make_dnp3_capture.py``, cached under the temporary
directory), then runs, each as a child process timed from the outside:

* tshark decoding DNP3 fully and printing a few fields of every frame;
* ``otdpi inventory`` (the whole pipeline: capture reading, TCP reassembly,
  DNP3 link framing with every header and block CRC checked, transport
  reassembly, application and object decoding, inventory);
* ``otdpi dissect`` (the same, writing every message as JSON Lines).

It prints a Markdown table (best of ``--repeat`` runs) to paste into
``docs/protocols/dnp3.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "make_dnp3_capture.py"
CACHE = Path(tempfile.gettempdir()) / "otdpi-bench"


def ensure_capture(packets: int, seed: int) -> tuple[Path, dict]:
    path = CACHE / f"dnp3_{packets}_{seed}.pcap"
    stats_path = path.with_name(path.name + ".stats.json")
    if path.exists() and stats_path.exists():
        return path, json.loads(stats_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"generating {packets:,} packets into {path} ...", file=sys.stderr)
    done = subprocess.run([sys.executable, str(GENERATOR), "--packets", str(packets),
                           "--out", str(path), "--seed", str(seed)],
                          check=True, capture_output=True, text=True)
    stats_path.write_text(done.stdout)
    return path, json.loads(done.stdout)


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one child run.

    The CPU time, from ``os.wait4`` for that child alone, is the steadier
    figure on a machine other jobs share; both are printed.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def otdpi_command() -> list[str]:
    script = shutil.which("otdpi")
    return [script] if script else [sys.executable, "-m", "otdpi"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    capture, stats = ensure_capture(args.packets, args.seed)
    packets = stats["packets"]
    otdpi = otdpi_command()
    commands = {
        "otdpi inventory": [*otdpi, "inventory", str(capture), "-o", os.devnull,
                            "--format", "json"],
        "otdpi dissect": [*otdpi, "dissect", str(capture), "-o", os.devnull],
    }
    if shutil.which("tshark"):
        commands = {"tshark": ["tshark", "-n", "-r", str(capture), "-T", "fields",
                               "-e", "frame.number", "-e", "dnp3.src",
                               "-e", "dnp3.al.func", "-e", "dnp3.al.obj"],
                    **commands}

    best: dict[str, tuple[float, float]] = {}
    for tool, command in commands.items():
        walls, cpus = [], []
        for attempt in range(args.repeat):
            print(f"  {tool}: run {attempt + 1}/{args.repeat}", file=sys.stderr)
            wall, cpu = measure(command)
            walls.append(wall)
            cpus.append(cpu)
        best[tool] = (min(walls), min(cpus))

    tshark = best.get("tshark")
    print(f"capture: {packets:,} DNP3 packets, {stats['frames']:,} link frames, "
          f"{stats['fragments']:,} application fragments, {stats['pairs']} "
          "master/outstation pairs")
    print()
    print(f"| tool (best of {args.repeat}) | wall s | packets/s (wall) | vs tshark "
          "| CPU s | packets/s (CPU) | vs tshark |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool, (wall, cpu) in best.items():
        wall_ratio = f"{tshark[0] / wall:.1f}x" if tshark else "n/a"
        cpu_ratio = f"{tshark[1] / cpu:.1f}x" if tshark else "n/a"
        print(f"| {tool} | {wall:.2f} | {packets / wall:,.0f} | {wall_ratio} "
              f"| {cpu:.2f} | {packets / cpu:,.0f} | {cpu_ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
