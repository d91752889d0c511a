"""pyasn1 definitions of the ACSE, MMS and GOOSE pieces the fast decoders read.

These follow the ASN.1 modules of ISO 8650 (ACSE), ISO 9506-2 (MMS) and
IEC 61850-8-1 (GOOSE) for the types listed; they are the source of truth
the hand-written BER walker is held to in the tests, and they encode the
GOOSE frames the tests and fixtures are built from. They are not used on
the hot path: pyasn1 decodes about a hundred times slower.
"""

from __future__ import annotations

from pyasn1.type import char, namedtype, tag, univ


def _ctx(number: int, constructed: bool = False) -> tag.Tag:
    form = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.Tag(tag.tagClassContext, form, number)


def _implicit(base, number: int, constructed: bool = False):
    return base.subtype(implicitTag=_ctx(number, constructed))


class UtcTime(univ.OctetString):
    """IEC 61850-8-1 UtcTime: 8 octets."""


class FlatData(univ.Choice):
    """MMS Data restricted to its basic (non-nested) alternatives."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("boolean", _implicit(univ.Boolean(), 3)),
        namedtype.NamedType("bit-string", _implicit(univ.BitString(), 4)),
        namedtype.NamedType("integer", _implicit(univ.Integer(), 5)),
        namedtype.NamedType("unsigned", _implicit(univ.Integer(), 6)),
        namedtype.NamedType("floating-point", _implicit(univ.OctetString(), 7)),
        namedtype.NamedType("octet-string", _implicit(univ.OctetString(), 9)),
        namedtype.NamedType("visible-string", _implicit(char.VisibleString(), 10)),
        namedtype.NamedType("binary-time", _implicit(univ.OctetString(), 12)),
        namedtype.NamedType("utc-time", _implicit(UtcTime(), 17)),
    )


class FlatStructure(univ.SequenceOf):
    """A structure [2] of basic values (one level of nesting)."""

    componentType = FlatData()
    tagSet = univ.SequenceOf.tagSet.tagImplicitly(_ctx(2, True))


class Data(univ.Choice):
    """MMS Data: the basic alternatives and a one-level structure."""

    componentType = namedtype.NamedTypes(
        *FlatData.componentType.namedTypes,
        namedtype.NamedType("structure", FlatStructure()),
    )


class IdentifyResponse(univ.Sequence):
    """Identify-Response, ISO 9506-2."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("vendorName", _implicit(char.VisibleString(), 0)),
        namedtype.NamedType("modelName", _implicit(char.VisibleString(), 1)),
        namedtype.NamedType("revision", _implicit(char.VisibleString(), 2)),
    )


class AllData(univ.SequenceOf):
    componentType = Data()
    tagSet = univ.SequenceOf.tagSet.tagImplicitly(_ctx(11, True))


class IECGoosePdu(univ.Sequence):
    """IEC 61850-8-1 IECGoosePdu, tagged [APPLICATION 1]."""

    tagSet = univ.Sequence.tagSet.tagImplicitly(
        tag.Tag(tag.tagClassApplication, tag.tagFormatConstructed, 1)
    )
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("gocbRef", _implicit(char.VisibleString(), 0)),
        namedtype.NamedType("timeAllowedtoLive", _implicit(univ.Integer(), 1)),
        namedtype.NamedType("datSet", _implicit(char.VisibleString(), 2)),
        namedtype.OptionalNamedType("goID", _implicit(char.VisibleString(), 3)),
        namedtype.NamedType("t", _implicit(UtcTime(), 4)),
        namedtype.NamedType("stNum", _implicit(univ.Integer(), 5)),
        namedtype.NamedType("sqNum", _implicit(univ.Integer(), 6)),
        namedtype.NamedType("simulation", _implicit(univ.Boolean(), 7)),
        namedtype.NamedType("confRev", _implicit(univ.Integer(), 8)),
        namedtype.NamedType("ndsCom", _implicit(univ.Boolean(), 9)),
        namedtype.NamedType("numDatSetEntries", _implicit(univ.Integer(), 10)),
        namedtype.NamedType("allData", AllData()),
    )


def _explicit(base, number: int):
    return base.subtype(explicitTag=_ctx(number, True))


class AARQ(univ.Sequence):
    """ACSE AARQ-apdu (ISO 8650-1), AP titles and AE qualifiers in form 2 only."""

    tagSet = univ.Sequence.tagSet.tagImplicitly(
        tag.Tag(tag.tagClassApplication, tag.tagFormatConstructed, 0)
    )
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("protocol-version", _implicit(univ.BitString(), 0)),
        namedtype.NamedType("aSO-context-name", _explicit(univ.ObjectIdentifier(), 1)),
        namedtype.OptionalNamedType(
            "called-AP-title", _explicit(univ.ObjectIdentifier(), 2)
        ),
        namedtype.OptionalNamedType(
            "called-AE-qualifier", _explicit(univ.Integer(), 3)
        ),
        namedtype.OptionalNamedType(
            "called-AP-invocation-identifier", _explicit(univ.Integer(), 4)
        ),
        namedtype.OptionalNamedType(
            "called-AE-invocation-identifier", _explicit(univ.Integer(), 5)
        ),
        namedtype.OptionalNamedType(
            "calling-AP-title", _explicit(univ.ObjectIdentifier(), 6)
        ),
        namedtype.OptionalNamedType(
            "calling-AE-qualifier", _explicit(univ.Integer(), 7)
        ),
        namedtype.OptionalNamedType(
            "calling-AP-invocation-identifier", _explicit(univ.Integer(), 8)
        ),
        namedtype.OptionalNamedType(
            "calling-AE-invocation-identifier", _explicit(univ.Integer(), 9)
        ),
        namedtype.OptionalNamedType(
            "sender-acse-requirements", _implicit(univ.BitString(), 10)
        ),
        namedtype.OptionalNamedType(
            "mechanism-name", _implicit(univ.ObjectIdentifier(), 11)
        ),
        # calling-authentication-value [12] is left out: an explicitly tagged
        # ANY confuses pyasn1's SEQUENCE decoder; no test capture carries one.
        namedtype.OptionalNamedType(
            "implementation-information", _implicit(char.GraphicString(), 29)
        ),
        namedtype.OptionalNamedType(
            "user-information",
            univ.SequenceOf(componentType=univ.Any()).subtype(
                implicitTag=_ctx(30, True)
            ),
        ),
    )
