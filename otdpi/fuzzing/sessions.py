"""The common part of the stateful fuzz profiles: set-up steps, judging by a dissector.

HSMS, DICOM, S7comm, MMS and DNP3 profiles share one pattern, written here
once. A profile lists its set-up as :class:`SetupStep` values (the request
and the services of our own dissector that count as the peer's agreement);
:meth:`SessionProfile.setup_ok` decodes each set-up reply with that
dissector, keeps a count of what it saw in :attr:`SessionProfile.setup_seen`
(tests read it to prove the session came up) and remembers the reply, so
that :meth:`SessionProfile.judge` can feed the dissector the whole
conversation: set-up request and reply, the case's requests, then the
case's replies. Every reply message the dissector calls ``malformed`` is a
``malformed_reply`` verdict; the profile adds its own protocol checks
(a reply that names no request, a refused set-up) in :meth:`check_replies`.

Mutations are functions ``(case, rng, others) -> Case`` over built cases,
weighted per profile in ``MUTATIONS``, as in :mod:`otdpi.fuzzing.modbus`.
Two mutation kinds are common to all: :func:`sequence` (several valid or
mutated messages on one connection, each waiting for its replies) and
:func:`concatenate` (several in one TCP segment).
"""

from __future__ import annotations

import collections
import random
import re
from typing import Any, ClassVar, NamedTuple

from hypothesis import strategies as st

from otdpi.dissector import FlowContext
from otdpi.fuzzing.profile import Case, FuzzProfile, Verdict
from otdpi.message import Endpoint, Message

_DIGITS = re.compile(r"\b(?:0x[0-9a-fA-F]+|\d+)\b")


class SetupStep(NamedTuple):
    """One set-up exchange: what to send, and which reply services mean "agreed".

    ``accept`` names services of the protocol's otdpi dissector
    (``select_rsp``, ``a_associate_ac``, ``cotp_cc``...); ``check`` is an
    optional predicate over the reply's decoded messages for what the service
    name cannot say (a select status, an initiate response that is not an
    error).
    """

    case: Case
    accept: frozenset[str]
    check: Any = None


def fold(text: str, size: int = 60) -> str:
    """A reason with its numbers folded to ``N``: one fault class, not one per value."""
    return _DIGITS.sub("N", text or "")[:size]


def sequence(case: Case, rng: random.Random, others: list[Case] | None = None) -> Case:
    """Two to four messages on one connection, each waiting for its replies."""
    pool = others or [case]
    frames = case.frames + tuple(
        f for _ in range(rng.randint(1, 3)) for f in rng.choice(pool).frames
    )
    return Case(frames[:6], "sequence", f"{len(frames[:6])} messages")


def concatenate(
    case: Case, rng: random.Random, others: list[Case] | None = None
) -> Case:
    """Several messages in one TCP segment: each must be answered as if alone."""
    pool = others or [case]
    frames = case.frames + tuple(
        f for _ in range(rng.randint(1, 3)) for f in rng.choice(pool).frames
    )
    return Case(frames[:6], "concatenate", f"{len(frames[:6])} in one", together=True)


_COMBINERS = ("sequence", "concatenate")


class SessionProfile(FuzzProfile):
    """Base of the stateful profiles: set-up steps, a dissector judge, mutations.

    Subclasses set ``name``, ``default_port``, ``dissector_name``,
    ``MUTATIONS`` (pairs of function and weight), ``SETUP_DEPTH`` (mutation
    name -> how many set-up steps run before a case that replaces the next
    one) and implement :meth:`steps`, :meth:`valid_cases`, :meth:`split`,
    :meth:`is_reply` and :meth:`expected_replies`.
    """

    dissector_name: ClassVar[str] = ""
    MUTATIONS: ClassVar[tuple] = ()
    SETUP_DEPTH: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        self._mutators = [m for m, _ in self.MUTATIONS]
        self._weights = [w for _, w in self.MUTATIONS]
        self._steps = self.steps()
        # What the set-up replies were, by our dissector: service:ok|refused.
        self.setup_seen: collections.Counter[str] = collections.Counter()
        self._setup_replies: dict[int, bytes] = {}
        self._flow = FlowContext(
            0,
            Endpoint("127.0.0.1", 40000),
            Endpoint("127.0.0.1", self.default_port),
            "tcp",
        )

    # -- hooks a protocol fills in ---------------------------------------------

    def steps(self) -> list[SetupStep]:
        """The set-up exchanges, in order (none by default)."""
        return []

    def valid_cases(self):
        """A hypothesis strategy of valid cases, after the set-up."""
        raise NotImplementedError

    def split(self, data: bytes) -> list[bytes]:
        """Whole protocol units in ``data``, by their own length fields."""
        raise NotImplementedError

    def is_reply(self, unit: bytes) -> bool:
        """Whether a unit from the peer answers us (not a request of its own)."""
        return True

    def check_replies(
        self, case: Case, requests: list[Message], answers: list[Message]
    ) -> list[Verdict]:
        """Protocol checks beyond ``malformed`` (a reply that names no request...)."""
        return []

    # -- generation -------------------------------------------------------------

    def valid_strategy(self):
        return self.valid_cases()

    def strategy(self):
        return st.one_of(
            self.valid_cases(),
            st.builds(
                self._apply,
                self.valid_cases(),
                st.sampled_from(
                    [m for m, w in zip(self._mutators, self._weights) for _ in range(w)]
                ),
                st.randoms(use_true_random=False),
            ),
        )

    def _apply(self, case: Case, mutation, rng: random.Random, others=None) -> Case:
        if mutation.__name__ in _COMBINERS:
            made = mutation(case, rng, others)
            return made._replace(frames=self.renumber(made.frames))
        return mutation(case, rng)

    def renumber(self, frames: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """Frames of a sequence given distinct transaction numbers (none by default).

        Two open transactions may not share a number (HSMS system bytes, an
        MMS invoke id): a sequence drawn from one pool would, by chance.
        """
        return frames

    def mutate(self, case: Case, rng: random.Random, others=None) -> Case:
        mutation = rng.choices(self._mutators, self._weights)[0]
        return self._apply(case, mutation, rng, others)

    # -- session ------------------------------------------------------------------

    def setup(self) -> tuple[Case, ...]:
        return tuple(step.case for step in self._steps)

    def setup_for(self, case: Case) -> tuple[Case, ...]:
        depth = self.SETUP_DEPTH.get(case.mutation)
        cases = self.setup()
        return cases if depth is None else cases[:depth]

    def dissector(self):
        """A fresh instance of the protocol's otdpi dissector on a loopback flow."""
        from otdpi.registry import get

        return get(self.dissector_name)(self._flow)

    def setup_ok(self, replies: bytes) -> bool:
        messages = self.dissector().feed(replies, False, 0.0, 1)
        for index, step in enumerate(self._steps):
            mine = [m for m in messages if m.service in step.accept]
            if not mine:
                continue
            ok = all(m.status.state == "ok" for m in mine) and (
                step.check is None or step.check(mine)
            )
            self.setup_seen[f"{mine[0].service}:{'ok' if ok else 'refused'}"] += 1
            if ok:
                self._setup_replies[index] = replies
            return ok
        services = ",".join(m.service for m in messages) or "nothing"
        self.setup_seen[f"{services}:unexpected"] += 1
        return False

    # -- replies ------------------------------------------------------------------

    def count_replies(self, data: bytes) -> int:
        return sum(1 for unit in self.split(data) if self.is_reply(unit))

    def judge(self, case: Case, replies: bytes) -> list[Verdict]:
        dissector = self.dissector()
        for index, step in enumerate(self.setup_for(case)):
            dissector.feed(step.payload, True, 0.0, 1)
            dissector.feed(self._setup_replies.get(index, b""), False, 0.0, 1)
        requests: list[Message] = []
        for frame in case.frames:
            requests += dissector.feed(frame, True, 0.0, 2)
        answers = dissector.feed(replies, False, 0.0, 3)
        verdicts = [
            Verdict(
                "malformed_reply",
                f"{m.service}:{fold(m.status.reason)}",
                f"{m.status.reason}: {replies[:120].hex()}",
            )
            for m in answers
            if m.status.state == "malformed"
        ]
        return verdicts + self.check_replies(case, requests, answers)

    def reply_signature(self, replies: bytes) -> str:
        messages = self.dissector().feed(replies, False, 0.0, 1)
        return ",".join(m.service for m in messages) or "none"

    def case_signature(self, case: Case) -> str:
        """The fault class of a case: its mutation and first request's service."""
        messages = self.dissector().feed(case.frames[0], True, 0.0, 1)
        service = messages[0].service if messages else "incomplete"
        if messages and messages[0].status.state == "malformed":
            service = "malformed"
        return f"{case.mutation}/{service}"
