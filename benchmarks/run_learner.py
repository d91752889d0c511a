"""Packets/second of dissect alone next to dissect + learn + score, in one run.

Run: ``python benchmarks/run_learner.py [--packets 1000000]``. The captures are
the synthetic Modbus/TCP ones of ``make_modbus_capture.py`` (twenty servers, five
clients), cached under the temporary directory: its random transactions (every
connection a random client and server, random function codes, ranges and
values: a stress test of the learner's novelty paths) and its periodic polling
(fixed poll lists on fixed cycles: what a learner meets on a plant), measured
one after the other; ``--traffic`` picks one. Both pipelines run in this one
process, alternately, each ``--repeat`` times, and the best time of each is kept.
Times are CPU time of this process (``time.process_time``), so that other work
on a shared machine does not count; the machine has 2 cores shared by others.
The learner runs as ``otdpi watch`` does: it learns for the first
``--learn-share`` of the capture's time span, then scores every message and goes
on learning. The per-device state size is the compact JSON of the device's index
and of every relationship it is part of.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "make_modbus_capture.py"


def _capture(packets: int, traffic: str = "random") -> Path:
    name = f"modbus_{packets}_seed1.pcap"
    if traffic != "random":
        name = f"modbus_{traffic}_{packets}_seed1.pcap"
    path = Path(tempfile.gettempdir()) / "otdpi-bench" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = importlib.util.spec_from_file_location("make_modbus_capture", GENERATOR)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        module.write_capture(str(path), packets, seed=1, traffic=traffic)
    return path


def dissect_only(path: Path) -> tuple[float, int]:
    from otdpi.engine import Engine

    engine = Engine()
    start = time.process_time()
    for _ in engine.messages(path):
        pass
    return time.process_time() - start, engine.counters["packets"]


def dissect_learn_score(path: Path, learn_for: float):
    from otdpi.learner import Detector, feed_captures

    detector = Detector(learn_for=learn_for)
    start = time.process_time()
    engine = feed_captures(detector, [path])
    return time.process_time() - start, engine.counters["packets"], detector


def measure(path: Path, repeat: int, learn_share: float) -> None:
    """Time both pipelines on one capture, alternately, and print the results."""
    from otdpi.capture import open_capture

    with open_capture(path) as reader:
        stamps = [r[1] for r in reader]
    learn_for = (stamps[-1] - stamps[0]) * learn_share

    plain, full = [], []
    detector = None
    for _ in range(repeat):
        seconds, packets = dissect_only(path)
        plain.append(seconds)
        seconds, packets, detector = dissect_learn_score(path, learn_for)
        full.append(seconds)
    best_plain, best_full = min(plain), min(full)
    # Each repeat's own share too: on a loaded machine the pairs show the spread.
    shares = [100 * (1 - p / f) for p, f in zip(plain, full)]
    sizes = [
        detector.baseline.device_state_size(ip) for ip in detector.baseline.devices
    ]
    print(
        f"capture: {path} ({packets} packets, {len(detector.baseline.devices)} devices,"
        f" {len(detector.baseline.relations)} relationships)"
    )
    print(
        f"dissect alone:             {packets / best_plain:>10,.0f} packets/s "
        f"({best_plain:.2f} s)"
    )
    print(
        f"dissect + learn + score:   {packets / best_full:>10,.0f} packets/s "
        f"({best_full:.2f} s)"
    )
    print(
        f"learner share of the total: {100 * (1 - best_plain / best_full):.1f} % "
        f"(target at most 33 %); per repeat: "
        + ", ".join(f"{share:.1f} %" for share in shares)
    )
    print(
        f"alerts: {len(detector.alerts)}; state per device: median "
        f"{statistics.median(sizes) / 1024:.1f} KB, max {max(sizes) / 1024:.1f} KB "
        f"(target at most 64 KB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--learn-share", type=float, default=0.2)
    parser.add_argument(
        "--traffic",
        choices=("random", "polling", "both"),
        default="both",
        help="which synthetic capture: random transactions, periodic polling, or "
        "both, one after the other (default)",
    )
    parser.add_argument(
        "--capture", type=Path, help="measure this capture instead of the synthetic one"
    )
    args = parser.parse_args()
    if args.capture:
        paths = [args.capture]
    else:
        kinds = ("random", "polling") if args.traffic == "both" else (args.traffic,)
        paths = [_capture(args.packets, kind) for kind in kinds]
    for n, path in enumerate(paths):
        if n:
            print()
        measure(path, args.repeat, args.learn_share)


if __name__ == "__main__":
    main()
