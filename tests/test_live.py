"""Live capture on the loopback interface, against a pymodbus exchange the test starts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pymodbus = pytest.importorskip("pymodbus")

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402
from pymodbus.server import ModbusTcpServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fixtures"))
from record_modbus import build_device, build_identity  # noqa: E402

SERVER = "127.0.0.2"
CLIENT = "127.0.0.3"


def _can_capture_on_loopback() -> str | None:
    if shutil.which("dumpcap") is None:
        return "dumpcap is not installed"
    probe = subprocess.run(["dumpcap", "-D"], capture_output=True, text=True)
    if probe.returncode != 0 or "lo" not in probe.stdout:
        return f"dumpcap cannot list the loopback interface: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif(_can_capture_on_loopback() is not None,
                                reason=str(_can_capture_on_loopback()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((SERVER, 0))
        return sock.getsockname()[1]


async def _exchange(port: int) -> None:
    server = ModbusTcpServer(build_device(), address=(SERVER, port),
                             identity=build_identity())
    await server.serve_forever(background=True)
    try:
        client = AsyncModbusTcpClient(SERVER, port=port, source_address=(CLIENT, 0),
                                      retries=0, timeout=2, reconnect_delay=0)
        assert await client.connect()
        try:
            for start in range(0, 40, 10):
                await client.read_holding_registers(start, count=10, device_id=1)
            await client.write_register(5, 1234, device_id=1)
            await client.read_device_information(read_code=1, object_id=0, device_id=1)
        finally:
            client.close()
        await asyncio.sleep(0.3)
    finally:
        await server.shutdown()


def _start_otdpi(port: int, output: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "otdpi", "inventory", "-i", "lo", "-f",
               f"tcp port {port}", "-o", str(output), "--update-every", "0.5", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    time.sleep(2.0)  # dumpcap needs a moment before it sees packets
    assert process.poll() is None, process.communicate()
    return process


def _server_asset(output: Path) -> dict:
    assets = json.loads(output.read_text())["assets"]
    return next(a for a in assets if SERVER in a["ips"])


def test_ctrl_c_stops_a_live_inventory_and_keeps_what_was_seen(tmp_path):
    port = _free_port()
    output = tmp_path / "live.json"
    process = _start_otdpi(port, output)
    try:
        asyncio.run(_exchange(port))
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    server = _server_asset(output)
    assert server["protocols"]["modbus"]["roles"] == ["server"]
    assert server["summary"]["vendor"] == "otdpi test bench"
    assert json.loads(output.read_text())["counters"]["messages"] == 12
    assert "assets" in out


def test_a_bounded_live_inventory_stops_by_itself(tmp_path):
    port = _free_port()
    output = tmp_path / "bounded.json"
    process = _start_otdpi(port, output, "--duration", "4")
    asyncio.run(_exchange(port))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert _server_asset(output)["summary"]["product_code"] == "OTDPI-PYMODBUS-SIM"
    assert not os.path.exists(f"{output}.partial")


def test_an_unknown_interface_is_one_clear_error():
    done = subprocess.run([sys.executable, "-m", "otdpi", "inventory", "-i", "nosuch0"],
                          capture_output=True, text=True, cwd=REPO, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("otdpi: error: live:nosuch0: dumpcap did not start")
    assert len(done.stderr.strip().splitlines()) == 1


def test_live_watch_learns_alerts_and_keeps_the_store_on_ctrl_c(tmp_path):
    from otdpi.learner import Store

    port = _free_port()
    store = tmp_path / "live.sqlite"
    alerts = tmp_path / "alerts.jsonl"
    command = [sys.executable, "-m", "otdpi", "watch", "-i", "lo", "-f",
               f"tcp port {port}", "--learn-for", "0s", "--db", str(store),
               "-o", str(alerts), "--update-every", "0.5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        time.sleep(2.0)
        assert process.poll() is None, process.communicate()
        asyncio.run(_exchange(port))
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert any(a["model"] == "ot/new-peer" for a in lines), lines
    with Store(store) as saved:
        assert saved.load().messages >= 12
        assert len(saved.alerts()) == len(lines)
        # Saved every half second, and yet each message counted once.
        from otdpi.report import Observations

        kept = Observations.from_json(saved.inventory())
        assert kept.statistics.messages["modbus"] == 12  # the exchange's 12 ADUs
        assert SERVER in {ip for a in kept.inventory.assets() for ip in a["ips"]}


def test_live_watch_needs_a_learning_time():
    done = subprocess.run([sys.executable, "-m", "otdpi", "watch", "-i", "lo",
                           "--learn-share", "0.5"], capture_output=True, text=True,
                          cwd=REPO, timeout=30)
    assert done.returncode == 2 and "needs --learn-for" in done.stderr


async def _poll_then_fall_silent(port: int, seconds: float) -> None:
    server = ModbusTcpServer(build_device(), address=(SERVER, port),
                             identity=build_identity())
    await server.serve_forever(background=True)
    try:
        client = AsyncModbusTcpClient(SERVER, port=port, source_address=(CLIENT, 0),
                                      retries=0, timeout=2, reconnect_delay=0)
        assert await client.connect()
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await client.read_holding_registers(0, count=4, device_id=1)
                await asyncio.sleep(0.2)
        finally:
            client.close()
        await asyncio.sleep(0.3)
    finally:
        await server.shutdown()


def test_live_watch_notices_a_stopped_polling_while_the_network_is_silent(tmp_path):
    # After the polling stops no packet arrives at all: only the watch's clock
    # can notice, once the silence passes the stop limit (30 s at the least).
    port = _free_port()
    alerts = tmp_path / "alerts.jsonl"
    command = [sys.executable, "-m", "otdpi", "watch", "-i", "lo", "-f",
               f"tcp port {port}", "--learn-for", "4s", "--no-save",
               "-o", str(alerts)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    models: list[str] = []
    try:
        time.sleep(2.0)
        assert process.poll() is None, process.communicate()
        asyncio.run(_poll_then_fall_silent(port, 8.0))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "ot/cadence-stop" not in models:
            time.sleep(1.0)
            if alerts.exists():
                models = [json.loads(line)["model"]
                          for line in alerts.read_text().splitlines() if line]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "ot/cadence-stop" in models, (models, err)
