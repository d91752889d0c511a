"""Decode the link, network and transport headers of one captured frame into a Packet.

Link types (pcap ``LINKTYPE_*``)
--------------------------------
* 1 Ethernet, with any stack of 802.1Q / 802.1ad / pre-standard QinQ tags
  (TPID 0x8100, 0x88a8, 0x9100).
* 113 Linux cooked capture (SLL) and 276 its second version (SLL2); the sender's
  MAC is taken from the link-layer address when it is an Ethernet one.
* 101 raw IP, and 12 and 14, which some systems write for the same thing;
  228 raw IPv4; 229 raw IPv6.
* 0 BSD loopback, whose 4-byte address family is in the writer's byte order
  (both orders accepted), and 108 OpenBSD loopback (network order).

Network and transport
---------------------
IPv4 with options, trimmed to its total length so Ethernet padding never
reaches the payload, and reassembled from fragments (RFC 791, section 3.2).
IPv6 with hop-by-hop, routing, destination-options, authentication and
atomic-fragment extension headers skipped. TCP (flags, sequence and
acknowledgement numbers) and UDP ports and payload. Other IP protocols come
back with ports 0 and the IP payload.

Frames whose ethertype is not IP (GOOSE, Sampled Values, PROFINET, LLDP...)
come back as L2-only packets (``proto == -1``) holding the bytes after the
ethertype, so that layer-2 dissectors can read them. An ethertype field of
1500 or less is an IEEE 802.3 length; the packet then carries that value
as ``ethertype`` and the LLC bytes, padding removed, as payload.

Bad input never raises: :meth:`Decoder.decode` returns ``None`` and counts
the reason in :attr:`Decoder.counters`.
"""

# Limitation: IPv6 fragments are not reassembled; a non-atomic fragment is
# counted in "ipv6_fragments" and returns None, so its datagram is lost.
# A second reassembly table keyed on the IPv6 fragment identification would
# lift it.

# Limitation: tunnels (GRE, IP-in-IP, VXLAN, GTP) and MPLS, PPPoE are not
# opened; only the outer header is decoded and the inner packet stays in the
# payload (or, for MPLS and PPPoE, the frame is L2-only).

# Limitation: IPv4 fragments are held by capture time only; a set that never
# completes stays until it times out on the arrival of a later fragment, or is
# evicted when the table is full.

from __future__ import annotations

import collections
import ipaddress
import struct
from operator import itemgetter
from typing import NamedTuple

__all__ = ["Decoder", "Packet"]


class Packet(NamedTuple):
    """The addressing and payload of one frame, protocol-neutral."""

    src_mac: str | None  # "aa:bb:cc:dd:ee:ff"; None when the link shows no MAC
    dst_mac: str | None
    vlans: tuple[int, ...]  # VLAN ids, outermost first
    ethertype: int  # 0x0800 / 0x86dd for IP, the frame's own value otherwise
    src_ip: str | None  # None for L2-only frames
    dst_ip: str | None
    proto: int  # IP protocol number; -1 for L2-only frames
    src_port: int  # 0 unless TCP or UDP
    dst_port: int
    tcp_flags: int  # FIN=1, SYN=2, RST=4, PSH=8, ACK=16, ...; 0 unless TCP
    seq: int  # 0 unless TCP
    ack: int
    payload: bytes  # transport payload; for L2-only frames the bytes after the ethertype


# pcap LINKTYPE_* values
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW_BSDOS = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
MAX_8023_LENGTH = 1500
ARPHRD_ETHER = 1

# BSD address families that mean IPv6 (NetBSD/OpenBSD, FreeBSD, macOS)
AF_INET = 2
AF_INET6_VALUES = frozenset({24, 28, 30})

PROTO_TCP = 6
PROTO_UDP = 17

# IPv6 extension headers that are skipped on the way to the transport header
IPV6_HOP_BY_HOP = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AUTH = 51
IPV6_DEST_OPTS = 60
IPV6_SKIPPED = frozenset({IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_AUTH, IPV6_DEST_OPTS})

# IPv4 flags-and-fragment-offset field
IP_MORE_FRAGMENTS = 0x2000
IP_OFFSET_MASK = 0x1FFF
IP_FRAGMENT_BITS = IP_MORE_FRAGMENTS | IP_OFFSET_MASK
MAX_IP_DATAGRAM = 65535

# A datagram in more pieces than this is treated as an attack on the table.
MAX_FRAGMENTS_PER_SET = 256

# Text forms of addresses are cached; past this many entries a cache is
# emptied and refilled, which keeps memory flat on a scan of many hosts.
ADDRESS_CACHE_SIZE = 8192

# Fixed header layouts, network byte order
_IPV4 = struct.Struct("!BxHHHxB")  # version+IHL, total length, id, flags+offset, protocol
_IPV6 = struct.Struct("!HB")  # at offset 4: payload length, next header
_TCP = struct.Struct("!HHIIBB")  # ports, seq, ack, data offset, flags
_UDP = struct.Struct("!HHH")  # ports, length
_U16 = struct.Struct("!H")
# Ethernet + option-less IPv4 + TCP in one read: MAC pair, ethertype,
# version+IHL, total length, flags+offset, protocol, address pair, then the
# TCP ports, seq, ack, data offset and flags.
_ETHERNET_IPV4_TCP = struct.Struct("!12sHBxH2xHxB2x8sHHIIBB")
_SLL = struct.Struct("!2xHH6s2xH")  # ARPHRD type, address length, address, protocol
_SLL2 = struct.Struct("!H6xH1xB6s")  # protocol, ARPHRD type, address length, address

_new = tuple.__new__
_by_offset = itemgetter(0)


class _FragmentSet:
    """The pieces of one IPv4 datagram seen so far."""

    __slots__ = ("first_ts", "pieces", "total")

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        self.pieces: list[tuple[int, bytes]] = []  # (offset, bytes), in arrival order
        self.total: int | None = None  # datagram payload length, once the last piece is seen


class Decoder:
    """Turns captured frames into :class:`Packet` records, reassembling IPv4.

    One decoder serves one capture (or one live interface): it holds the
    fragment table, whose time is the capture's own.

    Parameters
    ----------
    max_fragment_sets
        Datagrams awaiting missing fragments; when full, the oldest is dropped
        and counted as ``fragment_sets_evicted``.
    fragment_timeout
        Capture seconds after its first fragment that a datagram may take to
        complete before it is dropped (``fragment_sets_expired``).

    Attributes
    ----------
    counters
        Why frames were not decoded, and events worth a number: ``truncated``,
        ``unknown_linktype``, ``not_ip``, ``bad_ip_header``,
        ``bad_tcp_header``, ``ip_fragments``, ``ip_reassembled``,
        ``fragment_overlaps``, ``fragment_sets_evicted``,
        ``fragment_sets_expired``, ``ipv6_ext_headers``, ``ipv6_fragments``,
        ``ip_cut_by_snaplen``, ``decode_error`` (a bug: should stay 0).

    Examples
    --------
    >>> frame = bytes.fromhex(
    ...     "ffffffffffff0200000000010800"  # Ethernet
    ...     "450000200001000040110000c0a80001c0a80002"  # IPv4, UDP
    ...     "d43101f6000c0000" "6869210a"  # UDP 54321 -> 502, "hi!\\n"
    ... )
    >>> packet = Decoder().decode(1, frame, 0.0)
    >>> packet.src_ip, packet.dst_port, packet.payload
    ('192.168.0.1', 502, b'hi!\\n')
    """

    def __init__(self, *, max_fragment_sets: int = 1024, fragment_timeout: float = 30.0):
        self.counters: collections.Counter[str] = collections.Counter()
        self._max_fragment_sets = max_fragment_sets
        self._fragment_timeout = fragment_timeout
        self._fragments: dict[tuple[bytes, int, int], _FragmentSet] = {}
        self._mac_text: dict[bytes, tuple[str, str]] = {}
        self._ipv4_text: dict[bytes, tuple[str, str]] = {}
        self._ipv6_text: dict[bytes, tuple[str, str]] = {}
        self._link_decoders = {
            LINKTYPE_LINUX_SLL: self._linux_sll,
            LINKTYPE_LINUX_SLL2: self._linux_sll2,
            LINKTYPE_RAW: self._raw_ip,
            LINKTYPE_RAW_BSD: self._raw_ip,
            LINKTYPE_RAW_BSDOS: self._raw_ip,
            LINKTYPE_IPV4: self._raw_ipv4,
            LINKTYPE_IPV6: self._raw_ipv6,
            LINKTYPE_NULL: self._bsd_null,
            LINKTYPE_LOOP: self._openbsd_loop,
        }

    def decode(self, linktype: int, data: bytes, ts: float) -> Packet | None:
        """Decode one frame; ``None`` when it holds nothing usable (see counters).

        Parameters
        ----------
        linktype
            The ``LINKTYPE_*`` of the frame's interface.
        data
            The captured bytes.
        ts
            Capture time in seconds; it drives the fragment timeout.
        """
        try:
            if linktype == LINKTYPE_ETHERNET:
                # Fast path for the bulk of industrial traffic: Ethernet, IPv4
                # without options or fragments, TCP or UDP, read with a single
                # unpack. Anything else takes the general path below.
                if len(data) >= 54:
                    (
                        mac_key, ethertype, version_ihl, total_length, fragment, proto,
                        ip_key, src_port, dst_port, seq, ack, data_offset, flags,
                    ) = _ETHERNET_IPV4_TCP.unpack_from(data, 0)
                    end = 14 + total_length
                    if (
                        ethertype == ETHERTYPE_IPV4
                        and version_ihl == 0x45
                        and not fragment & IP_FRAGMENT_BITS
                        and end <= len(data)
                    ):
                        if proto == PROTO_TCP:
                            payload_start = 34 + (data_offset >> 4) * 4
                            ok = 54 <= payload_start <= end
                        elif proto == PROTO_UDP:
                            payload_start = 42
                            udp_length = seq >> 16  # the UDP length sits where TCP's seq does
                            ok = end >= 42 and 8 <= udp_length
                            if ok and 34 + udp_length < end:
                                end = 34 + udp_length
                            seq = ack = flags = 0
                        else:
                            ok = False
                        if ok:
                            macs = self._mac_text.get(mac_key)
                            if macs is None:
                                macs = self._ethernet_macs(mac_key)
                            addresses = self._ipv4_text.get(ip_key)
                            if addresses is None:
                                addresses = self._ipv4_addresses(ip_key)
                            return _new(
                                Packet,
                                (
                                    macs[0], macs[1], (), ETHERTYPE_IPV4,
                                    addresses[0], addresses[1], proto, src_port,
                                    dst_port, flags, seq, ack, data[payload_start:end],
                                ),
                            )

                if len(data) < 14:
                    self.counters["truncated"] += 1
                    return None
                mac_key = data[:12]
                macs = self._mac_text.get(mac_key)
                if macs is None:
                    macs = self._ethernet_macs(mac_key)
                ethertype = (data[12] << 8) | data[13]
                if ethertype == ETHERTYPE_IPV4:
                    return self._ipv4(data, 14, ts, macs[0], macs[1], ())
                if ethertype in VLAN_TPIDS:
                    return self._vlan_tagged(data, 14, ethertype, ts, macs[0], macs[1])
                if ethertype == ETHERTYPE_IPV6:
                    return self._ipv6(data, 14, macs[0], macs[1], ())
                return self._layer2_only(data, 14, ethertype, macs[0], macs[1], ())

            link_decoder = self._link_decoders.get(linktype)
            if link_decoder is None:
                self.counters["unknown_linktype"] += 1
                return None
            return link_decoder(data, ts)
        except Exception:  # noqa: BLE001 - a decoder bug must not end a run
            self.counters["decode_error"] += 1
            return None

    # -- link layer -----------------------------------------------------------

    def _ethernet_macs(self, key: bytes) -> tuple[str, str]:
        if len(self._mac_text) >= ADDRESS_CACHE_SIZE:
            self._mac_text.clear()
        # Ethernet puts the destination first; the Packet puts the source first.
        macs = (key[6:12].hex(":"), key[0:6].hex(":"))
        self._mac_text[key] = macs
        return macs

    def _vlan_tagged(self, data, off, tpid, ts, src_mac, dst_mac):
        # 802.1Q tag: TPID, then 3 bits priority, 1 bit DEI, 12 bits VLAN id.
        vlans = []
        ethertype = tpid
        while ethertype in VLAN_TPIDS:
            if len(data) - off < 4:
                self.counters["truncated"] += 1
                return None
            vlans.append(((data[off] << 8) | data[off + 1]) & 0x0FFF)
            ethertype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        return self._network(data, off, ethertype, ts, src_mac, dst_mac, tuple(vlans))

    def _network(self, data, off, ethertype, ts, src_mac, dst_mac, vlans):
        """Dispatch on an ethertype found after a link header."""
        if ethertype in VLAN_TPIDS:
            return self._vlan_tagged(data, off, ethertype, ts, src_mac, dst_mac)
        if ethertype == ETHERTYPE_IPV4:
            return self._ipv4(data, off, ts, src_mac, dst_mac, vlans)
        if ethertype == ETHERTYPE_IPV6:
            return self._ipv6(data, off, src_mac, dst_mac, vlans)
        return self._layer2_only(data, off, ethertype, src_mac, dst_mac, vlans)

    def _layer2_only(self, data, off, ethertype, src_mac, dst_mac, vlans):
        self.counters["not_ip"] += 1
        if ethertype <= MAX_8023_LENGTH:
            payload = data[off : off + ethertype]  # the length field drops padding
        else:
            payload = data[off:]
        return _new(
            Packet, (src_mac, dst_mac, vlans, ethertype, None, None, -1, 0, 0, 0, 0, 0, payload)
        )

    def _linux_sll(self, data, ts):
        # Linux cooked header v1: packet type, ARPHRD type, address length,
        # 8-byte address, protocol (an ethertype for the cases we decode).
        if len(data) < 16:
            self.counters["truncated"] += 1
            return None
        hatype, halen, address, protocol = _SLL.unpack_from(data, 0)
        src_mac = self._sll_mac(hatype, halen, address)
        return self._network(data, 16, protocol, ts, src_mac, None, ())

    def _linux_sll2(self, data, ts):
        # Linux cooked header v2: protocol, reserved, interface index,
        # ARPHRD type, packet type, address length, 8-byte address.
        if len(data) < 20:
            self.counters["truncated"] += 1
            return None
        protocol, hatype, halen, address = _SLL2.unpack_from(data, 0)
        src_mac = self._sll_mac(hatype, halen, address)
        return self._network(data, 20, protocol, ts, src_mac, None, ())

    def _sll_mac(self, hatype: int, halen: int, address: bytes) -> str | None:
        if hatype != ARPHRD_ETHER or halen != 6:
            return None
        return self._ethernet_macs(b"\0" * 6 + address)[0]

    def _raw_ip(self, data, ts):
        if not data:
            self.counters["truncated"] += 1
            return None
        version = data[0] >> 4
        if version == 4:
            return self._ipv4(data, 0, ts, None, None, ())
        if version == 6:
            return self._ipv6(data, 0, None, None, ())
        self.counters["bad_ip_header"] += 1
        return None

    def _raw_ipv4(self, data, ts):
        return self._ipv4(data, 0, ts, None, None, ())

    def _raw_ipv6(self, data, ts):
        return self._ipv6(data, 0, None, None, ())

    def _bsd_null(self, data, ts):
        # The family is a host-order u32 of the writing machine; families are
        # small, so a value above 0xffff means the other byte order.
        if len(data) < 4:
            self.counters["truncated"] += 1
            return None
        family = int.from_bytes(data[:4], "little")
        if family > 0xFFFF:
            family = int.from_bytes(data[:4], "big")
        return self._loopback(data, family, ts)

    def _openbsd_loop(self, data, ts):
        if len(data) < 4:
            self.counters["truncated"] += 1
            return None
        return self._loopback(data, int.from_bytes(data[:4], "big"), ts)

    def _loopback(self, data, family, ts):
        if family == AF_INET:
            return self._ipv4(data, 4, ts, None, None, ())
        if family in AF_INET6_VALUES:
            return self._ipv6(data, 4, None, None, ())
        self.counters["not_ip"] += 1
        return None

    # -- network layer ----------------------------------------------------------

    def _ipv4(self, data, off, ts, src_mac, dst_mac, vlans):
        size = len(data)
        if size - off < 20:
            self.counters["truncated"] += 1
            return None
        version_ihl, total_length, ident, fragment, proto = _IPV4.unpack_from(data, off)
        header_length = (version_ihl & 0x0F) * 4
        if version_ihl >> 4 != 4 or header_length < 20:
            self.counters["bad_ip_header"] += 1
            return None
        if size - off < header_length:
            self.counters["truncated"] += 1
            return None

        # The total length ends the datagram: Ethernet pads short frames and
        # some links add a trailer or FCS. A zero total length is what
        # segmentation offload leaves in captures taken on the sender.
        end = off + total_length
        if total_length < header_length:
            if total_length:
                self.counters["bad_ip_header"] += 1
                return None
            end = size
        elif end > size:
            self.counters["ip_cut_by_snaplen"] += 1
            end = size

        key = data[off + 12 : off + 20]
        addresses = self._ipv4_text.get(key)
        if addresses is None:
            addresses = self._ipv4_addresses(key)

        if fragment & IP_FRAGMENT_BITS:
            reassembled = self._ipv4_fragment(
                key, ident, proto, fragment, data[off + header_length : end], ts
            )
            if reassembled is None:
                return None
            return self._transport(
                reassembled, 0, len(reassembled), proto, src_mac, dst_mac, vlans,
                ETHERTYPE_IPV4, addresses[0], addresses[1],
            )
        return self._transport(
            data, off + header_length, end, proto, src_mac, dst_mac, vlans,
            ETHERTYPE_IPV4, addresses[0], addresses[1],
        )

    def _ipv4_addresses(self, key: bytes) -> tuple[str, str]:
        if len(self._ipv4_text) >= ADDRESS_CACHE_SIZE:
            self._ipv4_text.clear()
        addresses = ("%d.%d.%d.%d" % tuple(key[:4]), "%d.%d.%d.%d" % tuple(key[4:]))
        self._ipv4_text[key] = addresses
        return addresses

    def _ipv6(self, data, off, src_mac, dst_mac, vlans):
        size = len(data)
        if size - off < 40:
            self.counters["truncated"] += 1
            return None
        if data[off] >> 4 != 6:
            self.counters["bad_ip_header"] += 1
            return None
        payload_length, next_header = _IPV6.unpack_from(data, off + 4)

        # A zero payload length means a jumbogram or an offloaded segment;
        # either way the captured bytes are all there is to go on.
        end = off + 40 + payload_length
        if not payload_length:
            end = size
        elif end > size:
            self.counters["ip_cut_by_snaplen"] += 1
            end = size

        key = data[off + 8 : off + 40]
        addresses = self._ipv6_text.get(key)
        if addresses is None:
            addresses = self._ipv6_addresses(key)

        # Extension headers (RFC 8200, section 4): each names the next one.
        at = off + 40
        while next_header in IPV6_SKIPPED:
            self.counters["ipv6_ext_headers"] += 1
            if end - at < 8:
                self.counters["truncated"] += 1
                return None
            if next_header == IPV6_FRAGMENT:
                offset_and_flag = _U16.unpack_from(data, at + 2)[0]
                if offset_and_flag & 0xFFF9:
                    self.counters["ipv6_fragments"] += 1
                    return None
                length = 8  # an atomic fragment: the whole datagram follows
            elif next_header == IPV6_AUTH:
                length = (data[at + 1] + 2) * 4  # counted in 4-byte words (RFC 4302)
            else:
                length = (data[at + 1] + 1) * 8
            next_header = data[at]
            at += length
            if at > end:
                self.counters["truncated"] += 1
                return None

        return self._transport(
            data, at, end, next_header, src_mac, dst_mac, vlans,
            ETHERTYPE_IPV6, addresses[0], addresses[1],
        )

    def _ipv6_addresses(self, key: bytes) -> tuple[str, str]:
        if len(self._ipv6_text) >= ADDRESS_CACHE_SIZE:
            self._ipv6_text.clear()
        addresses = (
            str(ipaddress.IPv6Address(key[:16])),
            str(ipaddress.IPv6Address(key[16:])),
        )
        self._ipv6_text[key] = addresses
        return addresses

    # -- IPv4 fragments ---------------------------------------------------------

    def _ipv4_fragment(self, addresses, ident, proto, fragment, piece, ts):
        """Store one fragment; return the datagram's payload once it is whole."""
        self.counters["ip_fragments"] += 1
        table = self._fragments
        self._expire_fragments(ts)

        key = (addresses, ident, proto)
        fragments = table.get(key)
        if fragments is None:
            if len(table) >= self._max_fragment_sets:
                del table[next(iter(table))]  # dicts keep arrival order: oldest first
                self.counters["fragment_sets_evicted"] += 1
            fragments = table[key] = _FragmentSet(ts)

        offset = (fragment & IP_OFFSET_MASK) * 8
        if offset + len(piece) > MAX_IP_DATAGRAM:
            self.counters["bad_fragment"] += 1
            return None
        if not fragment & IP_MORE_FRAGMENTS:
            if fragments.total is None:
                fragments.total = offset + len(piece)
            elif fragments.total != offset + len(piece):
                self.counters["fragment_overlaps"] += 1  # a second, different end
        fragments.pieces.append((offset, piece))
        if len(fragments.pieces) > MAX_FRAGMENTS_PER_SET:
            del table[key]
            self.counters["bad_fragment"] += 1
            return None
        if fragments.total is None:
            return None

        # Whole once the pieces, in offset order, leave no gap up to the end.
        covered = 0
        for start, data in sorted(fragments.pieces, key=_by_offset):
            if start > covered:
                return None
            if start < covered:
                self.counters["fragment_overlaps"] += 1
            covered = max(covered, start + len(data))
        total = fragments.total
        if covered < total:
            return None

        # Where pieces overlap the first to arrive wins, as most hosts
        # (and tshark) keep it; writing in reverse arrival order achieves it.
        datagram = bytearray(total)
        for start, data in reversed(fragments.pieces):
            if start < total:
                data = data[: total - start]
                datagram[start : start + len(data)] = data
        del table[key]
        self.counters["ip_reassembled"] += 1
        return bytes(datagram)

    def _expire_fragments(self, now: float) -> None:
        table = self._fragments
        deadline = now - self._fragment_timeout
        while table:
            key = next(iter(table))
            if table[key].first_ts >= deadline:
                break
            del table[key]
            self.counters["fragment_sets_expired"] += 1

    # -- transport layer --------------------------------------------------------

    def _transport(self, data, at, end, proto, src_mac, dst_mac, vlans, ethertype, src_ip, dst_ip):
        if proto == PROTO_TCP:
            if end - at < 20:
                self.counters["truncated"] += 1
                return None
            src_port, dst_port, seq, ack, data_offset, flags = _TCP.unpack_from(data, at)
            header_length = (data_offset >> 4) * 4
            if header_length < 20:
                self.counters["bad_tcp_header"] += 1
                return None
            if end - at < header_length:
                self.counters["truncated"] += 1
                return None
            return _new(
                Packet,
                (
                    src_mac, dst_mac, vlans, ethertype, src_ip, dst_ip, PROTO_TCP,
                    src_port, dst_port, flags, seq, ack, data[at + header_length : end],
                ),
            )

        if proto == PROTO_UDP:
            if end - at < 8:
                self.counters["truncated"] += 1
                return None
            src_port, dst_port, length = _UDP.unpack_from(data, at)
            if 8 <= length < end - at:
                end = at + length  # the UDP length may be tighter than IP's
            return _new(
                Packet,
                (
                    src_mac, dst_mac, vlans, ethertype, src_ip, dst_ip, PROTO_UDP,
                    src_port, dst_port, 0, 0, 0, data[at + 8 : end],
                ),
            )

        return _new(
            Packet,
            (src_mac, dst_mac, vlans, ethertype, src_ip, dst_ip, proto, 0, 0, 0, 0, 0, data[at:end]),
        )
