"""Modbus/TCP dissector: MBAP framing, every public function code, vendor codes raw.

Standards: Modbus Application Protocol Specification V1.1b3 (function codes
1 to 8, 11, 12, 15 to 17, 20 to 24 and 43 with MEI types 13 and 14; exception
responses) and Modbus Messaging on TCP/IP Implementation Guide V1.0b (MBAP
header). Left out: Modbus RTU and ASCII serial framing, Modbus over UDP, the
payload of vendor function codes such as Schneider's UMAS (90), which comes
out as raw data, and the CANopen general reference payload (43/13), likewise.

Layout
------
``definitions``
    construct Structs for every ADU, the single source of truth; they build
    as well as parse (:func:`build_adu`).
``decoding``
    the general decoder over those Structs, and the checks that make findings.
``fastpath``
    hand-written decoders for the common codes, held equal to the Structs.
``session``
    the :class:`ModbusDissector` plugin: probe, framing, request matching.
"""

from dissectors.modbus.definitions import build_adu
from dissectors.modbus.session import ModbusDissector, dissect_adu, looks_like_modbus

__all__ = ["ModbusDissector", "build_adu", "dissect_adu", "looks_like_modbus"]
