"""Learns the values each server is seen holding at each address; scores writes by them.

Strategy
--------
The per-relationship value ranges of :mod:`otdpi.learner.baseline` only know
what one client read or wrote. A setpoint that an HMI polls and that nobody
writes has no written range; an attacker writing it from a new client has
none either. Here values are learned per *server* and address, whoever read
or wrote them: from read responses (the server holds the value) and write
requests (the server is told to hold it), through the field convention
``fields["item_values"]``: a list aligned with ``targets``, one int (or
None) per target.

A write is out of range when the address was seen at least
:data:`POINT_MIN_OBSERVATIONS` times and the value lies outside the learned
``[lowest, highest]`` widened by half its span (at least 1): a setpoint
polled as constant and then written with another value is reported, a
measurement that moves within its band is not. Reads are not scored here:
polled measurements and state bits move, and a short baseline would not
hold their range (the per-relationship model scores them once it has seen
20).

The state is baseline data (``Baseline.points``: server to
``{(space, start): [n, lowest, highest]}``), learned in both modes and
merged by sum, min and max.
"""

from __future__ import annotations

POINT_MIN_OBSERVATIONS = 3
MAX_POINTS_PER_SERVER = 4096  # addresses kept per server; more are not learned


def _server_of(m) -> str | None:
    """The server whose holding the message's values describe, or None."""
    kind = m.kind
    if kind == "response":
        return m.src.ip if m.action == "read" else None
    if kind == "request" and m.action == "write":
        return m.dst.ip
    return None


class PointValues:
    """Values per server and address, learned into a baseline's ``points`` table."""

    __slots__ = ("points",)

    def __init__(self, points: dict[str, dict[tuple, list]]) -> None:
        self.points = points

    def learn(self, m) -> None:
        """Fold the ``item_values`` of one message in, if it carries any."""
        values = m.fields.get("item_values")
        if values is None:
            return
        server = _server_of(m)
        if server is None:
            return
        table = self.points.get(server)
        if table is None:
            table = self.points[server] = {}
        for target, value in zip(m.targets, values):
            if type(value) is not int:
                continue
            key = (target[0], target[1])
            slot = table.get(key)
            if slot is None:
                if len(table) < MAX_POINTS_PER_SERVER:
                    table[key] = [1, value, value]
                continue
            slot[0] += 1
            if value < slot[1]:
                slot[1] = value
            elif value > slot[2]:
                slot[2] = value

    def check(self, m) -> list[tuple] | None:
        """Findings for written values outside what the server held; learns them."""
        values = m.fields.get("item_values")
        if values is None:
            return None
        found = None
        if m.kind == "request" and m.action == "write":
            server = m.dst.ip
            table = self.points.get(server)
            if table is not None:
                for target, value in zip(m.targets, values):
                    if type(value) is not int:
                        continue
                    slot = table.get((target[0], target[1]))
                    if slot is None or slot[0] < POINT_MIN_OBSERVATIONS:
                        continue
                    n, lo, hi = slot
                    margin = max(1, (hi - lo) // 2)
                    if lo - margin <= value <= hi + margin:
                        continue
                    held = f"{lo:#x}" if lo == hi else f"{lo:#x}\u2013{hi:#x}"
                    found = found or []
                    found.append(
                        (
                            "ot/value-out-of-range",
                            (server, target[0], target[1]),
                            60,
                            (
                                f"{m.src.ip} wrote {value:#x} to {target[0]} "
                                f"{target[1]} on {server}; the server was seen "
                                f"holding {held} there over {n} messages"
                            ),
                            {
                                "targets": [list(target)],
                                "value": value,
                                "learned": [lo, hi, n],
                            },
                        )
                    )
        self.learn(m)
        return found


def merge_points(into: dict[str, dict[tuple, list]], other: dict) -> None:
    """Fold point tables ``other`` into ``into``: counts add, min and max."""
    for server, table in other.items():
        mine = into.get(server)
        if mine is None:
            mine = into[server] = {}
        for key, (n, lo, hi) in table.items():
            slot = mine.get(key)
            if slot is None:
                mine[key] = [n, lo, hi]
            else:
                slot[0] += n
                slot[1] = min(slot[1], lo)
                slot[2] = max(slot[2], hi)


def points_to_json(points: dict[str, dict[tuple, list]]) -> dict[str, list]:
    """``{server: [[space, start, n, lowest, highest], ...]}``, sorted."""
    return {
        server: [[s, a, *v] for (s, a), v in sorted(table.items())]
        for server, table in sorted(points.items())
    }


def points_from_json(data: dict[str, list]) -> dict[str, dict[tuple, list]]:
    """The inverse of :func:`points_to_json`."""
    return {
        server: {(s, a): [n, lo, hi] for s, a, n, lo, hi in rows}
        for server, rows in data.items()
    }
