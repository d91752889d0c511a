"""TLS dissector: hellos, fingerprints (JA4 spec example), certificates, bad input."""

from __future__ import annotations

import datetime
import hashlib

import construct as cs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors.tls import TLSDissector
from dissectors.tls.definitions import (
    CERTIFICATE_TLS12,
    CLIENT_HELLO,
    CLIENT_SUPPORTED_VERSIONS,
    PROTOCOL_NAME_LIST,
    SERVER_HELLO,
    SERVER_NAME_LIST,
    SIGNATURE_SCHEME_LIST,
)
from dissectors.tls.fingerprints import is_grease, ja3, ja3_string, ja4
from dissectors.tls.x509 import name_matches
from otdpi.dissector import FlowContext
from otdpi.message import Endpoint

# The example of the JA4 technical description: Chrome's ClientHello.
JA4_CIPHERS = [
    0x1301,
    0x1302,
    0x1303,
    0xC02B,
    0xC02F,
    0xC02C,
    0xC030,
    0xCCA9,
    0xCCA8,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
]
JA4_EXTENSIONS = [
    0x001B,
    0x0000,
    0x0033,
    0x0010,
    0x4469,
    0x0017,
    0x002D,
    0x000D,
    0x0005,
    0x0023,
    0x0012,
    0x002B,
    0xFF01,
    0x000B,
    0x000A,
    0x0015,
]
JA4_SIGNATURES = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def _ext_body(kind: int) -> bytes:
    if kind == 0x0000:
        return SERVER_NAME_LIST.build([{"name_type": 0, "host_name": b"example.com"}])
    if kind == 0x0010:
        return PROTOCOL_NAME_LIST.build([b"h2", b"http/1.1"])
    if kind == 0x000D:
        return SIGNATURE_SCHEME_LIST.build(JA4_SIGNATURES)
    if kind == 0x002B:
        return CLIENT_SUPPORTED_VERSIONS.build([0x0A0A, 0x0304, 0x0303])
    return b""


def client_hello(ciphers, extensions) -> bytes:
    body = CLIENT_HELLO.build(
        {
            "legacy_version": 0x0303,
            "random": bytes(32),
            "legacy_session_id": b"",
            "cipher_suites": ciphers,
            "legacy_compression_methods": b"\x00",
            "extensions": [
                {"extension_type": e, "extension_data": _ext_body(e)}
                for e in extensions
            ],
        }
    )
    handshake = bytes([1]) + len(body).to_bytes(3, "big") + body
    return bytes([22, 3, 1]) + len(handshake).to_bytes(2, "big") + handshake


def _session() -> TLSDissector:
    flow = FlowContext(
        1, Endpoint("10.0.0.20", 50000), Endpoint("203.0.113.66", 6606), "tcp"
    )
    return TLSDissector(flow)


def test_ja4_matches_the_published_example():
    # GREASE values in the lists must not change the fingerprint.
    data = client_hello([0x2A2A] + JA4_CIPHERS, [0x3A3A] + JA4_EXTENSIONS)
    [message] = _session().feed(data, True, 1.0, 4)
    assert message.service == "client_hello"
    assert message.fields["ja4"] == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert message.fields["sni"] == "example.com"
    assert message.fields["alpn"] == ["h2", "http/1.1"]
    assert message.fields["version"] == 0x0304


def test_ja3_drops_grease_and_hashes_the_decimal_string():
    full = ja3_string(
        771, [0x0A0A, 4865, 4866], [0x1A1A, 0, 10, 11], [0x2A2A, 29, 23], [0]
    )
    assert full == "771,4865-4866,0-10-11,29-23,0"
    assert ja3(full) == hashlib.md5(full.encode()).hexdigest()
    assert all(is_grease(v) for v in (0x0A0A, 0xFAFA)) and not is_grease(0x0A0B)


def test_ja4_without_extensions_or_ciphers():
    assert (
        ja4(0x0301, [], False, [], [], None, [])
        == "t10i000000_000000000000_000000000000"
    )


def test_record_split_byte_by_byte_gives_the_same_message():
    data = client_hello(JA4_CIPHERS, JA4_EXTENSIONS)
    session = _session()
    out = []
    for i in range(len(data)):
        out += session.feed(data[i : i + 1], True, 1.0, i + 1)
    assert [m.fields["ja4"] for m in out] == ["t13d1516h2_8daaf6152771_e5627efa2ab1"]


def _self_signed(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_server_certificate_is_summarised():
    session = _session()
    session.feed(client_hello(JA4_CIPHERS[:3], [0x0000]), True, 1.0, 4)
    hello = SERVER_HELLO.build(
        {
            "legacy_version": 0x0303,
            "random": bytes(32),
            "legacy_session_id_echo": b"",
            "cipher_suite": 0xC02F,
            "legacy_compression_method": 0,
            "extensions": [],
        }
    )
    cert = CERTIFICATE_TLS12.build(
        {"certificate_list": [_self_signed("AsyncRAT Server")]}
    )
    handshakes = (
        b"\x02"
        + len(hello).to_bytes(3, "big")
        + hello
        + b"\x0b"
        + len(cert).to_bytes(3, "big")
        + cert
    )
    record = b"\x16\x03\x03" + len(handshakes).to_bytes(2, "big") + handshakes
    out = session.feed(record, False, 1.1, 6)
    assert [m.service for m in out] == ["server_hello", "certificate"]
    leaf = out[1].fields["certificate"]
    assert leaf["subject"] == leaf["issuer"] == "CN=AsyncRAT Server"
    assert leaf["self_signed"] is True
    assert leaf["key_type"] == "ec-secp256r1"
    assert leaf["matches_sni"] is False  # the client asked for example.com
    assert out[1].fields["sni"] == "example.com"


def test_tls13_certificate_is_not_visible():
    session = _session()
    hello = SERVER_HELLO.build(
        {
            "legacy_version": 0x0303,
            "random": bytes(32),
            "legacy_session_id_echo": b"",
            "cipher_suite": 0x1301,
            "legacy_compression_method": 0,
            "extensions": [{"extension_type": 43, "extension_data": b"\x03\x04"}],
        }
    )
    handshake = b"\x02" + len(hello).to_bytes(3, "big") + hello
    [message] = session.feed(
        b"\x16\x03\x03" + len(handshake).to_bytes(2, "big") + handshake, False, 1.0, 2
    )
    assert message.fields["version_name"] == "TLS 1.3"
    assert message.fields["certificate_visible"] is False


def test_probe():
    data = client_hello(JA4_CIPHERS, [])
    assert TLSDissector.probe(data[:6], True)
    assert TLSDissector.sender_is_client(data[:6]) is True
    assert not TLSDissector.probe(bytes.fromhex("000100000006010300000002"), True)


def test_name_matching():
    assert name_matches("*.example.com", "www.example.com")
    assert not name_matches("*.example.com", "a.b.example.com")
    assert name_matches("Example.com", "example.com.")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes_never_raise(data, whole):
    session = _session()
    if whole:
        session.feed(b"\x16\x03\x01" + data, True, 1.0, 1)
    else:
        for i in range(0, len(data), 1):
            session.feed(data[i : i + 1], bool(i % 2), 1.0, i)
    session.close(2.0, 99)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_mutated_hello_never_raises(position, garbage):
    data = bytearray(client_hello(JA4_CIPHERS, JA4_EXTENSIONS))
    position %= len(data)
    data[position : position + len(garbage)] = garbage
    session = _session()
    for message in session.feed(bytes(data), True, 1.0, 1):
        assert message.status.state in ("ok", "malformed")
    session.close(2.0, 2)


def test_construct_round_trip_of_the_client_hello():
    data = client_hello(JA4_CIPHERS, JA4_EXTENSIONS)
    parsed = CLIENT_HELLO.parse(data[9:])
    assert list(parsed.cipher_suites) == JA4_CIPHERS
    assert CLIENT_HELLO.build(parsed) == data[9:]
    assert isinstance(parsed, cs.Container)
