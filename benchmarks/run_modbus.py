"""Time tshark and otdpi on one synthetic Modbus/TCP capture; write docs/benchmarks.md.

Every measured command runs as its own child process; its peak resident memory
comes from ``os.wait4`` for that one child (and whatever it waited for), so one
run's peak never leaks into the next, as it would with the running maximum of
``RUSAGE_CHILDREN``. Wall time is taken around the child. Children run without
PYTHONUNBUFFERED (some shells export it), because unbuffered writes would slow
``otdpi dissect`` in a way no user sees; only the start-up probe sets it, so that
the first JSON line leaves the child as soon as it is written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "make_modbus_capture.py"

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
CACHE = Path(tempfile.gettempdir()) / "otdpi-bench"
FLATNESS_SMALL = 100_000
STARTUP_LAUNCHES = 11

TARGET_INVENTORY_RATIO = 4.0
TARGET_DISSECT_RATIO = 2.0
TARGET_PEAK_MB = 64.0
TARGET_STARTUP_S = 0.2


@dataclass
class Run:
    """One measured child process."""

    seconds: float
    cpu_seconds: float
    peak_mb: float
    returncode: int
    stderr_tail: str


@dataclass
class Result:
    """The figures of one tool on one capture, over ``--repeat`` runs."""

    tool: str
    command: list[str]
    runs: list[Run]

    @property
    def ok(self) -> bool:
        return all(run.returncode == 0 for run in self.runs)

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(run.peak_mb for run in self.runs)


# -- captures -------------------------------------------------------------------


def count_records(path: Path) -> int:
    """Records in a classic pcap, found by walking the record headers.

    Only the 16-byte record headers are read, through seeks: mapping or reading
    the whole file would raise this process's peak resident size, and a child
    started with vfork inherits that peak in the ``ru_maxrss`` that ``wait4``
    reports, which made every child look as large as the capture.
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            header = struct.Struct("<8xI4x")
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            header = struct.Struct(">8xI4x")
        else:
            raise SystemExit(f"{path}: not a classic pcap file (pcapng is not counted)")
        size = os.fstat(handle.fileno()).st_size
        offset, records = 24, 0
        while offset + 16 <= size:
            handle.seek(offset)
            offset += 16 + header.unpack(handle.read(16))[0]
            records += 1
        return records


def ensure_capture(path: Path, packets: int, seed: int) -> dict:
    """Generate ``path`` unless a finished one with its stats file is there already.

    The stats file is written only after the capture is complete, so a run that
    was interrupted half-way never leaves a truncated capture to be reused.
    """
    stats_path = path.with_name(path.name + ".stats.json")
    if path.exists() and stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if stats.get("packets") == packets and stats.get("seed") == seed:
            return stats
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {packets:,} packets into {path} ...", file=sys.stderr)
    # Generate in a child process: generating grows this process, and every
    # child forked from a large parent starts with the parent's resident size,
    # which wait4 would then report as the child's peak.
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--packets", str(packets),
         "--out", str(path), "--seed", str(seed)],
        check=True, capture_output=True, text=True,
    )
    generated = json.loads(done.stdout)
    stats = {
        "packets": generated["packets"],
        "seed": seed,
        "adus": generated["adus"],
        "connections": generated["connections"],
        "exceptions": generated["exceptions"],
        "retransmissions": generated["retransmissions"],
        "pure_acks": generated["pure_acks"],
        "pipelined_segments": generated["pipelined_segments"],
        "bytes": path.stat().st_size,
        "generation_seconds": generated["seconds"],
    }
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    return stats


# -- measuring children ---------------------------------------------------------


def child_env(unbuffered: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    # Some sandboxes set PYTHONDONTWRITEBYTECODE, so that every launch compiles
    # every module from source (about 0.1 s here); an installed otdpi has its
    # bytecode cached, and that is what a user starts.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def measure(command: list[str], stdout_path: str = os.devnull) -> Run:
    """Run ``command`` to the end; its wall time and its own peak RSS."""
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=child_env())
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    # ru_maxrss is in KiB on Linux.
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, child.returncode, tail)


def measure_tools(commands: dict[str, list[str]], repeat: int) -> dict[str, Result]:
    """Run every command ``repeat`` times, the tools taking turns.

    Taking turns, rather than running one tool's repeats back to back, spreads
    whatever else the machine is doing over all tools alike, so their ratio
    holds even when the absolute figures drift.
    """
    results = {tool: Result(tool, command, []) for tool, command in commands.items()}
    for attempt in range(repeat):
        for tool, command in commands.items():
            result = results[tool]
            if not result.ok:
                continue
            print(f"  {tool}: run {attempt + 1}/{repeat} ...", file=sys.stderr, flush=True)
            run = measure(command)
            result.runs.append(run)
            if run.returncode != 0:
                print(
                    f"  {tool} failed with status {run.returncode}:\n{run.stderr_tail}",
                    file=sys.stderr,
                )
    return results


def time_to_first_line(command: list[str]) -> float | None:
    """Seconds from launching ``command`` until a first line arrives on its stdout."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(unbuffered=True),
    )
    line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    child.kill()
    child.wait()
    child.stdout.close()
    return elapsed if line else None


# -- the machine ----------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    tshark = "not installed"
    if shutil.which("tshark"):
        tshark = subprocess.run(
            ["tshark", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    from otdpi import __version__

    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": cpu,
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "tshark": tshark,
        "otdpi": f"{__version__} (checkout {commit or 'unknown'}, uncommitted "
        "changes included)",
    }


# -- reporting ------------------------------------------------------------------


def otdpi_command() -> list[str]:
    script = shutil.which("otdpi")
    return [script] if script else [sys.executable, "-m", "otdpi"]


def show_command(command: list[str], capture: Path, label: str) -> str:
    shown = ["otdpi" if part == otdpi_command()[0] else part for part in command]
    return " ".join(label if part == str(capture) else part for part in shown)


def table(results: list[Result], packets: int) -> str:
    tshark = next((r for r in results if r.tool == "tshark" and r.ok), None)
    lines = [
        "| tool | seconds | packets/s | vs tshark | CPU seconds | packets/CPU-s "
        "| vs tshark (CPU) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if not result.ok:
            lines.append(f"| {result.tool} | failed | | | | | | |")
            continue
        rate = packets / result.seconds
        cpu_rate = packets / result.cpu_seconds
        ratio = f"{rate / (packets / tshark.seconds):.2f}x" if tshark else "n/a"
        cpu_ratio = (
            f"{cpu_rate / (packets / tshark.cpu_seconds):.2f}x" if tshark else "n/a"
        )
        lines.append(
            f"| {result.tool} | {result.seconds:.2f} | {rate:,.0f} | {ratio} "
            f"| {result.cpu_seconds:.2f} | {cpu_rate:,.0f} | {cpu_ratio} "
            f"| {result.peak_mb:.1f} |"
        )
    return "\n".join(lines)


def verdicts(
    results: dict[str, Result],
    packets: int,
    startup: float | None,
    flatness: dict[int, float],
) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows."""

    def rate(tool: str) -> float | None:
        result = results.get(tool)
        return packets / result.seconds if result and result.ok else None

    rows = []
    tshark_rate = rate("tshark")
    for tool, target in (
        ("otdpi inventory", TARGET_INVENTORY_RATIO),
        ("otdpi dissect", TARGET_DISSECT_RATIO),
    ):
        name = f"{tool} at least {target:g}x tshark packets/s"
        if tshark_rate is None or rate(tool) is None:
            rows.append((name, "not measured", "not measured"))
            continue
        ratio = rate(tool) / tshark_rate
        rows.append((name, f"{ratio:.2f}x", "met" if ratio >= target else "NOT met"))

    peaks = {
        tool: r.peak_mb
        for tool, r in results.items()
        if tool.startswith("otdpi") and r.ok
    }
    peaks.update({f"otdpi inventory, {n:,} packets": mb for n, mb in flatness.items()})
    if peaks:
        worst = max(peaks.values())
        measured = ", ".join(f"{tool} {mb:.1f} MB" for tool, mb in peaks.items())
        rows.append(
            (
                f"peak memory at most {TARGET_PEAK_MB:g} MB whatever the length",
                measured,
                "met" if worst <= TARGET_PEAK_MB else "NOT met",
            )
        )
    else:
        rows.append(
            (
                f"peak memory at most {TARGET_PEAK_MB:g} MB",
                "not measured",
                "not measured",
            )
        )

    name = f"start-up to first message under {TARGET_STARTUP_S:g} s"
    dissect = results.get("otdpi dissect")
    if dissect is None or not dissect.ok:
        rows.append((name, "not measured", "not measured"))
    elif startup is None:
        rows.append((name, "no output", "NOT met"))
    else:
        rows.append(
            (
                name,
                f"{startup:.3f} s (median of {STARTUP_LAUNCHES})",
                "met" if startup < TARGET_STARTUP_S else "NOT met",
            )
        )
    return rows


def capture_description(stats: dict) -> list[str]:
    packets = stats["packets"]
    if "connections" not in stats:
        size = stats["bytes"] / 1e6
        return [
            f"A capture given with `--capture`: {packets:,} packets ({size:.0f} MB)."
        ]
    text = (
        f"`make_modbus_capture.py --packets {packets} --seed {stats['seed']}`:"
        f" {packets:,} packets ({stats['bytes'] / 1e6:.0f} MB) of synthetic Modbus/TCP"
        f" on port 502 between 5 clients and 20 servers over {stats['connections']:,}"
        f" TCP connections, carrying {stats['adus']:,} Modbus ADUs: mostly FC3/FC4"
        " reads of 10 to 125 registers, with FC1/FC2 reads and FC5/FC6/FC16 writes,"
        f" {stats['exceptions']:,} exception responses, {stats['pure_acks']:,} pure"
        f" ACKs, {stats['retransmissions']:,} retransmitted segments and"
        f" {stats['pipelined_segments']:,} segments holding two ADUs. The generator's"
        " docstring describes the traffic model."
    )
    return textwrap.wrap(text, 88)


def write_docs(
    path: Path,
    *,
    machine_info: dict[str, str],
    capture_stats: dict,
    commands: list[str],
    results_table: str,
    target_rows: list[tuple[str, str, str]],
    startup_runs: list[float],
    flatness: dict[int, float],
    repeat: int,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run_modbus.py`; edit that script, not this",
        "page, and re-run it to refresh the figures.",
        f"Last run: {datetime.date.today().isoformat()}.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine_info.items()],
        "",
        "## Capture",
        "",
        *capture_description(capture_stats),
        "",
        "## Commands",
        "",
        "Each command runs as its own child process, with standard output sent to",
        "`/dev/null`. Seconds are wall-clock time"
        + (f", the median of {repeat} runs, the tools taking turns" if repeat > 1 else "")
        + "; packets/s is the number of records in",
        "the capture divided by those seconds. CPU seconds are the child's user",
        "plus system time, which other work on the machine does not inflate as it",
        "does wall time; the targets are judged on wall time. Peak RSS is the child's own",
        "maximum resident set size, from `wait4`. `otdpi inventory` also writes its",
        "JSON at the end, whose counters are checked against the ADUs the generator",
        "wrote, so a fast run that misread the capture would not pass unnoticed.",
        "",
        "```sh",
        *commands,
        "```",
        "",
        "## Results",
        "",
        results_table,
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *[
            f"| {target} | {measured} | {verdict} |"
            for target, measured, verdict in target_rows
        ],
        "",
    ]
    if startup_runs:
        lines += [
            "Start-up is the time from launching `otdpi dissect CAPTURE` until its",
            "first JSON line can be read from its standard output (a pipe; the child",
            "runs with `PYTHONUNBUFFERED=1` so the line is not held in a buffer).",
            "One uncounted launch comes first, since tshark's run has just pushed",
            "otdpi's files out of the page cache.",
            "Launches: " + ", ".join(f"{s:.3f}" for s in startup_runs) + " s.",
            "",
        ]
    if flatness:
        lines += [
            "Memory flatness, peak RSS of `otdpi inventory` by capture length: "
            + ", ".join(f"{n:,} packets {mb:.1f} MB" for n, mb in flatness.items())
            + ".",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


# -- main -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packets",
        type=int,
        default=1_000_000,
        help="length of the generated capture (default 1,000,000)",
    )
    parser.add_argument(
        "--capture",
        type=Path,
        help=f"capture to use, generated there if missing (default: under {CACHE})",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per tool; the median time is reported",
    )
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument(
        "--skip-flatness",
        action="store_true",
        help=f"do not also run otdpi inventory on {FLATNESS_SMALL:,} packets",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DOCS,
        help="page to write (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-docs", action="store_true", help="only print the table")
    args = parser.parse_args(argv)

    capture = args.capture or CACHE / f"modbus_{args.packets}_seed{args.seed}.pcap"
    stats_path = Path(f"{capture}.stats.json")
    if args.capture and capture.exists():
        # A capture the user gave is measured as it is, never regenerated.
        packets = count_records(capture)
        capture_stats = (
            json.loads(stats_path.read_text())
            if stats_path.exists()
            else {"packets": packets, "seed": "unknown", "adus": 0}
        )
    else:
        capture_stats = ensure_capture(capture, args.packets, args.seed)
        packets = count_records(capture)
    if capture_stats["packets"] != packets:
        raise SystemExit(
            f"{capture}: {packets} records, but {stats_path} says "
            f"{capture_stats['packets']}"
        )
    capture_stats["bytes"] = capture.stat().st_size

    otdpi = otdpi_command()
    inventory_json = CACHE / "inventory.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    commands = {
        "tshark": [
            "tshark",
            "-r",
            str(capture),
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "mbtcp.trans_id",
            "-e",
            "modbus.func_code",
            "-e",
            "modbus.reference_num",
        ],
        "otdpi inventory": [
            *otdpi,
            "inventory",
            str(capture),
            "-o",
            str(inventory_json),
        ],
        "otdpi dissect": [*otdpi, "dissect", str(capture), "-o", os.devnull],
    }
    if args.skip_tshark or not shutil.which("tshark"):
        del commands["tshark"]

    print(f"measuring on {capture} ({packets:,} packets)", file=sys.stderr)
    results = measure_tools(commands, args.repeat)

    # The inventory's counters say whether otdpi decoded what the generator wrote;
    # a fast run that misreads the capture would prove nothing.
    if results["otdpi inventory"].ok and capture_stats["adus"]:
        counters = json.loads(inventory_json.read_text()).get("counters", {})
        decoded = counters.get("messages")
        bad = counters.get("messages_malformed", 0)
        if decoded != capture_stats["adus"] or bad:
            print(
                f"warning: otdpi decoded {decoded} messages ({bad} malformed); the "
                f"capture holds {capture_stats['adus']} ADUs",
                file=sys.stderr,
            )

    startup_runs: list[float] = []
    if results["otdpi dissect"].ok:
        # One launch first, not counted: it brings otdpi's modules back into the
        # page cache after tshark's run, as they are for a user working with it.
        time_to_first_line([*otdpi, "dissect", str(capture)])
        for _ in range(STARTUP_LAUNCHES):
            seconds = time_to_first_line([*otdpi, "dissect", str(capture)])
            if seconds is not None:
                startup_runs.append(seconds)
    startup = statistics.median(startup_runs) if startup_runs else None

    flatness: dict[int, float] = {}
    if (
        not args.skip_flatness
        and packets > FLATNESS_SMALL
        and results["otdpi inventory"].ok
    ):
        small = CACHE / f"modbus_{FLATNESS_SMALL}_seed{args.seed}.pcap"
        ensure_capture(small, FLATNESS_SMALL, args.seed)
        small_run = measure([*otdpi, "inventory", str(small)])
        if small_run.returncode == 0:
            flatness[FLATNESS_SMALL] = small_run.peak_mb
        flatness[packets] = results["otdpi inventory"].peak_mb

    ordered = list(results.values())
    results_table = table(ordered, packets)
    target_rows = verdicts(results, packets, startup, flatness)
    print()
    print(f"{packets:,} packets, {capture_stats['bytes'] / 1e6:.0f} MB")
    print()
    print(results_table)
    print()
    for target, measured, verdict in target_rows:
        print(f"- {target}: {measured} -> {verdict}")
    if startup_runs:
        print(f"- start-up launches: {', '.join(f'{s:.3f}' for s in startup_runs)} s")

    if not args.no_docs:
        label = f"modbus_{packets}.pcap"
        shown = [show_command(command, capture, label) for command in commands.values()]
        shown = [line.replace(str(inventory_json), "inventory.json") for line in shown]
        if "tshark" in commands:
            shown[0] += " > /dev/null"
        shown.append(
            f"otdpi dissect {label} | head -1   # start-up, {STARTUP_LAUNCHES} launches"
        )
        if flatness:
            shown.append(
                f"otdpi inventory modbus_{FLATNESS_SMALL}.pcap   # memory flatness"
            )
        generator = "python benchmarks/make_modbus_capture.py"
        generate = f"{generator} --packets {packets} --out {label}"
        write_docs(
            args.docs,
            machine_info=machine(),
            capture_stats=capture_stats,
            commands=[generate, *shown],
            results_table=results_table,
            target_rows=target_rows,
            startup_runs=startup_runs,
            flatness=flatness,
            repeat=args.repeat,
        )
        print(f"\nwrote {args.docs}", file=sys.stderr)
    return 0 if all(result.ok for result in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
