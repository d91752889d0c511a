"""DNP3 data link layer (IEEE 1815-2012 clause 9): frame header, CRC blocks, framing.

A link frame is a 10-octet header (start octets 0x05 0x64, length, control,
destination, source, CRC) followed by user data in blocks of at most 16 octets,
each followed by its own CRC. ``length`` counts the control, address and user
data octets (5 to 255), not the CRCs. Every CRC is CRC-16/DNP (polynomial
0x3D65, reflected, final XOR 0xFFFF), sent low octet first.
"""

from __future__ import annotations

import enum

import construct as cs

START = b"\x05\x64"
HEADER_SIZE = 10
BLOCK_SIZE = 16
MIN_LENGTH = 5
MAX_LENGTH = 255
MAX_FRAME = HEADER_SIZE + (MAX_LENGTH - 5) + 2 * ((MAX_LENGTH - 5 + 15) // 16)

# Control octet bits (clause 9.2.4.1.3).
DIR = 0x80  # set on frames a master sends
PRM = 0x40  # set on frames from the primary (initiating) station
FCB = 0x20  # frame count bit (primary)
FCV = 0x10  # frame count valid (primary); DFC, data flow control (secondary)
FUNCTION_MASK = 0x0F


class PrimaryFunction(enum.IntEnum):
    """Link function codes of primary-to-secondary frames (PRM = 1), table 9-1."""

    RESET_LINK_STATES = 0
    RESET_USER_PROCESS = 1  # obsolete
    TEST_LINK_STATES = 2
    CONFIRMED_USER_DATA = 3
    UNCONFIRMED_USER_DATA = 4
    REQUEST_LINK_STATUS = 9


class SecondaryFunction(enum.IntEnum):
    """Link function codes of secondary-to-primary frames (PRM = 0), table 9-2."""

    ACK = 0
    NACK = 1
    LINK_STATUS = 11
    NOT_FUNCTIONING = 14  # obsolete
    NOT_SUPPORTED = 15


USER_DATA_FUNCTIONS = (PrimaryFunction.CONFIRMED_USER_DATA,
                       PrimaryFunction.UNCONFIRMED_USER_DATA)


def link_function_name(control: int) -> str:
    """The link function's name from the control octet (``unknown_N`` if none)."""
    code = control & FUNCTION_MASK
    table = PrimaryFunction if control & PRM else SecondaryFunction
    try:
        return table(code).name.lower()
    except ValueError:
        side = "primary" if control & PRM else "secondary"
        return f"unknown_{side}_function_{code}"


# --- construct definitions (the source of truth; the hot path is held equal) --

LINK_CONTROL = cs.BitStruct(
    "dir" / cs.Flag,
    "prm" / cs.Flag,
    "fcb" / cs.Flag,  # reserved on secondary frames
    "fcv_dfc" / cs.Flag,  # FCV on primary frames, DFC on secondary ones
    "function" / cs.BitsInteger(4),
)

LINK_HEADER = cs.Struct(
    "start" / cs.Const(START),
    "length" / cs.Int8ul,  # control + addresses + user data octets
    "control" / LINK_CONTROL,
    "destination" / cs.Int16ul,
    "source" / cs.Int16ul,
    "header_crc" / cs.Int16ul,
)


def frame_size(length: int) -> int:
    """Octets on the wire of a frame whose length octet is ``length`` (>= 5)."""
    data = length - 5
    return HEADER_SIZE + data + 2 * ((data + 15) >> 4)


# --- CRC-16/DNP ------------------------------------------------------------------


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1  # 0x3D65 reflected
        table.append(crc)
    return table


_TABLE = _make_table()


def crc_dnp_python(data: bytes) -> int:
    """CRC-16/DNP computed in Python; the fallback and the reference in tests."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


try:  # A compiled CRC is ten times faster per block, and CRCs are half the work.
    from fastcrc.crc16 import dnp as crc_dnp
except ImportError:  # pragma: no cover - fastcrc is a dependency
    crc_dnp = crc_dnp_python


def header_crc_ok(buf: bytes, pos: int) -> bool:
    """Whether the 8 header octets at ``pos`` match the CRC that follows them."""
    return crc_dnp(buf[pos : pos + 8]) == (buf[pos + 8] | buf[pos + 9] << 8)


def measure_frame(buf: bytes, pos: int) -> int:
    """The framer's test: size of the link frame at ``pos``, 0 (need more) or -1.

    A position starts a frame when it holds 0x05 0x64, a length of at least 5
    and a header whose CRC is right; see :mod:`otdpi.framing`.
    """
    available = len(buf) - pos
    if available >= HEADER_SIZE:
        if buf[pos] != 0x05 or buf[pos + 1] != 0x64 or buf[pos + 2] < MIN_LENGTH:
            return -1
        if crc_dnp(buf[pos : pos + 8]) != (buf[pos + 8] | buf[pos + 9] << 8):
            return -1
        return frame_size(buf[pos + 2])
    if available >= 1 and buf[pos] != 0x05:
        return -1
    if available >= 2 and buf[pos + 1] != 0x64:
        return -1
    if available >= 3 and buf[pos + 2] < MIN_LENGTH:
        return -1
    return 0


def user_data(frame: bytes) -> tuple[bytes, list[int]]:
    """The user data of a whole frame with its block CRCs removed.

    Returns the data and the 0-based numbers of the blocks whose CRC is wrong
    (empty when all are right). ``frame`` must be exactly one frame.
    """
    end = len(frame)
    if end == HEADER_SIZE:
        return b"", []
    crc = crc_dnp
    if end <= HEADER_SIZE + BLOCK_SIZE + 2:  # one block: most requests, confirms
        chunk = frame[HEADER_SIZE:-2]
        return chunk, [] if crc(chunk) == (frame[-2] | frame[-1] << 8) else [0]
    pos = HEADER_SIZE
    # Most frames carry one to sixteen blocks; join once at the end.
    parts = []
    bad = []
    block = 0
    while pos < end:
        stop = pos + BLOCK_SIZE
        if stop > end - 2:
            stop = end - 2
        chunk = frame[pos:stop]
        if crc(chunk) != (frame[stop] | frame[stop + 1] << 8):
            bad.append(block)
        parts.append(chunk)
        pos = stop + 2
        block += 1
    return b"".join(parts), bad


def build_frame(control: int, destination: int, source: int, data: bytes) -> bytes:
    """A whole link frame with correct CRCs (for tests, fixtures and benchmarks).

    Parameters
    ----------
    control
        the control octet (DIR, PRM, FCB, FCV/DFC and the link function).
    destination, source
        link addresses, 0 to 65535.
    data
        the user data (transport octet first), at most 250 octets.

    Returns
    -------
    bytes
        header, header CRC, then each 16-octet block followed by its CRC.

    Raises
    ------
    ValueError
        ``data`` is longer than one frame can carry.

    >>> build_frame(0xC4, 10, 1, bytes.fromhex("c0c0013c0106")).hex()[:20]
    '05640bc40a000100acd1'
    """
    if len(data) > MAX_LENGTH - 5:
        raise ValueError(f"at most {MAX_LENGTH - 5} user data octets, got {len(data)}")
    header = START + bytes((len(data) + 5, control)) + destination.to_bytes(2, "little")
    header += source.to_bytes(2, "little")
    out = bytearray(header + crc_dnp(header).to_bytes(2, "little"))
    for pos in range(0, len(data), BLOCK_SIZE):
        chunk = data[pos : pos + BLOCK_SIZE]
        out += chunk + crc_dnp(chunk).to_bytes(2, "little")
    return bytes(out)
