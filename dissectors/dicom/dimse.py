"""Decodes DIMSE command sets with pydicom and reads device tags from C-STORE data sets.

Command sets are always implicit VR little endian (PS3.7 section 6.3.1) and
hold only group 0000 elements; they are checked element by element before
pydicom decodes them, so a hostile length is refused before any library
sees it. Data sets are never decoded: only the six device-describing
elements of :data:`~dissectors.dicom.definitions.DEVICE_ELEMENTS` are read
from the first bytes of a C-STORE data set, and reading stops at the first
element past group 0018, long before any patient module ends.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any


from dissectors.dicom.definitions import (
    COMMAND_ELEMENTS,
    DEVICE_ELEMENTS,
    PRIORITIES,
    CommandField,
    status_category,
    status_name,
)
from dissectors.dicom.fastpath import decode_command_set_fast, device_tags_fast

UNDEFINED_LENGTH = 0xFFFFFFFF
_ELEMENT_HEADER = struct.Struct("<HHI")
# pydicom is imported on first use, not with the plugin: every run loads every
# plugin to probe flows, and importing pydicom costs a third of a second and
# several megabytes that a capture without DICOM should not pay.
_DEVICE_TAGS: list = []


def _read_dataset():
    from pydicom.filereader import read_dataset
    from pydicom.tag import Tag

    if not _DEVICE_TAGS:
        _DEVICE_TAGS.extend(Tag(tag) for tag in DEVICE_ELEMENTS)
    return read_dataset

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"


def command_name(command_field: int) -> str:
    """``c_store_rq`` and the like, or ``unknown_command_0x....``."""
    try:
        return CommandField(command_field).name.lower()
    except ValueError:
        return f"unknown_command_0x{command_field:04x}"


def _check_command_set(data: bytes) -> str | None:
    """Why ``data`` is not a well-formed command set, or None."""
    pos = 0
    end = len(data)
    previous = -1
    while pos < end:
        if end - pos < 8:
            return (
                f"command set: {end - pos} bytes left at offset {pos}, too few for "
                "an element header"
            )
        group, element, length = _ELEMENT_HEADER.unpack_from(data, pos)
        if group != 0:
            return (
                f"command set: element ({group:04x},{element:04x}) at offset {pos} "
                "is outside group 0000"
            )
        if length == UNDEFINED_LENGTH:
            return f"command set: element (0000,{element:04x}) has undefined length"
        if pos + 8 + length > end:
            return (
                f"command set: element (0000,{element:04x}) at offset {pos} declares "
                f"{length} bytes, {end - pos - 8} left"
            )
        if element <= previous:
            return f"command set: element (0000,{element:04x}) out of ascending order"
        previous = element
        pos += 8 + length
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)) or value.__class__.__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value).strip(" \x00")


def decode_command_set(data: bytes) -> tuple[dict[str, Any], str | None]:
    """The fields of a command set: each known element by name, codes named.

    Returns ``(fields, problem)``; ``problem`` says why the command set is
    malformed (fields then hold what could be read). The common shapes go
    through :func:`~dissectors.dicom.fastpath.decode_command_set_fast`.
    """
    fast = decode_command_set_fast(data)
    if fast is not None:
        return fast, None
    return decode_command_set_with_pydicom(data)


def decode_command_set_with_pydicom(data: bytes) -> tuple[dict[str, Any], str | None]:
    """:func:`decode_command_set` through pydicom alone (the reference)."""
    problem = _check_command_set(data)
    if problem is not None:
        return {}, problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = _read_dataset()(io.BytesIO(data), True, True)
            values = {}
            for element in dataset:
                name = COMMAND_ELEMENTS.get(int(element.tag))
                if name is None:
                    name = f"element_0000_{element.tag.element:04x}"
                values[name] = _plain(element.value)
    except Exception as exc:  # noqa: BLE001  (pydicom on hostile bytes)
        return (
            {},
            f"command set: pydicom could not decode it: {type(exc).__name__}: {exc}",
        )

    fields: dict[str, Any] = {}
    command_field = values.get("command_field")
    if not isinstance(command_field, int):
        return values, "command set has no (0000,0100) command field"
    fields["command_field"] = command_field
    fields["command_name"] = command_name(command_field).upper().replace("_", "-")
    for name, value in values.items():
        if name != "command_field":
            fields[name] = value
    if isinstance(fields.get("priority"), int):
        fields["priority_name"] = PRIORITIES.get(fields["priority"], "unknown")
    status = fields.get("status")
    if isinstance(status, int):
        fields["status_category"] = status_category(status)
        fields["status_name"] = status_name(status)
    return fields, None


def _looks_explicit(prefix: bytes) -> bool:
    # In explicit VR the two bytes after the first tag are a VR such as "CS".
    return len(prefix) >= 6 and 65 <= prefix[4] <= 90 and 65 <= prefix[5] <= 90


def device_tags(
    prefix: bytes, transfer_syntax: str | None
) -> tuple[dict[str, str], str | None]:
    """Device elements found at the start of a data set.

    ``prefix`` is the first bytes of the data set (the rest may be cut off);
    ``transfer_syntax`` the one the presentation context accepted, or None
    when the association was not seen. Returns ``(found, problem)``.
    """
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        # Limitation: deflated data sets are not inflated, so a modality that
        # stores with deflate shows no make or model; inflating the first
        # bytes with zlib would lift it.
        return {}, None
    if transfer_syntax is None:
        implicit = not _looks_explicit(prefix)
        little = True
    else:
        implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
        little = transfer_syntax != EXPLICIT_VR_BIG_ENDIAN
    if little:
        fast = device_tags_fast(prefix, not implicit)
        if fast is not None:
            return fast, None
    return device_tags_with_pydicom(prefix, implicit, little)


def device_tags_with_pydicom(
    prefix: bytes, implicit: bool, little: bool
) -> tuple[dict[str, str], str | None]:
    """:func:`device_tags` through pydicom alone (the reference)."""

    def past_device_groups(tag, vr, length) -> bool:
        return tag.group > 0x0018

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_dataset = _read_dataset()
            dataset = read_dataset(
                io.BytesIO(prefix),
                implicit,
                little,
                stop_when=past_device_groups,
                specific_tags=_DEVICE_TAGS,
            )
            found = {}
            for element in dataset:
                name = DEVICE_ELEMENTS.get(int(element.tag))
                if name is None:
                    continue
                value = element.value
                if value is None or value == "":
                    continue
                value = _plain(value)
                if isinstance(value, list):
                    value = "\\".join(str(v) for v in value)
                if value:
                    found[name] = str(value)[:256]
    except Exception as exc:  # noqa: BLE001  (pydicom on hostile or cut bytes)
        return {}, f"data set: device elements unreadable: {type(exc).__name__}"
    return found, None
