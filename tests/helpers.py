"""Builders of capture files and frames for tests, and a tshark oracle to check them."""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
SHARED_CAPTURES = REPO.parent / "shared" / "captures"

TSHARK = shutil.which("tshark")
CAPINFOS = shutil.which("capinfos")
MERGECAP = shutil.which("mergecap")


# -- capture files ------------------------------------------------------------


class Frame(NamedTuple):
    """One record to write: time as integer seconds and fraction, and bytes."""

    sec: int
    frac: int  # micro- or nanoseconds, as the file's resolution says
    data: bytes
    orig_len: int | None = None  # defaults to len(data)


def pcap_header(
    *,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
    magic: int | None = None,
) -> bytes:
    if magic is None:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(frame: Frame, *, order: str = "<", extra: bytes = b"") -> bytes:
    orig_len = len(frame.data) if frame.orig_len is None else frame.orig_len
    header = struct.pack(
        order + "IIII", frame.sec, frame.frac, len(frame.data), orig_len
    )
    return header + extra + frame.data


def pcap_file(frames: list[Frame], **header) -> bytes:
    order = header.get("order", "<")
    return pcap_header(**header) + b"".join(pcap_record(f, order=order) for f in frames)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def pcapng_block(block_type: int, body: bytes, *, order: str = "<") -> bytes:
    body = _pad4(body)
    length = 12 + len(body)
    return (
        struct.pack(order + "II", block_type, length)
        + body
        + struct.pack(order + "I", length)
    )


def pcapng_option(code: int, value: bytes, *, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


def pcapng_shb(*, order: str = "<") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return pcapng_block(0x0A0D0D0A, body, order=order)


def pcapng_idb(
    linktype: int,
    *,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    name: bytes | None = None,
    order: str = "<",
) -> bytes:
    options = b""
    if name is not None:
        options += pcapng_option(2, name, order=order)
    if tsresol is not None:
        options += pcapng_option(9, bytes([tsresol]), order=order)
    if tsoffset is not None:
        options += pcapng_option(14, struct.pack(order + "q", tsoffset), order=order)
    if options:
        options += pcapng_option(0, b"", order=order)
    body = struct.pack(order + "HHI", linktype, 0, snaplen) + options
    return pcapng_block(1, body, order=order)


def pcapng_epb(
    iface: int,
    ticks: int,
    data: bytes,
    *,
    orig_len: int | None = None,
    comment: bytes | None = None,
    order: str = "<",
) -> bytes:
    orig_len = len(data) if orig_len is None else orig_len
    body = struct.pack(
        order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig_len
    ) + _pad4(data)
    if comment is not None:
        body += pcapng_option(1, comment, order=order) + pcapng_option(
            0, b"", order=order
        )
    return pcapng_block(6, body, order=order)


def pcapng_spb(data: bytes, *, orig_len: int | None = None, order: str = "<") -> bytes:
    orig_len = len(data) if orig_len is None else orig_len
    return pcapng_block(3, struct.pack(order + "I", orig_len) + data, order=order)


def pcapng_obsolete_pb(
    iface: int, ticks: int, data: bytes, *, order: str = "<"
) -> bytes:
    body = (
        struct.pack(
            order + "HHIIII",
            iface,
            0,
            ticks >> 32,
            ticks & 0xFFFFFFFF,
            len(data),
            len(data),
        )
        + data
    )
    return pcapng_block(2, body, order=order)


def pcapng_nrb(*, order: str = "<") -> bytes:
    # One IPv4 record (type 1) naming 10.0.0.1 "plc", then the end record.
    record = struct.pack(order + "HH", 1, 8) + bytes([10, 0, 0, 1]) + b"plc\0"
    return pcapng_block(4, record + struct.pack(order + "HH", 0, 0), order=order)


def pcapng_isb(iface: int, *, order: str = "<") -> bytes:
    return pcapng_block(5, struct.pack(order + "III", iface, 0, 0), order=order)


# -- frames -------------------------------------------------------------------


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ethernet(dst: str, src: str, ethertype: int, payload: bytes, vlans=()) -> bytes:
    """An Ethernet frame; ``vlans`` is a list of (tpid, vlan id), outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ident: int = 1,
    more: bool = False,
    offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
) -> bytes:
    options = _pad4(options)
    ihl = 5 + len(options) // 4
    if total_length is None:
        total_length = ihl * 4 + len(payload)
    flags = (0x2000 if more else 0) | (offset // 8)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total_length,
        ident,
        flags,
        64,
        proto,
        0,
        bytes(map(int, src.split("."))),
        bytes(map(int, dst.split("."))),
    )
    return header + options + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    import ipaddress

    return (
        struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    *,
    seq: int = 1000,
    ack: int = 0,
    flags: int = 0x18,
    options: bytes = b"",
) -> bytes:
    options = _pad4(options)
    offset = (5 + len(options) // 4) << 4
    return struct.pack(
        "!HHIIBBHHH", sport, dport, seq, ack, offset, flags, 8192, 0, 0
    ) + (options + payload)


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def fragments(datagram_payload: bytes, size: int) -> list[tuple[int, bool, bytes]]:
    """Split an IP payload into (offset, more, piece) of ``size`` bytes (a multiple of 8)."""
    pieces = []
    for start in range(0, len(datagram_payload), size):
        piece = datagram_payload[start : start + size]
        pieces.append((start, start + size < len(datagram_payload), piece))
    return pieces


# -- tshark oracle -----------------------------------------------------------


def tshark_fields(path: Path | str, *fields: str, display_filter: str | None = None):
    """Rows of tshark field values for a file, one list per frame."""
    command = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    if display_filter:
        command += ["-Y", display_filter]
    for field in fields:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return [line.split("|") for line in result.stdout.splitlines()]


def corpus_files() -> list[Path]:
    if not SHARED_CAPTURES.is_dir():
        return []
    return sorted(SHARED_CAPTURES.glob("**/*.pcap*"))


CORPUS_FIELDS = ("frame.number", "frame.time_epoch", "frame.protocols", "_ws.malformed")


@functools.lru_cache(maxsize=1)
def corpus_tshark() -> dict[Path, list[list[str]]]:
    """What tshark sees in every public capture: CORPUS_FIELDS per frame, per file.

    tshark costs most of its time starting up, so the files are merged into two
    captures, dissected in parallel, and the rows split back by record counts
    from capinfos.
    """
    files = corpus_files()
    counts = capinfos_counts(files)
    halves = [files[: len(files) // 2], files[len(files) // 2 :]]
    with tempfile.TemporaryDirectory() as tmp:
        merged = []
        for number, half in enumerate(halves):
            target = Path(tmp) / f"half{number}.pcapng"
            subprocess.run(
                [MERGECAP, "-a", "-F", "pcapng", "-w", str(target), *map(str, half)],
                check=True,
                capture_output=True,
            )
            merged.append(target)
        with ThreadPoolExecutor(2) as pool:
            outputs = list(
                pool.map(lambda path: tshark_fields(path, *CORPUS_FIELDS), merged)
            )

    rows = iter(outputs[0] + outputs[1])
    return {path: [next(rows) for _ in range(counts[path])] for path in files}


def capinfos_counts(files: list[Path]) -> dict[Path, int]:
    """Record count of each file, as capinfos reports it."""
    result = subprocess.run(
        [CAPINFOS, "-c", "-M", "-T", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    )
    counts = {}
    for line in result.stdout.splitlines()[1:]:
        name, count = line.rsplit("\t", 1)
        counts[Path(name)] = int(count)
    return counts
