"""HSMS dissector: SEMI E37 framing and control messages, SEMI E5 SECS-II message text.

Standards: SEMI E37 (High-Speed SECS Message Services: length, header, Select,
Deselect, Linktest, Reject and Separate) and SEMI E5 (SECS-II items of every
format code with 1- to 3-byte lengths, and the standard streams and
functions), with the GEM (SEMI E30) usage of S1F1/F2 and S1F13/F14 for the
equipment's model (MDLN) and software revision (SOFTREV). Left out: HSMS-GS
(the general session variant with several session entities per connection,
decoded as HSMS-SS), SECS-I serial framing, multi-block reassembly (every HSMS
message is a single block), and PType values other than SECS-II.

Layout
------
``definitions``
    construct Structs for the header, control messages and items; the source
    of truth, which also builds messages (:func:`build_message`).
``items``
    the bounded hand-written item decoder, held equal to the Structs, and SML.
``catalogue``
    stream and function names, normalised actions.
``session``
    the :class:`HsmsDissector` plugin: probe, framing, pairing, identity.
"""

from dissectors.hsms.definitions import build_item, build_message, control_message
from dissectors.hsms.session import HsmsDissector, dissect_message, looks_like_hsms

__all__ = [
    "HsmsDissector",
    "build_item",
    "build_message",
    "control_message",
    "dissect_message",
    "looks_like_hsms",
]
