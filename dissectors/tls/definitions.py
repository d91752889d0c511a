"""TLS wire structures (RFC 8446 and RFC 5246) as construct definitions.

Covered: the record header (RFC 8446 section 5.1), the handshake header
(section 4), ClientHello and ServerHello (4.1.2, 4.1.3), the TLS 1.2
Certificate message (RFC 5246 section 7.4.2), and the bodies of the
extensions the fingerprints read: server_name (RFC 6066 section 3),
supported_groups and ec_point_formats (RFC 8422 section 5.1),
signature_algorithms (RFC 8446 4.2.3), ALPN (RFC 7301 section 3.1) and
supported_versions (RFC 8446 4.2.1). Record payloads after the handshake are
encrypted and are not parsed.
"""

from __future__ import annotations

import enum

import construct as cs


class ContentType(enum.IntEnum):
    """RFC 8446 section 5.1, ContentType."""

    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23
    heartbeat = 24


class HandshakeType(enum.IntEnum):
    """RFC 8446 section 4 and RFC 5246 section 7.4, HandshakeType."""

    hello_request = 0
    client_hello = 1
    server_hello = 2
    new_session_ticket = 4
    end_of_early_data = 5
    encrypted_extensions = 8
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    finished = 20
    certificate_status = 22
    key_update = 24


class ExtensionType(enum.IntEnum):
    """The IANA TLS ExtensionType values the dissector reads."""

    server_name = 0
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    application_layer_protocol_negotiation = 16
    supported_versions = 43


# RFC 8446 section 5.1: TLSPlaintext header.
RECORD_HEADER = cs.Struct(
    "content_type" / cs.Int8ub,
    "legacy_record_version" / cs.Int16ub,
    "length" / cs.Int16ub,
)

# RFC 8446 section 4: Handshake header (msg_type, uint24 length).
HANDSHAKE_HEADER = cs.Struct(
    "msg_type" / cs.Int8ub,
    "length" / cs.Int24ub,
)

EXTENSION = cs.Struct(
    "extension_type" / cs.Int16ub,
    "extension_data" / cs.Prefixed(cs.Int16ub, cs.GreedyBytes),
)

_EXTENSIONS = cs.Optional(cs.Prefixed(cs.Int16ub, cs.GreedyRange(EXTENSION)))

# RFC 8446 section 4.1.2 (and RFC 5246 7.4.1.2, where extensions may be absent).
CLIENT_HELLO = cs.Struct(
    "legacy_version" / cs.Int16ub,
    "random" / cs.Bytes(32),
    "legacy_session_id" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes),
    "cipher_suites" / cs.Prefixed(cs.Int16ub, cs.GreedyRange(cs.Int16ub)),
    "legacy_compression_methods" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes),
    "extensions" / _EXTENSIONS,
)

# RFC 8446 section 4.1.3.
SERVER_HELLO = cs.Struct(
    "legacy_version" / cs.Int16ub,
    "random" / cs.Bytes(32),
    "legacy_session_id_echo" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes),
    "cipher_suite" / cs.Int16ub,
    "legacy_compression_method" / cs.Int8ub,
    "extensions" / _EXTENSIONS,
)

# RFC 5246 section 7.4.2: certificate_list of DER certificates, uint24 lengths.
CERTIFICATE_TLS12 = cs.Struct(
    "certificate_list"
    / cs.Prefixed(cs.Int24ub, cs.GreedyRange(cs.Prefixed(cs.Int24ub, cs.GreedyBytes))),
)

# Extension bodies.
SERVER_NAME_LIST = cs.Prefixed(
    cs.Int16ub,
    cs.GreedyRange(
        cs.Struct(
            "name_type" / cs.Int8ub,
            "host_name" / cs.Prefixed(cs.Int16ub, cs.GreedyBytes),
        )
    ),
)
NAMED_GROUP_LIST = cs.Prefixed(cs.Int16ub, cs.GreedyRange(cs.Int16ub))
EC_POINT_FORMAT_LIST = cs.Prefixed(cs.Int8ub, cs.GreedyRange(cs.Int8ub))
SIGNATURE_SCHEME_LIST = cs.Prefixed(cs.Int16ub, cs.GreedyRange(cs.Int16ub))
PROTOCOL_NAME_LIST = cs.Prefixed(
    cs.Int16ub, cs.GreedyRange(cs.Prefixed(cs.Int8ub, cs.GreedyBytes))
)
CLIENT_SUPPORTED_VERSIONS = cs.Prefixed(cs.Int8ub, cs.GreedyRange(cs.Int16ub))
SERVER_SUPPORTED_VERSION = cs.Int16ub
