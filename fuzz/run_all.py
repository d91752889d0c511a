"""Run every atheris target in fuzz/ for a bounded time each; exit non-zero on a crash.

Usage: ``python fuzz/run_all.py --seconds N [--only modbus]``. Every installed
dissector is fuzzed: through its own ``fuzz_<name>.py`` where there is one, else
through ``fuzz_any.py NAME``. Each target runs in its own process (atheris owns the process it fuzzes in), seeded with a few
valid messages from the fuzz profile when one exists, and a crash leaves its
input as ``fuzz/crash-*`` for replay with ``python fuzz/fuzz_<proto>.py FILE``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def seed_corpus(protocol: str, folder: Path, count: int = 30) -> None:
    """A few valid messages from the protocol's fuzz profile, one file each."""
    try:
        from otdpi.fuzzing import get_profile
        from otdpi.fuzzing.campaign import draw_cases

        cases = draw_cases(get_profile(protocol).strategy(), count, seed=1)
    except Exception:  # noqa: BLE001 - no profile: atheris starts from nothing
        return
    for index, case in enumerate(cases):
        (folder / f"seed-{index}").write_bytes(case.payload)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--only", action="append", help="a target name (repeatable)")
    args = parser.parse_args(argv)
    from otdpi.registry import available

    failed = []
    for name in sorted(available()):
        if args.only and name not in args.only:
            continue
        own = HERE / f"fuzz_{name}.py"
        script = [str(own)] if own.exists() else [str(HERE / "fuzz_any.py"), name]
        with tempfile.TemporaryDirectory() as corpus:
            seed_corpus(name, Path(corpus))
            command = [
                sys.executable, *script, corpus,
                f"-max_total_time={args.seconds}",
                f"-artifact_prefix={HERE}/crash-{name}-",
                "-print_final_stats=1", "-rss_limit_mb=2048",
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
        stats = [
            line
            for line in result.stderr.splitlines()
            if "stat::number_of_executed_units" in line
        ]
        print(f"{name}: exit {result.returncode}; {stats[-1] if stats else ''}")
        if result.returncode != 0:
            print(result.stderr[-3000:])
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
