"""S7comm dissector (protocol id 0x32) over ISO-on-TCP, with PLC fingerprinting.

Siemens S7 communication as used by S7-300/400 (and S7-1200/1500 in their
legacy PUT/GET mode): header by ROSCTR (job, ack, ack-data, userdata), setup
communication, read/write variable, block download and upload, PI services
and PLC stop; userdata groups with their sub-functions, SZL reads with the
identification lists decoded. TPKT/COTP come from
:mod:`dissectors.isotransport`. Left out: the payload of alarm and cyclic
data indications (kept raw) and NC programming.

Layout
------
``definitions``
    codes as enums and the PDU parts as construct Structs.
``decoding``
    the hand-written decoder held equal to the Structs.
``szl``
    SZL records: module and component identification, mode, protection.
``session``
    the :class:`S7commDissector` plugin.
"""

from dissectors.s7comm.session import S7commDissector, looks_like_s7comm
from dissectors.s7comm.szl import decode_szl, product_family

__all__ = ["S7commDissector", "decode_szl", "looks_like_s7comm", "product_family"]
