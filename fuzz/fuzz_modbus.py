"""atheris target for the Modbus/TCP dissector (see :mod:`targets`).

Run: ``python fuzz/fuzz_modbus.py -max_total_time=60`` (libFuzzer options).
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports():
    import targets  # noqa: E402
    import dissectors.modbus  # noqa: E402,F401


def test_one_input(data: bytes) -> None:
    targets.modbus(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
