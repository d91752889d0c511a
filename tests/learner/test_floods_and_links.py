"""The request-flood and MAC-change models on small made-up message streams."""

from __future__ import annotations

import json

from otdpi.learner import Baseline, Detector
from otdpi.learner.baseline import merge_macs
from otdpi.learner.links import is_local_unicast
from otdpi.message import Endpoint, Message, Target

PLC, MASTER, NEW = "10.0.0.2", "10.0.0.5", "10.0.0.9"
MAC = {PLC: "00:18:64:02:30:fc", MASTER: "00:18:64:02:2f:a6", NEW: "00:10:18:cb:8c:13"}


def _m(
    ts,
    src,
    dst,
    service="read",
    action="read",
    kind="request",
    src_mac=None,
    dst_mac=None,
    protocol="dnp3",
    targets=(("class", 0, 1),),
):
    sport, dport = (40000, 20000) if kind != "response" else (20000, 40000)
    return Message(
        ts,
        1,
        1,
        Endpoint(src, sport, src_mac or MAC[src]),
        Endpoint(dst, dport, dst_mac or MAC[dst]),
        protocol,
        kind,
        service,
        None,
        action,
        tuple(Target(*t) for t in targets),
        {},
    )


def _polling(until=300.0, period=2.0):
    out = []
    t = 0.0
    while t < until:
        out.append(_m(t, MASTER, PLC))
        out.append(_m(t + 0.01, PLC, MASTER, kind="response"))
        t += period
    return out


def _run(extra, learn_for=100.0, until=300.0):
    detector = Detector(learn_for=learn_for)
    for message in sorted(_polling(until) + extra, key=lambda m: m.ts):
        detector.feed(message)
    return detector


def test_benign_polling_raises_nothing():
    assert _run([]).alerts == []


def test_a_write_flood_from_the_usual_master_is_a_request_flood():
    flood = [
        _m(200 + i * 0.02, MASTER, PLC, "write", "write", targets=(("g41", 0, 1),))
        for i in range(1500)  # 50/s for 30 s: three windows
    ]
    alerts = _run(flood).alerts
    floods = [a for a in alerts if a["model"] == "ot/request-flood"]
    assert len(floods) == 1  # one alert, the rest throttled as repeats
    ids = {t["id"] for t in floods[0]["techniques"]}
    assert ids == {"T0814", "T0806"}  # writes: Brute Force I/O too
    assert floods[0]["evidence"]["client"] == MASTER
    assert floods[0]["repeats"] > 0
    # 300 messages (30/s over the 10 s window) are reached after 6 s of it
    assert floods[0]["ts"] - 200 < 6.5


def test_polling_faster_than_the_floor_is_not_a_flood_unless_it_surges():
    # A master that learned 15 requests/s: 200/s is a flood, 40/s is not.
    def fast(start, stop, rate):
        n = int((stop - start) * rate)
        return [_m(start + i / rate, MASTER, PLC) for i in range(n)]

    detector = Detector(learn_for=100.0)
    for message in fast(0, 150, 15) + fast(150, 170, 40):
        detector.feed(message)
    assert [a for a in detector.alerts if a["model"] == "ot/request-flood"] == []
    for message in fast(180, 200, 200):
        detector.feed(message)
    [flood] = [a for a in detector.alerts if a["model"] == "ot/request-flood"]
    assert "learned rate 15" in flood["explanation"]


def test_a_known_ip_from_a_new_mac_is_a_mac_change():
    spoofed = [
        _m(200 + i, PLC, MASTER, kind="response", src_mac=MAC[NEW]) for i in range(5)
    ]
    alerts = _run(spoofed).alerts
    [change] = [a for a in alerts if a["model"] == "ot/mac-change"]
    assert change["evidence"]["ip"] == PLC
    assert change["evidence"]["mac"] == MAC[NEW]
    assert change["evidence"]["previous_macs"] == [MAC[PLC]]
    assert {t["id"] for t in change["techniques"]} == {"T0830", "T0849"}
    assert change["repeats"] == 4  # the next four are throttled into it


def test_the_genuine_device_never_alerts_after_the_impostor_appeared():
    # Both MACs first seen while detecting: only the newer binding is suspect.
    detector = Detector(learn_for=None)
    stream = [_m(t, MASTER, PLC) for t in range(0, 50, 2)]
    stream += [_m(60, MASTER, PLC, dst_mac=MAC[NEW])]
    stream += [_m(t, MASTER, PLC) for t in range(62, 100, 2)]
    for message in stream:
        detector.feed(message)
    changes = [a for a in detector.alerts if a["model"] == "ot/mac-change"]
    assert [(a["evidence"]["ip"], a["evidence"]["mac"]) for a in changes] == [
        (PLC, MAC[NEW])
    ]


def test_one_mac_for_many_ips_and_external_or_group_addresses_are_not_bound():
    assert is_local_unicast("10.0.0.1") and is_local_unicast("192.168.10.222")
    assert not is_local_unicast("8.8.8.8")
    assert not is_local_unicast("127.0.0.1")
    assert not is_local_unicast("224.0.0.252")
    assert not is_local_unicast("192.168.10.255")
    assert not is_local_unicast("243.27.64.33")  # reserved (garbled packets)
    router = "00:00:5e:00:01:01"
    stream = [
        _m(200 + i, MASTER, PLC, src_mac=MAC[MASTER], dst_mac=router) for i in range(3)
    ]
    stream = [
        Message(
            200.5,
            1,
            2,
            Endpoint(MASTER, 40001, MAC[MASTER]),
            Endpoint("8.8.8.8", 443, router),
            "tls",
            "request",
            "client_hello",
            None,
            "session",
            (),
            {},
        )
    ]
    alerts = _run(stream).alerts
    assert [a for a in alerts if a["model"] == "ot/mac-change"] == []


def test_mac_bindings_go_through_json_and_merge():
    detector = _run([])
    base = detector.baseline
    assert base.macs[PLC] == {MAC[PLC]: [0.0, 298.01]}
    again = Baseline.from_json(json.loads(json.dumps(base.to_json())))
    assert again.macs == base.macs
    other = {PLC: {MAC[PLC]: [-5.0, 1.0], MAC[NEW]: [7.0, 8.0]}}
    merged = {ip: {m: list(s) for m, s in v.items()} for ip, v in base.macs.items()}
    merge_macs(merged, other)
    assert merged[PLC][MAC[PLC]][0] == -5.0
    assert merged[PLC][MAC[NEW]] == [7.0, 8.0]
    # A document without the table (written before it existed) still reads.
    document = base.to_json()
    del document["macs"]
    assert Baseline.from_json(document).macs == {}


def test_models_can_be_left_out():
    from otdpi.learner import MODELS

    models = {
        k: v
        for k, v in MODELS.items()
        if k not in ("ot/mac-change", "ot/request-flood")
    }
    detector = Detector(learn_for=100.0, models=models)
    spoofed = [_m(200, PLC, MASTER, kind="response", src_mac=MAC[NEW])]
    for message in sorted(_polling() + spoofed, key=lambda m: m.ts):
        detector.feed(message)
    assert detector.alerts == []


def test_mac_bindings_merge_exactly_whatever_the_order_of_captures():
    # B comes before A in time but is learned after it; flows repeat in both.
    def learned(*streams):
        detector = Detector(learn_for=float("inf"))
        for stream in streams:
            detector.new_capture()
            for message in stream:
                detector.feed(message)
        detector.finish()
        return detector.baseline

    a = [_m(1000 + t, MASTER, PLC) for t in range(5)]
    b = [_m(t, MASTER, PLC) for t in range(5)]
    b += [_m(9, PLC, MASTER, kind="response", src_mac=MAC[NEW])]
    together = learned(a, b).to_json()
    merged = learned(a).merge(learned(b)).to_json()
    assert together["macs"] == merged["macs"]
    assert together["macs"][PLC][MAC[PLC]] == [0, 1004]
