"""Fuzzing throughput: cases/s against a local pymodbus server, as the harness says.

Each case opens a new connection. For each (mix, concurrency) the campaign is
run ``--repeats`` times, interleaved, and the line gives the median and the
range of the harness's own cases/s, and the median CPU seconds of the harness
and of the server, which say which side limits the rate. Mixes: ``valid only``;
``campaign``, the default mix (25 % valid, the rest mutated); ``campaign,
held``, the default mix with ``max_waiting=0``, so that a case owed a reply that
never comes holds its slot for the whole reply timeout, as before cases gave
their slot up. Usage: ``python benchmarks/run_fuzz_throughput.py [--cases 5000]
[--repeats 3] [--recipe pymodbus]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile

from otdpi.fuzzing import get_profile
from otdpi.fuzzing.campaign import Campaign, Settings
from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.recipes import recipe

MIXES = (
    ("valid only", {"valid_share": 1.0}),
    ("campaign", {}),
    ("campaign, held", {"max_waiting": 0}),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(recipe_name: str, cases: int, concurrency: int, extra: dict):
    target = recipe(recipe_name, free_port())
    with tempfile.TemporaryDirectory() as tmp:
        store = FindingStore(f"{tmp}/f.sqlite")
        settings = Settings(
            max_cases=cases, max_time=120, concurrency=concurrency, post_time=0,
            **extra,
        )  # fmt: skip
        run = Campaign(get_profile("modbus"), target, store, settings)
        try:
            return run.run()
        finally:
            target.stop()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", default="pymodbus")
    parser.add_argument("--concurrency", default="8,32,64")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    results: dict[tuple[str, int], list] = {}
    for _ in range(args.repeats):  # interleaved: load changes hit every line alike
        for mix, extra in MIXES:
            for concurrency in levels:
                stats = one_run(args.recipe, args.cases, concurrency, extra)
                results.setdefault((mix, concurrency), []).append(stats)
    print(
        f"{'mix':15s} {'conc':>4s} {'cases':>6s} {'cases/s median':>14s} "
        f"{'range':>11s} {'harness CPU s':>13s} {'server CPU s':>12s}"
    )
    for (mix, concurrency), runs in results.items():
        rates = [r.rate for r in runs]
        server = [r.target_cpu for r in runs if r.target_cpu is not None]
        print(
            f"{mix:15s} {concurrency:4d} {runs[0].cases:6d} "
            f"{statistics.median(rates):14.0f} "
            f"{min(rates):5.0f}-{max(rates):<5.0f} "
            f"{statistics.median(r.harness_cpu for r in runs):13.2f} "
            f"{statistics.median(server) if server else float('nan'):12.2f}"
        )


if __name__ == "__main__":
    main()
