"""The Message envelope: the one protocol-neutral record every dissector emits.

Fingerprinting, the learner and the writers read only this record, never a wire
format. The records are named tuples rather than frozen dataclasses: they are
just as immutable and typed, and building one costs a sixth of the time, which
matters at a few hundred thousand messages per second.

Conventions every dissector keeps
---------------------------------
``kind``
    one of :data:`KINDS`.
``action``
    one of :data:`ACTIONS`, the normalised intent shared by all protocols.
``identity``
    attributes describing the *sender* of the message (``src``), for example a
    Modbus Read Device Identification response fills the server's ``vendor``.
``fields``
    plain JSON-serialisable values only (dict, list, str, int, float, bool,
    None); bytes are given as lower-case hex strings.
``status``
    :data:`STATUS_OK`, an ``exception`` status with the protocol's code and
    name, or a ``malformed`` status with a reason. A malformed record still
    carries whatever header fields could be read.
``findings``
    things that are legal to keep going with but wrong or odd on the wire (a
    coil written as 0x0001, a length field that disagrees with the payload).
"""

from __future__ import annotations

from typing import Any, NamedTuple

KINDS = ("request", "response", "unsolicited", "event")
ACTIONS = (
    "read",
    "write",
    "control",
    "program",
    "diagnose",
    "identify",
    "session",
    "data",
    "other",
)


class Endpoint(NamedTuple):
    """One end of a flow. ``mac`` is None where the link layer has none.

    ``ip`` and ``port`` are None for protocols carried straight over Ethernet
    (GOOSE and the like), whose ends are known by MAC alone.
    """

    ip: str | None
    port: int | None = None
    mac: str | None = None


class Target(NamedTuple):
    """A normalised addressed range: ``count`` objects from ``start`` in ``space``.

    ``space`` names the table, area or object group (``holding_registers``,
    ``DB12``, ``g30``...). ``start`` is the protocol's own 0-based address.
    """

    space: str
    start: int
    count: int


class Status(NamedTuple):
    """``state`` is ``ok``, ``exception`` or ``malformed``."""

    state: str
    code: int | None = None
    name: str | None = None
    reason: str | None = None


class Finding(NamedTuple):
    """An oddity on the wire: a short stable ``code`` and a sentence for people."""

    code: str
    detail: str


STATUS_OK = Status("ok")


def malformed(reason: str) -> Status:
    """A ``malformed`` status with the reason a reader needs to find the fault."""
    return Status("malformed", reason=reason)


class Message(NamedTuple):
    """One decoded protocol data unit, whatever the protocol.

    ``frame`` is the 1-based record index in the capture of the packet that
    completed the unit (as tshark numbers frames); ``flow`` is the engine's id of
    the flow it travelled on. ``service`` is the protocol's own operation name and
    ``service_code`` its numeric code.
    """

    ts: float
    frame: int
    flow: int
    src: Endpoint
    dst: Endpoint
    protocol: str
    kind: str
    service: str
    service_code: int | None
    action: str
    targets: tuple[Target, ...] = ()
    fields: dict[str, Any] = {}
    identity: dict[str, Any] = {}
    status: Status = STATUS_OK
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: endpoints, targets, status and findings as objects."""
        # Spelled out rather than through ``_asdict()``: this runs once per
        # message written by ``otdpi dissect``, and ``_asdict`` is the slower way.
        src, dst, status = self.src, self.dst, self.status
        if status is STATUS_OK:
            status_dict = {"state": "ok"}
        else:
            status_dict = {k: v for k, v in zip(Status._fields, status) if v is not None}
        return {
            "ts": self.ts,
            "frame": self.frame,
            "flow": self.flow,
            "src": {"ip": src.ip, "port": src.port, "mac": src.mac},
            "dst": {"ip": dst.ip, "port": dst.port, "mac": dst.mac},
            "protocol": self.protocol,
            "kind": self.kind,
            "service": self.service,
            "service_code": self.service_code,
            "action": self.action,
            "targets": [
                {"space": t.space, "start": t.start, "count": t.count}
                for t in self.targets
            ],
            "fields": self.fields,
            "identity": self.identity,
            "status": status_dict,
            "findings": [{"code": f.code, "detail": f.detail} for f in self.findings],
        }
