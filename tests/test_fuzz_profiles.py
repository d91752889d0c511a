"""The fuzzing harness without a network: profiles, judges, store, shrinker."""

from __future__ import annotations

import asyncio
import random
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings

from dissectors.modbus.definitions import REQUEST_BODIES, FunctionCode
from otdpi.errors import UsageError
from otdpi.fuzzing import Case, FuzzProfile, Verdict, get_profile, register_profile
from otdpi.fuzzing import mllp, modbus
from otdpi.fuzzing.campaign import draw_cases, log_signature, shrink
from otdpi.fuzzing.construct_strategies import struct_strategy
from otdpi.fuzzing.findings import FindingStore
from otdpi.fuzzing.targets import Target

MODBUS = get_profile("modbus")
HL7 = get_profile("hl7")


# --- generation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [c for c in REQUEST_BODIES if c != FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT],
)
def test_every_request_definition_yields_a_strategy(code):
    values = draw_cases(struct_strategy(REQUEST_BODIES[code]), 5, seed=code)
    assert values and all(isinstance(v, dict) for v in values)


def test_valid_cases_cover_every_function_code():
    # Every code is in the weighted draw and has a body strategy that builds.
    assert set(modbus.WEIGHTED_CODES) == {int(c) for c in FunctionCode}
    for code in modbus.WEIGHTED_CODES:
        built = draw_cases(modbus.valid_requests_of(code), 3, seed=code)
        assert built and all(c.frames[0][7] == code for c in built)
    drawn = {c.frames[0][7] for c in draw_cases(MODBUS.valid_strategy(), 400, seed=1)}
    assert len(drawn) >= 15


@settings(max_examples=200)
@given(MODBUS.valid_strategy())
def test_valid_cases_have_honest_headers_within_the_adu_limit(case):
    adu = case.frames[0]
    assert struct.unpack(">H", adu[4:6])[0] == len(adu) - 6
    assert len(adu) <= 260
    assert MODBUS.expected_replies(adu) == 1


def test_each_mutation_makes_bytes():
    rng = random.Random(5)
    valid = draw_cases(MODBUS.valid_strategy(), 30, seed=2)
    for mutation, _ in modbus.MUTATIONS:
        for case in valid:
            made = modbus.apply_mutation(case, mutation, rng, valid)
            assert made.frames and all(isinstance(f, bytes) for f in made.frames)
            assert made.mutation == mutation.__name__


def test_truncation_inside_the_header_keeps_the_length_honest():
    case = Case((bytes.fromhex("000100000006010300000002"),))
    for seed in range(20):
        cut = modbus.truncate_in_header(case, random.Random(seed)).frames[0]
        assert struct.unpack(">H", cut[4:6])[0] == len(cut) - 6 and len(cut) < 12
        assert MODBUS.expected_replies(cut) == 1  # a whole ADU is owed its reply


def test_expected_replies_follow_the_mbap_header():
    read = bytes.fromhex("000100000006010300000002")
    assert MODBUS.expected_replies(read) == 1
    assert MODBUS.expected_replies(read * 3) == 3
    assert MODBUS.expected_replies(read[:9]) == 0  # cut on the wire: wait
    assert MODBUS.expected_replies(read[:2] + b"\0\1" + read[4:]) == 0  # not Modbus


def test_select_mutations_refuses_unknown_names():
    profile = get_profile("modbus")
    profile.select_mutations(["count_lies"])
    assert profile._mutators == [modbus.count_lies]
    with pytest.raises(UsageError):
        profile.select_mutations(["no_such_mutation"])


# --- the Modbus judge -----------------------------------------------------------------

REQUEST = Case((bytes.fromhex("000200000002ff16"),))


def test_exception_with_a_wrong_function_byte_is_a_violation():
    verdicts = MODBUS.judge(REQUEST, bytes.fromhex("000200000003ff8001"))
    assert [v.signature for v in verdicts] == [
        "exception_function_0x80_for_defined_code"
    ]


def test_exception_with_code_or_0x80_passes():
    assert MODBUS.judge(REQUEST, bytes.fromhex("000200000003ff9603")) == []


def test_reply_to_an_unknown_transaction_is_a_violation():
    verdicts = MODBUS.judge(REQUEST, bytes.fromhex("000900000003ff9603"))
    assert verdicts[0].signature == "reply_with_unknown_transaction_id"


def test_reply_the_dissector_calls_malformed_is_a_finding():
    read = Case((bytes.fromhex("000100000006010300000002"),))
    # A read-registers reply whose byte count says 4 but carries 2 bytes.
    verdicts = MODBUS.judge(read, bytes.fromhex("0001000000050103040000"))
    assert any(v.oracle == "malformed_reply" for v in verdicts), verdicts


def test_undefined_codes_share_one_signature():
    a = Case((bytes.fromhex("000100000002ff41"),))
    b = Case((bytes.fromhex("000100000002ff63"),))
    assert MODBUS.case_signature(a) == MODBUS.case_signature(b) == "fc=undefined"


# --- the MLLP profile -----------------------------------------------------------------


def test_mllp_valid_messages_are_framed_and_owed_one_ack():
    for case in draw_cases(HL7.valid_strategy(), 50, seed=4):
        data = case.frames[0]
        assert data[:1] == b"\x0b" and data[-2:] == b"\x1c\x0d"
        assert HL7.expected_replies(data) == 1


def test_mllp_judge_checks_the_ack_control_id():
    case = mllp._build("ADT^A01", "ABC1", "2.5", [])
    ack = mllp.frame(b"MSH|^~\\&|R|F|S|F|20260101||ACK|1|P|2.5\rMSA|AA|ABC1\r")
    assert HL7.judge(case, ack) == []
    wrong = mllp.frame(b"MSH|^~\\&|R|F|S|F|20260101||ACK|1|P|2.5\rMSA|AA|XYZ\r")
    assert [v.signature for v in HL7.judge(case, wrong)] == ["ack_control_id_mismatch"]
    no_msa = mllp.frame(b"MSH|^~\\&|R|F|S|F|20260101||ACK|1|P|2.5\r")
    assert [v.signature for v in HL7.judge(case, no_msa)] == ["no_msa"]
    # A header too short to be one: the hl7 dissector, now installed, says so too.
    broken = [v.signature for v in HL7.judge(case, mllp.frame(b"MSH|x\r"))]
    assert broken[0] == "no_msa" and all(s.startswith(("no_msa", "hl7:")) for s in broken)


# --- registry -------------------------------------------------------------------------


def test_profiles_are_found_by_name_and_unknown_names_refused():
    assert isinstance(get_profile("modbus"), modbus.ModbusProfile)
    with pytest.raises(UsageError):
        get_profile("no-such-protocol")


def test_register_profile_adds_a_protocol():
    @register_profile
    class Toy(FuzzProfile):
        name = "toy-protocol"

    assert isinstance(get_profile("toy-protocol"), Toy)


# --- store, signatures, shrinker ------------------------------------------------------


def test_store_deduplicates_by_oracle_and_signature(tmp_path):
    store = FindingStore(str(tmp_path / "f.sqlite"))
    cid = store.start_campaign("modbus", "t", {})
    target = Target("127.0.0.1:1502", name="t")
    verdict = Verdict("connection_dropped", "fc=0x03", "closed")
    case = Case((b"\x00\x01\x00\x00\x00\x02\x01\x03",), "truncate_in_header")
    first = store.record(
        cid, "modbus", verdict, case, {"state": "dropped"}, target, 0.001
    )
    again = store.record(cid, "modbus", verdict, case, {}, target, 0.001)
    assert first[1] and not again[1] and first[0] == again[0]
    store.set_replays(first[0], 10, 9)
    finding = store.get(first[0])
    assert finding.hits == 2 and finding.status == "confirmed" and finding.case == case
    store.set_replays(first[0], 10, 8)
    assert store.get(first[0]).status == "unconfirmed"


def test_log_signature_names_the_exception_and_folds_numbers():
    lines = [
        "Traceback (most recent call last):",
        '  File "x.py", line 3, in f',
        '    a, b = struct.unpack(">HH", data[:4])',
        "struct.error: unpack requires a buffer of 4 bytes",
    ]
    assert log_signature(lines) == "struct.error: unpack requires a buffer of N bytes"
    assert log_signature([">>>>> recv: 0x1 0x2"]) == ""


def test_shrink_finds_the_smallest_failing_case():
    case = Case((bytes(range(40)),))

    async def fails(candidate):
        return 7 in candidate.payload and 9 in candidate.payload

    import time

    best = asyncio.run(shrink(case, fails, MODBUS, time.monotonic() + 10))
    assert sorted(best.payload) == [7, 9]


def test_fuzz_cli_lists_profiles_and_recipes(tmp_path):
    run = [sys.executable, "-m", "otdpi", "fuzz"]
    profiles = subprocess.run(run + ["profiles"], capture_output=True, text=True)
    assert {"modbus", "hl7"} <= set(profiles.stdout.split())
    recipes = subprocess.run(run + ["recipes"], capture_output=True, text=True)
    assert "libmodbus" in recipes.stdout
    listed = subprocess.run(
        run + ["findings", "--db", str(tmp_path / "none.sqlite")], capture_output=True
    )
    assert listed.returncode == 0
