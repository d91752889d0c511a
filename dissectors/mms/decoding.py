"""MMS (ISO 9506-2) PDUs from BER: the PDU choice, services, data and type specs.

Decoded services: initiate, conclude, cancel, reject, confirmed error, and
the confirmed services status, getNameList, identify, rename, read, write,
getVariableAccessAttributes, defineNamedVariableList,
getNamedVariableListAttributes, deleteNamedVariableList, getDomainAttributes,
obtainFile, fileOpen, fileRead, fileClose, fileRename, fileDelete and
fileDirectory; unconfirmed informationReport. Every other service keeps its
tag number and its raw BER in ``fields["raw"]``.

Values are decoded into single-key dicts named after the Data choice
(``{"integer": 5}``, ``{"structure": [...]}``), nesting bounded by
:data:`~dissectors.iso_upper.ber.MAX_DEPTH`.
"""

from __future__ import annotations

import math
import struct
from typing import Any, NamedTuple

from dissectors.iso_upper.ber import (
    MAX_DEPTH,
    BerError,
    bit_names,
    bit_string,
    boolean,
    children,
    header,
    integer,
    oid,
    tag_number,
    text,
    unsigned,
)

# Bound on list lengths kept per PDU (names, variables, values at one level).
MAX_ITEMS = 4096

PDU_NAMES = {
    0: "confirmed_request", 1: "confirmed_response", 2: "confirmed_error",
    3: "unconfirmed", 4: "reject", 5: "cancel_request", 6: "cancel_response",
    7: "cancel_error", 8: "initiate_request", 9: "initiate_response",
    10: "initiate_error", 11: "conclude_request", 12: "conclude_response",
    13: "conclude_error",
}  # fmt: skip

# ConfirmedServiceRequest / -Response choice tags, ISO 9506-2 clause 7.
SERVICE_NAMES = (
    "status",
    "get_name_list",
    "identify",
    "rename",
    "read",
    "write",
    "get_variable_access_attributes",
    "define_named_variable",
    "define_scattered_access",
    "get_scattered_access_attributes",
    "delete_variable_access",
    "define_named_variable_list",
    "get_named_variable_list_attributes",
    "delete_named_variable_list",
    "define_named_type",
    "get_named_type_attributes",
    "delete_named_type",
    "input",
    "output",
    "take_control",
    "relinquish_control",
    "define_semaphore",
    "delete_semaphore",
    "report_semaphore_status",
    "report_pool_semaphore_status",
    "report_semaphore_entry_status",
    "initiate_download_sequence",
    "download_segment",
    "terminate_download_sequence",
    "initiate_upload_sequence",
    "upload_segment",
    "terminate_upload_sequence",
    "request_domain_download",
    "request_domain_upload",
    "load_domain_content",
    "store_domain_content",
    "delete_domain",
    "get_domain_attributes",
    "create_program_invocation",
    "delete_program_invocation",
    "start",
    "stop",
    "resume",
    "reset",
    "kill",
    "get_program_invocation_attributes",
    "obtain_file",
    "define_event_condition",
    "delete_event_condition",
    "get_event_condition_attributes",
    "report_event_condition_status",
    "alter_event_condition_monitoring",
    "trigger_event",
    "define_event_action",
    "delete_event_action",
    "get_event_action_attributes",
    "report_event_action_status",
    "define_event_enrollment",
    "delete_event_enrollment",
    "alter_event_enrollment",
    "report_event_enrollment_status",
    "get_event_enrollment_attributes",
    "acknowledge_event_notification",
    "get_alarm_summary",
    "get_alarm_enrollment_summary",
    "read_journal",
    "write_journal",
    "initialize_journal",
    "report_journal_status",
    "create_journal",
    "delete_journal",
    "get_capability_list",
    "file_open",
    "file_read",
    "file_close",
    "file_rename",
    "file_delete",
    "file_directory",
)
UNCONFIRMED_NAMES = {
    0: "information_report",
    1: "unsolicited_status",
    2: "event_notification",
}

# ParameterSupportOptions and ServiceSupportOptions bit names, in bit order.
PARAMETER_CBB = (
    "str1",
    "str2",
    "vnam",
    "valt",
    "vadr",
    "vsca",
    "tpy",
    "vlis",
    "real",
    "spare_bit9",
    "cei",
)
SERVICES_SUPPORTED = (
    "status",
    "getNameList",
    "identify",
    "rename",
    "read",
    "write",
    "getVariableAccessAttributes",
    "defineNamedVariable",
    "defineScatteredAccess",
    "getScatteredAccessAttributes",
    "deleteVariableAccess",
    "defineNamedVariableList",
    "getNamedVariableListAttributes",
    "deleteNamedVariableList",
    "defineNamedType",
    "getNamedTypeAttributes",
    "deleteNamedType",
    "input",
    "output",
    "takeControl",
    "relinquishControl",
    "defineSemaphore",
    "deleteSemaphore",
    "reportSemaphoreStatus",
    "reportPoolSemaphoreStatus",
    "reportSemaphoreEntryStatus",
    "initiateDownloadSequence",
    "downloadSegment",
    "terminateDownloadSequence",
    "initiateUploadSequence",
    "uploadSegment",
    "terminateUploadSequence",
    "requestDomainDownload",
    "requestDomainUpload",
    "loadDomainContent",
    "storeDomainContent",
    "deleteDomain",
    "getDomainAttributes",
    "createProgramInvocation",
    "deleteProgramInvocation",
    "start",
    "stop",
    "resume",
    "reset",
    "kill",
    "getProgramInvocationAttributes",
    "obtainFile",
    "defineEventCondition",
    "deleteEventCondition",
    "getEventConditionAttributes",
    "reportEventConditionStatus",
    "alterEventConditionMonitoring",
    "triggerEvent",
    "defineEventAction",
    "deleteEventAction",
    "getEventActionAttributes",
    "reportEventActionStatus",
    "defineEventEnrollment",
    "deleteEventEnrollment",
    "alterEventEnrollment",
    "reportEventEnrollmentStatus",
    "getEventEnrollmentAttributes",
    "acknowledgeEventNotification",
    "getAlarmSummary",
    "getAlarmEnrollmentSummary",
    "readJournal",
    "writeJournal",
    "initializeJournal",
    "reportJournalStatus",
    "createJournal",
    "deleteJournal",
    "getCapabilityList",
    "fileOpen",
    "fileRead",
    "fileClose",
    "fileRename",
    "fileDelete",
    "fileDirectory",
    "unsolicitedStatus",
    "informationReport",
    "eventNotification",
    "attachToEventCondition",
    "attachToSemaphore",
    "conclude",
    "cancel",
)
OBJECT_CLASSES = {
    0: "named_variable",
    1: "scattered_access",
    2: "named_variable_list",
    3: "named_type",
    4: "semaphore",
    5: "event_condition",
    6: "event_action",
    7: "event_enrollment",
    8: "journal",
    9: "domain",
    10: "program_invocation",
    11: "operator_station",
}
ERROR_CLASSES = (
    "vmd_state",
    "application_reference",
    "definition",
    "resource",
    "service",
    "service_preempt",
    "time_resolution",
    "access",
    "initiate",
    "conclude",
    "cancel",
    "file",
    "others",
)
DATA_ACCESS_ERRORS = (
    "object-invalidated",
    "hardware-fault",
    "temporarily-unavailable",
    "object-access-denied",
    "object-undefined",
    "invalid-address",
    "type-unsupported",
    "type-inconsistent",
    "object-attribute-inconsistent",
    "object-access-unsupported",
    "object-non-existent",
    "object-value-invalid",
)
REJECT_PDU_TYPES = (
    "",
    "confirmed_request",
    "confirmed_response",
    "confirmed_error",
    "unconfirmed",
    "pdu_error",
    "cancel_request",
    "cancel_response",
    "cancel_error",
    "conclude_request",
    "conclude_response",
    "conclude_error",
)
DATA_TYPES = {
    1: "array",
    2: "structure",
    3: "boolean",
    4: "bit_string",
    5: "integer",
    6: "unsigned",
    7: "floating_point",
    9: "octet_string",
    10: "visible_string",
    11: "generalized_time",
    12: "binary_time",
    13: "bcd",
    14: "boolean_array",
    15: "obj_id",
    16: "mms_string",
    17: "utc_time",
}


class Decoded(NamedTuple):
    """One MMS PDU: its choice, invoke id, service and decoded fields."""

    pdu: str
    pdu_code: int
    invoke_id: int | None
    service: str
    service_code: int | None
    fields: dict[str, Any]


def service_name(code: int) -> str:
    return SERVICE_NAMES[code] if 0 <= code < len(SERVICE_NAMES) else f"service_{code}"


# --- basic pieces ----------------------------------------------------------------


def object_name(buf: bytes, start: int, end: int) -> dict[str, str]:
    """ObjectName: the CHOICE's contents (the TLV inside an explicit tag)."""
    ident, s, e, _ = header(buf, start, end)
    if ident == 0x80:
        return {"vmd_specific": text(buf, s, e)}
    if ident == 0xA1:
        parts = children(buf, s, e)
        if len(parts) != 2:
            raise BerError("domain-specific name without domainId and itemId")
        return {
            "domain_id": text(buf, parts[0][1], parts[0][2]),
            "item_id": text(buf, parts[1][1], parts[1][2]),
        }
    if ident == 0x82:
        return {"aa_specific": text(buf, s, e)}
    raise BerError(f"ObjectName of tag 0x{ident:x}")


def _name_of(ident: int, buf: bytes, s: int, e: int) -> dict[str, str]:
    """An ObjectName whose choice tag is ``ident`` (an implicitly tagged one)."""
    if ident & 0x1F == 0 and ident < 0x100:
        return {"vmd_specific": text(buf, s, e)}
    if ident & 0x1F == 1:
        parts = children(buf, s, e)
        if len(parts) != 2:
            raise BerError("domain-specific name without domainId and itemId")
        return {
            "domain_id": text(buf, parts[0][1], parts[0][2]),
            "item_id": text(buf, parts[1][1], parts[1][2]),
        }
    return {"aa_specific": text(buf, s, e)}


def floating_point(buf: bytes, start: int, end: int) -> float | str:
    """FloatingPoint: an exponent-width octet then an IEEE 754 single or double."""
    size = end - start
    if size == 5:
        return struct.unpack_from(">f", buf, start + 1)[0]
    if size == 9:
        return struct.unpack_from(">d", buf, start + 1)[0]
    return buf[start:end].hex()


def utc_time(buf: bytes, start: int, end: int) -> dict[str, Any]:
    """UtcTime (IEC 61850-8-1): seconds, 24-bit fraction, quality octet."""
    if end - start != 8:
        raise BerError(f"utc-time of {end - start} octets")
    seconds = int.from_bytes(buf[start : start + 4], "big")
    fraction = int.from_bytes(buf[start + 4 : start + 7], "big")
    return {
        "seconds": seconds,
        "fraction": fraction,
        "quality": buf[start + 7],
        "time": seconds + fraction / (1 << 24),
    }


def data(buf: bytes, ident: int, start: int, end: int, depth: int = 0) -> dict:
    """One Data value whose choice tag is ``ident``."""
    if depth > MAX_DEPTH:
        raise BerError(f"data nested deeper than {MAX_DEPTH}")
    number = ident & 0x1F if ident < 0x100 else -1
    if number in (1, 2) and ident & 0x20:
        items = []
        pos = start
        while pos < end:
            if len(items) >= MAX_ITEMS:
                raise BerError(f"more than {MAX_ITEMS} data elements")
            ident2, s2, e2, pos = header(buf, pos, end)
            items.append(data(buf, ident2, s2, e2, depth + 1))
        return {"array" if number == 1 else "structure": items}
    if number == 3:
        return {"boolean": boolean(buf, start, end)}
    if number == 4:
        unused, octets = bit_string(buf, start, end)
        return {"bit_string": octets.hex(), "padding": unused}
    if number == 5:
        return {"integer": integer(buf, start, end)}
    if number == 6:
        return {"unsigned": unsigned(buf, start, end)}
    if number == 7:
        value = floating_point(buf, start, end)
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(value)  # JSON has no NaN or infinity
        return {"floating_point": value}
    if number == 9:
        return {"octet_string": buf[start:end].hex()}
    if number == 10:
        return {"visible_string": text(buf, start, end)}
    if number == 11:
        return {"generalized_time": text(buf, start, end)}
    if number == 12:
        return {"binary_time": buf[start:end].hex()}
    if number == 13:
        return {"bcd": integer(buf, start, end)}
    if number == 14:
        unused, octets = bit_string(buf, start, end)
        return {"boolean_array": octets.hex(), "padding": unused}
    if number == 15:
        return {"obj_id": oid(buf, start, end)}
    if number == 16:
        return {"mms_string": buf[start:end].decode("utf-8", "replace")}
    if number == 17:
        return {"utc_time": utc_time(buf, start, end)}
    raise BerError(f"Data of tag 0x{ident:x}")


def data_list(buf: bytes, start: int, end: int) -> list[dict]:
    out = []
    pos = start
    while pos < end:
        if len(out) >= MAX_ITEMS:
            raise BerError(f"more than {MAX_ITEMS} values")
        ident, s, e, pos = header(buf, pos, end)
        out.append(data(buf, ident, s, e, 1))
    return out


def access_results(buf: bytes, start: int, end: int) -> list[dict]:
    """SEQUENCE OF AccessResult: failure [0] IMPLICIT DataAccessError or Data."""
    out = []
    pos = start
    while pos < end:
        if len(out) >= MAX_ITEMS:
            raise BerError(f"more than {MAX_ITEMS} access results")
        ident, s, e, pos = header(buf, pos, end)
        if ident == 0x80:
            code = integer(buf, s, e)
            name = DATA_ACCESS_ERRORS[code] if 0 <= code < 12 else f"error_{code}"
            out.append({"failure": code, "failure_name": name})
        else:
            out.append(data(buf, ident, s, e, 1))
    return out


def variable_specs(buf: bytes, start: int, end: int) -> list[dict]:
    """SEQUENCE OF SEQUENCE { variableSpecification, alternateAccess [5] }."""
    out = []
    for ident, s, e in children(buf, start, end):
        if len(out) >= MAX_ITEMS:
            raise BerError(f"more than {MAX_ITEMS} variables")
        entry: dict[str, Any] = {}
        for ident2, s2, e2 in children(buf, s, e):
            if ident2 == 0xA0:
                entry.update(object_name(buf, s2, e2))
            elif ident2 == 0xA1:
                entry["address"] = buf[s2:e2].hex()
            elif ident2 == 0x84:
                entry["invalidated"] = True
            elif ident2 == 0xA5:
                entry["alternate_access"] = buf[s2:e2].hex()
            else:
                entry[f"specification_0x{ident2:x}"] = buf[s2:e2].hex()
        out.append(entry)
    return out


def variable_access(buf: bytes, ident: int, s: int, e: int, fields: dict) -> None:
    """VariableAccessSpecification whose choice tag is ``ident``, into ``fields``."""
    if ident == 0xA0:
        fields["list_of_variable"] = variable_specs(buf, s, e)
    elif ident == 0xA1:
        fields["variable_list_name"] = object_name(buf, s, e)
    else:
        raise BerError(f"VariableAccessSpecification of tag 0x{ident:x}")


def type_specification(buf: bytes, ident: int, s: int, e: int, depth: int = 0) -> Any:
    """TypeSpecification into a compact form: a type name or nested dicts."""
    if depth > MAX_DEPTH:
        raise BerError(f"type nested deeper than {MAX_DEPTH}")
    number = tag_number(ident)
    if number == 0:
        inner = header(buf, s, e)
        return {"type_name": _name_of(inner[0], buf, inner[1], inner[2])}
    if number == 1:
        found: dict[str, Any] = {"array": None}
        for i2, s2, e2 in children(buf, s, e):
            if i2 == 0x81:
                found["number_of_elements"] = unsigned(buf, s2, e2)
            elif i2 == 0xA2:
                inner = header(buf, s2, e2)
                found["array"] = type_specification(
                    buf, inner[0], inner[1], inner[2], depth + 1
                )
        return found
    if number == 2:
        components = []
        for i2, s2, e2 in children(buf, s, e):
            if i2 != 0xA1:
                continue
            for _, s3, e3 in children(buf, s2, e2):
                if len(components) >= MAX_ITEMS:
                    raise BerError(f"more than {MAX_ITEMS} components")
                name, kind = None, None
                for i4, s4, e4 in children(buf, s3, e3):
                    if i4 == 0x80:
                        name = text(buf, s4, e4)
                    elif i4 == 0xA1:
                        inner = header(buf, s4, e4)
                        kind = type_specification(
                            buf, inner[0], inner[1], inner[2], depth + 1
                        )
                components.append({"name": name, "type": kind})
        return {"structure": components}
    name = DATA_TYPES.get(number, f"type_{number}")
    if s < e and number in (4, 5, 6, 9, 10, 16):
        return {name: integer(buf, s, e)}
    return name


def file_name(buf: bytes, start: int, end: int) -> str:
    """FileName: SEQUENCE OF GraphicString, joined."""
    return "".join(text(buf, s, e) for _, s, e in children(buf, start, end))


def _identifiers(buf: bytes, start: int, end: int) -> list[str]:
    out = []
    for _, s, e in children(buf, start, end):
        if len(out) >= MAX_ITEMS:
            raise BerError(f"more than {MAX_ITEMS} identifiers")
        out.append(text(buf, s, e))
    return out


def _file_attributes(buf: bytes, start: int, end: int, into: dict) -> None:
    for ident, s, e in children(buf, start, end):
        if ident == 0x80:
            into["size_of_file"] = unsigned(buf, s, e)
        elif ident == 0x81:
            into["last_modified"] = text(buf, s, e)


def service_error(buf: bytes, start: int, end: int, fields: dict) -> None:
    for ident, s, e in children(buf, start, end):
        if ident == 0xA0:
            inner = children(buf, s, e)
            if inner:
                number = tag_number(inner[0][0])
                fields["error_class"] = (
                    ERROR_CLASSES[number] if number < 13 else f"class_{number}"
                )
                fields["error_code"] = integer(buf, inner[0][1], inner[0][2])
        elif ident == 0x81:
            fields["additional_code"] = integer(buf, s, e)
        elif ident == 0x82:
            fields["additional_description"] = text(buf, s, e)


# --- confirmed services ----------------------------------------------------------


def _request(code: int, buf: bytes, s: int, e: int, fields: dict) -> None:
    if code == 0:
        fields["extended_derivation"] = boolean(buf, s, e)
    elif code == 1:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                inner = header(buf, s2, e2)
                value = integer(buf, inner[1], inner[2])
                fields["object_class"] = value
                fields["object_class_name"] = OBJECT_CLASSES.get(value, str(value))
            elif ident == 0xA1:
                inner = header(buf, s2, e2)
                scope = tag_number(inner[0])
                fields["object_scope"] = (
                    ("vmd_specific", "domain_specific", "aa_specific")[scope]
                    if scope < 3
                    else scope
                )
                if scope == 1:
                    fields["domain_specific"] = text(buf, inner[1], inner[2])
            elif ident == 0x82:
                fields["continue_after"] = text(buf, s2, e2)
    elif code == 3:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA1:
                inner = header(buf, s2, e2)
                fields["current_name"] = _name_of(inner[0], buf, inner[1], inner[2])
            elif ident == 0x82:
                fields["new_identifier"] = text(buf, s2, e2)
    elif code == 4:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["specification_with_result"] = boolean(buf, s2, e2)
            elif ident == 0xA1:
                inner = header(buf, s2, e2)
                variable_access(buf, inner[0], inner[1], inner[2], fields)
    elif code == 5:
        parts = children(buf, s, e)
        if len(parts) != 2:
            raise BerError("write request without specification and data")
        variable_access(buf, *parts[0], fields)
        fields["list_of_data"] = data_list(buf, parts[1][1], parts[1][2])
    elif code == 6:
        ident, s2, e2, _ = header(buf, s, e)
        if ident == 0xA0:
            fields.update(object_name(buf, s2, e2))
        else:
            fields["address"] = buf[s2:e2].hex()
    elif code == 11:
        parts = children(buf, s, e)
        if parts:
            fields["variable_list_name"] = _name_of(
                parts[0][0], buf, parts[0][1], parts[0][2]
            )
        for ident, s2, e2 in parts[1:]:
            if ident == 0xA0:
                fields["list_of_variable"] = variable_specs(buf, s2, e2)
    elif code == 12:
        ident, s2, e2, _ = header(buf, s, e)
        fields["variable_list_name"] = _name_of(ident, buf, s2, e2)
    elif code == 13:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["scope_of_delete"] = integer(buf, s2, e2)
            elif ident == 0xA1:
                fields["list_of_variable_list_name"] = [
                    _name_of(i3, buf, s3, e3) for i3, s3, e3 in children(buf, s2, e2)
                ]
            elif ident == 0x82:
                fields["domain_name"] = text(buf, s2, e2)
    elif code in (37, 36, 26, 29, 33, 32):
        fields["domain_name"] = text(buf, s, e)
    elif code == 46:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA1:
                fields["source_file"] = file_name(buf, s2, e2)
            elif ident == 0xA2:
                fields["destination_file"] = file_name(buf, s2, e2)
            elif ident == 0xA0:
                fields["source_file_server"] = buf[s2:e2].hex()
    elif code == 72:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                fields["file_name"] = file_name(buf, s2, e2)
            elif ident == 0x81:
                fields["initial_position"] = unsigned(buf, s2, e2)
    elif code in (73, 74):
        fields["frsm_id"] = integer(buf, s, e)
    elif code == 75:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                fields["current_file_name"] = file_name(buf, s2, e2)
            elif ident == 0xA1:
                fields["new_file_name"] = file_name(buf, s2, e2)
    elif code == 76:
        fields["file_name"] = file_name(buf, s, e)
    elif code == 77:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                fields["file_specification"] = file_name(buf, s2, e2)
            elif ident == 0xA1:
                fields["continue_after"] = file_name(buf, s2, e2)
    else:
        fields["raw"] = buf[s:e].hex()


def _response(code: int, buf: bytes, s: int, e: int, fields: dict) -> None:
    if code == 0:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["vmd_logical_status"] = integer(buf, s2, e2)
            elif ident == 0x81:
                fields["vmd_physical_status"] = integer(buf, s2, e2)
            elif ident == 0x82:
                fields["local_detail"] = buf[s2:e2].hex()
    elif code == 1:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                fields["list_of_identifier"] = _identifiers(buf, s2, e2)
            elif ident == 0x81:
                fields["more_follows"] = boolean(buf, s2, e2)
        fields.setdefault("more_follows", True)
    elif code == 2:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["vendor_name"] = text(buf, s2, e2)
            elif ident == 0x81:
                fields["model_name"] = text(buf, s2, e2)
            elif ident == 0x82:
                fields["revision"] = text(buf, s2, e2)
            elif ident == 0xA3:
                fields["list_of_abstract_syntaxes"] = [
                    oid(buf, s3, e3) for _, s3, e3 in children(buf, s2, e2)
                ]
    elif code == 4:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                inner = header(buf, s2, e2)
                variable_access(buf, inner[0], inner[1], inner[2], fields)
            elif ident == 0xA1:
                fields["list_of_access_result"] = access_results(buf, s2, e2)
    elif code == 5:
        results = []
        for ident, s2, e2 in children(buf, s, e):
            if len(results) >= MAX_ITEMS:
                raise BerError(f"more than {MAX_ITEMS} write results")
            if ident == 0x80:
                results.append({"failure": integer(buf, s2, e2)})
            else:
                results.append({"success": True})
        fields["write_results"] = results
    elif code == 6:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["mms_deletable"] = boolean(buf, s2, e2)
            elif ident == 0xA2:
                inner = header(buf, s2, e2)
                fields["type_specification"] = type_specification(
                    buf, inner[0], inner[1], inner[2]
                )
    elif code == 12:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["mms_deletable"] = boolean(buf, s2, e2)
            elif ident == 0xA1:
                fields["list_of_variable"] = variable_specs(buf, s2, e2)
    elif code == 13:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["number_matched"] = unsigned(buf, s2, e2)
            elif ident == 0x81:
                fields["number_deleted"] = unsigned(buf, s2, e2)
    elif code == 37:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                fields["list_of_capabilities"] = _identifiers(buf, s2, e2)
            elif ident == 0x81:
                fields["state"] = integer(buf, s2, e2)
            elif ident == 0x82:
                fields["mms_deletable"] = boolean(buf, s2, e2)
            elif ident == 0x83:
                fields["sharable"] = boolean(buf, s2, e2)
            elif ident == 0xA4:
                fields["list_of_program_invocations"] = _identifiers(buf, s2, e2)
    elif code == 72:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["frsm_id"] = integer(buf, s2, e2)
            elif ident == 0xA1:
                _file_attributes(buf, s2, e2, fields)
    elif code == 73:
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0x80:
                fields["file_data_size"] = e2 - s2
            elif ident == 0x81:
                fields["more_follows"] = boolean(buf, s2, e2)
        fields.setdefault("more_follows", True)
    elif code == 77:
        entries = []
        for ident, s2, e2 in children(buf, s, e):
            if ident == 0xA0:
                for _, s3, e3 in children(buf, s2, e2):
                    if len(entries) >= MAX_ITEMS:
                        raise BerError(f"more than {MAX_ITEMS} directory entries")
                    entry: dict[str, Any] = {}
                    for i4, s4, e4 in children(buf, s3, e3):
                        if i4 == 0xA0:
                            entry["file_name"] = file_name(buf, s4, e4)
                        elif i4 == 0xA1:
                            _file_attributes(buf, s4, e4, entry)
                    entries.append(entry)
            elif ident == 0x81:
                fields["more_follows"] = boolean(buf, s2, e2)
        fields["list_of_directory_entry"] = entries
    elif s < e and code not in (3, 11, 46, 74, 75, 76):
        fields["raw"] = buf[s:e].hex()


def _initiate(buf: bytes, s: int, e: int, fields: dict, response: bool) -> None:
    side = "called" if response else "calling"
    prefix = "negotiated" if response else "proposed"
    for ident, s2, e2 in children(buf, s, e):
        if ident == 0x80:
            fields[f"local_detail_{side}"] = integer(buf, s2, e2)
        elif ident == 0x81:
            fields[f"{prefix}_max_serv_outstanding_calling"] = integer(buf, s2, e2)
        elif ident == 0x82:
            fields[f"{prefix}_max_serv_outstanding_called"] = integer(buf, s2, e2)
        elif ident == 0x83:
            fields[f"{prefix}_data_structure_nesting_level"] = integer(buf, s2, e2)
        elif ident == 0xA4:
            for i3, s3, e3 in children(buf, s2, e2):
                if i3 == 0x80:
                    fields[f"{prefix}_version_number"] = integer(buf, s3, e3)
                elif i3 == 0x81:
                    unused, octets = bit_string(buf, s3, e3)
                    fields[f"{prefix}_parameter_cbb"] = octets.hex()
                    fields["parameter_cbb"] = bit_names(octets, unused, PARAMETER_CBB)
                elif i3 == 0x82:
                    unused, octets = bit_string(buf, s3, e3)
                    fields[f"services_supported_{side}"] = octets.hex()
                    fields["services_supported"] = bit_names(
                        octets, unused, SERVICES_SUPPORTED
                    )


def decode_pdu(buf: bytes) -> Decoded:
    """Decode one MMS PDU. Raises :class:`BerError` on broken BER."""
    end = len(buf)
    ident, s, e, _ = header(buf, 0, end)
    pdu_code = tag_number(ident)
    pdu = PDU_NAMES.get(pdu_code)
    if pdu is None or ident >= 0x100 or not ident & 0x80:
        raise BerError(f"MMSpdu of tag 0x{ident:x}")
    fields: dict[str, Any] = {}
    if pdu_code in (0, 1):
        parts = children(buf, s, e)
        if len(parts) < 2 or parts[0][0] != 0x02:
            raise BerError(f"{pdu} without invokeID and service")
        invoke_id = unsigned(buf, parts[0][1], parts[0][2])
        service_tlv = parts[-1]
        if service_tlv[0] & 0xC0 != 0x80 and not service_tlv[0] & (0x80 << 16):
            raise BerError(
                f"{pdu} service of tag 0x{service_tlv[0]:x}, "
                "a context-specific tag expected"
            )
        if pdu_code == 0 and len(parts) > 2:
            fields["list_of_modifier"] = buf[parts[1][1] : parts[1][2]].hex()
        code = tag_number(service_tlv[0])
        if pdu_code == 0:
            _request(code, buf, service_tlv[1], service_tlv[2], fields)
        else:
            _response(code, buf, service_tlv[1], service_tlv[2], fields)
        return Decoded(pdu, pdu_code, invoke_id, service_name(code), code, fields)
    if pdu_code == 2:
        invoke_id = None
        for i2, s2, e2 in children(buf, s, e):
            if i2 == 0x80:
                invoke_id = unsigned(buf, s2, e2)
            elif i2 == 0x81:
                fields["modifier_position"] = unsigned(buf, s2, e2)
            elif i2 == 0xA2:
                service_error(buf, s2, e2, fields)
        return Decoded(pdu, pdu_code, invoke_id, "error", None, fields)
    if pdu_code == 3:
        parts = children(buf, s, e)
        if not parts:
            raise BerError("unconfirmed PDU without a service")
        i2, s2, e2 = parts[0]
        code = tag_number(i2)
        name = UNCONFIRMED_NAMES.get(code, f"unconfirmed_{code}")
        if code == 0:
            inner = children(buf, s2, e2)
            if len(inner) != 2:
                raise BerError("information report without specification and results")
            variable_access(buf, *inner[0], fields)
            fields["list_of_access_result"] = access_results(
                buf, inner[1][1], inner[1][2]
            )
        else:
            fields["raw"] = buf[s2:e2].hex()
        return Decoded(pdu, pdu_code, None, name, code, fields)
    if pdu_code == 4:
        invoke_id = None
        for i2, s2, e2 in children(buf, s, e):
            if i2 == 0x80:
                invoke_id = unsigned(buf, s2, e2)
            else:
                number = tag_number(i2)
                fields["reject_pdu_type"] = (
                    REJECT_PDU_TYPES[number] if number < 12 else str(number)
                )
                fields["reject_code"] = integer(buf, s2, e2)
        return Decoded(pdu, pdu_code, invoke_id, "reject", None, fields)
    if pdu_code in (5, 6):
        return Decoded(pdu, pdu_code, unsigned(buf, s, e), "cancel", None, fields)
    if pdu_code == 7:
        invoke_id = None
        for i2, s2, e2 in children(buf, s, e):
            if i2 == 0x80:
                invoke_id = unsigned(buf, s2, e2)
            elif i2 == 0xA1:
                service_error(buf, s2, e2, fields)
        return Decoded(pdu, pdu_code, invoke_id, "cancel", None, fields)
    if pdu_code in (8, 9):
        _initiate(buf, s, e, fields, pdu_code == 9)
        return Decoded(pdu, pdu_code, None, "initiate", None, fields)
    if pdu_code in (10, 13):
        service_error(buf, s, e, fields)
        name = "initiate" if pdu_code == 10 else "conclude"
        return Decoded(pdu, pdu_code, None, name, None, fields)
    return Decoded(pdu, pdu_code, None, "conclude", None, fields)
