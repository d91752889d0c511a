"""atheris target for any installed dissector: ``python fuzz/fuzz_any.py NAME [libFuzzer options]``.

The first argument names the dissector (``otdpi protocols`` lists them); the
invariant is :func:`targets.any_dissector`'s. Modbus has its own, wider target
in ``fuzz_modbus.py``.
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: fuzz_any.py NAME [corpus] [libFuzzer options]")
NAME = sys.argv.pop(1)

with atheris.instrument_imports():
    import targets  # noqa: E402
    from otdpi.registry import get  # noqa: E402

    get(NAME)  # imports, and so instruments, the dissector's modules

CHECK = targets.target(NAME)


def test_one_input(data: bytes) -> None:
    CHECK(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
