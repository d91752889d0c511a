"""DICOM dissector: upper layer (PS3.8) with every association item, and DIMSE commands.

Standards: DICOM PS3.8 (upper layer PDUs, items, PDV fragmentation), PS3.7
(DIMSE command sets, command fields, status codes, user identity items),
PS3.3 (the General Equipment elements read from C-STORE data sets). Left
out: DICOM over TLS (port 2762, encrypted), data sets beyond the device
elements (never decoded, so patient data never reaches any output), and
deflated data sets.

Layout
------
``definitions``
    construct Structs for PDUs and items, and the enums and names of codes.
``upper_layer``
    association-control PDUs into fields.
``dimse``
    command sets through pydicom; device elements of data sets.
``session``
    the :class:`DicomDissector` plugin: streaming, reassembly, Messages.
"""

from dissectors.dicom.session import DicomDissector, looks_like_dicom

__all__ = ["DicomDissector", "looks_like_dicom"]
