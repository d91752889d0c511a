"""Server certificate summaries with the ``cryptography`` X.509 parser."""

from __future__ import annotations

from typing import Any

# cryptography is imported when the first certificate is parsed, not with the
# plugin: every run loads every plugin, and most captures carry no certificate.


def _key(cert) -> tuple[str, int | None]:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    try:
        key = cert.public_key()
    except Exception:  # an unsupported or damaged key
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec-{key.curve.name}", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return type(key).__name__, None


def name_matches(pattern: str, host: str) -> bool:
    """Whether certificate name ``pattern`` (``*.`` wildcards too) covers ``host``."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and "." not in host[: -len(suffix)]
    return pattern == host


def summarise(der: bytes, sni: str | None = None) -> dict[str, Any]:
    """Subject, issuer, self-signed, validity, key and names of one DER certificate.

    A certificate the library cannot parse gives ``{"error": reason}``.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
    except Exception as exc:  # malformed DER must not stop the stream
        return {"error": f"certificate not parsed: {exc}"[:200], "length": len(der)}
    names: list[str] = []
    try:
        names = [
            a.value
            for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if isinstance(a.value, str)
        ]
    except Exception:
        pass
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [
            n for n in san.value.get_values_for_type(x509.DNSName) if n not in names
        ]
    except Exception:  # no SAN, or a damaged one
        pass
    key_type, key_bits = _key(cert)
    summary: dict[str, Any] = {
        "subject": subject,
        "issuer": issuer,
        "self_signed": cert.subject == cert.issuer,
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key_type": key_type,
        "key_bits": key_bits,
        "names": names[:32],
        "length": len(der),
    }
    if sni:
        summary["matches_sni"] = any(name_matches(n, sni) for n in names)
    return summary
