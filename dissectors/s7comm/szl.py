"""S7 system status lists (SZL): decoding the records that identify a PLC.

An SZL answer carries a header (id, index, record length, record count) and
``record_count`` records of ``record_length`` bytes. Ids 0x0011/xy11 (module
identification), 0x001C/xy1C (component identification), 0x0424 (current
mode) and 0x0132 index 4 (protection level) are decoded; other ids keep
their header and their records as hex. Every length and count is checked
against the bytes present: a list that claims more than it carries decodes
as far as the bytes go and says so in a finding.
"""

from __future__ import annotations

import re
from typing import Any

from otdpi.message import Finding

# Bound on the records decoded from one answer, whatever its count claims.
MAX_RECORDS = 512

# SZL 0x001C record indexes and the identity attribute each names.
COMPONENT_NAMES = {
    0x0001: "station_name",  # name of the automation system
    0x0002: "module_name",
    0x0003: "plant_id",  # plant designation of the module
    0x0004: "copyright",
    0x0005: "serial_number",
    0x0007: "module_type",  # module type name
    0x0008: "memory_card_serial_number",
    0x000A: "oem_id",
    0x000B: "location_id",
}

# SZL 0x0011 record indexes.
MODULE_IDENTIFICATION = {
    0x0001: "module",
    0x0006: "basic_hardware",
    0x0007: "basic_firmware",
    0x0081: "firmware_extension",
    0x0082: "firmware_extension_2",
}

CPU_MODES = {
    0x0: "unknown", 0x1: "stop_update", 0x2: "stop_memory_reset",
    0x3: "stop_self_initialization", 0x4: "stop_internal",
    0x5: "startup_complete_restart", 0x6: "startup_cold_restart",
    0x7: "startup_restart", 0x8: "run", 0x9: "run_redundant", 0xA: "halt",
    0xB: "link_up", 0xC: "update", 0xD: "defective", 0xE: "error_search",
    0xF: "no_power",
}  # fmt: skip

MODE_SELECTOR = {1: "RUN", 2: "RUN-P", 3: "STOP", 4: "MRES"}

# Product families by the start of the order number (MLFB) after "6ES7 ".
_FAMILIES = (
    ("6ES7 21", "S7-1200"),
    ("6ES7 5", "S7-1500"),
    ("6ES7 31", "S7-300"),
    ("6ES7 41", "S7-400"),
    ("6ES7 1", "ET 200"),
    ("6ES7 2", "S7-200"),
    ("6ES7 3", "S7-300"),
    ("6ES7 4", "S7-400"),
    ("6ES7 6", "S7-mEC/PC-based"),
    ("6ES7 8", "SIMATIC software/PC"),
    ("6AV", "SIMATIC HMI"),
    ("6GK7", "SIMATIC NET CP"),
    ("6ES5", "S5"),
)
_MLFB = re.compile(r"^6[A-Z]{2}\d ?[0-9A-Z]{3}-[0-9A-Z]{5}-[0-9A-Z]{4}$")


def product_family(order_number: str) -> str | None:
    """The SIMATIC product family an order number belongs to, if known.

    >>> product_family("6ES7 315-2EH14-0AB0")
    'S7-300'
    >>> product_family("6ES7 211-1BE31-0XB0")
    'S7-1200'
    """
    text = order_number.strip()
    if len(text) > 4 and text[4] != " ":
        text = text[:4] + " " + text[4:]
    for prefix, family in _FAMILIES:
        if text.startswith(prefix):
            return family
    return None


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def _version(version: int, release: int) -> str:
    # "V" in the high octet of the version word, then major, minor, patch.
    if version >> 8 == 0x56:
        return f"V{version & 0xFF}.{release >> 8}.{release & 0xFF}"
    return f"{version}.{release}"


def _module_identification(records: list[bytes]) -> tuple[list, dict[str, Any]]:
    decoded, identity = [], {}
    for rec in records:
        if len(rec) < 22:
            decoded.append({"raw": rec.hex()})
            continue
        index = rec[0] << 8 | rec[1]
        order_number = _text(rec[2:22])
        item: dict[str, Any] = {
            "index": index,
            "name": MODULE_IDENTIFICATION.get(index),
            "order_number": order_number,
        }
        # Some emulators send records shorter than the 28 bytes of the list;
        # the order number is still there, the versions may not be.
        complete = len(rec) >= 28
        if complete:
            version = rec[24] << 8 | rec[25]
            release = rec[26] << 8 | rec[27]
            item["module_type_id"] = rec[22] << 8 | rec[23]
            item["version"] = version
            item["release"] = release
        decoded.append(item)
        if index in (0x0001, 0x0006) and order_number:
            identity.setdefault("order_number", order_number)
            family = product_family(order_number)
            if family:
                identity.setdefault("product_family", family)
            if complete:
                identity["hardware_version"] = str(version)
        elif index == 0x0007 and complete:
            identity["firmware"] = _version(version, release)
    return decoded, identity


def _component_identification(records: list[bytes]) -> tuple[list, dict[str, Any]]:
    decoded, identity = [], {}
    for rec in records:
        if len(rec) < 2:
            decoded.append({"raw": rec.hex()})
            continue
        index = rec[0] << 8 | rec[1]
        name = COMPONENT_NAMES.get(index)
        item: dict[str, Any] = {"index": index, "name": name}
        if name in ("oem_id",) or index == 0x0009:
            item["raw"] = rec[2:].hex()
        else:
            value = _text(rec[2:])
            item["value"] = value
            if (
                name
                in (
                    "station_name",
                    "module_name",
                    "plant_id",
                    "serial_number",
                    "module_type",
                    "copyright",
                )
                and value
            ):
                identity[name] = value
        decoded.append(item)
    return decoded, identity


def _mode(records: list[bytes]) -> tuple[list, dict[str, Any]]:
    decoded = []
    for rec in records:
        if len(rec) < 12:
            decoded.append({"raw": rec.hex()})
            continue
        bzu = rec[3]
        decoded.append(
            {
                "event_id": rec[0] << 8 | rec[1],
                "mode_transition": bzu,
                "requested_mode": CPU_MODES.get(bzu & 0x0F),
                "previous_mode": CPU_MODES.get(bzu >> 4),
                "startup_info": rec[8:12].hex(),
            }
        )
    return decoded, {}


def _protection(records: list[bytes]) -> tuple[list, dict[str, Any]]:
    decoded = []
    for rec in records:
        if len(rec) < 12:
            decoded.append({"raw": rec.hex()})
            continue
        words = [rec[i] << 8 | rec[i + 1] for i in range(0, 12, 2)]
        decoded.append(
            {
                "index": words[0],
                "key_switch_protection_level": words[1],
                "assigned_protection_level": words[2],
                "valid_protection_level": words[3],
                "mode_selector": words[4],
                "mode_selector_name": MODE_SELECTOR.get(words[4]),
                "startup_switch": words[5],
            }
        )
    return decoded, {}


_DECODERS = {
    0x11: _module_identification,
    0x1C: _component_identification,
}


def decode_szl(data: bytes) -> tuple[dict[str, Any], dict[str, Any], list[Finding]]:
    """Decode the SZL answer ``data`` (from its id onwards).

    Returns
    -------
    (fields, identity, findings)
        ``fields`` has ``szl_id``, ``szl_index``, ``record_length``,
        ``record_count`` and ``records``; ``identity`` the fingerprint
        attributes the records reveal.
    """
    findings: list[Finding] = []
    if len(data) < 4:
        return (
            {"raw": data.hex()},
            {},
            [Finding("szl_truncated", "SZL header cut short")],
        )
    szl_id = data[0] << 8 | data[1]
    index = data[2] << 8 | data[3]
    fields: dict[str, Any] = {"szl_id": szl_id, "szl_index": index}
    if len(data) < 8:
        fields["raw"] = data[4:].hex()
        return fields, {}, findings
    length = data[4] << 8 | data[5]
    count = data[6] << 8 | data[7]
    fields["record_length"] = length
    fields["record_count"] = count
    body = data[8:]
    if length == 0 or count == 0:
        if body:
            fields["raw"] = body.hex()
        if count and not length:
            findings.append(
                Finding("szl_zero_record_length", f"{count} records of length 0")
            )
        fields["records"] = []
        return fields, {}, findings
    available = len(body) // length
    if count > available:
        findings.append(
            Finding(
                "szl_count_exceeds_data",
                f"SZL claims {count} records of {length} bytes, "
                f"{len(body)} bytes present",
            )
        )
    taken = min(count, available, MAX_RECORDS)
    records = [body[i * length : (i + 1) * length] for i in range(taken)]
    partial = szl_id & 0xFF
    decoder = _DECODERS.get(partial)
    if decoder is None and szl_id == 0x0424:
        decoder = _mode
    if decoder is None and szl_id == 0x0132 and index == 0x0004:
        decoder = _protection
    identity: dict[str, Any] = {}
    if decoder is None:
        fields["records"] = [r.hex() for r in records]
    else:
        fields["records"], identity = decoder(records)
    return fields, identity, findings
