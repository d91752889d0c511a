"""Declarative construct definitions of DICOM upper-layer PDUs and items, and codes.

Standard: DICOM PS3.8 (Network Communication Support for Message Exchange),
section 9.3 (PDU structure) and Annex D.3.3 (user information sub-items), with
the user identity items of PS3.7 Annex D.3.3.7; DIMSE command fields and
status codes from PS3.7 (section 9.3, 10.3 and Annex C). The Structs here are
the source of truth for the wire format: the dissector parses association
PDUs through them and the tests build PDUs with them.

Every variable item shares one frame (:data:`ITEM`): type, a reserved byte, a
16-bit length and the value. Items are cut first with that frame and then
parsed by type, so an unknown or damaged item costs only itself.
"""

from __future__ import annotations

import enum

import construct as cs

this = cs.this


class PduType(enum.IntEnum):
    """PDU types (PS3.8 table 9-11 and following)."""

    A_ASSOCIATE_RQ = 0x01
    A_ASSOCIATE_AC = 0x02
    A_ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    A_RELEASE_RQ = 0x05
    A_RELEASE_RP = 0x06
    A_ABORT = 0x07


class ItemType(enum.IntEnum):
    """Variable item types (PS3.8 section 9.3.2 and Annex D.3.3)."""

    APPLICATION_CONTEXT = 0x10
    PRESENTATION_CONTEXT_RQ = 0x20
    PRESENTATION_CONTEXT_AC = 0x21
    ABSTRACT_SYNTAX = 0x30
    TRANSFER_SYNTAX = 0x40
    USER_INFORMATION = 0x50
    MAXIMUM_LENGTH = 0x51
    IMPLEMENTATION_CLASS_UID = 0x52
    ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
    SCP_SCU_ROLE_SELECTION = 0x54
    IMPLEMENTATION_VERSION_NAME = 0x55
    SOP_CLASS_EXTENDED_NEGOTIATION = 0x56
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = 0x57
    USER_IDENTITY_RQ = 0x58
    USER_IDENTITY_AC = 0x59


class PresentationContextResult(enum.IntEnum):
    """Result of a presentation context in an A-ASSOCIATE-AC (PS3.8 table 9-18)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4


class UserIdentityType(enum.IntEnum):
    """User identity type (PS3.7 table D.3-14)."""

    USERNAME = 1
    USERNAME_AND_PASSCODE = 2
    KERBEROS_SERVICE_TICKET = 3
    SAML_ASSERTION = 4
    JSON_WEB_TOKEN = 5


# A-ASSOCIATE-RJ (PS3.8 table 9-21): result, source, and reason by source.
REJECT_RESULTS = {1: "rejected_permanent", 2: "rejected_transient"}
REJECT_SOURCES = {
    1: "service_user",
    2: "service_provider_acse",
    3: "service_provider_presentation",
}
REJECT_REASONS = {
    1: {
        1: "no_reason_given",
        2: "application_context_name_not_supported",
        3: "calling_ae_title_not_recognized",
        7: "called_ae_title_not_recognized",
    },
    2: {1: "no_reason_given", 2: "protocol_version_not_supported"},
    3: {1: "temporary_congestion", 2: "local_limit_exceeded"},
}

# A-ABORT (PS3.8 table 9-26).
ABORT_SOURCES = {0: "service_user", 1: "reserved", 2: "service_provider"}
ABORT_REASONS = {
    0: "reason_not_specified",
    1: "unrecognized_pdu",
    2: "unexpected_pdu",
    4: "unrecognized_pdu_parameter",
    5: "unexpected_pdu_parameter",
    6: "invalid_pdu_parameter_value",
}


class CommandField(enum.IntEnum):
    """DIMSE command field values (PS3.7 sections 9.3 and 10.3)."""

    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_FIND_RQ = 0x0020
    C_FIND_RSP = 0x8020
    C_MOVE_RQ = 0x0021
    C_MOVE_RSP = 0x8021
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    N_EVENT_REPORT_RQ = 0x0100
    N_EVENT_REPORT_RSP = 0x8100
    N_GET_RQ = 0x0110
    N_GET_RSP = 0x8110
    N_SET_RQ = 0x0120
    N_SET_RSP = 0x8120
    N_ACTION_RQ = 0x0130
    N_ACTION_RSP = 0x8130
    N_CREATE_RQ = 0x0140
    N_CREATE_RSP = 0x8140
    N_DELETE_RQ = 0x0150
    N_DELETE_RSP = 0x8150
    C_CANCEL_RQ = 0x0FFF


RESPONSE_BIT = 0x8000
NO_DATA_SET = 0x0101  # Command Data Set Type meaning "no data set follows"

# Command set elements (group 0000, PS3.7 Annex E) by tag, as field names.
COMMAND_ELEMENTS = {
    0x0000_0000: "command_group_length",
    0x0000_0002: "affected_sop_class_uid",
    0x0000_0003: "requested_sop_class_uid",
    0x0000_0100: "command_field",
    0x0000_0110: "message_id",
    0x0000_0120: "message_id_being_responded_to",
    0x0000_0600: "move_destination",
    0x0000_0700: "priority",
    0x0000_0800: "command_data_set_type",
    0x0000_0900: "status",
    0x0000_0901: "offending_element",
    0x0000_0902: "error_comment",
    0x0000_0903: "error_id",
    0x0000_1000: "affected_sop_instance_uid",
    0x0000_1001: "requested_sop_instance_uid",
    0x0000_1002: "event_type_id",
    0x0000_1005: "attribute_identifier_list",
    0x0000_1008: "action_type_id",
    0x0000_1020: "number_of_remaining_sub_operations",
    0x0000_1021: "number_of_completed_sub_operations",
    0x0000_1022: "number_of_failed_sub_operations",
    0x0000_1023: "number_of_warning_sub_operations",
    0x0000_1030: "move_originator_application_entity_title",
    0x0000_1031: "move_originator_message_id",
}

PRIORITIES = {0: "medium", 1: "high", 2: "low"}

# Data set elements that describe the device, never the patient (PS3.3
# General Equipment and General Series modules). Nothing else of a data set
# is read.
DEVICE_ELEMENTS = {
    0x0008_0060: "modality",
    0x0008_0070: "manufacturer",
    0x0008_1010: "station_name",
    0x0008_1090: "model",
    0x0018_1000: "serial_number",
    0x0018_1020: "software_versions",
}

# Status codes and their meaning (PS3.7 Annex C and the service classes of
# PS3.4). Categories follow PS3.7 C.1: failures are A000-AFFF, C000-CFFF and
# the 01xx/02xx general codes, warnings 0001 and B000-BFFF.
STATUS_NAMES = {
    0x0000: "success",
    0x0001: "warning_requested_optional_attributes_not_supported",
    0x0105: "no_such_attribute",
    0x0106: "invalid_attribute_value",
    0x0107: "attribute_list_error",
    0x0110: "processing_failure",
    0x0111: "duplicate_sop_instance",
    0x0112: "no_such_sop_instance",
    0x0113: "no_such_event_type",
    0x0114: "no_such_argument",
    0x0115: "invalid_argument_value",
    0x0116: "attribute_value_out_of_range",
    0x0117: "invalid_object_instance",
    0x0118: "no_such_sop_class",
    0x0119: "class_instance_conflict",
    0x0120: "missing_attribute",
    0x0121: "missing_attribute_value",
    0x0122: "sop_class_not_supported",
    0x0123: "no_such_action",
    0x0124: "not_authorized",
    0x0210: "duplicate_invocation",
    0x0211: "unrecognized_operation",
    0x0212: "mistyped_argument",
    0x0213: "resource_limitation",
    0xA700: "out_of_resources",
    0xA701: "out_of_resources_number_of_matches",
    0xA702: "out_of_resources_sub_operations",
    0xA801: "move_destination_unknown",
    0xA900: "data_set_does_not_match_sop_class",
    0xB000: "coercion_of_data_elements_or_sub_operations_failed",
    0xB006: "elements_discarded",
    0xB007: "data_set_does_not_match_sop_class_warning",
    0xC000: "cannot_understand",
    0xFE00: "cancel",
    0xFF00: "pending",
    0xFF01: "pending_optional_keys_not_supported",
}


def status_category(code: int) -> str:
    """``success``, ``pending``, ``cancel``, ``warning`` or ``failure`` (PS3.7 C.1)."""
    if code == 0x0000:
        return "success"
    if code in (0xFF00, 0xFF01):
        return "pending"
    if code == 0xFE00:
        return "cancel"
    if code == 0x0001 or 0xB000 <= code <= 0xBFFF or code in (0x0107, 0x0116):
        return "warning"
    return "failure"


def status_name(code: int) -> str:
    """The meaning of a status code, or its category where no name is known."""
    name = STATUS_NAMES.get(code)
    if name is not None:
        return name
    category = status_category(code)
    if 0xC000 <= code <= 0xCFFF:
        return "failure_cannot_understand"
    return f"{category}_0x{code:04x}"


# Implementation class UID roots whose owner is public (each toolkit prints
# its root in its own sources or conformance statement).
IMPLEMENTATION_ROOTS = (
    ("1.2.826.0.1.3680043.9.3811.", "pynetdicom"),
    ("1.2.826.0.1.3680043.8.498.", "pydicom"),
    ("1.2.276.0.7230010.3", "dcmtk"),
    ("1.3.6.1.4.1.30071.8", "fo-dicom"),
)


def implementation_of(uid: str) -> str | None:
    """The toolkit an implementation class UID belongs to, where its root is known."""
    for root, name in IMPLEMENTATION_ROOTS:
        if uid.startswith(root):
            return name
    return None


# --- Wire format -----------------------------------------------------------------

PDU_HEADER_SIZE = 6
PDU_HEADER = cs.Struct(
    "pdu_type" / cs.Int8ub,
    "reserved" / cs.Int8ub,
    "pdu_length" / cs.Int32ub,  # bytes after this field
)

# One variable item, whatever its type (PS3.8 9.3.2).
ITEM = cs.Struct(
    "item_type" / cs.Int8ub,
    "reserved" / cs.Int8ub,
    "item_length" / cs.Int16ub,
    "value" / cs.Bytes(this.item_length),
)
ITEMS = cs.Struct("items" / cs.GreedyRange(ITEM), "trailing" / cs.GreedyBytes)

# A-ASSOCIATE-RQ and -AC share one layout (PS3.8 tables 9-11 and 9-17).
A_ASSOCIATE = cs.Struct(
    "protocol_version" / cs.Int16ub,
    "reserved_1" / cs.Int16ub,
    "called_ae_title" / cs.Bytes(16),
    "calling_ae_title" / cs.Bytes(16),
    "reserved_2" / cs.Bytes(32),
    "variable_items" / cs.GreedyBytes,
)
A_ASSOCIATE_FIXED_SIZE = 68

# Presentation context item value, RQ (table 9-13) and AC (table 9-18).
PRESENTATION_CONTEXT = cs.Struct(
    "presentation_context_id" / cs.Int8ub,
    "reserved_1" / cs.Int8ub,
    "result_reason" / cs.Int8ub,  # reserved in an RQ
    "reserved_2" / cs.Int8ub,
    "sub_items" / cs.GreedyBytes,
)

MAXIMUM_LENGTH = cs.Struct("maximum_length_received" / cs.Int32ub)
ASYNCHRONOUS_OPERATIONS_WINDOW = cs.Struct(
    "maximum_number_operations_invoked" / cs.Int16ub,
    "maximum_number_operations_performed" / cs.Int16ub,
)
SCP_SCU_ROLE_SELECTION = cs.Struct(
    "uid_length" / cs.Int16ub,
    "sop_class_uid" / cs.Bytes(this.uid_length),
    "scu_role" / cs.Int8ub,
    "scp_role" / cs.Int8ub,
)
SOP_CLASS_EXTENDED_NEGOTIATION = cs.Struct(
    "sop_class_uid_length" / cs.Int16ub,
    "sop_class_uid" / cs.Bytes(this.sop_class_uid_length),
    "service_class_application_information" / cs.GreedyBytes,
)
SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = cs.Struct(
    "sop_class_uid_length" / cs.Int16ub,
    "sop_class_uid" / cs.Bytes(this.sop_class_uid_length),
    "service_class_uid_length" / cs.Int16ub,
    "service_class_uid" / cs.Bytes(this.service_class_uid_length),
    "related_general_sop_class_identification_length" / cs.Int16ub,
    "related_general_sop_class_identification"
    / cs.Bytes(this.related_general_sop_class_identification_length),
)
USER_IDENTITY_RQ = cs.Struct(
    "user_identity_type" / cs.Int8ub,
    "positive_response_requested" / cs.Int8ub,
    "primary_field_length" / cs.Int16ub,
    "primary_field" / cs.Bytes(this.primary_field_length),
    "secondary_field_length" / cs.Int16ub,
    "secondary_field" / cs.Bytes(this.secondary_field_length),
)
USER_IDENTITY_AC = cs.Struct(
    "server_response_length" / cs.Int16ub,
    "server_response" / cs.Bytes(this.server_response_length),
)

A_ASSOCIATE_RJ = cs.Struct(
    "reserved" / cs.Int8ub,
    "result" / cs.Int8ub,
    "source" / cs.Int8ub,
    "reason_diag" / cs.Int8ub,
)
A_ABORT = cs.Struct(
    "reserved_1" / cs.Int8ub,
    "reserved_2" / cs.Int8ub,
    "source" / cs.Int8ub,
    "reason_diag" / cs.Int8ub,
)
A_RELEASE = cs.Struct("reserved" / cs.Int32ub)

# P-DATA-TF body: presentation data value items (PS3.8 9.3.5 and Annex E.2).
PDV_HEADER_SIZE = 6
PDV_ITEM = cs.Struct(
    "item_length" / cs.Int32ub,  # context id, control header and fragment
    "presentation_context_id" / cs.Int8ub,
    "message_control_header" / cs.Int8ub,  # bit 0 command, bit 1 last fragment
    "fragment" / cs.Bytes(this.item_length - 2),
)
PDV_COMMAND = 0x01
PDV_LAST = 0x02

FIXED_BODY = {
    PduType.A_ASSOCIATE_RJ: A_ASSOCIATE_RJ,
    PduType.A_RELEASE_RQ: A_RELEASE,
    PduType.A_RELEASE_RP: A_RELEASE,
    PduType.A_ABORT: A_ABORT,
}


def build_item(item_type: int, value: bytes) -> bytes:
    """One variable item of ``item_type`` around ``value`` (tests, fuzzing)."""
    return ITEM.build(
        {
            "item_type": item_type,
            "reserved": 0,
            "item_length": len(value),
            "value": value,
        }
    )


def build_pdu(pdu_type: int, body: bytes) -> bytes:
    """One PDU of ``pdu_type`` around ``body``, its length computed."""
    return (
        PDU_HEADER.build({"pdu_type": pdu_type, "reserved": 0, "pdu_length": len(body)})
        + body
    )


def build_pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    """One presentation data value item (P-DATA-TF body part)."""
    return PDV_ITEM.build(
        {
            "item_length": len(fragment) + 2,
            "presentation_context_id": context_id,
            "message_control_header": control,
            "fragment": fragment,
        }
    )
