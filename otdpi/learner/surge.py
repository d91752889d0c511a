"""Finds request floods: a sender's message rate to one peer surging past its learned rate.

Strategy
--------
Messages that are not responses (requests, unsolicited reports) are counted
per ``(sender, receiver, protocol)`` in fixed windows of
:data:`FLOOD_WINDOW` seconds. A window alerts, once, when its count reaches
a limit: :data:`FLOOD_FACTOR` times the sender's learned mean rate on that
relationship, and never less than :data:`FLOOD_MIN_RATE` per second, the
floor that also applies to a relationship with no learned rate (new, or
learned for under a window). Industrial polling sends a few messages a
second at most; a flood of writes, freezes, confirms or replayed requests
sends tens to hundreds.

The learned rate is read once per relationship and run (the
relationship's requests over its learned span), so a flood that is being
learned does not raise the bar it is measured against.

Only the Message envelope is read: the sender, receiver, protocol, kind and
action.
"""

from __future__ import annotations

from otdpi.learner.baseline import Baseline

FLOOD_WINDOW = 10.0  # seconds per counting window
# Messages per second below which nothing is a flood: above the fastest benign
# pollers of the public captures (21-24/s, Modbus and S7comm-plus HMIs), below
# the slowest flood of the QUT captures (44/s).
FLOOD_MIN_RATE = 30.0
FLOOD_FACTOR = 10.0  # times the learned mean rate that make a flood
MAX_SENDERS = 65536  # counters kept at once; all are dropped beyond (a new start)

_WRITING = frozenset({"write", "control", "program"})


class FloodWindow:
    """The counting window of one ``(sender, receiver, protocol)``.

    ``start`` and ``count`` describe the window in progress, ``left`` the
    count that completes a flood in it (infinite once it has), ``writes``
    the writes and commands among the messages, and ``limit`` the flood
    count of a fresh window. ``generation`` is the :class:`FloodCounter`'s
    when it was made: a cached window of an older generation is stale.
    """

    __slots__ = ("start", "count", "left", "writes", "limit", "generation")

    def __init__(self, ts: float, limit: float, generation: int) -> None:
        self.start = ts
        self.count = 0
        self.left = limit
        self.writes = 0
        self.limit = limit
        self.generation = generation


class FloodCounter:
    """Per-relationship message counts in fixed windows, against learned rates.

    :meth:`observe` returns a finding tuple (as the detector's models build
    them) for the message that makes a window reach its limit, else None.
    The detector's fast path keeps each relationship's :class:`FloodWindow`
    in its lookup cache entry and counts through :meth:`count` directly.
    """

    __slots__ = ("by_sender", "generation", "limits", "windows")

    def __init__(self) -> None:
        self.windows: dict[tuple, FloodWindow] = {}
        # id(sender Endpoint) -> (sender, receiver, protocol, window): a flow's
        # Endpoint objects are reused by all its messages, so this skips
        # building the key (the identity tests guard a reused id).
        self.by_sender: dict[int, tuple] = {}
        # key -> learned mean rate (messages/s), read once per run; None: none
        self.limits: dict[tuple, float] = {}
        # Bumped when the windows are dropped (see MAX_SENDERS).
        self.generation = 0

    def limit_of(self, key: tuple, base: Baseline) -> float:
        """Messages per window that make a flood on ``key``."""
        limit = self.limits.get(key)
        if limit is None:
            rate = 0.0
            rel = base.relations.get(key)
            learned = base.learned_until
            if rel is not None and learned is not None and rel.first <= learned:
                span = min(rel.last, learned) - rel.first
                if span >= FLOOD_WINDOW:
                    requests = 0
                    for stats in rel.services.values():
                        requests += stats.requests
                    rate = requests / max(span, rel.last - rel.first)
            limit = max(FLOOD_MIN_RATE, FLOOD_FACTOR * rate) * FLOOD_WINDOW
            self.limits[key] = limit
        return limit

    def window(self, sender: str, receiver: str, protocol: str, ts: float, base):
        """The window of ``(sender, receiver, protocol)``, made at ``ts`` if new."""
        key = (sender, receiver, protocol)
        window = self.windows.get(key)
        if window is None:
            if len(self.windows) >= MAX_SENDERS:
                self.windows.clear()
                self.by_sender.clear()
                self.generation += 1
            window = self.windows[key] = FloodWindow(
                ts, self.limit_of(key, base), self.generation
            )
        return window

    def observe(self, m, base: Baseline):
        """Count one non-response OT message; a finding when it completes a flood."""
        src = m.src
        cached = self.by_sender.get(id(src))
        if (
            cached is not None
            and cached[0] is src
            and cached[1] is m.dst
            and cached[2] == m.protocol
            and cached[3].generation == self.generation
        ):
            window = cached[3]
        else:
            window = self.window(src.ip, m.dst.ip, m.protocol, m.ts, base)
            if len(self.by_sender) >= MAX_SENDERS:
                self.by_sender.clear()
            self.by_sender[id(src)] = (src, m.dst, m.protocol, window)
        return self.count(m, window, m.ts, m.action)

    def count(self, m, window: FloodWindow, ts: float, action: str):
        """Count ``m`` (at ``ts``, of ``action``) in its window; a finding when it
        completes a flood, else None."""
        if ts - window.start >= FLOOD_WINDOW or ts < window.start:
            window.start = ts
            window.count = 0
            window.left = window.limit
            window.writes = 0
        window.count += 1
        if action in _WRITING:
            window.writes += 1
        if window.count < window.left:
            return None
        return self._finding(m, window, ts)

    def _finding(self, m, window: FloodWindow, ts: float):
        window.left = float("inf")  # one finding per window
        elapsed = max(ts - window.start, 1e-6)
        rate = window.count / elapsed
        key = (m.src.ip, m.dst.ip, m.protocol)
        learned = window.limit / FLOOD_WINDOW / FLOOD_FACTOR
        writes = window.writes * 2 >= window.count
        extra = ("T0806",) if writes else ()
        what = "writes or commands" if writes else "messages"
        if learned * FLOOD_FACTOR > FLOOD_MIN_RATE:
            bar = f"learned rate {learned:.2f}/s"
        else:
            bar = f"no learned rate above {FLOOD_MIN_RATE / FLOOD_FACTOR:.0f}/s"
        return (
            "ot/request-flood",
            key,
            80 if writes else 70,
            (
                f"{m.src.ip} sent {window.count} {m.protocol} {what} to {m.dst.ip} in "
                f"{elapsed:.1f} s ({rate:.0f}/s; {bar}), last {m.service}"
            ),
            {"extra": extra, "rate": round(rate, 1), "count": window.count},
        )
