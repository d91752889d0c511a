"""MMS (ISO 9506) over the ISO upper layers on port 102, with IEC 61850 meaning.

Layout
------
``decoding``
    MMS PDUs from BER: services, data values, type specifications.
``iec61850``
    object references, logical-node classes and functions, name plates.
``fingerprint``
    vendor, model and device type from identify answers and name plates.
``session``
    the :class:`MmsDissector` plugin.

The session, presentation and ACSE layers live in :mod:`dissectors.iso_upper`.
"""

from dissectors.mms.session import MmsDissector, looks_like_mms

__all__ = ["MmsDissector", "looks_like_mms"]
