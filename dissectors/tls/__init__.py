"""TLS metadata: record and handshake headers, hellos, JA3/JA4, server certificates."""

from dissectors.tls.session import TLSDissector

__all__ = ["TLSDissector"]
