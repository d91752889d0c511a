"""Measure otdpi inventory on ever larger captures: flat memory, and what --jobs 2 gains.

For each size the capture is generated (by ``make_modbus_capture.py``, in a child
process), measured and deleted again, so that a 10 GB run needs 10 GB of disk
for a while and none afterwards. Every measured command runs as its own child;
its peak resident size comes from ``wait4`` (for ``--jobs 2``, the largest of
its processes, since ``ru_maxrss`` is a maximum, not a sum). The figures and the
commands go to ``docs/benchmarks-scale.md``.

    python benchmarks/run_scale.py --gigabytes 10
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "benchmarks" / "make_modbus_capture.py"
DOCS = REPO / "docs" / "benchmarks-scale.md"
# The generator's traffic averages this many bytes per record, headers included.
BYTES_PER_PACKET = 123


def measure(command: list[str]) -> tuple[float, float, int, float, float]:
    """Wall seconds, peak RSS in MB, exit status, CPU seconds and load of one child run.

    CPU seconds are the child's and its waited-for workers' user plus system
    time. The load is the machine's one-minute load average when the run
    ends: a ``--jobs 2`` speed-up means something only when it is below the
    number of CPUs, since other work then leaves the second core free.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.stderr.close()
    return (seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
            usage.ru_utime + usage.ru_stime, os.getloadavg()[0])


def generate(path: Path, packets: int) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--packets", str(packets),
                    "--out", str(path), "--seed", "1"], check=True,
                   stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=10.0,
                        help="size of the largest capture (default 10)")
    parser.add_argument("--steps", type=int, default=4,
                        help="sizes measured, each four times the one before (default 4)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the captures are written while measured")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--docs", type=Path, default=DOCS,
                        help=f"the page to write (default {DOCS.relative_to(REPO)})")
    args = parser.parse_args(argv)

    otdpi = [sys.executable, "-m", "otdpi"]
    largest = int(args.gigabytes * 1e9 / BYTES_PER_PACKET)
    sizes = sorted({max(100_000, largest // 4 ** i) for i in range(args.steps)})
    rows = []
    for packets in sizes:
        path = args.workdir / f"otdpi_scale_{packets}.pcap"
        print(f"generating {packets:,} packets ...", file=sys.stderr, flush=True)
        generate(path, packets)
        size_gb = path.stat().st_size / 1e9
        try:
            runs = {"inventory": measure([*otdpi, "inventory", str(path)])}
            if packets == sizes[-1]:
                runs["inventory --jobs 2"] = measure(
                    [*otdpi, "inventory", "--jobs", "2", str(path)])
        finally:
            path.unlink()
        for tool, (seconds, peak_mb, status, cpu, load) in runs.items():
            rows.append((packets, size_gb, tool, seconds, peak_mb, status, cpu, load))
            print(f"{packets:>12,} packets {size_gb:6.2f} GB  {tool:<20} {seconds:8.1f} s "
                  f"{packets / seconds:>10,.0f} packets/s  {peak_mb:6.1f} MB  "
                  f"CPU {cpu:8.1f} s  load {load:4.1f}  status {status}",
                  file=sys.stderr, flush=True)

    single = next(r for r in rows if r[0] == sizes[-1] and r[2] == "inventory")
    double = next(r for r in rows if r[0] == sizes[-1] and r[2] == "inventory --jobs 2")
    speedup = single[3] / double[3]
    peaks = [r[4] for r in rows if r[2] == "inventory"]
    lines = [
        "# Scale benchmark",
        "",
        "Written by `python benchmarks/run_scale.py"
        + (f" --gigabytes {args.gigabytes:g}" if args.gigabytes != 10 else "")
        + (f" --steps {args.steps}" if args.steps != 4 else "")
        + "`; edit that script, not this page.",
        f"Last run: {datetime.date.today().isoformat()}, on {os.cpu_count()} CPUs, "
        f"CPython {platform.python_version()}.",
        "",
        "Synthetic Modbus/TCP captures from `benchmarks/make_modbus_capture.py`, each",
        "generated, measured with `otdpi inventory CAPTURE` (and, for the largest, with",
        "`otdpi inventory --jobs 2 CAPTURE`, one file split by flow hash), then deleted.",
        "Peak RSS is the largest process's, from `wait4`. CPU seconds are user plus",
        "system time of the command and its workers; load is the machine's one-minute",
        "load average as the command ended (above the CPU count, other work was",
        "competing for the cores and the `--jobs 2` figure says little).",
        "",
        "| packets | GB | command | seconds | packets/s | CPU seconds | load "
        "| peak RSS (MB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
        *[f"| {p:,} | {gb:.2f} | {tool} | {s:.1f} | {p / s:,.0f} | {cpu:.1f} "
          f"| {load:.1f} | {mb:.1f} |"
          for p, gb, tool, s, mb, _, cpu, load in rows],
        "",
        f"- Peak memory of one process from {sizes[0]:,} to {sizes[-1]:,} packets: "
        f"{min(peaks):.1f} to {max(peaks):.1f} MB.",
        f"- `--jobs 2` over one process on the largest capture: {speedup:.2f}x. Each of",
        "  the two workers reads the whole file and dissects half of its flows; a",
        "  frame of the other worker's flows costs it a look-up, not a decode, so the",
        "  gain is bounded by the share of time spent reading records.",
        "",
    ]
    if not args.no_docs:
        args.docs.write_text("\n".join(lines))
        print(f"wrote {args.docs}", file=sys.stderr)
    print("\n".join(lines))
    return 0 if all(r[5] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
