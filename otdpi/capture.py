"""Stream the records of a capture file, in constant memory, and note any damage.

Formats read
------------
* pcap, either byte order, microsecond (magic ``0xa1b2c3d4``) or nanosecond
  (``0xa1b23c4d``) timestamps, and the "modified" pcap of old Linux patches
  (``0xa1b2cd34``, 24-byte record headers whose extra fields are ignored).
* pcapng, any number of sections of either byte order, any number of
  interfaces per section, each with its own link type, ``if_tsresol``
  (powers of ten and of two) and ``if_tsoffset``. Packets come from Enhanced
  Packet Blocks, Simple Packet Blocks and the obsolete Packet Block; every
  other block type (name resolution, statistics, secrets, custom) is skipped.
* either of the above compressed with gzip, recognised by its magic and
  decompressed as a stream.

The reader does not interpret link types: each :class:`Record` carries the
``LINKTYPE_*`` value of its interface and :mod:`otdpi.decode` makes sense of it.

Numbering and damage
--------------------
``Record.index`` is the 1-based position of the record in the file, as
tshark's ``frame.number`` counts it on an undamaged file. A damaged record
whose header can still be read (a truncated last record, a pcapng packet
block whose fields contradict its length) uses up its number, so later
records keep the numbers tshark would give them. Bytes skipped while
searching for the next good record after a garbled header use up one number
in all, because how many records they held cannot be known.

Damage never raises: it becomes a :class:`CaptureProblem` in
:attr:`CaptureReader.problems` and reading goes on from the next record that
can be trusted. Only a file that cannot be opened, or that is not a capture
at all, raises :class:`~otdpi.errors.CaptureError`.
"""

# Limitation: timestamps are floats, so nanosecond captures keep only about
# a quarter of a microsecond of precision near the present epoch. A separate
# integer-nanosecond field would be needed to keep every digit.

# Limitation: compression other than gzip (zstd, lz4, xz) is not recognised
# and such files are refused as "not a capture file". Add a magic and a
# streaming decompressor per format to lift it.

# Limitation: pcapng packet options (comments, flags, drop counts, hashes)
# and interface names are read past, not returned.

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Iterator, NamedTuple

from otdpi.errors import CaptureError

__all__ = ["CaptureProblem", "CaptureReader", "Record", "open_capture"]


class Record(NamedTuple):
    """One captured packet, as the file holds it."""

    index: int  # 1-based position in the file, damaged records included
    ts: float  # seconds since the epoch, UTC
    linktype: int  # LINKTYPE_* of the record's interface
    data: bytes  # the captured bytes
    orig_len: int  # length of the packet on the wire
    interface: int  # pcapng interface id; 0 for pcap


class CaptureProblem(NamedTuple):
    """Damage found in a capture file, reported instead of raised."""

    path: str
    index: int  # record number where it was found; 0 means the file header
    detail: str  # what was wrong, what was expected, what was found


# Reading in large slices and cutting records out of them costs far less per
# record than two small reads per record, and keeps memory to a few slices.
CHUNK_SIZE = 1 << 20

# A captured length above this is taken as garbage whenever the snaplen gives
# no tighter bound; it is the largest snaplen tshark itself accepts for
# Ethernet.
MAX_RECORD_LENGTH = 256 * 1024

# A pcapng block above this size is taken as a damaged length field.
MAX_BLOCK_LENGTH = 16 * 1024 * 1024

# When resynchronising, a candidate record must lie this close in time to the
# last good one.
RESYNC_WINDOW_SECONDS = 86400

GZIP_MAGIC = b"\x1f\x8b"

PCAP_MAGICS = {
    # magic as little-endian u32: (byte order, fraction divisor, header size)
    0xA1B2C3D4: ("<", 1_000_000, 16),
    0xD4C3B2A1: (">", 1_000_000, 16),
    0xA1B23C4D: ("<", 1_000_000_000, 16),
    0x4D3CB2A1: (">", 1_000_000_000, 16),
    0xA1B2CD34: ("<", 1_000_000, 24),
    0x34CDB2A1: (">", 1_000_000, 24),
}

# pcapng block types (pcapng draft, section 11.1)
SHB = 0x0A0D0D0A
IDB = 0x00000001
OBSOLETE_PB = 0x00000002
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
KNOWN_BLOCK_TYPES = frozenset(
    {
        SHB,
        IDB,
        OBSOLETE_PB,
        SPB,
        0x00000004,  # name resolution
        0x00000005,  # interface statistics
        EPB,
        0x00000007,  # IRIG timestamp (obsolete)
        0x00000008,  # ARINC 429 (obsolete)
        0x00000009,  # systemd journal export
        0x0000000A,  # decryption secrets
        0x00000BAD,  # custom, may be copied
        0x40000BAD,  # custom, must not be copied
    }
)

# pcapng interface options (pcapng draft, section 4.2)
OPT_END = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14


def open_capture(path: str | os.PathLike, *, max_problems: int = 1000) -> CaptureReader:
    """Open a pcap, pcapng or gzip-compressed capture for streaming.

    Parameters
    ----------
    path
        The capture file.
    max_problems
        How many :class:`CaptureProblem` records to keep; later ones are only
        counted in :attr:`CaptureReader.problem_count`.

    Returns
    -------
    CaptureReader
        An iterable of :class:`Record`, usable as a context manager.

    Raises
    ------
    CaptureError
        The file cannot be opened, or its first bytes are not a capture header.

    Examples
    --------
    >>> with open_capture("plant.pcap") as capture:  # doctest: +SKIP
    ...     for record in capture:
    ...         handle(record.ts, record.linktype, record.data)
    """
    return CaptureReader(path, max_problems=max_problems)


class CaptureReader:
    """An open capture file that yields its records once, in file order.

    Attributes
    ----------
    path
        The file name as given.
    problems
        The first ``max_problems`` damage reports.
    problem_count
        All damage reports, kept or not.
    records_read
        Records yielded so far (damaged ones are not yielded).
    size
        The file's size on disk in bytes (compressed size for gzip), for
        progress reports together with :meth:`tell`.
    """

    def __init__(self, path: str | os.PathLike, *, max_problems: int = 1000) -> None:
        self.path = os.fsdecode(os.fspath(path))
        self.problems: list[CaptureProblem] = []
        self.problem_count = 0
        self.records_read = 0
        self._max_problems = max_problems
        self._eof = False
        self._index = 0  # last record number reached, for read-error reports
        self._file = self._open_stream()
        try:
            self._records = self._start()
        except BaseException:
            self._file.close()
            raise

    # -- public surface -------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def tell(self) -> int:
        """How far into the file on disk reading has got, in bytes."""
        try:
            return self._disk.tell()
        except (OSError, ValueError):
            return self.size

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; iteration stops."""
        self._records.close()
        self._file.close()

    # -- opening --------------------------------------------------------------

    def _open_stream(self):
        try:
            raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open ({exc.strerror or exc})") from exc
        self._disk = raw
        try:
            self.size = os.fstat(raw.fileno()).st_size
        except OSError:
            self.size = 0

        try:
            magic = raw.read(2)
            raw.seek(0)
        except OSError as exc:
            raw.close()
            raise CaptureError(f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        if magic != GZIP_MAGIC:
            self._read = self._read_plain
            return raw

        self._gzip_member = gzip.GzipFile(fileobj=raw, mode="rb")
        self._raw = raw
        self._read = self._read_gzip
        return _Closer(self._gzip_member, raw)

    def _read_plain(self, size: int) -> bytes:
        """Read up to ``size`` bytes; short only at the end of the file."""
        if self._eof:
            return b""
        pieces = []
        wanted = size
        try:
            while wanted > 0:
                piece = self._file.read(wanted)
                if not piece:
                    self._eof = True
                    break
                pieces.append(piece)
                wanted -= len(piece)
        except OSError as exc:
            self._eof = True
            self._problem(self._index + 1, f"read error ({exc}); reading stops here")
        return b"".join(pieces)

    def _read_gzip(self, size: int) -> bytes:
        """Read up to ``size`` decompressed bytes, keeping what came before damage."""
        if self._eof:
            return b""
        pieces = []
        wanted = size
        try:
            # read1 decompresses one input piece per call, so bytes already
            # produced are not lost when the stream breaks off.
            while wanted > 0:
                piece = self._gzip_member.read1(wanted)
                if not piece:
                    self._eof = True
                    break
                pieces.append(piece)
                wanted -= len(piece)
        except (EOFError, OSError, zlib.error) as exc:
            self._eof = True
            self._problem(
                self._index + 1,
                f"gzip stream is damaged or cut short ({exc}); reading stops here",
            )
        return b"".join(pieces)

    def _start(self) -> Iterator[Record]:
        """Read the file header and return the generator for the records."""
        head = self._read(4)
        if self.problems:
            # Only a gzip stream reports damage this early.
            raise CaptureError(f"{self.path}: {self.problems[0].detail}")
        if len(head) < 4:
            found = f"{len(head)} bytes" if head else "an empty file"
            raise CaptureError(
                f"{self.path}: not a capture file (found {found}, "
                "expected a pcap, pcapng or gzip header)"
            )

        (magic,) = struct.unpack("<I", head)
        if magic in PCAP_MAGICS:
            return self._pcap_records(head, *PCAP_MAGICS[magic])
        if magic == SHB:
            return self._pcapng_records(head)
        raise CaptureError(
            f"{self.path}: not a capture file (magic 0x{int.from_bytes(head, 'big'):08x}, "
            "expected pcap, pcapng or gzip)"
        )

    def _problem(self, index: int, detail: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self._max_problems:
            self.problems.append(CaptureProblem(self.path, index, detail))

    # -- pcap -----------------------------------------------------------------

    def _pcap_records(
        self, magic: bytes, order: str, divisor: int, header_size: int
    ) -> Iterator[Record]:
        # File header (pcap draft, section 4): magic, version, reserved,
        # snaplen, link type with FCS bits above the low 16.
        rest = self._read(20)
        if len(rest) < 20:
            raise CaptureError(
                f"{self.path}: pcap file header cut short "
                f"(expected 24 bytes, file has {4 + len(rest)})"
            )
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(
            order + "HHiIII", rest
        )
        if major != 2:
            self._problem(0, f"unexpected pcap version {major}.{minor}, expected 2.4")
        linktype = network & 0xFFFF
        if 0 < snaplen <= MAX_RECORD_LENGTH:
            limit = snaplen
        else:
            limit = MAX_RECORD_LENGTH
        self._pcap = _PcapLayout(order, divisor, header_size, limit, snaplen)
        return self._pcap_loop(linktype)

    def _pcap_loop(self, linktype: int) -> Iterator[Record]:
        layout = self._pcap
        unpack = layout.header.unpack_from
        header_size = layout.header_size
        limit = layout.limit
        divisor = layout.divisor
        read = self._read
        make = tuple.__new__

        buf = read(CHUNK_SIZE)
        end = len(buf)
        base = 0  # file offset of buf[0], counted from the first record
        pos = 0
        index = 0
        last_sec = None
        while True:
            if pos + header_size > end:
                base += pos
                self._index = index
                buf = buf[pos:] + read(CHUNK_SIZE + header_size)
                end = len(buf)
                pos = 0
                if end < header_size:
                    if buf:
                        self._problem(
                            index + 1,
                            f"record {index + 1} truncated: its {header_size}-byte "
                            f"header is cut short, file ends after {end} bytes",
                        )
                    break

            sec, frac, incl_len, orig_len = unpack(buf, pos)
            start = pos + header_size
            stop = start + incl_len
            # One test on the hot path; the rare cases are sorted out inside.
            if incl_len > limit or stop > end:
                if incl_len > limit:
                    buf, pos, base, verdict = self._pcap_oversize(
                        buf, pos, base, index + 1, last_sec
                    )
                    end = len(buf)
                    if verdict is _SKIPPED:
                        index += 1
                        continue
                    if verdict is _EOF:
                        break
                    # _KEEP: the framing around it is sound, so take it as it is
                    limit = self._pcap.limit
                    start = pos + header_size
                    stop = start + incl_len
                if stop > end:
                    base += pos
                    self._index = index
                    buf = buf[pos:] + read(max(CHUNK_SIZE, stop - pos))
                    end = len(buf)
                    pos = 0
                    start = header_size
                    stop = start + incl_len
                    if stop > end:
                        self._problem(
                            index + 1,
                            f"record {index + 1} truncated: header says {incl_len} "
                            f"bytes, file ends after {end - header_size}",
                        )
                        break

            index += 1
            last_sec = sec
            self.records_read += 1
            yield make(
                Record, (index, sec + frac / divisor, linktype, buf[start:stop], orig_len, 0)
            )
            pos = stop

    def _pcap_oversize(self, buf, pos, base, index, last_sec):
        """Handle a record header whose length exceeds the snaplen.

        Some writers set the snaplen lower than what they then write; if the
        record is of a sane size and a plausible header follows it, the record
        is kept. Otherwise the header is garbage and the bytes are scanned for
        the next place where two plausible records follow each other.
        """
        layout = self._pcap
        sec, frac, incl_len, orig_len = layout.header.unpack_from(buf, pos)
        where = base + pos + 24  # file offset, the file header included

        buf, pos, base = self._fill(buf, pos, base, layout.header_size * 2 + incl_len)
        follower = pos + layout.header_size + incl_len
        if layout.plausible(buf, pos, None, MAX_RECORD_LENGTH) and (
            follower == len(buf) and self._eof
            or layout.plausible(buf, follower, sec, MAX_RECORD_LENGTH)
        ):
            # From here on the stated snaplen is known to be wrong, so only
            # the absolute bound is used, and this is reported once.
            layout.limit = MAX_RECORD_LENGTH
            self._problem(
                index,
                f"record {index} at byte {where}: captured length {incl_len} exceeds "
                f"the snaplen of {layout.snaplen}; kept, as the next record header "
                f"is sound, and records up to {MAX_RECORD_LENGTH} bytes accepted "
                "from here on",
            )
            return buf, pos, base, _KEEP

        scan = pos + 1
        while True:
            # Keep enough bytes ahead to test a candidate and the record after it.
            buf, scan, base = self._fill(
                buf, scan, base, layout.header_size * 2 + layout.limit
            )
            if len(buf) - scan < layout.header_size:
                skipped = base + len(buf) - (where - 24)
                self._problem(
                    index,
                    f"record {index} at byte {where}: header says {incl_len} bytes, "
                    f"more than the limit of {layout.limit}; no plausible record "
                    f"follows in the remaining {skipped} bytes",
                )
                return buf, len(buf), base, _EOF
            if layout.plausible(buf, scan, last_sec):
                c_sec, _f, c_len, _o = layout.header.unpack_from(buf, scan)
                follower = scan + layout.header_size + c_len
                ends_file = follower == len(buf) and self._eof
                if ends_file or layout.plausible(buf, follower, c_sec):
                    skipped = base + scan - (where - 24)
                    self._problem(
                        index,
                        f"record {index} at byte {where}: header says {incl_len} "
                        f"bytes, more than the limit of {layout.limit}; skipped "
                        f"{skipped} bytes to the next plausible record",
                    )
                    return buf, scan, base, _SKIPPED
            scan += 1

    def _fill(self, buf, pos, base, wanted):
        """Make at least ``wanted`` bytes available from ``pos`` unless the file ends."""
        if len(buf) - pos >= wanted or self._eof:
            return buf, pos, base
        base += pos
        buf = buf[pos:]
        buf += self._read(max(CHUNK_SIZE, wanted - len(buf)))
        return buf, 0, base

    # -- pcapng ---------------------------------------------------------------

    def _pcapng_records(self, magic: bytes) -> Iterator[Record]:
        # The first block must be a Section Header Block; read it now so that
        # a file that only pretends to be pcapng is refused at open time.
        head = magic + self._read(8)
        if len(head) < 12:
            raise CaptureError(
                f"{self.path}: pcapng section header cut short "
                f"(expected at least 12 bytes, file has {len(head)})"
            )
        order = _pcapng_order(head, 8)
        if order is None:
            raise CaptureError(
                f"{self.path}: pcapng byte-order magic is "
                f"0x{int.from_bytes(head[8:12], 'big'):08x}, expected 0x1a2b3c4d"
            )
        return self._pcapng_loop(head)

    def _pcapng_loop(self, head: bytes) -> Iterator[Record]:
        read = self._read
        make = tuple.__new__
        packet_blocks = (EPB, SPB, OBSOLETE_PB)

        buf = head + read(CHUNK_SIZE)
        end = len(buf)
        base = 0  # file offset of buf[0]
        pos = 0
        index = 0
        last_ts = 0.0
        section = _Section(_pcapng_order(buf, 8) or "<")
        block_header = section.block_header.unpack_from
        u32 = section.u32.unpack_from
        epb = section.epb.unpack_from
        interfaces = section.interfaces
        while True:
            if pos + 12 > end:
                base += pos
                self._index = index
                buf = buf[pos:] + read(CHUNK_SIZE + 12)
                end = len(buf)
                pos = 0
                if end < 12:
                    if buf:
                        self._problem(
                            index,
                            f"block at byte {base} truncated: file ends after "
                            f"{end} bytes of its header",
                        )
                    break

            block_type, block_length = block_header(buf, pos)
            if block_type == SHB:
                # A new section forgets the interfaces before it and may switch
                # byte order; its own length must be read in the new order.
                order = _pcapng_order(buf, pos + 8)
                if order is None:
                    self._problem(
                        index,
                        f"section header at byte {base + pos} has byte-order magic "
                        f"0x{int.from_bytes(buf[pos + 8 : pos + 12], 'big'):08x}, "
                        "expected 0x1a2b3c4d; read in the previous byte order",
                    )
                    order = section.order
                section = _Section(order)
                block_header = section.block_header.unpack_from
                u32 = section.u32.unpack_from
                epb = section.epb.unpack_from
                interfaces = section.interfaces
                block_type, block_length = block_header(buf, pos)
            stop = pos + block_length

            # One test on the hot path; the rare cases are sorted out inside.
            if stop > end or block_length < 12 or block_length & 3:
                problem = None
                if block_length < 12 or block_length & 3 or block_length > MAX_BLOCK_LENGTH:
                    problem = (
                        f"block at byte {base + pos} has length {block_length}, "
                        f"expected a multiple of 4 from 12 to {MAX_BLOCK_LENGTH}"
                    )
                else:
                    base += pos
                    self._index = index
                    buf = buf[pos:] + read(max(CHUNK_SIZE, block_length))
                    end = len(buf)
                    pos = 0
                    stop = block_length
                    if stop > end:
                        if block_type in packet_blocks:
                            what, where = f"record {index + 1}", index + 1
                        else:
                            what, where = f"block at byte {base}", index
                        self._problem(
                            where,
                            f"{what} truncated: header says {block_length} bytes, "
                            f"file ends after {end}",
                        )
                        break
                if problem is not None:
                    # A damaged packet block keeps its number; garbage does not
                    # get one, and is reported at the number that comes next.
                    if block_type in packet_blocks:
                        index += 1
                    buf, pos, base, found = self._pcapng_resync(
                        buf, pos, base, section, problem,
                        index if block_type in packet_blocks else index + 1,
                    )
                    end = len(buf)
                    if not found:
                        break
                    continue

            if u32(buf, stop - 4)[0] != block_length:
                if block_type in packet_blocks:
                    index += 1
                buf, pos, base, found = self._pcapng_resync(
                    buf,
                    pos,
                    base,
                    section,
                    f"block at byte {base + pos} says {block_length} bytes at its "
                    f"start and {u32(buf, stop - 4)[0]} at its end",
                    index if block_type in packet_blocks else index + 1,
                )
                end = len(buf)
                if not found:
                    break
                continue

            if block_type == EPB:
                index += 1
                iface, ts_high, ts_low, cap_len, orig_len = epb(buf, pos + 8)
                if cap_len > block_length - 32 or iface >= len(interfaces):
                    self._bad_packet_block(index, iface, cap_len, block_length - 32, section)
                    pos = stop
                    continue
                linktype, divisor, offset, snaplen = interfaces[iface]
                if cap_len > snaplen and snaplen:
                    self._over_snaplen(index, cap_len, snaplen)
                last_ts = ((ts_high << 32) | ts_low) / divisor + offset
                self.records_read += 1
                yield make(
                    Record,
                    (index, last_ts, linktype, buf[pos + 28 : pos + 28 + cap_len], orig_len, iface),
                )
            elif block_type == SPB:
                index += 1
                if not interfaces:
                    self._bad_packet_block(index, 0, 0, 0, section)
                    pos = stop
                    continue
                (orig_len,) = u32(buf, pos + 8)
                linktype, _divisor, _offset, snaplen = interfaces[0]
                cap_len = min(orig_len, block_length - 16)
                if snaplen:
                    cap_len = min(cap_len, snaplen)
                # A simple packet has no timestamp of its own; carrying the
                # last one forward keeps time monotonic for idle timeouts.
                self.records_read += 1
                yield make(
                    Record,
                    (index, last_ts, linktype, buf[pos + 12 : pos + 12 + cap_len], orig_len, 0),
                )
            elif block_type == OBSOLETE_PB:
                index += 1
                iface, _drops, ts_high, ts_low, cap_len, orig_len = section.pb.unpack_from(
                    buf, pos + 8
                )
                if cap_len > block_length - 32 or iface >= len(interfaces):
                    self._bad_packet_block(index, iface, cap_len, block_length - 32, section)
                    pos = stop
                    continue
                linktype, divisor, offset, snaplen = interfaces[iface]
                last_ts = ((ts_high << 32) | ts_low) / divisor + offset
                self.records_read += 1
                yield make(
                    Record,
                    (index, last_ts, linktype, buf[pos + 28 : pos + 28 + cap_len], orig_len, iface),
                )
            elif block_type == IDB:
                section.add_interface(buf, pos, block_length, self, index)
            elif block_type == SHB:
                self._section_header(buf, pos, section, index)
            pos = stop

    def _section_header(self, buf: bytes, pos: int, section: _Section, index: int) -> None:
        major, minor = section.version.unpack_from(buf, pos + 12)
        if major != 1:
            self._problem(
                index, f"unexpected pcapng version {major}.{minor}, expected 1.0"
            )

    def _bad_packet_block(self, index, iface, cap_len, room, section) -> None:
        if iface >= len(section.interfaces):
            self._problem(
                index,
                f"record {index} names interface {iface}, but the section has "
                f"{len(section.interfaces)}; record skipped",
            )
        else:
            self._problem(
                index,
                f"record {index} says {cap_len} captured bytes, but its block has "
                f"room for {room}; record skipped",
            )

    def _over_snaplen(self, index: int, cap_len: int, snaplen: int) -> None:
        self._problem(
            index,
            f"record {index}: captured length {cap_len} exceeds the interface "
            f"snaplen of {snaplen}; kept, as its block is sound",
        )

    def _pcapng_resync(self, buf, pos, base, section, what, where):
        """Find the next block whose type is known and whose two lengths agree."""
        start = base + pos
        scan = pos + 1
        header = section.block_header
        u32 = section.u32
        while True:
            if len(buf) - scan < 12:
                buf, scan, base = self._fill(buf, scan, base, 12)
                if len(buf) - scan < 12:
                    self._problem(
                        where,
                        f"{what}; no sound block follows in the remaining "
                        f"{base + len(buf) - start} bytes",
                    )
                    return buf, len(buf), base, False
            block_type, block_length = header.unpack_from(buf, scan)
            if (
                block_type in KNOWN_BLOCK_TYPES
                and 12 <= block_length <= MAX_BLOCK_LENGTH
                and not block_length % 4
            ):
                buf, scan, base = self._fill(buf, scan, base, block_length)
                if (
                    len(buf) - scan >= block_length
                    and u32.unpack_from(buf, scan + block_length - 4)[0] == block_length
                ):
                    self._problem(
                        where,
                        f"{what}; skipped {base + scan - start} bytes to the next "
                        "sound block",
                    )
                    return buf, scan, base, True
            scan += 1


# Sentinels for the outcome of an oversized pcap record header.
_KEEP = object()
_SKIPPED = object()
_EOF = object()


class _PcapLayout:
    """The record-header shape of one pcap file and a plausibility test for it."""

    def __init__(self, order: str, divisor: int, header_size: int, limit: int, snaplen: int):
        self.header = struct.Struct(order + "IIII")
        self.header_size = header_size
        self.divisor = divisor
        self.limit = limit
        self.snaplen = snaplen

    def plausible(
        self, buf: bytes, pos: int, near_sec: int | None, limit: int | None = None
    ) -> bool:
        """Whether a sane record header sits at ``pos``."""
        if len(buf) - pos < self.header_size:
            return False
        sec, frac, incl_len, orig_len = self.header.unpack_from(buf, pos)
        if limit is None:
            limit = self.limit
        if incl_len > limit or orig_len < incl_len or frac >= self.divisor:
            return False
        if near_sec is not None and abs(sec - near_sec) > RESYNC_WINDOW_SECONDS:
            return False
        return True


class _Section:
    """Byte order and interfaces of the current pcapng section."""

    def __init__(self, order: str) -> None:
        self.order = order
        self.block_header = struct.Struct(order + "II")
        self.u32 = struct.Struct(order + "I")
        self.version = struct.Struct(order + "HH")
        self.epb = struct.Struct(order + "IIIII")
        self.pb = struct.Struct(order + "HHIIII")
        self.idb = struct.Struct(order + "HHI")
        self.option = struct.Struct(order + "HH")
        self.tsoffset = struct.Struct(order + "q")
        # per interface: (linktype, ticks per second, offset seconds, snaplen)
        self.interfaces: list[tuple[int, int, int, int]] = []

    def add_interface(
        self, buf: bytes, pos: int, length: int, reader: CaptureReader, index: int
    ) -> None:
        if length < 20:
            reader._problem(
                index, f"interface description block of {length} bytes, expected 20 or more"
            )
            self.interfaces.append((0, 1_000_000, 0, 0))
            return
        linktype, _reserved, snaplen = self.idb.unpack_from(buf, pos + 8)
        divisor = 1_000_000
        offset = 0

        # Options: code, length, value padded to 4 bytes, until opt_endofopt.
        at = pos + 16
        end = pos + length - 4
        while at + 4 <= end:
            code, size = self.option.unpack_from(buf, at)
            value = at + 4
            if code == OPT_END or value + size > end:
                break
            if code == OPT_IF_TSRESOL and size >= 1:
                resolution = buf[value]
                exponent = resolution & 0x7F
                if exponent > 60:
                    reader._problem(
                        index,
                        f"interface {len(self.interfaces)} has if_tsresol "
                        f"0x{resolution:02x}, beyond any clock; microseconds assumed",
                    )
                else:
                    divisor = 2**exponent if resolution & 0x80 else 10**exponent
            elif code == OPT_IF_TSOFFSET and size >= 8:
                (offset,) = self.tsoffset.unpack_from(buf, value)
            at = value + ((size + 3) & ~3)
        self.interfaces.append((linktype, divisor, offset, snaplen))


def _pcapng_order(buf: bytes, pos: int) -> str | None:
    """Byte order of a section, from its byte-order magic at ``pos``."""
    if len(buf) - pos < 4:
        return None
    (magic,) = struct.unpack_from("<I", buf, pos)
    if magic == BYTE_ORDER_MAGIC:
        return "<"
    if magic == 0x4D3C2B1A:
        return ">"
    return None


class _Closer:
    """Closes a gzip stream and the file beneath it together."""

    def __init__(self, *files) -> None:
        self._files = files

    def close(self) -> None:
        for file in self._files:
            file.close()

