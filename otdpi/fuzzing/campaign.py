"""The campaign: drive cases at a live target on one event loop and judge every reply.

Strategy
--------
Cases come from a pool the profile's hypothesis strategy draws once at the
start (hypothesis costs milliseconds a draw, too slow per case), each reused
through the profile's cheap field-aware mutations with a seeded
``random.Random``, so a campaign is reproducible from its seed. Up to
``concurrency`` workers share one event loop; each opens a fresh
non-blocking connection per case (or, with ``reuse_connection``, keeps one),
brings the session up through the profile's set-up cases, sends the case and
reads until the profile counts the replies it expects, the peer closes, or
the timeout passes.

Oracles, combined, each giving a :class:`~otdpi.fuzzing.profile.Verdict`:

``process_died``
    a started target exited (it is restarted and the cases in flight are
    replayed one at a time to name the culprit).
``connection_dropped``
    the peer closed or reset before sending the replies a case is owed.
``connection_closed``
    the peer closed on a case owed no reply (an invalid or cut header);
    allowed by some standards, so reported apart.
``no_reply`` / ``missing_replies``
    the connection stayed open but none, or fewer than owed, came.
``log_error``
    a traceback or error line in the target's output during the case.
``malformed_reply`` / ``protocol_violation``
    the profile's judge, that is the protocol's own dissector.
``slow_reply``
    a reply far slower than the usual reply to a valid case (20th percentile).
``memory_growth``
    the target's resident memory grew past a limit during the campaign.
``differential``
    two targets given the same case answered differently.

New findings are replayed to count how reliably they reproduce (differential
ones against both targets, memory ones by sending the campaign's last cases
again while watching the target's memory), then shrunk by
:mod:`~otdpi.fuzzing.shrinking` (hypothesis's shrinker after a delta-debugging
pass, the profile repairing length fields); both are bounded by a time budget.

Throughput: a case owed a reply that never comes would hold its worker for
the whole reply timeout; past a patience of a few times the usual reply
latency it gives its slot to the next case and waits on, to the same
timeout, among a bounded number of waiting cases (see :class:`Patience`).
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.profile import Case, FuzzProfile, Verdict
from otdpi.fuzzing.shrinking import ShrinkResult, shrink, shrink_case  # noqa: F401
from otdpi.fuzzing.targets import ERROR_LINE, Target

_DIGITS = re.compile(r"\b(?:0x[0-9a-fA-F]+|\d+)\b")


def draw_cases(strategy, count: int, seed: int) -> list[Any]:
    """``count`` values of a hypothesis strategy, reproducibly from ``seed``."""
    drawn: list[Any] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value):
        drawn.append(value)

    collect()
    return drawn


class Outcome(NamedTuple):
    """What the target did with one case.

    ``state``: ``answered`` (every owed reply came), ``silent`` (open, fewer
    replies than owed), ``dropped`` (closed or reset with replies owed),
    ``closed`` (closed, none owed), ``waited`` (open, none owed, none sent),
    ``refused`` (no connection) or ``setup_failed``.
    """

    state: str
    replies: bytes
    expected: int
    got: int
    latency: float
    started: float
    finished: float

    def to_json(self) -> dict[str, Any]:
        """The JSON form findings keep."""
        return {
            "state": self.state,
            "replies": self.replies.hex(),
            "expected": self.expected,
            "got": self.got,
            "latency": round(self.latency, 6),
        }


class Patience:
    """When a case stops holding its worker slot while it still waits for replies.

    A case that is owed a reply which does not come, or that lingers to see
    whether the peer drops it, used to hold one of the ``concurrency`` slots
    for its whole reply timeout, and a tenth of a campaign's cases do: that,
    not CPU, capped the rate. After ``after`` seconds without the replies it
    is owed, a case calls :meth:`release` once and keeps waiting, to its full
    timeout, outside the slots; its verdict is what it would have been.
    """

    def __init__(self, after: float, release: Callable[[], None]) -> None:
        self.after = after
        self._release = release
        self.released = False

    def release(self) -> None:
        """Free the slot (once)."""
        if not self.released:
            self.released = True
            self._release()


async def _read_replies(
    loop,
    sock,
    profile: FuzzProfile,
    expected: int,
    timeout: float,
    patience: Patience | None = None,
) -> tuple[bytes, bool]:
    """Read until ``expected`` replies, end of stream, or ``timeout``; (bytes, eof)."""
    buf = b""
    now = time.monotonic()
    deadline = now + timeout
    idle_at = now + patience.after if patience and not patience.released else None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return buf, False
        wait = remaining
        if idle_at is not None:
            wait = min(wait, max(idle_at - time.monotonic(), 0.0))
        try:
            # wait_for, not asyncio.timeout: a read that completes as the
            # timeout fires is returned by wait_for, lost by a cancellation.
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), wait)
        except (TimeoutError, asyncio.TimeoutError):
            if idle_at is not None and wait < remaining:
                idle_at = None
                patience.release()
                continue
            return buf, False
        except OSError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
        if expected and profile.count_replies(buf) >= expected:
            return buf, False


async def execute(
    case: Case,
    target: Target,
    profile: FuzzProfile,
    sock: socket.socket | None = None,
    patience: Patience | None = None,
) -> tuple[Outcome, socket.socket | None]:
    """Run one case on a fresh connection (or on ``sock``); the socket back if open.

    ``patience``, if given, is told when the case has waited long enough that
    it should stop counting against the campaign's concurrency.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    fresh = sock is None
    if fresh:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(
                loop.sock_connect(sock, (target.host, target.port)),
                profile.reply_timeout,
            )
        except (OSError, TimeoutError, asyncio.TimeoutError):
            sock.close()
            now = time.monotonic()
            return Outcome("refused", b"", 0, 0, 0.0, started, now), None
        for setup in profile.setup_for(case):
            try:
                await loop.sock_sendall(sock, setup.payload)
            except OSError:
                break
            expected = sum(profile.expected_replies(f) for f in setup.frames)
            data, eof = await _read_replies(
                loop, sock, profile, expected, profile.reply_timeout
            )
            if eof or not profile.setup_ok(data):
                sock.close()
                now = time.monotonic()
                return Outcome(
                    "setup_failed", data, expected, 0, 0.0, started, now
                ), None

    groups = (
        [(case.payload, profile.expected_replies(case.payload))]
        if case.together
        else [(frame, profile.expected_replies(frame)) for frame in case.frames]
    )
    replies, latency, total_expected, eof = b"", 0.0, 0, False
    for data, expected in groups:
        total_expected += expected
        sent_at = time.monotonic()
        try:
            await loop.sock_sendall(sock, data)
        except OSError:
            eof = True
            break
        got, eof = await _read_replies(
            loop, sock, profile, expected,
            profile.reply_timeout if expected else profile.linger, patience,
        )  # fmt: skip
        replies += got
        latency = max(latency, time.monotonic() - sent_at)
        if eof or profile.count_replies(got) < expected:
            break
    count = profile.count_replies(replies)
    if count >= total_expected:
        state = ("closed" if eof else "waited") if total_expected == 0 else "answered"
    else:
        state = "dropped" if eof else "silent"
    finished = time.monotonic()
    keep = not fresh or (not eof and state == "answered")
    if not keep or fresh:
        sock.close()
        sock = None
    return Outcome(
        state, replies, total_expected, count, latency, started, finished
    ), sock


def target_json(target: Target) -> dict[str, Any]:
    """What a finding keeps of a target to reach it, or start it, again."""
    return {
        "name": target.name,
        "address": target.address,
        "command": target.argv,
        "env": target.env or {},
        "max_concurrency": target.max_concurrency,
        "reply_timeout": target.reply_timeout,
    }


def target_from_json(data: dict[str, Any]) -> Target:
    """The inverse of :func:`target_json` (a fresh, stopped target)."""
    return Target(
        data["address"], data.get("command") or None, name=data.get("name"),
        max_concurrency=data.get("max_concurrency") or 64,
        env=data.get("env") or None, reply_timeout=data.get("reply_timeout"),
    )  # fmt: skip


def differential_signature(
    profile: FuzzProfile, mine: Outcome, theirs: Outcome
) -> str | None:
    """``state:replies vs state:replies`` of two targets' outcomes; None if alike."""
    a = f"{mine.state}:{profile.reply_signature(mine.replies)}"
    b = f"{theirs.state}:{profile.reply_signature(theirs.replies)}"
    return None if a == b else f"{a} vs {b}"


def state_verdicts(case: Case, outcome: Outcome, profile: FuzzProfile) -> list[Verdict]:
    """Verdicts of the connection-level oracles on one outcome."""
    sig = _case_signature(profile, case)
    state = outcome.state
    if state == "dropped":
        return [Verdict(
            "connection_dropped", sig,
            f"closed after {outcome.got} of {outcome.expected} replies "
            f"({case.mutation}: {case.note})",
        )]  # fmt: skip
    if state == "closed":
        return [Verdict("connection_closed", sig, f"{case.mutation}: {case.note}")]
    if state == "silent":
        oracle = "missing_replies" if outcome.got else "no_reply"
        return [Verdict(
            oracle, sig,
            f"{outcome.got} of {outcome.expected} replies in {profile.reply_timeout} s "
            f"({case.mutation}: {case.note})",
        )]  # fmt: skip
    if state == "setup_failed":
        return [Verdict("setup_failed", "setup", outcome.replies.hex()[:200])]
    return []


def _case_signature(profile: FuzzProfile, case: Case) -> str:
    # The fault class of a connection-level finding is what the peer was
    # asked (say, the function code), not which mutation happened to ask it.
    # Several messages in one segment are a fault class of their own: a peer
    # that answers only the first does so whatever the messages are.
    if case.together and len(case.frames) > 1:
        return "several_in_one_segment"
    signer = getattr(profile, "case_signature", None)
    return (signer(case) if signer else "") or "any"


def log_signature(lines: list[str]) -> str:
    """A fault class from output: a traceback's last line, else the first error line.

    Numbers are folded to ``N`` so that one fault with varying values makes
    one signature; lines that are not errors (a server's chatter) never count.
    """
    meaningful = [line.strip() for line in lines if line.strip()]
    for index, line in enumerate(meaningful):
        if line.startswith("Traceback"):
            tail = [
                x for x in meaningful[index + 1 :]
                if not x.startswith(("File ", "^", "~", "Traceback", ">>>"))
                and not lines_is_code(x)
            ]  # fmt: skip
            return _DIGITS.sub("N", tail[-1] if tail else line)[:120]
    for line in meaningful:
        if ERROR_LINE.search(line):
            return _DIGITS.sub("N", line)[:120]
    return ""


def lines_is_code(line: str) -> bool:
    """Whether a traceback line is a quoted source line rather than the error."""
    head = line.split(":", 1)[0]
    return not head.replace(".", "").replace("_", "").isalnum()


@dataclass
class Settings:
    """How a campaign runs; every loop is bounded by ``max_cases`` and ``max_time``."""

    max_cases: int = 1000
    max_time: float = 60.0
    concurrency: int = 32
    seed: int = 0
    pool_size: int = 300
    valid_share: float = 0.25
    reuse_connection: bool = False
    latency_factor: float = 20.0
    latency_floor: float = 0.2
    memory_limit_kib: int = 200_000
    post_time: float = 60.0  # shrinking and replay checks of new findings
    replay_runs: int = 10
    oracles_off: tuple[str, ...] = ()
    reply_timeout: float | None = None  # None: the target's, else the profile's
    mutations: tuple[str, ...] = ()  # empty: all the profile's
    warm_up_cases: int = 20
    # Cases that wait for replies beyond their patience (a few times the usual
    # reply latency) give their slot up; at most this many wait so at once.
    max_waiting: int = 256
    patience_factor: float = 4.0
    patience_floor: float = 0.002
    shrink_time: float = 5.0  # seconds per finding
    shrink_attempts: int = 300  # replays per finding
    shrink_delta_first: bool = True

    def to_json(self) -> dict[str, Any]:
        """The JSON form the campaign row keeps."""
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Stats:
    """Live counters a progress display reads."""

    cases: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None
    findings: collections.Counter = field(default_factory=collections.Counter)
    first_case: dict[str, int] = field(default_factory=dict)  # oracle -> case number
    mutations: collections.Counter = field(default_factory=collections.Counter)
    new_findings: int = 0
    states: collections.Counter = field(default_factory=collections.Counter)
    restarts: int = 0
    rate: float = 0.0
    phase: str = "generating"
    harness_cpu: float = 0.0  # CPU seconds the harness spent sending cases
    target_cpu: float | None = None  # CPU seconds the started target spent meanwhile

    def elapsed(self) -> float:
        """Seconds the campaign spent sending cases (so far, or in all)."""
        return (self.stopped or time.monotonic()) - self.started


class Campaign:
    """One fuzzing campaign of a profile against a target (and maybe a second one).

    Parameters
    ----------
    profile
        the protocol's :class:`FuzzProfile`.
    target
        the :class:`Target`; started by :meth:`run` when managed.
    store
        where findings go.
    settings
        bounds and thresholds.
    other
        a second target for differential mode.
    """

    def __init__(
        self,
        profile: FuzzProfile,
        target: Target,
        store: FindingStore,
        settings: Settings | None = None,
        other: Target | None = None,
    ) -> None:
        self.profile = profile
        self.target = target
        self.store = store
        self.settings = settings or Settings()
        self.other = other
        self.stats = Stats()
        self.new_ids: list[int] = []
        self._latencies: collections.deque[float] = collections.deque(maxlen=500)
        self._in_flight: dict[int, Case] = {}
        self._recent: collections.deque[Case] = collections.deque(maxlen=64)
        self._log_seen = 0
        self._death_cases: list[list[Case]] = []
        self._target_up: asyncio.Event | None = None
        self._restarting = False
        self.campaign_id = 0
        self.shrinks: dict[int, ShrinkResult] = {}  # finding id -> how it shrank
        self._latency_count = 0
        self._baseline_memo: tuple[int, float | None] = (-1, None)
        # The judge is a function of the case's bytes and the reply's bytes;
        # pool cases come back again and again and draw the same replies.
        self._judged: dict[tuple, list[Verdict]] = {}

    # -- the run ------------------------------------------------------------------

    def run(self, on_tick: Callable[[Stats], None] | None = None) -> Stats:
        """Run the campaign to its bounds, then shrink and check new findings."""
        s = self.settings
        self.campaign_id = self.store.start_campaign(
            self.profile.name, self.target.name, s.to_json()
        )
        timeout = s.reply_timeout or self.target.reply_timeout
        if timeout is not None:
            self.profile.reply_timeout = timeout
        if s.mutations:
            self.profile.select_mutations(list(s.mutations))
        # A focused campaign draws only valid cases up front, so that every
        # mutated case comes from the chosen mutations.
        strategy = (
            self.profile.valid_strategy() if s.mutations else self.profile.strategy()
        )
        pool = draw_cases(strategy, s.pool_size, s.seed)
        valid = [c for c in pool if c.mutation == "valid"] or pool
        self._drawn_mutants = [c for c in pool if c.mutation != "valid"]
        self.stats = Stats()
        try:
            for target in (self.target, self.other):
                if target is not None and target.managed and not target.alive():
                    target.start()
            self._log_seen = self.target.lines_seen
            self.stats.phase = "baseline"
            asyncio.run(self._warm_up(valid))
            self.stats.phase = "fuzzing"
            asyncio.run(self._fuzz(pool, valid, on_tick))
            self.stats.phase = "replaying, shrinking"
            if on_tick:
                on_tick(self.stats)
            asyncio.run(self._post(on_tick))
        finally:
            self.store.end_campaign(self.campaign_id, self.stats.cases, self.stats.rate)
        return self.stats

    def baseline(self) -> float | None:
        """The 20th percentile of valid, answered cases' latency (warm-up included).

        Not the median: valid requests a server does not implement may be
        answered slowly too (libmodbus delays every exception it sends), and
        they must not raise the yardstick they are judged by.
        """
        if len(self._latencies) < 5:
            return None
        # Sorted again only when a latency came in since (cases and findings
        # ask for it far more often than valid cases add to it).
        if self._baseline_memo[0] != self._latency_count:
            ordered = sorted(self._latencies)
            self._baseline_memo = (self._latency_count, ordered[len(ordered) // 5])
        return self._baseline_memo[1]

    def patience(self) -> float:
        """Seconds a case waits for replies before it gives its slot up.

        A few times the 90th percentile of valid replies' latency in the
        warm-up (never below ``patience_floor``, never above the reply
        timeout): almost every reply that comes at all has come by then.
        """
        s = self.settings
        if not self._latencies:
            return self.profile.reply_timeout
        ordered = sorted(self._latencies)
        p90 = ordered[min(len(ordered) - 1, len(ordered) * 9 // 10)]
        return min(
            self.profile.reply_timeout,
            max(s.patience_floor, s.patience_factor * p90),
        )

    async def _warm_up(self, valid: list[Case]) -> None:
        # The latency oracle needs a baseline before the first mutated case:
        # a few valid cases, one at a time, not counted as campaign cases.
        for case in valid[: self.settings.warm_up_cases]:
            outcome, _ = await execute(case, self.target, self.profile)
            if outcome.state == "answered":
                self._latencies.append(outcome.latency)
                self._latency_count += 1

    def _next_case(
        self, rng: random.Random, pool: list[Case], valid: list[Case]
    ) -> Case:
        # Valid cases at the chosen share; the rest mutated, half by hypothesis
        # (drawn into the pool up front), half by the profile's cheap mutators.
        if rng.random() < self.settings.valid_share:
            return rng.choice(valid)
        if self._drawn_mutants and rng.random() < 0.5:
            return rng.choice(self._drawn_mutants)
        return self.profile.mutate(rng.choice(valid), rng, valid)

    async def _fuzz(self, pool, valid, on_tick) -> None:
        s = self.settings
        self._target_up = asyncio.Event()
        self._target_up.set()
        rng = random.Random(s.seed)
        deadline = time.monotonic() + s.max_time
        self.stats.started = time.monotonic()
        counter = iter(range(s.max_cases))
        bound = self.target.max_concurrency
        if self.other is not None:
            bound = min(bound, self.other.max_concurrency)
        concurrency = max(1, min(s.concurrency, bound))
        waiting = max(0, min(s.max_waiting, bound - concurrency))

        async def run_one(index, case, sock, other_sock, patience=None):
            self._in_flight[index] = case
            outcome, sock = await execute(
                case, self.target, self.profile, sock, patience
            )
            verdicts = self._judge(case, outcome)
            if self.other is not None:
                other, other_sock = await execute(
                    case, self.other, self.profile, other_sock, patience
                )
                verdicts += self._differ(case, outcome, other)
            del self._in_flight[index]
            self._recent.append(case)
            self.stats.cases += 1
            self.stats.states[outcome.state] += 1
            self.stats.mutations[case.mutation] += 1
            for verdict in verdicts:
                self._record(verdict, case, outcome, other if self.other else None)
            if outcome.state in ("refused", "dropped") and not self.target.alive():
                await self._died(case)
            return sock, other_sock

        async def worker() -> None:
            # One connection per worker, kept between cases: cases run in turn.
            sock = other_sock = None
            for index in counter:
                if time.monotonic() > deadline:
                    break
                await self._target_up.wait()
                case = self._next_case(rng, pool, valid)
                sock, other_sock = await run_one(index, case, sock, other_sock)
            for leftover in (sock, other_sock):
                if leftover is not None:
                    leftover.close()

        async def dispatcher() -> None:
            # A new connection per case: ``concurrency`` cases are served at
            # once; a case still waiting after its patience gives its slot
            # up and waits on among at most ``waiting`` others (the target's
            # own bound on open connections caps both).
            slots = asyncio.Semaphore(concurrency)
            room = asyncio.Semaphore(concurrency + waiting)
            patience_after = self.patience()
            tasks: set[asyncio.Task] = set()

            async def one(index: int, case: Case) -> None:
                patience = (
                    Patience(patience_after, slots.release) if waiting else None
                )
                try:
                    await run_one(index, case, None, None, patience)
                finally:
                    if patience is None or not patience.released:
                        slots.release()
                    room.release()

            for index in counter:
                await room.acquire()
                await slots.acquire()
                if time.monotonic() > deadline:
                    slots.release()
                    room.release()
                    break
                await self._target_up.wait()
                task = asyncio.create_task(
                    one(index, self._next_case(rng, pool, valid))
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

        async def ticker() -> None:
            last_rss_check, base_rss, base_cases = 0.0, None, 0
            while True:
                await asyncio.sleep(0.25)
                self.stats.rate = self.stats.cases / max(self.stats.elapsed(), 1e-9)
                self._check_log()
                now = time.monotonic()
                if now - last_rss_check >= 1.0 and "memory_growth" not in s.oracles_off:
                    last_rss_check = now
                    rss = self.target.rss_kib()
                    if rss is not None and self.stats.elapsed() > 2.0:
                        if base_rss is None:
                            base_rss, base_cases = rss, self.stats.cases
                        if rss - base_rss > s.memory_limit_kib and self._recent:
                            # The growth belongs to no single case: keep the
                            # last cases sent and how many it took, which is
                            # what a replay sends again.
                            self._record(
                                Verdict(
                                    "memory_growth", "rss",
                                    f"resident memory {base_rss} -> {rss} KiB "
                                    f"over {self.stats.cases - base_cases} cases",
                                ),
                                self._recent[-1],
                                None,
                                extra={
                                    "memory_limit_kib": s.memory_limit_kib,
                                    "rss_kib": [base_rss, rss],
                                    "grown_over_cases": self.stats.cases - base_cases,
                                    "cases": [c.to_json() for c in self._recent],
                                },
                            )  # fmt: skip
                if on_tick:
                    on_tick(self.stats)

        tick = asyncio.create_task(ticker())
        cpu_before, target_before = time.process_time(), self.target.cpu_seconds()
        if s.reuse_connection:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            await dispatcher()
        self.stats.stopped = time.monotonic()
        self.stats.harness_cpu = time.process_time() - cpu_before
        target_after = self.target.cpu_seconds()
        if (
            target_before is not None
            and target_after is not None
            and not self.stats.restarts
        ):
            self.stats.target_cpu = target_after - target_before
        self.stats.rate = self.stats.cases / max(self.stats.elapsed(), 1e-9)
        await asyncio.sleep(0.1)  # let the output reader catch the last lines
        self._check_log()
        tick.cancel()

    # -- oracles -------------------------------------------------------------------

    def _judge(self, case: Case, outcome: Outcome) -> list[Verdict]:
        s = self.settings
        verdicts = state_verdicts(case, outcome, self.profile)
        if outcome.replies:
            key = (case.frames, case.together, outcome.replies)
            judged = self._judged.get(key)
            if judged is None:
                if len(self._judged) >= 8192:
                    self._judged.clear()
                judged = self._judged[key] = self.profile.judge(case, outcome.replies)
            verdicts += judged
        if outcome.state == "answered":
            if case.mutation == "valid":
                self._latencies.append(outcome.latency)
                self._latency_count += 1
            # Below the floor no reply is slow, whatever the baseline.
            if outcome.latency > s.latency_floor:
                verdicts += self._slow(case, outcome, self.baseline())
        return [v for v in verdicts if v.oracle not in s.oracles_off]

    def _slow(
        self, case: Case, outcome: Outcome, baseline: float | None
    ) -> list[Verdict]:
        s = self.settings
        if baseline is None:
            return []
        limit = max(s.latency_factor * baseline, s.latency_floor)
        if outcome.latency <= limit:
            return []
        return [Verdict(
            "slow_reply", _case_signature(self.profile, case),
            f"answered in {outcome.latency * 1000:.0f} ms, baseline "
            f"{baseline * 1000:.2f} ms ({case.mutation}: {case.note})",
        )]  # fmt: skip

    def _differ(self, case: Case, mine: Outcome, theirs: Outcome) -> list[Verdict]:
        signature = differential_signature(self.profile, mine, theirs)
        if signature is None:
            return []
        return [Verdict("differential", signature, f"{case.mutation}: {case.note}")]

    def _check_log(self) -> None:
        if "log_error" in self.settings.oracles_off:
            return
        lines = self.target.lines_since(self._log_seen)
        if not lines:
            return
        self._log_seen = self.target.lines_seen
        texts = [line.text for line in lines]
        if not any(ERROR_LINE.search(text) for text in texts):
            return
        # Lines cannot name their case while many are in flight: keep the
        # suspects, and name the culprit by replaying them one at a time later.
        suspects = list(self._in_flight.values()) + list(self._recent)[-16:]
        signature = log_signature(texts)
        if not hasattr(self, "_log_suspects"):
            self._log_suspects = {}
        if signature and len(self._log_suspects) < 8:
            self._log_suspects.setdefault(signature, suspects[-48:])

    async def _died(self, case: Case) -> None:
        if self._restarting:
            await self._target_up.wait()
            return
        self._restarting = True
        self._target_up.clear()
        # Limitation: the finding names the case whose connection failed; the
        # other cases in flight are kept as suspects but not replayed one by
        # one, so with high concurrency the named case may be the wrong one
        # (its replays then show it). Replaying the suspects would lift it.
        suspects = [case] + list(self._in_flight.values())
        verdict = Verdict("process_died", "exit", f"exit status {self._exit_status()}")
        self._record(verdict, case, None)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.target.ensure_running)
        self.stats.restarts += 1
        self._death_cases.append(suspects)
        self._restarting = False
        self._target_up.set()

    def _exit_status(self):
        process = self.target.process
        return process.poll() if process is not None else None

    def _record(
        self,
        verdict: Verdict,
        case: Case,
        outcome: Outcome | None,
        other: Outcome | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        observed = outcome.to_json() if outcome else {}
        observed["reply_timeout"] = self.profile.reply_timeout
        if verdict.oracle == "differential" and self.other is not None:
            # A differential finding replays against both targets: keep how
            # to reach (and start) the second one, and what it did.
            observed["other_target"] = target_json(self.other)
            if other is not None:
                observed["other_outcome"] = other.to_json()
        observed.update(extra or {})
        finding_id, new = self.store.record(
            self.campaign_id, self.profile.name, verdict, case, observed,
            self.target, self.baseline(),
        )  # fmt: skip
        self.stats.findings[verdict.oracle] += 1
        self.stats.first_case.setdefault(verdict.oracle, self.stats.cases)
        if new:
            self.stats.new_findings += 1
            self.new_ids.append(finding_id)

    # -- after the run: attribute log lines, shrink, count replays ---------------------

    async def _post(self, on_tick) -> None:
        # Order matters under the time budget: first name the culprits of log
        # lines, then count how reliably each new finding replays (the proof
        # it is real), and only then shrink.
        s = self.settings
        deadline = time.monotonic() + s.post_time
        for signature, suspects in getattr(self, "_log_suspects", {}).items():
            for case in suspects:
                if time.monotonic() > deadline:
                    break
                lines = await self._log_of(case)
                if lines and log_signature(lines) == signature:
                    self._record(Verdict("log_error", signature, lines[-1]), case, None)
                    break
        await self._name_killers(deadline)
        checked = []
        for finding_id in list(self.new_ids):
            if time.monotonic() > deadline:
                break
            finding = self.store.get(finding_id)
            hits = await replay_many(
                self.profile, self.target, finding, finding.case, s.replay_runs,
                other=self.other, deadline=deadline,
            )  # fmt: skip
            self.store.set_replays(finding_id, s.replay_runs, hits)
            checked.append(finding)
            if on_tick:
                on_tick(self.stats)
        for finding in checked:
            if time.monotonic() > deadline:
                break
            # Limitation: memory growth belongs to no single case, so it is
            # not shrunk; its replay sends the campaign's last cases again.
            # Shrinking that set (fewest cases that still grow) would lift it.
            if finding.oracle == "memory_growth":
                continue
            budget = min(deadline, time.monotonic() + s.shrink_time)
            result = await shrink_case(
                finding.case,
                lambda c, f=finding: reproduces(
                    self.profile, self.target, f, c, self.other
                ),
                self.profile,
                budget,
                max_attempts=s.shrink_attempts,
                delta_first=s.shrink_delta_first,
            )
            self.shrinks[finding.id] = result
            if result.case == finding.case:
                continue
            hits = await replay_many(
                self.profile, self.target, finding, result.case, s.replay_runs,
                other=self.other,
            )  # fmt: skip
            # Keep the shrunk case only if it replays as well as the original.
            if hits >= self.store.get(finding.id).replay_hits:
                self.store.set_shrunk(finding.id, result.case)
                self.store.set_replays(finding.id, s.replay_runs, hits)

    async def _name_killers(self, deadline: float) -> None:
        # With cases in flight when the server died, the case that noticed
        # may not be the one that killed it: replay each suspect alone and
        # keep the first that kills the server again as the finding's case.
        died = [
            f for f in self.store.all(self.campaign_id) if f.oracle == "process_died"
        ]
        if not died or not self._death_cases:
            return
        finding = died[0]
        tried: set[bytes] = set()
        for suspects in self._death_cases[:5]:
            for case in suspects:
                if time.monotonic() > deadline or case.payload in tried:
                    continue
                tried.add(case.payload)
                if await reproduces(self.profile, self.target, finding, case):
                    self.store.set_case(finding.id, case)
                    return

    async def _log_of(self, case: Case) -> list[str]:
        seen = self.target.lines_seen
        await execute(case, self.target, self.profile)
        await asyncio.sleep(0.05)
        lines = [line.text for line in self.target.lines_since(seen)]
        return lines if any(ERROR_LINE.search(t) for t in lines) else []


async def reproduces(
    profile: FuzzProfile,
    target: Target,
    finding,
    case: Case,
    other: Target | None = None,
) -> bool:
    """Whether ``case`` run alone makes ``target`` show ``finding``'s fault again.

    A differential finding needs ``other``, the second target: the case goes
    to both and the pair of answers must differ as they did. A memory finding
    is replayed by :func:`reproduces_memory` (it belongs to no single case).
    """
    if finding.oracle == "memory_growth":
        return await reproduces_memory(profile, target, finding)
    for each in (target, other):
        if each is not None and each.managed and not each.alive():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, each.ensure_running)
    if finding.oracle == "differential":
        if other is None:
            return False
        mine, _ = await execute(case, target, profile)
        theirs, _ = await execute(case, other, profile)
        return differential_signature(profile, mine, theirs) == finding.signature
    seen = target.lines_seen
    outcome, _ = await execute(case, target, profile)
    oracle, signature = finding.oracle, finding.signature
    if oracle == "process_died":
        # Refused means it was dead before this case, so the case cannot be
        # blamed; otherwise watch for the exit a little while.
        if outcome.state == "refused":
            return False
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            if not target.alive():
                return True
            await asyncio.sleep(0.02)
        return False
    if oracle == "log_error":
        await asyncio.sleep(0.05)
        lines = [line.text for line in target.lines_since(seen)]
        return (
            any(ERROR_LINE.search(t) for t in lines)
            and log_signature(lines) == signature
        )
    verdicts = state_verdicts(case, outcome, profile)
    if outcome.replies:
        verdicts += profile.judge(case, outcome.replies)
    if oracle == "slow_reply":
        baseline = finding.baseline_latency or 0.001
        limit = max(20 * baseline, 0.2)
        return outcome.state == "answered" and outcome.latency > limit
    return any(v.oracle == oracle and v.signature == signature for v in verdicts)


async def reproduces_memory(
    profile: FuzzProfile,
    target: Target,
    finding,
    deadline: float | None = None,
    concurrency: int = 16,
) -> bool:
    """Whether the target's memory grows past the finding's limit again.

    The campaign's last cases (kept with the finding) are sent again, in
    turn, until the resident memory of the started target has grown by more
    than the campaign's limit since the replay began (a hit), or twice as many
    cases as the campaign needed have gone (a miss), or ``deadline`` passes.
    """
    observed = finding.outcome
    cases = [Case.from_json(c) for c in observed.get("cases", [])] or [finding.case]
    limit = observed.get("memory_limit_kib")
    budget = 2 * max(1, observed.get("grown_over_cases", 1000))
    if target.managed and not target.alive():
        await asyncio.get_running_loop().run_in_executor(None, target.ensure_running)
    before = target.rss_kib()
    if before is None or limit is None:
        return False  # a target the harness does not run: no /proc to read
    deadline = deadline or time.monotonic() + 60.0
    sent = iter(range(budget))
    grew = False

    async def sender() -> None:
        nonlocal grew
        for index in sent:
            if grew or time.monotonic() > deadline:
                return
            await execute(cases[index % len(cases)], target, profile)
            if index % 64 == 0:
                rss = target.rss_kib()
                grew = grew or (rss is not None and rss - before > limit)

    workers = max(1, min(concurrency, target.max_concurrency))
    await asyncio.gather(*(sender() for _ in range(workers)))
    await asyncio.sleep(0.05)
    after = target.rss_kib()
    return grew or (after is not None and after - before > limit)


# Oracles whose replay needs the target to itself: they watch the process,
# its output or its memory, which concurrent cases would muddle.
_ALONE = {"process_died", "log_error", "memory_growth"}


async def replay_many(
    profile: FuzzProfile,
    target: Target,
    finding,
    case: Case,
    runs: int,
    other: Target | None = None,
    deadline: float | None = None,
) -> int:
    """How many of ``runs`` replays of ``case`` reproduce ``finding``.

    Runs go side by side when the target (and ``other``, the second target of
    a differential finding) takes concurrent connections and the oracle does
    not need the target alone, else one after another.
    """
    if finding.oracle == "memory_growth":
        return sum([
            await reproduces_memory(profile, target, finding, deadline)
            for _ in range(runs)
        ])  # fmt: skip
    bound = min(t.max_concurrency for t in (target, other) if t is not None)
    if finding.oracle in _ALONE or bound < runs:
        return sum([
            await reproduces(profile, target, finding, case, other)
            for _ in range(runs)
        ])  # fmt: skip
    results = await asyncio.gather(
        *(reproduces(profile, target, finding, case, other) for _ in range(runs))
    )
    return sum(results)


def replay_finding(
    finding,
    profile: FuzzProfile,
    target: Target,
    runs: int = 10,
    other: Target | None = None,
) -> list[bool]:
    """Replay a stored finding ``runs`` times, one at a time; one boolean per run.

    ``other`` is the second target a differential finding is replayed
    against (see :func:`other_target_of`).
    """

    async def go():
        return [
            await reproduces(profile, target, finding, finding.reproducer, other)
            for _ in range(runs)
        ]

    return asyncio.run(go())


def other_target_of(finding) -> Target | None:
    """The second target a differential finding was found against, None if none."""
    data = finding.outcome.get("other_target")
    return target_from_json(data) if data else None
