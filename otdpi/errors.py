"""The exception tree of otdpi, rooted at :class:`OtdpiError`.

::

    OtdpiError
    ├── CaptureError          a capture file cannot be opened or is not a capture
    ├── DissectError          bytes that cannot become a message
    │   ├── TruncatedError    more bytes are needed
    │   ├── MalformedError    the bytes contradict the standard
    │   └── UnsupportedError  valid, but not decoded yet
    ├── PluginError           a dissector plugin cannot be loaded or is unknown
    └── UsageError            a caller asked for something that cannot be done

Dissectors normally *return* malformed records instead of raising; these
exceptions are for the one-PDU API (:func:`otdpi.dissect`) and for I/O.
"""


class OtdpiError(Exception):
    """Root of every error otdpi raises on purpose."""


class CaptureError(OtdpiError):
    """A capture file cannot be opened, or does not hold a capture at all."""


class DissectError(OtdpiError):
    """Bytes that cannot become a message."""


class TruncatedError(DissectError):
    """The bytes end before the unit does."""


class MalformedError(DissectError):
    """The bytes contradict the standard."""


class UnsupportedError(DissectError):
    """Valid input that otdpi does not decode yet."""


class PluginError(OtdpiError):
    """A dissector plugin is unknown or fails to load."""


class UsageError(OtdpiError):
    """A request that cannot be carried out as asked."""
