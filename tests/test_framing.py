"""The stream framer: units at any segmentation, junk skipped, memory bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otdpi.framing import Framer, Skipped


def measure(buf: bytes, pos: int) -> int:
    # Toy header: 0xAA then a length byte.
    if len(buf) - pos < 2:
        return 0
    return 2 + buf[pos + 1] if buf[pos] == 0xAA else -1


def unit(body: bytes) -> bytes:
    return bytes([0xAA, len(body)]) + body


def feed_all(framer: Framer, pieces: list[bytes]) -> list:
    out = []
    for piece in pieces:
        out.extend(framer.feed(piece))
    return out


def test_several_units_in_one_piece_and_one_unit_over_many():
    stream = unit(b"abc") + unit(b"") + unit(b"xyz" * 20)
    whole = Framer(measure).feed(stream)
    bytewise = feed_all(Framer(measure), [stream[i:i + 1] for i in range(len(stream))])
    assert whole == bytewise == [unit(b"abc"), unit(b""), unit(b"xyz" * 20)]


def test_junk_between_units_is_reported_once_with_its_size():
    out = Framer(measure).feed(unit(b"a") + b"\x01\x02\x03" + unit(b"b"))
    assert out == [unit(b"a"), Skipped(3, "no unit header at this offset"), unit(b"b")]


def test_declared_size_over_the_cap_is_junk_not_a_wait():
    framer = Framer(measure, max_unit=10)
    out = framer.feed(bytes([0xAA, 200]) + unit(b"ok"))
    assert out[-1] == unit(b"ok")
    assert isinstance(out[0], Skipped)


def test_reset_drops_a_partial_unit():
    framer = Framer(measure)
    assert framer.feed(unit(b"abcdef")[:4]) == []
    assert framer.buffered == 4
    assert framer.reset() == 4
    assert framer.feed(unit(b"z")) == [unit(b"z")]


@given(st.lists(st.binary(max_size=40), max_size=30),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10))
def test_any_segmentation_gives_the_same_units(bodies, cuts):
    stream = b"".join(unit(b) for b in bodies)
    pieces, pos, i = [], 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        pieces.append(stream[pos:pos + size])
        pos += size
        i += 1
    assert feed_all(Framer(measure), pieces) == [unit(b) for b in bodies]


@given(st.binary(max_size=500))
def test_random_bytes_never_raise_and_buffer_stays_bounded(data):
    framer = Framer(measure, max_unit=64)
    out = feed_all(framer, [data[i:i + 7] for i in range(0, len(data), 7)])
    assert framer.buffered <= 64
    consumed = sum(len(u) if isinstance(u, bytes) else u.size for u in out)
    assert consumed + framer.buffered == len(data)
