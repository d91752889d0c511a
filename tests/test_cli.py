"""The ``otdpi`` command: inventory, dissect and protocols on the shipped fixture, and its errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otdpi.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "modbus_pymodbus.pcap"
SERVER, CLIENT = "127.0.0.2", "127.0.0.3"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_inventory_prints_a_table_naming_both_devices(capsys):
    status, out, err = run(capsys, "inventory", str(FIXTURE))
    assert status == 0, err
    assert "2 assets" in out
    for text in (SERVER, CLIENT, "otdpi test bench", "3.16.1", "modbus server", "modbus client"):
        assert text in out
    assert "88 packets, 72 messages (0 malformed), 2 flows" in out


def test_inventory_json_holds_identity_with_provenance(capsys, tmp_path):
    output = tmp_path / "inventory.json"
    status, _, err = run(capsys, "inventory", str(FIXTURE), "-o", str(output))
    assert status == 0, err
    document = json.loads(output.read_text())
    assets = {asset["ips"][0]: asset for asset in document["assets"]}
    server, client = assets[SERVER], assets[CLIENT]
    assert server["protocols"]["modbus"]["roles"] == ["server"]
    assert client["protocols"]["modbus"]["roles"] == ["client"]
    assert server["stations"]["modbus"]["unit_id"] == [1, 17]
    assert server["summary"]["vendor"] == "otdpi test bench"
    assert server["summary"]["product_code"] == "OTDPI-PYMODBUS-SIM"
    assert server["summary"]["revision"] == "3.16.1"
    claim = server["identity"]["vendor"][0]
    assert claim["protocol"] == "modbus" and claim["capture"] == str(FIXTURE)
    assert claim["frame"] > 0 and claim["ts"] > 0
    assert document["counters"]["packets"] == 88


def test_inventory_csv_by_suffix_and_by_format(capsys, tmp_path):
    by_suffix = tmp_path / "inventory.csv"
    assert run(capsys, "inventory", str(FIXTURE), "-o", str(by_suffix))[0] == 0
    rows = list(csv.DictReader(by_suffix.open()))
    assert sorted(row["ip"] for row in rows) == [SERVER, CLIENT]
    server = next(row for row in rows if row["ip"] == SERVER)
    assert server["vendor"] == "otdpi test bench" and server["unit_ids"] == "1, 17"

    by_format = tmp_path / "inventory.out"
    assert run(capsys, "inventory", str(FIXTURE), "-o", str(by_format), "--format", "csv")[0] == 0
    assert by_format.read_text() == by_suffix.read_text()


def test_dissect_writes_one_json_object_per_message_with_its_frame(capsys, tmp_path):
    status, out, err = run(capsys, "dissect", str(FIXTURE))
    assert status == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert len(messages) == 72
    assert all(m["protocol"] == "modbus" and 1 <= m["frame"] <= 88 for m in messages)
    identification = [m for m in messages if m["service"] == "read_device_identification"
                      and m["kind"] == "response" and m["status"]["state"] == "ok"]
    assert identification and identification[0]["identity"]["vendor"] == "otdpi test bench"

    output = tmp_path / "messages.jsonl"
    assert run(capsys, "dissect", str(FIXTURE), "-o", str(output), "-p", "modbus")[0] == 0
    assert output.read_text() == out


def test_protocols_lists_the_installed_dissectors(capsys):
    status, out, _ = run(capsys, "protocols")
    assert status == 0
    # One line per installed dissector, sorted by name; modbus is always there.
    lines = out.splitlines()
    assert lines == sorted(lines)
    assert any(line.startswith("modbus") and "502" in line for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inventory", "no-such.pcap"], "no-such.pcap: no such file"),
        (["dissect", "."], "is a directory"),
        (["inventory", "README.md"], "README.md: not a capture file"),
        (["dissect", str(FIXTURE), "-p", "nope"], "no dissector named 'nope'"),
        (["inventory", str(FIXTURE), "-o", "x.txt"], "cannot tell the format"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(capsys, monkeypatch, argv, message):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("otdpi: error: ") and message in err


def test_damaged_capture_warns_with_the_record_number_and_keeps_going(capsys, tmp_path):
    data = FIXTURE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 10])
    status, out, err = run(capsys, "dissect", str(cut))
    assert status == 0
    assert "record 88" in err and str(cut) in err
    assert len(out.splitlines()) >= 70


def test_installed_command_runs_as_a_program():
    command = shutil.which("otdpi")
    argv = [command] if command else [sys.executable, "-m", "otdpi"]
    done = subprocess.run([*argv, "inventory", str(FIXTURE)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "otdpi test bench" in done.stdout


def test_flow_limits_are_options_and_say_when_they_bite(capsys, tmp_path):
    from tests.helpers import Frame, ethernet, ipv4, pcap_file, tcp

    request = bytes.fromhex("000100000006010300000002")
    frames = [
        Frame(1, i, ethernet("00:00:00:00:00:02", "00:00:00:00:00:01", 0x0800,
                             ipv4(f"10.0.0.{10 + i % 2}", "10.0.0.2", 6,
                                  tcp(40000 + i % 2, 502, request, seq=100 + 12 * i))))
        for i in range(4)
    ]
    capture = tmp_path / "two_clients.pcap"
    capture.write_bytes(pcap_file(frames))
    assert main(["inventory", str(capture), "--max-flows", "1"]) == 0
    captured = capsys.readouterr()
    assert "flows_evicted_table_full" in captured.err and "--max-flows" in captured.err
    with pytest.raises(SystemExit) as stopped:  # argparse's own usage error
        main(["inventory", str(capture), "--max-flows", "0"])
    assert stopped.value.code == 2


def test_table_prints_wire_strings_literally(capsys):
    from otdpi.cli import _print_table

    asset = {"key": "mac:00:1b:1b:1c:cd:47", "ips": ["10.0.0.1"], "mac_vendor": None,
             "role": "PLC", "protocols": {}, "stations": {}, "peers": [],
             "summary": {"vendor": "[bold]Evil[/bold] :smile:"}}
    _print_table([asset], {"packets": 1, "messages": 1, "messages_malformed": 0,
                           "flows": 1, "flows_unknown_protocol": 0})
    out = capsys.readouterr().out
    assert "[bold]Evil[/bold]" in out and ":smile:" in out and "1c:cd:47" in out


@pytest.mark.parametrize("target", ["/nonexistent-folder/a.json", "{tmp}"])
def test_an_output_that_cannot_be_written_is_refused_before_reading(target, tmp_path,
                                                                    capsys):
    target = target.format(tmp=tmp_path)
    assert main(["inventory", str(FIXTURE), "-o", target]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"otdpi: error: {target}:")
    assert "assets" not in captured.out  # nothing was read


def test_dissect_lines_name_their_capture(capsys):
    assert main(["dissect", str(FIXTURE)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["capture"] == str(FIXTURE) and first["frame"] >= 1
