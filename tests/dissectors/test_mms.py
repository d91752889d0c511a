"""MMS, ISO upper layers, GOOSE, RNRP: decoders against pyasn1, robustness, identity."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder

import otdpi
from dissectors import rnrp
from dissectors.goose import GooseDissector, decode_goose
from dissectors.iso_upper import asn1
from dissectors.iso_upper.ber import BerError, header
from dissectors.isotransport import classify_start
from dissectors.mms.decoding import data, decode_pdu
from dissectors.mms.iec61850 import ied_name, split_reference
from dissectors.mms.session import MmsDissector
from dissectors.rnrp import RnrpDissector, decode_rnrp
from otdpi.dissector import FlowContext
from otdpi.message import Endpoint

SHARED = Path(__file__).resolve().parents[3] / "shared" / "captures" / "mms"
CLIENT = Endpoint("10.0.0.1", 40000, "02:00:00:00:00:01")
SERVER = Endpoint("10.0.0.2", 102, "02:00:00:00:00:02")


def _flow(transport: str = "tcp", client=CLIENT, server=SERVER) -> FlowContext:
    return FlowContext(1, client, server, transport)


def _tpkt(user_data: bytes) -> bytes:
    """One TPKT with a class 0 DT (EOT) carrying ``user_data``."""
    return struct.pack(">BBH", 3, 0, 7 + len(user_data)) + b"\x02\xf0\x80" + user_data


def _dt(mms: bytes, context_id: int = 3) -> bytes:
    """GT + DT SPDUs, fully encoded presentation data around one MMS PDU."""
    pdv = b"\x02\x01" + bytes([context_id]) + _tlv(0xA0, mms)
    return b"\x01\x00\x01\x00" + _tlv(0x61, _tlv(0x30, pdv))


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    size = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


# --- the port-102 decision (the one change made in isotransport.py) -----------------


def test_classify_start_knows_mms_with_and_without_session_layer() -> None:
    assert classify_start(_tpkt(_dt(b"\xa0\x03\x02\x01\x01"))) == "mms"
    # MMS straight on COTP, as test tools send it: initiate request first.
    assert classify_start(_tpkt(bytes.fromhex("a80780020001810103"))) == "mms"
    assert classify_start(bytes.fromhex("0300000802f08032")) == "s7comm"


# --- the BER walker against pyasn1 --------------------------------------------------

flat_values = st.one_of(
    st.tuples(st.just("boolean"), st.booleans()),
    st.tuples(st.just("integer"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("unsigned"), st.integers(0, 2**32 - 1)),
    st.tuples(
        st.just("visible-string"),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    st.tuples(st.just("octet-string"), st.binary(max_size=40)),
)


def _asn1_flat(kind: str, value) -> asn1.FlatData:
    item = asn1.FlatData()
    item[kind] = value
    return item


def _ours(kind: str, value):
    name = kind.replace("-", "_")
    return {name: value.hex() if isinstance(value, bytes) else value}


@settings(max_examples=200, deadline=None)
@given(flat_values)
def test_basic_data_values_decode_as_pyasn1_encodes_them(pair) -> None:
    kind, value = pair
    encoded = encoder.encode(_asn1_flat(kind, value))
    ident, start, stop, _ = header(encoded, 0, len(encoded))
    assert data(encoded, ident, start, stop) == _ours(kind, value)


@settings(max_examples=100, deadline=None)
@given(st.lists(flat_values, max_size=12))
def test_structures_decode_as_pyasn1_encodes_them(pairs) -> None:
    value = asn1.Data()
    structure = value["structure"]
    for kind, item in pairs:
        structure.append(_asn1_flat(kind, item))
    encoded = encoder.encode(value)
    ident, start, stop, _ = header(encoded, 0, len(encoded))
    assert data(encoded, ident, start, stop) == {
        "structure": [_ours(k, v) for k, v in pairs]
    }


def test_identify_response_decodes_as_pyasn1_encodes_it() -> None:
    response = asn1.IdentifyResponse()
    response["vendorName"] = "ABB"
    response["modelName"] = "REF615"
    response["revision"] = "5.0 FP1"
    body = encoder.encode(response)[2:]  # the [2] IMPLICIT replaces the SEQUENCE tag
    pdu = _tlv(0xA1, b"\x02\x01\x07" + _tlv(0xA2, body))
    decoded = decode_pdu(pdu)
    assert decoded.service == "identify"
    assert decoded.invoke_id == 7
    assert (
        decoded.fields["vendor_name"],
        decoded.fields["model_name"],
        decoded.fields["revision"],
    ) == ("ABB", "REF615", "5.0 FP1")


def test_length_forms_agree() -> None:
    short = bytes.fromhex("a2060a01410a0142")  # structure of two visible strings
    long_form = bytes.fromhex("a281060a01410a0142")
    indefinite = bytes.fromhex("a2800a01410a01420000")
    decoded = [
        data(b, *header(b, 0, len(b))[:3]) for b in (short, long_form, indefinite)
    ]
    assert (
        decoded[0]
        == decoded[1]
        == decoded[2]
        == {"structure": [{"visible_string": "A"}, {"visible_string": "B"}]}
    )


def test_deep_nesting_is_malformed_not_a_recursion_error() -> None:
    deep = b"\x85\x01\x00"
    for _ in range(5000):
        deep = b"\xa2\x80" + deep + b"\x00\x00"
    with pytest.raises(BerError):
        data(deep, *header(deep, 0, len(deep))[:3])
    nested = b"\x85\x01\x00"
    for _ in range(200):
        nested = _tlv(0xA2, nested)
    read = _tlv(0xA1, b"\x02\x01\x01" + _tlv(0xA4, _tlv(0xA1, nested)))
    dissector = MmsDissector(_flow())
    [message] = dissector.feed(_tpkt(_dt(read)), False, 0.0, 1)
    assert message.status.state == "malformed"
    assert "deeper" in message.status.reason


# --- robustness: never an exception, a recursion error or a hang --------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_mms_feed_never_raises(payload: bytes, to_server: bool) -> None:
    dissector = MmsDissector(_flow())
    for blob in (_tpkt(_dt(payload)), _tpkt(payload), payload):
        for message in dissector.feed(blob, to_server, 0.0, 1):
            assert message.status.state in ("ok", "malformed", "exception")
    dissector.close(0.0, 2)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200))
def test_truncated_units_fed_byte_by_byte_never_raise(cut: int) -> None:
    path = SHARED / "iti_piccolo.pcap"
    blob = _tpkt(
        _dt(bytes.fromhex("a117810107a2128003414242810652454636313582023130"))
    )[:cut]
    dissector = MmsDissector(_flow())
    for i in range(len(blob)):
        dissector.feed(blob[i : i + 1], False, 0.0, 1)
    dissector.close(0.0, 2)
    assert path  # the capture is not needed; the point is no exception


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_goose_and_rnrp_never_raise(payload: bytes) -> None:
    goose = GooseDissector(
        _flow(
            "ethernet",
            Endpoint(None, None, "02:00:00:00:00:03"),
            Endpoint(None, None, "01:0c:cd:01:00:01"),
        )
    )
    for blob in (payload, b"\x30\x01\x00\x40\x00\x00\x00\x00" + payload):
        goose.feed(blob, True, 0.0, 1)
    RnrpDissector(_flow("udp")).feed(payload, True, 0.0, 1)


# --- GOOSE built from the ASN.1 definitions -----------------------------------------


def goose_frame(
    st_num: int, sq_num: int, ref: str = "IED1LD0/LLN0$GO$gcb01", appid: int = 0x3001
) -> bytes:
    """The bytes after the EtherType of one GOOSE frame, encoded with pyasn1."""
    pdu = asn1.IECGoosePdu()
    pdu["gocbRef"] = ref
    pdu["timeAllowedtoLive"] = 2000
    pdu["datSet"] = "IED1LD0/LLN0$DataSet1"
    pdu["goID"] = "IED1_GOOSE1"
    pdu["t"] = struct.pack(">IIxxxx", 1_700_000_000, 0)[:7] + b"\x0a"
    pdu["stNum"] = st_num
    pdu["sqNum"] = sq_num
    pdu["simulation"] = False
    pdu["confRev"] = 1
    pdu["ndsCom"] = False
    pdu["numDatSetEntries"] = 2
    values = pdu["allData"]
    for kind, value in (("boolean", st_num % 2 == 1), ("integer", sq_num)):
        item = asn1.Data()
        item[kind] = value
        values.append(item)
    apdu = encoder.encode(pdu)
    return struct.pack(">HHHH", appid, 8 + len(apdu), 0, 0) + apdu


def test_goose_decodes_header_and_apdu() -> None:
    fields = decode_goose(goose_frame(5, 7))
    assert fields["appid"] == 0x3001
    assert fields["gocb_ref"] == "IED1LD0/LLN0$GO$gcb01"
    assert (fields["st_num"], fields["sq_num"], fields["conf_rev"]) == (5, 7, 1)
    assert fields["all_data"] == [{"boolean": True}, {"integer": 7}]
    assert fields["t"]["seconds"] == 1_700_000_000


def test_goose_state_change_is_an_event_and_sequence_gap_a_finding() -> None:
    goose = GooseDissector(
        _flow(
            "ethernet",
            Endpoint(None, None, "02:00:00:00:00:03"),
            Endpoint(None, None, "01:0c:cd:01:00:01"),
        )
    )
    kinds = []
    findings = []
    for st_num, sq_num in ((1, 0), (1, 1), (1, 3), (2, 0)):
        [message] = goose.feed(goose_frame(st_num, sq_num), True, 0.0, 1)
        kinds.append(message.kind)
        findings.extend(f.code for f in message.findings)
    assert kinds == ["unsolicited", "unsolicited", "unsolicited", "event"]
    assert findings == ["sequence_gap"]


def test_goose_publisher_is_named_from_gocbref() -> None:
    goose = GooseDissector(
        _flow(
            "ethernet",
            Endpoint(None, None, "02:00:00:00:00:03"),
            Endpoint(None, None, "01:0c:cd:01:00:01"),
        )
    )
    [message] = goose.feed(
        goose_frame(1, 0, "AA1C1Q01A1LD0/LLN0$GO$gcb_A"), True, 0.0, 1
    )
    assert message.identity == {"ied_name": "AA1C1Q01A1", "role": "IED"}
    assert message.action == "data"


# --- IEC 61850 meaning --------------------------------------------------------------


def test_object_references_split() -> None:
    parts = split_reference("IED1LD0", "PHIPTOC1$ST$Op$general")
    assert parts == {
        "logical_device": "IED1LD0",
        "logical_node": "PHIPTOC1",
        "ln_class": "PTOC",
        "ln_prefix": "PHI",
        "ln_instance": "1",
        "functional_constraint": "ST",
        "data_object": "Op",
        "data_attributes": ["general"],
    }
    assert ied_name("IED_H10PROT") == "IED_H10"


# --- RNRP against its documented layout ---------------------------------------------


def rnrp_datagram(area: int, path: int, node: int, counter: int) -> bytes:
    return (
        bytes([1, 0, area, path]) + struct.pack(">HHI", node, 0, counter) + b"\x00" * 8
    )


def test_rnrp_documented_layout_and_redundant_pair() -> None:
    rnrp.forget_paths()
    fields = decode_rnrp(rnrp_datagram(1, 0, 21, 7))
    assert (
        fields["version"],
        fields["network_area"],
        fields["path"],
        fields["node_number"],
        fields["sequence_counter"],
    ) == (1, 1, 0, 21, 7)
    primary = RnrpDissector(
        _flow("udp", Endpoint("172.16.4.21", 2423), Endpoint("224.0.0.1", 2423))
    )
    secondary = RnrpDissector(
        _flow("udp", Endpoint("172.17.4.21", 2423), Endpoint("224.0.0.1", 2423))
    )
    [first] = primary.feed(rnrp_datagram(1, 0, 21, 7), True, 0.0, 1)
    assert first.identity["role"] == "ABB 800xA node"
    assert first.identity["rnrp_address"] == "1/21"
    assert not first.findings
    [second] = secondary.feed(rnrp_datagram(1, 1, 21, 7), True, 0.0, 2)
    assert second.identity["redundant_pair"] == "1/21 on paths 0 and 1"
    [odd] = primary.feed(rnrp_datagram(2, 0, 21, 3), True, 0.0, 3)
    assert {f.code for f in odd.findings} == {"address_plan_mismatch", "counter_reset"}
    rnrp.forget_paths()


# --- inventory on the public captures -----------------------------------------------

needs_captures = pytest.mark.skipif(
    not SHARED.is_dir(), reason="shared captures absent"
)


@needs_captures
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", ["iti_piccolo.pcap", "iti_iccp_tase2_8d7c7db0.pcap"])
def test_inventory_has_identify_answers(name: str) -> None:
    import subprocess

    done = subprocess.run(
        [
            "tshark",
            "-r",
            str(SHARED / name),
            "-Y",
            "mms.vendorName",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "mms.vendorName",
            "-e",
            "mms.modelName",
            "-e",
            "mms.revision",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = {tuple(line.split("\t")) for line in done.stdout.splitlines() if line}
    assert expected
    assets = {
        ip: a
        for a in otdpi.build_inventory([SHARED / name]).assets()
        for ip in a["ips"]
    }
    for ip, vendor, model, revision in expected:
        summary = assets[ip]["summary"]
        assert (summary["vendor"], summary["model"], summary["revision"]) == (
            vendor,
            model,
            revision,
        )


@needs_captures
@pytest.mark.parametrize(
    "name",
    [
        "emre_abb_ied600_h10_2.pcap",
        "emre_abb_ied600_h10_3.pcap",
        "emre_abb_ied600_circuit.pcap",
        "emre_abb_ied600_ogtra_mms1.pcap",
        "emre_abb_ied600_ogtra_mmsy.pcap",
    ],
)
def test_inventory_names_the_abb_relion_ied(name: str) -> None:
    assets = otdpi.build_inventory([SHARED / name]).assets()
    ied = [a for a in assets if a["summary"].get("vendor") == "ABB"]
    assert len(ied) == 1
    assert ied[0]["role"] == "IED"
    assert ied[0]["summary"]["model"] == "REF615"
    assert ied[0]["summary"]["device_type"] == "Relion 615 series IED"
    assert "protection" in ied[0]["summary"]["function"]


# --- the fixtures -------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_goose_fixture_has_one_state_change_and_one_gap() -> None:
    messages = list(otdpi.read(FIXTURES / "goose_asn1.pcap", protocols=["goose"]))
    assert len(messages) == 14
    events = [m for m in messages if m.kind == "event"]
    gaps = [f for m in messages for f in m.findings if f.code == "sequence_gap"]
    assert [m.fields["st_num"] for m in events] == [2]
    assert len(gaps) == 1
    assert {m.identity.get("ied_name") for m in messages if m.identity} == {
        "ABBIED1",
        "IED2",
    }
    assert any(m.fields["simulated_frame"] for m in messages)


def test_libiec61850_fixture_fingerprints_the_server() -> None:
    assets = otdpi.build_inventory([FIXTURES / "mms_libiec61850.pcap"]).assets()
    server = next(a for a in assets if "127.0.0.2" in a["ips"])
    summary = server["summary"]
    assert (summary["vendor"], summary["model"], summary["revision"]) == (
        "ABB",
        "REF615",
        "5.0 FP1",
    )
    assert summary["serial_number"] == "1VHR00012345"
    assert summary["hardware_revision"] == "1.2"
    assert server["role"] == "IED"
    messages = list(otdpi.read(FIXTURES / "mms_libiec61850.pcap", protocols=["mms"]))
    operate = [m for m in messages if m.action == "control" and m.kind == "request"]
    assert operate and operate[0].targets[0].space.endswith("XCBR1$CO$Pos$Oper")
    refused = [
        m
        for m in messages
        if m.service == "write"
        and m.kind == "response"
        and m.status.state == "exception"
    ]
    assert refused and refused[0].status.name == "object-access-denied"


def _first_aarq(path: Path) -> bytes:
    """The AARQ bytes of the first CN in a capture, cut out by the project's layers."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    from dissectors.iso_upper.presentation import parse_presentation
    from dissectors.iso_upper.session import parse_session

    for packet in rdpcap(str(path)):
        if TCP not in packet:
            continue
        payload = bytes(packet[TCP].payload)
        if (
            len(payload) > 8
            and payload[0] == 3
            and payload[5] == 0xF0
            and payload[7] == 13
        ):
            spdu = parse_session(payload[7:])
            ppdu = parse_presentation(spdu.user_data, spdu.spdu)
            return next(p.value for p in ppdu.pdvs if p.value[:1] == b"\x60")
    raise AssertionError(f"no CN in {path}")


@pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "mms_libiec61850.pcap",
        SHARED / "iti_piccolo.pcap",
        SHARED / "dina_acse_accept.pcap",
    ],
    ids=lambda p: p.name,
)
def test_aarq_fields_agree_with_pyasn1(path: Path) -> None:
    from pyasn1.codec.ber import decoder

    from dissectors.iso_upper.acse import parse_acse

    if not path.exists():
        pytest.skip("capture absent")
    raw = _first_aarq(path)
    theirs, rest = decoder.decode(raw, asn1Spec=asn1.AARQ())
    assert rest == b""
    ours = parse_acse(raw).fields
    assert ours["aso_context_name"] == str(theirs["aSO-context-name"])
    for name, key in (
        ("called-AP-title", "called_ap_title"),
        ("calling-AP-title", "calling_ap_title"),
    ):
        if theirs[name].isValue:
            assert ours[key] == str(theirs[name])
    for name, key in (
        ("called-AE-qualifier", "called_ae_qualifier"),
        ("calling-AE-qualifier", "calling_ae_qualifier"),
    ):
        if theirs[name].isValue:
            assert ours[key] == int(theirs[name])
    external = bytes(theirs["user-information"][0])
    assert parse_acse(raw).user_data in external


def test_mid_association_capture_is_still_decoded_as_mms() -> None:
    path = SHARED / "adsc_read.pcap"
    if not path.exists():
        pytest.skip("capture absent")
    messages = list(otdpi.read(path, protocols=["mms"]))
    reads = [m for m in messages if m.service == "read"]
    assert len(reads) == 4 and all(m.status.state == "ok" for m in reads)
    assert reads[0].targets


@pytest.mark.xfail(
    strict=True,
    reason="RNRP has no known magic number: the probe alone "
    "takes any datagram with version 1-2 and path 0-1",
)
def test_rnrp_probe_rejects_other_udp() -> None:
    dns_like = bytes.fromhex("0102010000010000000000000377777700")
    assert not RnrpDissector.probe(dns_like, True)


def test_rnrp_is_only_asked_about_its_own_port() -> None:
    from otdpi.registry import Selector

    dns_like = bytes.fromhex("0102010000010000000000000377777700")
    selector = Selector(plugins=[RnrpDissector])
    assert selector.choose("udp", 53, dns_like, True) is None
    assert selector.choose("udp", 2423, dns_like, True) is RnrpDissector


@st.composite
def nested_data(draw, depth: int = 0) -> bytes:
    """A Data value of random depth, each structure with a definite or indefinite
    length, in short or long form."""
    if depth > 40 or draw(st.integers(0, 2)) == 0:
        return b"\x85\x01" + bytes([draw(st.integers(0, 255))])
    items = b"".join(draw(st.lists(nested_data(depth + 1), min_size=1, max_size=2)))
    form = draw(st.sampled_from(["short", "long", "indefinite"]))
    if form == "indefinite":
        return b"\xa2\x80" + items + b"\x00\x00"
    if form == "long" or len(items) > 127:
        return b"\xa2\x84" + len(items).to_bytes(4, "big") + items
    return bytes([0xA2, len(items)]) + items


@settings(max_examples=200, deadline=None)
@given(nested_data(), st.integers(0, 400))
def test_nested_data_decodes_or_is_refused_never_crashes(blob: bytes, cut: int) -> None:
    for candidate in (blob, blob[:cut]):
        try:
            ident, start, stop, _ = header(candidate, 0, len(candidate))
            data(candidate, ident, start, stop)
        except BerError:
            pass
    read = _tlv(0xA1, b"\x02\x01\x01" + _tlv(0xA4, _tlv(0xA1, blob)))
    [message] = MmsDissector(_flow()).feed(_tpkt(_dt(read)), False, 0.0, 1)
    assert message.status.state in ("ok", "malformed")


def test_a_client_that_writes_settings_is_an_engineering_station() -> None:
    assets = otdpi.build_inventory([FIXTURES / "mms_libiec61850.pcap"]).assets()
    client = next(a for a in assets if "127.0.0.1" in a["ips"])
    assert client["role"] == "engineering station"  # it wrote XCBR1$CF$Pos$ctlModel
