"""Checks that our DNP3 dissector agrees with tshark on every frame both decode.

For each capture (the fixtures and ``../shared/captures/dnp3/``), tshark (see
:mod:`tshark_oracle`) and ``otdpi.read`` decode the same file. Both sides are
cut into *units* per capture frame, in stream order: on tshark's side a
``dnp3`` layer that shows an application layer, or a link-only frame (no
transport octet), or a CRC error; on ours every message except reports of
bytes passed over between frames. A frame agrees when it has as many units
on both sides and each pair agrees on every compared value. The test fails
when fewer than 99.9 % of the frames both decode agree, and lists each
differing frame.

Compared, for every unit: link source and destination addresses and the
control octet (direction, primary, FCB/FCV, link function), and whether a
CRC is wrong. For units with an application layer: the function code, the
IIN (tshark's ``dnp3.al.iin``, IIN1 in the high octet), and for each object
header in order its group and variation (``dnp3.al.obj``), prefix and range
codes, range start and stop, and item count (``dnp3.al.range.quantity``, only
shown for count qualifiers); and the fields of every CROB and PCB (group 12
variations 1 and 2): operation type, clear and trip-close bits of the control
code, count, on-time, off-time and status. On units we call malformed only
the link values and the function code are compared, since a malformed
message promises nothing more.

Frames left out, each counted and printed with its reason: frames tshark marks
malformed (``_ws.malformed``): these include opendnp3's integrity-poll
responses carrying group 50 variation 4 (indexed absolute time and long
interval), which tshark 4.0 does not know and calls malformed while we decode
it; and frames where tshark shows a one-segment fragment with the content of
an earlier connection's (see :func:`_stale_reassembly`); and TCP
retransmissions, which our flow table removes and tshark dissects again.
Frames only one side decodes are counted (tshark-only, ours-only) but are
outside the agreement ratio; at least :data:`MIN_SHARE_COMPARED` of tshark's
remaining frames must be compared, so the test cannot pass on nearly nothing.

Run ``pytest -s tests/test_dnp3_tshark.py`` to see the figures of each capture.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import tshark_oracle

import otdpi

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED_DNP3 = REPO.parent / "shared" / "captures" / "dnp3"

DNP3_PORT = 20000
# Captures whose DNP3 server port is not 20000 (tshark must be told; we probe).
CAPTURE_PORTS = {"zeek_dnp3_read_p20001.pcap": 20001, "dnp3_opendnp3.pcap": 20001}

MIN_AGREEMENT = 0.999
MIN_SHARE_COMPARED = 0.9
MAX_LISTED_DIFFERENCES = 40

LAYERS = ("tcp", "dnp3", "_ws.malformed")
DISPLAY_FILTER = "dnp3"

# Function codes whose object headers tshark 4.0 does not decode (it shows the
# application header only); for these only the header values are compared.
TSHARK_SHOWS_NO_OBJECTS = frozenset({16, 17, 18, 22, 32, 33, 131})
# Octet-string groups (static and event), whose variation is the string's
# length: tshark 4.0 shows their dnp3.al.obj with variation 0.
STRING_GROUPS = frozenset({110, 111})

_CROB_FIELDS = ("dnp3.ctl.op", "dnp3.ctl.clr", "dnp3.ctl.trip", "dnp3.al.count",
                "dnp3.al.on_time", "dnp3.al.off_time", "dnp3.al.ctrlstatus")


def captures() -> list[Path]:
    found = sorted(FIXTURES.glob("dnp3_*.pcap"))
    if SHARED_DNP3.is_dir():
        found += sorted(SHARED_DNP3.glob("*.pcap*"))
    return found


def _request(path: Path) -> tshark_oracle.Request:
    port = CAPTURE_PORTS.get(path.name, DNP3_PORT)
    prefs = {"dnp3.tcp.port": str(port), "dnp3.udp.port": str(port)} \
        if port != DNP3_PORT else {}
    return tshark_oracle.request(path, LAYERS, DISPLAY_FILTER, prefs)


# --- tshark's side -----------------------------------------------------------


def _ints(layer: tshark_oracle.Layer, name: str) -> tuple[int, ...]:
    return tuple(int(v, 0) for v in layer.fields.get(name, ()))


def tshark_unit(layer: tshark_oracle.Layer) -> tuple | None:
    """The compared values of one ``dnp3`` layer, or None if it is not a unit."""
    fields = layer.fields
    link = (("source", int(layer.first("dnp3.src"))),
            ("destination", int(layer.first("dnp3.dst"))),
            ("control", int(layer.first("dnp3.ctl"), 16)))
    statuses = fields.get("dnp.hdr.CRC.status", []) + \
        fields.get("dnp.data_chunk.CRC.status", [])
    if any(s != "1" for s in statuses):
        return link + (("bad_crc", True),)
    if "dnp3.al.func" not in fields:
        if "dnp3.tr.ctl" in fields:
            return None  # a transport segment that finished no fragment
        return link
    app = (("function_code", int(layer.first("dnp3.al.func"))),)
    detail = (
        ("iin", _ints(layer, "dnp3.al.iin")),
        ("objects", _ints(layer, "dnp3.al.obj")),
        ("prefix", _ints(layer, "dnp3.al.objq.prefix")),
        ("range", _ints(layer, "dnp3.al.objq.range")),
        ("start", _ints(layer, "dnp3.al.range.start")),
        ("stop", _ints(layer, "dnp3.al.range.stop")),
        ("quantity", _ints(layer, "dnp3.al.range.quantity")),
        ("crob", tuple(_ints(layer, name) for name in _CROB_FIELDS)),
    )
    return link + app + detail


def _stale_reassembly(frame: tshark_oracle.Frame) -> bool:
    """Whether tshark shows, for a one-segment fragment, one from other frames.

    tshark 4.0 keys its fragment table by addresses and sequence numbers
    without the TCP connection, so a new connection whose FIR+FIN segment
    reuses an old key is shown with the old connection's fragment (its
    ``dnp3.al.fragment`` names an earlier frame). Such frames are excluded.
    """
    for layer in frame.layers:
        if layer.name != "dnp3":
            continue
        control = layer.first("dnp3.tr.ctl")
        if control is None or int(control, 16) & 0xC0 != 0xC0:
            continue
        if layer.fields.get("dnp3.al.fragment", [str(frame.number)]) != [
                str(frame.number)]:
            return True
    return False


def _retransmission(frame: tshark_oracle.Frame) -> bool:
    """Whether tshark calls the frame a TCP retransmission.

    Our flow table drops retransmitted bytes before the dissector sees them;
    tshark dissects the copy again (ndpi_dnp3.pcap holds every packet three
    times), so such frames are tshark-only by design and are excluded.
    """
    return any(layer.name == "tcp" and (
        "tcp.analysis.retransmission" in layer.fields
        or "tcp.analysis.spurious_retransmission" in layer.fields)
        for layer in frame.layers)


def tshark_side(path: Path) -> tuple[dict[int, list[tuple]], set[int]]:
    units: dict[int, list[tuple]] = {}
    malformed: set[int] = set()
    for frame in tshark_oracle.decode(_request(path)):
        if any(layer.name == "_ws.malformed" for layer in frame.layers):
            malformed.add(frame.number)
            continue
        if _stale_reassembly(frame) or _retransmission(frame):
            malformed.add(-frame.number)  # counted apart: negative numbers
            continue
        found = [tshark_unit(layer) for layer in frame.layers if layer.name == "dnp3"]
        found = [u for u in found if u is not None]
        if found:
            units[frame.number] = found
    return units, malformed


# --- our side --------------------------------------------------------------------


def our_unit(message) -> tuple:
    fields = message.fields
    link = (("source", fields["source"]), ("destination", fields["destination"]),
            ("control", fields["link_control"]))
    if "bad_crc_blocks" in fields:
        return link + (("bad_crc", True),)
    if "function_code" not in fields:
        return link
    app = (("function_code", fields["function_code"]),)
    if message.status.state == "malformed":
        return link + app + (("malformed", True),)
    if fields["function_code"] in TSHARK_SHOWS_NO_OBJECTS:
        return link + app + (("header_only", True),)
    objects = fields.get("objects", [])
    crob: list[list[int]] = [[] for _ in _CROB_FIELDS]
    for obj in objects:
        if obj["group"] == 41:  # analog output block: tshark's ctrlstatus too
            crob[-1].extend(p["status"] for p in obj.get("points", ()) if "status" in p)
        if obj["group"] != 12 or obj["variation"] not in (1, 2):
            continue
        for point in obj.get("points", ()):
            if "control_code" not in point:
                continue
            code = point["control_code"]
            values = (code & 0x0F, code >> 5 & 1, code >> 6, point["count"],
                      point["on_time"], point["off_time"], point["status"])
            for column, value in zip(crob, values):
                column.append(value)
    detail = (
        ("iin", (fields["iin"],) if "iin" in fields else ()),
        ("objects", tuple(o["group"] << 8 | (0 if o["group"] in STRING_GROUPS
                                             else o["variation"]) for o in objects)),
        ("prefix", tuple(o["prefix_code"] for o in objects)),
        ("range", tuple(o["range_code"] for o in objects)),
        ("start", tuple(o["start"] for o in objects if "start" in o)),
        ("stop", tuple(o["stop"] for o in objects if "stop" in o)),
        ("quantity", tuple(o["count"] for o in objects if "count" in o)),
        ("crob", tuple(tuple(c) for c in crob)),
    )
    return link + app + detail


def our_side(path: Path) -> dict[int, list[tuple]]:
    units: dict[int, list[tuple]] = {}
    for message in otdpi.read(path, protocols=["dnp3"]):
        if message.service == "unframed_bytes":
            continue
        units.setdefault(message.frame, []).append(our_unit(message))
    return units


def _agree(ours: tuple, theirs: tuple) -> bool:
    mine = dict(ours)
    other = dict(theirs)
    if mine.pop("header_only", False):
        mine["iin"] = other.get("iin")
        return all(other.get(k) == v for k, v in mine.items())
    if mine.pop("malformed", False):
        return all(other.get(k) == v for k, v in mine.items())
    return mine == other


# --- the comparison ------------------------------------------------------------


class Figures:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.differences: list[str] = []


def compare(path: Path) -> Figures:
    theirs, tshark_malformed = tshark_side(path)
    ours = our_side(path)
    figures = Figures()
    counts = figures.counts
    counts["excluded_tshark_malformed"] = sum(1 for n in tshark_malformed if n > 0)
    counts["excluded_stale_or_retransmitted"] = sum(
        1 for n in tshark_malformed if n < 0)
    for number in sorted(set(theirs) | set(ours)):
        if number in tshark_malformed or -number in tshark_malformed:
            continue
        mine = ours.get(number)
        other = theirs.get(number)
        if other is None:
            counts["ours_only"] += 1
            continue
        if mine is None:
            counts["tshark_only"] += 1
            continue
        counts["compared"] += 1
        if len(mine) == len(other) and all(map(_agree, mine, other)):
            counts["agreed"] += 1
        else:
            counts["differed"] += 1
            figures.differences.append(
                f"{path.name} frame {number}:\n  ours:   {mine}\n  tshark: {other}")
    return figures


@pytest.fixture(scope="module", autouse=True)
def _prefetch():
    if tshark_oracle.available():
        tshark_oracle.prefetch(_request(p) for p in captures())


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_agrees_with_tshark(path: Path) -> None:
    figures = compare(path)
    counts = figures.counts
    print(f"\n{path.name}: {dict(counts)}")
    compared = counts["compared"]
    if compared == 0 and counts["tshark_only"] == 0:
        excluded = counts["excluded_tshark_malformed"]
        pytest.skip(f"tshark calls all {excluded} DNP3 frames here malformed"
                    if excluded else "tshark decodes no DNP3 frame here")
    assert compared, f"no frame compared: {dict(counts)}"
    share = compared / (compared + counts["tshark_only"])
    assert share >= MIN_SHARE_COMPARED, f"only {share:.1%} of tshark's frames compared"
    agreement = counts["agreed"] / compared
    listed = "\n".join(figures.differences[:MAX_LISTED_DIFFERENCES])
    assert agreement >= MIN_AGREEMENT, (
        f"{agreement:.3%} of {compared} frames agree; differing frames:\n{listed}")


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_overall_agreement() -> None:
    """All captures together, so the figure in docs/protocols/dnp3.md is checked."""
    total: Counter[str] = Counter()
    for path in captures():
        total.update(compare(path).counts)
    print(f"\nall DNP3 captures: {dict(total)}")
    if not total["compared"]:
        pytest.skip("no DNP3 capture present")
    assert total["agreed"] / total["compared"] >= MIN_AGREEMENT


@pytest.mark.skipif(not tshark_oracle.available(), reason="tshark is not installed")
def test_benchmark_capture_generator_agrees_with_tshark(tmp_path: Path) -> None:
    """The benchmark's capture is DNP3 that tshark and we read alike, frame by frame."""
    import importlib.util
    import sys

    generator = REPO / "benchmarks" / "make_dnp3_capture.py"
    spec = importlib.util.spec_from_file_location("make_dnp3_capture", generator)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path = tmp_path / "dnp3_bench.pcap"
    stats = module.write_capture(str(path), 3000, seed=5)
    counts = compare(path).counts
    assert counts["compared"] == stats["fragments"]
    assert counts["agreed"] == counts["compared"]
