"""The DICOM upper-layer fuzz profile: associate first, then P-DATA, C-ECHO and C-STORE.

Set-up (PS3.8): an A-ASSOCIATE-RQ with two presentation contexts, 1 for
Verification and 3 for CT Image Storage, both in Implicit VR Little Endian,
whose A-ASSOCIATE-AC our DICOM dissector must decode with both contexts
accepted. Cases then run inside the association; the ``fuzz_association``
mutation replaces the request itself and runs with no set-up.

PDUs, items and PDVs are built with the definitions of
:mod:`dissectors.dicom.definitions` (:func:`build_pdu`, :func:`build_item`,
:func:`build_pdv`, :data:`A_ASSOCIATE`, :data:`PRESENTATION_CONTEXT`), and
command sets as the implicit-VR group 0000 elements PS3.7 section 9.3
lists (:class:`CommandField`). Valid cases: C-ECHO-RQ, C-STORE-RQ with a
small data set (one or several fragments), A-RELEASE-RQ. Mutations: PDU and
PDV lengths that lie, PDU types outside 1 to 7, a context id that was never
proposed, message control headers with reserved bits or data before the
command, command group lengths and element lengths that lie, unknown and
response command fields, missing message ids, huge elements, cuts on the
wire, P-DATA after A-RELEASE-RQ, mutated association requests (protocol
version, AE titles, no or 255 presentation contexts, even context ids,
oversized UIDs, unknown and lying items, a missing user information item),
and message sequences.
"""

from __future__ import annotations

import random
import struct

from hypothesis import strategies as st

from dissectors.dicom.definitions import (
    A_ASSOCIATE,
    NO_DATA_SET,
    PDV_COMMAND,
    PDV_LAST,
    PRESENTATION_CONTEXT,
    CommandField,
    ItemType,
    PduType,
    build_item,
    build_pdu,
    build_pdv,
)
from otdpi.fuzzing.profile import Case, Verdict
from otdpi.fuzzing.sessions import (
    SessionProfile,
    SetupStep,
    concatenate,
    sequence,
)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.7433.1"  # otdpi's own, for tests only
CONTEXTS = {1: VERIFICATION, 3: CT_IMAGE_STORAGE}
CALLED_AE = "OTDPI_SCP"
CALLING_AE = "OTDPI_FUZZ"


def _uid(text: str) -> bytes:
    raw = text.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def _ae(text: str) -> bytes:
    return text.encode("ascii")[:16].ljust(16, b" ")


def presentation_context(context_id: int, abstract: str, *transfers: str) -> bytes:
    """An RQ presentation context item (PS3.8 table 9-13)."""
    subs = build_item(ItemType.ABSTRACT_SYNTAX, abstract.encode()) + b"".join(
        build_item(ItemType.TRANSFER_SYNTAX, t.encode()) for t in transfers
    )
    value = PRESENTATION_CONTEXT.build(
        {"presentation_context_id": context_id, "reserved_1": 0, "result_reason": 0,
         "reserved_2": 0, "sub_items": subs}
    )  # fmt: skip
    return build_item(ItemType.PRESENTATION_CONTEXT_RQ, value)


def user_information(max_length: int = 16384) -> bytes:
    """User information: maximum length, implementation class UID and version."""
    return build_item(
        ItemType.USER_INFORMATION,
        build_item(ItemType.MAXIMUM_LENGTH, struct.pack(">I", max_length))
        + build_item(ItemType.IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_UID.encode())
        + build_item(ItemType.IMPLEMENTATION_VERSION_NAME, b"OTDPI_FUZZ"),
    )


def associate_rq(
    items: bytes | None = None,
    called: str = CALLED_AE,
    calling: str = CALLING_AE,
    version: int = 1,
) -> bytes:
    """An A-ASSOCIATE-RQ; by default proposing :data:`CONTEXTS` in implicit VR LE."""
    if items is None:
        items = (
            build_item(ItemType.APPLICATION_CONTEXT, APPLICATION_CONTEXT.encode())
            + b"".join(
                presentation_context(cid, uid, IMPLICIT_LE)
                for cid, uid in CONTEXTS.items()
            )
            + user_information()
        )
    body = A_ASSOCIATE.build(
        {"protocol_version": version, "reserved_1": 0,
         "called_ae_title": _ae(called), "calling_ae_title": _ae(calling),
         "reserved_2": bytes(32), "variable_items": items}
    )  # fmt: skip
    return build_pdu(PduType.A_ASSOCIATE_RQ, body)


# --- command sets ------------------------------------------------------------------


def element(tag: int, value: bytes) -> bytes:
    """One implicit-VR little-endian element of group 0000."""
    return struct.pack("<HHI", 0, tag, len(value)) + value


def _us(value: int) -> bytes:
    return struct.pack("<H", value & 0xFFFF)


def command_set(elements: list[tuple[int, bytes]]) -> bytes:
    """Elements sorted by tag, with the group length (0000,0000) in front."""
    body = b"".join(element(tag, value) for tag, value in sorted(elements))
    return element(0x0000, struct.pack("<I", len(body))) + body


def c_echo(message_id: int) -> bytes:
    """A C-ECHO-RQ command set (PS3.7 table 9.3-12)."""
    return command_set([
        (0x0002, _uid(VERIFICATION)), (0x0100, _us(CommandField.C_ECHO_RQ)),
        (0x0110, _us(message_id)), (0x0800, _us(NO_DATA_SET)),
    ])  # fmt: skip


def c_store(message_id: int, instance: str, priority: int = 0) -> bytes:
    """A C-STORE-RQ command set (PS3.7 table 9.3-1), a data set following."""
    return command_set([
        (0x0002, _uid(CT_IMAGE_STORAGE)), (0x0100, _us(CommandField.C_STORE_RQ)),
        (0x0110, _us(message_id)), (0x0700, _us(priority)),
        (0x0800, _us(0x0000)), (0x1000, _uid(instance)),
    ])  # fmt: skip


def data_set(instance: str, patient: str) -> bytes:
    """A small implicit-VR data set: SOP class and instance, patient name and id."""

    def el(group: int, elem: int, value: bytes) -> bytes:
        value = value + (b" " if len(value) % 2 else b"")
        return struct.pack("<HHI", group, elem, len(value)) + value

    return (
        el(0x0008, 0x0016, _uid(CT_IMAGE_STORAGE))
        + el(0x0008, 0x0018, _uid(instance))
        + el(0x0008, 0x0060, b"CT")
        + el(0x0010, 0x0010, patient.encode("ascii"))
        + el(0x0010, 0x0020, b"OTDPI-FUZZ")
    )


def p_data(*pdvs: tuple[int, int, bytes]) -> bytes:
    """One P-DATA-TF PDU of (context id, control header, fragment) PDVs."""
    return build_pdu(PduType.P_DATA_TF, b"".join(build_pdv(*p) for p in pdvs))


def _echo_case(message_id: int) -> Case:
    frame = p_data((1, PDV_COMMAND | PDV_LAST, c_echo(message_id)))
    return Case((frame,), "valid", f"C-ECHO {message_id}")


def _store_case(message_id: int, serial: int, patient: str, pieces: int) -> Case:
    instance = f"1.2.826.0.1.3680043.9.7433.2.{serial}"
    command = p_data((3, PDV_COMMAND | PDV_LAST, c_store(message_id, instance)))
    data = data_set(instance, patient)
    size = max(1, -(-len(data) // pieces))
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    frames = [command] + [
        p_data((3, PDV_LAST if i == len(chunks) - 1 else 0, chunk))
        for i, chunk in enumerate(chunks)
    ]
    return Case(tuple(frames), "valid", f"C-STORE {message_id} in {len(chunks)}")


_PATIENT = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ^"), min_size=1, max_size=20
)


def valid_messages():
    """C-ECHO-RQ and C-STORE-RQ (with its data set) inside the association."""
    ids = st.integers(1, 0xFFFF)
    echo = st.builds(_echo_case, ids)
    store = st.builds(
        _store_case, ids, st.integers(1, 10**9), _PATIENT, st.integers(1, 3)
    )
    return st.one_of(echo, store)


# --- mutations --------------------------------------------------------------------

_HEADER = struct.Struct(">BBI")


def _set(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


def _first(case: Case) -> bytes:
    return case.frames[0]


def pdu_length_lies(case: Case, rng: random.Random) -> Case:
    """A PDU length other than the true one."""
    frame = _first(case)
    true = len(frame) - 6
    length = rng.choice([0, 1, 3, 4, 5, true - 1, true + 1, 0x7FFFFFFF, 0xFFFFFFFF])
    return Case(
        (_set(frame, 2, struct.pack(">I", max(0, length))),) + case.frames[1:],
        "pdu_length_lies", f"length {length} of {true}",
    )  # fmt: skip


def pdv_length_lies(case: Case, rng: random.Random) -> Case:
    """The first PDV's item length other than the true one (PDU length true)."""
    frame = _first(case)
    true = struct.unpack_from(">I", frame, 6)[0]
    length = rng.choice([0, 1, 2, true - 1, true + 1, 0xFFFFFFFF])
    return Case(
        (_set(frame, 6, struct.pack(">I", max(0, length))),) + case.frames[1:],
        "pdv_length_lies", f"{length} of {true}",
    )  # fmt: skip


def bad_pdu_type(case: Case, rng: random.Random) -> Case:
    """A PDU type PS3.8 does not define, or one only the acceptor sends."""
    pdu_type = rng.choice([0, 2, 3, 6, 8, 9, 0x7F, 0xFF])
    frame = _set(_first(case), 0, bytes([pdu_type]))
    return Case((frame,), "bad_pdu_type", f"type {pdu_type}")


def bad_context(case: Case, rng: random.Random) -> Case:
    """A PDV on a presentation context id that was never proposed."""
    context = rng.choice([0, 2, 5, 0xFF])
    frame = _set(_first(case), 10, bytes([context]))
    return Case((frame,) + case.frames[1:], "bad_context", f"context {context}")


def bad_control_header(case: Case, rng: random.Random) -> Case:
    """Reserved bits in the message control header, or data before the command."""
    control = rng.choice([0x00, 0x02, 0x04, 0x80, 0xFF])
    frame = _set(_first(case), 11, bytes([control]))
    return Case((frame,) + case.frames[1:], "bad_control_header", f"0x{control:02x}")


def _command_case(command: bytes, name: str, note: str, context: int = 1) -> Case:
    return Case((p_data((context, PDV_COMMAND | PDV_LAST, command)),), name, note)


def command_lies(case: Case, rng: random.Random) -> Case:
    """A command set whose group length, an element length or a field lies."""
    mid = rng.randint(1, 0xFFFF)
    choice = rng.randrange(6)
    echo = c_echo(mid)
    if choice == 0:
        value = rng.choice([0, 1, len(echo) - 11, 0xFFFFFFFF])
        return _command_case(_set(echo, 8, struct.pack("<I", value)), "command_lies",
                             f"group length {value}")  # fmt: skip
    if choice == 1:
        # The affected SOP class element claims more than the set holds.
        value = rng.choice([0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1])
        return _command_case(_set(echo, 16, struct.pack("<I", value)), "command_lies",
                             f"element length {value}")  # fmt: skip
    if choice == 2:
        field = rng.choice([0x0000, 0x1234, 0x8030, 0x0FFF, 0xFFFF])
        command = command_set([(0x0002, _uid(VERIFICATION)), (0x0100, _us(field)),
                               (0x0110, _us(mid)), (0x0800, _us(NO_DATA_SET))])
        return _command_case(command, "command_lies", f"command field 0x{field:04x}")
    if choice == 3:
        command = command_set([(0x0002, _uid(VERIFICATION)),
                               (0x0100, _us(CommandField.C_ECHO_RQ)),
                               (0x0800, _us(NO_DATA_SET))])  # fmt: skip
        return _command_case(command, "command_lies", "no message id")
    if choice == 4:
        size = rng.choice([0x1000, 0x10000, 0x100000])
        command = command_set([(0x0002, b"1." * (size // 2)),
                               (0x0100, _us(CommandField.C_ECHO_RQ)),
                               (0x0110, _us(mid)), (0x0800, _us(NO_DATA_SET))])
        return _command_case(command, "command_lies", f"{size} B UID")
    # A store command on the Verification context, a data set announced.
    command = c_store(mid, "1.2.3.4")
    return _command_case(command, "command_lies", "C-STORE on context 1", context=1)


def truncate_on_wire(case: Case, rng: random.Random) -> Case:
    """Only the first bytes of the PDU; its length promises the rest."""
    frame = _first(case)
    cut = rng.randint(1, len(frame) - 1)
    return Case((frame[:cut],), "truncate_on_wire", f"{cut} of {len(frame)} B")


def data_after_release(case: Case, rng: random.Random) -> Case:
    """A-RELEASE-RQ, then a P-DATA-TF the acceptor must no longer take."""
    release = build_pdu(PduType.A_RELEASE_RQ, bytes(4))
    return Case((release,) + case.frames, "data_after_release", "")


def release(case: Case, rng: random.Random) -> Case:
    """A-RELEASE-RQ after the case's messages: the acceptor sends A-RELEASE-RP."""
    return Case(
        case.frames + (build_pdu(PduType.A_RELEASE_RQ, bytes(4)),), "release", ""
    )


def fuzz_association(case: Case, rng: random.Random) -> Case:
    """A mutated A-ASSOCIATE-RQ as the first PDU of the connection."""
    app = build_item(ItemType.APPLICATION_CONTEXT, APPLICATION_CONTEXT.encode())
    pc = presentation_context(1, VERIFICATION, IMPLICIT_LE)
    ui = user_information()
    choice = rng.randrange(10)
    if choice == 0:
        version = rng.choice([0, 2, 0xFFFF])
        return Case((associate_rq(version=version),), "fuzz_association",
                    f"version {version}")  # fmt: skip
    if choice == 1:
        called = rng.choice(["", "WRONG_AE", "\x00" * 16, "\x7f" * 16])
        return Case((associate_rq(called=called),), "fuzz_association", "called AE")
    if choice == 2:
        return Case((associate_rq(app + ui),), "fuzz_association", "no context")
    if choice == 3:
        contexts = b"".join(
            presentation_context(2 * i + 1, VERIFICATION, IMPLICIT_LE)
            for i in range(128)
        )
        return Case((associate_rq(app + contexts + ui),), "fuzz_association",
                    "128 contexts")  # fmt: skip
    if choice == 4:
        even = presentation_context(rng.choice([0, 2, 0xFF]), VERIFICATION, IMPLICIT_LE)
        return Case((associate_rq(app + even + ui),), "fuzz_association", "even id")
    if choice == 5:
        uid = "1." * rng.choice([33, 100, 2000])
        big = presentation_context(1, uid, IMPLICIT_LE)
        return Case((associate_rq(app + big + ui),), "fuzz_association", "long UID")
    if choice == 6:
        unknown = build_item(rng.choice([0x00, 0x11, 0x60, 0xFF]), b"xyz")
        return Case((associate_rq(app + unknown + pc + ui),), "fuzz_association",
                    "unknown item")  # fmt: skip
    if choice == 7:
        lying = _set(pc, 2, struct.pack(">H", rng.choice([0, 1, 0xFFFF])))
        return Case((associate_rq(app + lying + ui),), "fuzz_association",
                    "item length")  # fmt: skip
    if choice == 8:
        return Case((associate_rq(app + pc),), "fuzz_association", "no user info")
    max_length = rng.choice([0, 1, 0xFFFFFFFF])
    return Case((associate_rq(app + pc + user_information(max_length)),),
                "fuzz_association", f"max length {max_length}")  # fmt: skip


MUTATIONS = (
    (pdu_length_lies, 3), (pdv_length_lies, 3), (bad_pdu_type, 2), (bad_context, 2),
    (bad_control_header, 2), (command_lies, 4), (truncate_on_wire, 1),
    (data_after_release, 1), (release, 1), (fuzz_association, 4), (sequence, 3),
    (concatenate, 2),
)  # fmt: skip


def split_pdus(data: bytes) -> list[bytes]:
    """Whole PDUs by their length fields, up to the first cut one."""
    out, pos = [], 0
    while len(data) - pos >= 6:
        size = struct.unpack_from(">I", data, pos + 2)[0] + 6
        if pos + size > len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


def _pdvs(pdu: bytes) -> list[tuple[int, int, bytes]] | None:
    """The PDVs of a P-DATA-TF, or None when their lengths do not tile the PDU."""
    out, pos = [], 6
    while pos < len(pdu):
        if len(pdu) - pos < 6:
            return None
        length = struct.unpack_from(">I", pdu, pos)[0]
        if length < 2 or pos + 4 + length > len(pdu):
            return None
        out.append((pdu[pos + 4], pdu[pos + 5], pdu[pos + 6 : pos + 4 + length]))
        pos += 4 + length
    return out or None


def _data_set_follows(command: bytes) -> bool:
    pos = 0
    while len(command) - pos >= 8:
        _, tag, length = struct.unpack_from("<HHI", command, pos)
        if tag == 0x0800 and length == 2:
            return struct.unpack_from("<H", command, pos + 8)[0] != NO_DATA_SET
        pos += 8 + length
    return False


def _accepted(messages) -> bool:
    results = {
        c.get("presentation_context_id"): c.get("result")
        for m in messages
        for c in m.fields.get("presentation_contexts", [])
    }
    return all(results.get(cid) == 0 for cid in CONTEXTS)


class DicomProfile(SessionProfile):
    """A DICOM requestor: association, then DIMSE messages and PDUs."""

    name = "dicom"
    dissector_name = "dicom"
    default_port = 11112
    reply_timeout = 1.0
    linger = 0.1
    MUTATIONS = MUTATIONS
    SETUP_DEPTH = {"fuzz_association": 0}

    def steps(self) -> list[SetupStep]:
        return [
            SetupStep(
                Case((associate_rq(),), "setup", "A-ASSOCIATE-RQ"),
                frozenset({"a_associate_ac"}),
                _accepted,
            )
        ]

    def valid_cases(self):
        return valid_messages()

    def split(self, data: bytes) -> list[bytes]:
        return split_pdus(data)

    def is_reply(self, unit: bytes) -> bool:
        if unit[0] != PduType.P_DATA_TF:
            return True
        pdvs = _pdvs(unit) or []
        # A response is complete with its command's last fragment (the
        # responses here carry no data set).
        return any(c & PDV_COMMAND and c & PDV_LAST for _, c, _ in pdvs)

    def expected_replies(self, frame: bytes) -> int:
        owed = 0
        for pdu in split_pdus(frame):
            kind = pdu[0]
            if kind == PduType.A_ABORT:
                return owed  # the association ends; nothing more is answered
            if kind != PduType.P_DATA_TF:
                owed += 1  # AC/RJ, RP, or A-ABORT for a PDU out of place
                if kind not in (PduType.A_ASSOCIATE_RQ,):
                    return owed
                continue
            pdvs = _pdvs(pdu)
            if pdvs is None:
                return owed + 1  # an invalid PDU: A-ABORT is owed
            for _, control, fragment in pdvs:
                if control & PDV_COMMAND and control & PDV_LAST:
                    if not _data_set_follows(fragment):
                        owed += 1
                elif control & PDV_LAST:
                    owed += 1  # the last data fragment completes a C-STORE
        return owed

    def check_replies(self, case, requests, answers) -> list[Verdict]:
        asked = {m.fields.get("message_id") for m in requests}
        verdicts = []
        for message in answers:
            answered = message.fields.get("message_id_being_responded_to")
            clean = all(m.status.state == "ok" for m in requests)
            if answered is not None and answered not in asked and clean:
                verdicts.append(Verdict(
                    "protocol_violation", f"{message.service}_to_unknown_message_id",
                    f"message id {answered} of {sorted(i for i in asked if i)}",
                ))  # fmt: skip
            if (
                case.mutation == "valid"
                and message.service in ("c_echo_rsp", "c_store_rsp")
                and message.fields.get("status") != 0
            ):
                verdicts.append(Verdict(
                    "protocol_violation", f"{message.service}_status",
                    f"status {message.fields.get('status')} to a valid request",
                ))  # fmt: skip
        return verdicts
