"""Write a synthetic, protocol-correct Modbus/TCP capture of any length, for benchmarks.

Traffic model
-------------
About twenty servers (PLCs, meters, drives) on 10.0.1.0/24 are polled by five
clients (SCADA, HMI, historian) on 10.0.2.0/24. A pool of TCP connections is
open at any time; each opens with a SYN/SYN-ACK/ACK handshake, carries a few
hundred request/response transactions and closes with FIN/ACK in both
directions. Packets of the open connections interleave in capture order, as
they would on a switch's mirror port.

Requests are mostly reads of 10 to 125 holding or input registers (FC3, FC4),
with coil and discrete-input reads (FC1, FC2) and writes (FC5, FC6, FC16). Now
and then a server answers with an exception, a client acknowledges a
response with a pure ACK, a segment is retransmitted, or a client sends two
requests in one segment (which the server may answer in one segment too).
Sequence and acknowledgement numbers are exact, so a reassembler sees a clean
stream; retransmitted copies repeat the same bytes at the same sequence number.

The capture is Ethernet + IPv4 + TCP, microsecond classic pcap. IPv4 header
checksums are correct; TCP checksums are zero, as in a capture taken on a host
with checksum offload (tshark does not check them by default). Packets are
built with :mod:`struct` and written as they are made, so memory stays flat and
a million packets take seconds. The same seed gives the same bytes.

A second model, ``traffic="polling"`` (:class:`PollingCaptureWriter`), is what a
behaviour learner meets on a real plant: each client keeps one connection per
server open and polls a fixed list of register and coil blocks on its own
cycle (SCADA every second, HMI every 2 s, historian every 10 s, an engineering
station every 30 s), process values drift by a few counts between polls, and
only the SCADA master writes, a setpoint every minute or so. Same wire format,
same exact TCP; capture time advances with the poll schedule, so a million
packets span about two hours.
"""

from __future__ import annotations

import argparse
import json
import heapq
import random
import struct
import sys
import time
from dataclasses import asdict, dataclass, field

MODBUS_PORT = 502
START_TIME_US = 1_704_067_200 * 1_000_000  # 2024-01-01 00:00:00 UTC
SERVER_COUNT = 20
CLIENT_COUNT = 5
OPEN_CONNECTIONS = 24
MIN_PACKETS = 32

# pcap file header (microsecond magic, version 2.4, Ethernet) and record header.
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
RECORD_HEADER = struct.Struct("<IIII")
# Ethernet II, IPv4 without options and TCP; data offset given per packet.
FRAME_HEADER = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")
IPV4_HEADER_WORDS = struct.Struct("!10H")
ETHERTYPE_IPV4 = 0x0800
IP_PROTO_TCP = 6
MSS_OPTION = struct.pack("!BBH", 2, 4, 1460)

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

# Function-code mix of requests, as (code, weight). Reads of registers dominate.
FUNCTION_MIX = ((3, 52), (4, 18), (1, 7), (2, 5), (5, 5), (6, 6), (16, 7))
EXCEPTION_RATE = 0.015
# Modbus exception codes servers answer with, weighted towards a bad address.
EXCEPTION_CODES = (2, 2, 2, 3, 4, 6)
PIPELINE_RATE = 0.01  # two requests in one segment
RETRANSMIT_RATE = 0.002
CLIENT_DELAYED_ACK_RATE = 0.25  # pure ACK from the client after a response
SERVER_ACK_RATE = 0.05  # pure ACK from a slow server before it answers


@dataclass
class CaptureStats:
    """What a generated capture holds: enough for a test to predict any decoder."""

    packets: int = 0
    connections: int = 0
    requests: int = 0
    responses: int = 0
    exceptions: int = 0
    retransmissions: int = 0
    pure_acks: int = 0
    pipelined_segments: int = 0
    data_segments: int = 0
    function_codes: dict[int, int] = field(default_factory=dict)

    @property
    def adus(self) -> int:
        """Distinct Modbus ADUs on the wire, retransmitted copies not counted."""
        return self.requests + self.responses


class _Host:
    __slots__ = ("blocks", "ip", "ip_id", "mac", "unit_id")

    def __init__(self, ip: bytes, mac: bytes, unit_id: int, blocks: tuple[int, ...]):
        self.ip = ip
        self.mac = mac
        self.ip_id = 0
        self.unit_id = unit_id
        self.blocks = blocks  # start addresses of the server's register blocks


class _Connection:
    """One TCP connection: its endpoints, sequence state and unanswered requests."""

    __slots__ = (
        "client",
        "client_owes_ack",
        "client_port",
        "client_seq",
        "next_transaction_id",
        "pending_responses",
        "server",
        "server_acked",
        "server_seq",
        "transactions_left",
    )

    def __init__(
        self,
        client: _Host,
        server: _Host,
        client_port: int,
        transactions: int,
        rng: random.Random,
    ):
        self.client = client
        self.server = server
        self.client_port = client_port
        self.client_seq = rng.getrandbits(32)
        self.server_seq = rng.getrandbits(32)
        self.transactions_left = transactions
        self.next_transaction_id = rng.getrandbits(16)
        self.pending_responses: list[bytes] = []
        self.client_owes_ack = False
        self.server_acked = False


class ModbusCaptureWriter:
    """Streams packets of the traffic model into an open binary file."""

    def __init__(self, out, seed: int = 1):
        self.out = out
        self.rng = random.Random(seed)
        self.stats = CaptureStats()
        self.clock_us = START_TIME_US
        self._chunks: list[bytes] = []
        self._pending_bytes = 0
        self._register_bytes = self.rng.randbytes(1 << 16)
        self._functions = [code for code, _ in FUNCTION_MIX]
        self._function_weights = [weight for _, weight in FUNCTION_MIX]
        self.servers = [self._host(1, n + 1) for n in range(SERVER_COUNT)]
        self.clients = [self._host(2, n + 1) for n in range(CLIENT_COUNT)]
        self._next_port = {
            client.ip: 40000 + 1000 * n for n, client in enumerate(self.clients)
        }
        out.write(PCAP_HEADER)

    def _host(self, subnet: int, number: int) -> _Host:
        ip = bytes((10, 0, subnet, number))
        # Locally administered MACs that spell the address, so captures read easily.
        mac = bytes((0x02, 0x00)) + ip
        unit_id = self.rng.choice((1, 1, 1, 0, 255, number))
        blocks = tuple(sorted(self.rng.sample(range(0, 9000, 100), 4)))
        return _Host(ip, mac, unit_id, blocks)

    # -- writing packets -------------------------------------------------------

    def _packet(
        self,
        conn: _Connection,
        to_server: bool,
        flags: int,
        payload: bytes = b"",
        options: bytes = b"",
        seq: int | None = None,
    ) -> None:
        if to_server:
            src, dst = conn.client, conn.server
            sport, dport = conn.client_port, MODBUS_PORT
            seq = conn.client_seq if seq is None else seq
            ack = conn.server_seq if flags & ACK else 0
            ttl = 64
        else:
            src, dst = conn.server, conn.client
            sport, dport = MODBUS_PORT, conn.client_port
            seq = conn.server_seq if seq is None else seq
            ack = conn.client_seq
            ttl = 255
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        tcp_length = 20 + len(options)
        total_length = 20 + tcp_length + len(payload)
        header = FRAME_HEADER.pack(
            dst.mac,
            src.mac,
            ETHERTYPE_IPV4,
            0x45,
            0,
            total_length,
            src.ip_id,
            0x4000,
            ttl,
            IP_PROTO_TCP,
            0,
            src.ip,
            dst.ip,
            sport,
            dport,
            seq,
            ack,
            (tcp_length // 4) << 4,
            flags,
            64240,
            0,
            0,
        )
        header = _with_ip_checksum(header)
        length = len(header) + len(options) + len(payload)

        # Gaps between packets on a busy mirror port: tens to hundreds of µs.
        self.clock_us += 20 + int(self.rng.expovariate(1 / 180))
        seconds, micros = divmod(self.clock_us, 1_000_000)
        self._chunks.append(RECORD_HEADER.pack(seconds, micros, length, length))
        self._chunks.append(header)
        if options:
            self._chunks.append(options)
        if payload:
            self._chunks.append(payload)
        self._pending_bytes += length + 16
        if self._pending_bytes >= 1 << 20:
            self.flush()
        self.stats.packets += 1

    def flush(self) -> None:
        """Hand the buffered packets to the file."""
        self.out.write(b"".join(self._chunks))
        self._chunks.clear()
        self._pending_bytes = 0

    def _data(self, conn: _Connection, to_server: bool, payload: bytes) -> None:
        """Send a data segment, sometimes followed by a retransmitted copy."""
        seq = conn.client_seq if to_server else conn.server_seq
        self._packet(conn, to_server, PSH | ACK, payload)
        self.stats.data_segments += 1
        if to_server:
            conn.client_seq = (seq + len(payload)) & 0xFFFFFFFF
        else:
            conn.server_seq = (seq + len(payload)) & 0xFFFFFFFF
        if self.rng.random() < RETRANSMIT_RATE:
            self._packet(conn, to_server, PSH | ACK, payload, seq=seq)
            self.stats.retransmissions += 1
            self.stats.data_segments += 1

    # -- connection life -------------------------------------------------------

    def open_connection(self) -> _Connection:
        """Handshake a new connection from a random client to a random server."""
        rng = self.rng
        client = rng.choice(self.clients)
        server = rng.choice(self.servers)
        port = self._next_port[client.ip]
        self._next_port[client.ip] = 40000 + (port - 40000 + 1) % 25000
        conn = _Connection(client, server, port, rng.randint(20, 1200), rng)
        self._packet(conn, True, SYN, options=MSS_OPTION)
        conn.client_seq = (conn.client_seq + 1) & 0xFFFFFFFF
        self._packet(conn, False, SYN | ACK, options=MSS_OPTION)
        conn.server_seq = (conn.server_seq + 1) & 0xFFFFFFFF
        self._packet(conn, True, ACK)
        self.stats.connections += 1
        return conn

    def close_connection(self, conn: _Connection) -> None:
        """Answer what is pending, then FIN/ACK both ways and the last ACK."""
        while conn.pending_responses:
            self._data(conn, False, conn.pending_responses.pop(0))
        self._packet(conn, True, FIN | ACK)
        conn.client_seq = (conn.client_seq + 1) & 0xFFFFFFFF
        self._packet(conn, False, FIN | ACK)
        conn.server_seq = (conn.server_seq + 1) & 0xFFFFFFFF
        self._packet(conn, True, ACK)

    def step(self, conn: _Connection) -> None:
        """Move one connection on by one event: a request, an answer or an ACK."""
        rng = self.rng
        if conn.pending_responses:
            if not conn.server_acked and rng.random() < SERVER_ACK_RATE:
                self._packet(conn, False, ACK)
                self.stats.pure_acks += 1
                conn.server_acked = True
                return
            conn.server_acked = False
            if len(conn.pending_responses) > 1 and rng.random() < 0.5:
                self._data(conn, False, b"".join(conn.pending_responses))
                self.stats.pipelined_segments += 1
                conn.pending_responses.clear()
            else:
                self._data(conn, False, conn.pending_responses.pop(0))
            if not conn.pending_responses and rng.random() < CLIENT_DELAYED_ACK_RATE:
                conn.client_owes_ack = True
            return
        if conn.client_owes_ack:
            self._packet(conn, True, ACK)
            self.stats.pure_acks += 1
            conn.client_owes_ack = False
            return

        count = 2 if rng.random() < PIPELINE_RATE else 1
        requests = []
        for _ in range(count):
            request, response = self.transaction(conn)
            requests.append(request)
            conn.pending_responses.append(response)
        if count > 1:
            self.stats.pipelined_segments += 1
        self._data(conn, True, b"".join(requests))
        conn.transactions_left -= count

    def transaction(self, conn: _Connection) -> tuple[bytes, bytes]:
        """One request ADU and the server's answer to it (maybe an exception)."""
        rng = self.rng
        code = rng.choices(self._functions, self._function_weights)[0]
        start = rng.choice(conn.server.blocks) + rng.randrange(0, 100, 2)
        if code in (3, 4):
            count = rng.randint(10, 125)
            request = struct.pack("!BHH", code, start, count)
            response = struct.pack("!BB", code, 2 * count) + self._values(2 * count)
        elif code in (1, 2):
            count = rng.randint(1, 256)
            request = struct.pack("!BHH", code, start, count)
            size = (count + 7) // 8
            response = struct.pack("!BB", code, size) + self._values(size)
        elif code == 5:
            request = struct.pack("!BHH", code, start, rng.choice((0xFF00, 0x0000)))
            response = request
        elif code == 6:
            request = struct.pack("!BHH", code, start, rng.getrandbits(16))
            response = request
        else:  # 16, write multiple registers
            count = rng.randint(1, 60)
            request = struct.pack(
                "!BHHB", code, start, count, 2 * count
            ) + self._values(2 * count)
            response = struct.pack("!BHH", code, start, count)
        if rng.random() < EXCEPTION_RATE:
            response = struct.pack("!BB", code | 0x80, rng.choice(EXCEPTION_CODES))
            self.stats.exceptions += 1

        transaction_id = conn.next_transaction_id
        conn.next_transaction_id = (transaction_id + 1) & 0xFFFF
        unit_id = conn.server.unit_id
        self.stats.requests += 1
        self.stats.responses += 1
        self.stats.function_codes[code] = self.stats.function_codes.get(code, 0) + 1
        return _mbap(transaction_id, unit_id, request), _mbap(
            transaction_id, unit_id, response
        )

    def _values(self, size: int) -> bytes:
        offset = self.rng.randrange(0, len(self._register_bytes) - size)
        return self._register_bytes[offset : offset + size]

    # -- the whole capture -----------------------------------------------------

    def write(self, packets: int) -> CaptureStats:
        """Write exactly ``packets`` packets, every connection closed at the end."""
        if packets < MIN_PACKETS:
            raise ValueError(f"need at least {MIN_PACKETS} packets, got {packets}")
        rng = self.rng
        pool: list[_Connection] = []
        # Closing a connection takes at most 7 packets (two pending answers, each
        # maybe retransmitted, and three for the FINs); one loop turn writes at
        # most 8 (open 3, a step 2, close 3). Go on while all of that still fits.
        while packets - self.stats.packets - 7 * (len(pool) + 1) > 8:
            if len(pool) < OPEN_CONNECTIONS:
                pool.append(self.open_connection())
            conn = pool[rng.randrange(len(pool))]
            self.step(conn)
            if conn.transactions_left <= 0 and not conn.pending_responses:
                self.close_connection(conn)
                pool.remove(conn)

        # Wind down: answer everything, fill the exact count on one connection
        # with plain transactions (and one pure ACK if the count is odd), close.
        if not pool:
            pool.append(self.open_connection())
        for conn in pool:
            while conn.pending_responses:
                self._data(conn, False, conn.pending_responses.pop(0))
        last = pool[0]
        missing = packets - self.stats.packets - 3 * len(pool)
        while missing >= 2:
            request, response = self.transaction(last)
            self._packet(last, True, PSH | ACK, request)
            last.client_seq = (last.client_seq + len(request)) & 0xFFFFFFFF
            self._packet(last, False, PSH | ACK, response)
            last.server_seq = (last.server_seq + len(response)) & 0xFFFFFFFF
            self.stats.data_segments += 2
            missing -= 2
        if missing == 1:
            self._packet(last, True, ACK)
            self.stats.pure_acks += 1
        for conn in pool:
            self.close_connection(conn)
        self.flush()
        return self.stats


# Polling model: (client number, cycle seconds, share of the servers polled).
POLLERS = ((1, 1.0, 1.0), (2, 2.0, 0.4), (3, 10.0, 1.0), (4, 30.0, 0.2))
SETPOINT_EVERY = 60.0  # seconds between the SCADA master's setpoint writes


class PollingCaptureWriter(ModbusCaptureWriter):
    """Streams the polling model of the module docstring into an open file."""

    def __init__(self, out, seed: int = 1):
        super().__init__(out, seed)
        rng = self.rng
        # Each server's process image: 10,000 holding/input registers and coils.
        self._image = {
            server.ip: [rng.randrange(0, 4000) for _ in range(10_000)]
            for server in self.servers
        }
        # client -> server -> its fixed poll list of (function code, start, count).
        self.polls: dict[bytes, dict[bytes, list[tuple[int, int, int]]]] = {}
        for number, _, share in POLLERS:
            client = self.clients[number - 1]
            servers = rng.sample(self.servers, max(1, round(share * len(self.servers))))
            self.polls[client.ip] = {
                server.ip: [self._poll_item(server) for _ in range(rng.randint(2, 5))]
                for server in servers
            }

    def _poll_item(self, server: _Host) -> tuple[int, int, int]:
        rng = self.rng
        code = rng.choices((3, 4, 1, 2), (60, 25, 10, 5))[0]
        start = rng.choice(server.blocks) + rng.randrange(0, 50, 10)
        count = rng.choice((10, 16, 20, 32, 50)) if code in (3, 4) else 16
        return code, start, count

    def _advance_to(self, when_us: int) -> None:
        self.clock_us = max(self.clock_us, when_us)

    def _poll(self, conn: _Connection, item: tuple[int, int, int]) -> None:
        """One request and its answer; values drift by a few counts between polls."""
        code, start, count = item
        image = self._image[conn.server.ip]
        rng = self.rng
        for _ in range(rng.randint(0, 2)):
            address = start + rng.randrange(count)
            image[address] = min(65535, max(0, image[address] + rng.randint(-3, 3)))
        values = image[start : start + count]
        request = struct.pack("!BHH", code, start, count)
        if code in (3, 4):
            response = struct.pack(f"!BB{count}H", code, 2 * count, *values)
        else:
            bits = sum((v & 1) << i for i, v in enumerate(values))
            size = (count + 7) // 8
            response = struct.pack("!BB", code, size) + bits.to_bytes(size, "little")
        self._exchange(conn, code, request, response)

    def _setpoint(self, conn: _Connection) -> None:
        start = conn.server.blocks[0]
        value = 1000 + self.rng.randint(-50, 50)
        self._image[conn.server.ip][start] = value
        request = struct.pack("!BHH", 6, start, value)
        self._exchange(conn, 6, request, request)

    def _exchange(self, conn: _Connection, code, request: bytes, response: bytes):
        transaction_id = conn.next_transaction_id
        conn.next_transaction_id = (transaction_id + 1) & 0xFFFF
        unit_id = conn.server.unit_id
        self._data(conn, True, _mbap(transaction_id, unit_id, request))
        self.clock_us += self.rng.randint(1_000, 8_000)  # the server's turnaround
        self._data(conn, False, _mbap(transaction_id, unit_id, response))
        if self.rng.random() < CLIENT_DELAYED_ACK_RATE:
            self._packet(conn, True, ACK)
            self.stats.pure_acks += 1
        self.stats.requests += 1
        self.stats.responses += 1
        self.stats.function_codes[code] = self.stats.function_codes.get(code, 0) + 1

    def _open(self, client: _Host, server: _Host) -> _Connection:
        port = self._next_port[client.ip]
        self._next_port[client.ip] = port + 1
        conn = _Connection(client, server, port, 0, self.rng)
        self._packet(conn, True, SYN, options=MSS_OPTION)
        conn.client_seq = (conn.client_seq + 1) & 0xFFFFFFFF
        self._packet(conn, False, SYN | ACK, options=MSS_OPTION)
        conn.server_seq = (conn.server_seq + 1) & 0xFFFFFFFF
        self._packet(conn, True, ACK)
        self.stats.connections += 1
        return conn

    def write(self, packets: int) -> CaptureStats:
        """Write exactly ``packets`` packets, every connection closed at the end."""
        if packets < MIN_PACKETS:
            raise ValueError(f"need at least {MIN_PACKETS} packets, got {packets}")
        servers = {server.ip: server for server in self.servers}
        connections: dict[tuple[bytes, bytes], _Connection] = {}
        # (due time in us, tie-breaker, client ip, server ip, cycle in us)
        schedule: list[tuple[int, int, bytes, bytes, int]] = []
        for number, cycle, _ in POLLERS:
            client = self.clients[number - 1]
            for server_ip in self.polls[client.ip]:
                offset = self.rng.randrange(int(cycle * 1e6))
                schedule.append(
                    (START_TIME_US + offset, len(schedule), client.ip, server_ip,
                     int(cycle * 1e6))
                )
        heapq.heapify(schedule)
        next_setpoint = START_TIME_US + int(SETPOINT_EVERY * 1e6)
        scada = self.clients[POLLERS[0][0] - 1]
        # A poll writes at most 5 packets per item (two data segments, each maybe
        # retransmitted, and an ACK); closing writes 3 per connection.
        while True:
            due, tie, client_ip, server_ip, cycle = schedule[0]
            conn = connections.get((client_ip, server_ip))
            items = self.polls[client_ip][server_ip]
            need = 5 * len(items) + (3 if conn is None else 0) + 5
            if packets - self.stats.packets - 3 * (len(connections) + 1) < need + 8:
                break
            self._advance_to(due + self.rng.randint(0, 2_000))  # scheduler jitter
            if conn is None:
                client = next(c for c in self.clients if c.ip == client_ip)
                conn = connections[client_ip, server_ip] = self._open(
                    client, servers[server_ip]
                )
            for item in items:
                self._poll(conn, item)
            if client_ip == scada.ip and self.clock_us >= next_setpoint:
                self._setpoint(conn)
                next_setpoint += int(SETPOINT_EVERY * 1e6)
            heapq.heapreplace(
                schedule, (due + cycle, tie, client_ip, server_ip, cycle)
            )
        # Fill the exact count with pure ACKs on one open connection, then close.
        if not connections:
            client, server = self.clients[0], self.servers[0]
            connections[client.ip, server.ip] = self._open(client, server)
        last = next(iter(connections.values()))
        while packets - self.stats.packets > 3 * len(connections):
            self._packet(last, True, ACK)
            self.stats.pure_acks += 1
        for conn in connections.values():
            self.close_connection(conn)
        self.flush()
        return self.stats


def _mbap(transaction_id: int, unit_id: int, pdu: bytes) -> bytes:
    # MBAP header: transaction id, protocol id 0, length of unit id + PDU, unit id.
    return struct.pack("!HHHB", transaction_id, 0, len(pdu) + 1, unit_id) + pdu


def _with_ip_checksum(frame_header: bytes) -> bytes:
    # Ones' complement sum of the 20-byte IPv4 header that follows Ethernet's 14.
    total = sum(IPV4_HEADER_WORDS.unpack_from(frame_header, 14))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    checksum = ~total & 0xFFFF
    return frame_header[:24] + checksum.to_bytes(2, "big") + frame_header[26:]


TRAFFIC = {"random": ModbusCaptureWriter, "polling": PollingCaptureWriter}


def write_capture(
    path: str, packets: int = 1_000_000, seed: int = 1, traffic: str = "random"
) -> CaptureStats:
    """Write a capture of exactly ``packets`` packets to ``path``; return its stats.

    ``traffic`` picks the model: ``"random"`` (the default) or ``"polling"``.
    """
    with open(path, "wb") as out:
        return TRAFFIC[traffic](out, seed).write(packets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packets",
        type=int,
        default=1_000_000,
        help="packets to write (default 1,000,000)",
    )
    parser.add_argument("--out", default="modbus_bench.pcap", help="pcap to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--traffic",
        choices=sorted(TRAFFIC),
        default="random",
        help="random transactions (default) or periodic polling",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    stats = write_capture(args.out, args.packets, args.seed, args.traffic)
    elapsed = time.perf_counter() - started
    summary = asdict(stats) | {"adus": stats.adus, "seconds": round(elapsed, 2)}
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
