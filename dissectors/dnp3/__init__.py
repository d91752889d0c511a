"""DNP3 (IEEE 1815-2012) dissector over TCP and UDP, with device-attribute identity.

Covered: the data link layer (clause 9: header, control bits, link function
codes, CRC of the header and of every data block), the transport function
(clause 8: FIR/FIN, 6-bit sequence with wrap, duplicates), the application
layer (clause 4: request and response headers, every function code of table
4-1, IIN, object headers with every qualifier and range form) and the objects
of groups 0-4, 10-13, 20-23, 30-34, 40-43, 50-52, 60, 70, 80, 102, 110-113,
120-122 (Annex A); other groups keep their header and raw octets. Left out:
serial DNP3 (only TCP and UDP are read), Secure Authentication semantics
(group 120 objects are kept raw), data sets (groups 85-88) beyond raw octets.

Layout
------
``link``
    link header construct definition, CRC-16/DNP, the framer's measure.
``transport``
    transport header definition and fragment reassembly.
``application``
    function codes, IIN, application header definitions, fragment decoding.
``objects``
    object header definition, the point layout table (construct and struct
    decoders made from it), packed, string, attribute and file objects.
``session``
    the :class:`Dnp3Dissector` plugin: probe, framing, Messages, identity.
"""

from dissectors.dnp3.link import build_frame, crc_dnp
from dissectors.dnp3.session import Dnp3Dissector, looks_like_dnp3

__all__ = ["Dnp3Dissector", "build_frame", "crc_dnp", "looks_like_dnp3"]
