"""Write a synthetic, protocol-correct S7comm capture of any length, for benchmarks.

Traffic model
-------------
Ten PLCs on 10.0.3.0/24 are polled by three HMIs and an engineering station
on 10.0.4.0/24, on port 102. Each connection opens with a TCP handshake, a
COTP CR/CC with S7 TSAPs and an S7 setup communication, then carries read
var jobs of 1 to 8 S7ANY items (DB, M, I, Q) and their ack-data, with write
var jobs, SZL 0x0011 reads and now and then two PDUs in one segment or one
PDU split over two COTP DT segments; it closes with FIN/ACK. Packets of the
open connections interleave. Sequence and acknowledgement numbers are exact;
IPv4 checksums are right, TCP checksums zero (offload). Ethernet + IPv4 +
TCP, microsecond classic pcap, written as it is made; the same seed gives the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time

PORT = 102
START_US = 1_704_067_200 * 1_000_000
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
RECORD = struct.Struct("<IIII")
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
OPEN_CONNECTIONS = 8
AREAS = ((0x84, True), (0x83, False), (0x81, False), (0x82, False))


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(
    src: tuple, dst: tuple, seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    (smac, sip, sport), (dmac, dip, dport) = src, dst
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, sip, dip)
    )
    ip[10:12] = _checksum(bytes(ip)).to_bytes(2, "big")
    return dmac + smac + b"\x08\x00" + bytes(ip) + tcp + payload


def tpkt_dt(payload: bytes, eot: bool = True) -> bytes:
    body = bytes([2, 0xF0, 0x80 if eot else 0]) + payload
    return struct.pack("!BBH", 3, 0, len(body) + 4) + body


def s7(rosctr: int, ref: int, param: bytes, data: bytes = b"") -> bytes:
    head = struct.pack("!BBHHHH", 0x32, rosctr, 0, ref, len(param), len(data))
    return head + (b"\x00\x00" if rosctr in (2, 3) else b"") + param + data


def _cr(cc: bool, slot: int, kind: int) -> bytes:
    params = (
        bytes.fromhex("c0010a")
        + bytes.fromhex("c1020100")
        + bytes([0xC2, 2, kind, slot])
    )
    body = bytes([6 + len(params), 0xD0 if cc else 0xE0, 0, 1 if cc else 0, 0, 1, 0])
    return struct.pack("!BBH", 3, 0, len(body) + 4 + len(params)) + body + params


class Connection:
    """One TCP connection between an S7 client and a PLC, as a script of exchanges."""

    def __init__(
        self, rng: random.Random, client: tuple, server: tuple, kind: int
    ) -> None:
        self.rng, self.client, self.server, self.kind = rng, client, server, kind
        self.cseq, self.sseq = rng.randrange(1 << 31), rng.randrange(1 << 31)
        self.ref = 0
        self.state = "syn"
        self.left = rng.randrange(50, 400)

    def _items(self) -> list[tuple[int, int, int, int]]:
        items = []
        for _ in range(self.rng.randrange(1, 9)):
            area, is_db = self.rng.choice(AREAS)
            items.append(
                (
                    area,
                    self.rng.randrange(1, 200) if is_db else 0,
                    self.rng.randrange(0, 512),
                    self.rng.choice((1, 2, 4, 8)),
                )
            )
        return items

    def _exchange(self) -> tuple[list[bytes], list[bytes]]:
        """The next job's client segments and the PLC's answer segments (TPKTs)."""
        self.ref = (self.ref + 1) & 0xFFFF
        ref, roll = self.ref, self.rng.random()
        if roll < 0.05:
            param = bytes.fromhex("0001120411440100")
            job = s7(7, ref, param, bytes.fromhex("ff09000400110000"))
            records = b"".join(
                struct.pack(">H", i)
                + b"6ES7 315-2EH14-0AB0 "
                + struct.pack(
                    ">HHH", 0xC0, 0x5603 if i == 7 else 3, 0x0207 if i == 7 else 1
                )
                for i in (1, 6, 7)
            )
            body = struct.pack(">HHHH", 0x11, 0, 28, 3) + records
            answer = s7(
                7,
                ref,
                bytes.fromhex("000112081284010200000000"),
                bytes.fromhex("ff09") + len(body).to_bytes(2, "big") + body,
            )
            return [tpkt_dt(job)], [tpkt_dt(answer)]
        items = self._items()
        spec = b"".join(
            bytes([0x12, 10, 0x10, 2])
            + struct.pack(">HHB", size, db, area)
            + (start << 3).to_bytes(3, "big")
            for area, db, start, size in items
        )
        values = [
            bytes(self.rng.randrange(256) for _ in range(size)) for *_, size in items
        ]
        if roll < 0.15:
            data = b""
            for i, value in enumerate(values):
                data += bytes([0, 4]) + (len(value) * 8).to_bytes(2, "big") + value
                if len(value) & 1 and i + 1 < len(values):
                    data += b"\x00"
            job = s7(1, ref, bytes([5, len(items)]) + spec, data)
            answer = s7(3, ref, bytes([5, len(items)]), b"\xff" * len(items))
        else:
            job = s7(1, ref, bytes([4, len(items)]) + spec)
            data = b""
            for i, value in enumerate(values):
                data += bytes([0xFF, 4]) + (len(value) * 8).to_bytes(2, "big") + value
                if len(value) & 1 and i + 1 < len(values):
                    data += b"\x00"
            answer = s7(3, ref, bytes([4, len(items)]), data)
        if self.rng.random() < 0.03 and len(answer) > 20:
            cut = len(answer) // 2  # the PLC splits its answer over two DTs
            return [tpkt_dt(job)], [
                tpkt_dt(answer[:cut], eot=False),
                tpkt_dt(answer[cut:]),
            ]
        return [tpkt_dt(job)], [tpkt_dt(answer)]

    def packets(self):
        """Yield (from_client, flags, payload) for the next step of the script."""
        c, s = self.client, self.server
        if self.state == "syn":
            self.state = "open"
            yield True, SYN, b""
            yield False, SYN | ACK, b""
            yield True, ACK, b""
            yield True, PSH | ACK, _cr(False, 2, self.kind)
            yield False, PSH | ACK, _cr(True, 2, self.kind)
            yield True, PSH | ACK, tpkt_dt(s7(1, 0, bytes.fromhex("f0000001000101e0")))
            yield False, PSH | ACK, tpkt_dt(s7(3, 0, bytes.fromhex("f0000001000100f0")))
            return
        if self.left <= 0:
            self.state = "done"
            yield True, FIN | ACK, b""
            yield False, FIN | ACK, b""
            yield True, ACK, b""
            return
        self.left -= 1
        jobs, answers = self._exchange()
        if self.rng.random() < 0.05:
            more_jobs, more_answers = self._exchange()
            jobs, answers = (
                [b"".join(jobs + more_jobs)],
                [b"".join(answers + more_answers)],
            )
        for job in jobs:
            yield True, PSH | ACK, job
        for answer in answers:
            yield False, PSH | ACK, answer
        del c, s


def write_capture(path: str, packets: int, seed: int = 1) -> dict:
    """Write ``packets`` packets to ``path``; return counts of what was written."""
    rng = random.Random(seed)
    plcs = [
        (bytes([0, 0x1B, 0x1B, 0, 0, i]), bytes([10, 0, 3, i + 1]), PORT)
        for i in range(10)
    ]
    clients = [
        (bytes([0, 0x50, 0x56, 0, 0, i]), bytes([10, 0, 4, i + 1]), 0) for i in range(4)
    ]
    open_connections: list[Connection] = []
    written = pdus = 0
    now = START_US
    port = 49152
    with open(path, "wb") as out:
        out.write(PCAP_HEADER)
        while written < packets:
            while len(open_connections) < OPEN_CONNECTIONS:
                index = rng.randrange(len(clients))
                mac, ip, _ = clients[index]
                port = port + 1 if port < 65000 else 49152
                kind = 1 if index == 0 else 2  # one engineering station, three HMIs
                open_connections.append(
                    Connection(rng, (mac, ip, port), rng.choice(plcs), kind)
                )
            conn = rng.choice(open_connections)
            for from_client, flags, payload in conn.packets():
                if written >= packets:
                    break
                src, dst = (
                    (conn.client, conn.server)
                    if from_client
                    else (conn.server, conn.client)
                )
                seq = conn.cseq if from_client else conn.sseq
                ack = conn.sseq if from_client else conn.cseq
                frame = _frame(
                    src, dst, seq, ack if flags != SYN else 0, flags, payload
                )
                now += rng.randrange(50, 2000)
                out.write(
                    RECORD.pack(
                        now // 1_000_000, now % 1_000_000, len(frame), len(frame)
                    )
                )
                out.write(frame)
                written += 1
                advance = len(payload) + (1 if flags & (SYN | FIN) else 0)
                if from_client:
                    conn.cseq = (conn.cseq + advance) & 0xFFFFFFFF
                else:
                    conn.sseq = (conn.sseq + advance) & 0xFFFFFFFF
                pdus += (
                    payload.count(b"\x32\x01\x00\x00")
                    + payload.count(b"\x32\x03\x00\x00")
                    + payload.count(b"\x32\x07\x00\x00")
                )
            if conn.state == "done":
                open_connections.remove(conn)
    return {"packets": written, "seed": seed, "approximate_pdus": pdus}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    stats = write_capture(args.out, args.packets, args.seed)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    json.dump(stats, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
