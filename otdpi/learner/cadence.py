"""Finds periodic request streams that stop, or change their cadence, in front of us.

Strategy
--------
Each service of a relationship whose requests are periodic (at least 8
learned gaps with a coefficient of variation of at most 0.25, see
:meth:`~otdpi.learner.baseline.ServiceStats.period`) is looked at once per
second of capture time (or of wall-clock time in a live watch, through
``Detector.tick``):

* ``ot/cadence-stop``: it was polled in this run and has been silent for 10
  periods (and at least 30 s);
* ``ot/cadence-change``: its last 8 requests came at a quarter or four times
  its period (re-raised at every look while it lasts, as repeats).

The period compared with is the one last seen steady, so that a flood or a
stall that is being learned does not erase the period it departs from.

Looking at a service changes nothing while nothing of it changes, so a sweep
looks only at the services that can answer differently than at the last one:
those learned since (``dirty``), those whose silence may have become a stop
(their deadline in ``due`` has come; early is harmless) and those whose
cadence was off. The first sweep, and the first after a new capture, look at
every service. The findings are given in the order of the relations and
their services, as a sweep of every service would give them.

Only the baseline's relations and service statistics are read; the request
times of this run are the detector's, kept here per service.
"""

from __future__ import annotations

import heapq

from otdpi.learner.baseline import IT_PROTOCOLS

RECENT = 8  # request times kept per service for the cadence-change test


class Cadence:
    """The run state of one service's requests: ``key`` is its clock key
    ``((client, server, protocol), service)`` and ``stats`` its statistics.

    ``times`` holds the last :data:`RECENT` request times of this run, a ring
    filled in turn (``count`` requests so far; 0: none yet), ``period`` the
    period last seen steady, ``stopped``
    whether its stop was reported, ``off`` whether its cadence was off at
    the last look, ``dirty`` whether it was learned since the last sweep and
    ``deadline`` the time of its look waiting in the heap (None: none).
    """

    __slots__ = (
        "count",
        "deadline",
        "dirty",
        "key",
        "off",
        "period",
        "rank",
        "stats",
        "stopped",
        "times",
    )

    def __init__(self, key: tuple, stats) -> None:
        self.key = key
        self.stats = stats
        self.times = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # RECENT of them
        self.count = 0
        self.period = None
        self.stopped = False
        self.off = False
        self.dirty = False
        self.deadline = None
        self.rank = None  # where a sweep of every service comes to it

    def note(self, ts: float) -> None:
        """A request of this service at ``ts``."""
        self.times[self.count % RECENT] = ts
        self.count += 1

    def recent_mean(self) -> float:
        """Mean interval of the recent request times (at least two)."""
        count = self.count
        newest = self.times[(count - 1) % RECENT]
        if count < RECENT:
            return (newest - self.times[0]) / (count - 1)
        return (newest - self.times[count % RECENT]) / (RECENT - 1)

    def departing(self, period: float) -> bool:
        """Whether the recent requests are off the period last seen steady."""
        remembered = self.period
        if remembered is None or self.count < 2:
            return False
        mean = self.recent_mean()
        return not remembered / 4 <= mean <= remembered * 4


class CadenceWatch:
    """The cadence models over all services; :meth:`sweep` gives their findings."""

    __slots__ = ("by_key", "dirty", "due", "everything", "off", "order")

    def __init__(self) -> None:
        self.by_key: dict[tuple, Cadence] = {}
        self.dirty: list[Cadence] = []  # learned since the last sweep
        self.off: set[Cadence] = set()  # cadence off at the last look
        self.due: list[tuple[float, tuple]] = []  # heap of (deadline, key)
        self.order: dict[tuple, tuple[int, int]] = {}  # key -> (relation, service)
        self.everything = True  # the next sweep looks at every service

    def of(self, key: tuple, stats) -> Cadence:
        """The run state of the service ``key`` (whose statistics are ``stats``)."""
        cadence = self.by_key.get(key)
        if cadence is None:
            cadence = self.by_key[key] = Cadence(key, stats)
        return cadence

    def new_capture(self) -> None:
        """A new capture starts: its request times are its own."""
        for cadence in self.by_key.values():
            cadence.count = 0
        self.everything = True

    def sweep(self, relations: dict, ts: float) -> list[tuple]:
        """Look at what can have changed; the findings, each the arguments of
        the detector's ``_raise_at``."""
        if self.everything:
            self.everything = False
            chosen = [
                self.of((rel_key, name), stats)
                for rel_key, rel in relations.items()
                if rel_key[2] not in IT_PROTOCOLS
                for name, stats in rel.services.items()
            ]
            self.order.clear()
            for cadence in self.by_key.values():
                cadence.rank = None
        else:
            picked = set(self.off)
            picked.update(self.dirty)
            due = self.due
            while due and due[0][0] <= ts:
                deadline, key = heapq.heappop(due)
                cadence = self.by_key.get(key)
                if cadence is not None and cadence.deadline == deadline:
                    cadence.deadline = None
                    picked.add(cadence)
            chosen = list(picked)
        for cadence in self.dirty:
            cadence.dirty = False
        self.dirty.clear()
        # A look changes its own service's state only, so the services can be
        # looked at in any order; the findings come out in the full sweep's.
        findings = []
        for cadence in chosen:
            found = self.look(cadence, ts)
            if found is not None:
                rank = cadence.rank
                if rank is None:
                    rank = cadence.rank = self._rank(cadence.key, relations)
                # The count keeps two equal ranks from comparing findings.
                findings.append((rank, len(findings), found))
        if len(findings) > 1:
            findings.sort()
        return [found for _, _, found in findings]

    def _rank(self, key: tuple, relations: dict) -> tuple[int, int]:
        """Where a sweep of every service comes to ``key``: (relation, service)."""
        order = self.order
        rank = order.get(key)
        if rank is None:
            for i, (rel_key, rel) in enumerate(relations.items()):
                for j, name in enumerate(rel.services):
                    order[rel_key, name] = (i, j)
            rank = order.get(key, (len(order), 0))
        return rank

    def look(self, cadence: Cadence, ts: float) -> tuple | None:
        """One service's look in a sweep: a finding, if any."""
        (client, server, protocol), name = key = cadence.key
        if protocol in IT_PROTOCOLS:
            return None
        stats = cadence.stats
        if cadence.off:
            cadence.off = False
            self.off.discard(cadence)
        if stats.requests < 10:
            return None
        period = stats.period()
        if period is None or cadence.stopped:
            if cadence.period is not None:
                period = cadence.period
        elif not cadence.departing(period):
            cadence.period = period
        if period is None:
            return None
        if cadence.count == 0:
            return None  # not polled in this run: nothing stopped in front of us
        silent = ts - stats.last
        limit = max(10 * period, period + 30.0)
        if silent > limit:
            if cadence.stopped:
                return None
            cadence.stopped = True
            return (
                ts,
                stats.last,
                "ot/cadence-stop",
                (client, server, protocol, name),
                60,
                f"{client} stopped polling {server} ({protocol} {name}, "
                f"every {period:.1f} s until {describe_span(silent)} ago)",
                _evidence(client, server, protocol, name),
                (),
            )
        cadence.stopped = False
        # Looked at again when the silence may pass the limit (a little early,
        # so that rounding never makes it late). A deadline already waiting
        # that comes no later stays: looking early is harmless, and that look
        # pushes the deadline of its time. So a service polled without a break
        # pushes one deadline per limit, not one per sweep.
        deadline = stats.last + limit * (1 - 1e-9) - 1e-6
        waiting = cadence.deadline
        if waiting is None or deadline < waiting:
            cadence.deadline = deadline
            heapq.heappush(self.due, (deadline, key))
        if cadence.count < RECENT:
            return None
        mean = cadence.recent_mean()
        if period / 4 <= mean <= period * 4:
            return None
        cadence.off = True
        self.off.add(cadence)
        return (
            ts,
            cadence.times[(cadence.count - 1) % RECENT],
            "ot/cadence-change",
            (client, server, protocol, name),
            50,
            f"{client} polls {server} ({protocol} {name}) every {mean:.2f} s;"
            f" learned period {period:.2f} s",
            _evidence(client, server, protocol, name),
            (),
        )


def _evidence(client: str, server: str, protocol: str, service: str) -> dict:
    return {"client": client, "server": server, "protocol": protocol, "service": service}


def describe_span(seconds: float) -> str:
    """A duration as a person says it: seconds, minutes, hours or days."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"
