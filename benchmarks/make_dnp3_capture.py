"""Writes a synthetic DNP3/TCP capture for benchmarks: polls, responses, controls.

``python benchmarks/make_dnp3_capture.py --packets 200000 --out dnp3.pcap``
prints its statistics as JSON. Every packet is a TCP segment carrying DNP3
(no handshakes or bare ACKs), so packets/s is DNP3 packets/s. Sixteen
master/outstation pairs, each on its own connection to port 20000, repeat a
cycle of: a class 0 read and a one-frame response of analog and binary
inputs with changing values; now and then a three-frame response (a
fragment of 80 counters, so transport reassembly is exercised); a CROB
direct operate and its echo; an unsolicited event response and its confirm.
All CRCs are right (and are computed afresh whenever a value changes), so a
dissector checks every one. Deterministic for a given ``--seed``.
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

from dissectors.dnp3.link import build_frame  # noqa: E402

PAIRS = 16
DNP3_PORT = 20000


def _segments(fragment: bytes, control: int, destination: int, source: int,
              seq: int) -> list[bytes]:
    pieces = [fragment[i : i + 249] for i in range(0, len(fragment), 249)]
    frames = []
    for number, piece in enumerate(pieces):
        header = (seq + number) & 0x3F
        header |= 0x40 if number == 0 else 0
        header |= 0x80 if number == len(pieces) - 1 else 0
        frames.append(build_frame(control, destination, source,
                                  bytes([header]) + piece))
    return frames


class _Pair:
    def __init__(self, number: int) -> None:
        self.master_ip = bytes([10, 1, 0, 1 + number])
        self.outstation_ip = bytes([10, 2, 0, 1 + number])
        self.master_port = 40000 + number
        self.master_address = 1 + number
        self.outstation_address = 100 + number
        self.seq = {True: 1, False: 1}  # TCP sequence numbers per direction
        self.transport = {True: 0, False: 0}
        self.app_seq = 0


class Writer:
    def __init__(self, out, seed: int) -> None:
        self.out = out
        self.rng = random.Random(seed)
        self.packets = 0
        self.frames = 0
        self.fragments = 0
        self.time = 1_700_000_000.0
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def _packet(self, pair: _Pair, from_master: bool, payload: bytes) -> None:
        if from_master:
            src, dst, sport, dport = (pair.master_ip, pair.outstation_ip,
                                      pair.master_port, DNP3_PORT)
        else:
            src, dst, sport, dport = (pair.outstation_ip, pair.master_ip,
                                      DNP3_PORT, pair.master_port)
        seq = pair.seq[from_master]
        ack = pair.seq[not from_master]
        pair.seq[from_master] = (seq + len(payload)) & 0xFFFFFFFF
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, 0x18, 8192, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1,
                         0x4000, 64, 6, 0, src, dst)
        frame = (b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x08\x00"
                 + ip + tcp + payload)
        self.time += 0.0005
        sec = int(self.time)
        usec = int((self.time - sec) * 1e6)
        self.out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.packets += 1

    def _fragment(self, pair: _Pair, from_master: bool, fragment: bytes) -> None:
        if from_master:
            control, dst, src = 0xC4, pair.outstation_address, pair.master_address
        else:
            control, dst, src = 0x44, pair.master_address, pair.outstation_address
        frames = _segments(fragment, control, dst, src, pair.transport[from_master])
        pair.transport[from_master] = (pair.transport[from_master] + len(frames)) & 0x3F
        for frame in frames:
            self._packet(pair, from_master, frame)
        self.frames += len(frames)
        self.fragments += 1

    def cycle(self, pair: _Pair) -> None:
        rng = self.rng
        seq = pair.app_seq
        pair.app_seq = (seq + 1) & 0x0F
        kind = rng.random()
        if kind < 0.6:  # class 0 poll, one-frame response
            self._fragment(pair, True, bytes([0xC0 | seq, 1]) + b"\x3c\x01\x06")
            analog = b"".join(struct.pack("<Bi", 1, rng.randrange(-5000, 5000))
                              for _ in range(10))
            binary = bytes(rng.choice((0x01, 0x81)) for _ in range(8))
            body = (b"\x1e\x01\x00\x00\x09" + analog + b"\x01\x02\x00\x00\x07" + binary)
            self._fragment(pair, False, bytes([0xC0 | seq, 0x81, 0, 0]) + body)
        elif kind < 0.75:  # a response of three link frames
            self._fragment(pair, True, bytes([0xC0 | seq, 1]) + b"\x14\x01\x06")
            counters = b"".join(struct.pack("<BI", 1, rng.randrange(1 << 20))
                                for _ in range(80))
            body = b"\x14\x01\x01\x00\x00\x4f\x00" + counters
            self._fragment(pair, False, bytes([0xC0 | seq, 0x81, 0, 0]) + body)
        elif kind < 0.9:  # CROB direct operate and echo
            crob = b"\x0c\x01\x28\x01\x00" + struct.pack(
                "<HBBIIB", rng.randrange(16), rng.choice((3, 4, 0x41)), 1, 100, 100, 0)
            self._fragment(pair, True, bytes([0xC0 | seq, 5]) + crob)
            self._fragment(pair, False, bytes([0xC0 | seq, 0x81, 0, 0]) + crob)
        else:  # unsolicited analog event with time, and its confirm
            event = b"\x20\x03\x28\x01\x00" + struct.pack(
                "<HBi", rng.randrange(10), 1, rng.randrange(-5000, 5000)) + \
                int(self.time * 1000).to_bytes(6, "little")
            self._fragment(pair, False, bytes([0xF0 | seq, 0x82, 0, 0]) + event)
            self._fragment(pair, True, bytes([0xD0 | seq, 0]))

    def write(self, packets: int) -> dict:
        pairs = [_Pair(n) for n in range(PAIRS)]
        while self.packets < packets:
            self.cycle(self.rng.choice(pairs))
        return {"packets": self.packets, "frames": self.frames,
                "fragments": self.fragments, "pairs": PAIRS}


def write_capture(path: str, packets: int = 200_000, seed: int = 1) -> dict:
    """Write about ``packets`` packets (a cycle is not cut) to ``path``."""
    with open(path, "wb") as out:
        return Writer(out, seed).write(packets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--out", default="dnp3_bench.pcap")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stats = write_capture(args.out, args.packets, args.seed)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
