"""The HSMS / SECS-II fuzz profile: select first, then data and control messages.

Set-up (SEMI E37, E30): Select.req, whose Select.rsp our HSMS dissector must
decode with status "communication established", then the host's S1F13
establish-communications request, answered by S1F14. Only then are data
messages fuzzed. Cases that fuzz the select itself, or send data before it
(an entity not selected must be answered by Reject.req), run with no set-up.

Valid messages are built with :func:`dissectors.hsms.definitions.build_message`
and items drawn per format code of :data:`~dissectors.hsms.definitions.ITEM`
(:class:`~dissectors.hsms.definitions.FormatCode`, element sizes and the
number constructs the definition switches on): S1F1, S1F3, S1F11, S1F13,
S1F15, S1F17, S2F13, S2F15, S2F17, S2F29, S2F33, S2F35, S2F37, S2F41, S5F3,
S5F5, S5F7, S6F15, S7F19, S10F3 and a Linktest.req, each with the W-bit.
Mutations: a length field that lies, a cut on the wire, SType and PType
values E37 does not define, a wrong session id, an undefined stream or
function, unknown item format codes, a format byte with no length bytes,
item lengths that lie, list counts beyond the data, lists nested past
:data:`~dissectors.hsms.definitions.MAX_DEPTH`, huge items, a reply with no
open transaction, a repeated select, data before select and mutated selects,
and message sequences.
"""

from __future__ import annotations

import random
import struct

from hypothesis import strategies as st

from dissectors.hsms.definitions import (
    ELEMENT_SIZE,
    HEADER_SIZE,
    MAX_DEPTH,
    FormatCode,
    SelectStatus,
    SType,
    build_item,
    build_message,
    control_message,
)
from otdpi.fuzzing.construct_strategies import boundary_integers
from otdpi.fuzzing.profile import Case, Verdict
from otdpi.fuzzing.sessions import (
    SessionProfile,
    SetupStep,
    concatenate,
    sequence,
)

# The secsgem recipe's equipment uses this device (session) id.
SESSION_ID = 0
SELECT_SYSTEM = 0x10
ESTABLISH_SYSTEM = 0x11
_SIGNED = {FormatCode.I1, FormatCode.I2, FormatCode.I4, FormatCode.I8}
_FLOATS = {FormatCode.F4, FormatCode.F8}
_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)


def _numbers(code: FormatCode):
    bits = 8 * ELEMENT_SIZE[code]
    if code in _FLOATS:
        element = st.floats(allow_nan=False, width=bits)
    elif code in _SIGNED:
        element = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    else:
        element = boundary_integers(bits)
    return st.lists(element, min_size=0, max_size=4)


def _leaf():
    """One non-list item of any format code the definition knows."""
    parts = [
        st.builds(lambda v: {"type": "B", "value": v.hex()}, st.binary(max_size=8)),
        st.builds(
            lambda v: {"type": "BOOLEAN", "value": v},
            st.lists(st.booleans(), max_size=4),
        ),
        st.builds(lambda v: {"type": "A", "value": v}, _TEXT),
        st.builds(lambda v: {"type": "J", "value": v}, _TEXT),
        st.builds(
            lambda v: {"type": "C2", "value": "0002" + v.encode().hex()}, _TEXT
        ),
    ]
    for code in FormatCode:
        if code in (FormatCode.L, FormatCode.B, FormatCode.BOOLEAN, FormatCode.A,
                    FormatCode.J, FormatCode.C2):  # fmt: skip
            continue
        parts.append(
            st.builds(lambda v, n=code.name: {"type": n, "value": v}, _numbers(code))
        )
    return st.one_of(parts)


def items():
    """Items of every format, lists nested a few levels."""
    return st.recursive(
        _leaf(),
        lambda children: st.builds(
            lambda v: {"type": "L", "value": v}, st.lists(children, max_size=4)
        ),
        max_leaves=12,
    )


def _a(text: str) -> dict:
    return {"type": "A", "value": text}


def _u4(*values: int) -> dict:
    return {"type": "U4", "value": list(values)}


def _l(*children: dict) -> dict:
    return {"type": "L", "value": list(children)}


_IDS = st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(lambda v: _l(*map(_u4, v)))
_RCMD = st.sampled_from(["START", "STOP", "PAUSE", "", "X" * 40])
# E5's CPVAL and ECV are single items, never lists.
_PARAMS = st.lists(st.tuples(_TEXT, _leaf()), max_size=3).map(
    lambda ps: _l(*(_l(_a(name), value) for name, value in ps))
)
# (stream, function) -> strategy of the item (None: no text)
MESSAGE_TEXT = {
    (1, 1): st.none(),
    (1, 3): _IDS,
    (1, 11): _IDS,
    (1, 13): st.just(_l()),
    (1, 15): st.none(),
    (1, 17): st.none(),
    (2, 13): _IDS,
    (2, 15): st.lists(st.tuples(st.integers(0, 9999), _leaf()), max_size=3).map(
        lambda ps: _l(*(_l(_u4(i), v) for i, v in ps))
    ),
    (2, 17): st.none(),
    (2, 29): _IDS,
    (2, 33): st.tuples(st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: _l(_u4(t[0]), _l(_l(_u4(t[1]), _l(_u4(1)))))
    ),
    (2, 35): st.tuples(st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: _l(_u4(t[0]), _l(_l(_u4(t[1]), _l(_u4(1)))))
    ),
    (2, 37): st.tuples(st.booleans(), _IDS).map(
        lambda t: _l({"type": "BOOLEAN", "value": [t[0]]}, t[1])
    ),
    (2, 41): st.tuples(_RCMD, _PARAMS).map(lambda t: _l(_a(t[0]), t[1])),
    (5, 3): st.tuples(st.sampled_from(["00", "80"]), st.integers(0, 99)).map(
        lambda t: _l({"type": "B", "value": t[0]}, _u4(t[1]))
    ),
    (5, 5): _IDS,
    (5, 7): st.none(),
    (6, 15): st.integers(0, 99).map(_u4),
    (7, 19): st.none(),
    (10, 3): st.tuples(st.integers(0, 255), _TEXT).map(
        lambda t: _l({"type": "B", "value": f"{t[0]:02x}"}, _a(t[1]))
    ),
}


def data_frame(stream: int, function: int, item, system: int, w_bit=True) -> bytes:
    """One HSMS data message with ``item`` (a plain item, or bytes) as its text."""
    if isinstance(item, bytes):
        text = item
    else:
        text = b"" if item is None else build_item(item)
    return build_message(
        session_id=SESSION_ID, stream=stream, function=function, w_bit=w_bit,
        system_bytes=system, text=text,
    )  # fmt: skip


def _data_case(sf: tuple[int, int], item, system: int) -> Case:
    return Case((data_frame(*sf, item, system),), "valid", f"S{sf[0]}F{sf[1]}")


def valid_messages():
    """Valid data messages after the set-up, and Linktest.req."""
    data = st.sampled_from(sorted(MESSAGE_TEXT)).flatmap(
        lambda sf: st.builds(
            _data_case, st.just(sf), MESSAGE_TEXT[sf], st.integers(0x100, 0xFFFFFF)
        )
    )
    linktest = st.integers(0x100, 0xFFFFFF).map(
        lambda s: Case((control_message(SType.LINKTEST_REQ, s),), "valid", "linktest")
    )
    return st.one_of(data, data, data, linktest)


# --- mutations --------------------------------------------------------------------

_LEN = struct.Struct(">I")


def _header(frame: bytes) -> tuple:
    return struct.unpack_from(">IHBBBBI", frame.ljust(14, b"\0"))


def _set(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


def length_lies(case: Case, rng: random.Random) -> Case:
    """A message length other than the true one, boundary values first."""
    frame = case.frames[0]
    true = len(frame) - 4
    length = rng.choice([0, 1, 9, HEADER_SIZE, true - 1, true + 1, true + 100,
                         0xFFFFFF, 0x1000000, 0xFFFFFFFF])  # fmt: skip
    length = max(0, min(length, 0xFFFFFFFF))
    return Case((_set(frame, 0, _LEN.pack(length)),), "length_lies", f"length {length}")


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Only the first bytes; the length promises the rest."""
    frame = case.frames[0]
    cut = rng.randint(1, len(frame) - 1)
    return Case((frame[:cut],), "truncate_on_wire", f"{cut} of {len(frame)} B")


def bad_stype(case: Case, rng: random.Random) -> Case:
    """An SType E37 does not define (8, 10..255): Reject.req is owed."""
    stype = rng.choice([8, 10, 11, 0x7F, 0x80, 0xFF])
    return Case((_set(case.frames[0], 9, bytes([stype])),), "bad_stype", f"{stype}")


def bad_ptype(case: Case, rng: random.Random) -> Case:
    """A PType other than SECS-II (0): Reject.req is owed."""
    ptype = rng.choice([1, 2, 0x80, 0xFF])
    return Case((_set(case.frames[0], 8, bytes([ptype])),), "bad_ptype", f"{ptype}")


def wrong_session(case: Case, rng: random.Random) -> Case:
    """A data message to another device id (E5: S9F1 is owed)."""
    frame = case.frames[0]
    if frame[9] != 0:
        frame = data_frame(1, 1, None, rng.randint(0x100, 0xFFFF))
    sid = rng.choice([1, 0x7FFF, 0xFFFE, 0xFFFF])
    return Case((_set(frame, 4, struct.pack(">H", sid)),), "wrong_session", f"{sid}")


def unknown_function(case: Case, rng: random.Random) -> Case:
    """An undefined stream or function with the W-bit (S9F3 or S9F5 is owed)."""
    stream = rng.choice([1, 2, 99, 127, 0])
    function = rng.choice([99, 201, 255, 0x7F])
    text = build_item(_l()) if rng.random() < 0.5 else b""
    frame = data_frame(stream, function, text, rng.randint(0x100, 0xFFFF))
    return Case((frame,), "unknown_function", f"S{stream}F{function}")


def _with_text(case: Case, rng: random.Random, text: bytes, name: str, note: str):
    stream, function = rng.choice(sorted(MESSAGE_TEXT))
    return Case(
        (data_frame(stream, function, text, rng.randint(0x100, 0xFFFF)),),
        name,
        f"S{stream}F{function} {note}",
    )


def bad_item_format(case: Case, rng: random.Random) -> Case:
    """Format codes E5 does not define, or a format byte with no length bytes."""
    if rng.random() < 0.5:
        code = rng.choice([0o01, 0o07, 0o12, 0o23, 0o33, 0o41, 0o55, 0o77])
        text = bytes([code << 2 | 1, 2, 0, 0])
        note = f"format {code:o}"
    else:
        code = rng.choice([int(c) for c in FormatCode])
        text = bytes([code << 2, 0])
        note = f"format {code:o} with 0 length bytes"
    if rng.random() < 0.5:  # inside a list, as a real message would carry it
        text = bytes([0x01, 0x02]) + build_item(_a("x")) + text
    return _with_text(case, rng, text, "bad_item_format", note)


def item_length_lies(case: Case, rng: random.Random) -> Case:
    """An item whose length disagrees with its data or its element size."""
    code = rng.choice(
        [FormatCode.A, FormatCode.U4, FormatCode.I2, FormatCode.F8, FormatCode.B]
    )
    data = bytes(rng.randint(0, 255) for _ in range(8))
    length = rng.choice([0, 1, 3, 7, 9, 0xFF, 0xFFFF, 0xFFFFFF])
    size = 1 if length < 0x100 else 2 if length < 0x10000 else 3
    text = bytes([int(code) << 2 | size]) + length.to_bytes(size, "big") + data
    note = f"{code.name} length {length}"
    return _with_text(case, rng, text, "item_length_lies", note)


def list_count_lies(case: Case, rng: random.Random) -> Case:
    """A list that claims more (or fewer) items than it holds."""
    count = rng.choice([0, 2, 3, 0xFF, 0xFFFF, 0xFFFFFF])
    size = 1 if count < 0x100 else 2 if count < 0x10000 else 3
    body = build_item(_a("x")) + build_item(_u4(1))
    text = bytes([size]) + count.to_bytes(size, "big") + body
    return _with_text(case, rng, text, "list_count_lies", f"count {count} of 2")


def deep_nesting(case: Case, rng: random.Random) -> Case:
    """Lists of one list, nested around the dissector's limit and far past it."""
    depth = rng.choice([MAX_DEPTH - 1, MAX_DEPTH + 1, 200, 1000, 5000])
    text = bytes([0x01, 0x01]) * depth + bytes([0x01, 0x00])
    return _with_text(case, rng, text, "deep_nesting", f"depth {depth}")


def huge_item(case: Case, rng: random.Random) -> Case:
    """One true but large ASCII item (64 KiB to 1 MiB)."""
    size = rng.choice([0x10000, 0x40000, 0xFFFFF])
    text = bytes([int(FormatCode.A) << 2 | 3]) + size.to_bytes(3, "big") + b"A" * size
    return _with_text(case, rng, text, "huge_item", f"{size} B")


def unsolicited_reply(case: Case, rng: random.Random) -> Case:
    """A reply (even function, or a control response) to no open transaction."""
    system = rng.randint(0x100, 0xFFFF)
    if rng.random() < 0.5:
        frame = data_frame(1, 2, _l(), system, w_bit=False)
        note = "S1F2"
    else:
        stype = rng.choice([SType.SELECT_RSP, SType.DESELECT_RSP, SType.LINKTEST_RSP])
        frame = control_message(stype, system)
        note = stype.name
    return Case((frame,), "unsolicited_reply", note)


def repeated_select(case: Case, rng: random.Random) -> Case:
    """Select.req again on a selected session: Select.rsp "already active" is owed."""
    return Case(
        (control_message(SType.SELECT_REQ, rng.randint(0x100, 0xFFFF)),),
        "repeated_select",
    )


def data_before_select(case: Case, rng: random.Random) -> Case:
    """A data message before any select (E37: Reject.req, entity not selected)."""
    frame = case.frames[0] if case.frames[0][9] == 0 else data_frame(1, 1, None, 0x200)
    return Case((frame,), "data_before_select", "")


def fuzz_select(case: Case, rng: random.Random) -> Case:
    """A mutated Select.req as the first message of the connection."""
    frame = control_message(SType.SELECT_REQ, rng.randint(0x100, 0xFFFF))
    choice = rng.randrange(5)
    if choice == 0:
        frame, note = _set(frame, 4, struct.pack(">H", rng.choice([0, 1, 7]))), "sid"
    elif choice == 1:
        frame, note = _set(frame, 8, bytes([rng.choice([1, 0xFF])])), "ptype"
    elif choice == 2:
        frame, note = _set(frame, 6, bytes([rng.randint(1, 255)])), "byte 2"
    elif choice == 3:
        frame, note = frame + b"\x01\x00", "text"  # a select with message text
        frame = _set(frame, 0, _LEN.pack(len(frame) - 4))
    else:
        frame, note = frame[: rng.randint(1, 13)], "cut"
    return Case((frame,), "fuzz_select", note)


MUTATIONS = (
    (length_lies, 3), (truncate_on_wire, 1), (bad_stype, 2), (bad_ptype, 2),
    (wrong_session, 1), (unknown_function, 2), (bad_item_format, 3),
    (item_length_lies, 3), (list_count_lies, 2), (deep_nesting, 2),
    (huge_item, 1), (unsolicited_reply, 1), (repeated_select, 1),
    (data_before_select, 1), (fuzz_select, 2), (sequence, 3), (concatenate, 2),
)  # fmt: skip


def split_messages(data: bytes) -> list[bytes]:
    """Whole HSMS messages by their length fields, up to the first cut one."""
    out, pos = [], 0
    while len(data) - pos >= 4:
        size = _LEN.unpack_from(data, pos)[0] + 4
        if size < 4 + HEADER_SIZE or pos + size > len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


def _select_established(messages) -> bool:
    return any(
        m.fields.get("select_status")
        == SelectStatus.COMMUNICATION_ESTABLISHED.name.lower()
        for m in messages
    )


def _commack_accepted(messages) -> bool:
    return any(m.fields.get("commack") in (0, "accepted") for m in messages)


class HsmsProfile(SessionProfile):
    """HSMS-SS host side: Select, S1F13, then SECS-II and control messages."""

    name = "hsms"
    dissector_name = "hsms"
    default_port = 5000
    reply_timeout = 0.5
    linger = 0.05
    MUTATIONS = MUTATIONS
    SETUP_DEPTH = {"data_before_select": 0, "fuzz_select": 0}

    def steps(self) -> list[SetupStep]:
        select = control_message(SType.SELECT_REQ, SELECT_SYSTEM)
        establish = data_frame(1, 13, _l(), ESTABLISH_SYSTEM)
        return [
            SetupStep(
                Case((select,), "setup", "select"), frozenset({"select_rsp"}),
                _select_established,
            ),
            SetupStep(
                Case((establish,), "setup", "S1F13"), frozenset({"S1F14"}),
                _commack_accepted,
            ),
        ]  # fmt: skip

    def valid_cases(self):
        return valid_messages()

    def split(self, data: bytes) -> list[bytes]:
        return split_messages(data)

    def is_reply(self, unit: bytes) -> bool:
        _, _, byte_2, function, _, stype, _ = _header(unit)
        if stype:
            return stype in (2, 4, 6, 7)  # responses and Reject.req
        # Secondary messages (even function, or F0 abort) and stream 9 errors.
        return function % 2 == 0 or (byte_2 & 0x7F) == 9

    def expected_replies(self, frame: bytes) -> int:
        owed = 0
        for unit in split_messages(frame):
            _, _, byte_2, _, ptype, stype, _ = _header(unit)
            if ptype != 0:
                owed += 1  # Reject.req, PType not supported
            elif stype == 0:
                owed += byte_2 >> 7  # the W-bit asks for a reply
            elif stype in (1, 3, 5):
                owed += 1  # select, deselect, linktest requests
            elif stype in (7, 9):
                pass  # Reject.req and Separate.req are not answered
            else:
                owed += 1  # a response with no transaction, or an unknown SType
        return owed

    def renumber(self, frames):
        out = []
        for index, frame in enumerate(frames):
            if len(frame) >= 4 + HEADER_SIZE:
                frame = _set(frame, 10, struct.pack(">I", 0x1000 + index))
            out.append(frame)
        return tuple(out)

    def check_replies(self, case, requests, answers) -> list[Verdict]:
        # Requests by system bytes, from the raw headers: the peer may frame a
        # message our dissector calls malformed, and answer it.
        asked: dict[int, list[tuple]] = {}
        for frame in case.frames:
            for unit in split_messages(frame):
                header = _header(unit)
                asked.setdefault(header[6], []).append(header)
        clean = all(m.status.state == "ok" for m in requests)
        verdicts = []
        for message in answers:
            fields = message.fields
            system = fields.get("system_bytes")
            if fields.get("stream") == 9 or fields.get("s_type") == 7:
                continue  # errors name the offending header in their text
            if message.kind != "response":
                continue  # the equipment's own requests (its S1F13...)
            headers = asked.get(system)
            if not headers:
                if clean:
                    verdicts.append(Verdict(
                        "protocol_violation", f"{message.service}_to_no_request",
                        f"{message.service} with system bytes {system} answers "
                        "nothing sent",
                    ))  # fmt: skip
                continue
            if fields.get("s_type") != 0:
                continue
            if all(h[4] != 0 for h in headers):
                verdicts.append(Verdict(
                    "protocol_violation", "answered_non_secs_ptype",
                    f"{message.service} to PType {headers[0][4]} (Reject.req owed)",
                ))  # fmt: skip
            elif all(h[5] not in (0,) for h in headers):
                verdicts.append(Verdict(
                    "protocol_violation", "data_reply_to_control",
                    f"{message.service} to SType {headers[0][5]}",
                ))  # fmt: skip
            elif not any(
                h[2] & 0x7F == fields.get("stream")
                and fields.get("function") in (0, h[3] + 1)
                for h in headers
            ):
                verdicts.append(Verdict(
                    "protocol_violation", "reply_stream_function_mismatch",
                    f"{message.service} to S{headers[0][2] & 0x7F}F{headers[0][3]}",
                ))  # fmt: skip
        return verdicts
