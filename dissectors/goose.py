"""IEC 61850-8-1 GOOSE (EtherType 0x88B8): header, APDU, state and sequence tracking.

Each frame carries APPID, length, two reserved words (the first holds the
simulation bit since edition 2) and a BER ``goosePdu`` [APPLICATION 1]:
gocbRef, timeAllowedtoLive, datSet, goID, t, stNum, sqNum, simulation
(named test in edition 1), confRev, ndsCom, numDatSetEntries and allData,
whose values use the MMS Data encoding. A publisher repeats the same state
with a rising sqNum and raises stNum (resetting sqNum) when a value
changes: a new stNum is reported as an ``event``, a jump in sqNum within
one state as a ``sequence_gap`` finding. The publishing IED's name is read
from the logical device of gocbRef.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dissectors.iso_upper.ber import BerError, boolean, header, text, unsigned
from dissectors.mms.decoding import data_list, utc_time
from dissectors.mms.iec61850 import ied_name, split_reference
from otdpi.dissector import Dissector, FlowContext
from otdpi.message import STATUS_OK, Finding, Message, Status, malformed

PROTOCOL = "goose"
ETHERTYPE = 0x88B8
HEADER_SIZE = 8
MAX_CONTROL_BLOCKS = 64
SQNUM_MODULUS = 1 << 32

_new = tuple.__new__

# goosePdu field tags (context, primitive unless noted) and their names.
_FIELDS = {
    0x80: "gocb_ref",
    0x81: "time_allowed_to_live",
    0x82: "dat_set",
    0x83: "go_id",
    0x84: "t",
    0x85: "st_num",
    0x86: "sq_num",
    0x87: "simulation",
    0x88: "conf_rev",
    0x89: "nds_com",
    0x8A: "num_dat_set_entries",
    0xAB: "all_data",
    0x8C: "security",
}


def decode_goose(frame: bytes) -> dict[str, Any]:
    """Decode the bytes after the EtherType. Raises :class:`BerError` when broken."""
    if len(frame) < HEADER_SIZE:
        raise BerError(f"GOOSE header needs {HEADER_SIZE} bytes, {len(frame)} here")
    appid = frame[0] << 8 | frame[1]
    length = frame[2] << 8 | frame[3]
    reserved1 = frame[4] << 8 | frame[5]
    reserved2 = frame[6] << 8 | frame[7]
    fields: dict[str, Any] = {
        "appid": appid,
        "length": length,
        "reserved1": reserved1,
        "reserved2": reserved2,
        "simulated_frame": bool(reserved1 & 0x8000),
    }
    if length < HEADER_SIZE or length > len(frame):
        raise BerError(
            f"GOOSE length {length} disagrees with the {len(frame)}-byte frame"
        )
    ident, start, stop, _ = header(frame, HEADER_SIZE, length)
    if ident != 0x61:
        raise BerError(f"goosePdu of tag 0x{ident:x}, [APPLICATION 1] expected")
    pos = start
    while pos < stop:
        tag, s, e, pos = header(frame, pos, stop)
        name = _FIELDS.get(tag)
        if name in ("gocb_ref", "dat_set", "go_id"):
            fields[name] = text(frame, s, e)
        elif name in (
            "time_allowed_to_live",
            "st_num",
            "sq_num",
            "conf_rev",
            "num_dat_set_entries",
        ):
            fields[name] = unsigned(frame, s, e)
        elif name in ("simulation", "nds_com"):
            fields[name] = boolean(frame, s, e)
        elif name == "t":
            fields["t"] = utc_time(frame, s, e)
        elif name == "all_data":
            fields["all_data"] = data_list(frame, s, e)
        elif name == "security":
            fields["security"] = frame[s:e].hex()
        else:
            fields.setdefault("unknown_fields", []).append(f"0x{tag:x}")
    return fields


class GooseDissector(Dissector):
    """GOOSE frames of one (source MAC, destination MAC) conversation."""

    name: ClassVar[str] = PROTOCOL
    transports: ClassVar[tuple[str, ...]] = ("ethernet",)
    ethertypes: ClassVar[tuple[int, ...]] = (ETHERTYPE,)
    probe_min_bytes: ClassVar[int] = 1
    state: ClassVar[str] = "last stNum and sqNum per control block (gocbRef)"

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.states: dict[str, tuple[int, int]] = {}
        self.named: set[str] = set()

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return len(data) >= HEADER_SIZE + 2 and data[HEADER_SIZE] == 0x61

    def feed(
        self, data: bytes, to_server: bool, ts: float, frame: int
    ) -> list[Message]:
        src, dst = self.endpoints(to_server)
        findings: list[Finding] = []
        identity: dict[str, Any] = {}
        kind = "unsolicited"
        try:
            fields = decode_goose(data)
        except BerError as exc:
            return [
                _new(
                    Message,
                    (
                        ts,
                        frame,
                        self.flow.flow_id,
                        src,
                        dst,
                        PROTOCOL,
                        kind,
                        "goose",
                        None,
                        "data",
                        (),
                        {"size": len(data)},
                        {},
                        malformed(str(exc)),
                        (),
                    ),
                )
            ]
        status: Status = STATUS_OK
        ref = fields.get("gocb_ref")
        st_num, sq_num = fields.get("st_num"), fields.get("sq_num")
        if ref and st_num is not None and sq_num is not None:
            last = self.states.get(ref)
            if last is not None:
                last_st, last_sq = last
                if st_num != last_st:
                    kind = "event"
                    fields["previous_st_num"] = last_st
                elif sq_num != (last_sq + 1) % SQNUM_MODULUS and sq_num != last_sq:
                    findings.append(
                        Finding(
                            "sequence_gap",
                            f"sqNum went from {last_sq} to {sq_num} "
                            f"within stNum {st_num}",
                        )
                    )
            if ref in self.states or len(self.states) < MAX_CONTROL_BLOCKS:
                self.states[ref] = (st_num, sq_num)
        if ref:
            fields["reference"] = split_reference(None, ref)
            if ref not in self.named and len(self.named) < MAX_CONTROL_BLOCKS:
                self.named.add(ref)
                device = fields["reference"].get("logical_device", ref.split("/")[0])
                identity = {"ied_name": ied_name(device), "role": "IED"}
        if "gocb_ref" not in fields or "all_data" not in fields:
            status = malformed("goosePdu lacks gocbRef or allData")
        return [
            _new(
                Message,
                (
                    ts,
                    frame,
                    self.flow.flow_id,
                    src,
                    dst,
                    PROTOCOL,
                    kind,
                    "goose",
                    fields.get("appid"),
                    "data",
                    (),
                    fields,
                    identity,
                    status,
                    tuple(findings),
                ),
            )
        ]
