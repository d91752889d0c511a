"""Write a synthetic MMS capture of any length (IEC 61850 polling), for benchmarks.

Traffic model: ten IEDs on 10.0.3.0/24 polled by three SCADA clients on
10.0.4.0/24 over port 102. Each TCP connection opens with a handshake, COTP
CR/CC and an MMS initiate inside CN/CP/AARQ and AC/CPA/AARE, then carries
confirmed requests in GT+DT SPDUs with fully encoded presentation data:
mostly reads of a measurement (a structure of floats, quality and time) and
of status values, some getNameList and write requests, and unsolicited
information reports from the IED. Every MMS unit is one TCP segment; there
are no pure ACKs, so every packet after the handshakes carries MMS. The
same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys

PORT = 102
START = 1_704_067_200
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    size = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def _tpkt(user: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 7 + len(user)) + b"\x02\xf0\x80" + user


def _dt(mms: bytes) -> bytes:
    pdv = b"\x02\x01\x03" + _tlv(0xA0, mms)
    return _tpkt(b"\x01\x00\x01\x00" + _tlv(0x61, _tlv(0x30, pdv)))


def _name(domain: str, item: str) -> bytes:
    return _tlv(0xA1, _tlv(0x1A, domain.encode()) + _tlv(0x1A, item.encode()))


def _spec(domain: str, item: str) -> bytes:
    return _tlv(0x30, _tlv(0xA0, _name(domain, item)))


CR = struct.pack(">BBH", 3, 0, 22) + bytes.fromhex(
    "11e00000000100c0010ac2020001c1020001"
)
CC = struct.pack(">BBH", 3, 0, 22) + bytes.fromhex(
    "11d00001000100c0010ac2020001c1020001"
)
_INITIATE = bytes.fromhex("800300fde8810105820105830105a40d800101810305f100820300ee1c")
INITIATE_REQUEST = _tlv(0xA8, _INITIATE)
INITIATE_RESPONSE = _tlv(0xA9, _INITIATE)


def _associate(initiate: bytes, request: bool) -> bytes:
    user_info = _tlv(
        0xBE, _tlv(0x28, b"\x06\x02\x51\x01\x02\x01\x03" + _tlv(0xA0, initiate))
    )
    if request:
        acse = _tlv(0x60, b"\xa1\x07\x06\x05\x28\xca\x22\x02\x03" + user_info)
        contexts = _tlv(
            0xA4,
            _tlv(
                0x30,
                b"\x02\x01\x01\x06\x04\x52\x01\x00\x01"
                + _tlv(0x30, b"\x06\x02\x51\x01"),
            )
            + _tlv(
                0x30,
                b"\x02\x01\x03\x06\x05\x28\xca\x22\x02\x01"
                + _tlv(0x30, b"\x06\x02\x51\x01"),
            ),
        )
    else:
        acse = _tlv(
            0x61,
            b"\xa1\x07\x06\x05\x28\xca\x22\x02\x03"
            b"\xa2\x03\x02\x01\x00\xa3\x05\xa1\x03\x02\x01\x00" + user_info,
        )
        contexts = _tlv(
            0xA5,
            _tlv(0x30, b"\x80\x01\x00\x81\x02\x51\x01")
            + _tlv(0x30, b"\x80\x01\x00\x81\x02\x51\x01"),
        )
    pdv = _tlv(0x30, b"\x02\x01\x01" + _tlv(0xA0, acse))
    selectors = (
        b"\x81\x04\x00\x00\x00\x01\x82\x04\x00\x00\x00\x01"
        if request
        else b"\x83\x04\x00\x00\x00\x01"
    )
    normal = selectors + contexts + _tlv(0x61, pdv)
    cp = _tlv(0x31, b"\xa0\x03\x80\x01\x01" + _tlv(0xA2, normal))
    params = (
        b"\x05\x06\x13\x01\x00\x16\x01\x02\x14\x02\x00\x02"
        + b"\x33\x02\x00\x01\x34\x02\x00\x01"
        + bytes([0xC1])
        + _lenbyte(cp)
        + cp
    )
    return _tpkt(bytes([13 if request else 14]) + _lenbyte(params) + params)


def _lenbyte(value: bytes) -> bytes:
    return (
        bytes([len(value)])
        if len(value) < 255
        else b"\xff" + struct.pack(">H", len(value))
    )


def _float(value: float) -> bytes:
    return _tlv(0x87, b"\x08" + struct.pack(">f", value))


class Writer:
    def __init__(self, out, seed: int) -> None:
        self.out = out
        self.rng = random.Random(seed)
        self.clock = START * 1_000_000
        self.packets = 0
        self.mms_packets = 0
        out.write(PCAP_HEADER)

    def _frame(self, src, dst, sport, dport, seq, ack, flags, payload) -> None:
        self.clock += self.rng.randint(50, 2000)
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            40 + len(payload),
            0,
            0x4000,
            64,
            6,
            0,
            src[0],
            dst[0],
        )
        tcp = struct.pack(
            ">HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            0x50,
            flags,
            65535,
            0,
            0,
        )
        frame = dst[1] + src[1] + b"\x08\x00" + ip + tcp + payload
        self.out.write(
            struct.pack(
                "<IIII",
                self.clock // 1_000_000,
                self.clock % 1_000_000,
                len(frame),
                len(frame),
            )
        )
        self.out.write(frame)
        self.packets += 1

    def connection(self, client, server, port, units: int) -> None:
        cseq, sseq = self.rng.getrandbits(32), self.rng.getrandbits(32)
        self._frame(client, server, port, PORT, cseq, 0, SYN, b"")
        self._frame(server, client, PORT, port, sseq, cseq + 1, SYN | ACK, b"")
        cseq += 1
        sseq += 1
        self._frame(client, server, port, PORT, cseq, sseq, ACK, b"")

        def send(to_server: bool, payload: bytes, mms: bool = True) -> None:
            nonlocal cseq, sseq
            if to_server:
                self._frame(client, server, port, PORT, cseq, sseq, PSH | ACK, payload)
                cseq += len(payload)
            else:
                self._frame(server, client, PORT, port, sseq, cseq, PSH | ACK, payload)
                sseq += len(payload)
            self.mms_packets += mms

        send(True, CR, False)
        send(False, CC, False)
        send(True, _associate(INITIATE_REQUEST, True))
        send(False, _associate(INITIATE_RESPONSE, False))
        domain = f"IED{server[0][3]}LD0"
        for invoke in range(units):
            choice = self.rng.random()
            if choice < 0.1:
                values = _tlv(
                    0xA2,
                    _tlv(0xA2, _float(self.rng.random() * 400))
                    + _tlv(0x84, b"\x03\x00\x00")
                    + _tlv(0x91, struct.pack(">I", START) + b"\x00\x00\x00\x0a"),
                )
                report = _tlv(
                    0xA3,
                    _tlv(0xA0, _tlv(0xA1, _tlv(0x80, b"RPT")) + _tlv(0xA0, values)),
                )
                send(False, _dt(report))
                continue
            inv = _tlv(0x02, invoke.to_bytes(2, "big"))
            if choice < 0.7:
                item = f"MMXU1$MX$PhV$phs{'ABC'[invoke % 3]}"
                request = _tlv(0xA4, _tlv(0xA1, _tlv(0xA0, _spec(domain, item))))
                value = _tlv(
                    0xA2,
                    _tlv(0xA2, _tlv(0xA2, _float(230 + self.rng.random())))
                    + _tlv(0x84, b"\x03\x00\x00")
                    + _tlv(
                        0x91, struct.pack(">I", START + invoke) + b"\x00\x00\x00\x0a"
                    ),
                )
                response = _tlv(0xA4, _tlv(0xA1, value))
            elif choice < 0.9:
                request = _tlv(
                    0xA4, _tlv(0xA1, _tlv(0xA0, _spec(domain, "XCBR1$ST$Pos$stVal")))
                )
                response = _tlv(0xA4, _tlv(0xA1, _tlv(0x84, b"\x06\x80")))
            elif choice < 0.95:
                request = _tlv(
                    0xA1,
                    _tlv(0xA0, b"\x80\x01\x00")
                    + _tlv(0xA1, _tlv(0x81, domain.encode())),
                )
                names = b"".join(
                    _tlv(0x1A, n.encode())
                    for n in ("LLN0", "LPHD1", "XCBR1", "MMXU1", "PTOC1")
                )
                response = _tlv(0xA1, _tlv(0xA0, names) + b"\x81\x01\x00")
            else:
                request = _tlv(
                    0xA5,
                    _tlv(0xA0, _spec(domain, "GGIO1$CO$SPCSO1$Oper"))
                    + _tlv(0xA0, _tlv(0x83, b"\x01")),
                )
                response = _tlv(0xA5, b"\x81\x00")
            send(True, _dt(_tlv(0xA0, inv + request)))
            send(False, _dt(_tlv(0xA1, inv + response)))
        self._frame(client, server, port, PORT, cseq, sseq, FIN | ACK, b"")
        self._frame(server, client, PORT, port, sseq, cseq + 1, FIN | ACK, b"")
        self._frame(client, server, port, PORT, cseq + 1, sseq + 1, ACK, b"")


def write_capture(path: str, packets: int = 120_000, seed: int = 1) -> dict:
    """Write at least ``packets`` packets; return counts (packets, MMS packets)."""
    with open(path, "wb") as out:
        writer = Writer(out, seed)
        servers = [
            (bytes([10, 0, 3, n + 1]), bytes([0, 2, 0xA3, 0, 3, n + 1]))
            for n in range(10)
        ]
        clients = [
            (bytes([10, 0, 4, n + 1]), bytes([0, 0x1B, 0x21, 0, 4, n + 1]))
            for n in range(3)
        ]
        port = 40000
        while writer.packets < packets:
            port += 1
            writer.connection(
                writer.rng.choice(clients),
                writer.rng.choice(servers),
                port,
                min(2000, max(16, (packets - writer.packets) // 2)),
            )
    return {"packets": writer.packets, "mms_packets": writer.mms_packets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--packets", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(write_capture(args.path, args.packets, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
