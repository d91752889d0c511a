"""Checks that the MMS and GOOSE dissectors agree with tshark on the frames both decode.

For each capture (the MMS fixtures and every public capture under
``../shared/captures/mms``), tshark and ``otdpi.read`` decode the same file.
A frame is compared when tshark shows an ``mms`` or ``acse`` layer (or a
``goose`` layer) and we emitted an MMS PDU or ACSE APDU (a GOOSE message)
for it; tshark decodes no MMS in an association whose CP it did not see,
we do, and those frames are counted apart. A frame agrees when every
compared field holds the same values in the same order; the test fails
below 99.9 % and lists every differing frame.

What is compared
----------------
Session: every SPDU type (``ses.type``). Presentation: the context
identifiers of the definition list and of the PDVs (as a sorted list).
ACSE: application context name, result, AP titles and AE qualifiers
(form 2). MMS: invoke id, confirmed service request/response tag,
identify's vendor, model and revision, every domain-specific name
(``mms.domainId``, ``mms.itemId``), and for read, write and information
report frames the Data choice of every value (``mms.success`` for the
values of access results, ``mms.Data`` for the others) and the integer,
unsigned, boolean and visible-string values. GOOSE: every header and
goosePdu field, the Data choice of every allData value and the booleans.

Run ``pytest -s tests/test_mms_tshark.py`` to see the figures of each capture.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle

import otdpi
from dissectors.mms.decoding import DATA_TYPES
from otdpi.message import Message

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "captures" / "mms"
CAPTURES = sorted(
    [*REPO.joinpath("fixtures").glob("mms*.pcap*"), *SHARED.glob("*.pcap*")]
)
GOOSE_CAPTURES = [
    p
    for p in CAPTURES
    if p.name
    in (
        "ct_ge_multilin_goose_mms.pcapng",
        "iti_sample_mms_and_goose.pcap",
        "emre_abb_ied600_ogtra_iedscout.pcap",
        "emre_abb_ied600_ogtra_mmsy.pcap",
    )
] + sorted(REPO.joinpath("fixtures").glob("goose*.pcap*"))
MIN_AGREEMENT = 0.999
MMS_LAYERS = ("ses", "pres", "acse", "mms")
DATA_TAGS = {name: tag for tag, name in DATA_TYPES.items()}
VALUE_SERVICES = frozenset({"read", "write", "information_report"})

needs_tshark = pytest.mark.skipif(
    not tshark_oracle.available(), reason="tshark not installed"
)


def _int(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _walk_names(node: Any, out: dict[str, list]) -> None:
    if isinstance(node, dict):
        if "item_id" in node and "domain_id" in node:
            out["mms.domainId"].append(node["domain_id"])
            out["mms.itemId"].append(node["item_id"])
        for key, value in node.items():
            if key not in ("list_of_access_result", "list_of_data"):
                _walk_names(value, out)
    elif isinstance(node, list):
        for item in node:
            _walk_names(item, out)


def _walk_data(value: dict, out: dict[str, list], top_field: str | None) -> None:
    for name, item in value.items():
        if name not in DATA_TAGS:
            continue
        tag = str(DATA_TAGS[name])
        out[top_field or "mms.Data"].append(tag)
        if name in ("structure", "array"):
            for element in item:
                _walk_data(element, out, None)
        elif name == "integer":
            out["mms.integer"].append(str(item))
        elif name == "unsigned":
            out["mms.unsigned"].append(str(item))
        elif name == "boolean":
            out["mms.boolean"].append(str(int(item)))
        elif name == "visible_string":
            out["mms.data.visible-string"].append(item.rstrip())
        return


def our_mms_view(messages: list[Message]) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    values = False
    for m in messages:
        f = m.fields
        out["ses.type"].extend(str(t) for t in f.get("session", {}).get("types", ()))
        pres = f.get("presentation", {})
        ids = [
            str(i["presentation_context_identifier"])
            for i in pres.get("presentation_context_definition_list", ())
        ]
        ids += [str(i) for i in pres.get("context_ids", ()) if i is not None]
        out["pres.presentation_context_identifier"].extend(ids)
        acse = f.get("acse", {})
        if "aso_context_name" in acse:
            out["acse.aSO_context_name"].append(acse["aso_context_name"])
        if "result" in acse:
            out["acse.result"].append(str(acse["result"]))
        for key in ("called_ap_title", "calling_ap_title", "responding_ap_title"):
            if isinstance(acse.get(key), str) and "." in acse[key]:
                out["acse.ap_title_form2"].append(acse[key])
        for key in (
            "called_ae_qualifier",
            "calling_ae_qualifier",
            "responding_ae_qualifier",
        ):
            if isinstance(acse.get(key), int):
                out["acse.aso_qualifier_form2"].append(str(acse[key]))
        pdu = f.get("mms_pdu")
        if pdu is None:
            continue
        if pdu == "confirmed_error" and "invoke_id" in f:
            out["mms.invokeID"].append(str(f["invoke_id"]))
        if pdu in ("confirmed_request", "confirmed_response") and "invoke_id" in f:
            out["mms.invokeID"].append(str(f["invoke_id"]))
            field = (
                "mms.confirmedServiceRequest"
                if pdu == "confirmed_request"
                else "mms.confirmedServiceResponse"
            )
            out[field].append(str(m.service_code))
        for key, name in (
            ("vendor_name", "mms.vendorName"),
            ("model_name", "mms.modelName"),
            ("revision", "mms.revision"),
        ):
            if key in f and m.service == "identify":
                out[name].append(f[key])
        _walk_names(
            {
                k: v
                for k, v in f.items()
                if k not in ("session", "presentation", "acse")
            },
            out,
        )
        if m.service in VALUE_SERVICES and pdu != "confirmed_error":
            values = True
            for result in f.get("list_of_access_result", ()):
                if "failure" not in result:
                    _walk_data(result, out, "mms.success")
            for item in f.get("list_of_data", ()):
                _walk_data(item, out, None)
    out["pres.presentation_context_identifier"].sort()
    out["_values"] = values
    return out


def their_mms_view(frame: tshark_oracle.Frame, values: bool) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    wanted = [
        "ses.type",
        "pres.presentation_context_identifier",
        "acse.aSO_context_name",
        "acse.result",
        "acse.ap_title_form2",
        "acse.aso_qualifier_form2",
        "mms.invokeID",
        "mms.confirmedServiceRequest",
        "mms.confirmedServiceResponse",
        "mms.vendorName",
        "mms.modelName",
        "mms.revision",
        "mms.domainId",
        "mms.itemId",
    ]
    if values:
        wanted += [
            "mms.success",
            "mms.Data",
            "mms.integer",
            "mms.unsigned",
            "mms.boolean",
            "mms.data.visible-string",
        ]
    for layer in frame.layers:
        for name in wanted:
            if name.split(".")[0] == layer.name:
                values_ = layer.fields.get(name, [])
                if name == "mms.data.visible-string":
                    values_ = [v.rstrip() for v in values_]
                out[name].extend(values_)
    out["pres.presentation_context_identifier"].sort()
    return out


def compare(theirs: dict[str, list], ours: dict[str, list]) -> list[str]:
    differences = []
    for name in sorted(set(theirs) | set(ours)):
        if name.startswith("_"):
            continue
        a, b = theirs.get(name, []), ours.get(name, [])
        if a != b:
            differences.append(f"{name}: tshark {a[:6]} ours {b[:6]}")
    return differences


def mms_agreement(path: Path):
    by_frame: dict[int, list[Message]] = defaultdict(list)
    for m in otdpi.read(path, protocols=["mms"]):
        if "mms_pdu" in m.fields or "acse" in m.fields:
            by_frame[m.frame].append(m)
    frames = tshark_oracle.decode(
        tshark_oracle.request(path, MMS_LAYERS, "mms || acse")
    )
    seen, agreed, differing, only_ours = 0, 0, {}, 0
    tshark_frames = set()
    for frame in frames:
        tshark_frames.add(frame.number)
        ours = by_frame.get(frame.number)
        if not ours:
            continue
        seen += 1
        our_view = our_mms_view(ours)
        differences = compare(their_mms_view(frame, our_view["_values"]), our_view)
        if differences:
            differing[frame.number] = differences
        else:
            agreed += 1
    only_ours = len(set(by_frame) - tshark_frames)
    return seen, agreed, differing, only_ours


@pytest.fixture(scope="module", autouse=True)
def _prefetch():
    if tshark_oracle.available():
        tshark_oracle.prefetch(
            tshark_oracle.request(p, MMS_LAYERS, "mms || acse") for p in CAPTURES
        )


@needs_tshark
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_mms_agrees_with_tshark(path: Path) -> None:
    seen, agreed, differing, only_ours = mms_agreement(path)
    share = agreed / seen if seen else 1.0
    print(
        f"\n{path.name}: {agreed}/{seen} frames agree ({share:.3%}); "
        f"{only_ours} frames decoded by otdpi only"
    )
    listing = "\n".join(
        f"frame {n}: {'; '.join(d)}" for n, d in sorted(differing.items())[:40]
    )
    assert share >= MIN_AGREEMENT, f"{len(differing)} frames differ:\n{listing}"


# --- GOOSE --------------------------------------------------------------------------

GOOSE_FIELDS = {
    "goose.appid": "appid",
    "goose.length": "length",
    "goose.gocbRef": "gocb_ref",
    "goose.timeAllowedtoLive": "time_allowed_to_live",
    "goose.datSet": "dat_set",
    "goose.goID": "go_id",
    "goose.stNum": "st_num",
    "goose.sqNum": "sq_num",
    "goose.simulation": "simulation",
    "goose.confRev": "conf_rev",
    "goose.ndsCom": "nds_com",
    "goose.numDatSetEntries": "num_dat_set_entries",
    "goose.reserve1": "reserved1",
    "goose.reserve2": "reserved2",
}


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def our_goose_view(messages: list[Message]) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for m in messages:
        for name, key in GOOSE_FIELDS.items():
            if key in m.fields:
                out[name].append(_norm(m.fields[key]))
        for value in m.fields.get("all_data", ()):
            _goose_data(value, out)
        if "all_data" in m.fields:
            out["goose.allData"].append(str(len(m.fields["all_data"])))
    return out


def _goose_data(value: dict, out: dict[str, list]) -> None:
    for name, item in value.items():
        if name not in DATA_TAGS:
            continue
        out["goose.Data"].append(str(DATA_TAGS[name]))
        if name in ("structure", "array"):
            for element in item:
                _goose_data(element, out)
        elif name == "boolean":
            out["goose.boolean"].append(str(int(item)))
        return


def their_goose_view(frame: tshark_oracle.Frame) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for layer in frame.layers:
        for name in (*GOOSE_FIELDS, "goose.allData", "goose.Data", "goose.boolean"):
            for value in layer.fields.get(name, []):
                out[name].append(str(_int(value)) if value.startswith("0x") else value)
    return out


@needs_tshark
@pytest.mark.parametrize("path", GOOSE_CAPTURES, ids=lambda p: p.name)
def test_goose_agrees_with_tshark(path: Path) -> None:
    by_frame: dict[int, list[Message]] = defaultdict(list)
    for m in otdpi.read(path, protocols=["goose"]):
        by_frame[m.frame].append(m)
    frames = tshark_oracle.decode(tshark_oracle.request(path, ("goose",), "goose"))
    seen, agreed, differing = 0, 0, {}
    for frame in frames:
        ours = by_frame.get(frame.number)
        if not ours:
            differing[frame.number] = ["no GOOSE message from otdpi"]
            seen += 1
            continue
        seen += 1
        differences = compare(their_goose_view(frame), our_goose_view(ours))
        if differences:
            differing[frame.number] = differences
        else:
            agreed += 1
    share = agreed / seen if seen else 1.0
    print(f"\n{path.name}: {agreed}/{seen} GOOSE frames agree ({share:.3%})")
    listing = "\n".join(
        f"frame {n}: {'; '.join(d)}" for n, d in sorted(differing.items())[:40]
    )
    assert share >= MIN_AGREEMENT, f"{len(differing)} frames differ:\n{listing}"
