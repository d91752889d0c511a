"""Writes the asset inventory as a CycloneDX bill of materials for vulnerability tools.

Each asset becomes a CycloneDX component of type ``device`` with its
manufacturer, model and hardware version, and its firmware (or software
revision) as a nested component of type ``firmware``, so that a tool matching
vendor, product and version against advisories finds what runs on the network.
Everything else the inventory knows (addresses, role, protocols, every identity
claim) rides along as ``otdpi:`` properties. The document is built and
serialised with the maintained CycloneDX library, never by hand.

Dissectors name identity attributes after their protocol's own words;
:func:`otdpi.inventory.headline` says which of them mean manufacturer, model,
hardware and firmware.
"""

# Limitation: no CPE or package URL is derived for devices, since vendors'
# product strings do not map onto CPE names reliably; tools must match on the
# manufacturer, name and version fields. A curated per-vendor mapping (Siemens
# order numbers to CPE, say) would add them.

from __future__ import annotations

from typing import Any

from otdpi.inventory import headline

def cyclonedx_json(assets: list[dict[str, Any]], tool_version: str) -> str:
    """A CycloneDX 1.6 JSON document describing ``assets``.

    Parameters
    ----------
    assets
        :meth:`otdpi.inventory.Inventory.assets` output.
    tool_version
        otdpi's version, recorded as the tool that made the document.
    """
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    bom.metadata.tools.components.add(
        Component(name="otdpi", version=tool_version, type=ComponentType.APPLICATION))
    for asset in assets:
        summary = asset["summary"]
        facts = headline(summary, asset.get("identity"))
        manufacturer = facts["vendor"] or None
        model = facts["model"] or None
        firmware = facts["firmware"] or None
        key = asset["key"]
        properties = [Property(name="otdpi:key", value=key),
                      Property(name="otdpi:role", value=asset["role"])]
        properties += [Property(name="otdpi:ip", value=ip) for ip in asset["ips"]]
        properties += [Property(name="otdpi:mac", value=mac) for mac in asset["macs"]]
        if asset.get("mac_vendor"):
            properties.append(Property(name="otdpi:mac_vendor", value=asset["mac_vendor"]))
        for protocol, info in asset["protocols"].items():
            properties.append(Property(name=f"otdpi:protocol:{protocol}",
                                       value="/".join(info["roles"])))
        for attribute, value in sorted(summary.items()):
            properties.append(Property(name=f"otdpi:identity:{attribute}", value=str(value)))

        nested = []
        if firmware:
            nested.append(Component(
                name=f"{model or key} firmware", version=firmware,
                type=ComponentType.FIRMWARE, bom_ref=f"{key}#firmware",
                manufacturer=OrganizationalEntity(name=manufacturer) if manufacturer else None,
            ))
        bom.components.add(Component(
            name=model or key, type=ComponentType.DEVICE, bom_ref=key,
            version=facts["hardware"] or None,
            manufacturer=OrganizationalEntity(name=manufacturer) if manufacturer else None,
            description=f"{asset['role']} at {', '.join(asset['ips']) or key}",
            properties=properties, components=nested,
        ))
    return JsonV1Dot6(bom).output_as_string(indent=2)
