"""The HL7 v2 over MLLP fuzz profile: framing 0x0B ... 0x1C 0x0D, ACKs judged.

Self-contained: HL7 v2 messages are drawn as segments of fields, components
and repetitions (MSH first, with the standard's encoding characters), and
framed as MLLP blocks (HL7 v2.5.1 Appendix C, Minimal Lower Layer Protocol).
A reply is judged for MLLP framing, an MSH segment and an MSA segment whose
control id echoes the message's; when an ``hl7`` dissector is installed in
the registry, its ``malformed`` verdict on the reply counts too.

Mutations: a missing start or end byte, a lone 0x1C, truncation, several
messages in one segment (must all be answered), an empty block, a broken MSH,
huge fields, deep component/sub-component nesting, bytes outside ASCII.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from otdpi.fuzzing.profile import Case, FuzzProfile, Verdict

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
SEGMENT_END = b"\r"
ENCODING = "^~\\&"

MESSAGE_TYPES = (
    "ADT^A01",
    "ADT^A04",
    "ADT^A08",
    "ORU^R01",
    "ORM^O01",
    "SIU^S12",
    "MDM^T02",
)
_TEXT = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-"), max_size=12)


def frame(message: bytes) -> bytes:
    """One MLLP block around ``message``."""
    return START_BLOCK + message + END_BLOCK


def _field():
    component = st.lists(_TEXT, min_size=1, max_size=4).map("^".join)
    return st.lists(component, min_size=1, max_size=2).map("~".join)


def _segment():
    return st.tuples(
        st.sampled_from(
            ["PID", "PV1", "OBX", "OBR", "EVN", "NK1", "AL1", "NTE", "ZZZ"]
        ),
        st.lists(_field(), max_size=8),
    ).map(lambda s: "|".join([s[0], *s[1]]))


def _build(kind: str, control_id: str, version: str, segments: list[str]) -> Case:
    msh = (
        f"MSH|{ENCODING}|OTDPI|FUZZ|RECV|FAC|20260101120000||{kind}|{control_id}"
        f"|P|{version}"
    )
    message = "\r".join([msh, *segments]).encode("ascii") + SEGMENT_END
    return Case((frame(message),), "valid", f"{kind} {control_id}")


def valid_messages():
    """Strategy of valid single-message cases."""
    return st.builds(
        _build,
        st.sampled_from(MESSAGE_TYPES),
        st.text(st.sampled_from("0123456789ABCDEF"), min_size=1, max_size=20),
        st.sampled_from(["2.3", "2.4", "2.5", "2.5.1", "2.6"]),
        st.lists(_segment(), max_size=6),
    )


def _inner(case: Case) -> bytes:
    data = case.frames[0]
    return (
        data[1:-2]
        if data.startswith(START_BLOCK) and data.endswith(END_BLOCK)
        else data
    )


def no_start(case, rng):
    return Case((case.frames[0][1:],), "no_start", "")


def no_end(case, rng):
    return Case((case.frames[0][:-2],), "no_end", "")


def lone_end(case, rng):
    return Case((case.frames[0][:-1],), "lone_end", "0x1c without 0x0d")


def truncate(case, rng):
    data = case.frames[0]
    cut = rng.randint(1, len(data) - 1)
    return Case((data[:cut],), "truncate", f"{cut} of {len(data)} B")


def empty_block(case, rng):
    return Case((frame(b""),), "empty_block", "")


def broken_msh(case, rng):
    body = _inner(case)
    choice = rng.choice([b"MSH", b"MSH|", b"MSH|^~", b"XYZ|^~\\&|", b"msh|^~\\&|"])
    return Case((frame(choice + body[9:]),), "broken_msh", choice.decode())


def huge_field(case, rng):
    body = _inner(case)
    size = rng.choice([1000, 10_000, 70_000])
    return Case(
        (frame(body + b"NTE|1||" + b"A" * size + b"\r"),), "huge_field", f"{size} B"
    )


def deep_nesting(case, rng):
    body = _inner(case)
    depth = rng.choice([50, 500, 5000])
    nested = "^".join("&".join("x" for _ in range(4)) for _ in range(depth)).encode()
    return Case(
        (frame(body + b"OBX|1|ST|" + nested + b"\r"),), "deep_nesting", f"{depth}"
    )


def high_bytes(case, rng):
    body = bytearray(_inner(case))
    for _ in range(rng.randint(1, 8)):
        body[rng.randrange(9, len(body))] = rng.randint(0x80, 0xFF)
    return Case((frame(bytes(body)),), "high_bytes", "")


def concatenate(case, rng, others=None):
    pool = others or [case]
    count = rng.randint(2, 5)
    frames = (case.frames[0],) + tuple(
        rng.choice(pool).frames[0] for _ in range(count - 1)
    )
    return Case(frames, "concatenate", f"{count} messages", together=True)


def sequence(case, rng, others=None):
    pool = others or [case]
    frames = (case.frames[0],) + tuple(rng.choice(pool).frames[0] for _ in range(2))
    return Case(frames, "sequence", "3 messages")


MUTATIONS = (
    (concatenate, 4), (sequence, 1), (no_start, 1), (no_end, 1), (lone_end, 1),
    (truncate, 2), (empty_block, 1), (broken_msh, 2), (huge_field, 1),
    (deep_nesting, 1), (high_bytes, 1),
)  # fmt: skip


def apply_mutation(case, mutation, rng, others=None):
    if mutation in (concatenate, sequence):
        return mutation(case, rng, others)
    return mutation(case, rng)


_BLOCK = re.compile(rb"\x0b(.*?)\x1c\x0d", re.S)


def blocks(data: bytes) -> list[bytes]:
    """The contents of whole MLLP blocks in ``data``."""
    return _BLOCK.findall(data)


def _control_id(message: bytes) -> bytes | None:
    first = message.split(b"\r", 1)[0]
    parts = first.split(b"|")
    return parts[9] if first.startswith(b"MSH|") and len(parts) > 9 else None


class MllpProfile(FuzzProfile):
    """HL7 v2 over MLLP: every whole block that starts with an MSH is ACKed."""

    name = "hl7"
    default_port = 2575
    reply_timeout = 1.0
    linger = 0.05

    def __init__(self) -> None:
        self._mutators = [m for m, _ in MUTATIONS]
        self._weights = [w for _, w in MUTATIONS]

    def valid_strategy(self):
        return valid_messages()

    def strategy(self):
        return st.one_of(
            valid_messages(),
            st.builds(
                apply_mutation,
                valid_messages(),
                st.sampled_from(self._mutators),
                st.randoms(use_true_random=False),
            ),
        )

    def mutate(self, case, rng, others=None):
        mutation = rng.choices(self._mutators, self._weights)[0]
        return apply_mutation(case, mutation, rng, others)

    def expected_replies(self, frame: bytes) -> int:
        return sum(1 for block in blocks(frame) if _control_id(block) is not None)

    def count_replies(self, data: bytes) -> int:
        return data.count(END_BLOCK)

    def judge(self, case: Case, replies: bytes) -> list[Verdict]:
        verdicts = []
        asked = [
            _control_id(block) for f in case.frames for block in blocks(f)
            if _control_id(block) is not None
        ]  # fmt: skip
        got = blocks(replies)
        if replies.count(END_BLOCK) != len(got) or not replies.startswith(START_BLOCK):
            verdicts.append(
                Verdict("malformed_reply", "mllp_framing", replies[:80].hex())
            )
        for index, block in enumerate(got):
            segments = block.split(b"\r")
            msa = next((s for s in segments if s.startswith(b"MSA|")), None)
            if not block.startswith(b"MSH|"):
                verdicts.append(Verdict("malformed_reply", "no_msh", block[:60].hex()))
            if msa is None:
                verdicts.append(Verdict("malformed_reply", "no_msa", block[:60].hex()))
                continue
            fields = msa.split(b"|")
            if len(fields) < 3:
                verdicts.append(
                    Verdict("malformed_reply", "short_msa", msa.decode("latin-1"))
                )
            elif index < len(asked) and fields[2] != asked[index]:
                verdicts.append(Verdict(
                    "protocol_violation", "ack_control_id_mismatch",
                    f"MSA-2 {fields[2]!r}, message {index} had {asked[index]!r}",
                ))  # fmt: skip
        verdicts += self._dissector_verdicts(replies)
        return verdicts

    def _dissector_verdicts(self, replies: bytes) -> list[Verdict]:
        # The judge's own framing, MSH and MSA checks above work without the
        # hl7 plugin; where it is installed, its malformed statuses count too.
        try:
            from otdpi import dissect
            from otdpi.registry import available

            if "hl7" not in available():
                return []
            messages = dissect(replies, "hl7", to_server=False)
        except Exception:  # noqa: BLE001 - a missing or broken plugin is no finding
            return []
        return [
            Verdict(
                "malformed_reply",
                f"hl7:{(m.status.reason or '')[:40]}",
                m.status.reason or "",
            )
            for m in messages
            if m.status.state == "malformed"
        ]

    def reply_signature(self, replies: bytes) -> str:
        codes = []
        for block in blocks(replies):
            msa = next(
                (s for s in block.split(b"\r") if s.startswith(b"MSA|")), b"MSA|?"
            )
            codes.append(msa.split(b"|")[1].decode("latin-1") if b"|" in msa else "?")
        return ",".join(codes) or "none"

    def case_signature(self, case: Case) -> str:
        owed = sum(self.expected_replies(f) for f in case.frames)
        return f"{case.mutation}:{owed}_owed" if case.together else f"{case.mutation}"
