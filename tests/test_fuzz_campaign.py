"""The fuzzing harness against real servers on loopback: the issue's acceptance checks.

Each test starts its server through a recipe, runs a bounded campaign and
reads the findings store. Servers that cannot be had here (a venv that cannot
be built, libmodbus or hl7 not installed) skip with the reason.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from otdpi.errors import UsageError
from otdpi.fuzzing import get_profile
from otdpi.fuzzing.campaign import Campaign, Settings, replay_finding
from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.recipes import recipe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def target_or_skip(name: str):
    try:
        return recipe(name, free_port())
    except UsageError as exc:
        pytest.skip(f"recipe {name} unavailable: {exc}")


def campaign(protocol, target, tmp_path, **settings):
    store = FindingStore(str(tmp_path / "findings.sqlite"))
    run = Campaign(get_profile(protocol), target, store, Settings(**settings))
    try:
        stats = run.run()
    finally:
        target.stop()
    return run, stats, store


def by_oracle(store, oracle):
    return [f for f in store.all() if f.oracle == oracle]


@pytest.mark.slow
def test_pymodbus_3_10_truncated_request_drops_the_connection(tmp_path):
    """The known fault: a whole ADU too short for its function kills the connection."""
    target = target_or_skip("pymodbus==3.10.0")
    _, stats, store = campaign(
        "modbus", target, tmp_path, max_cases=100, max_time=60, post_time=60
    )
    assert stats.cases == 100
    dropped = by_oracle(store, "connection_dropped")
    assert dropped, [f.oracle for f in store.all()]
    # Each finding is shrunk and replays its fault in at least 9 of 10 runs.
    for finding in dropped:
        assert finding.replay_runs == 10 and finding.replay_hits >= 9, finding
    smallest = min(len(f.reproducer.payload) for f in dropped)
    assert smallest == 8  # MBAP header and a bare function code
    # Hypothesis's shrinker zeroes what the fault does not need: transaction
    # id, unit id (the length stays honest, the function code names the fault).
    bare = [f.reproducer.payload for f in dropped if len(f.reproducer.payload) == 8]
    assert all(p[:7] == bytes.fromhex("00000000000200") for p in bare), bare


@pytest.mark.slow
def test_pymodbus_3_16_campaign_neither_drops_nor_crashes(tmp_path):
    target = target_or_skip("pymodbus")
    _, stats, store = campaign(
        "modbus", target, tmp_path, max_cases=10_000, max_time=600, post_time=5
    )
    assert stats.cases == 10_000
    oracles = {f.oracle for f in store.all()}
    assert not oracles & {"connection_dropped", "process_died"}, oracles
    assert stats.restarts == 0


@pytest.mark.slow
def test_libmodbus_answers_malformed_requests_after_a_long_delay(tmp_path):
    target = target_or_skip("libmodbus")
    _, stats, store = campaign(
        "modbus", target, tmp_path, max_cases=150, max_time=90, post_time=40,
        concurrency=1,
    )  # fmt: skip
    slow = by_oracle(store, "slow_reply")
    assert slow, [f.oracle for f in store.all()]
    assert any(f.replay_runs == 10 and f.replay_hits >= 9 for f in slow)


@pytest.mark.slow
def test_hl7_mllp_receiver_answers_every_message_of_a_segment(tmp_path):
    """Several messages in one TCP segment: the receiver ACKs each of them."""
    target = target_or_skip("hl7-mllp")
    run, stats, store = campaign(
        "hl7", target, tmp_path, max_cases=400, max_time=60, post_time=20
    )
    assert stats.cases == 400
    missing = [
        f for f in store.all()
        if f.oracle in ("missing_replies", "no_reply") and f.case.together
    ]  # fmt: skip
    assert not missing, missing


def test_replay_command_reproduces_a_stored_finding(tmp_path):
    """`otdpi fuzz replay FINDING` against the server the finding names."""
    target = target_or_skip("pymodbus")
    from otdpi.fuzzing.profile import Case, Verdict

    store = FindingStore(str(tmp_path / "findings.sqlite"))
    campaign_id = store.start_campaign("modbus", target.name, {})
    # Function 22 cut to its code: pymodbus 3.16.1 answers with function 0x80.
    case = Case((bytes.fromhex("000100000002ff16"),), "truncate_in_header")
    verdict = Verdict(
        "protocol_violation", "exception_function_0x80_for_defined_code", ""
    )
    finding_id, new = store.record(
        campaign_id, "modbus", verdict, case, {}, target, None
    )
    store.close()
    assert new
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "replay", str(finding_id),
         "--runs", "10",
         "--db", str(tmp_path / "findings.sqlite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproduced 10/10" in result.stdout


def test_replay_finding_counts_runs(tmp_path):
    target = target_or_skip("pymodbus")
    from otdpi.fuzzing.profile import Case, Verdict

    store = FindingStore(str(tmp_path / "f.sqlite"))
    cid = store.start_campaign("modbus", target.name, {})
    good = Case((bytes.fromhex("000100000006010300000002"),))
    store.record(
        cid, "modbus", Verdict("no_reply", "fc=0x03", ""), good, {}, target, None
    )
    finding = store.all()[0]
    with target:
        results = replay_finding(finding, get_profile("modbus"), target, runs=3)
    assert results == [False, False, False]  # a valid read is answered


@pytest.mark.slow
def test_differential_mode_reports_where_two_versions_disagree(tmp_path):
    old = target_or_skip("pymodbus==3.10.0")
    new = target_or_skip("pymodbus")
    store = FindingStore(str(tmp_path / "findings.sqlite"))
    settings = Settings(max_cases=100, max_time=60, post_time=0)
    run = Campaign(get_profile("modbus"), old, store, settings, other=new)
    try:
        run.run()
    finally:
        old.stop()
        new.stop()
    differences = by_oracle(store, "differential")
    # 3.10.0 drops the connection where 3.16.1 answers with function 0x80.
    assert any(
        f.signature.startswith("dropped:none vs answered:0x80") for f in differences
    ), [f.signature for f in differences]


@pytest.mark.slow
def test_differential_findings_of_two_versions_replay(tmp_path):
    """Each differential finding replays against both versions in 9 of 10 runs."""
    old = target_or_skip("pymodbus==3.10.0")
    new = target_or_skip("pymodbus")
    store = FindingStore(str(tmp_path / "findings.sqlite"))
    settings = Settings(
        max_cases=100, max_time=60, post_time=120,
        # Only the differential oracle, so the post time goes to its findings.
        oracles_off=("slow_reply", "log_error", "connection_dropped", "no_reply",
                     "missing_replies", "malformed_reply", "protocol_violation",
                     "connection_closed"),
    )  # fmt: skip
    run = Campaign(get_profile("modbus"), old, store, settings, other=new)
    try:
        run.run()
    finally:
        old.stop()
        new.stop()
    differences = by_oracle(store, "differential")
    assert differences
    for finding in differences:
        assert finding.replay_runs == 10 and finding.replay_hits >= 9, finding
    dropped = [f for f in differences if f.signature.startswith("dropped:")]
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "replay", str(dropped[0].id),
         "--db", str(tmp_path / "findings.sqlite")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split("reproduced ")[1].split("/")[0]) >= 9


CRASHING_SERVER = """
import os, socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    data = conn.recv(300)
    if len(data) == 8:  # an ADU of a bare function code: die, as a buggy device
        os._exit(3)
    if len(data) >= 8:  # anything else gets an illegal-function exception
        conn.sendall(data[:4] + bytes([0, 3, data[6], data[7] | 0x80, 1]))
    conn.close()
"""


@pytest.mark.slow
def test_a_server_that_dies_is_restarted_and_the_case_replays(tmp_path):
    from otdpi.fuzzing.targets import Target

    script = tmp_path / "crashing_server.py"
    script.write_text(CRASHING_SERVER)
    port = free_port()
    target = Target(f"127.0.0.1:{port}", [sys.executable, str(script), "{port}"])
    _, stats, store = campaign(
        "modbus", target, tmp_path, max_cases=60, max_time=60, post_time=60,
        concurrency=4, mutations=("truncate_in_header",),
    )  # fmt: skip
    assert stats.restarts >= 1
    died = by_oracle(store, "process_died")
    assert died and died[0].replay_hits >= 9, died
    assert len(died[0].reproducer.payload) == 8


def test_fuzz_run_command_reports_a_campaign(tmp_path):
    import json

    target_or_skip("pymodbus")  # skips when pymodbus is missing
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "run", "modbus",
         "--target", f"127.0.0.1:{free_port()}", "--recipe", "pymodbus",
         "--max-cases", "200", "--post-time", "5", "--no-progress", "--json",
         "--db", str(tmp_path / "f.sqlite")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cases"] == 200 and summary["cases_per_second"] > 0
    assert "connection_dropped" not in summary["hits_by_oracle"]
