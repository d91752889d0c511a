"""HL7 v2 over MLLP: the frame, decoded segments, message families, acknowledgements.

Standards: HL7 Version 2.x (2.3 to 2.8; chapter 2 control segments MSH, SFT,
MSA, ERR, EVN, and the batch segments FHS, BHS, BTS, FTS) and the Minimal
Lower Layer Protocol of the HL7 Implementation Guide (Appendix C of v2.x):
a message is framed as 0x0B, the message, 0x1C 0x0D.
"""

from __future__ import annotations

import construct as cs

START_BLOCK = 0x0B
END_BLOCK = 0x1C
CARRIAGE_RETURN = 0x0D

# The MLLP frame: start block, message bytes, end block and carriage return.
MLLP_FRAME = cs.Struct(
    "start_block" / cs.Const(b"\x0b"),
    "message" / cs.NullTerminated(cs.GreedyBytes, term=b"\x1c\x0d"),
)

# Segments whose fields are written out. They carry the control and routing
# data of a message (who sent it, to whom, what it is, which software made
# it, how it was acknowledged) and no patient data. Every other segment
# (PID, PD1, NK1, PV1, PV2, IN1, GT1, OBR, OBX, AL1, DG1, Z-segments...) is
# counted but its contents are redacted unless patient data is kept.
CONTROL_SEGMENTS = frozenset(
    {"MSH", "SFT", "MSA", "ERR", "EVN", "QAK", "DSC", "FHS", "FTS", "BHS", "BTS"}
)

# Free-text fields of the control segments, where a sender may write anything,
# a patient's name included: MSA-3 text message, ERR-7 diagnostic information,
# ERR-8 user message, EVN-5 operator id (a person). Blanked unless patient
# data is kept; ``redacted_fields`` lists the ones that had a value.
FREE_TEXT_FIELDS = {"MSA": (3,), "ERR": (7, 8), "EVN": (5,)}

ACKNOWLEDGMENT_CODES = {
    "AA": "application_accept",
    "AE": "application_error",
    "AR": "application_reject",
    "CA": "commit_accept",
    "CE": "commit_error",
    "CR": "commit_reject",
}
NEGATIVE_ACKNOWLEDGMENTS = frozenset({"AE", "AR", "CE", "CR"})

# Message type (MSH-9.1) to the family it belongs to (v2.x chapters) and the
# normalised action a message of that family has.
FAMILIES = {
    "ADT": "patient_administration",
    "ORM": "order_entry", "OML": "order_entry", "OMG": "order_entry",
    "OMI": "order_entry", "ORL": "order_entry", "ORR": "order_entry",
    "ORG": "order_entry", "ORI": "order_entry",
    "ORU": "observation_reporting", "OUL": "observation_reporting",
    "QRY": "query", "QBP": "query", "QCN": "query", "QSB": "query", "VXQ": "query",
    "MFQ": "query", "RQI": "query", "RQA": "query",
    "RSP": "query_response", "RTB": "query_response", "RDY": "query_response",
    "ADR": "query_response", "ORF": "query_response", "DSR": "query_response",
    "TBR": "query_response",
    "DFT": "financial_management", "BAR": "financial_management",
    "SIU": "scheduling", "SRM": "scheduling", "SRR": "scheduling",
    "MDM": "medical_records",
    "MFN": "master_files", "MFK": "master_files",
    "RDE": "pharmacy", "RDS": "pharmacy", "RGV": "pharmacy", "RAS": "pharmacy",
    "RRE": "pharmacy", "RRD": "pharmacy", "RRG": "pharmacy", "RRA": "pharmacy",
    "VXU": "immunization", "VXR": "immunization",
    "ACK": "acknowledgement", "MCF": "acknowledgement",
    "NMD": "network_management", "NMQ": "network_management",
    "NMR": "network_management",
    "PPR": "patient_care", "PGL": "patient_care", "PPP": "patient_care",
    "REF": "patient_referral", "RRI": "patient_referral",
}  # fmt: skip

FAMILY_ACTIONS = {
    "patient_administration": "write",
    "order_entry": "write",
    "observation_reporting": "write",
    "query": "read",
    "query_response": "read",
    "financial_management": "write",
    "scheduling": "write",
    "medical_records": "write",
    "master_files": "write",
    "pharmacy": "write",
    "immunization": "write",
    "network_management": "diagnose",
    "patient_care": "write",
    "patient_referral": "write",
    "acknowledgement": "other",
}


def build_frame(message: bytes) -> bytes:
    """One MLLP frame around ``message`` (tests, fuzzing)."""
    return MLLP_FRAME.build({"message": message})
