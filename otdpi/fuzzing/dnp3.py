"""The DNP3 fuzz profile: link frames with true CRCs, transport, application requests.

DNP3 over TCP (IEEE 1815, port 20000) has no session set-up: every case is
a master's request to outstation 1 from master 2, built with
:func:`dissectors.dnp3.link.build_frame` (CRCs computed), the transport
octet of :data:`~dissectors.dnp3.transport.TRANSPORT_HEADER` and the
application header of :data:`~dissectors.dnp3.application.REQUEST_HEADER`,
with object headers of :data:`~dissectors.dnp3.objects.OBJECT_HEADER`
(group, variation, qualifier, range). Valid cases: class polls, reads of
static groups by all-objects, start-stop and count qualifiers, the IIN
restart-bit clear, delay measure, cold restart, enabling and disabling
unsolicited responses, and a CROB direct operate, plus a link status
request. Mutations keep CRCs true unless their name says otherwise:
function codes outside the standard and response codes from the master,
reserved qualifier range and prefix codes, start above stop, counts far
beyond the data, objects cut short, transport segments without FIR or FIN,
unknown link functions, a link length that lies, another destination, and
header and data-block CRCs broken on purpose (an outstation must discard
those frames silently), cuts on the wire, and sequences (each request waiting
for its response, transport and application sequence numbers counted up).
The ``opendnp3`` recipe runs opendnp3's outstation through dnp3-python in a
Python 3.10 venv (its wheels are for 3.10 only), unsolicited responses off.
"""

from __future__ import annotations

import random
import struct

from hypothesis import strategies as st

from dissectors.dnp3.application import REQUEST_HEADER, FunctionCode
from dissectors.dnp3.link import build_frame, measure_frame
from dissectors.dnp3.objects import OBJECT_HEADER
from dissectors.dnp3.transport import TRANSPORT_HEADER
from otdpi.fuzzing.profile import Case, Verdict
from otdpi.fuzzing.sessions import SessionProfile, sequence

OUTSTATION = 1
MASTER = 2
PRIMARY_UNCONFIRMED = 0xC4  # DIR, PRM, unconfirmed user data
LINK_STATUS_REQUEST = 0xC9
NO_RESPONSE = {0, 6, 8, 10, 12}  # confirm and the "no ack" functions


def header(group: int, variation: int, qualifier: int, **range_) -> bytes:
    """An object header through :data:`OBJECT_HEADER`."""
    code = qualifier & 0x0F
    return OBJECT_HEADER.build(
        {"group": group, "variation": variation,
         "qualifier": {"reserved": False, "prefix_code": qualifier >> 4 & 7,
                       "range_code": code},
         "range": range_ or None}
    )  # fmt: skip


def request(function: int, objects: bytes, sequence_number: int = 0,
            fir: bool = True, fin: bool = True, transport_seq: int = 0,
            destination: int = OUTSTATION, control: int = PRIMARY_UNCONFIRMED
            ) -> bytes:  # fmt: skip
    """One link frame carrying one transport segment of one application request."""
    transport = TRANSPORT_HEADER.build(
        {"fin": True, "fir": True, "sequence": transport_seq & 0x3F}
    )
    app = REQUEST_HEADER.build(
        {"control": {"fir": fir, "fin": fin, "con": False, "uns": False,
                     "sequence": sequence_number & 0x0F},
         "function_code": function}
    )  # fmt: skip
    user = (transport + app + objects)[:250]
    return build_frame(control, destination, MASTER, user)


def _class_poll() -> bytes:
    return b"".join(header(60, v, 0x06) for v in (2, 3, 4, 1))


READS = {
    "class 0123": _class_poll(),
    "g1v0 all": header(1, 0, 0x06),
    "g30v0 all": header(30, 0, 0x06),
    "g20v0 all": header(20, 0, 0x06),
    "g1v2 0-9": header(1, 2, 0x00, start=0, stop=9),
    "g30v1 0-3": header(30, 1, 0x01, start=0, stop=3),
    "g40v1 count 2": header(40, 1, 0x07, count=2),
    "g10v2 all": header(10, 2, 0x06),
}
# Index 0, latch on, count 1, on and off times 100 ms, status 0.
CROB = (
    header(12, 1, 0x17, count=1) + bytes([0, 0x03, 1]) + struct.pack("<II", 100, 100)
    + b"\0"
)  # fmt: skip


def _case(function: int, objects: bytes, seq: int, note: str) -> Case:
    return Case((request(function, objects, seq),), "valid", note)


def valid_requests():
    """Reads, writes, restarts, unsolicited control, a CROB, a link status request."""
    seqs = st.integers(0, 15)
    read = st.sampled_from(sorted(READS)).flatmap(
        lambda name: st.builds(_case, st.just(FunctionCode.READ), st.just(READS[name]),
                               seqs, st.just(f"read {name}"))
    )  # fmt: skip
    others = st.sampled_from([
        (FunctionCode.WRITE, header(80, 1, 0x00, start=7, stop=7) + b"\x00", "IIN"),
        (FunctionCode.DELAY_MEASURE, b"", "delay measure"),
        (FunctionCode.COLD_RESTART, b"", "cold restart"),
        (FunctionCode.ENABLE_UNSOLICITED,
         b"".join(header(60, v, 0x06) for v in (2, 3, 4)), "enable unsolicited"),
        (FunctionCode.DISABLE_UNSOLICITED,
         b"".join(header(60, v, 0x06) for v in (2, 3, 4)), "disable unsolicited"),
        (FunctionCode.DIRECT_OPERATE, CROB, "CROB"),
    ]).flatmap(lambda t: st.builds(_case, st.just(int(t[0])), st.just(t[1]), seqs,
                                    st.just(t[2])))  # fmt: skip
    status = st.just(
        Case((build_frame(LINK_STATUS_REQUEST, OUTSTATION, MASTER, b""),), "valid",
             "link status")
    )  # fmt: skip
    return st.one_of(read, read, others, status)


# --- mutations ---------------------------------------------------------------------


def _user(frame: bytes) -> bytes:
    """The user data of a frame built here (CRCs removed)."""
    body = frame[10:]
    return b"".join(body[i : i + 16] for i in range(0, len(body), 18))


def _rebuild(frame: bytes, user: bytes) -> bytes:
    return build_frame(frame[3], frame[4] | frame[5] << 8, MASTER, user[:250])


def bad_function(case: Case, rng: random.Random) -> Case:
    """An application function code the standard does not define, or a response's."""
    code = rng.choice([0x22, 0x50, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF])
    user = _user(case.frames[0])
    if len(user) < 3:
        user = _user(request(1, READS["class 0123"]))
    user = user[:2] + bytes([code]) + user[3:]
    return Case((_rebuild(case.frames[0], user),), "bad_function", f"0x{code:02x}")


def bad_qualifier(case: Case, rng: random.Random) -> Case:
    """Reserved range codes (10, 12..15), prefix code 7, or the reserved bit."""
    qualifier = rng.choice([0x0A, 0x0C, 0x0F, 0x70, 0x86, 0x7B])
    objects = bytes([1, 2, qualifier, 0, 3])
    return Case((request(1, objects),), "bad_qualifier", f"0x{qualifier:02x}")


def range_lies(case: Case, rng: random.Random) -> Case:
    """Start above stop, the widest ranges, counts far beyond the data."""
    choice = rng.randrange(4)
    if choice == 0:
        objects = header(1, 2, 0x00, start=9, stop=0)
    elif choice == 1:
        objects = header(30, 1, 0x02, start=0, stop=0xFFFFFFFF)
    elif choice == 2:
        objects = header(12, 1, 0x28, count=0xFFFF) + b"\0\0" + bytes(11)
    else:
        objects = header(41, 2, 0x17, count=0xFF) + b"\0\0\0"
    function = 5 if choice >= 2 else 1
    return Case((request(function, objects),), "range_lies", f"choice {choice}")


def object_cut(case: Case, rng: random.Random) -> Case:
    """A request whose last object header or object data is cut short."""
    objects = CROB if rng.random() < 0.5 else header(1, 2, 0x01, start=0, stop=9)
    cut = rng.randint(1, len(objects) - 1)
    function = 5 if objects is CROB else 1
    return Case((request(function, objects[:cut]),), "object_cut", f"{cut} B")


def transport_flags(case: Case, rng: random.Random) -> Case:
    """Segments without FIR, without FIN, or with both off (fragments never ended)."""
    user = bytearray(_user(case.frames[0]) or b"\xc0\xc0\x01")
    flags = rng.choice([0x00, 0x40, 0x80, 0x3F])
    user[0] = flags | (user[0] & 0x3F)
    return Case((_rebuild(case.frames[0], bytes(user)),), "transport_flags",
                f"0x{flags:02x}")  # fmt: skip


def bad_link(case: Case, rng: random.Random) -> Case:
    """Unknown link functions, the DIR bit of an outstation, another destination."""
    choice = rng.randrange(3)
    frame = case.frames[0]
    user = _user(frame)
    if choice == 0:
        control = rng.choice([0xC5, 0xC6, 0xCF, 0xC7])
        made = build_frame(control, OUTSTATION, MASTER, user)
    elif choice == 1:
        made = build_frame(0x44, OUTSTATION, MASTER, user)
    else:
        made = build_frame(PRIMARY_UNCONFIRMED, rng.choice([0, 3, 0xFFF0, 0xFFFF]),
                           MASTER, user)  # fmt: skip
    return Case((made,), "bad_link", f"choice {choice}")


def link_length_lies(case: Case, rng: random.Random) -> Case:
    """The link length octet other than the true one, its header CRC recomputed."""
    from dissectors.dnp3.link import crc_dnp

    frame = bytearray(case.frames[0])
    frame[2] = rng.choice([0, 4, 5, max(5, frame[2] - 1), frame[2] + 1, 0xFF]) & 0xFF
    frame[8:10] = crc_dnp(bytes(frame[:8])).to_bytes(2, "little")
    return Case((bytes(frame),), "link_length_lies", f"{frame[2]}")


def crc_breaks(case: Case, rng: random.Random) -> Case:
    """A header or data-block CRC broken on purpose: the frame must be discarded."""
    frame = bytearray(case.frames[0])
    where = rng.choice([8, 9] + ([len(frame) - 1, len(frame) - 2] * (len(frame) > 10)))
    frame[where] ^= 0xFF
    return Case((bytes(frame),), "crc_breaks", f"octet {where}")


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Only the first octets; the length promises the rest."""
    frame = case.frames[0]
    cut = rng.randint(1, len(frame) - 1)
    return Case((frame[:cut],), "truncate_on_wire", f"{cut} of {len(frame)} B")


MUTATIONS = (
    (bad_function, 3), (bad_qualifier, 3), (range_lies, 3), (object_cut, 3),
    (transport_flags, 2), (bad_link, 2), (link_length_lies, 2), (crc_breaks, 3),
    (truncate_on_wire, 1), (sequence, 3),
)  # fmt: skip
# No concatenation: a master may not send a request before the response to the
# last one (IEEE 1815 4.4.5), so an outstation that drops the second of two
# requests in one segment is within the standard.


def split_frames(data: bytes) -> list[bytes]:
    """Whole link frames by their length octets, up to the first cut or bad one."""
    out, pos = [], 0
    while pos < len(data):
        size = measure_frame(data, pos)
        if size <= 0 or pos + size > len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


class Dnp3Profile(SessionProfile):
    """A DNP3 master on TCP: a request per frame, CRCs true unless broken on purpose."""

    name = "dnp3"
    dissector_name = "dnp3"
    default_port = 20000
    reply_timeout = 1.0
    linger = 0.1
    MUTATIONS = MUTATIONS

    def valid_cases(self):
        return valid_requests()

    def split(self, data: bytes) -> list[bytes]:
        return split_frames(data)

    def is_reply(self, unit: bytes) -> bool:
        if unit[3] & 0x40 == 0:
            return True  # a secondary frame: link status or ACK
        user = _user(unit)
        # A final response fragment, not an unsolicited one.
        return len(user) >= 3 and user[0] & 0x80 and user[2] == 0x81

    def renumber(self, frames):
        from dissectors.dnp3.link import header_crc_ok

        out = []
        for index, frame in enumerate(frames):
            user = _user(frame) if len(frame) > 12 and header_crc_ok(frame, 0) else b""
            if len(user) >= 3 and frame[3] == PRIMARY_UNCONFIRMED:
                user = bytes([0xC0 | index & 0x3F, user[1] & 0xF0 | index & 0x0F])
                frame = _rebuild(frame, user + _user(frame)[2:])
            out.append(frame)
        return tuple(out)

    def expected_replies(self, frame: bytes) -> int:
        from dissectors.dnp3.link import header_crc_ok, user_data

        owed = 0
        for unit in split_frames(frame):
            if not header_crc_ok(unit, 0) or unit[4] | unit[5] << 8 != OUTSTATION:
                continue
            control = unit[3]
            if not control & 0x80:
                continue  # DIR off: a frame as an outstation sends it, ignored
            if control == LINK_STATUS_REQUEST:
                owed += unit[2] == 5  # a link status request carries no data
                continue
            if control & 0x0F != 4:
                continue  # confirmed data and unknown functions: no promise here
            user, bad = user_data(unit)
            if bad or len(user) < 3 or user[0] & 0xC0 != 0xC0:
                continue  # a broken block CRC, or a fragment not whole
            if user[2] not in NO_RESPONSE and user[1] & 0xC0 == 0xC0:
                owed += 1
        return owed

    def check_replies(self, case, requests, answers) -> list[Verdict]:
        if any(m.status.state != "ok" for m in requests):
            return []
        asked = {m.fields.get("application_sequence") for m in requests}
        return [
            Verdict(
                "protocol_violation", "response_sequence_mismatch",
                f"response sequence {m.fields.get('application_sequence')} to "
                f"{sorted(s for s in asked if s is not None)}",
            )
            for m in answers
            if m.service == "response"
            and m.fields.get("application_sequence") not in asked
        ]
