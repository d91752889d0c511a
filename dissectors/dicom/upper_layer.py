"""Turns one whole DICOM association-control PDU into message fields (PS3.8 9.3).

A-ASSOCIATE-RQ/AC with every item, A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and
A-ABORT. P-DATA-TF is streamed by :mod:`dissectors.dicom.session` instead,
since it can be gigabytes long. Every function here returns
``(fields, findings, problem)``: ``problem`` is None or the reason the PDU
is malformed, in which case ``fields`` holds what could be read.

User identity negotiation carries credentials: a passcode (the secondary
field) is never copied out, nor a Kerberos ticket, SAML assertion or JSON
web token; only their lengths and the user name are.
"""

from __future__ import annotations

import functools
import struct
import warnings
from typing import Any, NamedTuple

import construct as cs

from dissectors.dicom.definitions import (
    A_ASSOCIATE,
    A_ASSOCIATE_FIXED_SIZE,
    ABORT_REASONS,
    ABORT_SOURCES,
    ASYNCHRONOUS_OPERATIONS_WINDOW,
    FIXED_BODY,
    MAXIMUM_LENGTH,
    PDU_HEADER_SIZE,
    PRESENTATION_CONTEXT,
    REJECT_REASONS,
    REJECT_RESULTS,
    REJECT_SOURCES,
    SCP_SCU_ROLE_SELECTION,
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION,
    SOP_CLASS_EXTENDED_NEGOTIATION,
    USER_IDENTITY_AC,
    USER_IDENTITY_RQ,
    ItemType,
    PduType,
    PresentationContextResult,
    UserIdentityType,
)
from otdpi.message import Finding

Decoded = tuple[dict[str, Any], tuple[Finding, ...], str | None]


@functools.cache
def _compiled(struct_definition: cs.Construct) -> cs.Compiled:
    # Compiled on first use: construct's compile() runs exec, a few milliseconds
    # every otdpi start would pay whether or not the capture holds DICOM.
    return struct_definition.compile()


def text(raw: bytes) -> str:
    """An AE title, UID or name as text: latin-1, padding and NULs trimmed."""
    return raw.decode("latin-1").strip(" \x00")


def uid_name(uid: str) -> str | None:
    """pydicom's name for a registered UID, None for an unregistered one."""
    try:
        from pydicom.uid import UID  # on first use; see dimse._read_dataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = UID(uid)
            return found.name if found.is_valid and found.name != uid else None
    except Exception:  # noqa: BLE001  (pydicom on a hostile string)
        return None


class Item(NamedTuple):
    """One variable item as :data:`~dissectors.dicom.definitions.ITEM` cuts it."""

    item_type: int
    value: bytes


def cut_items(data: bytes) -> tuple[list[Item], bytes]:
    """Cut ``data`` into items as the ``ITEMS`` Struct does: (items, trailing bytes).

    Written out because the Struct's GreedyRange costs a millisecond per
    A-ASSOCIATE; a test holds the two equal.
    """
    items = []
    pos = 0
    end = len(data)
    while pos + 4 <= end:
        length = data[pos + 2] << 8 | data[pos + 3]
        if pos + 4 + length > end:
            break
        items.append(Item(data[pos], data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return items, data[pos:]


def _items(data: bytes, where: str) -> tuple[list[Item], str | None]:
    items, trailing = cut_items(data)
    problem = None
    if trailing:
        problem = (
            f"{where}: {len(trailing)} bytes at the end do not make a whole "
            "item (type, reserved, 16-bit length, value)"
        )
    return items, problem


def _sub_items_of_context(value: bytes, is_rq: bool) -> tuple[dict, list[str]]:
    context = _compiled(PRESENTATION_CONTEXT).parse(value)
    out: dict[str, Any] = {"presentation_context_id": context.presentation_context_id}
    problems = []
    if not is_rq:
        result = context.result_reason
        out["result"] = result
        try:
            out["result_name"] = PresentationContextResult(result).name.lower()
        except ValueError:
            out["result_name"] = "unknown"
    sub_items, problem = _items(context.sub_items, "presentation context")
    if problem:
        problems.append(problem)
    transfer = []
    for sub in sub_items:
        uid = text(sub.value)
        if sub.item_type == ItemType.ABSTRACT_SYNTAX:
            out["abstract_syntax"] = uid
            out["abstract_syntax_name"] = uid_name(uid)
        elif sub.item_type == ItemType.TRANSFER_SYNTAX:
            transfer.append(uid)
        else:
            problems.append(
                f"presentation context {context.presentation_context_id}: "
                f"unexpected sub-item type 0x{sub.item_type:02x}"
            )
    if is_rq:
        out["transfer_syntaxes"] = transfer
    else:
        out["transfer_syntax"] = transfer[0] if transfer else None
    return out, problems


def _user_identity_rq(value: bytes) -> dict[str, Any]:
    item = USER_IDENTITY_RQ.parse(value)
    kind = item.user_identity_type
    try:
        kind_name = UserIdentityType(kind).name.lower()
    except ValueError:
        kind_name = "unknown"
    out: dict[str, Any] = {
        "user_identity_type": kind,
        "user_identity_type_name": kind_name,
        "positive_response_requested": bool(item.positive_response_requested),
        "primary_field_length": item.primary_field_length,
        "secondary_field_length": item.secondary_field_length,
    }
    # Only a plain user name is kept: tickets, assertions and tokens are
    # credentials, and the passcode (secondary field) never leaves.
    if kind in (UserIdentityType.USERNAME, UserIdentityType.USERNAME_AND_PASSCODE):
        out["username"] = item.primary_field.decode("utf-8", "replace")
    return out


def _user_information(value: bytes, is_rq: bool) -> tuple[dict, list[str]]:
    sub_items, problem = _items(value, "user information")
    problems = [problem] if problem else []
    out: dict[str, Any] = {}
    roles, extended, common = [], [], []
    for sub in sub_items:
        kind, raw = sub.item_type, sub.value
        try:
            if kind == ItemType.MAXIMUM_LENGTH:
                out["maximum_length"] = MAXIMUM_LENGTH.parse(
                    raw
                ).maximum_length_received
            elif kind == ItemType.IMPLEMENTATION_CLASS_UID:
                out["implementation_class_uid"] = text(raw)
            elif kind == ItemType.IMPLEMENTATION_VERSION_NAME:
                out["implementation_version_name"] = text(raw)
            elif kind == ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW:
                window = ASYNCHRONOUS_OPERATIONS_WINDOW.parse(raw)
                out["asynchronous_operations_window"] = {
                    key: window[key]
                    for key in (
                        "maximum_number_operations_invoked",
                        "maximum_number_operations_performed",
                    )
                }
            elif kind == ItemType.SCP_SCU_ROLE_SELECTION:
                role = SCP_SCU_ROLE_SELECTION.parse(raw)
                roles.append(
                    {
                        "sop_class_uid": text(role.sop_class_uid),
                        "scu_role": role.scu_role,
                        "scp_role": role.scp_role,
                    }
                )
            elif kind == ItemType.SOP_CLASS_EXTENDED_NEGOTIATION:
                ext = SOP_CLASS_EXTENDED_NEGOTIATION.parse(raw)
                extended.append(
                    {
                        "sop_class_uid": text(ext.sop_class_uid),
                        "service_class_application_information": (
                            ext.service_class_application_information.hex()
                        ),
                    }
                )
            elif kind == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION:
                ext = SOP_CLASS_COMMON_EXTENDED_NEGOTIATION.parse(raw)
                common.append(
                    {
                        "sop_class_uid": text(ext.sop_class_uid),
                        "service_class_uid": text(ext.service_class_uid),
                    }
                )
            elif kind == ItemType.USER_IDENTITY_RQ:
                out["user_identity"] = _user_identity_rq(raw)
            elif kind == ItemType.USER_IDENTITY_AC:
                response = USER_IDENTITY_AC.parse(raw)
                # A server response may be a Kerberos or SAML token: length only.
                out["user_identity"] = {
                    "server_response_length": response.server_response_length
                }
            else:
                out.setdefault("unknown_sub_items", []).append(kind)
        except cs.ConstructError:
            problems.append(
                f"user information sub-item 0x{kind:02x}: {len(raw)}-byte value "
                "is too short for its fields"
            )
    if roles:
        out["scp_scu_role_selection"] = roles
    if extended:
        out["sop_class_extended_negotiation"] = extended
    if common:
        out["sop_class_common_extended_negotiation"] = common
    return out, problems


def decode_associate(pdu: bytes, is_rq: bool) -> Decoded:
    """Fields of a whole A-ASSOCIATE-RQ (``is_rq``) or -AC PDU, header included."""
    fields: dict[str, Any] = {"pdu_type": pdu[0], "pdu_length": len(pdu) - 6}
    body = pdu[PDU_HEADER_SIZE:]
    if len(body) < A_ASSOCIATE_FIXED_SIZE:
        return (
            fields,
            (),
            (
                f"{len(body)}-byte A-ASSOCIATE body is shorter than its "
                f"{A_ASSOCIATE_FIXED_SIZE}-byte fixed part"
            ),
        )
    fixed = _compiled(A_ASSOCIATE).parse(body)
    fields["protocol_version"] = fixed.protocol_version
    fields["called_ae_title"] = text(fixed.called_ae_title)
    fields["calling_ae_title"] = text(fixed.calling_ae_title)
    findings = []
    for key in ("called_ae_title", "calling_ae_title"):
        if not fields[key]:
            findings.append(
                Finding(
                    "ae_title_blank",
                    f"{key} is all spaces; PS3.8 does not allow a blank AE title",
                )
            )
    if not fixed.protocol_version & 1:
        findings.append(
            Finding(
                "protocol_version_unsupported",
                f"protocol version 0x{fixed.protocol_version:04x} lacks bit 0 "
                "(version 1), the only one PS3.8 defines",
            )
        )

    items, problem = _items(fixed.variable_items, "A-ASSOCIATE")
    problems = [problem] if problem else []
    contexts = []
    user_information: dict[str, Any] | None = None
    for item in items:
        kind = item.item_type
        try:
            if kind == ItemType.APPLICATION_CONTEXT:
                fields["application_context_name"] = text(item.value)
            elif kind in (
                ItemType.PRESENTATION_CONTEXT_RQ,
                ItemType.PRESENTATION_CONTEXT_AC,
            ):
                context, found = _sub_items_of_context(item.value, is_rq)
                contexts.append(context)
                problems += found
            elif kind == ItemType.USER_INFORMATION:
                user_information, found = _user_information(item.value, is_rq)
                problems += found
            else:
                fields.setdefault("unknown_items", []).append(kind)
        # The compiled presentation-context parser raises struct.error, not a
        # ConstructError, on a value shorter than its four fixed octets.
        except (cs.ConstructError, struct.error):
            problems.append(
                f"item 0x{kind:02x}: {len(item.value)}-byte value is too short "
                "for its fields"
            )
    fields["presentation_contexts"] = contexts
    fields["user_information"] = user_information or {}
    if "application_context_name" not in fields:
        findings.append(
            Finding(
                "application_context_missing",
                "A-ASSOCIATE carries no application context item",
            )
        )
    if user_information is None:
        findings.append(
            Finding(
                "user_information_missing",
                "A-ASSOCIATE carries no user information item (maximum length is "
                "mandatory in it)",
            )
        )
    return fields, tuple(findings), "; ".join(problems) or None


def decode_fixed(pdu: bytes) -> Decoded:
    """Fields of a whole A-ASSOCIATE-RJ, A-RELEASE-RQ/RP or A-ABORT PDU."""
    pdu_type = pdu[0]
    fields: dict[str, Any] = {"pdu_type": pdu_type, "pdu_length": len(pdu) - 6}
    body = pdu[PDU_HEADER_SIZE:]
    if len(body) != 4:
        return (
            fields,
            (),
            (
                f"{PduType(pdu_type).name.replace('_', '-')} body has "
                f"{len(body)} bytes; PS3.8 gives it 4"
            ),
        )
    parsed = _compiled(FIXED_BODY[pdu_type]).parse(body)
    if pdu_type == PduType.A_ASSOCIATE_RJ:
        source = parsed.source
        fields["result"] = parsed.result
        fields["result_name"] = REJECT_RESULTS.get(parsed.result, "unknown")
        fields["source"] = source
        fields["source_name"] = REJECT_SOURCES.get(source, "unknown")
        fields["reason_diag"] = parsed.reason_diag
        fields["reason_name"] = REJECT_REASONS.get(source, {}).get(
            parsed.reason_diag, "reserved"
        )
    elif pdu_type == PduType.A_ABORT:
        fields["source"] = parsed.source
        fields["source_name"] = ABORT_SOURCES.get(parsed.source, "unknown")
        fields["reason_diag"] = parsed.reason_diag
        # The reason is the provider's; a service user's abort carries none.
        if parsed.source == 2:
            reason = ABORT_REASONS.get(parsed.reason_diag, "reserved")
        else:
            reason = "not_significant"
        fields["reason_name"] = reason
    return fields, (), None
