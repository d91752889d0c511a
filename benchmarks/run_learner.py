"""Packets/second of dissect alone next to dissect + learn + score, in one run.

Run: ``python benchmarks/run_learner.py [--packets 1000000]``. The captures are
the synthetic Modbus/TCP ones of ``make_modbus_capture.py`` (twenty servers, five
clients), cached under the temporary directory: its random transactions (every
connection a random client and server, random function codes, ranges and
values: a stress test of the learner's novelty paths) and its periodic polling
(fixed poll lists on fixed cycles: what a learner meets on a plant), measured
one after the other; ``--traffic`` picks one.

The two pipelines run in this one process *in lockstep*: each reads the whole
capture, but they take turns of ``--turn`` messages (20,000: a tenth of a
second or so), and each turn is timed in CPU time of the process
(``time.process_time``). The speed of this shared two-core machine drifts by
a third from one second to the next (other machines' work on the same host);
taking turns exposes both pipelines to the same drift, where two separate
runs of several seconds each do not. A turn is long enough that neither
pipeline's caches are cold for more than a sliver of it. The learner side is
what ``feed_captures`` does: every Message and a connection event per ended
flow into ``Detector.feed``, then ``Detector.finish``; it learns for the first
``--learn-share`` of the capture's time span, then scores every message and
goes on learning, as ``otdpi watch`` does. ``--repeat`` runs are made and the
median share is given, with each run's. The per-device state size is the
compact JSON of the device's index and of every relationship it is part of.
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


def lockstep(path: Path, learn_for: float, turn: int):
    """CPU seconds of dissect alone and of dissect + learn + score over ``path``,
    the two taking turns of ``turn`` messages; packets; the detector."""
    from otdpi.engine import Engine
    from otdpi.learner import Detector, connection_event

    clock = time.process_time
    plain_engine = Engine()
    plain = iter(plain_engine.messages(path))
    ended: list = []
    full_engine = Engine(on_flow_end=ended.append)
    detector = Detector(learn_for=learn_for)
    feed = detector.feed
    full = iter(full_engine.messages(path))
    plain_seconds = full_seconds = 0.0
    plain_done = full_done = False
    detector.new_capture()
    while not (plain_done and full_done):
        if not plain_done:
            start = clock()
            count = 0
            for _ in plain:
                count += 1
                if count == turn:
                    break
            else:
                plain_done = True
            plain_seconds += clock() - start
        if not full_done:
            start = clock()
            count = 0
            for message in full:
                feed(message)
                if ended:
                    for flow in ended:
                        feed(connection_event(flow))
                    ended.clear()
                count += 1
                if count == turn:
                    break
            else:
                for flow in ended:
                    feed(connection_event(flow))
                ended.clear()
                detector.finish()
                full_done = True
            full_seconds += clock() - start
    assert plain_engine.counters["packets"] == full_engine.counters["packets"]
    return plain_seconds, full_seconds, full_engine.counters["packets"], detector


def measure(path: Path, repeat: int, learn_share: float, turn: int) -> None:
    """Time both pipelines on one capture, in lockstep, and print the results."""
    from otdpi.capture import open_capture
    from otdpi.learner import compiled

    with open_capture(path) as reader:
        stamps = [r[1] for r in reader]
    learn_for = (stamps[-1] - stamps[0]) * learn_share

    runs = []
    detector = None
    for _ in range(repeat):
        plain, full, packets, detector = lockstep(path, learn_for, turn)
        runs.append((100 * (1 - plain / full), plain, full))
    share, plain, full = sorted(runs)[len(runs) // 2]
    sizes = [
        detector.baseline.device_state_size(ip) for ip in detector.baseline.devices
    ]
    print(
        f"capture: {path} ({packets} packets, {len(detector.baseline.devices)} devices,"
        f" {len(detector.baseline.relations)} relationships); learner "
        f"{'compiled' if compiled() else 'interpreted (not built)'}"
    )
    print(
        f"dissect alone:             {packets / plain:>10,.0f} packets/s "
        f"({plain:.2f} s)"
    )
    print(
        f"dissect + learn + score:   {packets / full:>10,.0f} packets/s "
        f"({full:.2f} s)"
    )
    print(
        f"learner share of the total: {share:.1f} % (median of {repeat}; "
        f"target at most 33 %); per run: "
        + ", ".join(f"{run[0]:.1f} %" for run in runs)
    )
    print(
        f"alerts: {len(detector.alerts)}; state per device: median "
        f"{statistics.median(sizes) / 1024:.1f} KB, max {max(sizes) / 1024:.1f} KB "
        f"(target at most 64 KB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--turn", type=int, default=20_000, help="messages per turn (default 20,000)"
    )
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
        measure(path, args.repeat, args.learn_share, args.turn)


if __name__ == "__main__":
    main()
