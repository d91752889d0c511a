"""Write a synthetic, protocol-correct HSMS (SECS/GEM) capture of any length.

Traffic model
-------------
Hosts on 10.0.3.0/24 (fab MES cell controllers) each hold HSMS connections to
tools on 10.0.4.0/24, listening on port 5000. A connection opens with the TCP
handshake, Select.req/rsp, S1F13/F14 both ways and S1F1/F2 (the tool answers
with its MDLN and SOFTREV), then carries GEM traffic: status variable reads
(S1F3/F4, whose values use every SECS-II format code), event reports
(S6F11/F12, sometimes two in one segment), alarms (S5F1/F2), remote commands
(S2F41/F42), equipment constant writes (S2F15/F16), linktests, and now and
then a process program download (S7F3) large enough to be split over many
segments and, past 64 KiB, to need a 3-byte item length. It closes with
Separate.req and FIN. A few W-bit requests are never answered.

Ethernet + IPv4 + TCP, microsecond classic pcap, exact sequence numbers, TCP
checksums zero (as with checksum offload). The same seed gives the same bytes.
Messages are built with otdpi's construct definitions, once per shape, and
patched per use, so a million packets take a minute or so.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dissectors.hsms.definitions import (  # noqa: E402
    SType,
    build_item,
    build_message,
    control_message,
)

PORT = 5000
START_TIME_US = 1_704_067_200 * 1_000_000
MSS = 1460
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
RECORD = struct.Struct("<IIII")
ETH_IP_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def L(*children):  # noqa: N802
    return {"type": "L", "value": list(children)}


def A(text):  # noqa: N802
    return {"type": "A", "value": text}


def U4(*values):  # noqa: N802
    return {"type": "U4", "value": list(values)}


# Values of the status variables, one of each format code.
SV_VALUES = L(
    U4(125), {"type": "F4", "value": [1.5]}, {"type": "F8", "value": [273.15]},
    {"type": "I1", "value": [-3]}, {"type": "I2", "value": [-300]},
    {"type": "I4", "value": [-70000]}, {"type": "I8", "value": [-(2**40)]},
    {"type": "U1", "value": [7]}, {"type": "U2", "value": [6000]},
    {"type": "U8", "value": [2**50]}, {"type": "BOOLEAN", "value": [True, False]},
    {"type": "B", "value": "00ff10"}, A("ETCH-A"), L(U4(1, 2, 3), A("")),
    # Last, because tshark 4.0 decodes no JIS-8 item and stops at the first.
    {"type": "J", "value": "LOT"},
)  # fmt: skip


class Writer:
    """Writes frames to a pcap file and counts them."""

    def __init__(self, out, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.packets = 0
        self.clock = START_TIME_US

    def full(self) -> bool:
        return self.packets >= self.limit

    def frame(self, src, dst, sport, dport, seq, ack, flags, payload=b"") -> None:
        if self.full():
            return
        self.clock += 137
        total = 40 + len(payload)
        header = ETH_IP_TCP.pack(
            dst[1], src[1], 0x0800, 0x45, 0, total, 0, 0x4000, 64, 6, 0, src[0], dst[0],
            sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0,
        )  # fmt: skip
        # IPv4 header checksum over the 20 header bytes.
        words = struct.unpack("!10H", header[14:34])
        checksum = sum(words)
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        checksum = ~((checksum & 0xFFFF) + (checksum >> 16)) & 0xFFFF
        header = header[:24] + struct.pack("!H", checksum) + header[26:]
        data = header + payload
        self.out.write(
            RECORD.pack(
                self.clock // 1_000_000, self.clock % 1_000_000, len(data), len(data)
            )
        )
        self.out.write(data)
        self.packets += 1


class Connection:
    """One HSMS connection between a host and a tool."""

    def __init__(self, writer: Writer, host, tool, port: int, rng: random.Random):
        self.w = writer
        self.host, self.tool, self.port = host, tool, port
        self.seq = {True: rng.randrange(1 << 32), False: rng.randrange(1 << 32)}
        self.system = rng.randrange(1 << 31)
        self.rng = rng
        self.messages = 0

    def send(self, to_tool: bool, payload: bytes) -> None:
        src, dst = (self.host, self.tool) if to_tool else (self.tool, self.host)
        sport, dport = (self.port, PORT) if to_tool else (PORT, self.port)
        for start in range(0, len(payload), MSS):
            piece = payload[start : start + MSS]
            self.w.frame(
                src,
                dst,
                sport,
                dport,
                self.seq[to_tool],
                self.seq[not to_tool],
                PSH | ACK,
                piece,
            )
            self.seq[to_tool] += len(piece)

    def open(self) -> None:
        h, t = self.host, self.tool
        self.w.frame(h, t, self.port, PORT, self.seq[True] - 1, 0, SYN)
        self.w.frame(
            t, h, PORT, self.port, self.seq[False] - 1, self.seq[True], SYN | ACK
        )
        self.w.frame(h, t, self.port, PORT, self.seq[True], self.seq[False], ACK)

    def close(self) -> None:
        h, t = self.host, self.tool
        self.w.frame(h, t, self.port, PORT, self.seq[True], self.seq[False], FIN | ACK)
        self.w.frame(
            t, h, PORT, self.port, self.seq[False], self.seq[True] + 1, FIN | ACK
        )
        self.w.frame(
            h, t, self.port, PORT, self.seq[True] + 1, self.seq[False] + 1, ACK
        )

    def next_system(self) -> int:
        self.system = (self.system + 1) & 0xFFFFFFFF
        return self.system

    def transaction(self, to_tool, stream, function, item, reply_item, answered=True):
        system = self.next_system()
        self.send(to_tool, _data(stream, function, item, True, system))
        self.messages += 1
        if answered:
            self.send(
                not to_tool, _data(stream, function + 1, reply_item, False, system)
            )
            self.messages += 1


_CACHE: dict = {}


def _data(stream, function, item, w_bit, system) -> bytes:
    # Built once per shape through construct, then the system bytes patched.
    key = (stream, function, w_bit, json.dumps(item, sort_keys=True))
    unit = _CACHE.get(key)
    if unit is None:
        text = build_item(item) if item is not None else b""
        unit = _CACHE[key] = build_message(
            session_id=1, stream=stream, function=function, w_bit=w_bit, text=text
        )
    return unit[:10] + struct.pack(">I", system) + unit[14:]


def _host(index: int, base: int) -> tuple[bytes, bytes]:
    return bytes([10, 0, base, index]), bytes([2, 0, 0, base, 0, index])


def write_capture(path: str, packets: int, seed: int = 1) -> dict:
    """Write ``packets`` frames to ``path``; return what the capture holds."""
    rng = random.Random(seed)
    stats = {"packets": 0, "connections": 0, "messages": 0, "unanswered": 0}
    with open(path, "wb") as out:
        out.write(PCAP_HEADER)
        writer = Writer(out, packets)
        while not writer.full():
            host = _host(1 + stats["connections"] % 4, 3)
            tool = _host(1 + stats["connections"] % 12, 4)
            conn = Connection(writer, host, tool, 40000 + stats["connections"], rng)
            stats["connections"] += 1
            _session(conn, rng, stats)
            stats["messages"] += conn.messages
        stats["packets"] = writer.packets
    return stats


def _session(conn: Connection, rng: random.Random, stats: dict) -> None:
    conn.open()
    system = conn.next_system()
    conn.send(True, control_message(SType.SELECT_REQ, system))
    conn.send(False, control_message(SType.SELECT_RSP, system))
    mdln = L(A(f"TOOL-{conn.tool[0][3]:02d}"), A("3.1.4"))
    conn.transaction(False, 1, 13, mdln, L({"type": "B", "value": "00"}, mdln))
    conn.transaction(True, 1, 13, L(), L({"type": "B", "value": "00"}, L()))
    conn.transaction(True, 1, 1, None, mdln)
    for _ in range(rng.randrange(40, 400)):
        if conn.w.full():
            return
        roll = rng.random()
        if roll < 0.35:
            svids = L(*[U4(3000 + i) for i in range(len(SV_VALUES["value"]))])
            conn.transaction(True, 1, 3, svids, SV_VALUES)
        elif roll < 0.65:
            event = L(U4(rng.randrange(1000)), U4(6001), L(L(U4(8001), L(A("W-0042")))))
            if rng.random() < 0.2:  # two reports in one segment, answered together
                first, second = conn.next_system(), conn.next_system()
                conn.send(
                    False,
                    _data(6, 11, event, True, first)
                    + _data(6, 11, event, True, second),
                )
                conn.send(
                    True,
                    _data(6, 12, {"type": "B", "value": "00"}, False, first)
                    + _data(6, 12, {"type": "B", "value": "00"}, False, second),
                )
                conn.messages += 4
            else:
                conn.transaction(False, 6, 11, event, {"type": "B", "value": "00"})
        elif roll < 0.75:
            alarm = L(
                {"type": "B", "value": "84"}, U4(7001), A("chamber pressure over limit")
            )
            conn.transaction(False, 5, 1, alarm, {"type": "B", "value": "00"})
        elif roll < 0.85:
            command = L(
                A("START"), L(L(A("LOTID"), A("LOT-17")), L(A("RECIPE"), A("ETCH-A")))
            )
            conn.transaction(True, 2, 41, command, L({"type": "B", "value": "04"}, L()))
        elif roll < 0.92:
            conn.transaction(
                True, 2, 15, L(L(U4(4001), U4(250))), {"type": "B", "value": "00"}
            )
        elif roll < 0.97:
            system = conn.next_system()
            conn.send(True, control_message(SType.LINKTEST_REQ, system))
            conn.send(False, control_message(SType.LINKTEST_RSP, system))
            conn.messages += 2
        elif roll < 0.995:
            size = rng.choice((3000, 12000, 70000))
            program = L(A("ETCH-A"), {"type": "B", "value": bytes(size).hex()})
            conn.transaction(True, 7, 3, program, {"type": "B", "value": "00"})
        else:
            conn.transaction(True, 1, 17, None, None, answered=False)
            stats["unanswered"] += 1
    system = conn.next_system()
    conn.send(True, control_message(SType.SEPARATE_REQ, system))
    conn.messages += 1
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--out", default="hsms-bench.pcap")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    stats = write_capture(args.out, args.packets, args.seed)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
