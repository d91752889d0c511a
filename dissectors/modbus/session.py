"""The Modbus/TCP plugin: probing, framing, request/response matching, Messages.

Strategy
--------
Each direction of a flow has its own :class:`~otdpi.framing.Framer`, which
cuts the byte stream at MBAP lengths, so several ADUs in one segment, an ADU
split over many segments and junk between ADUs all come out the same way.
Each framed ADU is decoded by the fast path if it has a common, regular
shape and by the construct definitions otherwise. Requests are remembered by
(transaction id, unit id) until their response arrives, because a response
alone does not say which addresses it carries: read responses take their
address and quantity from the request, and coil bit lists are cut to the
quantity asked for. Nothing here raises on traffic: junk, truncation and
contradictions become ``malformed`` messages or findings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dissectors.modbus.decoding import (
    Decoded,
    byte_count_finding,
    decode_with_construct,
)
from dissectors.modbus.definitions import (
    EXCEPTION_BIT,
    MAX_LENGTH,
    MBAP_SIZE,
    MIN_LENGTH,
    FunctionCode,
    function_name,
)
from dissectors.modbus.fastpath import REQUEST_DECODERS, RESPONSE_DECODERS
from otdpi.dissector import Dissector, FlowContext
from otdpi.errors import MalformedError, TruncatedError
from otdpi.framing import Framer, Skipped, end_reports, gap_report
from otdpi.message import (
    STATUS_OK,
    Endpoint,
    Finding,
    Message,
    Status,
    Target,
    malformed,
)

PROTOCOL = "modbus"

# Named tuples build through a generated Python __new__; tuple.__new__ with
# every field in order skips that call and halves the cost of the two records
# made per ADU. A test pins the field counts this relies on.
_new = tuple.__new__

MAX_ADU = 6 + MAX_LENGTH  # the MBAP length counts everything after itself
MIN_ADU = 6 + MIN_LENGTH


# --- Probing and framing -------------------------------------------------------

# The least PDU size each function code can have in either direction, so a
# header whose length could not hold its function code is refused. The
# direction is not trusted here: mid-stream the engine may guess it wrong.
_MIN_PDU_SIZE = {
    1: 2, 2: 2, 3: 2, 4: 2,  # a response's byte count
    5: 5, 6: 5, 15: 5, 16: 5,  # address and a word, both directions
    8: 3, 20: 2, 21: 2, 22: 7, 23: 2, 24: 3, 43: 2,
    **{code | EXCEPTION_BIT: 2 for code in range(128)},
}  # fmt: skip


def measure_adu(buf: bytes, pos: int) -> int:
    """The framer's test: the size of the ADU starting at ``pos``, 0 or -1.

    A position starts an ADU when its protocol id is 0, its length lies in
    2..254 and its function code is not 0; see
    :mod:`otdpi.framing` for what 0 and -1 mean.
    """
    available = len(buf) - pos
    if available >= 8:
        if buf[pos + 2] or buf[pos + 3]:
            return -1
        length = buf[pos + 4] << 8 | buf[pos + 5]
        if length < MIN_LENGTH or length > MAX_LENGTH or not buf[pos + 7]:
            return -1
        return length + 6
    # Too short to be sure, but a non-zero protocol id or an impossible length
    # already rules the position out, so trailing junk is reported at once.
    if available >= 4 and (buf[pos + 2] or buf[pos + 3]):
        return -1
    if (
        available >= 6
        and not MIN_LENGTH <= (buf[pos + 4] << 8 | buf[pos + 5]) <= MAX_LENGTH
    ):
        return -1
    return 0


def looks_like_modbus(data: bytes) -> bool:
    """Whether the first bytes a side sent are Modbus/TCP ADUs (the probe).

    The protocol id must be 0 and the length 2..254 (the standard's 260-byte
    ADU, see :data:`~dissectors.modbus.definitions.MAX_LENGTH`); the unit id
    may be anything; the function code must not be 0 and the length must hold
    its smallest PDU. When ``data`` holds more than one ADU, each following
    header must pass too (as far as it is present). This turns away TLS
    (16 03 01 ..), HTTP ("GET /"), DCERPC and NFS record marks, whose bytes
    2 and 3 are not both zero, and junk that happens to begin with zeros.
    """
    size = len(data)
    if size < 8:
        return False
    pos = 0
    for _ in range(8):
        if data[pos + 2] or data[pos + 3]:
            return False
        length = data[pos + 4] << 8 | data[pos + 5]
        code = data[pos + 7]
        if not MIN_LENGTH <= length <= MAX_LENGTH or code == 0:
            return False
        if length - 1 < _MIN_PDU_SIZE.get(code, 1):
            return False
        pos += 6 + length
        remaining = size - pos
        if remaining <= 0:
            return True
        if remaining < 8:
            # A partial next header: check what of it there is.
            return not any(data[pos + 2 : pos + 4]) and (
                remaining < 6
                or MIN_LENGTH <= (data[pos + 4] << 8 | data[pos + 5]) <= MAX_LENGTH
            )
    return True



def request_or_response(adu: bytes) -> bool | None:
    """Whether a whole ADU's shape is a request's (True) or a response's (False).

    None when both shapes fit or the function code is one whose request and
    response look alike (5, 6, 8...). Only lengths and byte counts are used:
    a read request's PDU is always 5 bytes, a read response's byte count
    covers the rest of it, a multiple-write response echoes 5 bytes.
    """
    if len(adu) < 9:
        return None
    code = adu[7]
    if code & EXCEPTION_BIT:
        return False
    pdu_size = len(adu) - 7
    counted = adu[8] == pdu_size - 2  # a byte count covering the rest
    if code in (1, 2, 3, 4):
        request = pdu_size == 5
    elif code in (15, 16):
        request = len(adu) >= 13 and adu[12] == pdu_size - 6
        counted = pdu_size == 5
    elif code == 23:
        request = len(adu) >= 17 and adu[16] == pdu_size - 10
    elif code == 43:
        # Read Device Identification: a 4-byte request (devices pad it
        # with a byte), a response of 7 bytes or more before its objects.
        request = pdu_size in (4, 5) and adu[8] == 14
        counted = pdu_size >= 7 and adu[8] == 14
    else:
        return None
    if request == counted:
        return None
    return request


def sender_is_client(data: bytes) -> bool | None:
    """Whether the side that sent ``data`` (whole ADUs first) is the client.

    Each of up to 16 leading ADUs votes through :func:`request_or_response`;
    None on a tie or when no ADU says.
    """
    vote = 0
    pos = 0
    for _ in range(16):
        size = measure_adu(data, pos)
        if size <= 0 or pos + size > len(data):
            break
        shape = request_or_response(data[pos : pos + size])
        if shape is not None:
            vote += 1 if shape else -1
        pos += size
    return None if vote == 0 else vote > 0

# --- Service names, actions, targets ---------------------------------------------

_F = FunctionCode
_READS = {1, 2, 3, 4, 20, 24}
_WRITES = {5, 6, 15, 16, 21, 22, 23}
_DIAGNOSTICS = {7, 8, 11, 12}
_CONTROL_SUB_FUNCTIONS = {1, 4}  # restart communications, force listen only mode


def _plain_action(code: int) -> str:
    if code in _READS:
        return "read"
    if code in _WRITES:
        return "write"
    if code in _DIAGNOSTICS:
        return "diagnose"
    if code == _F.REPORT_SERVER_ID:
        return "identify"
    # Limitation: UMAS (90) carries Schneider PLC program download, start and
    # stop, but its payload is not decoded, so it stays action "other" with raw
    # data. Decode the UMAS function byte to tell program and control apart.
    return "other"


# Service name and action by function code (0 to 127), except 8 and 43, whose
# sub-function or MEI type refines them.
_DESCRIPTIONS = [(function_name(code), _plain_action(code)) for code in range(128)]
_UNKNOWN_HIGH = [(f"unknown_function_{code}", "other") for code in range(128, 256)]
_PLAIN_DESCRIPTIONS = _DESCRIPTIONS + _UNKNOWN_HIGH  # by code, 0 to 255
_REFINED = frozenset({int(_F.DIAGNOSTICS), int(_F.ENCAPSULATED_INTERFACE_TRANSPORT)})


def describe(code: int, detail: dict[str, Any] | None) -> tuple[str, str]:
    """Service name and action of function ``code`` (exception bit cleared).

    ``detail`` holds the fields that refine functions 8 and 43 (the message's
    own, or its request's for an exception response); None when unknown.
    """
    if code == _F.ENCAPSULATED_INTERFACE_TRANSPORT:
        mei_type = detail.get("mei_type") if detail else None
        if mei_type == 14:
            return "read_device_identification", "identify"
        if mei_type == 13:
            return "canopen_general_reference", "other"
        return "encapsulated_interface_transport", "other"
    if code == _F.DIAGNOSTICS:
        sub_function = detail.get("sub_function") if detail else None
        if sub_function in _CONTROL_SUB_FUNCTIONS:
            return "diagnostics", "control"
        return "diagnostics", "diagnose"
    if code < 128:
        return _DESCRIPTIONS[code]
    return _UNKNOWN_HIGH[code - 128]


def _range_targets(space: str):
    def targets(fields: dict[str, Any]) -> tuple[Target, ...]:
        quantity = fields.get("quantity")
        if quantity is None:  # an unmatched read response does not know
            return ()
        return (_new(Target, (space, fields["address"], quantity)),)

    return targets


def _single_targets(space: str):
    def targets(fields: dict[str, Any]) -> tuple[Target, ...]:
        return (_new(Target, (space, fields["address"], 1)),)

    return targets


def _read_write_targets(fields: dict[str, Any]) -> tuple[Target, ...]:
    found = []
    if "read_quantity" in fields:
        found.append(
            Target("holding_registers", fields["read_address"], fields["read_quantity"])
        )
    if "write_quantity" in fields:
        found.append(
            Target(
                "holding_registers", fields["write_address"], fields["write_quantity"]
            )
        )
    return tuple(found)


def _fifo_targets(fields: dict[str, Any]) -> tuple[Target, ...]:
    if "address" not in fields:
        return ()
    return (Target("fifo", fields["address"], 1),)


def _file_targets(fields: dict[str, Any]) -> tuple[Target, ...]:
    # A file record is named by two numbers; one "start" holds both, file
    # number in the high 16 bits and record number in the low 16, so ranges
    # from different files never overlap. The count is in registers.
    return tuple(
        Target(
            "file_records",
            sub["file_number"] << 16 | sub["record_number"],
            sub["record_length"],
        )
        for sub in fields["sub_requests"]
        if "file_number" in sub
    )


_TARGETS = {
    1: _range_targets("coils"),
    2: _range_targets("discrete_inputs"),
    3: _range_targets("holding_registers"),
    4: _range_targets("input_registers"),
    5: _single_targets("coils"),
    6: _single_targets("holding_registers"),
    15: _range_targets("coils"),
    16: _range_targets("holding_registers"),
    20: _file_targets,
    21: _file_targets,
    22: _single_targets("holding_registers"),
    23: _read_write_targets,
    24: _fifo_targets,
}


# --- What a response learns from its request -------------------------------------


def _merge_read_bits(fields: dict[str, Any], request: dict[str, Any]) -> list[Finding]:
    quantity = request["quantity"]
    fields["address"] = request["address"]
    fields["quantity"] = quantity
    # Padding bits of the last byte are not coils; the request says how many are.
    fields["bits"] = fields["bits"][:quantity]
    expected = (quantity + 7) // 8
    if fields["byte_count"] != expected:
        return [
            byte_count_finding(fields["byte_count"], expected, "the request's coils")
        ]
    return []


def _merge_read_registers(
    fields: dict[str, Any], request: dict[str, Any]
) -> list[Finding]:
    quantity = request["quantity"]
    fields["address"] = request["address"]
    fields["quantity"] = quantity
    if fields["byte_count"] != quantity * 2:
        return [
            byte_count_finding(
                fields["byte_count"], quantity * 2, "the request's registers"
            )
        ]
    return []


def _merge_read_write(fields: dict[str, Any], request: dict[str, Any]) -> list[Finding]:
    quantity = request["read_quantity"]
    fields["read_address"] = request["read_address"]
    fields["read_quantity"] = quantity
    if fields["byte_count"] != quantity * 2:
        return [
            byte_count_finding(
                fields["byte_count"], quantity * 2, "the request's registers"
            )
        ]
    return []


def _merge_fifo(fields: dict[str, Any], request: dict[str, Any]) -> list[Finding]:
    fields["address"] = request["address"]
    return []


def _merge_file_records(
    fields: dict[str, Any], request: dict[str, Any]
) -> list[Finding]:
    # Sub-responses come in the order of the sub-requests that asked for them.
    for sub, asked in zip(fields["sub_requests"], request["sub_requests"]):
        sub["file_number"] = asked["file_number"]
        sub["record_number"] = asked["record_number"]
        sub["record_length"] = asked["record_length"]
    return []


_MERGES = {
    1: _merge_read_bits,
    2: _merge_read_bits,
    3: _merge_read_registers,
    4: _merge_read_registers,
    20: _merge_file_records,
    23: _merge_read_write,
    24: _merge_fifo,
}

# Read Device Identification object ids as fingerprint attribute names.
_IDENTITY_KEYS = {
    0x00: "vendor",
    0x01: "product_code",
    0x02: "revision",
    0x03: "vendor_url",
    0x04: "product_name",
    0x05: "model",
    0x06: "application_name",
    **{object_id: f"private_0x{object_id:02x}" for object_id in range(0x80, 0x100)},
}


def _identity(code: int, fields: dict[str, Any]) -> dict[str, Any]:
    if code == _F.ENCAPSULATED_INTERFACE_TRANSPORT and "objects" in fields:
        found = {}
        for obj in fields["objects"]:
            key = _IDENTITY_KEYS.get(obj["id"])
            value = obj["value"].strip(" \t\r\n\x00")
            if key and value:
                found[key] = value
        return found
    if code == _F.REPORT_SERVER_ID:
        return {"modbus_server_id": fields["server_id"]}
    return {}


# --- The plugin --------------------------------------------------------------------


class ModbusDissector(Dissector):
    """Modbus/TCP (MBAP) dissector plugin, one instance per flow.

    Attributes
    ----------
    max_pending
        how many unanswered requests a flow remembers; beyond it the oldest is
        forgotten, so a server that never answers cannot grow memory.
    evicted_requests
        how many requests were forgotten that way.
    """

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    default_ports: ClassVar[tuple[int, ...]] = (502,)
    probe_min_bytes: ClassVar[int] = 8
    state: ClassVar[str] = (
        "a framer per direction and unanswered requests by (transaction id, unit id)"
    )
    max_pending: ClassVar[int] = 4096

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self._framers = {
            True: Framer(measure_adu, MAX_ADU),
            False: Framer(measure_adu, MAX_ADU),
        }
        self._pending: dict[
            tuple[int, int], tuple[int, dict[str, Any], int, float]
        ] = {}
        self.evicted_requests = 0
        self._flow_id = flow.flow_id

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        """Whether ``data`` starts with Modbus/TCP ADUs; see :func:`looks_like_modbus`."""
        return looks_like_modbus(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        """Requests or responses by shape; see :func:`sender_is_client`."""
        return sender_is_client(data)

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        """Frame and decode the next bytes of one direction."""
        framer = self._framers[to_server]
        # Most segments carry exactly one whole ADU; with nothing buffered the
        # framer would hand it back unchanged, so skip its bookkeeping. This
        # is measure_adu() written out, for the segment's first header.
        size = len(data)
        if (
            not framer.pending
            and MIN_ADU <= size <= MAX_ADU
            and not data[2]
            and not data[3]
            and (data[4] << 8 | data[5]) + 6 == size
            and data[7]
        ):
            return [self._decode(data, to_server, ts, frame)]
        out = []
        for unit in framer.feed(data):
            if unit.__class__ is Skipped:
                out.append(self._skipped(unit, to_server, ts, frame))
            else:
                out.append(self._decode(unit, to_server, ts, frame))
        return out

    def gap(self, to_server: bool, ts: float, frame: int) -> list[Message]:
        """Drop the partial ADU of a direction that lost bytes; report it if any."""
        report = gap_report(self._framers[to_server], "ADU")
        if report is None:
            return []
        dropped, reason = report
        return [
            self._unframed(to_server, ts, frame, {"dropped_bytes": dropped}, reason)
        ]

    def close(self, ts: float, frame: int) -> list[Message]:
        """Report bytes left in unfinished ADUs, one message per direction."""
        out = [
            self._unframed(to_server, ts, frame, {"buffered_bytes": left}, reason)
            for to_server, left, reason in end_reports(self._framers, "ADU")
        ]
        self._pending.clear()
        return out

    # -- one framed ADU ---------------------------------------------------------

    def _decode(self, adu: bytes, to_server: bool, ts: float, frame: int) -> Message:
        try:
            decoder = (REQUEST_DECODERS if to_server else RESPONSE_DECODERS).get(adu[7])
            decoded = decoder(adu) if decoder is not None else None
            if decoded is None:
                decoded = decode_with_construct(adu, to_server)
            if to_server:
                return self._request(decoded, ts, frame)
            return self._response(decoded, ts, frame)
        except Exception as exc:  # noqa: BLE001
            # A safety net for our own bugs: one bad ADU must not end the
            # capture. Tests assert this finding never appears.
            return self._unframed(
                to_server,
                ts,
                frame,
                {"data": bytes(adu).hex()},
                f"internal dissector error: {type(exc).__name__}: {exc}",
                (Finding("dissector_error", repr(exc)),),
            )

    def _request(self, decoded: Decoded, ts: float, frame: int) -> Message:
        fields, findings, problem = decoded
        code = fields["function_code"]
        if code in _REFINED:
            service, action = describe(code, fields)
        else:
            service, action = _PLAIN_DESCRIPTIONS[code]
        src, dst = self.client_to_server
        if problem is not None:
            return _new(Message, (
                ts, frame, self._flow_id, src, dst, PROTOCOL, "request", service, code,
                action, (), fields, {}, malformed(problem), findings,
            ))  # fmt: skip

        pending = self._pending
        if len(pending) >= self.max_pending:
            del pending[next(iter(pending))]
            self.evicted_requests += 1
        pending[fields["transaction_id"], fields["unit_id"]] = (code, fields, frame, ts)

        targets_of = _TARGETS.get(code)
        targets = targets_of(fields) if targets_of is not None else ()
        return _new(Message, (
            ts, frame, self._flow_id, src, dst, PROTOCOL, "request", service, code,
            action, targets, fields, {}, STATUS_OK, findings,
        ))  # fmt: skip

    def _response(self, decoded: Decoded, ts: float, frame: int) -> Message:
        fields, findings, problem = decoded
        code = fields["function_code"]
        # Every code 0x80..0xFF is an exception response. 0x80 names function
        # 0, which no request has, but pymodbus answers unknown functions so
        # and tshark reads it as an exception too.
        base = code & 0x7F if code >= EXCEPTION_BIT else code
        is_exception = base != code and problem is None
        src, dst = self.server_to_client
        if problem is not None:
            service, action = describe(base, fields)
            return _new(Message, (
                ts, frame, self._flow_id, src, dst, PROTOCOL, "response", service,
                base, action, (), fields, {}, malformed(problem), findings,
            ))  # fmt: skip

        # Request/response matching.
        request = self._pending.pop((fields["transaction_id"], fields["unit_id"]), None)
        asked = None
        if request is None:
            fields["matched"] = False
        elif request[0] != base:
            fields["matched"] = False
            findings += (
                Finding(
                    "function_code_mismatch",
                    f"response with function {code} carries the transaction id of "
                    f"a function {request[0]} request (frame {request[2]})",
                ),
            )
        else:
            asked = request[1]
            fields["matched"] = True
            fields["response_to_frame"] = request[2]
            fields["response_time"] = round(ts - request[3], 9)
            merge = _MERGES.get(code)
            if merge is not None:
                extra = merge(fields, asked)
                if extra:
                    findings += tuple(extra)

        if is_exception:
            service, action = describe(base, asked)
            status = Status(
                "exception", fields["exception_code"], fields["exception_name"]
            )
            return _new(Message, (
                ts, frame, self._flow_id, src, dst, PROTOCOL, "response", service,
                base, action, (), fields, {}, status, findings,
            ))  # fmt: skip

        if base in _REFINED:
            service, action = describe(base, fields)
        else:
            service, action = _PLAIN_DESCRIPTIONS[base]
        targets_of = _TARGETS.get(base)
        targets = targets_of(fields) if targets_of is not None else ()
        identity = _identity(base, fields) if base in (17, 43) else {}
        return _new(Message, (
            ts, frame, self._flow_id, src, dst, PROTOCOL, "response", service, base,
            action, targets, fields, identity, STATUS_OK, findings,
        ))  # fmt: skip

    # -- bytes that are not a whole ADU -----------------------------------------

    def _skipped(
        self, skipped: Skipped, to_server: bool, ts: float, frame: int
    ) -> Message:
        reason = (
            f"skipped {skipped.size} bytes that start no MBAP header (protocol id 0, "
            f"length {MIN_LENGTH}..{MAX_LENGTH}, non-zero function code)"
        )
        return self._unframed(
            to_server, ts, frame, {"skipped_bytes": skipped.size}, reason
        )

    def _unframed(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        fields: dict[str, Any],
        reason: str,
        findings: tuple[Finding, ...] = (),
    ) -> Message:
        src, dst = self.endpoints(to_server)
        kind = "request" if to_server else "response"
        return Message(
            ts, frame, self._flow_id, src, dst, PROTOCOL, kind, "unknown", None,
            "other", (), fields, {}, malformed(reason), findings,
        )  # fmt: skip


_NOWHERE = Endpoint("0.0.0.0")
_LONE_FLOW = FlowContext(0, _NOWHERE, _NOWHERE, "tcp")


def dissect_adu(
    adu: bytes, to_server: bool, ts: float = 0.0, frame: int = 0
) -> Message:
    """Decode one whole Modbus/TCP ADU without a flow.

    Parameters
    ----------
    adu
        exactly one ADU, MBAP header included.
    to_server
        True for a request (client to server), False for a response.
    ts, frame
        copied into the message.

    Returns
    -------
    Message
        the decoded ADU; a response is unmatched, since there is no request.

    Raises
    ------
    TruncatedError
        ``adu`` ends before the length its header declares.
    MalformedError
        ``adu`` does not start with an MBAP header, or has bytes after the ADU.
    """
    adu = bytes(adu)
    size = measure_adu(adu, 0)
    if size == 0 or size > len(adu):
        wanted = f"{size} bytes" if size > 0 else "at least 8 bytes"
        raise TruncatedError(f"modbus: ADU needs {wanted}, got {len(adu)}")
    if size < 0:
        raise MalformedError(
            f"modbus: no MBAP header at offset 0 (protocol id 0, length "
            f"{MIN_LENGTH}..{MAX_LENGTH}, non-zero function code): {adu[: MBAP_SIZE + 1].hex()}"
        )
    if size < len(adu):
        raise MalformedError(
            f"modbus: {len(adu) - size} bytes follow the {size}-byte ADU"
        )
    return ModbusDissector(_LONE_FLOW).feed(adu, to_server, ts, frame)[0]
