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
    """Everything seen of one IP address."""

    __slots__ = ("ip", "macs", "roles", "peers", "stations", "claims", "first_ts",
                 "last_ts", "messages")

    def __init__(self, ip: str, ts: float) -> None:
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

    # -- input --------------------------------------------------------------

    def add(self, message: Message, capture: str | None = None) -> None:
        """Account one message: both ends, their roles, peers and identity."""
        ts = message.ts
        proto = message.protocol
        src = self._host(message.src, ts)
        dst = self._host(message.dst, ts)
        src.messages += 1

        kind = message.kind
        if kind == "request":
            src_role, dst_role = "client", "server"
        elif kind == "response":
            src_role, dst_role = "server", "client"
        else:
            src_role, dst_role = "publisher", "subscriber"
        _count(src.roles, proto, src_role)
        _count(dst.roles, proto, dst_role)
        peer_key = (dst.ip, proto, dst_role)
        src.peers[peer_key] = src.peers.get(peer_key, 0) + 1
        peer_key = (src.ip, proto, src_role)
        dst.peers[peer_key] = dst.peers.get(peer_key, 0) + 1

        if kind == "response" and message.status.state != "malformed":
            station_field = STATION_FIELDS_OF_RESPONSES.get(proto)
            if station_field is not None:
                station = message.fields.get(station_field)
                if station is not None and station not in _NON_STATION_UNIT_IDS:
                    src.stations.setdefault(proto, {}).setdefault(
                        station_field, set()).add(station)

        if message.identity:
            for attribute, value in message.identity.items():
                if value is None or value == "":
                    continue
                key = (attribute, proto, value if _hashable(value) else repr(value))
                known = src.claims.get(key)
                if known is None:
                    src.claims[key] = Claim(attribute, value, proto, capture,
                                            message.frame, ts, _CLAIM_CONFIDENCE)
                else:
                    src.claims[key] = known._replace(seen=known.seen + 1)

    def update(self, messages, capture: str | None = None) -> None:
        """Account many messages."""
        for message in messages:
            self.add(message, capture)

    def _host(self, endpoint: Endpoint, ts: float) -> _Host:
        host = self._hosts.get(endpoint.ip)
        if host is None:
            host = self._hosts[endpoint.ip] = _Host(endpoint.ip, ts)
        else:
            if ts < host.first_ts:
                host.first_ts = ts
            if ts > host.last_ts:
                host.last_ts = ts
        mac = endpoint.mac
        if mac is not None:
            host.macs[mac] += 1
        return host

    def merge(self, other: Inventory) -> Inventory:
        """Fold ``other`` into this inventory (counts add, sets union); return self."""
        for ip, theirs in other._hosts.items():
            mine = self._hosts.get(ip)
            if mine is None:
                mine = self._hosts[ip] = _Host(ip, theirs.first_ts)
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

    # -- output -------------------------------------------------------------

    def assets(self) -> list[dict[str, Any]]:
        """The assets as plain JSON-ready dicts, sorted by key."""
        mac_ips: dict[str, set[str]] = {}
        for host in self._hosts.values():
            for mac in host.macs:
                mac_ips.setdefault(mac, set()).add(host.ip)

        groups: dict[str, list[_Host]] = {}
        for host in self._hosts.values():
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
            "ips": sorted(h.ip for h in hosts),
            "macs": macs,
            "mac_vendor": vendor_of(local_mac) if local_mac else None,
            "role": _device_role(protocols, stations),
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


def _count(table: dict[str, Counter[str]], proto: str, role: str) -> None:
    counts = table.get(proto)
    if counts is None:
        counts = table[proto] = Counter()
    counts[role] += 1


def _hashable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, tuple))


def _is_unicast(mac: str) -> bool:
    # The group bit is the lowest bit of the first octet.
    return not int(mac[:2], 16) & 1


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
