"""The S7comm fuzz profile: COTP connect and setup communication first, then S7 jobs.

Set-up: a COTP CR (RFC 1006 TPKT, X.224 class 0, TSAPs 0100 and 0102, a PG
connection to rack 0 slot 2) whose CC our S7comm dissector must decode, then
an S7 setup communication job whose ack-data it must decode with no error.
Cases that fuzz the CR itself run with no set-up, jobs sent before setup
communication with the CR only.

S7 PDUs are built with :data:`dissectors.s7comm.definitions.HEADER`,
:data:`SETUP_COMMUNICATION`, :data:`S7ANY_ITEM`, :data:`DATA_ITEM` and
:data:`USERDATA_PARAMETER`. Valid cases: read var and write var of one to
four S7ANY items on DB1, DB2, M, I and Q, SZL reads (userdata, CPU
functions) of 0x0011, 0x001C, 0x0131, 0x0424, and the clock (time
functions). Mutations: parameter and data lengths that lie, item counts
that disagree with the items (0, more, 255), item specifications with a
wrong variable specification, address length or syntax id, unknown areas
and transport sizes, huge lengths, unknown ROSCTR and function codes, PDUs
longer than negotiated, TPKT lengths and COTP length indicators that lie,
userdata parameter lengths that lie, unknown SZL ids, cuts on the wire,
mutated CRs, jobs before setup communication, and sequences.
"""

from __future__ import annotations

import random
import struct

from hypothesis import strategies as st

from dissectors.s7comm.definitions import (
    DATA_ITEM,
    HEADER,
    S7ANY_ITEM,
    SETUP_COMMUNICATION,
    USERDATA_PARAMETER,
    Area,
    Function,
    Rosctr,
)
from otdpi.fuzzing.construct_strategies import boundary_integers
from otdpi.fuzzing.profile import Case, Verdict
from otdpi.fuzzing.sessions import (
    SessionProfile,
    SetupStep,
    concatenate,
    sequence,
)

CALLING_TSAP = b"\x01\x00"
CALLED_TSAP = b"\x01\x02"
PDU_LENGTH = 480
COTP_DT = b"\x02\xf0\x80"  # length indicator 2, DT, EOT with TPDU number 0


def tpkt(payload: bytes) -> bytes:
    """One RFC 1006 TPKT around ``payload``."""
    return struct.pack(">BBH", 3, 0, len(payload) + 4) + payload


def cotp_cr(
    calling: bytes = CALLING_TSAP, called: bytes = CALLED_TSAP, size_code: int = 0x0A,
    tpdu_class: int = 0, extra: bytes = b"",
) -> bytes:  # fmt: skip
    """A COTP connection request in a TPKT (X.224 13.3)."""
    params = (
        b"\xc1" + bytes([len(calling)]) + calling
        + b"\xc2" + bytes([len(called)]) + called
        + b"\xc0\x01" + bytes([size_code]) + extra
    )  # fmt: skip
    fixed = b"\xe0\x00\x00\x00\x01" + bytes([tpdu_class << 4])
    return tpkt(bytes([len(fixed) + len(params)]) + fixed + params)


def s7_pdu(rosctr: int, reference: int, parameter: bytes, data: bytes = b"") -> bytes:
    """An S7 PDU in a COTP DT in a TPKT, its lengths true."""
    header = HEADER.build({
        "rosctr": rosctr, "redundancy_id": 0, "pdu_reference": reference,
        "parameter_length": len(parameter), "data_length": len(data), "error": None,
    })  # fmt: skip
    return tpkt(COTP_DT + header + parameter + data)


def setup_communication(reference: int = 1) -> bytes:
    """The setup communication job, asking for :data:`PDU_LENGTH`."""
    parameter = SETUP_COMMUNICATION.build(
        {"reserved": 0, "max_amq_calling": 1, "max_amq_called": 1,
         "pdu_length": PDU_LENGTH}
    )  # fmt: skip
    return s7_pdu(Rosctr.JOB, reference, parameter)


AREAS = {Area.DB: (1, 2), Area.FLAGS: (0,), Area.INPUTS: (0,),
         Area.OUTPUTS: (0,)}  # fmt: skip


def any_item(area: int, db: int, start: int, length: int, size: int = 2) -> bytes:
    """An S7ANY item (transport size 2, BYTE, by default)."""
    return S7ANY_ITEM.build(
        {"transport_size": size, "length": length, "db_number": db, "area": area,
         "address": start << 3}
    )  # fmt: skip


def data_item(data: bytes) -> bytes:
    """A write-var data item of bytes (transport size 4: the length counts bits)."""
    item = DATA_ITEM.build(
        {"return_code": 0, "transport_size": 4, "length": 8 * len(data), "data": data}
    )
    return item + (b"\0" if len(data) % 2 else b"")


_ITEM = st.sampled_from(
    [(int(a), db) for a, dbs in AREAS.items() for db in dbs]
).flatmap(
    lambda area_db: st.tuples(
        st.just(area_db[0]), st.just(area_db[1]), st.integers(0, 15),
        boundary_integers(16, 1, 16),
    )
)  # fmt: skip


def _read(reference: int, items: list[tuple]) -> Case:
    parameter = bytes([Function.READ_VAR, len(items)]) + b"".join(
        any_item(*i) for i in items
    )
    return Case((s7_pdu(Rosctr.JOB, reference, parameter),), "valid", "read var")


def _write(reference: int, items: list[tuple], seed: int) -> Case:
    parameter = bytes([Function.WRITE_VAR, len(items)]) + b"".join(
        any_item(*i) for i in items
    )
    datas = [bytes((seed + k) & 0xFF for k in range(i[3])) for i in items]
    data = b"".join(data_item(d) for d in datas)
    # The last item carries no fill byte.
    if len(datas[-1]) % 2:
        data = data[:-1]
    return Case(
        (s7_pdu(Rosctr.JOB, reference, parameter, data),), "valid", "write var"
    )


def userdata(reference: int, group: int, subfunction: int, data: bytes) -> bytes:
    """A userdata request PDU (function group, sub-function, payload)."""
    parameter = USERDATA_PARAMETER.build(
        {"parameter_length": 4, "method": 0x11, "type_and_group": 0x40 | group,
         "subfunction": subfunction, "sequence_number": 0, "continuation": None}
    )  # fmt: skip
    return s7_pdu(Rosctr.USERDATA, reference, parameter, data)


def szl_read(reference: int, szl_id: int, index: int) -> bytes:
    """A read-SZL request (userdata group 4, sub-function 1)."""
    payload = b"\xff\x09" + struct.pack(">HHH", 4, szl_id, index)
    return userdata(reference, 4, 1, payload)


def _szl(reference: int, szl: tuple[int, int]) -> Case:
    return Case((szl_read(reference, *szl),), "valid", f"SZL 0x{szl[0]:04x}")


def _clock(reference: int) -> Case:
    return Case((userdata(reference, 7, 1, b"\x0a\x00\x00\x00"),), "valid", "clock")


_REF = st.integers(2, 0xFFFF)


def valid_jobs():
    """Read var, write var, SZL and clock reads."""
    return st.one_of(
        st.builds(_read, _REF, st.lists(_ITEM, min_size=1, max_size=4)),
        st.builds(
            _write, _REF, st.lists(_ITEM, min_size=1, max_size=3), st.integers(0, 255)
        ),
        st.builds(
            _szl, _REF,
            st.sampled_from([(0x0011, 0), (0x001C, 0), (0x0131, 1), (0x0424, 0)]),
        ),  # fmt: skip
        st.builds(_clock, _REF),
    )


# --- mutations ---------------------------------------------------------------------

# Offsets in a TPKT holding a DT and an S7 header.
S7 = 7
PARAM = S7 + 10


def _set(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


def _retpkt(frame: bytes) -> bytes:
    return _set(frame, 2, struct.pack(">H", len(frame)))


def parameter_length_lies(case: Case, rng: random.Random) -> Case:
    """The S7 header's parameter length other than the true one."""
    frame = case.frames[0]
    true = struct.unpack_from(">H", frame, S7 + 6)[0]
    value = rng.choice([0, 1, true - 1, true + 1, 0xFF, 0xFFFF])
    frame = _set(frame, S7 + 6, struct.pack(">H", max(0, value)))
    return Case((frame,), "parameter_length_lies", f"{value} of {true}")


def data_length_lies(case: Case, rng: random.Random) -> Case:
    """The S7 header's data length other than the true one."""
    frame = case.frames[0]
    true = struct.unpack_from(">H", frame, S7 + 8)[0]
    choices = [1, true + 1, true + 4, 0x7FFF, 0xFFFF] + ([true - 1] if true else [])
    value = rng.choice(choices)
    frame = _set(frame, S7 + 8, struct.pack(">H", value))
    return Case((frame,), "data_length_lies", f"{value} of {true}")


def item_count_lies(case: Case, rng: random.Random) -> Case:
    """A read or write var whose item count disagrees with its items."""
    items = [(0x84, 1, 0, 2)] * rng.randint(1, 3)
    made = _read(rng.randint(2, 0xFFFF), items) if rng.random() < 0.5 else _write(
        rng.randint(2, 0xFFFF), items, 7
    )
    count = rng.choice([0, len(items) + 1, 20, 0xFF])
    return Case(
        (_set(made.frames[0], PARAM + 1, bytes([count])),), "item_count_lies",
        f"{made.note} count {count} of {len(items)}",
    )  # fmt: skip


def bad_item(case: Case, rng: random.Random) -> Case:
    """An item with a wrong specification, address length, syntax id, area or size."""
    item = bytearray(any_item(0x84, 1, 0, 4))
    choice = rng.randrange(6)
    if choice == 0:
        item[0] = rng.choice([0x00, 0x10, 0x13, 0xFF])
    elif choice == 1:
        item[1] = rng.choice([0, 1, 9, 11, 0xFF])
    elif choice == 2:
        item[2] = rng.choice([0x11, 0x82, 0xB2, 0xFF])
    elif choice == 3:
        item[8] = rng.choice([0x00, 0x01, 0x85, 0x1C, 0xFF])  # area
    elif choice == 4:
        item[3] = rng.choice([0x00, 0x0F, 0x1F, 0xFF])  # transport size
    else:
        item[4:6] = struct.pack(">H", rng.choice([0, 0x7FFF, 0xFFFF]))  # length
    parameter = bytes([Function.READ_VAR, 1]) + bytes(item)
    return Case(
        (s7_pdu(Rosctr.JOB, rng.randint(2, 0xFFFF), parameter),), "bad_item",
        f"choice {choice}",
    )  # fmt: skip


def bad_code(case: Case, rng: random.Random) -> Case:
    """An unknown ROSCTR, or a job with an unknown function code."""
    if rng.random() < 0.5:
        rosctr = rng.choice([0, 2, 3, 4, 8, 0xFF])
        frame = _set(case.frames[0], S7 + 1, bytes([rosctr]))
        return Case((frame,), "bad_code", f"rosctr {rosctr}")
    function = rng.choice([0x01, 0x99, 0xF1, 0xFF, Function.PLC_STOP])
    frame = s7_pdu(Rosctr.JOB, rng.randint(2, 0xFFFF), bytes([function, 0]))
    return Case((frame,), "bad_code", f"function 0x{function:02x}")


def oversized(case: Case, rng: random.Random) -> Case:
    """A write longer than the negotiated PDU (its lengths true)."""
    size = rng.choice([PDU_LENGTH, 960, 4000, 8000])
    made = _write(rng.randint(2, 0xFFFF), [(0x84, 1, 0, size)], 1)
    return Case(made.frames, "oversized", f"{size} B of data")


def transport_lies(case: Case, rng: random.Random) -> Case:
    """A TPKT length or COTP length indicator that lies, or a TPKT version not 3."""
    frame = case.frames[0]
    choice = rng.randrange(3)
    if choice == 0:
        value = rng.choice([0, 4, 6, len(frame) - 1, len(frame) + 1, 0xFFFF])
        return Case((_set(frame, 2, struct.pack(">H", value)),), "transport_lies",
                    f"tpkt {value}")  # fmt: skip
    if choice == 1:
        value = rng.choice([0, 1, 3, 0x7F, 0xFF])
        return Case((_set(frame, 4, bytes([value])),), "transport_lies", f"li {value}")
    return Case((_set(frame, 0, bytes([rng.choice([0, 2, 4])])),), "transport_lies",
                "version")  # fmt: skip


def userdata_lies(case: Case, rng: random.Random) -> Case:
    """A userdata parameter length, SZL id or data length that lies."""
    ref = rng.randint(2, 0xFFFF)
    choice = rng.randrange(3)
    if choice == 0:
        frame = szl_read(ref, 0x0011, 0)
        value = rng.choice([0, 3, 8, 12, 0xFF])
        return Case((_set(frame, PARAM + 3, bytes([value])),), "userdata_lies",
                    f"parameter length {value}")  # fmt: skip
    if choice == 1:
        szl = rng.choice([0x0000, 0x00FF, 0x7FFF, 0xFFFF, 0x0F11])
        return Case((szl_read(ref, szl, 0xFFFF),), "userdata_lies", f"SZL {szl:#x}")
    frame = szl_read(ref, 0x0011, 0)
    value = rng.choice([0, 2, 0x100, 0xFFFF])
    return Case((_set(frame, PARAM + 8 + 2, struct.pack(">H", value)),),
                "userdata_lies", f"data length {value}")  # fmt: skip


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Only the first bytes; the TPKT promises the rest."""
    frame = case.frames[0]
    cut = rng.randint(1, len(frame) - 1)
    return Case((frame[:cut],), "truncate_on_wire", f"{cut} of {len(frame)} B")


def fuzz_connect(case: Case, rng: random.Random) -> Case:
    """A mutated COTP CR as the first TPDU of the connection."""
    choice = rng.randrange(5)
    if choice == 0:
        tsap = rng.choice([b"", b"\x01", b"\xff\xff", b"\x03\x0f", b"\x01" * 32])
        return Case((cotp_cr(called=tsap),), "fuzz_connect", f"called {tsap.hex()}")
    if choice == 1:
        return Case((cotp_cr(tpdu_class=rng.choice([1, 2, 4, 15])),), "fuzz_connect",
                    "class")  # fmt: skip
    if choice == 2:
        return Case((cotp_cr(size_code=rng.choice([0, 5, 0x0E, 0xFF])),),
                    "fuzz_connect", "tpdu size")  # fmt: skip
    if choice == 3:
        extra = bytes([rng.choice([0xC3, 0xC6, 0xF0, 0x00]), 0xFF]) + b"x" * 3
        return Case((cotp_cr(extra=extra),), "fuzz_connect", "parameter length")
    return Case((setup_communication(),), "fuzz_connect", "job before CR")


def job_before_setup(case: Case, rng: random.Random) -> Case:
    """A job on a COTP connection that never sent setup communication."""
    return Case(case.frames, "job_before_setup", case.note)


MUTATIONS = (
    (parameter_length_lies, 3), (data_length_lies, 3), (item_count_lies, 3),
    (bad_item, 3), (bad_code, 2), (oversized, 1), (transport_lies, 2),
    (userdata_lies, 3), (truncate_on_wire, 1), (fuzz_connect, 2),
    (job_before_setup, 1), (sequence, 3), (concatenate, 2),
)  # fmt: skip


def split_tpkts(data: bytes) -> list[bytes]:
    """Whole TPKTs by their length fields, up to the first cut or broken one."""
    out, pos = [], 0
    while len(data) - pos >= 4:
        if data[pos] != 3:
            break
        size = struct.unpack_from(">H", data, pos + 2)[0]
        if size < 7 or pos + size > len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


def _ack_ok(messages) -> bool:
    return any(
        m.fields.get("rosctr") == Rosctr.ACK_DATA and not m.fields.get("error_class")
        for m in messages
    )


class S7commProfile(SessionProfile):
    """An S7 client: COTP connect, setup communication, then jobs and userdata."""

    name = "s7comm"
    dissector_name = "s7comm"
    default_port = 102
    reply_timeout = 1.0
    linger = 0.05
    MUTATIONS = MUTATIONS
    SETUP_DEPTH = {"fuzz_connect": 0, "job_before_setup": 1}

    def steps(self) -> list[SetupStep]:
        return [
            SetupStep(Case((cotp_cr(),), "setup", "COTP CR"), frozenset({"cotp_cc"})),
            SetupStep(
                Case((setup_communication(),), "setup", "setup communication"),
                frozenset({"setup_communication"}), _ack_ok,
            ),
        ]  # fmt: skip

    def valid_cases(self):
        return valid_jobs()

    def split(self, data: bytes) -> list[bytes]:
        return split_tpkts(data)

    def renumber(self, frames):
        return tuple(
            _set(f, S7 + 4, struct.pack(">H", 0x100 + i))
            if len(f) >= PARAM and f[S7] == 0x32 else f
            for i, f in enumerate(frames)
        )  # fmt: skip

    def expected_replies(self, frame: bytes) -> int:
        owed = 0
        for unit in split_tpkts(frame):
            li = unit[4] if len(unit) > 4 else 0
            code = unit[5] >> 4 if len(unit) > 5 else 0
            if code == 0xE and 4 + 1 + li <= len(unit):
                owed += 1  # CC or DR
            elif (
                code == 0xF and li == 2 and len(unit) >= PARAM and unit[S7] == 0x32
                and unit[S7 + 1] in (Rosctr.JOB, Rosctr.USERDATA)
                and struct.unpack_from(">H", unit, S7 + 6)[0]
                + struct.unpack_from(">H", unit, S7 + 8)[0] + PARAM == len(unit)
            ):  # fmt: skip
                owed += 1  # an S7 request whose lengths tile the TPKT
        return owed

    def check_replies(self, case, requests, answers) -> list[Verdict]:
        asked = {m.fields.get("pdu_reference") for m in requests}
        verdicts = []
        if any(m.status.state != "ok" for m in requests):
            return verdicts  # the peer may frame what our dissector calls malformed
        for message in answers:
            reference = message.fields.get("pdu_reference")
            if reference is not None and asked and reference not in asked:
                verdicts.append(Verdict(
                    "protocol_violation", f"{message.service}_to_unknown_reference",
                    f"pdu reference {reference} of {sorted(r for r in asked if r)}",
                ))  # fmt: skip
        return verdicts
