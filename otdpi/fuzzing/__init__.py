"""Protocol fuzzing harness: cases from the dissectors' definitions, judged by them.

Parts
-----
:mod:`~otdpi.fuzzing.profile`
    the per-protocol :class:`FuzzProfile` contract and its registry.
:mod:`~otdpi.fuzzing.construct_strategies`
    hypothesis strategies read off construct definitions.
:mod:`~otdpi.fuzzing.modbus`, :mod:`~otdpi.fuzzing.mllp`
    the Modbus/TCP and HL7 MLLP profiles.
:mod:`~otdpi.fuzzing.targets`, :mod:`~otdpi.fuzzing.recipes`
    targets (address, optional managed loopback server) and ready-made ones.
:mod:`~otdpi.fuzzing.campaign`
    the event-loop driver, the oracles, shrinking and replay.
:mod:`~otdpi.fuzzing.findings`
    the SQLite findings store.

The harness needs hypothesis (the ``fuzz`` extra).
"""

from otdpi.fuzzing.profile import (
    Case,
    FuzzProfile,
    Verdict,
    available_profiles,
    get_profile,
    register_profile,
)

__all__ = [
    "Case",
    "FuzzProfile",
    "Verdict",
    "available_profiles",
    "get_profile",
    "register_profile",
]
