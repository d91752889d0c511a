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

Messages repeat: a lookup cache maps (source, destination, protocol, kind,
service) to an :class:`Entry` holding the relationship, service stats, clock
cell and last address set, so learning a repeat is a single lookup and a few
field updates. Message sizes and response times, which no model reads, are
buffered in the entry and folded into their moments by the batch (exactly:
integer sums) before anything serialises, merges or finishes the state. The
lowest and highest of a message's values are only computed where learning or
scoring reads them.

Nothing here reads a protocol's wire format: only the Message envelope and
two field conventions, ``fields["values"]`` (or ``registers``/``bits``)
aligned with a single target, and ``fields["sub_function_name"]`` refining a
service. Two more tables are kept here as data and learned elsewhere:
``macs`` (:mod:`otdpi.learner.links`) and ``points``
(:mod:`otdpi.learner.points`, from ``fields["item_values"]``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from operator import mul
from typing import Any

try:
    import cython
except ImportError:  # interpreted, and Cython is not installed
    from otdpi.learner._nocython import cython

COMPILED = cython.compiled  # a constant: True in the built module

from otdpi.learner.points import merge_points, points_from_json, points_to_json
from otdpi.message import Message

FORMAT = "otdpi-baseline/1"

# Caps that bound the state of one relationship (the 64 KB per device target).
MAX_RUNS = 1024  # disjoint address runs per (action, space) of one relationship
MAX_VALUE_RANGES = 128  # per relationship
MAX_SERVICES = 256  # per relationship
MAX_PEERS = 1024  # per device
MAX_FLOWS_KEPT = 65536  # flows in the lookup shortcut; all dropped beyond

# Limitation: when a cap above is reached, further keys (or address runs) are
# not added (counts are still kept, and a range that does not fit is reported
# as new), so merge(A, B) equals learn(A + B) exactly only while both stay
# under the caps. Caps sized from real traffic, or a sketch that merges
# exactly (HyperLogLog for peers), would lift it.

_US = 1_000_000
_NEVER = float("inf")
_SMALL = 1 << 26


def tuple_item(values: tuple, index: int):
    """``values[index]`` of a tuple or a named tuple (a Message, an Endpoint).

    Compiled, this reads the tuple's slot: indexing a tuple subclass through
    the sequence protocol costs a method call there.
    """
    if cython.compiled:
        return cython.cast(tuple, values)[index]
    return values[index]


def address_of(value) -> int:
    """``id(value)``: where the object lives, read directly when compiled."""
    if cython.compiled:
        return cython.cast(cython.Py_ssize_t, cython.cast(cython.p_void, value))
    return id(value)


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


def fold_moments(moments: list[int], values: list[int]) -> None:
    """Add every integer of ``values`` to ``moments`` in place, then empty it.

    Exactly what :func:`add_moment` on each would give (integer sums), in a
    few calls that loop in C.
    """
    if not values:
        return
    if COMPILED:
        # One pass in C while every value is an int of at most 26 bits, so
        # that the squares of a buffer (256 values) add up within 64 bits.
        total = squares = 0
        low = high = 0
        first = True
        try:
            for item in values:
                if type(item) is not int:
                    break
                number = item
                if number >= _SMALL or number <= -_SMALL:
                    break
                total += number
                squares += number * number
                if first:
                    low = high = number
                    first = False
                elif number < low:
                    low = number
                elif number > high:
                    high = number
            else:
                if moments[0] == 0:
                    moments[3], moments[4] = low, high
                else:
                    if low < moments[3]:
                        moments[3] = low
                    if high > moments[4]:
                        moments[4] = high
                moments[0] += len(values)
                moments[1] += total
                moments[2] += squares
                values.clear()
                return
        except OverflowError:
            pass
    lo, hi = min(values), max(values)
    if moments[0] == 0:
        moments[3], moments[4] = lo, hi
    else:
        if lo < moments[3]:
            moments[3] = lo
        if hi > moments[4]:
            moments[4] = hi
    moments[0] += len(values)
    moments[1] += sum(values)
    moments[2] += sum(map(mul, values, values))
    values.clear()


def mean_std(moments: list[int]) -> tuple[float, float]:
    """Mean and population standard deviation of a moment set (0, 0 if empty)."""
    n = moments[0]
    if n == 0:
        return 0.0, 0.0
    mean = moments[1] / n
    variance = max(0.0, (moments[2] - moments[1] * moments[1] / n) / n)
    return mean, variance**0.5


def run_after(bounds: list, address) -> int:
    """Where ``address`` goes in the sorted ``bounds``, after any equal one
    (:func:`bisect.bisect_right`); compiled, a C search over 64-bit integers,
    as calling the bisect module from C costs more than the search."""
    if COMPILED and type(address) is int:
        try:
            return _search_after(bounds, address)
        except (OverflowError, TypeError):
            pass  # an address past 64 bits, or a bound that is not an int
    return bisect_right(bounds, address)


def _search_after(bounds: list, address: int) -> int:
    low = 0
    high = len(bounds)
    while low < high:
        middle = (low + high) // 2
        bound = bounds[middle]
        if address < bound:
            high = middle
        else:
            low = middle + 1
    return low


class Ranges:
    """A set of integer addresses kept as sorted, disjoint, non-touching runs.

    Polled and written ranges are contiguous, so a few runs describe what a
    relationship touched; adding or testing a range is a binary search. The
    union of two is exact and independent of the order of insertion.
    """

    __slots__ = ("starts", "ends")  # ends are exclusive

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Ranges)
            and self.starts == other.starts
            and self.ends == other.ends
        )

    def covers(self, start: int, end: int) -> bool:
        """Whether every address in ``[start, end)`` is in the set."""
        i = run_after(self.starts, start) - 1
        return i >= 0 and self.ends[i] >= end

    def add(self, start: int, end: int) -> bool:
        """Add ``[start, end)``; True when it held an address not in the set."""
        if end <= start:
            return False
        starts, ends = self.starts, self.ends
        i = run_after(starts, start) - 1
        if i >= 0 and ends[i] >= end:
            return False
        if len(starts) >= MAX_RUNS:
            return True  # full (see the caps Limitation): reported new, not kept
        # Runs from j to k-1 overlap or touch [start, end): fold them in.
        j = i if i >= 0 and ends[i] >= start else i + 1
        k = run_after(starts, end)
        if j < k:
            start = min(start, starts[j])
            end = max(end, ends[k - 1])
        starts[j:k] = [start]
        ends[j:k] = [end]
        return True

    def update(self, other: Ranges) -> None:
        for start, end in zip(other.starts, other.ends):
            self.add(start, end)

    def runs(self) -> list[list[int]]:
        """``[first, last]`` inclusive runs, for JSON."""
        return [[s, e - 1] for s, e in zip(self.starts, self.ends)]

    @classmethod
    def from_runs(cls, runs) -> Ranges:
        found = cls()
        for first, last in runs:
            found.add(first, last + 1)
        return found


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
        gaps = self.gaps
        count = gaps[0]
        if count < min_gaps:
            return None
        total = gaps[1]
        if total <= 0:
            return None
        # std / mean > max_cv, in integers: n * sum of squares - sum ** 2 is
        # n ** 2 times the variance (the cadence sweep asks this every second).
        if count * gaps[2] - total * total > max_cv * max_cv * (total * total):
            return None
        return total / count / _US

    def merge(self, other: ServiceStats) -> None:
        self.count += other.count
        self.requests += other.requests
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        merge_moments(self.gaps, other.gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "requests": self.requests,
            "first": self.first,
            "last": self.last,
            "gaps_us": list(self.gaps),
        }

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

    __slots__ = (
        "count",
        "first",
        "last",
        "services",
        "actions",
        "addresses",
        "values",
        "sizes",
        "response_us",
        "carriers",
    )

    def __init__(self, ts: float) -> None:
        self.count = 0
        self.first = ts
        self.last = ts
        self.services: dict[str, ServiceStats] = {}
        self.actions: dict[str, int] = {}
        # (action, space) -> addresses touched; action is read/write/control...
        self.addresses: dict[tuple[str, str], Ranges] = {}
        # (space, start, count) -> [n, min, max] of values written or polled
        self.values: dict[tuple[str, int, int], list[int]] = {}
        self.sizes = new_moments()
        self.response_us = new_moments()
        # (space, start, count) -> [data windows, process windows, first data
        # window's time or None]: how the values of a target were judged by
        # otdpi.learner.covert.
        self.carriers: dict[tuple[str, int, int], list] = {}

    def add_range(self, action: str, space: str, start: int, count: int) -> bool:
        """Fold an address range in; True when it held an address not seen before."""
        addresses = self.addresses.get((action, space))
        if addresses is None:
            addresses = self.addresses[action, space] = Ranges()
        return addresses.add(start, start + count)

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
            mine = self.addresses.get(key)
            if mine is None:
                mine = self.addresses[key] = Ranges()
            mine.update(addresses)
        for key, (n, lo, hi) in other.values.items():
            mine = self.values.get(key)
            if mine is None:
                if len(self.values) < MAX_VALUE_RANGES:
                    self.values[key] = [n, lo, hi]
            else:
                mine[0] += n
                mine[1] = min(mine[1], lo)
                mine[2] = max(mine[2], hi)
        merge_moments(self.sizes, other.sizes)
        merge_moments(self.response_us, other.response_us)
        for key, (data, process, first) in other.carriers.items():
            mine = self.carriers.get(key)
            if mine is None:
                if len(self.carriers) < MAX_VALUE_RANGES:
                    self.carriers[key] = [data, process, first]
            else:
                mine[0] += data
                mine[1] += process
                if first is not None and (mine[2] is None or first < mine[2]):
                    mine[2] = first

    def to_json(self) -> dict[str, Any]:
        document = {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "services": {k: v.to_json() for k, v in sorted(self.services.items())},
            "actions": dict(sorted(self.actions.items())),
            "addresses": [
                [a, s, v.runs()] for (a, s), v in sorted(self.addresses.items())
            ],
            "values": [[s, a, c, *v] for (s, a, c), v in sorted(self.values.items())],
            "sizes": list(self.sizes),
            "response_us": list(self.response_us),
        }
        if self.carriers:  # left out when empty, as documents before it had none
            document["carriers"] = [
                [s, a, c, *v] for (s, a, c), v in sorted(self.carriers.items())
            ]
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Relation:
        rel = cls(data["first"])
        rel.count = data["count"]
        rel.last = data["last"]
        rel.services = {
            k: ServiceStats.from_json(v) for k, v in data["services"].items()
        }
        rel.actions = dict(data["actions"])
        rel.addresses = {(a, s): Ranges.from_runs(v) for a, s, v in data["addresses"]}
        rel.values = {(s, a, c): [n, lo, hi] for s, a, c, n, lo, hi in data["values"]}
        rel.sizes = list(data["sizes"])
        rel.response_us = list(data["response_us"])
        rel.carriers = {
            (s, a, c): [d, p, f] for s, a, c, d, p, f in data.get("carriers", ())
        }
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
            "first": self.first,
            "last": self.last,
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


def value_range(message: Message) -> tuple[tuple[str, int, int], int, int] | None:
    """``((space, start, count), lowest, highest)`` of the values a message carries.

    By field convention: a message with exactly one target and a list of
    integers in ``fields["values"]``, ``fields["registers"]`` or
    ``fields["bits"]`` of the target's length; or a one-address target with a
    boolean ``fields["coil"]`` (learned as 0 or 1, as it reads back) or an
    integer ``fields["value"]``. Values are learned per addressed range, as
    polled and written ranges repeat.
    """
    targets, fields = message.targets, message.fields
    if type(targets) is not tuple or type(fields) is not dict:
        targets, fields = tuple(targets), dict(fields)
    source = value_source(targets, fields)
    return None if source is None else range_of(source)


def value_source(targets, fields) -> tuple | None:
    """``(target, values)`` of :func:`value_range`, before the lowest and highest
    are taken (the costly part, skipped where nobody would read them); None
    when the message carries no values by the field convention."""
    if len(targets) != 1:
        return None
    target = targets[0]
    if isinstance(target, tuple) and len(target) == 3:
        count = cython.cast(tuple, target)[2]
    else:
        _, _, count = target
    if not count:
        return None
    # "values", "registers", "bits", in that order (unrolled: this runs per message).
    values = fields.get("values")
    if type(values) is list and len(values) == count:
        return (target, values)
    values = fields.get("registers")
    if type(values) is list and len(values) == count:
        return (target, values)
    values = fields.get("bits")
    if type(values) is list and len(values) == count:
        return (target, values)
    if count == 1:
        # A boolean state (a coil, a binary output) is read back as 0/1 bits,
        # so it is learned as 0/1 too, not as its wire encoding (0xFF00).
        state = fields.get("coil")
        if type(state) is bool:
            return (target, (int(state),))
        value = fields.get("value")
        if type(value) is int:
            return (target, (value,))
    return None


def merge_macs(into: dict[str, dict[str, list]], other: dict) -> None:
    """Fold IP-to-MAC bindings ``other`` into ``into``: first is min, last max."""
    for ip, macs in other.items():
        mine = into.get(ip)
        if mine is None:
            mine = into[ip] = {}
        for mac, (first, last) in macs.items():
            slot = mine.get(mac)
            if slot is None:
                mine[mac] = [first, last]
            else:
                slot[0] = min(slot[0], first)
                slot[1] = max(slot[1], last)


def range_of(source: tuple) -> tuple[tuple[str, int, int], int, int] | None:
    """:func:`value_range` from a :func:`value_source`: None unless integers."""
    target, values = source
    if COMPILED and type(values) is list:
        # One pass in C over machine integers: what min() and max() give for
        # a list of ints, which is what polls carry. Anything else (a bool, a
        # float, an int past 64 bits) takes the interpreted way below.
        items = values
        low = high = 0
        first = True
        try:
            for item in items:
                if type(item) is not int:
                    break
                number = item
                if first:
                    low = high = number
                    first = False
                elif number < low:
                    low = number
                elif number > high:
                    high = number
            else:
                if not first:
                    return (target, low, high)
        except OverflowError:
            pass
    try:
        lo, hi = min(values), max(values)
    except TypeError:
        return None
    if type(lo) is int and type(hi) is int:
        return (target, lo, hi)
    return None


def _learn_values(learned: dict, values: tuple, slot=False) -> None:
    """Fold one :func:`value_range` into a relationship's value ranges;
    ``slot`` is the range already looked up for its target, if it was."""
    key, lo, hi = values
    if slot is False:
        slot = learned.get(key)
    if slot is None:
        if len(learned) < MAX_VALUE_RANGES:
            learned[key] = [1, lo, hi]
    else:
        slot[0] += 1
        if lo < slot[1]:
            slot[1] = lo
        if hi > slot[2]:
            slot[2] = hi


class StreamClock:
    """Run state that is not baseline: the last request time per relation service.

    Each ``(relation key, service)`` has a one-item list cell holding the time
    of its previous request (None at the start of a capture); the lookup cache
    holds the cell itself, so the clock costs no dictionary lookup per message.
    """

    __slots__ = ("last_request",)

    def __init__(self) -> None:
        self.last_request: dict[tuple, list] = {}

    def cell(self, clock_key: tuple) -> list:
        """The cell of one relation service, made on first use."""
        cell = self.last_request.get(clock_key)
        if cell is None:
            cell = self.last_request[clock_key] = [None]
        return cell

    def reset(self) -> None:
        """A new capture starts: gaps never span two captures."""
        # Emptied in place: cached entries keep pointing at their cells.
        for cell in self.last_request.values():
            cell[0] = None


class Entry:
    """What the lookup cache holds for one (source, destination, protocol, kind,
    service): everything a repeat of it needs, resolved once.

    ``rel``, ``stats`` and ``clock_key`` are the relationship, service stats and
    clock key of the messages; ``clock`` is the clock cell; ``request`` says
    whether they are requests (any kind but ``response``); ``ot`` whether the
    protocol is an industrial one (not in :data:`IT_PROTOCOLS`); ``rated``
    whether they count towards their sender's request rate (industrial,
    neither responses nor events). ``ranges`` is
    the address set of ``(ranges_action, ranges_space)`` on ``rel`` last used
    (an address set is never replaced, only grown). ``cadence``,
    ``established``, ``served`` and ``flood`` are the detector's (run state,
    reset with the cache).
    """

    __slots__ = (
        "rel",
        "stats",
        "clock_key",
        "clock",
        "request",
        "fast",
        "rated",
        "ranges_action",
        "ranges_space",
        "ranges",
        "sizes",
        "took",
        "cadence",
        "established",
        "served",
        "flood",
    )

    def __init__(self, rel, stats, clock_key, clock, request, fast, rated) -> None:
        self.rel = rel
        self.stats = stats
        self.clock_key = clock_key
        self.clock = clock
        self.request = request
        self.fast = fast
        self.rated = rated
        self.ranges_action = None
        self.ranges_space = None
        self.ranges = None
        # Message sizes and response times (microseconds) not yet in the
        # relationship's moments: no model reads those, so they are folded in
        # by the batch (see fold), before anything serialises or merges them.
        self.sizes: list[int] = []
        self.took: list[int] = []
        self.cadence = None
        self.established = False
        self.served = None
        self.flood = None

    def fold(self) -> None:
        """Fold the buffered sizes and response times into the relationship."""
        if self.sizes:
            fold_moments(self.rel.sizes, self.sizes)
        if self.took:
            fold_moments(self.rel.response_us, self.took)

    def address_set(self, action: str, space: str) -> Ranges | None:
        """The relationship's address set of ``(action, space)``, None if never made."""
        if space == self.ranges_space and action == self.ranges_action:
            return self.ranges
        found = self.rel.addresses.get((action, space))
        if found is not None:
            self.ranges_action, self.ranges_space, self.ranges = action, space, found
        return found


# Protocols of the IT side: no OT relationship models run on them.
IT_PROTOCOLS = frozenset({"tls", "tcp", "udp", "http", "dns"})


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
        self.first_seen = _NEVER
        self.last_seen = -_NEVER
        self._cache: dict[tuple, Entry] = {}
        # flow -> {service: [(src ip, dst ip, protocol, kind, sub-function,
        # Entry)]}: a shortcut to _cache's entries (see cached_in_flow),
        # emptied with it.
        self._flow_entries: dict = {}
        self.learned_until: float | None = None
        self.messages = 0
        self.clock = StreamClock()
        # IP -> {MAC: [first, last]}, learned by otdpi.learner.links.
        self.macs: dict[str, dict[str, list]] = {}
        # server -> {(space, start): [n, lo, hi]}, learned by otdpi.learner.points.
        self.points: dict[str, dict[tuple, list]] = {}

    # -- learning ---------------------------------------------------------------

    def learn(self, message: Message, values=False, cache_key=None) -> Relation:
        """Fold one message into the state; return its relationship.

        ``values`` may carry :func:`value_range` of the message and
        ``cache_key`` its :meth:`cache_key` when the caller already computed
        them (a scoring pass does).
        """
        if cache_key is None:
            cache_key = self.cache_key(message)
        entry = self._cache.get(cache_key)
        if entry is None:
            entry = self.entry(message, cache_key)
        self.learn_entry(entry, message, values)
        return entry.rel

    def learn_entry(
        self, entry: Entry, message: Message, values=False, covered=False
    ) -> None:
        """:meth:`learn` once the message's cache :class:`Entry` is known.

        ``covered`` says the caller checked that every target of the request
        is already in the relationship's address set of its action.
        """
        ts, _, _, _, _, _, _, _, _, action, targets, fields = message[:12]
        if type(targets) is not tuple or type(fields) is not dict:
            # The envelope's plain containers, which the learner's C types name.
            targets, fields = tuple(targets), dict(fields)
        if entry.request:
            self.learn_request(entry, ts, action, targets, fields, values, covered)
        else:
            self.learn_response(entry, ts, action, targets, fields, values)

    # The two halves of learn_entry, called straight from the detector's hot
    # path: every step is written out rather than called (a call costs as
    # much as a few of the steps), and the message arrives unpacked.

    def learn_request(
        self,
        entry: Entry,
        ts,
        action,
        targets,
        fields,
        values=False,
        covered=False,
        slot=False,
    ) -> None:
        """:meth:`learn_entry` of a request (any kind but ``response``);
        ``slot`` is the learned range of the values' target where the caller
        looked it up (None: there is none), else False."""
        self.messages += 1
        if ts > self.last_seen:
            self.last_seen = ts
        if ts < self.first_seen:
            self.first_seen = ts
        rel = entry.rel
        stats = entry.stats
        rel.count += 1
        if ts > rel.last:
            rel.last = ts
        elif ts < rel.first:
            rel.first = ts
        stats.count += 1
        if ts > stats.last:
            stats.last = ts
        elif ts < stats.first:
            stats.first = ts
        actions = rel.actions
        actions[action] = actions.get(action, 0) + 1
        stats.requests += 1
        clock = entry.clock
        previous = clock[0]
        clock[0] = ts
        if previous is not None and ts >= previous:
            gap = int((ts - previous) * _US)
            moments = stats.gaps
            if moments[0] == 0:
                moments[3] = moments[4] = gap
            elif gap < moments[3]:
                moments[3] = gap
            elif gap > moments[4]:
                moments[4] = gap
            moments[0] += 1
            moments[1] += gap
            moments[2] += gap * gap
        size = fields.get("length")
        if type(size) is int:
            sizes = entry.sizes
            sizes.append(size)
            if len(sizes) > 255:
                fold_moments(rel.sizes, sizes)
        if not targets:
            return
        if not covered:
            for space, start, count in targets:
                addresses = entry.address_set(action, space)
                if addresses is None:
                    addresses = rel.addresses[action, space] = Ranges()
                addresses.add(start, start + count)
        if action == "read":
            return  # a read asks; its values come back in the response
        if values is False:
            source = value_source(targets, fields)
            if source is None:
                return
            learned = rel.values
            slot = learned.get(source[0])
            if slot is None and len(learned) >= MAX_VALUE_RANGES:
                return  # full (see the caps Limitation): nothing to learn
            values = range_of(source)
        if values is not None:
            _learn_values(rel.values, values, slot)

    def learn_response(
        self, entry: Entry, ts, action, targets, fields, values=False, slot=False
    ) -> None:
        """:meth:`learn_entry` of a response; ``slot`` as in :meth:`learn_request`."""
        self.messages += 1
        if ts > self.last_seen:
            self.last_seen = ts
        if ts < self.first_seen:
            self.first_seen = ts
        rel = entry.rel
        stats = entry.stats
        rel.count += 1
        if ts > rel.last:
            rel.last = ts
        elif ts < rel.first:
            rel.first = ts
        stats.count += 1
        if ts > stats.last:
            stats.last = ts
        elif ts < stats.first:
            stats.first = ts
        actions = rel.actions
        actions[action] = actions.get(action, 0) + 1
        response_time = fields.get("response_time")
        if response_time is not None and response_time >= 0:
            took = entry.took
            took.append(int(response_time * _US))
            if len(took) > 255:
                fold_moments(rel.response_us, took)
        size = fields.get("length")
        if type(size) is int:
            sizes = entry.sizes
            sizes.append(size)
            if len(sizes) > 255:
                fold_moments(rel.sizes, sizes)
        if not targets or action != "read":
            return
        if values is False:
            source = value_source(targets, fields)
            if source is None:
                return
            learned = rel.values
            slot = learned.get(source[0])
            if slot is None and len(learned) >= MAX_VALUE_RANGES:
                return  # full (see the caps Limitation): nothing to learn
            values = range_of(source)
        if values is not None:
            _learn_values(rel.values, values, slot)

    @staticmethod
    def cache_key(message: Message) -> tuple:
        """The key of a message's (relationship, service) in the lookup cache."""
        # Not the flow id: polling that opens a connection per cycle would miss.
        return (
            message.src.ip,
            message.dst.ip,
            message.protocol,
            message.kind,
            message.service,
            message.fields.get("sub_function_name"),
        )

    def cached(self, cache_key: tuple) -> Entry | None:
        """The :class:`Entry` already looked up for this key, if any."""
        return self._cache.get(cache_key)

    def cached_in_flow(self, flow, src_ip, dst_ip, protocol, kind, service, sub):
        """:meth:`cached` of the key ``(src_ip, ..., sub)`` of a message of
        ``flow``, without building and hashing that key for a repeat.

        A flow's endpoint and name strings are the same objects from message to
        message, so its entries are kept by flow and service and matched by
        identity; a match is an equal key, so it finds what :meth:`cached`
        would, whichever flow numbering the caller uses.
        """
        flows = self._flow_entries
        services = flows.get(flow)
        if services is not None:
            known = services.get(service)
            if known is not None:
                for candidate in known:
                    seen = cython.cast(tuple, candidate)
                    if (
                        seen[0] is src_ip
                        and seen[1] is dst_ip
                        and seen[2] is protocol
                        and seen[3] is kind
                        and seen[4] is sub
                    ):
                        return seen[5]
        entry = self._cache.get((src_ip, dst_ip, protocol, kind, service, sub))
        if entry is not None:
            if services is None:
                if len(flows) >= MAX_FLOWS_KEPT:
                    flows.clear()
                services = flows[flow] = {}
            known = services.get(service)
            if known is None:
                known = services[service] = []
            if len(known) < 8:
                known.append((src_ip, dst_ip, protocol, kind, sub, entry))
        return entry

    def entry(self, message: Message, cache_key: tuple) -> Entry:
        """Look up (making them if new) the relationship and service of a message,
        and cache them under ``cache_key``."""
        ts = message.ts
        protocol = message.protocol
        sub = cache_key[5]
        if message.kind == "response":
            client, server = message.dst.ip, message.src.ip
        else:
            client, server = message.src.ip, message.dst.ip
        key = (client, server, protocol)
        rel = self.relations.get(key)
        if rel is None:
            rel = self.relations[key] = Relation(ts)
            self._link(client, server, protocol, ts)
        name = f"{message.service}/{sub}" if isinstance(sub, str) else message.service
        stats = rel.services.get(name)
        if stats is None:
            if len(rel.services) >= MAX_SERVICES:
                name = "(other)"
                stats = rel.services.get(name)
            if stats is None:
                stats = rel.services[name] = ServiceStats(ts)
        clock_key = (key, name)
        kind = message.kind
        entry = Entry(
            rel,
            stats,
            clock_key,
            self.clock.cell(clock_key),
            kind != "response",
            protocol not in IT_PROTOCOLS
            and not (kind == "event" and message.service == "connection")
            and name == service_key(message),
            kind != "response" and kind != "event" and protocol not in IT_PROTOCOLS,
        )
        if len(self._cache) > 200_000:
            self.flush()
            self._cache.clear()
            self._flow_entries.clear()
        self._cache[cache_key] = entry
        return entry

    @property
    def first(self) -> float | None:
        return None if self.first_seen == _NEVER else self.first_seen

    @first.setter
    def first(self, value: float | None) -> None:
        self.first_seen = _NEVER if value is None else value

    @property
    def last(self) -> float | None:
        return None if self.last_seen == -_NEVER else self.last_seen

    @last.setter
    def last(self, value: float | None) -> None:
        self.last_seen = -_NEVER if value is None else value

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

    def flush(self) -> None:
        """Fold what the lookup cache buffers (sizes, response times) into the
        relations; done before the state is serialised, merged or finished."""
        for entry in self._cache.values():
            if entry.sizes or entry.took:
                entry.fold()

    def finish(self) -> None:
        """Bring the device index up to date with the relations (counts, last seen)."""
        self.flush()
        for dev in self.devices.values():
            for slot in dev.protocols.values():
                slot[0] = 0
            for slot in dev.peers.values():
                slot[0] = slot[1] = 0
        for (client, server, protocol), rel in self.relations.items():
            for ip, role, peer, index in (
                (client, "client", server, 0),
                (server, "server", client, 1),
            ):
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
        self.flush()
        other.flush()
        self._cache.clear()
        self._flow_entries.clear()
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
            self.first = (
                other.first if self.first is None else min(self.first, other.first)
            )
            self.last = other.last if self.last is None else max(self.last, other.last)
        if other.learned_until is not None:
            self.learned_until = (
                other.learned_until
                if self.learned_until is None
                else max(self.learned_until, other.learned_until)
            )
        self.messages += other.messages
        merge_macs(self.macs, other.macs)
        merge_points(self.points, other.points)
        self.finish()
        return self

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_json` reads it back."""
        self.flush()
        return {
            "format": FORMAT,
            "first": self.first,
            "last": self.last,
            "learned_until": self.learned_until,
            "messages": self.messages,
            "devices": {ip: d.to_json() for ip, d in sorted(self.devices.items())},
            "relations": [
                [c, s, p, r.to_json()]
                for (c, s, p), r in sorted(self.relations.items())
            ],
            "macs": {
                ip: dict(sorted(macs.items())) for ip, macs in sorted(self.macs.items())
            },
            "points": points_to_json(self.points),
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
        base.relations = {
            (c, s, p): Relation.from_json(r) for c, s, p, r in data["relations"]
        }
        # Optional: documents written before the MAC bindings were learned lack it.
        base.macs = {
            ip: {mac: list(slot) for mac, slot in macs.items()}
            for ip, macs in data.get("macs", {}).items()
        }
        base.points = points_from_json(data.get("points", {}))
        return base

    def device_state_size(self, ip: str) -> int:
        """Bytes of compact JSON of a device's index and of the relationships it serves.

        Each relationship is counted once, with its server: what is done to a
        device is that device's baseline.
        """
        import json

        self.flush()
        parts = [self.devices[ip].to_json()] if ip in self.devices else []
        parts += [r.to_json() for (_, s, _), r in self.relations.items() if s == ip]
        return len(json.dumps(parts, separators=(",", ":")))
