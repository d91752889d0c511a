"""Mergeable per-device behaviour state learned from Messages, and its JSON form.

Strategy
--------
Everything here is plain data that merges exactly: counts add, sets union,
first-seen takes the minimum and last-seen the maximum. Statistics of
durations (request inter-arrival, response time) and sizes are kept as
integer moments ``[n, sum, sum of squares, min, max]`` over integer
microseconds (or bytes), so merging two of them is integer addition and is
exact, not merely equal up to rounding. Mean and variance are computed from
them only when a model reads them.

The state is keyed by *relationship*: ``(client, server, protocol)``, the
client being the side that sends requests. A relationship holds the
services used on it, the action mix, the address ranges read and written per
address space, and the ranges of values seen per address. A per-device index
(protocols used in which role, peers) is kept alongside for the models that
ask about a device rather than a relationship.

Inter-arrival statistics need the time of the previous request, which is run
state, not baseline: it lives in :class:`StreamClock` and is reset at the
start of each capture, so that learning two captures in one run
(``learn(A + B)``) gives exactly the baseline that learning each apart and
merging them gives.

Nothing here reads a protocol's wire format: only the Message envelope and
two field conventions, ``fields["values"]`` (or ``registers``/``bits``)
aligned with a single target, and ``fields["sub_function_name"]`` refining a
service.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otdpi.message import Message

FORMAT = "otdpi-baseline/1"

# Caps that bound the state of one relationship (the 64 KB per device target).
MAX_ADDRESSES = 65_536  # per (action, space) of one relationship
MAX_VALUE_ADDRESSES = 512  # per relationship
MAX_SERVICES = 256  # per relationship
MAX_PEERS = 1024  # per device

# Limitation: when a cap above is reached, further keys are not added (the
# count is still kept), so merge(A, B) equals learn(A + B) exactly only while
# both stay under the caps. Caps sized from real traffic, or a sketch that
# merges exactly (HyperLogLog for peers), would lift it.

_US = 1_000_000


def new_moments() -> list[int]:
    """An empty integer moment set ``[n, sum, sum_sq, min, max]``."""
    return [0, 0, 0, 0, 0]


def add_moment(moments: list[int], value: int) -> None:
    """Add one integer observation to ``moments`` in place."""
    if moments[0] == 0:
        moments[3] = moments[4] = value
    elif value < moments[3]:
        moments[3] = value
    elif value > moments[4]:
        moments[4] = value
    moments[0] += 1
    moments[1] += value
    moments[2] += value * value


def merge_moments(into: list[int], other: list[int]) -> None:
    """Fold ``other`` into ``into``; exact, since every part is an integer."""
    if other[0] == 0:
        return
    if into[0] == 0:
        into[:] = other
        return
    into[0] += other[0]
    into[1] += other[1]
    into[2] += other[2]
    into[3] = min(into[3], other[3])
    into[4] = max(into[4], other[4])


def mean_std(moments: list[int]) -> tuple[float, float]:
    """Mean and population standard deviation of a moment set (0, 0 if empty)."""
    n = moments[0]
    if n == 0:
        return 0.0, 0.0
    mean = moments[1] / n
    variance = max(0.0, (moments[2] - moments[1] * moments[1] / n) / n)
    return mean, variance**0.5


class ServiceStats:
    """One service on one relationship: counts, first/last seen, request cadence."""

    __slots__ = ("count", "requests", "first", "last", "gaps")

    def __init__(self, ts: float) -> None:
        self.count = 0
        self.requests = 0
        self.first = ts
        self.last = ts
        self.gaps = new_moments()  # request inter-arrival, microseconds

    def period(self, min_gaps: int = 8, max_cv: float = 0.25) -> float | None:
        """The request period in seconds when the requests are periodic, else None."""
        if self.gaps[0] < min_gaps:
            return None
        mean, std = mean_std(self.gaps)
        if mean <= 0 or std / mean > max_cv:
            return None
        return mean / _US

    def merge(self, other: ServiceStats) -> None:
        self.count += other.count
        self.requests += other.requests
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        merge_moments(self.gaps, other.gaps)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "requests": self.requests, "first": self.first,
                "last": self.last, "gaps_us": list(self.gaps)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceStats:
        stats = cls(data["first"])
        stats.count = data["count"]
        stats.requests = data["requests"]
        stats.last = data["last"]
        stats.gaps = list(data["gaps_us"])
        return stats


class Relation:
    """What one client does with one server over one protocol."""

    __slots__ = ("count", "first", "last", "services", "actions", "addresses",
                 "values", "sizes", "response_us", "_seen_ranges")

    def __init__(self, ts: float) -> None:
        self.count = 0
        self.first = ts
        self.last = ts
        self.services: dict[str, ServiceStats] = {}
        self.actions: dict[str, int] = {}
        # (action, space) -> addresses touched; action is read/write/control...
        self.addresses: dict[tuple[str, str], set[int]] = {}
        # (space, address) -> [n, min, max] of values written or polled
        self.values: dict[tuple[str, int], list[int]] = {}
        self.sizes = new_moments()
        self.response_us = new_moments()
        # Run-time cache of ranges already folded into ``addresses``: polling
        # repeats the same few ranges, and a set lookup beats re-adding them.
        self._seen_ranges: set[tuple[str, str, int, int]] = set()

    def add_range(self, action: str, space: str, start: int, count: int) -> bool:
        """Fold an address range in; True when it held an address not seen before."""
        key = (action, space, start, count)
        seen = self._seen_ranges
        if key in seen:
            return False
        if len(seen) < 4096:
            seen.add(key)
        addresses = self.addresses.get((action, space))
        if addresses is None:
            addresses = self.addresses[action, space] = set()
        before = len(addresses)
        room = MAX_ADDRESSES - before
        if room > 0:
            addresses.update(range(start, start + min(count, room, 65_536)))
        return len(addresses) != before

    def merge(self, other: Relation) -> None:
        self.count += other.count
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        for name, stats in other.services.items():
            mine = self.services.get(name)
            if mine is None:
                if len(self.services) < MAX_SERVICES:
                    mine = self.services[name] = ServiceStats(stats.first)
                    mine.merge(stats)
            else:
                mine.merge(stats)
        for action, n in other.actions.items():
            self.actions[action] = self.actions.get(action, 0) + n
        for key, addresses in other.addresses.items():
            mine = self.addresses.setdefault(key, set())
            mine |= addresses
        for key, (n, lo, hi) in other.values.items():
            mine = self.values.get(key)
            if mine is None:
                if len(self.values) < MAX_VALUE_ADDRESSES:
                    self.values[key] = [n, lo, hi]
            else:
                mine[0] += n
                mine[1] = min(mine[1], lo)
                mine[2] = max(mine[2], hi)
        merge_moments(self.sizes, other.sizes)
        merge_moments(self.response_us, other.response_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count, "first": self.first, "last": self.last,
            "services": {k: v.to_json() for k, v in sorted(self.services.items())},
            "actions": dict(sorted(self.actions.items())),
            "addresses": [[a, s, _intervals(v)]
                          for (a, s), v in sorted(self.addresses.items())],
            "values": [[s, a, *v] for (s, a), v in sorted(self.values.items())],
            "sizes": list(self.sizes), "response_us": list(self.response_us),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Relation:
        rel = cls(data["first"])
        rel.count = data["count"]
        rel.last = data["last"]
        rel.services = {k: ServiceStats.from_json(v) for k, v in data["services"].items()}
        rel.actions = dict(data["actions"])
        rel.addresses = {(a, s): _from_intervals(v) for a, s, v in data["addresses"]}
        rel.values = {(s, a): [n, lo, hi] for s, a, n, lo, hi in data["values"]}
        rel.sizes = list(data["sizes"])
        rel.response_us = list(data["response_us"])
        return rel


class Device:
    """Index of one address: protocols by role, peers with direction."""

    __slots__ = ("first", "last", "protocols", "peers")

    def __init__(self, ts: float) -> None:
        self.first = ts
        self.last = ts
        # (protocol, role) -> [count, first, last]; role is "client" or "server"
        self.protocols: dict[tuple[str, str], list] = {}
        # peer -> [messages as client, messages as server, first, last]
        self.peers: dict[str, list] = {}

    def merge(self, other: Device) -> None:
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        for key, (n, first, last) in other.protocols.items():
            mine = self.protocols.get(key)
            if mine is None:
                self.protocols[key] = [n, first, last]
            else:
                mine[0] += n
                mine[1] = min(mine[1], first)
                mine[2] = max(mine[2], last)
        for peer, (as_client, as_server, first, last) in other.peers.items():
            mine = self.peers.get(peer)
            if mine is None:
                if len(self.peers) < MAX_PEERS:
                    self.peers[peer] = [as_client, as_server, first, last]
            else:
                mine[0] += as_client
                mine[1] += as_server
                mine[2] = min(mine[2], first)
                mine[3] = max(mine[3], last)

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first, "last": self.last,
            "protocols": [[p, r, *v] for (p, r), v in sorted(self.protocols.items())],
            "peers": {k: v for k, v in sorted(self.peers.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        dev = cls(data["first"])
        dev.last = data["last"]
        dev.protocols = {(p, r): [n, f, la] for p, r, n, f, la in data["protocols"]}
        dev.peers = {k: list(v) for k, v in data["peers"].items()}
        return dev


def relation_ends(message: Message) -> tuple[str, str]:
    """``(client, server)`` addresses of the relationship a message belongs to."""
    if message.kind == "response":
        return message.dst.ip, message.src.ip
    return message.src.ip, message.dst.ip


def service_key(message: Message) -> str:
    """The service name, refined by ``fields["sub_function_name"]`` where given."""
    sub = message.fields.get("sub_function_name") if message.fields else None
    if isinstance(sub, str):
        return f"{message.service}/{sub}"
    return message.service


def message_values(message: Message) -> list[tuple[str, int, int]]:
    """``(space, address, value)`` triples a message carries, by field convention.

    A message with exactly one target and a list of integers in
    ``fields["values"]``, ``fields["registers"]`` or ``fields["bits"]`` of the
    target's length gives one value per address; a one-address target with a
    boolean ``fields["coil"]`` gives 0 or 1, else an integer ``fields["value"]``
    gives that value.
    """
    targets = message.targets
    if len(targets) != 1:
        return []
    fields = message.fields
    space, start, count = targets[0]
    for name in ("values", "registers", "bits"):
        values = fields.get(name)
        if isinstance(values, list) and len(values) == count:
            return [(space, start + i, v) for i, v in enumerate(values[:64])
                    if type(v) is int]
    if count == 1:
        # A boolean state (a coil, a binary output) is read back as 0/1 bits,
        # so it is learned as 0/1 too, not as its wire encoding (0xFF00).
        state = fields.get("coil")
        if type(state) is bool:
            return [(space, start, int(state))]
        value = fields.get("value")
        if type(value) is int:
            return [(space, start, value)]
    return []


class StreamClock:
    """Run state that is not baseline: the last request time per relation service."""

    __slots__ = ("last_request",)

    def __init__(self) -> None:
        self.last_request: dict[tuple, float] = {}

    def reset(self) -> None:
        """A new capture starts: gaps never span two captures."""
        self.last_request.clear()


class Baseline:
    """The learned state of a network: relations, devices and the time span seen.

    Attributes
    ----------
    relations
        ``(client, server, protocol)`` to :class:`Relation`.
    devices
        address to :class:`Device`.
    first, last
        capture time span learned (None before any message).
    learned_until
        capture time up to which learning was the only mode: anything first
        seen before it is normal.
    messages
        messages learned.
    """

    def __init__(self) -> None:
        self.relations: dict[tuple[str, str, str], Relation] = {}
        self.devices: dict[str, Device] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.learned_until: float | None = None
        self.messages = 0
        self.clock = StreamClock()

    # -- learning ---------------------------------------------------------------

    def learn(self, message: Message) -> Relation:
        """Fold one message into the state; return its relationship."""
        ts = message.ts
        kind = message.kind
        protocol = message.protocol
        if kind == "response":
            client, server = message.dst.ip, message.src.ip
        else:
            client, server = message.src.ip, message.dst.ip
        self.messages += 1
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts

        key = (client, server, protocol)
        rel = self.relations.get(key)
        if rel is None:
            rel = self.relations[key] = Relation(ts)
            self._link(client, server, protocol, ts)
        rel.count += 1
        if ts > rel.last:
            rel.last = ts
        elif ts < rel.first:
            rel.first = ts

        name = service_key(message)
        stats = rel.services.get(name)
        if stats is None:
            if len(rel.services) >= MAX_SERVICES:
                name = "(other)"
                stats = rel.services.get(name)
            if stats is None:
                stats = rel.services[name] = ServiceStats(ts)
        stats.count += 1
        if ts > stats.last:
            stats.last = ts
        elif ts < stats.first:
            stats.first = ts

        action = message.action
        actions = rel.actions
        actions[action] = actions.get(action, 0) + 1
        fields = message.fields
        if kind != "response":
            stats.requests += 1
            clock_key = (key, name)
            previous = self.clock.last_request.get(clock_key)
            self.clock.last_request[clock_key] = ts
            if previous is not None and ts >= previous:
                add_moment(stats.gaps, int((ts - previous) * _US))
            for space, start, count in message.targets:
                rel.add_range(action, space, start, count)
        else:
            response_time = fields.get("response_time")
            if response_time is not None and response_time >= 0:
                add_moment(rel.response_us, int(response_time * _US))
        size = fields.get("length")
        if type(size) is int:
            add_moment(rel.sizes, size)
        if message.targets and (kind != "response" or action == "read"):
            self._learn_values(rel, message)
        return rel

    def _learn_values(self, rel: Relation, message: Message) -> None:
        values = rel.values
        for space, address, value in message_values(message):
            slot = values.get((space, address))
            if slot is None:
                if len(values) < MAX_VALUE_ADDRESSES:
                    values[space, address] = [1, value, value]
            else:
                slot[0] += 1
                if value < slot[1]:
                    slot[1] = value
                elif value > slot[2]:
                    slot[2] = value

    def _link(self, client: str, server: str, protocol: str, ts: float) -> None:
        for ip, role, peer in ((client, "client", server), (server, "server", client)):
            dev = self.devices.get(ip)
            if dev is None:
                dev = self.devices[ip] = Device(ts)
            dev.first = min(dev.first, ts)
            dev.last = max(dev.last, ts)
            slot = dev.protocols.get((protocol, role))
            if slot is None:
                dev.protocols[protocol, role] = [0, ts, ts]
            if peer not in dev.peers and len(dev.peers) < MAX_PEERS:
                dev.peers[peer] = [0, 0, ts, ts]

    def finish(self) -> None:
        """Bring the device index up to date with the relations (counts, last seen)."""
        for dev in self.devices.values():
            for slot in dev.protocols.values():
                slot[0] = 0
            for slot in dev.peers.values():
                slot[0] = slot[1] = 0
        for (client, server, protocol), rel in self.relations.items():
            for ip, role, peer, index in ((client, "client", server, 0),
                                          (server, "server", client, 1)):
                dev = self.devices[ip]
                dev.first = min(dev.first, rel.first)
                dev.last = max(dev.last, rel.last)
                slot = dev.protocols[protocol, role]
                slot[0] += rel.count
                slot[1] = min(slot[1], rel.first)
                slot[2] = max(slot[2], rel.last)
                peer_slot = dev.peers.get(peer)
                if peer_slot is not None:
                    peer_slot[index] += rel.count
                    peer_slot[2] = min(peer_slot[2], rel.first)
                    peer_slot[3] = max(peer_slot[3], rel.last)

    def learn_all(self, messages: Iterable[Message]) -> Baseline:
        """Learn every message of one stream (one capture); return self."""
        self.clock.reset()
        for message in messages:
            self.learn(message)
        self.finish()
        return self

    # -- merging and serialising ------------------------------------------------

    def merge(self, other: Baseline) -> Baseline:
        """Fold ``other`` into this baseline (in place); return self."""
        for key, rel in other.relations.items():
            mine = self.relations.get(key)
            if mine is None:
                mine = self.relations[key] = Relation(rel.first)
            mine.merge(rel)
        for ip, dev in other.devices.items():
            mine = self.devices.get(ip)
            if mine is None:
                mine = self.devices[ip] = Device(dev.first)
            mine.merge(dev)
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
            self.last = other.last if self.last is None else max(self.last, other.last)
        if other.learned_until is not None:
            self.learned_until = (other.learned_until if self.learned_until is None
                                  else max(self.learned_until, other.learned_until))
        self.messages += other.messages
        self.finish()
        return self

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_json` reads it back."""
        return {
            "format": FORMAT,
            "first": self.first, "last": self.last,
            "learned_until": self.learned_until, "messages": self.messages,
            "devices": {ip: d.to_json() for ip, d in sorted(self.devices.items())},
            "relations": [[c, s, p, r.to_json()]
                          for (c, s, p), r in sorted(self.relations.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        """Read a dict made by :meth:`to_json`.

        Raises
        ------
        ValueError
            the dict is not an otdpi baseline of a format this version reads.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} document")
        base = cls()
        base.first = data["first"]
        base.last = data["last"]
        base.learned_until = data["learned_until"]
        base.messages = data["messages"]
        base.devices = {ip: Device.from_json(d) for ip, d in data["devices"].items()}
        base.relations = {(c, s, p): Relation.from_json(r)
                          for c, s, p, r in data["relations"]}
        return base

    def device_state_size(self, ip: str) -> int:
        """Bytes of compact JSON of one device's index and of its relationships."""
        import json

        parts = [self.devices[ip].to_json()] if ip in self.devices else []
        parts += [r.to_json() for (c, s, _), r in self.relations.items() if ip in (c, s)]
        return len(json.dumps(parts, separators=(",", ":")))


def _intervals(addresses: set[int]) -> list[list[int]]:
    """Sorted addresses as ``[start, end]`` inclusive runs (compact JSON)."""
    runs: list[list[int]] = []
    for address in sorted(addresses):
        if runs and address == runs[-1][1] + 1:
            runs[-1][1] = address
        else:
            runs.append([address, address])
    return runs


def _from_intervals(runs: list[list[int]]) -> set[int]:
    found: set[int] = set()
    for start, end in runs:
        found.update(range(start, end + 1))
    return found
