"""HL7 v2 over MLLP dissector: lenient framing, MSH/SFT/MSA, patient data redacted.

Standards: HL7 Version 2.x chapter 2 (message control: MSH, SFT, MSA, ERR,
EVN, batch segments) and the Minimal Lower Layer Protocol. Left out: HL7 v3
and FHIR, MLLP over TLS, the contents of patient and clinical segments
(PID, NK1, PV1, IN1, GT1, OBX...), which are counted and redacted unless
``OTDPI_KEEP_PATIENT_DATA=1`` is set.

Layout
------
``definitions``
    the MLLP frame (construct), decoded segments, families, codes.
``session``
    the :class:`Hl7Dissector` plugin: framing, decoding, redaction.
"""

from dissectors.hl7.session import Hl7Dissector, looks_like_hl7

__all__ = ["Hl7Dissector", "looks_like_hl7"]
