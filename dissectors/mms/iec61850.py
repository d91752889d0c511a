"""IEC 61850 meaning of MMS names and values: references, node classes, name plates.

IEC 61850-8-1 maps a logical device to an MMS domain and a logical node's
data to named variables ``LNName$FC$DataObject$Attribute...``; this module
splits such names, names the logical-node class and the function it stands
for (IEC 61850-7-4 class groups), and reads the device name plates (LPHD
``PhyNam``, LLN0 ``NamPlt``) out of read responses, using the type the
server gave in a getVariableAccessAttributes response when there was one.
"""

from __future__ import annotations

import re
from typing import Any

FUNCTIONAL_CONSTRAINTS = frozenset({
    "ST", "MX", "CO", "SP", "SV", "CF", "DC", "SG", "SE", "SR", "OR", "BL", "EX",
    "RP", "BR", "LG", "GO", "GS", "MS", "US", "XX", "SC",
})  # fmt: skip

# Logical-node classes (and class groups by first letter) and their functions.
_CLASS_FUNCTIONS = {
    "XCBR": "breaker control",
    "CSWI": "switch control",
    "XSWI": "switch control",
    "CILO": "interlocking",
    "CPOW": "switch control",
    "MMXU": "measurement",
    "MMXN": "measurement",
    "MSQI": "measurement",
    "MHAI": "power quality",
    "MMTR": "metering",
    "MSTA": "measurement",
    "RDRE": "disturbance recording",
    "RBDR": "disturbance recording",
    "RREC": "auto-reclosing",
    "RSYN": "synchrocheck",
    "RBRF": "breaker failure protection",
    "YPTR": "transformer",
    "ATCC": "tap changer control",
    "GGIO": "generic I/O",
    "LPHD": "",
    "LLN0": "",
    "SIMG": "supervision",
    "SCBR": "supervision",
    "SPDC": "supervision",
    "TCTR": "measurement",
    "TVTR": "measurement",
}
_GROUP_FUNCTIONS = {
    "P": "protection",
    "R": "protection",
    "M": "measurement",
    "S": "supervision",
    "A": "automatic control",
    "C": "control",
    "X": "switchgear",
    "T": "measurement",
    "Y": "transformer",
}
_LN_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z0-9_]*?)(?P<cls>LLN0|[A-Z]{4})(?P<inst>\d*)$"
)
# Common logical-device instance names appended to the IED name (8-1 8.1.2).
_LD_INSTANCE = re.compile(
    r"(LD\d*|CTRL|PROT|MEAS|DR|EXT|SYS|CFG|CONTROL|PROTECTION|MEASUREMENT|Relay|"
    r"MU\d*|PQ|SUP|REC|MET|Master|System|C1|P1|M1)$",
    re.I,
)

# Name plate attributes that feed identity, by CDC attribute name.
NAME_PLATE_ATTRIBUTES = {
    "vendor": "vendor",
    "hwRev": "hardware_revision",
    "swRev": "software_revision",
    "serNum": "serial_number",
    "model": "model",
}


def split_logical_node(name: str) -> dict[str, str]:
    """``PHIPTOC1`` -> prefix ``PHI``, class ``PTOC``, instance ``1``."""
    match = _LN_NAME.match(name)
    if not match:
        return {"logical_node": name}
    found = {"logical_node": name, "ln_class": match["cls"]}
    if match["prefix"]:
        found["ln_prefix"] = match["prefix"]
    if match["inst"]:
        found["ln_instance"] = match["inst"]
    return found


def split_reference(domain_id: str | None, item_id: str) -> dict[str, Any]:
    """Split an MMS domain and item name into IEC 61850 parts.

    >>> split_reference("IED1LD0", "LLN0$ST$Mod$stVal")["data_object"]
    'Mod'
    >>> split_reference(None, "IED1LD0/LLN0$GO$gcb01")["logical_device"]
    'IED1LD0'
    """
    if domain_id is None and "/" in item_id:
        domain_id, item_id = item_id.split("/", 1)
    parts = item_id.split("$")
    found: dict[str, Any] = {}
    if domain_id:
        found["logical_device"] = domain_id
    found.update(split_logical_node(parts[0]))
    if len(parts) > 1:
        if parts[1] in FUNCTIONAL_CONSTRAINTS:
            found["functional_constraint"] = parts[1]
            rest = parts[2:]
        else:
            rest = parts[1:]
        if rest:
            found["data_object"] = rest[0]
        if len(rest) > 1:
            found["data_attributes"] = rest[1:]
    return found


def ied_name(logical_device: str) -> str:
    """The IED name a logical-device name starts with (best effort).

    A logical device is named IED name + LD instance; the split point is not
    marked on the wire, so well-known instance names are stripped.

    >>> ied_name("IED_H10CTRL"), ied_name("IED1LD0"), ied_name("TEMPLATE")
    ('IED_H10', 'IED1', 'TEMPLATE')
    """
    stripped = _LD_INSTANCE.sub("", logical_device)
    return stripped if stripped else logical_device


def function_of(ln_class: str) -> str | None:
    """The function a logical-node class stands for, or None."""
    if ln_class in _CLASS_FUNCTIONS:
        return _CLASS_FUNCTIONS[ln_class] or None
    return _GROUP_FUNCTIONS.get(ln_class[:1])


def looks_like_61850(item_id: str) -> bool:
    """Whether an MMS item name follows IEC 61850-8-1 (``LN$FC...`` or an LN)."""
    parts = item_id.split("$", 2)
    if len(parts) > 1:
        return parts[1] in FUNCTIONAL_CONSTRAINTS and bool(_LN_NAME.match(parts[0]))
    return parts[0] in ("LLN0", "LPHD1")


# --- values against types -------------------------------------------------------------


def _scalar(value: dict) -> Any:
    for name, item in value.items():
        if name in ("structure", "array"):
            return None
        return item
    return None


def named_leaves(
    value: dict,
    type_spec: Any,
    path: str,
    out: dict[str, Any],
    depth: int = 0,
    limit: int = 2048,
) -> None:
    """Pair a Data value with its TypeSpecification: ``path$name -> scalar``."""
    if depth > 32 or len(out) >= limit:
        return
    if (
        "structure" in value
        and isinstance(type_spec, dict)
        and "structure" in type_spec
    ):
        for item, component in zip(value["structure"], type_spec["structure"]):
            name = component.get("name") or "?"
            named_leaves(
                item, component.get("type"), f"{path}${name}", out, depth + 1, limit
            )
        return
    scalar = _scalar(value)
    if scalar is not None:
        out[path] = scalar


def type_at(type_spec: Any, names: list[str]) -> Any:
    """The component of a structure type found along ``names``, or None."""
    current = type_spec
    for name in names:
        if not (isinstance(current, dict) and "structure" in current):
            return None
        for component in current["structure"]:
            if component.get("name") == name:
                current = component.get("type")
                break
        else:
            return None
    return current


def name_plate(leaves: dict[str, Any]) -> dict[str, str]:
    """Identity attributes from ``...$PhyNam$x`` and ``...$NamPlt$x`` leaves.

    PhyNam (the physical device) wins over NamPlt (a logical device), since
    LLN0 name plates describe the configuration, not the hardware.
    """
    found: dict[str, str] = {}
    for plate in ("NamPlt", "PhyNam"):
        for path, value in leaves.items():
            parts = path.split("$")
            if len(parts) < 2 or parts[-2] != plate or not isinstance(value, str):
                continue
            if plate == "NamPlt" and not parts[0].startswith("LLN0"):
                continue  # a logical node's own name plate: its function's revision
            attribute = NAME_PLATE_ATTRIBUTES.get(parts[-1])
            if attribute and value.strip():
                found[attribute] = value.strip()
    return found


def _strings(value: dict) -> list[str]:
    items = value.get("structure") or []
    return [item["visible_string"] for item in items if "visible_string" in item]


def positional_name_plate(item: str, value: dict) -> dict[str, Any]:
    """Name plate leaves from a read whose type the server never described.

    IEC 61850-7-3 orders a name plate's attributes vendor first, then swRev
    (LPL) or hwRev, swRev, serNum, model (DPL), and the DC constraint of LLN0
    and LPHD holds the plate as its first data object.

    Limitation: DPL attributes after vendor are optional, so their positions
    shift with what the model includes; only the vendor (and, for LLN0, the
    swRev) are read by position, and a PhyNam string is taken as the model
    only when it names a known device family. A getVariableAccessAttributes
    answer seen before the read lifts this (the typed path is then used).
    """
    parts = item.split("$")
    if len(parts) < 2 or parts[1] != "DC":
        return {}
    ln = parts[0]
    plate = None
    if len(parts) == 2 and ln.startswith(("LLN0", "LPHD")):
        first = (value.get("structure") or [None])[0]
        plate = first if isinstance(first, dict) and "structure" in first else None
    elif len(parts) == 3 and parts[2] in ("NamPlt", "PhyNam"):
        plate = value
    if plate is None:
        return {}
    name = "NamPlt" if ln.startswith("LLN0") else "PhyNam"
    strings = _strings(plate)
    found: dict[str, Any] = {}
    if strings:
        found[f"{ln}$DC${name}$vendor"] = strings[0]
    if name == "NamPlt" and len(strings) > 1:
        found[f"{ln}$DC${name}$swRev"] = strings[1]
    if name == "PhyNam":
        from dissectors.mms.fingerprint import device_type

        for text_value in strings[1:]:
            if device_type(text_value)[0]:
                found[f"{ln}$DC${name}$model"] = text_value
                break
    return found
