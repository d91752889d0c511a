"""Capture reading: pcap and pcapng variants, gzip, damage and resynchronisation."""

from __future__ import annotations

import gzip
import os
import struct

import pytest
from helpers import (
    CAPINFOS,
    MERGECAP,
    TSHARK,
    Frame,
    capinfos_counts,
    corpus_files,
    corpus_tshark,
    ethernet,
    ipv4,
    ipv6,
    pcap_file,
    pcap_header,
    pcap_record,
    pcapng_epb,
    pcapng_idb,
    pcapng_isb,
    pcapng_nrb,
    pcapng_obsolete_pb,
    pcapng_shb,
    pcapng_spb,
    tcp,
    tshark_fields,
    udp,
)
from hypothesis import given
from hypothesis import strategies as st

from otdpi import capture
from otdpi.capture import CaptureProblem, Record, open_capture
from otdpi.errors import CaptureError

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

BASE_SEC = 1_700_000_000


def sample_frame(number: int, size: int = 0) -> bytes:
    """A small Ethernet/IPv4/TCP frame whose payload says which record it is."""
    payload = f"record {number} ".encode() + bytes(size)
    return ethernet(
        "02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800,
        ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 502, payload)),
    )


def sample_frames(count: int, *, nano: bool = False) -> list[Frame]:
    step = 1000 if nano else 1
    return [
        Frame(BASE_SEC + i // 3, (i * 123_457 * step) % (1_000_000 * step), sample_frame(i))
        for i in range(count)
    ]


def read_all(path, **options) -> tuple[list[Record], list[CaptureProblem]]:
    with open_capture(path, **options) as reader:
        records = list(reader)
        assert reader.records_read == len(records)
        assert reader.problem_count >= len(reader.problems)
        return records, reader.problems


def assert_matches_tshark(path, records: list[Record], *, skip_ts: set[int] = frozenset()):
    rows = tshark_fields(path, "frame.number", "frame.time_epoch", "frame.interface_id")
    assert [int(row[0]) for row in rows] == [r.index for r in records]
    for row, record in zip(rows, records):
        if record.index not in skip_ts:
            assert float(row[1]) == pytest.approx(record.ts, abs=1e-6), record.index
        assert int(row[2] or 0) == record.interface


# -- pcap ---------------------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_pcap_variants_match_tshark(tmp_path, order, nano):
    frames = sample_frames(50, nano=nano)
    path = tmp_path / "sample.pcap"
    path.write_bytes(pcap_file(frames, order=order, nano=nano, linktype=1))

    records, problems = read_all(path)

    assert problems == []
    assert [r.data for r in records] == [f.data for f in frames]
    divisor = 1e9 if nano else 1e6
    assert [r.ts for r in records] == [f.sec + f.frac / divisor for f in frames]
    assert {(r.linktype, r.interface) for r in records} == {(1, 0)}
    assert_matches_tshark(path, records)


def test_pcap_keeps_orig_len_and_link_type_without_fcs_bits(tmp_path):
    frame = Frame(BASE_SEC, 5, b"\x45" + bytes(39), orig_len=1500)
    # Link type 101 with the "FCS present, 4 bytes" bits set above the low 16.
    path = tmp_path / "raw.pcap"
    path.write_bytes(pcap_file([frame], linktype=101 | 0x14000000, snaplen=40))

    (record,), problems = read_all(path)

    assert problems == []
    assert (record.linktype, record.orig_len, len(record.data)) == (101, 1500, 40)


@needs_tshark
def test_modified_pcap_with_24_byte_record_headers(tmp_path):
    frames = sample_frames(5)
    body = b"".join(
        pcap_record(f, extra=struct.pack("<IHBx", 2, 0x0800, 0)) for f in frames
    )
    path = tmp_path / "modified.pcap"
    path.write_bytes(pcap_header(magic=0xA1B2CD34) + body)

    records, problems = read_all(path)

    assert problems == []
    assert [r.data for r in records] == [f.data for f in frames]
    assert_matches_tshark(path, records)


def test_header_only_pcap_has_no_records(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(pcap_header())
    assert read_all(path) == ([], [])


# -- pcapng ---------------------------------------------------------------------


def two_section_pcapng() -> tuple[bytes, list[bytes]]:
    """Two sections of opposite byte order, four interfaces, every packet block kind.

    Section 1 (little-endian): interface 0 Ethernet in microseconds, interface
    1 raw IP in nanoseconds shifted by if_tsoffset 100 s, interface 2 Ethernet
    in 2^-20 s; a name resolution and a statistics block between packets; an
    SPB and an obsolete packet block. Section 2 (big-endian): IPv6 in ms.
    """
    frame = sample_frame(0)
    raw = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"raw"))
    raw6 = ipv6("::1", "::2", 17, udp(3, 4, b"six"))
    blocks = [
        pcapng_shb(),
        pcapng_idb(1, snaplen=0),
        pcapng_idb(101, tsresol=9, tsoffset=100),
        pcapng_idb(1, tsresol=0x80 | 20, name=b"eth2"),
        pcapng_nrb(),
        pcapng_epb(0, BASE_SEC * 10**6 + 123_456, frame),
        pcapng_epb(1, BASE_SEC * 10**9 + 123_456_789, raw, comment=b"a comment"),
        pcapng_epb(2, ((BASE_SEC + 1) << 20) + (1 << 19), frame),
        pcapng_isb(0),
        pcapng_spb(frame),
        pcapng_obsolete_pb(0, (BASE_SEC + 2) * 10**6 + 1, frame),
        pcapng_shb(order=">"),
        pcapng_idb(229, tsresol=3, order=">"),
        pcapng_epb(0, (BASE_SEC + 3) * 1000 + 1, raw6, order=">"),
    ]
    return b"".join(blocks), [frame, raw, frame, frame, frame, raw6]


@needs_tshark
def test_pcapng_sections_interfaces_and_resolutions(tmp_path):
    blob, datas = two_section_pcapng()
    path = tmp_path / "sections.pcapng"
    path.write_bytes(blob)

    records, problems = read_all(path)

    assert problems == []
    assert [r.data for r in records] == datas
    assert [(r.linktype, r.interface) for r in records] == [
        (1, 0), (101, 1), (1, 2), (1, 0), (1, 0), (229, 0)
    ]
    expected_ts = [
        BASE_SEC + 0.123456,
        BASE_SEC + 100.123456789,
        BASE_SEC + 1.5,
        BASE_SEC + 1.5,  # a simple packet carries the last timestamp forward
        BASE_SEC + 2.000001,
        BASE_SEC + 3.001,
    ]
    assert [r.ts for r in records] == pytest.approx(expected_ts, abs=1e-6)
    # tshark shows no time for a simple packet block; ours is carried forward.
    assert_matches_tshark(path, records, skip_ts={4})


def test_simple_packet_block_is_cut_to_the_interface_snaplen(tmp_path):
    frame = sample_frame(1, size=100)
    path = tmp_path / "spb.pcapng"
    path.write_bytes(pcapng_shb() + pcapng_idb(1, snaplen=64) + pcapng_spb(frame))

    (record,), problems = read_all(path)

    assert problems == []
    assert record.data == frame[:64]
    assert record.orig_len == len(frame)


def test_packet_for_an_unknown_interface_is_a_problem(tmp_path):
    path = tmp_path / "iface.pcapng"
    path.write_bytes(
        pcapng_shb() + pcapng_idb(1) + pcapng_epb(3, 0, b"x" * 20)
        + pcapng_epb(0, BASE_SEC * 10**6, sample_frame(2))
    )

    records, problems = read_all(path)

    assert [r.index for r in records] == [2]
    assert len(problems) == 1 and problems[0].index == 1
    assert "interface 3" in problems[0].detail


# -- gzip ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_reads_like_the_plain_file(tmp_path, kind):
    if kind == "pcap":
        blob = pcap_file(sample_frames(300))
    else:
        blob = two_section_pcapng()[0]
    plain = tmp_path / f"plain.{kind}"
    plain.write_bytes(blob)
    packed = tmp_path / f"packed.{kind}.gz"
    packed.write_bytes(gzip.compress(blob))

    assert read_all(packed) == (read_all(plain)[0], [])


def test_gzip_cut_short_keeps_what_was_decompressed(tmp_path):
    frames = sample_frames(2000)
    packed = gzip.compress(pcap_file(frames))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])

    records, problems = read_all(path)

    assert 0 < len(records) < len(frames)
    assert [r.data for r in records] == [f.data for f in frames[: len(records)]]
    assert any("gzip" in p.detail for p in problems)


def test_gzip_of_something_else_is_refused(tmp_path):
    path = tmp_path / "notes.txt.gz"
    path.write_bytes(gzip.compress(b"HELLO world, this is text"))
    with pytest.raises(CaptureError, match=r"not a capture file \(magic 0x48454c4c"):
        open_capture(path)


# -- files that are not captures ------------------------------------------------


def test_bad_magic_names_the_file_and_what_was_found(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"HELLO, not a capture")
    with pytest.raises(CaptureError) as caught:
        open_capture(path)
    assert str(caught.value) == (
        f"{path}: not a capture file (magic 0x48454c4c, expected pcap, pcapng or gzip)"
    )


@pytest.mark.parametrize("content", [b"", b"\xd4\xc3"], ids=["empty", "two-bytes"])
def test_empty_or_tiny_file_is_refused(tmp_path, content):
    path = tmp_path / "tiny.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match="not a capture file"):
        open_capture(path)


def test_pcap_header_cut_short_is_refused(tmp_path):
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_header()[:20])
    with pytest.raises(CaptureError, match="pcap file header cut short"):
        open_capture(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path / "absent.pcap")
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path)


# -- damage -----------------------------------------------------------------------


def test_truncated_last_pcap_record_is_a_problem(tmp_path):
    frames = sample_frames(4)
    frames[-1] = frames[-1]._replace(data=bytes(1514))
    blob = pcap_file(frames)
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob[: len(blob) - 1514 + 300])

    records, problems = read_all(path)

    assert [r.index for r in records] == [1, 2, 3]
    assert problems == [
        CaptureProblem(
            str(path), 4, "record 4 truncated: header says 1514 bytes, file ends after 300"
        )
    ]


def test_truncated_record_header_is_a_problem(tmp_path):
    blob = pcap_file(sample_frames(3))
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob + b"\x01" * 7)

    records, problems = read_all(path)

    assert len(records) == 3
    assert [p.index for p in problems] == [4]
    assert "header is cut short" in problems[0].detail


def test_truncated_last_pcapng_block_is_a_problem(tmp_path):
    blob = pcapng_shb() + pcapng_idb(1) + b"".join(
        pcapng_epb(0, BASE_SEC * 10**6 + i, sample_frame(i)) for i in range(3)
    )
    path = tmp_path / "cut.pcapng"
    path.write_bytes(blob[:-20])

    records, problems = read_all(path)

    assert [r.index for r in records] == [1, 2]
    assert [p.index for p in problems] == [3]
    assert problems[0].detail.startswith("record 3 truncated: header says")


@pytest.mark.parametrize("order", ["<", ">"])
def test_garbled_pcap_length_resynchronises(tmp_path, order):
    frames = sample_frames(20)
    records_bytes = [pcap_record(f, order=order) for f in frames]
    # Record 8 claims 16 MB; its real bytes stay in place.
    garbled = bytearray(records_bytes[7])
    garbled[8:12] = struct.pack(order + "I", 0x00FFFFFF)
    records_bytes[7] = bytes(garbled)
    path = tmp_path / "garbled.pcap"
    path.write_bytes(pcap_header(order=order, snaplen=1514) + b"".join(records_bytes))

    records, problems = read_all(path)

    assert [r.data for r in records] == [f.data for i, f in enumerate(frames) if i != 7]
    # The damaged record keeps its number, so later ones match tshark's.
    assert [r.index for r in records] == [i + 1 for i in range(20) if i != 7]
    assert len(problems) == 1 and problems[0].index == 8
    assert f"skipped {len(records_bytes[7])} bytes" in problems[0].detail


def test_garbage_between_pcap_records_is_skipped(tmp_path):
    frames = sample_frames(10)
    records_bytes = [pcap_record(f) for f in frames]
    junk = bytes(range(256)) * 3 + b"\xff\xff\xff\xff" * 8
    path = tmp_path / "junk.pcap"
    path.write_bytes(
        pcap_header(snaplen=1514) + b"".join(records_bytes[:5]) + junk
        + b"".join(records_bytes[5:])
    )

    records, problems = read_all(path)

    assert [r.data for r in records] == [f.data for f in frames]
    assert problems and all(p.index == 6 for p in problems)


def test_record_over_snaplen_is_kept_when_framing_is_sound(tmp_path):
    # Some writers state a snaplen smaller than what they write.
    frames = sample_frames(5)
    path = tmp_path / "snaplen.pcap"
    path.write_bytes(pcap_file(frames, snaplen=40))

    records, problems = read_all(path)

    assert [r.data for r in records] == [f.data for f in frames]
    assert len(problems) == 1
    assert "exceeds the snaplen of 40; kept" in problems[0].detail


def test_damaged_pcapng_block_resynchronises(tmp_path):
    blocks = [pcapng_epb(0, BASE_SEC * 10**6 + i, sample_frame(i)) for i in range(10)]
    damaged = bytearray(blocks[4])
    damaged[-4:] = struct.pack("<I", 12345)  # trailing length disagrees
    blocks[4] = bytes(damaged)
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(
        pcapng_shb() + pcapng_idb(1) + b"".join(blocks[:7]) + b"\x00junk!"
        + b"".join(blocks[7:])
    )

    records, problems = read_all(path)

    assert [r.index for r in records] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert [r.data for r in records] == [sample_frame(i) for i in range(10) if i != 4]
    assert [p.index for p in problems] == [5, 8]
    assert "skipped" in problems[0].detail


def test_problems_are_bounded_but_counted(tmp_path):
    # Thirty packets for an interface the section never described.
    path = tmp_path / "strays.pcapng"
    path.write_bytes(
        pcapng_shb() + pcapng_idb(1)
        + b"".join(pcapng_epb(1, i, sample_frame(i)) for i in range(30))
        + pcapng_epb(0, 0, sample_frame(30))
    )

    with open_capture(path, max_problems=3) as reader:
        records = list(reader)

    assert [r.index for r in records] == [31]
    assert len(reader.problems) == 3
    assert reader.problem_count == 30


def test_small_chunks_cut_records_anywhere(tmp_path, monkeypatch):
    # Records straddle every possible chunk boundary, including a large one.
    frames = sample_frames(40)
    frames[17] = frames[17]._replace(data=bytes(range(256)) * 800)
    pcap_path = tmp_path / "chunks.pcap"
    pcap_path.write_bytes(pcap_file(frames, snaplen=262144))
    ng_path = tmp_path / "chunks.pcapng"
    ng_path.write_bytes(
        pcapng_shb() + pcapng_idb(1)
        + b"".join(pcapng_epb(0, i, f.data) for i, f in enumerate(frames))
    )
    monkeypatch.setattr(capture, "CHUNK_SIZE", 7)

    for path in (pcap_path, ng_path):
        records, problems = read_all(path)
        assert problems == []
        assert [r.data for r in records] == [f.data for f in frames]


def test_close_stops_iteration_and_context_manager_closes(tmp_path):
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap_file(sample_frames(5)))
    with open_capture(path) as reader:
        iterator = iter(reader)
        assert next(iterator).index == 1
    assert list(iterator) == []


@given(
    cut=st.integers(min_value=0, max_value=2000),
    flips=st.lists(
        st.tuples(st.integers(min_value=24, max_value=2000), st.integers(1, 255)),
        max_size=4,
    ),
)
def test_any_damage_never_raises_and_keeps_records_before_it(cut, flips):
    blob = bytearray(pcap_file(sample_frames(20), snaplen=200))
    for offset, mask in flips:
        if offset < len(blob):
            blob[offset] ^= mask
    blob = bytes(blob[: max(24, len(blob) - cut)])
    first_damage = min([o for o, _ in flips if o < len(blob)] + [len(blob)])

    path = _scratch_file(blob)
    try:
        records, _problems = read_all(path)
    finally:
        os.unlink(path)

    intact = pcap_file(sample_frames(20), snaplen=200)
    offset = 24
    for record in records:
        end = offset + 16 + len(record.data)
        if end > first_damage:
            break
        assert intact[offset + 16 : end] == record.data
        offset = end


def _scratch_file(blob: bytes) -> str:
    import tempfile

    handle, path = tempfile.mkstemp(suffix=".pcap")
    with os.fdopen(handle, "wb") as file:
        file.write(blob)
    return path


@given(data=st.binary(min_size=0, max_size=600))
def test_random_pcapng_bodies_never_raise(data):
    path = _scratch_file(pcapng_shb() + pcapng_idb(1) + data)
    try:
        read_all(path)
    finally:
        os.unlink(path)


# -- public captures ---------------------------------------------------------------


CORPUS = corpus_files()
needs_corpus = pytest.mark.skipif(not CORPUS, reason="../shared/captures is not present")


@needs_corpus
@pytest.mark.skipif(CAPINFOS is None, reason="capinfos is not installed")
def test_public_captures_count_like_capinfos():
    counts = capinfos_counts(CORPUS)
    for path in CORPUS:
        records, problems = read_all(path)
        assert (path, len(records)) == (path, counts[path])
        assert (path, problems) == (path, [])
        assert [r.index for r in records] == list(range(1, len(records) + 1))


@needs_corpus
@needs_tshark
@pytest.mark.skipif(MERGECAP is None, reason="mergecap is not installed")
def test_public_captures_timestamps_match_tshark():
    seen = corpus_tshark()
    for path in CORPUS:
        records, _ = read_all(path)
        rows = seen[path]
        assert len(rows) == len(records), path
        for row, record in zip(rows, records):
            assert float(row[1]) == pytest.approx(record.ts, abs=1e-6), (path, record.index)
