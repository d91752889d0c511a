"""Vendor, model and device type from MMS identify answers and IEC 61850 name plates.

The identify response (vendorName, modelName, revision) and the LPHD/LLN0
name plates give free text; this module normalises the vendor and
recognises device families from model strings: ABB Relion protection and
control IEDs (REF615, RET670...), AC 800M controllers, COM600 and RTU500
gateways, and a few other vendors' relay families.
"""

from __future__ import annotations

import re

_VENDORS = (
    (re.compile(r"^\s*ABB\b", re.I), "ABB"),
    (re.compile(r"siemens", re.I), "Siemens"),
    (re.compile(r"^\s*GE\b|general electric|multilin", re.I), "GE"),
    (re.compile(r"schweitzer|^\s*SEL\b", re.I), "SEL"),
    (re.compile(r"schneider|areva|alstom", re.I), None),  # kept as written
)

# (pattern on the model, device type, role)
_MODELS = (
    (re.compile(r"\bRE[A-Z](6[1-7]\d)\b", re.I), "Relion {0} series IED", "IED"),
    (re.compile(r"\bRE[A-Z]5\d\d\b", re.I), "Relion 500 series IED", "IED"),
    (re.compile(r"\bREx(6[1-7]\d)\b", re.I), "Relion {0} series IED", "IED"),
    (re.compile(r"AC\s?800M|\bPM8\d\d\b", re.I), "AC 800M controller", "controller"),
    (re.compile(r"\bCOM600", re.I), "COM600 station automation", "gateway"),
    (re.compile(r"\bRTU5\d\d\b", re.I), "RTU500 remote terminal unit", "RTU"),
    (re.compile(r"800xA", re.I), "800xA system node", "ABB 800xA node"),
    (re.compile(r"\bSIPROTEC|\b7S[AJDK]\d", re.I), "SIPROTEC protection relay", "IED"),
    (re.compile(r"^[BCDFGLMNT]\d\d-[A-Z]{3}-|\bUR\b"), "Multilin UR relay", "IED"),
)


def normalise_vendor(vendor: str) -> str:
    """``"ABB Oy"`` -> ``"ABB"``; unknown vendors are returned stripped."""
    for pattern, name in _VENDORS:
        if pattern.search(vendor):
            return name or vendor.strip()
    return vendor.strip()


def device_type(model: str, vendor: str = "") -> tuple[str | None, str | None]:
    """``(device_type, role)`` recognised from a model string, or Nones.

    >>> device_type("REF615")
    ('Relion 615 series IED', 'IED')
    >>> device_type("AC 800M PM866")
    ('AC 800M controller', 'controller')
    """
    for pattern, name, role in _MODELS:
        match = pattern.search(model)
        if match:
            return name.format(*match.groups()) if match.groups() else name, role
    return None, None


def identity_from(
    vendor: str | None, model: str | None, revision: str | None
) -> dict[str, str]:
    """Identity attributes for an identify response or a name plate."""
    found: dict[str, str] = {}
    if vendor and vendor.strip():
        found["vendor"] = normalise_vendor(vendor)
        if found["vendor"] != vendor.strip():
            found["vendor_name"] = vendor.strip()
    if model and model.strip():
        found["model"] = model.strip()
        kind, role = device_type(model, vendor or "")
        if kind:
            found["device_type"] = kind
        if role:
            found["role"] = role
    if revision and revision.strip():
        found["revision"] = revision.strip()
    return found
