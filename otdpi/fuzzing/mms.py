"""The MMS fuzz profile: COTP connect, session/presentation/ACSE initiate, requests.

Set-up (ISO 8073, 8327, 8823, 8650, 9506): a COTP CR with TSAPs 0001 whose
CC our MMS dissector must decode, then a session CONNECT carrying a
presentation CP-type, an ACSE AARQ for the MMS application context and an
MMS initiate-RequestPDU, whose ACCEPT with an initiate-ResponsePDU it must
decode. Cases that fuzz the initiate itself run after the CR only.

MMS has no construct definitions in otdpi (its dissector reads BER with the
bounded walker of :mod:`dissectors.iso_upper.ber`), so PDUs are built here
with a small BER encoder following ISO 9506-2's ASN.1. Valid cases:
confirmed requests identify, status, getNameList (VMD and domain scope),
read and getVariableAccessAttributes of named variables, in a session DT
and presentation fully-encoded user data on context 3. Mutations: BER
lengths that lie, long-form and indefinite lengths, constructed tags nested
past the dissector's depth, unknown service tags, invoke ids of nine octets,
an undefined presentation context, unknown session SPDU types, TPKT and
COTP lengths that lie, cuts on the wire, mutated initiates, and sequences.
No MMS server is installed here (libiec61850's Python binding is GPL and
not a test dependency): the profile is checked against the libiec61850
capture in ``fixtures/`` and, where pyiec61850-ng is installed, by the
``libiec61850`` recipe.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from otdpi.fuzzing.profile import Case, Verdict
from otdpi.fuzzing.s7comm import COTP_DT, cotp_cr, split_tpkts, tpkt, transport_lies
from otdpi.fuzzing.sessions import (
    SessionProfile,
    SetupStep,
    concatenate,
    sequence,
)

MMS_CONTEXT = 3
SESSION_DT = bytes.fromhex("01000100")  # Give-Tokens then Data Transfer, both empty


def length(size: int) -> bytes:
    """A BER definite length, short form when it fits."""
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, *parts: bytes) -> bytes:
    """One BER element of a one-octet ``tag`` around the concatenated ``parts``."""
    body = b"".join(parts)
    return bytes([tag]) + length(len(body)) + body


def integer(tag: int, value: int) -> bytes:
    """A BER INTEGER (or an implicitly tagged one) in the fewest octets."""
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def visible(text: str) -> bytes:
    """An Identifier (VisibleString, tag 0x1A)."""
    return tlv(0x1A, text.encode("ascii"))


def initiate_request() -> bytes:
    """An MMS initiate-RequestPDU (ISO 9506-2, 8.2)."""
    return tlv(
        0xA8,
        integer(0x80, 65000), integer(0x81, 5), integer(0x82, 5), integer(0x83, 10),
        tlv(0xA4, integer(0x80, 1), bytes.fromhex("810305f100"),
            bytes.fromhex("820c03ee1c00000408000079ef18")),
    )  # fmt: skip


def aarq(user: bytes) -> bytes:
    """An ACSE AARQ for the MMS context, ``user`` in its user information."""
    return tlv(
        0x60,
        tlv(0xA1, bytes.fromhex("060528ca220203")),  # application context 1.0.9506.2.3
        tlv(0xA2, bytes.fromhex("06052901876701")),
        tlv(0xA3, integer(0x02, 12)),
        tlv(0xA6, bytes.fromhex("060429018767")),
        tlv(0xA7, integer(0x02, 12)),
        tlv(0xBE, tlv(0x28, integer(0x02, MMS_CONTEXT), tlv(0xA0, user))),
    )  # fmt: skip


def cp_type(acse: bytes) -> bytes:
    """A presentation CP-type: normal mode, contexts 1 (ACSE) and 3 (MMS), BER."""
    ber = tlv(0x30, bytes.fromhex("06025101"))
    contexts = tlv(
        0xA4,
        tlv(0x30, integer(0x02, 1), bytes.fromhex("060452010001"), ber),
        tlv(0x30, integer(0x02, MMS_CONTEXT), bytes.fromhex("060528ca220201"), ber),
    )  # fmt: skip
    user = tlv(0x61, tlv(0x30, integer(0x02, 1), tlv(0xA0, acse)))
    return tlv(
        0x31,
        tlv(0xA0, bytes.fromhex("800101")),
        tlv(0xA2, tlv(0x81, bytes.fromhex("00000001")),
            tlv(0x82, bytes.fromhex("00000001")), contexts, user),
    )  # fmt: skip


def session_length(size: int) -> bytes:
    """An ISO 8327 length: one octet up to 254, else 0xFF and two octets."""
    return bytes([size]) if size < 0xFF else b"\xff" + size.to_bytes(2, "big")


def session_connect(user: bytes) -> bytes:
    """A session CONNECT SPDU (ISO 8327, SI 13) with ``user`` as its user data."""
    params = bytes.fromhex("050613010016010214020002330200013402 0001".replace(" ", ""))
    body = params + b"\xc1" + session_length(len(user)) + user
    return b"\x0d" + session_length(len(body)) + body


def initiate(mms: bytes | None = None) -> bytes:
    """The whole initiate TPKT: session CONNECT, CP-type, AARQ, initiate-Request."""
    pdu = initiate_request() if mms is None else mms
    return tpkt(COTP_DT + session_connect(cp_type(aarq(pdu))))


def data(mms: bytes, context: int = MMS_CONTEXT, spdu: bytes = SESSION_DT) -> bytes:
    """An MMS PDU in presentation fully-encoded data in a session DT in a TPKT."""
    user = tlv(0x61, tlv(0x30, integer(0x02, context), tlv(0xA0, mms)))
    return tpkt(COTP_DT + spdu + user)


def confirmed(invoke_id: int, service: bytes) -> bytes:
    """A confirmed-RequestPDU (tag 0xA0): invoke id, then the service."""
    return tlv(0xA0, integer(0x02, invoke_id), service)


IDENTIFY = bytes.fromhex("8200")
STATUS = bytes.fromhex("800100")


def get_name_list(domain: str | None) -> bytes:
    """getNameList of domains (VMD scope) or of a domain's named variables."""
    if domain is None:
        return tlv(0xA1, tlv(0xA0, integer(0x80, 9)), tlv(0xA1, bytes.fromhex("8000")))
    return tlv(
        0xA1, tlv(0xA0, integer(0x80, 0)), tlv(0xA1, tlv(0x81, domain.encode()))
    )


def _object(domain: str, item: str) -> bytes:
    return tlv(0xA1, visible(domain), visible(item))  # domain-specific ObjectName


def read(domain: str, item: str) -> bytes:
    """A read of one named variable (listOfVariable)."""
    return tlv(0xA4, tlv(0xA1, tlv(0xA0, tlv(0x30, tlv(0xA0, _object(domain, item))))))


def get_attributes(domain: str, item: str) -> bytes:
    """getVariableAccessAttributes of one named variable."""
    return tlv(0xA6, tlv(0xA0, _object(domain, item)))


_NAME = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$_"), min_size=1,
                max_size=32)  # fmt: skip


def _case(invoke_id: int, service: bytes, note: str) -> Case:
    return Case((data(confirmed(invoke_id, service)),), "valid", note)


def valid_requests():
    """Identify, status, getNameList, read and getVariableAccessAttributes."""
    ids = st.integers(1, 0x7FFFFFFF)
    return st.one_of(
        st.builds(_case, ids, st.just(IDENTIFY), st.just("identify")),
        st.builds(_case, ids, st.just(STATUS), st.just("status")),
        st.builds(lambda i, d: _case(i, get_name_list(d), "getNameList"), ids,
                  st.one_of(st.none(), _NAME)),  # fmt: skip
        st.builds(lambda i, d, n: _case(i, read(d, n), "read"), ids, _NAME, _NAME),
        st.builds(lambda i, d, n: _case(i, get_attributes(d, n), "attributes"),
                  ids, _NAME, _NAME),  # fmt: skip
    )


# --- mutations ---------------------------------------------------------------------

# Offset of the MMS PDU in a :func:`data` TPKT whose lengths are short-form.
_HEAD = 4 + len(COTP_DT) + len(SESSION_DT)


def _mms_of(case: Case) -> bytes:
    frame = case.frames[0]
    # 61 L 30 L 02 01 03 a0 L <mms>
    return frame[_HEAD + 9 :] if len(frame) > _HEAD + 9 else confirmed(1, IDENTIFY)


def ber_length_lies(case: Case, rng: random.Random) -> Case:
    """The confirmed request's own length other than the true one."""
    mms = bytearray(_mms_of(case))
    if len(mms) > 1 and mms[1] < 0x80:
        mms[1] = rng.choice([0, 1, max(0, mms[1] - 1), mms[1] + 1, 0x7F])
    return Case((data(bytes(mms)),), "ber_length_lies", f"{mms[1]}")


def long_lengths(case: Case, rng: random.Random) -> Case:
    """Long-form lengths of 4 and 8 octets, 0x80 (indefinite) and 0xFF (reserved)."""
    form = rng.choice([b"\x84\xff\xff\xff\xff", b"\x88" + b"\x00" * 7 + b"\x02",
                       b"\x80", b"\xff", b"\x84\x00\x00\x00\x02"])  # fmt: skip
    mms = b"\xa0" + form + integer(0x02, 1) + IDENTIFY
    return Case((data(mms),), "long_lengths", form.hex())


def deep_nesting(case: Case, rng: random.Random) -> Case:
    """A read whose variable specification nests constructed tags far too deep."""
    depth = rng.choice([31, 33, 100, 1000])
    inner = visible("x")
    for _ in range(depth):
        inner = tlv(0xA0, inner)
    return Case((data(confirmed(1, tlv(0xA4, inner))),), "deep_nesting", f"{depth}")


def unknown_service(case: Case, rng: random.Random) -> Case:
    """A confirmed request with a service tag ISO 9506 does not define."""
    tag = rng.choice([0x9F, 0xBF, 0xA3, 0x8E, 0xFF])
    body = bytes([tag, 0x7F, 0x01, 0x00]) if tag in (0x9F, 0xBF) else bytes([tag, 0])
    return Case((data(confirmed(rng.randint(1, 999), body)),), "unknown_service",
                f"tag 0x{tag:02x}")  # fmt: skip


def huge_invoke_id(case: Case, rng: random.Random) -> Case:
    """An invoke id of nine octets, or negative, or empty."""
    raw = rng.choice([b"\x02\x09" + b"\x7f" * 9, b"\x02\x01\xff", b"\x02\x00"])
    return Case((data(tlv(0xA0, raw, IDENTIFY)),), "huge_invoke_id", raw.hex())


def bad_context(case: Case, rng: random.Random) -> Case:
    """Fully-encoded data on a presentation context that was not proposed."""
    context = rng.choice([0, 1, 5, 255])
    return Case((data(_mms_of(case), context=context),), "bad_context", f"{context}")


def bad_spdu(case: Case, rng: random.Random) -> Case:
    """A session SPDU type ISO 8327 does not define, or a lying SPDU length."""
    spdu = rng.choice([b"\x02\x00\x01\x00", b"\x01\x05\x01\x00", b"\x01\x00\xff\x00",
                       b"\x7f\x00"])  # fmt: skip
    return Case((data(_mms_of(case), spdu=spdu),), "bad_spdu", spdu.hex())


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Only the first bytes; the TPKT promises the rest."""
    frame = case.frames[0]
    cut = rng.randint(1, len(frame) - 1)
    return Case((frame[:cut],), "truncate_on_wire", f"{cut} of {len(frame)} B")


def fuzz_initiate(case: Case, rng: random.Random) -> Case:
    """A mutated initiate-RequestPDU (or a request in its place) after the CR."""
    choice = rng.randrange(4)
    if choice == 0:
        pdu = tlv(0xA8, integer(0x80, rng.choice([0, -1, 1 << 40])))
        note = "local detail only"
    elif choice == 1:
        pdu = tlv(0xA8, integer(0x80, 65000), integer(0x81, 0), integer(0x82, 0),
                  integer(0x83, 0), tlv(0xA4, integer(0x80, 99)))  # fmt: skip
        note = "no services, version 99"
    elif choice == 2:
        pdu = confirmed(1, IDENTIFY)
        note = "a request for an initiate"
    else:
        pdu = b"\xa8\x84\xff\xff\xff\xff"
        note = "lying length"
    return Case((initiate(pdu),), "fuzz_initiate", note)


MUTATIONS = (
    (ber_length_lies, 3), (long_lengths, 2), (deep_nesting, 2),
    (unknown_service, 2), (huge_invoke_id, 2), (bad_context, 2), (bad_spdu, 2),
    (transport_lies, 2), (truncate_on_wire, 1), (fuzz_initiate, 2),
    (sequence, 3), (concatenate, 2),
)  # fmt: skip


def _initiate_accepted(messages) -> bool:
    return any(
        m.kind == "response" and m.fields.get("session", {}).get("spdu") == "AC"
        for m in messages
    )


class MmsProfile(SessionProfile):
    """An MMS client: COTP connect, initiate, then confirmed requests."""

    name = "mms"
    dissector_name = "mms"
    default_port = 102
    reply_timeout = 1.0
    linger = 0.05
    MUTATIONS = MUTATIONS
    SETUP_DEPTH = {"fuzz_initiate": 1}

    def steps(self) -> list[SetupStep]:
        cr = cotp_cr(calling=b"\x00\x01", called=b"\x00\x01", size_code=0x0D)
        return [
            SetupStep(Case((cr,), "setup", "COTP CR"), frozenset({"cotp_cc"})),
            SetupStep(
                Case((initiate(),), "setup", "initiate"), frozenset({"initiate"}),
                _initiate_accepted,
            ),
        ]  # fmt: skip

    def valid_cases(self):
        return valid_requests()

    def split(self, data: bytes) -> list[bytes]:
        return split_tpkts(data)

    def expected_replies(self, frame: bytes) -> int:
        owed = 0
        for unit in split_tpkts(frame):
            if len(unit) > 5 and unit[5] >> 4 == 0xE:
                owed += 1  # CC or DR
            elif len(unit) > 8 and unit[5] == 0xF0 and unit[7] in (0x0D, 0x01):
                owed += 1  # AC/RF to a CONNECT; a response or reject to a request
        return owed

    def check_replies(self, case, requests, answers) -> list[Verdict]:
        if any(m.status.state != "ok" for m in requests):
            return []
        asked = {m.fields.get("invoke_id") for m in requests}
        return [
            Verdict(
                "protocol_violation", f"{m.service}_to_unknown_invoke_id",
                f"invoke id {m.fields.get('invoke_id')} of {sorted(asked - {None})}",
            )
            for m in answers
            if m.fields.get("invoke_id") is not None
            and m.fields.get("invoke_id") not in asked
        ]  # fmt: skip
