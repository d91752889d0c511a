"""The sans-IO dissector contract: what a protocol plugin declares and how it is fed.

A plugin is a subclass of :class:`Dissector` registered under the entry-point
group ``otdpi.dissectors``. The engine makes one instance per flow and feeds it
the flow's payload in order, one direction at a time; the instance keeps only
its own per-flow state and returns :class:`~otdpi.message.Message` records.
It never reads files, sockets or the clock: timestamps and frame numbers
arrive with the bytes. The same instance therefore serves pcap replay, live
capture, :func:`otdpi.dissect` on a single PDU, and the fuzzing harness.

For TCP the bytes of one direction arrive in order with retransmissions and
overlaps already removed; when the capture lost bytes the engine calls
:meth:`Dissector.gap` and the dissector must find the next unit boundary by
itself. For UDP each call to :meth:`Dissector.feed` carries one datagram.

A plugin for a protocol carried straight over Ethernet (GOOSE, Sampled Values,
PROFINET RT...) names the transport ``ethernet`` and lists its ``ethertypes``.
Its "flow" is one (source MAC, destination MAC, ethertype) conversation; each
call to :meth:`Dissector.feed` carries the bytes after the ethertype (and after
any VLAN tags) of one frame, and the endpoints carry a MAC and no IP address.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from otdpi.message import Endpoint, Message


class FlowContext(NamedTuple):
    """What a dissector instance knows of the flow it serves.

    ``client`` is the side the chosen dissector's
    :meth:`Dissector.sender_is_client` names from the first bytes, else the
    side that sent the SYN, else (caught mid-stream) the side whose port is not
    a known service port, else the higher port.
    ``transport`` is ``tcp``, ``udp`` or ``ethernet``.
    """

    flow_id: int
    client: Endpoint
    server: Endpoint
    transport: str


class Dissector:
    """Base class of every protocol plugin.

    Class attributes a plugin sets
    ------------------------------
    name
        registry name, also ``Message.protocol`` (``modbus``, ``dnp3``...).
    transports
        the transports it runs over, ``("tcp",)`` by default; ``"udp"`` and
        ``"ethernet"`` are the others.
    default_ports
        service ports tried first; the port alone never decides, ``probe`` does.
    ethertypes
        for the ``ethernet`` transport, the ethertypes it reads; a frame of
        another ethertype never reaches it.
    probe_min_bytes
        how many bytes :meth:`probe` needs before it can answer.
    port_only
        True for a protocol whose probe is too weak to stand alone (no magic
        number, a loose header): it is then asked only about flows on one of
        its ``default_ports`` (or ``ethertypes``), never about other flows.
    state
        one line saying what per-flow state an instance keeps (documentation).
    """

    name: ClassVar[str] = ""
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    default_ports: ClassVar[tuple[int, ...]] = ()
    ethertypes: ClassVar[tuple[int, ...]] = ()
    probe_min_bytes: ClassVar[int] = 1
    port_only: ClassVar[bool] = False
    state: ClassVar[str] = ""

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Say cheaply whether ``data``, the first bytes one side sent, are ours.

        Called with at least ``probe_min_bytes`` bytes (fewer only when the
        flow ended before that many arrived). Must not raise.
        """
        raise NotImplementedError

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """From the first bytes one side sent, whether that side is the client.

        Asked once per flow, for each side that sent bytes before the
        dissector was chosen; the answer overrules the SYN or the ports when
        the sides' answers do not cancel out. ``True`` or ``False`` when the
        bytes look like requests or responses, ``None`` when they do not say
        (the default). Must not raise.
        """
        return None

    def __init__(self, flow: FlowContext) -> None:
        self.flow = flow
        self.client_to_server = (flow.client, flow.server)
        self.server_to_client = (flow.server, flow.client)

    def endpoints(self, to_server: bool) -> tuple[Endpoint, Endpoint]:
        """``(src, dst)`` for a unit travelling in the given direction."""
        return self.client_to_server if to_server else self.server_to_client

    def feed(self, data: bytes, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Take the next bytes of one direction; return the messages they complete.

        A unit that spans several calls is reported with the ``ts`` and
        ``frame`` of the call that completed it. Must not raise on any input:
        bad bytes become messages whose status is ``malformed``.
        """
        raise NotImplementedError

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Bytes of one direction were lost; drop partial state and resynchronise.

        The default suits protocols without cross-unit state beyond a buffer:
        it reports nothing. Plugins with a framer reset it here.
        """
        return []

    def close(self, ts: float, frame: int) -> list[Message]:
        """The flow ended (FIN, RST, idle expiry, end of capture); flush leftovers.

        Bytes left in a partial unit become one ``malformed`` message saying so.
        """
        return []
