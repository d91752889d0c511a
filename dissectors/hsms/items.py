"""SECS-II message text: a bounded fast decoder to plain items, and SML rendering.

A plain item is ``{"type": "U4", "value": [200]}``: ``type`` is the format's
SML name (:class:`~dissectors.hsms.definitions.FormatCode`), and ``value`` is a
list of child items for ``L``, a lower-case hex string for ``B`` and ``C2``,
text for ``A`` and ``J``, and a list of numbers or booleans otherwise (every
SECS-II item is an array). ``C2`` items also carry ``encoding`` (the 2-byte
code that starts them) and, for the encodings known here, ``text``.

An item whose length field is wider than its length needs (a U4 of length 4
sent with 2 length bytes) also carries ``length_bytes``, the width used; items
without the key used the least width.

The decoder is written by hand for speed and held equal to the construct
definition :data:`~dissectors.hsms.definitions.ITEM` by tests. It never trusts
a length: a list may not claim more items than the bytes left could hold, an
array may not run past the message, and nesting stops at
:data:`~dissectors.hsms.definitions.MAX_DEPTH`; each of these raises
:class:`ItemError`, which the dissector turns into a ``malformed`` status.
"""

from __future__ import annotations

import struct
from typing import Any

from dissectors.hsms.definitions import ELEMENT_SIZE, MAX_DEPTH, FormatCode


class ItemError(ValueError):
    """The message text contradicts SECS-II; ``offset`` is where, in the text."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at offset {offset} of the message text")
        self.reason = reason
        self.offset = offset


_NAMES = {int(code): code.name for code in FormatCode}
_STRUCT_CODES = {
    FormatCode.I8: "q", FormatCode.I1: "b", FormatCode.I2: "h", FormatCode.I4: "i",
    FormatCode.F8: "d", FormatCode.F4: "f", FormatCode.U8: "Q", FormatCode.U1: "B",
    FormatCode.U2: "H", FormatCode.U4: "I",
}  # fmt: skip
_NUMERIC = {int(code): (ELEMENT_SIZE[code], fmt) for code, fmt in _STRUCT_CODES.items()}
# Most arrays hold one element; their Structs are made once.
_SINGLE = {code: struct.Struct(">" + fmt) for code, (_, fmt) in _NUMERIC.items()}
_A, _B, _BOOLEAN, _J = (
    int(c) for c in (FormatCode.A, FormatCode.B, FormatCode.BOOLEAN, FormatCode.J)
)

# C2 encoding codes whose text is decoded here (E5, 2-byte character items).
# Limitation: only these two encodings get a ``text``; items in the others
# (JIS, EUC, Big5...) keep their bytes as hex. Mapping the remaining E5
# encoding codes to Python codecs would lift it.
C2_ENCODINGS = {1: "utf-16-be", 2: "utf-8"}


def decode_text(text: bytes) -> dict[str, Any] | None:
    """The one item a message text holds, or None for an empty text.

    Raises
    ------
    ItemError
        the text is not exactly one well-formed item.
    """
    if not text:
        return None
    item, end = decode_item(text, 0, len(text), 0)
    if end != len(text):
        raise ItemError(f"{len(text) - end} bytes follow the message's item", end)
    return item


def decode_item(
    buf: bytes, pos: int, end: int, depth: int
) -> tuple[dict[str, Any], int]:
    """Decode the item at ``pos``; return it and the offset after it."""
    if depth > MAX_DEPTH:
        raise ItemError(f"items nested deeper than {MAX_DEPTH}", pos)
    if pos >= end:
        raise ItemError("item expected, message ended", pos)
    format_byte = buf[pos]
    code = format_byte >> 2
    length_bytes = format_byte & 3
    name = _NAMES.get(code)
    if name is None:
        raise ItemError(f"unknown format code {code:o} (octal)", pos)
    if length_bytes == 0:
        raise ItemError("item with 0 length bytes", pos)
    start = pos + 1 + length_bytes
    if start > end:
        raise ItemError("item length runs past the message", pos)
    if length_bytes == 1:
        length = buf[pos + 1]
    elif length_bytes == 2:
        length = buf[pos + 1] << 8 | buf[pos + 2]
    else:
        length = buf[pos + 1] << 16 | buf[pos + 2] << 8 | buf[pos + 3]

    if code == 0:
        # Each child takes at least two bytes, so a count beyond that is a lie
        # that would otherwise cost a loop of up to 16 million turns.
        if length * 2 > end - start:
            raise ItemError(f"list of {length} items cannot fit", pos)
        children = []
        append = children.append
        at = start
        for _ in range(length):
            child, at = decode_item(buf, at, end, depth + 1)
            append(child)
        item: dict[str, Any] = {"type": "L", "value": children}
        if length_bytes > 1 and length_bytes != least_length_bytes(length):
            item["length_bytes"] = length_bytes
        return item, at

    stop = start + length
    if stop > end:
        raise ItemError(f"{name} item of {length} bytes runs past the message", pos)
    numeric = _NUMERIC.get(code)
    if numeric is not None:
        size, fmt = numeric
        if length == size:
            item = {"type": name, "value": list(_SINGLE[code].unpack_from(buf, start))}
        elif length % size:
            raise ItemError(
                f"{name} item of {length} bytes, not a multiple of {size}", pos
            )
        else:
            value = list(struct.unpack_from(f">{length // size}{fmt}", buf, start))
            item = {"type": name, "value": value}
        if length_bytes > 1 and length_bytes != least_length_bytes(length):
            item["length_bytes"] = length_bytes
        return item, stop
    data = buf[start:stop]
    if code == _A:
        item = {"type": name, "value": data.decode("latin-1")}
    elif code == _B:
        item = {"type": name, "value": data.hex()}
    elif code == _BOOLEAN:
        item = {"type": name, "value": [b != 0 for b in data]}
    elif code == _J:
        item = {"type": name, "value": _jis8(data)}
    else:  # C2
        item = {"type": name, "value": data.hex()}
        if length >= 2:
            encoding = data[0] << 8 | data[1]
            item["encoding"] = encoding
            codec = C2_ENCODINGS.get(encoding)
            if codec is not None:
                item["text"] = data[2:].decode(codec, errors="replace")
    if length_bytes > 1 and length_bytes != least_length_bytes(length):
        item["length_bytes"] = length_bytes
    return item, stop


def least_length_bytes(length: int) -> int:
    """The narrowest length field that holds ``length``."""
    return 1 if length < 0x100 else 2 if length < 0x10000 else 3


def _jis8(data: bytes) -> str:
    # JIS X 0201 8-bit: ASCII-like below 0x80 (yen and overline aside) and
    # half-width katakana from 0xA1 to 0xDF. Python's shift_jis reads those
    # single bytes so; anything else falls back to latin-1 to stay lossless.
    try:
        return data.decode("shift_jis")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- SML ---------------------------------------------------------------------------

# SML text is for people; a huge item is cut, with its size said, rather
# than rendered whole into every message record.
SML_MAX_ELEMENTS = 64


def to_sml(item: dict[str, Any] | None, indent: int = 0) -> str:
    """Render a plain item as SML (``<L [2] <A "START"> ...>``), one item a line."""
    if item is None:
        return ""
    lines: list[str] = []
    _sml_lines(item, "  " * indent, lines)
    return "\n".join(lines)


def _sml_lines(item: dict[str, Any], pad: str, lines: list[str]) -> None:
    kind = item["type"]
    value = item["value"]
    if kind == "L":
        if not value:
            lines.append(f"{pad}<L [0]>")
            return
        lines.append(f"{pad}<L [{len(value)}]")
        inner = pad + "  "
        for child in value:
            _sml_lines(child, inner, lines)
        lines.append(f"{pad}>")
        return
    if kind in ("A", "J"):
        lines.append(f"{pad}<{kind} {_quote(value)}>")
        return
    if kind in ("B", "C2"):
        if kind == "C2" and "text" in item:
            lines.append(f"{pad}<C2 {_quote(item['text'])}>")
            return
        shown = value[: 2 * SML_MAX_ELEMENTS]
        octets = [f"0x{shown[i : i + 2]}" for i in range(0, len(shown), 2)]
        lines.append(f"{pad}<{kind}{_elements(octets, len(value) // 2)}>")
        return
    if kind == "BOOLEAN":
        words = ["TRUE" if v else "FALSE" for v in value[:SML_MAX_ELEMENTS]]
    elif len(value) == 1:  # the common case, written out
        lines.append(f"{pad}<{kind} {value[0]}>")
        return
    else:
        # str() of a float is its shortest round-tripping form, as repr().
        words = [str(v) for v in value[:SML_MAX_ELEMENTS]]
    lines.append(f"{pad}<{kind}{_elements(words, len(value))}>")


def _elements(words: list[str], count: int) -> str:
    # ``words`` holds at most SML_MAX_ELEMENTS of the ``count`` elements.
    if not words:
        return ""
    if count > len(words):
        return f" {' '.join(words)} ...({count} in all)"
    return " " + " ".join(words)


def _quote(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:
        if len(text) <= 4 * SML_MAX_ELEMENTS:
            return f'"{text}"'
    if len(text) > 4 * SML_MAX_ELEMENTS:
        text = text[: 4 * SML_MAX_ELEMENTS] + f"...({len(text)} characters in all)"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return (
        '"'
        + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
        + '"'
    )


def from_construct(parsed: Any) -> dict[str, Any]:
    """The plain item of a construct :data:`ITEM` parse (for equality tests)."""
    item = _plain_from_construct(parsed)
    if parsed.format_byte.length_bytes != least_length_bytes(parsed.length):
        item["length_bytes"] = parsed.format_byte.length_bytes
    return item


def _plain_from_construct(parsed: Any) -> dict[str, Any]:
    code = parsed.format_byte.format_code
    name = _NAMES[code]
    value = parsed.value
    if code == 0:
        return {"type": "L", "value": [from_construct(child) for child in value]}
    if code in _NUMERIC:
        return {"type": name, "value": list(value[1])}
    data = bytes(value)
    if code == FormatCode.A:
        return {"type": name, "value": data.decode("latin-1")}
    if code == FormatCode.B:
        return {"type": name, "value": data.hex()}
    if code == FormatCode.BOOLEAN:
        return {"type": name, "value": [b != 0 for b in data]}
    if code == FormatCode.J:
        return {"type": name, "value": _jis8(data)}
    item = {"type": name, "value": data.hex()}
    if len(data) >= 2:
        encoding = data[0] << 8 | data[1]
        item["encoding"] = encoding
        codec = C2_ENCODINGS.get(encoding)
        if codec is not None:
            item["text"] = data[2:].decode(codec, errors="replace")
    return item
