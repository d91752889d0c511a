"""Hand-written decoders for the common shapes of command sets and device elements.

pydicom is the reference decoder (:mod:`dissectors.dicom.dimse`), but it
costs about half a millisecond per command set; these walk the bytes
directly for the shapes real traffic has, and return None for anything
else, which then goes to pydicom. Tests hold the two equal on every command
set of the fixtures and on generated ones.

Declined on purpose: any element not in the standard command set, a value
with a backslash (a multi-valued string pydicom splits), a numeric value
whose length is not one value's, non-ASCII text, and in data sets a
specific character set, a sequence or an undefined length before the
device groups end.
"""

from __future__ import annotations

import struct
from typing import Any

from dissectors.dicom.definitions import (
    COMMAND_ELEMENTS,
    DEVICE_ELEMENTS,
    PRIORITIES,
    CommandField,
    status_category,
    status_name,
)

_HEADER = struct.Struct("<HHI")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_U32 = struct.Struct("<I")

# Value representation of each command element (PS3.7 Annex E).
_US = frozenset(
    {
        0x0100,
        0x0110,
        0x0120,
        0x0700,
        0x0800,
        0x0900,
        0x0903,
        0x1002,
        0x1008,
        0x1020,
        0x1021,
        0x1022,
        0x1023,
        0x1031,
    }
)
_TEXT = frozenset({0x0002, 0x0003, 0x0600, 0x0902, 0x1000, 0x1001, 0x1030})
_AT = frozenset({0x0901, 0x1005})
_NAMES = {tag & 0xFFFF: name for tag, name in COMMAND_ELEMENTS.items()}
_COMMAND_NAMES = {int(c): c.name.replace("_", "-") for c in CommandField}
_LONG_VRS = frozenset(
    {
        b"OB",
        b"OW",
        b"OF",
        b"OD",
        b"OL",
        b"OV",
        b"SQ",
        b"UC",
        b"UR",
        b"UT",
        b"UN",
        b"SV",
        b"UV",
    }
)
_TEXT_VRS = frozenset({b"CS", b"LO", b"SH"})


def _text(raw: bytes) -> str | None:
    if b"\\" in raw or not raw.isascii():
        return None
    return raw.decode("ascii").strip(" \x00")


def decode_command_set_fast(data: bytes) -> dict[str, Any] | None:
    """The fields :func:`~dissectors.dicom.dimse.decode_command_set` gives, or None."""
    pos = 0
    end = len(data)
    values: dict[str, Any] = {}
    previous = -1
    while pos < end:
        if end - pos < 8:
            return None
        group, element, length = _HEADER.unpack_from(data, pos)
        pos += 8
        if group or element <= previous or pos + length > end:
            return None
        previous = element
        raw = data[pos : pos + length]
        pos += length
        if element in _US:
            if length != 2:
                return None
            value: Any = raw[0] | raw[1] << 8
        elif element in _TEXT:
            value = _text(raw)
            if value is None:
                return None
        elif element == 0x0000:
            if length != 4:
                return None
            value = _U32.unpack(raw)[0]
        elif element in _AT:
            if not length or length % 4:
                return None
            pairs = struct.unpack(f"<{length // 2}H", raw)
            tags = [pairs[i] << 16 | pairs[i + 1] for i in range(0, len(pairs), 2)]
            value = tags[0] if len(tags) == 1 else tags
        else:
            return None
        values[_NAMES[element]] = value

    command_field = values.get("command_field")
    if command_field is None:
        return None
    fields: dict[str, Any] = {"command_field": command_field}
    name = _COMMAND_NAMES.get(command_field)
    fields["command_name"] = name if name else f"UNKNOWN-COMMAND-0X{command_field:04X}"
    for key, value in values.items():
        if key != "command_field":
            fields[key] = value
    if "priority" in fields:
        fields["priority_name"] = PRIORITIES.get(fields["priority"], "unknown")
    if "status" in fields:
        fields["status_category"] = status_category(fields["status"])
        fields["status_name"] = status_name(fields["status"])
    return fields


def device_tags_fast(prefix: bytes, explicit: bool) -> dict[str, str] | None:
    """The device elements of a little-endian data set prefix, or None to decline."""
    pos = 0
    end = len(prefix)
    found: dict[str, str] = {}
    while pos + 8 <= end:
        if explicit:
            group, element, vr, length = _EXPLICIT_SHORT.unpack_from(prefix, pos)
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    return None
                length = _U32.unpack_from(prefix, pos + 8)[0]
                header = 12
            else:
                header = 8
        else:
            group, element, length = _HEADER.unpack_from(prefix, pos)
            vr = None
            header = 8
        if group > 0x0018:
            return found
        if length == 0xFFFFFFFF or vr == b"SQ" or (group, element) == (0x0008, 0x0005):
            return None
        start = pos + header
        if start + length > end:
            return None
        name = DEVICE_ELEMENTS.get(group << 16 | element)
        if name is not None:
            if explicit and vr not in _TEXT_VRS:
                return None
            value = _text(prefix[start : start + length])
            if value is None:
                return None
            if value:
                found[name] = value[:256]
        pos = start + length
    return None if pos < end else found
