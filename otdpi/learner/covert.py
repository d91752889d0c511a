"""Finds polled or written values that carry a data stream instead of a process: a covert channel.

Strategy
--------
Process values (a level, a setpoint, a state, a counter) repeat, move a
little between two polls, ramp or count. Data hidden in registers (a file
exfiltrated through read responses, commands smuggled in writes) changes
completely at every poll and spreads evenly over the register's width. The
values of each *value stream* (one relationship, target and unit id, reads
and writes apart: what one client reads from, or writes to, one block of one
device) are gathered in windows of :data:`WINDOW` consecutive messages, and
each window is judged: a register looks like data when, within the window,

* nearly all its values are distinct (:data:`DISTINCT`),
* they span at least :data:`SPAN` (ten bits),
* a step between two polls covers on average at least :data:`JUMP` of
  that span (no continuity),
* the steps go up and down alike (:data:`MONOTONE`: not a ramp),
* the steps taken modulo the register's width vary (:data:`STEADY`: not a
  counter that wraps), and
* a value wider than 16 bits does not read as a steady IEEE float (an S7
  REAL read as an integer is a measurement, however noisy its bits).

A window is data-like when its block has at least :data:`MIN_REGISTERS`
registers and at least :data:`BLOCK_SHARE` of them look like data: a float
pair (a smooth high word, a noisy low word) is half data-like and stays out.

The verdicts are counted into the baseline per relationship and target
(``Relation.carriers``: ``[data windows, process windows, first data]``),
so what a stream did while learning is known. A stream judged process-like
is then judged less and less often (every 2nd, 4th, ... up to every
:data:`MAX_SKIP` + 1st window), which keeps the cost of steady polling low.

Only the Message envelope is read: the values of the field convention of
:func:`~otdpi.learner.baseline.value_source` and ``fields["unit_id"]``, the
device behind a gateway (a stream per unit, since a gateway's units take
turns in one stream).
"""

from __future__ import annotations

import math
import struct

WINDOW = 32  # consecutive messages of a stream judged together
MIN_REGISTERS = 2  # a narrower block is never judged
BLOCK_SHARE = 0.75  # share of a block's registers that must look like data
DISTINCT = 0.8  # share of distinct values in the window
SPAN = 512  # lowest span of the values (ten bits)
JUMP = 0.2  # mean step between polls over the span
MONOTONE = 0.8  # highest share of the changing steps going the same way
STEADY = 0.35  # lowest coefficient of variation of the steps modulo the width
MAX_SKIP = 15  # windows a stream judged process-like skips at most
MAX_STREAMS = 65536  # streams followed at once; all are dropped beyond

# Limitation: white noise at least ten bits wide on every register of a block
# (raw ADC counts of a floating input, float vibration or waveform samples)
# looks like data to these tests and would alert once a day until accepted;
# no public capture holds such a block, so the rule is measured against none.
# A stream is judged in windows of consecutive messages, and less often once it
# looked like a process (at most every 16th window: 512 messages), so a channel
# that starts in a long-quiet stream is found up to that much later; only the
# first 128 targets of a relationship with values are followed (the value
# ranges' cap), and a target from its second message in a capture on.

_FLOAT = struct.Struct(">f")
_WORD = struct.Struct(">I")


class Stream:
    """The run state of one value stream: the values of the window being
    gathered (``rows``), how many messages to let pass before the next
    window (``wait``) and how many windows to skip after a process-like one
    (``skip``). It is the stream of one ``unit`` (the ``unit_id`` of its
    messages); the streams of the other units of the same target, behind the
    same gateway, hang from it in ``others``."""

    __slots__ = ("others", "rows", "skip", "unit", "wait")

    def __init__(self, unit=None) -> None:
        self.unit = unit
        self.rows: list = []
        self.wait = 0
        self.skip = 0
        self.others: dict | None = None

    def of_unit(self, unit) -> Stream:
        """The stream of the same target for another unit."""
        others = self.others
        if others is None:
            others = self.others = {}
        stream = others.get(unit)
        if stream is None:
            stream = others[unit] = Stream(unit)
        return stream

    def add(self, values: list) -> list | None:
        """Gather one message's values; the window's rows once it is full."""
        if self.wait:
            self.wait -= 1
            return None
        rows = self.rows
        rows.append(values)
        if len(rows) < WINDOW:
            return None
        self.rows = []
        return rows

    def judged(self, data: bool) -> None:
        """The window was data-like (judge the next one) or not (back off)."""
        if data:
            self.skip = 0
        else:
            self.skip = min(2 * self.skip + 1, MAX_SKIP)
        self.wait = self.skip * WINDOW


def judge(rows: list) -> tuple[int, int, int]:
    """``(data-like registers, registers, widest span in bits)`` of a window.

    A window whose rows differ in length, or hold anything but ints, has no
    data-like register. Registers are looked at in order until the block
    can no longer be data-like, so the count is exact only for a block that
    is.
    """
    width = len(rows[0])
    for row in rows:
        if len(row) != width:
            return 0, width, 0
        for value in row:
            if type(value) is not int:
                return 0, width, 0
    data = 0
    bits = 0
    needed = BLOCK_SHARE * width
    for register in range(width):
        if data + width - register < needed:
            break  # too few registers left to make the block data-like
        column = [row[register] for row in rows]
        lowest, highest = min(column), max(column)
        span = highest - lowest
        bits = max(bits, span.bit_length())
        if _looks_like_data(column, lowest, highest, span):
            data += 1
    return data, width, bits


def is_data(data: int, width: int) -> bool:
    """Whether a window with ``data`` of ``width`` registers like data carries data."""
    return width >= MIN_REGISTERS and data >= BLOCK_SHARE * width


def _looks_like_data(column: list, lowest: int, highest: int, span: int) -> bool:
    if span < SPAN or len(set(column)) < DISTINCT * len(column):
        return False
    steps = len(column) - 1
    travelled = 0
    ups = downs = 0
    for a, b in zip(column, column[1:]):
        if b > a:
            ups += 1
            travelled += b - a
        elif b < a:
            downs += 1
            travelled += a - b
    if travelled < JUMP * span * steps:
        return False
    if max(ups, downs) > MONOTONE * (ups + downs):
        return False
    if lowest < 0:
        return True  # a signed value: no register width to wrap around
    modulus = 1 << max(16, highest.bit_length())
    wrapped = [(b - a) % modulus for a, b in zip(column, column[1:]) if b != a]
    mean = sum(wrapped) / len(wrapped)
    squares = 0.0
    for step in wrapped:
        squares += (step - mean) ** 2
    if math.sqrt(squares / len(wrapped)) < STEADY * mean:
        return False
    if highest >= 1 << 16 and highest < 1 << 32 and _steady_float(column):
        return False
    return True


def _steady_float(column: list) -> bool:
    """Whether 32-bit values read as IEEE floats are finite and within half
    of their largest magnitude of each other: a REAL measurement."""
    floats = [_FLOAT.unpack(_WORD.pack(value))[0] for value in column]
    if not all(math.isfinite(f) for f in floats):
        return False
    largest = max(abs(f) for f in floats)
    return largest > 0 and max(floats) - min(floats) <= 0.5 * largest
