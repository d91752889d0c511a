"""Self-fuzzing targets, one per dissector: any input dissects or ends ``malformed``.

Each target takes bytes and checks the invariant the house rules state for
every dissector: fed whole, or one byte at a time, in either direction, it
never raises, every message has status ``ok``, ``exception`` or
``malformed``, and the internal-error safety net never fires. atheris
(``fuzz_<proto>.py``) and hypothesis (``tests/test_fuzz_self.py``) run the
same functions. Every installed dissector has a target: :func:`any_dissector`
serves those without a function of their own here (``fuzz/fuzz_any.py NAME``
runs it under atheris), and a dissector with extra entry points worth fuzzing
(Modbus's one-ADU decoder) adds a function and a line to TARGETS.
"""

from __future__ import annotations

from otdpi.dissector import FlowContext
from otdpi.errors import DissectError
from otdpi.message import Endpoint

_FLOW = FlowContext(0, Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 502), "tcp")
STATES = {"ok", "exception", "malformed"}


def _check(messages) -> None:
    for message in messages:
        assert message.status.state in STATES, message.status
        for finding in message.findings:
            assert finding[0] != "dissector_error", finding


def check_stream(dissector_class, data: bytes) -> None:
    """The invariant for a stream dissector, whole and byte by byte, both ways."""
    for to_server in (True, False):
        whole = dissector_class(_FLOW)
        _check(whole.feed(data, to_server, 0.0, 1) + whole.close(0.0, 2))
        split = dissector_class(_FLOW)
        out = []
        for index in range(min(len(data), 600)):
            out += split.feed(data[index : index + 1], to_server, 0.0, index)
        _check(out + split.close(0.0, len(data)))


def modbus(data: bytes) -> None:
    """Modbus/TCP: the stream dissector and the one-ADU decoder."""
    from dissectors.modbus import ModbusDissector, dissect_adu

    check_stream(ModbusDissector, data)
    # A probe must answer, never raise.
    ModbusDissector.probe(data, True)
    ModbusDissector.sender_is_client(data)
    try:
        _check([dissect_adu(data, True), dissect_adu(data, False)])
    except DissectError:
        pass  # TruncatedError and MalformedError are the documented outcomes


def check_datagrams(dissector_class, data: bytes) -> None:
    """The invariant for a datagram or frame dissector: each feed is one unit."""
    flow = FlowContext(0, Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 20000),
                       dissector_class.transports[0])
    for to_server in (True, False):
        session = dissector_class(flow)
        out = session.feed(data, to_server, 0.0, 1)
        # The same bytes cut in two, as two datagrams in a row.
        half = len(data) // 2
        out += session.feed(data[:half], to_server, 0.0, 2)
        out += session.feed(data[half:], to_server, 0.0, 3)
        _check(out + session.close(0.0, 4))


def any_dissector(name: str, data: bytes) -> None:
    """Any installed dissector: its probes answer, and the stream or datagram invariant holds."""
    from otdpi.registry import get

    cls = get(name)
    cls.probe(data, True)
    cls.probe(data, False)
    cls.sender_is_client(data)
    if "tcp" in cls.transports:
        check_stream(cls, data)
    else:
        check_datagrams(cls, data)


TARGETS = {"modbus": modbus}


def target(name: str):
    """The target function of a dissector: its own one, else :func:`any_dissector`."""
    own = TARGETS.get(name)
    if own is not None:
        return own
    return lambda data: any_dissector(name, data)
