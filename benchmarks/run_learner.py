"""Packets/second of dissect alone next to dissect + learn + score, in one run.

Run: ``python benchmarks/run_learner.py [--packets 1000000]``. The captures are
the synthetic Modbus/TCP ones of ``make_modbus_capture.py`` (twenty servers, five
clients), cached under the temporary directory: its random transactions (every
connection a random client and server, random function codes, ranges and
values: a stress test of the learner's novelty paths) and its periodic polling
(fixed poll lists on fixed cycles: what a learner meets on a plant), measured
one after the other; ``--traffic`` picks one.

The two pipelines run one after the other in this one process, ``--repeat``
times each, alternately, timed in CPU time of the process
(``time.process_time``). The speed of this shared two-core machine drifts by
a fifth or more from one tenth of a second to the next (other machines' work
on the same host), so each run also notes the time at every ``--turn``
messages (20,000); a turn covers the same messages in every run of either
pipeline, so the fastest of each turn over the runs is what it costs on a
quiet machine, and the share is taken from their sums. Each run's own share
is printed too. Both pipelines count their messages through the same small
callback (the learner's through ``feed_captures(on_message=...)``). The
learner runs as ``otdpi watch`` does: it learns for the first
``--learn-share`` of the capture's time span, then scores every message and
goes on learning. The per-device state size is the compact JSON of the
device's index and of every relationship it is part of.
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


class Turns:
    """Notes the CPU time at every ``turn`` messages (a per-message callback)."""

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.count = 0
        self.times = [time.process_time()]

    def __call__(self, message=None, capture=None) -> None:
        self.count += 1
        if self.count == self.turn:
            self.count = 0
            self.times.append(time.process_time())

    def seconds(self) -> list[float]:
        """The CPU seconds of each turn, the last one up to now."""
        times = self.times + [time.process_time()]
        return [b - a for a, b in zip(times, times[1:])]


def dissect_only(path: Path, turn: int):
    """CPU seconds of each turn of dissecting ``path``; packets."""
    from otdpi.engine import Engine

    engine = Engine()
    turns = Turns(turn)
    for message in engine.messages(path):
        turns(message)
    return turns.seconds(), engine.counters["packets"]


def dissect_learn_score(path: Path, learn_for: float, turn: int):
    """CPU seconds of each turn of dissecting, learning and scoring ``path``;
    packets; the detector."""
    from otdpi.learner import Detector, feed_captures

    detector = Detector(learn_for=learn_for)
    turns = Turns(turn)
    engine = feed_captures(detector, [path], on_message=turns)
    return turns.seconds(), engine.counters["packets"], detector


def measure(path: Path, repeat: int, learn_share: float, turn: int) -> None:
    """Time both pipelines on one capture, alternately, and print the results."""
    from otdpi.capture import open_capture
    from otdpi.learner import compiled

    with open_capture(path) as reader:
        stamps = [r[1] for r in reader]
    learn_for = (stamps[-1] - stamps[0]) * learn_share

    # Each turn covers the same messages in every run, so the fastest of
    # each turn over the runs is its time on a quiet machine; their sums give
    # the share. Each run's own share shows the spread.
    plain_turns: list[list[float]] = []
    full_turns: list[list[float]] = []
    shares = []
    detector = None
    for _ in range(repeat):
        plain_run, packets = dissect_only(path, turn)
        full_run, packets, detector = dissect_learn_score(path, learn_for, turn)
        plain_turns.append(plain_run)
        full_turns.append(full_run)
        shares.append(100 * (1 - sum(plain_run) / sum(full_run)))
    plain = sum(min(times) for times in zip(*plain_turns))
    full = sum(min(times) for times in zip(*full_turns))
    share = 100 * (1 - plain / full)
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
        f"learner share of the total: {share:.1f} % (fastest of {repeat} runs per "
        f"turn; target at most 33 %); each run: "
        + ", ".join(f"{run:.1f} %" for run in shares)
    )
    print(
        f"alerts: {len(detector.alerts)}; state per device: median "
        f"{statistics.median(sizes) / 1024:.1f} KB, max {max(sizes) / 1024:.1f} KB "
        f"(target at most 64 KB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
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
