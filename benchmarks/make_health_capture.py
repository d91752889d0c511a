"""Write synthetic, protocol-correct DICOM and HL7/MLLP captures of any length.

DICOM: modalities on 10.0.3.0/24 open associations to a PACS at
10.0.4.1:104; each association is an A-ASSOCIATE-RQ/AC, a C-ECHO, a run of
C-STOREs whose data sets (device elements, synthetic patient elements and
4 KiB of pixels) are fragmented over two P-DATA-TF PDUs, and A-RELEASE.
HL7: senders on 10.0.5.0/24 send ADT^A01 messages with patient segments to
10.0.6.1:2575, each answered by an ACK. Every connection opens with a
handshake and closes with FIN/ACK; sequence numbers are exact. Ethernet +
IPv4 + TCP, microsecond pcap, written as made so memory stays flat. The
same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dissectors.dicom.definitions import build_item, build_pdu, build_pdv  # noqa: E402
from dissectors.hl7.definitions import build_frame  # noqa: E402

START_US = 1_704_067_200 * 1_000_000
CT = b"1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = b"1.2.840.10008.1.2.1"


class Writer:
    """A pcap writer of TCP packets with exact sequence numbers per flow."""

    def __init__(self, path: str) -> None:
        self.out = open(path, "wb")
        self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.clock = START_US
        self.packets = 0

    def packet(
        self,
        src: tuple,
        dst: tuple,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        self.clock += 50
        tcp = struct.pack(
            ">HHIIBBHHH",
            src[1],
            dst[1],
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            65535,
            0,
            0,
        )
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            total,
            0,
            0x4000,
            64,
            6,
            0,
            bytes(map(int, src[0].split("."))),
            bytes(map(int, dst[0].split("."))),
        )
        checksum = sum(struct.unpack(">10H", ip))
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        ip = ip[:10] + struct.pack(">H", ~checksum & 0xFFFF) + ip[12:]
        frame = (
            b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
            + ip
            + tcp
            + payload
        )
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

    def connection(self, client: tuple, server: tuple, exchanges) -> None:
        """Handshake, then (to_server, payload) segments each ACKed, then FIN."""
        c_seq, s_seq = 1000, 5000
        self.packet(client, server, c_seq, 0, 0x02)
        self.packet(server, client, s_seq, c_seq + 1, 0x12)
        c_seq += 1
        s_seq += 1
        self.packet(client, server, c_seq, s_seq, 0x10)
        for to_server, payload in exchanges:
            if to_server:
                self.packet(client, server, c_seq, s_seq, 0x18, payload)
                c_seq += len(payload)
            else:
                self.packet(server, client, s_seq, c_seq, 0x18, payload)
                s_seq += len(payload)
        self.packet(client, server, c_seq, s_seq, 0x11)
        self.packet(server, client, s_seq, c_seq + 1, 0x11)
        self.packet(client, server, c_seq + 1, s_seq + 1, 0x10)

    def close(self) -> None:
        self.out.close()


def _element(group: int, element: int, value: bytes, vr: bytes | None = None) -> bytes:
    if len(value) % 2:
        value += b" " if vr not in (b"UI", b"OB") else b"\x00"
    if vr is None:
        return struct.pack("<HHI", group, element, len(value)) + value
    if vr in (b"OB", b"OW"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _command(fields: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(_element(0, e, v) for e, v in fields)
    return _element(0, 0, struct.pack("<I", len(body))) + body


def dicom_association(rng: random.Random, stores: int) -> list[tuple[bool, bytes]]:
    context = build_item(
        0x20, b"\x01\x00\x00\x00" + build_item(0x30, CT) + build_item(0x40, EXPLICIT)
    )
    echo_context = build_item(
        0x20,
        b"\x03\x00\x00\x00"
        + build_item(0x30, b"1.2.840.10008.1.1")
        + build_item(0x40, b"1.2.840.10008.1.2"),
    )
    user = build_item(
        0x50,
        build_item(0x51, struct.pack(">I", 16384))
        + build_item(0x52, b"1.2.276.0.7230010.3.0.3.6.4")
        + build_item(0x55, b"OFFIS_DCMTK_364"),
    )
    fixed = (
        struct.pack(">HH", 1, 0) + b"PACS".ljust(16) + b"CT_%03d" % rng.randrange(999)
    )
    fixed = fixed.ljust(36) + bytes(32)
    rq = build_pdu(
        1,
        fixed
        + build_item(0x10, b"1.2.840.10008.3.1.1.1")
        + context
        + echo_context
        + user,
    )
    ac_context = build_item(0x21, b"\x01\x00\x00\x00" + build_item(0x40, EXPLICIT))
    ac_echo = build_item(
        0x21, b"\x03\x00\x00\x00" + build_item(0x40, b"1.2.840.10008.1.2")
    )
    ac = build_pdu(
        2,
        fixed
        + build_item(0x10, b"1.2.840.10008.3.1.1.1")
        + ac_context
        + ac_echo
        + user,
    )
    out = [(True, rq), (False, ac)]
    echo = _command(
        [
            (0x0002, b"1.2.840.10008.1.1"),
            (0x0100, b"\x30\x00"),
            (0x0110, b"\x01\x00"),
            (0x0800, b"\x01\x01"),
        ]
    )
    echo_rsp = _command(
        [
            (0x0002, b"1.2.840.10008.1.1"),
            (0x0100, b"\x30\x80"),
            (0x0120, b"\x01\x00"),
            (0x0800, b"\x01\x01"),
            (0x0900, b"\x00\x00"),
        ]
    )
    out += [
        (True, build_pdu(4, build_pdv(3, 3, echo))),
        (False, build_pdu(4, build_pdv(3, 3, echo_rsp))),
    ]
    for n in range(stores):
        message_id = struct.pack("<H", n + 2)
        instance = b"1.2.826.0.1.3680043.8.498.%d" % rng.randrange(10**12)
        command = _command(
            [
                (0x0002, CT),
                (0x0100, b"\x01\x00"),
                (0x0110, message_id),
                (0x0700, b"\x00\x00"),
                (0x0800, b"\x00\x00"),
                (0x1000, instance),
            ]
        )
        data_set = (
            _element(0x0008, 0x0016, CT, b"UI")
            + _element(0x0008, 0x0018, instance, b"UI")
            + _element(0x0008, 0x0060, b"CT", b"CS")
            + _element(0x0008, 0x0070, b"Bench Imaging", b"LO")
            + _element(0x0008, 0x1090, b"Bench CT 64", b"LO")
            + _element(0x0010, 0x0010, b"BENCH^PATIENT", b"PN")
            + _element(0x0018, 0x1000, b"SN%05d" % rng.randrange(99999), b"LO")
            + _element(0x0018, 0x1020, b"VA1", b"LO")
            + _element(0x7FE0, 0x0010, bytes(4096), b"OW")
        )
        half = (
            len(data_set) // 2 & ~1
        )  # PDV fragments of even length, as tshark expects
        response = _command(
            [
                (0x0002, CT),
                (0x0100, b"\x01\x80"),
                (0x0120, message_id),
                (0x0800, b"\x01\x01"),
                (0x0900, b"\x00\x00"),
                (0x1000, instance),
            ]
        )
        out += [
            (True, build_pdu(4, build_pdv(1, 3, command))),
            (True, build_pdu(4, build_pdv(1, 0, data_set[:half]))),
            (True, build_pdu(4, build_pdv(1, 2, data_set[half:]))),
            (False, build_pdu(4, build_pdv(1, 3, response))),
        ]
    out += [(True, build_pdu(5, bytes(4))), (False, build_pdu(6, bytes(4)))]
    return out


def hl7_connection(rng: random.Random, messages: int) -> list[tuple[bool, bytes]]:
    out = []
    for n in range(messages):
        control = b"MSG%08d" % rng.randrange(10**8)
        adt = (
            b"MSH|^~\\&|BENCH_ADT|BENCH_HOSP|BENCH_RIS|BENCH_HOSP|20240101120000||"
            b"ADT^A01^ADT_A01|" + control + b"|P|2.5.1\r"
            b"SFT|Bench Software^L^1|1.0|Bench ADT|b1\rEVN|A01|20240101120000\r"
            b"PID|1||BENCH-%06d^^^BENCH^MR||BENCH^PATIENT||19700101|U\r"
            % n
            + b"PV1|1|I|WARD^1^1\r"
        )
        ack = (
            b"MSH|^~\\&|BENCH_RIS|BENCH_HOSP|BENCH_ADT|BENCH_HOSP|20240101120001||"
            b"ACK^A01|A" + control + b"|P|2.5.1\rMSA|AA|" + control + b"\r"
        )
        out += [(True, build_frame(adt)), (False, build_frame(ack))]
    return out


def write_capture(path: str, protocol: str, packets: int, seed: int = 1) -> int:
    """Write about ``packets`` packets of ``protocol``; return how many were written."""
    rng = random.Random(seed)
    writer = Writer(path)
    n = 0
    while writer.packets < packets:
        n += 1
        if protocol == "dicom":
            client = (f"10.0.3.{1 + n % 200}", 40000 + n % 20000)
            writer.connection(client, ("10.0.4.1", 104), dicom_association(rng, 20))
        else:
            client = (f"10.0.5.{1 + n % 200}", 40000 + n % 20000)
            writer.connection(client, ("10.0.6.1", 2575), hl7_connection(rng, 40))
    writer.close()
    return writer.packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=("dicom", "hl7"))
    parser.add_argument("output")
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    count = write_capture(args.output, args.protocol, args.packets, args.seed)
    print(f"wrote {args.output}: {count} packets")


if __name__ == "__main__":
    main()
