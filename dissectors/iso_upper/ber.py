"""A small bounded BER TLV walker: headers, primitives and indefinite lengths.

The hot path of MMS, ACSE, presentation and GOOSE decoding. It reads one
tag-length-value header at a time and never recurses: nesting is the
caller's business, and every caller passes a depth it checks against
:data:`MAX_DEPTH`. The ASN.1 definitions in :mod:`dissectors.iso_upper.asn1`
(pyasn1) are the source of truth; tests hold this walker equal to them.

Tags are returned as one int, the *identifier key*: for the low tag number
form it is the identifier octet itself (``0xA1`` is context 1 constructed),
for the high form (number 31 and up) it is ``HIGH_TAG | class_bits << 16 |
number``, see :func:`key`.
"""

from __future__ import annotations

MAX_DEPTH = 32
HIGH_TAG = 1 << 24
CONSTRUCTED = 0x20
UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0x00, 0x40, 0x80, 0xC0
# Indefinite lengths nested inside one another, at most.
_MAX_INDEFINITE = MAX_DEPTH


class BerError(ValueError):
    """The bytes break BER: cut short, a bad length, nesting beyond the bound."""


def key(tag_class: int, number: int, constructed: bool = False) -> int:
    """The identifier key of a tag, as :func:`header` returns it.

    >>> hex(key(CONTEXT, 1, True)), hex(key(CONTEXT, 73))
    ('0xa1', '0x1800049')
    """
    bits = tag_class | (CONSTRUCTED if constructed else 0)
    if number < 31:
        return bits | number
    return HIGH_TAG | bits << 16 | number


def is_constructed(ident: int) -> bool:
    """Whether an identifier key names a constructed encoding."""
    if ident & HIGH_TAG:
        return bool((ident >> 16) & CONSTRUCTED)
    return bool(ident & CONSTRUCTED)


def tag_number(ident: int) -> int:
    """The tag number of an identifier key."""
    if ident & HIGH_TAG:
        return ident & 0xFFFF
    return ident & 0x1F


def header(buf: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """Read the TLV at ``pos``: ``(ident, value_start, value_end, next_pos)``.

    For an indefinite length, ``value_end`` is where the end-of-contents
    octets start and ``next_pos`` is just past them.

    Raises
    ------
    BerError
        when the header or the value runs past ``end`` or breaks BER.
    """
    if pos >= end:
        raise BerError(f"TLV expected at offset {pos}, data ends")
    ident = buf[pos]
    pos += 1
    if ident & 0x1F == 0x1F:
        number = 0
        for _ in range(4):
            if pos >= end:
                raise BerError("high tag number cut short")
            octet = buf[pos]
            pos += 1
            number = number << 7 | (octet & 0x7F)
            if not octet & 0x80:
                break
        else:
            raise BerError("tag number longer than 4 octets")
        ident = HIGH_TAG | (ident & 0xE0) << 16 | number
    if pos >= end:
        raise BerError("length octet missing")
    length = buf[pos]
    pos += 1
    if length < 0x80:
        stop = pos + length
    elif length == 0x80:
        if not is_constructed(ident):
            raise BerError("indefinite length on a primitive encoding")
        eoc = _end_of_contents(buf, pos, end)
        return ident, pos, eoc, eoc + 2
    else:
        count = length & 0x7F
        if count > 4 or pos + count > end:
            raise BerError(f"long-form length of {count} octets")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
        stop = pos + length
    if stop > end:
        raise BerError(f"value of {stop - pos} bytes at offset {pos} overruns {end}")
    return ident, pos, stop, stop


def _end_of_contents(buf: bytes, pos: int, end: int) -> int:
    """Where the end-of-contents octets closing the value at ``pos`` start.

    Walks the nested TLVs iteratively, with the depth of nested indefinite
    lengths bounded, so hostile nesting costs one pass and no recursion.
    """
    starts: list[int] = []
    while True:
        if pos + 2 > end:
            raise BerError("indefinite length without end-of-contents")
        if buf[pos] == 0 and buf[pos + 1] == 0:
            if not starts:
                return pos
            starts.pop()
            pos += 2
            continue
        ident = buf[pos]
        pos += 1
        if ident & 0x1F == 0x1F:
            for _ in range(4):
                if pos >= end:
                    raise BerError("high tag number cut short")
                pos += 1
                if not buf[pos - 1] & 0x80:
                    break
            else:
                raise BerError("tag number longer than 4 octets")
        if pos >= end:
            raise BerError("length octet missing")
        length = buf[pos]
        pos += 1
        if length < 0x80:
            pos += length
        elif length == 0x80:
            if not ident & CONSTRUCTED:
                raise BerError("indefinite length on a primitive encoding")
            starts.append(pos)
            if len(starts) >= _MAX_INDEFINITE:
                raise BerError(f"indefinite lengths nested deeper than {MAX_DEPTH}")
        else:
            count = length & 0x7F
            if count > 4 or pos + count > end:
                raise BerError(f"long-form length of {count} octets")
            pos += count + int.from_bytes(buf[pos : pos + count], "big")
        if pos > end:
            raise BerError("value overruns its indefinite-length container")


def children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The TLVs directly inside ``buf[start:end]``: ``(ident, start, end)`` each."""
    out = []
    pos = start
    while pos < end:
        ident, value_start, value_end, pos = header(buf, pos, end)
        out.append((ident, value_start, value_end))
    return out


def integer(buf: bytes, start: int, end: int) -> int:
    """A two's-complement INTEGER (or ENUMERATED) value."""
    if end - start > 16:
        raise BerError(f"integer of {end - start} octets")
    return int.from_bytes(buf[start:end], "big", signed=True)


def unsigned(buf: bytes, start: int, end: int) -> int:
    """An INTEGER read as unsigned (MMS Unsigned types keep a leading 0x00)."""
    if end - start > 17:
        raise BerError(f"integer of {end - start} octets")
    return int.from_bytes(buf[start:end], "big")


def boolean(buf: bytes, start: int, end: int) -> bool:
    if end - start != 1:
        raise BerError(f"boolean of {end - start} octets")
    return buf[start] != 0


def text(buf: bytes, start: int, end: int) -> str:
    """A VisibleString, GraphicString or similar: ASCII, else Latin-1."""
    raw = buf[start:end]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def oid(buf: bytes, start: int, end: int) -> str:
    """An OBJECT IDENTIFIER in dotted form.

    >>> oid(bytes.fromhex("28ca220203"), 0, 5)
    '1.0.9506.2.3'
    """
    if start >= end:
        raise BerError("empty object identifier")
    arcs = []
    value = 0
    for octet in buf[start:end]:
        value = value << 7 | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    if buf[end - 1] & 0x80:
        raise BerError("object identifier cut inside an arc")
    first = arcs[0]
    head = (
        [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    )
    return ".".join(str(a) for a in head + arcs[1:])


def bit_string(buf: bytes, start: int, end: int) -> tuple[int, bytes]:
    """A primitive BIT STRING: ``(unused_bits, octets)``."""
    if start >= end:
        raise BerError("bit string without its unused-bits octet")
    unused = buf[start]
    if unused > 7:
        raise BerError(f"bit string with {unused} unused bits")
    return unused, bytes(buf[start + 1 : end])


def bit_names(octets: bytes, unused: int, names: tuple[str, ...]) -> list[str]:
    """The names of the bits set, bit 0 being the first octet's top bit."""
    total = len(octets) * 8 - unused
    found = []
    for index in range(min(total, len(names))):
        if octets[index >> 3] & (0x80 >> (index & 7)):
            found.append(names[index])
    return found
