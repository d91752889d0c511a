"""Learns which MAC address each local IP address is seen from, and finds a second one.

Strategy
--------
Every message names the link-layer address of both ends
(:class:`~otdpi.message.Endpoint` ``mac``). On one LAN segment an IP address
belongs to one interface, so the same IP seen from a second MAC address
means ARP spoofing (a man in the middle relaying or answering for it), a
spoofed source, or a device swapped. The bindings are baseline state
(``Baseline.macs``: IP to ``{mac: [first, last]}``, mergeable by min and
max like the rest of it); they are learned in both modes.

A MAC alerts when it is not normal (first seen during detection, less than
``accept_after`` ago) and the IP already had another MAC first seen before
it: the newer binding is the suspect one, so the genuine device's own
frames never alert once the impostor has been seen. The first MAC of an IP
never alerts (a new device is the new-peer model's concern).

Only addresses a LAN binds are kept: external IP addresses (reached through
a gateway whose MAC stands for many of them), loopback, broadcast and
multicast IPs, and group or all-zero MACs are skipped.
"""

from __future__ import annotations

import ipaddress

MAX_MACS_PER_IP = 8  # an IP flooded with spoofed MACs keeps its first few

_SKIP_MACS = frozenset({None, "", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"})


def is_local_unicast(ip: str) -> bool:
    """A private or link-local unicast IP address: one a LAN binds to one MAC."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if (
        address.is_loopback
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved  # 240.0.0.0/4 counts as private to ipaddress
    ):
        return False
    if address.version == 4 and ip.endswith(".255"):
        return False  # a subnet broadcast, most often
    return address.is_private or address.is_link_local


def _seen_at(slot: list, ts: float) -> None:
    """Widen a ``[first, last]`` slot to ``ts`` (captures need not come in order)."""
    if ts > slot[1]:
        slot[1] = ts
    elif ts < slot[0]:
        slot[0] = ts


def _group_mac(mac: str) -> bool:
    """Multicast or broadcast: the low bit of the first octet is set."""
    try:
        return bool(int(mac[:2], 16) & 1)
    except ValueError:
        return True


class LinkBindings:
    """IP-to-MAC bindings learned into a baseline's ``macs`` table, checked on the way.

    ``seen`` maps the ``(ip, mac)`` pairs already bound and normal to their
    slot (or to a dummy slot when the pair is not bindable), so that the
    common message costs two dictionary look-ups.
    """

    __slots__ = ("_local", "flows", "macs", "seen")

    def __init__(self, macs: dict[str, dict[str, list]]) -> None:
        self.macs = macs
        self.seen: dict[tuple, list] = {}
        # flow id -> (its two Endpoint objects, their two slots), once both
        # ends were found normal: a flow's endpoints (and MACs) are fixed when
        # it opens, so its later messages only move the slots' last-seen (the
        # identity test guards a reused id). Updating last-seen at every
        # message keeps merge(learn(A), learn(B)) equal to learn(A + B).
        self.flows: dict[int, tuple] = {}
        self._local: dict[str, bool] = {}

    def seen_flow(self, flow: int, src, dst, ts: float) -> bool:
        """True (after moving both slots' last-seen to ``ts``) for a flow whose
        ends ``src`` and ``dst`` were already checked; the detector's hot path
        calls it with the message already unpacked."""
        done = self.flows.get(flow)
        if done is None:
            return False
        a, b, slot_a, slot_b = done
        if not ((a is src and b is dst) or (a is dst and b is src)):
            return False
        # _seen_at of both slots, written out (this runs per message); the
        # times compared as C doubles and stored as the message's own float.
        when = ts
        bound = slot_a[1]
        if when > bound:
            slot_a[1] = ts
        else:
            bound = slot_a[0]
            if when < bound:
                slot_a[0] = ts
        bound = slot_b[1]
        if when > bound:
            slot_b[1] = ts
        else:
            bound = slot_b[0]
            if when < bound:
                slot_b[0] = ts
        return True

    def _cached_flow(self, m) -> bool:
        """:meth:`seen_flow` of a message."""
        return self.seen_flow(m.flow, m.src, m.dst, m.ts)

    def _mark_flow(self, m, slots: list) -> None:
        if len(self.flows) > 65536:
            self.flows.clear()
        self.flows[m.flow] = (m.src, m.dst, slots[0], slots[1])

    def _bindable(self, ip: str, mac) -> bool:
        if mac in _SKIP_MACS:
            return False
        local = self._local.get(ip)
        if local is None:
            if len(self._local) > 65536:
                self._local.clear()
            local = self._local[ip] = is_local_unicast(ip)
        return local and not _group_mac(mac)

    def learn(self, m) -> None:
        """Fold both ends' bindings of one message in (learning mode)."""
        if self._cached_flow(m):
            return
        ts = m.ts
        seen = self.seen
        slots = []
        for end in (m.src, m.dst):
            pair = (end.ip, end.mac)
            slot = seen.get(pair)
            if slot is None:
                if len(seen) > 65536:
                    seen.clear()
                if self._bindable(*pair):
                    slot = self._add(end.ip, end.mac, ts)
                if slot is None:
                    slot = [ts, ts]
                seen[pair] = slot
            else:
                _seen_at(slot, ts)
            slots.append(slot)
        self._mark_flow(m, slots)

    def _add(self, ip: str, mac: str, ts: float) -> list | None:
        known = self.macs.get(ip)
        if known is None:
            known = self.macs[ip] = {}
        slot = known.get(mac)
        if slot is None:
            if len(known) >= MAX_MACS_PER_IP:
                return None
            slot = known[mac] = [ts, ts]
        _seen_at(slot, ts)
        return slot

    def check(self, m, normal) -> list[tuple] | None:
        """Findings for the ends of ``m`` seen from a newer MAC; learns them too.

        ``normal(first, last, ts)`` is the detector's normality test. None (or
        an empty list) when there is nothing to report.
        """
        if self._cached_flow(m):
            return None
        found: list[tuple] = []
        suspect = False
        ts = m.ts
        seen = self.seen
        slots = []
        for end in (m.src, m.dst):
            ip, mac = end.ip, end.mac
            pair = (ip, mac)
            slot = seen.get(pair)
            if slot is not None:
                _seen_at(slot, ts)
                slots.append(slot)
                continue
            if len(seen) > 65536:
                seen.clear()
            if not self._bindable(ip, mac):
                slot = seen[pair] = [ts, ts]
                slots.append(slot)
                continue
            slot = self._add(ip, mac, ts)
            if slot is None:
                suspect = True  # an IP full of MACs: never cached
                continue
            if normal(slot[0], slot[1], ts):
                seen[pair] = slot
                slots.append(slot)
                continue
            older = sorted(
                (other for other, s in self.macs[ip].items() if s[0] < slot[0]),
                key=lambda other: self.macs[ip][other][0],
            )
            suspect = True  # rechecked at every message of its flow
            if not older:
                continue
            side = "from" if end is m.src else "to"
            found.append(
                (
                    "ot/mac-change",
                    (ip, mac),
                    75,
                    (
                        f"{ip} is seen at MAC {mac} (a message {side} it, "
                        f"{m.protocol} {m.service}); it was at {', '.join(older[:3])} "
                        f"before: ARP spoofing, a spoofed source or a swapped device"
                    ),
                    {"ip": ip, "mac": mac, "previous_macs": older[:3]},
                )
            )
        if not suspect:
            self._mark_flow(m, slots)
        return found
