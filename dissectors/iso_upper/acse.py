"""ISO 8650 ACSE APDUs: AARQ, AARE, RLRQ, RLRE and ABRT, BER decoded.

Decoded: protocol version, application context name, AP titles (form 2,
an object identifier; form 1 kept raw), AE qualifiers (form 2, an integer),
AP and AE invocation identifiers, result and its source diagnostic, release
and abort reasons, authentication mechanism (the value itself is never
kept, only whether there is one), and the EXTERNAL of the user
information: its direct and indirect reference and the single ASN.1 value
(the MMS PDU).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from dissectors.iso_upper.ber import BerError, children, header, integer, oid, text

APDU_NAMES = {0x60: "aarq", 0x61: "aare", 0x62: "rlrq", 0x63: "rlre", 0x64: "abrt"}
RESULT_NAMES = {0: "accepted", 1: "rejected-permanent", 2: "rejected-transient"}
RELEASE_REQUEST_REASONS = {0: "normal", 1: "urgent", 30: "user-defined"}
RELEASE_RESPONSE_REASONS = {0: "normal", 1: "not-finished", 30: "user-defined"}
ABORT_SOURCES = {0: "acse-service-user", 1: "acse-service-provider"}

MMS_CONTEXT = "1.0.9506.2.3"
MMS_CONTEXT_ALT = "1.0.9506.2.1"

# Tag numbers of AARQ and AARE fields that name the two ends.
_AARQ_FIELDS = {
    2: "called_ap_title",
    3: "called_ae_qualifier",
    4: "called_ap_invocation_identifier",
    5: "called_ae_invocation_identifier",
    6: "calling_ap_title",
    7: "calling_ae_qualifier",
    8: "calling_ap_invocation_identifier",
    9: "calling_ae_invocation_identifier",
}
_AARE_FIELDS = {
    4: "responding_ap_title",
    5: "responding_ae_qualifier",
    6: "responding_ap_invocation_identifier",
    7: "responding_ae_invocation_identifier",
}


class AcsePdu(NamedTuple):
    """``apdu`` names it; ``user_data`` is the encoded MMS PDU or None."""

    apdu: str
    fields: dict[str, Any]
    user_data: bytes | None


def _title(buf: bytes, start: int, end: int) -> Any:
    """AP-title / AE-qualifier: form 2 (OID or INTEGER) decoded, else hex."""
    inner = children(buf, start, end)
    if len(inner) == 1:
        ident, s, e = inner[0]
        if ident == 0x06:
            return oid(buf, s, e)
        if ident == 0x02:
            return integer(buf, s, e)
    return buf[start:end].hex()


def _user_information(
    buf: bytes, start: int, end: int, fields: dict[str, Any]
) -> bytes | None:
    found = None
    for ident, s, e in children(buf, start, end):
        if ident != 0x28:  # EXTERNAL
            continue
        for i2, s2, e2 in children(buf, s, e):
            if i2 == 0x06:
                fields["direct_reference"] = oid(buf, s2, e2)
            elif i2 == 0x02:
                fields["indirect_reference"] = integer(buf, s2, e2)
            elif i2 == 0xA0:
                fields["encoding"] = "single-ASN1-type"
                found = bytes(buf[s2:e2]) if found is None else found
            elif i2 in (0x81, 0x82):
                fields["encoding"] = "octet-aligned" if i2 == 0x81 else "arbitrary"
    return found


def parse_acse(data: bytes) -> AcsePdu:
    """Decode one ACSE APDU. Raises :class:`BerError` on broken BER."""
    ident, start, stop, _ = header(data, 0, len(data))
    name = APDU_NAMES.get(ident)
    if name is None:
        raise BerError(f"ACSE APDU of tag 0x{ident:x}")
    fields: dict[str, Any] = {}
    user = None
    names = _AARQ_FIELDS if ident == 0x60 else _AARE_FIELDS if ident == 0x61 else {}
    for ident2, s, e in children(data, start, stop):
        number = ident2 & 0x1F if ident2 < 0x100 else -1
        if ident2 == 0xBE:
            user = _user_information(data, s, e, fields)
        elif ident2 == 0x80 and ident in (0x60, 0x61):
            fields["protocol_version"] = data[s:e].hex()
        elif ident2 == 0xA1 and ident in (0x60, 0x61):
            inner = children(data, s, e)
            if inner and inner[0][0] == 0x06:
                fields["aso_context_name"] = oid(data, inner[0][1], inner[0][2])
        elif ident2 & 0xA0 == 0xA0 and number in names:
            fields[names[number]] = _title(data, s, e)
        elif ident == 0x61 and ident2 == 0xA2:
            inner = children(data, s, e)
            if inner:
                fields["result"] = integer(data, inner[0][1], inner[0][2])
        elif ident == 0x61 and ident2 == 0xA3:
            inner = children(data, s, e)
            if inner:
                source = (
                    "acse-service-user"
                    if inner[0][0] == 0xA1
                    else "acse-service-provider"
                )
                value = children(data, inner[0][1], inner[0][2])
                fields["result_source"] = source
                if value:
                    fields["diagnostic"] = integer(data, value[0][1], value[0][2])
        elif ident in (0x62, 0x63) and ident2 == 0x80:
            fields["reason"] = integer(data, s, e)
        elif ident == 0x64 and ident2 == 0x80:
            fields["abort_source"] = integer(data, s, e)
        elif ident == 0x64 and ident2 == 0x81:
            fields["abort_diagnostic"] = integer(data, s, e)
        elif ident2 in (0x8A, 0x88) and ident in (0x60, 0x61):
            fields["acse_requirements"] = data[s:e].hex()
        elif ident2 in (0x8B, 0x89) and ident in (0x60, 0x61):
            fields["mechanism_name"] = oid(data, s, e)
        elif ident2 in (0xAC, 0xAA) and ident in (0x60, 0x61):
            fields["authentication_value_present"] = True
        elif ident2 == 0x9D:
            fields["implementation_information"] = text(data, s, e)
    return AcsePdu(name, fields, user)
