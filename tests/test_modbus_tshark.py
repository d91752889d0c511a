"""Checks that our Modbus dissector agrees with tshark on every frame both decode.

For each capture, tshark (see :mod:`tshark_oracle`) and ``otdpi.read`` decode the
same file; both sides are grouped by frame, the ADUs of a frame are paired in
stream order, and each pair is compared field by field. A frame agrees when it
holds as many ADUs on both sides and every compared field is equal. The test
fails when fewer than 99.9 % of the frames both decode agree, and lists every
differing frame.

What is compared, and how tshark 4.0's fields are read
------------------------------------------------------
Always, for every ADU pair: ``transaction_id`` (``mbtcp.trans_id``), ``unit_id``
(``mbtcp.unit_id``), the function code, whether it is an exception, and the
direction (``kind``); the ``exception_code`` wherever both call it an exception. The rest only where both sides
decode it, that is where tshark shows the field and our message has the key;
:data:`RULES` lists them. Normalisations, each forced by how tshark shows things:

* tshark's ``modbus.func_code`` drops the exception bit and marks an exception by
  the presence of ``modbus.exception_code``; ours keeps the raw byte (0x83). We
  compare ``function_code & 0x7f`` and the exception flag separately.
* tshark tells requests from responses by port alone (a frame to the Modbus port
  is a query, one from it a response, anything else "cannot classify"). We
  derive tshark's verdict from the frame's ports the same way and compare it
  with our ``kind``.
* Read responses carry no address on the wire. tshark numbers their registers
  and bits (``modbus.regnum16``, ``modbus.bitnum``) from the matched request's
  reference number; where tshark matched a request and our response carries an
  ``address``, the two are compared.
* tshark shows the quantity of functions 1, 2 and 15 as ``modbus.bit_cnt`` and
  of 3, 4 and 16 as ``modbus.word_cnt``; both map to our ``quantity``.
* Single-coil and single-register values are ``modbus.data`` in tshark (the
  rest of the PDU, whose first two bytes are the value) and ``value`` (the raw
  16-bit word) in ours.
* Function 15 requests: tshark gives the packed coil bytes (``modbus.data``); we
  unpack them first bit first and cut to ``modbus.bit_cnt`` before comparing
  with our ``bits``.
* Read-coil responses: tshark lists ``modbus.bitval`` cut to the matched
  request's quantity, or every bit of the data when it matched none; ours may
  carry the padding bits of the last byte. The lists must have the same number
  of bytes' worth of bits and agree on the shorter length.
* Function 23: tshark shows the registers written (request) and read (response)
  only as raw bytes (``modbus.data``) running to the end of the PDU, whatever
  the byte count says. They are cut to ``modbus.byte_cnt`` bytes, as the
  standard delimits the values, split into big-endian 16-bit words and
  compared with our ``registers``.
* Read Device Identification: tshark gives string objects (ids 0 to 6) as
  ``modbus.object_str_value`` and the others as raw bytes (``modbus.object_value``),
  each list in object order; ours gives each object's ``value`` as text decoded
  as latin-1. Both are compared as one list of (id, text).
* Bytes fields come out of ``tshark -T json`` as ``aa:bb``; the colons are dropped.

Frames left out, each counted and printed with its reason: frames tshark marks
malformed (``_ws.malformed``); frames whose direction tshark cannot tell (both
or neither port is the Modbus port, or ``mbtcp.cannot_classify``). Frames only
one side decodes are counted (tshark-only, ours-only) but are outside the
agreement ratio; to keep the test from passing on nearly nothing, each capture
must have at least one frame compared and at least :data:`MIN_SHARE_COMPARED` of
tshark's remaining frames compared.

On ADUs our dissector calls malformed, only the header fields, the function code
and the direction are compared: a malformed message promises nothing more.

tshark decodes Modbus on one server port per run (502, or the port a fixture
was recorded on); a capture with Modbus servers on further ports gets one more
run per port (:data:`OTHER_MODBUS_PORTS`), each comparing only that port's flows.

Frames whose disagreement has been diagnosed as our fault are listed, with the
diagnosis, in :data:`KNOWN_DISAGREEMENTS`; they are counted apart while they
still disagree, and the test fails once one of them agrees, so that the list is
cut down as the faults are fixed. Runs that fail throughout for one diagnosed
fault are strict ``xfail`` (:data:`KNOWN_FAILING`), which likewise fail once the
fault is fixed.

Run ``pytest -s tests/test_modbus_tshark.py`` to see the figures of each capture.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import tshark_oracle

from otdpi.message import STATUS_OK, Endpoint, Message, Status

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED_MODBUS = REPO.parent / "shared" / "captures" / "modbus"

MODBUS_PORT = 502
# Fixtures recorded on another port, so that dissector selection has to probe.
FIXTURE_PORTS = {"modbus_pymodbus.pcap": 5020}

MIN_AGREEMENT = 0.999
# Of the frames tshark decodes and does not exclude, the share that must also
# be decoded by us and so compared.
MIN_SHARE_COMPARED = 0.9
MAX_LISTED_DIFFERENCES = 60

# Disagreements diagnosed as faults on our side, by capture and frame. They are
# kept out of the agreement figure while they last; once a frame agrees, the
# test fails until its entry is removed, so that the list never goes stale.
KNOWN_DISAGREEMENTS: dict[str, dict[int, str]] = {}

# Captures with Modbus on further server ports. tshark takes one Modbus port
# at a time, so each is a run of its own, and each run compares only the flows
# on its port (the others are ours-only there).
OTHER_MODBUS_PORTS = {"agentcarter_mixed_ot_1.pcapng": (503, 505)}

# Whole runs known to fail, diagnosed as faults on our side; strict, so that a
# fix makes the run pass and the entry has to go.
KNOWN_FAILING: dict[tuple[str, int], str] = {}

EXCEPTION_BIT = 0x80
LAYERS = ("mbtcp", "modbus", "_ws.malformed")
DISPLAY_FILTER = "modbus || mbtcp"


# --- tshark's side ------------------------------------------------------------


class TsharkAdu(NamedTuple):
    """One Modbus/TCP ADU as tshark shows it: MBAP header and PDU fields."""

    header: dict[str, list[str]]
    body: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.body.get(name) or self.header.get(name)
        return values[0] if values else None


class TsharkFrame(NamedTuple):
    number: int
    adus: tuple[TsharkAdu, ...]
    malformed: bool
    cannot_classify: bool


def tshark_request(path: Path, port: int) -> tshark_oracle.Request:
    prefs = {"mbtcp.tcp.port": str(port)} if port != MODBUS_PORT else {}
    return tshark_oracle.request(path, LAYERS, DISPLAY_FILTER, prefs)


def tshark_frames(frames: Iterable[tshark_oracle.Frame]) -> dict[int, TsharkFrame]:
    """Group each frame's layers into ADUs: an ``mbtcp`` layer opens one."""
    grouped = {}
    for frame in frames:
        adus: list[TsharkAdu] = []
        malformed = cannot_classify = False
        for layer in frame.layers:
            if layer.name == "mbtcp":
                adus.append(TsharkAdu(layer.fields, {}))
                cannot_classify |= "mbtcp.cannot_classify" in layer.fields
            elif layer.name == "modbus":
                if adus and not adus[-1].body:
                    adus[-1] = TsharkAdu(adus[-1].header, layer.fields)
                else:
                    adus.append(TsharkAdu({}, layer.fields))
            elif layer.name == "_ws.malformed":
                malformed = True
        grouped[frame.number] = TsharkFrame(
            frame.number, tuple(adus), malformed, cannot_classify
        )
    return grouped


def tshark_kind(ours: Message, port: int) -> str | None:
    """tshark's verdict on direction, by its own rule: ports only."""
    src, dst = ours.src.port, ours.dst.port
    if dst == port and src != port:
        return "request"
    if src == port and dst != port:
        return "response"
    return None


# --- Reading tshark's text into our values --------------------------------------


def _int(text: str) -> int:
    # tshark prints most integers in decimal and a few (masks, levels) as 0x..
    return int(text, 16) if text.startswith("0x") else int(text)


def _raw(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _word(text: str) -> int:
    # tshark's data runs to the end of the PDU; the value is its first word.
    return int.from_bytes(_raw(text)[:2], "big")


def _registers_in_data(adu: TsharkAdu) -> list[int] | None:
    # tshark's data runs to the end of the PDU whatever the byte count says;
    # the standard has the byte count delimit the values, so cut there.
    data, count = adu.first("modbus.data"), adu.first("modbus.byte_cnt")
    if data is None:
        return None
    raw = _raw(data)
    if count is not None:
        raw = raw[: int(count)]
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2)]


def _field(name: str, convert: Callable[[str], Any] = _int):
    """Read tshark's first value of ``name``; None when tshark did not show it."""

    def read(adu: TsharkAdu) -> Any:
        text = adu.first(name)
        return None if text is None else convert(text)

    return read


def _all_ints(name: str):
    def read(adu: TsharkAdu) -> Any:
        values = adu.body.get(name)
        return None if values is None else [_int(v) for v in values]

    return read


def _coils_written(adu: TsharkAdu) -> list[int] | None:
    data, count = adu.first("modbus.data"), adu.first("modbus.bit_cnt")
    if data is None or count is None:
        return None
    bits = [(byte >> i) & 1 for byte in _raw(data) for i in range(8)]
    return bits[: int(count)]


def _first_number(adu: TsharkAdu) -> int | None:
    # Only meaningful when tshark matched the request it numbers from.
    if adu.first("modbus.request_frame") is None:
        return None
    number = adu.first("modbus.regnum16") or adu.first("modbus.bitnum")
    return None if number is None else int(number)


def _device_objects(adu: TsharkAdu) -> list[tuple[int, str]] | None:
    ids = adu.body.get("modbus.object_id")
    if ids is None:
        return None
    strings = iter(adu.body.get("modbus.object_str_value", []))
    raw = iter(adu.body.get("modbus.object_value", []))
    objects = []
    for text in ids:
        object_id = int(text)
        if object_id <= 6:
            objects.append((object_id, next(strings, None)))
        else:
            value = next(raw, None)
            objects.append(
                (object_id, None if value is None else _raw(value).decode("latin-1"))
            )
    return objects


def _our_objects(value: Any) -> Any:
    return [(o.get("id"), o.get("value")) for o in value]


class Rule(NamedTuple):
    """Compare our ``key`` with ``read(tshark ADU)`` for these codes and direction."""

    codes: frozenset[int]
    kind: str  # "request", "response" or "both"
    key: str
    read: Callable[[TsharkAdu], Any]
    ours: Callable[[Any], Any] | None = None  # normalises our value first


def _rule(codes, kind, key, read, ours=None) -> Rule:
    return Rule(frozenset(codes), kind, key, read, ours)


RULES = (
    # Addresses and quantities of requests and of the echoing write responses.
    _rule(
        (1, 2, 3, 4, 5, 6, 15, 16, 22),
        "request",
        "address",
        _field("modbus.reference_num"),
    ),
    _rule((5, 6, 15, 16, 22), "response", "address", _field("modbus.reference_num")),
    _rule((1, 2, 3, 4), "response", "address", _first_number),
    _rule((1, 2), "request", "quantity", _field("modbus.bit_cnt")),
    _rule((3, 4), "request", "quantity", _field("modbus.word_cnt")),
    _rule((15,), "both", "quantity", _field("modbus.bit_cnt")),
    _rule((16,), "both", "quantity", _field("modbus.word_cnt")),
    # Values.
    _rule((5, 6), "both", "value", _field("modbus.data", _word)),
    _rule((1, 2, 3, 4), "response", "byte_count", _field("modbus.byte_cnt")),
    _rule((15, 16, 23), "request", "byte_count", _field("modbus.byte_cnt")),
    _rule((23,), "response", "byte_count", _field("modbus.byte_cnt")),
    _rule((3, 4), "response", "registers", _all_ints("modbus.regval_uint16")),
    _rule((16,), "request", "registers", _all_ints("modbus.regval_uint16")),
    _rule((23,), "both", "registers", _registers_in_data),
    _rule((15,), "request", "bits", _coils_written),
    _rule((1, 2), "response", "bits", _all_ints("modbus.bitval")),
    _rule((22,), "both", "and_mask", _field("modbus.and_mask")),
    _rule((22,), "both", "or_mask", _field("modbus.or_mask")),
    # Read/Write Multiple Registers ranges.
    _rule((23,), "request", "read_address", _field("modbus.read_reference_num")),
    _rule((23,), "request", "read_quantity", _field("modbus.read_word_cnt")),
    _rule((23,), "request", "write_address", _field("modbus.write_reference_num")),
    _rule((23,), "request", "write_quantity", _field("modbus.write_word_cnt")),
    # Diagnostics and Read Device Identification.
    _rule((8,), "both", "sub_function", _field("modbus.diagnostic_code")),
    _rule((43,), "both", "mei_type", _field("modbus.mei")),
    _rule((43,), "both", "read_device_id_code", _field("modbus.read_device_id")),
    _rule((43,), "request", "object_id", _field("modbus.object_id")),
    _rule((43,), "response", "conformity_level", _field("modbus.conformity_level")),
    _rule((43,), "response", "more_follows", _field("modbus.more_follows")),
    _rule((43,), "response", "next_object_id", _field("modbus.next_object_id")),
    _rule((43,), "response", "number_of_objects", _field("modbus.num_objects")),
    _rule((43,), "response", "objects", _device_objects, _our_objects),
)


# --- The comparison -------------------------------------------------------------


class Difference(NamedTuple):
    frame: int
    adu: int  # 0-based position of the ADU in the frame
    field: str
    ours: Any
    tshark: Any


def _bits_agree(ours: list[int], theirs: list[int]) -> bool:
    # Same number of bytes' worth of bits, equal on the shorter length: tshark
    # cuts to the request's quantity, ours may keep the last byte's padding.
    if (len(ours) + 7) // 8 != (len(theirs) + 7) // 8:
        return False
    n = min(len(ours), len(theirs))
    return list(ours[:n]) == list(theirs[:n])


def compare_adu(
    ours: Message, theirs: TsharkAdu, port: int, counted: Counter | None = None
) -> list[tuple[str, Any, Any]]:
    """Every (field, ours, tshark's) that differs between two decodings of one ADU.

    ``counted`` (optional) gains one per field compared, the evidence that the
    agreement is not vacuous.
    """
    counted = Counter() if counted is None else counted
    found: list[tuple[str, Any, Any]] = []
    fields = ours.fields

    def check(name: str, our_value: Any, their_value: Any, equal=None) -> None:
        counted[name] += 1
        same = equal(our_value, their_value) if equal else our_value == their_value
        if not same:
            found.append((name, our_value, their_value))

    # Header, always.
    for key, tshark_name in (
        ("transaction_id", "mbtcp.trans_id"),
        ("unit_id", "mbtcp.unit_id"),
    ):
        theirs_text = theirs.header.get(tshark_name)
        check(key, fields.get(key), int(theirs_text[0]) if theirs_text else None)

    # Function code, exception flag and code, direction.
    our_code = fields.get("function_code")
    their_code = _field("modbus.func_code")(theirs)
    if their_code is None:
        return found  # tshark shows only the header; nothing more to compare
    our_base = None if our_code is None else our_code & ~EXCEPTION_BIT
    check("function_code", our_base, their_code)
    our_exception = our_code is not None and bool(our_code & EXCEPTION_BIT)
    their_exception = theirs.first("modbus.exception_code") is not None
    check("is_exception", our_exception, their_exception)
    their_kind = tshark_kind(ours, port)
    check("kind", ours.kind, their_kind)
    if our_exception and their_exception and ours.status.state != "malformed":
        check(
            "exception_code",
            fields.get("exception_code"),
            _field("modbus.exception_code")(theirs),
        )
    if ours.status.state == "malformed" or our_exception or their_exception:
        return found
    if found and any(name in ("function_code", "kind") for name, _, _ in found):
        return found  # the body rules would compare unlike things

    for rule in RULES:
        if their_code not in rule.codes or rule.kind not in (their_kind, "both"):
            continue
        if rule.key not in fields:
            continue
        their_value = rule.read(theirs)
        if their_value is None:
            continue
        our_value = fields[rule.key]
        if rule.ours is not None:
            our_value = rule.ours(our_value)
        equal = _bits_agree if rule.key == "bits" and their_kind == "response" else None
        check(rule.key, our_value, their_value, equal)
    return found


@dataclass
class Tally:
    """The figures of one capture."""

    name: str
    tshark_frames: int = 0
    ours_frames: int = 0
    excluded: Counter = field(default_factory=Counter)
    tshark_only: list[int] = field(default_factory=list)
    ours_only: list[int] = field(default_factory=list)
    compared: int = 0
    agreeing: int = 0
    values_compared: Counter = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    known_disagreeing: list[int] = field(default_factory=list)
    known_fixed: list[int] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agreeing / self.compared if self.compared else 0.0

    @property
    def comparable(self) -> int:
        """tshark's frames that are neither excluded nor known to disagree."""
        known = len(self.known_disagreeing) + len(self.known_fixed)
        return self.tshark_frames - sum(self.excluded.values()) - known

    def summary(self) -> str:
        excluded = ", ".join(
            f"{reason}: {n}" for reason, n in sorted(self.excluded.items())
        )
        values = ", ".join(f"{k} {v}" for k, v in sorted(self.values_compared.items()))
        return (
            f"{self.name}: tshark {self.tshark_frames} frames, "
            f"ours {self.ours_frames}; "
            f"excluded {sum(self.excluded.values())} ({excluded or 'none'}); "
            f"tshark-only {len(self.tshark_only)}, ours-only {len(self.ours_only)}; "
            f"known disagreements {len(self.known_disagreeing)}; "
            f"compared {self.compared}, agreeing {self.agreeing} "
            f"({100 * self.agreement:.3f} %)\n    values compared: {values or 'none'}"
        )


def compare_capture(
    name: str,
    ours: Iterable[Message],
    theirs: dict[int, TsharkFrame],
    port: int,
    known: Mapping[int, str] | None = None,
) -> Tally:
    """Compare our messages with tshark's frames; see the module docstring.

    ``known`` maps frame numbers to the reason they are known to disagree: such
    frames are kept out of the agreement while they still disagree, and listed
    in ``Tally.known_fixed`` once they agree.
    """
    known = known or {}
    tally = Tally(name, tshark_frames=len(theirs))
    ours_by_frame: dict[int, list[Message]] = {}
    for message in ours:
        if message.protocol == "modbus":
            ours_by_frame.setdefault(message.frame, []).append(message)
    tally.ours_frames = len(ours_by_frame)

    for number, frame in sorted(theirs.items()):
        mine = ours_by_frame.get(number)
        if frame.malformed:
            tally.excluded["tshark: malformed packet"] += 1
            continue
        if frame.cannot_classify or (mine and tshark_kind(mine[0], port) is None):
            tally.excluded["tshark: cannot tell query from response"] += 1
            continue
        if not mine:
            tally.tshark_only.append(number)
            continue

        differences = []
        if len(mine) != len(frame.adus):
            differences.append(
                Difference(
                    number,
                    -1,
                    "adu_count",
                    [m.fields.get("transaction_id") for m in mine],
                    [adu.first("mbtcp.trans_id") for adu in frame.adus],
                )
            )
        for index, (message, adu) in enumerate(zip(mine, frame.adus)):
            for name_, our_value, their_value in compare_adu(
                message, adu, port, tally.values_compared
            ):
                differences.append(
                    Difference(number, index, name_, our_value, their_value)
                )
        if number in known:
            if differences:
                tally.known_disagreeing.append(number)
            else:
                tally.known_fixed.append(number)
            continue
        tally.compared += 1
        if differences:
            tally.differences.extend(differences)
        else:
            tally.agreeing += 1

    tally.ours_only = sorted(set(ours_by_frame) - set(theirs))
    return tally


def describe(tally: Tally) -> str:
    """The differing frames, one line per field, for a failure message."""
    lines = [
        f"  {tally.name} frame {d.frame} adu {d.adu}: {d.field}: ours {d.ours!r} "
        f"vs tshark {d.tshark!r}"
        for d in tally.differences[:MAX_LISTED_DIFFERENCES]
    ]
    hidden = len(tally.differences) - len(lines)
    if hidden > 0:
        by_field = Counter(d.field for d in tally.differences)
        lines.append(
            f"  ... and {hidden} more; all differences by field: {dict(by_field)}"
        )
    return "\n".join(lines)


# --- The captures ----------------------------------------------------------------


def _param(path: Path, port: int):
    usual = port in (MODBUS_PORT, FIXTURE_PORTS.get(path.name))
    name = path.name if usual else f"{path.name}-port{port}"
    known = KNOWN_FAILING.get((path.name, port))
    marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
    return pytest.param(path, port, id=name, marks=marks)


def _captures() -> list:
    params = [
        _param(path, FIXTURE_PORTS.get(path.name, MODBUS_PORT))
        for path in sorted(FIXTURES.glob("modbus*.pcap*"))
    ]
    if SHARED_MODBUS.is_dir():
        for path in sorted(SHARED_MODBUS.glob("*.pcap*")):
            params += [
                _param(path, port)
                for port in (MODBUS_PORT, *OTHER_MODBUS_PORTS.get(path.name, ()))
            ]
    else:
        params.append(
            pytest.param(
                None,
                MODBUS_PORT,
                id="shared-captures",
                marks=pytest.mark.skip(reason=f"{SHARED_MODBUS} is absent"),
            )
        )
    return params


CAPTURES = _captures()

needs_tshark = pytest.mark.skipif(
    not tshark_oracle.available(), reason="tshark is not installed"
)


@pytest.fixture(scope="session")
def tshark_runs(request):
    """Start tshark on every selected capture at once, to run beside our engine."""
    requests = {}
    for item in request.session.items:
        if getattr(item, "function", None) is not test_agrees_with_tshark:
            continue
        path, port = item.callspec.params["path"], item.callspec.params["port"]
        if path is not None:
            requests[path, port] = tshark_request(path, port)
    tshark_oracle.prefetch(requests.values())
    return requests


@needs_tshark
@pytest.mark.parametrize(("path", "port"), CAPTURES)
def test_agrees_with_tshark(path: Path, port: int, tshark_runs) -> None:
    otdpi = pytest.importorskip("otdpi")
    if not hasattr(otdpi, "read"):
        pytest.skip("otdpi.read is not available yet")

    ours = otdpi.read(path, protocols=["modbus"])
    theirs = tshark_frames(tshark_oracle.decode(tshark_runs[path, port]))
    known = KNOWN_DISAGREEMENTS.get(path.name, {})
    tally = compare_capture(f"{path.name} port {port}", ours, theirs, port, known)
    print("\n" + tally.summary())

    assert not tally.known_fixed, (
        f"frames {tally.known_fixed} now agree with tshark: remove them from "
        f"KNOWN_DISAGREEMENTS[{path.name!r}]"
    )
    assert tally.compared > 0, f"no frame compared\n{tally.summary()}"
    assert tally.compared >= MIN_SHARE_COMPARED * tally.comparable, (
        f"only {tally.compared} of tshark's {tally.comparable} usable frames were "
        f"decoded by us too (first tshark-only frames: {tally.tshark_only[:20]})\n"
        f"{tally.summary()}"
    )
    assert tally.agreement >= MIN_AGREEMENT, (
        f"agreement {100 * tally.agreement:.3f} % is below {100 * MIN_AGREEMENT} %\n"
        f"{tally.summary()}\n{describe(tally)}"
    )


# --- The comparison itself, on hand-made data -------------------------------------

CLIENT = Endpoint("10.0.0.1", 40000)
SERVER = Endpoint("10.0.0.2", 502)


def _message(
    frame: int, kind: str, fields: dict, status: Status = STATUS_OK
) -> Message:
    src, dst = (CLIENT, SERVER) if kind == "request" else (SERVER, CLIENT)
    return Message(
        ts=0.0,
        frame=frame,
        flow=1,
        src=src,
        dst=dst,
        protocol="modbus",
        kind=kind,
        service="",
        service_code=fields.get("function_code"),
        action="read",
        fields=fields,
        status=status,
    )


def _tshark_frame(number: int, *adus: tuple[dict, dict]) -> TsharkFrame:
    return TsharkFrame(number, tuple(TsharkAdu(h, b) for h, b in adus), False, False)


def _header(tid: int, unit: int = 1) -> dict:
    return {"mbtcp.trans_id": [str(tid)], "mbtcp.unit_id": [str(unit)]}


# Frame 1: FC3 request; frame 2: its response; frame 3: an exception response;
# frame 4: two FC5 requests in one segment.
HAND_MADE_OURS = [
    _message(
        1,
        "request",
        {
            "transaction_id": 7,
            "unit_id": 1,
            "function_code": 3,
            "address": 100,
            "quantity": 2,
        },
    ),
    _message(
        2,
        "response",
        {
            "transaction_id": 7,
            "unit_id": 1,
            "function_code": 3,
            "byte_count": 4,
            "registers": [1, 65535],
        },
    ),
    _message(
        3,
        "response",
        {"transaction_id": 8, "unit_id": 1, "function_code": 0x83, "exception_code": 2},
    ),
    _message(
        4,
        "request",
        {
            "transaction_id": 9,
            "unit_id": 1,
            "function_code": 5,
            "address": 1,
            "value": 0xFF00,
        },
    ),
    _message(
        4,
        "request",
        {
            "transaction_id": 10,
            "unit_id": 1,
            "function_code": 5,
            "address": 2,
            "value": 0,
        },
    ),
]
HAND_MADE_TSHARK = {
    1: _tshark_frame(
        1,
        (
            _header(7),
            {
                "modbus.func_code": ["3"],
                "modbus.reference_num": ["100"],
                "modbus.word_cnt": ["2"],
            },
        ),
    ),
    2: _tshark_frame(
        2,
        (
            _header(7),
            {
                "modbus.func_code": ["3"],
                "modbus.request_frame": ["1"],
                "modbus.byte_cnt": ["4"],
                "modbus.regnum16": ["100", "101"],
                "modbus.regval_uint16": ["1", "65535"],
            },
        ),
    ),
    3: _tshark_frame(
        3, (_header(8), {"modbus.func_code": ["3"], "modbus.exception_code": ["2"]})
    ),
    4: _tshark_frame(
        4,
        (
            _header(9),
            {
                "modbus.func_code": ["5"],
                "modbus.reference_num": ["1"],
                "modbus.data": ["ff:00"],
            },
        ),
        (
            _header(10),
            {
                "modbus.func_code": ["5"],
                "modbus.reference_num": ["2"],
                "modbus.data": ["00:00"],
            },
        ),
    ),
}


def test_hand_made_frames_agree() -> None:
    tally = compare_capture("hand-made", HAND_MADE_OURS, HAND_MADE_TSHARK, MODBUS_PORT)

    assert tally.differences == []
    assert (tally.compared, tally.agreeing) == (4, 4)
    assert tally.values_compared["registers"] == 1
    assert tally.values_compared["exception_code"] == 1
    assert tally.values_compared["value"] == 2


def test_planted_register_difference_is_reported() -> None:
    planted = list(HAND_MADE_OURS)
    fields = dict(planted[1].fields, registers=[1, 65534])
    planted[1] = planted[1]._replace(fields=fields)

    tally = compare_capture("planted", planted, HAND_MADE_TSHARK, MODBUS_PORT)

    assert tally.differences == [Difference(2, 0, "registers", [1, 65534], [1, 65535])]
    assert (tally.compared, tally.agreeing) == (4, 3)
    assert "frame 2 adu 0: registers: ours [1, 65534] vs tshark [1, 65535]" in describe(
        tally
    )


def test_planted_header_and_direction_differences_are_reported() -> None:
    planted = list(HAND_MADE_OURS)
    planted[4] = planted[4]._replace(fields=dict(planted[4].fields, transaction_id=11))
    planted[2] = planted[2]._replace(kind="request")
    planted[0] = planted[0]._replace(
        fields=dict(planted[0].fields, function_code=0x83, exception_code=2)
    )

    tally = compare_capture("planted", planted, HAND_MADE_TSHARK, MODBUS_PORT)
    found = {(d.frame, d.adu, d.field) for d in tally.differences}

    assert (1, 0, "is_exception") in found
    assert (3, 0, "kind") in found
    assert (4, 1, "transaction_id") in found
    assert tally.agreeing == 1


def test_known_disagreements_are_counted_apart_until_fixed() -> None:
    planted = list(HAND_MADE_OURS)
    planted[1] = planted[1]._replace(fields=dict(planted[1].fields, registers=[0, 0]))
    known = {2: "planted", 3: "no longer differs"}

    tally = compare_capture("known", planted, HAND_MADE_TSHARK, MODBUS_PORT, known)

    assert tally.differences == []
    assert tally.known_disagreeing == [2]
    assert tally.known_fixed == [3]
    assert (tally.compared, tally.agreeing, tally.comparable) == (2, 2, 2)


def test_missing_adu_is_reported() -> None:
    tally = compare_capture(
        "dropped", HAND_MADE_OURS[:4], HAND_MADE_TSHARK, MODBUS_PORT
    )

    assert [d.field for d in tally.differences] == ["adu_count"]


def test_exclusions_and_one_sided_frames_are_counted_not_compared() -> None:
    theirs = dict(HAND_MADE_TSHARK)
    theirs[1] = theirs[1]._replace(malformed=True)
    theirs[5] = _tshark_frame(5, (_header(11), {"modbus.func_code": ["1"]}))
    ours = HAND_MADE_OURS + [
        _message(6, "request", {"transaction_id": 12, "unit_id": 1, "function_code": 1})
    ]
    # Both ports 502: tshark cannot classify frame 3.
    ours[2] = ours[2]._replace(dst=Endpoint("10.0.0.1", 502))

    tally = compare_capture("one-sided", ours, theirs, MODBUS_PORT)

    assert tally.excluded == Counter(
        {"tshark: malformed packet": 1, "tshark: cannot tell query from response": 1}
    )
    assert tally.tshark_only == [5]
    assert tally.ours_only == [6]
    assert tally.compared == 2


def test_coil_bits_normalisations() -> None:
    write = TsharkAdu(_header(1), {"modbus.data": ["4d:01"], "modbus.bit_cnt": ["9"]})
    assert _coils_written(write) == [1, 0, 1, 1, 0, 0, 1, 0, 1]
    # A read response: tshark cut to 9 bits, ours kept the 16 of two bytes.
    assert _bits_agree(
        [1, 0, 1, 1, 0, 0, 1, 0, 1] + [0] * 7, [1, 0, 1, 1, 0, 0, 1, 0, 1]
    )
    assert not _bits_agree(
        [1, 0, 1, 1, 0, 0, 1, 0, 0] + [0] * 7, [1, 0, 1, 1, 0, 0, 1, 0, 1]
    )
    assert not _bits_agree([0] * 24, [0] * 9)
