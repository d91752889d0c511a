"""The MMS plugin: ISO stack above COTP, MMS PDUs, request matching and identity.

Strategy
--------
Each direction has an :class:`~dissectors.isotransport.IsoTransport`; every
complete COTP user data unit is one session SPDU (or GT+DT), whose user
data is one presentation PPDU, whose PDVs are ACSE APDUs or MMS PDUs. One
unit becomes one Message named after the innermost service it carries
(``initiate`` for CN+CP+AARQ+initiate-request, ``read`` for a DT with a read
request), with the outer layers' fields under ``session``,
``presentation`` and ``acse``. The presentation contexts negotiated in CP
say which PDV is ACSE and which MMS; a capture that starts mid-association
has none, and the PDV's own tag decides (ACSE APDUs are APPLICATION 0-4,
MMS PDUs context-specific), so it is still decoded as MMS. Confirmed
requests are remembered by invoke id until answered, so that a read
response names its variables and an error names its service; the types
servers give in getVariableAccessAttributes answers are remembered (a
bounded number) to read IEC 61850 name plates out of read responses.

Identity: the responder of an MMS association is the server ("IED" when it
speaks IEC 61850, "controller" when its model says so); the identify
response and name plates give vendor, model and revisions; logical-node
classes give the server's function. The client is "SCADA" unless it
programs, transfers files or writes settings ("engineering station"), or
names itself an OPC server in its ACSE implementation information.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dissectors.iso_upper.acse import parse_acse
from dissectors.iso_upper.ber import BerError
from dissectors.iso_upper.presentation import (
    ABSTRACT_SYNTAX_NAMES,
    parse_presentation,
    single_pdv,
)
from dissectors.iso_upper.session import parse_session, spdu_name
from dissectors.isotransport import IsoTransportDissector, Tpdu, TpduCode, classify_start
from dissectors.mms import iec61850
from dissectors.mms.decoding import DATA_ACCESS_ERRORS, Decoded, decode_pdu
from dissectors.mms.fingerprint import identity_from
from otdpi.dissector import FlowContext
from otdpi.message import STATUS_OK, Finding, Message, Status, Target, malformed

PROTOCOL = "mms"
MAX_PENDING = 256
MAX_TYPES = 1024
MAX_FUNCTIONS = 32
# One answer in this many repeats the server's function list (see _learn).
FUNCTION_CLAIM_EVERY = 8

_READ = frozenset(
    {
        "read",
        "get_name_list",
        "get_variable_access_attributes",
        "get_named_variable_list_attributes",
        "get_domain_attributes",
        "file_open",
        "file_read",
        "file_close",
        "file_directory",
        "obtain_file",
        "get_program_invocation_attributes",
        "read_journal",
        "get_capability_list",
        "get_event_condition_attributes",
        "get_alarm_summary",
    }
)
_WRITE = frozenset(
    {
        "write",
        "define_named_variable_list",
        "delete_named_variable_list",
        "rename",
        "file_delete",
        "file_rename",
        "define_named_variable",
        "delete_variable_access",
        "define_named_type",
        "delete_named_type",
        "write_journal",
        "initialize_journal",
        "create_journal",
        "delete_journal",
        "define_event_condition",
        "delete_event_condition",
        "define_event_action",
        "delete_event_action",
        "define_event_enrollment",
        "delete_event_enrollment",
    }
)
_PROGRAM = frozenset(
    {
        "initiate_download_sequence",
        "download_segment",
        "terminate_download_sequence",
        "initiate_upload_sequence",
        "upload_segment",
        "terminate_upload_sequence",
        "request_domain_download",
        "request_domain_upload",
        "load_domain_content",
        "store_domain_content",
        "delete_domain",
        "create_program_invocation",
        "delete_program_invocation",
    }
)
_CONTROL = frozenset(
    {
        "start",
        "stop",
        "resume",
        "reset",
        "kill",
        "take_control",
        "relinquish_control",
        "trigger_event",
        "output",
    }
)
_ENGINEERING = _PROGRAM | frozenset(
    {"file_open", "obtain_file", "file_delete", "file_rename", "delete_domain"}
)
_SETTING_FCS = frozenset({"SP", "SG", "SE", "CF"})
# Object names IEC 60870-6-503 (TASE.2) defines in every ICCP server.
_TASE2_NAMES = frozenset(
    {
        "Bilateral_Table_ID",
        "TASE2_Version",
        "Supported_Features",
        "Transfer_Set_Name",
        "DSConditions_Detected",
        "Next_DSTransfer_Set",
        "Transfer_Report_ACK",
        "Transfer_Report_NACK",
        "Event_Enrollment",
    }
)
_BROWSING = frozenset({"get_name_list", "get_variable_access_attributes"})
_REQUEST_PDUS = frozenset({0, 5, 8, 11})
_RESPONSE_PDUS = frozenset({1, 2, 6, 7, 9, 10, 12, 13, 4})
_ACSE_TAGS = frozenset({0x60, 0x61, 0x62, 0x63, 0x64})
_GT_DT = b"\x01\x00\x01\x00"

_new = tuple.__new__


def _access_error(code: int) -> str:
    return (
        DATA_ACCESS_ERRORS[code] if 0 <= code < len(DATA_ACCESS_ERRORS) else str(code)
    )


def looks_like_mms(data: bytes) -> bool:
    """The probe: the port-102 decision of :func:`classify_start` says MMS."""
    return classify_start(data) == PROTOCOL


def action_of(service: str, fields: dict[str, Any]) -> str:
    """The normalised action of an MMS service (a write to ``$CO$`` controls)."""
    if service == "write":
        for spec in fields.get("list_of_variable", ()):
            if "$CO$" in spec.get("item_id", ""):
                return "control"
        return "write"
    if service in _READ:
        return "read"
    if service in _WRITE:
        return "write"
    if service in _PROGRAM:
        return "program"
    if service in _CONTROL:
        return "control"
    if service in ("identify",):
        return "identify"
    if service in ("status", "unsolicited_status", "get_capability_list"):
        return "diagnose"
    if service in ("information_report", "event_notification"):
        return "data"
    if service in ("initiate", "conclude", "cancel", "reject"):
        return "session"
    return "other"


def _targets(specs: list[dict[str, Any]]) -> tuple[Target, ...]:
    found = []
    for spec in specs[:64]:
        if "item_id" in spec:
            found.append(
                Target(spec["domain_id"], 0, 1)
                if False
                else Target(f"{spec['domain_id']}/{spec['item_id']}", 0, 1)
            )
        elif "vmd_specific" in spec:
            found.append(Target(spec["vmd_specific"], 0, 1))
    return tuple(found)


class MmsDissector(IsoTransportDissector):
    """MMS over the ISO upper layers over COTP, one instance per flow."""

    name: ClassVar[str] = PROTOCOL
    default_ports: ClassVar[tuple[int, ...]] = (102,)
    probe_min_bytes: ClassVar[int] = 40
    state: ClassVar[str] = (
        "per direction TPKT framer and DT segments; presentation contexts; "
        "pending confirmed requests by invoke id; variable types; server facts"
    )

    def __init__(self, flow: FlowContext) -> None:
        super().__init__(flow)
        self.contexts: dict[int, str] = {}
        self.pending: dict[int, tuple[str, dict[str, Any]]] = {}
        self.types: dict[tuple[str, str], Any] = {}
        self.functions: set[str] = set()
        self.plate: dict[str, str] = {}
        self.speaks_61850 = False
        self.answers = 0
        self.server_role: str | None = None
        self.client_role: str | None = None

    @classmethod
    def probe(cls, data: bytes, to_server: bool) -> bool:
        return looks_like_mms(data)

    @classmethod
    def sender_is_client(cls, data: bytes) -> bool | None:
        # CR / CN / a confirmed request come from the client.
        if len(data) < 8 or data[0] != 3:
            return None
        code = data[5] >> 4
        if code == TpduCode.CR:
            return True
        if code == TpduCode.CC:
            return False
        start = 5 + data[4]
        if code == TpduCode.DT and len(data) > start:
            spdu = data[start]
            if spdu == 13:
                return True
            if spdu == 14:
                return False
        return None

    # -- feeding ------------------------------------------------------------------

    def _cotp(self, tpdu: Tpdu, to_server: bool, ts: float, frame: int) -> Message:
        fields = {"tpkt_length": tpdu.tpkt_length, "cotp": tpdu.fields}
        status = STATUS_OK if tpdu.error is None else malformed(tpdu.error)
        if "reassembly_error" in tpdu.fields:
            status = malformed(tpdu.fields["reassembly_error"])
        return self._message(
            to_server,
            ts,
            frame,
            f"cotp_{tpdu.type_name.lower()}",
            tpdu.code,
            "session",
            "request" if to_server else "response",
            fields,
            status=status,
        )

    # -- one COTP user data unit -----------------------------------------------------

    def _pdu(self, tpdu: Tpdu, data: bytes, to_server: bool, ts: float, frame: int
             ) -> Message:
        kind = "request" if to_server else "response"
        if data and data[0] & 0x80:
            # An MMS PDU straight on COTP, no session or presentation layer.
            try:
                decoded = decode_pdu(data)
            except BerError as exc:
                return self._message(
                    to_server,
                    ts,
                    frame,
                    "mms",
                    None,
                    "other",
                    kind,
                    {"bare": True},
                    status=malformed(f"MMS: {exc}"),
                )
            return self._mms(decoded, {"bare": True}, {}, to_server, ts, frame)
        if data[:4] == _GT_DT:
            fast = single_pdv(data, 4)
            if fast is not None and fast[1] and fast[1][0] not in _ACSE_TAGS:
                # GT + DT around one MMS PDU: the shape of nearly every unit.
                fields = {
                    "session": {"spdu": "DT", "types": [1, 1]},
                    "presentation": {
                        "ppdu": "user_data",
                        "user_data": "fully-encoded-data",
                        "context_ids": [fast[0]],
                    },
                }
                try:
                    decoded = decode_pdu(fast[1])
                except BerError as exc:
                    return self._message(
                        to_server,
                        ts,
                        frame,
                        "dt",
                        1,
                        "session",
                        kind,
                        fields,
                        status=malformed(f"MMS: {exc}"),
                    )
                return self._mms(decoded, fields, {}, to_server, ts, frame)
        spdu = parse_session(data)
        fields: dict[str, Any] = {
            "session": {
                "spdu": spdu_name(spdu.spdu),
                "types": spdu.types,
                **spdu.fields,
            }
        }
        if spdu.error is not None:
            return self._message(
                to_server,
                ts,
                frame,
                "session",
                spdu.spdu,
                "session",
                kind,
                fields,
                status=malformed(spdu.error),
            )
        service = spdu_name(spdu.spdu).lower()
        if not spdu.user_data:
            return self._message(
                to_server, ts, frame, service, spdu.spdu, "session", kind, fields
            )
        try:
            ppdu = parse_presentation(spdu.user_data, spdu.spdu)
        except BerError as exc:
            return self._message(
                to_server,
                ts,
                frame,
                service,
                spdu.spdu,
                "session",
                kind,
                fields,
                status=malformed(f"presentation: {exc}"),
            )
        pres = {"ppdu": ppdu.ppdu, **ppdu.fields}
        fields["presentation"] = pres
        for item in ppdu.fields.get("presentation_context_definition_list", ()):
            if len(self.contexts) < 64 and "presentation_context_identifier" in item:
                self.contexts[item["presentation_context_identifier"]] = (
                    ABSTRACT_SYNTAX_NAMES.get(item.get("abstract_syntax_name", ""), "")
                )
        pres["context_ids"] = [pdv.context_id for pdv in ppdu.pdvs]
        mms_pdu = None
        identity: dict[str, Any] = {}
        for pdv in ppdu.pdvs:
            value = pdv.value
            if not value:
                continue
            syntax = self.contexts.get(pdv.context_id) if pdv.context_id else None
            if syntax == "acse" or (not syntax and value[0] in _ACSE_TAGS):
                try:
                    acse = parse_acse(value)
                except BerError as exc:
                    return self._message(
                        to_server,
                        ts,
                        frame,
                        service,
                        spdu.spdu,
                        "session",
                        kind,
                        fields,
                        status=malformed(f"ACSE: {exc}"),
                    )
                fields["acse"] = {"apdu": acse.apdu, **acse.fields}
                service = acse.apdu
                info = acse.fields.get("implementation_information", "")
                if to_server and "opc" in info.lower():
                    self.client_role = "OPC server"
                    identity["role"] = "OPC server"
                if acse.user_data:
                    mms_pdu = acse.user_data
            else:
                mms_pdu = value
        if mms_pdu is None:
            return self._message(
                to_server,
                ts,
                frame,
                service,
                spdu.spdu,
                "session",
                kind,
                fields,
                identity,
            )
        try:
            decoded = decode_pdu(mms_pdu)
        except BerError as exc:
            return self._message(
                to_server,
                ts,
                frame,
                service,
                spdu.spdu,
                "session",
                kind,
                fields,
                identity,
                status=malformed(f"MMS: {exc}"),
            )
        return self._mms(decoded, fields, identity, to_server, ts, frame)

    # -- MMS --------------------------------------------------------------------------

    def _mms(
        self,
        decoded: Decoded,
        fields: dict[str, Any],
        identity: dict[str, Any],
        to_server: bool,
        ts: float,
        frame: int,
    ) -> Message:
        mms = decoded.fields
        fields["mms_pdu"] = decoded.pdu
        if decoded.invoke_id is not None:
            fields["invoke_id"] = decoded.invoke_id
        fields.update(mms)
        code = decoded.pdu_code
        kind = (
            "request"
            if code in _REQUEST_PDUS
            else "unsolicited"
            if code == 3
            else "response"
        )
        service = decoded.service
        findings: list[Finding] = []
        status = STATUS_OK
        request: dict[str, Any] | None = None
        if code == 0 and decoded.invoke_id is not None:
            if len(self.pending) >= MAX_PENDING:
                self.pending.pop(next(iter(self.pending)))
            self.pending[decoded.invoke_id] = (service, mms)
        elif code in (1, 2, 4) and decoded.invoke_id is not None:
            entry = self.pending.pop(decoded.invoke_id, None)
            if entry is not None:
                request = entry[1]
                if code != 1:
                    service = entry[0]
            elif code == 1:
                findings.append(
                    Finding(
                        "unmatched_response",
                        f"no request with invoke id {decoded.invoke_id} seen",
                    )
                )
        failures = (
            [
                r
                for r in mms.get("write_results", mms.get("list_of_access_result", ()))
                if "failure" in r
            ]
            if code == 1
            else []
        )
        if failures and len(failures) == len(
            mms.get("write_results", mms.get("list_of_access_result"))
        ):
            # Every variable refused: the request failed, as an error PDU says.
            first = failures[0]
            status = Status(
                "exception",
                first["failure"],
                first.get("failure_name") or _access_error(first["failure"]),
            )
        if code == 2:
            status = Status("exception", mms.get("error_code"), mms.get("error_class"))
        elif code == 4:
            status = Status("exception", mms.get("reject_code"), "reject")
        specs = (
            mms.get("list_of_variable") or (request or {}).get("list_of_variable") or ()
        )
        if request is not None and specs and "list_of_variable" not in mms:
            fields["variables"] = [
                "{}/{}".format(
                    s.get("domain_id", ""), s.get("item_id", s.get("vmd_specific", ""))
                )
                for s in specs[:256]
            ]
        action = action_of(service, request or mms)
        self._learn(service, code, mms, request, specs, to_server, identity)
        if code == 0 and to_server:
            if service in _ENGINEERING or (
                service == "write"
                and any(
                    f"${fc}$" in s.get("item_id", "")
                    for s in specs
                    for fc in _SETTING_FCS
                )
            ):
                if self.client_role != "engineering station":
                    self.client_role = "engineering station"
                    identity["role"] = "engineering station"
            if self.client_role == "engineering station":
                # Claimed on every later request, so that it outweighs the
                # "SCADA" claim made before the client showed its work.
                identity["role"] = "engineering station"
        return self._message(
            to_server,
            ts,
            frame,
            service,
            decoded.service_code,
            action,
            kind,
            fields,
            identity,
            status,
            tuple(findings),
            _targets(list(specs)),
        )

    def _learn(
        self,
        service: str,
        code: int,
        mms: dict[str, Any],
        request: dict[str, Any] | None,
        specs,
        to_server: bool,
        identity: dict[str, Any],
    ) -> None:
        """Server facts: identify answers, types, name plates, node classes."""
        if code in (0, 8) and to_server and self.client_role is None:
            # The initiator (or, caught mid-association, the first requester)
            # is a SCADA client until what it does says otherwise.
            self.client_role = "SCADA"
            identity["role"] = "SCADA"
        if code not in (1, 9):
            return
        # A response's sender is the server of that exchange, whichever side
        # opened the association (ICCP peers answer each other's requests).
        server_identity = identity
        if code == 9 and self.server_role is None:
            self.server_role = "IED"  # refined below when a model says otherwise
        if code == 1 and service == "identify":
            found = identity_from(
                mms.get("vendor_name"), mms.get("model_name"), mms.get("revision")
            )
            if "role" in found:
                self.server_role = found["role"]
            server_identity.update(found)
        if code == 1 and service == "get_name_list":
            names = mms.get("list_of_identifier", ())[:4096]
            # Bare logical-node names count once the server has shown itself
            # IEC 61850 (or this answer has 61850-shaped names beside them).
            trusted = self.speaks_61850 or any(
                iec61850.looks_like_61850(name) for name in names
            )
            for name in names:
                if trusted or iec61850.looks_like_61850(name):
                    self._note_class(name.split("$", 1)[0], server_identity)
            if any(name in _TASE2_NAMES for name in names):
                self._control_centre(server_identity)
        if code == 1 and service == "get_variable_access_attributes" and request:
            key = (
                request.get("domain_id", ""),
                request.get("item_id", request.get("vmd_specific", "")),
            )
            if len(self.types) < MAX_TYPES and "type_specification" in mms:
                self.types[key] = mms["type_specification"]
            self._note_class(key[1].split("$", 1)[0], server_identity)
        if code == 1 and service == "read" and specs:
            results = mms.get("list_of_access_result", ())
            leaves: dict[str, Any] = {}
            for spec, value in zip(specs, results):
                item = spec.get("item_id")
                if item is None or "failure" in value:
                    continue
                if self.speaks_61850 or iec61850.looks_like_61850(item):
                    self._note_class(item.split("$", 1)[0], server_identity)
                elif item in _TASE2_NAMES:
                    self._control_centre(server_identity)
                if "PhyNam" in item or "NamPlt" in item or item.endswith("$DC"):
                    type_spec = self._type_of(spec.get("domain_id", ""), item)
                    if type_spec is not None:
                        iec61850.named_leaves(value, type_spec, item, leaves)
                    else:
                        scalar = next(iter(value.values()), None)
                        if isinstance(scalar, str):
                            leaves[item] = scalar
                        else:
                            leaves.update(iec61850.positional_name_plate(item, value))
            plate = iec61850.name_plate(leaves)
            plate = {k: v for k, v in plate.items() if self.plate.get(k) != v}
            if plate and len(self.plate) < 64:
                if "software_revision" in plate and "revision" not in self.plate:
                    plate["revision"] = plate["software_revision"]
                self.plate.update(plate)
                found = identity_from(plate.get("vendor"), plate.get("model"), None)
                plate.update(found)
                if "role" in found:
                    self.server_role = found["role"]
                server_identity.update(plate)
        if self.functions and code == 1:
            self.answers += 1
            if service in _BROWSING or self.answers % FUNCTION_CLAIM_EVERY == 0:
                # Repeated (on browsing answers and every few others) so that
                # the fullest list becomes the claim seen most often once the
                # browsing is done; each change is claimed when it happens.
                server_identity["function"] = ", ".join(sorted(self.functions))
        if (
            self.server_role
            and "role" not in server_identity
            and code in (1, 9)
            and (service in ("identify", "initiate") or server_identity)
        ):
            server_identity["role"] = self.server_role

    def _type_of(self, domain: str, item: str) -> Any:
        parts = item.split("$")
        for cut in range(len(parts), 0, -1):
            type_spec = self.types.get((domain, "$".join(parts[:cut])))
            if type_spec is not None:
                return iec61850.type_at(type_spec, parts[cut:])
        return None

    def _control_centre(self, identity: dict[str, Any]) -> None:
        # ICCP / TASE.2 (IEC 60870-6) objects: the server is a control centre,
        # claimed on each such answer so that it outweighs the first guess.
        self.server_role = "SCADA"
        identity["role"] = "SCADA"
        identity["function"] = "ICCP (TASE.2) data exchange"

    def _note_class(self, ln_name: str, identity: dict[str, Any]) -> None:
        split = iec61850.split_logical_node(ln_name)
        ln_class = split.get("ln_class")
        if not ln_class:
            return
        self.speaks_61850 = True
        if self.server_role != "IED" and self.server_role is None:
            self.server_role = "IED"
            identity["role"] = "IED"
        function = iec61850.function_of(ln_class)
        if (
            function
            and function not in self.functions
            and len(self.functions) < MAX_FUNCTIONS
        ):
            self.functions.add(function)
            identity["function"] = ", ".join(sorted(self.functions))

    def _message(
        self,
        to_server: bool,
        ts: float,
        frame: int,
        service: str,
        code: int | None,
        action: str,
        kind: str,
        fields: dict[str, Any],
        identity: dict[str, Any] | None = None,
        status: Status = STATUS_OK,
        findings: tuple[Finding, ...] = (),
        targets: tuple = (),
    ) -> Message:
        src, dst = self.client_to_server if to_server else self.server_to_client
        return _new(
            Message,
            (
                ts,
                frame,
                self.flow.flow_id,
                src,
                dst,
                PROTOCOL,
                kind,
                service,
                code,
                action,
                targets,
                fields,
                identity or {},
                status,
                findings,
            ),
        )
