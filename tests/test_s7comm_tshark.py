"""Checks that our S7comm dissector agrees with tshark on every frame both decode.

For each capture (the fixtures, every public capture under
``../shared/captures/s7comm`` and the S7comm flows of the captures filed
elsewhere that hold some, :data:`ELSEWHERE`), tshark and ``otdpi.read``
decode the same file. tshark's layers of a frame are grouped into units, one
per ``tpkt`` layer, each with the ``cotp`` and ``s7comm`` layers that follow
it. Units with an ``s7comm`` layer, and COTP connection requests and
confirms, are kept (a COTP DT segment that does not end a PDU is no unit on
either side; the CR and CC of S7comm-plus flows, whose TSAP is a
"SIMATIC-..." name, belong to the other dissector). Our S7comm messages of
the frame are paired with them in stream order. A frame agrees when it
holds as many units on both sides and every compared field is
equal; the test fails below 99.9 % and lists every differing frame.

What is compared
----------------
Always: ``tpkt.length``, ``cotp.type``, and for S7comm units the header
(``s7comm.header.rosctr``, ``pduref``, ``parlg``, ``datlg``, and ``errcls`` /
``errcod`` of acks). Further fields wherever our message decodes them
(:func:`our_view` lists them by tshark name): COTP EOT, references, TSAPs and
TPDU size; setup communication; item count, the syntax id of every item and
transport size, length, DB number, area, byte and bit address of S7ANY items;
return code, transport size and length of data items; the values of
read and write items (``s7comm.resp.data``); the userdata
parameter and data header (tshark's first return code, transport size and
length of a userdata unit); data item lengths in bytes, as tshark shows
them; SZL id, index, record length and count, order numbers of SZL 0x0011,
the names of SZL 0x001C, event and mode transition of SZL 0x0424, protection
levels and mode selector of SZL 0x0132 index 4; block lists (type, count);
block file names and their parts (identifier, type, number, file system),
upload ids, and PI service names.
Normalisations: tshark prints integers as decimal or ``0x..`` hex, both read
as integers; byte strings as ``aa:bb``, compared as lower-case hex; texts are
compared with trailing blanks stripped (tshark keeps the padding of
order numbers).

Frames tshark marks malformed are left out and counted, and so are the TCP
retransmissions tshark decodes a second time (the engine delivers each
stream byte once, so a retransmitted PDU is no message of ours).
Run ``pytest -s tests/test_s7comm_tshark.py`` to see the figures of each capture.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle

import otdpi
from otdpi.message import Message

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "captures"
# Captures filed under other protocols that hold S7comm flows too.
ELSEWHERE = (
    "s7commplus/icsnpp_s7comm_plus.pcap",
    "s7commplus/agentcarter_teb_mixed.pcapng",
    "attacks/qut_s7_changelowerthreshold_master.pcap",
    "attacks/qut_s7_changeupperthreshold_master.pcap",
    "attacks/qut_s7_conveyorbelton_flooding_hmi.pcap",
    "attacks/qut_s7_watertankonmanu_flooding_master.pcap",
    "modbus/iti_mb2_mixed_ot.pcap",
    "modbus/agentcarter_mixed_ot_1.pcapng",
)
CAPTURES = sorted(
    [*REPO.joinpath("fixtures").glob("s7comm*.pcap*")]
    + [*(SHARED / "s7comm").glob("*.pcap*")]
    + [SHARED / name for name in ELSEWHERE if (SHARED / name).exists()]
)
MIN_AGREEMENT = 0.999
MIN_SHARE_COMPARED = 0.9
LAYERS = ("tpkt", "cotp", "s7comm", "_ws.malformed")
DISPLAY_FILTER = "s7comm || cotp.type == 0x0e || cotp.type == 0x0d"
RETRANSMISSIONS = "tcp.analysis.retransmission || tcp.analysis.fast_retransmission"
ALWAYS = ("tpkt.length", "cotp.type")
ALWAYS_S7 = (
    "s7comm.header.rosctr",
    "s7comm.header.pduref",
    "s7comm.header.parlg",
    "s7comm.header.datlg",
)

# Fields that name the userdata data header in ours and, in tshark, also the
# items inside some userdata payloads (cyclic data, variable tables, alarms),
# which we keep raw.
USERDATA_HEAD_FIELDS = (
    "s7comm.data.returncode",
    "s7comm.data.transportsize",
    "s7comm.data.length",
)

# Fields that are bytes whatever they look like ("01" is one byte, not 1).
BYTES_FIELDS = frozenset({"s7comm.resp.data"})

needs_tshark = pytest.mark.skipif(not tshark_oracle.available(), reason="no tshark")


def _value(text: str) -> Any:
    if text.startswith("0x"):
        return int(text, 16)
    if text.isdigit():
        return int(text)
    if ":" in text and all(len(p) == 2 for p in text.split(":")):
        return text.replace(":", "").lower()
    return text.rstrip()


def tshark_units(frame: tshark_oracle.Frame) -> tuple[list[dict[str, list]], bool]:
    units: list[dict[str, list]] = []
    malformed = False
    for layer in frame.layers:
        if layer.name == "_ws.malformed":
            malformed = True
        elif layer.name == "tpkt":
            units.append({"_layers": ["tpkt"], **layer.fields})
        elif units:
            units[-1]["_layers"].append(layer.name)
            for key, values in layer.fields.items():
                units[-1].setdefault(key, []).extend(values)
    kept = [u for u in units if "s7comm" in u["_layers"] or _s7_connect(u)]
    return [
        {
            k: [_bytes(v) if k in BYTES_FIELDS else _value(v) for v in vs]
            for k, vs in u.items()
            if k != "_layers"
        }
        for u in kept
    ], malformed


def _bytes(text: str) -> str:
    return text.replace(":", "").lower()


def _s7_connect(unit: dict[str, list]) -> bool:
    # A CR or CC, unless its TSAP names S7comm-plus ("SIMATIC-...").
    if unit.get("cotp.type", [""])[0] not in ("0x0e", "0x0d", "14", "13"):
        return False
    tsaps = unit.get("cotp.src-tsap-bytes", []) + unit.get("cotp.dst-tsap-bytes", [])
    return not any(t.replace(":", "").startswith("53494d41544943") for t in tsaps)


def our_view(m: Message) -> dict[str, list]:
    """Our message as tshark field names -> values."""
    f = m.fields
    view: dict[str, list] = {"tpkt.length": [f["tpkt_length"]]}
    cotp = f.get("cotp", {})
    view["cotp.type"] = [cotp.get("tpdu_code")]
    if "eot" in cotp:
        view["cotp.eot"] = [int(cotp["eot"])]
    for ours, theirs in (
        ("source_reference", "cotp.srcref"),
        ("destination_reference", "cotp.destref"),
        ("calling_tsap", "cotp.src-tsap-bytes"),
        ("called_tsap", "cotp.dst-tsap-bytes"),
        ("tpdu_size", "cotp.tpdu_size"),
    ):
        if ours in cotp and cotp["tpdu_code"] != 0xF:
            view[theirs] = [cotp[ours]]
    if "rosctr" not in f:
        return view
    for key, name in (
        ("rosctr", "rosctr"),
        ("pdu_reference", "pduref"),
        ("parameter_length", "parlg"),
        ("data_length", "datlg"),
        ("error_class", "errcls"),
        ("error_code", "errcod"),
        ("redundancy_id", "redid"),
    ):
        if key in f:
            view[f"s7comm.header.{name}"] = [f[key]]
    simple = {
        "function": "s7comm.param.func",
        "max_amq_calling": "s7comm.param.maxamq_calling",
        "max_amq_called": "s7comm.param.maxamq_called",
        "pdu_length": "s7comm.param.pdu_length",
        "item_count": "s7comm.param.itemcount",
        "method": "s7comm.param.userdata.reqres1",
        "type": "s7comm.param.userdata.type",
        "function_group": "s7comm.param.userdata.funcgroup",
        "subfunction": "s7comm.param.userdata.subfunc",
        "sequence_number": "s7comm.param.userdata.seq_num",
        "userdata_parameter_length": "s7comm.param.userdata.length",
        "data_unit_reference": "s7comm.param.userdata.dataunitref",
        "last_data_unit": "s7comm.param.userdata.lastdataunit",
        "userdata_error_code": "s7comm.param.errcod",
        "filename": "s7comm.param.blockcontrol.filename",
        "block_length_string": "s7comm.param.blockcontrol.upl_lenstring",
        "pi_service": "s7comm.param.pistart.servicename",
    }
    if f.get("rosctr") == 7:
        simple["return_code"] = "s7comm.data.returncode"
        simple["transport_size"] = "s7comm.data.transportsize"
        simple["userdata_length"] = "s7comm.data.length"
    for key, name in simple.items():
        if key in f and f[key] is not None:
            value = f[key]
            view[name] = [_value(value) if isinstance(value, str) else value]
    if "parameter_head" in f:
        view["s7comm.param.userdata.head"] = [int(f["parameter_head"], 16)]
    if f.get("rosctr") == 7 and f.get("data_items"):
        view["userdata_items"] = []  # a marker for compare(), never in tshark
    items = f.get("items") if m.kind == "request" else None
    if items:
        view["s7comm.param.item.syntaxid"] = [i["syntax_id"] for i in items]
        any_items = [i for i in items if "area" in i]
        if any_items:
            for key, name in (
                ("transport_size", "transp_size"),
                ("length", "length"),
                ("db_number", "db"),
                ("area", "area"),
                ("byte_address", "address.byte"),
                ("bit_address", "address.bit"),
                ("number", "address.number"),
            ):
                values = [i[key] for i in any_items if key in i]
                if values:
                    view[f"s7comm.param.item.{name}"] = values
    data_items = f.get("data_items")
    if data_items:
        sized = [i for i in data_items if "length" in i]
        if f.get("rosctr") == 7:
            # Cyclic data: the userdata data header comes first in tshark's lists.
            head = [
                {
                    "return_code": f["return_code"],
                    "transport_size": f["transport_size"],
                    "length": f["userdata_length"],
                }
            ]
            data_items, sized = head + data_items, head + sized
        view["s7comm.data.returncode"] = [i["return_code"] for i in data_items]
        if sized:
            view["s7comm.data.transportsize"] = [i["transport_size"] for i in sized]
            # tshark shows the length in bytes where the wire counts bits.
            view["s7comm.data.length"] = [
                (i["length"] + 7) // 8
                if i["transport_size"] in (3, 4, 5)
                else i["length"]
                for i in sized
            ]
    if data_items and f.get("rosctr") in (1, 3) and f.get("function") in (4, 5):
        values = [i["data"] for i in data_items if i.get("data")]
        if values:
            view["s7comm.resp.data"] = values
    if "szl_id" in f and f["szl_id"] is not None and not f.get("fragment"):
        view["s7comm.data.userdata.szl_id"] = [f["szl_id"]]
        view["s7comm.data.userdata.szl_index"] = [f["szl_index"]]
    szl = f.get("szl") or {}
    if "record_length" in szl:
        view["s7comm.data.userdata.szl_id.partlist_len"] = [szl["record_length"]]
        view["s7comm.data.userdata.szl_id.partlist_cnt"] = [szl["record_count"]]
    records = [r for r in szl.get("records", []) if isinstance(r, dict)]
    if szl.get("szl_id", 0) & 0xFF == 0x11:
        view["s7comm.szl.xy11.0001.anz"] = [
            r["order_number"] for r in records if "order_number" in r
        ]
    if szl.get("szl_id") == 0x0424 and records:
        view["s7comm.szl.0424.0000.ereig"] = [r["event_id"] for r in records]
        view["s7comm.szl.0424.0000.bzu_id"] = [r["mode_transition"] for r in records]
    if szl.get("szl_id") == 0x0132 and szl.get("szl_index") == 4 and records:
        for key, name in (
            ("key_switch_protection_level", "key"),
            ("assigned_protection_level", "param"),
            ("valid_protection_level", "real"),
            ("mode_selector", "bart_sch"),
        ):
            view[f"s7comm.szl.0132.0004.{name}"] = [r[key] for r in records]
    if "blocks" in f:
        view["s7comm.blockinfo.blocktype"] = [
            _value(b["block_type"]) for b in f["blocks"]
        ]
        view["s7comm.blockinfo.block_count"] = [b["block_count"] for b in f["blocks"]]
    if f.get("rosctr") in (1, 3) and f.get("function") in range(0x1A, 0x20):
        for key, name in (
            ("file_identifier", "file_identifier"),
            ("block_type", "block_type"),
            ("block_number", "block_number"),
            ("destination_filesystem", "dest_filesys"),
            ("upload_id", "uploadid"),
        ):
            # File name parts are the request's; a response only echoes them.
            if key in f and (m.kind == "request" or key == "upload_id"):
                value = f[key]
                view[f"s7comm.data.blockcontrol.{name}"] = [
                    _value(value) if isinstance(value, str) else value
                ]
    if szl.get("szl_id", 0) & 0xFF == 0x1C:
        for index, name in (
            (1, "0001.name"),
            (2, "0002.name"),
            (5, "0005.serialn"),
            (7, "0007.cputypname"),
        ):
            values = [r["value"] for r in records if r.get("index") == index]
            if values:
                view[f"s7comm.szl.001c.{name}"] = values
    return view


def compare(theirs: dict[str, list], ours: dict[str, list]) -> list[str]:
    diffs = []
    always = ALWAYS + (ALWAYS_S7 if "s7comm.header.rosctr" in theirs else ())
    for key in always:
        if theirs.get(key) != ours.get(key):
            diffs.append(f"{key}: tshark {theirs.get(key)} ours {ours.get(key)}")
    userdata = theirs.get("s7comm.header.rosctr") == [7]
    for key, value in ours.items():
        if key in always or key not in theirs:
            continue
        mine = [v.rstrip() if isinstance(v, str) else v for v in value]
        seen = theirs[key]
        if userdata and key in USERDATA_HEAD_FIELDS and "userdata_items" not in ours:
            seen = seen[:1]  # the data header; tshark adds the items inside
        if seen != mine:
            diffs.append(f"{key}: tshark {theirs[key]} ours {mine}")
    return diffs


def agreement(path: Path) -> tuple[int, int, dict[int, list[str]], dict[str, int]]:
    frames = tshark_oracle.decode(tshark_oracle.request(path, LAYERS, DISPLAY_FILTER))
    resent = {f.number for f in tshark_oracle.decode(_retransmissions(path))}
    ours: dict[int, list[Message]] = defaultdict(list)
    for m in otdpi.read(path, protocols=["s7comm", "s7commplus"]):
        if (
            m.protocol == "s7comm"
            and m.fields.get("tpkt_length") is not None
            and (
                "rosctr" in m.fields
                or m.fields.get("cotp", {}).get("tpdu_code") in (0xE, 0xD)
            )
        ):
            ours[m.frame].append(m)
    compared = agreed = 0
    counts = {
        "tshark_malformed": 0,
        "tshark_only": 0,
        "tshark_frames": 0,
        "retransmissions": 0,
    }
    differing: dict[int, list[str]] = {}
    only: list[int] = []
    for frame in frames:
        units, malformed = tshark_units(frame)
        if not units:
            continue
        counts["tshark_frames"] += 1
        if malformed:
            counts["tshark_malformed"] += 1
            continue
        if frame.number in resent:
            counts["retransmissions"] += 1
            continue
        mine = ours.get(frame.number)
        if not mine:
            counts["tshark_only"] += 1
            only.append(frame.number)
            continue
        compared += 1
        if len(mine) != len(units):
            differing[frame.number] = [
                f"{len(units)} units in tshark, {len(mine)} ours"
            ]
            continue
        diffs = []
        for theirs, message in zip(units, mine):
            diffs += compare(theirs, our_view(message))
        if diffs:
            differing[frame.number] = diffs
        else:
            agreed += 1
    counts["tshark_only_frames"] = only[:20]
    return compared, agreed, differing, counts


def _retransmissions(path: Path) -> tshark_oracle.Request:
    return tshark_oracle.request(path, (), f"s7comm && ({RETRANSMISSIONS})")


@pytest.fixture(scope="module", autouse=True)
def _prefetch():
    if tshark_oracle.available():
        tshark_oracle.prefetch(
            tshark_oracle.request(p, LAYERS, DISPLAY_FILTER) for p in CAPTURES
        )
        tshark_oracle.prefetch(_retransmissions(p) for p in CAPTURES)


@needs_tshark
@pytest.mark.skipif(not CAPTURES, reason="no S7comm captures present")
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_s7comm_agrees_with_tshark(path: Path) -> None:
    compared, agreed, differing, counts = agreement(path)
    share = agreed / compared if compared else 0.0
    print(f"\n{path.name}: {agreed}/{compared} frames agree ({share:.4%}); {counts}")
    assert compared, f"{path.name}: no frame compared ({counts})"
    decodable = (
        counts["tshark_frames"] - counts["tshark_malformed"] - counts["retransmissions"]
    )
    assert compared >= MIN_SHARE_COMPARED * decodable, (
        f"{path.name}: only {compared} of {decodable} tshark frames compared"
    )
    listed = "\n".join(
        f"  frame {n}: {'; '.join(d)}" for n, d in sorted(differing.items())[:60]
    )
    assert share >= MIN_AGREEMENT, (
        f"{path.name}: {share:.4%} agreement, {len(differing)} frames differ:\n{listed}"
    )
