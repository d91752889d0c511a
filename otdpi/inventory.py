"""Asset inventory: devices, their protocols and roles, peers and identity claims.

Built from Messages alone, so every dissector feeds it without inventory code of
its own. Observations are gathered per IP address while a capture streams; when
the inventory is read out, addresses are grouped into assets keyed by MAC where
the MAC belongs to that one address on the local segment, else by IP (a MAC that
speaks for several addresses is a router's, and the hosts behind it keep their
IPs as keys).

Identity claims (vendor, model, firmware...) keep their provenance: protocol,
capture file, frame, time and confidence. Claims that disagree are all kept; the
summary shows the one most often seen.

A dissector that can tell what kind of device the sender is (a PLC from its SZL
answer, an engineering station from a block download, a DICOM modality from its
C-STORE requests) says so with the identity attribute ``role``; the asset's
``role`` is then the role claimed most often, and the coarse role from the
client/server pattern (``master``, ``field device``...) is only the fallback.
Protocol addresses that are not IP addresses (DNP3 link addresses, HSMS session
ids) are identity attributes too, named ``<protocol>_address``.

A device heard only on layer 2 (a GOOSE publisher) has a MAC and no IP; it joins
the asset its MAC keys when the same device also speaks IP, else it is an asset
of its own. Group addresses (multicast and broadcast MACs and IPs) are peers,
never assets: nothing can be said of the devices behind them.

State is plain and mergeable: two inventories built from different captures
merge into the one a single run over both would give.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, NamedTuple

from otdpi.message import Endpoint, Message

# Per protocol: which field of a *response* names the station that answered,
# i.e. an address behind the responding IP (Modbus unit ids behind a gateway).
STATION_FIELDS_OF_RESPONSES = {"modbus": "unit_id"}

# Modbus unit ids 0 (broadcast) and 255 ("not used" per the TCP guide) say
# nothing about devices behind a gateway.
_NON_STATION_UNIT_IDS = {0, 255}

# Protocols name the same facts in their own words (Modbus "product_code", S7
# "order_number", SECS "software_revision"...). For tables, reports and exports,
# each headline fact is the first of these attributes an asset has.
HEADLINE_ATTRIBUTES = {
    "vendor": ("vendor", "manufacturer", "software_vendor"),
    "model": ("model", "product_name", "module_type", "product_family",
              "software_product", "product_code", "order_number"),
    "part_number": ("order_number", "product_code"),
    "hardware": ("hardware_version", "hardware_revision"),
    "firmware": ("firmware", "firmware_version", "software_revision",
                 "software_version", "software_versions", "revision"),
    "serial": ("serial_number",),
    "name": ("station_name", "device_name", "ied_name", "ae_title", "application",
             "module_name"),
}


def headline(summary: dict[str, Any],
             identity: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, str]:
    """Vendor, model, part number, hardware, firmware, serial and name of an asset.

    ``summary`` is an asset's ``summary``; a fact no attribute gives is "".
    With the asset's ``identity`` (its claims with their protocols), the facts
    all come from the one protocol that tells the most about the device, so a
    model from S7 is never paired with a software version from HL7 when one
    address speaks both.
    """
    if identity:
        by_protocol: dict[str, dict[str, Any]] = {}
        for attribute, claims in identity.items():
            for claim in claims:  # most seen first, so the first per protocol wins
                by_protocol.setdefault(claim["protocol"], {}).setdefault(attribute,
                                                                         claim["value"])
        if len(by_protocol) > 1:
            candidates = [_facts(values) for values in by_protocol.values()]
            best = max(candidates, key=lambda f: (bool(f["model"]), bool(f["vendor"]),
                                                  sum(bool(v) for v in f.values())))
            name = next((f["name"] for f in candidates if f["name"]), "")
            return {**best, "name": best["name"] or name}
    return _facts(summary)


def _facts(values: dict[str, Any]) -> dict[str, str]:
    facts = {}
    for fact, names in HEADLINE_ATTRIBUTES.items():
        facts[fact] = next((str(values[n]) for n in names
                            if values.get(n) not in (None, "")), "")
    return facts


# How much one message proves an identity attribute, by where it came from.
# A device's own answer to an identification request is near-certain.
_CLAIM_CONFIDENCE = 0.9


class Claim(NamedTuple):
    """One observation of an identity attribute, with where it was seen."""

    attribute: str
    value: Any
    protocol: str
    capture: str | None
    frame: int
    ts: float
    confidence: float
    seen: int = 1


class _Host:
    """Everything seen of one IP address, or of one MAC that spoke no IP (``ip`` None)."""

    __slots__ = ("ip", "macs", "roles", "peers", "stations", "claims", "first_ts",
                 "last_ts", "messages")

    def __init__(self, ip: str | None, ts: float) -> None:
        self.ip = ip
        self.macs: Counter[str] = Counter()
        self.roles: dict[str, Counter[str]] = {}
        self.peers: dict[tuple[str, str, str], int] = {}
        self.stations: dict[str, dict[str, set[int]]] = {}
        self.claims: dict[tuple[str, str, Any], Claim] = {}
        self.first_ts = ts
        self.last_ts = ts
        self.messages = 0


class Inventory:
    """Accumulates Messages into assets.

    >>> inv = Inventory()
    >>> for message in otdpi.read(["plant.pcap"]):      # doctest: +SKIP
    ...     inv.add(message, capture="plant.pcap")
    >>> [a["key"] for a in inv.assets()]                  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}
        self._tallies: dict[tuple, list] = {}
        self._stations: dict[tuple[str, str, str], set] = {}

    # -- input --------------------------------------------------------------

    def add(self, message: Message, capture: str | None = None) -> None:
        """Account one message: both ends, their roles, peers and identity."""
        self.update((message,), capture)

    def update(self, messages, capture: str | None = None) -> None:
        """Account many messages (the loop :meth:`add` runs for one)."""
        # Per message only a tally of (who, to whom, protocol, kind) is kept;
        # hosts, roles and peers are derived from the tallies when read out.
        # A capture holds few such pairs and very many messages, so this keeps
        # the per-message cost to one dict look-up.
        tallies = self._tallies
        all_stations = self._stations
        station_fields = STATION_FIELDS_OF_RESPONSES
        for message in messages:
            src = message.src
            dst = message.dst
            proto = message.protocol
            kind = message.kind
            ts = message.ts
            key = (src.ip, src.mac, dst.ip, dst.mac, proto, kind)
            tally = tallies.get(key)
            if tally is None:
                tallies[key] = [1, ts, ts]
            else:
                tally[0] += 1
                if ts > tally[2]:
                    tally[2] = ts
                elif ts < tally[1]:
                    tally[1] = ts

            if kind == "response":
                station_field = station_fields.get(proto)
                if station_field is not None and message.status.state != "malformed":
                    station = message.fields.get(station_field)
                    if station is not None and station not in _NON_STATION_UNIT_IDS:
                        stations = all_stations.get((src.ip, proto, station_field))
                        if stations is None:
                            all_stations[src.ip, proto, station_field] = {station}
                        else:
                            stations.add(station)

            if message.identity:
                self._claim(message, capture)

    def _claim(self, message: Message, capture: str | None) -> None:
        """Keep what a message says of its sender, with the earliest sighting."""
        src = message.src
        proto = message.protocol
        ts = message.ts
        host = self._host(src.ip, src.mac, ts)
        for attribute, value in message.identity.items():
            if value is None or value == "":
                continue
            key = (attribute, proto, value if _hashable(value) else repr(value))
            known = host.claims.get(key)
            if known is None:
                host.claims[key] = Claim(attribute, value, proto, capture,
                                         message.frame, ts, _CLAIM_CONFIDENCE)
            elif ts < known.ts:
                # The earliest sighting is the provenance, whatever order
                # the captures were read in, as merge() keeps it too.
                host.claims[key] = Claim(attribute, value, proto, capture,
                                         message.frame, ts, _CLAIM_CONFIDENCE,
                                         known.seen + 1)
            else:
                host.claims[key] = known._replace(seen=known.seen + 1)

    def _host(self, ip: str | None, mac: str | None, ts: float) -> _Host:
        key = ip if ip is not None else f"mac:{mac}"
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(ip, ts)
        else:
            if ts < host.first_ts:
                host.first_ts = ts
            if ts > host.last_ts:
                host.last_ts = ts
        return host

    def settle(self) -> None:
        """Fold what :meth:`add` gathered into per-host state (before pickling a partial)."""
        self._settle()

    def _settle(self) -> None:
        """Fold the tallies and stations gathered by :meth:`add` into the hosts."""
        for (src_ip, src_mac, dst_ip, dst_mac, proto, kind), tally in self._tallies.items():
            count, first_ts, last_ts = tally
            if kind == "request":
                src_role, dst_role = "client", "server"
            elif kind == "response":
                src_role, dst_role = "server", "client"
            else:
                src_role, dst_role = "publisher", "subscriber"
            for ip, mac, role, peer, peer_role, sent in (
                (src_ip, src_mac, src_role, dst_ip or dst_mac, dst_role, count),
                (dst_ip, dst_mac, dst_role, src_ip or src_mac, src_role, 0),
            ):
                if _is_group(ip, mac):
                    continue
                host = self._host(ip, mac, first_ts)
                self._host(ip, mac, last_ts)
                host.messages += sent
                if mac is not None:
                    host.macs[mac] += count
                host.roles.setdefault(proto, Counter())[role] += count
                peer_key = (peer, proto, peer_role)
                host.peers[peer_key] = host.peers.get(peer_key, 0) + count
        self._tallies.clear()
        for (ip, proto, field), values in self._stations.items():
            host = self._hosts.get(ip) if ip is not None else None
            if host is None:  # only seen through an earlier merge's stations
                continue
            host.stations.setdefault(proto, {}).setdefault(field, set()).update(values)
        self._stations.clear()

    def merge(self, other: Inventory) -> Inventory:
        """Fold ``other`` into this inventory (counts add, sets union); return self."""
        self._settle()
        other._settle()
        for key, theirs in other._hosts.items():
            mine = self._hosts.get(key)
            if mine is None:
                mine = self._hosts[key] = _Host(theirs.ip, theirs.first_ts)
            mine.first_ts = min(mine.first_ts, theirs.first_ts)
            mine.last_ts = max(mine.last_ts, theirs.last_ts)
            mine.messages += theirs.messages
            mine.macs.update(theirs.macs)
            for proto, roles in theirs.roles.items():
                mine.roles.setdefault(proto, Counter()).update(roles)
            for key, count in theirs.peers.items():
                mine.peers[key] = mine.peers.get(key, 0) + count
            for proto, fields in theirs.stations.items():
                for name, values in fields.items():
                    mine.stations.setdefault(proto, {}).setdefault(name, set()).update(values)
            for key, claim in theirs.claims.items():
                known = mine.claims.get(key)
                if known is None:
                    mine.claims[key] = claim
                else:
                    first = min(known, claim, key=lambda c: c.ts)
                    mine.claims[key] = first._replace(seen=known.seen + claim.seen)
        return self

    # -- persistence --------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The gathered state as plain JSON, for a store; :meth:`from_json` reads it.

        This is the mergeable state, not the read-out: an inventory loaded
        back merges with others and gives the same assets as if it had never
        been written.
        """
        self._settle()
        hosts = []
        for key, host in self._hosts.items():
            hosts.append({
                "key": key,
                "ip": host.ip,
                "macs": dict(host.macs),
                "roles": {proto: dict(counts) for proto, counts in host.roles.items()},
                "peers": [[peer, proto, role, count]
                          for (peer, proto, role), count in host.peers.items()],
                "stations": {proto: {name: sorted(values, key=repr)
                                     for name, values in fields.items()}
                             for proto, fields in host.stations.items()},
                "claims": [claim._asdict() for claim in host.claims.values()],
                "first_ts": host.first_ts,
                "last_ts": host.last_ts,
                "messages": host.messages,
            })
        return {"format": "otdpi-inventory", "version": 1, "hosts": hosts}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Inventory:
        """An inventory from :meth:`to_json`'s output.

        Raises
        ------
        ValueError
            ``document`` is not an inventory this version wrote.
        """
        if document.get("format") != "otdpi-inventory" or document.get("version") != 1:
            raise ValueError("not an otdpi inventory document (version 1)")
        inventory = cls()
        for saved in document["hosts"]:
            host = _Host(saved["ip"], saved["first_ts"])
            host.last_ts = saved["last_ts"]
            host.messages = saved["messages"]
            host.macs.update(saved["macs"])
            host.roles = {proto: Counter(counts) for proto, counts in saved["roles"].items()}
            host.peers = {(peer, proto, role): count
                          for peer, proto, role, count in saved["peers"]}
            host.stations = {proto: {name: set(values) for name, values in fields.items()}
                             for proto, fields in saved["stations"].items()}
            for fields in saved["claims"]:
                claim = Claim(**fields)
                value = claim.value
                key = (claim.attribute, claim.protocol,
                       value if _hashable(value) else repr(value))
                host.claims[key] = claim
            inventory._hosts[saved["key"]] = host
        return inventory

    # -- output -------------------------------------------------------------

    def assets(self) -> list[dict[str, Any]]:
        """The assets as plain JSON-ready dicts, sorted by key."""
        self._settle()
        mac_ips: dict[str, set[str]] = {}
        for host in self._hosts.values():
            for mac in host.macs:
                known = mac_ips.setdefault(mac, set())
                if host.ip is not None:
                    known.add(host.ip)

        groups: dict[str, list[_Host]] = {}
        for host in self._hosts.values():
            if host.ip is None:  # heard on layer 2 only: its MAC is its key
                key = f"mac:{next(iter(host.macs))}"
            else:
                local = [m for m in host.macs if _is_unicast(m) and len(mac_ips[m]) == 1]
                key = f"mac:{local[0]}" if len(local) == 1 else f"ip:{host.ip}"
            groups.setdefault(key, []).append(host)

        vendor_of = _mac_vendor_lookup()
        assets = [self._asset(key, hosts, vendor_of) for key, hosts in groups.items()]
        assets.sort(key=_asset_sort_key)
        return assets

    def _asset(self, key: str, hosts: list[_Host], vendor_of) -> dict[str, Any]:
        macs = sorted({m for h in hosts for m in h.macs if _is_unicast(m)})
        local_mac = key[4:] if key.startswith("mac:") else None
        roles: dict[str, Counter[str]] = {}
        peers: dict[tuple[str, str, str], int] = {}
        stations: dict[str, dict[str, set[int]]] = {}
        claims: list[Claim] = []
        for host in hosts:
            for proto, counts in host.roles.items():
                roles.setdefault(proto, Counter()).update(counts)
            for peer, count in host.peers.items():
                peers[peer] = peers.get(peer, 0) + count
            for proto, fields in host.stations.items():
                for name, values in fields.items():
                    stations.setdefault(proto, {}).setdefault(name, set()).update(values)
            claims.extend(host.claims.values())

        identity: dict[str, list[dict[str, Any]]] = {}
        for claim in sorted(claims, key=lambda c: (c.attribute, -c.seen, c.ts)):
            identity.setdefault(claim.attribute, []).append(claim._asdict())
            del identity[claim.attribute][-1]["attribute"]

        protocols = {
            proto: {"roles": sorted(r for r, n in counts.items() if n), "messages": sum(counts.values())}
            for proto, counts in sorted(roles.items())
        }
        unit_ids = sorted(stations.get("modbus", {}).get("unit_id", ()))
        return {
            "key": key,
            "ips": sorted(h.ip for h in hosts if h.ip is not None),
            "macs": macs,
            "mac_vendor": vendor_of(local_mac) if local_mac else None,
            "role": _claimed_role(identity) or _device_role(protocols, stations),
            "protocols": protocols,
            "stations": {p: {n: sorted(v) for n, v in f.items()} for p, f in stations.items()},
            "gateway": len(unit_ids) > 1,
            "peers": [
                {"ip": ip, "protocol": proto, "peer_role": role, "messages": count}
                for (ip, proto, role), count in sorted(peers.items())
            ],
            "identity": identity,
            "summary": {attr: values[0]["value"] for attr, values in identity.items()},
            "first_seen": min(h.first_ts for h in hosts),
            "last_seen": max(h.last_ts for h in hosts),
            "messages_sent": sum(h.messages for h in hosts),
        }


def _hashable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, tuple))


def _is_group(ip: str | None, mac: str | None) -> bool:
    """Whether an address names a group (multicast, broadcast) rather than a device."""
    if ip is None:
        return mac is None or not _is_unicast(mac)
    group = _GROUP_IPS.get(ip)
    if group is None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            group = False
        else:
            # Limitation: a directed broadcast is recognised only for a /24
            # (x.y.z.255), the common case on plant networks; the broadcast of
            # a wider subnet stays an asset, and a host numbered .255 inside a
            # wider subnet is taken for a broadcast. Knowing the subnet masks
            # (from DHCP or configuration) would settle both.
            group = address.is_multicast or ip == "255.255.255.255" or (
                address.version == 4 and ip.endswith(".255"))
        if len(_GROUP_IPS) < 65536:
            _GROUP_IPS[ip] = group
    return group


# Answers of _is_group for IP addresses: a capture holds few distinct ones.
_GROUP_IPS: dict[str, bool] = {}


def _is_unicast(mac: str) -> bool:
    # The group bit is the lowest bit of the first octet. All zeros is what
    # loopback and some capture tools write where there was no MAC at all.
    return not int(mac[:2], 16) & 1 and mac != "00:00:00:00:00:00"


def _claimed_role(identity: dict[str, list[dict[str, Any]]]) -> str | None:
    """The role the messages claimed most often, if any claimed one."""
    claims = identity.get("role")
    if not claims:
        return None
    seen: Counter[str] = Counter()
    for claim in claims:
        seen[claim["value"]] += claim["seen"]
    return seen.most_common(1)[0][0]


def _device_role(protocols: dict[str, dict[str, Any]], stations: dict) -> str:
    """A coarse role from what the device does on the wire; 'unknown' if unclear."""
    serves = [p for p, info in protocols.items() if "server" in info["roles"]]
    uses = [p for p, info in protocols.items() if "client" in info["roles"]]
    unit_ids = stations.get("modbus", {}).get("unit_id", ())
    if "modbus" in serves and len(unit_ids) > 1:
        return "gateway"
    if serves and not uses:
        return "field device"
    if uses and not serves:
        return "master"
    if serves and uses:
        return "master and field device"
    return "unknown"


def _asset_sort_key(asset: dict[str, Any]) -> tuple:
    ips = asset["ips"]
    try:
        first = ipaddress.ip_address(ips[0]) if ips else None
    except ValueError:
        first = None
    return (first is None, first.version if first else 0, int(first) if first else 0,
            asset["key"])


def _mac_vendor_lookup():
    """Vendor names from scapy's shipped OUI table (imported only when needed)."""
    try:
        from scapy.config import conf
    except ImportError:  # pragma: no cover - scapy is a dependency
        return lambda mac: None
    manufdb = conf.manufdb

    def vendor_of(mac: str) -> str | None:
        if not manufdb:
            return None
        short, long_name = manufdb.lookup(mac)
        if short == mac:  # the table answers with the MAC when the OUI is unknown
            return None
        return long_name or short

    return vendor_of
