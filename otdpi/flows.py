"""Flow table and TCP reassembly: turns decoded packets into ordered bytes for dissectors.

Strategy
--------
A flow is keyed by its 5-tuple; the table holds each flow under both
orientations of the key, so one dict look-up finds the flow *and* the direction
of the packet. The client is first taken to be the side that sent a bare SYN;
without one (a capture that starts mid-stream, or UDP) it is guessed from
ports (the side not using a known service port, else the higher port). The
chosen dissector may then overrule either from the first bytes each side sent
(:meth:`~otdpi.dissector.Dissector.sender_is_client`), because the protocol's
client is the side that sends requests: Modbus on ports 503 and 1 caught
mid-stream, or a device on port 502 that opens the connection and then sends
exception responses, would otherwise be read backwards.

TCP bytes are delivered per direction in sequence order. A segment that starts
before the next expected byte is trimmed to its new part, so retransmissions
and overlaps never reach a dissector twice (the first copy wins). A segment
that starts later is held until the hole fills. A hole is declared lost, and
the dissector told through ``gap()``, when the other side has acknowledged
bytes past it (the capture missed them), when the held bytes exceed the
per-flow cap, or when the flow ends. Memory is bounded by the per-flow cap and
by the flow-table cap; each limit counts in :attr:`FlowTable.counters` when it
bites.

Until a dissector is chosen, a flow's first payload chunks are kept (bounded)
and replayed into the chosen dissector, so no early message is lost to probing.

A table may serve one share of the flows (``shard=(index, count)``): a flow
belongs to share ``crc32(its endpoints, in a fixed order) % count``, the same in
every process, so several workers reading one capture each dissect a disjoint
part and their inventories merge into the whole.

The bulk of a long capture, Ethernet + IPv4 + TCP segments of open flows
arriving in order, and bare ACKs, can skip the decoder:
:meth:`FlowTable.process_ethernet` finds their flow under the frame's raw
address and port bytes and does what decoding and :meth:`FlowTable.process`
would, or declines before touching any state. A table serving one share
remembers the other shares' flows the same way, so their frames cost one
look-up each.

Frames that are not IP reach the table as layer-2 packets. When a dissector
claims their ethertype, each (source MAC, destination MAC, ethertype) is a flow
of its own, fed frame by frame like UDP; other layer-2 frames open nothing.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from otdpi.decode import Packet
from otdpi.dissector import Dissector, FlowContext
from otdpi.message import Endpoint, Message
from otdpi.registry import Selector

TCP = 6
UDP = 17
LAYER2 = -1  # Packet.proto of a frame that is not IP
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31
SWEEP_EVERY = 4096  # packets between two looks for idle flows

# The fields of an Ethernet + IPv4 + TCP frame that decide whether it can take
# FlowTable.process_ethernet: ethertype, version and header length, total
# length, fragment bits, protocol, then TCP sequence, acknowledgement, data
# offset and flags. Addresses and ports (bytes 26 to 38) are the wire key.
_WIRE_TCP = struct.Struct("!12xHBxH2xHxB14xIIBB")
_WIRE_KEY = slice(26, 38)
_PORTS = struct.Struct("!HH")


@dataclass
class FlowConfig:
    """Limits of the flow table; all of them count in the counters when they bite.

    ``idle_timeout`` is in capture seconds; ``max_flow_buffer`` bounds the
    out-of-order bytes held per direction; ``probe_chunks`` is how many payload
    chunks a flow may show before it is declared of unknown protocol.
    """

    idle_timeout: float = 600.0
    max_flows: int = 200_000
    max_flow_buffer: int = 1 << 18
    probe_chunks: int = 6
    probe_buffer: int = 4096


class _Stream:
    """Reassembly state of one direction of a TCP flow."""

    __slots__ = ("next_seq", "held", "held_bytes", "peer_acked")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.held: dict[int, tuple[bytes, float, int]] = {}
        self.held_bytes = 0
        # Highest sequence number the other side has acknowledged in this
        # direction: proof that bytes before it were sent, seen by us or not.
        self.peer_acked: int | None = None


class Flow:
    """One conversation: endpoints, counters, and the dissector serving it."""

    __slots__ = (
        "id", "transport", "client", "server", "service_port", "dissector",
        "protocol", "decided", "probe_chunks", "first_ts", "last_ts",
        "packets", "payload_bytes", "to_server_stream", "to_client_stream",
        "keys", "wire_keys", "closed_dirs", "last_frame", "guessed", "swapped",
    )

    def __init__(self, flow_id: int, transport: str, client: Endpoint, server: Endpoint,
                 ts: float) -> None:
        self.id = flow_id
        self.transport = transport
        self.client = client
        self.server = server
        self.service_port = server.port
        self.dissector: Dissector | None = None
        self.protocol: str | None = None
        self.decided = False
        self.probe_chunks: list[tuple[bytes, bool, float, int]] = []
        self.first_ts = ts
        self.last_ts = ts
        self.packets = 0
        self.payload_bytes = 0
        self.to_server_stream = _Stream()
        self.to_client_stream = _Stream()
        self.keys: tuple = ()
        self.wire_keys: tuple = ()
        self.closed_dirs = 0
        self.last_frame = 0
        # The chosen dissector may overrule the direction taken from the SYN
        # or the ports; the table's internal orientation (keys, streams) then
        # stays as first taken and ``swapped`` turns it around on the way
        # into the dissector. ``guessed``: no SYN was seen.
        self.guessed = False
        self.swapped = False


class FlowTable:
    """Feeds decoded packets through per-flow reassembly into dissectors.

    Parameters
    ----------
    selector
        chooses a dissector for each new flow.
    config
        table limits.
    on_retire
        called with each flow as it ends, for flow-level consumers.
    first_flow_id
        id of the first flow opened; lets ids run on across several files.
    shard
        ``(index, count)``: serve only the flows whose hash falls in share
        ``index`` of ``count``; None serves every flow.
    """

    def __init__(self, selector: Selector, config: FlowConfig | None = None,
                 on_retire: Callable[[Flow], None] | None = None,
                 first_flow_id: int = 1,
                 shard: tuple[int, int] | None = None) -> None:
        self.selector = selector
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard[0]} of {shard[1]} does not exist")
        self._shard = shard if shard is not None and shard[1] > 1 else None
        # Keys of flows that belong to another share, so that each of their
        # packets costs one look-up; emptied when full, like the address caches.
        self._foreign: set[tuple] = set()
        self._ethertypes = selector.ethertypes
        self.config = config or FlowConfig()
        self.counters: Counter[str] = Counter()
        self._by_key: dict[tuple, tuple[Flow, bool]] = {}
        # IPv4 TCP flows again, under the 12 address and port bytes of their
        # frames, for process_ethernet; and the foreign ones among them.
        self._by_wire: dict[bytes, tuple[Flow, bool]] = {}
        self._foreign_wire: set[bytes] = set()
        self._by_age: OrderedDict[int, Flow] = OrderedDict()
        self._next_id = first_flow_id
        self._packets_since_sweep = 0
        self._on_retire = on_retire

    def __len__(self) -> int:
        return len(self._by_age)

    @property
    def next_flow_id(self) -> int:
        """The id the next new flow will get."""
        return self._next_id

    # -- packets in ------------------------------------------------------------

    def process(self, pkt: Packet, ts: float, frame: int) -> list[Message]:
        """Account one packet; return the messages it completes."""
        proto = pkt.proto
        if proto == TCP or proto == UDP:
            key = (proto, pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port)
        elif proto == LAYER2 and pkt.ethertype in self._ethertypes:
            key = (proto, pkt.src_mac, pkt.ethertype, pkt.dst_mac, pkt.ethertype)
        else:
            return []
        found = self._by_key.get(key)
        if found is None:
            if self._shard is not None and not self._ours(key):
                if proto == TCP:
                    self._remember_foreign_wire(key)
                return []
            # A bare ACK, FIN or RST opens nothing: it is usually the tail of a
            # connection just retired, and would count as a flow of its own.
            if proto == TCP and not pkt.payload and not pkt.tcp_flags & SYN:
                return []
            flow, to_server, out = self._open(pkt, key, ts)
        else:
            flow, to_server = found
            self._by_age.move_to_end(flow.id)
            out = None
        flow.last_ts = ts
        flow.last_frame = frame
        flow.packets += 1

        self._packets_since_sweep += 1
        if self._packets_since_sweep >= SWEEP_EVERY:
            self._packets_since_sweep = 0
            out = (out or []) + self.expire(ts)

        if proto != TCP:
            found = []
            if pkt.payload:
                flow.payload_bytes += len(pkt.payload)
                found = self._deliver(flow, pkt.payload, to_server, ts, frame)
        else:
            found = self._tcp(flow, pkt, to_server, ts, frame)
        # Most packets complete their messages alone: hand the list on as is.
        return out + found if out else found

    def process_ethernet(self, data: bytes, ts: float, frame: int
                         ) -> list[Message] | None:
        """Take the common frame the short way; None leaves it to :meth:`process`.

        Most frames of a long capture are Ethernet + IPv4 + TCP segments of a
        flow already open, in order, with its dissector chosen, or bare ACKs.
        For those this does what ``Decoder.decode`` and :meth:`process` would
        do together, found under the frame's raw address and port bytes, with
        no Packet and no address text built. Anything else (a new flow, SYN,
        FIN or RST, a hole, a frame the decoder would count) returns None
        before any state is touched, and the caller decodes it as usual.
        """
        if len(data) < 54:
            return None
        (ethertype, version_ihl, total_length, fragment, proto,
         seq, ack, data_offset, flags) = _WIRE_TCP.unpack_from(data)
        if (ethertype != 0x0800 or version_ihl != 0x45 or proto != TCP
                or fragment & 0x3FFF or flags & (SYN | FIN | RST)):
            return None
        wire_key = data[_WIRE_KEY]
        found = self._by_wire.get(wire_key)
        if found is None:
            # A flow of another share costs one look-up, not a decode.
            return [] if wire_key in self._foreign_wire else None
        end = 14 + total_length
        payload_start = 34 + (data_offset >> 4) * 4
        if (end > len(data) or not 54 <= payload_start <= end
                or self._packets_since_sweep >= SWEEP_EVERY - 1):
            return None
        flow, to_server = found
        if to_server:
            stream, other = flow.to_server_stream, flow.to_client_stream
        else:
            stream, other = flow.to_client_stream, flow.to_server_stream
        size = end - payload_start
        dissector = flow.dissector
        if stream.next_seq != seq or (size and (
                stream.held or (dissector is None and not flow.decided))):
            return None

        self._by_age.move_to_end(flow.id)
        flow.last_ts = ts
        flow.last_frame = frame
        flow.packets += 1
        self._packets_since_sweep += 1
        if flags & ACK:
            acked = other.peer_acked
            if acked is None or (ack - acked) % SEQ_MOD < HALF_SEQ:
                other.peer_acked = ack
        if not size:
            return []
        flow.payload_bytes += size
        stream.next_seq = (seq + size) % SEQ_MOD
        if dissector is None:  # a flow of unknown protocol: bytes go nowhere
            return []
        return dissector.feed(data[payload_start:end], to_server ^ flow.swapped, ts, frame)

    def _remember_foreign_wire(self, key: tuple) -> None:
        wire_key = _ipv4_wire_key(key)
        if wire_key is not None:
            if len(self._foreign_wire) >= 65536:
                self._foreign_wire.clear()
            self._foreign_wire.add(wire_key)

    def _ours(self, key: tuple) -> bool:
        """Whether the flow of ``key`` falls in this table's share."""
        foreign = self._foreign
        if key in foreign:
            return False
        index, count = self._shard
        ends = sorted((repr(key[1:3]), repr(key[3:5])))
        ours = zlib.crc32(f"{key[0]}|{ends[0]}|{ends[1]}".encode()) % count == index
        if not ours:
            if len(foreign) >= 65536:
                foreign.clear()
            foreign.add(key)
        return ours

    def _open(self, pkt: Packet, key: tuple, ts: float
              ) -> tuple[Flow, bool, list[Message]]:
        flags = pkt.tcp_flags
        if pkt.proto == LAYER2:
            # A layer-2 flow is one sender's frames to one (mostly multicast)
            # address: the sender plays the client, and the ethertype the port.
            transport = "ethernet"
            guessed = False
            src_is_client = True
            src = Endpoint(None, None, pkt.src_mac)
            dst = Endpoint(None, None, pkt.dst_mac)
            service_port = pkt.ethertype
        else:
            transport = "tcp" if pkt.proto == TCP else "udp"
            guessed = not (pkt.proto == TCP and flags & SYN)
            if not guessed:
                src_is_client = not flags & ACK
            else:
                hint = self.selector.service_port_hint(transport, pkt.src_port,
                                                       pkt.dst_port)
                if hint is not None:
                    src_is_client = hint == pkt.dst_port
                else:
                    src_is_client = pkt.src_port >= pkt.dst_port
            src = Endpoint(pkt.src_ip, pkt.src_port, pkt.src_mac)
            dst = Endpoint(pkt.dst_ip, pkt.dst_port, pkt.dst_mac)
            service_port = None
        client, server = (src, dst) if src_is_client else (dst, src)
        flow = Flow(self._next_id, transport, client, server, ts)
        if service_port is not None:
            flow.service_port = service_port
        flow.guessed = guessed
        self._next_id += 1
        reverse = (key[0], key[3], key[4], key[1], key[2])
        flow.keys = (key, reverse)
        self._by_key[key] = (flow, src_is_client)
        self._by_key[reverse] = (flow, not src_is_client)
        if transport == "tcp":
            wire_key = _ipv4_wire_key(key)
            if wire_key is not None:
                wire_reverse = wire_key[4:8] + wire_key[0:4] + wire_key[10:12] + wire_key[8:10]
                flow.wire_keys = (wire_key, wire_reverse)
                self._by_wire[wire_key] = (flow, src_is_client)
                self._by_wire[wire_reverse] = (flow, not src_is_client)
        self._by_age[flow.id] = flow
        self.counters["flows"] += 1
        evicted: list[Message] = []
        if len(self._by_age) > self.config.max_flows:
            oldest = next(iter(self._by_age.values()))
            self.counters["flows_evicted_table_full"] += 1
            evicted = self._retire(oldest, oldest.last_ts, oldest.last_frame)
        return flow, src_is_client, evicted

    # -- TCP reassembly -------------------------------------------------------------

    def _tcp(self, flow: Flow, pkt: Packet, to_server: bool, ts: float, frame: int
             ) -> list[Message]:
        flags = pkt.tcp_flags
        if to_server:
            stream, other = flow.to_server_stream, flow.to_client_stream
        else:
            stream, other = flow.to_client_stream, flow.to_server_stream
        if flags & ACK:
            acked = other.peer_acked
            if acked is None or (pkt.ack - acked) % SEQ_MOD < HALF_SEQ:
                other.peer_acked = pkt.ack

        seq = pkt.seq
        next_seq = stream.next_seq
        if next_seq is None:
            stream.next_seq = (seq + 1) % SEQ_MOD if flags & SYN else seq
        elif flags & SYN:
            # A retransmitted SYN carries no new stream bytes.
            return []

        payload = pkt.payload
        if not payload:
            out = []
        else:
            flow.payload_bytes += len(payload)
            dissector = flow.dissector
            if seq == next_seq and dissector is not None and not stream.held:
                # The common case, in order with nothing held: straight through.
                stream.next_seq = (seq + len(payload)) % SEQ_MOD
                out = dissector.feed(payload, to_server ^ flow.swapped, ts, frame)
            else:
                out = self._segment(flow, stream, seq, payload, to_server, ts, frame)

        if flags & (FIN | RST):
            flow.closed_dirs |= 1 if to_server else 2
            if flags & RST or flow.closed_dirs == 3:
                out = out + self._retire(flow, ts, frame)
        return out

    def _segment(self, flow: Flow, stream: _Stream, seq: int, payload: bytes,
                 to_server: bool, ts: float, frame: int) -> list[Message]:
        offset = (seq - stream.next_seq) % SEQ_MOD
        if offset >= HALF_SEQ:  # starts before the next expected byte
            behind = SEQ_MOD - offset
            if behind >= len(payload):
                self.counters["tcp_retransmitted_bytes"] += len(payload)
                return []
            self.counters["tcp_overlap_bytes"] += behind
            payload = payload[behind:]
            offset = 0

        if offset == 0:
            stream.next_seq = (stream.next_seq + len(payload)) % SEQ_MOD
            out = self._deliver(flow, payload, to_server, ts, frame)
            if stream.held:
                out.extend(self._drain(flow, stream, to_server))
            return out

        # A hole before this segment. If the peer already acknowledged past the
        # hole, the capture lost those bytes: skip them now, so this segment's
        # messages keep their own frame number.
        acked = stream.peer_acked
        if acked is not None and (acked - seq) % SEQ_MOD < HALF_SEQ:
            # Segments held from before this one go first, or jumping to this
            # one would leave them behind as if they were retransmissions.
            base = stream.next_seq
            if any((held - base) % SEQ_MOD < offset for held in stream.held):
                out = self._skip_to_held(flow, stream, to_server, ts, frame)
            else:
                out = self._declare_gap(flow, stream, seq, to_server, ts, frame)
            return out + self._segment(flow, stream, seq, payload, to_server, ts, frame)

        previous = stream.held.get(seq)
        if previous is None or len(previous[0]) < len(payload):
            stream.held_bytes += len(payload) - (len(previous[0]) if previous else 0)
            stream.held[seq] = (payload, ts, frame)
        if stream.held_bytes > self.config.max_flow_buffer:
            self.counters["tcp_buffer_cap_hits"] += 1
            return self._skip_to_held(flow, stream, to_server, ts, frame)
        return []

    def _drain(self, flow: Flow, stream: _Stream, to_server: bool) -> list[Message]:
        out: list[Message] = []
        while stream.held:
            ready = None
            for seq in stream.held:
                if (seq - stream.next_seq) % SEQ_MOD >= HALF_SEQ or seq == stream.next_seq:
                    ready = seq
                    break
            if ready is None:
                break
            payload, ts, frame = stream.held.pop(ready)
            stream.held_bytes -= len(payload)
            out.extend(self._segment(flow, stream, ready, payload, to_server, ts, frame))
        return out

    def _declare_gap(self, flow: Flow, stream: _Stream, resume_seq: int, to_server: bool,
                     ts: float, frame: int) -> list[Message]:
        lost = (resume_seq - stream.next_seq) % SEQ_MOD
        self.counters["tcp_gaps"] += 1
        self.counters["tcp_gap_bytes"] += lost
        stream.next_seq = resume_seq
        if flow.dissector is not None:
            return flow.dissector.gap(to_server ^ flow.swapped, ts, frame)
        return []

    def _skip_to_held(self, flow: Flow, stream: _Stream, to_server: bool, ts: float,
                      frame: int) -> list[Message]:
        """Give up on the hole before the earliest held segment and go on from there."""
        if not stream.held:
            return []
        base = stream.next_seq
        earliest = min(stream.held, key=lambda s: (s - base) % SEQ_MOD)
        out = self._declare_gap(flow, stream, earliest, to_server, ts, frame)
        out.extend(self._drain(flow, stream, to_server))
        return out

    # -- dissector choice and delivery --------------------------------------------

    def _deliver(self, flow: Flow, data: bytes, to_server: bool, ts: float, frame: int
                 ) -> list[Message]:
        dissector = flow.dissector
        if dissector is not None:
            return dissector.feed(data, to_server ^ flow.swapped, ts, frame)
        if flow.decided:
            return []
        flow.probe_chunks.append((data, to_server, ts, frame))
        return self._try_choose(flow, final=False)

    def _try_choose(self, flow: Flow, final: bool) -> list[Message]:
        chunks = flow.probe_chunks
        first = {True: b"", False: b""}
        for data, to_server, _, _ in chunks:
            first[to_server] += data
        need = self.selector.probe_min_bytes
        enough = [d for d in (True, False) if len(first[d]) >= need]
        if not enough and not final and len(chunks) < self.config.probe_chunks and \
                sum(len(c[0]) for c in chunks) < self.config.probe_buffer:
            return []
        order = enough or [d for d in (True, False) if first[d]]
        chosen = None
        for direction in order:
            chosen = self.selector.choose(flow.transport, flow.service_port,
                                          first[direction], direction)
            if chosen is not None:
                break
        flow.decided = True
        flow.probe_chunks = []
        if chosen is None:
            self.counters["flows_unknown_protocol"] += 1
            return []
        if flow.transport != "ethernet" and _content_says_swap(chosen, first):
            flow.swapped = True
            flow.client, flow.server = flow.server, flow.client
            flow.service_port = flow.server.port
            self.counters["flows_direction_from_content"] += 1
        flow.protocol = chosen.name
        flow.dissector = dissector = chosen(FlowContext(flow.id, flow.client, flow.server,
                                                        flow.transport))
        out: list[Message] = []
        for data, to_server, ts, frame in chunks:
            out.extend(dissector.feed(data, to_server ^ flow.swapped, ts, frame))
        return out

    # -- flow end -------------------------------------------------------------

    def _retire(self, flow: Flow, ts: float, frame: int) -> list[Message]:
        """Flush and forget a flow (FIN/RST, idle, eviction, end of capture)."""
        out: list[Message] = []
        for to_server, stream in ((True, flow.to_server_stream),
                                  (False, flow.to_client_stream)):
            while stream.held:
                out.extend(self._skip_to_held(flow, stream, to_server, ts, frame))
        if not flow.decided and flow.probe_chunks:
            out.extend(self._try_choose(flow, final=True))
        if flow.dissector is not None:
            out.extend(flow.dissector.close(ts, frame))
        for key in flow.keys:
            self._by_key.pop(key, None)
        for key in flow.wire_keys:
            self._by_wire.pop(key, None)
        self._by_age.pop(flow.id, None)
        if self._on_retire is not None:
            self._on_retire(flow)
        return out

    def expire(self, now: float) -> list[Message]:
        """Retire flows idle for longer than the configured timeout."""
        out: list[Message] = []
        limit = now - self.config.idle_timeout
        while self._by_age:
            flow = next(iter(self._by_age.values()))
            if flow.last_ts >= limit:
                break
            self.counters["flows_expired_idle"] += 1
            out.extend(self._retire(flow, flow.last_ts, flow.last_frame))
        return out

    def flush(self) -> list[Message]:
        """Retire every flow still open (end of capture)."""
        out: list[Message] = []
        for flow in list(self._by_age.values()):
            out.extend(self._retire(flow, flow.last_ts, flow.last_frame))
        return out


def _ipv4_wire_key(key: tuple) -> bytes | None:
    """The address and port bytes an IPv4 frame of flow ``key`` carries; None for IPv6."""
    _, src_ip, src_port, dst_ip, dst_port = key
    try:
        return _ipv4_bytes(src_ip) + _ipv4_bytes(dst_ip) + _PORTS.pack(src_port, dst_port)
    except (ValueError, AttributeError):
        return None


def _ipv4_bytes(text: str) -> bytes:
    """The four bytes of a dotted-quad IPv4 address; ValueError for anything else."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(text)
    return bytes(int(part) for part in parts)


def _content_says_swap(chosen: type[Dissector], first: dict[bool, bytes]) -> bool:
    """Whether the dissector reads the first bytes as sent the other way round.

    ``first`` maps the table's guessed direction (True: towards the guessed
    server) to the bytes sent that way. Each side's bytes vote; a tie keeps
    the guess from the ports.
    """
    vote = 0
    for towards_server, data in first.items():
        if not data:
            continue
        try:
            says = chosen.sender_is_client(data)
        except Exception:
            # A faulty plugin hook must not stop the capture; keep the guess.
            says = None
        if says is not None:
            vote += 1 if says == towards_server else -1
    return vote < 0
