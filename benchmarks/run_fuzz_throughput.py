"""Fuzzing throughput: cases/s against a local pymodbus server, as the harness says.

Each case opens a new connection. Prints one line per (mix, concurrency): cases,
seconds, cases/s and the CPU seconds of the harness and of the server, which
say which side limits the rate. Usage:
``python benchmarks/run_fuzz_throughput.py [--cases 5000] [--recipe pymodbus]``.
"""

from __future__ import annotations

import argparse
import socket
import tempfile

from otdpi.fuzzing import get_profile
from otdpi.fuzzing.campaign import Campaign, Settings
from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.recipes import recipe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--recipe", default="pymodbus")
    args = parser.parse_args()
    print(
        f"{'mix':12s} {'conc':>4s} {'cases':>6s} {'s':>6s} {'cases/s':>8s} "
        f"{'harness CPU s':>13s} {'server CPU s':>12s}"
    )
    for mix, share in (("valid only", 1.0), ("campaign", 0.25)):
        for concurrency in (8, 32, 64):
            target = recipe(args.recipe, free_port())
            with tempfile.TemporaryDirectory() as tmp:
                store = FindingStore(f"{tmp}/f.sqlite")
                settings = Settings(
                    max_cases=args.cases, max_time=120, concurrency=concurrency,
                    valid_share=share, post_time=0,
                )  # fmt: skip
                run = Campaign(get_profile("modbus"), target, store, settings)
                try:
                    stats = run.run()
                finally:
                    target.stop()
                    store.close()
            server = "-" if stats.target_cpu is None else f"{stats.target_cpu:.2f}"
            print(
                f"{mix:12s} {concurrency:4d} {stats.cases:6d} {stats.elapsed():6.2f} "
                f"{stats.rate:8.0f} {stats.harness_cpu:13.2f} {server:>12s}"
            )


if __name__ == "__main__":
    main()
