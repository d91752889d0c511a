"""Protocol fuzzing harness: cases from the dissectors' definitions, judged by them.

Parts
-----
:mod:`~otdpi.fuzzing.profile`
    the per-protocol :class:`FuzzProfile` contract and its registry.
:mod:`~otdpi.fuzzing.construct_strategies`
    hypothesis strategies read off construct definitions.
:mod:`~otdpi.fuzzing.modbus`, :mod:`~otdpi.fuzzing.mllp`
    the Modbus/TCP and HL7 MLLP profiles.
:mod:`~otdpi.fuzzing.sessions`
    the common part of the stateful profiles: set-up steps, a dissector judge;
    :mod:`~otdpi.fuzzing.hsms`, :mod:`~otdpi.fuzzing.dicom`,
    :mod:`~otdpi.fuzzing.s7comm`, :mod:`~otdpi.fuzzing.mms`,
    :mod:`~otdpi.fuzzing.dnp3` build on it.
:mod:`~otdpi.fuzzing.targets`, :mod:`~otdpi.fuzzing.recipes`
    targets (address, optional managed loopback server) and ready-made ones;
    :mod:`~otdpi.fuzzing.session_recipes` holds the stateful protocols' servers.
:mod:`~otdpi.fuzzing.campaign`
    the event-loop driver, the oracles and replay.
:mod:`~otdpi.fuzzing.shrinking`
    findings shrunk to a minimal reproducer by hypothesis's shrinker.
:mod:`~otdpi.fuzzing.findings`
    the SQLite findings store.

The harness needs hypothesis (the ``fuzz`` extra).
"""

import importlib

# The names below load with their module on first use (PEP 562): the CLI builds
# its parser from otdpi.fuzzing.cli at every start, and should not pay for
# construct strategies and hypothesis when it is not fuzzing.
_LAZY = {name: "otdpi.fuzzing.profile" for name in (
    "Case", "FuzzProfile", "Verdict", "available_profiles", "get_profile",
    "register_profile")}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otdpi.fuzzing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "Case",
    "FuzzProfile",
    "Verdict",
    "available_profiles",
    "get_profile",
    "register_profile",
]
