"""Shrinking a finding's case to a minimal reproducer with hypothesis's own shrinker.

The case is re-expressed as a hypothesis strategy whose simplest values are
fewer frames and shorter, zeroed byte strings: one ``(keep, bytes)`` pair per
frame, ``keep`` a boolean (False, the simpler, drops the frame) and ``bytes``
at most as long as the frame. The finding's own case is that strategy's value
for the choice sequence ``(True, frame)`` per frame, which is put in an
in-memory example database; :func:`hypothesis.find` with only the reuse and
shrink phases replays it and shrinks it, the condition being "replaying this
case against the target reproduces the same oracle and signature". The
profile's :meth:`~otdpi.fuzzing.profile.FuzzProfile.repair` keeps length
fields honest where the original's were, so that cut bytes do not turn one
fault into another.

Targets are slow (a no-reply finding costs its reply timeout per try), so
every try goes through a budget of attempts and seconds; a try past the
budget is answered "no" without touching the target, which ends hypothesis's
passes at once, and the smallest reproducing case seen so far is kept
whatever hypothesis does next. Tries are cached by the bytes they send, since
many choice sequences make the same case.

A delta-debugging pass (delete frames, then byte runs, biggest first) can run
before hypothesis: it reaches a small case in fewer tries on long frames,
and hypothesis then finishes the job (zeroing bytes, dropping single bytes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from hypothesis import Phase, find, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes

from otdpi.fuzzing.profile import Case, FuzzProfile

StillFails = Callable[[Case], Awaitable[bool]]


class ShrinkResult(NamedTuple):
    """The smallest reproducing case found, and what it cost.

    ``attempts`` counts replays against the target (cache hits excluded),
    ``by_pass`` how many of them each pass (``delta``, ``hypothesis``) made.
    """

    case: Case
    attempts: int
    seconds: float
    by_pass: dict[str, int]
    exhausted: bool


def size_key(case: Case) -> tuple[int, int, bytes]:
    """How a case compares when shrinking: fewer bytes, fewer frames, then bytes."""
    return len(case.payload), len(case.frames), case.payload


def case_strategy(case: Case, profile: FuzzProfile):
    """A strategy of cases no bigger than ``case``, simplest first (see module)."""
    frames = case.frames

    def build(parts) -> Case:
        kept = []
        for original, (keep, data) in zip(frames, parts):
            if keep and data:
                kept.append(profile.repair(original, data))
        return case._replace(frames=tuple(kept))

    return st.tuples(
        *(st.tuples(st.booleans(), st.binary(max_size=len(f))) for f in frames)
    ).map(build)


def seed_choices(case: Case) -> list:
    """The choice sequence that makes :func:`case_strategy` draw ``case`` itself."""
    choices: list = []
    for frame in case.frames:
        choices += [True, frame]
    # One choice more than the strategy reads: hypothesis takes an exact,
    # fully read database entry for an example it shrank already and skips
    # shrinking it; with a surplus choice it shrinks.
    return choices + [False]


class _Budget:
    """Attempts and time left, a cache of tries, the best case seen."""

    def __init__(self, case: Case, max_attempts: int, deadline: float) -> None:
        self.best = case
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.attempts = 0
        self.by_pass: dict[str, int] = {}
        self.cache: dict[tuple[tuple[bytes, ...], bool], bool] = {
            (case.frames, case.together): True
        }
        self.exhausted = False

    def spent(self) -> bool:
        if self.attempts >= self.max_attempts or time.monotonic() >= self.deadline:
            self.exhausted = True
        return self.exhausted

    async def tries(self, candidate: Case, still_fails: StillFails, name: str) -> bool:
        if not candidate.frames:
            return False
        key = (candidate.frames, candidate.together)
        if key in self.cache:
            return self.cache[key]
        if self.spent():
            return False
        self.attempts += 1
        self.by_pass[name] = self.by_pass.get(name, 0) + 1
        fails = bool(await still_fails(candidate))
        self.cache[key] = fails
        if fails and size_key(candidate) < size_key(self.best):
            self.best = candidate
        return fails


def _delta_candidates(case: Case, profile: FuzzProfile):
    """Smaller cases to try, biggest cuts first: frames, then halving byte runs."""
    frames = list(case.frames)
    if len(frames) > 1:
        for index in range(len(frames)):
            yield case._replace(frames=tuple(frames[:index] + frames[index + 1 :]))
    for index, frame in enumerate(frames):
        size = len(frame)
        step = size // 2
        while step >= 1:
            for start in range(0, size - step + 1, step):
                smaller = frame[:start] + frame[start + step :]
                if not smaller:
                    continue
                smaller = profile.repair(frame, smaller)
                yield case._replace(
                    frames=tuple(frames[:index] + [smaller] + frames[index + 1 :])
                )
            step //= 2


async def _delta_pass(budget: _Budget, still_fails: StillFails, profile) -> None:
    improved = True
    while improved and not budget.spent():
        improved = False
        for candidate in _delta_candidates(budget.best, profile):
            if budget.spent():
                return
            if size_key(candidate) >= size_key(budget.best):
                continue
            if await budget.tries(candidate, still_fails, "delta"):
                improved = True
                break


async def _hypothesis_pass(
    budget: _Budget, still_fails: StillFails, profile: FuzzProfile
) -> None:
    loop = asyncio.get_running_loop()
    start = budget.best
    database = InMemoryExampleDatabase()
    key = b"otdpi-shrink"
    database.save(key, choices_to_bytes(seed_choices(start)))

    def condition(candidate: Case) -> bool:
        # Runs in hypothesis's thread; the try itself runs on the event loop.
        future = asyncio.run_coroutine_threadsafe(
            budget.tries(candidate, still_fails, "hypothesis"), loop
        )
        return future.result()

    def run() -> None:
        try:
            find(
                case_strategy(start, profile),
                condition,
                settings=settings(
                    database=database,
                    phases=[Phase.reuse, Phase.shrink],
                    deadline=None,
                    max_examples=1,
                ),
                database_key=key,
            )
        except Exception:  # noqa: BLE001
            # NoSuchExample (the seed did not fail again) or Flaky (a try
            # answered differently the second time, or the budget ran out
            # before hypothesis's final replay): the best case seen stands.
            pass

    await loop.run_in_executor(None, run)


async def shrink_case(
    case: Case,
    still_fails: StillFails,
    profile: FuzzProfile,
    deadline: float,
    max_attempts: int = 300,
    delta_first: bool = True,
) -> ShrinkResult:
    """The smallest case that still fails, by delta debugging and hypothesis.

    Parameters
    ----------
    case
        the failing case.
    still_fails
        async predicate: does this case reproduce the finding?
    profile
        the protocol's profile (its ``repair`` keeps length fields honest).
    deadline
        monotonic time after which no more tries are made.
    max_attempts
        tries against the target, all passes together.
    delta_first
        run the delta-debugging pass before hypothesis's shrinker.
    """
    started = time.monotonic()
    budget = _Budget(case, max_attempts, deadline)
    if delta_first:
        await _delta_pass(budget, still_fails, profile)
    if not budget.spent():
        await _hypothesis_pass(budget, still_fails, profile)
    return ShrinkResult(
        budget.best, budget.attempts, time.monotonic() - started,
        dict(budget.by_pass), budget.exhausted,
    )  # fmt: skip


async def shrink(
    case: Case,
    still_fails: StillFails,
    profile: FuzzProfile,
    deadline: float,
    max_attempts: int = 300,
) -> Case:
    """The smallest failing case :func:`shrink_case` finds (the case only)."""
    result = await shrink_case(case, still_fails, profile, deadline, max_attempts)
    return result.case
