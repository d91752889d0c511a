"""The per-protocol fuzz profile contract, the case record, and the profile registry.

A profile tells the protocol-neutral harness (:mod:`otdpi.fuzzing.campaign`)
everything it cannot know about one protocol: how to draw valid and mutated
messages (from the dissector's own construct definitions), how to bring a
session up before the case (COTP connect, HSMS select, DICOM association...),
how many replies a case should draw and when a reply is complete, and how to
judge a reply with the protocol's own otdpi dissector.

Registration point for other protocols
--------------------------------------
A dissector package ships its profile either by calling
:func:`register_profile` at import time of a module listed under the
entry-point group ``otdpi.fuzz_profiles`` (``name = "package.module:Profile"``;
the class is instantiated on first use), or, inside otdpi, by adding a line to
:data:`_BUILTIN`. Nothing in :mod:`otdpi.dissector` changes.
"""

from __future__ import annotations

import random
from importlib.metadata import entry_points
from typing import Any, ClassVar, NamedTuple

from otdpi.errors import UsageError

ENTRY_POINT_GROUP = "otdpi.fuzz_profiles"


class Case(NamedTuple):
    """One test case: the frames to send and how they were made.

    ``frames`` are sent in order. When ``together`` is true they leave in one
    write (one TCP segment on loopback), to test how a peer splits a stream;
    otherwise each frame waits for its replies before the next is sent, which
    is how message sequences are fuzzed. ``mutation`` is ``valid`` or the name
    of the mutation that made the case; ``note`` says what it did.
    """

    frames: tuple[bytes, ...]
    mutation: str = "valid"
    note: str = ""
    together: bool = False

    @property
    def payload(self) -> bytes:
        """All frames back to back."""
        return b"".join(self.frames)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, bytes as hex, as findings store it."""
        return {
            "frames": [frame.hex() for frame in self.frames],
            "mutation": self.mutation,
            "note": self.note,
            "together": self.together,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        """The inverse of :meth:`to_json`."""
        return cls(
            tuple(bytes.fromhex(frame) for frame in data["frames"]),
            data.get("mutation", "valid"),
            data.get("note", ""),
            bool(data.get("together", False)),
        )


class Verdict(NamedTuple):
    """One oracle's complaint about a case.

    ``signature`` is what findings are de-duplicated by, together with the
    oracle: it names the kind of fault (``exception_function_0x80_for_0x03``),
    never the random parts of the case.
    """

    oracle: str
    signature: str
    detail: str


class FuzzProfile:
    """Base class of a protocol's fuzz profile; subclasses fill in the hooks.

    Class attributes
    ----------------
    name
        the protocol's registry name (``modbus``, ``hl7``...).
    default_port
        the port a target usually listens on.
    reply_timeout
        seconds to wait for a reply the case should draw.
    linger
        seconds to keep listening after a case that should draw no reply, to
        see whether the peer drops the connection instead of waiting.
    """

    name: ClassVar[str] = ""
    default_port: ClassVar[int] = 0
    reply_timeout: ClassVar[float] = 1.0
    linger: ClassVar[float] = 0.05
    _mutators: list = []
    _weights: list = []

    # -- generation ------------------------------------------------------------

    def strategy(self):
        """A hypothesis strategy of :class:`Case` values, valid and mutated."""
        raise NotImplementedError

    def valid_strategy(self):
        """A hypothesis strategy of valid :class:`Case` values only."""
        raise NotImplementedError

    def mutate(
        self, case: Case, rng: random.Random, others: list[Case] | None = None
    ) -> Case:
        """A field-aware mutation of ``case`` drawn with ``rng`` (cheap, per case).

        ``others`` are valid cases a mutation may combine with ``case``
        (concatenation, sequences).
        """
        return case

    def select_mutations(self, names: list[str]) -> None:
        """Keep only the named mutations for :meth:`mutate` (a focused campaign).

        Profiles keep their mutation functions in ``_mutators`` and weights in
        ``_weights``; this filters both by function name.

        Raises
        ------
        UsageError
            a name is not one of the profile's mutations.
        """
        known = {m.__name__: (m, w) for m, w in zip(self._mutators, self._weights)}
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise UsageError(
                f"{self.name} has no mutation {', '.join(unknown)}; it has "
                f"{', '.join(sorted(known))}"
            )
        self._mutators = [known[n][0] for n in names]
        self._weights = [known[n][1] for n in names]

    def repair(self, original: bytes, edited: bytes) -> bytes:
        """``edited`` with length fields fixed where ``original``'s were true.

        The shrinker calls it after cutting bytes, so that a smaller case keeps
        the shape of the one that failed. The default changes nothing.
        """
        return edited

    # -- session -----------------------------------------------------------------

    def setup(self) -> tuple[Case, ...]:
        """Cases that bring a session up before each fuzzed case (none by default).

        Their replies are read and judged with :meth:`setup_ok`; a session
        that does not come up is a finding of its own.
        """
        return ()

    def setup_for(self, case: Case) -> tuple[Case, ...]:
        """The set-up cases to run before ``case``: :meth:`setup` by default.

        A profile that fuzzes its own set-up (a mutated HSMS select, DICOM
        association request or MMS initiate) returns only the steps before
        the one the case replaces.
        """
        return self.setup()

    def setup_ok(self, replies: bytes) -> bool:
        """Whether the set-up's replies say the session is up."""
        return True

    # -- replies -----------------------------------------------------------------

    def expected_replies(self, frame: bytes) -> int:
        """How many replies a conforming peer owes ``frame`` (0: it should wait)."""
        raise NotImplementedError

    def count_replies(self, data: bytes) -> int:
        """How many whole replies ``data`` holds."""
        raise NotImplementedError

    def judge(self, case: Case, replies: bytes) -> list[Verdict]:
        """Verdicts of the protocol's own dissector on the replies to ``case``."""
        return []

    def reply_signature(self, replies: bytes) -> str:
        """A short, comparable description of replies, for differential mode."""
        return replies.hex()


# --- registry ---------------------------------------------------------------------

_BUILTIN = {
    "modbus": "otdpi.fuzzing.modbus:ModbusProfile",
    "hl7": "otdpi.fuzzing.mllp:MllpProfile",
    "hsms": "otdpi.fuzzing.hsms:HsmsProfile",
    "dicom": "otdpi.fuzzing.dicom:DicomProfile",
    "s7comm": "otdpi.fuzzing.s7comm:S7commProfile",
    "mms": "otdpi.fuzzing.mms:MmsProfile",
    "dnp3": "otdpi.fuzzing.dnp3:Dnp3Profile",
}
_REGISTERED: dict[str, type[FuzzProfile]] = {}


def register_profile(cls: type[FuzzProfile]) -> type[FuzzProfile]:
    """Register a profile class under its ``name``; usable as a decorator."""
    _REGISTERED[cls.name] = cls
    return cls


def _load(spec: str) -> type[FuzzProfile]:
    module_name, _, attr = spec.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def available_profiles() -> list[str]:
    """Names of every fuzz profile: built in, registered and from entry points."""
    names = set(_BUILTIN) | set(_REGISTERED)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get_profile(name: str) -> FuzzProfile:
    """An instance of the fuzz profile for protocol ``name``.

    Raises
    ------
    UsageError
        no profile of that name is built in, registered or installed.
    """
    cls = _REGISTERED.get(name)
    if cls is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                cls = ep.load()
                break
    if cls is None and name in _BUILTIN:
        cls = _load(_BUILTIN[name])
    if cls is None:
        raise UsageError(
            f"no fuzz profile for {name!r}; available: "
            f"{', '.join(available_profiles())}"
        )
    return cls()
