"""Checks that our HSMS dissector agrees with tshark on every frame both decode.

tshark 4.0 has an HSMS dissector (``hsms``) but no port for it: each capture is
decoded with Decode As (``-d tcp.port==N,hsms``) on the port its equipment
listens on. Both sides are grouped by frame (a message belongs to the frame
that completes it, on both sides), the messages of a frame are paired in
stream order, and each pair is compared:

* header: ``hsms.length``, session id, then for data messages the W-bit,
  stream and function, for control messages header bytes 2 and 3
  (``hsms.header.statusbyte2/3``), and PType, SType and system bytes;
* item structure: the format code, length byte count and length of every item
  in pre-order (``hsms.data.item.format``, ``.length_bytes``, ``.length``);
* item values, by tshark's value field per format (``value.string`` for A,
  ``value.uint32`` for U4, ``value.binary`` for B...), in pre-order; floats
  within tshark's printed precision.

A frame agrees when it holds as many messages on both sides and every compared
field is equal. The test fails when fewer than 99.9 % of the frames both
decode agree, and lists every differing frame.

tshark 4.0 decodes no JIS-8 (J) or 2-byte character (C2) item: it stops the
message text at the first one, without marking the frame malformed. On such
messages, tshark's items are compared with the prefix of ours before that
item; these messages are counted and printed.

Frames tshark marks malformed are left out and counted. Captures: the secsgem
fixture, a synthetic capture from ``benchmarks/make_hsms_capture.py`` (every
format code, 3-byte lengths, messages split over segments and several in one),
and ``../shared/captures/hsms/`` where present (decoded on port 5000; a capture
on another port would need its own entry in :func:`_shared`).

Run ``pytest -s tests/test_hsms_tshark.py`` to see the figures of each capture.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle

import otdpi
from dissectors.hsms.definitions import ELEMENT_SIZE, FormatCode
from dissectors.hsms.items import least_length_bytes

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "hsms_secsgem.pcap"
SHARED_HSMS = REPO.parent / "shared" / "captures" / "hsms"
GENERATOR = REPO / "benchmarks" / "make_hsms_capture.py"
PORT = 5000
MIN_AGREEMENT = 0.999
MAX_LISTED = 40

pytestmark = pytest.mark.skipif(
    not tshark_oracle.available(), reason="tshark not installed"
)

VALUE_FIELDS = {
    "A": "hsms.data.item.value.string", "B": "hsms.data.item.value.binary",
    "BOOLEAN": "hsms.data.item.value.boolean", "I1": "hsms.data.item.value.int8",
    "I2": "hsms.data.item.value.int16", "I4": "hsms.data.item.value.int32",
    "I8": "hsms.data.item.value.int64", "U1": "hsms.data.item.value.uint8",
    "U2": "hsms.data.item.value.uint16", "U4": "hsms.data.item.value.uint32",
    "U8": "hsms.data.item.value.uint64", "F4": "hsms.data.item.value.float",
    "F8": "hsms.data.item.value.double",
}  # fmt: skip
UNDECODED_BY_TSHARK = {"J", "C2"}


def _synthetic(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("make_hsms_capture", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("hsms") / "synthetic.pcap"
    module.write_capture(str(path), 6000, seed=11)
    return path


def _shared() -> list[tuple[Path, int]]:
    if not SHARED_HSMS.is_dir():
        return []
    return [(path, PORT) for path in sorted(SHARED_HSMS.glob("*.pcap*"))]


# --- our side -------------------------------------------------------------------------


def _walk(item: dict[str, Any] | None, out: list[dict[str, Any]]) -> bool:
    """Items in pre-order; False where an item tshark cannot decode was reached."""
    if item is None:
        return True
    if item["type"] in UNDECODED_BY_TSHARK:
        return False
    out.append(item)
    if item["type"] == "L":
        for child in item["value"]:
            if not _walk(child, out):
                return False
    return True


def _length(item: dict[str, Any]) -> int:
    kind, value = item["type"], item["value"]
    if kind == "L":
        return len(value)
    if kind == "B":
        return len(value) // 2
    if kind == "A":
        return len(value)
    return len(value) * ELEMENT_SIZE[FormatCode[kind]]


def ours_expected(message) -> tuple[dict[str, list[str]], bool]:
    """What tshark should show for one of our messages, as its field names."""
    f = message.fields
    expected: dict[str, list[Any]] = {
        "hsms.length": [f["length"]],
        "hsms.header.sessionid": [f["session_id"]],
        "hsms.header.ptype": [f["p_type"]],
        "hsms.header.stype": [f["s_type"]],
        "hsms.header.system": [f["system_bytes"]],
    }
    if f["s_type"]:
        expected["hsms.header.statusbyte2"] = [f["header_byte_2"]]
        expected["hsms.header.statusbyte3"] = [f["header_byte_3"]]
        return expected, True
    expected["hsms.header.wbit"] = [int(f["w_bit"])]
    expected["hsms.header.stream"] = [f["stream"]]
    expected["hsms.header.function"] = [f["function"]]
    items: list[dict[str, Any]] = []
    whole = _walk(f.get("item"), items)
    expected["hsms.data.item.format"] = [int(FormatCode[i["type"]]) for i in items]
    expected["hsms.data.item.length"] = [_length(i) for i in items]
    expected["hsms.data.item.length_bytes"] = [
        i.get("length_bytes", least_length_bytes(_length(i))) for i in items
    ]
    for item in items:
        name = VALUE_FIELDS.get(item["type"])
        if name is None:
            continue
        value = item["value"]
        if item["type"] == "A":
            expected.setdefault(name, []).append(value)
        elif item["type"] == "B":
            if value:  # tshark shows no value field for an empty binary item
                expected.setdefault(name, []).append(value)
        elif item["type"] == "BOOLEAN":
            expected.setdefault(name, []).extend(int(v) for v in value)
        else:
            expected.setdefault(name, []).extend(value)
    return expected, whole


# --- comparing ------------------------------------------------------------------------


def _same(name: str, ours: Any, theirs: str) -> bool:
    if name.endswith((".float", ".double")):
        value = float(theirs)
        return math.isclose(value, ours, rel_tol=1e-6, abs_tol=1e-30)
    if name.endswith(".binary"):
        return theirs.replace(":", "") == ours
    if name.endswith(".string"):
        return theirs == ours
    if name.endswith(".wbit") or name.endswith(".boolean"):
        return int(theirs in ("1", "True", "true")) == ours
    return int(theirs, 0) == ours


def compare_message(
    expected: dict[str, list[Any]], theirs: dict[str, list[str]]
) -> list[str]:
    problems = []
    names = set(expected) | {n for n in theirs if n.startswith("hsms.data.item.value")}
    for name in sorted(names):
        mine = expected.get(name, [])
        other = theirs.get(name, [])
        if len(mine) != len(other):
            problems.append(f"{name}: ours {len(mine)} values, tshark {len(other)}")
            continue
        for index, (a, b) in enumerate(zip(mine, other)):
            if not _same(name, a, b):
                problems.append(f"{name}[{index}]: ours {a!r}, tshark {b!r}")
                break
    return problems


def agreement(path: Path, port: int) -> dict[str, Any]:
    req = tshark_oracle.request(
        path, ("hsms", "_ws.malformed"), "hsms", decode_as=(f"tcp.port=={port},hsms",)
    )
    theirs: dict[int, list[dict[str, list[str]]]] = {}
    malformed_frames = set()
    for frame in tshark_oracle.decode(req):
        layers = [layer.fields for layer in frame.layers if layer.name == "hsms"]
        if any(layer.name == "_ws.malformed" for layer in frame.layers):
            malformed_frames.add(frame.number)
        theirs[frame.number] = layers

    ours: dict[int, list] = defaultdict(list)
    for message in otdpi.read(path, protocols=["hsms"]):
        if "length" in message.fields and message.status.state != "malformed":
            ours[message.frame].append(message)

    compared = agreed = cut_by_tshark = 0
    differing: list[str] = []
    for number in sorted(set(theirs) & set(ours)):
        if number in malformed_frames:
            continue
        compared += 1
        mine, other = ours[number], theirs[number]
        problems = []
        if len(mine) != len(other):
            problems.append(f"{len(mine)} messages ours, {len(other)} tshark")
        else:
            for index, (message, fields) in enumerate(zip(mine, other)):
                expected, whole = ours_expected(message)
                cut_by_tshark += not whole
                problems += [
                    f"message {index}: {p}" for p in compare_message(expected, fields)
                ]
        if problems:
            differing.append(f"frame {number}: " + "; ".join(problems[:4]))
        else:
            agreed += 1
    return {
        "compared": compared,
        "agreed": agreed,
        "tshark_only": len(set(theirs) - set(ours)),
        "ours_only": len(set(ours) - set(theirs)),
        "tshark_malformed": len(malformed_frames),
        "cut_by_tshark": cut_by_tshark,
        "differing": differing,
    }


def _check(name: str, result: dict[str, Any]) -> None:
    compared = result["compared"]
    share = result["agreed"] / compared if compared else 0.0
    print(
        f"\n{name}: {result['agreed']}/{compared} frames agree ({share:.4%}); "
        f"tshark-only {result['tshark_only']}, ours-only {result['ours_only']}, "
        f"tshark-malformed {result['tshark_malformed']}, messages whose items tshark "
        f"stops at a J or C2 item {result['cut_by_tshark']}"
    )
    assert compared > 0, f"{name}: no frame decoded by both"
    listed = "\n".join(result["differing"][:MAX_LISTED])
    assert share >= MIN_AGREEMENT, (
        f"{name}: {share:.4%} agree; differing frames:\n{listed}"
    )
    assert result["tshark_only"] == 0, f"{name}: frames only tshark decodes"


def test_fixture_agrees_with_tshark():
    result = agreement(FIXTURE, PORT)
    _check(FIXTURE.name, result)
    assert result["agreed"] == result["compared"]


def test_synthetic_capture_agrees_with_tshark(tmp_path_factory):
    path = _synthetic(tmp_path_factory)
    result = agreement(path, PORT)
    _check("synthetic", result)
    assert result["compared"] > 3000


@pytest.mark.skipif(not _shared(), reason="no ../shared/captures/hsms/ captures")
@pytest.mark.parametrize(
    ("path", "port"), _shared(), ids=lambda v: getattr(v, "name", v)
)
def test_shared_captures_agree_with_tshark(path, port):
    _check(path.name, agreement(path, port))
