"""Cuts one direction of a byte stream into protocol units, resynchronising after junk.

Every stream protocol (Modbus/TCP, TPKT, DICOM UL, HSMS, MLLP...) frames its
units with a header that says how long the unit is. A protocol gives the framer
one function, ``measure(buf, pos)``, that looks at a header and answers:

* ``n > 0``: a plausible unit of ``n`` bytes starts at ``pos``;
* ``0``: too few bytes at ``pos`` to tell;
* ``-1``: no unit can start at ``pos``.

On ``-1`` the framer walks forward a byte at a time until ``measure`` accepts a
position again, and reports the bytes it passed over as :class:`Skipped`, so
that junk, a capture gap or a lying length costs the bytes it spoils and never
the rest of the stream. How strict ``measure`` is decides how quickly a false
start is left behind; the buffer cap bounds memory whatever the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

Measure = Callable[[bytes, int], int]


class Skipped(NamedTuple):
    """Bytes passed over while looking for the next unit, and why."""

    size: int
    reason: str


class Framer:
    """Per-direction unit framer with a bounded buffer.

    Parameters
    ----------
    measure
        the protocol's header check, as described in the module docstring.
    max_unit
        the largest unit accepted; a header declaring more is treated as junk.

    Attributes
    ----------
    pending
        the bytes held waiting for the rest of a unit (read it, never change
        it); empty most of the time, which lets a dissector hand a segment
        holding exactly one whole unit straight to its decoder.
    """

    __slots__ = ("_measure", "pending", "_awaiting", "max_unit")

    def __init__(self, measure: Measure, max_unit: int = 65536) -> None:
        self._measure = measure
        self.pending = bytearray()
        # Size of the partial unit being collected, so that a large unit
        # arriving in small pieces is appended, not re-measured and re-copied.
        self._awaiting = 0
        self.max_unit = max_unit

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a unit."""
        return len(self.pending)

    def reset(self) -> int:
        """Forget any partial unit (after a gap); return how many bytes were dropped."""
        dropped = len(self.pending)
        self.pending = bytearray()
        self._awaiting = 0
        return dropped

    def feed(self, data: bytes) -> list[bytes | Skipped]:
        """Append ``data``; return complete units and skipped runs, in stream order."""
        pending = self.pending
        if pending:
            pending += data
            if len(pending) < self._awaiting:
                return []
            buf = bytes(pending)
        else:
            buf = data
        measure = self._measure
        out: list[bytes | Skipped] = []
        pos = 0
        end = len(buf)
        skip_from = -1
        while pos < end:
            size = measure(buf, pos)
            if size > self.max_unit:
                size = -1
            if size < 0:
                if skip_from < 0:
                    skip_from = pos
                pos += 1
                continue
            if skip_from >= 0:
                out.append(Skipped(pos - skip_from, "no unit header at this offset"))
                skip_from = -1
            if size == 0 or pos + size > end:
                self._awaiting = size
                break
            out.append(buf[pos : pos + size])
            pos += size
        if skip_from >= 0:
            out.append(Skipped(pos - skip_from, "no unit header at this offset"))
        if pos < end:
            self.pending = bytearray(buf[pos:])
        else:
            self.pending = bytearray()
            self._awaiting = 0
        return out


def gap_report(framer: Framer, unit: str) -> tuple[int, str] | None:
    """Empty ``framer`` after a capture gap: (bytes dropped, reason), None if it held none.

    ``unit`` names what the bytes were part of ("ADU", "frame", "message").
    """
    dropped = framer.reset()
    if not dropped:
        return None
    return dropped, f"capture gap: dropped {dropped} bytes of an unfinished {unit}"


def end_reports(framers: dict[bool, Framer], unit: str) -> list[tuple[bool, int, str]]:
    """Empty both directions' framers as the flow ends.

    One ``(to_server, bytes left, reason)`` per direction that held bytes, the
    direction towards the server first.
    """
    out = []
    for to_server in (True, False):
        left = framers[to_server].reset()
        if left:
            out.append(
                (to_server, left, f"flow ended with {left} bytes of an unfinished {unit}")
            )
    return out

