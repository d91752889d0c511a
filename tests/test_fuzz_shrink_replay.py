"""Shrinking with hypothesis, and replay of every kind of finding, on planted faults.

The servers here are small asyncio scripts with one fault each, written to a
temporary directory and started by the harness like any target: one drops the
connection when a byte pattern appears in a request body, one keeps every
request it is sent (its memory grows), one answers every request with an
exception a second one does not send. No third-party server is needed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest

from otdpi.fuzzing import Case, Verdict, get_profile
from otdpi.fuzzing.campaign import (
    Campaign,
    Settings,
    other_target_of,
    replay_finding,
    reproduces,
)
from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.shrinking import case_strategy, seed_choices, shrink_case
from otdpi.fuzzing.targets import Target

MODBUS = get_profile("modbus")

PLANTED_SERVER = r"""
import asyncio, sys

MODE = sys.argv[2]
kept = []

def answer(data):
    # One reply per whole ADU: one register read (in mode "exception", an
    # illegal-data-value exception); in mode "drop" an ADU whose body holds
    # DE AD ends the connection without a reply (the planted fault).
    out, pos = b"", 0
    while len(data) - pos >= 8:
        size = int.from_bytes(data[pos + 4:pos + 6], "big") + 6
        if len(data) - pos < size:
            break
        adu, pos = data[pos:pos + size], pos + size
        if MODE == "drop" and b"\xde\xad" in adu[8:]:
            return out, b"", True
        if MODE == "exception":
            out += adu[:4] + bytes([0, 3, adu[6], adu[7] | 0x80, 3])
        else:
            out += adu[:4] + bytes([0, 5, adu[6], adu[7], 2, 0, 0])
    return out, data[pos:], False

async def serve(reader, writer):
    pending = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if MODE == "leak":
                kept.append(bytearray(16 * 1024))  # never let go: memory grows
            out, pending, drop = answer(pending + chunk)
            if drop:
                break
            writer.write(out)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def planted(tmp_path):
    script = tmp_path / "planted_server.py"
    script.write_text(PLANTED_SERVER)
    started: list[Target] = []

    def make(mode: str) -> Target:
        target = Target(
            f"127.0.0.1:{free_port()}",
            [sys.executable, str(script), "{port}", mode],
            name=f"planted-{mode}",
        )
        started.append(target)
        return target

    yield make
    for target in started:
        target.stop()


def adu(tid: int, unit: int, pdu: bytes) -> bytes:
    return tid.to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big") + (
        bytes([unit]) + pdu
    )


# --- the strategy the shrinker searches -------------------------------------------


def test_the_seeded_choices_draw_the_case_itself():
    """The strategy's value for the seed's choices is the finding's own case."""
    from hypothesis import Phase, find, settings
    from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes

    case = Case((adu(7, 1, b"\x03\x00\x01\x00\x02"), adu(8, 1, b"\x10")), "x", "y")
    database = InMemoryExampleDatabase()
    database.save(b"k", choices_to_bytes(seed_choices(case)))
    seen = []
    find(
        case_strategy(case, MODBUS),
        lambda value: seen.append(value) or True,
        settings=settings(database=database, phases=[Phase.reuse], deadline=None),
        database_key=b"k",
    )
    assert seen[0] == case


def test_hypothesis_shrinks_to_fewer_frames_and_zeroed_bytes():
    """Pure predicate: fault when some frame holds function 0x10 and DE AD."""
    big = adu(0x1234, 17, b"\x10" + bytes(range(1, 30)) + b"\xde\xad" + b"\x55" * 9)
    case = Case((adu(5, 1, b"\x03\x00\x00\x00\x01"), big, adu(6, 1, b"\x01")))

    async def fails(candidate):
        return any(
            len(f) > 9 and f[7] == 0x10 and b"\xde\xad" in f[8:]
            for f in candidate.frames
        )

    for delta_first in (True, False):
        result = asyncio.run(
            shrink_case(case, fails, MODBUS, time.monotonic() + 30, 500, delta_first)
        )
        # Header zeroed, length kept honest by the profile's repair.
        assert result.case.frames == (bytes.fromhex("00000000000400" "10dead"),)
        assert result.by_pass.get("hypothesis", 0) > 0
        assert result.attempts <= 500


def test_shrinking_stops_at_its_budget():
    case = Case((bytes(range(200)),))
    calls = []

    async def fails(candidate):
        calls.append(candidate)
        return 100 in candidate.payload

    result = asyncio.run(shrink_case(case, fails, MODBUS, time.monotonic() + 30, 5))
    assert len(calls) == result.attempts == 5 and result.exhausted
    assert 100 in result.case.payload and len(result.case.payload) < 200


# --- against live planted faults ---------------------------------------------------


def test_a_planted_drop_shrinks_to_the_minimal_reproducer(planted, tmp_path):
    """Three requests, the first holding DE AD in its body: one 10-byte ADU."""
    target = planted("drop")
    store = FindingStore(str(tmp_path / "f.sqlite"))
    cid = store.start_campaign("modbus", target.name, {})
    body = b"\x10\x00\x01\x00\x04\x08" + b"\x11\x22\x33\xde\xad\x44\x55\x66"
    case = Case(
        (adu(0x0103, 9, body), adu(0x0102, 9, b"\x03\x00\x00\x00\x01"),
         adu(0x0104, 9, b"\x03\x00\x10\x00\x02")),
        "sequence", "3 requests",
    )  # fmt: skip
    verdict = Verdict("connection_dropped", "fc=0x10", "closed")
    finding_id, _ = store.record(cid, "modbus", verdict, case, {}, target, None)
    finding = store.get(finding_id)
    with target:
        assert asyncio.run(reproduces(MODBUS, target, finding, case))
        result = asyncio.run(
            shrink_case(
                case,
                lambda c: reproduces(MODBUS, target, finding, c),
                MODBUS,
                time.monotonic() + 60,
            )
        )
        # The smallest case that drops the connection with the same signature
        # (a first request of function 16): one ADU, function 16, the
        # pattern, the header zeroed, its length honest.
        assert result.case.frames == (bytes.fromhex("00000000000400" "10dead"),)
        assert result.attempts <= 300
        hits = sum(replay_finding(finding._replace(shrunk=result.case), MODBUS, target))
    assert hits >= 9


def test_campaign_against_the_planted_drop_stores_the_minimal_reproducer(
    planted, tmp_path
):
    target = planted("drop")
    store = FindingStore(str(tmp_path / "f.sqlite"))
    settings = Settings(
        max_cases=400, max_time=30, post_time=60, concurrency=8, valid_share=0.3,
        mutations=("trailing_bytes",), seed=3,
    )  # fmt: skip
    profile = get_profile("modbus")
    run = Campaign(profile, target, store, settings)

    # The valid pool never holds DE AD: put it in trailing bytes often.
    def mutate(case, rng, others=None, inner=profile.mutate):
        made = inner(case, rng, others)
        if rng.random() < 0.3:
            first = made.frames[0] + b"\xde\xad"
            first = first[:4] + (len(first) - 6).to_bytes(2, "big") + first[6:]
            made = made._replace(frames=(first,) + made.frames[1:])
        return made

    run.profile.mutate = mutate
    try:
        run.run()
    finally:
        target.stop()
    dropped = [f for f in store.all() if f.oracle == "connection_dropped"]
    assert dropped, [(f.oracle, f.signature) for f in store.all()]
    for finding in dropped:
        assert finding.replay_runs == 10 and finding.replay_hits >= 9
        frame = finding.reproducer.frames
        assert len(frame) == 1 and len(frame[0]) == 10, finding.reproducer
        assert frame[0][:7] == bytes.fromhex("00000000000400")
        assert frame[0][8:] == b"\xde\xad"


# --- differential and memory findings replay -----------------------------------------


def test_differential_findings_replay_against_both_targets(planted, tmp_path):
    reads, exceptions = planted("read"), planted("exception")
    store = FindingStore(str(tmp_path / "f.sqlite"))
    settings = Settings(max_cases=60, max_time=30, post_time=30, concurrency=4)
    run = Campaign(get_profile("modbus"), reads, store, settings, other=exceptions)
    try:
        run.run()
    finally:
        reads.stop()
        exceptions.stop()
    differences = [f for f in store.all() if f.oracle == "differential"]
    assert differences
    for finding in differences:
        assert finding.replay_runs == 10 and finding.replay_hits >= 9, finding
        assert other_target_of(finding).name == "planted-exception"
    # And by the command, which starts both servers again.
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "replay", str(differences[0].id),
         "--db", str(tmp_path / "f.sqlite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    hits = int(result.stdout.split("reproduced ")[1].split("/")[0])
    assert hits >= 9 and "planted-exception" in result.stdout


def test_a_differential_finding_without_its_second_target_does_not_replay(
    planted, tmp_path
):
    target = planted("read")
    finding = type(
        "F", (), {"oracle": "differential", "signature": "a vs b", "outcome": {}}
    )()
    assert other_target_of(finding) is None
    with target:
        case = Case((adu(1, 1, b"\x03\x00\x00\x00\x01"),))
        assert not asyncio.run(reproduces(MODBUS, target, finding, case))


@pytest.mark.slow
def test_memory_growth_findings_replay(planted, tmp_path):
    target = planted("leak")
    db = tmp_path / "f.sqlite"
    store = FindingStore(str(db))
    settings = Settings(
        max_cases=100_000, max_time=4, post_time=120, concurrency=16,
        memory_limit_kib=8_000,
        # Only the memory oracle: the others' findings would spend the post
        # time being shrunk.
        oracles_off=("malformed_reply", "protocol_violation", "no_reply",
                     "missing_replies", "slow_reply", "connection_closed"),
    )  # fmt: skip
    run = Campaign(get_profile("modbus"), target, store, settings)
    try:
        run.run()
    finally:
        target.stop()
    grown = [f for f in store.all() if f.oracle == "memory_growth"]
    assert grown, [f.oracle for f in store.all()]
    finding = grown[0]
    assert finding.outcome["grown_over_cases"] > 0 and finding.outcome["cases"]
    assert finding.replay_runs == 10 and finding.replay_hits >= 9, finding
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "replay", str(finding.id),
         "--db", str(db)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split("reproduced ")[1].split("/")[0]) >= 9


def test_memory_replay_misses_a_server_that_does_not_grow(planted, tmp_path):
    target = planted("read")
    finding = type("F", (), {
        "oracle": "memory_growth", "signature": "rss", "case": None,
        "outcome": {
            "memory_limit_kib": 20_000, "grown_over_cases": 300,
            "cases": [Case((adu(1, 1, b"\x03\x00\x00\x00\x01"),)).to_json()],
        },
    })()  # fmt: skip
    with target:
        assert not asyncio.run(reproduces(MODBUS, target, finding, None))


def test_summary_reports_shrinking(planted, tmp_path):
    target = planted("read")
    script = target.argv[1]
    result = subprocess.run(
        [sys.executable, "-m", "otdpi", "fuzz", "run", "modbus",
         "--target", target.address, "--start",
         f"{sys.executable} {script} {{port}} read",
         "--max-cases", "50", "--post-time", "20", "--no-progress", "--json",
         "--db", str(tmp_path / "g.sqlite")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cases"] == 50
    shrunk = [f["shrink"] for f in summary["new_findings"] if "shrink" in f]
    assert shrunk and all(s["to_bytes"] <= s["from_bytes"] for s in shrunk)
    assert all(s["attempts"] <= 300 for s in shrunk)
