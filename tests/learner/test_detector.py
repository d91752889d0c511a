"""Each detection model on small made-up message streams (envelope only)."""

from __future__ import annotations

from otdpi.learner import Detector, is_external
from otdpi.message import Endpoint, Message, Target

PLC, MASTER, NEW = "10.0.0.2", "10.0.0.5", "10.0.0.9"


def _m(
    ts,
    src,
    dst,
    service,
    action,
    targets=(),
    kind="request",
    protocol="modbus",
    fields=None,
    frame=1,
    flow=1,
    dport=502,
):
    sport, dport_ = (40000, dport) if kind != "response" else (dport, 40000)
    return Message(
        ts,
        frame,
        flow,
        Endpoint(src, sport),
        Endpoint(dst, dport_),
        protocol,
        kind,
        service,
        None,
        action,
        tuple(targets),
        fields or {},
    )


def _polling(until=200.0, period=2.0):
    """A master polling one range and writing one register now and then."""
    out = []
    t = 0.0
    while t < until:
        out.append(
            _m(
                t,
                MASTER,
                PLC,
                "read_holding_registers",
                "read",
                [Target("holding_registers", 0, 4)],
            )
        )
        out.append(
            _m(
                t + 0.01,
                PLC,
                MASTER,
                "read_holding_registers",
                "read",
                [Target("holding_registers", 0, 4)],
                kind="response",
                fields={"registers": [10, 11, 12, 13]},
            )
        )
        if int(t) % 20 == 0:
            out.append(
                _m(
                    t + 0.02,
                    MASTER,
                    PLC,
                    "write_single_register",
                    "write",
                    [Target("holding_registers", 100, 1)],
                    fields={"value": 50},
                )
            )
        t += period
    return out


def _run(extra, learn_for=100.0, until=200.0):
    detector = Detector(learn_for=learn_for)
    for message in sorted(_polling(until) + extra, key=lambda m: m.ts):
        detector.feed(message)
    return detector.alerts


def test_benign_polling_raises_nothing():
    assert _run([]) == []


def test_program_download_upload_delete():
    alerts = _run(
        [
            _m(150, MASTER, PLC, "download_block", "program"),
            _m(151, MASTER, PLC, "upload_block", "program"),
            _m(152, MASTER, PLC, "delete_block", "program"),
        ]
    )
    found = {a["model"]: a["techniques"][0]["id"] for a in alerts}
    assert found == {
        "ot/program-download": "T0843",
        "ot/program-upload": "T0845",
        "ot/block-delete": "T0809",
    }


def test_cpu_stop_and_restart():
    alerts = _run(
        [
            _m(150, MASTER, PLC, "plc_stop", "control"),
            _m(
                151,
                MASTER,
                PLC,
                "diagnostics",
                "control",
                fields={"sub_function_name": "restart_communications_option"},
            ),
        ]
    )
    assert [a["model"] for a in alerts] == ["ot/cpu-stop", "ot/restart"]
    assert alerts[0]["techniques"][0]["id"] == "T0858"


def test_master_writing_a_new_address_of_its_table_is_not_alerted():
    alerts = _run(
        [
            _m(
                150,
                MASTER,
                PLC,
                "write_single_register",
                "write",
                [Target("holding_registers", 101, 1)],
                fields={"value": 50},
            )
        ]
    )
    assert alerts == []


def test_master_writing_a_new_table_is_a_low_score_first_write():
    [alert] = _run(
        [
            _m(
                150,
                MASTER,
                PLC,
                "write_single_coil",
                "write",
                [Target("coils", 7, 1)],
                fields={"coil": True},
            )
        ]
    )
    assert alert["model"] == "ot/first-write" and alert["score"] == 55


def test_value_out_of_range_when_polled():
    alerts = _run(
        [
            _m(
                150.5,
                PLC,
                MASTER,
                "read_holding_registers",
                "read",
                [Target("holding_registers", 0, 4)],
                kind="response",
                fields={"registers": [10, 11, 12, 900]},
            )
        ]
    )
    [alert] = [a for a in alerts if a["model"] == "ot/value-out-of-range"]
    assert "900" in alert["explanation"] and alert["score"] == 40


def test_new_service_and_new_protocol():
    alerts = _run(
        [
            _m(150, MASTER, PLC, "read_coils", "read", [Target("coils", 0, 8)]),
            _m(151, MASTER, PLC, "read_class_0", "read", protocol="dnp3", dport=20000),
        ]
    )
    models = [a["model"] for a in alerts]
    assert "ot/new-service" in models and "ot/new-protocol" in models


def test_scan_of_many_addresses():
    probes = [
        _m(
            150 + i,
            NEW,
            PLC,
            "read_holding_registers",
            "read",
            [Target("holding_registers", 1000 + 100 * i, 1)],
        )
        for i in range(12)
    ]
    models = [a["model"] for a in _run(probes)]
    assert "ot/scan" in models and "ot/new-peer" in models


def test_cadence_stop():
    detector = Detector(learn_for=100.0)
    for message in _polling(200.0):
        detector.feed(message)
    # Only the other client keeps talking: the master's polling has stopped.
    for i in range(60):
        detector.feed(
            _m(
                200 + i,
                "10.0.0.6",
                "10.0.0.3",
                "read_coils",
                "read",
                [Target("coils", 0, 1)],
            )
        )
    assert "ot/cadence-stop" in [a["model"] for a in detector.alerts]


def test_a_stop_is_noticed_by_the_clock_when_the_network_falls_silent():
    detector = Detector(learn_for=100.0)
    for message in _polling(200.0):
        detector.feed(message)
    # Nothing more arrives; only the clock moves on (a live watch's ticks).
    assert detector.tick(205.0) == []
    assert detector.tick(190.0) == []  # not past the last message: nothing
    stops = [a for t in range(206, 260) for a in detector.tick(float(t))]
    assert [a["model"] for a in stops] == ["ot/cadence-stop"]
    assert stops[0]["device"] == PLC
    assert Detector(learn_for=100.0).tick(500.0) == []  # learning: nothing


def test_cadence_change():
    fast = [
        _m(
            150 + 0.1 * i,
            MASTER,
            PLC,
            "read_holding_registers",
            "read",
            [Target("holding_registers", 0, 4)],
        )
        for i in range(30)
    ]
    assert "ot/cadence-change" in [a["model"] for a in _run(fast, until=160.0)]


def test_tls_certificate_unrelated_to_the_sni():
    hello = _m(
        150,
        "10.0.0.20",
        "198.51.100.7",
        "client_hello",
        "session",
        protocol="tls",
        dport=443,
        fields={"sni": "update.example.com"},
    )
    cert = _m(
        150.1,
        "198.51.100.7",
        "10.0.0.20",
        "certificate",
        "session",
        protocol="tls",
        dport=443,
        kind="response",
        fields={
            "sni": "update.example.com",
            "certificate": {
                "subject": "CN=other.test",
                "issuer": "CN=CA",
                "self_signed": False,
                "matches_sni": False,
            },
        },
    )
    alerts = _run([hello, cert])
    models = [a["model"] for a in alerts]
    assert models == ["it/rare-external", "it/tls-self-signed"]
    assert "unrelated" in alerts[1]["explanation"]
    assert "T1571" not in {t["id"] for t in alerts[1]["techniques"]}  # port 443


def test_periodic_internal_traffic_is_never_a_beacon():
    pings = [
        _m(
            150 + 5 * i,
            "10.0.0.20",
            "10.0.0.30",
            "application_data",
            "data",
            protocol="tls",
            flow=9,
            fields={"length": 40},
        )
        for i in range(10)
    ]
    assert _run(pings, until=220.0) == []


def test_throttling_counts_repeats():
    writes = [
        _m(
            150 + i,
            NEW,
            PLC,
            "write_single_register",
            "write",
            [Target("holding_registers", 400, 1)],
            fields={"value": 1},
        )
        for i in range(5)
    ]
    alerts = _run(writes)
    [first_write] = [a for a in alerts if a["model"] == "ot/first-write"]
    [new_peer] = [a for a in alerts if a["model"] == "ot/new-peer"]
    assert new_peer["repeats"] == 4 and len(new_peer["evidence"]["frames"]) == 5
    assert first_write["repeats"] == 0  # the later writes are learned: not new


def test_external_addresses():
    assert is_external("203.0.113.66") and is_external("8.8.8.8")
    assert not any(
        is_external(ip)
        for ip in (
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "127.0.0.1",
            "fe80::1",
            "239.1.1.1",
            "not-an-ip",
        )
    )
