"""DNP3 transport function (IEEE 1815-2012 clause 8): segments into fragments.

Each link frame's user data starts with one transport octet: FIN (last segment
of a fragment), FIR (first segment) and a 6-bit sequence number that counts
up by one per segment, wrapping from 63 to 0. The rest of the user data is a
piece of an application fragment.

Reassembly rules kept here, from clause 8.2: a FIR segment always starts a new
fragment (a partial one before it is dropped); a following segment must carry
the next sequence number; one carrying the same number as the previous
segment is a link-layer retransmission and is ignored; any other number
drops the partial fragment; a segment without FIR and with no fragment under
way is dropped. Each (source, destination) address pair of each direction
has its own reassembly, so several masters on one flow stay apart.
"""

from __future__ import annotations

from typing import NamedTuple

import construct as cs

FIN = 0x80
FIR = 0x40
SEQUENCE_MASK = 0x3F

# The standard caps a fragment at 2048 octets by default but lets devices
# configure more; beyond this a fragment is dropped, bounding memory.
MAX_FRAGMENT = 65536
# Address pairs tracked per flow; a flood of forged addresses cannot grow
# memory beyond this (the oldest reassembly is dropped first).
MAX_REASSEMBLIES = 256

TRANSPORT_HEADER = cs.BitStruct(
    "fin" / cs.Flag,
    "fir" / cs.Flag,
    "sequence" / cs.BitsInteger(6),
)


class Segment(NamedTuple):
    """What became of one transport segment.

    ``fragment`` is the whole application fragment when this segment finished
    one, else None. ``event`` is ``""`` for a segment taken normally, else
    ``duplicate``, ``out_of_sequence``, ``no_first``, ``too_large``, or
    ``restarted`` (a FIR segment dropped an unfinished fragment).
    """

    fragment: bytes | None
    segments: int
    event: str
    dropped: int = 0


class _Partial:
    __slots__ = ("parts", "size", "last_seq", "last_octets")

    def __init__(self, seq: int, octets: bytes) -> None:
        self.parts = [octets]
        self.size = len(octets)
        self.last_seq = seq
        self.last_octets = octets


class Reassembler:
    """Transport reassembly for one flow, keyed by (direction, source, destination)."""

    __slots__ = ("_partials",)

    def __init__(self) -> None:
        self._partials: dict[tuple, _Partial] = {}

    def reset(self) -> int:
        """Forget every partial fragment; return how many there were."""
        count = len(self._partials)
        self._partials.clear()
        return count

    def take(self, key: tuple, data: bytes) -> Segment:
        """Take the user data of one link frame (transport octet first)."""
        header = data[0]
        seq = header & SEQUENCE_MASK
        body = data[1:]
        partials = self._partials

        # A segment that is the whole fragment: the common case, no state.
        if header & 0xC0 == 0xC0:
            dropped = partials.pop(key, None)
            if dropped is not None:
                return Segment(body, 1, "restarted", dropped.size)
            return Segment(body, 1, "")

        partial = partials.get(key)
        if header & FIR:
            partials.pop(key, None)
            if len(partials) >= MAX_REASSEMBLIES:
                del partials[next(iter(partials))]
            partials[key] = _Partial(seq, body)
            if partial is not None:
                return Segment(None, 1, "restarted", partial.size)
            return Segment(None, 1, "")

        if partial is None:
            return Segment(None, 0, "no_first", len(body))
        if seq == partial.last_seq:
            return Segment(None, len(partial.parts), "duplicate")
        if seq != (partial.last_seq + 1) & SEQUENCE_MASK:
            del partials[key]
            return Segment(None, 0, "out_of_sequence", partial.size)
        partial.size += len(body)
        if partial.size > MAX_FRAGMENT:
            del partials[key]
            return Segment(None, 0, "too_large", partial.size)
        partial.parts.append(body)
        partial.last_seq = seq
        partial.last_octets = body
        if header & FIN:
            del partials[key]
            return Segment(b"".join(partial.parts), len(partial.parts), "")
        return Segment(None, len(partial.parts), "")
