"""The Modbus/TCP fuzz profile: cases from the dissector's definitions, a judge from it.

Valid requests are drawn from :data:`dissectors.modbus.definitions.REQUEST_BODIES`
through :mod:`otdpi.fuzzing.construct_strategies` and built with
:func:`~dissectors.modbus.definitions.build_adu`, with the standard's quantity
limits as boundaries. Mutations know the MBAP header and each body's counts:
a length field that lies, truncation inside a consistent header, truncation
of the bytes on the wire, several ADUs in one segment, a wrong protocol id,
function codes outside the standard, illegal sub-function, MEI and coil
values, byte counts and quantities that disagree with the data, and counts of
0 and beyond the maximum. Modbus has no nesting deeper than the file-record
sub-requests, which the count mutations cover.

Replies are judged by :class:`~dissectors.modbus.ModbusDissector` fed the
request and then the reply, as on the wire.
"""

from __future__ import annotations

import random
from functools import lru_cache
import re
import struct

from hypothesis import strategies as st

from dissectors.modbus.definitions import (
    EXCEPTION_BIT,
    MAX_QUANTITY,
    MAX_READ_WRITE_READ_QUANTITY,
    MAX_READ_WRITE_WRITE_QUANTITY,
    REQUEST_BODIES,
    DiagnosticSubFunction,
    FunctionCode,
    MeiType,
    build_adu,
    unpack_bits,
)
from dissectors.modbus.session import ModbusDissector
from otdpi.dissector import FlowContext
from otdpi.fuzzing.construct_strategies import boundary_integers, struct_strategy
from otdpi.fuzzing.profile import Case, FuzzProfile, Verdict
from otdpi.message import Endpoint

F = FunctionCode
_WRITES = (5, 6, 15, 16, 21, 22, 23)
_RARE = (7, 8, 11, 12, 17, 20, 24, 43, 90)
_READS = (1, 2, 3, 4)
# Writes, control (diagnostics' restarts) and rare codes are drawn three and
# two times as often as plain reads: that is where servers are least tested.
WEIGHTED_CODES = _READS + _WRITES * 3 + _RARE * 2
_UNKNOWN_CODES = tuple(
    code for code in range(1, 128) if code not in set(int(c) for c in FunctionCode)
)


def _bits(low: int, high: int):
    # Drawn as packed bytes: a list of 2,000 drawn integers costs hypothesis
    # tens of milliseconds, one byte string a fraction of that.
    return st.integers(low, high).flatmap(
        lambda n: st.binary(min_size=(n + 7) // 8, max_size=(n + 7) // 8).map(
            lambda packed: unpack_bits(packed)[:n]
        )
    )


def _registers(low: int, high: int):
    return st.integers(low, high).flatmap(
        lambda n: st.binary(min_size=2 * n, max_size=2 * n).map(
            lambda data: list(struct.unpack(f">{n}H", data))
        )
    )


@lru_cache(maxsize=None)
def _body_strategy(code: int):
    """Valid request fields for one function code, bounded as the standard says."""
    if code in _READS:
        return struct_strategy(
            REQUEST_BODIES[code],
            {"quantity": boundary_integers(16, 1, MAX_QUANTITY[F(code)])},
        )
    if code == F.WRITE_SINGLE_COIL:
        return struct_strategy(
            REQUEST_BODIES[code], {"value": st.sampled_from([0xFF00, 0x0000])}
        )
    if code == F.DIAGNOSTICS:
        return st.fixed_dictionaries(
            {
                "sub_function": st.sampled_from(
                    [int(s) for s in DiagnosticSubFunction]
                ),
                "data": st.binary(min_size=2, max_size=2),
            }
        )
    if code == F.WRITE_MULTIPLE_COILS:
        return struct_strategy(
            REQUEST_BODIES[code], {"bits": _bits(1, MAX_QUANTITY[F(code)])}
        )
    if code == F.WRITE_MULTIPLE_REGISTERS:
        return struct_strategy(
            REQUEST_BODIES[code], {"registers": _registers(1, MAX_QUANTITY[F(code)])}
        )
    if code == F.READ_FILE_RECORD:
        sub = struct_strategy(
            REQUEST_BODIES[code].subcons[1].subcon.subcon,
            {"record_length": boundary_integers(16, 1, 120)},
        )
        return st.fixed_dictionaries(
            {"sub_requests": st.lists(sub, min_size=1, max_size=35)}
        )
    if code == F.WRITE_FILE_RECORD:
        sub = st.fixed_dictionaries(
            {
                "file_number": boundary_integers(16),
                "record_number": boundary_integers(16, 0, 9999),
                "registers": _registers(1, 20),
            }
        )
        return st.fixed_dictionaries(
            {"sub_requests": st.lists(sub, min_size=1, max_size=4)}
        )
    if code == F.READ_WRITE_MULTIPLE_REGISTERS:
        return struct_strategy(
            REQUEST_BODIES[code],
            {
                "read_quantity": boundary_integers(16, 1, MAX_READ_WRITE_READ_QUANTITY),
                "registers": _registers(1, MAX_READ_WRITE_WRITE_QUANTITY),
            },
        )
    if code == F.ENCAPSULATED_INTERFACE_TRANSPORT:
        return st.fixed_dictionaries(
            {
                "mei_type": st.just(int(MeiType.READ_DEVICE_IDENTIFICATION)),
                "read_device_id_code": st.integers(1, 4),
                "object_id": st.one_of(st.integers(0, 6), st.integers(0, 255)),
            }
        )
    if code == F.UMAS:
        return st.fixed_dictionaries({"data": st.binary(min_size=1, max_size=8)})
    return struct_strategy(REQUEST_BODIES[code])


def _build(code: int, fields: dict, transaction_id: int, unit_id: int) -> Case:
    adu = build_adu(transaction_id, unit_id, code, True, **fields)
    return Case((adu,), "valid", f"function {code}")


def valid_requests_of(code: int):
    """Strategy of valid requests of one function code."""
    return st.builds(
        _build,
        st.just(code),
        _body_strategy(code),
        boundary_integers(16),
        st.sampled_from([0, 1, 0xFF, 17]),
    )


def valid_requests():
    """Strategy of valid single-request cases, every function code, weighted."""
    return st.sampled_from(WEIGHTED_CODES).flatmap(valid_requests_of)


# --- mutations of a built ADU ------------------------------------------------------

_MBAP = struct.Struct(">HHHB")


def _header(adu: bytes) -> tuple[int, int, int, int]:
    return _MBAP.unpack_from(adu.ljust(7, b"\0"))


def _with_length(adu: bytes, length: int) -> bytes:
    return adu[:4] + struct.pack(">H", length & 0xFFFF) + adu[6:]


def truncate_in_header(case: Case, rng: random.Random) -> Case:
    """Cut the PDU short and make the MBAP length agree: a whole, too-short ADU."""
    adu = case.frames[0]
    keep = rng.randint(1, max(1, len(adu) - 8))  # at least the function code
    cut = adu[: 7 + keep]
    return Case((_with_length(cut, keep + 1),), "truncate_in_header", f"pdu {keep} B")


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Send only the first bytes; the header still promises the rest."""
    adu = case.frames[0]
    cut = rng.randint(1, len(adu) - 1)
    return Case((adu[:cut],), "truncate_on_wire", f"{cut} of {len(adu)} B")


def length_lies(case: Case, rng: random.Random) -> Case:
    """An MBAP length other than the true one, boundary values first."""
    adu = case.frames[0]
    true = len(adu) - 6
    length = rng.choice([0, 1, 2, true - 1, true + 1, 253, 254, 255, 256, 0xFFFF])
    return Case((_with_length(adu, length),), "length_lies", f"length {length}")


def wrong_protocol_id(case: Case, rng: random.Random) -> Case:
    """A protocol id other than 0 (Modbus)."""
    adu = case.frames[0]
    pid = rng.choice([1, 2, 0x00FF, 0x8000, 0xFFFF])
    return Case(
        (adu[:2] + struct.pack(">H", pid) + adu[4:],), "wrong_protocol_id", f"{pid}"
    )


def illegal_function(case: Case, rng: random.Random) -> Case:
    """A function code the standard does not define, or 0, or one with 0x80 set."""
    adu = case.frames[0]
    code = rng.choice(_UNKNOWN_CODES + (0, 0x80, 0x83, 0xFF))
    return Case((adu[:7] + bytes([code]) + adu[8:],), "illegal_function", f"{code}")


def illegal_value(case: Case, rng: random.Random) -> Case:
    """An illegal enum value where the request has one, else a lying count."""
    adu = case.frames[0]
    tid, _, _, unit = _header(adu)
    choice = rng.randrange(4)
    if choice == 0:
        value = rng.choice([0x0001, 0x00FF, 0xFFFF, 0xFF01])
        made = build_adu(tid, unit, 5, True, address=rng.randint(0, 9), value=value)
        note = f"coil value 0x{value:04x}"
    elif choice == 1:
        sub = rng.choice([5, 6, 9, 19, 21, 0xFFFF])
        made = build_adu(tid, unit, 8, True, sub_function=sub, data="0000")
        note = f"diagnostics sub-function {sub}"
    elif choice == 2:
        mei = rng.choice([0, 1, 12, 15, 0xFF])
        made = build_adu(tid, unit, 43, True, mei_type=mei, data="0100")
        note = f"mei type {mei}"
    else:
        code = rng.choice([0, 5, 0xFF])
        made = build_adu(
            tid, unit, 43, True, mei_type=14, read_device_id_code=code, object_id=0
        )
        note = f"read device id code {code}"
    return Case((made,), "illegal_value", note)


def count_lies(case: Case, rng: random.Random) -> Case:
    """Quantities and byte counts that disagree with the data, or 0, or the maximum."""
    adu = case.frames[0]
    tid, _, _, unit = _header(adu)
    code = rng.choice([1, 3, 15, 16, 23, 20, 21])
    count = rng.choice([0, 1, 0x7F, 0x80, 0xFE, 0xFF])
    quantity = rng.choice([0, 1, 126, 2001, 0x7FFF, 0xFFFF])
    address = rng.choice([0, 0xFFFF, 0xFFFE, 0x8000])
    # Bodies are built true, then the count byte is overwritten: construct
    # refuses to build an array its own count contradicts.
    if code in (1, 3):
        made = build_adu(tid, unit, code, True, address=address, quantity=quantity)
    elif code == 15:
        made = build_adu(
            tid, unit, 15, True, address=address, quantity=quantity, bits=[1] * 8
        )
        made = made[:12] + bytes([count]) + made[13:]
    elif code == 16:
        made = build_adu(
            tid, unit, 16, True, address=address, quantity=quantity, registers=[1, 2]
        )
        made = made[:12] + bytes([count]) + made[13:]
    elif code == 23:
        made = build_adu(
            tid,
            unit,
            23,
            True,
            read_address=address,
            read_quantity=quantity,
            write_address=0,
            write_quantity=quantity,
            registers=[1],
        )
        made = made[:16] + bytes([count]) + made[17:]
    elif code == 20:
        made = build_adu(
            tid,
            unit,
            20,
            True,
            sub_requests=[
                {
                    "reference_type": rng.choice([6, 0, 7]),
                    "file_number": 1,
                    "record_number": 0,
                    "record_length": quantity,
                }
            ],
        )
        made = made[:8] + bytes([count]) + made[9:]
    else:
        made = build_adu(
            tid,
            unit,
            21,
            True,
            sub_requests=[{"file_number": 1, "record_number": 0, "registers": [1]}],
        )
        made = made[:8] + bytes([count]) + made[9:]
    return Case(
        (made,), "count_lies", f"function {code} count {count} quantity {quantity}"
    )


def trailing_bytes(case: Case, rng: random.Random) -> Case:
    """Extra bytes after the body, counted by the length field."""
    adu = case.frames[0] + bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
    return Case((_with_length(adu, len(adu) - 6),), "trailing_bytes", "")


def _numbered(frames: list[bytes]) -> tuple[bytes, ...]:
    """Frames with transaction ids 1, 2, 3...: each reply must name its request."""
    return tuple(struct.pack(">H", i + 1) + f[2:] for i, f in enumerate(frames))


def concatenate(
    case: Case, rng: random.Random, others: list[Case] | None = None
) -> Case:
    """Several ADUs in one segment: each must be answered."""
    pool = others or [case]
    frames = [case.frames[0]] + [
        rng.choice(pool).frames[0] for _ in range(rng.randint(1, 4))
    ]
    return Case(_numbered(frames), "concatenate", f"{len(frames)} ADUs", together=True)


def sequence(case: Case, rng: random.Random, others: list[Case] | None = None) -> Case:
    """Several requests on one connection, each waiting for its reply."""
    pool = others or [case]
    frames = [case.frames[0]] + [
        rng.choice(pool).frames[0] for _ in range(rng.randint(1, 3))
    ]
    return Case(_numbered(frames), "sequence", f"{len(frames)} requests")


# Truncation inside a consistent header is weighted highest: a server must
# decode a short body without dying, and many do not.
MUTATIONS = (
    (truncate_in_header, 4),
    (truncate_on_wire, 1),
    (length_lies, 2),
    (wrong_protocol_id, 1),
    (illegal_function, 2),
    (illegal_value, 2),
    (count_lies, 3),
    (trailing_bytes, 1),
    (concatenate, 2),
    (sequence, 1),
)


def apply_mutation(case: Case, mutation, rng: random.Random, others=None) -> Case:
    """Apply one mutation function (from :data:`MUTATIONS`)."""
    if mutation in (concatenate, sequence):
        return mutation(case, rng, others)
    return mutation(case, rng)


def mutated_requests():
    """Strategy of mutated cases: a valid request, a mutation, a seeded random."""
    return st.builds(
        apply_mutation,
        valid_requests(),
        st.sampled_from([m for m, weight in MUTATIONS for _ in range(weight)]),
        st.randoms(use_true_random=False),
    )


# --- the profile ---------------------------------------------------------------------

_FLOW = FlowContext(0, Endpoint("127.0.0.1", 40000), Endpoint("127.0.0.1", 502), "tcp")
_DIGITS = re.compile(r"\d+")


def split_adus(data: bytes) -> list[bytes]:
    """Whole ADUs by their MBAP length (whatever it says), up to the first cut one."""
    out, pos = [], 0
    while len(data) - pos >= 6:
        size = (data[pos + 4] << 8 | data[pos + 5]) + 6
        if size < 7 or pos + size > len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


_DEFINED = frozenset(int(code) for code in FunctionCode)


def _check_function(reply: bytes, requests: list[bytes]) -> list[Verdict]:
    """The reply's function byte against the requests sharing its transaction id.

    A normal reply repeats the request's code; an exception reply carries the
    code | 0x80 (V1.1b3 section 7). Signatures say whether the request's code
    is one the standard defines, so that a server answering every unknown code
    the same wrong way makes one finding, not one per code.
    """
    if len(reply) < 8:
        return []
    code = reply[7]
    codes = [r[7] for r in requests if len(r) > 7]
    if not codes or code in codes or (code & EXCEPTION_BIT and (code & 0x7F) in codes):
        if all(r[2:4] != b"\0\0" for r in requests):
            return [Verdict(
                "protocol_violation", "answered_non_modbus_protocol_id",
                f"reply {reply.hex()} to protocol id {requests[0][2:4].hex()}",
            )]  # fmt: skip
        return []
    asked = codes[0]
    kind = "defined" if asked in _DEFINED else "undefined"
    if asked >= EXCEPTION_BIT:
        kind = "exception_coded"
    what = "exception_function" if code & EXCEPTION_BIT else "function"
    return [Verdict(
        "protocol_violation", f"{what}_0x{code:02x}_for_{kind}_code",
        f"reply {reply.hex()} to request {requests[0][:40].hex()} (function {asked})",
    )]  # fmt: skip


class ModbusProfile(FuzzProfile):
    """Modbus/TCP: no session set-up; one reply per whole, well-headed request."""

    name = "modbus"
    default_port = 502
    reply_timeout = 0.5
    linger = 0.05

    def __init__(self) -> None:
        self._weights = [w for _, w in MUTATIONS]
        self._mutators = [m for m, _ in MUTATIONS]

    def valid_strategy(self):
        return valid_requests()

    def strategy(self):
        return st.one_of(valid_requests(), mutated_requests())

    def mutate(self, case: Case, rng: random.Random, others=None) -> Case:
        mutation = rng.choices(self._mutators, self._weights)[0]
        return apply_mutation(case, mutation, rng, others)

    def repair(self, original: bytes, edited: bytes) -> bytes:
        # Keep an honest MBAP length honest after the shrinker cut bytes.
        if (
            len(original) >= 7
            and len(edited) >= 7
            and _header(original)[2] == len(original) - 6
        ):
            return _with_length(edited, len(edited) - 6)
        return edited

    def expected_replies(self, frame: bytes) -> int:
        # A conforming server answers every whole ADU whose header is
        # Modbus (protocol id 0, length 2..254) and waits for the rest of a cut
        # one; a header that is not Modbus is discarded without a reply.
        count = 0
        for adu in split_adus(frame):
            _, pid, length, _ = _header(adu)
            if pid == 0 and 2 <= length <= 254:
                count += 1
            else:
                break
        return count

    def count_replies(self, data: bytes) -> int:
        return len(split_adus(data))

    def judge(self, case: Case, replies: bytes) -> list[Verdict]:
        verdicts: list[Verdict] = []
        # Requests by transaction id; a case may reuse one (a lying length
        # can split a segment anywhere), so a reply may answer any of them.
        asked: dict[bytes, list[bytes]] = {}
        for frame in case.frames:
            for adu in split_adus(frame):
                asked.setdefault(adu[:2], []).append(adu)
        dissector = ModbusDissector(_FLOW)
        for frame in case.frames:
            dissector.feed(frame, True, 0.0, 0)
        for reply in split_adus(replies):
            messages = dissector.feed(reply, False, 0.0, 1)
            requests = asked.get(reply[:2])
            if not requests:
                verdicts.append(Verdict(
                    "protocol_violation", "reply_with_unknown_transaction_id",
                    f"reply {reply.hex()} to none of the request transaction ids",
                ))  # fmt: skip
                continue
            verdicts += _check_function(reply, requests)
            for message in messages:
                if message.status.state == "malformed":
                    reason = _DIGITS.sub("N", message.status.reason or "")[:60]
                    code = reply[7] if len(reply) > 7 else 0
                    verdicts.append(Verdict(
                        "malformed_reply", f"0x{code:02x}:{reason}",
                        f"{message.status.reason}: {reply.hex()}",
                    ))  # fmt: skip
        return verdicts

    def reply_signature(self, replies: bytes) -> str:
        parts = []
        for reply in split_adus(replies):
            code = reply[7] if len(reply) > 7 else -1
            if code & EXCEPTION_BIT and len(reply) > 8:
                parts.append(f"0x{code:02x}/exc{reply[8]}")
            else:
                parts.append(f"0x{code:02x}")
        return ",".join(parts) or "none"

    def case_signature(self, case: Case) -> str:
        """The part of a case that names a fault class: its first function code.

        Codes the standard does not define are one class, so a server that
        treats all of them alike makes one finding, not a hundred.
        """
        frame = case.frames[0]
        if len(frame) <= 7:
            return f"cut={len(frame)}B"
        code = frame[7]
        if code in _DEFINED:
            return f"fc=0x{code:02x}"
        return "fc=exception_coded" if code & EXCEPTION_BIT else "fc=undefined"
