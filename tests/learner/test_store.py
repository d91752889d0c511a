"""The SQLite store: round trip, JSON export/import, no half-written save on kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from otdpi.errors import UsageError
from otdpi.learner import Baseline, Store, export_json, import_json
from otdpi.message import Endpoint, Message, Target


def _baseline(n: int) -> Baseline:
    base = Baseline()
    base.learn_all(
        Message(
            float(i),
            i,
            1,
            Endpoint(f"10.0.{i % 50}.1", 1000),
            Endpoint("10.0.0.2", 502),
            "modbus",
            "request",
            f"svc{i % 30}",
            3,
            "read",
            (Target("holding_registers", i, 10),),
            {"length": 6},
        )
        for i in range(n)
    )
    return base


def test_save_and_load_round_trip(tmp_path):
    base = _baseline(200)
    with Store(tmp_path / "a.sqlite") as store:
        store.save(
            base,
            [{"ts": 1.0, "model": "ot/new-peer", "device": "10.0.0.2", "score": 60}],
            command="learn",
            captures=["x.pcap"],
        )
    with Store(tmp_path / "a.sqlite") as store:
        assert store.load().to_json() == base.to_json()
        assert [a["model"] for a in store.alerts()] == ["ot/new-peer"]
        assert store.integrity() == "ok"


def test_json_export_import(tmp_path):
    base = _baseline(50)
    export_json(base, tmp_path / "b.json")
    assert import_json(tmp_path / "b.json").to_json() == base.to_json()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UsageError):
        import_json(tmp_path / "bad.json")


def test_not_a_database_is_a_usage_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError):
        Store(path).load()


_CHILD = textwrap.dedent("""
    import sys
    from otdpi.learner import Store
    from tests.learner.test_store import _baseline
    store = Store(sys.argv[1])
    big = _baseline(3000)
    round = 0
    while True:
        round += 1
        big.messages = round
        alerts = [{"ts": float(i), "model": "ot/scan", "device": "x", "score": 75,
                   "round": round} for i in range(50)]
        store.save(big, alerts, command="learn", captures=[str(round)])
        print(round, flush=True)
""")


def test_store_survives_kill_during_save(tmp_path):
    path = tmp_path / "killed.sqlite"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for delay in (0.6, 0.9, 1.3):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        child.stdout.readline()  # at least one save went through
        time.sleep(delay)  # then kill it, most likely in the middle of a save
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        with Store(path) as store:
            assert store.integrity() == "ok"
            base = store.load()  # parses: the document is whole
            assert base.relations
            runs = store._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            alerts = store._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            # Each save adds one run and 50 alerts: never some without the other.
            assert alerts == 50 * runs
            last_round = store._db.execute(
                "SELECT captures FROM runs ORDER BY id DESC LIMIT 1"
            ).fetchone()[0]
            assert base.messages == int(last_round.strip('[]"'))


def test_a_baseline_of_layer2_devices_saves_and_reads_back(tmp_path):
    # GOOSE publishers have no IP: their MAC names them, as in the inventory.
    from pathlib import Path

    from otdpi.learner import Baseline, Detector, Store, feed_captures

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "goose_asn1.pcap"
    detector = Detector(learn_for=float("inf"))
    feed_captures(detector, [fixture])
    assert any(key.startswith("mac:") for key in detector.baseline.devices)
    with Store(tmp_path / "l2.sqlite") as store:
        store.save(detector.baseline)
        loaded = store.load()
    assert loaded.to_json() == detector.baseline.to_json()
    assert Baseline.from_json(loaded.to_json()).messages == detector.baseline.messages
