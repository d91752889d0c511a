"""ABB RNRP (Redundant Network Routing Protocol, UDP 2423): node announcements.

800xA nodes and AC 800M controllers multicast RNRP routing messages on each
of their two network paths so that every node learns which peers are
reachable on which path. ABB publishes no wire format; what is decoded
here is the layout community analyses describe, and every field whose
meaning is not settled is also exposed raw (``raw_header``, ``body``):

==========  ======  ============================================================
offset      size    field (certainty)
==========  ======  ============================================================
0           1       ``version`` (likely)
1           1       ``message_type`` (uncertain: routing / hello / ...)
2           1       ``network_area`` (likely)
3           1       ``path`` 0 primary, 1 secondary (likely)
4           2       ``node_number`` big-endian (likely)
6           2       ``flags`` (uncertain)
8           4       ``sequence_counter`` big-endian (uncertain)
12          ...     ``body``: routing entries, kept raw (uncertain)
==========  ======  ============================================================

Independently of that layout, the 800xA address plan is documented by ABB:
a node on path P of network area A with node number N has the address
``172.(16+P).(4*A + ...).N``; the third octet's area and the fourth
octet's node are read from the source address when it follows the plan
and checked against the header (a disagreement is a finding).

Each sender enters the inventory as an "ABB 800xA node" with
``rnrp_address`` ``"area/node"``; a node number seen in one area on both
path 0 and path 1 is recorded as a redundant pair (``redundant_pair``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from otdpi.dissector import Dissector, FlowContext
from otdpi.message import STATUS_OK, Finding, Message, malformed

PROTOCOL = "rnrp"
PORT = 2423
HEADER_SIZE = 12
MAX_DATAGRAM = 1500

_new = tuple.__new__

# Paths seen per (area, node), across every flow of the process: a node
# announces itself on each path from a different address, so different flows.
# Bounded: at most this many nodes are remembered.
MAX_NODES = 4096
_paths_seen: dict[tuple[int, int], set[int]] = {}


def address_plan(ip: str | None) -> dict[str, int] | None:
    """Area, path and node from an 800xA plan address ``172.16/17.x.y``, or None."""
    if not ip:
        return None
    try:
        octets = ipaddress.IPv4Address(ip).packed
    except ValueError:
        return None
    if octets[0] != 172 or octets[1] not in (16, 17):
        return None
    return {
        "path": octets[1] - 16,
        "network_area": octets[2] // 4,
        "node_number": octets[3],
    }


def decode_rnrp(datagram: bytes) -> dict[str, Any]:
    """Decode an RNRP datagram; raises ValueError when it is too short."""
    if len(datagram) < HEADER_SIZE:
        raise ValueError(f"RNRP header needs {HEADER_SIZE} bytes, {len(datagram)} here")
    return {
        "version": datagram[0],
        "message_type": datagram[1],
        "network_area": datagram[2],
        "path": datagram[3],
        "node_number": datagram[4] << 8 | datagram[5],
        "flags": datagram[6] << 8 | datagram[7],
        "sequence_counter": int.from_bytes(datagram[8:12], "big"),
        "raw_header": datagram[:HEADER_SIZE].hex(),
        "body": datagram[HEADER_SIZE:MAX_DATAGRAM].hex(),
        "body_length": len(datagram) - HEADER_SIZE,
    }


class RnrpDissector(Dissector):
    """RNRP datagrams of one UDP flow."""

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("udp",)
    default_ports: ClassVar[tuple[int, ...]] = (PORT,)
    probe_min_bytes: ClassVar[int] = HEADER_SIZE
    # The probe below is weak, so only UDP port 2423 is ever asked.
    port_only: ClassVar[bool] = True
    state: ClassVar[str] = "last sequence counter; process-wide paths per node"

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.last_counter: int | None = None
        self.announced = False

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        # No magic number is known: a plausible header (version 1 or 2, path
        # 0 or 1, one Ethernet frame at most) is required. NTP (first octet
        # 0x0b, 0x1b, 0x23, 0xe3...) never passes.
        # Limitation: a weak test, so the plugin is port_only: RNRP moved off
        # port 2423 is not found. A known magic number would lift it.
        return (
            HEADER_SIZE <= len(data) <= MAX_DATAGRAM
            and data[0] in (1, 2)
            and data[3] in (0, 1)
        )

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        src, dst = self.endpoints(to_server)
        try:
            fields = decode_rnrp(data)
        except ValueError as exc:
            return [
                _new(
                    Message,
                    (
                        ts,
                        frame,
                        self.flow.flow_id,
                        src,
                        dst,
                        PROTOCOL,
                        "unsolicited",
                        "rnrp",
                        None,
                        "other",
                        (),
                        {"size": len(data)},
                        {},
                        malformed(str(exc)),
                        (),
                    ),
                )
            ]
        findings = []
        plan = address_plan(src.ip)
        if plan is not None:
            fields["address_plan"] = plan
            for key in ("network_area", "node_number", "path"):
                if plan[key] != fields[key]:
                    findings.append(
                        Finding(
                            "address_plan_mismatch",
                            f"header {key} {fields[key]} but the 800xA address plan of "
                            f"{src.ip} says {plan[key]}",
                        )
                    )
        area, node, path = fields["network_area"], fields["node_number"], fields["path"]
        identity: dict[str, Any] = {}
        if not self.announced:
            self.announced = True
            identity = {
                "role": "ABB 800xA node",
                "vendor": "ABB",
                "rnrp_address": f"{area}/{node}",
                "rnrp_path": path,
            }
        key = (area, node)
        seen = _paths_seen.get(key)
        if seen is None and len(_paths_seen) < MAX_NODES:
            seen = _paths_seen[key] = set()
        if seen is not None and path not in seen:
            seen.add(path)
            if {0, 1} <= seen:
                identity = {
                    **identity,
                    "rnrp_address": f"{area}/{node}",
                    "redundant_pair": f"{area}/{node} on paths 0 and 1",
                }
                fields["redundant_pair"] = True
        counter = fields["sequence_counter"]
        if self.last_counter is not None and counter < self.last_counter:
            findings.append(
                Finding(
                    "counter_reset",
                    f"sequence counter fell from {self.last_counter} "
                    f"to {counter} (node restart?)",
                )
            )
        self.last_counter = counter
        return [
            _new(
                Message,
                (
                    ts,
                    frame,
                    self.flow.flow_id,
                    src,
                    dst,
                    PROTOCOL,
                    "unsolicited",
                    "rnrp",
                    fields["message_type"],
                    "other",
                    (),
                    fields,
                    identity,
                    STATUS_OK,
                    tuple(findings),
                ),
            )
        ]


def forget_paths() -> None:
    """Clear the process-wide path table (between captures, in tests)."""
    _paths_seen.clear()
