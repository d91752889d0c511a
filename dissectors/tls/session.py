"""The TLS dissector: records, handshake headers, hellos, certificates, fingerprints.

Strategy
--------
Each direction keeps a record buffer and a handshake buffer. Records are cut
by their 5-byte header; handshake records are appended to the handshake
buffer, which is cut into handshake messages by their 4-byte header, so a
message spanning records, or several in one record, come out whole. Once a
side has sent ChangeCipherSpec (TLS 1.2) or the server chose TLS 1.3, that
side's later handshake bytes are encrypted and are not parsed.

Messages and the fields the learner reads
-----------------------------------------
``client_hello`` (request, action ``session``)
    ``version`` (highest offered), ``legacy_version``, ``sni``, ``alpn``,
    ``cipher_suites``, ``extensions``, ``supported_groups``,
    ``ec_point_formats``, ``signature_algorithms``, ``supported_versions``,
    ``ja3`` and ``ja3_full``, ``ja4``.
``server_hello`` (response, ``session``)
    ``version`` (negotiated), ``cipher_suite``, ``extensions``, and
    ``certificate_visible``: False when TLS 1.3 hides the certificate.
``certificate`` (response, ``session``)
    ``certificate``: the leaf summary, a dict with ``subject``, ``issuer``,
    ``self_signed`` (issuer equals subject), ``not_before``, ``not_after``,
    ``key_type``, ``key_bits``, ``names`` (CN and DNS SANs) and
    ``matches_sni`` (when the client sent an SNI); ``chain``: every
    certificate's summary; ``sni``: the client's server name.
``application_data`` (request or response, action ``data``)
    ``length`` of the encrypted record: one message per record.
``alert`` (either way, ``session``)
    ``level`` and ``description`` when sent in the clear, else ``encrypted``.
"""

from __future__ import annotations

# Limitation: TLS 1.3 hides the certificate; the ServerHello says
# certificate_visible False and no certificate message follows. Only an
# endpoint's key logs could lift it, and otdpi does not decrypt.
# Limitation: a flow caught after its handshake (no hello in its first bytes)
# is not recognised as TLS, so its records are not reported. A probe for bare
# application-data record headers would lift it, at the price of false matches.
# Limitation: DTLS, QUIC, SSLv2-format hellos, JA3S/JA4S, OCSP stapling and
# session tickets are not decoded; such bytes are skipped or left unparsed.
import struct
from typing import Any

import construct as cs

from dissectors.tls.definitions import (
    CERTIFICATE_TLS12,
    CLIENT_HELLO,
    CLIENT_SUPPORTED_VERSIONS,
    EC_POINT_FORMAT_LIST,
    NAMED_GROUP_LIST,
    PROTOCOL_NAME_LIST,
    SERVER_HELLO,
    SERVER_NAME_LIST,
    SERVER_SUPPORTED_VERSION,
    SIGNATURE_SCHEME_LIST,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from dissectors.tls.fingerprints import is_grease, ja3, ja3_string, ja4
from dissectors.tls.x509 import summarise
from otdpi.dissector import Dissector, FlowContext
from otdpi.message import STATUS_OK, Message, malformed

PROTOCOL = "tls"
MAX_RECORD = 2**14 + 2048  # RFC 8446 5.2: ciphertext may exceed 2^14 by 256; be lenient
MAX_HANDSHAKE = 256 * 1024  # a certificate chain larger than this is not kept
MAX_CERTIFICATES = 10
_HEADER = struct.Struct("!BHH")


def _version_name(version: int) -> str:
    names = {
        0x0300: "SSL 3.0",
        0x0301: "TLS 1.0",
        0x0302: "TLS 1.1",
        0x0303: "TLS 1.2",
        0x0304: "TLS 1.3",
    }
    return names.get(version, f"0x{version:04x}")


class _Direction:
    __slots__ = ("records", "handshake", "encrypted", "dead")

    def __init__(self) -> None:
        self.records = bytearray()
        self.handshake = bytearray()
        self.encrypted = False
        self.dead = False


class TLSDissector(Dissector):
    """TLS over TCP: handshake metadata, certificates (TLS <= 1.2), fingerprints."""

    name = "tls"
    transports = ("tcp",)
    default_ports = (443, 8443, 993, 995, 465, 636, 853, 4443)
    probe_min_bytes = 6
    state = (
        "a record buffer and a handshake buffer per direction, the client's SNI, "
        "and whether each side has switched to encrypted records"
    )

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        if len(data) < 6 or data[0] != ContentType.handshake or data[1] != 3:
            return False
        if not 1 <= data[2] <= 4:
            return False
        length = data[3] << 8 | data[4]
        return 4 <= length <= MAX_RECORD and data[5] in (
            HandshakeType.client_hello,
            HandshakeType.server_hello,
        )

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        if len(data) >= 6 and data[0] == ContentType.handshake:
            if data[5] == HandshakeType.client_hello:
                return True
            if data[5] == HandshakeType.server_hello:
                return False
        return None

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._sides = {True: _Direction(), False: _Direction()}
        self._sni: str | None = None
        self._tls13 = False

    def _message(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        service: str,
        code: int | None,
        action: str,
        fields: dict[str, Any],
        identity: dict[str, Any] | None = None,
        status=STATUS_OK,
    ) -> Message:
        src, dst = self.endpoints(to_server)
        return Message(
            ts,
            frame,
            self.flow.flow_id,
            src,
            dst,
            PROTOCOL,
            "request" if to_server else "response",
            service,
            code,
            action,
            (),
            fields,
            identity or {},
            status,
            (),
        )

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        side = self._sides[to_server]
        if side.dead:
            return []
        side.records += data
        out: list[Message] = []
        buf = side.records
        pos = 0
        while len(buf) - pos >= 5:
            content_type, version, length = _HEADER.unpack_from(buf, pos)
            if not 20 <= content_type <= 24 or version >> 8 != 3 or length > MAX_RECORD:
                out.append(
                    self._message(
                        to_server,
                        ts,
                        frame,
                        "record",
                        content_type,
                        "other",
                        {
                            "content_type": content_type,
                            "version": version,
                            "length": length,
                        },
                        status=malformed(
                            f"bytes at this point are not a TLS record header "
                            f"(type {content_type}, version 0x{version:04x}, "
                            f"length {length}); rest of this direction dropped"
                        ),
                    )
                )
                side.dead = True
                buf.clear()
                return out
            if len(buf) - pos < 5 + length:
                break
            body = bytes(buf[pos + 5 : pos + 5 + length])
            pos += 5 + length
            out.extend(
                self._record(side, to_server, content_type, version, body, ts, frame)
            )
        if pos:
            del buf[:pos]
        return out

    def _record(self, side, to_server, content_type, version, body, ts, frame):
        if content_type == ContentType.application_data:
            return [
                self._message(
                    to_server,
                    ts,
                    frame,
                    "application_data",
                    23,
                    "data",
                    {"length": len(body), "version": version},
                )
            ]
        if content_type == ContentType.change_cipher_spec:
            side.encrypted = True
            return []
        if content_type == ContentType.alert:
            if side.encrypted or len(body) != 2:
                fields = {"encrypted": True, "length": len(body)}
            else:
                fields = {"level": body[0], "description": body[1], "encrypted": False}
            return [self._message(to_server, ts, frame, "alert", 21, "session", fields)]
        if content_type != ContentType.handshake:
            return []
        if side.encrypted:
            return []
        side.handshake += body
        return self._handshakes(side, to_server, ts, frame)

    def _handshakes(self, side, to_server, ts, frame) -> list[Message]:
        out = []
        buf = side.handshake
        while len(buf) >= 4 and not side.encrypted:
            msg_type = buf[0]
            length = buf[1] << 16 | buf[2] << 8 | buf[3]
            if length > MAX_HANDSHAKE:
                out.append(
                    self._message(
                        to_server,
                        ts,
                        frame,
                        "handshake",
                        msg_type,
                        "session",
                        {"msg_type": msg_type, "length": length},
                        status=malformed(
                            f"handshake message of {length} bytes exceeds "
                            f"{MAX_HANDSHAKE}; handshake of this side dropped"
                        ),
                    )
                )
                side.encrypted = True
                buf.clear()
                return out
            if len(buf) < 4 + length:
                break
            body = bytes(buf[4 : 4 + length])
            del buf[: 4 + length]
            message = self._handshake(to_server, msg_type, body, ts, frame)
            if message is not None:
                out.append(message)
            if msg_type == HandshakeType.server_hello and self._tls13:
                side.encrypted = True  # the rest of the server's handshake is encrypted
        return out

    def _handshake(self, to_server, msg_type, body, ts, frame) -> Message | None:
        try:
            if msg_type == HandshakeType.client_hello and to_server:
                return self._client_hello(CLIENT_HELLO.parse(body), ts, frame)
            if msg_type == HandshakeType.server_hello and not to_server:
                return self._server_hello(SERVER_HELLO.parse(body), ts, frame)
            if (
                msg_type == HandshakeType.certificate
                and not to_server
                and not self._tls13
            ):
                return self._certificate(CERTIFICATE_TLS12.parse(body), ts, frame)
        except (cs.ConstructError, ValueError, UnicodeDecodeError) as exc:
            name = _handshake_name(msg_type)
            return self._message(
                to_server,
                ts,
                frame,
                name,
                msg_type,
                "session",
                {"msg_type": msg_type, "length": len(body)},
                status=malformed(f"{name} not parsed: {exc}"[:300]),
            )
        return None

    def _client_hello(self, hello, ts, frame) -> Message:
        extensions = list(hello.extensions or ())
        types = [e.extension_type for e in extensions]
        sni = alpn = None
        groups: list[int] = []
        formats: list[int] = []
        signatures: list[int] = []
        versions: list[int] = []
        damaged: list[int] = []
        for ext in extensions:
            kind, data = ext.extension_type, ext.extension_data
            try:
                if kind == ExtensionType.server_name:
                    names = [
                        n.host_name
                        for n in SERVER_NAME_LIST.parse(data)
                        if n.name_type == 0
                    ]
                    sni = names[0].decode("ascii", "replace") if names else None
                elif kind == ExtensionType.supported_groups:
                    groups = list(NAMED_GROUP_LIST.parse(data))
                elif kind == ExtensionType.ec_point_formats:
                    formats = list(EC_POINT_FORMAT_LIST.parse(data))
                elif kind == ExtensionType.signature_algorithms:
                    signatures = list(SIGNATURE_SCHEME_LIST.parse(data))
                elif kind == ExtensionType.application_layer_protocol_negotiation:
                    alpn = [bytes(p) for p in PROTOCOL_NAME_LIST.parse(data)]
                elif kind == ExtensionType.supported_versions:
                    versions = list(CLIENT_SUPPORTED_VERSIONS.parse(data))
            except cs.ConstructError:
                # A damaged extension body: the rest of the hello is still good.
                damaged.append(kind)
        ciphers = list(hello.cipher_suites)
        full = ja3_string(hello.legacy_version, ciphers, types, groups, formats)
        offered = [v for v in versions if not is_grease(v)]
        version = max(offered) if offered else hello.legacy_version
        self._sni = sni
        fields = {
            "version": version,
            "version_name": _version_name(version),
            "legacy_version": hello.legacy_version,
            "sni": sni,
            "alpn": [p.decode("ascii", "replace") for p in alpn] if alpn else [],
            "cipher_suites": ciphers,
            "extensions": types,
            "supported_groups": groups,
            "ec_point_formats": formats,
            "signature_algorithms": signatures,
            "supported_versions": versions,
            "session_id": hello.legacy_session_id.hex(),
            "ja3_full": full,
            "ja3": ja3(full),
            "ja4": ja4(
                hello.legacy_version,
                versions,
                sni is not None,
                ciphers,
                types,
                alpn[0] if alpn else None,
                signatures,
            ),
        }
        if damaged:
            fields["damaged_extensions"] = damaged
        return self._message(
            True,
            ts,
            frame,
            "client_hello",
            1,
            "session",
            fields,
            {"tls_client_ja4": fields["ja4"]},
        )

    def _server_hello(self, hello, ts, frame) -> Message:
        extensions = list(hello.extensions or ())
        version = hello.legacy_version
        for ext in extensions:
            if ext.extension_type == ExtensionType.supported_versions:
                version = SERVER_SUPPORTED_VERSION.parse(ext.extension_data)
        self._tls13 = version == 0x0304
        fields = {
            "version": version,
            "version_name": _version_name(version),
            "legacy_version": hello.legacy_version,
            "cipher_suite": hello.cipher_suite,
            "extensions": [e.extension_type for e in extensions],
            "certificate_visible": not self._tls13,
            "sni": self._sni,
        }
        return self._message(False, ts, frame, "server_hello", 2, "session", fields)

    def _certificate(self, parsed, ts, frame) -> Message:
        chain = [
            summarise(bytes(der), self._sni)
            for der in parsed.certificate_list[:MAX_CERTIFICATES]
        ]
        fields = {
            "certificate": chain[0] if chain else None,
            "chain": chain,
            "certificates": len(parsed.certificate_list),
            "sni": self._sni,
        }
        identity = {}
        if chain and "subject" in chain[0]:
            identity["tls_certificate_subject"] = chain[0]["subject"]
        return self._message(
            False, ts, frame, "certificate", 11, "session", fields, identity
        )

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        # Bytes lost: record boundaries are gone; stop reading this direction.
        side = self._sides[to_server]
        side.records.clear()
        side.handshake.clear()
        side.dead = True
        return []

    def close(self, ts: float, frame: int) -> list[Message]:
        out = []
        for to_server, side in self._sides.items():
            if side.records and not side.dead:
                out.append(
                    self._message(
                        to_server,
                        ts,
                        frame,
                        "record",
                        None,
                        "other",
                        {"length": len(side.records)},
                        status=malformed(
                            f"flow ended inside a TLS record "
                            f"({len(side.records)} bytes left)"
                        ),
                    )
                )
            side.records.clear()
        return out


def _handshake_name(msg_type: int) -> str:
    try:
        return HandshakeType(msg_type).name
    except ValueError:
        return f"handshake_{msg_type}"
