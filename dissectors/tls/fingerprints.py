"""JA3 and JA4 client fingerprints of a parsed ClientHello.

JA3 (Salesforce, 2017): md5 of ``version,ciphers,extensions,groups,point_formats``,
each list in decimal joined by ``-``, GREASE values (RFC 8701) removed.
JA4 (FoxIO, TLS over TCP only here): ``t`` + version + ``d``/``i`` + cipher and
extension counts + ALPN first/last characters, then truncated sha256 of the
sorted ciphers, and of the sorted extensions (SNI and ALPN left out) followed by
the signature algorithms in their order.
"""

from __future__ import annotations

import hashlib


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def ja3_string(version: int, ciphers, extensions, groups, point_formats) -> str:
    """The JA3 full string, GREASE removed."""

    def dec(values) -> str:
        return "-".join(str(v) for v in values if not is_grease(v))

    return ",".join(
        (str(version), dec(ciphers), dec(extensions), dec(groups), dec(point_formats))
    )


def ja3(full: str) -> str:
    """md5 hex of a JA3 full string."""
    return hashlib.md5(full.encode("ascii")).hexdigest()


_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _alpn_chars(first: bytes | None) -> str:
    if not first:
        return "00"
    if _alnum(first[0]) and _alnum(first[-1]):
        return chr(first[0]) + chr(first[-1])
    text = first.hex()
    return text[0] + text[-1]


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def ja4(
    legacy_version: int,
    supported_versions,
    has_sni: bool,
    ciphers,
    extensions,
    first_alpn: bytes | None,
    signature_algorithms,
    transport: str = "t",
) -> str:
    """The JA4 fingerprint of a ClientHello (``transport`` t, q or d)."""
    versions = [v for v in supported_versions or () if not is_grease(v)]
    version = _JA4_VERSIONS.get(max(versions) if versions else legacy_version, "00")
    ciphers = [c for c in ciphers if not is_grease(c)]
    extensions = [e for e in extensions if not is_grease(e)]
    head = (
        f"{transport}{version}{'d' if has_sni else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}"
        f"{_alpn_chars(first_alpn)}"
    )
    cipher_hash = (
        _hash12(",".join(f"{c:04x}" for c in sorted(ciphers)))
        if ciphers
        else "000000000000"
    )
    kept = sorted(e for e in extensions if e not in (0x0000, 0x0010))
    if kept:
        text = ",".join(f"{e:04x}" for e in kept)
        signatures = [s for s in signature_algorithms or () if not is_grease(s)]
        if signatures:
            text += "_" + ",".join(f"{s:04x}" for s in signatures)
        extension_hash = _hash12(text)
    else:
        extension_hash = "000000000000"
    return f"{head}_{cipher_hash}_{extension_hash}"
