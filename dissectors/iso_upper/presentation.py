"""ISO 8823 presentation PPDUs: CP, CPA, CPR, user data and aborts, BER decoded.

The session SPDU says which PPDU to expect: CN carries CP-type, AC carries
CPA-PPDU, RF carries CPR-PPDU, DT/FN/DN carry User-data, AB carries ARU or
ARP. Only the normal mode is interpreted (X.410-1984 mode is named and kept
raw). Fully encoded user data yields one :class:`Pdv` per PDV-list: the
presentation context it belongs to and the bytes of its single ASN.1 value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from dissectors.iso_upper.ber import BerError, children, header, integer, oid

MAX_CONTEXTS = 64
MAX_PDVS = 64

ACSE_ABSTRACT_SYNTAX = "2.2.1.0.1"
MMS_ABSTRACT_SYNTAX = "1.0.9506.2.1"
BASIC_ENCODING = "2.1.1"

ABSTRACT_SYNTAX_NAMES = {
    ACSE_ABSTRACT_SYNTAX: "acse",
    MMS_ABSTRACT_SYNTAX: "mms",
    "1.0.9506.2.3": "mms",
}

# Provider reasons of a refused or aborted connection, ISO 8823 8.2.
RESULT_NAMES = {0: "acceptance", 1: "user-rejection", 2: "provider-rejection"}


class Pdv(NamedTuple):
    """One presentation data value: its context id and encoded value."""

    context_id: int | None
    encoding: str  # single-ASN1-type, octet-aligned or arbitrary
    value: bytes


class PresentationPdu(NamedTuple):
    """``ppdu`` names it (cp, cpa, cpr, user_data, aru, arp); ``fields`` decoded."""

    ppdu: str
    fields: dict[str, Any]
    pdvs: list[Pdv]


def _user_data(
    buf: bytes, ident: int, start: int, end: int, fields: dict[str, Any]
) -> list[Pdv]:
    """Simply-encoded [APPLICATION 0] or fully-encoded [APPLICATION 1] data."""
    if ident == 0x40:
        fields["user_data"] = "simply-encoded-data"
        return [Pdv(None, "simply-encoded", bytes(buf[start:end]))]
    if ident != 0x61:
        raise BerError(f"user data of tag 0x{ident:x}")
    fields["user_data"] = "fully-encoded-data"
    pdvs = []
    for item_ident, item_start, item_end in children(buf, start, end):
        if item_ident != 0x30:
            raise BerError("PDV-list is not a SEQUENCE")
        if len(pdvs) >= MAX_PDVS:
            raise BerError(f"more than {MAX_PDVS} PDV-lists")
        context_id = None
        for ident2, s2, e2 in children(buf, item_start, item_end):
            if ident2 == 0x06:
                fields["transfer_syntax_name"] = oid(buf, s2, e2)
            elif ident2 == 0x02:
                context_id = integer(buf, s2, e2)
            elif ident2 == 0xA0:
                pdvs.append(Pdv(context_id, "single-ASN1-type", bytes(buf[s2:e2])))
            elif ident2 in (0x81, 0xA1):
                pdvs.append(Pdv(context_id, "octet-aligned", bytes(buf[s2:e2])))
            elif ident2 in (0x82, 0xA2):
                pdvs.append(Pdv(context_id, "arbitrary", bytes(buf[s2:e2])))
    return pdvs


def _context_list(buf: bytes, start: int, end: int) -> list[dict[str, Any]]:
    items = []
    for ident, s, e in children(buf, start, end):
        if len(items) >= MAX_CONTEXTS:
            raise BerError(f"more than {MAX_CONTEXTS} presentation contexts")
        item: dict[str, Any] = {}
        for ident2, s2, e2 in children(buf, s, e):
            if ident2 == 0x02:
                item["presentation_context_identifier"] = integer(buf, s2, e2)
            elif ident2 == 0x06:
                name = oid(buf, s2, e2)
                item["abstract_syntax_name"] = name
            elif ident2 == 0x30:
                item["transfer_syntax_name_list"] = [
                    oid(buf, s3, e3) for i3, s3, e3 in children(buf, s2, e2) if i3 == 6
                ]
        items.append(item)
    return items


def _result_list(buf: bytes, start: int, end: int) -> list[dict[str, Any]]:
    items = []
    for _, s, e in children(buf, start, end):
        if len(items) >= MAX_CONTEXTS:
            raise BerError(f"more than {MAX_CONTEXTS} context results")
        item: dict[str, Any] = {}
        for ident2, s2, e2 in children(buf, s, e):
            if ident2 == 0x80:
                item["result"] = integer(buf, s2, e2)
            elif ident2 == 0x81:
                item["transfer_syntax_name"] = oid(buf, s2, e2)
            elif ident2 == 0x82:
                item["provider_reason"] = integer(buf, s2, e2)
        items.append(item)
    return items


def _normal_mode(
    buf: bytes, start: int, end: int, fields: dict[str, Any], accept: bool
) -> list[Pdv]:
    pdvs: list[Pdv] = []
    for ident, s, e in children(buf, start, end):
        if ident == 0x80:
            fields["protocol_version"] = buf[s:e].hex()
        elif ident == 0x81:
            fields["calling_presentation_selector"] = buf[s:e].hex()
        elif ident == 0x82:
            fields["called_presentation_selector"] = buf[s:e].hex()
        elif ident == 0x83:
            fields["responding_presentation_selector"] = buf[s:e].hex()
        elif ident == 0xA4:
            fields["presentation_context_definition_list"] = _context_list(buf, s, e)
        elif ident == 0xA5:
            fields["presentation_context_definition_result_list"] = _result_list(
                buf, s, e
            )
        elif ident == 0x88:
            fields["presentation_requirements"] = buf[s:e].hex()
        elif ident == 0x89:
            fields["user_session_requirements"] = buf[s:e].hex()
        elif ident in (0x40, 0x61):
            pdvs = _user_data(buf, ident, s, e, fields)
    return pdvs


def parse_presentation(data: bytes, spdu: int) -> PresentationPdu:
    """Decode the PPDU a session SPDU of type ``spdu`` carries.

    Raises
    ------
    BerError
        when the BER is broken; the caller turns it into ``malformed``.
    """
    end = len(data)
    ident, start, stop, _ = header(data, 0, end)
    fields: dict[str, Any] = {}
    if spdu in (13, 14):  # CN: CP-type, AC: CPA-PPDU, both a SET
        if ident != 0x31:
            raise BerError(f"CP/CPA of tag 0x{ident:x}, a SET expected")
        name = "cp" if spdu == 13 else "cpa"
        pdvs: list[Pdv] = []
        for ident2, s2, e2 in children(data, start, stop):
            if ident2 == 0xA0:
                for i3, s3, e3 in children(data, s2, e2):
                    if i3 == 0x80:
                        fields["mode_value"] = integer(data, s3, e3)
            elif ident2 == 0xA2:
                pdvs = _normal_mode(data, s2, e2, fields, spdu == 14)
            elif ident2 == 0xA1:
                fields["x410_mode_parameters"] = data[s2:e2].hex()
        return PresentationPdu(name, fields, pdvs)
    if spdu == 12:  # RF: CPR-PPDU
        if ident == 0x30:
            pdvs = _normal_mode(data, start, stop, fields, True)
            for i2, s2, e2 in children(data, start, stop):
                if i2 == 0x8A:
                    fields["provider_reason"] = integer(data, s2, e2)
            return PresentationPdu("cpr", fields, pdvs)
        return PresentationPdu("cpr", {"x410": data[start:stop].hex()}, [])
    if spdu == 25:  # AB: ARU-PPDU normal mode [0], or ARP-PPDU SEQUENCE
        if ident == 0xA0:
            pdvs = []
            for i2, s2, e2 in children(data, start, stop):
                if i2 in (0x40, 0x61):
                    pdvs = _user_data(data, i2, s2, e2, fields)
            return PresentationPdu("aru", fields, pdvs)
        if ident == 0x30:
            for i2, s2, e2 in children(data, start, stop):
                if i2 == 0x80:
                    fields["abort_reason"] = integer(data, s2, e2)
                elif i2 == 0x81:
                    fields["event_identifier"] = integer(data, s2, e2)
            return PresentationPdu("arp", fields, [])
    pdvs = _user_data(data, ident, start, stop, fields)
    return PresentationPdu("user_data", fields, pdvs)


def single_pdv(data: bytes, start: int) -> tuple[int, bytes] | None:
    """The hot path: fully encoded data holding one PDV-list of one single value.

    Returns ``(context_id, value)`` when ``data[start:]`` is exactly
    ``61 { 30 { 02 id, A0 value } }``, else None (the general decoder then
    runs). Never raises.
    """
    end = len(data)
    try:
        ident, s, e, after = header(data, start, end)
        if ident != 0x61 or after != end:
            return None
        ident, s2, e2, after = header(data, s, e)
        if (
            ident != 0x30
            or after != e
            or s2 + 3 > e2
            or data[s2] != 2
            or data[s2 + 1] != 1
        ):
            return None
        ident, s3, e3, after = header(data, s2 + 3, e2)
        if ident != 0xA0 or after != e2:
            return None
        return data[s2 + 2], data[s3:e3]
    except BerError:
        return None
